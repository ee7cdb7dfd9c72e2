//! The C ABI exercised the way a host uses it: through the `extern "C"` functions, with raw pointers.
//! Covers the promises of the header: bad handles, NULL, invalid UTF-8, malformed JSON, double stop and
//! double free all come back as result codes, and the library stays usable afterwards. (Panics: see
//! native/p2p-ffi-testhooks, the build with a hook that panics on purpose.)

use std::ffi::{c_char, c_void, CStr};
use std::net::{SocketAddr, TcpListener};
use std::ptr;
use std::sync::Mutex;
use std::time::Duration;

use remoteitp2p::*;

mod support;
use support::{c, last_error, silent_server, take, SERVER_KEY};

const SECRET: &str = "hunter2-never-logged";

/// A configuration whose server refuses connections (port 9 on loopback: nothing listens there), so
/// the session fails quickly.
fn config(local_port: u16) -> String {
    config_for("127.0.0.1:9", local_port)
}

/// A configuration whose server accepts the TCP connection and then says nothing, so the session stays
/// "Connecting" for the driver's control timeout: long enough to look at its open port.
fn silent_config() -> String {
    config_for(&silent_server(), 0)
}

fn config_for(server: &str, local_port: u16) -> String {
    format!(
        r#"{{"device_id":"80:00:00:00:01:00:0A:C2","user":"tester","password":"{SECRET}",
            "server":"{server}","server_key":"{SERVER_KEY}","local_port":{local_port}}}"#
    )
}

fn start(json: &str) -> Result<u64, (i32, String, String)> {
    let text = c(json);
    let mut handle = u64::MAX;
    let rc = unsafe { p2p_session_start(text.as_ptr(), &mut handle) };
    if rc == P2P_OK {
        assert_ne!(handle, 0);
        Ok(handle)
    } else {
        assert_eq!(handle, 0, "the handle is zeroed on failure");
        let (kind, message) = last_error();
        Err((rc, kind, message))
    }
}

fn status(handle: u64) -> serde_json::Value {
    let mut out = ptr::null_mut();
    assert_eq!(unsafe { p2p_session_status(handle, &mut out) }, P2P_OK);
    serde_json::from_str(&take(out)).unwrap()
}

fn local_endpoint(handle: u64) -> SocketAddr {
    status(handle)["local_endpoint"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn version_is_the_crate_version() {
    let v = unsafe { CStr::from_ptr(p2p_version()) }.to_str().unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    // Freeing the static string by mistake is detected and ignored.
    unsafe { p2p_string_free(p2p_version() as *mut c_char) };
    assert_eq!(
        unsafe { CStr::from_ptr(p2p_version()) }.to_str().unwrap(),
        v
    );
}

#[test]
fn invalid_handles_are_errors_not_crashes() {
    for handle in [0, 987_654_321, u64::MAX] {
        let mut out = ptr::null_mut();
        assert_eq!(
            unsafe { p2p_session_status(handle, &mut out) },
            P2P_ERR_INVALID_HANDLE
        );
        assert!(out.is_null());
        let (kind, message) = last_error();
        assert_eq!(kind, "InvalidHandle");
        assert!(message.contains(&handle.to_string()), "{message}");
        assert_eq!(p2p_session_stop(handle, 100), P2P_ERR_INVALID_HANDLE);
        assert_eq!(p2p_session_forget(handle), P2P_ERR_INVALID_HANDLE);
    }
}

#[test]
fn null_pointers_are_invalid_arguments() {
    let mut handle = 0;
    assert_eq!(
        unsafe { p2p_session_start(ptr::null(), &mut handle) },
        P2P_ERR_INVALID_ARGUMENT
    );
    assert!(last_error().1.contains("config_json is NULL"));
    let text = c(&config(0));
    assert_eq!(
        unsafe { p2p_session_start(text.as_ptr(), ptr::null_mut()) },
        P2P_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        unsafe { p2p_session_list(ptr::null_mut()) },
        P2P_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        unsafe { p2p_last_error(ptr::null_mut()) },
        P2P_ERR_INVALID_ARGUMENT
    );
    let mut out = ptr::null_mut();
    assert_eq!(
        unsafe { p2p_provisioning_parse(ptr::null(), &mut out) },
        P2P_ERR_INVALID_ARGUMENT
    );
    unsafe { p2p_string_free(ptr::null_mut()) };
}

#[test]
fn invalid_utf8_is_an_invalid_argument() {
    let bytes: &[u8] = b"{\"user\":\"\xff\xfe\"}\0";
    let mut handle = 0;
    let rc = unsafe { p2p_session_start(bytes.as_ptr().cast(), &mut handle) };
    assert_eq!(rc, P2P_ERR_INVALID_ARGUMENT);
    let (kind, message) = last_error();
    assert_eq!(kind, "InvalidArgument");
    assert!(
        message.contains("not valid UTF-8") && message.contains("offset 9"),
        "{message}"
    );
}

#[test]
fn malformed_json_names_the_problem_and_never_the_password() {
    let cases = [
        ("{not json", "malformed configuration JSON"),
        ("[1,2]", "must be a JSON object"),
        (
            r#"{"device_id":"80:00:00:00:01:00:0A:C2","user":"u","password":"x","colour":1}"#,
            "colour",
        ),
        (
            r#"{"device_id":"nope","user":"u","password":"x"}"#,
            "device_id",
        ),
        (
            r#"{"device_id":"80:00:00:00:01:00:0A:C2","user":"u","password":["hunter2-never-logged"]}"#,
            "password",
        ),
        (
            r#"{"device_id":"80:00:00:00:01:00:0A:C2","user":"u","password":"x","local_port":70000}"#,
            "local_port",
        ),
    ];
    for (json, expected) in cases {
        let (rc, kind, message) = start(json).unwrap_err();
        assert_eq!(rc, P2P_ERR_INVALID_CONFIG, "{json}: {message}");
        assert_eq!(kind, "InvalidConfig");
        assert!(message.contains(expected), "{json}: {message}");
        assert!(
            !message.contains(SECRET),
            "the message leaks the password: {message}"
        );
        assert!(!message.contains('\n'), "one line: {message}");
    }
    // A config that parses but cannot work (no credential) is refused before anything starts.
    let no_credential = r#"{"device_id":"80:00:00:00:01:00:0A:C2","user":"u","server":"127.0.0.1:9","server_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#;
    let (rc, _, message) = start(no_credential).unwrap_err();
    assert_eq!(rc, P2P_ERR_INVALID_CONFIG, "{message}");
    assert!(message.contains("credential"), "{message}");
}

#[test]
fn the_last_error_belongs_to_the_calling_thread() {
    assert_eq!(p2p_session_stop(424_242, 1), P2P_ERR_INVALID_HANDLE);
    std::thread::spawn(|| {
        let mut message = ptr::null_mut();
        assert_eq!(unsafe { p2p_last_error(&mut message) }, P2P_OK);
        assert!(
            message.is_null(),
            "another thread's error is not visible here"
        );
    })
    .join()
    .unwrap();
    assert!(last_error().1.contains("424242"));
    // A successful call clears it.
    let mut out = ptr::null_mut();
    assert_eq!(unsafe { p2p_session_list(&mut out) }, P2P_OK);
    take(out);
    let mut message = ptr::null_mut();
    assert_eq!(unsafe { p2p_last_error(&mut message) }, P2P_OK);
    assert!(message.is_null());
}

#[test]
fn double_free_is_ignored() {
    let mut out = ptr::null_mut();
    assert_eq!(unsafe { p2p_session_list(&mut out) }, P2P_OK);
    unsafe {
        p2p_string_free(out);
        p2p_string_free(out);
    }
}

#[test]
fn stop_is_idempotent_and_frees_the_port() {
    let handle = start(&silent_config()).expect("the session starts (the port binds)");
    let endpoint = local_endpoint(handle);
    // Taken, checked by binding rather than connecting: a probe connection's server end can linger a
    // moment in LAST_ACK after the tunnel closes it, and where binds have no SO_REUSEADDR (Windows
    // programs under wine) that alone made the bind below fail now and then.
    assert!(
        TcpListener::bind(endpoint).is_err(),
        "the tunnel holds the port"
    );
    assert_eq!(p2p_session_stop(handle, 5_000), P2P_OK);
    assert!(
        TcpListener::bind(endpoint).is_ok(),
        "the port is free once stop returns"
    );
    assert_eq!(
        p2p_session_stop(handle, 5_000),
        P2P_OK,
        "stopping twice is harmless"
    );
    let state = status(handle)["state"].as_str().unwrap().to_string();
    assert!(state == "Stopped" || state == "Failed", "{state}");
    assert_eq!(p2p_session_forget(handle), P2P_OK);
    assert_eq!(p2p_session_forget(handle), P2P_ERR_INVALID_HANDLE);
    assert_eq!(p2p_session_stop(handle, 5_000), P2P_ERR_INVALID_HANDLE);
}

#[test]
fn a_port_in_use_is_reported_as_such() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (rc, kind, message) = start(&config(port)).unwrap_err();
    assert_eq!(rc, P2P_ERR_PORT_IN_USE, "{message}");
    assert_eq!(kind, "PortInUse");
    assert!(message.contains(&port.to_string()), "{message}");
}

#[test]
fn an_unreachable_server_fails_the_session_not_the_call() {
    let handle = start(&config(0)).unwrap();
    let mut state = String::new();
    for _ in 0..200 {
        state = status(handle)["state"].as_str().unwrap().to_string();
        if state == "Failed" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(state, "Failed");
    let st = status(handle);
    assert!(st["last_error"]["message"].as_str().is_some(), "{st}");
    assert!(!st.to_string().contains(SECRET));
    assert_eq!(p2p_session_forget(handle), P2P_OK);
}

#[test]
fn list_shows_sessions_started_from_other_threads() {
    let handles: Vec<u64> = (0..4)
        .map(|_| std::thread::spawn(|| start(&config(0)).unwrap()))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let mut out = ptr::null_mut();
    assert_eq!(unsafe { p2p_session_list(&mut out) }, P2P_OK);
    let list: serde_json::Value = serde_json::from_str(&take(out)).unwrap();
    let ids: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    for h in &handles {
        assert!(ids.contains(h), "{h} listed in {ids:?}");
    }
    for h in handles {
        assert_eq!(p2p_session_forget(h), P2P_OK);
    }
}

#[test]
fn provisioning_files_parse_to_json_or_a_line_numbered_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.txt");
    std::fs::write(
        &good,
        format!("autoconnect 1\nuser_id me@example.com\nauth_pass {SECRET}\nproxy_local_port 33300\nremote_address 80:00:00:00:01:00:0A:C2\n"),
    )
    .unwrap();
    let path = c(good.to_str().unwrap());
    let mut out = ptr::null_mut();
    assert_eq!(
        unsafe { p2p_provisioning_parse(path.as_ptr(), &mut out) },
        P2P_OK
    );
    let text = take(out);
    assert!(!text.contains(SECRET));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["kind"], "initiator");
    assert_eq!(json["config"]["has_auth_pass"], true);

    let bad = dir.path().join("bad.txt");
    std::fs::write(
        &bad,
        "user_id me\nauth_pass x\nremote_address 80:00:00:00:01:00:0A:C2\nproxy_local_port lots\n",
    )
    .unwrap();
    let path = c(bad.to_str().unwrap());
    let mut out = ptr::null_mut();
    assert_eq!(
        unsafe { p2p_provisioning_parse(path.as_ptr(), &mut out) },
        P2P_ERR_PROVISIONING
    );
    assert!(out.is_null());
    let (kind, message) = last_error();
    assert_eq!(kind, "Provisioning");
    assert!(
        message.contains("bad.txt:4:") && message.contains("proxy_local_port"),
        "{message}"
    );

    let missing = c(dir.path().join("missing.txt").to_str().unwrap());
    assert_eq!(
        unsafe { p2p_provisioning_parse(missing.as_ptr(), &mut out) },
        P2P_ERR_PROVISIONING
    );
    assert!(last_error().1.contains("cannot read"));
}

#[test]
fn a_session_starts_from_a_provisioning_file_with_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("initiator.txt");
    std::fs::write(
        &file,
        format!("user_id me\nauth_pass {SECRET}\nproxy_local_port 1\nremote_address 80:00:00:00:01:00:0A:C2\nserver 127.0.0.1:9\nserver_key {SERVER_KEY}\n"),
    )
    .unwrap();
    let path = c(file.to_str().unwrap());
    let overrides = c(r#"{"name":"from-file","local_port":0,"trust_first_use":true}"#);
    let mut handle = 0;
    assert_eq!(
        unsafe { p2p_session_start_file(path.as_ptr(), overrides.as_ptr(), &mut handle) },
        P2P_OK
    );
    let st = status(handle);
    assert_eq!(st["name"], "from-file");
    assert_ne!(local_endpoint(handle).port(), 1);
    assert_eq!(p2p_session_forget(handle), P2P_OK);

    let bad_overrides = c(r#"{"password":"x"}"#);
    assert_eq!(
        unsafe { p2p_session_start_file(path.as_ptr(), bad_overrides.as_ptr(), &mut handle) },
        P2P_ERR_INVALID_CONFIG
    );
}

static LOG_LINES: Mutex<Vec<(i32, String)>> = Mutex::new(Vec::new());

unsafe extern "C" fn collect(level: i32, message: *const c_char, _user: *mut c_void) {
    let text = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    LOG_LINES.lock().unwrap().push((level, text));
}

#[test]
fn the_log_callback_gets_records_without_secrets() {
    assert_eq!(
        unsafe { p2p_set_log_callback(Some(collect), ptr::null_mut(), 5) },
        P2P_OK
    );
    let handle = start(&config(0)).unwrap();
    assert_eq!(p2p_session_forget(handle), P2P_OK);
    assert_eq!(
        unsafe { p2p_set_log_callback(None, ptr::null_mut(), 0) },
        P2P_OK
    );
    let lines = LOG_LINES.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|(level, m)| *level == 3 && m.contains("starting session")),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|(_, m)| !m.contains(SECRET)),
        "a log line leaks the password"
    );
}

#[test]
fn result_names_are_static_strings() {
    let name = |code| {
        unsafe { CStr::from_ptr(p2p_result_name(code)) }
            .to_str()
            .unwrap()
    };
    assert_eq!(name(P2P_OK), "Ok");
    assert_eq!(name(P2P_ERR_PANIC), "Panic");
    assert_eq!(name(-5), "Unknown");
}

#[test]
fn the_self_test_reports_an_unreachable_server_without_failing() {
    let options = c(r#"{"server":"127.0.0.1:9","timeout_ms":500,"gateways":false}"#);
    let mut out = ptr::null_mut();
    assert_eq!(
        unsafe { p2p_network_test(options.as_ptr(), &mut out) },
        P2P_OK
    );
    let report: serde_json::Value = serde_json::from_str(&take(out)).unwrap();
    assert_eq!(report["compatible"], false);
    assert!(report["text"].as_str().is_some());
    let bad = c(r#"{"server":"127.0.0.1:9","colour":1}"#);
    assert_eq!(
        unsafe { p2p_network_test(bad.as_ptr(), &mut out) },
        P2P_ERR_INVALID_CONFIG
    );
    assert!(last_error().1.contains("colour"));
}

/// A loopback port where nothing listens (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for a session to fail and returns its last error's message.
fn failure_message(handle: u64) -> String {
    for _ in 0..200 {
        let st = status(handle);
        if st["state"] == "Failed" {
            return st["last_error"]["message"].as_str().unwrap().to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("session {handle} did not fail: {}", status(handle));
}

/// True when the test process itself has a server in its environment (then "no server" cannot happen).
fn process_has_server() -> bool {
    std::env::var_os("P2P_SERVER").is_some() || std::env::var_os("P2P_SERVER_KEY").is_some()
}

#[test]
fn no_server_is_a_kind_of_its_own_and_names_no_connectd_flag() {
    if process_has_server() {
        return;
    }
    let no_server = format!(
        r#"{{"device_id":"80:00:00:00:01:00:0A:C2","user":"tester","password":"{SECRET}","local_port":0}}"#
    );
    let (rc, kind, message) = start(&no_server).unwrap_err();
    assert_eq!(rc, P2P_ERR_INVALID_CONFIG);
    assert_eq!(kind, "NoServer");
    assert!(message.contains("P2P_SERVER"), "{message}");
    assert!(
        !message.contains("-y") && !message.contains("--server"),
        "connectd's flags in: {message}"
    );
    let no_key = format!(
        r#"{{"device_id":"80:00:00:00:01:00:0A:C2","user":"tester","password":"{SECRET}","local_port":0,
            "environment":{{"P2P_SERVER":"127.0.0.1:9"}}}}"#
    );
    let (rc, kind, message) = start(&no_key).unwrap_err();
    assert_eq!(rc, P2P_ERR_INVALID_CONFIG);
    assert_eq!(kind, "NoServerKey");
    assert!(message.contains("P2P_SERVER_KEY"), "{message}");
    assert!(!message.contains("--server-key"), "{message}");
    // The self-test has the same kind.
    let mut out = ptr::null_mut();
    let options = c(r#"{"timeout_ms":500,"gateways":false}"#);
    assert_eq!(
        unsafe { p2p_network_test(options.as_ptr(), &mut out) },
        P2P_ERR_INVALID_CONFIG
    );
    assert_eq!(last_error().0, "NoServer");
}

#[test]
fn the_host_environment_gives_the_server_and_its_key() {
    let port = closed_port();
    let json = format!(
        r#"{{"device_id":"80:00:00:00:01:00:0A:C2","user":"tester","password":"{SECRET}","local_port":0,
            "environment":{{"P2P_SERVER":"127.0.0.1:{port}","P2P_SERVER_KEY":"{SERVER_KEY}"}}}}"#
    );
    let handle = start(&json).unwrap();
    // The tunnel tried the environment's server: its failure names that address.
    let message = failure_message(handle);
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert_eq!(p2p_session_forget(handle), P2P_OK);

    // A server in the configuration wins over the environment's.
    let other = closed_port();
    let json = format!(
        r#"{{"device_id":"80:00:00:00:01:00:0A:C2","user":"tester","password":"{SECRET}","local_port":0,
            "server":"127.0.0.1:{other}","server_key":"{SERVER_KEY}",
            "environment":{{"P2P_SERVER":"127.0.0.1:{port}"}}}}"#
    );
    let handle = start(&json).unwrap();
    let message = failure_message(handle);
    assert!(message.contains(&format!("127.0.0.1:{other}")), "{message}");
    assert_eq!(p2p_session_forget(handle), P2P_OK);

    // Not an object of strings: refused, naming the field.
    let bad = format!(
        r#"{{"device_id":"80:00:00:00:01:00:0A:C2","user":"tester","password":"{SECRET}","environment":[1]}}"#
    );
    let (rc, _, message) = start(&bad).unwrap_err();
    assert_eq!(rc, P2P_ERR_INVALID_CONFIG);
    assert!(message.contains("environment"), "{message}");
    assert!(!message.contains(SECRET));
}

#[test]
fn a_provisioning_file_server_wins_over_the_host_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file_port = closed_port();
    let env_port = closed_port();
    let with_server = dir.path().join("with-server.txt");
    std::fs::write(
        &with_server,
        format!("user_id me\nauth_pass {SECRET}\nproxy_local_port 1\nremote_address 80:00:00:00:01:00:0A:C2\nserver 127.0.0.1:{file_port}\nserver_key {SERVER_KEY}\n"),
    )
    .unwrap();
    let without = dir.path().join("without-server.txt");
    std::fs::write(
        &without,
        format!("user_id me\nauth_pass {SECRET}\nproxy_local_port 1\nremote_address 80:00:00:00:01:00:0A:C2\n"),
    )
    .unwrap();
    let overrides = c(&format!(
        r#"{{"local_port":0,"environment":{{"P2P_SERVER":"127.0.0.1:{env_port}","P2P_SERVER_KEY":"{SERVER_KEY}"}}}}"#
    ));
    for (file, expected) in [(&with_server, file_port), (&without, env_port)] {
        let path = c(file.to_str().unwrap());
        let mut handle = 0;
        assert_eq!(
            unsafe { p2p_session_start_file(path.as_ptr(), overrides.as_ptr(), &mut handle) },
            P2P_OK
        );
        let message = failure_message(handle);
        assert!(
            message.contains(&format!("127.0.0.1:{expected}")),
            "{}: {message}",
            file.display()
        );
        assert_eq!(p2p_session_forget(handle), P2P_OK);
    }
    if !process_has_server() {
        let path = c(without.to_str().unwrap());
        let mut handle = 0;
        let overrides = c(r#"{"local_port":0}"#);
        assert_eq!(
            unsafe { p2p_session_start_file(path.as_ptr(), overrides.as_ptr(), &mut handle) },
            P2P_ERR_INVALID_CONFIG
        );
        assert_eq!(last_error().0, "NoServer");
    }
}

#[test]
fn the_self_test_takes_its_server_from_the_host_environment() {
    let options =
        c(r#"{"timeout_ms":500,"gateways":false,"environment":{"P2P_SERVER":"127.0.0.1:9"}}"#);
    let mut out = ptr::null_mut();
    assert_eq!(
        unsafe { p2p_network_test(options.as_ptr(), &mut out) },
        P2P_OK
    );
    let report: serde_json::Value = serde_json::from_str(&take(out)).unwrap();
    assert_eq!(report["server"], "127.0.0.1:9", "{report}");
}
