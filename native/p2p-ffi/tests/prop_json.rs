//! Fuzz-style target of the C ABI's JSON configuration decoder, through `p2p_session_start` as a host
//! calls it: random bytes, text made of the configuration's own field names and values, and valid
//! configurations mutated byte by byte. (This crate has no proptest dependency, so the cases come from
//! a small seeded generator; `PROPTEST_CASES` sets how many, as for the proptest targets, and
//! `FUZZ_SEED` the seed.)
//!
//! Never a panic (no `P2P_ERR_PANIC` or `P2P_ERR_INTERNAL`); a refusal is `INVALID_CONFIG` (or
//! `INVALID_ARGUMENT` for invalid UTF-8) with a one-line message that does not contain the password
//! while the password is still in the JSON as the `password` field's value. A configuration that is still
//! valid after mutation starts a session against a server that refuses connections; it is stopped and
//! forgotten at once. Prints `fuzz-stat ffi_config_json: N executions, F failures` for `tools/fuzz/run.sh`.

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use remoteitp2p::*;

const SECRET: &str = "Fz7Qp2Lw9Xk4Nv8Rb3Tm";
const SERVER_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fn seeds() -> Vec<String> {
    let common = format!(r#""server":"127.0.0.1:9","server_key":"{SERVER_KEY}","local_port":0"#);
    vec![
        format!(
            r#"{{"device_id":"80:00:00:00:01:00:0A:C2","user":"tester","password":"{SECRET}",{common}}}"#
        ),
        format!(
            r#"{{"name":"fuzz","device_id":"80:00:00:00:01:00:0a:c2","user":"tester","password":"{SECRET}",{common},"bind_address":"127.0.0.1","encryption":"RC4","max_outstanding":12,"autoconnect":"reconnect","restrict_ip":"127.0.0.1","lifetime_min":1,"idle_limit_sec":5}}"#
        ),
        format!(
            r#"{{"device_id":"80:00:00:00:01:00:0A:C2","user":"tester","auth_hash":"id1.{SECRET}",{common}}}"#
        ),
    ]
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\"device_id\"",
    "\"user\"",
    "\"password\"",
    "\"auth_hash\"",
    "\"server\"",
    "\"server_key\"",
    "\"local_port\"",
    "\"bind_address\"",
    "\"encryption\"",
    "\"max_outstanding\"",
    "\"autoconnect\"",
    "\"restrict_ip\"",
    "\"lifetime_min\"",
    "\"idle_limit_sec\"",
    "\"name\"",
    "\"80:00:00:00:01:00:0A:C2\"",
    "\"127.0.0.1:9\"",
    "0",
    "-1",
    "65536",
    "1e309",
    "null",
    "true",
    "\"\\ud800\"",
    "\"RC4\"",
    "3",
    " ",
    "\\",
];

/// xorshift64*: deterministic, so a failure is reproduced by its seed and case number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, d: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let n = d.len();
        match rng.below(7) {
            0 if n > 0 => {
                let at = rng.below(n);
                d[at] ^= 1 << rng.below(8);
            }
            1 if n > 0 => {
                let at = rng.below(n);
                d[at] = rng.next() as u8;
            }
            2 => d.truncate(rng.below(n + 1)),
            3 => {
                let at = rng.below(n + 1);
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                d.splice(at..at, t.iter().copied());
            }
            4 if n > 0 => {
                let at = rng.below(n);
                let end = (at + 1 + rng.below(8)).min(n);
                d.drain(at..end);
            }
            5 if n > 0 => {
                let from = rng.below(n);
                let piece = d[from..(from + 1 + rng.below(32)).min(n)].to_vec();
                let to = rng.below(n + 1);
                d.splice(to..to, piece);
            }
            _ if n > 0 => {
                let at = rng.below(n);
                d[at] = b"\"{}[]:,\\0 "[rng.below(10)];
            }
            _ => {}
        }
    }
}

fn input(rng: &mut Rng, seeds: &[String]) -> Vec<u8> {
    match rng.below(4) {
        0 => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
        1 => (0..rng.below(40))
            .flat_map(|_| TOKENS[rng.below(TOKENS.len())].bytes())
            .collect(),
        _ => {
            let mut d = seeds[rng.below(seeds.len())].clone().into_bytes();
            mutate(rng, &mut d);
            d
        }
    }
}

fn take(p: *mut c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: a live string from the library, freed right after.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    unsafe { p2p_string_free(p) };
    s
}

fn last_error() -> (String, String) {
    let (mut kind, mut message) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: valid out pointers.
    unsafe {
        p2p_last_error_kind(&mut kind);
        p2p_last_error(&mut message);
    }
    (take(kind), take(message))
}

/// Whether the secret is in the JSON only as the value of its own field (so showing it would be a leak,
/// not an echo of text the mutation moved into a field name).
fn secret_in_place(text: &str) -> bool {
    let in_field = [
        format!(r#""password":"{SECRET}""#),
        format!(r#""auth_hash":"id1.{SECRET}""#),
    ];
    text.matches(SECRET).count() == 1 && in_field.iter().any(|f| text.contains(f.as_str()))
}

/// One call; `Err` describes a broken promise.
fn one(bytes: &[u8]) -> Result<bool, String> {
    let without_nul: Vec<u8> = bytes.iter().copied().filter(|b| *b != 0).collect();
    let text = CString::new(without_nul).expect("no NUL left");
    let mut handle = u64::MAX;
    // SAFETY: a NUL-terminated string and a valid out pointer.
    let rc = unsafe { p2p_session_start(text.as_ptr(), &mut handle) };
    if rc == P2P_OK {
        p2p_session_stop(handle, 0);
        p2p_session_forget(handle);
        return Ok(true);
    }
    let (kind, message) = last_error();
    if handle != 0 {
        return Err(format!("handle not zeroed on failure ({rc})"));
    }
    if ![
        P2P_ERR_INVALID_CONFIG,
        P2P_ERR_INVALID_ARGUMENT,
        P2P_ERR_PORT_IN_USE,
    ]
    .contains(&rc)
    {
        return Err(format!("unexpected result {rc} ({kind}): {message}"));
    }
    if message.is_empty() || message.contains('\n') {
        return Err(format!("not a one-line message: {message:?}"));
    }
    let lossy = String::from_utf8_lossy(text.as_bytes());
    if secret_in_place(&lossy) && message.contains(SECRET) {
        return Err(format!("the message shows the secret: {message}"));
    }
    Ok(false)
}

#[test]
fn configuration_json_never_panics_or_shows_the_password() {
    let cases: u64 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1000);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let seeds = seeds();
    for s in &seeds {
        assert_eq!(one(s.as_bytes()), Ok(true), "a seed does not start: {s}");
    }
    let mut rng = Rng(seed | 1);
    // Every case runs; the first few failures are shown with their input.
    let (mut started, mut failed, mut shown) = (0u64, 0u64, Vec::new());
    let mut categories = std::collections::BTreeMap::new();
    for case in 0..cases {
        let bytes = input(&mut rng, &seeds);
        match one(&bytes) {
            Ok(s) => started += u64::from(s),
            Err(why) => {
                failed += 1;
                let category = why
                    .split([':', '('])
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                *categories.entry(category).or_insert(0u64) += 1;
                if shown.len() < 5 {
                    shown.push(format!(
                        "case {case} (FUZZ_SEED={seed}): {why}\n  input: {:?}",
                        String::from_utf8_lossy(&bytes)
                    ));
                }
            }
        }
    }
    eprintln!(
        "fuzz-stat ffi_config_json: {cases} executions, {failed} failures ({started} still valid and started) {categories:?}"
    );
    assert!(shown.is_empty(), "{}", shown.join("\n"));
}

/// Found by the target above (about once in 50,000 mutated configurations): a JSON escape such as `\n` in
/// a field name or an enum value comes back decoded in the error message, which then spans two lines (and
/// a configuration could forge a log line). Reported to the owner of p2p-ffi (`src/json.rs`: escape
/// control characters in the message, as p2p-config's `escape_controls` does); remove the `ignore` once
/// fixed.
#[test]
fn an_escaped_newline_in_a_field_stays_out_of_the_message() {
    let common = format!(r#""server":"127.0.0.1:9","server_key":"{SERVER_KEY}","local_port":0"#);
    for json in [
        format!(
            r#"{{"device_id":"80:00:00:00:01:00:0A:C2","user":"u","password":"x",{common},"autoc\nnect":"once"}}"#
        ),
        format!(
            r#"{{"device_id":"80:00:00:00:01:00:0A:C2","user":"u","password":"x",{common},"autoconnect":"rec\nnect"}}"#
        ),
    ] {
        assert_eq!(one(json.as_bytes()), Ok(false), "{json}");
    }
}
