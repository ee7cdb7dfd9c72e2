//! Failure throttling: after too many failed attempts for one key (a user name, a device UID, a source
//! address) within a window, further attempts are refused until the oldest failure leaves the window.
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

/// Failure history per key, with a cap on the number of keys so spoofed or random keys cannot grow it
/// without bound.
#[derive(Debug)]
pub struct Throttle<K> {
    limit: Limit,
    max_keys: usize,
    failures: HashMap<K, VecDeque<Instant>>,
}

impl<K: Eq + Hash + Clone> Throttle<K> {
    pub fn new(limit: Limit, max_keys: usize) -> Self {
        Throttle {
            limit,
            max_keys: max_keys.max(1),
            failures: HashMap::new(),
        }
    }

    /// `Err(retry_after)` while `key` has used up its failures.
    pub fn check(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        let window = self.limit.window;
        let Some(times) = self.failures.get_mut(key) else {
            return Ok(());
        };
        forget_old(times, now, window);
        if times.is_empty() {
            self.failures.remove(key);
            return Ok(());
        }
        if times.len() >= self.limit.max_failures {
            let oldest = times[0];
            return Err((oldest + window).saturating_duration_since(now));
        }
        Ok(())
    }

    pub fn record_failure(&mut self, key: &K, now: Instant) {
        if !self.failures.contains_key(key) && self.failures.len() >= self.max_keys {
            self.prune(now);
            if self.failures.len() >= self.max_keys {
                // Still full of live entries: forget the key whose last failure is oldest. An attacker
                // who fills the table can only make us forget the least recent offenders.
                if let Some(victim) = self
                    .failures
                    .iter()
                    .min_by_key(|(_, t)| t.back().copied())
                    .map(|(k, _)| k.clone())
                {
                    self.failures.remove(&victim);
                }
            }
        }
        let times = self.failures.entry(key.clone()).or_default();
        forget_old(times, now, self.limit.window);
        times.push_back(now);
        // Only the newest `max_failures` matter for the decision.
        while times.len() > self.limit.max_failures {
            times.pop_front();
        }
    }

    /// A success forgives the key's failures (the legitimate user who mistyped once is not punished).
    pub fn record_success(&mut self, key: &K) {
        self.failures.remove(key);
    }

    fn prune(&mut self, now: Instant) {
        let window = self.limit.window;
        self.failures.retain(|_, times| {
            forget_old(times, now, window);
            !times.is_empty()
        });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.failures.len()
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
        let wait = t.check(&"bob", t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(t.check(&"alice", t0).is_ok(), "other keys are not affected");
        assert!(t.check(&"bob", t0 + MIN).is_ok());
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
}
