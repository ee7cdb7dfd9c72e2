//! Which address the session's packets go to: the relay (usable at once) or a direct path found by
//! probing the peer's candidates (PROTOCOL.md, "Paths, keepalive and dead-peer detection").
//!
//! A session is identified by its id, not by an address, so moving between paths never touches the
//! streams: this module only decides where datagrams go and when to probe.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Interval between PATH_CHALLENGE rounds while probing, and how long one probing burst lasts.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(200);
pub const PROBE_BURST: Duration = Duration::from_secs(5);
/// Nothing received on the direct path for this long: it is dead, fall back to the relay.
pub const DIRECT_DEAD_AFTER: Duration = Duration::from_millis(6500);
/// After a fallback (or a failed burst), how often the candidates are probed again.
pub const RETRY_EVERY: Duration = Duration::from_secs(10);
/// At most this many candidates are probed (a peer cannot make us spray packets everywhere).
const MAX_CANDIDATES: usize = 16;

/// Which way packets go, as the session reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Relayed,
    Direct(SocketAddr),
}

#[derive(Debug)]
struct Direct {
    addr: SocketAddr,
    last_received: Instant,
}

#[derive(Debug)]
pub struct Paths {
    relay: Option<SocketAddr>,
    candidates: Vec<(SocketAddr, [u8; 8])>,
    direct: Option<Direct>,
    /// Probing runs until this instant; the next round is due at `next_probe`.
    probe_until: Option<Instant>,
    next_probe: Instant,
    next_retry: Option<Instant>,
    /// Source of challenge tokens (the session seeds it from its random bytes).
    token_state: u64,
}

impl Paths {
    pub fn new(relay: Option<SocketAddr>, token_seed: u64, now: Instant) -> Paths {
        Paths {
            relay,
            candidates: Vec::new(),
            direct: None,
            probe_until: None,
            next_probe: now,
            next_retry: None,
            token_state: token_seed | 1,
        }
    }

    pub fn relay(&self) -> Option<SocketAddr> {
        self.relay
    }

    pub fn kind(&self) -> PathKind {
        match &self.direct {
            Some(d) => PathKind::Direct(d.addr),
            None => PathKind::Relayed,
        }
    }

    /// Where ordinary packets go now.
    pub fn active(&self) -> Option<SocketAddr> {
        self.direct.as_ref().map(|d| d.addr).or(self.relay)
    }

    fn next_token(&mut self) -> [u8; 8] {
        // xorshift64*: tokens only need to be unpredictable to an off-path spoofer for the few
        // seconds of a burst, and they travel inside authenticated packets.
        let mut x = self.token_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.token_state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_be_bytes()
    }

    /// Adds candidates (from the server's Punch or from an unexpected source) and starts a burst.
    pub fn add_candidates(&mut self, now: Instant, addrs: &[SocketAddr]) {
        for &a in addrs {
            if Some(a) == self.relay || a.port() == 0 || a.ip().is_unspecified() {
                continue;
            }
            if !self.candidates.iter().any(|(c, _)| *c == a)
                && self.candidates.len() < MAX_CANDIDATES
            {
                let token = self.next_token();
                self.candidates.push((a, token));
            }
        }
        if !self.candidates.is_empty() {
            self.start_burst(now);
        }
    }

    fn start_burst(&mut self, now: Instant) {
        self.probe_until = Some(now + PROBE_BURST);
        self.next_probe = now;
    }

    /// Challenges due now: (address, token) pairs to send a PATH_CHALLENGE to.
    pub fn due_probes(&mut self, now: Instant) -> Vec<(SocketAddr, [u8; 8])> {
        let Some(until) = self.probe_until else {
            return Vec::new();
        };
        if now >= until {
            self.probe_until = None;
            if self.direct.is_none() {
                self.next_retry = Some(now + RETRY_EVERY);
            }
            return Vec::new();
        }
        if now < self.next_probe {
            return Vec::new();
        }
        self.next_probe = now + PROBE_INTERVAL;
        self.candidates.clone()
    }

    /// A PATH_RESPONSE arrived from `from`. Returns the new path when it changed.
    pub fn on_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        token: [u8; 8],
    ) -> Option<PathKind> {
        if Some(from) == self.relay || !self.candidates.iter().any(|&(_, t)| t == token) {
            return None;
        }
        self.probe_until = None;
        self.next_retry = None;
        self.set_direct(now, from)
    }

    fn set_direct(&mut self, now: Instant, addr: SocketAddr) -> Option<PathKind> {
        let changed = self.direct.as_ref().map(|d| d.addr) != Some(addr);
        self.direct = Some(Direct {
            addr,
            last_received: now,
        });
        changed.then_some(PathKind::Direct(addr))
    }

    /// An authenticated packet arrived from `from`. Returns the new path when it changed (roaming: the
    /// peer's direct address moved). Without a direct path, a packet from a non-relay address means
    /// the peer talks to us directly: that address is probed at once (the peer may have validated a
    /// path we have not, and until we use it too, its direct path would see nothing come back).
    pub fn on_authenticated(&mut self, now: Instant, from: SocketAddr) -> Option<PathKind> {
        if Some(from) == self.relay {
            return None;
        }
        match &mut self.direct {
            Some(d) if d.addr == from => {
                d.last_received = now;
                None
            }
            // The peer's packets now come from a new address: it roamed (or its NAT remapped).
            Some(_) => self.set_direct(now, from),
            None => {
                // A new address is probed even during a burst (a symmetric NAT's fresh mapping
                // shows up this way); a known one only restarts probing when none is running.
                let known = self.candidates.iter().any(|(a, _)| *a == from);
                if !known || self.probe_until.is_none() {
                    self.add_candidates(now, &[from]);
                }
                None
            }
        }
    }

    /// Checks the direct path's liveness and the retry schedule. Returns the new path on a fallback.
    pub fn on_timer(&mut self, now: Instant) -> Option<PathKind> {
        let mut changed = None;
        if let Some(d) = &self.direct {
            if now.saturating_duration_since(d.last_received) >= DIRECT_DEAD_AFTER {
                let dead = d.addr;
                self.direct = None;
                // Keep the dead address as a candidate: the same path often comes back.
                if !self.candidates.iter().any(|(a, _)| *a == dead) {
                    let token = self.next_token();
                    self.candidates.push((dead, token));
                }
                self.next_retry = Some(now + RETRY_EVERY);
                changed = Some(PathKind::Relayed);
            }
        }
        if self.next_retry.is_some_and(|t| now >= t) {
            self.next_retry = None;
            if self.direct.is_none() && !self.candidates.is_empty() {
                self.start_burst(now);
            }
        }
        changed
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |x: Instant| t = Some(t.map_or(x, |y| y.min(x)));
        if let Some(until) = self.probe_until {
            consider(self.next_probe.min(until));
        }
        if let Some(d) = &self.direct {
            consider(d.last_received + DIRECT_DEAD_AFTER);
        }
        if let Some(r) = self.next_retry {
            consider(r);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    #[test]
    fn probe_response_moves_to_direct_and_silence_falls_back() {
        let t0 = Instant::now();
        let mut p = Paths::new(Some(addr(1)), 42, t0);
        assert_eq!(p.active(), Some(addr(1)));
        p.add_candidates(t0, &[addr(1), addr(2)]);
        let probes = p.due_probes(t0);
        assert_eq!(probes.len(), 1, "the relay is never a candidate");
        assert!(p.due_probes(t0).is_empty(), "one round per interval");
        let (a, token) = probes[0];
        assert_eq!(p.on_response(t0, a, [0; 8]), None, "wrong token");
        assert_eq!(p.on_response(t0, a, token), Some(PathKind::Direct(addr(2))));
        assert_eq!(p.active(), Some(addr(2)));
        let t1 = t0 + DIRECT_DEAD_AFTER;
        assert_eq!(p.on_timer(t1), Some(PathKind::Relayed));
        assert_eq!(p.active(), Some(addr(1)));
        // Retried after RETRY_EVERY.
        assert!(p.due_probes(t1).is_empty());
        p.on_timer(t1 + RETRY_EVERY);
        assert_eq!(p.due_probes(t1 + RETRY_EVERY).len(), 1);
    }

    #[test]
    fn roaming_updates_the_direct_address() {
        let t0 = Instant::now();
        let mut p = Paths::new(Some(addr(1)), 7, t0);
        p.add_candidates(t0, &[addr(2)]);
        let (a, token) = p.due_probes(t0)[0];
        p.on_response(t0, a, token);
        assert_eq!(
            p.on_authenticated(t0, addr(3)),
            Some(PathKind::Direct(addr(3)))
        );
        assert_eq!(p.on_authenticated(t0, addr(1)), None);
    }

    #[test]
    fn a_direct_packet_without_a_direct_path_starts_probing_its_source() {
        let t0 = Instant::now();
        let mut p = Paths::new(Some(addr(1)), 9, t0);
        p.add_candidates(t0, &[addr(2)]);
        assert_eq!(p.due_probes(t0).len(), 1);
        // The burst ends without an answer.
        let t1 = t0 + PROBE_BURST;
        assert!(p.due_probes(t1).is_empty());
        // The peer reaches us directly from a known candidate: probe it now, not in 10 s.
        assert_eq!(p.on_authenticated(t1, addr(2)), None);
        assert_eq!(p.due_probes(t1).len(), 1);
    }

    #[test]
    fn an_unknown_source_is_probed_even_during_a_burst() {
        let t0 = Instant::now();
        let mut p = Paths::new(Some(addr(1)), 11, t0);
        p.add_candidates(t0, &[addr(2)]);
        assert_eq!(p.due_probes(t0).len(), 1);
        // A symmetric NAT gave the peer a fresh port toward us: it shows up mid-burst.
        let t1 = t0 + Duration::from_millis(50);
        p.on_authenticated(t1, addr(3));
        let probed: Vec<_> = p.due_probes(t1).into_iter().map(|(a, _)| a).collect();
        assert_eq!(probed, vec![addr(2), addr(3)]);
    }
}
