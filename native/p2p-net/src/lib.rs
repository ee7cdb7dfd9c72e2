//! The I/O driver around `p2p-proto`: the only crate (with the server) that owns sockets and clocks.

pub mod error;
pub mod status;

pub use error::{Error, ErrorKind, Result};
pub use status::{LastError, PathKind, TunnelState, TunnelStatus};
