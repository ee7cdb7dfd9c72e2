//! An initiator: `connectd -s -c ...` (connectd's command line) with the server from the environment,
//! or `connectd -f FILE`, and the lines scripts wait for.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::proc::Proc;

pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// What goes on connectd's `-c` command line.
#[derive(Clone, Debug)]
pub struct InitiatorSpec {
    pub user: String,
    pub password: String,
    pub uid: String,
    /// 0 = pick a free port and report it.
    pub port: u16,
    pub mode: u8,
    pub bind: String,
    pub max_outstanding: u32,
    /// Optional `LIFETIME_MIN IDLE_LIMIT`.
    pub limits: Option<(u32, u32)>,
    /// `--device-key`: the device's fingerprint, as read on the device.
    pub device_key: Option<String>,
}

impl InitiatorSpec {
    /// `connectd -s [--device-key FP] -c B64USER B64PASS UID T<port> MODE BIND MAXOUT [LIFETIME IDLE]`.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec!["-s".to_string()];
        if let Some(fp) = &self.device_key {
            a.push("--device-key".into());
            a.push(fp.clone());
        }
        a.extend([
            "-c".to_string(),
            B64.encode(&self.user),
            B64.encode(&self.password),
            self.uid.clone(),
            format!("T{}", self.port),
            self.mode.to_string(),
            self.bind.clone(),
            self.max_outstanding.to_string(),
        ]);
        if let Some((life, idle)) = self.limits {
            a.push(life.to_string());
            a.push(idle.to_string());
        }
        a
    }

    /// `options` (`--trust-first-use`, `--accept-key FP`, ...) before [`InitiatorSpec::args`].
    pub fn args_with(&self, options: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        a.extend(self.args());
        a
    }

    /// The same initiator without `--device-key`: it relies on its pin (or has none).
    pub fn without_device_key(&self) -> InitiatorSpec {
        InitiatorSpec {
            device_key: None,
            ..self.clone()
        }
    }
}

pub struct Initiator {
    pub proc: Proc,
    port: Option<u16>,
}

impl Initiator {
    pub fn new(proc: Proc) -> Initiator {
        Initiator { proc, port: None }
    }

    /// Waits for `Starting Proxy on port N on index 1.` then `Proxy started.`, returns N.
    pub fn wait_ready(&mut self) -> u16 {
        let line = self
            .proc
            .wait_line("'Starting Proxy on port'", READY_TIMEOUT, |l| {
                l.contains("Starting Proxy on port")
            });
        let port = proxy_port(&line).unwrap_or_else(|| panic!("no port in '{line}'"));
        self.proc.wait_for_text("Proxy started.", READY_TIMEOUT);
        self.port = Some(port);
        port
    }

    /// Waits for the `!!connected ...` status line and returns it.
    pub fn wait_connected(&mut self) -> String {
        self.proc.wait_line("'!!connected'", READY_TIMEOUT, |l| {
            l.starts_with("!!connected")
        })
    }

    /// Both of the above: the tunnel is usable.
    pub fn wait_up(&mut self) -> u16 {
        let port = self.wait_ready();
        self.wait_connected();
        port
    }

    pub fn port(&self) -> u16 {
        self.port.expect("wait_ready() first")
    }

    /// The `!!exit [CODE] : MSG` line's code, once printed.
    pub fn wait_exit_line(&mut self, timeout: Duration) -> (u8, String) {
        let line = self
            .proc
            .wait_line("'!!exit'", timeout, |l| l.contains("!!exit ["));
        (
            exit_line_code(&line).unwrap_or_else(|| panic!("malformed exit line '{line}'")),
            line,
        )
    }
}

/// True when connectd's `-s` output said `!!status path=<path>` (`direct`, `relayed`).
pub fn says_path(lines: &[String], path: &str) -> bool {
    lines
        .iter()
        .any(|l| l.starts_with("!!status") && l.contains(&format!("path={path}")))
}

/// N from `Starting Proxy on port N on index 1.`
pub fn proxy_port(line: &str) -> Option<u16> {
    let rest = line.split("Starting Proxy on port").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// CODE from `!!exit [CODE] : MSG`.
pub fn exit_line_code(line: &str) -> Option<u8> {
    let rest = line.split("!!exit [").nth(1)?;
    rest.split(']').next()?.parse().ok()
}

/// The value of `key=` in a `!!` status line (`!!connected local=... session=...`).
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
}

/// The configuration of an in-process tunnel (`p2p_net::Tunnel`; the C ABI's `p2p_session_start` takes the
/// same JSON) for `a` reaching `d` through the lab's server, on a free local port, with the device's key
/// (unless the lab's seeding is off).
pub fn tunnel_config(lab: &crate::Lab, a: &crate::Account, d: &crate::Device) -> serde_json::Value {
    let mut config = serde_json::json!({
        "device_id": d.uid,
        "user": a.user,
        "password": a.password,
        "server": lab.server.address(),
        "server_key": lab.server.key,
        "local_port": 0,
    });
    if let Some(fp) = lab.seeded_device_key(d) {
        config["device_key"] = fp.into();
    }
    config
}
