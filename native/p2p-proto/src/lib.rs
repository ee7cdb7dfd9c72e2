//! The RemoteItP2P protocol as a sans-IO state machine: bytes and timestamps in, bytes and events out.
//! No sockets and no clock live here (the driver in `p2p-net` owns both), so loss, reordering and
//! timeouts are tested deterministically.

pub mod control;
pub mod crypto;
pub mod frame;
pub mod mode;
pub mod session;
pub mod uid;
pub mod wire;

pub use mode::EncryptionMode;
pub use uid::Uid;
pub use wire::Role;
