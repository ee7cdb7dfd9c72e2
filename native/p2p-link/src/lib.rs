//! What both ends of RemoteItP2P share: the control channel (framing, the Noise `NK` handshake, the
//! connection and its read and write halves), the server key helpers, key files with owner-only
//! permissions (`key_file`), UDP socket set-up and the clock.
//!
//! The client's driver (`p2p-net`) and the server (`p2p-server`) each build on this crate and map its
//! [`LinkError`] into their own errors, so the server links none of the client's machinery (port mapping,
//! UDP batching) and neither side reads another's error wording to decide what happened.

// Unsafe code is refused everywhere but in `udp_socket`, which sets socket options that neither the
// standard library nor socket2 offers (through `setsockopt`); each use there says why it is sound.
#![deny(unsafe_code)]

pub mod clock;
pub mod control_channel;
mod error;
pub mod key_file;
#[allow(unsafe_code)]
pub mod udp_socket;

pub use error::{LinkError, Peer, Side};
