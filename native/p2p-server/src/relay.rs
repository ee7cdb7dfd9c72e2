//! The UDP relay on `udp[0]`: binds each peer's address to its session with `RelayBind`, forwards session
//! datagrams between the two bound addresses, and tells both peers when to punch.
//!
//! The relay never looks inside a session datagram (it is end-to-end protected): it routes on the clear
//! header only. Datagrams are forwarded only *from* the address a valid `RelayBind` (with the session's
//! secret per-role token) bound, so nobody can inject into or hijack a relayed session by guessing its id.
//!
//! Two things a peer (or whoever saw its relay token) could abuse are bounded here: a re-bind from a new
//! source address is logged and punched at most once per [`RelayLimits::rebind_interval`] (moves in
//! between are summed up in one line and one punch once the interval has passed), and the candidates
//! sent in `Punch` are only those a peer can legitimately have ([`legitimate_candidates`]).
//!
//! [`Relay`] is the state without I/O (tested directly); [`serve`] is the socket loop around it.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use p2p_link::udp_socket::{canonical, is_global_ipv6};
use p2p_proto::control::ServerMsg;
use p2p_proto::wire::{self, Kind, RelayAuth, RelayBind, Role};
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
/// Global IPv6 host candidates per peer in a `Punch` at most (a host's address and a few privacy ones).
pub const MAX_GLOBAL_IPV6_CANDIDATES: usize = 3;
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
    /// A peer's re-binds from a new source address are logged and punched at most once per this
    /// interval (the binding itself follows at once, so relayed data keeps flowing after a roam).
    pub rebind_interval: Duration,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            max_sessions: 4096,
            max_sessions_per_user: 64,
            idle_timeout: Duration::from_secs(120),
            rebind_interval: Duration::from_secs(1),
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
    /// The relay's address as the initiator reached it: one of the server's own addresses, which no
    /// candidate may name.
    pub relay_addr: SocketAddr,
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
    /// When a move was last logged and punched.
    last_move_report: Option<Instant>,
    /// Moves since then that were neither logged nor punched yet.
    unreported_moves: u32,
    /// The bound addresses the last punch was sent with.
    punched: [Option<SocketAddr>; 2],
    /// By role: the greatest counter of an authenticated bind or release accepted so far. Once a peer
    /// used that form, its clear-token form is refused for the session (no downgrade on the path).
    auth_counter: [Option<u64>; 2],
}

impl RelaySession {
    /// Whether `bind` carries this session's token for its role (compared in constant time).
    fn token_matches(&self, bind: &RelayBind) -> bool {
        bool::from(bind.token.ct_eq(&self.setup.tokens[idx(bind.role)]))
    }
}

/// Why a bind or release was not taken as coming from a peer of its session.
enum NotAuthentic {
    Garbage,
    UnknownSession,
    BadToken,
    /// An authenticated message whose counter is not above the last one accepted: a replay.
    Replayed,
    /// The clear-token form from a role that already sent the authenticated one.
    Downgraded,
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
    /// Binds and releases with a wrong token or MAC.
    pub bad_token: u64,
    /// Authenticated binds and releases whose counter was not above the last accepted one.
    pub replayed: u64,
    /// Clear-token binds and releases from a role that already used the authenticated form.
    pub downgrades: u64,
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
    /// Re-binds of a bound peer to a new source address.
    pub rebinds: u64,
    /// Of those, the ones not logged and punched at once (within `rebind_interval` of the last).
    pub rebinds_deferred: u64,
    /// Host candidates left out of a `Punch`: not an address the peer can legitimately have.
    pub candidates_refused: u64,
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
    /// The server's own addresses (its listeners): never a candidate.
    server_addrs: Vec<SocketAddr>,
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
            server_addrs: Vec::new(),
            sessions: HashMap::new(),
            per_user: HashMap::new(),
            counters: Counters::default(),
            closed: VecDeque::new(),
        }
    }

    /// The server's listener addresses (control and UDP), which no candidate may name.
    pub fn set_server_addrs(&mut self, addrs: &[SocketAddr]) {
        self.server_addrs = addrs.iter().map(|a| canonical(*a)).collect();
    }

    /// Opens session `id` (random, chosen by the broker). 0 is never used, so a zeroed header cannot
    /// address a session. On error the setup is handed back (to retry under another id).
    // Handing the setup back is the point (it is moved once, at most a few times per session);
    // boxing it would cost an allocation per session instead.
    #[allow(clippy::result_large_err)]
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
        if let Some(why) = self.no_room_for(user, now) {
            self.counters.sessions_refused += 1;
            return Err((why, setup));
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
                last_move_report: None,
                unreported_moves: 0,
                punched: [None, None],
                auth_counter: [None, None],
            },
        );
        *self.per_user.entry(user).or_default() += 1;
        self.counters.sessions_opened += 1;
        Ok(())
    }

    /// Which limit a new session of `user_id` would exceed (its user's or the server's), if any, once
    /// the idle sessions waiting for the next housekeeping tick are forgotten.
    fn no_room_for(&mut self, user_id: i64, now: Instant) -> Option<OpenError> {
        let full = |relay: &Self| {
            if relay.user_sessions(user_id) >= relay.limits.max_sessions_per_user {
                Some(OpenError::UserFull)
            } else if relay.sessions.len() >= relay.limits.max_sessions {
                Some(OpenError::Full)
            } else {
                None
            }
        };
        full(self)?;
        self.expire(now);
        full(self)
    }

    /// Sessions `user_id` holds now.
    pub fn user_sessions(&self, user_id: i64) -> usize {
        self.per_user.get(&user_id).copied().unwrap_or(0)
    }

    /// Sessions per user now (users with none are absent).
    pub fn sessions_per_user(&self) -> &HashMap<i64, usize> {
        &self.per_user
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
            Kind::RelayBind | Kind::RelayBindAuth => self.on_bind(from, data, now),
            Kind::RelayRelease | Kind::RelayReleaseAuth => self.on_release(data, now),
            Kind::Data(role)
            | Kind::DataPhase1(role)
            | Kind::Handshake(role)
            | Kind::PeerHandshake(role) => self.on_session_datagram(from, role, data, now),
            Kind::RelayBindAck | Kind::ProbeResponse => {
                self.counters.garbage += 1;
                Outcome::Drop
            }
        }
    }

    /// The session and role a bind or release (either form) comes from, if it is authentic: the
    /// clear form carries the role's token, the authenticated form a MAC under it and a counter that
    /// must be above the last accepted one (which it then becomes).
    fn authenticate(&mut self, data: &[u8]) -> Result<(u64, Role), NotAuthentic> {
        if let Ok(bind) = RelayBind::decode(data) {
            let s = self
                .sessions
                .get(&bind.session_id)
                .ok_or(NotAuthentic::UnknownSession)?;
            if !s.token_matches(&bind) {
                return Err(NotAuthentic::BadToken);
            }
            if s.auth_counter[idx(bind.role)].is_some() {
                return Err(NotAuthentic::Downgraded);
            }
            return Ok((bind.session_id, bind.role));
        }
        let msg = RelayAuth::decode(data).map_err(|_| NotAuthentic::Garbage)?;
        let s = self
            .sessions
            .get_mut(&msg.session_id)
            .ok_or(NotAuthentic::UnknownSession)?;
        let r = idx(msg.role);
        if !RelayAuth::is_signed_by(data, &s.setup.tokens[r]) {
            return Err(NotAuthentic::BadToken);
        }
        if s.auth_counter[r].is_some_and(|last| msg.counter <= last) {
            return Err(NotAuthentic::Replayed);
        }
        s.auth_counter[r] = Some(msg.counter);
        Ok((msg.session_id, msg.role))
    }

    /// Counts a refused bind or release.
    fn count_refusal(&mut self, why: NotAuthentic) {
        let c = &mut self.counters;
        match why {
            NotAuthentic::Garbage => c.garbage += 1,
            NotAuthentic::UnknownSession => c.unknown_session += 1,
            NotAuthentic::BadToken => c.bad_token += 1,
            NotAuthentic::Replayed => c.replayed += 1,
            NotAuthentic::Downgraded => c.downgrades += 1,
        }
    }

    fn on_bind(&mut self, from: SocketAddr, data: &[u8], now: Instant) -> Outcome {
        let (session_id, role) = match self.authenticate(data) {
            Ok(sender) => sender,
            Err(why) => {
                self.count_refusal(why);
                return Outcome::Drop;
            }
        };
        let s = self
            .sessions
            .get_mut(&session_id)
            .expect("authenticated for a session that exists");
        let r = idx(role);
        self.counters.binds += 1;
        s.last_seen = now;
        let Some(old) = s.bound[r] else {
            // A first bind: once both are bound, both peers need the other's candidates.
            s.bound[r] = Some(from);
            if s.bound.iter().all(Option::is_some) {
                send_punches(session_id, s, &self.server_addrs, &mut self.counters);
            }
            return Outcome::Reply(wire::encode_relay_bind_ack(session_id));
        };
        if old != from {
            // A peer that roamed: the binding follows at once (relayed data keeps flowing), but the
            // log line and the punch, which makes the other peer probe the new address, come at most
            // once per interval, however fast binds alternate.
            s.bound[r] = Some(from);
            self.counters.rebinds += 1;
            let due = s
                .last_move_report
                .is_none_or(|t| now.saturating_duration_since(t) >= self.limits.rebind_interval);
            if due {
                log::info!(
                    "relay session={:016x} {:?} moved from {old} to {from}",
                    session_id,
                    role
                );
                s.last_move_report = Some(now);
                s.unreported_moves = 0;
                if s.bound.iter().all(Option::is_some) {
                    send_punches(session_id, s, &self.server_addrs, &mut self.counters);
                }
            } else {
                s.unreported_moves = s.unreported_moves.saturating_add(1);
                self.counters.rebinds_deferred += 1;
            }
        }
        Outcome::Reply(wire::encode_relay_bind_ack(session_id))
    }

    /// A peer's session ended: forget it now rather than after the idle timeout, so its user's place
    /// (sessions per user) is free at once. The token is the session's, so only a peer can do this.
    fn on_release(&mut self, data: &[u8], now: Instant) -> Outcome {
        let (session_id, role) = match self.authenticate(data) {
            Ok(sender) => sender,
            // Peers send a release twice (it may be lost): the second finds nothing.
            Err(NotAuthentic::UnknownSession) => return Outcome::Drop,
            Err(why) => {
                self.count_refusal(why);
                return Outcome::Drop;
            }
        };
        if let Some(r) = self.retire(session_id, now) {
            r.log_end(&format!("released by the {role:?}"));
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

    /// Housekeeping (every tick): reports the moves deferred by the rebind interval once it has passed
    /// (one line and one punch with the addresses bound now), forgets idle sessions and returns their
    /// final reports.
    pub fn expire(&mut self, now: Instant) -> Vec<SessionReport> {
        let interval = self.limits.rebind_interval;
        for (id, s) in self.sessions.iter_mut() {
            if s.unreported_moves == 0
                || s.last_move_report
                    .is_some_and(|t| now.saturating_duration_since(t) < interval)
            {
                continue;
            }
            log::info!(
                "relay session={id:016x} moved {} more time(s) within {} ms; now initiator={} target={}",
                s.unreported_moves,
                interval.as_millis(),
                shown(s.bound[0]),
                shown(s.bound[1]),
            );
            s.last_move_report = Some(now);
            s.unreported_moves = 0;
            // Back where the last punch said (a flood alternating between two ports): nothing new.
            if s.bound.iter().all(Option::is_some) && s.bound != s.punched {
                send_punches(*id, s, &self.server_addrs, &mut self.counters);
            }
        }
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

    /// Sessions held now (what `stats` counts, without building the report).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
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

fn shown(a: Option<SocketAddr>) -> String {
    a.map_or_else(|| "-".into(), |a| a.to_string())
}

/// A private (site-local) address: RFC 1918, RFC 6598 shared space (carrier-grade NAT), IPv6 unique
/// local. What a peer's own LAN interface can have behind a NAT.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => v6.is_unique_local(),
    }
}

/// Both in one /64 (one IPv6 subnet: a host's privacy addresses share it).
fn same_ipv6_subnet(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V6(a), IpAddr::V6(b)) => a.segments()[..4] == b.segments()[..4],
        _ => false,
    }
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}

/// Whether a peer whose datagrams reach the relay from `reflexive` can legitimately have `candidate`:
/// its reflexive address itself, another port of the same IP (a peer without NAT), a private address
/// of the same family (its LAN behind a NAT), or a global IPv6 address: in the reflexive address's /64
/// when the peer reached us over IPv6, any when it came over IPv4 (the server cannot see a dual-stack
/// peer's IPv6 address then; [`legitimate_candidates`] takes at most [`MAX_GLOBAL_IPV6_CANDIDATES`]). Never a loopback address unless the peer itself came from
/// loopback (it runs on the server's machine: tests do), never broadcast, multicast, link-local,
/// unspecified or port 0, and never one of the server's own addresses (`server`) unless that is the
/// peer's own IP too. Anything else (a public address of someone else) would let a peer choose where
/// the other peer's path probes go.
pub fn candidate_allowed(
    candidate: SocketAddr,
    reflexive: SocketAddr,
    server: &[SocketAddr],
) -> bool {
    let (c, r) = (canonical(candidate), canonical(reflexive));
    if c == r {
        return true;
    }
    let ip = c.ip();
    if c.port() == 0
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip == IpAddr::from([255, 255, 255, 255])
        || is_link_local(ip)
        || (ip.is_ipv4() != r.ip().is_ipv4() && !is_global_ipv6(ip))
        || server.iter().any(|s| canonical(*s) == c)
    {
        return false;
    }
    if ip == r.ip() {
        return true;
    }
    if ip.is_loopback() {
        return r.ip().is_loopback();
    }
    if server.iter().any(|s| s.ip().to_canonical() == ip) {
        return false;
    }
    if is_global_ipv6(ip) {
        return r.ip().is_ipv4() || same_ipv6_subnet(ip, r.ip());
    }
    is_private(ip)
}

/// The candidates `Punch` gives for a peer: its reflexive address first (the one most likely to work
/// through a NAT), then those of its host candidates it can legitimately have ([`candidate_allowed`]),
/// without repeats.
pub fn legitimate_candidates(
    reflexive: SocketAddr,
    host: &[SocketAddr],
    server: &[SocketAddr],
) -> Vec<SocketAddr> {
    let mut out = vec![reflexive];
    let mut global_v6 = 0;
    for c in host {
        if out.contains(c) || !candidate_allowed(*c, reflexive, server) {
            continue;
        }
        // A peer could name anyone's IPv6 address: the other peer's probes toward such candidates stay few.
        if is_global_ipv6(c.ip()) && c.ip() != reflexive.ip() {
            if global_v6 == MAX_GLOBAL_IPV6_CANDIDATES {
                continue;
            }
            global_v6 += 1;
        }
        out.push(*c);
    }
    out
}

/// Sends each peer the other's candidates ([`legitimate_candidates`]), counting the punches queued and
/// the host candidates left out.
fn send_punches(id: u64, s: &mut RelaySession, server: &[SocketAddr], counters: &mut Counters) {
    s.punches += 1;
    s.punched = s.bound;
    let mut server = server.to_vec();
    server.push(s.setup.relay_addr);
    for role in ROLES {
        let other = idx(role.peer());
        let Some(reflexive) = s.bound[other] else {
            continue;
        };
        let host = &s.setup.host_candidates[other];
        let candidates = legitimate_candidates(reflexive, host, &server);
        let refused: Vec<&SocketAddr> = host.iter().filter(|c| !candidates.contains(c)).collect();
        if !refused.is_empty() {
            counters.candidates_refused += refused.len() as u64;
            log::debug!(
                "relay session={id:016x}: {:?} candidates {refused:?} left out (it is seen as {reflexive})",
                role.peer()
            );
        }
        let msg = ServerMsg::Punch {
            session_id: id,
            candidates,
        };
        // Never wait on a control connection from the UDP path: a full or closed queue loses this
        // punch, and the peers keep working through the relay (a later roam re-sends it).
        match s.setup.links[idx(role)].try_send(msg) {
            Ok(()) => counters.punches_sent += 1,
            Err(e) => log::debug!("relay session={id:016x}: punch to {role:?} not queued: {e}"),
        }
    }
}

/// The relay's sockets, one per address family the server listens on: a datagram goes out of the one
/// of its destination's family, so the relay carries a session between an IPv4 and an IPv6 peer.
#[derive(Clone)]
pub struct RelaySockets(Arc<Vec<(bool, Arc<UdpSocket>)>>);

impl RelaySockets {
    pub fn new(sockets: Vec<Arc<UdpSocket>>) -> Self {
        // The family is looked up once: not a system call per forwarded datagram.
        let by_family = sockets
            .into_iter()
            .map(|s| (s.local_addr().is_ok_and(|l| l.is_ipv4()), s))
            .collect();
        RelaySockets(Arc::new(by_family))
    }

    /// The socket to send to `to` from (the one of its family; else `arrived_on`, which then fails
    /// with the system's error, logged by the caller).
    fn toward<'a>(&'a self, to: SocketAddr, arrived_on: &'a UdpSocket) -> &'a UdpSocket {
        self.0
            .iter()
            .find(|(v4, _)| *v4 == to.is_ipv4())
            .map_or(arrived_on, |(_, s)| s.as_ref())
    }
}

/// Serves one relay socket (`udp[0]` of `probes`, one of `sockets`) until the task is aborted.
pub async fn serve(
    socket: Arc<UdpSocket>,
    sockets: RelaySockets,
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
            Outcome::Forward(to) => sockets.toward(to, &socket).send_to(&buf[..n], to).await,
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
                relay_addr: "198.18.0.1:5959".parse().unwrap(),
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
        session_datagram(Kind::Data(role), id)
    }

    fn session_datagram(kind: Kind, id: u64) -> Vec<u8> {
        let mut d = Vec::new();
        wire::SessionHeader {
            kind,
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
        // Both handshakes' kinds and data of key phase 1 go through like data.
        for (from, to, role) in [(a, b, Role::Initiator), (b, a, Role::Target)] {
            for kind in [
                Kind::Handshake(role),
                Kind::PeerHandshake(role),
                Kind::DataPhase1(role),
            ] {
                assert_eq!(
                    relay.on_datagram(from, &session_datagram(kind, id), now),
                    Outcome::Forward(to)
                );
            }
        }
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
        assert_eq!(st.sessions[0].forwarded_packets, 9);
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

    fn auth(role: Role, token: [u8; 16], counter: u64, release: bool) -> Vec<u8> {
        RelayAuth {
            session_id: 7,
            role,
            counter,
            release,
        }
        .encode(&token)
    }

    #[test]
    fn authenticated_binds_with_a_replayed_or_forged_mac_neither_rebind_nor_release() {
        let now = Instant::now();
        let mut relay = Relay::new(RelayLimits::default());
        let (s, _rx) = setup();
        assert!(relay.open(7, s, now).is_ok());
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let attacker: SocketAddr = "127.0.0.1:6666".parse().unwrap();
        let ack = Outcome::Reply(wire::encode_relay_bind_ack(7));
        let first = auth(Role::Initiator, [1; 16], 1, false);
        assert_eq!(relay.on_datagram(peer, &first, now), ack);
        // The same bind again (a capture replayed from elsewhere) does not move the binding.
        assert_eq!(relay.on_datagram(attacker, &first, now), Outcome::Drop);
        // A MAC under the other role's token, or a guess, is refused.
        let forged = auth(Role::Initiator, [2; 16], 5, false);
        assert_eq!(relay.on_datagram(attacker, &forged, now), Outcome::Drop);
        // Neither does the clear form, even with the right token: the peer already proved it uses
        // the authenticated one (a downgrade on the path).
        assert_eq!(
            relay.on_datagram(attacker, &bind(7, Role::Initiator, [1; 16]), now),
            Outcome::Drop
        );
        // The peer's next keepalive (counter 2) is taken; the attacker's source never was.
        let keepalive = auth(Role::Initiator, [1; 16], 2, false);
        assert_eq!(relay.on_datagram(peer, &keepalive, now), ack);
        assert_eq!(relay.on_datagram(attacker, &keepalive, now), Outcome::Drop);
        let c = relay.counters();
        assert_eq!(
            (c.replayed, c.bad_token, c.downgrades, c.rebinds),
            (2, 1, 1, 0)
        );
        // A replayed or forged release ends nothing; the peer's own, with its next counter, does.
        relay.on_datagram(attacker, &auth(Role::Initiator, [1; 16], 2, true), now);
        relay.on_datagram(attacker, &auth(Role::Target, [1; 16], 9, true), now);
        assert!(relay.contains(7));
        relay.on_datagram(peer, &auth(Role::Initiator, [1; 16], 3, true), now);
        assert!(!relay.contains(7));
    }

    #[test]
    fn each_role_keeps_its_own_counter_and_old_peers_keep_the_clear_form() {
        let now = Instant::now();
        let mut relay = Relay::new(RelayLimits::default());
        let (s, _rx) = setup();
        assert!(relay.open(7, s, now).is_ok());
        let (i, t): (SocketAddr, SocketAddr) = (
            "127.0.0.1:4000".parse().unwrap(),
            "127.0.0.1:5000".parse().unwrap(),
        );
        let ack = Outcome::Reply(wire::encode_relay_bind_ack(7));
        assert_eq!(
            relay.on_datagram(i, &auth(Role::Initiator, [1; 16], 4, false), now),
            ack
        );
        // The target's counter is its own: 1 is fine after the initiator's 4.
        assert_eq!(
            relay.on_datagram(t, &auth(Role::Target, [2; 16], 1, false), now),
            ack
        );
        // An old target in another session binds in the clear as before.
        let (s, _rx2) = setup();
        assert!(relay.open(8, s, now).is_ok());
        assert_eq!(
            relay.on_datagram(t, &bind(8, Role::Target, [2; 16]), now),
            Outcome::Reply(wire::encode_relay_bind_ack(8))
        );
        assert_eq!(relay.counters().binds, 3);
    }

    #[test]
    fn a_flood_of_alternating_rebinds_is_reported_and_punched_once_per_interval() {
        let start = Instant::now();
        let mut relay = Relay::new(RelayLimits::default());
        let (s, [mut ri, mut rt]) = setup();
        let id = 99;
        assert!(relay.open(id, s, start).is_ok());
        let a: SocketAddr = "198.51.100.1:1111".parse().unwrap();
        let a2: SocketAddr = "198.51.100.1:1112".parse().unwrap();
        let b: SocketAddr = "203.0.113.2:2222".parse().unwrap();
        relay.on_datagram(a, &bind(id, Role::Initiator, [1; 16]), start);
        relay.on_datagram(b, &bind(id, Role::Target, [2; 16]), start);
        let drain =
            |rx: &mut mpsc::Receiver<ServerMsg>| std::iter::from_fn(|| rx.try_recv().ok()).count();
        assert_eq!(
            (drain(&mut ri), drain(&mut rt)),
            (1, 1),
            "the first binds punch"
        );
        // 5,000 binds alternating between two ports within 0.3 s: the binding follows every one (data
        // goes to the latest), but only the first move is punched at once.
        let mut now = start;
        for i in 0..5000u32 {
            now = start + Duration::from_micros(60 * u64::from(i));
            let from = if i % 2 == 0 { a2 } else { a };
            assert!(matches!(
                relay.on_datagram(from, &bind(id, Role::Initiator, [1; 16]), now),
                Outcome::Reply(_)
            ));
        }
        assert_eq!(
            relay.on_datagram(b, &data(id, Role::Target), now),
            Outcome::Forward(a)
        );
        assert_eq!((drain(&mut ri), drain(&mut rt)), (1, 1));
        let c = relay.counters().clone();
        assert_eq!((c.rebinds, c.rebinds_deferred), (5000, 4999));
        // Housekeeping within the interval reports nothing; after it, one punch with the current address.
        relay.expire(now);
        assert_eq!(drain(&mut rt), 0);
        relay.expire(start + Duration::from_secs(1));
        match rt.try_recv().unwrap() {
            ServerMsg::Punch { candidates, .. } => assert_eq!(candidates[0], a),
            other => panic!("{other:?}"),
        }
        assert_eq!(drain(&mut ri), 1);
        relay.expire(start + Duration::from_secs(3));
        assert_eq!(
            (drain(&mut ri), drain(&mut rt)),
            (0, 0),
            "nothing new to report"
        );
        // A genuine roam after the interval is punched at once.
        let a3: SocketAddr = "198.51.100.9:3333".parse().unwrap();
        relay.on_datagram(
            a3,
            &bind(id, Role::Initiator, [1; 16]),
            start + Duration::from_secs(4),
        );
        assert!(
            matches!(rt.try_recv().unwrap(), ServerMsg::Punch { candidates, .. } if candidates[0] == a3)
        );
        assert_eq!(drain(&mut ri), 1);
        // Moves within the interval that end where the last punch said are not punched again.
        for (ms, from) in [(4100, a), (4200, a3)] {
            relay.on_datagram(
                from,
                &bind(id, Role::Initiator, [1; 16]),
                start + Duration::from_millis(ms),
            );
        }
        relay.expire(start + Duration::from_secs(6));
        assert_eq!((drain(&mut ri), drain(&mut rt)), (0, 0));
        assert_eq!(relay.counters().punches_sent, 8);
    }

    #[test]
    fn candidates_are_limited_to_what_a_peer_can_have() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let server = [
            a("198.18.0.1:5980"),
            a("198.18.0.1:5959"),
            a("198.18.0.2:5961"),
        ];
        let remote = a("203.0.113.7:40000");
        let injected = [
            a("127.0.0.1:22"),
            a("127.0.0.53:53"),
            a("198.18.0.1:5959"),
            a("198.18.0.1:53"),
            a("198.18.0.2:5961"),
            a("8.8.8.8:53"),
            a("198.51.100.20:9"),
            a("255.255.255.255:9"),
            a("224.0.0.251:5353"),
            a("169.254.1.1:9"),
            a("0.0.0.0:9"),
            a("192.168.1.5:0"),
            a("[::1]:22"),
            a("[fd00::5]:4000"),
            a("[fe80::1]:4000"),
        ];
        let legit = [
            a("192.168.1.5:4000"),
            a("10.1.2.3:4000"),
            a("172.16.0.9:4000"),
            a("100.64.3.4:4000"),
            a("203.0.113.7:40001"),
        ];
        let host: Vec<SocketAddr> = injected.iter().chain(&legit).copied().collect();
        let mut want = vec![remote];
        want.extend(legit);
        assert_eq!(legitimate_candidates(remote, &host, &server), want);

        // A peer on the server's own machine (the system tests, everything on loopback) came from
        // loopback: its loopback candidates are its own, but never the server's exact sockets.
        let server_lo = [a("127.0.0.1:5980"), a("127.0.0.1:5959")];
        let local = a("127.0.0.1:41000");
        assert_eq!(
            legitimate_candidates(
                local,
                &[
                    a("127.0.0.1:41000"),
                    a("127.0.0.1:5959"),
                    a("127.0.0.1:41001"),
                    a("127.0.0.2:9"),
                    a("192.168.1.5:4000"),
                    a("8.8.8.8:53")
                ],
                &server_lo
            ),
            vec![
                local,
                a("127.0.0.1:41001"),
                a("127.0.0.2:9"),
                a("192.168.1.5:4000")
            ]
        );
        // IPv6: a unique-local address of the same family, not loopback or link-local; IPv4-mapped
        // addresses count as IPv4.
        let v6 = a("[2001:db8::7]:40000");
        assert_eq!(
            legitimate_candidates(
                v6,
                &[
                    a("[fd00::5]:4000"),
                    a("[::1]:22"),
                    a("[fe80::1]:1"),
                    a("10.0.0.1:1")
                ],
                &server
            ),
            vec![v6, a("[fd00::5]:4000")]
        );
        assert!(!candidate_allowed(
            a("[::ffff:127.0.0.1]:22"),
            remote,
            &server
        ));
        // A dual-stack peer seen over IPv4: its global IPv6 addresses (no NAT66: the address peers
        // reach), at most MAX_GLOBAL_IPV6_CANDIDATES of them; never link-local, unique-local or the
        // server's own.
        let globals: Vec<SocketAddr> = (1..=5)
            .map(|i| a(&format!("[2001:db8:5::{i}]:4000")))
            .collect();
        let mut host = vec![a("[fe80::1]:4000"), a("[2001:db8::1]:5959")];
        host.extend(&globals);
        let server_v6 = [a("198.18.0.1:5959"), a("[2001:db8::1]:5959")];
        let mut want = vec![remote];
        want.extend(&globals[..MAX_GLOBAL_IPV6_CANDIDATES]);
        assert_eq!(legitimate_candidates(remote, &host, &server_v6), want);
        // Seen over IPv6: global candidates from its own /64 only.
        assert_eq!(
            legitimate_candidates(
                v6,
                &[a("[2001:db8::8]:40000"), a("[2001:db8:9::8]:40000")],
                &server
            ),
            vec![v6, a("[2001:db8::8]:40000")]
        );
        assert!(candidate_allowed(
            a("[::ffff:10.0.0.1]:22"),
            remote,
            &server
        ));
    }

    #[test]
    fn a_remote_peer_cannot_make_the_other_probe_loopback_or_the_server() {
        let now = Instant::now();
        let mut relay = Relay::new(RelayLimits::default());
        relay.set_server_addrs(&[
            "198.18.0.1:5980".parse().unwrap(),
            "198.18.0.1:5959".parse().unwrap(),
        ]);
        let (mut s, [_ri, mut rt]) = setup();
        s.host_candidates[0] = vec![
            "127.0.0.1:22".parse().unwrap(),
            "198.18.0.1:5959".parse().unwrap(),
            "198.18.0.1:53".parse().unwrap(),
            "8.8.8.8:53".parse().unwrap(),
            "192.168.1.5:4000".parse().unwrap(),
        ];
        assert!(relay.open(5, s, now).is_ok());
        let a: SocketAddr = "198.51.100.1:1111".parse().unwrap();
        relay.on_datagram(a, &bind(5, Role::Initiator, [1; 16]), now);
        relay.on_datagram(
            "203.0.113.2:2222".parse().unwrap(),
            &bind(5, Role::Target, [2; 16]),
            now,
        );
        match rt.try_recv().unwrap() {
            ServerMsg::Punch { candidates, .. } => {
                assert_eq!(candidates, vec![a, "192.168.1.5:4000".parse().unwrap()])
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(relay.counters().candidates_refused, 4);
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
