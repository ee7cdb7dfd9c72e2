//! With direct UDP between the peers blocked, the connection still works, relayed, and says so;
//! when direct UDP is unblocked mid-transfer, the session moves to the direct path and the transfer
//! completes intact (streams survive the path change: a session is known by its id, not its address).
//! Blocking uses the driver's `P2P_DISABLE_DIRECT_FILE`: while the file exists, datagrams to or from
//! anything but the relay are dropped, as a firewall between two sites would.

use std::time::{Duration, Instant};

use p2p_system_tests::initiator::says_path as says;
use p2p_system_tests::lab::{env, TRANSFER_TIMEOUT};
use p2p_system_tests::poll::wait_until;
use p2p_system_tests::services::{Kind, Transfer, TransferService};
use p2p_system_tests::Lab;

const LEN: u64 = 40 * 1024 * 1024;
/// Slow enough that the transfer is still running when the path changes.
const RATE: u64 = 2 * 1024 * 1024;

#[test]
fn relayed_when_blocked_then_direct_mid_transfer() {
    let lab = Lab::new("relay_upgrade");
    let svc = TransferService::start();
    let block = lab.dir().join("block-direct");
    std::fs::write(&block, "blocked").unwrap();
    let knobs = env(&[("P2P_DISABLE_DIRECT_FILE", &block.to_string_lossy())]);
    let mut t = lab.tunnel(svc.port(), 3, &knobs);

    // Works while blocked, and says it is relayed.
    Transfer::run(t.port, Kind::Echo, 1024 * 1024, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("relayed transfer: {e}"));
    let lines = t.initiator.proc.lines();
    assert!(
        says(&lines, "relayed"),
        "the initiator does not say the path is relayed:\n{}",
        t.initiator.proc.tail(30)
    );
    assert!(
        !says(&lines, "direct"),
        "the path went direct although direct UDP is blocked:\n{}",
        t.initiator.proc.tail(30)
    );

    let transfer = Transfer::start_paced(t.port, Kind::Download, LEN, Some(RATE));
    wait_until(
        "the transfer to be under way",
        Duration::from_secs(60),
        || transfer.progress() > LEN / 10,
    );
    std::fs::remove_file(&block).unwrap();
    let unblocked = Instant::now();
    let initiator = &mut t.initiator;
    wait_until(
        "the initiator to say the path is direct",
        Duration::from_secs(40),
        || says(&initiator.proc.lines(), "direct"),
    );
    eprintln!("moved to direct {:?} after unblocking", unblocked.elapsed());
    assert!(
        !transfer.is_finished(),
        "the transfer ended before the path changed: the test proves nothing"
    );
    transfer
        .join(TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("transfer across the path change: {e}"));
}
