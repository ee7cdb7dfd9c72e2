//! The checked-in C header must match what cbindgen generates from the sources today, so CI fails when
//! an export changes without the header. To refresh it:
//! `REMOTEITP2P_UPDATE_HEADER=1 cargo test -p p2p-ffi --test header`.

use std::path::PathBuf;

const HEADER: &str = "include/remoteitp2p.h";

fn generate() -> String {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("read cbindgen.toml");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn header_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(HEADER);
    let fresh = generate();
    if std::env::var_os("REMOTEITP2P_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &fresh).expect("write the header");
        return;
    }
    let current = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .replace("\r\n", "\n");
    assert!(
        current == fresh,
        "{HEADER} is stale: run `REMOTEITP2P_UPDATE_HEADER=1 cargo test -p p2p-ffi --test header` and commit it"
    );
}

#[test]
fn header_declares_every_export() {
    let header = generate();
    for name in [
        "p2p_version",
        "p2p_session_start",
        "p2p_session_start_file",
        "p2p_session_status",
        "p2p_session_list",
        "p2p_session_stop",
        "p2p_session_stop_cancellable",
        "p2p_session_wait",
        "p2p_cancel_new",
        "p2p_cancel_fire",
        "p2p_cancel_free",
        "p2p_network_test_cancellable",
        "P2P_ERR_CANCELLED",
        "p2p_session_forget",
        "p2p_shutdown",
        "p2p_network_test",
        "p2p_provisioning_parse",
        "p2p_last_error",
        "p2p_last_error_kind",
        "p2p_string_free",
        "p2p_set_log_callback",
        "p2p_result_name",
        "P2P_ERR_PANIC",
        "p2p_log_callback",
    ] {
        assert!(header.contains(name), "the header lacks {name}");
    }
}

/// The shipped library has no test hook: `p2p_test_inject_panic` lives in the separate test build
/// (native/p2p-ffi-testhooks), so neither the header nor the library file this crate builds name it.
#[test]
fn the_shipped_library_exports_no_test_hook() {
    assert!(!generate().contains("p2p_test_inject_panic"));
    // cargo test builds the cdylib beside this test, in target/<profile>/deps.
    let exe = std::env::current_exe().expect("the test's path");
    let dir = exe.parent().expect("target/<profile>/deps");
    let name = format!(
        "{}remoteitp2p{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let bytes =
        std::fs::read(dir.join(&name)).expect("cargo test builds the cdylib beside the tests");
    let hook = b"p2p_test_inject_panic";
    assert!(
        !bytes.windows(hook.len()).any(|w| w == hook),
        "{name} exports the test hook"
    );
}
