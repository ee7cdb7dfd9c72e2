//! The control channel's error: one variant per way it fails, so each side decides by the variant (and
//! maps it to its own error) and the text is only for people.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use p2p_proto::control::ErrorCode;

use crate::control_channel::MAX_MESSAGE;

/// Which end of a control connection we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// We are the client, the peer is the server.
    Client,
    /// We are the server, the peer is a client.
    Server,
}

/// The other end of a control connection, named in errors ("server 192.0.2.1:5980" / "client
/// 198.51.100.4:40000").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Our side (the peer is the other one).
    pub side: Side,
    pub addr: SocketAddr,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.side {
            Side::Client => write!(f, "server {}", self.addr),
            Side::Server => write!(f, "client {}", self.addr),
        }
    }
}

/// A control channel failure. After [`LinkError::Malformed`], [`LinkError::TooLarge`] and
/// [`LinkError::Refused`] the connection is still usable; after the others it is not.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The client could not open a TCP connection to `server` (`why` says how it failed).
    #[error("cannot reach server {server}: {why}")]
    Unreachable { server: String, why: String },
    /// The stream has no peer address (it is not connected).
    #[error("{}", no_peer_addr(*side, source))]
    NoPeerAddr { side: Side, source: std::io::Error },
    /// The Noise handshake did not finish within `limit`.
    #[error("{}", timeout(peer, *limit))]
    Timeout { peer: Peer, limit: Duration },
    /// The handshake failed: the client pinned another key than the server's (or the peer is not a
    /// RemoteItP2P client or server).
    #[error("{}", key_mismatch(peer))]
    KeyMismatch { peer: Peer },
    /// The peer closed the connection.
    #[error("{peer} closed the control connection")]
    Closed { peer: Peer },
    /// Reading or writing the connection failed.
    #[error("control connection with {peer} failed: {source}")]
    Io { peer: Peer, source: std::io::Error },
    /// An earlier error left the connection unusable (a failed read or write, a torn frame).
    #[error("control connection with {peer} is unusable after an earlier error")]
    Unusable { peer: Peer },
    /// A frame did not decrypt: the connection is unusable from here on.
    #[error("control message from {peer} failed authentication")]
    Unauthenticated { peer: Peer },
    /// A message decrypted but is not valid JSON of the expected type; the frame was consumed and the
    /// connection stays usable.
    #[error("malformed control message from {peer}: {source}")]
    Malformed {
        peer: Peer,
        source: serde_json::Error,
    },
    /// A message to send is larger than [`MAX_MESSAGE`]; nothing was written.
    #[error("control message too large ({len} bytes, at most {MAX_MESSAGE})")]
    TooLarge { len: usize },
    /// A message to send could not be encoded.
    #[error("encoding a control message: {0}")]
    Encode(serde_json::Error),
    /// The Noise library or key handling failed (never expected; the text says what).
    #[error("{0}")]
    Crypto(String),
    /// The server answered a request with `ServerMsg::Error` (the connection stays usable).
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
}

impl LinkError {
    /// Our side of the connection the error is about, when it is about one.
    pub fn side(&self) -> Option<Side> {
        match self {
            LinkError::Unreachable { .. } | LinkError::Refused { .. } => Some(Side::Client),
            LinkError::NoPeerAddr { side, .. } => Some(*side),
            LinkError::Timeout { peer, .. }
            | LinkError::KeyMismatch { peer }
            | LinkError::Closed { peer }
            | LinkError::Io { peer, .. }
            | LinkError::Unusable { peer }
            | LinkError::Unauthenticated { peer }
            | LinkError::Malformed { peer, .. } => Some(peer.side),
            LinkError::TooLarge { .. } | LinkError::Encode(_) | LinkError::Crypto(_) => None,
        }
    }

    /// The connection is gone or unusable (closed, failed, unauthenticated, never set up), as opposed to
    /// one message that could not be read or sent, or the server's refusal.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            LinkError::Unreachable { .. }
                | LinkError::NoPeerAddr { .. }
                | LinkError::Timeout { .. }
                | LinkError::Closed { .. }
                | LinkError::Io { .. }
                | LinkError::Unusable { .. }
                | LinkError::Unauthenticated { .. }
        )
    }
}

fn no_peer_addr(side: Side, e: &std::io::Error) -> String {
    match side {
        Side::Client => format!("not connected to a server: {e}"),
        Side::Server => format!("peer address: {e}"),
    }
}

fn timeout(peer: &Peer, limit: Duration) -> String {
    match peer.side {
        Side::Client => format!(
            "{peer} did not complete the control handshake within {} ms",
            limit.as_millis()
        ),
        Side::Server => format!(
            "{peer} did not complete the control handshake within {} s",
            limit.as_secs()
        ),
    }
}

fn key_mismatch(peer: &Peer) -> String {
    match peer.side {
        Side::Client => format!(
            "server key does not match the pinned key (control handshake with {peer} failed)"
        ),
        Side::Server => format!(
            "{peer} failed the control handshake (it pinned another server key, or is not a RemoteItP2P client)"
        ),
    }
}
