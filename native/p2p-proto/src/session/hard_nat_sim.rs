//! Whole sessions through a hard NAT, deterministically: an easy side behind an endpoint-independent,
//! port-restricted NAT, a hard side behind a NAT that gives every (local socket, destination) its own
//! random public port and lets in only what that destination sends, a relay between them, and the hard
//! side's driver (extra sockets, routes) played by the test.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use super::hard_nat::MAX_SPRAY_PROBES;
use super::*;
use crate::wire::Role;

const RELAY: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(9, 9, 9, 9)), 9);
const EASY_PUBLIC: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1)), 1001);
const HARD_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(2, 2, 2, 2));
/// The hard side's public address toward the relay, as the server tells the easy side.
const HARD_SEEN: SocketAddr = SocketAddr::new(HARD_IP, 40000);
const ONE_WAY: Duration = Duration::from_millis(15);

/// A NAT with endpoint-dependent mapping (random ports) and address-and-port-dependent filtering.
struct HardNatBox {
    rng: u64,
    ports: HashMap<(usize, SocketAddr), u16>,
    owners: HashMap<u16, (usize, SocketAddr)>,
}

impl HardNatBox {
    /// The public address a packet from local socket `socket` to `dest` leaves with.
    fn out(&mut self, socket: usize, dest: SocketAddr) -> SocketAddr {
        if let Some(&p) = self.ports.get(&(socket, dest)) {
            return SocketAddr::new(HARD_IP, p);
        }
        loop {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let p = 1024 + (self.rng % 64512) as u16;
            if let std::collections::hash_map::Entry::Vacant(e) = self.owners.entry(p) {
                e.insert((socket, dest));
                self.ports.insert((socket, dest), p);
                return SocketAddr::new(HARD_IP, p);
            }
        }
    }

    /// The local socket a packet from `from` to public port `port` reaches, if the filter lets it in.
    fn inbound(&self, from: SocketAddr, port: u16) -> Option<usize> {
        self.owners
            .get(&port)
            .filter(|(_, dest)| *dest == from)
            .map(|(socket, _)| *socket)
    }
}

struct Packet {
    at: Instant,
    to_hard: bool,
    from: SocketAddr,
    /// The hard side's local socket it arrives on (0: the session socket).
    socket: usize,
    data: Vec<u8>,
}

struct World {
    now: Instant,
    easy: Session,
    hard: Session,
    hard_nat: HardNatBox,
    /// Where the easy side's NAT has sent to (its filter lets these in).
    easy_sent_to: HashSet<SocketAddr>,
    extra_ports: usize,
    routes: HashMap<SocketAddr, usize>,
    queue: Vec<Packet>,
    /// Datagrams the easy side sent to guessed ports of the hard side.
    spray_probes: u64,
}

fn session(role: Role, seed: u8, now: Instant) -> Session {
    let mut cfg = SessionConfig::new(role, 0x4a4d, EncryptionMode::ChaCha20Poly1305, [3; 32]);
    cfg.relay = Some(RELAY);
    let mut random = [0u8; SESSION_RANDOM_LEN];
    for (k, b) in random.iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(seed) ^ seed;
    }
    Session::new(cfg, now, random)
}

impl World {
    fn new(seed: u8, hard: NatMapping) -> World {
        let now = Instant::now();
        World {
            now,
            easy: session(Role::Initiator, seed, now),
            hard: session(Role::Target, seed.wrapping_add(101), now),
            hard_nat: HardNatBox {
                rng: 0x9e37_79b9_7f4a_7c15 ^ u64::from(seed),
                ports: HashMap::new(),
                owners: HashMap::new(),
            },
            easy_sent_to: HashSet::new(),
            extra_ports: 0,
            routes: HashMap::new(),
            queue: Vec::new(),
            spray_probes: 0,
        }
        .with_mappings(hard)
    }

    fn with_mappings(mut self, hard: NatMapping) -> World {
        self.easy
            .set_nat_mapping(self.now, NatMapping::EndpointIndependent);
        self.hard.set_nat_mapping(self.now, hard);
        self
    }

    fn send(&mut self, to_hard: bool, from: SocketAddr, socket: usize, data: &[u8]) {
        self.queue.push(Packet {
            at: self.now + ONE_WAY,
            to_hard,
            from,
            socket,
            data: data.to_vec(),
        });
    }

    fn transmit(&mut self) {
        let now = self.now;
        let mut buf = Vec::new();
        while let Some(dest) = self.easy.poll_opening(now, &mut buf) {
            self.easy_sent_to.insert(dest);
        }
        while let Some(dest) = self.easy.poll_transmit(now, &mut buf) {
            if dest == RELAY {
                self.send(true, RELAY, 0, &buf);
                continue;
            }
            self.easy_sent_to.insert(dest);
            // Spray probes: to ports of the hard side that neither the server named nor a direct
            // path uses.
            if dest.ip() == HARD_IP && dest != HARD_SEEN && Some(dest) != direct(&self.easy) {
                self.spray_probes += 1;
            }
            if let Some(socket) = self.hard_nat.inbound(EASY_PUBLIC, dest.port()) {
                self.send(true, EASY_PUBLIC, socket, &buf);
            }
        }
        if let Some(o) = self.hard.poll_port_opening(now, &mut buf) {
            for k in 0..usize::from(o.count) {
                self.hard_nat.out(self.extra_ports + k + 1, o.dest);
            }
            self.extra_ports += usize::from(o.count);
        }
        while let Some(dest) = self.hard.poll_opening(now, &mut buf) {
            self.hard_nat.out(0, dest);
        }
        while let Some(dest) = self.hard.poll_transmit(now, &mut buf) {
            if dest == RELAY {
                self.send(false, RELAY, 0, &buf);
                continue;
            }
            let socket = self.routes.get(&dest).copied().unwrap_or(0);
            let src = self.hard_nat.out(socket, dest);
            if dest == EASY_PUBLIC && self.easy_sent_to.contains(&src) {
                self.send(false, src, 0, &buf);
            }
        }
    }

    fn step(&mut self) {
        self.transmit();
        let mut next = self.now + Duration::from_millis(100);
        for t in self.queue.iter().map(|p| p.at).chain(
            [self.easy.poll_timeout(), self.hard.poll_timeout()]
                .into_iter()
                .flatten(),
        ) {
            next = next.min(t);
        }
        self.now = self.now.max(next);
        let now = self.now;
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|p| p.at <= now);
        self.queue = rest;
        for p in due {
            if p.to_hard {
                let before = self.hard.stats().datagrams_received;
                self.hard.handle_datagram(now, p.from, &p.data);
                if p.socket > 0 && self.hard.stats().datagrams_received > before {
                    self.routes.insert(p.from, p.socket);
                }
            } else {
                self.easy.handle_datagram(now, p.from, &p.data);
            }
        }
        for s in [&mut self.easy, &mut self.hard] {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
            while s.poll_event().is_some() {}
        }
    }

    fn run(&mut self, limit: Duration, done: impl Fn(&World) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }

    fn punch(&mut self) {
        assert!(self.run(Duration::from_secs(5), |w| w.easy.is_connected()
            && w.hard.is_connected()));
        self.easy.add_candidates(self.now, &[HARD_SEEN]);
        self.hard.add_candidates(self.now, &[EASY_PUBLIC]);
    }
}

fn direct(s: &Session) -> Option<SocketAddr> {
    match s.path() {
        PathKind::Direct(a) => Some(a),
        PathKind::Relayed => None,
    }
}

#[test]
fn a_hard_nat_facing_an_easy_one_goes_direct_through_one_of_the_extra_ports() {
    for seed in [1u8, 2, 3] {
        let mut w = World::new(seed, NatMapping::EndpointDependent);
        w.punch();
        let t0 = w.now;
        assert!(
            w.run(Duration::from_secs(12), |w| direct(&w.easy).is_some()
                && direct(&w.hard).is_some()),
            "seed {seed}: still relayed after {} spray probes",
            w.spray_probes
        );
        // The easy side talks to the hard side's extra mapping, which the hard side uses in turn.
        let found = direct(&w.easy).unwrap();
        assert_ne!(found, HARD_SEEN);
        assert_eq!(direct(&w.hard), Some(EASY_PUBLIC));
        assert!(w.routes.get(&EASY_PUBLIC).is_some_and(|&k| k > 0));
        let sprayed = w.spray_probes;
        assert!(sprayed > 0 && sprayed <= u64::from(MAX_SPRAY_PROBES));
        let took = w.now - t0;
        // The spray stops with the direct path, and the extra ports are let go.
        w.run(Duration::from_secs(3), |_| false);
        assert_eq!(w.spray_probes, sprayed, "seed {seed}");
        assert!(!w.hard.wants_extra_ports(w.now));
        assert_eq!(direct(&w.easy), Some(found), "seed {seed}: the path holds");
        assert!(took < Duration::from_secs(10), "seed {seed}: {took:?}");
    }
}

#[test]
fn without_one_easy_and_one_hard_side_nothing_is_sprayed_or_opened() {
    let mut w = World::new(7, NatMapping::EndpointIndependent);
    // Both sides independent: ordinary punching, no spray, no extra ports.
    w.punch();
    w.run(Duration::from_secs(12), |_| false);
    assert_eq!((w.spray_probes, w.extra_ports), (0, 0));

    let mut w = World::new(8, NatMapping::EndpointDependent);
    w.easy.set_nat_mapping(w.now, NatMapping::EndpointDependent);
    w.punch();
    w.run(Duration::from_secs(12), |_| false);
    assert_eq!((w.spray_probes, w.extra_ports), (0, 0));
    assert_eq!(direct(&w.easy), None);
}
