//! Whole sessions running the end-to-end handshake (device keys on both sides) over the simulated
//! network of `tests`: loss of each message, duplicates, a refused key, a peer without keys.

use super::stepped::Stepped;
use super::tests::{config, exchange, Link, Sim, RELAY};
use super::*;
use crate::crypto::{ExpectedPeer, StaticKey};
use crate::wire::Role;

const MODE: EncryptionMode = EncryptionMode::ChaCha20Poly1305;
const MSG1_OR_3: u8 = 0x14;
const MSG2: u8 = 0x15;
const HS1: u8 = 0x12;
const HS2: u8 = 0x13;
const DATA_FROM_INITIATOR: u8 = 0x10;

pub(super) fn device() -> StaticKey {
    StaticKey::from_secret_bytes([0xD0; 32])
}
pub(super) fn laptop() -> StaticKey {
    StaticKey::from_secret_bytes([0x1A; 32])
}

pub(super) fn with_keys(
    role: Role,
    mode: EncryptionMode,
    local: StaticKey,
    peer: &StaticKey,
) -> SessionConfig {
    let mut c = config(role, mode);
    c.peer_keys = Some(PeerKeys {
        local,
        expected_peer: ExpectedPeer::Key(peer.public().fingerprint()),
    });
    c
}

/// An initiator and a target that know each other's key.
fn e2e_sim(link: Link) -> Sim {
    Sim::with(
        with_keys(Role::Initiator, MODE, laptop(), &device()),
        with_keys(Role::Target, MODE, device(), &laptop()),
        link,
    )
}

/// Lets a few seconds of keepalives pass, long enough for any repeated handshake message to show.
fn settle(sim: &mut Sim) {
    sim.run_until(Duration::from_secs(5), |_| false);
}

fn sent_of_kind(sim: &Sim, kind: u8) -> usize {
    sim.wire_log.iter().filter(|d| d.2[1] == kind).count()
}

#[test]
fn an_end_to_end_session_carries_data_and_each_side_learns_the_others_key() {
    let mut sim = e2e_sim(Link::default());
    exchange(&mut sim, 200_000, Duration::from_secs(30));
    settle(&mut sim);
    assert_eq!(sim.i.peer_key(), Some(device().public()));
    assert_eq!(sim.t.peer_key(), Some(laptop().public()));
    assert_eq!(sim.i.stats().peer_key, Some(device().public()));
    assert_eq!(sent_of_kind(&sim, HS1) + sent_of_kind(&sim, HS2), 0);
    assert_eq!(sent_of_kind(&sim, MSG2), 1);
    // msg1 and msg3, and msg3 stops once the target's first packet came.
    assert_eq!(sent_of_kind(&sim, MSG1_OR_3), 2);
    assert_eq!(sim.i.stats().packets_dropped, 0);
    assert_eq!(sim.t.stats().packets_dropped, 0);
}

/// Each message lost once: msg1 and msg2 by the initiator's resend of msg1 (answered with the same
/// msg2), msg3 by its repetition until the target's first packet; the data sent meanwhile arrives.
#[test]
fn the_loss_of_each_handshake_message_is_recovered() {
    for (lost, name) in [
        ((MSG1_OR_3, 0), "msg1"),
        ((MSG2, 0), "msg2"),
        ((MSG1_OR_3, 1), "msg3"),
    ] {
        let mut sim = e2e_sim(Link::default());
        sim.lose.push(lost);
        exchange(&mut sim, 50_000, Duration::from_secs(30));
        settle(&mut sim);
        assert_eq!(sim.t.peer_key(), Some(laptop().public()), "{name}");
        assert_eq!(sim.i.peer_key(), Some(device().public()), "{name}");
        assert_eq!(
            sent_of_kind(&sim, MSG1_OR_3),
            3,
            "{name}: one message sent again, no more"
        );
    }
}

#[test]
fn losing_msg3_delays_the_targets_keys_until_it_is_repeated() {
    let mut sim = e2e_sim(Link::default());
    sim.lose.push((MSG1_OR_3, 1));
    assert!(sim.run_until(Duration::from_secs(5), |s| s.i.is_connected()));
    assert!(!sim.t.is_connected(), "msg3 was lost");
    let id = sim.i.open_stream().unwrap();
    sim.i.write(id, b"early data").unwrap();
    assert!(sim.run_until(Duration::from_secs(5), |s| s.t.is_connected()));
    assert!(
        sent_of_kind(&sim, DATA_FROM_INITIATOR) > 0,
        "data went out before the target had its keys"
    );
    assert!(sim.run_until(Duration::from_secs(5), |s| s
        .t_events
        .contains(&Event::StreamReadable(id))));
    let mut buf = [0u8; 64];
    assert_eq!(sim.t.read(id, &mut buf), Ok(ReadResult::Data(10)));
    assert_eq!(&buf[..10], b"early data");
}

#[test]
fn duplicated_and_lost_handshake_messages_still_give_one_session() {
    let link = Link {
        loss: 0.3,
        duplicate: 0.5,
        ..Link::default()
    };
    let mut sim = e2e_sim(link);
    exchange(&mut sim, 50_000, Duration::from_secs(60));
    assert_eq!(sim.t.peer_key(), Some(laptop().public()));
    let connected = |events: &[Event]| events.iter().filter(|e| **e == Event::Connected).count();
    assert_eq!(connected(&sim.i_events), 1);
    assert_eq!(connected(&sim.t_events), 1);
}

#[test]
fn a_pinned_initiator_refuses_another_device_key_naming_both_fingerprints() {
    let impostor = StaticKey::from_secret_bytes([0x5E; 32]);
    let mut sim = Sim::with(
        with_keys(Role::Initiator, MODE, laptop(), &device()),
        with_keys(Role::Target, MODE, impostor.clone(), &laptop()),
        Link::default(),
    );
    assert!(sim.run_until(Duration::from_secs(5), |s| s.i.is_closed()));
    let refused = CloseReason::PeerRefused(PeerHandshakeError::KeyMismatch {
        expected: device().public().fingerprint(),
        presented: impostor.public().fingerprint(),
    });
    assert!(sim.i_events.contains(&Event::Closed(refused)));
    assert!(!sim.i_events.contains(&Event::Connected));
    assert_eq!(sent_of_kind(&sim, DATA_FROM_INITIATOR), 0, "nothing sealed");
    // The target never gets msg3: its handshake times out.
    assert!(sim.run_until(Duration::from_secs(20), |s| s.t.is_closed()));
    assert!(sim
        .t_events
        .contains(&Event::Closed(CloseReason::HandshakeTimeout)));
}

#[test]
fn a_target_refuses_an_initiator_it_does_not_expect() {
    let stranger = StaticKey::from_secret_bytes([0x77; 32]);
    let mut sim = Sim::with(
        with_keys(Role::Initiator, MODE, stranger.clone(), &device()),
        with_keys(Role::Target, MODE, device(), &laptop()),
        Link::default(),
    );
    assert!(sim.run_until(Duration::from_secs(5), |s| s.t.is_closed()));
    let refused = CloseReason::PeerRefused(PeerHandshakeError::KeyMismatch {
        expected: laptop().public().fingerprint(),
        presented: stranger.public().fingerprint(),
    });
    assert!(sim.t_events.contains(&Event::Closed(refused)));
    assert!(!sim.t_events.contains(&Event::Connected));
}

/// A target without keys (an old build, or one not given its key) drops msg1: the initiator does
/// not fall back to the legacy handshake on its own (the server could force that), it times out.
#[test]
fn a_target_without_keys_leaves_an_end_to_end_initiator_to_time_out() {
    let mut sim = Sim::with(
        with_keys(Role::Initiator, MODE, laptop(), &device()),
        config(Role::Target, MODE),
        Link::default(),
    );
    assert!(sim.run_until(Duration::from_secs(20), |s| s.i.is_closed()));
    assert!(sim
        .i_events
        .contains(&Event::Closed(CloseReason::HandshakeTimeout)));
    assert!(!sim.t.is_connected());
    assert_eq!(sent_of_kind(&sim, HS1), 0, "no legacy fallback");
    assert!(sim.t.stats().packets_dropped > 0);
}

/// The server holds the session secret, so it can answer msg1 with a legacy HS2: the end-to-end
/// initiator drops it.
#[test]
fn an_end_to_end_initiator_drops_a_legacy_answer() {
    let mut sim = Sim::with(
        with_keys(Role::Initiator, MODE, laptop(), &device()),
        config(Role::Target, MODE),
        Link::default(),
    );
    let server = Handshake::new(Role::Target, MODE, &[7; 32], &[3; HANDSHAKE_RANDOM_LEN]);
    let mut hs2 = Vec::new();
    SessionHeader {
        kind: Kind::Handshake(Role::Target),
        session_id: 0xfeed_beef,
        packet_number: 0,
    }
    .encode(&mut hs2);
    let message = server.message(&hs2);
    hs2.extend_from_slice(&message);
    let now = sim.now;
    sim.i.handle_datagram(now, RELAY, &hs2);
    assert!(!sim.i.is_connected());
    assert_eq!(sim.i.stats().packets_dropped, 1);
}

/// Backward compatibility: a target with keys still answers an initiator without keys (legacy HS1),
/// and an initiator with keys uses the legacy handshake in modes 0-2.
#[test]
fn keys_change_nothing_for_a_legacy_initiator_or_in_modes_0_to_2() {
    let mut sim = Sim::with(
        config(Role::Initiator, MODE),
        with_keys(Role::Target, MODE, device(), &laptop()),
        Link::default(),
    );
    exchange(&mut sim, 20_000, Duration::from_secs(30));
    assert_eq!(sim.t.peer_key(), None);
    assert_eq!(sent_of_kind(&sim, MSG1_OR_3), 0);
    for mode in [
        EncryptionMode::None,
        EncryptionMode::Rc4,
        EncryptionMode::Xxtea,
    ] {
        let mut sim = Sim::with(
            with_keys(Role::Initiator, mode, laptop(), &device()),
            with_keys(Role::Target, mode, device(), &laptop()),
            Link::default(),
        );
        exchange(&mut sim, 20_000, Duration::from_secs(30));
        assert_eq!(sim.i.peer_key(), None, "{mode:?}");
        assert_eq!(sent_of_kind(&sim, MSG1_OR_3), 0, "{mode:?}");
    }
}

/// A target that lists its authorized initiators takes one of them, and drops a legacy HS1 (which
/// whoever holds the session secret, the server, could send), in mode 3 and in modes 0-2 alike.
#[test]
fn a_target_with_authorized_initiators_takes_one_of_them_and_no_legacy_handshake() {
    let other = StaticKey::from_secret_bytes([0x2B; 32]);
    let authorized = |mode| {
        let mut c = config(Role::Target, mode);
        c.peer_keys = Some(PeerKeys {
            local: device(),
            expected_peer: ExpectedPeer::OneOf(vec![
                other.public().fingerprint(),
                laptop().public().fingerprint(),
            ]),
        });
        c
    };
    let mut sim = Sim::with(
        with_keys(Role::Initiator, MODE, laptop(), &device()),
        authorized(MODE),
        Link::default(),
    );
    exchange(&mut sim, 20_000, Duration::from_secs(30));
    assert_eq!(sim.t.peer_key(), Some(laptop().public()));

    for mode in [MODE, EncryptionMode::None, EncryptionMode::Xxtea] {
        let mut sim = Sim::with(
            config(Role::Initiator, mode),
            authorized(mode),
            Link::default(),
        );
        assert!(
            sim.run_until(Duration::from_secs(20), |s| s.i.is_closed()),
            "{mode:?}"
        );
        assert!(!sim.t.is_connected(), "{mode:?}");
        assert!(sent_of_kind(&sim, HS1) > 0, "{mode:?}");
        assert_eq!(
            sent_of_kind(&sim, HS2),
            0,
            "{mode:?}: the target answered HS1"
        );
    }
}
