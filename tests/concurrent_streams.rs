//! Issue 2: 32 TCP connections at once through one session, 4 MB each way each, all checksums equal.
//! (A browser opens 6 at once; 32 checks that streams are independent and fairly served.)

use p2p_system_tests::lab::TRANSFER_TIMEOUT;
use p2p_system_tests::services::{Kind, Transfer, TransferService};
use p2p_system_tests::Lab;

const CONNECTIONS: usize = 32;
const EACH: u64 = 4 * 1024 * 1024;

#[test]
fn thirty_two_connections_four_mb_each_way() {
    let lab = Lab::new("concurrent_streams");
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
}
