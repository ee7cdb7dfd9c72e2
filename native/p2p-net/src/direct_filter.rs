//! Test knobs that block the direct path between peers on one machine, where loopback would always let
//! them talk directly: `P2P_DISABLE_DIRECT=1` blocks it for the whole run, `P2P_DISABLE_DIRECT_FILE=PATH`
//! blocks it while that file exists (checked once a second), so a test can unblock it mid-transfer.
//! Blocked means: datagrams to or from any address other than the relay are dropped, exactly as a
//! firewall between the sites would.

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct DirectFilter {
    always: bool,
    file: Option<PathBuf>,
    file_present: bool,
    next_check: Instant,
}

impl DirectFilter {
    pub fn from_env() -> Self {
        let always = std::env::var("P2P_DISABLE_DIRECT").is_ok_and(|v| v == "1");
        let file = std::env::var_os("P2P_DISABLE_DIRECT_FILE").map(PathBuf::from);
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
