//! Direct paths through a "hard" NAT: one whose mapping depends on the destination, with random
//! ports (endpoint-dependent mapping, a "symmetric" NAT), facing an "easy" one that keeps one public
//! port for every destination but filters (endpoint-independent mapping, address- and port-dependent
//! filtering: the common home router). Ordinary punching cannot work there: the hard side's packets
//! to the easy side leave from a port nobody can predict (the server saw another), and the easy
//! side's filter drops them because the easy side never sent to that port.
//!
//! The birthday-paradox way out (Tailscale, "How NAT traversal works"): the hard side opens many
//! mappings toward the easy side's public address, [`SPRAY_PORTS`] extra sockets each sending one
//! opening probe (low IP TTL, so it dies beyond the hard NAT and cannot spoil the easy side's NAT),
//! and the easy side sends path challenges from its one public port to random ports of the hard
//! side's public IP. A challenge that hits one of the open mappings reaches the hard side, which
//! answers from that socket; the easy side's own challenge opened its filter for exactly that
//! address, so the answer gets in and the path validates. With 256 of about 64 500 ports open, each
//! probe hits with p = 1/252: half of the attempts find one within 175 probes, 98% within 1000,
//! 99.7% within the 1500 sent at most.
//!
//! Both sides learn whose NAT is which from PATH_NAT frames through the relay; each side's own
//! mapping is measured by the driver (the server's probe answers from two addresses) and handed in
//! with [`Session::set_nat_mapping`](super::Session::set_nat_mapping). Nothing happens unless one
//! side is hard and the other easy: two hard sides stay relayed (neither port is predictable, so
//! the chance per probe is squared), two easy sides punch as usual.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Extra mappings the hard side opens toward the easy side.
pub const SPRAY_PORTS: u16 = 256;
/// Probes the easy side sends at most, per session.
pub const MAX_SPRAY_PROBES: u32 = 1500;
/// The easy side's probe rate: SPRAY_PER_ROUND every SPRAY_INTERVAL, 200 packets/s, so the 1500
/// take 7.5 s at most. Slow enough for any uplink and any NAT's table (a flood of new flows can make
/// a NAT drop mappings), fast enough that the median attempt succeeds in about a second.
pub const SPRAY_INTERVAL: Duration = Duration::from_millis(20);
pub const SPRAY_PER_ROUND: u32 = 4;
/// The hard side waits this long after learning that its peer is easy before it opens its ports:
/// peers that ordinary punching reaches (no NAT, a full cone, a port mapping) are direct by then
/// and never cost the extra sockets.
pub const OPEN_DELAY: Duration = Duration::from_secs(1);
/// How long the hard side keeps its extra ports open: the easy side's spray (7.5 s) plus the time
/// for PATH_NAT to reach it through the relay.
pub const PORTS_OPEN_FOR: Duration = Duration::from_secs(10);
/// PATH_NAT is repeated this often, this many times after each change of what it says.
pub const ANNOUNCE_EVERY: Duration = Duration::from_millis(250);
pub const ANNOUNCEMENTS: u32 = 8;
/// The ports a NAT picks at random from (Linux and most others stay above the well-known ones).
const SPRAY_PORT_MIN: u16 = 1024;

/// How a NAT maps one local address to public ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// One public address for every destination (or no NAT at all).
    EndpointIndependent,
    /// A new public port for each destination.
    EndpointDependent,
}

/// The hard side's request to the driver: open `count` extra sockets and send the opening probe
/// from each to `dest` with the IP TTL [`OPENING_TTL`](super::OPENING_TTL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortOpening {
    pub dest: SocketAddr,
    pub count: u16,
}

/// The hard side's extra ports, at most once per session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ports {
    Idle,
    /// To be opened at this instant.
    Due(Instant),
    Open {
        until: Instant,
    },
    Done,
}

#[derive(Debug)]
struct Spray {
    ip: IpAddr,
    sent: u32,
    next: Instant,
}

#[derive(Debug)]
pub struct HardNat {
    local: Option<Mapping>,
    peer: Option<Mapping>,
    /// The peer holds extra mappings open toward us (its last PATH_NAT said so).
    peer_ports: bool,
    /// The peer's public address as the server saw it (the first candidate of its Punch).
    peer_public: Option<SocketAddr>,
    announce_left: u32,
    next_announce: Instant,
    /// Hard side: the extra ports, and the request to open them waiting for the driver.
    ports: Ports,
    opening: Option<PortOpening>,
    /// Easy side: the running spray; `sprayed` once one started (once per session).
    spray: Option<Spray>,
    sprayed: bool,
    token: [u8; 8],
    rng: u64,
}

impl HardNat {
    /// `seed` drives the spray's ports and its challenge token.
    pub fn new(seed: u64, now: Instant) -> HardNat {
        let mut h = HardNat {
            local: None,
            peer: None,
            peer_ports: false,
            peer_public: None,
            announce_left: 0,
            next_announce: now,
            ports: Ports::Idle,
            opening: None,
            spray: None,
            sprayed: false,
            token: [0; 8],
            rng: seed | 1,
        };
        h.token = h.next_random().to_be_bytes();
        h
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*, as for the path tokens: the ports only need to be spread, not secret.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Our own NAT's mapping, measured by the driver. Announced to the peer from now on.
    pub fn set_local(&mut self, now: Instant, mapping: Mapping) {
        if self.local != Some(mapping) {
            self.local = Some(mapping);
            self.announce_again(now);
            self.advance(now);
        }
    }

    /// The peer's public address, from the server's Punch.
    pub fn set_peer_public(&mut self, now: Instant, addr: SocketAddr) {
        self.peer_public = Some(addr);
        self.advance(now);
    }

    /// The peer's PATH_NAT.
    pub fn on_peer_nat(&mut self, now: Instant, dependent: bool, ports: u64) {
        self.peer = Some(if dependent {
            Mapping::EndpointDependent
        } else {
            Mapping::EndpointIndependent
        });
        self.peer_ports = ports > 0;
        self.advance(now);
    }

    fn announce_again(&mut self, now: Instant) {
        self.announce_left = ANNOUNCEMENTS;
        self.next_announce = now;
    }

    /// Starts what the two mappings call for, once each per session.
    fn advance(&mut self, now: Instant) {
        let (Some(local), Some(peer), Some(public)) = (self.local, self.peer, self.peer_public)
        else {
            return;
        };
        use Mapping::*;
        match (local, peer) {
            (EndpointDependent, EndpointIndependent) if self.ports == Ports::Idle => {
                self.ports = Ports::Due(now + OPEN_DELAY);
            }
            (EndpointIndependent, EndpointDependent) if self.peer_ports && !self.sprayed => {
                self.sprayed = true;
                self.spray = Some(Spray {
                    ip: public.ip(),
                    sent: 0,
                    next: now,
                });
            }
            _ => {}
        }
    }

    /// A direct path exists: stop spraying, announcing and holding ports open.
    pub fn on_direct(&mut self) {
        self.spray = None;
        self.announce_left = 0;
        self.opening = None;
        self.ports = Ports::Done;
    }

    /// Hard side: opens the ports when due, closes them when their time is up.
    pub fn on_timer(&mut self, now: Instant) {
        match self.ports {
            Ports::Due(at) if now >= at => {
                if let Some(public) = self.peer_public {
                    self.opening = Some(PortOpening {
                        dest: public,
                        count: SPRAY_PORTS,
                    });
                }
                self.ports = Ports::Open {
                    until: now + PORTS_OPEN_FOR,
                };
                // Tell the peer at once that there is something to find.
                self.announce_again(now);
            }
            Ports::Open { until } if now >= until => self.ports = Ports::Done,
            _ => {}
        }
    }

    /// The driver's request to open the extra ports, once.
    pub fn take_opening(&mut self, now: Instant) -> Option<PortOpening> {
        self.on_timer(now);
        self.opening.take()
    }

    /// Whether the driver should keep the extra ports (all of them, until a path wins).
    pub fn ports_wanted(&self, now: Instant) -> bool {
        matches!(self.ports, Ports::Open { until } if now < until)
    }

    /// The PATH_NAT due now, as (dependent, ports).
    pub fn due_announcement(&mut self, now: Instant) -> Option<(bool, u64)> {
        self.on_timer(now);
        let local = self.local?;
        if self.announce_left == 0 || now < self.next_announce {
            return None;
        }
        self.announce_left -= 1;
        self.next_announce = now + ANNOUNCE_EVERY;
        let ports = if self.ports_wanted(now) {
            u64::from(SPRAY_PORTS)
        } else {
            0
        };
        Some((local == Mapping::EndpointDependent, ports))
    }

    /// Easy side: the spray probes due now (random ports of the peer's public IP), all with
    /// [`HardNat::token`].
    pub fn due_spray(&mut self, now: Instant) -> Vec<SocketAddr> {
        let Some(s) = &self.spray else {
            return Vec::new();
        };
        if now < s.next {
            return Vec::new();
        }
        let (ip, count) = (s.ip, SPRAY_PER_ROUND.min(MAX_SPRAY_PROBES - s.sent));
        let span = u64::from(u16::MAX - SPRAY_PORT_MIN) + 1;
        let out: Vec<SocketAddr> = (0..count)
            .map(|_| {
                let port = SPRAY_PORT_MIN + (self.next_random() % span) as u16;
                SocketAddr::new(ip, port)
            })
            .collect();
        if let Some(s) = &mut self.spray {
            s.sent += count;
            s.next = now + SPRAY_INTERVAL;
            if s.sent >= MAX_SPRAY_PROBES {
                self.spray = None;
            }
        }
        out
    }

    /// The challenge token of every spray probe.
    pub fn token(&self) -> [u8; 8] {
        self.token
    }

    /// Whether a PATH_RESPONSE answers one of our spray probes.
    pub fn is_spray_response(&self, token: [u8; 8]) -> bool {
        self.sprayed && token == self.token
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut consider = |x: Instant| t = Some(t.map_or(x, |y: Instant| y.min(x)));
        if self.local.is_some() && self.announce_left > 0 {
            consider(self.next_announce);
        }
        if let Some(s) = &self.spray {
            consider(s.next);
        }
        match self.ports {
            Ports::Due(at) => consider(at),
            Ports::Open { until } => consider(until),
            Ports::Idle | Ports::Done => {}
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(p: u16) -> SocketAddr {
        SocketAddr::from(([198, 18, 10, 7], p))
    }

    fn easy_side(seed: u64, t0: Instant) -> HardNat {
        let mut h = HardNat::new(seed, t0);
        h.set_local(t0, Mapping::EndpointIndependent);
        h.set_peer_public(t0, public(40000));
        h
    }

    /// Every spray probe from t0 on, polled every millisecond, with the instant it was due.
    fn all_spray(h: &mut HardNat, t0: Instant) -> Vec<(Duration, SocketAddr)> {
        let mut out = Vec::new();
        for ms in 0..12_000 {
            let now = t0 + Duration::from_millis(ms);
            out.extend(h.due_spray(now).into_iter().map(|a| (now - t0, a)));
        }
        out
    }

    #[test]
    fn the_hard_side_opens_its_ports_once_after_the_delay_and_says_so() {
        let t0 = Instant::now();
        let mut h = HardNat::new(5, t0);
        h.set_local(t0, Mapping::EndpointDependent);
        assert_eq!(h.due_announcement(t0), Some((true, 0)));
        h.set_peer_public(t0, public(4000));
        h.on_peer_nat(t0, false, 0);
        assert_eq!(
            h.take_opening(t0),
            None,
            "ordinary punching gets its chance first"
        );
        assert_eq!(h.next_deadline(), Some(t0 + ANNOUNCE_EVERY));
        let t1 = t0 + OPEN_DELAY;
        assert_eq!(
            h.take_opening(t1),
            Some(PortOpening {
                dest: public(4000),
                count: SPRAY_PORTS
            })
        );
        assert_eq!(h.take_opening(t1), None, "once");
        assert!(h.ports_wanted(t1));
        assert_eq!(h.due_announcement(t1), Some((true, u64::from(SPRAY_PORTS))));
        // A repeated PATH_NAT of the peer opens nothing more.
        h.on_peer_nat(t1, false, 0);
        let t2 = t1 + PORTS_OPEN_FOR;
        assert!(!h.ports_wanted(t2));
        h.on_timer(t2);
        assert_eq!(h.take_opening(t2 + OPEN_DELAY), None);
        let mut left = 0;
        while h.due_announcement(t2 + ANNOUNCE_EVERY * left).is_some() {
            left += 1;
        }
        assert!(left < ANNOUNCEMENTS, "announcing ends");
        assert_eq!(h.next_deadline(), None, "nothing left to wake up for");
    }

    #[test]
    fn a_direct_path_before_the_delay_keeps_the_ports_closed() {
        let t0 = Instant::now();
        let mut h = HardNat::new(5, t0);
        h.set_local(t0, Mapping::EndpointDependent);
        h.set_peer_public(t0, public(4000));
        h.on_peer_nat(t0, false, 0);
        h.on_direct();
        assert_eq!(h.take_opening(t0 + OPEN_DELAY), None);
        assert_eq!(h.due_announcement(t0 + OPEN_DELAY), None);
    }

    #[test]
    fn the_easy_side_sprays_a_bounded_paced_series_of_random_ports_of_the_peers_ip() {
        let t0 = Instant::now();
        let mut h = easy_side(77, t0);
        assert!(all_spray(&mut h, t0).is_empty(), "not before the peer asks");
        h.on_peer_nat(t0, true, u64::from(SPRAY_PORTS));
        let sent = all_spray(&mut h, t0);
        assert_eq!(sent.len() as u32, MAX_SPRAY_PROBES);
        assert!(sent
            .iter()
            .all(|(_, a)| a.ip() == public(0).ip() && a.port() >= SPRAY_PORT_MIN));
        // Never more than SPRAY_PER_ROUND per SPRAY_INTERVAL: at most 200 a second.
        for w in sent.windows(SPRAY_PER_ROUND as usize + 1) {
            assert!(w[SPRAY_PER_ROUND as usize].0 - w[0].0 >= SPRAY_INTERVAL);
        }
        let last = sent.last().unwrap().0;
        assert!(
            last < SPRAY_INTERVAL * (MAX_SPRAY_PROBES / SPRAY_PER_ROUND),
            "{last:?}"
        );
        // Spread over the whole range, not a few ports again and again.
        let mut ports: Vec<u16> = sent.iter().map(|(_, a)| a.port()).collect();
        ports.sort_unstable();
        ports.dedup();
        assert!(
            ports.len() as u32 > MAX_SPRAY_PROBES * 97 / 100,
            "{}",
            ports.len()
        );
        assert!(ports[0] < 5000 && *ports.last().unwrap() > 60000);
        // Once per session: the peer's repeated PATH_NAT starts nothing more.
        h.on_peer_nat(t0 + last, true, u64::from(SPRAY_PORTS));
        assert!(h.due_spray(t0 + last + SPRAY_INTERVAL).is_empty());
        // The same seed sprays the same ports (the schedule is deterministic).
        let mut again = easy_side(77, t0);
        again.on_peer_nat(t0, true, u64::from(SPRAY_PORTS));
        assert_eq!(all_spray(&mut again, t0), sent);
    }

    #[test]
    fn the_spray_stops_when_a_path_wins() {
        let t0 = Instant::now();
        let mut h = easy_side(3, t0);
        h.on_peer_nat(t0, true, 256);
        assert_eq!(h.due_spray(t0).len() as u32, SPRAY_PER_ROUND);
        assert!(h.is_spray_response(h.token()));
        h.on_direct();
        assert!(all_spray(&mut h, t0 + SPRAY_INTERVAL).is_empty());
        assert_eq!(h.next_deadline(), None);
    }

    #[test]
    fn only_an_easy_side_facing_a_hard_one_with_open_ports_sprays() {
        let t0 = Instant::now();
        let cases = [
            // (local, peer dependent, peer ports): nothing to find, both hard, both easy.
            (Mapping::EndpointIndependent, true, 0),
            (Mapping::EndpointDependent, true, 256),
            (Mapping::EndpointIndependent, false, 0),
        ];
        for (local, dependent, ports) in cases {
            let mut h = HardNat::new(9, t0);
            h.set_local(t0, local);
            h.set_peer_public(t0, public(4000));
            h.on_peer_nat(t0, dependent, ports);
            assert!(
                all_spray(&mut h, t0).is_empty(),
                "{local:?} {dependent} {ports}"
            );
            assert_eq!(h.take_opening(t0 + OPEN_DELAY), None);
            assert!(!h.is_spray_response(h.token()));
        }
        // Without the peer's public address (no Punch yet) nothing starts; with it, the spray does.
        let mut h = HardNat::new(9, t0);
        h.set_local(t0, Mapping::EndpointIndependent);
        h.on_peer_nat(t0, true, 256);
        assert!(h.due_spray(t0).is_empty());
        h.set_peer_public(t0, public(4000));
        assert_eq!(h.due_spray(t0).len() as u32, SPRAY_PER_ROUND);
    }

    /// The arithmetic behind the figures: a hard NAT that gave SPRAY_PORTS random ports, and the
    /// spray looking for any of them; over many seeds, at least 98% of attempts find one.
    #[test]
    fn the_spray_finds_one_of_the_open_ports_almost_always() {
        let t0 = Instant::now();
        let mut found = 0;
        let attempts = 400u64;
        for seed in 0..attempts {
            let mut nat = HardNat::new(seed * 7919 + 1, t0);
            let span = u64::from(u16::MAX - SPRAY_PORT_MIN) + 1;
            let open: std::collections::HashSet<u16> = (0..SPRAY_PORTS)
                .map(|_| SPRAY_PORT_MIN + (nat.next_random() % span) as u16)
                .collect();
            let mut h = easy_side(seed.wrapping_mul(0x9E37_79B9) ^ 0x5555, t0);
            h.on_peer_nat(t0, true, 256);
            if all_spray(&mut h, t0)
                .iter()
                .any(|(_, a)| open.contains(&a.port()))
            {
                found += 1;
            }
        }
        assert!(found * 100 >= attempts * 98, "{found}/{attempts}");
    }
}
