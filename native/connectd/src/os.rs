//! Everything that differs between Unix and Windows: the signals that end connectd, and `-d` (running in
//! the background). The rest of connectd has no `cfg`.
//!
//! `-d` does not fork (forking a process that may already hold threads is unsafe, and Windows has no
//! fork): the parent starts the same executable again with the same arguments minus `-d [PIDFILE]`, with
//! its input and output on the null device, in its own process group (so a Ctrl-C meant for the shell
//! does not reach it), writes the child's PID to PIDFILE and exits 0.

use std::future::Future;
use std::pin::Pin;

use p2p_config::cli_args::Background;

/// Tells the background copy that it is one: it then ignores SIGHUP and removes its PID file at exit.
const CHILD_MARKER: &str = "CONNECTD_BACKGROUND_CHILD";
/// The PID file the background copy removes at exit (only if it still holds its own PID).
const CHILD_PID_FILE: &str = "CONNECTD_BACKGROUND_PID_FILE";

type SignalFuture = Pin<Box<dyn Future<Output = &'static str> + Send>>;

/// A future that resolves when the user or the system asks connectd to end: SIGINT or SIGTERM on Unix;
/// Ctrl-C, Ctrl-Break or closing the console window on Windows. Created before anything starts, so a
/// signal that arrives early is not lost.
pub struct Shutdown {
    wait: SignalFuture,
}

impl Shutdown {
    /// Must be called inside the tokio runtime.
    pub fn register() -> Shutdown {
        match listen() {
            Ok(wait) => Shutdown { wait },
            Err(e) => {
                // Without handlers the default action still ends the process: only the clean close is lost.
                log::warn!("cannot listen for termination signals: {e}");
                Shutdown {
                    wait: Box::pin(std::future::pending()),
                }
            }
        }
    }

    /// Waits for the signal; returns its name for the log.
    pub async fn wait(&mut self) -> &'static str {
        (&mut self.wait).await
    }
}

#[cfg(unix)]
fn listen() -> std::io::Result<SignalFuture> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(Box::pin(async move {
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    }))
}

#[cfg(windows)]
fn listen() -> std::io::Result<SignalFuture> {
    use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close};
    let mut c = ctrl_c()?;
    let mut brk = ctrl_break()?;
    let mut close = ctrl_close()?;
    Ok(Box::pin(async move {
        tokio::select! {
            _ = c.recv() => "Ctrl-C",
            _ = brk.recv() => "Ctrl-Break",
            _ = close.recv() => "console closed",
        }
    }))
}

#[cfg(not(any(unix, windows)))]
fn listen() -> std::io::Result<SignalFuture> {
    Ok(Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }))
}

/// Set in the background copy started by `-d`: keeps it alive when the terminal closes, and removes the
/// PID file when it ends (drop).
pub struct BackgroundChild {
    pid_file: Option<std::path::PathBuf>,
    #[cfg(unix)]
    _hangup: Option<tokio::signal::unix::Signal>,
}

impl BackgroundChild {
    /// `None` in a foreground run. Must be called inside the tokio runtime.
    pub fn detect() -> Option<BackgroundChild> {
        std::env::var_os(CHILD_MARKER)?;
        Some(BackgroundChild {
            pid_file: std::env::var_os(CHILD_PID_FILE).map(Into::into),
            // Listening for SIGHUP replaces its default action (exit) for as long as this lives.
            #[cfg(unix)]
            _hangup: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        })
    }
}

impl Drop for BackgroundChild {
    fn drop(&mut self) {
        let Some(path) = &self.pid_file else { return };
        // Only our own PID file: a newer run may have reused the path.
        let ours = std::fs::read_to_string(path)
            .is_ok_and(|text| text.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `-d [PIDFILE]`: starts the background copy and returns the parent's exit status.
#[cfg(unix)]
pub fn run_in_background(args: &[String], background: &Background) -> i32 {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    let fail = |message: String| {
        eprintln!("connectd: {message}");
        i32::from(p2p_config::ExitCode::Unknown.code())
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return fail(format!("-d: cannot find connectd's own executable: {e}")),
    };
    // An absolute PID file path, as the child's working directory is the same but a relative path in a
    // script is easy to misread later.
    let pid_file = background
        .pid_file
        .as_ref()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()));
    let mut command = Command::new(exe);
    command
        .args(p2p_config::without_background(args))
        .env(CHILD_MARKER, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    if let Some(path) = &pid_file {
        command.env(CHILD_PID_FILE, path);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return fail(format!("-d: cannot start the background process: {e}")),
    };
    if let Some(path) = &pid_file {
        if let Err(e) = std::fs::write(path, format!("{}\n", child.id())) {
            let _ = child.kill();
            let _ = child.wait();
            return fail(format!(
                "-d: cannot write the PID file {}: {e}",
                path.display()
            ));
        }
    }
    // Its output goes nowhere, so a mistake that ends it at once (port in use, no server) would go
    // unseen: wait a moment and report it.
    std::thread::sleep(Duration::from_millis(700));
    match child.try_wait() {
        Ok(Some(status)) => {
            let code = status
                .code()
                .unwrap_or(i32::from(p2p_config::ExitCode::Unknown.code()));
            eprintln!(
                "connectd: the background process ended at once with status {code}; run the same command without -d to see why"
            );
            code
        }
        _ => {
            log::info!("running in the background as process {}", child.id());
            0
        }
    }
}

#[cfg(not(unix))]
pub fn run_in_background(_args: &[String], _background: &Background) -> i32 {
    eprintln!(
        "connectd: -d (background) is only available on Unix; on Windows use Start-Process -WindowStyle Hidden, or New-P2PConnection from the PowerShell module"
    );
    i32::from(p2p_config::cli_args::USAGE_EXIT_STATUS)
}

/// Keeps freed memory for reuse instead of handing it back to the OS after every burst. Each TCP read
/// takes a fresh 64 KiB buffer; with glibc's default trim threshold (128 KiB) the heap shrank after
/// each burst and grew again in the next, and the page faults of refilling it were 6% of a bulk
/// transfer's CPU (perf, p2p-bench). Memory kept this way is at most 16 MiB and is reused first.
/// Call once at start, before any thread is spawned.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune_allocator() {
    // SAFETY: mallopt only changes allocator tuning; it is called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 * 1024 * 1024);
        // Setting the trim threshold turns off glibc's dynamic mmap threshold: pin it where buffers
        // of a stream (up to 256 KiB of queued writes) still come from the heap.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

/// Other allocators keep their own policy.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_allocator() {}
