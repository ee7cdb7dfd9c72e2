//! The corpus of malformed provisioning files under `tests/provisioning/malformed/`, each run
//! through the real binary (`connectd -f FILE`): it must fail at once, with a non-zero status, without a
//! panic, and print the expected line-numbered error from `expected.txt` (the parser's own test checks
//! the same table in-process; this checks what a user of the command line sees). The files accepted
//! with warnings (`warnings/`) must print each expected warning before going on.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use p2p_system_tests::lab::log_root;
use p2p_system_tests::proc::{run, Proc};

fn corpus(dir: &str) -> (PathBuf, Vec<(String, String)>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("provisioning")
        .join(dir);
    let table = std::fs::read_to_string(dir.join("expected.txt")).expect("expected.txt");
    let rows = table
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (file, expected) = l
                .split_once(" | ")
                .unwrap_or_else(|| panic!("bad expected.txt line '{l}'"));
            (file.trim().to_string(), expected.trim().to_string())
        })
        .collect();
    (dir, rows)
}

/// `connectd -f FILE` run beside the corpus files, so the error names the file as the user typed it;
/// a server key from the environment would not be the file's, so it is removed.
fn connectd_reading(dir: &Path, file: &str) -> Command {
    let mut cmd = Command::new(p2p_system_tests::bins::connectd());
    cmd.current_dir(dir)
        .arg("-f")
        .arg(file)
        .env_remove("P2P_SERVER_KEY");
    cmd
}

fn logs(name: &str) -> PathBuf {
    let dir = log_root().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_malformed_file_gets_its_line_numbered_error() {
    let (dir, rows) = corpus("malformed");
    assert!(rows.len() >= 20, "the corpus has only {} files", rows.len());
    let logs = logs("cli_provisioning_malformed");
    let mut failures = Vec::new();
    for (file, expected) in &rows {
        let mut cmd = connectd_reading(&dir, file);
        cmd.env_remove("P2P_SERVER");
        let (code, out) = run(
            "connectd-malformed",
            cmd,
            &logs,
            None,
            Duration::from_secs(20),
        );
        if code == 0 || !out.contains(expected.as_str()) || out.contains("panicked") {
            failures.push(format!(
                "{file}: exit {code}, expected '{expected}', got:\n{out}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} files misbehaved:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn files_with_warnings_print_them_and_go_on() {
    let (dir, rows) = corpus("warnings");
    let logs = logs("cli_provisioning_warnings");
    let mut failures = Vec::new();
    for (file, expected) in &rows {
        let mut cmd = connectd_reading(&dir, file);
        // No server is reachable: the run fails later, after the warnings, which is all this checks.
        cmd.env("P2P_SERVER", "127.0.0.1:9");
        let mut p = Proc::spawn("connectd-warnings", cmd, &logs, None);
        if p.try_wait_line(Duration::from_secs(20), |l| l.contains(expected.as_str()))
            .is_err()
        {
            failures.push(format!("{file}: no warning '{expected}':\n{}", p.tail(20)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
