//! Everything that differs between operating systems, in one place: signals, finding a process's
//! UDP sockets and reading its memory use. The system tests run on Linux in CI; on other systems these helpers say what they lack.

#[cfg(unix)]
fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed: {status}");
}

/// Sends signal `name` (`INT`, `KILL`) to every process of process group `pgid` (a shell and what it
/// started, as a terminal's Ctrl-C does); false when there was none.
#[cfg(unix)]
pub fn signal_group(pgid: u32, name: &str) -> bool {
    std::process::Command::new("kill")
        .args([&format!("-{name}"), "--", &format!("-{pgid}")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Ctrl-C: SIGINT.
#[cfg(unix)]
pub fn interrupt(pid: u32) {
    signal(pid, "INT");
}

/// What a service manager or `kill PID` sends: SIGTERM.
#[cfg(unix)]
pub fn terminate(pid: u32) {
    signal(pid, "TERM");
}

#[cfg(not(unix))]
pub fn interrupt(pid: u32) {
    panic!("sending Ctrl-C to process {pid} is not implemented on this OS");
}

#[cfg(not(unix))]
pub fn terminate(pid: u32) {
    let _ = std::process::Command::new("taskkill")
        .args(["/PID", &pid.to_string(), "/F"])
        .status();
}

/// True while a process with this id exists (and is not a zombie).
#[cfg(target_os = "linux")]
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
pub fn alive(pid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(not(unix))]
pub fn alive(pid: u32) -> bool {
    std::process::Command::new("tasklist")
        .args(["/FI", &format!("PID eq {pid}"), "/NH"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&pid.to_string()))
}

/// The local ports of every UDP socket the process holds (IPv4 and IPv6), from /proc.
#[cfg(target_os = "linux")]
pub fn udp_ports(pid: u32) -> Vec<u16> {
    let mut inodes = Vec::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let t = target.to_string_lossy();
                if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    inodes.push(inode.to_string());
                }
            }
        }
    }
    let mut ports = Vec::new();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
            if f.len() > 9 && inodes.iter().any(|i| i == f[9]) {
                if let Some(port) = f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                {
                    if !ports.contains(&port) {
                        ports.push(port);
                    }
                }
            }
        }
    }
    ports
}

#[cfg(not(target_os = "linux"))]
pub fn udp_ports(pid: u32) -> Vec<u16> {
    panic!("listing the UDP sockets of process {pid} is only implemented on Linux");
}

/// Terminates a process the harness did not spawn itself (a daemon's background copy) when dropped,
/// so a failing test leaves nothing running.
pub struct PidGuard(pub u32);

impl Drop for PidGuard {
    fn drop(&mut self) {
        if alive(self.0) {
            terminate(self.0);
        }
    }
}

/// A process's resident memory now (`VmRSS`) and at its peak (`VmHWM`), in KiB, from /proc/PID/status.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

#[cfg(target_os = "linux")]
pub fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    Memory {
        rss_kib: field("VmRSS:"),
        peak_kib: field("VmHWM:"),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn memory(pid: u32) -> Memory {
    panic!("reading the memory use of process {pid} is only implemented on Linux");
}

/// The soft limit on open files of this process (what its children inherit), when known.
#[cfg(target_os = "linux")]
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(not(target_os = "linux"))]
pub fn open_files_limit() -> Option<u64> {
    None
}
