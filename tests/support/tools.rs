//! External tools some tests need (curl, ssh, sshd). A missing tool fails the test with what to install:
//! CI installs them (`.ci/run`), and a silently skipped test would hide a gap.

use std::path::PathBuf;

/// Finds `name` on PATH or in the extra directories (sshd lives in /usr/sbin, often not on PATH).
pub fn find(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let exe = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|d| d.join(&exe))
        .find(|p| p.is_file())
}

/// The tool's path, or a panic naming the package that provides it.
pub fn require(name: &str, package: &str) -> PathBuf {
    find(name, &["/usr/sbin", "/usr/local/sbin", "/sbin"]).unwrap_or_else(|| {
        panic!("this test needs '{name}', which is not installed: install the '{package}' package (e.g. `apt-get install {package}`; .ci/run does this)")
    })
}

pub fn curl() -> PathBuf {
    require("curl", "curl")
}
