//! A set of `u64` values stored as disjoint half-open ranges.
//!
//! Used for received packet numbers (what our ACK frames report), for acknowledged and lost byte
//! ranges of a send buffer. Ranges never touch: inserting `[5, 7)` next to `[7, 9)` gives `[5, 9)`,
//! so the set is as small as the data allows and every operation is O(log n) in the number of ranges.

use std::collections::BTreeMap;
use std::ops::{Range, RangeInclusive};

#[derive(Debug, Clone, Default)]
pub struct RangeSet {
    /// start -> end (exclusive).
    map: BTreeMap<u64, u64>,
}

impl RangeSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of disjoint ranges (not of values).
    pub fn range_count(&self) -> usize {
        self.map.len()
    }

    pub fn contains(&self, v: u64) -> bool {
        self.map
            .range(..=v)
            .next_back()
            .is_some_and(|(_, &end)| v < end)
    }

    /// Largest value in the set.
    pub fn max(&self) -> Option<u64> {
        self.map.last_key_value().map(|(_, &end)| end - 1)
    }

    /// The lowest range.
    pub fn first(&self) -> Option<Range<u64>> {
        self.map.first_key_value().map(|(&s, &e)| s..e)
    }

    /// Adds `r`; returns whether any of it was new.
    pub fn insert(&mut self, r: Range<u64>) -> bool {
        if r.start >= r.end {
            return false;
        }
        let (mut start, mut end) = (r.start, r.end);
        if let Some((&s, &e)) = self.map.range(..=start).next_back() {
            if e >= end {
                return false;
            }
            if e >= start {
                start = s;
            }
        }
        // Absorb every range that starts inside (or right after) the new one.
        while let Some((&s, &e)) = self.map.range(start..).next() {
            if s > end {
                break;
            }
            self.map.remove(&s);
            end = end.max(e);
        }
        self.map.insert(start, end);
        true
    }

    /// Removes every value in `r`.
    pub fn remove(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        // A range that starts before r and overlaps it is split.
        if let Some((&s, &e)) = self.map.range(..r.start).next_back() {
            if e > r.start {
                self.map.insert(s, r.start);
                if e > r.end {
                    self.map.insert(r.end, e);
                    return;
                }
            }
        }
        while let Some((&s, &e)) = self.map.range(r.start..).next() {
            if s >= r.end {
                break;
            }
            self.map.remove(&s);
            if e > r.end {
                self.map.insert(r.end, e);
                break;
            }
        }
    }

    /// Removes every value below `v`.
    pub fn remove_below(&mut self, v: u64) {
        if let Some(first) = self.first() {
            self.remove(first.start..v);
        }
    }

    /// Drops the lowest range (to bound memory when the set has too many).
    pub fn pop_lowest(&mut self) {
        self.map.pop_first();
    }

    /// The first part of `r` that is not in the set.
    pub fn first_missing(&self, r: Range<u64>) -> Option<Range<u64>> {
        let mut start = r.start;
        if let Some((_, &e)) = self.map.range(..=start).next_back() {
            start = start.max(e);
        }
        if start >= r.end {
            return None;
        }
        let end = match self.map.range(start..).next() {
            Some((&s, _)) => s.min(r.end),
            None => r.end,
        };
        Some(start..end)
    }

    /// The ranges as inclusive ranges, highest first (the order ACK frames use).
    pub fn iter_desc(&self) -> impl Iterator<Item = RangeInclusive<u64>> + '_ {
        self.map.iter().rev().map(|(&s, &e)| s..=e - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(s: &RangeSet) -> Vec<(u64, u64)> {
        s.map.iter().map(|(&a, &b)| (a, b)).collect()
    }

    #[test]
    fn inserts_merge_touching_and_overlapping_ranges() {
        let mut s = RangeSet::new();
        assert!(s.insert(10..20));
        assert!(s.insert(30..40));
        assert!(!s.insert(12..15));
        assert!(s.insert(20..25));
        assert_eq!(ranges(&s), vec![(10, 25), (30, 40)]);
        assert!(s.insert(5..35));
        assert_eq!(ranges(&s), vec![(5, 40)]);
        assert!(s.contains(5) && s.contains(39) && !s.contains(40) && !s.contains(4));
        assert_eq!(s.max(), Some(39));
    }

    #[test]
    fn removal_splits_ranges() {
        let mut s = RangeSet::new();
        s.insert(0..100);
        s.remove(10..20);
        assert_eq!(ranges(&s), vec![(0, 10), (20, 100)]);
        s.remove(5..25);
        assert_eq!(ranges(&s), vec![(0, 5), (25, 100)]);
        s.remove_below(50);
        assert_eq!(ranges(&s), vec![(50, 100)]);
        s.insert(200..300);
        s.remove(90..250);
        assert_eq!(ranges(&s), vec![(50, 90), (250, 300)]);
    }

    #[test]
    fn finds_the_first_missing_part() {
        let mut acked = RangeSet::new();
        acked.insert(10..20);
        acked.insert(30..40);
        assert_eq!(acked.first_missing(0..50), Some(0..10));
        assert_eq!(acked.first_missing(12..50), Some(20..30));
        assert_eq!(acked.first_missing(12..18), None);
        assert_eq!(acked.first_missing(35..45), Some(40..45));
    }

    #[test]
    fn descending_iteration_is_inclusive() {
        let mut s = RangeSet::new();
        s.insert(0..2);
        s.insert(5..6);
        assert_eq!(s.iter_desc().collect::<Vec<_>>(), vec![5..=5, 0..=1]);
    }
}
