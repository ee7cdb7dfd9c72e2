//! Forwards the `log` crate's records (the library's and the driver's) to one C callback.
//!
//! The callback runs synchronously on whichever thread logged — often a runtime worker — possibly on
//! several threads at once. While it runs, the thread is marked: a record logged from inside the callback
//! is dropped, and exports called from inside it fail with NOT_SUPPORTED instead of deadlocking.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{OnceLock, RwLock};

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::error::FfiError;

/// `void callback(int32_t level, const char *message, void *user_data)`; level 1 error .. 5 trace.
#[allow(non_camel_case_types)]
pub type p2p_log_callback =
    Option<unsafe extern "C" fn(level: i32, message: *const c_char, user_data: *mut c_void)>;

#[derive(Clone, Copy)]
struct Sink {
    callback: unsafe extern "C" fn(i32, *const c_char, *mut c_void),
    /// The caller's pointer, kept as an integer: the library never dereferences it.
    user_data: usize,
    max_level: LevelFilter,
}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

thread_local! {
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// True while this thread runs the log callback.
pub fn in_callback() -> bool {
    IN_CALLBACK.with(|c| c.get())
}

struct CallbackLogger;

static LOGGER: CallbackLogger = CallbackLogger;

impl Log for CallbackLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        match SINK.read() {
            Ok(sink) => sink.is_some_and(|s| metadata.level() <= s.max_level),
            Err(_) => false,
        }
    }

    fn log(&self, record: &Record) {
        if in_callback() {
            return;
        }
        // Holding the read lock while the callback runs means p2p_set_log_callback (the writer) returns
        // only once no thread is still inside the previous callback.
        let Ok(guard) = SINK.read() else { return };
        let Some(sink) = *guard else { return };
        if record.level() > sink.max_level {
            return;
        }
        let text = format!("{}: {}", record.target(), record.args()).replace('\0', "\\0");
        let Ok(message) = CString::new(text) else {
            return;
        };
        IN_CALLBACK.with(|c| c.set(true));
        // A C callback cannot unwind; the guard only covers this crate's side of the call.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the host registered this function pointer and user_data together, and promised
            // the callback is callable from any thread until it is replaced.
            unsafe {
                (sink.callback)(
                    level_number(record.level()),
                    message.as_ptr(),
                    sink.user_data as *mut c_void,
                )
            }
        }));
        IN_CALLBACK.with(|c| c.set(false));
        drop(guard);
    }

    fn flush(&self) {}
}

fn level_number(level: Level) -> i32 {
    match level {
        Level::Error => 1,
        Level::Warn => 2,
        Level::Info => 3,
        Level::Debug => 4,
        Level::Trace => 5,
    }
}

fn level_filter(max_level: i32) -> LevelFilter {
    match max_level {
        i32::MIN..=0 => LevelFilter::Off,
        1 => LevelFilter::Error,
        2 => LevelFilter::Warn,
        3 => LevelFilter::Info,
        4 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Installs (or with `None` removes) the callback. Returns once no thread runs the previous callback.
pub fn set_callback(
    callback: p2p_log_callback,
    user_data: *mut c_void,
    max_level: i32,
) -> Result<(), FfiError> {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    if !*INSTALLED.get_or_init(|| log::set_logger(&LOGGER).is_ok()) {
        return Err(FfiError::not_supported(
            "another logger is already installed in this process; the log callback cannot be used",
        ));
    }
    let filter = match callback {
        Some(_) => level_filter(max_level),
        None => LevelFilter::Off,
    };
    {
        let mut sink = SINK.write().unwrap_or_else(|p| p.into_inner());
        *sink = callback.map(|callback| Sink {
            callback,
            user_data: user_data as usize,
            max_level: filter,
        });
    }
    log::set_max_level(filter);
    Ok(())
}
