//! 32 TCP connections at once through one session, 4 MB each way each, all checksums equal.
//! (A browser opens 6 at once; 32 checks that streams are independent and fairly served.)

use p2p_system_tests::services::{parallel_echo, TransferService};
use p2p_system_tests::Lab;

const CONNECTIONS: usize = 32;
const EACH: u64 = 4 * 1024 * 1024;

#[test]
fn thirty_two_connections_four_mb_each_way() {
    let lab = Lab::new("concurrent_streams");
    let svc = TransferService::start();
    let t = lab.tunnel(svc.port(), 3, &[]);

    parallel_echo(t.port, CONNECTIONS, EACH);
}
