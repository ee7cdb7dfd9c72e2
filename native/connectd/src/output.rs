//! What connectd prints. Scripts read stdout (`Starting Proxy on port ...`, the `!!` lines with `-s`);
//! problems go to stderr as one plain `connectd: ...` line each.
//!
//! Write errors are ignored on purpose: a background copy writes to the null device, and a reader that
//! went away (`connectd ... | head -1`) must not turn into a panic that skips closing the tunnel.

use std::io::Write;

use p2p_config::{ExitCode, Warning};

pub struct Output {
    /// `-s`: print the `!!` lines.
    status_lines: bool,
}

impl Output {
    pub fn new(status_lines: bool) -> Self {
        Output { status_lines }
    }

    /// A line scripts read, always printed.
    pub fn line(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// A `!!` status line, printed with `-s` only.
    pub fn status(&self, text: &str) {
        if self.status_lines {
            self.line(text);
        }
    }

    /// One plain line saying what went wrong (or is about to).
    pub fn problem(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "connectd: {text}");
        let _ = err.flush();
    }

    /// A provisioning file's warnings, before anything starts.
    pub fn warnings(&self, warnings: &[Warning]) {
        for w in warnings {
            self.problem(&format!("warning: provisioning file {w}"));
        }
    }

    /// The last line: `!!exit [CODE] : MESSAGE` with `-s`. Returns the code for the process status.
    pub fn exit(&self, code: ExitCode, message: &str) -> ExitCode {
        let message = if message.is_empty() {
            code.description()
        } else {
            message
        };
        self.status(&code.status_line(message));
        code
    }

    /// A failure: the plain line on stderr, then the `!!exit` line.
    pub fn fail(&self, code: ExitCode, message: &str) -> ExitCode {
        self.problem(message);
        self.exit(code, message)
    }
}
