//! Child processes the benchmark starts (server, connectd, sshd, ssh, socat): their output lines are
//! collected so the benchmark can wait for a line, and they are killed when dropped, so a failed section
//! never leaves a process behind. Also the per-process CPU time and resident memory, read from /proc.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Proc {
    pub name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr captured line by line; `stdin` (if any) is written and closed.
    pub fn spawn(name: &str, mut cmd: Command, stdin: Option<&str>) -> Result<Proc, String> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(text.as_bytes())
                .map_err(|e| format!("cannot write to {name}'s standard input: {e}"))?;
        }
        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            collect(out, lines.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect(err, lines.clone());
        }
        Ok(Proc {
            name: name.to_string(),
            child,
            lines,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The last `n` lines, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.lines();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Waits until a line satisfies `pred` and returns it; fails if the process ends or time runs out.
    pub fn wait_line(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| pred(l)) {
                return Ok(l);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Give the reader threads a moment to collect the last lines.
                std::thread::sleep(Duration::from_millis(50));
                if let Some(l) = self.lines().into_iter().find(|l| pred(l)) {
                    return Ok(l);
                }
                return Err(format!(
                    "{} ended ({status}) before {what}:\n{}",
                    self.name,
                    self.tail(20)
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not show {what} within {} s:\n{}",
                    self.name,
                    timeout.as_secs(),
                    self.tail(20)
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the process to end; the exit code (None when killed by a signal) and its output.
    pub fn wait(mut self, timeout: Duration) -> Result<(Option<i32>, String), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(|e| format!("waiting for {}: {e}", self.name))?
            {
                std::thread::sleep(Duration::from_millis(20));
                return Ok((status.code(), self.lines().join("\n")));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not end within {} s",
                    self.name,
                    timeout.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// CPU seconds used so far (user + system).
    pub fn cpu_seconds(&self) -> Option<f64> {
        os::cpu_seconds(self.pid())
    }

    /// Resident memory in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        os::rss_bytes(self.pid())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn collect(pipe: impl Read + Send + 'static, lines: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });
}

/// Runs `cmd` to its end (with `stdin` written to it); fails with its output on a non-zero exit.
pub fn run_ok(
    name: &str,
    cmd: Command,
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<String, String> {
    let p = Proc::spawn(name, cmd, stdin)?;
    let (code, out) = p.wait(timeout)?;
    if code != Some(0) {
        return Err(format!("{name} failed (exit {code:?}):\n{out}"));
    }
    Ok(out)
}

/// The /proc readers: Linux only; elsewhere the figures are reported as unavailable.
#[cfg(target_os = "linux")]
mod os {
    /// Clock ticks per second of /proc/PID/stat; 100 on every Linux architecture the benchmark runs on
    /// (USER_HZ is fixed by the kernel ABI, independent of CONFIG_HZ).
    const TICKS_PER_SECOND: f64 = 100.0;

    pub fn cpu_seconds(pid: u32) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) is in parentheses and may hold spaces: count from after it.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) / TICKS_PER_SECOND)
    }

    pub fn rss_bytes(pid: u32) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    pub fn cpu_seconds(_pid: u32) -> Option<f64> {
        None
    }
    pub fn rss_bytes(_pid: u32) -> Option<u64> {
        None
    }
}
