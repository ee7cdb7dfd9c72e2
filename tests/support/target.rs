//! A target daemon: `connectd -f target.conf` for one device, forwarding to one local service.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::proc::Proc;

pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Target {
    pub proc: Proc,
    pub conf: PathBuf,
}

/// The target provisioning file (connectd's keys plus ours for the server).
pub fn target_conf(
    uid: &str,
    secret: &str,
    service_port: u16,
    server: &str,
    server_key: &str,
) -> String {
    format!(
        "# system test target\nUID {uid}\npassword {secret}\nproxy_dest_ip 127.0.0.1\nproxy_dest_port {service_port}\n\
         application_type 1\nserver {server}\nserver_key {server_key}\n"
    )
}

impl Target {
    /// Starts `cmd` (`connectd -f conf`).
    pub fn start(name: &str, cmd: std::process::Command, conf: &Path, log_dir: &Path) -> Target {
        Target {
            proc: Proc::spawn(name, cmd, log_dir, None),
            conf: conf.to_path_buf(),
        }
    }

    /// Kills the target and starts the same command again (same file, same environment).
    pub fn restart(&mut self, cmd: std::process::Command, log_dir: &Path) {
        self.proc.kill();
        self.proc = Proc::spawn(&self.proc.name.clone(), cmd, log_dir, None);
    }

    /// Waits until the target says it is registered with the server.
    pub fn wait_registered(&mut self) {
        self.proc.wait_line(
            "the target's registration",
            REGISTER_TIMEOUT,
            is_registered_line,
        );
    }

    /// Waits for a registration after everything printed so far (after a server restart).
    pub fn wait_registered_again(&mut self, timeout: Duration) {
        let before = self
            .proc
            .lines()
            .iter()
            .filter(|l| is_registered_line(l))
            .count();
        crate::poll::wait_until("the target to register again", timeout, || {
            self.proc
                .lines()
                .iter()
                .filter(|l| is_registered_line(l))
                .count()
                > before
        });
    }
}

/// A line saying the device is registered (and not that registering failed).
pub fn is_registered_line(l: &str) -> bool {
    let l = l.to_ascii_lowercase();
    l.contains("registered")
        && !l.contains("not registered")
        && !l.contains("unregistered")
        && !l.contains("fail")
}
