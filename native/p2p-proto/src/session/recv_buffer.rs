//! The receiving half of a stream: segments that arrived (in any order, possibly overlapping), handed
//! to the application in order.
//!
//! Memory is bounded by flow control: the peer may not send beyond the offset we granted, and data
//! past it is refused by [`RecvBuffer::insert`].

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct RecvBuffer {
    /// offset -> bytes. Segments may overlap; reading skips what was already delivered.
    segments: BTreeMap<u64, Vec<u8>>,
    /// Everything below this offset was handed to the application.
    read_offset: u64,
    /// The stream's final size, once a FIN arrived.
    fin_offset: Option<u64>,
    fin_read: bool,
    /// Bytes held in `segments` (for statistics and limits).
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
            if self
                .segments
                .keys()
                .next_back()
                .is_some_and(|&o| o + self.segments[&o].len() as u64 > end)
            {
                return Err(RecvError::FinalSize);
            }
            self.fin_offset = Some(end);
        }
        if end > self.read_offset && !data.is_empty() {
            // Keep only the part not yet delivered; a longer segment at the same offset wins.
            let skip = self.read_offset.saturating_sub(offset) as usize;
            let start = offset + skip as u64;
            let bytes = &data[skip..];
            let keep = match self.segments.get(&start) {
                Some(existing) => existing.len() < bytes.len(),
                None => true,
            };
            if keep {
                if let Some(old) = self.segments.insert(start, bytes.to_vec()) {
                    self.buffered -= old.len();
                }
                self.buffered += bytes.len();
            }
        }
        Ok(!was_readable && self.readable())
    }

    /// Whether `read` would return data or the FIN.
    pub fn readable(&self) -> bool {
        if let Some((&o, _)) = self.segments.iter().next() {
            if o <= self.read_offset {
                return true;
            }
        }
        self.fin_offset == Some(self.read_offset) && !self.fin_read
    }

    /// Copies in-order bytes to `buf`. `Some(n)` bytes (n > 0), or `Some(0)` meaning the FIN was
    /// reached now, or `None` when nothing is ready.
    pub fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        let mut n = 0;
        while n < buf.len() {
            let Some(entry) = self.segments.first_entry() else {
                break;
            };
            let offset = *entry.key();
            if offset > self.read_offset {
                break;
            }
            let seg = entry.get();
            let seg_end = offset + seg.len() as u64;
            if seg_end <= self.read_offset {
                self.buffered -= seg.len();
                entry.remove();
                continue;
            }
            let from = (self.read_offset - offset) as usize;
            let take = (seg.len() - from).min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&seg[from..from + take]);
            n += take;
            self.read_offset += take as u64;
            if self.read_offset >= seg_end {
                self.buffered -= entry.get().len();
                entry.remove();
            } else if from + take > 64 * 1024 {
                // Reclaim a long, mostly-read segment instead of keeping its consumed head.
                let rest = entry.get()[from + take..].to_vec();
                self.buffered -= entry.get().len();
                entry.remove();
                self.buffered += rest.len();
                self.segments.insert(self.read_offset, rest);
            }
        }
        if n > 0 {
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
}
