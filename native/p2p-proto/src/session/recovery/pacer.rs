//! Pacing: a token bucket filled at the controller's pacing rate. Packets leave in small bursts (a
//! quantum of at least ten packets or a millisecond of the rate, whichever is more) so that the
//! driver can still hand them to the OS as one GSO batch and a timer wakes it once per burst, not
//! once per packet.

use std::time::{Duration, Instant};

const BURST_PACKETS: usize = 10;
const BURST_TIME: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, Default)]
pub struct Pacer {
    /// Bytes that may be sent now.
    tokens: f64,
    last_refill: Option<Instant>,
}

impl Pacer {
    fn quantum(rate: f64, mss: usize) -> f64 {
        (rate * BURST_TIME.as_secs_f64()).max((BURST_PACKETS * mss) as f64)
    }

    /// When a packet of `bytes` may be sent at `rate` bytes per second: `None` for now, otherwise
    /// the instant a whole quantum will have built up. Without a rate (no RTT sample yet) nothing
    /// is paced.
    pub fn delay(
        &mut self,
        now: Instant,
        rate: Option<f64>,
        bytes: usize,
        mss: usize,
    ) -> Option<Instant> {
        let rate = rate?;
        let quantum = Self::quantum(rate, mss);
        // Twice the quantum: a driver woken a little late (timers round to milliseconds) catches
        // up instead of losing the time.
        let cap = 2.0 * quantum;
        self.tokens = match self.last_refill {
            Some(last) => self.tokens + rate * now.saturating_duration_since(last).as_secs_f64(),
            None => cap,
        }
        .min(cap);
        self.last_refill = Some(now);
        if self.tokens >= bytes as f64 {
            return None;
        }
        let wait = (quantum - self.tokens) / rate;
        Some(now + Duration::from_secs_f64(wait).max(Duration::from_micros(1)))
    }

    pub fn on_sent(&mut self, bytes: usize) {
        self.tokens = (self.tokens - bytes as f64).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_of_a_quantum_at_the_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::default();
        // 1 MB/s with 1000-byte packets: a quantum of 10 packets every 10 ms.
        let rate = Some(1_000_000.0);
        let mut now = t0;
        let mut sent = 0;
        let mut wakeups = 0;
        while now < t0 + Duration::from_millis(500) {
            match p.delay(now, rate, 1000, 1000) {
                None => {
                    p.on_sent(1000);
                    sent += 1;
                }
                Some(at) => {
                    assert!(at > now);
                    now = at;
                    wakeups += 1;
                }
            }
        }
        // The first 20 packets go at once (a full bucket), then 1 MB/s.
        assert!((500..=525).contains(&sent), "{sent}");
        assert!(wakeups <= 50, "{wakeups} wakeups: bursts were split");
        assert_eq!(p.delay(now, None, 1000, 1000), None, "no rate, no pacing");
    }
}
