//! Every encryption mode (0 none, 1 RC4, 2 XXTEA, 3 X25519 + an AEAD) carries a real
//! HTTP exchange (curl through the local port returns the server's exact bytes), and a capture of the
//! session's UDP traffic shows no plaintext in modes 1-3. The capture sits in front of the server's relay
//! with the direct path blocked, so every session datagram crosses it; mode 0 proves the capture sees
//! the data (there the plaintext must show). In mode 3 the status names the AEAD both ends agreed on:
//! initiator and target run on this machine, so it is the one this CPU runs fastest (AES-256-GCM with
//! AES instructions).

use std::time::Duration;

use p2p_proto::crypto::Aead;
use p2p_system_tests::lab::env;
use p2p_system_tests::services::HttpServer;
use p2p_system_tests::udp_relay::{Impairment, UdpRelay};
use p2p_system_tests::Lab;

const MARKER: &str = "PLAINTEXT-MARKER-remoteitp2p";

fn http_in_mode(mode: u8) {
    let lab = Lab::new(&format!("http_mode_{mode}"));
    let http = HttpServer::with_marker_body(MARKER, 200 * 1024);
    let capture = UdpRelay::start(lab.server.relay(), Impairment::none(), true);
    let relay = capture.addr().to_string();
    let knobs = env(&[("P2P_RELAY_OVERRIDE", &relay), ("P2P_DISABLE_DIRECT", "1")]);
    let mut t = lab.tunnel(http.port(), mode, &knobs);

    lab.curl_expect(t.port, &http.body);
    // A second request on a new stream of the same session.
    lab.curl_expect(t.port, &http.body);
    assert_eq!(http.requests(), 2);

    let (datagrams, bytes) = capture.captured_size();
    assert!(
        bytes as u64 > 2 * http.body.len() as u64,
        "the capture saw only {datagrams} datagrams / {bytes} bytes: the session did not go through the relay"
    );
    let leaked_body = capture.captured_contains(MARKER.as_bytes());
    let leaked_request = capture.captured_contains(b"GET / HTTP/1.1");
    if mode == 0 {
        assert!(
            leaked_body && leaked_request,
            "mode 0 sends clear text, yet the capture does not show it: the capture is broken"
        );
    } else {
        assert!(
            !leaked_body,
            "mode {mode}: the HTTP body appears in clear in the UDP capture"
        );
        assert!(
            !leaked_request,
            "mode {mode}: the HTTP request appears in clear in the UDP capture"
        );
    }
    let connected = t.initiator.wait_connected();
    let name = ["None", "RC4", "XXTEA", "ChaCha20Poly1305"][mode as usize];
    assert!(
        connected.contains(&format!("encryption={name}")),
        "mode {mode} asked, status says: {connected}"
    );
    // Printed right after `!!connected` in mode 3, never in the others.
    if mode == 3 {
        t.initiator
            .proc
            .wait_line("'!!status aead='", Duration::from_secs(5), |l| {
                l.starts_with("!!status aead=")
            });
    }
    let aead_lines: Vec<String> = t
        .initiator
        .proc
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("!!status aead="))
        .collect();
    let expected: Vec<String> = match mode {
        3 => vec![format!("!!status aead={}", Aead::fastest_here())],
        _ => vec![],
    };
    assert_eq!(aead_lines, expected, "mode {mode}");
}

#[test]
fn http_mode_0_none() {
    http_in_mode(0);
}

#[test]
fn http_mode_1_rc4() {
    http_in_mode(1);
}

#[test]
fn http_mode_2_xxtea() {
    http_in_mode(2);
}

#[test]
fn http_mode_3_chacha() {
    http_in_mode(3);
}
