//! AEAD negotiation through real handshakes: both sides with AES instructions, one without, a peer
//! from before negotiation (against bytes recorded from that version), offers sharing nothing, and an
//! offer changed on the way.

use super::keys::{derive, KeyInput};
use super::selftest::hex;
use super::tests::{data_header, hs_header, RANDOM_I, RANDOM_T, SECRET};
use super::*;
use crate::wire::Role;
use crate::EncryptionMode;

const MODE: EncryptionMode = EncryptionMode::ChaCha20Poly1305;
const AES_HW: Option<AeadOffer> = Some(AeadOffer::both(Aead::Aes256Gcm));
const NO_AES_HW: Option<AeadOffer> = Some(AeadOffer::both(Aead::ChaCha20Poly1305));
/// A peer from before negotiation: sends no offer, reads none.
const OLD: Option<AeadOffer> = None;

// Recorded from the version before negotiation (session id, secret and randomness as in `tests`):
// its HS1 and HS2, and what its initiator seals as packet 1 ("old peer") in a session between two
// such peers.
const OLD_HS1: [u8; 81] = hex(
    b"037b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13\
11111111111111111111111111111111080490bbf681d75778f5fa4f4caa44cbacee86b424e8ca21038433688f6609bc",
);
const OLD_HS2: [u8; 81] = hex(
    b"030faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f20\
2222222222222222222222222222222292eb93ad97a1a6c87173e5d1b8cc0d7b6d1e8d0fdcebc23a6ae9fed9261069e5",
);
const OLD_PACKET_I1: [u8; 24] = hex(b"e7620e837482d94f635f7437c7ad89466305778acd6d5d6c");
// The same old version as target, receiving the HS1 an offering initiator sends (`AES_HW`, random
// `RANDOM_I`), seals packet 1 as this; and as initiator, receiving the HS2 an offering target sends,
// seals packet 1 as that.
const OLD_TARGET_PACKET_1: [u8; 24] = hex(b"bbf05372c482bc17995789f3ed942f5d39c597974737399b");
const OLD_INITIATOR_PACKET_1: [u8; 24] = hex(b"6239d7f4e3c7f07b2cac843d28a7d6aa17ec9e2c0fd95f49");
const OLD_PLAINTEXT: &[u8] = b"old peer";

fn handshake(role: Role, offer: Option<AeadOffer>, secret: &[u8; 32]) -> Handshake {
    let random = match role {
        Role::Initiator => &RANDOM_I,
        Role::Target => &RANDOM_T,
    };
    Handshake::with_offer(role, MODE, secret, random, offer)
}

/// HS1 and HS2 between an initiator offering `oi` and a target offering `ot`: (initiator's result,
/// target's result).
fn negotiate(
    oi: Option<AeadOffer>,
    ot: Option<AeadOffer>,
) -> (
    Result<Protection, CryptoError>,
    Result<Protection, CryptoError>,
) {
    let i = handshake(Role::Initiator, oi, &SECRET);
    let t = handshake(Role::Target, ot, &SECRET);
    let (h1, h2) = (hs_header(Role::Initiator), hs_header(Role::Target));
    (
        i.receive(&h2, &t.message(&h2)),
        t.receive(&h1, &i.message(&h1)),
    )
}

fn seal(p: &Protection, from: Role, pn: u64, plain: &[u8]) -> Vec<u8> {
    let mut payload = plain.to_vec();
    p.seal(&data_header(from, pn), pn, &mut payload);
    payload
}

fn open(p: &mut Protection, from: Role, pn: u64, wire: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut out = Vec::new();
    p.open(&data_header(from, pn), pn, wire, &mut out)
        .map(|()| out)
}

/// Both directions carry a packet (number 2) between the two.
fn assert_round_trip(pi: &mut Protection, pt: &mut Protection) {
    let to_target = seal(pi, Role::Initiator, 2, b"ping");
    assert_eq!(open(pt, Role::Initiator, 2, &to_target).unwrap(), b"ping");
    let to_initiator = seal(pt, Role::Target, 2, b"pong");
    assert_eq!(open(pi, Role::Target, 2, &to_initiator).unwrap(), b"pong");
}

#[test]
fn both_sides_with_aes_instructions_use_aes_256_gcm() {
    let (pi, pt) = negotiate(AES_HW, AES_HW);
    let (mut pi, mut pt) = (pi.unwrap(), pt.unwrap());
    assert_eq!(pi.aead(), Some(Aead::Aes256Gcm));
    assert_eq!(pt.aead(), Some(Aead::Aes256Gcm));
    assert_round_trip(&mut pi, &mut pt);
    // Same secret and randomness, other AEAD: other bytes on the wire.
    let (chacha, _) = negotiate(NO_AES_HW, AES_HW);
    assert_eq!(
        chacha.as_ref().unwrap().aead(),
        Some(Aead::ChaCha20Poly1305)
    );
    assert_ne!(
        seal(&pi, Role::Initiator, 1, b"ping"),
        seal(&chacha.unwrap(), Role::Initiator, 1, b"ping")
    );
}

#[test]
fn one_side_without_aes_instructions_gives_chacha20_poly1305() {
    for (oi, ot) in [
        (AES_HW, NO_AES_HW),
        (NO_AES_HW, AES_HW),
        (NO_AES_HW, NO_AES_HW),
    ] {
        let (pi, pt) = negotiate(oi, ot);
        let (mut pi, mut pt) = (pi.unwrap(), pt.unwrap());
        assert_eq!(pi.aead(), Some(Aead::ChaCha20Poly1305));
        assert_eq!(pt.aead(), Some(Aead::ChaCha20Poly1305));
        assert_round_trip(&mut pi, &mut pt);
    }
}

#[test]
fn the_default_offer_picks_this_machines_fastest_aead() {
    let i = Handshake::new(Role::Initiator, MODE, &SECRET, &RANDOM_I);
    let t = Handshake::new(Role::Target, MODE, &SECRET, &RANDOM_T);
    let h2 = hs_header(Role::Target);
    let p = i.receive(&h2, &t.message(&h2)).unwrap();
    assert_eq!(p.aead(), Some(Aead::fastest_here()));
    // Outside mode 3 no offer is made and no AEAD is used.
    let rc4 = Handshake::new(Role::Initiator, EncryptionMode::Rc4, &SECRET, &RANDOM_I);
    let rc4_t = Handshake::new(Role::Target, EncryptionMode::Rc4, &SECRET, &RANDOM_T);
    assert_eq!(rc4.receive(&h2, &rc4_t.message(&h2)).unwrap().aead(), None);
}

#[test]
fn without_an_offer_the_handshake_is_byte_for_byte_the_old_one() {
    let (h1, h2) = (hs_header(Role::Initiator), hs_header(Role::Target));
    let i = handshake(Role::Initiator, OLD, &SECRET);
    assert_eq!(i.message(&h1), OLD_HS1);
    assert_eq!(handshake(Role::Target, OLD, &SECRET).message(&h2), OLD_HS2);
    let pi = i.receive(&h2, &OLD_HS2).unwrap();
    assert_eq!(seal(&pi, Role::Initiator, 1, OLD_PLAINTEXT), OLD_PACKET_I1);
}

#[test]
fn an_offering_initiator_and_an_old_target_use_chacha20_poly1305() {
    let i = handshake(Role::Initiator, AES_HW, &SECRET);
    let h2 = hs_header(Role::Target);
    let mut pi = i
        .receive(&h2, &OLD_HS2)
        .expect("the old target's HS2 is accepted");
    assert_eq!(pi.aead(), Some(Aead::ChaCha20Poly1305));
    // What the old target sealed after receiving this initiator's HS1 opens: same keys both sides.
    assert_eq!(
        open(&mut pi, Role::Target, 1, &OLD_TARGET_PACKET_1).unwrap(),
        OLD_PLAINTEXT
    );
    let (_, pt) = negotiate(AES_HW, OLD);
    assert_round_trip(&mut pi, &mut pt.unwrap());
}

#[test]
fn an_old_initiator_and_an_offering_target_use_chacha20_poly1305() {
    let t = handshake(Role::Target, AES_HW, &SECRET);
    let h1 = hs_header(Role::Initiator);
    let mut pt = t
        .receive(&h1, &OLD_HS1)
        .expect("the old initiator's HS1 is accepted");
    assert_eq!(pt.aead(), Some(Aead::ChaCha20Poly1305));
    assert_eq!(
        open(&mut pt, Role::Initiator, 1, &OLD_INITIATOR_PACKET_1).unwrap(),
        OLD_PLAINTEXT
    );
    let (pi, _) = negotiate(OLD, AES_HW);
    assert_round_trip(&mut pi.unwrap(), &mut pt);
}

#[test]
fn offers_with_no_aead_in_common_are_refused() {
    let aes_only = Some(AeadOffer::only(Aead::Aes256Gcm));
    let chacha_only = Some(AeadOffer::only(Aead::ChaCha20Poly1305));
    let (pi, pt) = negotiate(aes_only, chacha_only);
    assert_eq!(pi, Err(CryptoError::NoCommonAead));
    assert_eq!(pt, Err(CryptoError::NoCommonAead));
    // A side forced to AES-256-GCM refuses an old peer, which only knows ChaCha20-Poly1305.
    assert_eq!(negotiate(aes_only, OLD).0, Err(CryptoError::NoCommonAead));
}

/// Where an offer sits in a handshake message: after the mode byte and the ephemeral key.
const OFFER_AT: usize = 1 + 32;

#[test]
fn an_offer_changed_on_the_way_fails_the_mac() {
    let i = handshake(Role::Initiator, AES_HW, &SECRET);
    let t = handshake(Role::Target, AES_HW, &SECRET);
    let h1 = hs_header(Role::Initiator);
    let genuine = i.message(&h1);
    let mut chacha_only = [0u8; 16];
    AeadOffer::only(Aead::ChaCha20Poly1305).write_into(&mut chacha_only);
    let downgrades: [&[u8]; 3] = [
        // Prefers ChaCha20-Poly1305, as a side without AES instructions would.
        &chacha_only[..10],
        // No marker: looks like a peer from before negotiation.
        &[0x11; 10],
        // Only the accepted set changed.
        &[chacha_only[8]],
    ];
    for (n, bytes) in downgrades.iter().enumerate() {
        let mut forged = genuine.clone();
        let at = if bytes.len() == 1 {
            OFFER_AT + 8
        } else {
            OFFER_AT
        };
        forged[at..at + bytes.len()].copy_from_slice(bytes);
        assert_ne!(forged, genuine, "downgrade {n}");
        assert_eq!(
            t.receive(&h1, &forged),
            Err(CryptoError::BadMac),
            "downgrade {n}"
        );
    }
    // Whoever lacks the session secret cannot make a message with the offer it wants either.
    let outsider = handshake(Role::Initiator, NO_AES_HW, &[0x5d; 32]);
    assert_eq!(
        t.receive(&h1, &outsider.message(&h1)),
        Err(CryptoError::BadMac)
    );
    assert_eq!(
        t.receive(&h1, &genuine).unwrap().aead(),
        Some(Aead::Aes256Gcm)
    );
}

#[test]
fn a_wrong_key_fails_authentication_with_either_aead() {
    for aead in Aead::ALL {
        let forced = Some(AeadOffer::only(aead));
        let (pi, _) = negotiate(forced, forced);
        let pi = pi.unwrap();
        // The same handshake under another session secret: other keys.
        let other_i = handshake(Role::Initiator, forced, &[0x5d; 32]);
        let other_t = handshake(Role::Target, forced, &[0x5d; 32]);
        let h1 = hs_header(Role::Initiator);
        let mut wrong_key = other_t.receive(&h1, &other_i.message(&h1)).unwrap();
        assert_eq!(wrong_key.aead(), Some(aead));
        let wire = seal(&pi, Role::Initiator, 1, b"secret");
        assert_eq!(
            open(&mut wrong_key, Role::Initiator, 1, &wire),
            Err(CryptoError::BadMac),
            "{aead}"
        );
    }
}

#[test]
fn the_same_key_under_the_other_aead_does_not_authenticate() {
    let keys = || {
        derive(&KeyInput {
            session_secret: &SECRET,
            dh: &[],
            mode: MODE as u8,
            nonce_i: &[1; 16],
            nonce_t: &[2; 16],
            eph_i: &[3; 32],
            eph_t: &[4; 32],
            aead_label: b"",
        })
    };
    let (seal_keys, _) = keys().for_role(Role::Initiator);
    let (_, open_keys) = keys().for_role(Role::Target);
    let sealer = Protection::new(
        MODE,
        Aead::Aes256Gcm,
        seal_keys,
        keys().initiator_to_target,
        false,
    );
    let mut opener = Protection::new(
        MODE,
        Aead::ChaCha20Poly1305,
        keys().target_to_initiator,
        open_keys,
        false,
    );
    let wire = seal(&sealer, Role::Initiator, 1, b"secret");
    assert_eq!(
        open(&mut opener, Role::Initiator, 1, &wire),
        Err(CryptoError::BadMac)
    );
}
