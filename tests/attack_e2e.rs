//! A hostile server against mode 3 with device keys (docs/E2E-TRUST.md, section 7): the operator of
//! the server, holding its key, sits in front of it (`support/hostile.rs`), relays every session and
//! either injects forged datagrams or swaps the keys it introduces for its own and answers the
//! handshake itself. What a user checks: the tunnel still carries exactly the service's bytes, the
//! server never sees them in clear, and a connection to a pinned device (pinned by `device_key` in
//! the initiator file, or on first use) is refused with connectd's exit code 23 naming the device's
//! fingerprint and the one the server presented.
//!
//! Not protected, and said so in SECURITY.md: the first connection to a device that is neither
//! seeded nor pinned (trust on first use), and the legacy modes 0-2 (keys from the server's session
//! secret; mode 0 is not encrypted at all, see the last test).

use std::path::Path;
use std::time::Duration;

use p2p_system_tests::data::contains;
use p2p_system_tests::hostile::{Attack, HostileServer};
use p2p_system_tests::initiator::Initiator;
use p2p_system_tests::services::HttpServer;
use p2p_system_tests::Lab;

const MARKER: &str = "E2E-HOSTILE-MARKER";

/// `connectd --fingerprint -f FILE`: the key the device holds.
fn device_fingerprint(lab: &Lab, conf: &Path) -> String {
    let args = [
        "--fingerprint".to_string(),
        "-f".into(),
        conf.display().to_string(),
    ];
    let out = lab.connectd_cmd(&args, &[]).output().expect("run connectd");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The lab with the hostile server in front of its server.
fn hostile_lab(name: &str, attack: Attack) -> (Lab, HostileServer) {
    let mut lab = Lab::new(name);
    let hostile = HostileServer::start(&lab.server, attack);
    lab.server.put_in_front(hostile.control);
    (lab, hostile)
}

fn assert_never_seen(hostile: &HostileServer, marker: &str) {
    let seen = hostile.seen();
    assert!(
        !seen.is_empty(),
        "the hostile server saw nothing: the test would prove nothing"
    );
    assert!(
        !seen.iter().any(|d| contains(d, marker.as_bytes())),
        "the server saw '{marker}' in clear"
    );
}

/// The initiator answered by the hostile server exits 23 naming the device's fingerprint and the
/// server's, and nothing of the tunnel reached the server.
fn assert_refused_by_the_pin(refused: &mut Initiator, device_fp: &str, hostile: &HostileServer) {
    let (code, line) = refused.wait_exit_line(Duration::from_secs(20));
    assert_eq!(code, 23, "{line}");
    let presented = hostile.fingerprint().to_string();
    assert!(
        line.contains(device_fp) && line.contains(&presented),
        "{line}"
    );
    let report = hostile.report();
    assert!(report.answered_initiators > 0, "{report:?}");
    assert_never_seen(hostile, MARKER);
}

#[test]
fn injected_datagrams_are_dropped_and_a_tofu_pin_refuses_swapped_keys_later() {
    let (lab, hostile) = hostile_lab("attack_e2e_inject_then_swap", Attack::Inject);
    let http = HttpServer::with_marker_body(MARKER, 64 * 1024);
    let (account, device) = lab.account_and_device();
    let target = lab.target(&device, http.port(), &[]);
    let device_fp = device_fingerprint(&lab, &target.conf);
    let spec = lab.spec(&account, &device, 3);

    // First connection: relayed faithfully, with forged datagrams after each of the initiator's.
    let mut first = lab.initiator(&spec, &[]);
    lab.curl_expect(first.port(), &http.body);
    lab.curl_expect(first.port(), &http.body);
    first.proc.wait_for_text(
        &format!("peer key {device_fp} (new pin, tofu)"),
        Duration::from_secs(5),
    );
    assert!(hostile.report().injected > 0, "{:?}", hostile.report());
    assert_eq!(
        http.requests(),
        2,
        "an injected datagram reached the service"
    );
    assert_never_seen(&hostile, MARKER);
    first.proc.interrupt();
    first.proc.wait_exit(Duration::from_secs(10));

    // Next connection: the server passes its own key off as the device's and answers the handshake.
    hostile.set_attack(Attack::SwapKeys);
    let mut refused = lab.start_initiator(&spec, &[]);
    assert_refused_by_the_pin(&mut refused, &device_fp, &hostile);
    assert_eq!(
        http.requests(),
        2,
        "a refused connection reached the service"
    );
}

#[test]
fn a_device_key_in_the_initiator_file_refuses_swapped_keys_on_the_first_connection() {
    let (lab, hostile) = hostile_lab("attack_e2e_seeded", Attack::SwapKeys);
    let http = HttpServer::with_marker_body(MARKER, 16 * 1024);
    let (account, device) = lab.account_and_device();
    let target = lab.target(&device, http.port(), &[]);
    let device_fp = device_fingerprint(&lab, &target.conf);

    let port = p2p_system_tests::ports::free_tcp_port();
    let file = lab.initiator_file(&account, &device, port, 1);
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(&format!("device_key {device_fp}\n"));
    std::fs::write(&file, text).unwrap();
    let mut refused = Initiator::new(lab.connectd(
        "initiator-seeded",
        &["-s".into(), "-f".into(), file.display().to_string()],
        &[],
    ));
    assert_refused_by_the_pin(&mut refused, &device_fp, &hostile);
    assert_eq!(
        http.requests(),
        0,
        "a refused connection reached the service"
    );
    // The other half of the attack works, and is the limit SECURITY.md states: a target without a
    // list of authorized initiators completes a handshake with whatever key the server introduces.
    p2p_system_tests::poll::wait_until(
        "the hostile server's handshake with the target",
        Duration::from_secs(5),
        || hostile.report().completed_with_targets > 0,
    );
}

/// The limit SECURITY.md states: mode 0 is not encrypted, so the same server reads the stream.
#[test]
fn legacy_mode_0_is_not_protected_from_the_server() {
    let (lab, hostile) = hostile_lab("attack_e2e_legacy", Attack::Watch);
    let http = HttpServer::with_marker_body(MARKER, 16 * 1024);
    let t = lab.tunnel(http.port(), 0, &[]);
    lab.curl_expect(t.port, &http.body);
    let seen = hostile.seen();
    assert!(seen.iter().any(|d| contains(d, MARKER.as_bytes())));
}
