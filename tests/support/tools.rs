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

/// `curl http://127.0.0.1:PORT/PATH` (the real curl, 5 s at most): the HTTP status and the body, or
/// status 0 when nothing answered.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let out = std::process::Command::new(curl())
        .args(["-sS", "--max-time", "5", "-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}
