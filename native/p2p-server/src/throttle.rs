//! Failure throttling: after too many failed attempts for one key (a (user, address) pair, a device UID,
//! a source address) within a window, further attempts are refused for a while, longer each time the
//! key is locked again (backoff).
//!
//! Attempts are counted when they are *admitted*, before the slow credential check: an admitted attempt
//! is `pending` and counts toward the limit like a failure until it is resolved. So however many attempts
//! arrive in parallel, at most `max_failures` of them are ever evaluated before the key locks; the others
//! wait for the pending ones (`Admit::Wait`) and are then admitted or refused.
//!
//! Refusing *before* checking the credential is what makes this useful: a guesser gets no answer about
//! the password while throttled, and the server spends no Argon2 time on it.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How many failures a key may have within `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub max_failures: usize,
    pub window: Duration,
}

impl Limit {
    pub const fn new(max_failures: usize, window: Duration) -> Self {
        Limit {
            max_failures,
            window,
        }
    }
}

/// A lock lasts `window * 2^(strikes - 1)`, at most `window * 2^MAX_BACKOFF_SHIFT` (64 min for 60 s).
const MAX_BACKOFF_SHIFT: u32 = 6;

/// What a new attempt for a key may do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Failures and attempts in progress together reach the limit: wait until one is resolved.
    Wait,
    /// Locked: retry after this long.
    Refused(Duration),
}

#[derive(Debug)]
struct Entry {
    failures: VecDeque<Instant>,
    pending: usize,
    /// Locks in a row (reset once the key stays quiet long enough after its last lock).
    strikes: u32,
    locked_until: Option<Instant>,
    last_seen: Instant,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Entry {
            failures: VecDeque::new(),
            pending: 0,
            strikes: 0,
            locked_until: None,
            last_seen: now,
        }
    }

    /// Drops failures older than the window and a lock (with its strikes) long past.
    fn tidy(&mut self, now: Instant, window: Duration) {
        forget_old(&mut self.failures, now, window);
        if let Some(until) = self.locked_until {
            if now >= until + backoff(window, self.strikes) {
                self.locked_until = None;
                self.strikes = 0;
            }
        }
    }

    fn is_idle(&self) -> bool {
        self.failures.is_empty() && self.pending == 0 && self.locked_until.is_none()
    }
}

fn backoff(window: Duration, strikes: u32) -> Duration {
    window.saturating_mul(1 << strikes.saturating_sub(1).min(MAX_BACKOFF_SHIFT))
}

/// Failure history per key, with a cap on the number of keys so spoofed or random keys cannot grow it
/// without bound.
#[derive(Debug)]
pub struct Throttle<K> {
    limit: Limit,
    max_keys: usize,
    entries: HashMap<K, Entry>,
}

impl<K: Eq + Hash + Clone> Throttle<K> {
    pub fn new(limit: Limit, max_keys: usize) -> Self {
        Throttle {
            limit: Limit::new(limit.max_failures.max(1), limit.window),
            max_keys: max_keys.max(1),
            entries: HashMap::new(),
        }
    }

    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// Whether a new attempt for `key` may start now (does not reserve anything: see [`Self::reserve`]).
    pub fn admit(&mut self, key: &K, now: Instant) -> Admit {
        let window = self.limit.window;
        let Some(e) = self.entries.get_mut(key) else {
            return Admit::Yes;
        };
        e.tidy(now, window);
        if let Some(until) = e.locked_until.filter(|u| *u > now) {
            return Admit::Refused(until - now);
        }
        if e.failures.len() + e.pending >= self.limit.max_failures {
            // Only pending attempts can bring us here: failures alone lock the key at the limit.
            return Admit::Wait;
        }
        if e.is_idle() && e.strikes == 0 {
            self.entries.remove(key);
        }
        Admit::Yes
    }

    /// `Err(retry_after)` while `key` is locked (attempts in progress are not counted).
    pub fn check(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        match self.admit(key, now) {
            Admit::Refused(wait) => Err(wait),
            _ => Ok(()),
        }
    }

    /// Counts an admitted attempt as in progress: it counts toward the limit until resolved.
    pub fn reserve(&mut self, key: &K, now: Instant) {
        self.entry(key, now).pending += 1;
    }

    /// Resolves an attempt in progress as failed; returns the lock's length if this failure locked the key.
    pub fn fail_pending(&mut self, key: &K, now: Instant) -> Option<Duration> {
        if let Some(e) = self.entries.get_mut(key) {
            e.pending = e.pending.saturating_sub(1);
        }
        self.record_failure(key, now)
    }

    /// Resolves an attempt in progress as succeeded; `forgive` also forgets the key's failures and locks
    /// (the legitimate user who mistyped once is not punished).
    pub fn succeed_pending(&mut self, key: &K, forgive: bool) {
        if let Some(e) = self.entries.get_mut(key) {
            e.pending = e.pending.saturating_sub(1);
            if forgive {
                e.failures.clear();
                e.locked_until = None;
                e.strikes = 0;
            }
            if e.is_idle() && e.strikes == 0 {
                self.entries.remove(key);
            }
        }
    }

    /// Forgets an attempt in progress that ended without a verdict (server error, dropped connection).
    pub fn cancel_pending(&mut self, key: &K) {
        self.succeed_pending(key, false);
    }

    /// Records a failure that was not reserved; returns the lock's length if it locked the key.
    pub fn record_failure(&mut self, key: &K, now: Instant) -> Option<Duration> {
        let limit = self.limit;
        let e = self.entry(key, now);
        e.tidy(now, limit.window);
        e.failures.push_back(now);
        if e.failures.len() >= limit.max_failures {
            e.failures.clear();
            e.strikes = e.strikes.saturating_add(1);
            let lock = backoff(limit.window, e.strikes);
            let until = now + lock;
            // A lock never shortens one in force (parallel failures resolving late).
            e.locked_until = Some(e.locked_until.map_or(until, |u| u.max(until)));
            return Some(lock);
        }
        None
    }

    /// A success forgives the key's failures.
    pub fn record_success(&mut self, key: &K) {
        if let Some(e) = self.entries.get_mut(key) {
            e.failures.clear();
            e.locked_until = None;
            e.strikes = 0;
            if e.is_idle() {
                self.entries.remove(key);
            }
        }
    }

    fn entry(&mut self, key: &K, now: Instant) -> &mut Entry {
        if !self.entries.contains_key(key) && self.entries.len() >= self.max_keys {
            self.prune(now);
            if self.entries.len() >= self.max_keys {
                // Still full of live entries: forget the key seen least recently (never one with an
                // attempt in progress). An attacker who fills the table can only make us forget the
                // least recent offenders.
                if let Some(victim) = self
                    .entries
                    .iter()
                    .filter(|(_, e)| e.pending == 0)
                    .min_by_key(|(_, e)| e.last_seen)
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&victim);
                }
            }
        }
        let e = self
            .entries
            .entry(key.clone())
            .or_insert_with(|| Entry::new(now));
        e.last_seen = now;
        e
    }

    fn prune(&mut self, now: Instant) {
        let window = self.limit.window;
        self.entries.retain(|_, e| {
            e.tidy(now, window);
            !(e.is_idle() && e.strikes == 0)
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

fn forget_old(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        times.pop_front();
    }
}

/// Keys seen recently (addresses a user logged in from): remembered for `ttl`, at most `max_keys`.
#[derive(Debug)]
pub struct Recent<K> {
    ttl: Duration,
    max_keys: usize,
    seen: HashMap<K, Instant>,
}

impl<K: Eq + Hash + Clone> Recent<K> {
    pub fn new(ttl: Duration, max_keys: usize) -> Self {
        Recent {
            ttl,
            max_keys: max_keys.max(1),
            seen: HashMap::new(),
        }
    }

    pub fn insert(&mut self, key: K, now: Instant) {
        if !self.seen.contains_key(&key) && self.seen.len() >= self.max_keys {
            let ttl = self.ttl;
            self.seen
                .retain(|_, t| now.saturating_duration_since(*t) < ttl);
            if self.seen.len() >= self.max_keys {
                if let Some(oldest) = self
                    .seen
                    .iter()
                    .min_by_key(|(_, t)| **t)
                    .map(|(k, _)| k.clone())
                {
                    self.seen.remove(&oldest);
                }
            }
        }
        self.seen.insert(key, now);
    }

    pub fn contains(&self, key: &K, now: Instant) -> bool {
        self.seen
            .get(key)
            .is_some_and(|t| now.saturating_duration_since(*t) < self.ttl)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn refuses_after_the_limit_until_the_window_passes() {
        let mut t = Throttle::new(Limit::new(3, MIN), 100);
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(t.check(&"bob", t0).is_ok());
            t.record_failure(&"bob", t0 + Duration::from_secs(i));
        }
        // Locked for a window from the failure that reached the limit.
        let wait = t.check(&"bob", t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(52));
        assert!(t.check(&"alice", t0).is_ok(), "other keys are not affected");
        assert!(t.check(&"bob", t0 + Duration::from_secs(62)).is_ok());
    }

    #[test]
    fn success_forgives() {
        let mut t = Throttle::new(Limit::new(2, MIN), 100);
        let now = Instant::now();
        t.record_failure(&1, now);
        t.record_success(&1);
        t.record_failure(&1, now);
        assert!(t.check(&1, now).is_ok());
    }

    #[test]
    fn key_count_is_bounded() {
        let mut t = Throttle::new(Limit::new(2, MIN), 10);
        let now = Instant::now();
        for k in 0..1000u32 {
            t.record_failure(&k, now);
        }
        assert!(t.len() <= 10);
    }

    #[test]
    fn attempts_count_when_admitted_so_parallel_ones_wait() {
        let mut t = Throttle::new(Limit::new(3, MIN), 100);
        let now = Instant::now();
        // 40 attempts arrive together: only 3 are admitted, the others wait.
        let mut admitted = 0;
        for _ in 0..40 {
            if t.admit(&"bob", now) == Admit::Yes {
                t.reserve(&"bob", now);
                admitted += 1;
            } else {
                assert_eq!(t.admit(&"bob", now), Admit::Wait);
            }
        }
        assert_eq!(admitted, 3);
        // All three fail: the waiting ones are now refused, without being evaluated.
        assert_eq!(t.fail_pending(&"bob", now), None);
        assert_eq!(t.fail_pending(&"bob", now), None);
        assert_eq!(t.fail_pending(&"bob", now), Some(MIN));
        assert!(matches!(t.admit(&"bob", now), Admit::Refused(_)));
        // A success resolves its attempt and makes room for the next one.
        let mut u = Throttle::new(Limit::new(1, MIN), 100);
        u.reserve(&"carol", now);
        assert_eq!(u.admit(&"carol", now), Admit::Wait);
        u.succeed_pending(&"carol", false);
        assert_eq!(u.admit(&"carol", now), Admit::Yes);
        u.reserve(&"carol", now);
        u.cancel_pending(&"carol");
        assert_eq!(u.len(), 0);
    }

    #[test]
    fn repeated_locks_back_off() {
        let mut t = Throttle::new(Limit::new(2, MIN), 100);
        let mut now = Instant::now();
        let mut locks = Vec::new();
        for _ in 0..4 {
            t.record_failure(&"k", now);
            let lock = t.record_failure(&"k", now).expect("locks at the limit");
            locks.push(lock);
            assert_eq!(t.admit(&"k", now + lock / 2), Admit::Refused(lock / 2));
            now += lock;
            assert_eq!(t.admit(&"k", now), Admit::Yes);
        }
        assert_eq!(locks, [MIN, MIN * 2, MIN * 4, MIN * 8]);
        // Quiet long enough after the last lock: back to a single window.
        now += MIN * 8;
        t.record_failure(&"k", now);
        assert_eq!(t.record_failure(&"k", now), Some(MIN));
    }

    #[test]
    fn recent_keys_expire_and_are_bounded() {
        let mut r = Recent::new(MIN, 3);
        let now = Instant::now();
        for k in 0..10 {
            r.insert(k, now + Duration::from_secs(k));
        }
        assert!(r.len() <= 3);
        assert!(r.contains(&9, now + Duration::from_secs(10)));
        assert!(!r.contains(&0, now + Duration::from_secs(10)));
        assert!(!r.contains(&9, now + Duration::from_secs(9) + MIN));
    }
}
