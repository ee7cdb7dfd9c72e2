//! Which address the session's packets go to: the relay (usable at once) or a direct path found by
//! probing the peer's candidates (PROTOCOL.md, "Paths, keepalive and dead-peer detection").
//!
//! A session is identified by its id, not by an address, so moving between paths never touches the
//! streams: this module only decides where datagrams go and when to probe.
//!
//! Punching goes in two steps. A packet of ours that reaches the peer's NAT before the peer has sent
//! anything toward us can spoil the peer's side for good: a Linux NAT without a WAN firewall keeps it
//! as an unreplied conntrack entry whose tuple is the very mapping the peer's first packet to us needs,
//! so the NAT gives the peer's packets another public port, which our own NAT then filters, and every
//! later probe refreshes the stale entry. So a burst first sends *opening* probes, which the driver
//! sends with a low IP TTL ([`OPENING_TTL`]): enough to leave our own NAT (creating our mapping toward
//! the peer) and too short to reach the peer's. It tells the peer so through the relay (PATH_OPENED)
//! and sends full probes only once the peer's NAT is open toward us as well: the peer said so, or one
//! of its packets reached us directly, or [`OPEN_WAIT`] passed without a word (an older peer, which
//! probes at full TTL at once and never says PATH_OPENED).
//!
//! IPv6 is preferred: a global IPv6 path has no NAT mapping that can expire or move, only the home
//! router's stateful firewall, which the same two-step punch opens. When an IPv4 candidate answers first,
//! the path goes direct over IPv4 at once, and the burst goes on probing the IPv6 candidates alone; one
//! that answers takes over. On an IPv6 path, packets from the peer's IPv4 address do not move it back
//! (the peer follows once our IPv6 packets reach it).

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
/// IP TTL of the opening probes: one router (our NAT) forwards them, the next one (the first router
/// beyond it, at the ISP) drops them, long before the peer's NAT.
pub const OPENING_TTL: u8 = 2;
/// How long opening probes wait for the peer's word before full probes go anyway. Peers that say
/// nothing (older versions) probe at full TTL from the start, and a peer that never gets our
/// candidates never opens: neither should keep us waiting. A peer later than this may still find
/// its NAT spoilt (then the relay carries the session, as before).
pub const OPEN_WAIT: Duration = Duration::from_secs(2);

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

/// One path probe due now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub addr: SocketAddr,
    pub token: [u8; 8],
    /// An opening probe: to be sent with the IP TTL [`OPENING_TTL`].
    pub opening: bool,
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
    /// The peer's NAT lets our full probes in: it said it sent its opening probes (PATH_OPENED), or
    /// one of its packets reached us directly.
    peer_open: bool,
    /// This burst's opening probes went out first at this instant (waiting ends at + OPEN_WAIT).
    opened_at: Option<Instant>,
    /// PATH_OPENED owed to the peer: the number of its candidates we opened.
    announce: Option<u64>,
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
            peer_open: false,
            opened_at: None,
            announce: None,
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
            if self.probe_until.is_none() {
                // A new burst opens first (a running one keeps its state: new candidates then get
                // what the others get).
                self.opened_at = None;
            }
            self.start_burst(now);
        }
    }

    fn start_burst(&mut self, now: Instant) {
        self.probe_until = Some(now + PROBE_BURST);
        self.next_probe = now;
    }

    /// Challenges due now. Until the peer's NAT is open toward us (see the module's comment), each round
    /// sends opening probes to every candidate and owes the peer a PATH_OPENED
    /// ([`Paths::take_announcement`]) after them; then full probes.
    pub fn due_probes(&mut self, now: Instant) -> Vec<Probe> {
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
        let opened_at = *self.opened_at.get_or_insert(now);
        let opening = !self.peer_open && now < opened_at + OPEN_WAIT;
        // Already direct (over IPv4): only an IPv6 candidate can still improve the path.
        let only_ipv6 = self.direct.is_some();
        let probes: Vec<Probe> = self
            .candidates
            .iter()
            .filter(|(addr, _)| !only_ipv6 || addr.is_ipv6())
            .map(|&(addr, token)| Probe {
                addr,
                token,
                opening,
            })
            .collect();
        if opening && !probes.is_empty() {
            self.announce = Some(probes.len() as u64);
        }
        probes
    }

    /// The PATH_OPENED due after this round's opening probes (the count of candidates opened).
    pub fn take_announcement(&mut self) -> Option<u64> {
        self.announce.take()
    }

    /// The peer's PATH_OPENED: its NAT now lets our probes in. Without a direct path and a running
    /// burst (ours ended, or a retry is pending), probing starts now, together with the peer's.
    pub fn on_peer_opened(&mut self, now: Instant) {
        if self.direct.is_none() && self.probe_until.is_none() && !self.candidates.is_empty() {
            self.next_retry = None;
            self.start_fresh_burst(now);
        }
        self.note_peer_open(now);
    }

    /// The peer's NAT is open toward us: a burst waiting for that probes at full TTL at once.
    fn note_peer_open(&mut self, now: Instant) {
        if !self.peer_open && self.probe_until.is_some() {
            self.next_probe = now;
        }
        self.peer_open = true;
    }

    /// A burst after a pause (a retry, or after the direct path died): mappings on either side may be
    /// gone, so it opens again before probing at full TTL.
    fn start_fresh_burst(&mut self, now: Instant) {
        self.peer_open = false;
        self.opened_at = None;
        self.start_burst(now);
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
        if self.on_ipv6() && from.is_ipv4() {
            return None;
        }
        // An IPv4 answer while IPv6 candidates exist: the burst goes on for them (see the module's comment).
        let ipv6_may_follow = from.is_ipv4() && self.candidates.iter().any(|(a, _)| a.is_ipv6());
        if !ipv6_may_follow {
            self.probe_until = None;
        }
        self.next_retry = None;
        self.set_direct(now, from)
    }

    /// A PATH_RESPONSE from `from` answered a probe that went to no candidate (the hard-NAT spray,
    /// which guesses the peer's port): that address is the direct path now.
    pub fn on_validated(&mut self, now: Instant, from: SocketAddr) -> Option<PathKind> {
        if Some(from) == self.relay {
            return None;
        }
        self.probe_until = None;
        self.next_retry = None;
        self.set_direct(now, from)
    }

    /// The direct path runs over IPv6 (the preferred family).
    fn on_ipv6(&self) -> bool {
        self.direct.as_ref().is_some_and(|d| d.addr.is_ipv6())
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
        // The peer's packet came in directly: its NAT is open toward us.
        self.note_peer_open(now);
        match &mut self.direct {
            Some(d) if d.addr == from => {
                d.last_received = now;
                None
            }
            // The peer still sends over IPv4 while we are on IPv6: it follows once our packets reach it.
            Some(d) if d.addr.is_ipv6() && from.is_ipv4() => None,
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
                self.peer_open = false;
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
                self.start_fresh_burst(now);
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
        let Probe { addr: a, token, .. } = probes[0];
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
        let Probe { addr: a, token, .. } = p.due_probes(t0)[0];
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
        let probed: Vec<_> = p.due_probes(t1).into_iter().map(|pr| pr.addr).collect();
        assert_eq!(probed, vec![addr(2), addr(3)]);
    }

    fn v6(p: u16) -> SocketAddr {
        SocketAddr::from(([0x2001, 0xdb8, 5, 0, 0, 0, 0, 2], p))
    }

    fn answer(p: &mut Paths, now: Instant, probes: &[Probe], to: SocketAddr) -> Option<PathKind> {
        let probe = probes.iter().find(|pr| pr.addr == to).expect("probed");
        p.on_response(now, to, probe.token)
    }

    #[test]
    fn an_ipv4_answer_goes_direct_and_the_ipv6_candidates_are_still_probed_and_preferred() {
        let t0 = Instant::now();
        let mut p = Paths::new(Some(addr(1)), 23, t0);
        p.add_candidates(t0, &[addr(2), v6(2)]);
        p.on_peer_opened(t0);
        let probes = p.due_probes(t0);
        assert_eq!(probes.len(), 2);
        assert_eq!(
            answer(&mut p, t0, &probes, addr(2)),
            Some(PathKind::Direct(addr(2)))
        );
        // Direct over IPv4 now; the next rounds probe the IPv6 candidate alone.
        let t1 = t0 + PROBE_INTERVAL;
        let later: Vec<_> = p.due_probes(t1).into_iter().map(|pr| pr.addr).collect();
        assert_eq!(later, vec![v6(2)]);
        assert_eq!(
            answer(&mut p, t1, &probes, v6(2)),
            Some(PathKind::Direct(v6(2)))
        );
        // IPv6 answered: the burst is over, and a late IPv4 answer does not take the path back.
        assert!(p.due_probes(t1 + PROBE_INTERVAL).is_empty());
        assert_eq!(answer(&mut p, t1, &probes, addr(2)), None);
        assert_eq!(p.active(), Some(v6(2)));
    }

    #[test]
    fn on_ipv6_the_peers_ipv4_packets_do_not_move_the_path_but_a_new_ipv6_address_does() {
        let t0 = Instant::now();
        let mut p = Paths::new(Some(addr(1)), 25, t0);
        p.add_candidates(t0, &[addr(2), v6(2)]);
        let probes = p.due_probes(t0);
        answer(&mut p, t0, &probes, v6(2));
        assert_eq!(p.on_authenticated(t0, addr(2)), None);
        assert_eq!(p.active(), Some(v6(2)));
        assert_eq!(
            p.on_authenticated(t0, v6(3)),
            Some(PathKind::Direct(v6(3))),
            "roaming within IPv6"
        );
        // From IPv4 the peer moves us to IPv6 as any roaming does.
        let mut q = Paths::new(Some(addr(1)), 27, t0);
        q.add_candidates(t0, &[addr(2)]);
        let probes = q.due_probes(t0);
        answer(&mut q, t0, &probes, addr(2));
        assert_eq!(q.on_authenticated(t0, v6(2)), Some(PathKind::Direct(v6(2))));
    }

    #[test]
    fn with_both_ipv4_nats_symmetric_the_ipv6_candidate_alone_answers_and_ends_the_burst() {
        let t0 = Instant::now();
        let mut p = Paths::new(Some(addr(1)), 29, t0);
        // The peer's reflexive IPv4 address (useless behind a symmetric NAT) and its global IPv6 one.
        p.add_candidates(t0, &[addr(40000), v6(41000)]);
        let probes = p.due_probes(t0);
        assert_eq!(
            answer(&mut p, t0, &probes, v6(41000)),
            Some(PathKind::Direct(v6(41000)))
        );
        assert!(p.due_probes(t0 + PROBE_INTERVAL).is_empty());
    }

    fn openings(probes: &[Probe]) -> Vec<bool> {
        probes.iter().map(|p| p.opening).collect()
    }

    #[test]
    fn a_burst_opens_and_announces_until_the_peer_is_open_then_probes_at_full_ttl() {
        let t0 = Instant::now();
        let mut p = Paths::new(Some(addr(1)), 13, t0);
        p.add_candidates(t0, &[addr(2), addr(3)]);
        assert_eq!(openings(&p.due_probes(t0)), vec![true, true]);
        assert_eq!(p.take_announcement(), Some(2));
        assert_eq!(p.take_announcement(), None, "one per round");
        // Every round repeats both while waiting.
        let t1 = t0 + PROBE_INTERVAL;
        assert_eq!(openings(&p.due_probes(t1)), vec![true, true]);
        assert_eq!(p.take_announcement(), Some(2));
        // The peer's PATH_OPENED: full probes at once, not at the next round.
        let t2 = t1 + Duration::from_millis(10);
        p.on_peer_opened(t2);
        assert_eq!(openings(&p.due_probes(t2)), vec![false, false]);
        assert_eq!(p.take_announcement(), None);
    }

    #[test]
    fn a_packet_from_the_peer_or_the_open_wait_ends_the_opening() {
        let t0 = Instant::now();
        let mut p = Paths::new(Some(addr(1)), 15, t0);
        p.add_candidates(t0, &[addr(2)]);
        assert_eq!(openings(&p.due_probes(t0)), vec![true]);
        p.on_authenticated(t0 + Duration::from_millis(5), addr(2));
        assert_eq!(
            openings(&p.due_probes(t0 + Duration::from_millis(5))),
            vec![false]
        );

        let mut q = Paths::new(Some(addr(1)), 17, t0);
        q.add_candidates(t0, &[addr(2)]);
        let mut t = t0;
        while t < t0 + OPEN_WAIT {
            assert_eq!(openings(&q.due_probes(t)), vec![true], "{:?}", t - t0);
            t += PROBE_INTERVAL;
        }
        assert_eq!(
            openings(&q.due_probes(t)),
            vec![false],
            "an older peer says nothing"
        );
    }

    #[test]
    fn the_peers_word_before_our_candidates_lets_the_first_round_probe_at_full_ttl() {
        let t0 = Instant::now();
        let mut p = Paths::new(Some(addr(1)), 19, t0);
        p.on_peer_opened(t0);
        let t1 = t0 + Duration::from_millis(300);
        p.add_candidates(t1, &[addr(2)]);
        assert_eq!(openings(&p.due_probes(t1)), vec![false]);
    }

    #[test]
    fn a_retry_opens_again_and_the_peers_word_starts_a_burst_with_it() {
        let t0 = Instant::now();
        let mut p = Paths::new(Some(addr(1)), 21, t0);
        p.add_candidates(t0, &[addr(2)]);
        p.on_peer_opened(t0);
        assert_eq!(openings(&p.due_probes(t0)), vec![false]);
        // The burst fails; the retry opens first again.
        let t1 = t0 + PROBE_BURST;
        assert!(p.due_probes(t1).is_empty());
        let t2 = t1 + RETRY_EVERY;
        p.on_timer(t2);
        assert_eq!(openings(&p.due_probes(t2)), vec![true]);
        // Between bursts, the peer's PATH_OPENED (its own retry) starts one at full TTL.
        let t3 = t2 + PROBE_BURST;
        assert!(p.due_probes(t3).is_empty());
        p.on_peer_opened(t3);
        assert_eq!(openings(&p.due_probes(t3)), vec![false]);
    }
}
