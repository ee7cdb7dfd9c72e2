//! The control messages' JSON as the server (`ClientMsg`) and the peers (`ServerMsg`) parse it: no panic,
//! and whatever is accepted round-trips (the assertions of `prop_control.rs`).
#![no_main]

#[path = "../../p2p-proto/tests/common/invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|json: &[u8]| invariants::control_json(json));
