//! Known-answer tests of every primitive, run by `connectd -n` on the machine it will run on (a broken
//! build or CPU feature detection shows up here instead of as a silent interop failure).

use sha1::{Digest, Sha1};
use x25519_dalek::{PublicKey, StaticSecret};

use super::aead::PacketKey;
use super::keys::hmac_sha1;
use super::negotiation::Aead;
use super::rc4::Rc4;
use super::xxtea;

/// Runs every known-answer test: `[("SHA1", ok), ("RC4", ok), ("XXTEA", ok), ("ChaCha20-Poly1305", ok),
/// ("AES-256-GCM", ok), ("X25519", ok)]`. Never panics.
pub fn self_test() -> Vec<(&'static str, bool)> {
    vec![
        ("SHA1", sha1_ok()),
        ("RC4", rc4_ok()),
        ("XXTEA", xxtea_ok()),
        ("ChaCha20-Poly1305", chacha20poly1305_ok()),
        ("AES-256-GCM", aes256gcm_ok()),
        ("X25519", x25519_ok()),
    ]
}

/// FIPS 180-2 appendix A.1 ("abc") and RFC 2202 HMAC-SHA1 test case 1.
fn sha1_ok() -> bool {
    const ABC: [u8; 20] = hex(b"a9993e364706816aba3e25717850c26c9cd0d89d");
    const HMAC_1: [u8; 20] = hex(b"b617318655057264e28bc0b6fb378c8ef146be00");
    Sha1::digest(b"abc")[..] == ABC && hmac_sha1(&[0x0b; 20], &[b"Hi There"]) == HMAC_1
}

/// RFC 6229 section 2: keystream of two keys at offsets around the 256 bytes mode 1 drops.
/// (key, [(keystream offset, 16 expected bytes)]) pairs.
type KeystreamVectors = &'static [(&'static [u8], &'static [(usize, [u8; 16])])];
pub(crate) const RFC6229: KeystreamVectors = &[
    (
        &[1, 2, 3, 4, 5],
        &[
            (0, hex(b"b2396305f03dc027ccc3524a0a1118a8")),
            (16, hex(b"6982944f18fc82d589c403a47a0d0919")),
            (240, hex(b"28cb1132c96ce286421dcaadb8b69eae")),
            (256, hex(b"1cfcf62b03eddb641d77dfcf7f8d8c93")),
        ],
    ),
    (
        &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
        &[
            (0, hex(b"9ac7cc9a609d1ef7b2932899cde41b97")),
            (16, hex(b"5248c4959014126a6e8a84f11d1a9e1c")),
            (240, hex(b"065902e4b620f6cc36c8589f66432f2b")),
            (256, hex(b"d39d566bc6bce3010768151549f3873f")),
        ],
    ),
];

fn rc4_ok() -> bool {
    RFC6229.iter().all(|(key, points)| {
        let mut stream = [0u8; 272];
        Rc4::new(key).apply(&mut stream);
        points
            .iter()
            .all(|(offset, expected)| stream.get(*offset..offset + 16) == Some(&expected[..]))
    })
}

/// One 128-bit-block vector of "TeaCrypt" by Logan J. Drews (the full set is in `xxtea`'s tests).
fn xxtea_ok() -> bool {
    let key = [0x0011_2233, 0x4455_6677, 0x8899_AABB, 0xCCDD_EEFF];
    let plain = [0x0123_4567, 0x89AB_CDEF, 0x0123_4567, 0x89AB_CDEF];
    let mut v = plain;
    xxtea::encrypt(&mut v, &key);
    let enc_ok = v == [0x2B4A_B1A4, 0x0E48_7B6D, 0x9A3A_ACC7, 0xE413_2216];
    xxtea::decrypt(&mut v, &key);
    enc_ok && v == plain
}

/// RFC 8439 section 2.8.2.
fn chacha20poly1305_ok() -> bool {
    const KEY: [u8; 32] = hex(b"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    const NONCE: [u8; 12] = hex(b"070000004041424344454647");
    const AAD: [u8; 12] = hex(b"50515253c0c1c2c3c4c5c6c7");
    const PLAIN: &[u8] =
        b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip \
for the future, sunscreen would be it.";
    const CIPHER: [u8; 114] = hex(
        b"d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6\
3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58\
fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116",
    );
    const TAG: [u8; 16] = hex(b"1ae10b594f09e26a7e902ecbd0600691");

    aead_ok(
        Aead::ChaCha20Poly1305,
        &KEY,
        NONCE,
        &AAD,
        PLAIN,
        &CIPHER,
        &TAG,
    )
}

/// The GCM specification's test case 16 (McGrew and Viega): 256-bit key, 96-bit IV, with AAD.
fn aes256gcm_ok() -> bool {
    const KEY: [u8; 32] = hex(b"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
    const NONCE: [u8; 12] = hex(b"cafebabefacedbaddecaf888");
    const AAD: [u8; 20] = hex(b"feedfacedeadbeeffeedfacedeadbeefabaddad2");
    const PLAIN: [u8; 60] = hex(
        b"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
    );
    const CIPHER: [u8; 60] = hex(
        b"522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
    );
    const TAG: [u8; 16] = hex(b"76fc6ece0f4e1768cddf8853bb2d551b");
    aead_ok(Aead::Aes256Gcm, &KEY, NONCE, &AAD, &PLAIN, &CIPHER, &TAG)
}

/// Seals `plain` to `cipher` and `tag`, opens it back, and refuses it with a ciphertext bit flipped.
fn aead_ok(
    aead: Aead,
    key: &[u8; 32],
    nonce: [u8; 12],
    aad: &[u8],
    plain: &[u8],
    cipher: &[u8],
    tag: &[u8; 16],
) -> bool {
    let key = PacketKey::new(aead, key);
    let mut buf = plain.to_vec();
    let sealed_tag = key.seal_detached(nonce, aad, &mut buf);
    let sealed = buf[..] == cipher[..] && sealed_tag == *tag;
    let opened = key.open_detached(nonce, aad, &mut buf, tag).is_ok() && buf == plain;
    let mut forged = cipher.to_vec();
    forged[0] ^= 1;
    let refused = key.open_detached(nonce, aad, &mut forged, tag).is_err();
    sealed && opened && refused
}

/// RFC 7748 section 5.2 (first scalar-multiplication vector) and section 6.1 (Alice and Bob).
fn x25519_ok() -> bool {
    const SCALAR: [u8; 32] =
        hex(b"a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
    const U: [u8; 32] = hex(b"e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
    const OUT: [u8; 32] = hex(b"c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
    const ALICE: [u8; 32] =
        hex(b"77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    const ALICE_PUB: [u8; 32] =
        hex(b"8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    const BOB: [u8; 32] = hex(b"5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    const BOB_PUB: [u8; 32] =
        hex(b"de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    const SHARED: [u8; 32] =
        hex(b"4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");

    let ladder = StaticSecret::from(SCALAR).diffie_hellman(&PublicKey::from(U));
    let alice = StaticSecret::from(ALICE);
    let bob = StaticSecret::from(BOB);
    ladder.as_bytes() == &OUT
        && PublicKey::from(&alice).as_bytes() == &ALICE_PUB
        && PublicKey::from(&bob).as_bytes() == &BOB_PUB
        && alice.diffie_hellman(&PublicKey::from(BOB_PUB)).as_bytes() == &SHARED
        && bob.diffie_hellman(&PublicKey::from(ALICE_PUB)).as_bytes() == &SHARED
}

/// Lower-case hex to bytes, for constants: a bad digit or length is a compile error there.
pub(crate) const fn hex<const N: usize>(s: &[u8]) -> [u8; N] {
    assert!(s.len() == 2 * N, "hex literal has the wrong length");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < s.len() {
        let v = match s[i] {
            b'0'..=b'9' => s[i] - b'0',
            b'a'..=b'f' => s[i] - b'a' + 10,
            _ => panic!("bad hex digit"),
        };
        out[i / 2] |= if i % 2 == 0 { v << 4 } else { v };
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_known_answer_test_passes() {
        let results = super::self_test();
        let names: Vec<_> = results.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "SHA1",
                "RC4",
                "XXTEA",
                "ChaCha20-Poly1305",
                "AES-256-GCM",
                "X25519"
            ]
        );
        for (name, ok) in results {
            assert!(ok, "{name} self-test failed");
        }
    }
}
