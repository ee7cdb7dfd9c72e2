//! The status snapshot of one tunnel: what `connectd -s`, the C ABI's JSON and `Get-P2PConnection` show.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// How often a running session's figures are refreshed: `bytes_sent` and `bytes_received` in
/// [`Tunnel::status`](crate::Tunnel::status) are at most this far behind the traffic while the tunnel
/// runs, and exact once it has stopped. `Get-P2PConnection`'s help documents it (twice this, to allow for
/// a busy machine).
pub const COUNTER_REFRESH: Duration = Duration::from_millis(250);

/// Silence after which a connected tunnel reports [`TunnelState::Degraded`]. Each side sends a keepalive
/// every 2 s when idle and the other acknowledges it, so a live peer is heard about every second: 5 s
/// of nothing is 4 or more packets in a row lost, a dead device or a broken path rather than a quiet
/// one (on a path losing 1% that takes about 10^-8 odds, so lossy links do not flap), and it leaves
/// 15 s before the session's 20 s idle timeout ends it. (A direct path that dies is Degraded for the
/// moment between this and the fall-back to the relay at 6.5 s: streams did stall meanwhile.) Checked
/// every [`COUNTER_REFRESH`], so the state changes at most that much later. `Get-P2PConnection`'s help
/// and about_RemoteItP2P name the figure: change them with it.
pub const DEGRADED_AFTER: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TunnelState {
    /// Logging in, asking for the device, handshaking.
    Connecting,
    /// The session is up: streams flow.
    Connected,
    /// The session is up but nothing was heard from the device for [`DEGRADED_AFTER`]: streams may stall.
    /// It goes back to `Connected` when the device is heard again, or to `Reconnecting` / `Failed` when
    /// the session times out. Counts as up wherever `Connected` does (see [`TunnelState::is_up`]).
    Degraded,
    /// `autoconnect 2`: the session was lost and is being re-established; the local port stays open.
    Reconnecting,
    /// Ended by `stop`, a signal, the lifetime or idle limit.
    Stopped,
    /// Ended by an error (see `last_error`).
    Failed,
}

impl TunnelState {
    pub fn is_final(self) -> bool {
        matches!(self, TunnelState::Stopped | TunnelState::Failed)
    }

    /// The session is up (`Connected` or `Degraded`): new connections are carried over it.
    pub fn is_up(self) -> bool {
        matches!(self, TunnelState::Connected | TunnelState::Degraded)
    }
}

/// Which way the session's packets go right now, as the status reports it: the kind only (the peer's
/// address is [`TunnelStatus::peer_endpoint`]). Not `p2p_proto::session::PathKind`, the session's own
/// notice, which carries the direct address; the tunnel turns one into the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathKind {
    Direct,
    Relayed,
    /// Direct, through a port mapping obtained from the router (NAT-PMP / UPnP).
    PortMapped,
}

/// The IP version a direct path runs over (`Get-P2PConnection`'s `PathFamily`, `path=direct family=IPv6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathFamily {
    IPv4,
    IPv6,
}

impl PathFamily {
    /// The family of a peer's address as the session sees it (an IPv4-mapped one is IPv4).
    pub fn of(addr: std::net::SocketAddr) -> PathFamily {
        if addr.ip().to_canonical().is_ipv4() {
            PathFamily::IPv4
        } else {
            PathFamily::IPv6
        }
    }
}

/// The names of the ends that are not errors (`LastError::kind`).
pub mod end_reason {
    /// The configured lifetime (`lifetime` minutes) ended.
    pub const LIFETIME_ENDED: &str = "LifetimeEnded";
    /// No traffic for the configured idle limit.
    pub const IDLE_LIMIT: &str = "IdleLimit";
    /// The target daemon was stopped (a signal, or its owner's stop).
    pub const STOPPED: &str = "Stopped";
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    /// Stable identifier: an `ErrorKind`'s name (e.g. "AuthFailed"), or one of [`end_reason`]'s names
    /// for an end that is not an error.
    pub kind: String,
    pub message: String,
}

impl From<&Error> for LastError {
    fn from(e: &Error) -> Self {
        LastError {
            kind: e.kind.name().to_string(),
            message: e.message.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TunnelStatus {
    pub name: String,
    pub device_id: String,
    pub state: TunnelState,
    /// `address:port` the user points ssh or a browser at.
    pub local_endpoint: String,
    pub path: Option<PathKind>,
    /// Which IP version the direct (or port-mapped) path uses; `None` while relayed or not connected.
    #[serde(default)]
    pub path_family: Option<PathFamily>,
    /// The encryption mode's name (mode 3 is "ChaCha20Poly1305" whichever AEAD it negotiates).
    pub encryption: String,
    /// Mode 3: the AEAD negotiated with the device ("AES-256-GCM" or "ChaCha20-Poly1305"), once a
    /// session is up; `None` in modes 0-2 and before the first session.
    #[serde(default)]
    pub aead: Option<String>,
    /// Mode 3 end to end: the fingerprint of the key the device proved (`SHA256:...`), once a
    /// session is up; `None` in a legacy session (the device has no key) and before the first one.
    #[serde(default)]
    pub peer_fingerprint: Option<String>,
    pub peer_endpoint: Option<String>,
    pub session_id: Option<String>,
    /// Port of our UDP session socket (what a firewall rule or a capture needs).
    pub local_udp_port: Option<u16>,
    /// Bytes from local TCP clients carried to the device (first transmissions only).
    pub bytes_sent: u64,
    /// Bytes from the device delivered toward local TCP clients.
    pub bytes_received: u64,
    pub rtt_ms: Option<f64>,
    pub packets_lost: u64,
    pub streams_open: u32,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub connected_at: Option<String>,
    /// Milliseconds since the last packet from the device, while the session is up (`Connected` or
    /// `Degraded`; refreshed every [`COUNTER_REFRESH`]); `None` while no session is up.
    pub peer_silent_ms: Option<u64>,
    /// Mode 3: how often this side and the device moved their direction of the current session to a
    /// new key (every 2 minutes or gibibyte, when both ends support it); 0 otherwise.
    #[serde(default)]
    pub key_updates_sent: u64,
    #[serde(default)]
    pub key_updates_received: u64,
    /// Times the tunnel lost its session (or failed to set one up) and started trying again
    /// (`autoconnect 2`): attempts, not successful reconnections.
    pub reconnect_attempts: u32,
    pub last_error: Option<LastError>,
}

/// The state of a target (device) daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetState {
    /// Connecting to the server and registering (first time).
    Connecting,
    /// Registered: initiators can reach the device.
    Registered,
    /// The control connection was lost; reconnecting with backoff. Running sessions go on.
    Reconnecting,
    /// Ended by `stop`.
    Stopped,
    /// Ended by an error that retrying cannot fix (wrong secret, unknown UID, wrong server key).
    Failed,
}

impl TargetState {
    pub fn is_final(self) -> bool {
        matches!(self, TargetState::Stopped | TargetState::Failed)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetStatus {
    pub uid: String,
    pub state: TargetState,
    /// `address:port` of the local service every stream is forwarded to.
    pub service: String,
    pub server: String,
    /// Port of the UDP socket shared by every session.
    pub local_udp_port: Option<u16>,
    pub sessions_open: u32,
    pub sessions_total: u64,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub registered_at: Option<String>,
    /// Successful registrations after the first one (server restarts, network outages): failed
    /// attempts in between are not counted.
    pub reregistrations: u32,
    pub last_error: Option<LastError>,
}
