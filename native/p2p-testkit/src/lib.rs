//! What only tests and the benchmark need, kept out of the shipped crates: light targets (many devices
//! online at little cost) and, by depending on p2p-net with its `test-hooks` feature, the driver knobs
//! that put an impairment relay in the path or block the direct path.
#![forbid(unsafe_code)]

pub mod connectd_build;
pub mod light_targets;
