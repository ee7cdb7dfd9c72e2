//! The deliberate bug behind `p2p_test_inject_panic`.

use remoteitp2p::extend::{block_on, runtime, FfiError};

/// Panics on the calling thread (`where_` 0) or in a task on the shared runtime (1). The first is caught
/// by the export's boundary; the second by tokio, and reported here the same way.
pub fn inject_panic(where_: i32) -> Result<(), FfiError> {
    match where_ {
        0 => panic!("injected by p2p_test_inject_panic"),
        1 => {
            let task = runtime()?
                .spawn(async { panic!("injected by p2p_test_inject_panic in a runtime task") });
            match block_on(task)? {
                Ok(()) => Ok(()),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => Err(FfiError::internal(format!(
                    "the injected task was cancelled: {e}"
                ))),
            }
        }
        other => Err(FfiError::invalid_argument(format!(
            "where_ must be 0 (calling thread) or 1 (runtime task), not {other}"
        ))),
    }
}
