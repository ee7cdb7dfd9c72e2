//! The corpus of provisioning files under `tests/provisioning/`:
//! - `seed-sample.txt`: the seed document's sample, which must parse without a warning;
//! - `malformed/`: each file must be refused, with the error `malformed/expected.txt` gives for it;
//! - `warnings/`: each file must be accepted, with every warning `warnings/expected.txt` gives for it.
//!
//! `expected.txt` holds one `FILE | TEXT` line per expectation (`#` starts a comment). For a malformed
//! file TEXT is the start of the error, which names the file, the line and the key
//! (`10-port-negative.txt:13: key 'proxy_local_port': invalid port '-1'...`); for a warning it is the whole
//! warning (`line 22: key 'remote_adress': unknown key, ignored ...`). Files are parsed under their bare
//! name so the expectations do not depend on where the repository is checked out.
//!
//! Set `PRINT_CORPUS=1` to print what each file gives (to write the expectations for a new file).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use p2p_config::{parse_provisioning, parse_provisioning_file, ProvisioningKind};

fn corpus_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/provisioning")
        .join(sub)
}

/// `FILE | TEXT` lines, grouped by file, in order.
fn expectations(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let path = dir.join("expected.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (file, expected) = line
            .split_once(" | ")
            .unwrap_or_else(|| panic!("{}:{}: expected 'FILE | TEXT'", path.display(), n + 1));
        out.entry(file.trim().to_string())
            .or_default()
            .push(expected.to_string());
    }
    out
}

/// The corpus files of a directory (everything but `expected.txt`), by name.
fn corpus_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n != "expected.txt"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn printing() -> bool {
    std::env::var_os("PRINT_CORPUS").is_some()
}

#[test]
fn the_seed_sample_is_accepted_without_warnings() {
    let p = parse_provisioning_file(corpus_dir("seed-sample.txt")).unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert!(matches!(p.kind, ProvisioningKind::Initiator(_)));
}

#[test]
fn every_malformed_file_gets_its_line_numbered_error() {
    let dir = corpus_dir("malformed");
    let expected = expectations(&dir);
    let files = corpus_files(&dir);
    assert!(
        files.len() >= 20,
        "the corpus should hold at least 20 files, has {}",
        files.len()
    );
    let mut failures = Vec::new();
    for (name, bytes) in &files {
        let got = match parse_provisioning(bytes, name) {
            Ok(p) => format!("ACCEPTED with {:?}", p.warnings),
            Err(e) => e.to_string(),
        };
        if printing() {
            println!("{name} | {got}");
        }
        match expected.get(name).map(Vec::as_slice) {
            Some([want]) if got.starts_with(want.as_str()) && !got.contains('\n') => {}
            Some([want]) => failures.push(format!("{name}\n  gave: {got}\n  want: {want}...")),
            Some(_) => failures.push(format!("{name}: give exactly one expected error")),
            None => failures.push(format!("{name}: no line in expected.txt (it gives: {got})")),
        }
    }
    for name in expected.keys() {
        if !files.iter().any(|(f, _)| f == name) {
            failures.push(format!("expected.txt names {name}, which does not exist"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_warning_file_is_accepted_with_its_warnings() {
    let dir = corpus_dir("warnings");
    let expected = expectations(&dir);
    let mut failures = Vec::new();
    for (name, bytes) in corpus_files(&dir) {
        let got: Vec<String> = match parse_provisioning(&bytes, &name) {
            Ok(p) => p.warnings.iter().map(ToString::to_string).collect(),
            Err(e) => {
                failures.push(format!("{name}: refused: {e}"));
                continue;
            }
        };
        if printing() {
            for w in &got {
                println!("{name} | {w}");
            }
        }
        let want = expected.get(&name).cloned().unwrap_or_default();
        if want.is_empty() {
            failures.push(format!(
                "{name}: no line in expected.txt (it gives: {got:?})"
            ));
        } else if got != want {
            failures.push(format!("{name}\n  gave: {got:?}\n  want: {want:?}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn errors_from_a_path_name_the_path() {
    let path = corpus_dir("malformed").join("10-port-negative.txt");
    let error = parse_provisioning_file(&path).unwrap_err();
    assert_eq!(error.file, path.display().to_string());
    assert_eq!(error.line, Some(13));
    assert_eq!(error.key.as_deref(), Some("proxy_local_port"));
}
