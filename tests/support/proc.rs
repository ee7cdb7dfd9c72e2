//! A child process whose output is kept in memory (to wait for lines) and copied to a log file (to read
//! after a failure and to search for secrets). Killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Output {
    lines: Vec<String>,
    /// Streams (stdout, stderr) that reached their end.
    closed: u8,
}

struct Shared {
    out: Mutex<Output>,
    changed: Condvar,
}

impl Shared {
    /// Waits for more output (or its end) until `deadline`; `None` once the deadline has passed.
    fn wait_change<'a>(
        &self,
        out: std::sync::MutexGuard<'a, Output>,
        deadline: Instant,
    ) -> Option<std::sync::MutexGuard<'a, Output>> {
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        Some(self.changed.wait_timeout(out, deadline - now).unwrap().0)
    }
}

pub struct Proc {
    pub name: String,
    child: Child,
    shared: Arc<Shared>,
    log_path: PathBuf,
    exited: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr captured into `log_dir/<name>.log`; `stdin` (if any) is written
    /// and closed (how the admin commands read passwords).
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path, stdin: Option<&str>) -> Proc {
        let log_path = unique_log_path(log_dir, name);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let log = Arc::new(Mutex::new(
            std::fs::File::create(&log_path).expect("create log file"),
        ));
        writeln!(log.lock().unwrap(), "# {}", describe(&cmd)).ok();
        let shared = Arc::new(Shared {
            out: Mutex::new(Output::default()),
            changed: Condvar::new(),
        });
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        spawn_reader(out, "", shared.clone(), log.clone());
        spawn_reader(err, "[stderr] ", shared.clone(), log);
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A process that exits before reading its stdin is not this helper's failure.
            let _ = pipe.write_all(text.as_bytes());
        }
        Proc {
            name: name.to_string(),
            child,
            shared,
            log_path,
            exited: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Every line printed so far (stdout and stderr, stderr lines prefixed `[stderr] `).
    pub fn lines(&self) -> Vec<String> {
        self.shared.out.lock().unwrap().lines.clone()
    }

    pub fn output(&self) -> String {
        self.lines().join("\n")
    }

    /// The last lines, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.lines();
        let from = lines.len().saturating_sub(n);
        format!(
            "--- last output of {} ({}) ---\n{}",
            self.name,
            self.log_path.display(),
            lines[from..].join("\n")
        )
    }

    /// Waits until a line satisfies `pred` (lines already printed count) and returns it. Panics with the
    /// output's tail on timeout, or when the process ended without printing such a line.
    pub fn wait_line(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        match self.try_wait_line(timeout, pred) {
            Ok(line) => line,
            Err(why) => panic!("{} {why} waiting for {what}\n{}", self.name, self.tail(40)),
        }
    }

    /// Like [`Proc::wait_line`] but returns why it failed instead of panicking.
    pub fn try_wait_line(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        let mut out = self.shared.out.lock().unwrap();
        loop {
            if let Some(l) = out.lines[seen..].iter().find(|l| pred(l)) {
                return Ok(l.clone());
            }
            seen = out.lines.len();
            if out.closed == 2 {
                return Err("ended its output".into());
            }
            out = match self.shared.wait_change(out, deadline) {
                Some(out) => out,
                None => return Err(format!("timed out after {timeout:?}")),
            };
        }
    }

    /// Waits for a line containing `text`.
    pub fn wait_for_text(&mut self, text: &str, timeout: Duration) -> String {
        self.wait_line(&format!("'{text}'"), timeout, |l| l.contains(text))
    }

    /// The exit status if the process has ended.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("try_wait");
        }
        self.exited
    }

    /// Waits for the process to end (and its output to be read), or panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_status() {
                self.wait_output_closed(Duration::from_secs(5));
                return s;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not exit within {timeout:?}\n{}",
                    self.name,
                    self.tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit code, which must exist (the process was not killed by a signal).
    pub fn wait_exit_code(&mut self, timeout: Duration) -> i32 {
        let status = self.wait_exit(timeout);
        status.code().unwrap_or_else(|| {
            panic!(
                "{} was killed by a signal ({status})\n{}",
                self.name,
                self.tail(40)
            )
        })
    }

    /// Sends the interrupt signal (Ctrl-C).
    pub fn interrupt(&self) {
        crate::os::interrupt(self.pid());
    }

    /// Kills the process and waits for it.
    pub fn kill(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    fn wait_output_closed(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut out = self.shared.out.lock().unwrap();
        while out.closed < 2 {
            out = match self.shared.wait_change(out, deadline) {
                Some(out) => out,
                // A grandchild (a daemonized copy) may still hold the pipes: not an error.
                None => return,
            };
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_reader(
    pipe: impl Read + Send + 'static,
    prefix: &'static str,
    shared: Arc<Shared>,
    log: Arc<Mutex<std::fs::File>>,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf)
                        .trim_end_matches(['\r', '\n'])
                        .to_string();
                    let _ = writeln!(log.lock().unwrap(), "{prefix}{line}");
                    let mut out = shared.out.lock().unwrap();
                    out.lines.push(format!("{prefix}{line}"));
                    shared.changed.notify_all();
                }
            }
        }
        let mut out = shared.out.lock().unwrap();
        out.closed += 1;
        shared.changed.notify_all();
    });
}

fn unique_log_path(dir: &Path, name: &str) -> PathBuf {
    let mut path = dir.join(format!("{name}.log"));
    let mut n = 2;
    while path.exists() {
        path = dir.join(format!("{name}-{n}.log"));
        n += 1;
    }
    path
}

/// Secrets the harness itself passes on command lines (connectd's `-c` takes the password): the log's
/// header line shows them redacted, so that any secret found in a log was printed by the program.
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub fn register_secret(secret: &str) {
    let mut s = SECRETS.lock().unwrap();
    if !secret.is_empty() && !s.iter().any(|x| x == secret) {
        s.push(secret.to_string());
    }
}

fn describe(cmd: &Command) -> String {
    let secrets = SECRETS.lock().unwrap().clone();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| {
            let a = a.to_string_lossy().into_owned();
            if secrets.iter().any(|s| a.contains(s.as_str())) {
                "<secret>".to_string()
            } else {
                a
            }
        })
        .collect();
    format!("{} {}", cmd.get_program().to_string_lossy(), args.join(" "))
}

/// Replaces `secret` in a finished process's log by `shown`: for the few commands that print a secret by
/// design (`connectd --auth-hash`), so the log check still finds any other copy of it.
pub fn redact_log(path: &Path, secret: &str, shown: &str) {
    let text = std::fs::read_to_string(path).expect("read log");
    std::fs::write(path, text.replace(secret, shown)).expect("rewrite log");
}

/// Runs `cmd` to its end with a timeout, capturing its output into the log folder. For short commands
/// (admin subcommands, ssh, curl).
pub fn run(
    name: &str,
    cmd: Command,
    log_dir: &Path,
    stdin: Option<&str>,
    timeout: Duration,
) -> (i32, String) {
    let mut p = Proc::spawn(name, cmd, log_dir, stdin);
    let status = p.wait_exit(timeout);
    let code = status.code().unwrap_or(-1);
    (code, p.output())
}
