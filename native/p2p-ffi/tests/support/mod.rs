//! What the C ABI tests share: C strings in and out, the thread's last error, and a server that never
//! answers.

use std::ffi::{c_char, CStr, CString};
use std::net::TcpListener;
use std::ptr;
use std::sync::OnceLock;

use remoteitp2p::*;

/// A syntactically valid server key (base64 of 32 bytes); no server runs behind it.
pub const SERVER_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

pub fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Copies a string the library returned and frees it.
pub fn take(p: *mut c_char) -> String {
    assert!(!p.is_null());
    // SAFETY: a live string from the library.
    let s = unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string();
    unsafe { p2p_string_free(p) };
    s
}

/// The calling thread's last error: (kind, message).
pub fn last_error() -> (String, String) {
    let mut kind = ptr::null_mut();
    let mut message = ptr::null_mut();
    unsafe {
        assert_eq!(p2p_last_error_kind(&mut kind), P2P_OK);
        assert_eq!(p2p_last_error(&mut message), P2P_OK);
    }
    (take(kind), take(message))
}

/// `host:port` of a server that accepts the TCP connection and then says nothing: a session to it stays
/// "Connecting" for the driver's control timeout (10 s), and a self-test waits for its answer.
pub fn silent_server() -> String {
    static SILENT: OnceLock<TcpListener> = OnceLock::new();
    let listener = SILENT.get_or_init(|| TcpListener::bind("127.0.0.1:0").unwrap());
    listener.local_addr().unwrap().to_string()
}
