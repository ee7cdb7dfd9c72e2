//! A hostile server against mode 3 with device keys (docs/E2E-TRUST.md, section 7): the operator of
//! the server, holding its key, sits in front of it (`support/hostile.rs`), relays every session and
//! either injects forged datagrams, swaps the keys it introduces for its own and answers the
//! handshake itself, or strips the keys. What a user checks: the tunnel still carries exactly the
//! service's bytes, the server never sees them in clear, a connection to a pinned device (pinned by
//! `device_key` in the initiator file or `--device-key`, then in `known_devices`) is refused with
//! connectd's exit code 23 naming the device's fingerprint and the one the server presented, and a
//! device that is neither given nor pinned is refused with exit code 24 before any packet, whatever
//! the server introduces (its own key, or none).
//!
//! Not protected, and said so in SECURITY.md: a first connection with the explicit opt-in
//! `--trust-first-use` (it trusts the server, as its name says), and the legacy modes 0-2 (keys from
//! the server's session secret; mode 0 is not encrypted at all, see the last test).

use std::path::Path;
use std::time::Duration;

use p2p_system_tests::data::contains;
use p2p_system_tests::hostile::{hostile_lab, Attack, HostileServer};
use p2p_system_tests::initiator::Initiator;
use p2p_system_tests::services::HttpServer;
use p2p_system_tests::Lab;

const MARKER: &str = "E2E-HOSTILE-MARKER";

/// `connectd --fingerprint -f FILE`: the key the device holds.
fn device_fingerprint(lab: &Lab, conf: &Path) -> String {
    lab.fingerprint(&["-f".into(), conf.display().to_string()])
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

/// The initiator refused before any packet because nothing but the server's word is known of the
/// device: exit 24 naming `said` (what the server introduced), nothing sent to the hostile relay's
/// handshake, nothing at the service, no pin.
fn assert_refused_as_unknown(
    refused: &mut Initiator,
    said: &str,
    hostile: &HostileServer,
    lab: &Lab,
) {
    let (code, line) = refused.wait_exit_line(Duration::from_secs(20));
    assert_eq!(code, 24, "{line}");
    assert!(line.contains(said), "{line}");
    assert!(
        line.contains("--device-key") && line.contains("--trust-first-use"),
        "{line}"
    );
    assert_eq!(refused.proc.wait_exit_code(Duration::from_secs(10)), 24);
    assert_eq!(hostile.report().answered_initiators, 0, "a packet was sent");
    assert!(
        !hostile
            .seen()
            .iter()
            .any(|d| contains(d, MARKER.as_bytes())),
        "the server saw '{MARKER}' in clear"
    );
    let pins = lab.config_home().join("remoteitp2p").join("known_devices");
    assert!(!pins.exists(), "something was pinned");
}

#[test]
fn a_first_connection_to_an_unknown_device_is_refused_before_any_packet() {
    let (lab, hostile) = hostile_lab("attack_e2e_unknown", Attack::SwapKeys);
    lab.without_seeded_device_keys();
    let http = HttpServer::with_marker_body(MARKER, 16 * 1024);
    let (account, device) = lab.account_and_device();
    let target = lab.target(&device, http.port(), &[]);
    let device_fp = device_fingerprint(&lab, &target.conf);
    let mut refused = lab.start_initiator(&lab.spec(&account, &device, 3), &[]);
    let presented = hostile.fingerprint().to_string();
    assert_ne!(presented, device_fp);
    assert_refused_as_unknown(&mut refused, &presented, &hostile, &lab);
    assert_eq!(
        http.requests(),
        0,
        "a refused connection reached the service"
    );
}

#[test]
fn stripped_keys_are_refused_on_first_contact_and_for_a_pinned_device() {
    let (lab, hostile) = hostile_lab("attack_e2e_strip", Attack::StripKeys);
    let http = HttpServer::with_marker_body(MARKER, 16 * 1024);
    let (account, device) = lab.account_and_device();
    let _target = lab.target(&device, http.port(), &[]);
    let seeded = lab.spec(&account, &device, 3);
    let unseeded = seeded.without_device_key();

    // First contact, nothing known: no downgrade to the legacy handshake.
    let mut refused = lab.start_initiator(&unseeded, &[]);
    assert_refused_as_unknown(&mut refused, "reports no key", &hostile, &lab);

    // Pinned (seeded once while the server behaved), then stripped: refused as a changed key.
    hostile.set_attack(Attack::Watch);
    let mut first = lab.initiator(&seeded, &[]);
    lab.curl_expect(first.port(), &http.body);
    first.proc.interrupt();
    first.proc.wait_exit(Duration::from_secs(10));
    hostile.set_attack(Attack::StripKeys);
    let mut pinned = lab.start_initiator(&unseeded, &[]);
    let (code, line) = pinned.wait_exit_line(Duration::from_secs(20));
    assert_eq!(code, 23, "{line}");
    assert!(
        line.contains(seeded.device_key.as_deref().unwrap()) && line.contains("reports none"),
        "{line}"
    );
    assert_eq!(
        http.requests(),
        1,
        "only the faithful connection reached the service"
    );
}

/// The documented consequence of opting in: with `--trust-first-use` the first connection takes the
/// server's word, so the server that swaps keys is the peer it pins.
#[test]
fn trusting_the_server_on_first_use_lets_it_intercept_that_connection() {
    let (lab, hostile) = hostile_lab("attack_e2e_tofu", Attack::SwapKeys);
    lab.without_seeded_device_keys();
    let http = HttpServer::with_marker_body(MARKER, 16 * 1024);
    let (account, device) = lab.account_and_device();
    let target = lab.target(&device, http.port(), &[]);
    let device_fp = device_fingerprint(&lab, &target.conf);
    let args = lab
        .spec(&account, &device, 3)
        .args_with(&["--trust-first-use"]);
    let mut fooled = Initiator::new(lab.connectd("initiator-tofu", &args, &[]));
    let presented = hostile.fingerprint().to_string();
    assert_ne!(presented, device_fp);
    fooled.proc.wait_for_text(
        &format!("peer key {presented} (new pin, tofu)"),
        Duration::from_secs(20),
    );
    assert!(
        !fooled.proc.output().contains(&device_fp),
        "the device's own key was seen"
    );
    let pins = std::fs::read_to_string(lab.config_home().join("remoteitp2p").join("known_devices"))
        .expect("pinned");
    assert!(pins.contains(&hostile.public_key()), "{pins}");
}

#[test]
fn injected_datagrams_are_dropped_and_a_seeded_pin_refuses_swapped_keys_later() {
    let (lab, hostile) = hostile_lab("attack_e2e_inject_then_swap", Attack::Inject);
    let http = HttpServer::with_marker_body(MARKER, 64 * 1024);
    let (account, device) = lab.account_and_device();
    let target = lab.target(&device, http.port(), &[]);
    let device_fp = device_fingerprint(&lab, &target.conf);
    let spec = lab.spec(&account, &device, 3);
    assert_eq!(spec.device_key.as_deref(), Some(device_fp.as_str()));

    // First connection, with the device's key given: relayed faithfully, with forged datagrams after
    // each of the initiator's.
    let mut first = lab.initiator(&spec, &[]);
    lab.curl_expect(first.port(), &http.body);
    lab.curl_expect(first.port(), &http.body);
    first.proc.wait_for_text(
        &format!("peer key {device_fp} (new pin, seeded)"),
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

    // Next connection, without the key given (it is pinned): the server passes its own key off as
    // the device's and answers the handshake.
    hostile.set_attack(Attack::SwapKeys);
    let mut refused = lab.start_initiator(&spec.without_device_key(), &[]);
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
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("device_key {device_fp}\n")),
        "{text}"
    );
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
