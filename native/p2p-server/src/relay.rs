//! The UDP relay on `udp[0]`: binds each peer's address to its session with `RelayBind`, forwards session
//! datagrams between the two bound addresses, and tells both peers when to punch.
//!
//! The relay never looks inside a session datagram (it is end-to-end protected): it routes on the clear
//! header only. Datagrams are forwarded only *from* the address a valid `RelayBind` (with the session's
//! secret per-role token) bound, so nobody can inject into or hijack a relayed session by guessing its id.
//!
//! [`Relay`] is the state without I/O (tested directly); [`serve`] is the socket loop around it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use p2p_proto::control::ServerMsg;
use p2p_proto::wire::{self, Kind, RelayBind, Role};
use p2p_proto::Uid;
use serde::Serialize;
use subtle::ConstantTimeEq;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::probe;

/// The queue of messages to one control connection.
pub type ControlTx = mpsc::Sender<ServerMsg>;

/// How many finished sessions the statistics keep.
const CLOSED_KEPT: usize = 64;
/// Host candidates per peer beyond which the rest are ignored (a peer has a handful of interfaces).
pub const MAX_HOST_CANDIDATES: usize = 16;

#[derive(Clone, Copy, Debug)]
pub struct RelayLimits {
    pub max_sessions: usize,
    /// Sessions one user may hold at once: from the grant until a peer releases the session
    /// (`RelayRelease`) or, when its peers vanished, `idle_timeout` after its last datagram or bind.
    pub max_sessions_per_user: usize,
    /// A session with no datagram (data or bind keepalive) for this long is forgotten.
    pub idle_timeout: Duration,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            max_sessions: 4096,
            max_sessions_per_user: 64,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

fn idx(role: Role) -> usize {
    match role {
        Role::Initiator => 0,
        Role::Target => 1,
    }
}

const ROLES: [Role; 2] = [Role::Initiator, Role::Target];

/// What the broker knows about a session when it opens it on the relay. Arrays are indexed by role
/// (initiator first).
pub struct SessionSetup {
    pub uid: Uid,
    /// The initiator's user (database id): what `max_sessions_per_user` counts.
    pub user_id: i64,
    pub tokens: [[u8; 16]; 2],
    pub host_candidates: [Vec<SocketAddr>; 2],
    /// Where `Punch` goes for each peer.
    pub links: [ControlTx; 2],
}

struct RelaySession {
    setup: SessionSetup,
    bound: [Option<SocketAddr>; 2],
    created: Instant,
    last_seen: Instant,
    /// Bytes and datagrams forwarded, by sending role.
    bytes: [u64; 2],
    packets: [u64; 2],
    punches: u32,
}

impl RelaySession {
    /// Whether `bind` carries this session's token for its role (compared in constant time).
    fn token_matches(&self, bind: &RelayBind) -> bool {
        bool::from(bind.token.ct_eq(&self.setup.tokens[idx(bind.role)]))
    }
}

/// Garbage and traffic counters (cumulative since the start).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Counters {
    pub forwarded_packets: u64,
    pub forwarded_bytes: u64,
    pub binds: u64,
    pub probes: u64,
    /// Unparseable datagrams, unknown kinds, wrong version, oversized.
    pub garbage: u64,
    pub bad_token: u64,
    pub unknown_session: u64,
    /// A session datagram from an address that is not bound for its (session, role).
    pub unbound_source: u64,
    /// A session datagram whose other peer has not bound yet.
    pub peer_not_bound: u64,
    pub sessions_opened: u64,
    pub sessions_expired: u64,
    /// Sessions a peer said had ended (`RelayRelease`).
    pub sessions_released: u64,
    pub sessions_refused: u64,
    pub punches_sent: u64,
}

/// One session in the statistics.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionReport {
    /// 16 hex digits, as the peers log it.
    pub session_id: String,
    pub uid: String,
    pub initiator: Option<SocketAddr>,
    pub target: Option<SocketAddr>,
    pub forwarded_bytes: u64,
    pub forwarded_packets: u64,
    pub bytes_from_initiator: u64,
    pub bytes_from_target: u64,
    pub punches: u32,
    pub age_secs: u64,
}

impl SessionReport {
    /// The server log's one line for a session the relay forgot (`how`: "expired", "released by …").
    pub fn log_end(&self, how: &str) {
        log::info!(
            "relay session={} forwarded_bytes={} forwarded_packets={} {how}",
            self.session_id,
            self.forwarded_bytes,
            self.forwarded_packets
        );
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RelayStats {
    pub counters: Counters,
    pub active_sessions: usize,
    pub sessions: Vec<SessionReport>,
    /// The most recently expired or closed sessions, newest last.
    pub closed: Vec<SessionReport>,
}

/// What to do with a datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Drop,
    /// Answer the sender with these bytes.
    Reply(Vec<u8>),
    /// Send the datagram as is to this address.
    Forward(SocketAddr),
    /// A well-formed probe request: answered by the probe responder (maybe from another listener).
    Probe(wire::ProbeRequest),
}

/// The relay's sessions.
pub struct Relay {
    limits: RelayLimits,
    sessions: HashMap<u64, RelaySession>,
    /// Open sessions per user id (no entry at 0).
    per_user: HashMap<i64, usize>,
    counters: Counters,
    closed: VecDeque<SessionReport>,
}

/// Why a session could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// `max_sessions` are open.
    Full,
    /// The user holds `max_sessions_per_user` sessions.
    UserFull,
    /// The id is 0 or already taken: pick another.
    IdInUse,
}

impl Relay {
    pub fn new(limits: RelayLimits) -> Self {
        Relay {
            limits,
            sessions: HashMap::new(),
            per_user: HashMap::new(),
            counters: Counters::default(),
            closed: VecDeque::new(),
        }
    }

    /// Opens session `id` (random, chosen by the broker). 0 is never used, so a zeroed header cannot
    /// address a session. On error the setup is handed back (to retry under another id).
    pub fn open(
        &mut self,
        id: u64,
        mut setup: SessionSetup,
        now: Instant,
    ) -> Result<(), (OpenError, SessionSetup)> {
        if id == 0 || self.sessions.contains_key(&id) {
            return Err((OpenError::IdInUse, setup));
        }
        let user = setup.user_id;
        if self.user_sessions(user) >= self.limits.max_sessions_per_user
            || self.sessions.len() >= self.limits.max_sessions
        {
            // Idle sessions may be waiting for the next housekeeping tick: forget them first.
            self.expire(now);
            let refused = if self.user_sessions(user) >= self.limits.max_sessions_per_user {
                Some(OpenError::UserFull)
            } else if self.sessions.len() >= self.limits.max_sessions {
                Some(OpenError::Full)
            } else {
                None
            };
            if let Some(why) = refused {
                self.counters.sessions_refused += 1;
                return Err((why, setup));
            }
        }
        for c in setup.host_candidates.iter_mut() {
            c.retain(|a| a.port() != 0 && !a.ip().is_unspecified() && !a.ip().is_multicast());
            c.truncate(MAX_HOST_CANDIDATES);
        }
        self.sessions.insert(
            id,
            RelaySession {
                setup,
                bound: [None, None],
                created: now,
                last_seen: now,
                bytes: [0; 2],
                packets: [0; 2],
                punches: 0,
            },
        );
        *self.per_user.entry(user).or_default() += 1;
        self.counters.sessions_opened += 1;
        Ok(())
    }

    /// Sessions `user_id` holds now.
    pub fn user_sessions(&self, user_id: i64) -> usize {
        self.per_user.get(&user_id).copied().unwrap_or(0)
    }

    pub fn limits(&self) -> &RelayLimits {
        &self.limits
    }

    /// Removes a session and gives its place back to its user.
    fn remove(&mut self, id: u64) -> Option<RelaySession> {
        let s = self.sessions.remove(&id)?;
        if let std::collections::hash_map::Entry::Occupied(mut e) =
            self.per_user.entry(s.setup.user_id)
        {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
        Some(s)
    }

    /// Forgets a session that never started (the target refused or did not answer).
    pub fn close(&mut self, id: u64, now: Instant) {
        self.retire(id, now);
    }

    /// Every way a session ends (closed, released, expired): removed, its place given back to its
    /// user, and its report kept among the recently closed. Returns the report.
    fn retire(&mut self, id: u64, now: Instant) -> Option<SessionReport> {
        let s = self.remove(id)?;
        let r = report(id, &s, now);
        self.remember_closed(r.clone());
        Some(r)
    }

    pub fn contains(&self, id: u64) -> bool {
        self.sessions.contains_key(&id)
    }

    pub fn on_datagram(&mut self, from: SocketAddr, data: &[u8], now: Instant) -> Outcome {
        let kind = match wire::peek_kind(data) {
            Ok(k) if data.len() < probe::RECV_BUF => k,
            _ => {
                self.counters.garbage += 1;
                return Outcome::Drop;
            }
        };
        match kind {
            Kind::ProbeRequest => match wire::ProbeRequest::decode(data) {
                Ok(req) => {
                    self.counters.probes += 1;
                    Outcome::Probe(req)
                }
                Err(_) => {
                    self.counters.garbage += 1;
                    Outcome::Drop
                }
            },
            Kind::RelayBind => self.on_bind(from, data, now),
            Kind::RelayRelease => self.on_release(data, now),
            Kind::Data(role) | Kind::Handshake(role) => {
                self.on_session_datagram(from, role, data, now)
            }
            Kind::RelayBindAck | Kind::ProbeResponse => {
                self.counters.garbage += 1;
                Outcome::Drop
            }
        }
    }

    fn on_bind(&mut self, from: SocketAddr, data: &[u8], now: Instant) -> Outcome {
        let Ok(bind) = RelayBind::decode(data) else {
            self.counters.garbage += 1;
            return Outcome::Drop;
        };
        let Some(s) = self.sessions.get_mut(&bind.session_id) else {
            self.counters.unknown_session += 1;
            return Outcome::Drop;
        };
        if !s.token_matches(&bind) {
            self.counters.bad_token += 1;
            return Outcome::Drop;
        }
        let r = idx(bind.role);
        self.counters.binds += 1;
        s.last_seen = now;
        let changed = s.bound[r] != Some(from);
        if changed {
            if let Some(old) = s.bound[r] {
                log::info!(
                    "relay session={:016x} {:?} moved from {old} to {from}",
                    bind.session_id,
                    bind.role
                );
            }
            s.bound[r] = Some(from);
            // A first bind of both, or a peer that roamed: both peers need the (new) candidates.
            if s.bound.iter().all(Option::is_some) {
                self.counters.punches_sent += send_punches(bind.session_id, s);
            }
        }
        Outcome::Reply(wire::encode_relay_bind_ack(bind.session_id))
    }

    /// A peer's session ended: forget it now rather than after the idle timeout, so its user's place
    /// (sessions per user) is free at once. The token is the session's, so only a peer can do this.
    fn on_release(&mut self, data: &[u8], now: Instant) -> Outcome {
        let Ok(release) = RelayBind::decode(data) else {
            self.counters.garbage += 1;
            return Outcome::Drop;
        };
        let Some(s) = self.sessions.get(&release.session_id) else {
            // Peers send a release twice (it may be lost): the second finds nothing.
            return Outcome::Drop;
        };
        if !s.token_matches(&release) {
            self.counters.bad_token += 1;
            return Outcome::Drop;
        }
        if let Some(r) = self.retire(release.session_id, now) {
            r.log_end(&format!("released by the {:?}", release.role));
            self.counters.sessions_released += 1;
        }
        Outcome::Drop
    }

    fn on_session_datagram(
        &mut self,
        from: SocketAddr,
        role: Role,
        data: &[u8],
        now: Instant,
    ) -> Outcome {
        let Some(id) = wire::peek_session_id(data) else {
            self.counters.garbage += 1;
            return Outcome::Drop;
        };
        let Some(s) = self.sessions.get_mut(&id) else {
            self.counters.unknown_session += 1;
            return Outcome::Drop;
        };
        let r = idx(role);
        if s.bound[r] != Some(from) {
            self.counters.unbound_source += 1;
            return Outcome::Drop;
        }
        let Some(to) = s.bound[idx(role.peer())] else {
            self.counters.peer_not_bound += 1;
            return Outcome::Drop;
        };
        let len = data.len() as u64;
        s.last_seen = now;
        s.bytes[r] += len;
        s.packets[r] += 1;
        self.counters.forwarded_bytes += len;
        self.counters.forwarded_packets += 1;
        Outcome::Forward(to)
    }

    /// Forgets idle sessions and returns their final reports.
    pub fn expire(&mut self, now: Instant) -> Vec<SessionReport> {
        let idle = self.limits.idle_timeout;
        let expired: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_seen) >= idle)
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::with_capacity(expired.len());
        for id in expired {
            if let Some(r) = self.retire(id, now) {
                self.counters.sessions_expired += 1;
                out.push(r);
            }
        }
        out
    }

    fn remember_closed(&mut self, r: SessionReport) {
        if self.closed.len() >= CLOSED_KEPT {
            self.closed.pop_front();
        }
        self.closed.push_back(r);
    }

    pub fn stats(&self, now: Instant) -> RelayStats {
        let mut sessions: Vec<SessionReport> = self
            .sessions
            .iter()
            .map(|(id, s)| report(*id, s, now))
            .collect();
        sessions.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        RelayStats {
            counters: self.counters.clone(),
            active_sessions: self.sessions.len(),
            sessions,
            closed: self.closed.iter().cloned().collect(),
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

fn report(id: u64, s: &RelaySession, now: Instant) -> SessionReport {
    SessionReport {
        session_id: format!("{id:016x}"),
        uid: s.setup.uid.to_string(),
        initiator: s.bound[0],
        target: s.bound[1],
        forwarded_bytes: s.bytes[0] + s.bytes[1],
        forwarded_packets: s.packets[0] + s.packets[1],
        bytes_from_initiator: s.bytes[0],
        bytes_from_target: s.bytes[1],
        punches: s.punches,
        age_secs: now.saturating_duration_since(s.created).as_secs(),
    }
}

/// Sends each peer the other's candidates: the reflexive address the relay saw first (the one most
/// likely to work through a NAT), then its host candidates. Returns how many were queued.
fn send_punches(id: u64, s: &mut RelaySession) -> u64 {
    let mut sent = 0;
    s.punches += 1;
    for role in ROLES {
        let other = idx(role.peer());
        let mut candidates: Vec<SocketAddr> = s.bound[other].into_iter().collect();
        for c in &s.setup.host_candidates[other] {
            if !candidates.contains(c) {
                candidates.push(*c);
            }
        }
        let msg = ServerMsg::Punch {
            session_id: id,
            candidates,
        };
        // Never wait on a control connection from the UDP path: a full or closed queue loses this
        // punch, and the peers keep working through the relay (a later roam re-sends it).
        match s.setup.links[idx(role)].try_send(msg) {
            Ok(()) => sent += 1,
            Err(e) => log::debug!("relay session={id:016x}: punch to {role:?} not queued: {e}"),
        }
    }
    sent
}

/// Serves the relay socket (`udp[0]` of `probes`) until the task is aborted.
pub async fn serve(
    socket: Arc<UdpSocket>,
    relay: Arc<Mutex<Relay>>,
    probes: Arc<probe::Responder>,
) {
    let mut buf = vec![0u8; probe::RECV_BUF];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            // Windows reports an earlier send's ICMP "port unreachable" here; it concerns nobody now.
            Err(e) => {
                log::debug!("relay socket receive error: {e}");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let outcome = lock(&relay).on_datagram(from, &buf[..n], Instant::now());
        let result = match outcome {
            Outcome::Drop => continue,
            Outcome::Reply(bytes) => socket.send_to(&bytes, from).await,
            Outcome::Forward(to) => socket.send_to(&buf[..n], to).await,
            Outcome::Probe(req) => {
                probes.respond(&req, from, 0).await;
                continue;
            }
        };
        if let Err(e) = result {
            log::debug!("relay send failed: {e}");
        }
    }
}

/// Locks the relay; a panic elsewhere while holding it leaves consistent-enough counters, so go on.
pub fn lock(relay: &Mutex<Relay>) -> std::sync::MutexGuard<'_, Relay> {
    relay.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (SessionSetup, [mpsc::Receiver<ServerMsg>; 2]) {
        let (ti, ri) = mpsc::channel(8);
        let (tt, rt) = mpsc::channel(8);
        (
            SessionSetup {
                uid: "80:00:00:00:01:00:0A:C2".parse().unwrap(),
                user_id: 1,
                tokens: [[1; 16], [2; 16]],
                host_candidates: [
                    vec![
                        "192.168.1.5:4000".parse().unwrap(),
                        "0.0.0.0:1".parse().unwrap(),
                    ],
                    vec!["10.0.0.7:5000".parse().unwrap()],
                ],
                links: [ti, tt],
            },
            [ri, rt],
        )
    }

    fn bind(id: u64, role: Role, token: [u8; 16]) -> Vec<u8> {
        RelayBind {
            session_id: id,
            role,
            token,
        }
        .encode()
    }

    fn data(id: u64, role: Role) -> Vec<u8> {
        let mut d = Vec::new();
        wire::SessionHeader {
            kind: Kind::Data(role),
            session_id: id,
            packet_number: 1,
        }
        .encode(&mut d);
        d.extend_from_slice(b"sealed");
        d
    }

    #[test]
    fn binds_forward_and_punch() {
        let now = Instant::now();
        let mut relay = Relay::new(RelayLimits::default());
        let (s, [mut ri, mut rt]) = setup();
        let id = 0x1234_5678_9abc_def0;
        assert!(relay.open(id, s, now).is_ok());
        assert!(matches!(
            relay.open(0, setup().0, now),
            Err((OpenError::IdInUse, _))
        ));
        let a: SocketAddr = "198.51.100.1:1111".parse().unwrap();
        let b: SocketAddr = "203.0.113.2:2222".parse().unwrap();

        // Bad token: silently dropped.
        assert_eq!(
            relay.on_datagram(a, &bind(id, Role::Initiator, [9; 16]), now),
            Outcome::Drop
        );
        assert_eq!(relay.counters().bad_token, 1);
        // Initiator binds; its data cannot go anywhere yet.
        assert_eq!(
            relay.on_datagram(a, &bind(id, Role::Initiator, [1; 16]), now),
            Outcome::Reply(wire::encode_relay_bind_ack(id))
        );
        assert_eq!(
            relay.on_datagram(a, &data(id, Role::Initiator), now),
            Outcome::Drop
        );
        assert!(ri.try_recv().is_err(), "no punch before both bound");
        // Target binds: both get a punch with the other's reflexive address first.
        relay.on_datagram(b, &bind(id, Role::Target, [2; 16]), now);
        match ri.try_recv().unwrap() {
            ServerMsg::Punch {
                session_id,
                candidates,
            } => {
                assert_eq!(session_id, id);
                assert_eq!(candidates, vec![b, "10.0.0.7:5000".parse().unwrap()]);
            }
            other => panic!("{other:?}"),
        }
        match rt.try_recv().unwrap() {
            ServerMsg::Punch { candidates, .. } => {
                assert_eq!(candidates, vec![a, "192.168.1.5:4000".parse().unwrap()])
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            relay.on_datagram(a, &data(id, Role::Initiator), now),
            Outcome::Forward(b)
        );
        assert_eq!(
            relay.on_datagram(b, &data(id, Role::Target), now),
            Outcome::Forward(a)
        );
        // A spoofer using the session id from another address gets nothing through.
        let evil: SocketAddr = "192.0.2.66:6666".parse().unwrap();
        assert_eq!(
            relay.on_datagram(evil, &data(id, Role::Initiator), now),
            Outcome::Drop
        );
        // A repeated bind from the same address (keepalive) does not re-punch; a roam does.
        relay.on_datagram(a, &bind(id, Role::Initiator, [1; 16]), now);
        assert!(ri.try_recv().is_err());
        let a2: SocketAddr = "198.51.100.1:1112".parse().unwrap();
        relay.on_datagram(a2, &bind(id, Role::Initiator, [1; 16]), now);
        assert!(
            matches!(rt.try_recv().unwrap(), ServerMsg::Punch { candidates, .. } if candidates[0] == a2)
        );
        assert_eq!(
            relay.on_datagram(b, &data(id, Role::Target), now),
            Outcome::Forward(a2)
        );
        let st = relay.stats(now);
        assert_eq!(st.sessions[0].forwarded_packets, 3);
        assert_eq!(st.counters.unbound_source, 1);
    }

    #[test]
    fn garbage_is_counted_and_sessions_expire() {
        let now = Instant::now();
        let mut relay = Relay::new(RelayLimits {
            max_sessions: 1,
            idle_timeout: Duration::from_secs(120),
            ..RelayLimits::default()
        });
        let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for junk in [
            &b""[..],
            b"\x01",
            b"\x07\x10abc",
            b"\x01\x99",
            b"\x01\x10short",
        ] {
            assert_eq!(relay.on_datagram(from, junk, now), Outcome::Drop);
        }
        assert_eq!(
            relay.on_datagram(from, &data(42, Role::Target), now),
            Outcome::Drop
        );
        assert_eq!(relay.counters().garbage, 5);
        assert_eq!(relay.counters().unknown_session, 1);
        let (s, _rx) = setup();
        let id = 77;
        assert!(relay.open(id, s, now).is_ok());
        let (s2, _rx2) = setup();
        assert!(matches!(relay.open(78, s2, now), Err((OpenError::Full, _))));
        let later = now + Duration::from_secs(121);
        let gone = relay.expire(later);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].session_id, format!("{id:016x}"));
        assert!(!relay.contains(id));
        let (s3, _rx3) = setup();
        assert!(relay.open(78, s3, later).is_ok());
    }

    #[test]
    fn sessions_per_user_are_counted_until_closed_or_expired() {
        let now = Instant::now();
        let mut relay = Relay::new(RelayLimits {
            max_sessions_per_user: 2,
            idle_timeout: Duration::from_secs(120),
            ..RelayLimits::default()
        });
        let for_user = |user_id| {
            let (mut s, rx) = setup();
            s.user_id = user_id;
            (s, rx)
        };
        let (a, _ra) = for_user(1);
        let (b, _rb) = for_user(1);
        assert!(relay.open(1, a, now).is_ok());
        assert!(relay.open(2, b, now).is_ok());
        let (c, _rc) = for_user(1);
        assert!(matches!(
            relay.open(3, c, now),
            Err((OpenError::UserFull, _))
        ));
        assert_eq!(relay.counters().sessions_refused, 1);
        // Another user is not affected.
        let (d, _rd) = for_user(2);
        assert!(relay.open(4, d, now).is_ok());
        assert_eq!((relay.user_sessions(1), relay.user_sessions(2)), (2, 1));

        // A closed session gives its place back at once...
        relay.close(1, now);
        let (e, _re) = for_user(1);
        assert!(relay.open(5, e, now).is_ok());
        let (f, _rf) = for_user(1);
        assert!(matches!(
            relay.open(6, f, now),
            Err((OpenError::UserFull, _))
        ));
        // ...an idle one when it expires, even before the housekeeping tick gets to it.
        let later = now + Duration::from_secs(121);
        let (g, _rg) = for_user(1);
        assert!(relay.open(7, g, later).is_ok());
        assert_eq!((relay.user_sessions(1), relay.user_sessions(2)), (1, 0));
        assert!(
            relay.per_user.values().all(|n| *n > 0),
            "no empty entries kept"
        );
    }

    #[test]
    fn a_peer_releases_its_ended_session_with_the_sessions_token_only() {
        let now = Instant::now();
        let mut relay = Relay::new(RelayLimits::default());
        let (s, _rx) = setup();
        assert!(relay.open(7, s, now).is_ok());
        let from: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let release = |role, token| {
            RelayBind {
                session_id: 7,
                role,
                token,
            }
            .encode_release()
        };
        // Someone without the token (the initiator's token claimed by the target role, or a guess)
        // cannot end it.
        relay.on_datagram(from, &release(Role::Target, [1; 16]), now);
        relay.on_datagram(from, &release(Role::Initiator, [9; 16]), now);
        assert!(relay.contains(7));
        assert_eq!((relay.user_sessions(1), relay.counters().bad_token), (1, 2));
        // The target's own token does; a repeat finds nothing and does no harm.
        relay.on_datagram(from, &release(Role::Target, [2; 16]), now);
        relay.on_datagram(from, &release(Role::Target, [2; 16]), now);
        assert!(!relay.contains(7));
        assert_eq!(relay.user_sessions(1), 0);
        let stats = relay.stats(now);
        assert_eq!(stats.counters.sessions_released, 1);
        assert_eq!(
            stats.closed.len(),
            1,
            "its report is kept like an expired one"
        );
    }

    #[test]
    fn answers_probes_on_the_relay_port() {
        let mut relay = Relay::new(RelayLimits::default());
        let from: SocketAddr = "127.0.0.1:4242".parse().unwrap();
        match relay.on_datagram(from, &wire::encode_probe_request([3; 12]), Instant::now()) {
            Outcome::Probe(req) => assert_eq!(
                req,
                wire::ProbeRequest {
                    txid: [3; 12],
                    flags: 0
                }
            ),
            other => panic!("{other:?}"),
        }
    }
}
