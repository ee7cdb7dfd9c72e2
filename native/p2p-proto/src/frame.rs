//! Frames: the contents of a protected session packet (see "Frames" in `docs/PROTOCOL.md`).
//!
//! A payload is a sequence of frames, each starting with a type byte; integers are QUIC
//! variable-length integers (RFC 9000 §16). Decoding borrows from the payload (no allocation) and
//! never panics: any malformed byte sequence is a [`FrameError`].

use std::ops::RangeInclusive;

/// Largest value a varint can carry (62 bits).
pub const MAX_VARINT: u64 = (1 << 62) - 1;

pub const TYPE_PADDING: u8 = 0x00;
pub const TYPE_PING: u8 = 0x01;
pub const TYPE_ACK: u8 = 0x02;
pub const TYPE_STREAM: u8 = 0x03;
pub const TYPE_MAX_STREAM_DATA: u8 = 0x04;
pub const TYPE_RESET_STREAM: u8 = 0x05;
pub const TYPE_PATH_CHALLENGE: u8 = 0x06;
pub const TYPE_PATH_RESPONSE: u8 = 0x07;
pub const TYPE_CLOSE: u8 = 0x08;
pub const TYPE_STOP_SENDING: u8 = 0x09;
pub const TYPE_PATH_OPENED: u8 = 0x0a;
pub const TYPE_PATH_NAT: u8 = 0x0b;

/// Flag bit of a STREAM frame: the frame's last byte is the last byte of the stream.
const STREAM_FLAG_FIN: u8 = 0x01;

/// Worst-case size of a STREAM frame's fields before its data, for a payload under 16 KiB:
/// type, id (8), offset (8), flags, len (2).
pub const STREAM_OVERHEAD_MAX: usize = 1 + 8 + 8 + 1 + 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame truncated")]
    Truncated,
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    #[error("invalid frame field")]
    Invalid,
}

// ---------------------------------------------------------------------------------------------
// Varints

/// Encoded length of `v` (values above [`MAX_VARINT`] are clamped by [`put_varint`]).
pub fn varint_len(v: u64) -> usize {
    match v {
        0..=63 => 1,
        64..=16383 => 2,
        16384..=1_073_741_823 => 4,
        _ => 8,
    }
}

/// Appends `v` as a varint. Values are our own counters, far below 2^62; a larger one is clamped
/// rather than corrupting the encoding.
pub fn put_varint(out: &mut Vec<u8>, v: u64) {
    let v = v.min(MAX_VARINT);
    match varint_len(v) {
        1 => out.push(v as u8),
        2 => out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes()),
        4 => out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes()),
        _ => out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes()),
    }
}

/// A cursor over received bytes; every read checks bounds.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn u8(&mut self) -> Result<u8, FrameError> {
        let (&b, rest) = self.buf.split_first().ok_or(FrameError::Truncated)?;
        self.buf = rest;
        Ok(b)
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.buf.len() < n {
            return Err(FrameError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub fn array8(&mut self) -> Result<[u8; 8], FrameError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.bytes(8)?);
        Ok(a)
    }

    pub fn varint(&mut self) -> Result<u64, FrameError> {
        let first = self.u8()?;
        let len = 1usize << (first >> 6);
        let mut v = u64::from(first & 0x3f);
        for &b in self.bytes(len - 1)? {
            v = (v << 8) | u64::from(b);
        }
        Ok(v)
    }
}

// ---------------------------------------------------------------------------------------------
// Frames

/// One decoded frame, borrowing its variable-length parts from the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Zero bytes a cipher may leave after the last frame; ignored.
    Padding,
    Ping,
    Ack(AckFrame<'a>),
    Stream {
        id: u64,
        offset: u64,
        fin: bool,
        data: &'a [u8],
    },
    MaxStreamData {
        id: u64,
        max_offset: u64,
    },
    ResetStream {
        id: u64,
        reason: u64,
    },
    PathChallenge([u8; 8]),
    PathResponse([u8; 8]),
    Close {
        code: u64,
        text: &'a str,
    },
    StopSending {
        id: u64,
        reason: u64,
    },
    /// The sender's opening path probes (low IP TTL) went out toward `count` of our candidates: its
    /// NAT now lets our full probes in. Sent alone in its packet, through the relay, so that a peer
    /// that predates it loses nothing else when it fails to parse it.
    PathOpened {
        count: u64,
    },
    /// How the sender's NAT maps: `dependent` when its public port changes with the destination
    /// (a "symmetric" NAT), and how many extra mappings it holds open toward our public address for
    /// us to find by probing random ports (`ports`, 0 when none). Sent alone in its packet, through
    /// the relay, repeated instead of acknowledged (as PATH_OPENED).
    PathNat {
        dependent: bool,
        ports: u64,
    },
}

impl<'a> Frame<'a> {
    /// Whether receiving this frame obliges the receiver to acknowledge the packet.
    pub fn is_ack_eliciting(&self) -> bool {
        // PATH_OPENED is repeated every probe round while it matters, instead of acknowledged.
        !matches!(
            self,
            Frame::Padding
                | Frame::Ack(_)
                | Frame::Close { .. }
                | Frame::PathOpened { .. }
                | Frame::PathNat { .. }
        )
    }

    /// Appends the frame. STREAM frames are usually written with [`put_stream_header`] instead, so
    /// their data can be copied straight from a send buffer.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Frame::Padding => out.push(TYPE_PADDING),
            Frame::Ping => out.push(TYPE_PING),
            Frame::Ack(ack) => ack.encode(out),
            Frame::Stream {
                id,
                offset,
                fin,
                data,
            } => {
                put_stream_header(out, *id, *offset, *fin, data.len());
                out.extend_from_slice(data);
            }
            Frame::MaxStreamData { id, max_offset } => {
                out.push(TYPE_MAX_STREAM_DATA);
                put_varint(out, *id);
                put_varint(out, *max_offset);
            }
            Frame::ResetStream { id, reason } => {
                out.push(TYPE_RESET_STREAM);
                put_varint(out, *id);
                put_varint(out, *reason);
            }
            Frame::PathChallenge(token) => {
                out.push(TYPE_PATH_CHALLENGE);
                out.extend_from_slice(token);
            }
            Frame::PathResponse(token) => {
                out.push(TYPE_PATH_RESPONSE);
                out.extend_from_slice(token);
            }
            Frame::Close { code, text } => {
                out.push(TYPE_CLOSE);
                put_varint(out, *code);
                put_varint(out, text.len() as u64);
                out.extend_from_slice(text.as_bytes());
            }
            Frame::StopSending { id, reason } => {
                out.push(TYPE_STOP_SENDING);
                put_varint(out, *id);
                put_varint(out, *reason);
            }
            Frame::PathOpened { count } => {
                out.push(TYPE_PATH_OPENED);
                put_varint(out, *count);
            }
            Frame::PathNat { dependent, ports } => {
                out.push(TYPE_PATH_NAT);
                put_varint(out, u64::from(*dependent));
                put_varint(out, *ports);
            }
        }
    }

    fn decode(r: &mut Reader<'a>) -> Result<Frame<'a>, FrameError> {
        let t = r.u8()?;
        Ok(match t {
            TYPE_PADDING => Frame::Padding,
            TYPE_PING => Frame::Ping,
            TYPE_ACK => Frame::Ack(AckFrame::decode(r)?),
            TYPE_STREAM => {
                let id = r.varint()?;
                let offset = r.varint()?;
                let flags = r.u8()?;
                let len = r.varint()?;
                if flags & !STREAM_FLAG_FIN != 0 {
                    return Err(FrameError::Invalid);
                }
                let len_usize = usize::try_from(len).map_err(|_| FrameError::Truncated)?;
                let data = r.bytes(len_usize)?;
                match offset.checked_add(len) {
                    Some(end) if end <= MAX_VARINT => {}
                    _ => return Err(FrameError::Invalid),
                }
                Frame::Stream {
                    id,
                    offset,
                    fin: flags & STREAM_FLAG_FIN != 0,
                    data,
                }
            }
            TYPE_MAX_STREAM_DATA => Frame::MaxStreamData {
                id: r.varint()?,
                max_offset: r.varint()?,
            },
            TYPE_RESET_STREAM => Frame::ResetStream {
                id: r.varint()?,
                reason: r.varint()?,
            },
            TYPE_PATH_CHALLENGE => Frame::PathChallenge(r.array8()?),
            TYPE_PATH_RESPONSE => Frame::PathResponse(r.array8()?),
            TYPE_CLOSE => {
                let code = r.varint()?;
                let len = r.varint()?;
                let len = usize::try_from(len).map_err(|_| FrameError::Truncated)?;
                let text = std::str::from_utf8(r.bytes(len)?).map_err(|_| FrameError::Invalid)?;
                Frame::Close { code, text }
            }
            TYPE_STOP_SENDING => Frame::StopSending {
                id: r.varint()?,
                reason: r.varint()?,
            },
            TYPE_PATH_OPENED => Frame::PathOpened { count: r.varint()? },
            TYPE_PATH_NAT => Frame::PathNat {
                dependent: match r.varint()? {
                    0 => false,
                    1 => true,
                    _ => return Err(FrameError::Invalid),
                },
                ports: r.varint()?,
            },
            other => return Err(FrameError::UnknownType(other)),
        })
    }
}

/// Writes the fields of a STREAM frame that precede its `len` bytes of data.
pub fn put_stream_header(out: &mut Vec<u8>, id: u64, offset: u64, fin: bool, len: usize) {
    out.push(TYPE_STREAM);
    put_varint(out, id);
    put_varint(out, offset);
    out.push(if fin { STREAM_FLAG_FIN } else { 0 });
    put_varint(out, len as u64);
}

/// Size of the fields [`put_stream_header`] writes.
pub fn stream_header_len(id: u64, offset: u64, len: usize) -> usize {
    1 + varint_len(id) + varint_len(offset) + 1 + varint_len(len as u64)
}

/// Iterates the frames of a payload. After the first error it yields nothing more.
pub fn parse(payload: &[u8]) -> Frames<'_> {
    Frames {
        reader: Reader::new(payload),
        failed: false,
    }
}

pub struct Frames<'a> {
    reader: Reader<'a>,
    failed: bool,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, FrameError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.reader.is_empty() {
            return None;
        }
        let f = Frame::decode(&mut self.reader);
        self.failed = f.is_err();
        Some(f)
    }
}

// ---------------------------------------------------------------------------------------------
// ACK

/// A decoded ACK frame: QUIC's layout (largest, delay, range count, first range, then gap/range
/// pairs). The ranges were validated when decoded, so iterating them cannot fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckFrame<'a> {
    pub largest: u64,
    /// How long the receiver held the acknowledgement after receiving `largest`, in microseconds.
    pub delay_us: u64,
    first_range: u64,
    range_count: u64,
    /// The encoded (gap, range) pairs.
    rest: &'a [u8],
}

impl<'a> AckFrame<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<AckFrame<'a>, FrameError> {
        let largest = r.varint()?;
        let delay_us = r.varint()?;
        let range_count = r.varint()?;
        let first_range = r.varint()?;
        if first_range > largest {
            return Err(FrameError::Invalid);
        }
        // Walk the pairs once to validate them and find where the frame ends.
        let start = r.clone();
        let mut smallest = largest - first_range;
        for _ in 0..range_count {
            let gap = r.varint()?;
            let len = r.varint()?;
            smallest = smallest
                .checked_sub(gap)
                .and_then(|v| v.checked_sub(2))
                .and_then(|v| v.checked_sub(len))
                .ok_or(FrameError::Invalid)?;
        }
        let consumed = start.buf.len() - r.buf.len();
        Ok(AckFrame {
            largest,
            delay_us,
            first_range,
            range_count,
            rest: &start.buf[..consumed],
        })
    }

    /// The acknowledged packet numbers as inclusive ranges, highest first.
    pub fn ranges(&self) -> AckRanges<'a> {
        AckRanges {
            reader: Reader::new(self.rest),
            next: Some(self.largest - self.first_range..=self.largest),
            remaining: self.range_count,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(TYPE_ACK);
        put_varint(out, self.largest);
        put_varint(out, self.delay_us);
        put_varint(out, self.range_count);
        put_varint(out, self.first_range);
        out.extend_from_slice(self.rest);
    }
}

pub struct AckRanges<'a> {
    reader: Reader<'a>,
    next: Option<RangeInclusive<u64>>,
    remaining: u64,
}

impl Iterator for AckRanges<'_> {
    type Item = RangeInclusive<u64>;
    fn next(&mut self) -> Option<Self::Item> {
        let current = self.next.take()?;
        if self.remaining > 0 {
            self.remaining -= 1;
            // Validated at decode time; a failure here only ends the iteration.
            if let (Ok(gap), Ok(len)) = (self.reader.varint(), self.reader.varint()) {
                let high = gap
                    .checked_add(2)
                    .and_then(|g| current.start().checked_sub(g));
                if let Some(low) = high.and_then(|h| h.checked_sub(len)) {
                    self.next = high.map(|h| low..=h);
                }
            }
        }
        Some(current)
    }
}

/// Appends an ACK frame for `ranges` (inclusive, highest first, disjoint and not adjacent), writing
/// at most `max_ranges` of them and never more than `max_len` bytes. Returns false (writing
/// nothing) when not even the first range fits or there is none.
pub fn encode_ack(
    out: &mut Vec<u8>,
    ranges: impl Iterator<Item = RangeInclusive<u64>>,
    delay_us: u64,
    max_ranges: usize,
    max_len: usize,
) -> bool {
    let mut ranges = ranges.take(max_ranges.max(1));
    let Some(first) = ranges.next() else {
        return false;
    };
    let largest = *first.end();
    let head_len = 1
        + varint_len(largest)
        + varint_len(delay_us)
        // The range count is written after the pairs are known; reserve its worst case below 16384.
        + 2
        + varint_len(largest - first.start());
    if head_len > max_len {
        return false;
    }
    let mut pairs = [0u64; 2 * 64];
    let mut count = 0usize;
    let mut len = head_len;
    let mut prev_low = *first.start();
    for r in ranges {
        if count == 64 || *r.end() + 2 > prev_low {
            break;
        }
        let gap = prev_low - r.end() - 2;
        let span = r.end() - r.start();
        let add = varint_len(gap) + varint_len(span);
        if len + add > max_len {
            break;
        }
        len += add;
        pairs[2 * count] = gap;
        pairs[2 * count + 1] = span;
        count += 1;
        prev_low = *r.start();
    }
    out.push(TYPE_ACK);
    put_varint(out, largest);
    put_varint(out, delay_us);
    put_varint(out, count as u64);
    put_varint(out, largest - first.start());
    for v in &pairs[..2 * count] {
        put_varint(out, *v);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(f: Frame<'_>) {
        let mut buf = Vec::new();
        f.encode(&mut buf);
        let back: Vec<_> = parse(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(back, vec![f]);
    }

    #[test]
    fn varints_use_quic_encoding() {
        for (v, bytes) in [
            (37u64, &[0x25u8][..]),
            (15293, &[0x7b, 0xbd]),
            (494_878_333, &[0x9d, 0x7f, 0x3e, 0x7d]),
            (
                151_288_809_941_952_652,
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
            ),
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out, bytes);
            assert_eq!(varint_len(v), bytes.len());
            assert_eq!(Reader::new(bytes).varint().unwrap(), v);
        }
        assert_eq!(Reader::new(&[0x40]).varint(), Err(FrameError::Truncated));
    }

    #[test]
    fn every_frame_round_trips() {
        round_trip(Frame::Ping);
        round_trip(Frame::Stream {
            id: 7,
            offset: 1 << 40,
            fin: true,
            data: b"hello",
        });
        round_trip(Frame::Stream {
            id: 0,
            offset: 0,
            fin: false,
            data: b"",
        });
        round_trip(Frame::MaxStreamData {
            id: 3,
            max_offset: 262_144,
        });
        round_trip(Frame::ResetStream { id: 1, reason: 99 });
        round_trip(Frame::StopSending { id: 2, reason: 5 });
        round_trip(Frame::PathChallenge([1, 2, 3, 4, 5, 6, 7, 8]));
        round_trip(Frame::PathResponse([8; 8]));
        round_trip(Frame::Close {
            code: 4,
            text: "bye ✓",
        });
        round_trip(Frame::PathOpened { count: 3 });
        round_trip(Frame::PathNat {
            dependent: true,
            ports: 256,
        });
        round_trip(Frame::PathNat {
            dependent: false,
            ports: 0,
        });
    }

    #[test]
    fn ack_ranges_round_trip_highest_first() {
        let ranges = [95..=100u64, 80..=90, 3..=3, 0..=1];
        let mut buf = Vec::new();
        assert!(encode_ack(&mut buf, ranges.iter().cloned(), 1234, 64, 1000));
        let Some(Ok(Frame::Ack(ack))) = parse(&buf).next() else {
            panic!("not an ack")
        };
        assert_eq!(ack.largest, 100);
        assert_eq!(ack.delay_us, 1234);
        assert_eq!(ack.ranges().collect::<Vec<_>>(), ranges.to_vec());
        // Re-encoding the decoded frame gives the same bytes.
        let mut again = Vec::new();
        Frame::Ack(ack).encode(&mut again);
        assert_eq!(again, buf);
    }

    #[test]
    fn ack_encoding_respects_limits() {
        let ranges: Vec<_> = (0..100u64).rev().map(|i| i * 10..=i * 10 + 5).collect();
        let mut buf = Vec::new();
        assert!(encode_ack(&mut buf, ranges.iter().cloned(), 0, 10, 1000));
        let Some(Ok(Frame::Ack(ack))) = parse(&buf).next() else {
            panic!()
        };
        assert_eq!(ack.ranges().count(), 10);
        buf.clear();
        assert!(encode_ack(&mut buf, ranges.iter().cloned(), 0, 64, 30));
        assert!(buf.len() <= 30);
        buf.clear();
        assert!(!encode_ack(&mut buf, std::iter::empty(), 0, 64, 30));
        assert!(buf.is_empty());
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        let bad: &[&[u8]] = &[
            &[0x02, 5, 0, 0, 9],          // first range above largest
            &[0x02, 5, 0, 1, 0, 9, 0],    // gap below zero
            &[0x02, 5, 0, 0x80, 0, 0, 0], // range count with no pairs
            &[0x03, 1, 0, 0x02, 0],       // unknown stream flag
            &[0x03, 1, 0, 0, 10, 1, 2],   // data shorter than len
            &[
                0x03, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 1, 9,
            ], // offset overflow
            &[0x06, 1, 2, 3],             // short challenge
            &[0x08, 0, 2, 0xff, 0xfe],    // invalid UTF-8
            &[0x0a],                      // PATH_OPENED without its count
            &[0x0b, 2, 0],                // PATH_NAT's mapping neither 0 nor 1
            &[0x0c],                      // unknown type
        ];
        for b in bad {
            assert!(parse(b).any(|f| f.is_err()), "accepted {b:02x?}");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len % 60)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 12) as u8 * if x & 0x100 != 0 { 1 } else { 21 }
                })
                .collect();
            for f in parse(&bytes) {
                if let Ok(Frame::Ack(a)) = f {
                    assert!(a.ranges().count() > 0);
                }
            }
        }
    }
}
