//! Load: one session carries 256 TCP connections at once, 256 KiB each way each, and every
//! byte arrives (SHA-256 checked both ways). Well below the session's 4096-stream limit, far above what a
//! browser or an RDP client opens, so streams are really multiplexed rather than served one by one.

use p2p_system_tests::services::{parallel_echo, TransferService};
use p2p_system_tests::Lab;

const CONNECTIONS: usize = 256;
const EACH: u64 = 256 * 1024;

#[test]
fn one_session_carries_256_concurrent_streams() {
    let lab = Lab::new("load_streams");
    let svc = TransferService::start();
    let t = lab.tunnel(svc.port(), 3, &[]);

    parallel_echo(t.port, CONNECTIONS, EACH);

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
