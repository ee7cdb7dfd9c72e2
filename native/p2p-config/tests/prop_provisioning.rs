//! Property ("fuzz") target of the provisioning-file decoder (`p2p_config::parse_provisioning`, behind
//! `connectd -f`, `connectd -e`, the C ABI and the cmdlets): random bytes, random text made of the
//! files' own keys and values, and the corpus's valid files mutated byte by byte.
//!
//! Never a panic. An error is one line that starts with the file name; when it gives a line number,
//! that line exists; warnings point at existing lines too. No error, warning or JSON view ever shows the
//! password, auth hash or device secret while that value is still in the file under its key.
//!
//! CI runs a short default; `tools/fuzz/run.sh` sets `PROPTEST_CASES` for the million-case run. (This
//! file repeats the few lines of `native/p2p-proto/tests/common` it needs: integration tests of
//! different crates cannot share a module.)

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

use p2p_config::{parse_provisioning, parse_provisioning_base64, ProvisionError};

const FILE: &str = "fuzz.conf";
const PASSWORD: &str = "Pw9fK3q7Zx2Lm8Rt4Vb6";
const AUTH_HASH: &str = "a1b2c3d4.Hs5Jk7Lp9Qw2Er4Ty6Ui8";
const DEVICE_SECRET: &str = "Dv3Sc7Rt9Xy2Wq5Zp8Mn4";

fn initiator_file(credential: &str) -> String {
    format!(
        "# initiator\nautoconnect 1\nuser_id someone@example.com\n{credential}\nproxy_local_port 33300\n\
         proxy_bind_address 127.0.0.1\nremote_address 80:00:00:00:01:00:0A:C2\nmax_depth 12\n\
         server 198.51.100.1:5980\nencryption 3\n"
    )
}

fn target_file() -> String {
    format!(
        "# target (device) file\r\nUID 80:00:00:00:01:00:0A:C2\r\npassword {DEVICE_SECRET}\r\n\
         proxy_dest_ip 127.0.0.1\r\nproxy_dest_port 22\r\napplication_type 28\r\n"
    )
}

/// A valid file, the line holding its secret, and the secret.
type Seed = (Vec<u8>, String, &'static str);

/// Valid files and the secret line each carries.
fn seeds() -> Vec<Seed> {
    let pass = format!("auth_pass {PASSWORD}");
    let hash = format!("auth_hash {AUTH_HASH}");
    let corpus = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/provisioning/seed-sample.txt"),
    )
    .unwrap_or_default();
    let mut v = vec![
        (initiator_file(&pass).into_bytes(), pass, PASSWORD),
        (initiator_file(&hash).into_bytes(), hash, AUTH_HASH),
        (
            target_file().into_bytes(),
            format!("password {DEVICE_SECRET}"),
            DEVICE_SECRET,
        ),
    ];
    if !corpus.is_empty() {
        v.push((corpus, "auth_pass weaved1234".into(), "weaved1234"));
    }
    v
}

fn cases(ci_default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(ci_default)
}

/// As `common::check` in p2p-proto: runs the cases and prints `fuzz-stat NAME: N executions, F failures`.
fn check<S: Strategy>(
    name: &str,
    ci_default: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let config = ProptestConfig {
        cases: cases(ci_default),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let executed = AtomicU64::new(0);
    let result = TestRunner::new(config).run(&strategy, |v| {
        executed.fetch_add(1, Ordering::Relaxed);
        test(v)
    });
    let n = executed.load(Ordering::Relaxed);
    let failures = u32::from(result.is_err());
    eprintln!("fuzz-stat {name}: {n} executions, {failures} failures");
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// Lines a line number may point at: a UTF-16 file has as many 0x0a bytes as lines too.
fn max_line(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| **b == b'\n').count() + 1
}

fn check_error(e: &ProvisionError, bytes: &[u8]) -> Result<(), TestCaseError> {
    let text = e.to_string();
    prop_assert!(
        !text.contains('\n') && !text.contains('\r'),
        "not one line: {:?}",
        text
    );
    prop_assert!(text.starts_with(FILE), "does not name the file: {}", text);
    if let Some(line) = e.line {
        prop_assert!(
            line >= 1 && line <= max_line(bytes),
            "line {} of {}: {}",
            line,
            max_line(bytes),
            text
        );
        let prefix = format!("{FILE}:{line}: ");
        prop_assert!(text.starts_with(&prefix), "{}", text);
    } else {
        // Without a line the error is about the whole file: a missing key, or no usable content.
        let prefix = format!("{FILE}: ");
        prop_assert!(text.starts_with(&prefix), "{}", text);
    }
    Ok(())
}

/// Parses `bytes`; checks the error or the warnings and JSON view. Returns everything shown to a user.
fn parse_and_check(bytes: &[u8]) -> Result<String, TestCaseError> {
    match parse_provisioning(bytes, FILE) {
        Err(e) => {
            check_error(&e, bytes)?;
            Ok(e.to_string())
        }
        Ok(p) => {
            let mut shown = String::new();
            for w in &p.warnings {
                prop_assert!(
                    w.line >= 1 && w.line <= max_line(bytes),
                    "warning at line {}",
                    w.line
                );
                let t = w.to_string();
                prop_assert!(!t.contains('\n'), "{:?}", t);
                shown.push_str(&t);
                shown.push('\n');
            }
            let json = p.to_json();
            prop_assert!(
                serde_json::from_str::<serde_json::Value>(&json).is_ok(),
                "{}",
                json
            );
            shown.push_str(&json);
            shown.push_str(&format!("{p:?}"));
            Ok(shown)
        }
    }
}

/// Text assembled from the files' own keys, values and separators.
fn file_like() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop::sample::select(vec![
        "autoconnect",
        "user_id",
        "auth_pass",
        "auth_hash",
        "proxy_local_port",
        "proxy_bind_address",
        "remote_address",
        "max_depth",
        "server",
        "server_key",
        "encryption",
        "UID",
        "password",
        "proxy_dest_ip",
        "proxy_dest_port",
        "application_type",
        "remote_adress",
        " ",
        "\t",
        "=",
        "\n",
        "\r\n",
        "#",
        "1",
        "0",
        "65536",
        "T33300",
        "127.0.0.1",
        "::1",
        "80:00:00:00:01:00:0A:C2",
        "zz",
        "\u{feff}",
        "\u{0}",
        "\u{7f}",
        "é",
        "a.b",
        "198.51.100.1:5980",
    ]);
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        proptest::collection::vec(piece, 0..60).prop_map(|p| p.concat().into_bytes()),
    ]
}

#[test]
fn provisioning_parser_never_panics_on_random_input() {
    check("provisioning_random", 2000, file_like(), |b| {
        parse_and_check(&b).map(|_| ())
    });
}

#[test]
fn base64_blobs_never_panic() {
    check(
        "provisioning_base64",
        1000,
        "[A-Za-z0-9+/=\\s\\-_.]{0,200}",
        |s| {
            if let Err(e) = parse_provisioning_base64(&s) {
                prop_assert!(!e.to_string().contains('\n'));
            }
            Ok(())
        },
    );
}

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    DuplicateLine(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        2 => (any::<usize>(), 0u8..8).prop_map(|(a, b)| Edit::Flip(a, b)),
        2 => (any::<usize>(), prop_oneof![any::<u8>(), prop::sample::select(b" \t\n\r#=:.0".to_vec())])
            .prop_map(|(a, v)| Edit::Set(a, v)),
        1 => any::<usize>().prop_map(Edit::Truncate),
        2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..6)).prop_map(|(a, b)| Edit::Insert(a, b)),
        2 => (any::<usize>(), 1usize..8).prop_map(|(a, n)| Edit::Remove(a, n)),
        1 => any::<usize>().prop_map(Edit::DuplicateLine),
    ]
}

fn apply(d: &mut Vec<u8>, e: &Edit) {
    let n = d.len();
    match e {
        Edit::Flip(a, b) if n > 0 => d[a % n] ^= 1 << b,
        Edit::Set(a, v) if n > 0 => d[a % n] = *v,
        Edit::Truncate(l) => d.truncate(l % (n + 1)),
        Edit::Insert(a, b) => {
            let a = a % (n + 1);
            d.splice(a..a, b.iter().copied());
        }
        Edit::Remove(a, l) if n > 0 => {
            let a = a % n;
            d.drain(a..(a + l).min(n));
        }
        Edit::DuplicateLine(k) => {
            let lines: Vec<Vec<u8>> = d
                .split_inclusive(|b| *b == b'\n')
                .map(<[u8]>::to_vec)
                .collect();
            if !lines.is_empty() {
                let line = lines[k % lines.len()].clone();
                d.extend_from_slice(&line);
            }
        }
        _ => {}
    }
}

/// Which lines of `bytes` hold `secret`: (all exactly the valid `secret_line`, all start with its key).
fn secret_lines(bytes: &[u8], secret_line: &str, secret: &str) -> (bool, bool) {
    let text = String::from_utf8_lossy(bytes);
    let key = secret_line
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let holding: Vec<&str> = text.lines().filter(|l| l.contains(secret)).collect();
    let all_intact = holding.iter().all(|l| l.trim_end() == secret_line);
    let under_key = holding
        .iter()
        .all(|l| l.trim_start().to_ascii_lowercase().starts_with(&key));
    (all_intact, under_key)
}

fn mutated_seed(seeds: &[Seed], k: usize, edits: &[Edit]) -> Vec<u8> {
    let mut bytes = seeds[k].0.clone();
    for e in edits {
        apply(&mut bytes, e);
    }
    bytes
}

fn seeds_and_edits() -> (Vec<Seed>, impl Strategy<Value = (usize, Vec<Edit>)>) {
    let seeds = seeds();
    for (bytes, _, _) in &seeds {
        assert!(
            parse_provisioning(bytes, FILE).is_ok(),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
    let count = seeds.len();
    (seeds, (0..count, proptest::collection::vec(edit(), 1..5)))
}

#[test]
fn mutated_valid_files_never_panic_and_keep_intact_secrets_hidden() {
    let (seeds, strategy) = seeds_and_edits();
    check("provisioning_mutated", 2000, strategy, |(k, edits)| {
        let bytes = mutated_seed(&seeds, k, &edits);
        let shown = parse_and_check(&bytes)?;
        let (_, secret_line, secret) = &seeds[k];
        // While every line holding the secret is still its valid `KEY VALUE` line, nothing shows it.
        if secret_lines(&bytes, secret_line, secret).0 {
            prop_assert!(!shown.contains(secret), "secret shown: {}", shown);
        }
        Ok(())
    });
}

/// The wider promise, which does not hold yet: a secret is not shown even when its line is malformed,
/// e.g. `auth_pass=SECRET` (connectd's syntax is `KEY VALUE`): the parser takes `auth_pass=SECRET` as
/// an unknown key name and prints it in the warning, or in the error when it is the first key.
/// Reported to the owner of p2p-config; remove the `ignore` once key names are cut at '=' (or a key
/// starting with a secret key's name is shown redacted).
#[test]
fn mutated_valid_files_never_show_a_secret_under_its_key() {
    let (seeds, strategy) = seeds_and_edits();
    check("provisioning_secret_lines", 2000, strategy, |(k, edits)| {
        let bytes = mutated_seed(&seeds, k, &edits);
        let shown = parse_and_check(&bytes)?;
        let (_, secret_line, secret) = &seeds[k];
        if secret_lines(&bytes, secret_line, secret).1 {
            prop_assert!(!shown.contains(secret), "secret shown: {}", shown);
        }
        Ok(())
    });
}

#[test]
fn a_secret_written_with_equals_is_not_shown() {
    let initiator = format!("auth_pass={PASSWORD}\nautoconnect=1\n");
    let target = format!(
        "UID 80:00:00:00:01:00:0A:C2\npassword {DEVICE_SECRET}\npassword={DEVICE_SECRET}\n\
         proxy_dest_ip 127.0.0.1\nproxy_dest_port 22\napplication_type 28\n"
    );
    for (file, secret) in [(initiator, PASSWORD), (target, DEVICE_SECRET)] {
        let shown = match parse_provisioning(file.as_bytes(), FILE) {
            Err(e) => e.to_string(),
            Ok(p) => format!("{:?} {}", p.warnings, p.to_json()),
        };
        assert!(!shown.contains(secret), "{shown}");
    }
}
