//! A model-based congestion controller after BBR (v1): it estimates the path's bottleneck
//! bandwidth (the largest delivery rate over the last ten round trips) and its minimum RTT, paces
//! at a gain times that bandwidth and keeps about two bandwidth-delay products in flight. Loss is
//! not a signal: a path that drops 1% of packets at random keeps its rate, where NewReno halved
//! its window on each loss. Queues stay short because the pacing rate follows the measured
//! bottleneck rate, a probing phase above it is followed by one below it that drains the queue,
//! and the minimum RTT is measured again every ten seconds with the window cut to four packets.

use std::time::{Duration, Instant};

use super::delivery::{DeliveryRate, SendState, WindowedMax};
use super::pacer::Pacer;

/// Initial window in packets, the smallest window, and a ceiling that keeps memory bounded.
const INITIAL_PACKETS: usize = 32;
const MINIMUM_PACKETS: usize = 4;
const MAXIMUM_BYTES: usize = 32 * 1024 * 1024;
/// 2/ln 2: doubles the delivery rate each round trip while the pipe fills.
const STARTUP_GAIN: f64 = 2.885;
/// Pacing gains of the bandwidth probing cycle, one phase a minimum RTT: probe above the estimate,
/// drain what that queued, then cruise.
const CYCLE: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
const PROBE_BW_WINDOW_GAIN: f64 = 2.0;
/// Round trips the bandwidth estimate remembers.
const BANDWIDTH_WINDOW_ROUNDS: u64 = 10;
/// How long a minimum RTT stays valid before it is measured again, and how long that takes.
const MIN_RTT_VALID: Duration = Duration::from_secs(10);
const PROBE_RTT_TIME: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Doubling the rate each round until the bandwidth estimate stops growing.
    Startup,
    /// Emptying the queue Startup built.
    Drain,
    /// Cruising at the estimate, probing for more one phase in eight.
    ProbeBandwidth,
    /// Window at the minimum so that the queue empties and the minimum RTT can be seen.
    ProbeRtt,
}

#[derive(Debug, Clone)]
pub struct Congestion {
    mss: usize,
    /// The window never goes below this (connectd's max_outstanding, or four packets).
    min_window: usize,
    window: usize,
    in_flight: usize,
    delivery: DeliveryRate,
    bandwidth: WindowedMax,
    min_rtt: Option<Duration>,
    min_rtt_stamp: Instant,
    mode: Mode,
    round: u64,
    next_round_delivered: u64,
    /// Startup's last bandwidth that grew by a quarter, and the rounds since.
    full_bandwidth: f64,
    rounds_without_growth: u32,
    pipe_filled: bool,
    cycle_index: usize,
    cycle_start: Instant,
    loss_in_cycle: bool,
    probe_rtt_done: Option<Instant>,
    probe_rtt_round_passed: bool,
    window_before_probe_rtt: usize,
    pacer: Pacer,
}

impl Congestion {
    /// `min_packets`: the smallest window in packets (at least four).
    pub fn new(now: Instant, mss: usize, min_packets: usize) -> Congestion {
        let min_window = min_packets.max(MINIMUM_PACKETS) * mss;
        Congestion {
            mss,
            min_window,
            window: (INITIAL_PACKETS * mss).max(min_window),
            in_flight: 0,
            delivery: DeliveryRate::new(now),
            bandwidth: WindowedMax::new(BANDWIDTH_WINDOW_ROUNDS),
            min_rtt: None,
            min_rtt_stamp: now,
            mode: Mode::Startup,
            round: 0,
            next_round_delivered: 0,
            full_bandwidth: 0.0,
            rounds_without_growth: 0,
            pipe_filled: false,
            cycle_index: 0,
            cycle_start: now,
            loss_in_cycle: false,
            probe_rtt_done: None,
            probe_rtt_round_passed: false,
            window_before_probe_rtt: 0,
            pacer: Pacer::default(),
        }
    }

    /// The congestion window in bytes.
    pub fn window(&self) -> usize {
        if self.mode == Mode::ProbeRtt {
            self.window.min(self.probe_rtt_window())
        } else {
            self.window
        }
    }

    fn probe_rtt_window(&self) -> usize {
        self.min_window
    }

    pub fn can_send(&self, bytes: usize) -> bool {
        self.in_flight + bytes <= self.window()
    }

    /// The estimated bottleneck bandwidth in bytes per second (0 before the first sample).
    #[cfg(test)]
    pub fn bandwidth(&self) -> f64 {
        self.bandwidth.get()
    }

    fn pacing_gain(&self) -> f64 {
        match self.mode {
            Mode::Startup => STARTUP_GAIN,
            Mode::Drain => 1.0 / STARTUP_GAIN,
            Mode::ProbeBandwidth => CYCLE[self.cycle_index],
            Mode::ProbeRtt => 1.0,
        }
    }

    fn window_gain(&self) -> f64 {
        match self.mode {
            Mode::Startup | Mode::Drain => STARTUP_GAIN,
            Mode::ProbeBandwidth | Mode::ProbeRtt => PROBE_BW_WINDOW_GAIN,
        }
    }

    /// Bytes per second to pace at; none before the first RTT sample. Never below what keeps the
    /// minimum window in flight, so that a raised minimum is not undone by pacing.
    pub fn pacing_rate(&self) -> Option<f64> {
        let rtt = self.min_rtt?.max(Duration::from_micros(100)).as_secs_f64();
        let bandwidth = match self.bandwidth.get() {
            b if b > 0.0 => b,
            _ => self.window as f64 / rtt,
        };
        Some((self.pacing_gain() * bandwidth).max(self.min_window as f64 / rtt))
    }

    /// The bandwidth-delay product times `gain`, in bytes; the initial window before a model exists.
    fn bdp(&self, gain: f64) -> usize {
        match self.min_rtt {
            Some(rtt) if self.bandwidth.get() > 0.0 => {
                (gain * self.bandwidth.get() * rtt.as_secs_f64()) as usize
            }
            _ => INITIAL_PACKETS * self.mss,
        }
    }

    /// When the next packet of `bytes` may leave by the pacing rate (`None`: now).
    pub fn pacing_delay(&mut self, now: Instant, bytes: usize) -> Option<Instant> {
        let rate = self.pacing_rate();
        self.pacer.delay(now, rate, bytes, self.mss)
    }

    /// Nothing more to send although the window had room.
    pub fn on_app_limited(&mut self) {
        self.delivery.set_app_limited(self.in_flight);
    }

    pub fn on_sent(&mut self, now: Instant, bytes: usize) -> SendState {
        let state = self.delivery.on_sent(now, self.in_flight);
        self.in_flight += bytes;
        self.pacer.on_sent(bytes);
        state
    }

    /// A packet left the network without being acknowledged (lost, or given up on by a probe).
    /// Losses do not change the model; they only end a probing phase early.
    pub fn on_lost(&mut self, bytes: usize) {
        self.in_flight = self.in_flight.saturating_sub(bytes);
        self.loss_in_cycle = true;
    }

    /// One acknowledged packet; [`Congestion::on_ack_event`] follows once per acknowledgement.
    pub fn on_acked(&mut self, now: Instant, bytes: usize) {
        self.in_flight = self.in_flight.saturating_sub(bytes);
        self.delivery.on_acked(now, bytes);
    }

    /// An acknowledgement settled `acked` bytes, the latest sent of them with `newest`;
    /// `rtt`: the RTT sample it gave, if any.
    pub fn on_ack_event(
        &mut self,
        now: Instant,
        acked: usize,
        newest: &SendState,
        rtt: Option<Duration>,
    ) {
        let round_start = newest.delivered >= self.next_round_delivered;
        if round_start {
            self.next_round_delivered = self.delivery.delivered();
            self.round += 1;
        }
        let sample = self.delivery.sample(newest, self.min_rtt);
        if let Some(s) = sample {
            if !s.app_limited || s.rate >= self.bandwidth.get() {
                self.bandwidth.update(self.round, s.rate);
            }
        }
        let min_rtt_expired = now > self.min_rtt_stamp + MIN_RTT_VALID;
        if let Some(rtt) = rtt {
            if self.min_rtt.is_none_or(|m| rtt <= m) || min_rtt_expired {
                self.min_rtt = Some(rtt);
                self.min_rtt_stamp = now;
            }
        }
        if round_start && !sample.is_some_and(|s| s.app_limited) {
            self.check_pipe_filled();
        }
        self.check_drain(now);
        self.advance_cycle(now);
        self.check_probe_rtt(now, round_start, min_rtt_expired);
        self.update_window(acked);
    }

    fn check_pipe_filled(&mut self) {
        if self.pipe_filled {
            return;
        }
        let bandwidth = self.bandwidth.get();
        if bandwidth >= self.full_bandwidth * 1.25 {
            self.full_bandwidth = bandwidth;
            self.rounds_without_growth = 0;
            return;
        }
        self.rounds_without_growth += 1;
        if self.rounds_without_growth >= 3 {
            self.pipe_filled = true;
        }
    }

    fn check_drain(&mut self, now: Instant) {
        if self.mode == Mode::Startup && self.pipe_filled {
            self.mode = Mode::Drain;
        }
        if self.mode == Mode::Drain && self.in_flight <= self.bdp(1.0) {
            self.enter_probe_bandwidth(now);
        }
    }

    fn enter_probe_bandwidth(&mut self, now: Instant) {
        self.mode = Mode::ProbeBandwidth;
        // Start in a cruising phase, varied by the round so that flows desynchronise.
        self.cycle_index = 2 + (self.round % 6) as usize;
        self.cycle_start = now;
        self.loss_in_cycle = false;
    }

    fn advance_cycle(&mut self, now: Instant) {
        if self.mode != Mode::ProbeBandwidth {
            return;
        }
        let gain = CYCLE[self.cycle_index];
        let full_length = self
            .min_rtt
            .is_some_and(|m| now.saturating_duration_since(self.cycle_start) > m);
        let next = if gain > 1.0 {
            full_length && (self.loss_in_cycle || self.in_flight >= self.bdp(gain))
        } else if gain < 1.0 {
            full_length || self.in_flight <= self.bdp(1.0)
        } else {
            full_length
        };
        if next {
            self.cycle_index = (self.cycle_index + 1) % CYCLE.len();
            self.cycle_start = now;
            self.loss_in_cycle = false;
        }
    }

    fn check_probe_rtt(&mut self, now: Instant, round_start: bool, min_rtt_expired: bool) {
        if self.mode != Mode::ProbeRtt && min_rtt_expired {
            self.mode = Mode::ProbeRtt;
            self.window_before_probe_rtt = self.window;
            self.probe_rtt_done = None;
        }
        if self.mode != Mode::ProbeRtt {
            return;
        }
        match self.probe_rtt_done {
            None if self.in_flight <= self.probe_rtt_window() => {
                self.probe_rtt_done = Some(now + PROBE_RTT_TIME);
                self.probe_rtt_round_passed = false;
                self.next_round_delivered = self.delivery.delivered();
            }
            None => {}
            Some(done) => {
                self.probe_rtt_round_passed |= round_start;
                if self.probe_rtt_round_passed && now >= done {
                    self.min_rtt_stamp = now;
                    self.window = self.window.max(self.window_before_probe_rtt);
                    if self.pipe_filled {
                        self.enter_probe_bandwidth(now);
                    } else {
                        self.mode = Mode::Startup;
                    }
                }
            }
        }
    }

    fn update_window(&mut self, acked: usize) {
        let target = self.bdp(self.window_gain()) + MINIMUM_PACKETS * self.mss;
        if self.pipe_filled {
            self.window = (self.window + acked).min(target);
        } else if self.window < target
            || self.delivery.delivered() < (INITIAL_PACKETS * self.mss) as u64
        {
            self.window += acked;
        }
        self.window = self.window.clamp(self.min_window, MAXIMUM_BYTES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `c` a path of `rate` bytes per second and `rtt`, a packet of `mss` bytes in flight per
    /// slot of the window, acknowledged one RTT later, for `duration`; every `lose_every`th packet
    /// (when nonzero) is lost instead.
    fn run(c: &mut Congestion, t0: Instant, rate: f64, rtt: Duration, lose_every: u64) -> Instant {
        let mss = 1000;
        let gap = Duration::from_secs_f64(mss as f64 / rate);
        let mut in_flight: std::collections::VecDeque<(Instant, SendState, u64)> =
            Default::default();
        let mut now = t0;
        let mut next_free = t0;
        let mut n = 0u64;
        while now < t0 + Duration::from_secs(20) {
            while let Some(&(at, state, k)) = in_flight.front() {
                if at > now {
                    break;
                }
                in_flight.pop_front();
                if lose_every > 0 && k % lose_every == 0 {
                    c.on_lost(mss);
                    continue;
                }
                c.on_acked(at, mss);
                c.on_ack_event(at, mss, &state, Some(at - state.sent_time));
            }
            if c.can_send(mss) && c.pacing_delay(now, mss).is_none() {
                let state = c.on_sent(now, mss);
                // The bottleneck serves packets one `gap` apart; the reply comes back after `rtt`.
                next_free = next_free.max(now) + gap;
                in_flight.push_back((next_free + rtt, state, n));
                n += 1;
            } else {
                now += Duration::from_micros(100);
            }
        }
        now
    }

    #[test]
    fn random_loss_does_not_shrink_the_model() {
        let t0 = Instant::now();
        let rtt = Duration::from_millis(50);
        let mut clean = Congestion::new(t0, 1000, 4);
        run(&mut clean, t0, 1_000_000.0, rtt, 0);
        let mut lossy = Congestion::new(t0, 1000, 4);
        run(&mut lossy, t0, 1_000_000.0, rtt, 100);
        let (a, b) = (clean.bandwidth(), lossy.bandwidth());
        assert!(a > 900_000.0 && a < 1_300_000.0, "{a}");
        assert!(b > 0.8 * a, "1% loss: {b} vs {a}");
        assert!(lossy.window() > 50 * 1000, "{}", lossy.window());
    }

    #[test]
    fn the_minimum_window_is_a_floor() {
        let t0 = Instant::now();
        let c = Congestion::new(t0, 1000, 200);
        assert_eq!(c.window(), 200_000);
        let c = Congestion::new(t0, 1000, 1);
        assert_eq!(c.window(), INITIAL_PACKETS * 1000);
        assert_eq!(c.pacing_rate(), None, "nothing paced before an RTT sample");
    }
}
