//! Mode 3: ChaCha20-Poly1305 (RFC 8439) with the packet number as nonce and the clear header as AAD.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};

use super::keys::KEY_LEN;
use super::CryptoError;

pub(crate) const TAG_LEN: usize = 16;

/// `0u32 || pn (u64 BE)`: packet numbers never repeat in a direction and each direction has its own
/// key, so a nonce is never reused under a key.
fn nonce(pn: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&pn.to_be_bytes());
    n.into()
}

pub(crate) fn seal(key: &[u8; KEY_LEN], header: &[u8], pn: u64, payload: &mut Vec<u8>) {
    // Building the cipher per packet is a 32-byte copy; it zeroizes its key copy on drop.
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let tag = cipher
        .encrypt_in_place_detached(&nonce(pn), header, payload)
        .expect("a datagram is far below ChaCha20's 256 GiB message limit");
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
    out.clear();
    out.extend_from_slice(ciphertext);
    // The crate checks the tag before decrypting, so on failure `out` still holds ciphertext (the
    // caller clears it anyway).
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    cipher
        .decrypt_in_place_detached(&nonce(pn), header, out, Tag::from_slice(tag))
        .map_err(|_| CryptoError::BadMac)
}
