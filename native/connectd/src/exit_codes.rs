//! connectd's exit code for each way a run ends. The driver names its errors (`ErrorKind`) and the ends
//! that are not errors (`end_reason`); which documented connectd code each one is belongs to this
//! command line, so the table lives here.

use p2p_config::ExitCode;
use p2p_net::{end_reason, ErrorKind, LastError};

/// The exit code of a failure the driver reported directly.
pub fn for_error(kind: ErrorKind) -> ExitCode {
    use ErrorKind::*;
    match kind {
        InvalidConfig | Internal => ExitCode::Unknown,
        BadUser => ExitCode::BadUser,
        AuthFailed | Throttled => ExitCode::AuthError,
        UnknownUid | NotShared | BadSecret => ExitCode::NoUid,
        DeviceOffline => ExitCode::ServiceTimeout,
        SessionFailed | LimitReached => ExitCode::SessionCreateFailed,
        ServerUnreachable | ServerKeyMismatch => ExitCode::SessionCreateFailed,
        UdpBind => ExitCode::UdpBind,
        PortInUse => ExitCode::ProxyPortBind,
        PeerTimeout => ExitCode::PeerClosed,
        P2pFailed => ExitCode::P2pFailed,
        PeerKeyMismatch => ExitCode::PeerKeyMismatch,
        PeerKeyUnknown => ExitCode::PeerKeyUnknown,
    }
}

/// The exit code of the end a final status reports (`last_error`).
pub fn for_end(end: &LastError) -> ExitCode {
    match end.kind.as_str() {
        end_reason::LIFETIME_ENDED | end_reason::IDLE_LIMIT => ExitCode::LifetimeEnded,
        end_reason::STOPPED => ExitCode::Signal,
        name => ErrorKind::from_name(name).map_or(ExitCode::Unknown, for_error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(kind: &str) -> LastError {
        LastError {
            kind: kind.into(),
            message: String::new(),
        }
    }

    #[test]
    fn every_error_kind_read_back_from_a_status_keeps_its_code() {
        for &kind in ErrorKind::ALL {
            assert_eq!(for_end(&end(kind.name())), for_error(kind), "{kind:?}");
        }
    }

    #[test]
    fn ends_that_are_not_errors_have_connectds_codes() {
        assert_eq!(for_end(&end(end_reason::LIFETIME_ENDED)).code(), 1);
        assert_eq!(for_end(&end(end_reason::IDLE_LIMIT)).code(), 1);
        assert_eq!(for_end(&end(end_reason::STOPPED)).code(), 3);
        assert_eq!(for_end(&end("SomethingNew")), ExitCode::Unknown);
    }

    #[test]
    fn the_documented_failures_keep_their_codes() {
        assert_eq!(for_error(ErrorKind::AuthFailed).code(), 11);
        assert_eq!(for_error(ErrorKind::UnknownUid).code(), 15);
        assert_eq!(for_error(ErrorKind::PortInUse).code(), 17);
        assert_eq!(for_error(ErrorKind::LimitReached).code(), 13);
        assert_eq!(for_error(ErrorKind::PeerKeyMismatch).code(), 23);
        assert_eq!(for_error(ErrorKind::PeerKeyUnknown).code(), 24);
    }
}
