//! Peer handshake and packet protection of session datagrams (PROTOCOL.md, "Handshake" and "Packet
//! protection"). Sans-IO like the rest of the crate: no clock and no OS randomness; the caller passes
//! the handshake's random bytes in.
//!
//! - [`Handshake`]: each side's HS1/HS2 message and the key derivation; yields a [`Protection`].
//! - [`Protection`]: seal/open for one session in one [`EncryptionMode`](crate::EncryptionMode), with the [`ReplayWindow`].
//! - [`Aead`], [`AeadOffer`]: mode 3's AEAD (AES-256-GCM or ChaCha20-Poly1305) and its negotiation.
//! - [`PeerHandshake`], [`StaticKey`]: the end-to-end handshake between the peers' long-term keys
//!   (Noise XX; the session runs it in mode 3 when both sides have keys), and key fingerprints.
//! - [`relay_mac`]: the MAC of the authenticated relay messages.
//! - [`xxtea`]: the Corrected Block TEA cipher of mode 2.
//! - [`self_test`]: known-answer tests for `connectd -n`.

mod aead;
mod handshake;
mod key_phase;
mod keys;
mod legacy;
mod negotiation;
mod peer_handshake;
mod protection;
mod rc4;
mod relay_mac;
mod replay;
mod selftest;
mod static_keys;
pub mod xxtea;

#[cfg(test)]
mod negotiation_tests;
#[cfg(test)]
mod peer_handshake_tests;
#[cfg(test)]
mod tests;

pub use handshake::Handshake;
pub use negotiation::{Aead, AeadOffer};
pub use peer_handshake::{
    session_context, ExpectedPeer, PeerHandshake, PeerHandshakeError, PeerHandshakeParams,
    PeerSession, PeerStep, PEER_HANDSHAKE_RANDOM_LEN,
};
pub use protection::Protection;
pub use relay_mac::{relay_mac, relay_mac_matches, RELAY_MAC_LEN};
pub use replay::{ReplayWindow, WINDOW_BITS};
pub use selftest::self_test;
pub use static_keys::{BadFingerprint, Fingerprint, PublicStaticKey, StaticKey, STATIC_KEY_LEN};

/// Length of the per-session secret the server hands both peers.
pub const SECRET_LEN: usize = 32;
/// Random bytes [`Handshake::new`] needs: 32 for the ephemeral X25519 key, 16 for the nonce (whose
/// first 10 carry the AEAD offer in mode 3).
pub const HANDSHAKE_RANDOM_LEN: usize = 48;
/// Length of a handshake payload: `mode(1) ephemeral_public(32) nonce(16) mac(32)`.
pub const HANDSHAKE_MESSAGE_LEN: usize = 81;

/// Why a handshake message or a packet was refused. The caller drops the datagram and counts it.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum CryptoError {
    #[error("datagram payload too short")]
    Truncated,
    #[error("authentication failed")]
    BadMac,
    #[error("duplicate or too old packet number")]
    Replay,
    #[error("peer uses a different encryption mode")]
    ModeMismatch,
    #[error("peer accepts none of the AEADs we accept")]
    NoCommonAead,
    #[error("malformed handshake or packet")]
    Malformed,
}
