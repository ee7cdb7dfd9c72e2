//! Mode 3's packet AEAD, ChaCha20-Poly1305 (RFC 8439) or AES-256-GCM (NIST SP 800-38D) as negotiated,
//! with the packet number as nonce and the clear header as AAD.
//!
//! The implementation is ring's (assembly with AES-NI/VAES and CLMUL, AVX2/AVX-512 or NEON, chosen at
//! run time): on the benchmark machine it seals 1400-byte datagrams with ChaCha20-Poly1305 at 1.3 GB/s
//! against 0.4 GB/s for the pure-Rust crate, and the cipher was a quarter of the tunnel's CPU.
//!
//! The key is expanded once per session and direction: AES's key schedule and GCM's hash key would
//! cost a third of AES-GCM's speed if redone per packet. ring does not wipe its expanded key when it
//! is dropped; the raw keys it came from (`DirectionKeys`) are wiped.

use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM, CHACHA20_POLY1305};

use super::keys::KEY_LEN;
use super::negotiation::Aead;
use super::CryptoError;

pub(crate) const TAG_LEN: usize = 16;
pub(crate) const NONCE_LEN: usize = 12;

/// `0u32 || pn (u64 BE)`: packet numbers never repeat in a direction and each direction has its own
/// key, so a nonce is never reused under a key.
fn nonce(pn: u64) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[4..].copy_from_slice(&pn.to_be_bytes());
    n
}

/// One direction's key, ready to seal or open.
pub(crate) struct PacketKey {
    aead: Aead,
    key: LessSafeKey,
}

impl PacketKey {
    pub(crate) fn new(aead: Aead, key: &[u8; KEY_LEN]) -> PacketKey {
        let algorithm = match aead {
            Aead::ChaCha20Poly1305 => &CHACHA20_POLY1305,
            Aead::Aes256Gcm => &AES_256_GCM,
        };
        let key = UnboundKey::new(algorithm, key).expect("both AEADs take 32-byte keys");
        PacketKey {
            aead,
            key: LessSafeKey::new(key),
        }
    }

    pub(crate) fn aead(&self) -> Aead {
        self.aead
    }

    /// Encrypts `data` in place and returns the tag.
    pub(crate) fn seal_detached(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        data: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), data)
            .expect("a datagram is far below either AEAD's message limit");
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Checks `tag` and decrypts `data` in place; on failure `data` is unspecified (callers discard it).
    pub(crate) fn open_detached(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        self.key
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                Tag::from(*tag),
                data,
                0..,
            )
            .map(|_| ())
            .map_err(|_| CryptoError::BadMac)
    }

    /// Seals the payload `buf[from..]` in place and appends the tag.
    pub(crate) fn seal(&self, header: &[u8], pn: u64, buf: &mut Vec<u8>, from: usize) {
        let tag = self.seal_detached(nonce(pn), header, &mut buf[from..]);
        buf.extend_from_slice(&tag);
    }

    pub(crate) fn open(
        &self,
        header: &[u8],
        pn: u64,
        protected: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        if protected.len() < TAG_LEN {
            return Err(CryptoError::Truncated);
        }
        let (ciphertext, tag) = protected.split_at(protected.len() - TAG_LEN);
        let tag: &[u8; TAG_LEN] = tag.try_into().expect("split at TAG_LEN");
        out.clear();
        out.extend_from_slice(ciphertext);
        self.open_detached(nonce(pn), header, out, tag)
    }
}
