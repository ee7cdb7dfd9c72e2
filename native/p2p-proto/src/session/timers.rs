//! The session's deadlines in one table: each [`Timer`] is armed at an instant or stopped, the driver
//! is told the earliest, and a timeout dispatches the ones that have passed.
//!
//! A timer that fires stays armed until the session moves or stops it: a passed keepalive keeps
//! asking for a PING until one is sent, a passed ACK deadline until an ACK is written.

use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Nothing received for the idle timeout: the session is dead. First, so that a dead session
    /// handles nothing else.
    Idle,
    /// The loss timer, or the probe timeout while ack-eliciting packets are in flight.
    LossDetection,
    /// Nothing ack-eliciting sent for the keepalive interval: send a PING.
    Keepalive,
    /// The path logic's next probe round, liveness check or retry.
    Path,
    /// Our delayed acknowledgement is due.
    Ack,
    /// Pacing held stream data back until now.
    Pacing,
    /// The handshake must have completed by now.
    Handshake,
    /// Initiator: HS1 is sent again.
    HandshakeResend,
    /// The grace for packets reordered across the peer's key update is over: its previous key goes.
    KeyDiscard,
}

impl Timer {
    const COUNT: usize = 9;
    /// Every timer, in the order a timeout handles them.
    pub const ALL: [Timer; Timer::COUNT] = [
        Timer::Idle,
        Timer::LossDetection,
        Timer::Keepalive,
        Timer::Path,
        Timer::Ack,
        Timer::Pacing,
        Timer::Handshake,
        Timer::HandshakeResend,
        Timer::KeyDiscard,
    ];

    /// Timers that end in sending a packet: without a path to send on they would only spin the
    /// driver.
    pub fn needs_path(self) -> bool {
        matches!(
            self,
            Timer::LossDetection | Timer::Keepalive | Timer::Ack | Timer::Pacing
        )
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct TimerTable {
    at: [Option<Instant>; Timer::COUNT],
}

impl TimerTable {
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer as usize] = Some(at);
    }

    /// Arms the timer at `at`, or stops it for `None`.
    pub fn set_or_stop(&mut self, timer: Timer, at: Option<Instant>) {
        self.at[timer as usize] = at;
    }

    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.at[timer as usize]
    }

    pub fn stop(&mut self, timer: Timer) {
        self.at[timer as usize] = None;
    }

    pub fn stop_all(&mut self) {
        *self = TimerTable::default();
    }

    /// Armed and at or before `now`.
    pub fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|t| now >= t)
    }

    /// The earliest armed timer among those `include` accepts.
    pub fn next_timeout(&self, include: impl Fn(Timer) -> bool) -> Option<Instant> {
        Timer::ALL
            .into_iter()
            .filter(|&t| include(t))
            .filter_map(|t| self.get(t))
            .min()
    }

    /// The timers expired at `now`, in [`Timer::ALL`] order (a snapshot: the caller may change the
    /// table while handling them).
    pub fn expired(&self, now: Instant) -> impl Iterator<Item = Timer> {
        let table = *self;
        Timer::ALL
            .into_iter()
            .filter(move |&t| table.is_expired(t, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    /// A table with each timer armed `ms` milliseconds after `t0`.
    fn table(t0: Instant, armed: &[(Timer, u64)]) -> TimerTable {
        let mut t = TimerTable::default();
        for &(timer, n) in armed {
            t.set(timer, ms(t0, n));
        }
        t
    }

    #[test]
    fn the_earliest_armed_timer_is_next() {
        let t0 = Instant::now();
        assert_eq!(TimerTable::default().next_timeout(|_| true), None);
        let mut t = table(
            t0,
            &[(Timer::Idle, 300), (Timer::Ack, 5), (Timer::Keepalive, 100)],
        );
        assert_eq!(t.next_timeout(|_| true), Some(ms(t0, 5)));
        t.stop(Timer::Ack);
        assert_eq!(t.get(Timer::Ack), None);
        assert_eq!(t.next_timeout(|_| true), Some(ms(t0, 100)));
        // Moving a timer later replaces its instant.
        t.set(Timer::Keepalive, ms(t0, 400));
        assert_eq!(t.next_timeout(|_| true), Some(ms(t0, 300)));
        t.set_or_stop(Timer::Idle, None);
        assert_eq!(t.next_timeout(|_| true), Some(ms(t0, 400)));
        t.stop_all();
        assert_eq!(t.next_timeout(|_| true), None);
    }

    #[test]
    fn timers_left_out_do_not_count() {
        let t0 = Instant::now();
        let t = table(
            t0,
            &[
                (Timer::Ack, 5),
                (Timer::LossDetection, 10),
                (Timer::Path, 50),
            ],
        );
        assert_eq!(t.next_timeout(|x| !x.needs_path()), Some(ms(t0, 50)));
        assert_eq!(t.next_timeout(|x| x == Timer::Handshake), None);
    }

    #[test]
    fn expired_lists_passed_timers_in_handling_order_and_keeps_them_armed() {
        let t0 = Instant::now();
        let mut t = table(
            t0,
            &[
                (Timer::Path, 20),
                (Timer::Idle, 20),
                (Timer::Keepalive, 10),
                (Timer::Ack, 30),
            ],
        );
        assert_eq!(t.expired(ms(t0, 9)).count(), 0);
        let due: Vec<Timer> = t.expired(ms(t0, 20)).collect();
        assert_eq!(due, [Timer::Idle, Timer::Keepalive, Timer::Path]);
        assert!(t.is_expired(Timer::Idle, ms(t0, 20)));
        assert!(!t.is_expired(Timer::Ack, ms(t0, 29)));
        // The snapshot is unaffected by changes made while handling it.
        let mut handled = Vec::new();
        for timer in t.expired(ms(t0, 20)) {
            t.stop_all();
            handled.push(timer);
        }
        assert_eq!(handled.len(), 3);
    }
}
