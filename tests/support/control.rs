//! Helpers for the tests that talk to the server's control channel themselves (in-test
//! `ControlClient`s): the server's public key as bytes and a small tokio runtime to drive them.

use base64::Engine;

use crate::Lab;

/// The lab server's public key (base64 in `lab.server.key`) as the 32 bytes a `ControlClient` wants.
pub fn server_key(lab: &Lab) -> [u8; 32] {
    base64::engine::general_purpose::STANDARD
        .decode(&lab.server.key)
        .expect("server key base64")
        .try_into()
        .expect("32-byte server key")
}

/// A two-worker multi-thread tokio runtime for in-test clients.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
