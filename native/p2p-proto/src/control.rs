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

/// From a peer to the server. `Debug` hides the device secret (see the impl below).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Initiator: authenticate a user.
    Login {
        user: String,
        credential: Credential,
        /// This installation's static public key (base64), for the end-to-end handshake: the server
        /// hands it to the targets this login connects to. Absent from clients without keys.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        initiator_key: Option<String>,
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
        /// The device's static public key (base64), for the end-to-end handshake: the server hands
        /// it to initiators connecting to this device. Absent from targets without keys.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device_key: Option<String>,
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
    /// Anyone (no login needed): where are your UDP probe ports? Answered by `ProbeAddresses`; the
    /// network self-test asks, so that it probes this server's ports and not the default ones.
    ProbeAddresses,
}

/// From the server to a peer. `Debug` hides the auth hash (see the impl below).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
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
    /// The server's three UDP probe addresses as this client reaches them, in the server's order: the
    /// base port (also the relay), a second port on the same address, a port on a second address.
    ProbeAddresses {
        addrs: Vec<SocketAddr>,
    },
}

// Messages end up in logs and error texts as `{:?}` ("unexpected server message ..."), so their Debug
// forms must never show a credential: these impls are the derived ones with the secrets redacted.
impl std::fmt::Debug for ClientMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientMsg::Login {
                user,
                credential,
                initiator_key,
            } => f
                .debug_struct("Login")
                .field("user", user)
                .field("credential", credential)
                .field("initiator_key", initiator_key)
                .finish(),
            ClientMsg::CreateAuthHash { label } => f
                .debug_struct("CreateAuthHash")
                .field("label", label)
                .finish(),
            ClientMsg::Connect {
                uid,
                mode,
                local_candidates,
            } => f
                .debug_struct("Connect")
                .field("uid", uid)
                .field("mode", mode)
                .field("local_candidates", local_candidates)
                .finish(),
            ClientMsg::Register {
                uid,
                secret: _,
                application_type,
                local_candidates,
                device_key,
            } => f
                .debug_struct("Register")
                .field("uid", uid)
                .field("secret", &"<redacted>")
                .field("application_type", application_type)
                .field("local_candidates", local_candidates)
                .field("device_key", device_key)
                .finish(),
            ClientMsg::Accept { session_id } => f
                .debug_struct("Accept")
                .field("session_id", session_id)
                .finish(),
            ClientMsg::Reject { session_id, reason } => f
                .debug_struct("Reject")
                .field("session_id", session_id)
                .field("reason", reason)
                .finish(),
            ClientMsg::Ping => f.write_str("Ping"),
            ClientMsg::ProbeAddresses => f.write_str("ProbeAddresses"),
        }
    }
}

impl std::fmt::Debug for ServerMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerMsg::LoginOk { user } => f.debug_struct("LoginOk").field("user", user).finish(),
            ServerMsg::AuthHash { auth_hash: _ } => f
                .debug_struct("AuthHash")
                .field("auth_hash", &"<redacted>")
                .finish(),
            ServerMsg::Registered { uid } => {
                f.debug_struct("Registered").field("uid", uid).finish()
            }
            ServerMsg::Session(grant) => f.debug_tuple("Session").field(grant).finish(),
            ServerMsg::Incoming(grant) => f.debug_tuple("Incoming").field(grant).finish(),
            ServerMsg::Punch {
                session_id,
                candidates,
            } => f
                .debug_struct("Punch")
                .field("session_id", session_id)
                .field("candidates", candidates)
                .finish(),
            ServerMsg::Error { code, message } => f
                .debug_struct("Error")
                .field("code", code)
                .field("message", message)
                .finish(),
            ServerMsg::Pong => f.write_str("Pong"),
            ServerMsg::ProbeAddresses { addrs } => f
                .debug_struct("ProbeAddresses")
                .field("addrs", addrs)
                .finish(),
        }
    }
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
    /// The other peer's static public key (base64) as the server knows it: in `Session` the device's,
    /// in `Incoming` the initiator's. Absent when that peer has no key (an older client). A hint:
    /// each side checks the key the peer proves against what it trusts (docs/E2E-TRUST.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_key: Option<String>,
    /// The relay takes authenticated binds and releases (`RelayBindAuth`, `RelayReleaseAuth`), so the
    /// peer never sends its token on UDP. False (absent) from an older server: the clear form.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub relay_auth: bool,
    /// The relay forwards data packets of key phase 1 (kinds 0x18/0x19), so mode 3 peers may update
    /// their keys within the session. False (absent) from an older server, whose relay drops those
    /// kinds: then the peers announce no key updates and never make one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key_phases: bool,
}

impl std::fmt::Debug for SessionGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionGrant")
            .field("session_id", &format_args!("{:016x}", self.session_id))
            .field("uid", &self.uid)
            .field("mode", &self.mode)
            .field("relay_addr", &self.relay_addr)
            .field("user", &self.user)
            .field("peer_key", &self.peer_key)
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
    /// A target registered with another static key than the one recorded for its UID, and the
    /// administrator did not allow a rotation (`p2p-server device rotate-key`).
    KeyChanged,
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
            initiator_key: None,
        };
        assert!(!format!("{m:?}").contains("sup3r"));
        let r = ClientMsg::Register {
            uid: Uid([1; 8]),
            secret: "devsekret".into(),
            application_type: 28,
            local_candidates: vec![],
            device_key: None,
        };
        assert!(!format!("{r:?}").contains("devsekret"));
        let h = ServerMsg::AuthHash {
            auth_hash: "id.hashsekret".into(),
        };
        assert!(!format!("{h:?}").contains("hashsekret"));
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
