//! Where the binaries under test are. Cargo gives `CARGO_BIN_EXE_*` only to a package's own tests, so this
//! crate looks in the target directory it was itself built into (`target/<profile>/deps/<test>` →
//! `target/<profile>/`), unless `P2P_BIN_DIR` says otherwise.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// The directory that holds `p2p-server` and `connectd`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("P2P_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the test executable has a path");
    let mut dir = exe
        .parent()
        .expect("the test executable is in a directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// The path of binary `name`; panics with what to do when it was not built.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "binary '{name}' not found at {}: build it first with `cargo build --workspace --bins` \
         (or point P2P_BIN_DIR at the folder that holds it)",
        path.display()
    );
    warn_if_stale(name, &path);
    path
}

/// `cargo test` does not rebuild another package's binaries, so a test could run yesterday's
/// `connectd`. Say so (once per binary) when a source file under `native/` is newer than the binary.
fn warn_if_stale(name: &str, path: &Path) {
    static WARNED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
    if warned.iter().any(|w| w == name) || std::env::var_os("P2P_BIN_DIR").is_some() {
        return;
    }
    warned.push(name.to_string());
    let Ok(built) = std::fs::metadata(path).and_then(|m| m.modified()) else {
        return;
    };
    let native = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("native");
    // The crates the two binaries are built from.
    let newest = [
        "p2p-proto",
        "p2p-config",
        "p2p-net",
        "p2p-server",
        "connectd",
    ]
    .iter()
    .filter_map(|c| newest_source(&native.join(c)))
    .max_by_key(|(t, _)| *t);
    if let Some(newer) = newest.filter(|(t, _)| *t > built) {
        eprintln!(
            "warning: {} is newer than {}: run `cargo build --workspace --bins` so the tests run the current code",
            newer.1.display(),
            path.display()
        );
    }
}

fn newest_source(dir: &Path) -> Option<(SystemTime, PathBuf)> {
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        let candidate = if p.is_dir() {
            newest_source(&p)
        } else if p.extension().is_some_and(|e| e == "rs" || e == "toml") {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .map(|t| (t, p))
        } else {
            None
        };
        if let Some(c) = candidate {
            match &newest {
                Some(n) if n.0 >= c.0 => {}
                _ => newest = Some(c),
            }
        }
    }
    newest
}

pub fn server() -> PathBuf {
    bin("p2p-server")
}

pub fn connectd() -> PathBuf {
    bin("connectd")
}

/// Panics with what to do when the connectd the tests run was built without the driver's test hooks
/// (a `cargo build -p connectd` leaves them out; the workspace build turns them on through p2p-testkit).
/// Without them a test that blocks the direct path would silently test the direct path instead.
pub fn require_test_hooks() {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    CHECKED.get_or_init(|| {
        let hooks = p2p_testkit::connectd_build::has_test_hooks(&connectd()).unwrap();
        assert!(
            hooks,
            "{} was built without test hooks: run `cargo build --release --workspace --bins`",
            connectd().display()
        );
    });
}
