//! Whole-module properties: both sides of a handshake agree, every mode round-trips, tampering and
//! replays are refused, and nothing panics on hostile bytes.

use proptest::prelude::*;

use super::keys::hmac_sha256;
use super::*;
use crate::wire::{Kind, Role, SessionHeader};
use crate::EncryptionMode;

pub(super) const SID: u64 = 0x1122_3344_5566_7788;
pub(super) const SECRET: [u8; 32] = [0x5c; 32];
pub(super) const RANDOM_I: [u8; 48] = [0x11; 48];
pub(super) const RANDOM_T: [u8; 48] = [0x22; 48];
const SECURE_MODES: [EncryptionMode; 3] = [
    EncryptionMode::Rc4,
    EncryptionMode::Xxtea,
    EncryptionMode::ChaCha20Poly1305,
];

fn header(kind: Kind, pn: u64) -> Vec<u8> {
    let mut h = Vec::new();
    SessionHeader {
        kind,
        session_id: SID,
        packet_number: pn,
    }
    .encode(&mut h);
    h
}

pub(super) fn data_header(from: Role, pn: u64) -> Vec<u8> {
    header(Kind::Data(from), pn)
}

pub(super) fn hs_header(from: Role) -> Vec<u8> {
    header(Kind::Handshake(from), 0)
}

/// Runs HS1 and HS2; returns (initiator's protection, target's protection).
pub(super) fn session(
    mode: EncryptionMode,
    secret: &[u8; 32],
    ri: &[u8; 48],
    rt: &[u8; 48],
) -> (Protection, Protection) {
    let i = Handshake::new(Role::Initiator, mode, secret, ri);
    let t = Handshake::new(Role::Target, mode, secret, rt);
    let (h1, h2) = (hs_header(Role::Initiator), hs_header(Role::Target));
    let pt = t.receive(&h1, &i.message(&h1)).expect("target accepts HS1");
    let pi = i
        .receive(&h2, &t.message(&h2))
        .expect("initiator accepts HS2");
    (pi, pt)
}

fn pair(mode: EncryptionMode) -> (Protection, Protection) {
    session(mode, &SECRET, &RANDOM_I, &RANDOM_T)
}

fn sealed(p: &Protection, from: Role, pn: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = payload.to_vec();
    p.seal(&data_header(from, pn), pn, &mut v);
    v
}

fn open(p: &mut Protection, from: Role, pn: u64, protected: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut out = vec![0xEE; 3]; // stale contents must never leak through
    let r = p.open(&data_header(from, pn), pn, protected, &mut out);
    if r.is_err() {
        assert!(out.is_empty(), "a refused packet left bytes in `out`");
    }
    r.map(|()| out)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn every_mode_round_trips_sizes_0_to_2000_both_ways() {
    for mode in EncryptionMode::ALL {
        let (mut pi, mut pt) = pair(mode);
        assert_eq!((pi.mode(), pt.mode()), (mode, mode));
        for len in 0..2000usize {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let pn = len as u64;
            for from in [Role::Initiator, Role::Target] {
                let (tx, rx) = match from {
                    Role::Initiator => (&pi, &mut pt),
                    Role::Target => (&pt, &mut pi),
                };
                let wire = sealed(tx, from, pn, &payload);
                let overhead = wire.len() - len;
                assert!(overhead <= tx.max_overhead(), "{mode} len {len}");
                if mode == EncryptionMode::None {
                    assert_eq!(wire, payload);
                }
                assert_eq!(open(rx, from, pn, &wire).as_deref(), Ok(&payload[..]));
            }
        }
    }
}

#[test]
fn overheads_are_as_documented() {
    let max: Vec<usize> = EncryptionMode::ALL
        .iter()
        .map(|m| pair(*m).0.max_overhead())
        .collect();
    assert_eq!(max, [0, 20, 28, 16]);
    // XXTEA's worst case is the empty payload (eight padding bytes).
    let (pi, _) = pair(EncryptionMode::Xxtea);
    assert_eq!(sealed(&pi, Role::Initiator, 0, &[]).len(), 28);
}

#[test]
fn a_side_cannot_open_its_own_packets() {
    // Directional keys: a packet reflected back at its sender does not authenticate.
    for mode in SECURE_MODES {
        let (mut pi, _) = pair(mode);
        let wire = sealed(&pi, Role::Initiator, 1, b"reflect me");
        assert_eq!(
            open(&mut pi, Role::Initiator, 1, &wire),
            Err(CryptoError::BadMac)
        );
    }
}

#[test]
fn tampering_any_byte_fails_authentication() {
    for mode in SECURE_MODES {
        let (pi, mut pt) = pair(mode);
        let pn = 42;
        let head = data_header(Role::Initiator, pn);
        let wire = sealed(&pi, Role::Initiator, pn, &[0xA5; 61]);
        for i in 0..head.len() {
            let mut h = head.clone();
            h[i] ^= 0x01;
            let mut out = Vec::new();
            assert_eq!(
                pt.open(&h, pn, &wire, &mut out),
                Err(CryptoError::BadMac),
                "{mode}: header byte {i}"
            );
            assert!(out.is_empty());
        }
        for i in 0..wire.len() {
            let mut w = wire.clone();
            w[i] ^= 0x80;
            assert_eq!(
                open(&mut pt, Role::Initiator, pn, &w),
                Err(CryptoError::BadMac),
                "{mode}: payload byte {i}"
            );
        }
        // The packet number is bound too: the same bytes under another number are refused.
        let mut out = Vec::new();
        assert_eq!(
            pt.open(&head, pn + 1, &wire, &mut out),
            Err(CryptoError::BadMac)
        );
        // None of the forgeries moved the replay window: the genuine packet still opens.
        assert_eq!(pt.replay_window().highest(), None);
        assert!(open(&mut pt, Role::Initiator, pn, &wire).is_ok());
    }
}

#[test]
fn replays_and_too_old_packets_are_refused_in_every_mode() {
    for mode in EncryptionMode::ALL {
        let (pi, mut pt) = pair(mode);
        let pkt = |pn: u64| sealed(&pi, Role::Initiator, pn, b"frames");
        assert!(open(&mut pt, Role::Initiator, 5, &pkt(5)).is_ok());
        assert_eq!(
            open(&mut pt, Role::Initiator, 5, &pkt(5)),
            Err(CryptoError::Replay),
            "{mode}"
        );
        assert!(
            open(&mut pt, Role::Initiator, 3, &pkt(3)).is_ok(),
            "reordered"
        );
        assert!(open(&mut pt, Role::Initiator, 2000, &pkt(2000)).is_ok());
        assert_eq!(
            open(&mut pt, Role::Initiator, 900, &pkt(900)),
            Err(CryptoError::Replay),
            "{mode}: 1100 behind the highest is too old"
        );
        assert!(open(&mut pt, Role::Initiator, 1500, &pkt(1500)).is_ok());
        assert_eq!(
            open(&mut pt, Role::Initiator, 2000, &pkt(2000)),
            Err(CryptoError::Replay)
        );
    }
}

#[test]
fn short_packets_are_truncated() {
    for (mode, min) in [
        (EncryptionMode::Rc4, 20),
        (EncryptionMode::Xxtea, 28),
        (EncryptionMode::ChaCha20Poly1305, 16),
    ] {
        let (_, mut pt) = pair(mode);
        assert_eq!(
            open(&mut pt, Role::Initiator, 0, &vec![0; min - 1]),
            Err(CryptoError::Truncated)
        );
        assert_eq!(
            open(&mut pt, Role::Initiator, 0, &vec![0; min]),
            Err(CryptoError::BadMac)
        );
    }
}

#[test]
fn ciphertext_does_not_contain_the_plaintext() {
    let marker = *b"--32-byte plaintext marker here-";
    let mut payload = vec![0u8; 100];
    payload.extend_from_slice(&marker);
    payload.extend_from_slice(&[1u8; 77]);
    for mode in SECURE_MODES {
        let (pi, _) = pair(mode);
        for pn in 0..50 {
            let wire = sealed(&pi, Role::Initiator, pn, &payload);
            assert!(!contains(&wire, &marker), "{mode} pn {pn}");
        }
    }
    let (pi, _) = pair(EncryptionMode::None);
    assert!(contains(
        &sealed(&pi, Role::Initiator, 0, &payload),
        &marker
    ));
}

#[test]
fn same_payload_and_number_differ_between_packets_and_sessions() {
    for mode in SECURE_MODES {
        let (a, mut a_rx) = pair(mode);
        let (b, _) = session(mode, &SECRET, &[0x33; 48], &[0x44; 48]);
        let payload = [0u8; 64];
        let wa = sealed(&a, Role::Initiator, 9, &payload);
        let wb = sealed(&b, Role::Initiator, 9, &payload);
        assert_ne!(
            wa, wb,
            "{mode}: same secret, new randomness, same ciphertext"
        );
        assert_eq!(
            open(&mut a_rx, Role::Initiator, 9, &wb),
            Err(CryptoError::BadMac),
            "{mode}: another session's packet"
        );
        assert_ne!(wa, sealed(&a, Role::Initiator, 10, &payload));
    }
    // Keys differ even where nothing observable does (mode 0), and a change on one side suffices.
    for mode in EncryptionMode::ALL {
        let base = pair(mode);
        assert_ne!(session(mode, &SECRET, &[0x33; 48], &RANDOM_T), base);
        assert_ne!(session(mode, &SECRET, &RANDOM_I, &[0x44; 48]), base);
        assert_ne!(session(mode, &[0x5d; 32], &RANDOM_I, &RANDOM_T), base);
    }
}

#[test]
fn wrong_session_secret_fails_the_handshake() {
    for mode in EncryptionMode::ALL {
        let i = Handshake::new(Role::Initiator, mode, &SECRET, &RANDOM_I);
        let t = Handshake::new(Role::Target, mode, &[0x5d; 32], &RANDOM_T);
        let (h1, h2) = (hs_header(Role::Initiator), hs_header(Role::Target));
        assert_eq!(t.receive(&h1, &i.message(&h1)), Err(CryptoError::BadMac));
        assert_eq!(i.receive(&h2, &t.message(&h2)), Err(CryptoError::BadMac));
    }
}

#[test]
fn mode_mismatch_is_reported_after_authentication() {
    let i = Handshake::new(
        Role::Initiator,
        EncryptionMode::ChaCha20Poly1305,
        &SECRET,
        &RANDOM_I,
    );
    let t = Handshake::new(Role::Target, EncryptionMode::Rc4, &SECRET, &RANDOM_T);
    let h1 = hs_header(Role::Initiator);
    assert_eq!(
        t.receive(&h1, &i.message(&h1)),
        Err(CryptoError::ModeMismatch)
    );
    // With a wrong secret as well, the mac is what fails: an outsider learns nothing about modes.
    let t2 = Handshake::new(Role::Target, EncryptionMode::Rc4, &[0; 32], &RANDOM_T);
    assert_eq!(t2.receive(&h1, &i.message(&h1)), Err(CryptoError::BadMac));
}

#[test]
fn retransmitted_handshakes_give_equal_protections() {
    for mode in EncryptionMode::ALL {
        let i = Handshake::new(Role::Initiator, mode, &SECRET, &RANDOM_I);
        let t = Handshake::new(Role::Target, mode, &SECRET, &RANDOM_T);
        let first = header(Kind::Handshake(Role::Initiator), 0);
        let again = header(Kind::Handshake(Role::Initiator), 1);
        let msg = i.message(&first);
        assert_eq!(msg.len(), HANDSHAKE_MESSAGE_LEN);
        assert_eq!(msg, i.message(&first), "message is deterministic");
        let p1 = t.receive(&first, &msg).unwrap();
        assert_eq!(t.receive(&first, &msg).unwrap(), p1);
        // A retransmission under a new packet number carries a new mac but the same keys.
        assert_eq!(t.receive(&again, &i.message(&again)).unwrap(), p1);
    }
}

#[test]
fn handshake_messages_are_bound_to_their_header_and_length() {
    for mode in EncryptionMode::ALL {
        let i = Handshake::new(Role::Initiator, mode, &SECRET, &RANDOM_I);
        let t = Handshake::new(Role::Target, mode, &SECRET, &RANDOM_T);
        let h1 = hs_header(Role::Initiator);
        let msg = i.message(&h1);
        for b in 0..msg.len() {
            let mut m = msg.clone();
            m[b] ^= 0x04;
            assert_eq!(t.receive(&h1, &m), Err(CryptoError::BadMac), "byte {b}");
        }
        for b in (0..h1.len()).filter(|b| *b != 1) {
            let mut h = h1.clone();
            h[b] ^= 0x04;
            assert_eq!(
                t.receive(&h, &msg),
                Err(CryptoError::BadMac),
                "header byte {b}"
            );
        }
        // Reflection: our own message (kind = our role) is refused before its mac is even checked.
        assert_eq!(i.receive(&h1, &msg), Err(CryptoError::Malformed));
        assert_eq!(
            t.receive(&h1, &msg[..HANDSHAKE_MESSAGE_LEN - 1]),
            Err(CryptoError::Truncated)
        );
        let mut long = msg.clone();
        long.push(0);
        assert_eq!(t.receive(&h1, &long), Err(CryptoError::Malformed));
        assert_eq!(t.receive(&h1[..17], &msg), Err(CryptoError::Malformed));
    }
}

#[test]
fn low_order_ephemeral_key_is_refused_in_mode_3() {
    let t = Handshake::new(
        Role::Target,
        EncryptionMode::ChaCha20Poly1305,
        &SECRET,
        &RANDOM_T,
    );
    let h1 = hs_header(Role::Initiator);
    // u = 0 and u = 1 are points of small order: X25519 with them is all zeros whatever our scalar.
    for point in [[0u8; 32], {
        let mut one = [0u8; 32];
        one[0] = 1;
        one
    }] {
        // A peer that knows the secret (so the mac is right) but sends a low-order key.
        let mut msg = vec![EncryptionMode::ChaCha20Poly1305 as u8];
        msg.extend_from_slice(&point);
        msg.extend_from_slice(&[7u8; 16]);
        let mac = hmac_sha256(&SECRET, &[&h1, &msg]);
        msg.extend_from_slice(&mac);
        assert_eq!(t.receive(&h1, &msg), Err(CryptoError::Malformed));
    }
}

#[test]
fn debug_output_redacts_secrets() {
    let secret = [0xAB; 32];
    let random = [0xCD; 48];
    let hs = Handshake::new(
        Role::Initiator,
        EncryptionMode::ChaCha20Poly1305,
        &secret,
        &random,
    );
    let (p, _) = session(
        EncryptionMode::ChaCha20Poly1305,
        &secret,
        &random,
        &RANDOM_T,
    );
    for text in [format!("{hs:?}"), format!("{p:?}"), format!("{p:#?}")] {
        assert!(text.contains("redacted"), "{text}");
        assert!(!text.contains("171") && !text.contains("205"), "{text}");
        assert!(!text.to_lowercase().contains("abab"), "{text}");
    }
}

#[test]
fn mode_0_is_identity_but_still_replay_checked() {
    let (pi, mut pt) = pair(EncryptionMode::None);
    let wire = sealed(&pi, Role::Initiator, 7, b"clear frames");
    assert_eq!(wire, b"clear frames");
    assert_eq!(
        open(&mut pt, Role::Initiator, 7, &wire).as_deref(),
        Ok(&b"clear frames"[..])
    );
    assert_eq!(
        open(&mut pt, Role::Initiator, 7, &wire),
        Err(CryptoError::Replay)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Hostile bytes never panic, never authenticate in modes 1–3, and never move the window.
    #[test]
    fn open_never_panics_on_random_bytes(
        mode in 0u8..4,
        head in proptest::collection::vec(any::<u8>(), 0..40),
        pn in any::<u64>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..1500),
    ) {
        let mode = EncryptionMode::from_number(mode).unwrap();
        let (_, mut pt) = pair(mode);
        let mut out = Vec::new();
        let r = pt.open(&head, pn, &bytes, &mut out);
        if mode == EncryptionMode::None {
            prop_assert!(r.is_ok());
        } else {
            prop_assert!(r.is_err());
            prop_assert!(out.is_empty());
            prop_assert_eq!(pt.replay_window().highest(), None);
        }
    }

    #[test]
    fn receive_never_panics_on_random_bytes(
        mode in 0u8..4,
        head in proptest::collection::vec(any::<u8>(), 0..40),
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mode = EncryptionMode::from_number(mode).unwrap();
        let t = Handshake::new(Role::Target, mode, &SECRET, &RANDOM_T);
        prop_assert!(t.receive(&head, &bytes).is_err());
    }
}
