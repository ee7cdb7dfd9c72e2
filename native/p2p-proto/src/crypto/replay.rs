//! Receive-side replay protection: the highest packet number seen and a 1024-bit bitmap below it.
//!
//! Packet numbers never repeat in a direction, so a number seen twice is a replay (or a duplicate the
//! network made: dropping it is right either way). Numbers more than 1023 below the highest one cannot
//! be told apart from replays any more and are dropped too; 1024 packets of reordering is far beyond
//! what a real path does.
//!
//! `check` and `commit` are separate so the caller can authenticate between them: only a packet that
//! authenticated may move the window (otherwise a forger could push the window forward and make
//! genuine packets look too old).

/// Packet numbers the window remembers below (and including) the highest one.
pub const WINDOW_BITS: u64 = 1024;
const WORDS: usize = (WINDOW_BITS / 64) as usize;

/// Replay window. The bitmap is a ring indexed by `pn % 1024`, so sliding forward only clears the slots
/// the new numbers reuse instead of shifting the whole map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    /// `None` until the first commit.
    highest: Option<u64>,
    bits: [u64; WORDS],
}

impl ReplayWindow {
    pub fn new() -> ReplayWindow {
        ReplayWindow::default()
    }

    /// The highest committed packet number.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// True when `pn` is new: above the highest, or within the window and not seen yet.
    pub fn check(&self, pn: u64) -> bool {
        match self.highest {
            None => true,
            Some(h) if pn > h => true,
            Some(h) if h - pn >= WINDOW_BITS => false,
            Some(_) => !self.is_set(pn),
        }
    }

    /// Records `pn` as received. Call only after `check(pn)` and authentication succeeded; a number
    /// that is already too old is ignored.
    pub fn commit(&mut self, pn: u64) {
        match self.highest {
            Some(h) if pn <= h => {
                if h - pn < WINDOW_BITS {
                    self.set(pn);
                }
            }
            previous => {
                // The slots of (h, pn] still hold numbers 1024 lower: forget them before reuse.
                match previous {
                    Some(h) if pn - h < WINDOW_BITS => {
                        for p in h + 1..=pn {
                            self.clear(p);
                        }
                    }
                    _ => self.bits = [0; WORDS],
                }
                self.highest = Some(pn);
                self.set(pn);
            }
        }
    }

    fn slot(pn: u64) -> (usize, u64) {
        let i = pn % WINDOW_BITS;
        ((i / 64) as usize, 1u64 << (i % 64))
    }
    fn is_set(&self, pn: u64) -> bool {
        let (w, m) = Self::slot(pn);
        self.bits[w] & m != 0
    }
    fn set(&mut self, pn: u64) {
        let (w, m) = Self::slot(pn);
        self.bits[w] |= m;
    }
    fn clear(&mut self, pn: u64) {
        let (w, m) = Self::slot(pn);
        self.bits[w] &= !m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn accept(w: &mut ReplayWindow, pn: u64) -> bool {
        let ok = w.check(pn);
        if ok {
            w.commit(pn);
        }
        ok
    }

    #[test]
    fn fresh_window_accepts_anything_once() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.highest(), None);
        assert!(accept(&mut w, 5));
        assert!(!accept(&mut w, 5));
        assert!(accept(&mut w, 0), "below the highest but inside the window");
        assert!(!accept(&mut w, 0));
        assert_eq!(w.highest(), Some(5));
    }

    #[test]
    fn window_edge_is_exactly_1024() {
        let mut w = ReplayWindow::new();
        assert!(accept(&mut w, 2000));
        assert!(!w.check(2000 - 1024), "1024 behind is too old");
        assert!(accept(&mut w, 2000 - 1023), "1023 behind is still inside");
        assert!(!accept(&mut w, 2000 - 1023));
    }

    #[test]
    fn sliding_forgets_reused_slots() {
        let mut w = ReplayWindow::new();
        assert!(accept(&mut w, 10));
        // 1034 reuses slot 10: it must not look "seen".
        assert!(accept(&mut w, 1034));
        assert!(!w.check(10));
        assert!(accept(&mut w, 1033));
        // A big jump clears everything below.
        assert!(accept(&mut w, 1_000_000));
        assert!(w.check(1_000_000 - 1));
        assert!(!w.check(1034));
    }

    #[test]
    fn extreme_numbers_do_not_overflow() {
        let mut w = ReplayWindow::new();
        assert!(accept(&mut w, 0));
        assert!(accept(&mut w, u64::MAX));
        assert!(!accept(&mut w, u64::MAX));
        assert!(!w.check(0));
        assert!(accept(&mut w, u64::MAX - 1023));
        assert!(!w.check(u64::MAX - 1024));
    }

    #[test]
    fn uncommitted_checks_change_nothing() {
        let mut w = ReplayWindow::new();
        assert!(accept(&mut w, 3));
        let before = w.clone();
        assert!(w.check(4));
        assert!(w.check(1));
        assert_eq!(w, before);
    }

    proptest! {
        /// Against a model that remembers every number: accepted exactly when never accepted before
        /// and no more than 1023 below the highest accepted.
        #[test]
        fn agrees_with_a_set_model(pns in proptest::collection::vec(0u64..3000, 1..400)) {
            let mut w = ReplayWindow::new();
            let mut seen = HashSet::new();
            let mut highest: Option<u64> = None;
            for pn in pns {
                let fresh = !seen.contains(&pn)
                    && highest.is_none_or(|h| pn > h || h - pn < WINDOW_BITS);
                prop_assert_eq!(accept(&mut w, pn), fresh, "pn {}", pn);
                if fresh {
                    seen.insert(pn);
                    highest = Some(highest.map_or(pn, |h| h.max(pn)));
                }
            }
        }
    }
}
