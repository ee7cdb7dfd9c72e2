//! The end-to-end peer handshake: Noise `XXpsk2_25519_ChaChaPoly_SHA256` between the two peers' static
//! keys, so that the session keys exist only on the two devices (docs/E2E-TRUST.md).
//!
//! ```text
//! msg1 initiator -> target: e, offer_i, padding             (112 bytes)
//! msg2 target -> initiator: e, ee, s, es, psk, offer_t      (112 bytes)
//! msg3 initiator -> target: s, se                           (64 bytes)
//! ```
//!
//! XX rather than IK: each side learns the key the other actually holds, so a mismatch with the pin is
//! reported with both fingerprints instead of as an undecryptable message. The psk is the server's
//! session secret: it adds nothing against the server, but keeps the old property that only the two
//! parties of a grant can complete a handshake, and as it is in msg2 a third party who saw msg1
//! cannot answer with a key of its own: a key mismatch always involves the peer or the server. The prologue binds the messages to the session (the
//! caller's context, e.g. the session id) so they cannot be replayed into another one.
//!
//! msg1 is padded to msg2's length so that a forged msg1 from a spoofed address gets an answer no
//! larger than itself: the target's socket must not amplify.
//!
//! Each side's AEAD offer travels in its payload (the 16-byte block `negotiation` writes into a mode-3
//! nonce). The payloads are under the handshake hash, so a changed offer fails the next message.
//!
//! Sans-IO: the ephemeral key comes from the caller's random bytes through [`CallerRandom`]; snow never
//! reaches the OS generator.

use std::fmt;

use snow::params::NoiseParams;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::HandshakeState;
use zeroize::Zeroizing;

use super::keys::derive_from_noise;
use super::negotiation::{Aead, AeadOffer};
use super::static_keys::{Fingerprint, PublicStaticKey, StaticKey};
use super::{Protection, SECRET_LEN};
use crate::wire::Role;
use crate::EncryptionMode;

const NOISE_PATTERN: &str = "Noise_XXpsk2_25519_ChaChaPoly_SHA256";
const PROLOGUE_LABEL: &[u8] = b"remoteitp2p e2e v1";
/// The psk goes in at the end of msg2 (`psk2`): msg2 and msg3 need the session secret.
const PSK_POSITION: u8 = 2;
/// Random bytes a side needs: its ephemeral X25519 secret.
pub const PEER_HANDSHAKE_RANDOM_LEN: usize = 32;
/// The offer block in msg1 and msg2 payloads.
const OFFER_LEN: usize = 16;
/// msg1's payload: the offer and zeros, making msg1 (32 + payload + 16) as long as msg2.
const MSG1_PAYLOAD_LEN: usize = 64;
/// Longest handshake message (msg2: 32 + 48 + 16 + 16).
const MAX_MESSAGE_LEN: usize = 112;

/// Why an end-to-end handshake failed. [`KeyMismatch`](Self::KeyMismatch) and
/// [`NotAuthorized`](Self::NotAuthorized) end the handshake; the others concern one message: the
/// caller drops it and the handshake can go on with the genuine one.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PeerHandshakeError {
    /// The peer holds a different static key than the one we expected: a rotated key, or a server or
    /// network in the middle. Fatal for this session.
    #[error("the peer's key is not the expected one: expected {expected}, the peer presented {presented}")]
    KeyMismatch {
        expected: Fingerprint,
        presented: Fingerprint,
    },
    /// The peer's key is not in our list of authorized keys. Fatal for this session.
    #[error("the peer's key {presented} is not one of the {authorized} authorized keys")]
    NotAuthorized {
        presented: Fingerprint,
        authorized: usize,
    },
    /// Not authentic, not for this session, malformed, or a replay.
    #[error("handshake message refused: {0}")]
    Refused(&'static str),
    #[error("peer accepts none of the AEADs we accept")]
    NoCommonAead,
}

/// What the caller does after [`PeerHandshake::receive`].
pub enum PeerStep {
    /// Send this message to the peer; the handshake goes on.
    Send(Vec<u8>),
    /// The handshake is complete; send `send` (the initiator's msg3) if there is one.
    Established {
        send: Option<Vec<u8>>,
        session: Box<PeerSession>,
    },
}

/// A finished handshake: the packet protection and who the peer is.
pub struct PeerSession {
    pub protection: Protection,
    /// The static key the peer proved it holds: the initiator pins it on first use.
    pub peer_key: PublicStaticKey,
    pub aead: Aead,
}

/// Which static keys the peer may present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpectedPeer {
    /// Any key: trust on first use (the caller pins [`PeerSession::peer_key`]).
    Any,
    /// This key: the initiator's pin, or the key the server vouched for.
    Key(Fingerprint),
    /// One of these: a target's list of authorized initiators.
    OneOf(Vec<Fingerprint>),
}

/// The session context the driver binds the handshake to: the session id and the mode. Public so
/// that anyone holding a grant (the hostile-server tests) speaks the same handshake.
pub fn session_context(session_id: u64, mode: EncryptionMode) -> [u8; 9] {
    let mut context = [0u8; 9];
    context[..8].copy_from_slice(&session_id.to_be_bytes());
    context[8] = mode as u8;
    context
}

/// Everything one side brings to the handshake.
pub struct PeerHandshakeParams<'a> {
    pub role: Role,
    pub local: &'a StaticKey,
    pub expected_peer: ExpectedPeer,
    pub session_secret: &'a [u8; SECRET_LEN],
    /// Bytes both sides know that identify this session (its id); bound in through the prologue.
    pub session_context: &'a [u8],
    pub offer: AeadOffer,
    pub random: &'a [u8; PEER_HANDSHAKE_RANDOM_LEN],
}

/// One side's handshake state machine.
pub struct PeerHandshake {
    role: Role,
    inputs: NoiseInputs,
    /// What the state went through so far, to rebuild it (see [`PeerHandshake::replay`]).
    transcript: Vec<Turn>,
    /// `None` once finished or failed for good.
    state: Option<HandshakeState>,
    expected_peer: ExpectedPeer,
    offer: AeadOffer,
    peer_offer: Option<AeadOffer>,
    /// The last message we received and our answer, so a retransmitted copy gets the same answer
    /// without touching the state (a lost answer must not end the handshake).
    last_exchange: Option<(Vec<u8>, Vec<u8>)>,
    /// Ended without a session (a refused key, no AEAD in common): no message can revive it.
    failed: bool,
}

/// What builds a fresh snow state; with the transcript it reproduces the current one exactly (our
/// ephemeral key comes from `random`, so our messages come out byte for byte the same).
struct NoiseInputs {
    role: Role,
    secret: Zeroizing<[u8; 32]>,
    prologue: Vec<u8>,
    psk: Zeroizing<[u8; SECRET_LEN]>,
    random: Zeroizing<[u8; PEER_HANDSHAKE_RANDOM_LEN]>,
}

enum Turn {
    /// We wrote a message with this payload.
    Wrote(Vec<u8>),
    /// We read this message.
    Read(Vec<u8>),
}

impl NoiseInputs {
    fn build(&self) -> HandshakeState {
        let noise: NoiseParams = NOISE_PATTERN.parse().expect("a pattern snow supports");
        let resolver = Box::new(CallerRandomResolver {
            random: self.random.clone(),
        });
        let builder = snow::Builder::with_resolver(noise, resolver)
            .local_private_key(&self.secret[..])
            .and_then(|b| b.prologue(&self.prologue))
            .and_then(|b| b.psk(PSK_POSITION, &self.psk))
            .expect("each is set once with valid lengths");
        match self.role {
            Role::Initiator => builder.build_initiator(),
            Role::Target => builder.build_responder(),
        }
        .expect("the default resolver has 25519, ChaChaPoly and SHA256")
    }
}

impl PeerHandshake {
    /// The initiator's state and its first message.
    pub fn initiator(params: PeerHandshakeParams<'_>) -> (PeerHandshake, Vec<u8>) {
        assert_eq!(params.role, Role::Initiator);
        let mut hs = PeerHandshake::new(params);
        let mut payload = [0u8; MSG1_PAYLOAD_LEN];
        payload[..OFFER_LEN].copy_from_slice(&offer_block(hs.offer));
        let msg1 = hs.write(&payload);
        (hs, msg1)
    }

    /// The target's state, waiting for msg1.
    pub fn target(params: PeerHandshakeParams<'_>) -> PeerHandshake {
        assert_eq!(params.role, Role::Target);
        PeerHandshake::new(params)
    }

    fn new(params: PeerHandshakeParams<'_>) -> PeerHandshake {
        let mut prologue = PROLOGUE_LABEL.to_vec();
        prologue.extend_from_slice(params.session_context);
        let inputs = NoiseInputs {
            role: params.role,
            secret: params.local.secret_bytes(),
            prologue,
            psk: Zeroizing::new(*params.session_secret),
            random: Zeroizing::new(*params.random),
        };
        PeerHandshake {
            role: params.role,
            state: Some(inputs.build()),
            inputs,
            transcript: Vec::new(),
            expected_peer: params.expected_peer,
            offer: params.offer,
            peer_offer: None,
            last_exchange: None,
            failed: false,
        }
    }

    /// A fresh snow state brought to where ours is. snow restores only part of its state when a read
    /// fails (not its cipher key and nonce), so a message is tried on this copy and the copy kept
    /// only if the message is accepted: a forged message cannot spoil the genuine one.
    fn replay(&self) -> HandshakeState {
        let mut state = self.inputs.build();
        let mut scratch = [0u8; MAX_MESSAGE_LEN];
        for turn in &self.transcript {
            match turn {
                Turn::Wrote(payload) => state.write_message(payload, &mut scratch),
                Turn::Read(message) => state.read_message(message, &mut scratch),
            }
            .expect("the same inputs and messages give the same state");
        }
        state
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The handshake ended for good without a session: the error that said so was fatal (a refused
    /// key or no AEAD in common), unlike a refused message, after which the genuine one still works.
    pub fn has_failed(&self) -> bool {
        self.failed
    }

    /// Feeds one handshake message from the peer. A refused message leaves the state as it was, so
    /// the genuine message still completes the handshake.
    pub fn receive(&mut self, message: &[u8]) -> Result<PeerStep, PeerHandshakeError> {
        if let Some((received, answer)) = &self.last_exchange {
            if received == message {
                return Ok(PeerStep::Send(answer.clone()));
            }
        }
        let committed = self.state.as_ref().ok_or(PeerHandshakeError::Refused(
            "the handshake is already complete",
        ))?;
        if committed.is_my_turn() {
            return Err(PeerHandshakeError::Refused("not expecting a message now"));
        }
        let mut trial = self.replay();
        let mut payload = [0u8; MAX_MESSAGE_LEN];
        let len = trial
            .read_message(message, &mut payload)
            .map_err(|_| PeerHandshakeError::Refused("not authentic or not for this session"))?;
        let finished = trial.is_handshake_finished();
        // Checked before the state moves on: msg1 is not authenticated, so a forged one must leave
        // the handshake as it was.
        let peer_offer = match (self.role, finished) {
            (Role::Target, false) if len != MSG1_PAYLOAD_LEN => {
                return Err(PeerHandshakeError::Refused("malformed first message"))
            }
            (_, false) => Some(read_offer(&payload[..OFFER_LEN.min(len)])?),
            (_, true) => None,
        };
        let presented = trial.get_remote_static().map(public_key);
        self.state = Some(trial);
        self.transcript.push(Turn::Read(message.to_vec()));
        if peer_offer.is_some() {
            self.peer_offer = peer_offer;
        }
        // Past msg1 every message carries the psk, so a wrong key comes from the peer or the server
        // (both hold the session secret), never from a third party: the handshake ends here.
        if let Some(presented) = presented {
            if let Err(mismatch) = check_peer_key(&self.expected_peer, presented) {
                self.state = None;
                self.failed = true;
                return Err(mismatch);
            }
        }
        match (self.role, finished) {
            // msg1 at the target: answer with msg2.
            (Role::Target, false) => {
                let msg2 = self.write(&offer_block(self.offer));
                self.last_exchange = Some((message.to_vec(), msg2.clone()));
                Ok(PeerStep::Send(msg2))
            }
            // msg2 at the initiator: answer with msg3 and finish.
            (Role::Initiator, false) => {
                let msg3 = self.write(&[]);
                self.last_exchange = Some((message.to_vec(), msg3.clone()));
                Ok(PeerStep::Established {
                    send: Some(msg3),
                    session: self.finish()?,
                })
            }
            // msg3 at the target.
            (Role::Target, true) => {
                self.last_exchange = None;
                Ok(PeerStep::Established {
                    send: None,
                    session: self.finish()?,
                })
            }
            (Role::Initiator, true) => unreachable!("the initiator finishes by writing msg3"),
        }
    }

    fn write(&mut self, payload: &[u8]) -> Vec<u8> {
        let state = self.state.as_mut().expect("written before finishing");
        let mut out = vec![0u8; MAX_MESSAGE_LEN];
        let len = state
            .write_message(payload, &mut out)
            .expect("our own message fits and our random bytes are used once");
        out.truncate(len);
        self.transcript.push(Turn::Wrote(payload.to_vec()));
        out
    }

    fn finish(&mut self) -> Result<Box<PeerSession>, PeerHandshakeError> {
        let mut state = self.state.take().expect("finished once");
        let peer_offer = self.peer_offer.expect("read before finishing");
        let Some(aead) = self.offer.agree(peer_offer) else {
            self.failed = true;
            return Err(PeerHandshakeError::NoCommonAead);
        };
        let peer_key = public_key(
            state
                .get_remote_static()
                .expect("XX always transmits the peer's static key"),
        );
        let (i2t, t2i) = state.dangerously_get_raw_split();
        let (i2t, t2i) = (Zeroizing::new(i2t), Zeroizing::new(t2i));
        let keys = derive_from_noise(
            &i2t,
            &t2i,
            state.get_handshake_hash(),
            aead.name().as_bytes(),
        );
        let (seal, open) = keys.for_role(self.role);
        Ok(Box::new(PeerSession {
            protection: Protection::new(
                EncryptionMode::ChaCha20Poly1305,
                aead,
                seal,
                open,
                self.offer.rekeys_with(peer_offer),
            ),
            peer_key,
            aead,
        }))
    }
}

impl fmt::Debug for PeerHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerHandshake")
            .field("role", &self.role)
            .field("expected_peer", &self.expected_peer)
            .field("finished", &self.state.is_none())
            .finish()
    }
}

fn public_key(bytes: &[u8]) -> PublicStaticKey {
    PublicStaticKey(bytes.try_into().expect("X25519 keys are 32 bytes"))
}

fn check_peer_key(
    expected: &ExpectedPeer,
    presented: PublicStaticKey,
) -> Result<(), PeerHandshakeError> {
    match expected {
        ExpectedPeer::Key(expected) if !expected.matches(&presented) => {
            Err(PeerHandshakeError::KeyMismatch {
                expected: *expected,
                presented: presented.fingerprint(),
            })
        }
        ExpectedPeer::OneOf(keys) if !keys.iter().any(|k| k.matches(&presented)) => {
            Err(PeerHandshakeError::NotAuthorized {
                presented: presented.fingerprint(),
                authorized: keys.len(),
            })
        }
        _ => Ok(()),
    }
}

fn offer_block(offer: AeadOffer) -> [u8; OFFER_LEN] {
    let mut block = [0u8; OFFER_LEN];
    offer.write_into(&mut block);
    block
}

fn read_offer(payload: &[u8]) -> Result<AeadOffer, PeerHandshakeError> {
    let block: &[u8; OFFER_LEN] = payload
        .try_into()
        .map_err(|_| PeerHandshakeError::Refused("malformed offer"))?;
    AeadOffer::read_from(block).ok_or(PeerHandshakeError::NoCommonAead)
}

/// snow's default primitives, with the randomness the caller passed in.
struct CallerRandomResolver {
    random: Zeroizing<[u8; PEER_HANDSHAKE_RANDOM_LEN]>,
}

impl CryptoResolver for CallerRandomResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(CallerRandom {
            bytes: Some(self.random.clone()),
        }))
    }
    fn resolve_dh(&self, choice: &snow::params::DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &snow::params::HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &snow::params::CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

/// Yields the caller's 32 bytes once (for the one ephemeral key), then fails: a second draw would
/// be a bug, never a reason to reuse the bytes.
struct CallerRandom {
    bytes: Option<Zeroizing<[u8; PEER_HANDSHAKE_RANDOM_LEN]>>,
}

impl Random for CallerRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        match self.bytes.take() {
            Some(bytes) if dest.len() == bytes.len() => {
                dest.copy_from_slice(&bytes[..]);
                Ok(())
            }
            _ => Err(snow::Error::Rng),
        }
    }
}
