//! Device UIDs in connectd's form: eight hex bytes separated by colons, e.g. `80:00:00:00:01:00:0A:C2`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A device (service) address. Parsing is case-insensitive; display is upper case, as connectd prints it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uid(pub [u8; 8]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid device UID '{0}': expected eight hex bytes separated by colons, like 80:00:00:00:01:00:0A:C2")]
pub struct UidError(pub String);

impl FromStr for Uid {
    type Err = UidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || UidError(s.chars().take(64).collect());
        let mut out = [0u8; 8];
        let mut parts = s.trim().split(':');
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(err)?;
            if part.len() != 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Uid(out))
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uid({self})")
    }
}

impl Serialize for Uid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Uid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_connectd_form() {
        let uid: Uid = "80:00:00:00:01:00:0a:c2".parse().unwrap();
        assert_eq!(uid.0, [0x80, 0, 0, 0, 1, 0, 0x0a, 0xc2]);
        assert_eq!(uid.to_string(), "80:00:00:00:01:00:0A:C2");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "80:00",
            "80:00:00:00:01:00:0A:C2:00",
            "8:00:00:00:01:00:0A:C2",
            "zz:00:00:00:01:00:0A:C2",
            "80-00-00-00-01-00-0A-C2",
        ] {
            assert!(bad.parse::<Uid>().is_err(), "{bad} should fail");
        }
    }
}
