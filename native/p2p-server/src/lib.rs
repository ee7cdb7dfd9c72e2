//! The RemoteItP2P server: the control channel (accounts, devices, brokering sessions), the UDP relay and
//! the NAT probe responders. `main.rs` is only the command line; everything here is also usable
//! in-process (the integration tests start a server on port 0).

// No unsafe code but the one `mallopt` call in `memory.rs`, which allows it for itself. (`forbid`
// would not let it.)
#![deny(unsafe_code)]

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod broker;
pub mod cli;
pub mod control;
pub mod db;
pub mod error;
pub mod keys;
pub mod memory;
pub mod metrics;
pub mod ops_http;
pub mod probe;
pub mod relay;
pub mod secret_input;
pub mod server;
pub mod store;
pub mod throttle;

pub use error::{Error, Result};
pub use server::{Config, ServerHandle};
