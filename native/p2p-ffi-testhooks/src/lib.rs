//! The C ABI of RemoteItP2P plus one export that only tests want: `p2p_test_inject_panic`, a deliberate
//! bug that proves the panic boundary (Rust tests here, Pester through `REMOTEITP2P_NATIVE_LIB`). The
//! shipped library (p2p-ffi) does not have it.

mod inject_panic;

/// Re-exported so that this library's users (and its tests) reach the whole C ABI through it.
pub use remoteitp2p::*;

use remoteitp2p::extend::guard;

/// Panics inside the library on purpose, to prove that a native failure cannot crash the host.
/// `where_` 0 panics on the calling thread, 1 in a task on the shared runtime. Returns `P2P_ERR_PANIC`
/// (the library stays usable), or `P2P_ERR_INVALID_ARGUMENT` for another `where_`.
#[no_mangle]
pub extern "C" fn p2p_test_inject_panic(where_: i32) -> i32 {
    guard(|| inject_panic::inject_panic(where_))
}
