//! Issue 7 (load): one session carries 256 TCP connections at once, 256 KiB each way each, and every
//! byte arrives (SHA-256 checked both ways). Well below the session's 4096-stream limit, far above what a
//! browser or an RDP client opens, so streams are really multiplexed rather than served one by one.

use p2p_system_tests::lab::TRANSFER_TIMEOUT;
use p2p_system_tests::services::{Kind, Transfer, TransferService};
use p2p_system_tests::Lab;

const CONNECTIONS: usize = 256;
const EACH: u64 = 256 * 1024;

#[test]
fn one_session_carries_256_concurrent_streams() {
    let lab = Lab::new("load_streams");
    let svc = TransferService::start();
    let t = lab.tunnel(svc.port(), 3, &[]);

    let started = std::time::Instant::now();
    let transfers: Vec<Transfer> = (0..CONNECTIONS)
        .map(|_| Transfer::start(t.port, Kind::Echo, EACH))
        .collect();
    let failures: Vec<String> = transfers
        .into_iter()
        .enumerate()
        .filter_map(|(i, tr)| {
            tr.join(TRANSFER_TIMEOUT)
                .err()
                .map(|e| format!("connection {i}: {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {CONNECTIONS} connections failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{CONNECTIONS} x {EACH} bytes each way in {:?}",
        started.elapsed()
    );

    // One session carried them all: the initiator reported a single connection to the target.
    let sessions = t
        .initiator
        .proc
        .lines()
        .iter()
        .filter(|l| l.starts_with("!!connected"))
        .count();
    assert_eq!(sessions, 1, "{}", t.initiator.proc.tail(20));
}
