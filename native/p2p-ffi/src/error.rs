//! Result codes and the calling thread's last error.
//!
//! Every export returns one of the `P2P_*` codes below. A failing call also records a message and a stable
//! kind name for the calling thread, read back with `p2p_last_error` / `p2p_last_error_kind`. Every export
//! except those two and `p2p_string_free` clears the record when it starts, so the record always belongs
//! to the thread's most recent call.

use std::cell::RefCell;

/// The call succeeded.
pub const P2P_OK: i32 = 0;
/// A required pointer was NULL, or a string was not valid UTF-8.
pub const P2P_ERR_INVALID_ARGUMENT: i32 = 1;
/// The JSON was malformed, had an unknown field, or a field had a bad value (the message names it).
pub const P2P_ERR_INVALID_CONFIG: i32 = 2;
/// The handle is 0, was never returned by `p2p_session_start`, or was forgotten.
pub const P2P_ERR_INVALID_HANDLE: i32 = 3;
/// The local port of a new session is already in use.
pub const P2P_ERR_PORT_IN_USE: i32 = 4;
/// A bug was caught at the boundary: the call did nothing more, the process and the library stay usable.
pub const P2P_ERR_PANIC: i32 = 5;
/// The bounded wait ended first; the operation goes on in the background.
pub const P2P_ERR_TIMEOUT: i32 = 6;
/// A provisioning file could not be read or parsed: the last error is `FILE:LINE: key 'K': message`.
pub const P2P_ERR_PROVISIONING: i32 = 7;
/// The operation is not available in this build, or not allowed from this thread (a log callback).
pub const P2P_ERR_NOT_SUPPORTED: i32 = 8;
/// Any other failure; the last error's kind is the driver's error kind when there is one.
pub const P2P_ERR_INTERNAL: i32 = 9;
/// Reserved: no export takes a caller-provided buffer today.
pub const P2P_ERR_BUFFER_TOO_SMALL: i32 = 10;
/// The call's cancellation token was fired (`p2p_cancel_fire`) before it finished. What the call waited
/// for goes on in the background where the function says so (a stop), or is abandoned (a self-test).
pub const P2P_ERR_CANCELLED: i32 = 11;

/// Each code's stable name, NUL-terminated so `p2p_result_name` can hand it out as a static C string.
const CODE_NAMES: &[(i32, &str)] = &[
    (P2P_OK, "Ok\0"),
    (P2P_ERR_INVALID_ARGUMENT, "InvalidArgument\0"),
    (P2P_ERR_INVALID_CONFIG, "InvalidConfig\0"),
    (P2P_ERR_INVALID_HANDLE, "InvalidHandle\0"),
    (P2P_ERR_PORT_IN_USE, "PortInUse\0"),
    (P2P_ERR_PANIC, "Panic\0"),
    (P2P_ERR_TIMEOUT, "Timeout\0"),
    (P2P_ERR_PROVISIONING, "Provisioning\0"),
    (P2P_ERR_NOT_SUPPORTED, "NotSupported\0"),
    (P2P_ERR_INTERNAL, "Internal\0"),
    (P2P_ERR_BUFFER_TOO_SMALL, "BufferTooSmall\0"),
    (P2P_ERR_CANCELLED, "Cancelled\0"),
];

/// A result code's name with its terminating NUL ("Unknown" for a code the library never returns).
pub fn code_name_c(code: i32) -> &'static str {
    CODE_NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, name)| *name)
        .unwrap_or("Unknown\0")
}

/// The stable name of a result code, used as the last error's kind when no finer kind is known.
pub fn code_name(code: i32) -> &'static str {
    code_name_c(code).trim_end_matches('\0')
}

/// A failure on its way out of an export: the code returned, and the kind and message recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FfiError {
    pub code: i32,
    pub kind: String,
    pub message: String,
}

impl FfiError {
    /// An error whose kind is the code's name.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        FfiError {
            code,
            kind: code_name(code).to_string(),
            message: message.into(),
        }
    }

    /// An error with a finer kind than its code's name (e.g. "NoServer" for an INVALID_CONFIG).
    pub fn with_kind(code: i32, kind: &str, message: impl Into<String>) -> Self {
        FfiError {
            code,
            kind: kind.to_string(),
            message: message.into(),
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(P2P_ERR_INVALID_ARGUMENT, message)
    }

    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::new(P2P_ERR_INVALID_CONFIG, message)
    }

    pub fn invalid_handle(handle: u64) -> Self {
        Self::new(
            P2P_ERR_INVALID_HANDLE,
            format!("no session with handle {handle} (never started, or forgotten)"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(P2P_ERR_INTERNAL, message)
    }

    pub fn not_supported(message: impl Into<String>) -> Self {
        Self::new(P2P_ERR_NOT_SUPPORTED, message)
    }
}

impl From<p2p_net::Error> for FfiError {
    /// Keeps the driver's kind name (e.g. "PortInUse", "UdpBind") so callers can tell failures apart.
    fn from(e: p2p_net::Error) -> Self {
        use p2p_net::ErrorKind;
        let code = match e.kind {
            ErrorKind::InvalidConfig => P2P_ERR_INVALID_CONFIG,
            ErrorKind::PortInUse => P2P_ERR_PORT_IN_USE,
            _ => P2P_ERR_INTERNAL,
        };
        FfiError {
            code,
            kind: e.kind.name().to_string(),
            message: e.message,
        }
    }
}

/// The record behind `p2p_last_error` / `p2p_last_error_kind`.
#[derive(Debug, Clone)]
pub struct LastError {
    pub kind: String,
    pub message: String,
}

thread_local! {
    static LAST_ERROR: RefCell<Option<LastError>> = const { RefCell::new(None) };
}

/// Records `e` as this thread's last error and returns its code.
pub fn set_last_error(e: FfiError) -> i32 {
    let code = e.code;
    LAST_ERROR.with(|l| {
        if let Ok(mut slot) = l.try_borrow_mut() {
            *slot = Some(LastError {
                kind: e.kind,
                message: e.message,
            });
        }
    });
    code
}

pub fn clear_last_error() {
    LAST_ERROR.with(|l| {
        if let Ok(mut slot) = l.try_borrow_mut() {
            *slot = None;
        }
    });
}

pub fn last_error() -> Option<LastError> {
    LAST_ERROR.with(|l| l.try_borrow().ok().and_then(|slot| slot.clone()))
}
