/* A stand-in bcryptprimitives.dll for wine 8.0, which lacks it (Windows 8 and later have it).
 * Rust's standard library (1.78+) takes its random numbers from ProcessPrng in this DLL; without it
 * every Rust program dies at start under wine with c0000135. This one forwards to BCryptGenRandom with
 * the system's preferred generator, which wine implements. Built by tools/windows/cross.sh into the
 * project's wine prefix only: never shipped, never needed on Windows. */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
