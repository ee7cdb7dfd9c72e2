//! The receiving half of a stream: segments that arrived (in any order, possibly overlapping), handed
//! to the application in order.
//!
//! Memory is bounded by flow control: the peer may not send beyond the offset we granted, and data
//! past it is refused by [`RecvBuffer::insert`].

use std::collections::{BTreeMap, VecDeque};

#[derive(Debug, Default)]
pub struct RecvBuffer {
    /// The in-order bytes from `read_offset` on: where data arriving in order (nearly all of it) goes
    /// with one copy in and one copy out, without a map entry or an allocation per packet. Its
    /// capacity stays (at most the flow-control window) until the stream ends: giving it back each
    /// time a burst drained made every burst regrow it.
    ready: VecDeque<u8>,
    /// offset -> bytes, for segments beyond a gap; every key is past the end of `ready`. Segments may
    /// overlap; they join `ready` once the gap before them fills.
    segments: BTreeMap<u64, Vec<u8>>,
    /// Everything below this offset was handed to the application.
    read_offset: u64,
    /// The stream's final size, once a FIN arrived.
    fin_offset: Option<u64>,
    fin_read: bool,
    /// Bytes held in `ready` and `segments` (for statistics and limits).
    buffered: usize,
}

/// Why a STREAM frame was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// Data beyond the flow-control limit we granted.
    FlowControl,
    /// Data beyond the final size, or two different final sizes.
    FinalSize,
}

impl RecvBuffer {
    pub fn read_offset(&self) -> u64 {
        self.read_offset
    }

    pub fn is_fin_read(&self) -> bool {
        self.fin_read
    }

    fn ready_end(&self) -> u64 {
        self.read_offset + self.ready.len() as u64
    }

    /// The highest offset any received byte reached.
    fn received_end(&self) -> u64 {
        let segments_end = self
            .segments
            .iter()
            .map(|(&o, seg)| o + seg.len() as u64)
            .max()
            .unwrap_or(0);
        self.ready_end().max(segments_end)
    }

    /// Stores a segment. Returns whether something new became readable (data at `read_offset`, or the
    /// FIN reached).
    pub fn insert(
        &mut self,
        offset: u64,
        data: &[u8],
        fin: bool,
        limit: u64,
    ) -> Result<bool, RecvError> {
        let end = offset + data.len() as u64;
        if end > limit {
            return Err(RecvError::FlowControl);
        }
        // Before the FIN is recorded: a FIN alone, after every byte was read, makes the stream
        // readable (the application must see the end), and must be reported as such.
        let was_readable = self.readable();
        if let Some(f) = self.fin_offset {
            if end > f || (fin && end != f) {
                return Err(RecvError::FinalSize);
            }
        }
        if fin {
            if self.received_end() > end {
                return Err(RecvError::FinalSize);
            }
            self.fin_offset = Some(end);
        }
        let ready_end = self.ready_end();
        if end > ready_end && !data.is_empty() {
            if offset <= ready_end {
                // In order (or overlapping what is ready): extend the ready bytes.
                let fresh = &data[(ready_end - offset) as usize..];
                self.ready.extend(fresh);
                self.buffered += fresh.len();
                self.join_segments();
            } else {
                // Beyond a gap; a longer segment at the same offset wins.
                let keep = match self.segments.get(&offset) {
                    Some(existing) => existing.len() < data.len(),
                    None => true,
                };
                if keep {
                    if let Some(old) = self.segments.insert(offset, data.to_vec()) {
                        self.buffered -= old.len();
                    }
                    self.buffered += data.len();
                }
            }
        }
        Ok(!was_readable && self.readable())
    }

    /// Moves the segments the ready bytes now reach into them.
    fn join_segments(&mut self) {
        while let Some(entry) = self.segments.first_entry() {
            let offset = *entry.key();
            let ready_end = self.read_offset + self.ready.len() as u64;
            if offset > ready_end {
                break;
            }
            let seg = entry.remove();
            self.buffered -= seg.len();
            let seg_end = offset + seg.len() as u64;
            if seg_end > ready_end {
                let fresh = &seg[(ready_end - offset) as usize..];
                self.ready.extend(fresh);
                self.buffered += fresh.len();
            }
        }
    }

    /// Whether `read` would return data or the FIN.
    pub fn readable(&self) -> bool {
        !self.ready.is_empty() || (self.fin_offset == Some(self.read_offset) && !self.fin_read)
    }

    /// Copies in-order bytes to `buf`. `Some(n)` bytes (n > 0), or `Some(0)` meaning the FIN was
    /// reached now, or `None` when nothing is ready.
    pub fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        let mut at = 0;
        self.take_ready(buf.len(), |part| {
            buf[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        })
    }

    /// Like [`read`](Self::read), appending at most `max` bytes to `out` (no zeroed buffer to fill).
    pub fn read_append(&mut self, out: &mut Vec<u8>, max: usize) -> Option<usize> {
        self.take_ready(max, |part| out.extend_from_slice(part))
    }

    /// Hands up to `max` in-order bytes to `take`, in order, in at most two parts.
    fn take_ready(&mut self, max: usize, mut take: impl FnMut(&[u8])) -> Option<usize> {
        let n = max.min(self.ready.len());
        if n > 0 {
            let (front, back) = self.ready.as_slices();
            let from_front = n.min(front.len());
            take(&front[..from_front]);
            if n > from_front {
                take(&back[..n - from_front]);
            }
            self.ready.drain(..n);
            self.read_offset += n as u64;
            self.buffered -= n;
            return Some(n);
        }
        if self.fin_offset == Some(self.read_offset) && !self.fin_read {
            self.fin_read = true;
            return Some(0);
        }
        None
    }

    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.buffered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(b: &mut RecvBuffer) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        while let Some(n) = b.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[test]
    fn out_of_order_and_overlapping_segments_come_out_in_order() {
        let mut b = RecvBuffer::default();
        let data: Vec<u8> = (0..100u8).collect();
        assert_eq!(b.insert(50, &data[50..80], false, 1000), Ok(false));
        assert_eq!(b.insert(10, &data[10..60], false, 1000), Ok(false));
        assert_eq!(b.insert(0, &data[0..20], false, 1000), Ok(true));
        assert_eq!(b.insert(70, &data[70..100], true, 1000), Ok(false));
        assert_eq!(read_all(&mut b), data);
        assert!(b.is_fin_read());
        assert_eq!(b.buffered(), 0);
    }

    #[test]
    fn read_append_gives_the_same_bytes_as_read_across_the_ring_wrap() {
        let (mut a, mut b) = (RecvBuffer::default(), RecvBuffer::default());
        let data: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let (mut by_read, mut by_append) = (Vec::new(), Vec::new());
        let mut offset = 0;
        // Reads of 700 between inserts of 1000 make the ring wrap around.
        for chunk in data.chunks(1000) {
            let fin = offset + chunk.len() == data.len();
            for r in [&mut a, &mut b] {
                r.insert(offset as u64, chunk, fin, 1 << 20).unwrap();
            }
            offset += chunk.len();
            let mut buf = [0u8; 700];
            let n = a.read(&mut buf).unwrap();
            by_read.extend_from_slice(&buf[..n]);
            assert_eq!(b.read_append(&mut by_append, 700), Some(n));
        }
        by_read.extend(read_all(&mut a));
        while let Some(n) = b.read_append(&mut by_append, 700) {
            if n == 0 {
                break;
            }
        }
        assert_eq!(by_read, data);
        assert_eq!(by_append, data);
        assert!(a.is_fin_read() && b.is_fin_read());
    }

    #[test]
    fn flow_control_and_final_size_are_enforced() {
        let mut b = RecvBuffer::default();
        assert_eq!(b.insert(0, &[1; 10], false, 5), Err(RecvError::FlowControl));
        assert_eq!(b.insert(0, &[1; 4], true, 5), Ok(true));
        assert_eq!(b.insert(2, &[1; 4], false, 100), Err(RecvError::FinalSize));
        assert_eq!(b.insert(0, &[1; 3], true, 100), Err(RecvError::FinalSize));
    }

    #[test]
    fn a_fin_alone_after_everything_was_read_is_reported_readable() {
        let mut b = RecvBuffer::default();
        assert_eq!(b.insert(0, b"data", false, 100), Ok(true));
        assert_eq!(read_all(&mut b), b"data");
        assert!(!b.readable());
        assert_eq!(b.insert(4, b"", true, 100), Ok(true));
        assert_eq!(b.read(&mut [0u8; 8]), Some(0));
        assert!(b.is_fin_read());
    }

    #[test]
    fn duplicates_after_delivery_are_ignored() {
        let mut b = RecvBuffer::default();
        b.insert(0, b"hello", false, 100).unwrap();
        assert_eq!(read_all(&mut b), b"hello");
        assert_eq!(b.insert(0, b"hello", false, 100), Ok(false));
        assert!(!b.readable());
        assert_eq!(b.buffered(), 0);
    }

    #[test]
    fn random_segments_in_any_order_read_back_as_the_stream() {
        // A small deterministic generator: no dependency, same cases every run.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for case in 0..500 {
            let len = 1 + next(3000);
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + case) as u8).collect();
            let mut b = RecvBuffer::default();
            let mut out = Vec::new();
            let mut buf = vec![0u8; 1 + next(700) as usize];
            // Every byte is covered at least once by the final pass; random segments before it
            // overlap, repeat and arrive out of order.
            let mut segments: Vec<(u64, u64)> = (0..next(40))
                .map(|_| {
                    let start = next(len);
                    (start, (start + 1 + next(400)).min(len))
                })
                .collect();
            let mut offset = 0;
            while offset < len {
                let end = (offset + 1 + next(500)).min(len);
                segments.insert(next(segments.len() as u64 + 1) as usize, (offset, end));
                offset = end;
            }
            for (start, end) in segments {
                let fin = end == len;
                b.insert(start, &data[start as usize..end as usize], fin, len)
                    .unwrap();
                if next(3) == 0 {
                    while let Some(n) = b.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        out.extend_from_slice(&buf[..n]);
                    }
                }
            }
            while let Some(n) = b.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(out, data, "case {case}");
            assert!(b.is_fin_read(), "case {case}");
            assert_eq!(b.buffered(), 0, "case {case}");
        }
    }
}
