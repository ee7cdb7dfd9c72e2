//! Configuration shared by the connectd CLI, the C ABI (and so the cmdlets) and the tests.

pub mod config;
pub mod exit_code;

pub use config::{AutoConnect, ConfigError, InitiatorConfig, TargetConfig};
pub use exit_code::ExitCode;
