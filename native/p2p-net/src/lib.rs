//! The client's I/O driver around `p2p-proto` (the server has its own; what both share is in `p2p-link`).
//!
//! The public surface is what `connectd`, `p2p-ffi`, the benchmark and the system tests use: [`Tunnel`]
//! and [`Target`] with their status types, the control channel (with this crate's [`Error`]), the
//! self-test, whether this build has the test hooks ([`TEST_HOOKS`]), and, from
//! `p2p-link` under their old paths, the clock helpers and the UDP socket set-up. Everything else (the
//! endpoint, the stream tasks, batching, port mapping) is internal.

// No unsafe code: the socket options that need `setsockopt` are set in `p2p-link`'s `udp_socket`.
#![deny(unsafe_code)]

pub use p2p_link::clock;
pub mod control_channel;
pub mod device_trust;
mod endpoint;
mod error;
mod extra_ports;
/// Public for the redaction test (`tests/redaction.rs`), which checks a grant's `Debug` output.
pub mod grant;
mod mapping_probe;
mod net_util;
mod portmap;
pub mod selftest;
mod server_list;
mod session_setup;
pub mod status;
mod stream_io;
mod target;
mod test_hooks;
mod tunnel;
mod udp_batch;
pub use p2p_link::udp_socket;

pub use error::{Error, ErrorKind, Result};
pub use selftest::{SelfTestConfig, SelfTestReport};
pub use status::{
    end_reason, LastError, PathFamily, PathKind, TargetState, TargetStatus, TunnelState,
    TunnelStatus,
};
pub use target::Target;
pub use tunnel::Tunnel;
/// Whether this build reads the driver's test hooks (`P2P_DISABLE_DIRECT`, `P2P_RELAY_OVERRIDE`, ...):
/// only builds with the `test-hooks` feature, which the shipped binaries leave off.
pub const TEST_HOOKS: bool = test_hooks::ENABLED;
