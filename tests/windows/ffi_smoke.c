/* The C ABI from a Windows program (issue 11): built with mingw-w64 against remoteitp2p.dll and run
 * under wine by tests/windows_wine.rs. It starts a session from a JSON file, waits for "Connected",
 * fetches a page through the local port with Winsock, lists, stops and forgets the session, checks the
 * errors a caller relies on, and prints one line per step. Exit status 0 only when every step held.
 *
 * usage: ffi_smoke.exe CONFIG.json MARKER
 */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remoteitp2p.h"

static int failures = 0;

static void check(int ok, const char *what, const char *detail) {
    printf("%s %s%s%s\n", ok ? "ok" : "FAILED", what, detail ? ": " : "", detail ? detail : "");
    fflush(stdout);
    if (!ok) failures++;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    fclose(f);
    return s;
}

static char *last_error(void) {
    char *msg = NULL;
    p2p_last_error(&msg);
    return msg;
}

/* The port of "local_endpoint":"127.0.0.1:PORT" in a status object. */
static int local_port(const char *status) {
    const char *k = strstr(status, "\"local_endpoint\":\"");
    if (!k) return 0;
    const char *colon = strchr(k + 18, ':');
    return colon ? atoi(colon + 1) : 0;
}

/* GET / through 127.0.0.1:port; true when the answer holds the marker. */
static int fetch_has(int port, const char *marker) {
    SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((u_short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) { closesocket(s); return 0; }
    const char *req = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    send(s, req, (int)strlen(req), 0);
    static char buf[1 << 20];
    int total = 0, n;
    while (total < (int)sizeof buf - 1 && (n = recv(s, buf + total, (int)sizeof buf - 1 - total, 0)) > 0)
        total += n;
    buf[total] = 0;
    closesocket(s);
    return strstr(buf, marker) != NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: ffi_smoke CONFIG.json MARKER\n"); return 2; }
    WSADATA wsa;
    WSAStartup(MAKEWORD(2, 2), &wsa);
    setvbuf(stdout, NULL, _IONBF, 0);
    check(strlen(p2p_version()) > 0, "p2p_version", p2p_version());

    uint64_t bad = 0;
    int rc = p2p_session_start("{\"device_id\":", &bad);
    char *msg = last_error();
    check(rc == P2P_ERR_INVALID_CONFIG && bad == 0, "malformed JSON is P2P_ERR_INVALID_CONFIG", msg);
    p2p_string_free(msg);

    char *config = read_file(argv[1]);
    check(config != NULL, "read the configuration", argv[1]);
    if (!config) return 1;
    uint64_t h = 0;
    rc = p2p_session_start(config, &h);
    msg = rc ? last_error() : NULL;
    check(rc == P2P_OK && h != 0, "p2p_session_start", msg);
    p2p_string_free(msg);
    if (rc) return 1;

    char *status = NULL;
    int connected = 0;
    for (int i = 0; i < 600 && !connected; i++) {
        p2p_session_status(h, &status);
        connected = strstr(status, "\"state\":\"Connected\"") != NULL;
        if (!connected) { p2p_string_free(status); status = NULL; Sleep(50); }
    }
    check(connected, "the session is Connected", status);
    int port = connected ? local_port(status) : 0;
    p2p_string_free(status);
    check(port > 0 && fetch_has(port, argv[2]), "a page fetched through the local port holds the marker", NULL);

    char *list = NULL;
    p2p_session_list(&list);
    check(list && list[0] == '[' && strstr(list, "\"state\":\"Connected\""), "p2p_session_list", list);
    p2p_string_free(list);

    check(p2p_session_stop(h, 0) == P2P_OK, "p2p_session_stop", NULL);
    p2p_session_status(h, &status);
    check(strstr(status, "\"state\":\"Stopped\"") != NULL, "the session says Stopped", status);
    p2p_string_free(status);
    check(port > 0 && !fetch_has(port, argv[2]), "the local port is closed after stop", NULL);
    check(p2p_session_forget(h) == P2P_OK, "p2p_session_forget", NULL);
    check(p2p_session_forget(h) == P2P_ERR_INVALID_HANDLE, "forgetting twice is P2P_ERR_INVALID_HANDLE", NULL);
    check(p2p_session_status(h, &status) == P2P_ERR_INVALID_HANDLE, "a forgotten handle is invalid", NULL);
    check(p2p_shutdown(0) == P2P_OK, "p2p_shutdown", NULL);
    printf("ffi_smoke: %d failed\n", failures);
    return failures ? 1 : 0;
}
