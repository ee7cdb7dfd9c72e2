//! Long-term X25519 keys of devices and initiator installations, and their fingerprints.
//!
//! The secret half never leaves the machine that made it; the public half goes to the server (which
//! introduces the peers) and is pinned by initiators. A fingerprint is what people compare and what a
//! provisioning file can carry to pin a device before the first connection: `SHA256:` and the unpadded
//! base64 of SHA-256 of the public key, the form ssh prints.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Length of a static secret or public key.
pub const STATIC_KEY_LEN: usize = 32;
const FINGERPRINT_PREFIX: &str = "SHA256:";
/// Base64 characters of the short form: 66 bits, enough to tell keys apart on screen, never to pin.
const SHORT_CHARS: usize = 11;

/// A static key pair. The secret is wiped on drop (x25519-dalek zeroizes `StaticSecret`).
#[derive(Clone)]
pub struct StaticKey {
    secret: StaticSecret,
    public: PublicStaticKey,
}

impl StaticKey {
    /// `secret` is 32 bytes from the caller's CSPRNG, or a stored key read back.
    pub fn from_secret_bytes(secret: [u8; STATIC_KEY_LEN]) -> StaticKey {
        let secret = StaticSecret::from(secret);
        let public = PublicStaticKey(PublicKey::from(&secret).to_bytes());
        StaticKey { secret, public }
    }

    pub fn public(&self) -> PublicStaticKey {
        self.public
    }

    /// The secret bytes, to store the key or hand it to the Noise handshake.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; STATIC_KEY_LEN]> {
        Zeroizing::new(self.secret.to_bytes())
    }
}

/// The secret never appears in logs.
impl fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKey")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The public half of a [`StaticKey`]: what the server records and the initiator pins.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicStaticKey(pub [u8; STATIC_KEY_LEN]);

impl PublicStaticKey {
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint(Sha256::digest(self.0).into())
    }

    /// Standard base64 with padding (44 characters), the form in files and control messages.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    pub fn from_base64(text: &str) -> Option<PublicStaticKey> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()?;
        Some(PublicStaticKey(bytes.try_into().ok()?))
    }
}

impl fmt::Debug for PublicStaticKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicStaticKey({})", self.fingerprint())
    }
}

/// SHA-256 of a public key. `Display` is the full form (`SHA256:` + 43 base64 characters).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The first 66 bits (`SHA256:` + 11 characters), for tables and log lines. Pins always use the
    /// full form.
    pub fn short(&self) -> String {
        let full = self.to_string();
        full[..FINGERPRINT_PREFIX.len() + SHORT_CHARS].to_string()
    }

    pub fn matches(&self, key: &PublicStaticKey) -> bool {
        key.fingerprint() == *self
    }

    /// A key written as users copy it: its base64 public key or its fingerprint.
    pub fn of_key_or_fingerprint(text: &str) -> Option<Fingerprint> {
        let text = text.trim();
        PublicStaticKey::from_base64(text)
            .map(|key| key.fingerprint())
            .or_else(|| text.parse().ok())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{FINGERPRINT_PREFIX}{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("not a key fingerprint (expected SHA256: and 43 base64 characters): {0:?}")]
pub struct BadFingerprint(pub String);

impl FromStr for Fingerprint {
    type Err = BadFingerprint;

    /// The full form only: a short one would let a key with a colliding prefix pass.
    fn from_str(text: &str) -> Result<Fingerprint, BadFingerprint> {
        let bad = || BadFingerprint(text.to_string());
        let encoded = text
            .trim()
            .strip_prefix(FINGERPRINT_PREFIX)
            .ok_or_else(bad)?;
        let bytes = STANDARD_NO_PAD.decode(encoded).map_err(|_| bad())?;
        Ok(Fingerprint(bytes.try_into().map_err(|_| bad())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_is_x25519_of_the_secret() {
        // RFC 7748 section 6.1: Alice's private and public keys.
        let secret = crate::crypto::selftest::hex::<32>(
            b"77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        );
        let public = crate::crypto::selftest::hex::<32>(
            b"8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
        );
        assert_eq!(StaticKey::from_secret_bytes(secret).public().0, public);
    }

    #[test]
    fn fingerprint_is_sha256_of_the_public_key_in_ssh_form() {
        let key = PublicStaticKey([0u8; 32]);
        // SHA-256 of 32 zero bytes (66687aad...), unpadded base64, as `ssh-keygen -l` would print it.
        assert_eq!(
            key.fingerprint().to_string(),
            "SHA256:Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU"
        );
        assert_eq!(key.fingerprint().short(), "SHA256:Zmh6rfhivXd");
    }

    #[test]
    fn fingerprints_parse_back_and_short_or_garbled_ones_are_refused() {
        let fp = StaticKey::from_secret_bytes([5u8; 32])
            .public()
            .fingerprint();
        assert_eq!(fp.to_string().parse::<Fingerprint>(), Ok(fp));
        assert!(fp.short().parse::<Fingerprint>().is_err());
        assert!(fp.to_string()[7..].parse::<Fingerprint>().is_err());
        assert!("SHA256:!!!".parse::<Fingerprint>().is_err());
    }

    #[test]
    fn public_keys_round_trip_through_base64() {
        let key = StaticKey::from_secret_bytes([9u8; 32]).public();
        assert_eq!(PublicStaticKey::from_base64(&key.to_base64()), Some(key));
        assert_eq!(PublicStaticKey::from_base64("AAAA"), None);
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let key = StaticKey::from_secret_bytes([0x42u8; 32]);
        let shown = format!("{key:?}");
        assert!(shown.contains("<redacted>") && shown.contains("SHA256:"));
        assert!(!shown.contains("66, 66"));
    }
}
