//! Deterministic tests of whole sessions: two `Session`s joined by a simulated network with a
//! virtual clock, where loss, duplication, reordering, delay and blocked paths are chosen per test.

use super::stepped::Stepped;
use super::*;
use crate::wire::Role;

pub(super) const RELAY: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(9, 9, 9, 9),
    9,
));
const I_ADDR: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(10, 0, 0, 1),
    1001,
));
const T_ADDR: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(10, 0, 0, 2),
    1002,
));

/// What the initiator's send buffer holds before each packet (see `Sim::transmit`).
const BATCHED_BEFORE: [u8; 37] = [0xa5; 37];

#[derive(Clone, Copy, Default)]
pub(super) struct Link {
    pub(super) loss: f64,
    pub(super) duplicate: f64,
    pub(super) delay: Duration,
    /// Extra random delay up to this, which reorders packets.
    pub(super) jitter: Duration,
    pub(super) block_direct: bool,
    /// Drop everything (a dead network).
    pub(super) cut: bool,
    /// Both sides sit behind a NAT without a WAN firewall: a direct packet that reaches a side before
    /// that side sent anything toward the peer spoils that side for good (its NAT keeps the packet as
    /// an unreplied entry and maps the side's own packets to another port, which the other NAT drops).
    pub(super) spoiling_nats: bool,
}

/// What the simulated NATs know, per side (initiator, target).
#[derive(Default)]
struct Nats {
    /// The side sent something toward the peer's address (an opening probe or a full packet).
    opened: [bool; 2],
    spoiled: [bool; 2],
    /// Opening probes sent (they leave the NAT and die on the way).
    openings: u64,
}

struct Datagram {
    at: Instant,
    to_target: bool,
    from: SocketAddr,
    data: Vec<u8>,
}

pub(super) struct Sim {
    pub(super) now: Instant,
    pub(super) i: Session,
    pub(super) t: Session,
    link: Link,
    queue: Vec<Datagram>,
    rng: u64,
    pub(super) i_events: Vec<Event>,
    pub(super) t_events: Vec<Event>,
    /// Datagrams that went through the relay / directly.
    relayed: u64,
    direct: u64,
    /// Every datagram put on the wire, for tamper and replay tests.
    pub(super) wire_log: Vec<(bool, SocketAddr, Vec<u8>)>,
    nats: Nats,
    /// Datagrams lost on purpose: (kind byte, n) loses the n-th (from 0) datagram of that kind.
    pub(super) lose: Vec<(u8, usize)>,
}

pub(super) fn config(role: Role, mode: EncryptionMode) -> SessionConfig {
    let mut c = SessionConfig::new(role, 0xfeed_beef, mode, [7; 32]);
    c.relay = Some(RELAY);
    c
}

impl Sim {
    pub(super) fn new(mode: EncryptionMode, link: Link) -> Sim {
        Sim::with(
            config(Role::Initiator, mode),
            config(Role::Target, mode),
            link,
        )
    }

    pub(super) fn with(ci: SessionConfig, ct: SessionConfig, link: Link) -> Sim {
        let now = Instant::now();
        let mut ri = [0u8; SESSION_RANDOM_LEN];
        let mut rt = [0u8; SESSION_RANDOM_LEN];
        for (k, b) in ri.iter_mut().enumerate() {
            *b = k as u8 ^ 0x5a;
        }
        for (k, b) in rt.iter_mut().enumerate() {
            *b = (k as u8).wrapping_mul(3) ^ 0xa5;
        }
        Sim {
            now,
            i: Session::new(ci, now, ri),
            t: Session::new(ct, now, rt),
            link,
            queue: Vec::new(),
            rng: 0x1234_5678_9abc_def1,
            i_events: Vec::new(),
            t_events: Vec::new(),
            relayed: 0,
            direct: 0,
            wire_log: Vec::new(),
            nats: Nats::default(),
            lose: Vec::new(),
        }
    }

    fn random(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Sends what both sessions want to send through the simulated network.
    pub(super) fn transmit(&mut self) {
        let mut buf = Vec::new();
        for from_initiator in [true, false] {
            let side = usize::from(!from_initiator);
            let s = if from_initiator {
                &mut self.i
            } else {
                &mut self.t
            };
            // Opening probes leave our NAT (opening it toward the peer) and expire before the peer's.
            while s.poll_opening(self.now, &mut buf).is_some() {
                self.nats.opened[side] = true;
                self.nats.openings += 1;
            }
            loop {
                let s = if from_initiator {
                    &mut self.i
                } else {
                    &mut self.t
                };
                // The initiator builds its packets as a batching driver does: appended, and sealed
                // in place, after datagrams already in the buffer.
                let dest = if from_initiator {
                    buf.clear();
                    buf.extend_from_slice(&BATCHED_BEFORE);
                    let dest = s.poll_transmit_append(self.now, &mut buf);
                    if dest.is_none() {
                        assert_eq!(
                            buf, BATCHED_BEFORE,
                            "nothing to send leaves the buffer as it was"
                        );
                    }
                    buf.drain(..BATCHED_BEFORE.len());
                    dest
                } else {
                    s.poll_transmit(self.now, &mut buf)
                };
                let Some(dest) = dest else {
                    break;
                };
                let (to_target, from, via_relay) = match (from_initiator, dest) {
                    (true, RELAY) => (true, RELAY, true),
                    (false, RELAY) => (false, RELAY, true),
                    (true, T_ADDR) => (true, I_ADDR, false),
                    (false, I_ADDR) => (false, T_ADDR, false),
                    _ => continue,
                };
                let nth_of_kind = self.wire_log.iter().filter(|d| d.2[1] == buf[1]).count();
                self.wire_log.push((to_target, from, buf.clone()));
                if self.lose.contains(&(buf[1], nth_of_kind)) {
                    continue;
                }
                if self.link.cut || (!via_relay && self.link.block_direct) {
                    continue;
                }
                if !via_relay && self.link.spoiling_nats {
                    let peer = 1 - side;
                    self.nats.opened[side] = true;
                    if !self.nats.opened[peer] {
                        self.nats.spoiled[peer] = true;
                    }
                    if self.nats.spoiled[peer] || self.nats.spoiled[side] {
                        continue;
                    }
                }
                if via_relay {
                    self.relayed += 1;
                } else {
                    self.direct += 1;
                }
                let copies = if self.random() < self.link.duplicate {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    if self.random() < self.link.loss {
                        continue;
                    }
                    let jitter = self.link.jitter.mul_f64(self.random());
                    let at = self.now + self.link.delay + jitter;
                    self.queue.push(Datagram {
                        at,
                        to_target,
                        from,
                        data: buf.clone(),
                    });
                }
            }
        }
        while let Some(e) = self.i.poll_event() {
            self.i_events.push(e);
        }
        while let Some(e) = self.t.poll_event() {
            self.t_events.push(e);
        }
    }

    pub(super) fn connect(&mut self) {
        assert!(
            self.run_until(Duration::from_secs(10), |s| s.i.is_connected()
                && s.t.is_connected())
        );
        assert!(self.i_events.contains(&Event::Connected));
        assert!(self.t_events.contains(&Event::Connected));
    }
}

impl Stepped for Sim {
    fn now(&self) -> Instant {
        self.now
    }

    /// Advances the clock to the next delivery or timer and handles it.
    fn step(&mut self) {
        self.transmit();
        let mut next = self.queue.iter().map(|d| d.at).min();
        for t in [self.i.poll_timeout(), self.t.poll_timeout()]
            .into_iter()
            .flatten()
        {
            next = Some(next.map_or(t, |n: Instant| n.min(t)));
        }
        let next = next.unwrap_or(self.now + Duration::from_millis(100));
        self.now = self.now.max(next);
        let now = self.now;
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|d| d.at <= now);
        self.queue = rest;
        for d in due {
            let s = if d.to_target {
                &mut self.t
            } else {
                &mut self.i
            };
            s.handle_datagram(now, d.from, &d.data);
        }
        for s in [&mut self.i, &mut self.t] {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
        }
        self.transmit();
    }
}

pub(super) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|k| (k as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// Writes as much of `data[*sent..]` as the stream takes, finishing it at the end.
pub(super) fn push(s: &mut Session, id: StreamId, data: &[u8], sent: &mut usize) {
    if *sent == usize::MAX {
        return;
    }
    while *sent < data.len() {
        match s.write(id, &data[*sent..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => *sent += n,
        }
    }
    s.finish(id).unwrap();
    *sent = usize::MAX;
}

/// Reads what is there; true once the FIN was read.
pub(super) fn pull(s: &mut Session, id: StreamId, out: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(id, &mut buf) {
            Ok(ReadResult::Data(n)) => out.extend_from_slice(&buf[..n]),
            Ok(ReadResult::Fin) => return true,
            Ok(ReadResult::Blocked) | Err(_) => return false,
        }
    }
}

/// Sends `data` from the initiator on stream `id` until the target has read it all and the FIN;
/// false when that took longer than `limit`.
fn upload(sim: &mut Sim, id: StreamId, data: &[u8], limit: Duration) -> bool {
    let (mut sent, mut got) = (0, Vec::new());
    sim.run_until(limit, |s| {
        push(&mut s.i, id, data, &mut sent);
        s.transmit();
        pull(&mut s.t, id, &mut got)
    })
}

/// One stream each way: `len` bytes up, then the target echoes them back reversed-seeded; checks both.
pub(super) fn exchange(sim: &mut Sim, len: usize, limit: Duration) {
    sim.connect();
    let id = sim.i.open_stream().unwrap();
    let up = pattern(len, 1);
    let down = pattern(len, 2);
    let (mut up_sent, mut down_sent) = (0usize, 0usize);
    let (mut got_up, mut got_down) = (Vec::new(), Vec::new());
    let (mut fin_up, mut fin_down) = (false, false);
    let ok = sim.run_until(limit, |s| {
        push(&mut s.i, id, &up, &mut up_sent);
        if s.t_events.contains(&Event::StreamOpened(id)) {
            if !fin_up {
                fin_up = pull(&mut s.t, id, &mut got_up);
            }
            push(&mut s.t, id, &down, &mut down_sent);
        }
        if !fin_down {
            fin_down = pull(&mut s.i, id, &mut got_down);
        }
        s.transmit();
        fin_up
            && fin_down
            && s.i_events.contains(&Event::StreamClosed(id))
            && s.t_events.contains(&Event::StreamClosed(id))
    });
    assert!(
        ok,
        "transfer did not finish: up {} / down {} of {len}",
        got_up.len(),
        got_down.len()
    );
    assert!(got_up == up, "upload corrupted");
    assert!(got_down == down, "download corrupted");
    assert_eq!(sim.i.stats().streams_open, 0);
    assert_eq!(sim.t.stats().streams_open, 0);
}

const MODES: [EncryptionMode; 4] = [
    EncryptionMode::None,
    EncryptionMode::Rc4,
    EncryptionMode::Xxtea,
    EncryptionMode::ChaCha20Poly1305,
];

#[test]
fn a_stream_carries_data_both_ways_in_every_mode() {
    for mode in MODES {
        let mut sim = Sim::new(
            mode,
            Link {
                delay: Duration::from_millis(10),
                ..Link::default()
            },
        );
        exchange(&mut sim, 300_000, Duration::from_secs(30));
        assert_eq!(sim.i.stats().packets_dropped, 0, "{mode:?}");
    }
}

#[test]
fn loss_duplication_and_reordering_do_not_corrupt_the_stream() {
    for mode in MODES {
        let link = Link {
            loss: 0.05,
            duplicate: 0.05,
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(15),
            ..Link::default()
        };
        let mut sim = Sim::new(mode, link);
        exchange(&mut sim, 1_000_000, Duration::from_secs(120));
        assert!(
            sim.i.stats().packets_lost > 0,
            "{mode:?}: loss was simulated, so some must be declared lost"
        );
    }
}

#[test]
fn heavy_loss_still_completes() {
    let link = Link {
        loss: 0.3,
        delay: Duration::from_millis(5),
        ..Link::default()
    };
    let mut sim = Sim::new(EncryptionMode::ChaCha20Poly1305, link);
    exchange(&mut sim, 200_000, Duration::from_secs(300));
}

#[test]
fn many_streams_are_independent_and_half_close_works() {
    let mut sim = Sim::new(
        EncryptionMode::ChaCha20Poly1305,
        Link {
            delay: Duration::from_millis(5),
            ..Link::default()
        },
    );
    sim.connect();
    let ids: Vec<_> = (0..6).map(|_| sim.i.open_stream().unwrap()).collect();
    // The initiator sends a request and half-closes; the target answers after reading the FIN.
    let mut sent = [0usize; 6];
    let mut answered = [0usize; 6];
    let mut requests = vec![Vec::new(); 6];
    let mut req_done = [false; 6];
    let mut replies = vec![Vec::new(); 6];
    let mut reply_done = [false; 6];
    let ok = sim.run_until(Duration::from_secs(30), |s| {
        for (k, &id) in ids.iter().enumerate() {
            let req = pattern(1000 * (k + 1), k as u8);
            push(&mut s.i, id, &req, &mut sent[k]);
            if s.t_events.contains(&Event::StreamOpened(id)) {
                if !req_done[k] {
                    req_done[k] = pull(&mut s.t, id, &mut requests[k]);
                }
                if req_done[k] {
                    let rep = pattern(50_000 + k, 100 + k as u8);
                    push(&mut s.t, id, &rep, &mut answered[k]);
                }
            }
            if !reply_done[k] {
                reply_done[k] = pull(&mut s.i, id, &mut replies[k]);
            }
        }
        s.transmit();
        reply_done.iter().all(|d| *d)
    });
    assert!(ok, "not every stream finished");
    for k in 0..6 {
        assert_eq!(requests[k], pattern(1000 * (k + 1), k as u8));
        assert_eq!(replies[k], pattern(50_000 + k, 100 + k as u8));
    }
}

#[test]
fn tampered_replayed_and_foreign_packets_are_dropped_and_counted() {
    for mode in [
        EncryptionMode::Rc4,
        EncryptionMode::Xxtea,
        EncryptionMode::ChaCha20Poly1305,
    ] {
        let mut sim = Sim::new(mode, Link::default());
        exchange(&mut sim, 10_000, Duration::from_secs(10));
        let data_packets: Vec<_> = sim
            .wire_log
            .iter()
            .filter(|(to_t, _, d)| {
                *to_t && d.len() > 40 && d[1] == Kind::Data(Role::Initiator).to_byte()
            })
            .cloned()
            .collect();
        let before = sim.t.stats();
        let now = sim.now;
        let (_, from, original) = data_packets[0].clone();
        // Replay.
        sim.t.handle_datagram(now, from, &original);
        // Bit flip in the payload, and in the header (authenticated as associated data).
        let mut flipped = original.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        sim.t.handle_datagram(now, from, &flipped);
        let mut header_flip = original.clone();
        header_flip[12] ^= 0x80;
        sim.t.handle_datagram(now, from, &header_flip);
        // Truncated, wrong session id, garbage.
        sim.t.handle_datagram(now, from, &original[..20]);
        let mut other = original.clone();
        other[3] ^= 1;
        sim.t.handle_datagram(now, from, &other);
        sim.t.handle_datagram(now, from, &[1, 0x11, 0, 0]);
        let after = sim.t.stats();
        assert_eq!(
            after.packets_dropped - before.packets_dropped,
            6,
            "{mode:?}"
        );
        assert_eq!(
            after.bytes_received, before.bytes_received,
            "{mode:?}: nothing delivered"
        );
        assert!(sim.t.is_connected(), "{mode:?}: session unharmed");
    }
}

#[test]
fn wrong_session_secret_never_connects() {
    let ci = config(Role::Initiator, EncryptionMode::ChaCha20Poly1305);
    let mut ct = config(Role::Target, EncryptionMode::ChaCha20Poly1305);
    ct.session_secret = [8; 32];
    let mut sim = Sim::with(ci, ct, Link::default());
    sim.run_until(Duration::from_secs(20), |s| s.i.is_closed());
    assert!(!sim.t.is_connected());
    assert!(sim
        .i_events
        .contains(&Event::Closed(CloseReason::HandshakeTimeout)));
    assert!(sim.t.stats().packets_dropped > 0);
}

#[test]
fn a_dead_peer_is_detected_by_the_idle_timeout() {
    let mut sim = Sim::new(EncryptionMode::ChaCha20Poly1305, Link::default());
    sim.connect();
    let cut_at = sim.now;
    sim.link.cut = true;
    assert!(sim.run_until(Duration::from_secs(60), |s| s.i.is_closed()));
    assert!(sim
        .i_events
        .contains(&Event::Closed(CloseReason::IdleTimeout)));
    let took = sim.now - cut_at;
    assert!(
        took >= Duration::from_secs(19) && took <= Duration::from_secs(21),
        "{took:?}"
    );
}

#[test]
fn peer_silence_grows_while_its_packets_are_lost_and_ends_when_they_flow_again() {
    let mut sim = Sim::new(EncryptionMode::ChaCha20Poly1305, Link::default());
    sim.connect();
    // Idle but alive: keepalives (every 2 s from each side) keep the silence under their interval.
    sim.run_until(Duration::from_secs(10), |s| {
        assert!(
            s.i.stats_at(s.now).peer_silent <= Duration::from_millis(2100),
            "{:?}",
            s.i.stats_at(s.now).peer_silent
        );
        false
    });
    assert_eq!(sim.i.stats().peer_silent, Duration::ZERO);

    sim.link.cut = true;
    let cut_at = sim.now;
    sim.run_until(Duration::from_secs(8), |_| false);
    let silent = sim.i.stats_at(sim.now).peer_silent;
    assert!(
        silent >= sim.now - cut_at - Duration::from_millis(2100),
        "{silent:?}"
    );
    assert!(silent >= Duration::from_secs(6), "{silent:?}");
    // The figure is the driver's clock minus the last reception: it keeps growing between events.
    let later = sim.now + Duration::from_secs(1);
    assert_eq!(
        sim.i.stats_at(later).peer_silent,
        silent + Duration::from_secs(1)
    );
    // A clock behind the last reception saturates at zero.
    assert_eq!(
        sim.i.stats_at(cut_at - Duration::from_secs(5)).peer_silent,
        Duration::ZERO
    );
    assert!(sim.i.is_connected() && sim.t.is_connected());

    sim.link.cut = false;
    assert!(
        sim.run_until(Duration::from_secs(5), |s| s.i.stats_at(s.now).peer_silent
            < Duration::from_millis(100)
            && s.t.stats_at(s.now).peer_silent < Duration::from_millis(100))
    );
    assert!(sim.i.is_connected() && sim.t.is_connected());
}

#[test]
fn keepalives_keep_an_idle_session_alive() {
    let mut sim = Sim::new(
        EncryptionMode::ChaCha20Poly1305,
        Link {
            delay: Duration::from_millis(30),
            ..Link::default()
        },
    );
    sim.connect();
    sim.run_until(Duration::from_secs(120), |_| false);
    assert!(sim.i.is_connected() && sim.t.is_connected());
    // Two keepalives a second at most (one per side per 2 s, plus their ACKs).
    assert!(
        sim.i.stats().datagrams_sent < 150,
        "{}",
        sim.i.stats().datagrams_sent
    );
}

#[test]
fn close_reaches_the_peer_with_its_reason() {
    let mut sim = Sim::new(EncryptionMode::Xxtea, Link::default());
    sim.connect();
    let now = sim.now;
    sim.i.close(now, 5, "bye");
    sim.run_until(Duration::from_secs(1), |s| s.t.is_closed());
    assert!(sim.t_events.contains(&Event::Closed(CloseReason::Remote {
        code: 5,
        text: "bye".into()
    })));
    assert!(sim.i.is_closed());
}

#[test]
fn reset_reaches_the_peer() {
    let mut sim = Sim::new(EncryptionMode::ChaCha20Poly1305, Link::default());
    sim.connect();
    let id = sim.i.open_stream().unwrap();
    sim.i.write(id, b"hello").unwrap();
    sim.run_until(Duration::from_secs(1), |s| {
        s.t_events.contains(&Event::StreamOpened(id))
    });
    sim.t.reset(id, 2);
    assert!(sim.run_until(Duration::from_secs(2), |s| s
        .i_events
        .contains(&Event::StreamReset(id, 2))));
    assert_eq!(
        sim.i.write(id, b"more"),
        Err(StreamError::UnknownStream(id))
    );
}

#[test]
fn punching_moves_to_direct_and_a_dead_direct_path_falls_back_to_the_relay() {
    let mut sim = Sim::new(
        EncryptionMode::ChaCha20Poly1305,
        Link {
            delay: Duration::from_millis(10),
            ..Link::default()
        },
    );
    sim.connect();
    let now = sim.now;
    sim.i.add_candidates(now, &[T_ADDR]);
    sim.t.add_candidates(now, &[I_ADDR]);
    assert!(sim.run_until(Duration::from_secs(3), |s| {
        s.i.path() == PathKind::Direct(T_ADDR) && s.t.path() == PathKind::Direct(I_ADDR)
    }));
    // Traffic now flows direct.
    let relayed = sim.relayed;
    let id = sim.i.open_stream().unwrap();
    let data = pattern(100_000, 4);
    assert!(upload(&mut sim, id, &data, Duration::from_secs(10)));
    assert!(sim.relayed - relayed < 5, "data went through the relay");
    // The direct path dies: both sides fall back within 6.5 s and the session survives.
    sim.link.block_direct = true;
    let died = sim.now;
    assert!(
        sim.run_until(Duration::from_secs(8), |s| s.i.path() == PathKind::Relayed
            && s.t.path() == PathKind::Relayed)
    );
    assert!(
        sim.now - died <= Duration::from_millis(6600),
        "{:?}",
        sim.now - died
    );
    assert!(sim.i.is_connected());
    // It comes back: the session returns to direct by itself.
    sim.link.block_direct = false;
    assert!(sim.run_until(Duration::from_secs(15), |s| s.i.path()
        == PathKind::Direct(T_ADDR)));
    assert!(sim.i.is_connected() && sim.t.is_connected());
}

#[test]
fn one_sided_punch_still_gives_a_stable_direct_path_on_both_sides() {
    let mut sim = Sim::new(
        EncryptionMode::ChaCha20Poly1305,
        Link {
            delay: Duration::from_millis(10),
            ..Link::default()
        },
    );
    sim.connect();
    let now = sim.now;
    // Only the initiator learns candidates (the target's Punch was lost). The target never opens, so
    // its PATH_OPENED never comes: the initiator's full probes follow after OPEN_WAIT, as with a peer
    // that predates two-step punching.
    sim.i.add_candidates(now, &[T_ADDR]);
    assert!(sim.run_until(Duration::from_secs(3), |s| {
        s.i.path() == PathKind::Direct(T_ADDR) && s.t.path() == PathKind::Direct(I_ADDR)
    }));
    assert!(sim.now - now >= paths::OPEN_WAIT, "{:?}", sim.now - now);
    // Idle for a minute: keepalives keep the direct path, it never falls back.
    let changes_before = sim
        .i_events
        .iter()
        .filter(|e| matches!(e, Event::PathChanged(_)))
        .count();
    sim.run_until(Duration::from_secs(60), |_| false);
    let changes_after = sim
        .i_events
        .iter()
        .filter(|e| matches!(e, Event::PathChanged(_)))
        .count();
    assert_eq!(changes_before, changes_after, "the path flapped while idle");
    assert_eq!(sim.t.path(), PathKind::Direct(I_ADDR));
}

/// Behind two NATs that keep unsolicited packets as conntrack entries: the first full-TTL packet
/// that reaches a side before it sent anything itself would spoil it. The two-step punch goes direct
/// whichever side learns the candidates first, and spoils neither.
#[test]
fn two_step_punching_goes_direct_through_spoiling_nats_whoever_learns_first() {
    for (late_initiator, late) in [(false, 0), (true, 300), (false, 300), (true, 1500)] {
        let mut sim = Sim::new(
            EncryptionMode::ChaCha20Poly1305,
            Link {
                delay: Duration::from_millis(10),
                spoiling_nats: true,
                ..Link::default()
            },
        );
        sim.connect();
        let early = sim.now;
        if late_initiator {
            sim.t.add_candidates(early, &[I_ADDR]);
        } else {
            sim.i.add_candidates(early, &[T_ADDR]);
        }
        sim.run_until(Duration::from_millis(late), |_| false);
        let now = sim.now;
        if late_initiator {
            sim.i.add_candidates(now, &[T_ADDR]);
        } else {
            sim.t.add_candidates(now, &[I_ADDR]);
        }
        let learnt = sim.now;
        assert!(
            sim.run_until(Duration::from_secs(3), |s| {
                s.i.path() == PathKind::Direct(T_ADDR) && s.t.path() == PathKind::Direct(I_ADDR)
            }),
            "late {} by {late} ms: still relayed, spoilt {:?}",
            if late_initiator {
                "initiator"
            } else {
                "target"
            },
            sim.nats.spoiled
        );
        assert!(
            sim.now - learnt < Duration::from_millis(500),
            "{:?}",
            sim.now - learnt
        );
        assert_eq!(sim.nats.spoiled, [false, false]);
        assert!(sim.nats.openings > 0);
    }
}
