//! Waiting with deadlines instead of sleeps: a test polls for the condition it needs and fails with a
//! message that says what it was waiting for.

use std::time::{Duration, Instant};

const STEP: Duration = Duration::from_millis(50);

/// Polls `f` until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(STEP);
    }
}

/// Polls `f` until it is true, or panics after `timeout` with `what`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    wait_for(what, timeout, || f().then_some(()))
}
