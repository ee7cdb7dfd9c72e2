//! The end-to-end handshake between two static keys, including a server that swaps keys.

use super::tests::{data_header, session};
use super::*;
use crate::wire::Role;

const SECRET: [u8; SECRET_LEN] = [7u8; SECRET_LEN];
const SESSION: &[u8] = b"session 0123456789";

fn device() -> StaticKey {
    StaticKey::from_secret_bytes([0xD0; 32])
}
fn laptop() -> StaticKey {
    StaticKey::from_secret_bytes([0x1A; 32])
}
/// The key a hostile server introduces in the device's place.
fn server_key() -> StaticKey {
    StaticKey::from_secret_bytes([0x5E; 32])
}

fn params<'a>(
    role: Role,
    local: &'a StaticKey,
    expected_peer: Option<Fingerprint>,
    random: &'a [u8; PEER_HANDSHAKE_RANDOM_LEN],
) -> PeerHandshakeParams<'a> {
    PeerHandshakeParams {
        role,
        local,
        expected_peer: expected_peer.map_or(ExpectedPeer::Any, ExpectedPeer::Key),
        session_secret: &SECRET,
        session_context: SESSION,
        offer: AeadOffer::this_machine(),
        random,
    }
}

fn send(step: PeerStep) -> Vec<u8> {
    match step {
        PeerStep::Send(m) => m,
        PeerStep::Established { .. } => panic!("expected a message to send"),
    }
}

fn established(step: PeerStep) -> (Option<Vec<u8>>, PeerSession) {
    match step {
        PeerStep::Established { send, session } => (send, *session),
        PeerStep::Send(_) => panic!("expected the handshake to finish"),
    }
}

/// A full handshake; returns (initiator's session, target's session).
fn handshake(
    initiator: &StaticKey,
    target: &StaticKey,
    pin: Option<Fingerprint>,
    random_i: u8,
    random_t: u8,
) -> Result<(PeerSession, PeerSession), PeerHandshakeError> {
    let (ri, rt) = ([random_i; 32], [random_t; 32]);
    let (mut i, msg1) = PeerHandshake::initiator(params(Role::Initiator, initiator, pin, &ri));
    let mut t = PeerHandshake::target(params(Role::Target, target, None, &rt));
    let msg2 = send(t.receive(&msg1)?);
    let (msg3, session_i) = established(i.receive(&msg2)?);
    let (none, session_t) = established(t.receive(&msg3.expect("the initiator sends msg3"))?);
    assert!(none.is_none());
    Ok((session_i, session_t))
}

/// Both sides started (random bytes 1 and 2) and msg1 answered: (initiator, target, msg1, msg2).
fn first_two(
    initiator: &StaticKey,
    target: &StaticKey,
    target_expects: Option<Fingerprint>,
) -> (PeerHandshake, PeerHandshake, Vec<u8>, Vec<u8>) {
    let (ri, rt) = ([1u8; 32], [2u8; 32]);
    let (i, msg1) = PeerHandshake::initiator(params(Role::Initiator, initiator, None, &ri));
    let mut t = PeerHandshake::target(params(Role::Target, target, target_expects, &rt));
    let msg2 = send(t.receive(&msg1).unwrap());
    (i, t, msg1, msg2)
}

fn seal(p: &Protection, from: Role, pn: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = payload.to_vec();
    p.seal(&data_header(from, pn), pn, &mut v);
    v
}

fn open(p: &mut Protection, from: Role, pn: u64, wire: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut out = Vec::new();
    p.open(&data_header(from, pn), pn, wire, &mut out)?;
    Ok(out)
}

#[test]
fn both_sides_derive_the_same_keys_and_learn_each_others_key() {
    let pin = Some(device().public().fingerprint());
    let (mut si, mut st) = handshake(&laptop(), &device(), pin, 1, 2).unwrap();
    assert_eq!(si.peer_key, device().public());
    assert_eq!(st.peer_key, laptop().public());
    assert_eq!(si.aead, st.aead);
    let wire = seal(&si.protection, Role::Initiator, 0, b"ssh bytes");
    assert_ne!(&wire[..9], b"ssh bytes");
    assert_eq!(
        open(&mut st.protection, Role::Initiator, 0, &wire).unwrap(),
        b"ssh bytes"
    );
    let back = seal(&st.protection, Role::Target, 0, b"banner");
    assert_eq!(
        open(&mut si.protection, Role::Target, 0, &back).unwrap(),
        b"banner"
    );
}

#[test]
fn message_sizes_are_as_documented_and_the_target_does_not_amplify() {
    let (mut i, _, msg1, msg2) = first_two(&laptop(), &device(), None);
    let (msg3, _) = established(i.receive(&msg2).unwrap());
    assert_eq!(
        (msg1.len(), msg2.len(), msg3.unwrap().len()),
        (112, 112, 64)
    );
}

#[test]
fn keys_are_fresh_per_session_and_bound_to_the_random_bytes() {
    let (si, _) = handshake(&laptop(), &device(), None, 1, 2).unwrap();
    // Same inputs, same keys: the state machine is deterministic.
    let (same, _) = handshake(&laptop(), &device(), None, 1, 2).unwrap();
    assert_eq!(si.protection, same.protection);
    // Other random bytes on either side: other keys, and that session's target opens nothing of ours.
    let (other_i, _) = handshake(&laptop(), &device(), None, 1, 3).unwrap();
    assert_ne!(si.protection, other_i.protection);
    let (_, mut other_t) = handshake(&laptop(), &device(), None, 3, 2).unwrap();
    let wire = seal(&si.protection, Role::Initiator, 0, b"x");
    assert!(open(&mut other_t.protection, Role::Initiator, 0, &wire).is_err());
}

/// The hostile-server case: the server (which knows the session secret) answers in the device's
/// place with its own key. The initiator, holding the device's pin, refuses and names both keys.
#[test]
fn a_swapped_device_key_is_refused_naming_both_fingerprints() {
    let pinned = device().public().fingerprint();
    let presented = server_key().public().fingerprint();
    let err = handshake(&laptop(), &server_key(), Some(pinned), 1, 2)
        .err()
        .expect("the swapped key must be refused");
    assert_eq!(
        err,
        PeerHandshakeError::KeyMismatch {
            expected: pinned,
            presented
        }
    );
    let text = err.to_string();
    assert!(text.contains(&pinned.to_string()) && text.contains(&presented.to_string()));
}

/// The target refuses an initiator whose key is not the one it was told to expect, after msg3.
#[test]
fn the_target_refuses_an_unexpected_initiator_key() {
    let expected = laptop().public().fingerprint();
    let (mut i, mut t, _, msg2) = first_two(&server_key(), &device(), Some(expected));
    let (msg3, _) = established(i.receive(&msg2).unwrap());
    assert_eq!(
        t.receive(&msg3.unwrap()).err(),
        Some(PeerHandshakeError::KeyMismatch {
            expected,
            presented: server_key().public().fingerprint()
        })
    );
}

/// Every single-byte change of msg2 and msg3 is refused, leaves the state untouched, and the genuine
/// message then completes the handshake.
#[test]
fn modified_messages_are_refused_and_the_genuine_one_still_completes() {
    let (mut i, mut t, _, msg2) = first_two(&laptop(), &device(), None);
    for k in 0..msg2.len() {
        let mut bad = msg2.clone();
        bad[k] ^= 0x01;
        assert!(
            matches!(i.receive(&bad), Err(PeerHandshakeError::Refused(_))),
            "msg2 byte {k}"
        );
    }
    assert!(i.receive(&msg2[..msg2.len() - 1]).is_err());
    let (msg3, si) = established(i.receive(&msg2).unwrap());
    let msg3 = msg3.unwrap();
    for k in 0..msg3.len() {
        let mut bad = msg3.clone();
        bad[k] ^= 0x80;
        assert!(t.receive(&bad).is_err(), "msg3 byte {k}");
    }
    let (_, st) = established(t.receive(&msg3).unwrap());
    assert_eq!(st.peer_key, laptop().public());
    assert_eq!(si.aead, st.aead);
}

/// A changed msg1 (its offer, its ephemeral key) makes the target answer a different transcript, which
/// the initiator refuses.
#[test]
fn a_modified_first_message_fails_at_the_initiator() {
    let (ri, rt) = ([1u8; 32], [2u8; 32]);
    let (l, d) = (laptop(), device());
    for k in [0, 31, 32, 47, 63] {
        let (mut i, mut msg1) = PeerHandshake::initiator(params(Role::Initiator, &l, None, &ri));
        msg1[k] ^= 0x01;
        let mut t = PeerHandshake::target(params(Role::Target, &d, None, &rt));
        if let Ok(step) = t.receive(&msg1) {
            assert!(i.receive(&send(step)).is_err(), "msg1 byte {k}");
        }
    }
}

/// Messages of another session (other random bytes, another session id, another secret) are refused.
#[test]
fn messages_replayed_from_another_session_are_refused() {
    let (l, d) = (laptop(), device());
    let (r1, r2, r3) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    // A recorded session.
    let (mut old_i, old_msg1) = PeerHandshake::initiator(params(Role::Initiator, &l, None, &r1));
    let mut old_t = PeerHandshake::target(params(Role::Target, &d, None, &r2));
    let old_msg2 = send(old_t.receive(&old_msg1).unwrap());
    let (old_msg3, _) = established(old_i.receive(&old_msg2).unwrap());
    let old_msg3 = old_msg3.unwrap();

    // Its msg2 replayed to a new initiator, its msg3 to a new target that answered a new msg1.
    let (mut new_i, new_msg1) = PeerHandshake::initiator(params(Role::Initiator, &l, None, &r3));
    assert!(new_i.receive(&old_msg2).is_err());
    let mut new_t = PeerHandshake::target(params(Role::Target, &d, None, &r3));
    send(new_t.receive(&new_msg1).unwrap());
    assert!(new_t.receive(&old_msg3).is_err());

    // The whole recorded exchange replayed into another session id or under another secret.
    for (context, secret) in [(&b"session 9"[..], SECRET), (SESSION, [8u8; SECRET_LEN])] {
        let mut t = PeerHandshake::target(PeerHandshakeParams {
            session_context: context,
            session_secret: &secret,
            ..params(Role::Target, &d, None, &r2)
        });
        let result = t.receive(&old_msg1).and_then(|_| t.receive(&old_msg3));
        assert!(result.is_err());
    }
}

/// A retransmitted msg1 (our msg2 was lost) gets the same msg2 again; once done, copies are refused.
#[test]
fn a_retransmitted_message_gets_the_same_answer() {
    let (mut i, mut t, msg1, msg2) = first_two(&laptop(), &device(), None);
    assert_eq!(send(t.receive(&msg1).unwrap()), msg2);
    let (msg3, _) = established(i.receive(&msg2).unwrap());
    let msg3 = msg3.unwrap();
    // Our msg3 was lost and the target sent msg2 again: the same msg3 goes out.
    assert_eq!(send(i.receive(&msg2).unwrap()), msg3);
    established(t.receive(&msg3).unwrap());
    assert!(t.receive(&msg3).is_err());
    assert!(t.receive(&msg1).is_err());
}

#[test]
fn offers_with_no_aead_in_common_are_refused() {
    let (ri, rt) = ([1u8; 32], [2u8; 32]);
    let (l, d) = (laptop(), device());
    let (mut i, msg1) = PeerHandshake::initiator(PeerHandshakeParams {
        offer: AeadOffer::only(Aead::Aes256Gcm),
        ..params(Role::Initiator, &l, None, &ri)
    });
    let mut t = PeerHandshake::target(PeerHandshakeParams {
        offer: AeadOffer::only(Aead::ChaCha20Poly1305),
        ..params(Role::Target, &d, None, &rt)
    });
    let msg2 = send(t.receive(&msg1).unwrap());
    assert_eq!(
        i.receive(&msg2).err(),
        Some(PeerHandshakeError::NoCommonAead)
    );
}

/// A third party that saw msg1 (it travels in clear) but lacks the session secret cannot answer with
/// a key of its own: its msg2 is refused as unauthentic, not reported as a changed key, and the
/// genuine msg2 still completes the handshake.
#[test]
fn a_third_party_cannot_answer_with_its_own_key() {
    let (mut i, _, msg1, msg2) = first_two(&laptop(), &device(), None);
    let stranger_random = [9u8; 32];
    let stranger_key = server_key();
    let mut stranger = PeerHandshake::target(PeerHandshakeParams {
        session_secret: &[0u8; SECRET_LEN],
        ..params(Role::Target, &stranger_key, None, &stranger_random)
    });
    let forged = send(stranger.receive(&msg1).unwrap());
    assert!(matches!(
        i.receive(&forged),
        Err(PeerHandshakeError::Refused(_))
    ));
    established(i.receive(&msg2).unwrap());
}

/// msg1 is not authenticated: a forged one of the wrong length is refused and the genuine one then
/// gets its answer.
#[test]
fn a_malformed_first_message_does_not_spoil_the_target() {
    let (rt, rx) = ([2u8; 32], [4u8; 32]);
    let (l, d) = (laptop(), device());
    let mut t = PeerHandshake::target(params(Role::Target, &d, None, &rt));
    let mut forger = snow::Builder::new("Noise_XXpsk2_25519_ChaChaPoly_SHA256".parse().unwrap())
        .prologue(b"remoteitp2p e2e v1session 0123456789")
        .unwrap()
        .psk(2, &SECRET)
        .unwrap()
        .local_private_key(&[3u8; 32])
        .unwrap()
        .build_initiator()
        .unwrap();
    let mut short = vec![0u8; 200];
    let n = forger.write_message(&[0u8; 16], &mut short).unwrap();
    assert!(matches!(
        t.receive(&short[..n]),
        Err(PeerHandshakeError::Refused(_))
    ));
    let (mut i, msg1) = PeerHandshake::initiator(params(Role::Initiator, &l, None, &rx));
    let msg2 = send(t.receive(&msg1).unwrap());
    established(i.receive(&msg2).unwrap());
}

/// A target with a list of authorized initiators accepts one on the list and refuses another key,
/// naming it.
#[test]
fn a_target_accepts_only_initiators_on_its_list() {
    let authorized = vec![
        device().public().fingerprint(),
        laptop().public().fingerprint(),
    ];
    for (initiator, accepted) in [(laptop(), true), (server_key(), false)] {
        let (ri, rt) = ([1u8; 32], [2u8; 32]);
        let d = device();
        let (mut i, msg1) =
            PeerHandshake::initiator(params(Role::Initiator, &initiator, None, &ri));
        let mut t = PeerHandshake::target(PeerHandshakeParams {
            expected_peer: ExpectedPeer::OneOf(authorized.clone()),
            ..params(Role::Target, &d, None, &rt)
        });
        let msg2 = send(t.receive(&msg1).unwrap());
        let (msg3, _) = established(i.receive(&msg2).unwrap());
        let result = t.receive(&msg3.unwrap());
        if accepted {
            assert_eq!(established(result.unwrap()).1.peer_key, laptop().public());
        } else {
            let presented = server_key().public().fingerprint();
            assert_eq!(
                result.err(),
                Some(PeerHandshakeError::NotAuthorized {
                    presented,
                    authorized: 2
                })
            );
        }
    }
}

/// What the server can do with the session secret alone: run the legacy handshake with it, in either
/// role, and seal packets. None of them opens in an end-to-end session with that same secret.
#[test]
fn packets_keyed_by_the_session_secret_alone_do_not_open_in_an_end_to_end_session() {
    let (_, mut target) = handshake(&laptop(), &device(), None, 1, 2).unwrap();
    let (server_as_initiator, _) = session(
        crate::EncryptionMode::ChaCha20Poly1305,
        &SECRET,
        &[1u8; 48],
        &[2u8; 48],
    );
    let forged = seal(&server_as_initiator, Role::Initiator, 0, b"rm -rf /\n");
    assert!(open(&mut target.protection, Role::Initiator, 0, &forged).is_err());
    assert_eq!(target.protection.replay_window().highest(), None);
}
