//! Property ("fuzz") targets of `p2p_proto::frame::parse`, the decoder of every decrypted payload.
//! Random bytes, valid frame sequences and mutated valid sequences: parsing never panics, ACK ranges
//! are always well formed, and whatever parses re-encodes to bytes that parse to the same frames
//! (byte for byte identical when the input was our own encoding).

mod common;

use std::ops::RangeInclusive;

use proptest::prelude::*;

use common::{apply, bytes, check, invariants, mutations};
use p2p_proto::frame::{encode_ack, Frame, MAX_VARINT};

/// An owned frame the strategies generate; `Frame` itself borrows from the payload.
#[derive(Debug, Clone)]
enum Owned {
    Padding,
    Ping,
    /// Disjoint, non-adjacent ranges, highest first, and the ACK delay.
    Ack(Vec<RangeInclusive<u64>>, u64),
    Stream(u64, u64, bool, Vec<u8>),
    MaxStreamData(u64, u64),
    ResetStream(u64, u64),
    PathChallenge([u8; 8]),
    PathResponse([u8; 8]),
    Close(u64, String),
    StopSending(u64, u64),
    PathOpened(u64),
}

/// Varints of every encoded length, with the boundaries over-represented.
fn varint() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..64,
        64u64..16384,
        16384u64..(1 << 30),
        (1u64 << 30)..=MAX_VARINT,
        prop::sample::select(vec![
            0,
            63,
            64,
            16383,
            16384,
            (1 << 30) - 1,
            1 << 30,
            MAX_VARINT
        ]),
    ]
}

fn ack_ranges() -> impl Strategy<Value = Vec<RangeInclusive<u64>>> {
    (
        varint(),
        proptest::collection::vec((0u64..1000, 0u64..1000), 0..20),
    )
        .prop_map(|(largest, steps)| {
            // Walk down from `largest`: (gap, span) pairs as the ACK frame encodes them.
            let mut ranges = Vec::new();
            let mut high = largest;
            for (gap, span) in steps {
                let Some(low) = high.checked_sub(span) else {
                    break;
                };
                ranges.push(low..=high);
                match low.checked_sub(gap + 2) {
                    Some(next) => high = next,
                    None => break,
                }
            }
            if ranges.is_empty() {
                ranges.push(largest..=largest);
            }
            ranges
        })
}

fn owned_frame() -> impl Strategy<Value = Owned> {
    prop_oneof![
        Just(Owned::Padding),
        Just(Owned::Ping),
        (ack_ranges(), varint()).prop_map(|(r, d)| Owned::Ack(r, d)),
        (
            varint(),
            varint(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(id, offset, fin, data)| {
                // Keep offset + len within the varint range, as the decoder demands.
                let offset = offset.min(MAX_VARINT - data.len() as u64);
                Owned::Stream(id, offset, fin, data)
            }),
        (varint(), varint()).prop_map(|(a, b)| Owned::MaxStreamData(a, b)),
        (varint(), varint()).prop_map(|(a, b)| Owned::ResetStream(a, b)),
        any::<[u8; 8]>().prop_map(Owned::PathChallenge),
        any::<[u8; 8]>().prop_map(Owned::PathResponse),
        (varint(), ".{0,40}").prop_map(|(c, t)| Owned::Close(c, t)),
        (varint(), varint()).prop_map(|(a, b)| Owned::StopSending(a, b)),
        varint().prop_map(Owned::PathOpened),
    ]
}

fn encode_owned(frames: &[Owned]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        match f {
            Owned::Padding => Frame::Padding.encode(&mut out),
            Owned::Ping => Frame::Ping.encode(&mut out),
            Owned::Ack(ranges, delay) => {
                assert!(encode_ack(
                    &mut out,
                    ranges.iter().cloned(),
                    *delay,
                    64,
                    10_000
                ))
            }
            Owned::Stream(id, offset, fin, data) => Frame::Stream {
                id: *id,
                offset: *offset,
                fin: *fin,
                data,
            }
            .encode(&mut out),
            Owned::MaxStreamData(id, max_offset) => Frame::MaxStreamData {
                id: *id,
                max_offset: *max_offset,
            }
            .encode(&mut out),
            Owned::ResetStream(id, reason) => Frame::ResetStream {
                id: *id,
                reason: *reason,
            }
            .encode(&mut out),
            Owned::PathChallenge(t) => Frame::PathChallenge(*t).encode(&mut out),
            Owned::PathResponse(t) => Frame::PathResponse(*t).encode(&mut out),
            Owned::Close(code, text) => Frame::Close { code: *code, text }.encode(&mut out),
            Owned::StopSending(id, reason) => Frame::StopSending {
                id: *id,
                reason: *reason,
            }
            .encode(&mut out),
            Owned::PathOpened(count) => Frame::PathOpened { count: *count }.encode(&mut out),
        }
    }
    out
}

#[test]
fn frame_parse_never_panics_on_random_payloads() {
    // Biased towards valid type bytes, so most payloads get past the first byte.
    let payload = prop_oneof![
        bytes(1400),
        (0u8..11, bytes(100)).prop_map(|(t, rest)| {
            let mut p = vec![t];
            p.extend_from_slice(&rest);
            p
        }),
    ];
    check("frame_random", 2000, payload, |p| {
        invariants::frame_payload(&p);
        Ok(())
    });
}

#[test]
fn valid_frame_sequences_round_trip_exactly() {
    check(
        "frame_valid",
        1000,
        proptest::collection::vec(owned_frame(), 0..12),
        |frames| {
            let bytes = encode_owned(&frames);
            let (parsed, error) = invariants::parse_all(&bytes);
            prop_assert_eq!(error, None);
            prop_assert_eq!(parsed.len(), frames.len());
            for (p, o) in parsed.iter().zip(&frames) {
                if let (Frame::Ack(ack), Owned::Ack(ranges, delay)) = (p, o) {
                    prop_assert_eq!(&ack.ranges().collect::<Vec<_>>(), ranges);
                    prop_assert_eq!(ack.delay_us, *delay);
                }
            }
            let mut again = Vec::new();
            for f in &parsed {
                f.encode(&mut again);
            }
            prop_assert_eq!(again, bytes);
            Ok(())
        },
    );
}

#[test]
fn frame_parse_never_panics_on_mutated_valid_sequences() {
    check(
        "frame_mutated",
        2000,
        (proptest::collection::vec(owned_frame(), 1..8), mutations()),
        |(frames, m)| {
            let mut bytes = encode_owned(&frames);
            apply(&mut bytes, &m);
            invariants::frame_payload(&bytes);
            Ok(())
        },
    );
}
