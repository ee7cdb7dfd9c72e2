//! The peer handshake: each side sends `mode(1) ephemeral_public(32) nonce(16) mac(32)` with
//! `mac = HMAC-SHA256(session_secret, header || mode || ephemeral_public || nonce)`, and both derive
//! the session keys from the two messages (see `keys::derive`).
//!
//! The session secret comes from the server over the Noise control channel, so the mac proves the
//! message comes from the other party of this grant, and the 18-byte header under it binds the message
//! to this session id and to the sender's role (a reflected copy of our own message is refused).
//!
//! Mode 3 mixes X25519 of the ephemeral keys into the keys, so the server (which knows the session
//! secret) cannot read a session by only relaying it, and recorded traffic stays safe if a secret
//! leaks later. Modes 0–2 do not: they exist to interoperate with connectd-style deployments, whose
//! packet keys come from the server-issued secret alone, and for devices too small to want a
//! scalar multiplication per session. Their keys are still fresh per session because both nonces
//! and both ephemeral public keys go into the derivation. The ephemeral key is sent in every mode so
//! the message layout does not depend on the mode.
//!
//! In mode 3 each side's nonce starts with its AEAD offer (see `negotiation`), and both sides pick the
//! AEAD from the two offers. The offers are under the macs and in the key derivation (as part of the
//! nonces), and an AES-256-GCM session adds the AEAD's name to it, so a changed offer fails the mac and
//! two sides that disagree on the AEAD never share a key.

use std::fmt;

use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use super::keys::{derive, hmac_sha256, KeyInput};
use super::negotiation::{Aead, AeadOffer};
use super::{CryptoError, Protection, HANDSHAKE_MESSAGE_LEN, HANDSHAKE_RANDOM_LEN, SECRET_LEN};
use crate::wire::{Kind, Role, SESSION_HEADER_LEN};
use crate::EncryptionMode;

const MAC_LEN: usize = 32;
const BODY_LEN: usize = HANDSHAKE_MESSAGE_LEN - MAC_LEN;

/// One side's handshake state. `role` is ours. Secret material is wiped on drop.
pub struct Handshake {
    role: Role,
    mode: EncryptionMode,
    session_secret: Zeroizing<[u8; SECRET_LEN]>,
    /// `StaticSecret` rather than `EphemeralSecret` only because `receive` may run more than once (a
    /// retransmitted HS1/HS2 must give the same keys); it is still used for this session only.
    ephemeral: StaticSecret,
    ephemeral_public: [u8; 32],
    nonce: [u8; 16],
    /// Mode 3: what we offer (written into `nonce`). `None` sends and reads no offer, as a peer from
    /// before negotiation did.
    offer: Option<AeadOffer>,
}

impl Handshake {
    /// `random` is 48 bytes from the caller's CSPRNG: 32 for the ephemeral X25519 key, 16 for the nonce.
    /// In mode 3 it offers both AEADs, preferring the one this CPU runs fastest.
    pub fn new(
        role: Role,
        mode: EncryptionMode,
        session_secret: &[u8; SECRET_LEN],
        random: &[u8; HANDSHAKE_RANDOM_LEN],
    ) -> Handshake {
        Self::with_offer(
            role,
            mode,
            session_secret,
            random,
            Some(AeadOffer::this_machine()),
        )
    }

    /// [`new`](Self::new) with the AEAD offer given (ignored outside mode 3): tests and benchmarks
    /// force one AEAD with [`AeadOffer::only`], or behave as a peer from before negotiation with `None`.
    pub fn with_offer(
        role: Role,
        mode: EncryptionMode,
        session_secret: &[u8; SECRET_LEN],
        random: &[u8; HANDSHAKE_RANDOM_LEN],
        offer: Option<AeadOffer>,
    ) -> Handshake {
        let mut scalar = [0u8; 32];
        scalar.copy_from_slice(&random[..32]);
        let ephemeral = StaticSecret::from(scalar);
        scalar.zeroize();
        let ephemeral_public = PublicKey::from(&ephemeral).to_bytes();
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(&random[32..]);
        let offer = offer.filter(|_| mode == EncryptionMode::ChaCha20Poly1305);
        if let Some(offer) = offer {
            // The ephemeral keys already make every session's keys fresh, so 6 random nonce bytes
            // are enough beside them.
            offer.write_into(&mut nonce);
        }
        Handshake {
            role,
            mode,
            session_secret: Zeroizing::new(*session_secret),
            ephemeral,
            ephemeral_public,
            nonce,
            offer,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn mode(&self) -> EncryptionMode {
        self.mode
    }

    /// Our handshake payload (HS1 for the initiator, HS2 for the target) for a datagram whose 18 clear
    /// header bytes are `header` (kind `Handshake(our role)`). Deterministic: the same header gives the
    /// same message, so re-answering a retransmitted HS1 needs no extra state.
    pub fn message(&self, header: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(HANDSHAKE_MESSAGE_LEN);
        m.push(self.mode as u8);
        m.extend_from_slice(&self.ephemeral_public);
        m.extend_from_slice(&self.nonce);
        let mac = self.mac(header, &m);
        m.extend_from_slice(&mac);
        m
    }

    /// Verifies the peer's message (`header` = its 18 clear header bytes, which must carry kind
    /// `Handshake(peer role)`) and derives the keys. Checks, in order: length (`Truncated` /
    /// `Malformed`), header kind (`Malformed`), mac (`BadMac`), mode (`ModeMismatch`), and in mode 3
    /// the peer's AEAD offer (`Malformed` if unreadable, `NoCommonAead`) and a low-order peer key
    /// giving an all-zero X25519 output (`Malformed`). Calling it again with the same message returns
    /// an equal `Protection`.
    pub fn receive(&self, header: &[u8], payload: &[u8]) -> Result<Protection, CryptoError> {
        if payload.len() < HANDSHAKE_MESSAGE_LEN {
            return Err(CryptoError::Truncated);
        }
        if payload.len() > HANDSHAKE_MESSAGE_LEN
            || header.len() != SESSION_HEADER_LEN
            || header[1] != Kind::Handshake(self.role.peer()).to_byte()
        {
            return Err(CryptoError::Malformed);
        }
        let (body, mac) = payload.split_at(BODY_LEN);
        if !bool::from(self.mac(header, body).ct_eq(mac)) {
            return Err(CryptoError::BadMac);
        }
        if body[0] != self.mode as u8 {
            return Err(CryptoError::ModeMismatch);
        }
        let mut peer_public = [0u8; 32];
        peer_public.copy_from_slice(&body[1..33]);
        let mut peer_nonce = [0u8; 16];
        peer_nonce.copy_from_slice(&body[33..BODY_LEN]);
        let (aead, rekey) = self.agree_aead(&peer_nonce)?;

        let shared = match self.mode {
            EncryptionMode::ChaCha20Poly1305 => {
                let s = self.ephemeral.diffie_hellman(&PublicKey::from(peer_public));
                // An all-zero output means a low-order point: the peer would control the "shared" key.
                if !s.was_contributory() {
                    return Err(CryptoError::Malformed);
                }
                Some(s)
            }
            _ => None,
        };
        let (nonce_i, nonce_t, eph_i, eph_t) = match self.role {
            Role::Initiator => (
                &self.nonce,
                &peer_nonce,
                &self.ephemeral_public,
                &peer_public,
            ),
            Role::Target => (
                &peer_nonce,
                &self.nonce,
                &peer_public,
                &self.ephemeral_public,
            ),
        };
        let keys = derive(&KeyInput {
            session_secret: &self.session_secret,
            dh: shared.as_ref().map_or(&[][..], |s| s.as_bytes()),
            mode: self.mode as u8,
            nonce_i,
            nonce_t,
            eph_i,
            eph_t,
            aead_label: aead.kdf_label(),
        });
        let (seal, open) = keys.for_role(self.role);
        Ok(Protection::new(self.mode, aead, seal, open, rekey))
    }

    /// The AEAD of this session from the peer's nonce (ChaCha20-Poly1305 outside mode 3, where it is
    /// unused, and when we send no offer), and whether both sides announced key updates.
    fn agree_aead(&self, peer_nonce: &[u8; 16]) -> Result<(Aead, bool), CryptoError> {
        let Some(ours) = self.offer else {
            return Ok((Aead::ChaCha20Poly1305, false));
        };
        let theirs = AeadOffer::read_from(peer_nonce).ok_or(CryptoError::Malformed)?;
        let aead = ours.agree(theirs).ok_or(CryptoError::NoCommonAead)?;
        Ok((aead, ours.rekeys_with(theirs)))
    }

    /// The session secret also salts HKDF, whose extract step is HMAC-SHA256(secret, dh) with `dh`
    /// empty or 32 bytes; a handshake mac input is always at least 49 bytes, so the two never collide.
    fn mac(&self, header: &[u8], body: &[u8]) -> [u8; MAC_LEN] {
        hmac_sha256(&self.session_secret[..], &[header, body])
    }
}

/// The session secret and the ephemeral scalar never appear in logs.
impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("role", &self.role)
            .field("mode", &self.mode)
            .field("secrets", &"<redacted>")
            .finish_non_exhaustive()
    }
}
