//! Configuration shared by the connectd CLI, the C ABI (and so the cmdlets) and the tests:
//! the config types, provisioning files, connectd's command line and its exit codes.

#![forbid(unsafe_code)]

pub mod cli_args;
pub mod config;
pub mod exit_code;
pub mod key_paths;
pub mod provisioning;
pub mod values;

pub use cli_args::{parse_args, usage, without_background, Command, RunOptions, UsageError};
pub use config::{AutoConnect, ConfigError, InitiatorConfig, TargetConfig};
pub use exit_code::ExitCode;
pub use provisioning::{
    parse_provisioning, parse_provisioning_base64, parse_provisioning_file, ProvisionError,
    Provisioning, ProvisioningKind, Warning,
};
