//! Errors of the driver. Each kind has a stable name; what a kind means to a program (connectd's exit
//! code, the cmdlets' error category) is decided there, not here.

use p2p_link::{LinkError, Side};
use p2p_proto::control::ErrorCode;

/// Declares `ErrorKind` with each kind's stable name, and the list of every kind, from one table.
macro_rules! error_kinds {
    ($($kind:ident => $name:literal,)+) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $($kind,)+
        }

        impl ErrorKind {
            /// Every kind, for [`ErrorKind::from_name`].
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$kind,)+];

            pub fn name(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => $name,)+
                }
            }
        }
    };
}

error_kinds! {
    InvalidConfig => "InvalidConfig",
    BadUser => "BadUser",
    AuthFailed => "AuthFailed",
    Throttled => "Throttled",
    UnknownUid => "UnknownUid",
    NotShared => "NotShared",
    DeviceOffline => "DeviceOffline",
    BadSecret => "BadSecret",
    SessionFailed => "SessionFailed",
    ServerUnreachable => "ServerUnreachable",
    ServerKeyMismatch => "ServerKeyMismatch",
    UdpBind => "UdpBind",
    PortInUse => "PortInUse",
    PeerTimeout => "PeerTimeout",
    P2pFailed => "P2PFailed",
    PeerKeyMismatch => "PeerKeyMismatch",
    PeerKeyUnknown => "PeerKeyUnknown",
    LimitReached => "LimitReached",
    Internal => "Internal",
}

impl ErrorKind {
    /// The kind a status names (`LastError::kind`), if it is an error kind and not an end reason.
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }
}

impl From<ErrorCode> for ErrorKind {
    fn from(c: ErrorCode) -> Self {
        match c {
            ErrorCode::BadUser => ErrorKind::BadUser,
            ErrorCode::AuthFailed => ErrorKind::AuthFailed,
            ErrorCode::Throttled => ErrorKind::Throttled,
            ErrorCode::UnknownUid => ErrorKind::UnknownUid,
            ErrorCode::NotShared => ErrorKind::NotShared,
            ErrorCode::DeviceOffline => ErrorKind::DeviceOffline,
            ErrorCode::BadSecret => ErrorKind::BadSecret,
            ErrorCode::SessionFailed => ErrorKind::SessionFailed,
            ErrorCode::LimitReached => ErrorKind::LimitReached,
            ErrorCode::KeyChanged => ErrorKind::PeerKeyMismatch,
            ErrorCode::BadRequest | ErrorCode::Internal => ErrorKind::Internal,
        }
    }
}

/// An error with the one plain line a user reads ("wrong password for user 'bob'").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }
}

/// A control channel failure, worded as before the channel had its own crate. On the client, losing or
/// never reaching the server is `ServerUnreachable`; on the server's end (tests stand in for a server)
/// a transport failure is `Internal`.
impl From<LinkError> for Error {
    fn from(e: LinkError) -> Self {
        let transport = match e.side() {
            Some(Side::Server) => ErrorKind::Internal,
            Some(Side::Client) | None => ErrorKind::ServerUnreachable,
        };
        let kind = match &e {
            LinkError::Refused { code, .. } => ErrorKind::from(*code),
            LinkError::KeyMismatch { peer } if peer.side == Side::Client => {
                ErrorKind::ServerKeyMismatch
            }
            LinkError::TooLarge { .. } => ErrorKind::LimitReached,
            e if e.is_transport() => transport,
            _ => ErrorKind::Internal,
        };
        match e {
            LinkError::Refused { message, .. } => Error::new(kind, message),
            e => Error::new(kind, e.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
