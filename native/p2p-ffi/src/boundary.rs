//! The panic boundary every export goes through.
//!
//! An unwinding panic must never cross `extern "C"`: it would abort the host (a PowerShell process with
//! the user's other work in it). [`guard`] runs an export's body under `catch_unwind` and turns a panic
//! into `P2P_ERR_PANIC` with a message. The crate is built with `panic = "unwind"` in every profile
//! (see the workspace Cargo.toml); with `abort` nothing here could help.
//!
//! A panic inside the library is reported to the host through the last error and the log callback, not
//! printed on the host's stderr: the process-wide panic hook installed here stays quiet for panics on
//! threads that are inside an export or are the library's runtime workers, and forwards every other
//! panic to the hook that was installed before.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe, PanicHookInfo};
use std::sync::Once;

use crate::error::{clear_last_error, set_last_error, FfiError, P2P_ERR_PANIC, P2P_OK};

thread_local! {
    /// How many exports this thread is inside (an export can call back into the host, which can call
    /// another export).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Where the last panic on this thread happened, written by the hook, read by the boundary.
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The thread name prefix of the shared runtime's workers (see `runtime.rs`).
pub const WORKER_THREAD_NAME: &str = "remoteitp2p-worker";

fn is_library_thread() -> bool {
    DEPTH.with(|d| d.get() > 0)
        || std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with(WORKER_THREAD_NAME))
}

fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if !is_library_thread() {
                previous(info);
                return;
            }
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_else(|| "an unknown place".to_string());
            PANIC_LOCATION.with(|p| {
                if let Ok(mut slot) = p.try_borrow_mut() {
                    *slot = Some(location.clone());
                }
            });
            log::error!(
                "internal error (a bug) at {location}: {}",
                panic_message(info.payload())
            );
        }));
    });
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Marks the thread as inside an export while it lives, so the hook knows whose panic it sees.
struct Depth;

impl Depth {
    fn enter() -> Depth {
        DEPTH.with(|d| d.set(d.get() + 1));
        Depth
    }
}

impl Drop for Depth {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Runs an export's body: clears the thread's last error, catches any panic, records a failure as the
/// last error and returns the result code.
pub fn guard(body: impl FnOnce() -> Result<(), FfiError>) -> i32 {
    install_panic_hook();
    clear_last_error();
    let _depth = Depth::enter();
    if crate::log::in_callback() {
        return set_last_error(FfiError::not_supported(
            "the library cannot be called from inside its own log callback",
        ));
    }
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => P2P_OK,
        Ok(Err(e)) => set_last_error(e),
        Err(payload) => {
            let location = PANIC_LOCATION
                .with(|p| p.try_borrow_mut().ok().and_then(|mut slot| slot.take()))
                .map(|l| format!(" at {l}"))
                .unwrap_or_default();
            set_last_error(FfiError::new(
                P2P_ERR_PANIC,
                format!(
                    "internal error in the native library (a bug, please report it){location}: {}; \
                     the call did nothing and the library stays usable",
                    panic_message(payload.as_ref())
                ),
            ))
        }
    }
}

/// Like [`guard`] for the few exports that must not clear the last error (they read it) and that have
/// nothing to record: a panic is swallowed and `fallback` returned.
pub fn guard_quiet<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    install_panic_hook();
    let _depth = Depth::enter();
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}
