//! The one process-wide tokio runtime every session runs on, created on first use.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

use crate::error::FfiError;

const WORKER_THREADS: usize = 2;

/// The shared runtime (two worker threads). A failure to build it is remembered and reported by every call.
pub fn runtime() -> Result<&'static Runtime, FfiError> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(WORKER_THREADS)
                .thread_name("remoteitp2p-worker")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| FfiError::internal(e.clone()))
}

/// Runs `fut` to completion on the shared runtime from a host thread.
///
/// Refuses (NOT_SUPPORTED) on a thread that is already inside a tokio runtime — a runtime worker running
/// the log callback, or a host that calls from async code — because `block_on` there would panic or
/// deadlock.
pub fn block_on<F: Future>(fut: F) -> Result<F::Output, FfiError> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(FfiError::not_supported(
            "this call blocks and cannot be made from a runtime thread (e.g. inside the log callback)",
        ));
    }
    Ok(runtime()?.block_on(fut))
}
