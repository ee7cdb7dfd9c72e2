//! Messages of the control channel between a peer (initiator or target) and the rendezvous server.
//!
//! The channel is a TCP stream carrying a Noise `NK` handshake (the client pins the server's static key,
//! printed by `p2p-server init`) and then Noise transport messages. Each frame on the wire is a 2-byte
//! big-endian length followed by that many bytes of Noise message; each decrypted message is one JSON
//! object of [`ClientMsg`] or [`ServerMsg`]. See `docs/PROTOCOL.md`.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::{EncryptionMode, Uid};

/// The Noise pattern of the control channel.
pub const NOISE_PATTERN: &str = "Noise_NK_25519_ChaChaPoly_BLAKE2s";
/// Largest Noise message (the Noise spec's limit).
pub const MAX_FRAME: usize = 65535;

/// How a user proves who they are.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    Password(String),
    /// A derived credential from `connectd --auth-hash`: `<id>.<secret>`, bound to one server and revocable.
    AuthHash(String),
}

impl std::fmt::Debug for Credential {
    // Never print the secret, even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Password(_) => f.write_str("Password(<redacted>)"),
            Credential::AuthHash(_) => f.write_str("AuthHash(<redacted>)"),
        }
    }
}

/// From a peer to the server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Initiator: authenticate a user.
    Login {
        user: String,
        credential: Credential,
    },
    /// Initiator (after `Login`): issue a revocable auth hash for this user on this server.
    CreateAuthHash {
        label: String,
    },
    /// Initiator (after `Login`): ask for a session with a device.
    Connect {
        uid: Uid,
        mode: EncryptionMode,
        /// Addresses of the initiator's session socket on its own interfaces (host candidates).
        local_candidates: Vec<SocketAddr>,
    },
    /// Target: register a device with its secret. The connection then stays open for `Incoming`.
    Register {
        uid: Uid,
        secret: String,
        application_type: u16,
        /// Host candidates of the target's UDP socket.
        local_candidates: Vec<SocketAddr>,
    },
    /// Target: answer to `Incoming`.
    Accept {
        session_id: u64,
    },
    Reject {
        session_id: u64,
        reason: String,
    },
    Ping,
}

/// From the server to a peer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    LoginOk {
        user: String,
    },
    AuthHash {
        auth_hash: String,
    },
    Registered {
        uid: Uid,
    },
    /// Initiator: the session is set up; bind the relay and start the handshake.
    Session(SessionGrant),
    /// Target: an initiator wants a session.
    Incoming(SessionGrant),
    /// Both: the other peer's candidates are known; start punching.
    Punch {
        session_id: u64,
        candidates: Vec<SocketAddr>,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    Pong,
}

/// What both peers need to run one session. The secret is fresh per session and only ever travels
/// inside the encrypted control channel.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionGrant {
    pub session_id: u64,
    pub uid: Uid,
    pub mode: EncryptionMode,
    /// 32 random bytes, hex: authenticates the peer handshake and keys modes 1 and 2.
    pub session_secret: String,
    /// 16 random bytes, hex: proves to the relay that a `RelayBind` comes from this peer.
    pub relay_token: String,
    /// The server's relay (UDP) address as the server sees it.
    pub relay_addr: SocketAddr,
    /// Initiator's user name (for the target's log).
    pub user: String,
}

impl std::fmt::Debug for SessionGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionGrant")
            .field("session_id", &format_args!("{:016x}", self.session_id))
            .field("uid", &self.uid)
            .field("mode", &self.mode)
            .field("relay_addr", &self.relay_addr)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Stable error codes of the control protocol; each maps to a connectd exit code in `p2p-net`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No such user.
    BadUser,
    /// Wrong password, or a revoked or unknown auth hash.
    AuthFailed,
    /// Too many failed logins from this user or address.
    Throttled,
    /// No device has this UID.
    UnknownUid,
    /// The device exists but is not shared with this user.
    NotShared,
    /// The device is not registered right now.
    DeviceOffline,
    /// A target presented the wrong device secret.
    BadSecret,
    /// The target did not answer or refused.
    SessionFailed,
    /// A message out of order or malformed.
    BadRequest,
    /// A server limit was hit (sessions per user, pending handshakes...).
    LimitReached,
    Internal,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_debug_never_shows_secret() {
        let c = Credential::Password("sup3rsekret!".into());
        assert!(!format!("{c:?}").contains("sup3r"));
        let m = ClientMsg::Login {
            user: "u".into(),
            credential: c,
        };
        assert!(!format!("{m:?}").contains("sup3r"));
    }

    #[test]
    fn messages_round_trip_as_tagged_json() {
        let m = ClientMsg::Connect {
            uid: "80:00:00:00:01:00:0A:C2".parse().unwrap(),
            mode: EncryptionMode::Rc4,
            local_candidates: vec!["127.0.0.1:4000".parse().unwrap()],
        };
        let j = serde_json::to_string(&m).unwrap();
        assert!(j.contains("\"type\":\"connect\""), "{j}");
        assert_eq!(serde_json::from_str::<ClientMsg>(&j).unwrap(), m);
    }
}
