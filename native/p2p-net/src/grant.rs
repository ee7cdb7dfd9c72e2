//! A session grant from the server, decoded into the binary values the endpoint needs.

use std::fmt;
use std::net::SocketAddr;

use p2p_proto::control::SessionGrant;
use p2p_proto::crypto::PublicStaticKey;
use p2p_proto::{EncryptionMode, Uid};

use crate::error::{Error, ErrorKind, Result};

/// A [`SessionGrant`] with its hex fields decoded and its relay address made reachable.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedGrant {
    pub session_id: u64,
    pub uid: Uid,
    pub mode: EncryptionMode,
    pub session_secret: [u8; 32],
    pub relay_token: [u8; 16],
    /// Where to send relay binds and relayed datagrams.
    pub relay: SocketAddr,
    /// The initiator's user name.
    pub user: String,
    /// The other peer's static public key as the server introduced it (none: it has no key).
    pub peer_key: Option<PublicStaticKey>,
    /// The relay takes authenticated binds and releases.
    pub relay_auth: bool,
    /// The relay forwards data packets of key phase 1: mode 3 sessions may update their keys.
    pub key_phases: bool,
}

impl fmt::Debug for ParsedGrant {
    // The secret and the token never appear in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedGrant")
            .field("session_id", &format_args!("{:016x}", self.session_id))
            .field("uid", &self.uid)
            .field("mode", &self.mode)
            .field("relay", &self.relay)
            .field("user", &self.user)
            .field("peer_key", &self.peer_key.map(|k| k.fingerprint()))
            .finish_non_exhaustive()
    }
}

impl ParsedGrant {
    /// Decodes `grant`. `server_addr` is the address we reached the server at: a server listening on
    /// every interface reports its relay as `0.0.0.0:port` (or `[::]:port`), which means "my address".
    ///
    /// A malformed grant is the server's fault: [`ErrorKind::SessionFailed`], naming the bad field.
    pub fn parse(grant: &SessionGrant, server_addr: SocketAddr) -> Result<ParsedGrant> {
        let session_secret = decode_hex::<32>("session secret", &grant.session_secret)?;
        let relay_token = decode_hex::<16>("relay token", &grant.relay_token)?;
        if grant.relay_addr.port() == 0 {
            return Err(malformed("the relay address has port 0"));
        }
        let relay = if grant.relay_addr.ip().is_unspecified() {
            SocketAddr::new(server_addr.ip(), grant.relay_addr.port())
        } else {
            grant.relay_addr
        };
        let peer_key = grant
            .peer_key
            .as_deref()
            .map(|k| {
                PublicStaticKey::from_base64(k)
                    .ok_or_else(|| malformed("the peer key is not base64 of 32 bytes"))
            })
            .transpose()?;
        Ok(ParsedGrant {
            session_id: grant.session_id,
            uid: grant.uid,
            mode: grant.mode,
            session_secret,
            relay_token,
            relay,
            user: grant.user.clone(),
            peer_key,
            relay_auth: grant.relay_auth,
            key_phases: grant.key_phases,
        })
    }
}

fn malformed(why: &str) -> Error {
    Error::new(
        ErrorKind::SessionFailed,
        format!("the server sent a malformed session grant: {why}"),
    )
}

/// Decodes exactly `N` bytes of hex; the error names the field and never echoes its value.
fn decode_hex<const N: usize>(field: &str, text: &str) -> Result<[u8; N]> {
    let bytes = hex::decode(text.trim())
        .map_err(|e| malformed(&format!("the {field} is not hex ({e})")))?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
        malformed(&format!(
            "the {field} has {} bytes, expected {N}",
            bytes.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> SessionGrant {
        SessionGrant {
            session_id: 0xabcdef,
            uid: "80:00:00:00:01:00:0A:C2".parse().unwrap(),
            mode: EncryptionMode::ChaCha20Poly1305,
            session_secret: "11".repeat(32),
            relay_token: "22".repeat(16),
            relay_addr: "0.0.0.0:5959".parse().unwrap(),
            user: "bob".into(),
            peer_key: None,
            relay_auth: false,
            key_phases: false,
        }
    }

    fn server() -> SocketAddr {
        "192.0.2.10:5980".parse().unwrap()
    }

    #[test]
    fn decodes_and_fills_in_the_relay_ip() {
        let g = ParsedGrant::parse(&grant(), server()).unwrap();
        assert_eq!(g.session_secret, [0x11; 32]);
        assert_eq!(g.relay_token, [0x22; 16]);
        assert_eq!(g.relay, "192.0.2.10:5959".parse().unwrap());
        assert_eq!(g.user, "bob");
    }

    #[test]
    fn keeps_a_specific_relay_address() {
        let mut gr = grant();
        gr.relay_addr = "198.51.100.3:7000".parse().unwrap();
        let g = ParsedGrant::parse(&gr, server()).unwrap();
        assert_eq!(g.relay, gr.relay_addr);
    }

    #[test]
    fn bad_fields_are_named_and_not_echoed() {
        type Mutation = fn(&mut SessionGrant);
        let cases: Vec<(Mutation, &str)> = vec![
            (
                |g| g.session_secret = "zz-secret-zz".into(),
                "session secret is not hex",
            ),
            (
                |g| g.session_secret = "11".repeat(31),
                "session secret has 31 bytes, expected 32",
            ),
            (|g| g.relay_token = "abc".into(), "relay token is not hex"),
            (
                |g| g.relay_token = String::new(),
                "relay token has 0 bytes, expected 16",
            ),
            (|g| g.relay_addr = "0.0.0.0:0".parse().unwrap(), "port 0"),
            (
                |g| g.peer_key = Some("not a key".into()),
                "peer key is not base64",
            ),
        ];
        for (mutate, expected) in cases {
            let mut g = grant();
            mutate(&mut g);
            let e = ParsedGrant::parse(&g, server()).unwrap_err();
            assert_eq!(e.kind, ErrorKind::SessionFailed);
            assert!(e.message.contains(expected), "{e}");
            assert!(!e.message.contains("zz-secret-zz"), "{e}");
        }
    }

    #[test]
    fn debug_hides_the_secrets() {
        let g = ParsedGrant::parse(&grant(), server()).unwrap();
        let d = format!("{g:?}");
        assert!(!d.contains("17, 17") && !d.contains("1111"), "{d}");
    }

    /// An older server's relay drops data of key phase 1: its grants (without the field) must not
    /// let the session update its keys.
    #[test]
    fn key_phases_come_only_from_a_server_that_announces_them() {
        let old = serde_json::to_value(grant()).unwrap();
        assert!(old.get("key_phases").is_none());
        let old: SessionGrant = serde_json::from_value(old).unwrap();
        assert!(!ParsedGrant::parse(&old, server()).unwrap().key_phases);
        let new = SessionGrant {
            key_phases: true,
            ..grant()
        };
        let new: SessionGrant = serde_json::from_value(serde_json::to_value(new).unwrap()).unwrap();
        assert!(ParsedGrant::parse(&new, server()).unwrap().key_phases);
    }
}
