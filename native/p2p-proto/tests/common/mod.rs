//! Shared by the property ("fuzz") targets of this directory: how many cases to run, a runner that
//! reports what it executed, and byte-level mutations of valid inputs.
//!
//! Each target runs a short default in CI; `tools/fuzz/run.sh` sets `PROPTEST_CASES` to run a million.
//! These run on stable; the coverage-guided libFuzzer targets of the same decoders (`native/fuzz`,
//! `tools/fuzz/libfuzzer.sh`) need nightly and share the assertions of `invariants.rs`.

#![allow(dead_code)] // each test file uses a different part of this module

pub mod invariants;

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

/// `PROPTEST_CASES` when set (the long runs), else `ci_default`.
pub fn cases(ci_default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(ci_default)
}

/// Runs `test` on `cases(ci_default)` values of `strategy` and prints
/// `fuzz-stat NAME: N executions, F failures` (the line `tools/fuzz/run.sh` collects). A panic inside
/// `test` is caught by proptest, shrunk to a minimal input, and fails the test with that input.
pub fn check<S>(
    name: &str,
    ci_default: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let config = ProptestConfig {
        cases: cases(ci_default),
        // Found failures are kept as named regression tests instead of seed files.
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    };
    let executed = AtomicU64::new(0);
    let result = TestRunner::new(config).run(&strategy, |value| {
        executed.fetch_add(1, Ordering::Relaxed);
        test(value)
    });
    let n = executed.load(Ordering::Relaxed);
    match result {
        Ok(()) => eprintln!("fuzz-stat {name}: {n} executions, 0 failures"),
        Err(e) => {
            eprintln!("fuzz-stat {name}: {n} executions, 1 failures");
            panic!("{name}: {e}");
        }
    }
}

/// One edit of a byte string. Positions are taken modulo the length, so any value applies to any input.
#[derive(Debug, Clone)]
pub enum Mutation {
    FlipBit {
        at: usize,
        bit: u8,
    },
    SetByte {
        at: usize,
        value: u8,
    },
    /// Keep only the first `len % (n + 1)` bytes.
    Truncate {
        len: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Remove {
        at: usize,
        len: usize,
    },
    /// Copy a slice to another place (repeats a field or a frame).
    Duplicate {
        from: usize,
        len: usize,
        to: usize,
    },
    /// Write a boundary value (0, 0xff, 0x7f, 0x80, a varint prefix...) over a byte.
    Interesting {
        at: usize,
        which: usize,
    },
}

const INTERESTING: [u8; 10] = [0x00, 0xff, 0x7f, 0x80, 0x40, 0xc0, 0x3f, 0x01, 0x10, 0x20];

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::SetByte { at, value }),
        1 => any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..9))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<usize>(), 1usize..9).prop_map(|(at, len)| Mutation::Remove { at, len }),
        1 => (any::<usize>(), 1usize..33, any::<usize>())
            .prop_map(|(from, len, to)| Mutation::Duplicate { from, len, to }),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(at, which)| Mutation::Interesting { at, which }),
    ]
}

/// One to four mutations.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 1..5)
}

pub fn apply(data: &mut Vec<u8>, mutations: &[Mutation]) {
    for m in mutations {
        apply_one(data, m);
    }
}

fn apply_one(data: &mut Vec<u8>, m: &Mutation) {
    let n = data.len();
    match m {
        Mutation::FlipBit { at, bit } if n > 0 => data[at % n] ^= 1 << (bit % 8),
        Mutation::SetByte { at, value } if n > 0 => data[at % n] = *value,
        Mutation::Truncate { len } => data.truncate(len % (n + 1)),
        Mutation::Insert { at, bytes } => {
            let at = at % (n + 1);
            data.splice(at..at, bytes.iter().copied());
        }
        Mutation::Remove { at, len } if n > 0 => {
            let at = at % n;
            data.drain(at..(at + len).min(n));
        }
        Mutation::Duplicate { from, len, to } if n > 0 => {
            let from = from % n;
            let piece: Vec<u8> = data[from..(from + len).min(n)].to_vec();
            let to = to % (n + 1);
            data.splice(to..to, piece);
        }
        Mutation::Interesting { at, which } if n > 0 => {
            data[at % n] = INTERESTING[which % INTERESTING.len()]
        }
        _ => {}
    }
}

/// Random bytes, mostly short, sometimes up to a full datagram.
pub fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => proptest::collection::vec(any::<u8>(), 0..=max),
    ]
}
