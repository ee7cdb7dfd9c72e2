//! The system-test harness: finds the workspace binaries, starts real `p2p-server`, target and initiator
//! processes on loopback with fresh databases, provides the local services they carry (HTTP, echo, bulk
//! transfer, sshd), and UDP relays that impair or record the session's datagrams. Every process's output
//! goes to one log folder per test, so a test can afterwards check that no secret was ever printed.
//!
//! The harness builds nothing: the binaries must exist (`cargo build --workspace --bins`), which the
//! README's test command does first.

pub mod bins;
pub mod control;
pub mod data;
pub mod hostile;
pub mod initiator;
pub mod lab;
pub mod nodes;
pub mod os;
pub mod poll;
pub mod ports;
pub mod postgres;
pub mod proc;
pub mod provisioning;
pub mod secrets;
pub mod server;
pub mod services;
pub mod ssh;
pub mod target;
pub mod tools;
pub mod udp_relay;
pub mod wine;

pub use lab::{Account, Device, Lab};
