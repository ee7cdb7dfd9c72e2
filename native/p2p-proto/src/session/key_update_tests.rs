//! Whole mode 3 sessions updating their keys (key phases) over the simulated network of `tests`:
//! many updates under loss and reordering, packets reordered across an update, forged packets of the
//! other phase, and peers that did not announce key updates.

use super::peer_auth_tests::{device, laptop, with_keys};
use super::stepped::Stepped;
use super::tests::{config, pattern, pull, push, Link, Sim};
use super::*;
use crate::wire::Role;

const MODE: EncryptionMode = EncryptionMode::ChaCha20Poly1305;
const SMALL: RekeyLimits = RekeyLimits {
    interval: Duration::from_secs(1),
    bytes: 64 * 1024,
};
const INITIATOR_PHASE0: u8 = 0x10;
const INITIATOR_PHASE1: u8 = 0x18;

/// Both handshakes of mode 3 (the legacy HS1/HS2 and the end-to-end one), both sides with `rekey`
/// (the initiator's and the target's).
fn sims(rekey_i: Option<RekeyLimits>, rekey_t: Option<RekeyLimits>, link: Link) -> [Sim; 2] {
    let legacy = (config(Role::Initiator, MODE), config(Role::Target, MODE));
    let e2e = (
        with_keys(Role::Initiator, MODE, laptop(), &device()),
        with_keys(Role::Target, MODE, device(), &laptop()),
    );
    [legacy, e2e].map(|(mut ci, mut ct)| {
        ci.rekey = rekey_i;
        ct.rekey = rekey_t;
        Sim::with(ci, ct, link)
    })
}

/// `streams` streams, each carrying `len` bytes up and `len` other bytes down at once; checks every
/// byte of every stream, in order, and that no stream was reset.
fn exchange_streams(sim: &mut Sim, streams: usize, len: usize, limit: Duration) {
    sim.connect();
    let ids: Vec<StreamId> = (0..streams).map(|_| sim.i.open_stream().unwrap()).collect();
    let up: Vec<Vec<u8>> = (0..streams).map(|k| pattern(len, 2 * k as u8)).collect();
    let down: Vec<Vec<u8>> = (0..streams)
        .map(|k| pattern(len, 2 * k as u8 + 1))
        .collect();
    let mut sent = vec![(0usize, 0usize); streams];
    let mut got = vec![(Vec::new(), Vec::new()); streams];
    let mut fin = vec![(false, false); streams];
    let done = sim.run_until(limit, |s| {
        for (k, &id) in ids.iter().enumerate() {
            push(&mut s.i, id, &up[k], &mut sent[k].0);
            if s.t_events.contains(&Event::StreamOpened(id)) {
                if !fin[k].0 {
                    fin[k].0 = pull(&mut s.t, id, &mut got[k].0);
                }
                push(&mut s.t, id, &down[k], &mut sent[k].1);
            }
            if !fin[k].1 {
                fin[k].1 = pull(&mut s.i, id, &mut got[k].1);
            }
        }
        s.transmit();
        fin.iter().all(|&(a, b)| a && b)
    });
    let progress: Vec<(usize, usize)> = got.iter().map(|(u, d)| (u.len(), d.len())).collect();
    assert!(done, "transfer did not finish: {progress:?} of {len}");
    for k in 0..streams {
        assert!(got[k].0 == up[k], "stream {k}: upload corrupted");
        assert!(got[k].1 == down[k], "stream {k}: download corrupted");
    }
    let reset = |e: &Event| matches!(e, Event::StreamReset(..));
    assert!(!sim.i_events.iter().any(reset) && !sim.t_events.iter().any(reset));
}

fn sent_of_kind(sim: &Sim, kind: u8) -> usize {
    sim.wire_log.iter().filter(|d| d.2[1] == kind).count()
}

#[test]
fn a_long_session_moves_through_many_key_phases_without_losing_a_byte() {
    let link = Link {
        loss: 0.02,
        duplicate: 0.01,
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(8),
        ..Link::default()
    };
    for mut sim in sims(Some(SMALL), Some(SMALL), link) {
        exchange_streams(&mut sim, 3, 1 << 20, Duration::from_secs(120));
        let (i, t) = (sim.i.stats(), sim.t.stats());
        // 3 MiB each way at most 64 KiB per phase: dozens of updates each way.
        assert!(i.key_updates_sent > 20, "initiator updated {i:?}");
        assert!(t.key_updates_sent > 20, "target updated {t:?}");
        assert_eq!(t.key_updates_received, i.key_updates_sent);
        assert_eq!(i.key_updates_received, t.key_updates_sent);
        assert!(sent_of_kind(&sim, INITIATOR_PHASE1) > 0 && sent_of_kind(&sim, 0x19) > 0);
        assert!(sim.i.is_connected() && sim.t.is_connected());
    }
}

#[test]
fn an_idle_session_updates_its_keys_by_time() {
    let by_time = RekeyLimits {
        interval: Duration::from_secs(1),
        bytes: u64::MAX,
    };
    for mut sim in sims(Some(by_time), Some(by_time), Link::default()) {
        sim.connect();
        // Keepalives every 2 s carry the updates: one per keepalive once a phase is a second old.
        sim.run_until(Duration::from_secs(12), |_| false);
        let (i, t) = (sim.i.stats(), sim.t.stats());
        assert!(i.key_updates_sent >= 4, "{i:?}");
        assert!(t.key_updates_sent >= 4, "{t:?}");
        assert!(sim.i.is_connected() && sim.t.is_connected());
    }
}

/// The number (among the initiator's phase 0 data datagrams) of the last one sent before its first
/// key update, in a session uploading `len` bytes (the simulation is deterministic, so a second run
/// sends the same datagrams up to there).
fn last_before_first_update(make: impl Fn() -> Sim, len: usize) -> usize {
    let mut sim = make();
    upload(&mut sim, len);
    let first_phase1 = sim
        .wire_log
        .iter()
        .position(|d| d.2[1] == INITIATOR_PHASE1)
        .expect("the initiator updated its key");
    sim.wire_log[..first_phase1]
        .iter()
        .filter(|d| d.2[1] == INITIATOR_PHASE0)
        .count()
        - 1
}

fn upload(sim: &mut Sim, len: usize) {
    sim.connect();
    let id = sim.i.open_stream().unwrap();
    let data = pattern(len, 7);
    let (mut sent, mut got) = (0, Vec::new());
    assert!(sim.run_until(Duration::from_secs(30), |s| {
        push(&mut s.i, id, &data, &mut sent);
        s.transmit();
        pull(&mut s.t, id, &mut got)
    }));
    assert!(got == data);
}

/// The `n`-th phase 0 data datagram of the initiator, from the wire log.
fn phase0_datagram(sim: &Sim, n: usize) -> (SocketAddr, Vec<u8>) {
    let d = sim
        .wire_log
        .iter()
        .filter(|d| d.2[1] == INITIATOR_PHASE0)
        .nth(n)
        .expect("recorded");
    (d.1, d.2.clone())
}

#[test]
fn a_packet_reordered_across_an_update_opens_within_the_grace_and_not_after() {
    let only_bytes = RekeyLimits {
        interval: Duration::from_secs(3600),
        bytes: 64 * 1024,
    };
    // The target announces key updates but makes none itself.
    let never = RekeyLimits {
        interval: Duration::from_secs(3600),
        bytes: u64::MAX,
    };
    for handshake in 0..2 {
        let make = || {
            let [legacy, e2e] = sims(Some(only_bytes), Some(never), Link::default());
            if handshake == 0 {
                legacy
            } else {
                e2e
            }
        };
        // 100 KB: one update at 64 KiB, well under the 1024 packets of the replay window.
        let len = 100_000;
        let last = last_before_first_update(make, len);
        // The same session, with the last two phase 0 packets before the update held back.
        let mut sim = make();
        sim.lose = vec![(INITIATOR_PHASE0, last - 1), (INITIATOR_PHASE0, last)];
        upload(&mut sim, len);
        assert_eq!(sim.t.stats().key_updates_received, 1);
        let (late, later) = (phase0_datagram(&sim, last), phase0_datagram(&sim, last - 1));

        // Within the grace the previous key still opens a late packet.
        sim.run_until(Duration::from_secs(5), |s| {
            s.t.protection
                .as_ref()
                .is_some_and(|p| p.key_updates().1 == 1)
        });
        assert!(sim.t.protection.as_ref().unwrap().has_previous_open_key());
        let before = sim.t.stats();
        sim.t.handle_datagram(sim.now, late.0, &late.1);
        let after = sim.t.stats();
        assert_eq!(
            after.packets_dropped, before.packets_dropped,
            "late packet refused"
        );
        assert_eq!(after.datagrams_received, before.datagrams_received + 1);

        // After it the key is gone: a packet sealed under it no longer opens, though its number
        // is new to the replay window.
        sim.run_until(Duration::from_secs(3), |_| false);
        let protection = sim.t.protection.as_ref().unwrap();
        assert!(!protection.has_previous_open_key());
        let pn = u64::from_be_bytes(later.1[10..18].try_into().unwrap());
        assert!(protection.replay_window().check(pn), "not a replay");
        let before = sim.t.stats();
        sim.t.handle_datagram(sim.now, later.0, &later.1);
        let after = sim.t.stats();
        assert_eq!(after.packets_dropped, before.packets_dropped + 1);
        assert_eq!(after.datagrams_received, before.datagrams_received);
        assert!(sim.t.is_connected());
    }
}

#[test]
fn a_forged_packet_of_the_other_phase_advances_nothing() {
    for mut sim in sims(Some(SMALL), Some(SMALL), Link::default()) {
        sim.connect();
        assert!(sim.run_until(Duration::from_secs(5), |s| sent_of_kind(
            s,
            INITIATOR_PHASE0
        ) > 0));
        let (from, genuine) = phase0_datagram(&sim, 0);
        let before = sim.t.stats();
        assert_eq!(before.key_updates_received, 0);
        // A genuine packet relabelled as phase 1, one with a fresh number, and garbage of phase 1.
        let mut relabelled = genuine.clone();
        relabelled[1] = INITIATOR_PHASE1;
        let mut renumbered = relabelled.clone();
        renumbered[10..18].copy_from_slice(&1_000u64.to_be_bytes());
        let mut garbage = renumbered.clone();
        garbage[18..].iter_mut().for_each(|b| *b ^= 0x5a);
        for forged in [&relabelled, &renumbered, &garbage] {
            sim.t.handle_datagram(sim.now, from, forged);
        }
        let after = sim.t.stats();
        assert_eq!(after.packets_dropped, before.packets_dropped + 3);
        assert_eq!(after.key_updates_received, 0, "a forgery moved the key");
        let protection = sim.t.protection.as_ref().unwrap();
        assert!(
            protection.replay_window().check(1_000),
            "a forgery moved the window"
        );
        // The session carries on, through genuine updates.
        exchange_streams(&mut sim, 1, 300_000, Duration::from_secs(30));
        assert!(sim.t.stats().key_updates_received > 2);
    }
}

#[test]
fn a_peer_that_did_not_announce_key_updates_never_sees_one() {
    // A peer from before key updates sends the offer a session without `rekey` sends.
    for (rekey_i, rekey_t) in [(Some(SMALL), None), (None, Some(SMALL))] {
        for mut sim in sims(rekey_i, rekey_t, Link::default()) {
            exchange_streams(&mut sim, 2, 400_000, Duration::from_secs(30));
            for s in [sim.i.stats(), sim.t.stats()] {
                assert_eq!((s.key_updates_sent, s.key_updates_received), (0, 0));
            }
            assert_eq!(sent_of_kind(&sim, INITIATOR_PHASE1), 0);
            assert_eq!(sent_of_kind(&sim, 0x19), 0);
        }
    }
}

#[test]
fn modes_0_to_2_never_update_their_keys() {
    for mode in [
        EncryptionMode::None,
        EncryptionMode::Rc4,
        EncryptionMode::Xxtea,
    ] {
        let (mut ci, mut ct) = (config(Role::Initiator, mode), config(Role::Target, mode));
        ci.rekey = Some(SMALL);
        ct.rekey = Some(SMALL);
        let mut sim = Sim::with(ci, ct, Link::default());
        exchange_streams(&mut sim, 1, 300_000, Duration::from_secs(30));
        assert_eq!(sim.i.stats().key_updates_sent, 0, "{mode:?}");
        assert_eq!(sent_of_kind(&sim, INITIATOR_PHASE1), 0, "{mode:?}");
    }
}
