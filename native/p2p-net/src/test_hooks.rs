//! The driver's test hooks, read from the environment only in builds with the `test-hooks` feature.
//!
//! On one machine loopback always lets two peers talk directly, so the system tests and the benchmark
//! need a way to force the relay path and to put an impairment relay in it:
//! - `P2P_DISABLE_DIRECT=1` blocks the direct path for the whole run; `P2P_DISABLE_DIRECT_FILE=PATH`
//!   blocks it while that file exists (checked once a second), so a test can unblock it mid-transfer.
//!   Blocked means: datagrams to or from any address other than the relay are dropped, exactly as a
//!   firewall between the sites would.
//! - `P2P_RELAY_OVERRIDE=host:port` sends relay traffic there instead of the server's relay address.
//! - `P2P_REKEY_BYTES=N` and `P2P_REKEY_SECONDS=N` make mode 3 sessions update their keys after N
//!   bytes or seconds instead of every gibibyte or two minutes, so a short test sees many updates.
//!
//! The shipped connectd and library are built without the feature, so a user's environment cannot turn
//! a tunnel away from its direct path. The tests and the benchmark get the feature by depending on
//! `p2p-testkit`, which cargo unifies into their workspace build of connectd.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use p2p_proto::session::RekeyLimits;

/// Whether this build reads the hooks (connectd's `--version` says so, and the test harness checks it).
pub const ENABLED: bool = cfg!(feature = "test-hooks");

/// Whether the direct path is blocked right now (always open in a build without the hooks).
pub struct DirectFilter {
    always: bool,
    file: Option<PathBuf>,
    file_present: bool,
    next_check: Instant,
}

impl DirectFilter {
    pub fn from_env() -> Self {
        let (always, file) = direct_knobs();
        let file_present = file.as_ref().is_some_and(|f| f.exists());
        DirectFilter {
            always,
            file,
            file_present,
            next_check: Instant::now() + Duration::from_secs(1),
        }
    }

    pub fn refresh(&mut self, now: Instant) {
        if let Some(f) = &self.file {
            if now >= self.next_check {
                self.file_present = f.exists();
                self.next_check = now + Duration::from_secs(1);
            }
        }
    }

    pub fn blocked(&self) -> bool {
        self.always || self.file_present
    }
}

#[cfg(feature = "test-hooks")]
fn direct_knobs() -> (bool, Option<PathBuf>) {
    let always = std::env::var("P2P_DISABLE_DIRECT").is_ok_and(|v| v == "1");
    (
        always,
        std::env::var_os("P2P_DISABLE_DIRECT_FILE").map(PathBuf::from),
    )
}

#[cfg(not(feature = "test-hooks"))]
fn direct_knobs() -> (bool, Option<PathBuf>) {
    (false, None)
}

/// The relay address to use instead of the server's (`P2P_RELAY_OVERRIDE`), in a build with the hooks.
#[cfg(feature = "test-hooks")]
pub fn relay_override() -> Option<SocketAddr> {
    let v = std::env::var("P2P_RELAY_OVERRIDE").ok()?;
    match v.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            log::warn!("ignoring P2P_RELAY_OVERRIDE='{v}': not an address:port");
            None
        }
    }
}

#[cfg(not(feature = "test-hooks"))]
pub fn relay_override() -> Option<SocketAddr> {
    None
}

/// When mode 3 sessions update their keys: the protocol's default, or in a build with the hooks
/// `P2P_REKEY_BYTES` / `P2P_REKEY_SECONDS` where set.
#[cfg(feature = "test-hooks")]
pub fn rekey_limits() -> RekeyLimits {
    let number = |name: &str| {
        let v = std::env::var(name).ok()?;
        let n = v.parse::<u64>().ok().filter(|n| *n > 0);
        if n.is_none() {
            log::warn!("ignoring {name}='{v}': not a positive whole number");
        }
        n
    };
    let default = RekeyLimits::DEFAULT;
    RekeyLimits {
        bytes: number("P2P_REKEY_BYTES").unwrap_or(default.bytes),
        interval: number("P2P_REKEY_SECONDS").map_or(default.interval, Duration::from_secs),
    }
}

#[cfg(not(feature = "test-hooks"))]
pub fn rekey_limits() -> RekeyLimits {
    RekeyLimits::DEFAULT
}
