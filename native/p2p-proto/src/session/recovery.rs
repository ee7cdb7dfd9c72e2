//! Loss recovery and congestion control figures: RTT estimation (RFC 9002 §5), the probe timeout, and a
//! NewReno congestion window in bytes (RFC 9002 §7). Pure arithmetic over durations the session
//! passes in.

use std::time::{Duration, Instant};

/// How long the peer may hold an acknowledgement (our own delayed-ACK timer matches it).
pub const MAX_ACK_DELAY: Duration = Duration::from_millis(5);
const INITIAL_RTT: Duration = Duration::from_millis(333);
const GRANULARITY: Duration = Duration::from_millis(1);
/// Largest probe timeout after backoff: a dead path is judged by the path logic, not by this.
const MAX_PTO: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct RttEstimator {
    latest: Duration,
    smoothed: Option<Duration>,
    var: Duration,
    min: Duration,
}

impl Default for RttEstimator {
    fn default() -> Self {
        RttEstimator {
            latest: INITIAL_RTT,
            smoothed: None,
            var: INITIAL_RTT / 2,
            min: INITIAL_RTT,
        }
    }
}

impl RttEstimator {
    pub fn update(&mut self, sample: Duration, ack_delay: Duration) {
        self.latest = sample;
        match self.smoothed {
            None => {
                self.min = sample;
                self.smoothed = Some(sample);
                self.var = sample / 2;
            }
            Some(srtt) => {
                self.min = self.min.min(sample);
                // Subtract the peer's ack delay only when what remains is still above the minimum.
                let adjusted = if sample >= self.min + ack_delay {
                    sample - ack_delay
                } else {
                    sample
                };
                let diff = srtt.abs_diff(adjusted);
                self.var = (self.var * 3 + diff) / 4;
                self.smoothed = Some((srtt * 7 + adjusted) / 8);
            }
        }
    }

    /// The smoothed RTT, once there is a sample.
    pub fn smoothed(&self) -> Option<Duration> {
        self.smoothed
    }

    fn srtt(&self) -> Duration {
        self.smoothed.unwrap_or(INITIAL_RTT)
    }

    /// How long after a later packet was acknowledged an earlier one counts as lost (9/8 of the RTT).
    pub fn loss_delay(&self) -> Duration {
        (self.srtt().max(self.latest) * 9 / 8).max(GRANULARITY)
    }

    /// The probe timeout after `backoff` consecutive expiries.
    pub fn pto(&self, backoff: u32) -> Duration {
        let base = self.srtt() + (self.var * 4).max(GRANULARITY) + MAX_ACK_DELAY;
        (base * 2u32.saturating_pow(backoff.min(16))).min(MAX_PTO)
    }
}

/// NewReno over bytes in flight.
#[derive(Debug, Clone)]
pub struct Congestion {
    window: usize,
    ssthresh: usize,
    in_flight: usize,
    /// Losses of packets sent before this instant belong to the loss event already reacted to.
    recovery_start: Option<Instant>,
    mss: usize,
}

/// Initial window in packets, the minimum after losses, and a ceiling that keeps memory bounded.
const INITIAL_PACKETS: usize = 32;
const MINIMUM_PACKETS: usize = 4;
const MAXIMUM_BYTES: usize = 32 * 1024 * 1024;

impl Congestion {
    pub fn new(mss: usize) -> Congestion {
        Congestion {
            window: INITIAL_PACKETS * mss,
            ssthresh: usize::MAX,
            in_flight: 0,
            recovery_start: None,
            mss,
        }
    }

    pub fn window(&self) -> usize {
        self.window
    }

    pub fn can_send(&self, bytes: usize) -> bool {
        self.in_flight + bytes <= self.window
    }

    pub fn on_sent(&mut self, bytes: usize) {
        self.in_flight += bytes;
    }

    /// A packet left the network without being acknowledged or lost (e.g. its session path reset).
    pub fn on_forgotten(&mut self, bytes: usize) {
        self.in_flight = self.in_flight.saturating_sub(bytes);
    }

    pub fn on_acked(&mut self, bytes: usize, sent: Instant) {
        self.in_flight = self.in_flight.saturating_sub(bytes);
        if self.recovery_start.is_some_and(|r| sent <= r) {
            return;
        }
        if self.window < self.ssthresh {
            self.window += bytes;
        } else {
            self.window += (self.mss * bytes / self.window).max(1);
        }
        self.window = self.window.min(MAXIMUM_BYTES);
    }

    /// A packet sent at `sent` was declared lost at `now`.
    pub fn on_lost(&mut self, bytes: usize, sent: Instant, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(bytes);
        if self.recovery_start.is_some_and(|r| sent <= r) {
            return;
        }
        self.recovery_start = Some(now);
        self.window = (self.window / 2).max(MINIMUM_PACKETS * self.mss);
        self.ssthresh = self.window;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_follows_samples_and_pto_backs_off_to_a_ceiling() {
        let mut r = RttEstimator::default();
        r.update(Duration::from_millis(100), Duration::ZERO);
        assert_eq!(r.smoothed(), Some(Duration::from_millis(100)));
        for _ in 0..50 {
            r.update(Duration::from_millis(20), Duration::ZERO);
        }
        let s = r.smoothed().unwrap();
        assert!(s < Duration::from_millis(25), "{s:?}");
        assert!(r.pto(1) > r.pto(0));
        assert_eq!(r.pto(30), MAX_PTO);
    }

    #[test]
    fn one_reduction_per_loss_event() {
        let t0 = Instant::now();
        let mut c = Congestion::new(1000);
        let w0 = c.window();
        c.on_sent(10_000);
        c.on_lost(1000, t0, t0 + Duration::from_millis(10));
        c.on_lost(1000, t0, t0 + Duration::from_millis(11));
        assert_eq!(c.window(), w0 / 2);
        c.on_lost(
            1000,
            t0 + Duration::from_millis(20),
            t0 + Duration::from_millis(30),
        );
        assert_eq!(c.window(), w0 / 4);
        for _ in 0..100 {
            c.on_lost(
                1000,
                t0 + Duration::from_secs(1),
                t0 + Duration::from_secs(2),
            );
        }
        assert!(c.window() >= 4000);
    }
}
