//! The configuration of one initiator tunnel and of one target, as every front end builds it:
//! connectd's command line, a provisioning file, the C ABI's JSON and the cmdlets' parameters.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use p2p_proto::control::Credential;
use p2p_proto::{EncryptionMode, Uid};
use serde::{Deserialize, Serialize};

/// connectd's `autoconnect`: 1 connects once and ends on a lost session, 2 also reconnects by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AutoConnect {
    #[default]
    Once,
    Reconnect,
}

/// One initiator tunnel. JSON form (the C ABI's `p2p_session_start` takes it):
/// `{"device_id":"80:00:00:00:01:00:0A:C2","user":"me@example.com","password":"...",
///   "server":"127.0.0.1:5980","server_key":"<base64>","local_port":33000}`; everything else optional.
///
/// `Debug` is written by hand so a logged config never shows the password or the auth hash.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InitiatorConfig {
    /// A name for the tunnel (cmdlets' `-Name`); defaults to the UID.
    #[serde(default)]
    pub name: Option<String>,
    pub device_id: Uid,
    pub user: String,
    /// Exactly one of `password` / `auth_hash` (see [`InitiatorConfig::credential`]).
    /// Never serialized, so status and JSON views of a config cannot leak it.
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// A credential that stands in for the password, so scripts and provisioning files need not hold it.
    ///
    /// connectd's `auth_hash` is a 40-hex-character value returned by remote.it's login API; how it is
    /// derived is not public, and it means nothing to our server. Ours has the form `<id>.<secret>`:
    /// - issued by our server after a password login: `connectd --auth-hash --user NAME` (the password is
    ///   read without echo) prints it;
    /// - random, not derived from the password, so it reveals nothing about the password and is useless
    ///   on any other server;
    /// - stored by the server only as a hash of the secret, so a copy of the server's database does not
    ///   yield working credentials;
    /// - revocable one by one, by its `<id>`: `p2p-server auth-hash revoke ID`.
    ///
    /// Never serialized (like `password`).
    #[serde(default, skip_serializing)]
    pub auth_hash: Option<String>,
    /// `host:port` of the server's control listener. Filled from `-y`, the environment or the file.
    #[serde(default)]
    pub server: Option<String>,
    /// The server's pinned static public key (base64 of 32 bytes).
    #[serde(default)]
    pub server_key: Option<String>,
    /// 0 picks a free port and reports it.
    #[serde(default)]
    pub local_port: u16,
    #[serde(default = "loopback")]
    pub bind_address: IpAddr,
    #[serde(default)]
    pub encryption: EncryptionMode,
    /// connectd's MAXOUTSTANDING / `max_depth`: packets that may always be unacknowledged, a floor under
    /// the adaptive, congestion-controlled window. `None`: the controller's own floor (4 packets).
    #[serde(default)]
    pub max_outstanding: Option<u32>,
    #[serde(default)]
    pub autoconnect: AutoConnect,
    /// Only this client address may use the local port (`-p`'s RESTRICT_IP; None or 0.0.0.0 = any).
    #[serde(default)]
    pub restrict_ip: Option<IpAddr>,
    /// End the tunnel after this many minutes (0 = never).
    #[serde(default)]
    pub lifetime_min: u32,
    /// End the tunnel after this many seconds without traffic (0 = never).
    #[serde(default)]
    pub idle_limit_sec: u32,
    /// This installation's static key for end-to-end sessions (created on first use, owner-only);
    /// `None`: the default path in the user's configuration directory. The pins (`known_devices`)
    /// live beside it.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The device's key as its owner read it on the device (`SHA256:...` fingerprint or the base64
    /// key): pinned before the first connection, so even that one need not trust the server.
    #[serde(default)]
    pub device_key: Option<String>,
    /// The fingerprint of a device's new key, after its owner checked it on the device: replaces the
    /// pin once the device proves that key.
    #[serde(default)]
    pub accept_key: Option<String>,
    /// Trust the key the server introduces for a device with no pin and no seed (then pin it), and
    /// run the legacy handshake when it introduces none: ssh's `accept-new`. Off: such a device is
    /// refused before any packet, as the server's word is all there would be to trust.
    #[serde(default)]
    pub trust_first_use: bool,
}

/// The default bind address of an initiator and destination of a target.
pub(crate) fn loopback() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// One target (device) daemon. `Debug` is written by hand so the device secret never shows.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub uid: Uid,
    /// The device secret (connectd's `password` key).
    #[serde(skip_serializing)]
    pub secret: String,
    #[serde(default)]
    pub server: Option<String>,
    #[serde(default)]
    pub server_key: Option<String>,
    /// The local service every stream is forwarded to.
    pub proxy_dest_ip: IpAddr,
    pub proxy_dest_port: u16,
    /// connectd's application type (ssh 28, web 7, https 33, vnc 4, rdp 5, tcp 1, smb 34).
    #[serde(default = "tcp_app")]
    pub application_type: u16,
    /// The device's static key for end-to-end sessions (created on first use, owner-only); `None`:
    /// the default path for this UID in the user's configuration directory.
    #[serde(default)]
    pub device_key_file: Option<PathBuf>,
    /// A file listing the initiator keys this device accepts (one fingerprint or base64 key per
    /// line, then an optional label; `#` comments), read again for every session. `None`: any
    /// initiator the server introduces. When set, only end-to-end sessions from a listed key are taken.
    #[serde(default)]
    pub authorized_initiators: Option<PathBuf>,
}

/// connectd's application type when none is given: plain TCP.
pub const DEFAULT_APPLICATION_TYPE: u16 = 1;

fn tcp_app() -> u16 {
    DEFAULT_APPLICATION_TYPE
}

/// Shows whether a secret is set, never what it is.
struct Redacted<'a>(&'a Option<String>);

impl std::fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Some(<redacted>)"),
            None => f.write_str("None"),
        }
    }
}

impl std::fmt::Debug for InitiatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured so a new field cannot be added without deciding here whether it is secret.
        let Self {
            name,
            device_id,
            user,
            password,
            auth_hash,
            server,
            server_key,
            local_port,
            bind_address,
            encryption,
            max_outstanding,
            autoconnect,
            restrict_ip,
            lifetime_min,
            idle_limit_sec,
            key_file,
            device_key,
            accept_key,
            trust_first_use,
        } = self;
        f.debug_struct("InitiatorConfig")
            .field("name", name)
            .field("device_id", device_id)
            .field("user", user)
            .field("password", &Redacted(password))
            .field("auth_hash", &Redacted(auth_hash))
            .field("server", server)
            .field("server_key", server_key)
            .field("local_port", local_port)
            .field("bind_address", bind_address)
            .field("encryption", encryption)
            .field("max_outstanding", max_outstanding)
            .field("autoconnect", autoconnect)
            .field("restrict_ip", restrict_ip)
            .field("lifetime_min", lifetime_min)
            .field("idle_limit_sec", idle_limit_sec)
            .field("key_file", key_file)
            .field("device_key", device_key)
            .field("accept_key", accept_key)
            .field("trust_first_use", trust_first_use)
            .finish()
    }
}

impl std::fmt::Debug for TargetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            uid,
            secret: _,
            server,
            server_key,
            proxy_dest_ip,
            proxy_dest_port,
            application_type,
            device_key_file,
            authorized_initiators,
        } = self;
        f.debug_struct("TargetConfig")
            .field("uid", uid)
            .field("secret", &format_args!("<redacted>"))
            .field("server", server)
            .field("server_key", server_key)
            .field("proxy_dest_ip", proxy_dest_ip)
            .field("proxy_dest_port", proxy_dest_port)
            .field("application_type", application_type)
            .field("device_key_file", device_key_file)
            .field("authorized_initiators", authorized_initiators)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("no credential: give a password or an auth_hash")]
    NoCredential,
    #[error("both a password and an auth_hash were given: use one")]
    TwoCredentials,
    #[error("no server: set it with -y host:port, --server, the environment P2P_SERVER, or the file's 'server' key")]
    NoServer,
    #[error("no server key: set it with --server-key, the environment P2P_SERVER_KEY, or the file's 'server_key' key")]
    NoServerKey,
    #[error("invalid server key: expected the base64 of 32 bytes as printed by 'p2p-server init'")]
    BadServerKey,
}

impl InitiatorConfig {
    pub fn credential(&self) -> Result<Credential, ConfigError> {
        match (&self.password, &self.auth_hash) {
            (Some(p), None) => Ok(Credential::Password(p.clone())),
            (None, Some(h)) => Ok(Credential::AuthHash(h.clone())),
            (None, None) => Err(ConfigError::NoCredential),
            (Some(_), Some(_)) => Err(ConfigError::TwoCredentials),
        }
    }

    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.device_id.to_string())
    }
}

/// Decodes a `server_key` value.
pub fn decode_server_key(text: &str) -> Result<[u8; 32], ConfigError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| ConfigError::BadServerKey)?;
    bytes.try_into().map_err(|_| ConfigError::BadServerKey)
}

/// Where to find the server: resolves `server`/`server_key` from the config, then the environment
/// (`P2P_SERVER`, `P2P_SERVER_KEY`), with a clear error when neither has it. `env` is injected for tests.
pub fn resolve_server(
    server: &Option<String>,
    server_key: &Option<String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(String, [u8; 32]), ConfigError> {
    let server = server
        .clone()
        .or_else(|| env("P2P_SERVER"))
        .filter(|s| !s.trim().is_empty())
        .ok_or(ConfigError::NoServer)?;
    let key = server_key
        .clone()
        .or_else(|| env("P2P_SERVER_KEY"))
        .ok_or(ConfigError::NoServerKey)?;
    Ok((server.trim().to_string(), decode_server_key(&key)?))
}
