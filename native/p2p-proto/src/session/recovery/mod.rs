//! Loss recovery: the packets sent and not yet settled, what an acknowledgement settles, loss
//! detection (RFC 9002 §6), RTT estimation (RFC 9002 §5), the probe timeout, and the congestion
//! controller with its pacing ([`congestion`]). Pure bookkeeping over instants the session passes
//! in; what a settled packet carried goes back to the session, which owns the streams.

mod congestion;
mod delivery;
mod pacer;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub use congestion::Congestion;
use delivery::SendState;

use super::StreamId;
use crate::frame::AckFrame;

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

/// What a sent packet carried, so an acknowledgement or a loss can be applied to it.
#[derive(Debug)]
pub enum SentFrame {
    Stream {
        id: StreamId,
        offset: u64,
        len: usize,
        fin: bool,
    },
    MaxStreamData {
        id: StreamId,
    },
    Reset {
        id: StreamId,
        reason: u64,
    },
}

#[derive(Debug)]
struct SentPacket {
    time: Instant,
    size: usize,
    delivery: SendState,
    frames: Vec<SentFrame>,
}

/// What an acknowledgement or a recovery timeout settled, for the session to apply to its streams:
/// first the frames delivered, then those to send again in new packets.
#[derive(Debug, Default)]
pub struct Settled {
    pub acked: Vec<SentFrame>,
    pub lost: Vec<SentFrame>,
    /// Packets declared lost.
    pub lost_packets: u64,
    /// A probe timeout passed: an ack-eliciting packet must go out now.
    pub probe: bool,
}

/// The packet numbers we send, the ack-eliciting packets in flight, and the RTT and congestion
/// figures their acknowledgements and losses feed.
#[derive(Debug)]
pub struct Recovery {
    next_pn: u64,
    sent: BTreeMap<u64, SentPacket>,
    largest_acked: Option<u64>,
    /// When the earliest packet not yet lost by count would be lost by time.
    loss_time: Option<Instant>,
    pto_backoff: u32,
    last_eliciting_sent: Instant,
    rtt: RttEstimator,
    congestion: Congestion,
}

impl Recovery {
    /// `min_window_packets`: the congestion window's floor (see [`Congestion::new`]).
    pub fn new(now: Instant, mss: usize, min_window_packets: usize) -> Recovery {
        Recovery {
            next_pn: 0,
            sent: BTreeMap::new(),
            largest_acked: None,
            loss_time: None,
            pto_backoff: 0,
            last_eliciting_sent: now,
            rtt: RttEstimator::default(),
            congestion: Congestion::new(now, mss, min_window_packets),
        }
    }

    /// The number the next packet will take.
    pub fn next_packet_number(&self) -> u64 {
        self.next_pn
    }

    /// Takes the number for the next packet (every packet has one, ack-eliciting or not).
    pub fn take_packet_number(&mut self) -> u64 {
        let pn = self.next_pn;
        self.next_pn += 1;
        pn
    }

    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    pub fn congestion(&self) -> &Congestion {
        &self.congestion
    }

    pub fn congestion_mut(&mut self) -> &mut Congestion {
        &mut self.congestion
    }

    /// Ack-eliciting packets in flight.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.sent.len()
    }

    /// When the last ack-eliciting packet was sent (the session's start before any).
    pub fn last_eliciting_sent(&self) -> Instant {
        self.last_eliciting_sent
    }

    /// An ack-eliciting packet of `size` bytes carrying `frames` went out.
    pub fn on_sent(&mut self, pn: u64, now: Instant, size: usize, frames: Vec<SentFrame>) {
        let delivery = self.congestion.on_sent(now, size);
        self.sent.insert(
            pn,
            SentPacket {
                time: now,
                size,
                delivery,
                frames,
            },
        );
        self.last_eliciting_sent = now;
    }

    /// The loss timer, or the probe timeout while ack-eliciting packets are in flight.
    pub fn deadline(&self) -> Option<Instant> {
        if self.loss_time.is_some() {
            return self.loss_time;
        }
        if self.sent.is_empty() {
            return None;
        }
        Some(self.last_eliciting_sent + self.rtt.pto(self.pto_backoff))
    }

    /// An ACK frame arrived. One acknowledging a packet we never sent is ignored.
    pub fn on_ack(&mut self, now: Instant, ack: &AckFrame<'_>) -> Settled {
        let mut settled = Settled::default();
        if ack.largest >= self.next_pn {
            return settled;
        }
        let mut newly: Vec<(u64, SentPacket)> = Vec::new();
        for r in ack.ranges() {
            let pns: Vec<u64> = self.sent.range(r).map(|(&pn, _)| pn).collect();
            for pn in pns {
                if let Some(p) = self.sent.remove(&pn) {
                    newly.push((pn, p));
                }
            }
        }
        if newly.is_empty() {
            return settled;
        }
        let mut rtt_sample = None;
        if self.largest_acked.is_none_or(|l| ack.largest > l) {
            self.largest_acked = Some(ack.largest);
            if let Some((_, p)) = newly.iter().find(|(pn, _)| *pn == ack.largest) {
                let delay = Duration::from_micros(ack.delay_us.min(1_000_000));
                let sample = now.saturating_duration_since(p.time);
                self.rtt.update(sample, delay);
                rtt_sample = Some(sample);
            }
        }
        // Packet numbers grow with send time: the largest is the most recently sent.
        let newest = newly
            .iter()
            .max_by_key(|(pn, _)| *pn)
            .map(|(_, p)| p.delivery);
        let mut acked_bytes = 0;
        for (_, p) in newly {
            self.congestion.on_acked(now, p.size);
            acked_bytes += p.size;
            settled.acked.extend(p.frames);
        }
        if let Some(newest) = newest {
            self.congestion
                .on_ack_event(now, acked_bytes, &newest, rtt_sample);
        }
        self.pto_backoff = 0;
        self.detect_lost(now, &mut settled);
        settled
    }

    /// The deadline passed: declare lost what the loss timer was waiting for, or, when it was the
    /// probe timeout, send the oldest unacknowledged data again (a tail-loss probe) so the peer's
    /// answer restarts the clock. A probe is not a congestion signal.
    pub fn on_timeout(&mut self, now: Instant) -> Settled {
        let mut settled = Settled::default();
        if self.loss_time.is_some() {
            self.detect_lost(now, &mut settled);
            return settled;
        }
        self.pto_backoff += 1;
        if let Some((_, p)) = self.sent.pop_first() {
            self.congestion.on_lost(p.size);
            settled.lost = p.frames;
        }
        settled.probe = true;
        settled
    }

    /// Declares lost what a later acknowledgement or the RTT says is lost (RFC 9002 §6.1).
    fn detect_lost(&mut self, now: Instant, settled: &mut Settled) {
        self.loss_time = None;
        let Some(largest) = self.largest_acked else {
            return;
        };
        let delay = self.rtt.loss_delay();
        let mut lost = Vec::new();
        for (&pn, p) in self.sent.range(..largest) {
            if largest >= pn + 3 || now >= p.time + delay {
                lost.push(pn);
            } else {
                let t = p.time + delay;
                self.loss_time = Some(self.loss_time.map_or(t, |l: Instant| l.min(t)));
            }
        }
        for pn in lost {
            if let Some(p) = self.sent.remove(&pn) {
                settled.lost_packets += 1;
                self.congestion.on_lost(p.size);
                settled.lost.extend(p.frames);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{self, Frame};
    use std::ops::RangeInclusive;

    /// Feeds `recovery` an ACK of `ranges` (highest first) received at `now`.
    fn ack(
        recovery: &mut Recovery,
        now: Instant,
        ranges: &[RangeInclusive<u64>],
        delay_us: u64,
    ) -> Settled {
        let mut buf = Vec::new();
        assert!(frame::encode_ack(
            &mut buf,
            ranges.iter().cloned(),
            delay_us,
            64,
            1000
        ));
        let Some(Ok(Frame::Ack(a))) = frame::parse(&buf).next() else {
            panic!("not an ACK");
        };
        recovery.on_ack(now, &a)
    }

    /// Sends `n` packets of one stream frame each, 1 ms apart from `t0`.
    fn send(recovery: &mut Recovery, t0: Instant, n: u64) {
        for k in 0..n {
            let pn = recovery.take_packet_number();
            let frames = vec![SentFrame::Stream {
                id: 0,
                offset: pn * 1000,
                len: 1000,
                fin: false,
            }];
            recovery.on_sent(pn, t0 + Duration::from_millis(k), 1200, frames);
        }
    }

    #[test]
    fn an_ack_settles_its_packets_and_declares_lost_three_behind() {
        let t0 = Instant::now();
        let mut r = Recovery::new(t0, 1200, 0);
        send(&mut r, t0, 6);
        assert_eq!(r.in_flight(), 6);
        assert!(r.deadline().is_some(), "probe timeout while in flight");
        // Packets 4 and 5 arrive; 0 to 2 are three or more behind the largest, 3 is not.
        let s = ack(&mut r, t0 + Duration::from_millis(50), &[4..=5], 0);
        assert_eq!(s.acked.len(), 2);
        assert_eq!(s.lost_packets, 3);
        assert_eq!(s.lost.len(), 3);
        assert!(!s.probe);
        assert_eq!(r.in_flight(), 1);
        assert_eq!(r.rtt().smoothed(), Some(Duration::from_millis(45)));
        // 3 waits for the loss timer, which then declares it lost.
        let loss_time = r.deadline().unwrap();
        assert!(loss_time > t0 + Duration::from_millis(50));
        let s = r.on_timeout(loss_time);
        assert_eq!(s.lost_packets, 1);
        assert_eq!(r.in_flight(), 0);
        assert_eq!(r.deadline(), None);
    }

    #[test]
    fn an_ack_of_a_packet_never_sent_or_already_settled_changes_nothing() {
        let t0 = Instant::now();
        let mut r = Recovery::new(t0, 1200, 0);
        send(&mut r, t0, 2);
        let s = ack(&mut r, t0 + Duration::from_millis(10), &[0..=2], 0);
        assert!(s.acked.is_empty());
        assert_eq!(r.in_flight(), 2);
        assert_eq!(r.rtt().smoothed(), None);
        let s = ack(&mut r, t0 + Duration::from_millis(10), &[0..=1], 0);
        assert_eq!(s.acked.len(), 2);
        let s = ack(&mut r, t0 + Duration::from_millis(20), &[0..=1], 0);
        assert!(s.acked.is_empty() && s.lost.is_empty());
    }

    #[test]
    fn a_probe_timeout_resends_the_oldest_packet_and_backs_off() {
        let t0 = Instant::now();
        let mut r = Recovery::new(t0, 1200, 0);
        assert_eq!(r.deadline(), None);
        send(&mut r, t0, 2);
        let first = r.deadline().unwrap();
        assert_eq!(first, r.last_eliciting_sent() + r.rtt().pto(0));
        let s = r.on_timeout(first);
        assert!(s.probe);
        assert_eq!(s.lost_packets, 0, "a probe is not a loss");
        assert!(matches!(s.lost[..], [SentFrame::Stream { offset: 0, .. }]));
        assert_eq!(r.in_flight(), 1);
        let second = r.deadline().unwrap();
        assert_eq!(second, r.last_eliciting_sent() + r.rtt().pto(1));
        assert!(second > first);
        // An acknowledgement resets the backoff.
        ack(&mut r, second, &[1..=1], 0);
        assert_eq!(r.deadline(), None);
    }

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
}
