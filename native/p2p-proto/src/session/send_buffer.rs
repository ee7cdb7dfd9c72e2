//! The sending half of a stream: bytes the application wrote, kept until the peer acknowledges them.
//!
//! Data lost in transit is sent again from here in a new packet (never under its old packet number),
//! so the buffer tracks which byte ranges are acknowledged and which must be resent. Memory is
//! bounded by `capacity`: `write` accepts only what fits.

use std::collections::VecDeque;
use std::ops::Range;

use super::ack_ranges::RangeSet;

/// A piece of the stream to put in one STREAM frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub offset: u64,
    pub len: usize,
    pub fin: bool,
    /// Whether these bytes were sent before (counted as a retransmission).
    pub retransmit: bool,
}

#[derive(Debug)]
pub struct SendBuffer {
    /// Bytes from `base` up to the write end.
    data: VecDeque<u8>,
    /// Offset of `data[0]`: every byte below it is acknowledged.
    base: u64,
    /// Everything below this offset was sent at least once.
    sent_end: u64,
    /// Acknowledged ranges at or above `base`.
    acked: RangeSet,
    /// Ranges declared lost and not yet sent again.
    lost: RangeSet,
    capacity: usize,
    fin_offset: Option<u64>,
    /// The FIN flag still has to be sent (first time, or again after a loss).
    fin_pending: bool,
    fin_acked: bool,
}

impl SendBuffer {
    pub fn new(capacity: usize) -> Self {
        SendBuffer {
            data: VecDeque::new(),
            base: 0,
            sent_end: 0,
            acked: RangeSet::new(),
            lost: RangeSet::new(),
            capacity,
            fin_offset: None,
            fin_pending: false,
            fin_acked: false,
        }
    }

    /// Offset one past the last byte written.
    pub fn end(&self) -> u64 {
        self.base + self.data.len() as u64
    }

    pub fn free_space(&self) -> usize {
        self.capacity.saturating_sub(self.data.len())
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn is_finished(&self) -> bool {
        self.fin_offset.is_some()
    }

    /// Everything written, FIN included, was acknowledged.
    pub fn is_done(&self) -> bool {
        self.fin_acked && Some(self.base) == self.fin_offset
    }

    /// Appends as much of `bytes` as fits; returns how much.
    pub fn write(&mut self, bytes: &[u8]) -> usize {
        if self.fin_offset.is_some() {
            return 0;
        }
        let n = bytes.len().min(self.free_space());
        self.data.extend(&bytes[..n]);
        n
    }

    /// Marks the current end as the end of the stream.
    pub fn finish(&mut self) {
        if self.fin_offset.is_none() {
            self.fin_offset = Some(self.end());
            self.fin_pending = true;
        }
    }

    /// Whether `next_chunk` may have something to send, given the peer's flow-control limit.
    pub fn has_sendable(&self, limit: u64) -> bool {
        !self.lost.is_empty()
            || (self.sent_end < self.end() && self.sent_end < limit)
            || self.fin_pending
    }

    /// The next piece to send: lost data first, then new data up to `limit`, then a lone FIN.
    pub fn next_chunk(&mut self, max_len: usize, limit: u64) -> Option<Chunk> {
        if max_len == 0 {
            return None;
        }
        if let Some(r) = self.next_lost(max_len) {
            return Some(self.chunk(r, true));
        }
        let fresh_end = self.end().min(limit);
        if self.sent_end < fresh_end {
            let len = (fresh_end - self.sent_end).min(max_len as u64);
            let r = self.sent_end..self.sent_end + len;
            self.sent_end = r.end;
            return Some(self.chunk(r, false));
        }
        match self.fin_offset {
            // A lone FIN is a few bytes: not worth counting as a retransmission.
            Some(fin) if self.fin_pending && self.sent_end == fin => {
                Some(self.chunk(fin..fin, false))
            }
            _ => None,
        }
    }

    fn chunk(&mut self, r: Range<u64>, retransmit: bool) -> Chunk {
        let fin = self.fin_pending && Some(r.end) == self.fin_offset;
        if fin {
            self.fin_pending = false;
        }
        Chunk {
            offset: r.start,
            len: (r.end - r.start) as usize,
            fin,
            retransmit,
        }
    }

    /// Takes up to `max_len` bytes of the lowest lost range that is still unacknowledged.
    fn next_lost(&mut self, max_len: usize) -> Option<Range<u64>> {
        while let Some(first) = self.lost.first() {
            let from = first.start.max(self.base);
            let Some(missing) = self.acked.first_missing(from..first.end) else {
                self.lost.remove(first);
                continue;
            };
            let end = missing.end.min(missing.start + max_len as u64);
            // Anything before `missing.start` in this range turned out to be acknowledged.
            self.lost.remove(first.start..end);
            return Some(missing.start..end);
        }
        None
    }

    /// Copies bytes `[offset, offset + len)` (still held: not yet acknowledged) to `out`.
    pub fn copy_to(&self, offset: u64, len: usize, out: &mut Vec<u8>) {
        let Some(start) = offset.checked_sub(self.base) else {
            return;
        };
        let start = start as usize;
        let end = (start + len).min(self.data.len());
        if start >= end {
            return;
        }
        let (a, b) = self.data.as_slices();
        if end <= a.len() {
            out.extend_from_slice(&a[start..end]);
        } else if start >= a.len() {
            out.extend_from_slice(&b[start - a.len()..end - a.len()]);
        } else {
            out.extend_from_slice(&a[start..]);
            out.extend_from_slice(&b[..end - a.len()]);
        }
    }

    /// The peer acknowledged a frame; returns how many bytes of buffer space this freed.
    pub fn on_acked(&mut self, offset: u64, len: usize, fin: bool) -> usize {
        if fin {
            self.fin_acked = true;
            self.fin_pending = false;
        }
        let end = offset + len as u64;
        if end <= self.base {
            return 0;
        }
        self.acked.insert(offset.max(self.base)..end);
        let Some(first) = self.acked.first() else {
            return 0;
        };
        if first.start > self.base {
            return 0;
        }
        let freed = (first.end - self.base) as usize;
        self.acked.remove(first.clone());
        self.lost.remove_below(first.end);
        self.data.drain(..freed);
        self.base = first.end;
        freed
    }

    /// A frame was declared lost: its bytes (those not acknowledged meanwhile) are sent again.
    pub fn on_lost(&mut self, offset: u64, len: usize, fin: bool) {
        let end = offset + len as u64;
        if end > self.base {
            self.lost.insert(offset.max(self.base)..end);
        }
        if fin && !self.fin_acked {
            self.fin_pending = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(buf: &SendBuffer, c: Chunk) -> Vec<u8> {
        let mut out = Vec::new();
        buf.copy_to(c.offset, c.len, &mut out);
        out
    }

    #[test]
    fn write_is_bounded_by_capacity() {
        let mut b = SendBuffer::new(10);
        assert_eq!(b.write(b"0123456"), 7);
        assert_eq!(b.write(b"789abc"), 3);
        assert_eq!(b.free_space(), 0);
        let c = b.next_chunk(4, u64::MAX).unwrap();
        assert_eq!(bytes(&b, c), b"0123");
        assert_eq!(b.on_acked(0, 4, false), 4);
        assert_eq!(b.free_space(), 4);
    }

    #[test]
    fn lost_data_is_resent_before_new_data_and_acked_parts_are_skipped() {
        let mut b = SendBuffer::new(100);
        b.write(&(0..30).collect::<Vec<u8>>());
        let c1 = b.next_chunk(10, u64::MAX).unwrap();
        let c2 = b.next_chunk(10, u64::MAX).unwrap();
        b.on_lost(c1.offset, c1.len, false);
        b.on_lost(c2.offset, c2.len, false);
        // Part of the first range arrives after all (a late ack of the original packet).
        b.on_acked(0, 4, false);
        let r = b.next_chunk(100, u64::MAX).unwrap();
        assert_eq!((r.offset, r.len, r.retransmit), (4, 16, true));
        assert_eq!(bytes(&b, r), (4..20).collect::<Vec<u8>>());
        let n = b.next_chunk(100, u64::MAX).unwrap();
        assert_eq!((n.offset, n.len, n.retransmit), (20, 10, false));
    }

    #[test]
    fn flow_control_limit_holds_new_data() {
        let mut b = SendBuffer::new(100);
        b.write(&[1; 50]);
        let c = b.next_chunk(100, 20).unwrap();
        assert_eq!(c.len, 20);
        assert!(!b.has_sendable(20));
        assert_eq!(b.next_chunk(100, 20), None);
        assert!(b.has_sendable(40));
    }

    #[test]
    fn fin_rides_on_the_last_chunk_or_alone() {
        let mut b = SendBuffer::new(100);
        b.write(b"abc");
        b.finish();
        let c = b.next_chunk(100, u64::MAX).unwrap();
        assert!(c.fin && c.len == 3);
        assert_eq!(b.next_chunk(100, u64::MAX), None);
        b.on_lost(0, 3, true);
        let again = b.next_chunk(100, u64::MAX).unwrap();
        assert!(again.fin && again.retransmit);
        b.on_acked(0, 3, true);
        assert!(b.is_done());

        let mut empty = SendBuffer::new(100);
        empty.finish();
        let c = empty.next_chunk(100, 0).unwrap();
        assert_eq!((c.offset, c.len, c.fin), (0, 0, true));
        empty.on_acked(0, 0, true);
        assert!(empty.is_done());
    }

    #[test]
    fn data_wraps_around_the_ring_intact() {
        let mut b = SendBuffer::new(8);
        let mut next = 0u8;
        let mut seen = Vec::new();
        for _ in 0..20 {
            while b.free_space() > 0 {
                b.write(&[next]);
                next = next.wrapping_add(1);
            }
            let c = b.next_chunk(5, u64::MAX).unwrap();
            seen.extend(bytes(&b, c));
            b.on_acked(c.offset, c.len, false);
        }
        assert_eq!(seen, (0..seen.len()).map(|i| i as u8).collect::<Vec<_>>());
    }
}
