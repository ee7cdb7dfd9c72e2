//! C strings in and out.
//!
//! Every `char *` the library hands out is allocated here and released by `p2p_string_free` only. Handed-out
//! pointers are remembered, so freeing one twice (or freeing a pointer the library never returned) is
//! detected and ignored instead of corrupting the heap of the host process. That is a safety net, not a
//! licence: a freed address can be reused by a later string, so a double free can still release a string
//! the caller holds.

use std::collections::HashSet;
use std::ffi::{c_char, CStr, CString};
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::error::FfiError;

fn live() -> MutexGuard<'static, HashSet<usize>> {
    static LIVE: OnceLock<Mutex<HashSet<usize>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Borrows a caller's NUL-terminated UTF-8 string. `what` names the parameter in the error message.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid and unchanged for `'a`.
pub unsafe fn str_in<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::invalid_argument(format!("{what} is NULL")));
    }
    // SAFETY: non-null, and the caller promises a NUL-terminated string.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|e| {
        FfiError::invalid_argument(format!(
            "{what} is not valid UTF-8 (first bad byte at offset {})",
            e.valid_up_to()
        ))
    })
}

/// [`str_in`] for a parameter that may be NULL (meaning "not given").
///
/// # Safety
/// As [`str_in`].
pub unsafe fn optional_str_in<'a>(
    ptr: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, FfiError> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null; the rest is the caller's contract.
    unsafe { str_in(ptr, what) }.map(Some)
}

/// Turns `s` into a string the caller owns and frees with `p2p_string_free`. An interior NUL (which JSON
/// never contains, but a message might) is written as `\0` so the text is never cut short.
pub fn string_out(s: impl Into<String>) -> *mut c_char {
    let s: String = s.into();
    let c = match CString::new(s) {
        Ok(c) => c,
        Err(e) => {
            let text = String::from_utf8_lossy(&e.into_vec()).replace('\0', "\\0");
            CString::new(text).unwrap_or_default()
        }
    };
    let ptr = c.into_raw();
    live().insert(ptr as usize);
    ptr
}

/// Releases a string from [`string_out`]. Returns false (and does nothing) for a pointer that is not
/// currently handed out.
///
/// # Safety
/// `ptr` is NULL or any pointer value: it is only dereferenced when it is a live pointer from `string_out`.
pub unsafe fn string_free(ptr: *mut c_char) -> bool {
    if ptr.is_null() {
        return true;
    }
    if !live().remove(&(ptr as usize)) {
        return false;
    }
    // SAFETY: the pointer came from CString::into_raw in string_out and was not freed since (it was live).
    drop(unsafe { CString::from_raw(ptr) });
    true
}

/// Writes `value` through `out`.
///
/// # Safety
/// `out` is non-null and valid for a write (checked by the caller with [`check_out`]).
pub unsafe fn write_out<T>(out: *mut T, value: T) {
    // SAFETY: see above.
    unsafe { out.write(value) }
}

/// Fails with INVALID_ARGUMENT when an out-pointer is NULL.
pub fn check_out<T>(out: *mut T, what: &str) -> Result<(), FfiError> {
    if out.is_null() {
        Err(FfiError::invalid_argument(format!("{what} is NULL")))
    } else {
        Ok(())
    }
}
