//! `p2p_proto::frame::parse`, the decoder of every decrypted payload: no panic, well-formed ACK ranges,
//! and accepted frames re-encode and re-parse identically (the assertions of `prop_frame.rs`).
#![no_main]

#[path = "../../p2p-proto/tests/common/invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|payload: &[u8]| invariants::frame_payload(payload));
