//! Key updates in a real mode 3 tunnel: connectd initiator and target through the real server, with the
//! direct path blocked so that every datagram, of both key phases, crosses the server's relay. The
//! peers update their keys every MiB or second (p2p-net's test hooks `P2P_REKEY_BYTES` and
//! `P2P_REKEY_SECONDS`, in the workspace build of connectd only), 32 MiB go up and 8 MiB come back
//! checksummed, and both sides report many key updates each way when the session ends.

use std::time::Duration;

use p2p_system_tests::initiator::says_path;
use p2p_system_tests::lab::{env, serial};
use p2p_system_tests::services::{Kind, Transfer, TransferService};
use p2p_system_tests::Lab;

const MIB: u64 = 1024 * 1024;

/// The counts in `session <id>: N key updates sent, M received`.
fn key_updates(line: &str) -> (u64, u64) {
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect();
    let [.., sent, received] = numbers[..] else {
        panic!("no counts in '{line}'");
    };
    (sent, received)
}

#[test]
fn a_relayed_tunnel_updates_its_keys_many_times_and_delivers_every_byte() {
    let _one_at_a_time = serial();
    let lab = Lab::new("rekey");
    let svc = TransferService::start();
    let knobs = env(&[
        ("P2P_REKEY_BYTES", "1048576"),
        ("P2P_REKEY_SECONDS", "1"),
        ("P2P_DISABLE_DIRECT", "1"),
    ]);
    let mut t = lab.tunnel(svc.port(), 3, &knobs);

    let timeout = Duration::from_secs(60);
    let up =
        Transfer::run(t.port, Kind::Upload, 32 * MIB, timeout).unwrap_or_else(|e| panic!("{e}"));
    let down =
        Transfer::run(t.port, Kind::Download, 8 * MIB, timeout).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("32 MiB up in {up:?}, 8 MiB down in {down:?}");
    let lines = t.initiator.proc.lines();
    assert!(
        says_path(&lines, "relayed") && !says_path(&lines, "direct"),
        "not relayed all along"
    );

    // Ending the initiator closes the session; each side logs what its key updates did.
    t.initiator.proc.interrupt();
    let wait = Duration::from_secs(10);
    let ours = t.initiator.proc.wait_for_text("key updates sent", wait);
    let theirs = t.target.proc.wait_for_text("key updates sent", wait);
    let (i_sent, i_received) = key_updates(&ours);
    let (t_sent, t_received) = key_updates(&theirs);
    eprintln!("initiator: {ours}\ntarget: {theirs}");
    // At most one update per MiB sealed (and the peer's acknowledgement): 32 MiB up give dozens.
    assert!(i_sent >= 10, "initiator updated its key {i_sent} times");
    assert!(t_sent >= 5, "target updated its key {t_sent} times");
    // Every update but perhaps one made as the session closed was followed by the peer.
    assert!(
        i_sent - t_received <= 1,
        "the target followed {t_received} of {i_sent}"
    );
    assert!(
        t_sent - i_received <= 1,
        "the initiator followed {i_received} of {t_sent}"
    );
    lab.check_logs();
}
