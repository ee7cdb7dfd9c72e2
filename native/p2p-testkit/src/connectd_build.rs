//! Whether a connectd binary reads the driver's test hooks: the tests and the benchmark check before
//! they rely on them, since a build without them would quietly use the direct path instead.

use std::path::Path;
use std::process::Command;

/// What a hook build's `connectd --version` adds (see connectd's `main.rs`).
const HOOKS_LINE: &str = "test hooks:";

/// Runs `connectd --version` and says whether that build has the test hooks.
pub fn has_test_hooks(connectd: &Path) -> Result<bool, String> {
    let out = Command::new(connectd)
        .arg("--version")
        .output()
        .map_err(|e| format!("running {} --version: {e}", connectd.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout).contains(HOOKS_LINE))
}
