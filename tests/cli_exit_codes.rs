//! Each of connectd's documented exit codes that can be provoked on one machine, provoked: the
//! `!!exit [CODE] : MESSAGE` line (with -s) and the process status agree, and a plain line says what went
//! wrong. (bad_input.rs covers 011 wrong password and unknown user (one answer for both, so
//! that a guesser cannot tell which was wrong; 010 is no longer given), 013 server unreachable, 015 unknown
//! or unshared UID, 017 port in use; cli_oneliner.rs covers 003 on Ctrl-C.)
//! Not provoked: 002 (shutdown packet) and 004 (disabled) have no counterpart in this server, 016 (UDP
//! bind) cannot fail for an ephemeral port on loopback, 012 (autoconnect failed) and 030 (console exit).

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use p2p_system_tests::initiator::Initiator;
use p2p_system_tests::lab::env;
use p2p_system_tests::os::terminate;
use p2p_system_tests::proc::Proc;
use p2p_system_tests::services::HttpServer;
use p2p_system_tests::Lab;

/// Waits for the end and checks the status, the `!!exit` line and that a line mentions one of `words`.
fn expect_exit(p: &mut Proc, code: i32, words: &[&str], timeout: Duration) {
    let status = p.wait_exit_code(timeout);
    let out = p.output();
    assert_eq!(status, code, "expected exit status {code}:\n{}", p.tail(30));
    if code != 64 {
        assert!(
            out.contains(&format!("!!exit [{code:03}]")),
            "no '!!exit [{code:03}]' line:\n{}",
            p.tail(30)
        );
    }
    let lower = out.to_ascii_lowercase();
    assert!(
        words
            .iter()
            .any(|w| lower.contains(&w.to_ascii_lowercase())),
        "no line mentions any of {words:?}:\n{}",
        p.tail(30)
    );
    assert!(!lower.contains("panicked"), "it panicked:\n{}", p.tail(30));
}

#[test]
fn exit_001_idle_limit() {
    let lab = Lab::new("exit_001_idle_limit");
    let http = HttpServer::start(b"idle soon\n".to_vec());
    let (a, d) = lab.account_and_device();
    let _target = lab.target(&d, http.port(), &[]);
    let mut spec = lab.spec(&a, &d, 3);
    spec.limits = Some((0, 3)); // no lifetime, 3 s idle limit
    let mut i = lab.initiator(&spec, &[]);
    lab.curl_expect(i.port(), &http.body);
    expect_exit(&mut i.proc, 1, &["idle"], Duration::from_secs(30));
}

#[test]
fn exit_003_on_sigterm() {
    let lab = Lab::new("exit_003_sigterm");
    let http = HttpServer::start(b"term\n".to_vec());
    let (a, d) = lab.account_and_device();
    let _target = lab.target(&d, http.port(), &[]);
    let mut i = lab.initiator(&lab.spec(&a, &d, 3), &[]);
    terminate(i.proc.pid());
    expect_exit(&mut i.proc, 3, &["signal"], Duration::from_secs(20));
    assert!(
        p2p_system_tests::ports::tcp_port_is_free(i.port()),
        "the port is still taken after the exit"
    );
}

#[test]
fn exit_014_device_offline() {
    let lab = Lab::new("exit_014_offline");
    let (a, d) = lab.account_and_device();
    // No target runs for the device.
    let mut i = lab.start_initiator(&lab.spec(&a, &d, 3), &[]);
    expect_exit(
        &mut i.proc,
        14,
        &["offline", "not registered", "not online", "not connected"],
        Duration::from_secs(60),
    );
}

#[test]
fn exit_020_peer_gone_with_autoconnect_1() {
    let lab = Lab::new("exit_020_peer_gone");
    let http = HttpServer::start(b"soon gone\n".to_vec());
    let (a, d) = lab.account_and_device();
    let mut target = lab.target(&d, http.port(), &[]);
    let mut i = lab.initiator(&lab.spec(&a, &d, 3), &[]);
    lab.curl_expect(i.port(), &http.body);
    // A crash, not a clean close: the initiator must notice by itself (dead-peer detection).
    target.proc.kill();
    expect_exit(
        &mut i.proc,
        20,
        &["peer", "device", "timed out"],
        Duration::from_secs(90),
    );
}

#[test]
fn exit_021_p2p_failed_when_no_path_works() {
    let lab = Lab::new("exit_021_p2p_failed");
    let http = HttpServer::start(b"unreachable\n".to_vec());
    let (a, d) = lab.account_and_device();
    let _target = lab.target(&d, http.port(), &[]);
    // The relay is a black hole and the direct path is blocked: the handshake can never complete.
    let hole = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let knobs = env(&[
        (
            "P2P_RELAY_OVERRIDE",
            &hole.local_addr().unwrap().to_string(),
        ),
        ("P2P_DISABLE_DIRECT", "1"),
    ]);
    let mut i: Initiator = lab.start_initiator(&lab.spec(&a, &d, 3), &knobs);
    expect_exit(
        &mut i.proc,
        21,
        &["handshake", "p2p"],
        Duration::from_secs(90),
    );
}

#[test]
fn exit_025_no_server_configured() {
    let lab = Lab::new("exit_025_no_server");
    let (a, d) = (
        lab.account(),
        p2p_system_tests::Device {
            uid: "80:00:00:00:01:00:0A:C2".into(),
            secret: String::new(),
        },
    );
    let mut p = lab.connectd_plain("initiator", &lab.spec(&a, &d, 3).args());
    expect_exit(&mut p, 25, &["no server"], Duration::from_secs(20));
}

#[test]
fn usage_error_on_bad_base64() {
    let lab = Lab::new("exit_usage_bad_base64");
    let args: Vec<String> = [
        "-s",
        "-c",
        "!!not-base64!!",
        "c3VwM3JzZWtyZXQh",
        "80:00:00:00:00:00:00:F1",
        "T0",
        "3",
        "127.0.0.1",
        "12",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut p = lab.connectd("initiator", &args, &[]);
    expect_exit(&mut p, 64, &["base64"], Duration::from_secs(20));
}
