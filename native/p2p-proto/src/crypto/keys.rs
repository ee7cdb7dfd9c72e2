//! Key schedule: the four session keys from the handshake, and the per-packet keys of modes 1 and 2.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, Zeroizing};

use crate::wire::Role;

pub(crate) const KEY_LEN: usize = 32;
/// Per-packet key length of RC4 and XXTEA (XXTEA's key is 128 bits; RC4 uses the same for symmetry).
pub(crate) const PACKET_KEY_LEN: usize = 16;
/// HKDF info prefix: binds the keys to this protocol and version.
const LABEL: &[u8] = b"remoteitp2p v1";

/// The keys protecting one direction of a session.
pub(crate) struct DirectionKeys {
    /// RC4 / XXTEA per-packet key material, or the AEAD key of mode 3.
    pub(crate) enc: [u8; KEY_LEN],
    /// HMAC-SHA1 key of modes 1 and 2 (unused in mode 3, whose AEAD carries its own tag).
    pub(crate) mac: [u8; KEY_LEN],
    /// Mode 3: the secret the direction's next key comes from ([`next_phase`]).
    pub(crate) ratchet: [u8; KEY_LEN],
}

impl DirectionKeys {
    pub(crate) fn ct_eq(&self, other: &DirectionKeys) -> Choice {
        self.enc.ct_eq(&other.enc) & self.mac.ct_eq(&other.mac) & self.ratchet.ct_eq(&other.ratchet)
    }

    /// Wipes the mode 3 key material once a key update replaced it (the AEAD key now lives in the
    /// next phase's key, the ratchet secret was used up).
    pub(crate) fn wipe(&mut self) {
        self.enc.zeroize();
        self.ratchet.zeroize();
    }
}

impl Drop for DirectionKeys {
    fn drop(&mut self) {
        self.enc.zeroize();
        self.mac.zeroize();
        self.ratchet.zeroize();
    }
}

/// HKDF-Expand info of a key update.
const REKEY_LABEL: &[u8] = b"remoteitp2p rekey";

/// A key update: `HKDF-Expand(prk = ratchet, info = "remoteitp2p rekey", 64)` split as the next AEAD
/// key and the next ratchet secret. One-way, so whoever learns a later phase's secrets cannot go back
/// to an earlier key.
pub(crate) fn next_phase(
    ratchet: &[u8; KEY_LEN],
) -> (Zeroizing<[u8; KEY_LEN]>, Zeroizing<[u8; KEY_LEN]>) {
    let hk = Hkdf::<Sha256>::from_prk(ratchet).expect("a 32-byte ratchet secret is a valid PRK");
    let mut okm = Zeroizing::new([0u8; 2 * KEY_LEN]);
    hk.expand(REKEY_LABEL, &mut okm[..])
        .expect("64 bytes is within HKDF-SHA256's 8160-byte limit");
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    let mut next = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&okm[..KEY_LEN]);
    next.copy_from_slice(&okm[KEY_LEN..]);
    (key, next)
}

/// Both directions' keys, named by who sends with them.
pub(crate) struct SessionKeys {
    pub(crate) initiator_to_target: DirectionKeys,
    pub(crate) target_to_initiator: DirectionKeys,
}

impl SessionKeys {
    /// Splits into (keys `role` seals with, keys `role` opens with).
    pub(crate) fn for_role(self, role: Role) -> (DirectionKeys, DirectionKeys) {
        match role {
            Role::Initiator => (self.initiator_to_target, self.target_to_initiator),
            Role::Target => (self.target_to_initiator, self.initiator_to_target),
        }
    }
}

/// What both sides feed the key derivation, ordered initiator first so both compute the same thing.
pub(crate) struct KeyInput<'a> {
    pub(crate) session_secret: &'a [u8; 32],
    /// X25519 output in mode 3, empty otherwise.
    pub(crate) dh: &'a [u8],
    pub(crate) mode: u8,
    pub(crate) nonce_i: &'a [u8; 16],
    pub(crate) nonce_t: &'a [u8; 16],
    pub(crate) eph_i: &'a [u8; 32],
    pub(crate) eph_t: &'a [u8; 32],
    /// [`Aead::kdf_label`](super::negotiation::Aead::kdf_label) in mode 3, empty otherwise.
    pub(crate) aead_label: &'a [u8],
}

/// `HKDF-SHA256(salt = session_secret, ikm = dh, info = LABEL || mode || nonce_i || nonce_t || eph_i ||
/// eph_t || aead_label)`, 192 bytes split as `k_enc(i->t) k_enc(t->i) k_mac(i->t) k_mac(t->i)
/// k_ratchet(i->t) k_ratchet(t->i)`. HKDF's output is a prefix-stable stream, so the first four are
/// the ones a peer from before key updates derives from its 128 bytes.
pub(crate) fn derive(input: &KeyInput<'_>) -> SessionKeys {
    let hk = Hkdf::<Sha256>::new(Some(input.session_secret), input.dh);
    let mut okm = Zeroizing::new([0u8; OKM_LEN]);
    let info: [&[u8]; 7] = [
        LABEL,
        &[input.mode],
        input.nonce_i,
        input.nonce_t,
        input.eph_i,
        input.eph_t,
        input.aead_label,
    ];
    hk.expand_multi_info(&info, &mut okm[..])
        .expect("192 bytes is within HKDF-SHA256's 8160-byte limit");
    split_okm(&okm)
}

/// HKDF info prefix of the end-to-end handshake's keys: never equal to [`LABEL`]'s inputs.
const E2E_LABEL: &[u8] = b"remoteitp2p e2e v1";

/// Session keys from a finished Noise handshake: `HKDF-SHA256(salt = handshake_hash, ikm = k_i2t ||
/// k_t2i, info = E2E_LABEL || aead_label)`, 192 bytes split as in [`derive`]. The Noise split keys are
/// secret only to the two peers; the handshake hash binds the keys to the whole transcript (both
/// static keys, both offers, the prologue) and the AEAD label to the AEAD chosen.
pub(crate) fn derive_from_noise(
    noise_i2t: &[u8; KEY_LEN],
    noise_t2i: &[u8; KEY_LEN],
    handshake_hash: &[u8],
    aead_label: &[u8],
) -> SessionKeys {
    let mut ikm = Zeroizing::new([0u8; 2 * KEY_LEN]);
    ikm[..KEY_LEN].copy_from_slice(noise_i2t);
    ikm[KEY_LEN..].copy_from_slice(noise_t2i);
    let hk = Hkdf::<Sha256>::new(Some(handshake_hash), &ikm[..]);
    let mut okm = Zeroizing::new([0u8; OKM_LEN]);
    hk.expand_multi_info(&[E2E_LABEL, aead_label], &mut okm[..])
        .expect("192 bytes is within HKDF-SHA256's 8160-byte limit");
    split_okm(&okm)
}

/// Six keys: encryption, MAC and ratchet secret per direction.
const OKM_LEN: usize = 6 * KEY_LEN;

/// `k_enc(i->t) k_enc(t->i) k_mac(i->t) k_mac(t->i) k_ratchet(i->t) k_ratchet(t->i)`.
fn split_okm(okm: &[u8; OKM_LEN]) -> SessionKeys {
    let key = |i: usize| {
        let mut k = [0u8; KEY_LEN];
        k.copy_from_slice(&okm[i * KEY_LEN..(i + 1) * KEY_LEN]);
        k
    };
    SessionKeys {
        initiator_to_target: DirectionKeys {
            enc: key(0),
            mac: key(2),
            ratchet: key(4),
        },
        target_to_initiator: DirectionKeys {
            enc: key(1),
            mac: key(3),
            ratchet: key(5),
        },
    }
}

/// `SHA-256(k_enc || pn as u64 BE)[..16]`: modes 1 and 2 key every packet afresh, so no keystream
/// (RC4) or block (XXTEA) is ever reused under one key even though neither cipher takes a nonce.
pub(crate) fn packet_key(k_enc: &[u8; KEY_LEN], pn: u64) -> Zeroizing<[u8; PACKET_KEY_LEN]> {
    let mut digest = Sha256::new()
        .chain_update(k_enc)
        .chain_update(pn.to_be_bytes())
        .finalize();
    let mut key = Zeroizing::new([0u8; PACKET_KEY_LEN]);
    key.copy_from_slice(&digest[..PACKET_KEY_LEN]);
    digest.as_mut_slice().zeroize();
    key
}

/// HMAC over the concatenation of `parts`, without building the concatenation.
pub(crate) fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2202 test case 2 and RFC 4231 test case 2 (key "Jefe"), split into parts to check that
    /// feeding parts equals feeding the concatenation.
    #[test]
    fn hmacs_match_rfc_vectors() {
        let parts: [&[u8]; 2] = [b"what do ya want ", b"for nothing?"];
        assert_eq!(
            hmac_sha1(b"Jefe", &parts),
            crate::crypto::selftest::hex::<20>(b"effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        );
        assert_eq!(
            hmac_sha256(b"Jefe", &parts),
            crate::crypto::selftest::hex::<32>(
                b"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
            )
        );
    }

    fn input<'a>(secret: &'a [u8; 32], mode: u8, n: &'a [u8; 16], e: &'a [u8; 32]) -> KeyInput<'a> {
        KeyInput {
            session_secret: secret,
            dh: &[],
            mode,
            nonce_i: n,
            nonce_t: n,
            eph_i: e,
            eph_t: e,
            aead_label: b"",
        }
    }

    #[test]
    fn four_keys_are_distinct_and_bound_to_every_input() {
        let (s, n, e) = ([7u8; 32], [1u8; 16], [2u8; 32]);
        let k = derive(&input(&s, 3, &n, &e));
        let all = [
            k.initiator_to_target.enc,
            k.target_to_initiator.enc,
            k.initiator_to_target.mac,
            k.target_to_initiator.mac,
            k.initiator_to_target.ratchet,
            k.target_to_initiator.ratchet,
        ];
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                assert_ne!(all[i], all[j]);
            }
        }
        let other_mode = derive(&input(&s, 2, &n, &e));
        assert_ne!(other_mode.initiator_to_target.enc, all[0]);
        let other_secret = derive(&input(&[8u8; 32], 3, &n, &e));
        assert_ne!(other_secret.initiator_to_target.enc, all[0]);
        let mut with_dh = input(&s, 3, &n, &e);
        with_dh.dh = &[9u8; 32];
        assert_ne!(derive(&with_dh).initiator_to_target.enc, all[0]);
        let mut with_aead = input(&s, 3, &n, &e);
        with_aead.aead_label = b"AES-256-GCM";
        assert_ne!(derive(&with_aead).initiator_to_target.enc, all[0]);
    }

    #[test]
    fn packet_keys_differ_per_packet_number() {
        let k = [3u8; 32];
        assert_ne!(*packet_key(&k, 0), *packet_key(&k, 1));
        assert_eq!(*packet_key(&k, 1), *packet_key(&k, 1));
        // SHA-256 of 32 bytes of 0x03 then 8 zero bytes is the definition; compare with sha2 directly.
        let mut m = k.to_vec();
        m.extend_from_slice(&7u64.to_be_bytes());
        assert_eq!(*packet_key(&k, 7), Sha256::digest(&m)[..16]);
    }
}
