//! The I/O driver around `p2p-proto`: the only crate (with the server) that owns sockets and clocks.

pub mod control_channel;
pub mod error;
pub mod status;
pub mod tunnel;

pub use error::{Error, ErrorKind, Result};
pub use status::{LastError, PathKind, TunnelState, TunnelStatus};
pub use tunnel::Tunnel;
