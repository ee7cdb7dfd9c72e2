//! Batched UDP (GSO/GRO, USO/URO) is an optimisation, never a requirement. Where the OS
//! refuses quinn-udp's socket set-up (wine, older Windows network stacks) the endpoint falls back to
//! one datagram per system call; `P2P_UDP_BATCHING=off` forces that fallback, so it is exercised on
//! Linux in every CI run. Both peers without batching, and one with and one without, must carry a
//! checksummed transfer each way over the direct path, and each log must say once that batching is off.

use std::time::Duration;

use p2p_system_tests::lab::{env, TRANSFER_TIMEOUT};
use p2p_system_tests::poll::wait_until;
use p2p_system_tests::services::{Kind, Transfer, TransferService};
use p2p_system_tests::Lab;

const LEN: u64 = 20 * 1024 * 1024;
const OFF_LINE: &str = "UDP batching off (P2P_UDP_BATCHING)";

fn says_direct(lines: &[String]) -> bool {
    lines
        .iter()
        .any(|l| l.starts_with("!!status") && l.contains("path=direct"))
}

fn count(lines: &[String], text: &str) -> usize {
    lines.iter().filter(|l| l.contains(text)).count()
}

/// A tunnel whose target and initiator get `target_env` and `initiator_env`; moves LEN each way.
fn transfer_with(name: &str, target_env: &[(String, String)], initiator_env: &[(String, String)]) {
    let lab = Lab::new(name);
    let svc = TransferService::start();
    let (account, device) = lab.account_and_device();
    let target = lab.target(&device, svc.port(), target_env);
    let initiator = lab.initiator(&lab.spec(&account, &device, 3), initiator_env);
    let port = initiator.port();
    wait_until("the path to go direct", Duration::from_secs(30), || {
        says_direct(&initiator.proc.lines())
    });
    for kind in [Kind::Upload, Kind::Download] {
        Transfer::run(port, kind, LEN, TRANSFER_TIMEOUT)
            .unwrap_or_else(|e| panic!("{name}: {kind:?} of {LEN} bytes: {e}"));
    }
    Transfer::run(port, Kind::Echo, 1024 * 1024, TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("{name}: echo: {e}"));
    for (who, lines, forced) in [
        ("target", target.proc.lines(), !target_env.is_empty()),
        (
            "initiator",
            initiator.proc.lines(),
            !initiator_env.is_empty(),
        ),
    ] {
        let n = count(&lines, OFF_LINE);
        if forced {
            assert_eq!(
                n, 1,
                "{name}: the {who} must say once that batching is off, said it {n} times"
            );
        } else {
            assert_eq!(n, 0, "{name}: the {who} was not asked to turn batching off");
        }
    }
    lab.check_logs();
}

#[test]
fn both_peers_without_udp_batching_carry_a_checksummed_transfer() {
    let off = env(&[("P2P_UDP_BATCHING", "off")]);
    transfer_with("udp_fallback_both", &off, &off);
}

#[test]
fn a_peer_without_batching_talks_to_one_with_it() {
    let off = env(&[("P2P_UDP_BATCHING", "off")]);
    transfer_with("udp_fallback_initiator_only", &[], &off);
}
