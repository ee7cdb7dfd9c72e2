//! Mode 3: ChaCha20-Poly1305 (RFC 8439) with the packet number as nonce and the clear header as AAD.
//!
//! The implementation is ring's (assembly with AVX2/AVX-512 or NEON, chosen at run time): on the
//! benchmark machine it seals 1400-byte datagrams at 1.3 GB/s against 0.4 GB/s for the pure-Rust
//! crate, and the cipher was a quarter of the tunnel's CPU. Same algorithm, same bytes on the wire.

use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, CHACHA20_POLY1305};

use super::keys::KEY_LEN;
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

fn cipher(key: &[u8; KEY_LEN]) -> LessSafeKey {
    // Building the key per packet is a 32-byte copy (ChaCha20 has no key schedule).
    LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key is ChaCha20's key length"),
    )
}

/// Encrypts `data` in place and returns the tag.
pub(crate) fn seal_detached(
    key: &[u8; KEY_LEN],
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    data: &mut [u8],
) -> [u8; TAG_LEN] {
    let tag = cipher(key)
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), data)
        .expect("a datagram is far below ChaCha20's 256 GiB message limit");
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Checks `tag` and decrypts `data` in place; on failure `data` is unspecified (callers discard it).
pub(crate) fn open_detached(
    key: &[u8; KEY_LEN],
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    data: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), CryptoError> {
    cipher(key)
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

pub(crate) fn seal(key: &[u8; KEY_LEN], header: &[u8], pn: u64, payload: &mut Vec<u8>) {
    let tag = seal_detached(key, nonce(pn), header, payload);
    payload.extend_from_slice(&tag);
}

pub(crate) fn open(
    key: &[u8; KEY_LEN],
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
    open_detached(key, nonce(pn), header, out, tag)
}
