//! The Windows build under wine: where the cross-built binaries are and how a test starts
//! them. `build.ps1 -Task Test` builds them (tools/windows/cross.sh) and sets `P2P_WIN_BIN_DIR`; the
//! tests that need them are `#[ignore]`d in a plain `cargo test` and run with `--ignored` there.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The folder that holds `connectd.exe` and `remoteitp2p.dll`; panics with what to do when unset.
pub fn bin_dir() -> PathBuf {
    let dir = std::env::var_os("P2P_WIN_BIN_DIR")
        .map(PathBuf::from)
        .expect(
            "P2P_WIN_BIN_DIR is not set: build the Windows binaries with \
         `pwsh ./build.ps1 -Task Build -Runtime win-x64` and point it at \
         target/windows/x86_64-pc-windows-gnu/release",
        );
    assert!(
        dir.is_dir(),
        "P2P_WIN_BIN_DIR={} is not a folder",
        dir.display()
    );
    dir
}

/// A file of the Windows build; panics when it was not built.
pub fn windows_file(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

pub fn connectd_exe() -> PathBuf {
    windows_file("connectd.exe")
}

/// `program` under wine, headless, in the project's wine prefix (through tools/windows/cross.sh, which
/// prepares the prefix and its stand-in bcryptprimitives.dll).
pub fn command(program: &Path) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(cross_script()).arg("wine").arg(program);
    cmd
}

fn cross_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tools/windows/cross.sh")
}

/// How a Windows program under wine names a file of this machine: drive Z: is the root.
pub fn windows_path(path: &Path) -> String {
    let abs = std::path::absolute(path).expect("an absolute path");
    format!("Z:{}", abs.to_string_lossy().replace('/', "\\"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn unix_paths_become_drive_z_paths() {
        assert_eq!(
            super::windows_path(std::path::Path::new("/tmp/a b/SSH-Pi.txt")),
            r"Z:\tmp\a b\SSH-Pi.txt"
        );
    }
}
