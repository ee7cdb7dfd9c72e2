//! XXTEA, the "Corrected Block TEA" of Wheeler and Needham ("Correction to xtea", 1998), implemented
//! here because mode 2 exists for connectd compatibility and no maintained crate offers the raw
//! word-level cipher. Words are the caller's business (we use little endian, as connectd-era code does).
//!
//! The cipher treats the whole slice as one block of `n` 32-bit words; `n < 2` is left unchanged
//! (the reference `btea` does the same: one word has no neighbour to mix with).

const DELTA: u32 = 0x9E37_79B9;

/// The reference round function `MX`.
#[inline]
fn mx(sum: u32, y: u32, z: u32, p: usize, e: usize, key: &[u32; 4]) -> u32 {
    (((z >> 5) ^ (y << 2)).wrapping_add((y >> 3) ^ (z << 4)))
        ^ ((sum ^ y).wrapping_add(key[(p & 3) ^ e] ^ z))
}

/// `6 + 52 / n` full cycles, as in the paper: short blocks get more cycles.
#[inline]
fn rounds(n: usize) -> u32 {
    // n >= 2 here, so the quotient is at most 26 and fits a u32.
    6 + (52 / n) as u32
}

/// Encrypts `data` in place as one XXTEA block. Slices shorter than two words are left unchanged.
pub fn encrypt(data: &mut [u32], key: &[u32; 4]) {
    let n = data.len();
    if n < 2 {
        return;
    }
    let mut sum: u32 = 0;
    let mut z = data[n - 1];
    for _ in 0..rounds(n) {
        sum = sum.wrapping_add(DELTA);
        let e = ((sum >> 2) & 3) as usize;
        for p in 0..n {
            let y = data[(p + 1) % n];
            data[p] = data[p].wrapping_add(mx(sum, y, z, p, e, key));
            z = data[p];
        }
    }
}

/// Decrypts `data` in place, the inverse of [`encrypt`]. Slices shorter than two words are left unchanged.
pub fn decrypt(data: &mut [u32], key: &[u32; 4]) {
    let n = data.len();
    if n < 2 {
        return;
    }
    let mut sum = rounds(n).wrapping_mul(DELTA);
    let mut y = data[0];
    while sum != 0 {
        let e = ((sum >> 2) & 3) as usize;
        for p in (0..n).rev() {
            let z = data[(p + n - 1) % n];
            data[p] = data[p].wrapping_sub(mx(sum, y, z, p, e, key));
            y = data[p];
        }
        sum = sum.wrapping_sub(DELTA);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Word-level vectors from "TeaCrypt" by Logan J. Drews, as reproduced in libgim's
    /// `test/crypto/xxtea.cpp` (github.com/ElectronicsClubAltona/libgim). The same source's XTEA vectors
    /// agree with Simon Shepherd's published ones (`dee9d4d8 f7131ed9` for the all-zero case), which is
    /// some evidence the set is trustworthy. (key, plaintext, ciphertext)
    pub(crate) const TEACRYPT: &[([u32; 4], &[u32], &[u32])] = &[
        ([0; 4], &[0, 0], &[0x053704AB, 0x575D8C80]),
        ([0; 4], &[0x01020304, 0x05060708], &[0xE6911910, 0x0C35DCDA]),
        (
            [0x00112233, 0x44556677, 0x8899AABB, 0xCCDDEEFF],
            &[0x01020304, 0x05060708],
            &[0x961D49FC, 0x61FF12D6],
        ),
        (
            [0x00112233, 0x44556677, 0x8899AABB, 0xCCDDEEFF],
            &[0x01234567, 0x89ABCDEF],
            &[0x34354989, 0xDD7D1A7A],
        ),
        ([0; 4], &[0, 0, 0], &[0x5E3CD3F0, 0xE109E3CE, 0x79D7C945]),
        (
            [0; 4],
            &[0x00010203, 0x04050607, 0x08090A0B],
            &[0x5A545AAC, 0x684EB2CB, 0x3E1B8AA0],
        ),
        (
            [0x00112233, 0x44556677, 0x8899AABB, 0xCCDDEEFF],
            &[0x00010203, 0x04050607, 0x08090A0B],
            &[0x2E77CCEC, 0x674F5149, 0xA0E56496],
        ),
        (
            [0x00112233, 0x44556677, 0x8899AABB, 0xCCDDEEFF],
            &[0x01234567, 0x89ABCDEF, 0x01234567],
            &[0xEBC5DD46, 0xBE0FEE71, 0xC6BF7193],
        ),
        (
            [0; 4],
            &[0, 0, 0, 0],
            &[0xE6C8D5FF, 0x070FB6E4, 0x98A534F7, 0xAC03E399],
        ),
        (
            [0; 4],
            &[0x00010203, 0x04050607, 0x08090A0B, 0x0C0D0E0F],
            &[0xAF5CFB0E, 0xAE73552B, 0x1D968A9F, 0x5CB94509],
        ),
        (
            [0x00112233, 0x44556677, 0x8899AABB, 0xCCDDEEFF],
            &[0x00010203, 0x04050607, 0x08090A0B, 0x0C0D0E0F],
            &[0x3EA0E16C, 0x9969535A, 0xE4796D50, 0xF217EEEA],
        ),
        (
            [0x00112233, 0x44556677, 0x8899AABB, 0xCCDDEEFF],
            &[0x01234567, 0x89ABCDEF, 0x01234567, 0x89ABCDEF],
            &[0x2B4AB1A4, 0x0E487B6D, 0x9A3AACC7, 0xE4132216],
        ),
    ];

    #[test]
    fn matches_teacrypt_vectors() {
        for (i, (key, plain, cipher)) in TEACRYPT.iter().enumerate() {
            let mut v = plain.to_vec();
            encrypt(&mut v, key);
            assert_eq!(&v[..], *cipher, "encrypt vector {i}");
            decrypt(&mut v, key);
            assert_eq!(&v[..], *plain, "decrypt vector {i}");
        }
    }

    /// The byte-level vector in the `xxtea` 0.2.0 crate's `tests/tests.rs` (`run_raw_test_case`): the key
    /// is the ASCII string "Snakeoil" zero-padded to 16 bytes, bytes are packed into little-endian words.
    #[test]
    fn matches_xxtea_crate_raw_vector() {
        let le_words = |b: &[u8]| -> Vec<u32> {
            b.chunks(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        let mut key_bytes = [0u8; 16];
        key_bytes[..8].copy_from_slice(b"Snakeoil");
        let kw = le_words(&key_bytes);
        let key = [kw[0], kw[1], kw[2], kw[3]];
        let mut v = le_words(&[17, 18, 19, 20, 0, 0, 0, 0, 52, 238, 0, 0]);
        encrypt(&mut v, &key);
        assert_eq!(
            v,
            le_words(&[153, 30, 118, 66, 15, 149, 77, 188, 228, 138, 105, 92])
        );
    }

    #[test]
    fn short_slices_are_left_alone() {
        let key = [1, 2, 3, 4];
        let mut empty: [u32; 0] = [];
        encrypt(&mut empty, &key);
        let mut one = [0xDEAD_BEEF];
        encrypt(&mut one, &key);
        assert_eq!(one, [0xDEAD_BEEF]);
        decrypt(&mut one, &key);
        assert_eq!(one, [0xDEAD_BEEF]);
    }

    #[test]
    fn round_trips_long_blocks() {
        let key = [0x0123_4567, 0x89AB_CDEF, 0xFEDC_BA98, 0x7654_3210];
        for n in 2..400usize {
            let plain: Vec<u32> = (0..n as u32).map(|i| i.wrapping_mul(0x9E37_79B9)).collect();
            let mut v = plain.clone();
            encrypt(&mut v, &key);
            assert_ne!(v, plain);
            decrypt(&mut v, &key);
            assert_eq!(v, plain);
        }
    }
}
