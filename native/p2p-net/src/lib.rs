//! The I/O driver around `p2p-proto`: the only crate (with the server) that owns sockets and clocks.
//!
//! The public surface is what `connectd`, `p2p-ffi`, `p2p-server`, the benchmark and the system tests
//! use: [`Tunnel`] and [`Target`] with their status types, the control channel, the self-test, the
//! light targets (many devices on one control connection, for load tests), the clock helpers and the
//! UDP socket set-up. Everything else (the endpoint, the stream tasks, batching, port mapping) is
//! internal.

// Unsafe code is refused everywhere but in `udp_socket`, which sets socket options that neither the
// standard library nor socket2 offers (through `setsockopt`); each use there says why it is sound.
#![deny(unsafe_code)]

pub mod clock;
pub mod control_channel;
mod direct_filter;
mod endpoint;
mod env_knobs;
mod error;
/// Public for the redaction test (`tests/redaction.rs`), which checks a grant's `Debug` output.
pub mod grant;
pub mod light_targets;
mod net_util;
mod portmap;
pub mod selftest;
mod session_setup;
pub mod status;
mod stream_io;
mod target;
mod tunnel;
mod udp_batch;
#[allow(unsafe_code)]
pub mod udp_socket;

pub use error::{Error, ErrorKind, Result};
pub use selftest::{SelfTestConfig, SelfTestReport};
pub use status::{LastError, PathKind, TargetState, TargetStatus, TunnelState, TunnelStatus};
pub use target::Target;
pub use tunnel::Tunnel;
