//! RC4, written out (it is a dozen lines) rather than taken from the `rc4` crate so that the key
//! schedule can be wiped on drop and the key length need not be a type parameter. Mode 1 exists only
//! for connectd compatibility; the known keystream biases are why we drop the first 256 bytes
//! ("RC4-drop") and key every packet afresh.

use zeroize::Zeroize;

pub(crate) struct Rc4 {
    s: [u8; 256],
    i: u8,
    j: u8,
}

impl Rc4 {
    /// Key schedule (KSA). `key` should be 1..=256 bytes; an empty key acts as a single zero byte
    /// rather than panicking.
    pub(crate) fn new(key: &[u8]) -> Rc4 {
        let mut s = [0u8; 256];
        for (i, v) in s.iter_mut().enumerate() {
            *v = i as u8;
        }
        let mut j = 0u8;
        for i in 0..256 {
            let k = key.get(i % key.len().max(1)).copied().unwrap_or(0);
            j = j.wrapping_add(s[i]).wrapping_add(k);
            s.swap(i, j as usize);
        }
        Rc4 { s, i: 0, j: 0 }
    }

    /// XORs the next `data.len()` keystream bytes (PRGA) into `data`.
    pub(crate) fn apply(&mut self, data: &mut [u8]) {
        for b in data {
            *b ^= self.next_byte();
        }
    }

    /// Discards `n` keystream bytes.
    pub(crate) fn skip(&mut self, n: usize) {
        for _ in 0..n {
            self.next_byte();
        }
    }

    fn next_byte(&mut self) -> u8 {
        self.i = self.i.wrapping_add(1);
        self.j = self.j.wrapping_add(self.s[self.i as usize]);
        self.s.swap(self.i as usize, self.j as usize);
        let t = self.s[self.i as usize].wrapping_add(self.s[self.j as usize]);
        self.s[t as usize]
    }
}

impl Drop for Rc4 {
    fn drop(&mut self) {
        self.s.zeroize();
        self.i.zeroize();
        self.j.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::selftest::RFC6229;

    #[test]
    fn matches_rfc6229() {
        for (key, points) in RFC6229 {
            let mut stream = [0u8; 272];
            Rc4::new(key).apply(&mut stream);
            for (offset, expected) in *points {
                assert_eq!(&stream[*offset..offset + 16], expected, "offset {offset}");
            }
        }
    }

    #[test]
    fn skip_then_apply_equals_the_later_keystream() {
        let mut whole = [0u8; 300];
        Rc4::new(b"Key").apply(&mut whole);
        let mut rc4 = Rc4::new(b"Key");
        rc4.skip(256);
        let mut tail = [0u8; 44];
        rc4.apply(&mut tail);
        assert_eq!(&whole[256..], &tail[..]);
    }

    /// Cross-check against the RustCrypto `rc4` crate (a dependency of this crate anyway).
    #[test]
    fn agrees_with_the_rc4_crate() {
        use ::rc4::{consts::U16, Key, KeyInit, Rc4 as Theirs, StreamCipher};
        let key = *b"sixteen byte key";
        let mut ours = [0x5au8; 1000];
        let mut theirs = ours;
        Rc4::new(&key).apply(&mut ours);
        Theirs::<U16>::new(Key::<U16>::from_slice(&key)).apply_keystream(&mut theirs);
        assert_eq!(ours, theirs);
    }
}
