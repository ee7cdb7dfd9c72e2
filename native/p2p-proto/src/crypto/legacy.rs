//! Modes 1 (RC4) and 2 (XXTEA): a legacy cipher keyed per packet, then HMAC-SHA1 over
//! `header || ciphertext` (encrypt-then-MAC, so nothing is decrypted before it authenticates).
//! These ciphers are kept for connectd compatibility only; the MAC is what makes them safe to parse.

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::keys::{hmac_sha1, packet_key, DirectionKeys};
use super::rc4::Rc4;
use super::xxtea;
use super::CryptoError;

pub(crate) const TAG_LEN: usize = 20;
/// RC4's first keystream bytes are measurably biased; RFC 4345 drops 1536, we drop 256 as connectd-era
/// "RC4-drop" did: every packet has a fresh key, so each packet pays this once.
const RC4_DROP: usize = 256;
/// XXTEA needs whole words and at least two of them.
const XXTEA_MIN: usize = 8;
/// Most padding bytes XXTEA adds (an empty payload becomes `80 00 00 00 00 00 00 00`).
pub(crate) const XXTEA_MAX_PAD: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cipher {
    Rc4,
    Xxtea,
}

impl Cipher {
    /// Shortest protected payload: the tag, plus XXTEA's minimum block.
    fn min_len(self) -> usize {
        match self {
            Cipher::Rc4 => TAG_LEN,
            Cipher::Xxtea => TAG_LEN + XXTEA_MIN,
        }
    }
}

pub(crate) fn seal(
    cipher: Cipher,
    keys: &DirectionKeys,
    header: &[u8],
    pn: u64,
    buf: &mut Vec<u8>,
    from: usize,
) {
    let key = packet_key(&keys.enc, pn);
    match cipher {
        Cipher::Rc4 => {
            let mut rc4 = Rc4::new(&key[..]);
            rc4.skip(RC4_DROP);
            rc4.apply(&mut buf[from..]);
        }
        Cipher::Xxtea => {
            pad(buf, from);
            xxtea_bytes(&mut buf[from..], &key, xxtea::encrypt);
        }
    }
    let tag = hmac_sha1(&keys.mac, &[header, &buf[from..]]);
    buf.extend_from_slice(&tag);
}

/// Checks length and tag (constant time) and, only then, decrypts into `out`.
pub(crate) fn open(
    cipher: Cipher,
    keys: &DirectionKeys,
    header: &[u8],
    pn: u64,
    protected: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), CryptoError> {
    if protected.len() < cipher.min_len() {
        return Err(CryptoError::Truncated);
    }
    let (ciphertext, tag) = protected.split_at(protected.len() - TAG_LEN);
    let expected = hmac_sha1(&keys.mac, &[header, ciphertext]);
    if !bool::from(expected.ct_eq(tag)) {
        return Err(CryptoError::BadMac);
    }
    out.clear();
    out.extend_from_slice(ciphertext);
    let key = packet_key(&keys.enc, pn);
    match cipher {
        Cipher::Rc4 => {
            let mut rc4 = Rc4::new(&key[..]);
            rc4.skip(RC4_DROP);
            rc4.apply(out);
            Ok(())
        }
        Cipher::Xxtea => {
            // Only a peer holding the MAC key can get here with a bad length or padding: that is a
            // bug on its side, reported as Malformed rather than trusted.
            if !out.len().is_multiple_of(4) {
                return Err(CryptoError::Malformed);
            }
            xxtea_bytes(out, &key, xxtea::decrypt);
            unpad(out)
        }
    }
}

/// `0x80` then zeros up to a multiple of 4 bytes and at least 8 (ISO/IEC 7816-4 style, so it is
/// unambiguous whatever the payload ends with).
/// The payload is `buf[from..]`.
fn pad(buf: &mut Vec<u8>, from: usize) {
    buf.push(0x80);
    while !(buf.len() - from).is_multiple_of(4) || buf.len() - from < XXTEA_MIN {
        buf.push(0);
    }
}

/// Removes the padding `pad` added: at most 8 bytes, the last non-zero one must be `0x80`.
fn unpad(data: &mut Vec<u8>) -> Result<(), CryptoError> {
    let tail_start = data.len().saturating_sub(XXTEA_MAX_PAD);
    match data[tail_start..].iter().rposition(|&b| b != 0) {
        Some(i) if data[tail_start + i] == 0x80 => {
            data.truncate(tail_start + i);
            Ok(())
        }
        _ => Err(CryptoError::Malformed),
    }
}

/// Runs an XXTEA direction over `data` (a multiple of 4 bytes) as little-endian words.
fn xxtea_bytes(data: &mut [u8], key: &[u8; 16], f: fn(&mut [u32], &[u32; 4])) {
    let mut k = [0u32; 4];
    for (w, c) in k.iter_mut().zip(key.chunks_exact(4)) {
        *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    let mut words: Vec<u32> = data
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    f(&mut words, &k);
    for (c, w) in data.chunks_exact_mut(4).zip(&words) {
        c.copy_from_slice(&w.to_le_bytes());
    }
    k.zeroize();
    words.zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_minimal_and_reversible() {
        for len in 0..40usize {
            // Payloads ending in 0x80 and zeros must survive too.
            let mut p: Vec<u8> = (0..len)
                .map(|i| if i % 3 == 0 { 0x80 } else { 0 })
                .collect();
            let orig = p.clone();
            pad(&mut p, 0);
            assert_eq!(p.len() % 4, 0);
            assert!(p.len() >= 8);
            assert!((1..=XXTEA_MAX_PAD).contains(&(p.len() - len)), "len {len}");
            if len >= 8 {
                assert!(p.len() - len <= 4);
            }
            unpad(&mut p).unwrap();
            assert_eq!(p, orig);
        }
    }

    #[test]
    fn bad_padding_is_malformed() {
        for bad in [vec![0u8; 8], vec![1, 2, 3, 4, 5, 6, 7, 8], {
            let mut v = vec![0x80];
            v.extend([0u8; 8]);
            v
        }] {
            let mut b = bad.clone();
            assert_eq!(unpad(&mut b), Err(CryptoError::Malformed), "{bad:?}");
        }
    }

    fn keys() -> DirectionKeys {
        DirectionKeys {
            enc: [1; 32],
            mac: [2; 32],
            ratchet: [0; 32],
        }
    }

    /// A peer holding the keys but padding wrongly (or sending a partial word) gets Malformed, not a
    /// panic and not garbage plaintext.
    #[test]
    fn authentic_but_badly_padded_xxtea_is_malformed() {
        let (k, header, pn) = (keys(), [9u8; 18], 4);
        let key = packet_key(&k.enc, pn);
        let mut ct = vec![0u8; 12]; // no 0x80 marker
        xxtea_bytes(&mut ct, &key, xxtea::encrypt);
        let tag = hmac_sha1(&k.mac, &[&header, &ct]);
        ct.extend_from_slice(&tag);
        let mut out = vec![];
        assert_eq!(
            open(Cipher::Xxtea, &k, &header, pn, &ct, &mut out),
            Err(CryptoError::Malformed)
        );

        let mut odd = vec![0x80u8; 9]; // not a whole number of words
        let tag = hmac_sha1(&k.mac, &[&header, &odd]);
        odd.extend_from_slice(&tag);
        assert_eq!(
            open(Cipher::Xxtea, &k, &header, pn, &odd, &mut out),
            Err(CryptoError::Malformed)
        );
    }

    /// Mode 1 really is RC4-drop256 under SHA-256(k_enc || pn)[..16]: decrypting by hand with the
    /// primitive gives the plaintext back.
    #[test]
    fn rc4_packets_follow_the_documented_construction() {
        let (k, header, pn) = (keys(), [7u8; 18], 0x0102_0304_0506_0708);
        let mut p = b"hello, rc4".to_vec();
        seal(Cipher::Rc4, &k, &header, pn, &mut p, 0);
        let (ct, tag) = p.split_at(p.len() - TAG_LEN);
        assert_eq!(tag, hmac_sha1(&k.mac, &[&header, ct]));
        let mut stream = vec![0u8; 256 + ct.len()];
        Rc4::new(&packet_key(&k.enc, pn)[..]).apply(&mut stream);
        let plain: Vec<u8> = ct.iter().zip(&stream[256..]).map(|(c, s)| c ^ s).collect();
        assert_eq!(plain, b"hello, rc4");
    }
}
