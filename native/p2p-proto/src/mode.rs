//! Encryption modes, numbered as on connectd's command line.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Packet protection chosen for a session. Modes 0–2 exist for connectd compatibility and are weak;
/// mode 3 (X25519 + an AEAD) is the default wherever no mode is given. Mode 3 keeps the name
/// `ChaCha20Poly1305` (in JSON, status and `-Encryption`) although it negotiates AES-256-GCM where both
/// ends have AES instructions ([`crate::crypto::Aead`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum EncryptionMode {
    None = 0,
    Rc4 = 1,
    Xxtea = 2,
    #[default]
    ChaCha20Poly1305 = 3,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid encryption mode '{0}': use 0 (none), 1 (RC4), 2 (XXTEA) or 3 (ChaCha20-Poly1305)")]
pub struct ModeError(pub String);

impl EncryptionMode {
    pub const ALL: [EncryptionMode; 4] =
        [Self::None, Self::Rc4, Self::Xxtea, Self::ChaCha20Poly1305];

    pub fn from_number(n: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| *m as u8 == n)
    }

    /// The name used in status output, JSON and the PowerShell `-Encryption` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Rc4 => "RC4",
            Self::Xxtea => "XXTEA",
            Self::ChaCha20Poly1305 => "ChaCha20Poly1305",
        }
    }

    /// True for the modes kept only for compatibility: callers warn when one is chosen.
    pub fn is_weak(self) -> bool {
        self != Self::ChaCha20Poly1305
    }
}

impl fmt::Display for EncryptionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EncryptionMode {
    type Err = ModeError;
    /// Accepts the connectd number (`0`–`3`) or the name, case-insensitively (`aead` and `chacha` too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Ok(n) = t.parse::<u8>() {
            return Self::from_number(n).ok_or_else(|| ModeError(s.to_string()));
        }
        match t.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "rc4" => Ok(Self::Rc4),
            "xxtea" => Ok(Self::Xxtea),
            "chacha20poly1305" | "chacha20-poly1305" | "chacha" | "aead" => {
                Ok(Self::ChaCha20Poly1305)
            }
            _ => Err(ModeError(s.chars().take(64).collect())),
        }
    }
}

impl Serialize for EncryptionMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for EncryptionMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let text = match &v {
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) => s.clone(),
            _ => {
                return Err(serde::de::Error::custom(
                    "encryption mode must be a number or a name",
                ))
            }
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_aead_mode() {
        assert_eq!(EncryptionMode::default(), EncryptionMode::ChaCha20Poly1305);
        assert!(!EncryptionMode::default().is_weak());
    }

    #[test]
    fn parses_numbers_and_names() {
        assert_eq!("1".parse::<EncryptionMode>().unwrap(), EncryptionMode::Rc4);
        assert_eq!(
            "xxtea".parse::<EncryptionMode>().unwrap(),
            EncryptionMode::Xxtea
        );
        assert!("4".parse::<EncryptionMode>().is_err());
        let m: EncryptionMode = serde_json::from_str("2").unwrap();
        assert_eq!(m, EncryptionMode::Xxtea);
        assert_eq!(
            serde_json::to_string(&EncryptionMode::None).unwrap(),
            "\"None\""
        );
    }
}
