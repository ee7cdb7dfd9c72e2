//! The panic boundary: a panic inside the library, on the calling thread or in a runtime task, comes
//! back as `P2P_ERR_PANIC` with a message, and the library stays usable afterwards.

use std::ptr;

use remoteitp2p_testhooks::*;

#[path = "../../p2p-ffi/tests/support/mod.rs"]
#[allow(dead_code)]
mod support;
use support::{last_error, take};

#[test]
fn a_panic_becomes_an_error_and_the_library_stays_usable() {
    for place in [0, 1] {
        assert_eq!(p2p_test_inject_panic(place), P2P_ERR_PANIC);
        let (kind, message) = last_error();
        assert_eq!(kind, "Panic");
        assert!(
            message.contains("injected by p2p_test_inject_panic"),
            "{message}"
        );
    }
    assert_eq!(p2p_test_inject_panic(7), P2P_ERR_INVALID_ARGUMENT);
    let mut out = ptr::null_mut();
    assert_eq!(unsafe { p2p_session_list(&mut out) }, P2P_OK);
    assert!(take(out).starts_with('['));
}
