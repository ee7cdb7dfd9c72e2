//! 10 000 random datagrams fired at every UDP socket (the server's three ports, the target's
//! socket, the initiator's sockets) during a transfer: the transfer completes intact and every process
//! keeps running. The flood comes in rounds of growing plausibility (random bytes; a valid-looking header
//! with other session ids; the live session's id with data kinds; with handshake kinds), each during its
//! own transfer, so a failure names the kind of datagram that did the damage.
//! `P2P_FLOOD_ONLY=server|target|initiator|PORT` floods only those sockets (to find which one breaks).

use std::time::Duration;

use p2p_system_tests::initiator::field;
use p2p_system_tests::lab::serial;
use p2p_system_tests::os::udp_ports;
use p2p_system_tests::poll::wait_until;
use p2p_system_tests::services::{Kind, Transfer, TransferService};
use p2p_system_tests::udp_relay::{flood, Garbage};
use p2p_system_tests::Lab;

const DATAGRAMS: usize = 10_000;
const EACH_TRANSFER: u64 = 8 * 1024 * 1024;

#[test]
fn random_datagrams_at_every_socket_during_a_transfer() {
    let _one_at_a_time = serial();
    let mut lab = Lab::new("udp_flood");
    let svc = TransferService::start();
    let mut t = lab.tunnel(svc.port(), 3, &[]);
    let connected = t.initiator.wait_connected();
    let session = field(&connected, "session")
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .unwrap_or_else(|| panic!("no session id in '{connected}'"));

    let mut targets: Vec<(&str, u16)> = lab
        .server
        .addrs
        .udp
        .iter()
        .map(|a| ("server", a.port()))
        .collect();
    targets.extend(
        udp_ports(t.target.proc.pid())
            .into_iter()
            .map(|p| ("target", p)),
    );
    targets.extend(
        udp_ports(t.initiator.proc.pid())
            .into_iter()
            .map(|p| ("initiator", p)),
    );
    assert!(
        targets.iter().any(|(w, _)| *w == "target"),
        "found no UDP socket of the target"
    );
    assert!(
        targets.iter().any(|(w, _)| *w == "initiator"),
        "found no UDP socket of the initiator"
    );
    if let Ok(only) = std::env::var("P2P_FLOOD_ONLY") {
        targets.retain(|(w, p)| *w == only || p.to_string() == only);
    }
    eprintln!("flooding {targets:?} (session {session:016x})");

    let rounds = [
        Garbage::Random,
        Garbage::OtherSessions,
        Garbage::SessionData(session),
        Garbage::SessionHandshake(session),
    ];
    let mut failures = Vec::new();
    for (round, garbage) in rounds.into_iter().enumerate() {
        // Paced, so the flood lands while data is moving. (A download: the device's side sends, the
        // client reads slowly; half_close.rs covers a slow writer.)
        let transfer =
            Transfer::start_paced(t.port, Kind::Download, EACH_TRANSFER, Some(2 * 1024 * 1024));
        wait_until(
            "the transfer to be under way",
            Duration::from_secs(60),
            || transfer.progress() > 1024 * 1024,
        );
        let floods: Vec<_> = targets
            .iter()
            .enumerate()
            .map(|(i, (_, port))| {
                let port = *port;
                std::thread::spawn(move || {
                    flood(port, DATAGRAMS, garbage, (round * 100 + i) as u64)
                })
            })
            .collect();
        for f in floods {
            assert_eq!(
                f.join().unwrap(),
                DATAGRAMS,
                "could not send every datagram"
            );
        }
        if let Err(e) = transfer.join(Duration::from_secs(120)) {
            failures.push(format!("during a flood of {garbage:?}: {e}"));
            break;
        }
    }
    assert!(
        lab.server.proc().try_status().is_none(),
        "the server died:\n{}",
        lab.server.proc().tail(30)
    );
    assert!(
        t.target.proc.try_status().is_none(),
        "the target died:\n{}",
        t.target.proc.tail(30)
    );
    assert!(
        t.initiator.proc.try_status().is_none(),
        "the initiator died:\n{}",
        t.initiator.proc.tail(30)
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // And the session still carries new streams.
    Transfer::run(t.port, Kind::Echo, 1024 * 1024, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("after the flood: {e}"));
}
