//! Property ("fuzz") targets of `p2p_proto::frame::parse`, the decoder of every decrypted payload.
//! Random bytes, valid frame sequences and mutated valid sequences: parsing never panics, ACK ranges
//! are always well formed, and whatever parses re-encodes to bytes that parse to the same frames
//! (byte for byte identical when the input was our own encoding).

mod common;

use std::ops::RangeInclusive;

use proptest::prelude::*;

use common::{apply, bytes, check, mutations};
use p2p_proto::frame::{encode_ack, parse, Frame, FrameError, MAX_VARINT};

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
        }
    }
    out
}

/// The frames `parse` yields before its first error (and whether there was one). The iterator must
/// stop after an error.
fn parse_all(payload: &[u8]) -> (Vec<Frame<'_>>, Option<FrameError>) {
    let mut frames = Vec::new();
    let mut iter = parse(payload);
    for f in iter.by_ref() {
        match f {
            Ok(f) => frames.push(f),
            Err(e) => {
                assert!(iter.next().is_none(), "parse went on after an error");
                return (frames, Some(e));
            }
        }
    }
    (frames, None)
}

/// Checks everything the decoder promises about what it accepted from `payload`.
fn check_parsed(payload: &[u8]) -> Result<(), TestCaseError> {
    let (frames, error) = parse_all(payload);
    for f in &frames {
        match f {
            Frame::Ack(ack) => {
                let ranges: Vec<_> = ack.ranges().collect();
                prop_assert!(!ranges.is_empty());
                prop_assert_eq!(*ranges[0].end(), ack.largest);
                for w in ranges.windows(2) {
                    // Highest first, disjoint and not adjacent.
                    prop_assert!(w[1].end() + 1 < *w[0].start(), "{:?}", ranges);
                }
                for r in &ranges {
                    prop_assert!(r.start() <= r.end());
                }
            }
            Frame::Stream { offset, data, .. } => {
                prop_assert!(offset + data.len() as u64 <= MAX_VARINT)
            }
            _ => {}
        }
    }
    // Re-encoding what parsed gives a payload that parses to the same frames; our own encoding is a
    // fixed point (the input may have used longer varints than needed, so it can differ from it).
    let mut again = Vec::new();
    for f in &frames {
        f.encode(&mut again);
    }
    let (reparsed, reerror) = parse_all(&again);
    prop_assert_eq!(reerror, None);
    prop_assert_eq!(&reparsed, &frames);
    let mut third = Vec::new();
    for f in &reparsed {
        f.encode(&mut third);
    }
    prop_assert_eq!(&third, &again);
    if error.is_none() && frames.is_empty() {
        prop_assert!(payload.is_empty());
    }
    Ok(())
}

#[test]
fn frame_parse_never_panics_on_random_payloads() {
    // Biased towards valid type bytes, so most payloads get past the first byte.
    let payload = prop_oneof![
        bytes(1400),
        (0u8..10, bytes(100)).prop_map(|(t, rest)| {
            let mut p = vec![t];
            p.extend_from_slice(&rest);
            p
        }),
    ];
    check("frame_random", 2000, payload, |p| check_parsed(&p));
}

#[test]
fn valid_frame_sequences_round_trip_exactly() {
    check(
        "frame_valid",
        1000,
        proptest::collection::vec(owned_frame(), 0..12),
        |frames| {
            let bytes = encode_owned(&frames);
            let (parsed, error) = parse_all(&bytes);
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
            check_parsed(&bytes)
        },
    );
}
