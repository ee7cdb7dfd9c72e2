//! When the session moves its keys on (mode 3, both sides announced key updates; PROTOCOL.md "Key
//! updates"). Each side updates its own direction, by time and by bytes sealed, and only after the
//! peer acknowledged a packet of the current phase: then the peer holds the current key, so at most
//! two keys of a direction are ever live (the current and the previous one, kept for reordered
//! packets until [`Timer::KeyDiscard`]). Packet numbers, the replay window and the streams are not
//! touched, so nothing pauses.

use std::time::{Duration, Instant};

use super::timers::Timer;
use super::Session;

/// When our direction moves to its next key: after `interval` or `bytes` sealed under the current
/// one, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RekeyLimits {
    pub interval: Duration,
    pub bytes: u64,
}

impl RekeyLimits {
    /// Every two minutes or gibibyte.
    pub const DEFAULT: RekeyLimits = RekeyLimits {
        interval: Duration::from_secs(120),
        bytes: 1 << 30,
    };
}

/// How long the peer's previous key stays after its update, in probe timeouts: long enough for any
/// packet reordered across the update, short enough that the key is soon gone.
const PREVIOUS_KEY_PTOS: u32 = 3;

/// Our direction's current key phase: when it began, what it sealed, whether the peer confirmed it.
#[derive(Debug)]
pub(super) struct KeyUpdates {
    limits: Option<RekeyLimits>,
    phase_started: Instant,
    /// The first packet number sealed in the current phase.
    phase_first_pn: u64,
    /// The peer acknowledged a packet of the current phase.
    phase_acked: bool,
    /// Datagram bytes sealed in the current phase.
    sealed: u64,
}

impl KeyUpdates {
    pub(super) fn new(limits: Option<RekeyLimits>, now: Instant) -> KeyUpdates {
        KeyUpdates {
            limits,
            phase_started: now,
            phase_first_pn: 0,
            phase_acked: false,
            sealed: 0,
        }
    }

    pub(super) fn on_sealed(&mut self, bytes: usize) {
        self.sealed += bytes as u64;
    }

    /// An authentic ACK whose largest number is `largest` (one we sent).
    pub(super) fn on_acked(&mut self, largest: u64) {
        if largest >= self.phase_first_pn {
            self.phase_acked = true;
        }
    }

    /// Our direction moved to its next key at `now`; its first packet will be `first_pn`.
    fn start_phase(&mut self, now: Instant, first_pn: u64) {
        self.phase_started = now;
        self.phase_first_pn = first_pn;
        self.phase_acked = false;
        self.sealed = 0;
    }

    fn is_due(&self, now: Instant) -> bool {
        self.limits.is_some_and(|l| {
            self.phase_acked
                && (self.sealed >= l.bytes
                    || now.saturating_duration_since(self.phase_started) >= l.interval)
        })
    }
}

impl Session {
    /// Before the next packet is built: moves our direction to its next key when the current one
    /// has lived or sealed enough and the peer has it.
    pub(super) fn update_keys_if_due(&mut self, now: Instant) {
        if !self.key_updates.is_due(now) {
            return;
        }
        let Some(protection) = self.protection.as_mut() else {
            return;
        };
        if protection.update_seal_key() {
            let first_pn = self.recovery.next_packet_number();
            self.key_updates.start_phase(now, first_pn);
        } else {
            // The peer did not announce key updates: never due again.
            self.key_updates.limits = None;
        }
    }

    /// The peer's first packet under its next key opened: its previous key stays for the packets
    /// reordered across the update, for a few probe timeouts.
    pub(super) fn on_peer_key_update(&mut self, now: Instant) {
        let grace = self.recovery.rtt().pto(0) * PREVIOUS_KEY_PTOS;
        self.timers.set(Timer::KeyDiscard, now + grace);
    }

    pub(super) fn discard_previous_peer_key(&mut self) {
        self.timers.stop(Timer::KeyDiscard);
        if let Some(p) = self.protection.as_mut() {
            p.discard_previous_open_key();
        }
    }
}
