//! Delivery-rate sampling (draft-cheng-iccrg-delivery-rate-estimation): each packet remembers how
//! much had been delivered when it was sent, so its acknowledgement tells how fast data got through
//! the path over that interval. The bandwidth model of the congestion controller is built from
//! these samples, never from losses.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The delivery figures at the moment a packet was sent.
#[derive(Debug, Clone, Copy)]
pub struct SendState {
    pub sent_time: Instant,
    /// Bytes delivered (acknowledged) before this packet was sent.
    pub delivered: u64,
    delivered_time: Instant,
    first_sent_time: Instant,
    /// The sender had less to send than the window allowed: the sample may understate the path.
    pub app_limited: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct RateSample {
    /// Bytes per second.
    pub rate: f64,
    pub app_limited: bool,
}

#[derive(Debug, Clone)]
pub struct DeliveryRate {
    delivered: u64,
    delivered_time: Instant,
    first_sent_time: Instant,
    /// While `delivered` has not passed this mark, samples are app-limited.
    app_limited_until: Option<u64>,
}

impl DeliveryRate {
    pub fn new(now: Instant) -> DeliveryRate {
        DeliveryRate {
            delivered: 0,
            delivered_time: now,
            first_sent_time: now,
            app_limited_until: None,
        }
    }

    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// A packet goes out with `in_flight` bytes already in flight.
    pub fn on_sent(&mut self, now: Instant, in_flight: usize) -> SendState {
        if in_flight == 0 {
            // Restarting from idle: the interval must not include the idle time.
            self.first_sent_time = now;
            self.delivered_time = now;
        }
        SendState {
            sent_time: now,
            delivered: self.delivered,
            delivered_time: self.delivered_time,
            first_sent_time: self.first_sent_time,
            app_limited: self.app_limited_until.is_some(),
        }
    }

    /// The sender ran out of data with `in_flight` bytes in flight: samples until those are
    /// delivered measure the application, not the path.
    pub fn set_app_limited(&mut self, in_flight: usize) {
        self.app_limited_until = Some(self.delivered + in_flight as u64);
    }

    /// Bytes of one packet were acknowledged at `now`.
    pub fn on_acked(&mut self, now: Instant, bytes: usize) {
        self.delivered += bytes as u64;
        self.delivered_time = now;
        if self.app_limited_until.is_some_and(|m| self.delivered > m) {
            self.app_limited_until = None;
        }
    }

    /// After an acknowledgement: the rate measured from the most recently sent packet it settled.
    /// None when the interval is too short to mean anything (shorter than the minimum RTT: the
    /// acknowledgements were compressed).
    pub fn sample(&mut self, newest: &SendState, min_rtt: Option<Duration>) -> Option<RateSample> {
        self.first_sent_time = newest.sent_time;
        let send_elapsed = newest
            .sent_time
            .saturating_duration_since(newest.first_sent_time);
        let ack_elapsed = self
            .delivered_time
            .saturating_duration_since(newest.delivered_time);
        let interval = send_elapsed.max(ack_elapsed);
        if interval.is_zero() || min_rtt.is_some_and(|m| interval < m) {
            return None;
        }
        let bytes = self.delivered - newest.delivered;
        Some(RateSample {
            rate: bytes as f64 / interval.as_secs_f64(),
            app_limited: newest.app_limited,
        })
    }
}

/// The largest value seen over the last `window` rounds (a monotonic queue: exact, and at most
/// `window` entries).
#[derive(Debug, Clone)]
pub struct WindowedMax {
    window: u64,
    samples: VecDeque<(u64, f64)>,
}

impl WindowedMax {
    pub fn new(window: u64) -> WindowedMax {
        WindowedMax {
            window,
            samples: VecDeque::new(),
        }
    }

    pub fn update(&mut self, round: u64, value: f64) {
        while self.samples.back().is_some_and(|&(_, v)| v <= value) {
            self.samples.pop_back();
        }
        self.samples.push_back((round, value));
        while self
            .samples
            .front()
            .is_some_and(|&(r, _)| r + self.window <= round)
        {
            self.samples.pop_front();
        }
    }

    pub fn get(&self) -> f64 {
        self.samples.front().map_or(0.0, |&(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_flow_measures_its_rate() {
        let t0 = Instant::now();
        let mut d = DeliveryRate::new(t0);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // 1000 bytes every millisecond, each acknowledged 20 ms later: 1 MB/s.
        let mut states = Vec::new();
        let mut last = None;
        for k in 0..60 {
            states.push(d.on_sent(ms(k), (k.min(20) * 1000) as usize));
            if k >= 20 {
                d.on_acked(ms(k), 1000);
                last = d.sample(&states[k as usize - 20], Some(Duration::from_millis(20)));
            }
        }
        let rate = last.unwrap().rate;
        assert!((rate - 1_000_000.0).abs() < 100_000.0, "{rate}");
    }

    #[test]
    fn windowed_max_forgets_old_rounds() {
        let mut m = WindowedMax::new(3);
        m.update(0, 10.0);
        m.update(1, 5.0);
        assert_eq!(m.get(), 10.0);
        m.update(2, 7.0);
        assert_eq!(m.get(), 10.0);
        m.update(3, 6.0);
        assert_eq!(m.get(), 7.0);
        m.update(5, 1.0);
        assert_eq!(m.get(), 6.0);
        m.update(6, 2.0);
        assert_eq!(m.get(), 2.0);
    }
}
