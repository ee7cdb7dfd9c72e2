//! Packet protection and the peer handshake on attacker-chosen bytes, in the mode the first byte picks:
//! `Protection::open` never panics, never authenticates bytes its peer did not seal (modes 1–3) and
//! leaves nothing behind when it refuses; `Handshake::receive` accepts nothing but the genuine message
//! (every mode, 0 included: the handshake is always authenticated).
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2p_proto::crypto::{Handshake, Protection};
use p2p_proto::wire::{Kind, SessionHeader, SESSION_HEADER_LEN};
use p2p_proto::{EncryptionMode, Role};

const MODES: [EncryptionMode; 4] = [
    EncryptionMode::None,
    EncryptionMode::Rc4,
    EncryptionMode::Xxtea,
    EncryptionMode::ChaCha20Poly1305,
];

fn hs_header(role: Role) -> Vec<u8> {
    let mut h = Vec::new();
    SessionHeader {
        kind: Kind::Handshake(role),
        session_id: 0x0bad_cafe_f00d_0001,
        packet_number: 0,
    }
    .encode(&mut h);
    h
}

/// The target's protection after a genuine handshake (fixed secret and randomness).
fn target_protection(mode: EncryptionMode) -> Protection {
    let i = Handshake::new(Role::Initiator, mode, &[0x5c; 32], &[0x11; 48]);
    let t = Handshake::new(Role::Target, mode, &[0x5c; 32], &[0x22; 48]);
    let h1 = hs_header(Role::Initiator);
    t.receive(&h1, &i.message(&h1))
        .expect("the genuine HS1 is accepted")
}

fuzz_target!(|d: &[u8]| {
    let Some((&pick, d)) = d.split_first() else {
        return;
    };
    let mode = MODES[usize::from(pick % 4)];
    let split = d.len().min(SESSION_HEADER_LEN);
    let (head, body) = d.split_at(split);
    if pick & 0x80 != 0 {
        let t = Handshake::new(Role::Target, mode, &[0x5c; 32], &[0x22; 48]);
        let genuine = Handshake::new(Role::Initiator, mode, &[0x5c; 32], &[0x11; 48]);
        let h1 = hs_header(Role::Initiator);
        let is_genuine = head == h1 && body == genuine.message(&h1);
        assert_eq!(t.receive(head, body).is_ok(), is_genuine, "{mode}");
        return;
    }
    let mut rx = target_protection(mode);
    let pn = SessionHeader::decode(d).map_or(0, |(h, _)| h.packet_number);
    let mut out = vec![0xEE; 5];
    match rx.open(head, pn, body, &mut out) {
        Ok(()) => assert_eq!(
            mode,
            EncryptionMode::None,
            "{mode}: bytes nobody sealed opened"
        ),
        Err(_) => assert!(out.is_empty(), "a refused packet left bytes behind"),
    }
});
