//! A user-space UDP impairment relay between the peers (5% loss, reordering, duplication,
//! 20 ms delay each way, fixed seed) and the direct path blocked, so every datagram crosses it: a bulk
//! transfer still arrives intact. The size is the 50 MB (P2P_LOSS_TEST_MB changes it for a quick
//! local run). Random loss does not shrink the session's window (a model-based controller: the
//! rate is the measured delivery rate, not a loss-halving window, which moved only
//! MSS/RTT * 1.22/sqrt(0.05) ~ 150 KB/s here and took 336 s for the 50 MB), so the upload runs at about
//! 2.5 MB/s: 50 MB in about 21 s, the whole test (with the 5 MB download) about 36 s.

use std::time::Duration;

use p2p_system_tests::lab::{env, serial};
use p2p_system_tests::services::{Kind, Transfer, TransferService};
use p2p_system_tests::udp_relay::{Impairment, UdpRelay};
use p2p_system_tests::Lab;

fn size() -> u64 {
    let mb: u64 = std::env::var("P2P_LOSS_TEST_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    mb * 1024 * 1024
}

#[test]
fn bulk_transfer_survives_loss_reordering_duplication_delay() {
    let _one_at_a_time = serial();
    let lab = Lab::new("lossy_path");
    let svc = TransferService::start();
    let relay = UdpRelay::start(lab.server.relay(), Impairment::lossy(), false);
    let addr = relay.addr().to_string();
    let knobs = env(&[("P2P_RELAY_OVERRIDE", &addr), ("P2P_DISABLE_DIRECT", "1")]);
    let t = lab.tunnel(svc.port(), 3, &knobs);

    let len = size();
    // Bounded, with room for a machine fifty times slower than the measured ~2.5 MB/s.
    let timeout = |bytes: u64| Duration::from_secs(120 + bytes / 50_000);
    let took =
        Transfer::run(t.port, Kind::Upload, len, timeout(len)).unwrap_or_else(|e| panic!("{e}"));
    let st = relay.stats();
    eprintln!("{len} bytes through the lossy relay in {took:?}; relay stats {st:?}");
    assert!(
        st.dropped > 0 && st.duplicated > 0 && st.reordered > 0,
        "the relay did not impair anything: {st:?}"
    );
    // Also the other direction, smaller: the reverse path recovers from the same impairments.
    let took = Transfer::run(t.port, Kind::Download, len / 10, timeout(len / 10))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{} bytes back through the lossy relay in {took:?}",
        len / 10
    );
}
