//! The I/O driver around `p2p-proto`: the only crate (with the server) that owns sockets and clocks.

pub mod clock;
pub mod control_channel;
pub mod direct_filter;
pub mod endpoint;
pub mod env_knobs;
pub mod error;
pub mod grant;
pub mod light_targets;
pub mod net_util;
pub mod portmap;
pub mod selftest;
mod session_setup;
pub mod status;
pub mod stream_io;
pub mod target;
pub mod tunnel;
pub mod udp_batch;
pub mod udp_socket;

pub use error::{Error, ErrorKind, Result};
pub use selftest::{SelfTestConfig, SelfTestReport};
pub use status::{LastError, PathKind, TargetState, TargetStatus, TunnelState, TunnelStatus};
pub use target::Target;
pub use tunnel::Tunnel;
