//! connectd's documented exit codes, printed as `!!exit [CODE] : MESSAGE` and used as the process status.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExitCode {
    Ok = 0,
    LifetimeEnded = 1,
    ShutdownPacket = 2,
    Signal = 3,
    Disabled = 4,
    BadUser = 10,
    AuthError = 11,
    AutoconnectFailed = 12,
    SessionCreateFailed = 13,
    ServiceTimeout = 14,
    NoUid = 15,
    UdpBind = 16,
    ProxyPortBind = 17,
    PeerClosed = 20,
    P2pFailed = 21,
    /// Not one of connectd's: the device proved another key than the pinned one (end-to-end mode).
    PeerKeyMismatch = 23,
    /// Not one of connectd's: no key of the device is known here (neither given nor pinned), and an
    /// end-to-end session does not take the server's word for it unless told to (`--trust-first-use`).
    PeerKeyUnknown = 24,
    Unknown = 25,
    ConsoleExit = 30,
}

impl ExitCode {
    pub const ALL: [ExitCode; 19] = [
        ExitCode::Ok,
        ExitCode::LifetimeEnded,
        ExitCode::ShutdownPacket,
        ExitCode::Signal,
        ExitCode::Disabled,
        ExitCode::BadUser,
        ExitCode::AuthError,
        ExitCode::AutoconnectFailed,
        ExitCode::SessionCreateFailed,
        ExitCode::ServiceTimeout,
        ExitCode::NoUid,
        ExitCode::UdpBind,
        ExitCode::ProxyPortBind,
        ExitCode::PeerClosed,
        ExitCode::P2pFailed,
        ExitCode::PeerKeyMismatch,
        ExitCode::PeerKeyUnknown,
        ExitCode::Unknown,
        ExitCode::ConsoleExit,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    /// connectd's short description of the code.
    pub fn description(self) -> &'static str {
        match self {
            ExitCode::Ok => "ok",
            ExitCode::LifetimeEnded => "lifetime ended",
            ExitCode::ShutdownPacket => "shutdown packet received",
            ExitCode::Signal => "terminated by signal",
            ExitCode::Disabled => "disabled",
            ExitCode::BadUser => "bad user",
            ExitCode::AuthError => "authentication error",
            ExitCode::AutoconnectFailed => "autoconnect failed",
            ExitCode::SessionCreateFailed => "session create failed",
            ExitCode::ServiceTimeout => "service timeout",
            ExitCode::NoUid => "no such UID",
            ExitCode::UdpBind => "UDP bind failed",
            ExitCode::ProxyPortBind => "proxy port bind failed",
            ExitCode::PeerClosed => "peer closed or timed out",
            ExitCode::P2pFailed => "P2P failed",
            ExitCode::PeerKeyMismatch => "the device's key is not the pinned one",
            ExitCode::PeerKeyUnknown => "the device's key is not known here",
            ExitCode::Unknown => "unknown error",
            ExitCode::ConsoleExit => "console exit",
        }
    }

    /// The `!!exit` line: `!!exit [003] : terminated by signal`.
    pub fn status_line(self, message: &str) -> String {
        format!("!!exit [{:03}] : {}", self.code(), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_lines_have_three_digits() {
        let codes: std::collections::HashSet<u8> = ExitCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes.len(), ExitCode::ALL.len());
        assert_eq!(
            ExitCode::Signal.status_line("terminated by signal"),
            "!!exit [003] : terminated by signal"
        );
    }
}
