//! Every clear datagram decoder of `p2p_proto::wire`: none may panic, and whatever one accepts encodes
//! back to exactly the input. The assertions are the proptest targets' (`prop_wire.rs`).
#![no_main]

#[path = "../../p2p-proto/tests/common/invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|d: &[u8]| invariants::wire_datagram(d));
