//! One peer-to-peer session as a sans-IO state machine: datagrams and instants in, datagrams and
//! events out (PROTOCOL.md, "Session datagrams" onwards).
//!
//! The driver calls [`Session::handle_datagram`] for every datagram of this session,
//! [`Session::handle_timeout`] when [`Session::poll_timeout`] passes, and drains
//! [`Session::poll_transmit`] and [`Session::poll_event`] after each call. Streams carry the bytes of
//! the TCP connections; the session multiplexes them over one packet-number space with selective
//! acknowledgement, RTT-based loss detection, a probe timeout, model-based congestion control with
//! pacing (`max_outstanding` sets the window's floor) and per-stream flow control.

pub mod ack_ranges;
#[cfg(test)]
mod bottleneck_tests;
mod hard_nat;
#[cfg(test)]
mod hard_nat_sim;
mod key_update;
#[cfg(test)]
mod key_update_tests;
mod opening;
mod paths;
mod peer_auth;
#[cfg(test)]
mod peer_auth_tests;
mod recovery;
mod recv_buffer;
pub mod send_buffer;
#[cfg(test)]
mod stepped;
mod stream;
#[cfg(test)]
mod tests;
mod timers;
mod transmit;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ack_ranges::RangeSet;
use hard_nat::HardNat;
pub use hard_nat::{Mapping as NatMapping, PortOpening};
use key_update::KeyUpdates;
pub use key_update::RekeyLimits;
use paths::Paths;
pub use paths::{PathKind, OPENING_TTL};
use peer_auth::PeerAuth;
pub use peer_auth::PeerKeys;
use recovery::{Recovery, SentFrame, Settled, MAX_ACK_DELAY};
use stream::Stream;
use timers::{Timer, TimerTable};
use transmit::PathFrame;

use crate::crypto::{
    self, AeadOffer, Handshake, PeerHandshakeError, Protection, PublicStaticKey,
    HANDSHAKE_RANDOM_LEN, PEER_HANDSHAKE_RANDOM_LEN,
};
use crate::frame::{self, Frame};
use crate::wire::{Kind, Role, SessionHeader, MAX_DATAGRAM, SESSION_HEADER_LEN};
use crate::EncryptionMode;

pub type StreamId = u64;

/// Random bytes [`Session::new`] takes: the legacy handshake's 48, 8 for path challenge tokens, 8 for
/// the hard-NAT spray, then the end-to-end handshake's 32.
pub const SESSION_RANDOM_LEN: usize = 96;
/// Where the end-to-end handshake's random bytes start.
const PEER_RANDOM_AT: usize = SESSION_RANDOM_LEN - PEER_HANDSHAKE_RANDOM_LEN;

/// How long the ACK-only ranges we remember may grow: older ranges are forgotten (the peer retransmits
/// what it still misses under new numbers, so an old range lost from our ACKs costs at most a resend).
const MAX_ACK_RANGES: usize = 64;

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub role: Role,
    pub session_id: u64,
    pub mode: EncryptionMode,
    pub session_secret: [u8; crypto::SECRET_LEN],
    /// The server's relay; packets go there until a direct path is validated.
    pub relay: Option<SocketAddr>,
    /// connectd's MAXOUTSTANDING (max_depth): the depth, in packets, the session may always keep
    /// in flight, whatever the congestion controller estimates. A floor, not a cap: the
    /// controller still opens the window as far as the path allows. Raise it for paths where
    /// the estimate stays low.
    pub max_outstanding: Option<u32>,
    /// Nothing received for this long: the session is dead.
    pub idle_timeout: Duration,
    /// The handshake must complete within this.
    pub handshake_timeout: Duration,
    /// A PING is sent after this long without sending anything ack-eliciting (NAT mappings expire
    /// after 30 s; keep well under it).
    pub keepalive: Duration,
    /// Streams open at once.
    pub max_streams: usize,
    /// This side's device key and the key the peer must prove (docs/E2E-TRUST.md). In mode 3 an
    /// initiator with keys runs the end-to-end handshake, and a target with keys answers it; without
    /// keys, or in modes 0-2, the legacy handshake runs.
    pub peer_keys: Option<PeerKeys>,
    /// Mode 3: when our direction moves to its next key. `None` announces no key updates, so
    /// neither side updates (as with a peer from before them, or a server whose relay would drop
    /// the packets of key phase 1).
    pub rekey: Option<RekeyLimits>,
}

/// How long a session lives without hearing from its peer, unless configured otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

impl SessionConfig {
    pub fn new(
        role: Role,
        session_id: u64,
        mode: EncryptionMode,
        session_secret: [u8; crypto::SECRET_LEN],
    ) -> SessionConfig {
        SessionConfig {
            role,
            session_id,
            mode,
            session_secret,
            relay: None,
            max_outstanding: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            handshake_timeout: Duration::from_secs(12),
            keepalive: Duration::from_secs(2),
            max_streams: 4096,
            peer_keys: None,
            rekey: Some(RekeyLimits::DEFAULT),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// Nothing was received for the idle timeout.
    IdleTimeout,
    /// The peer handshake did not complete in time.
    HandshakeTimeout,
    /// The peer closed the session.
    Remote { code: u64, text: String },
    /// We closed it.
    Local,
    /// The end-to-end handshake refused the peer's key (it is not the pinned or authorized one) or
    /// found no AEAD in common.
    PeerRefused(PeerHandshakeError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed: streams may flow.
    Connected,
    PathChanged(PathKind),
    /// The peer opened a stream (target side).
    StreamOpened(StreamId),
    /// `read` has data or the FIN for this stream.
    StreamReadable(StreamId),
    /// The peer finished its direction (reported through `read` returning `Fin` as well).
    StreamFinished(StreamId),
    /// Space freed after a short `write`.
    StreamWritable(StreamId),
    /// The peer reset the stream (reason code).
    StreamReset(StreamId, u64),
    /// The stream is gone: both directions finished, or it was reset.
    StreamClosed(StreamId),
    Closed(CloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadResult {
    Data(usize),
    /// The peer finished its direction; no more data will come.
    Fin,
    /// Nothing to read now.
    Blocked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("no such stream {0}")]
    UnknownStream(StreamId),
    #[error("stream {0} was already finished")]
    Finished(StreamId),
    #[error("too many streams open at once (limit {0})")]
    TooManyStreams(usize),
    #[error("only the initiator opens streams")]
    NotInitiator,
    #[error("the session is closed")]
    SessionClosed,
}

/// Live figures of a session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionStats {
    /// Stream bytes sent the first time (retransmissions not counted).
    pub bytes_sent: u64,
    /// Stream bytes delivered to the application.
    pub bytes_received: u64,
    pub datagrams_sent: u64,
    pub datagrams_received: u64,
    /// Packets declared lost (their data was sent again).
    pub packets_lost: u64,
    /// Datagrams refused: wrong session, failed authentication, replayed, malformed.
    pub packets_dropped: u64,
    pub rtt: Option<Duration>,
    pub congestion_window: usize,
    pub streams_open: u32,
    pub path: Option<PathKind>,
    /// How long nothing authentic was received from the peer (its keepalives come every
    /// `SessionConfig::keepalive`, so seconds of silence mean a lost peer or path well before
    /// `idle_timeout` ends the session). Filled by [`Session::stats_at`]; zero from [`Session::stats`].
    pub peer_silent: Duration,
    /// Mode 3's negotiated AEAD, once the handshake is done.
    pub aead: Option<crypto::Aead>,
    /// The static key the peer proved in the end-to-end handshake; `None` in a legacy session.
    pub peer_key: Option<PublicStaticKey>,
    /// How often our direction moved to a new key (mode 3 with key updates announced by both).
    pub key_updates_sent: u64,
    /// How often the peer's direction did (counted when its first packet under the new key opened).
    pub key_updates_received: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshaking,
    Established,
    Closed,
}

pub struct Session {
    cfg: SessionConfig,
    state: State,
    handshake: Handshake,
    /// The end-to-end handshake, when this session may run one (mode 3 with keys).
    peer_auth: Option<PeerAuth>,
    protection: Option<Protection>,
    /// Initiator: the wait before HS1 is sent again after the next one (the timer
    /// `HandshakeResend` says when that is).
    hs_backoff: Duration,
    /// Target: addresses owed an HS2.
    hs_replies: VecDeque<SocketAddr>,

    /// Packets sent and in flight, acknowledgements, loss detection, RTT and congestion window.
    recovery: Recovery,
    timers: TimerTable,

    received: RangeSet,
    largest_received_at: Option<Instant>,
    unacked_eliciting: u32,

    streams: BTreeMap<StreamId, Stream>,
    next_local_stream: StreamId,
    next_peer_stream: StreamId,
    /// Where the round-robin over streams resumes.
    next_stream_turn: StreamId,
    resets: VecDeque<(StreamId, u64)>,
    ping_pending: bool,
    path_sends: VecDeque<(SocketAddr, PathFrame)>,
    /// Opening path probes (address, token) for [`Session::poll_opening`].
    openings: VecDeque<(SocketAddr, [u8; 8])>,
    close_pending: Option<(u64, String)>,
    paths: Paths,
    /// Hard-NAT traversal: PATH_NAT, the hard side's extra ports, the easy side's spray.
    hard_nat: HardNat,
    /// When our direction's key moves on.
    key_updates: KeyUpdates,
    last_received: Instant,

    events: VecDeque<Event>,
    stats: SessionStats,
    /// Reused buffer: the decrypted payload.
    plain: Vec<u8>,
}

impl Session {
    pub fn new(cfg: SessionConfig, now: Instant, random: [u8; SESSION_RANDOM_LEN]) -> Session {
        let mut hs_random = [0u8; HANDSHAKE_RANDOM_LEN];
        hs_random.copy_from_slice(&random[..HANDSHAKE_RANDOM_LEN]);
        let offer = AeadOffer::this_machine().with_rekey(cfg.rekey.is_some());
        let handshake = Handshake::with_offer(
            cfg.role,
            cfg.mode,
            &cfg.session_secret,
            &hs_random,
            Some(offer),
        );
        let peer_random = random[PEER_RANDOM_AT..]
            .try_into()
            .expect("the tail of the random bytes is the end-to-end handshake's");
        let peer_auth = PeerAuth::new(
            cfg.role,
            cfg.session_id,
            cfg.mode,
            &cfg.session_secret,
            cfg.peer_keys.as_ref(),
            &peer_random,
            cfg.rekey.is_some(),
        );
        let token_seed = u64::from_be_bytes(random[48..56].try_into().unwrap_or([7; 8]));
        let spray_seed = u64::from_be_bytes(random[56..64].try_into().unwrap_or([9; 8]));
        // Until the handshake completes only its own timers run.
        let mut timers = TimerTable::default();
        timers.set(Timer::Handshake, now + cfg.handshake_timeout);
        if cfg.role == Role::Initiator {
            timers.set(Timer::HandshakeResend, now);
        }
        Session {
            state: State::Handshaking,
            handshake,
            peer_auth,
            protection: None,
            hs_backoff: Duration::from_millis(200),
            hs_replies: VecDeque::new(),
            recovery: Recovery::new(now, MAX_DATAGRAM, cfg.max_outstanding.unwrap_or(0) as usize),
            timers,
            received: RangeSet::new(),
            largest_received_at: None,
            unacked_eliciting: 0,
            streams: BTreeMap::new(),
            next_local_stream: 0,
            next_peer_stream: 0,
            next_stream_turn: 0,
            resets: VecDeque::new(),
            ping_pending: false,
            path_sends: VecDeque::new(),
            openings: VecDeque::new(),
            close_pending: None,
            paths: Paths::new(cfg.relay, token_seed, now),
            hard_nat: HardNat::new(spray_seed, now),
            key_updates: KeyUpdates::new(cfg.rekey, now),
            last_received: now,
            events: VecDeque::new(),
            stats: SessionStats::default(),
            plain: Vec::new(),
            cfg,
        }
    }

    pub fn session_id(&self) -> u64 {
        self.cfg.session_id
    }

    pub fn is_connected(&self) -> bool {
        self.state == State::Established
    }

    /// Closed, with nothing left to send: the driver may drop it.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed && self.close_pending.is_none()
    }

    pub fn path(&self) -> PathKind {
        self.paths.kind()
    }

    /// The figures without the time-dependent ones (`peer_silent` is zero): see [`Session::stats_at`].
    pub fn stats(&self) -> SessionStats {
        self.stats_at(self.last_received)
    }

    /// The figures at `now` (the driver's clock, as passed to the other calls), with `peer_silent`:
    /// the time since the last authentic datagram (or since the session began, before the first one).
    pub fn stats_at(&self, now: Instant) -> SessionStats {
        SessionStats {
            peer_silent: now.saturating_duration_since(self.last_received),
            rtt: self.recovery.rtt().smoothed(),
            congestion_window: self.recovery.congestion().window(),
            streams_open: self.streams.len() as u32,
            path: Some(self.paths.kind()),
            aead: self.protection.as_ref().and_then(Protection::aead),
            peer_key: self.peer_key(),
            key_updates_sent: self.protection.as_ref().map_or(0, |p| p.key_updates().0),
            key_updates_received: self.protection.as_ref().map_or(0, |p| p.key_updates().1),
            ..self.stats.clone()
        }
    }

    /// The static key the peer proved in the end-to-end handshake; `None` before it completes and
    /// in a legacy session.
    pub fn peer_key(&self) -> Option<PublicStaticKey> {
        self.peer_auth.as_ref().and_then(|a| a.peer_key)
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // -----------------------------------------------------------------------------------------
    // Streams (the application side)

    /// Initiator: opens a new stream (one per accepted TCP connection).
    pub fn open_stream(&mut self) -> Result<StreamId, StreamError> {
        if self.state == State::Closed {
            return Err(StreamError::SessionClosed);
        }
        if self.cfg.role != Role::Initiator {
            return Err(StreamError::NotInitiator);
        }
        if self.streams.len() >= self.cfg.max_streams {
            return Err(StreamError::TooManyStreams(self.cfg.max_streams));
        }
        let id = self.next_local_stream;
        self.next_local_stream += 1;
        self.streams.insert(id, Stream::new());
        Ok(id)
    }

    /// Queues bytes on a stream; returns how many were taken (0 when its buffer is full; a
    /// `StreamWritable` event follows when space frees).
    pub fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, StreamError> {
        let s = self
            .streams
            .get_mut(&id)
            .ok_or(StreamError::UnknownStream(id))?;
        if s.send.is_finished() {
            return Err(StreamError::Finished(id));
        }
        let n = s.send.write(data);
        if n < data.len() {
            s.write_blocked = true;
        }
        Ok(n)
    }

    /// Ends our direction of the stream (half-close): the peer reads a FIN after the data.
    pub fn finish(&mut self, id: StreamId) -> Result<(), StreamError> {
        let s = self
            .streams
            .get_mut(&id)
            .ok_or(StreamError::UnknownStream(id))?;
        s.send.finish();
        Ok(())
    }

    pub fn read(&mut self, id: StreamId, buf: &mut [u8]) -> Result<ReadResult, StreamError> {
        self.read_with(id, |recv| recv.read(buf))
    }

    /// Like [`Session::read`], appending at most `max` bytes to `out`: a driver can hand the
    /// bytes on in the buffer they were read into, without a scratch buffer and a second copy.
    pub fn read_append(
        &mut self,
        id: StreamId,
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<ReadResult, StreamError> {
        self.read_with(id, |recv| recv.read_append(out, max))
    }

    fn read_with(
        &mut self,
        id: StreamId,
        read: impl FnOnce(&mut recv_buffer::RecvBuffer) -> Option<usize>,
    ) -> Result<ReadResult, StreamError> {
        let s = self
            .streams
            .get_mut(&id)
            .ok_or(StreamError::UnknownStream(id))?;
        match read(&mut s.recv) {
            Some(0) => {
                self.close_stream_if_finished(id);
                Ok(ReadResult::Fin)
            }
            Some(n) => {
                s.after_read();
                self.stats.bytes_received += n as u64;
                Ok(ReadResult::Data(n))
            }
            None => Ok(ReadResult::Blocked),
        }
    }

    /// Abandons a stream both ways and tells the peer why.
    pub fn reset(&mut self, id: StreamId, reason: u64) {
        if self.streams.remove(&id).is_some() {
            self.resets.push_back((id, reason));
            self.events.push_back(Event::StreamClosed(id));
        }
    }

    fn close_stream_if_finished(&mut self, id: StreamId) {
        if self.streams.get(&id).is_some_and(|s| s.is_finished()) {
            self.streams.remove(&id);
            self.events.push_back(Event::StreamClosed(id));
        }
    }

    // -----------------------------------------------------------------------------------------
    // Paths and closing

    /// The server's Punch: the peer's candidate addresses. Probing starts at once.
    pub fn add_candidates(&mut self, now: Instant, candidates: &[SocketAddr]) {
        // The server names the peer's public (reflexive) address first.
        if let Some(&public) = candidates.first() {
            self.hard_nat.set_peer_public(now, public);
        }
        self.paths.add_candidates(now, candidates);
        self.update_path_timer();
        if self.state == State::Handshaking && self.cfg.role == Role::Initiator {
            // The server punches once both peers are bound to the relay: an HS1 sent before that
            // was dropped there, so send it again now instead of waiting out the backoff.
            self.timers.set(Timer::HandshakeResend, now);
            self.hs_backoff = Duration::from_millis(200);
        }
    }

    /// Closes the session, telling the peer (when keys exist) with one CLOSE.
    pub fn close(&mut self, _now: Instant, code: u64, text: &str) {
        if self.state == State::Closed {
            return;
        }
        if self.protection.is_some() {
            self.close_pending = Some((code, text.to_string()));
        }
        self.enter_closed(CloseReason::Local);
    }

    fn enter_closed(&mut self, reason: CloseReason) {
        self.state = State::Closed;
        self.timers.stop_all();
        self.streams.clear();
        self.events.push_back(Event::Closed(reason));
    }

    // -----------------------------------------------------------------------------------------
    // Input

    /// One datagram of this session (kind Data, Handshake or PeerHandshake) from `from`. Anything that does not
    /// authenticate is dropped and counted.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        let Ok((header, payload)) = SessionHeader::decode(data) else {
            self.stats.packets_dropped += 1;
            return;
        };
        let header_bytes = &data[..SESSION_HEADER_LEN];
        let peer = self.cfg.role.peer();
        if header.session_id != self.cfg.session_id {
            self.stats.packets_dropped += 1;
            return;
        }
        match header.kind {
            Kind::Handshake(r) if r == peer => self.on_handshake(now, from, header_bytes, payload),
            Kind::PeerHandshake(r) if r == peer => self.on_peer_handshake(now, from, payload),
            Kind::Data(r) | Kind::DataPhase1(r) if r == peer => {
                self.on_data(now, from, header.packet_number, header_bytes, payload)
            }
            // Our own kind reflected back, or not a session kind.
            _ => self.stats.packets_dropped += 1,
        }
    }

    fn on_handshake(&mut self, now: Instant, from: SocketAddr, header: &[u8], payload: &[u8]) {
        // An end-to-end initiator never accepts the legacy answer (whoever holds the session secret
        // could make one: that is the server), nor does a side whose keys came from the peer handshake
        // or a target that lists its authorized initiators.
        let legacy_refused = self
            .cfg
            .peer_keys
            .as_ref()
            .is_some_and(|k| !k.allows_legacy_handshake());
        if legacy_refused
            || self.runs_peer_handshake()
            || self.peer_auth.as_ref().is_some_and(|a| a.established)
        {
            self.stats.packets_dropped += 1;
            return;
        }
        let protection = match self.handshake.receive(header, payload) {
            Ok(p) => p,
            Err(_) => {
                self.stats.packets_dropped += 1;
                return;
            }
        };
        self.stats.datagrams_received += 1;
        self.last_received = now;
        self.timers.set(Timer::Idle, now + self.cfg.idle_timeout);
        if self.cfg.role == Role::Target {
            // Re-answer a retransmitted HS1 with the same HS2 (it is deterministic).
            if !self.hs_replies.contains(&from) {
                self.hs_replies.push_back(from);
            }
        }
        if self.protection.is_none() {
            self.timers.stop(Timer::HandshakeResend);
            self.establish(protection);
        }
    }

    /// The handshake gave the session its keys: streams may flow.
    fn establish(&mut self, protection: Protection) {
        if self.protection.is_some() {
            return;
        }
        self.protection = Some(protection);
        self.state = State::Established;
        self.timers.stop(Timer::Handshake);
        // Nothing ack-eliciting was sent before: the keepalive counts from the session's start.
        let keepalive = self.recovery.last_eliciting_sent() + self.cfg.keepalive;
        self.timers.set(Timer::Keepalive, keepalive);
        self.update_path_timer();
        self.events.push_back(Event::Connected);
    }

    fn on_data(
        &mut self,
        now: Instant,
        from: SocketAddr,
        pn: u64,
        header: &[u8],
        protected: &[u8],
    ) {
        let Some(protection) = self.protection.as_mut() else {
            // Data before our handshake finished (our HS2 or their HS1 still on the way).
            self.stats.packets_dropped += 1;
            return;
        };
        let mut plain = std::mem::take(&mut self.plain);
        let peer_updates = protection.key_updates().1;
        if protection.open(header, pn, protected, &mut plain).is_err() {
            self.plain = plain;
            self.stats.packets_dropped += 1;
            return;
        }
        if protection.key_updates().1 != peer_updates {
            self.on_peer_key_update(now);
        }
        self.stats.datagrams_received += 1;
        self.last_received = now;
        self.timers.set(Timer::Idle, now + self.cfg.idle_timeout);
        self.on_peer_confirmed();
        if let Some(p) = self.paths.on_authenticated(now, from) {
            self.events.push_back(Event::PathChanged(p));
        }
        self.update_path_timer();
        let mut eliciting = false;
        for f in frame::parse(&plain) {
            let Ok(f) = f else {
                // An authentic but malformed payload: keep what came before, drop the rest.
                self.stats.packets_dropped += 1;
                break;
            };
            eliciting |= f.is_ack_eliciting();
            self.on_frame(now, from, f);
            if self.state == State::Closed {
                break;
            }
        }
        self.plain = plain;
        self.received.insert(pn..pn + 1);
        while self.received.range_count() > MAX_ACK_RANGES {
            self.received.pop_lowest();
        }
        if self.received.max() == Some(pn) {
            self.largest_received_at = Some(now);
        }
        if eliciting {
            self.unacked_eliciting += 1;
            // Acknowledge every second packet at once, otherwise after the delayed-ACK timer.
            let at = if self.unacked_eliciting >= 2 {
                now
            } else {
                now + MAX_ACK_DELAY
            };
            self.timers.set(Timer::Ack, at);
        }
    }

    fn on_frame(&mut self, now: Instant, from: SocketAddr, f: Frame<'_>) {
        match f {
            Frame::Padding | Frame::Ping => {}
            Frame::Ack(ack) => self.on_ack(now, &ack),
            Frame::Stream {
                id,
                offset,
                fin,
                data,
            } => self.on_stream_frame(id, offset, fin, data),
            Frame::MaxStreamData { id, max_offset } => {
                if let Some(s) = self.streams.get_mut(&id) {
                    s.send_limit = s.send_limit.max(max_offset);
                }
            }
            Frame::ResetStream { id, reason } | Frame::StopSending { id, reason } => {
                if self.streams.remove(&id).is_some() {
                    self.events.push_back(Event::StreamReset(id, reason));
                    self.events.push_back(Event::StreamClosed(id));
                }
            }
            Frame::PathChallenge(token) => {
                self.path_sends
                    .push_back((from, PathFrame::Response(token)));
            }
            Frame::PathResponse(token) => {
                let changed = if self.hard_nat.is_spray_response(token) {
                    self.paths.on_validated(now, from)
                } else {
                    self.paths.on_response(now, from, token)
                };
                if let Some(p) = changed {
                    self.events.push_back(Event::PathChanged(p));
                }
                self.update_path_timer();
            }
            Frame::PathOpened { .. } => {
                self.paths.on_peer_opened(now);
                self.update_path_timer();
            }
            Frame::PathNat { dependent, ports } => {
                self.hard_nat.on_peer_nat(now, dependent, ports);
                self.update_path_timer();
            }
            Frame::Close { code, text } => {
                let text = text.to_string();
                self.enter_closed(CloseReason::Remote { code, text });
            }
        }
    }

    fn on_stream_frame(&mut self, id: StreamId, offset: u64, fin: bool, data: &[u8]) {
        if !self.streams.contains_key(&id) {
            // Only the initiator opens streams; an id below the next one was closed already.
            if self.cfg.role != Role::Target || id < self.next_peer_stream {
                return;
            }
            let new = id - self.next_peer_stream + 1;
            if self.streams.len() as u64 + new > self.cfg.max_streams as u64 {
                self.resets.push_back((id, RESET_TOO_MANY_STREAMS));
                return;
            }
            // Open every id up to this one: their first frames may still be on the way.
            for opened in self.next_peer_stream..=id {
                self.streams.insert(opened, Stream::new());
                self.events.push_back(Event::StreamOpened(opened));
            }
            self.next_peer_stream = id + 1;
        }
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        match s.recv.insert(offset, data, fin, s.recv_limit) {
            Ok(true) => {
                self.events.push_back(Event::StreamReadable(id));
                if fin && s.recv.readable() {
                    self.events.push_back(Event::StreamFinished(id));
                }
            }
            Ok(false) => {}
            // Data past our limit or past the final size: the peer broke the stream's rules.
            Err(_) => {
                self.reset(id, RESET_PROTOCOL_VIOLATION);
            }
        }
    }

    fn on_ack(&mut self, now: Instant, ack: &frame::AckFrame<'_>) {
        if ack.largest < self.recovery.next_packet_number() {
            self.key_updates.on_acked(ack.largest);
        }
        let settled = self.recovery.on_ack(now, ack);
        self.apply_settled(settled);
    }

    /// Applies to the streams what recovery settled: delivered frames first, then lost ones put back
    /// in line. Moves the loss detection timer, which every settlement changes.
    fn apply_settled(&mut self, settled: Settled) {
        self.stats.packets_lost += settled.lost_packets;
        for f in settled.acked {
            self.on_frame_acked(f);
        }
        self.requeue(settled.lost);
        if settled.probe {
            self.ping_pending = true;
        }
        self.update_loss_detection_timer();
    }

    fn on_frame_acked(&mut self, f: SentFrame) {
        let SentFrame::Stream {
            id,
            offset,
            len,
            fin,
        } = f
        else {
            return;
        };
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let freed = s.send.on_acked(offset, len, fin);
        if freed > 0 && s.write_blocked {
            s.write_blocked = false;
            self.events.push_back(Event::StreamWritable(id));
        }
        self.close_stream_if_finished(id);
    }

    /// Puts the contents of a lost packet back in line to be sent again in a new packet.
    fn requeue(&mut self, frames: Vec<SentFrame>) {
        for f in frames {
            match f {
                SentFrame::Stream {
                    id,
                    offset,
                    len,
                    fin,
                } => {
                    if let Some(s) = self.streams.get_mut(&id) {
                        s.send.on_lost(offset, len, fin);
                    }
                }
                SentFrame::MaxStreamData { id } => {
                    if let Some(s) = self.streams.get_mut(&id) {
                        s.max_data_pending = true;
                    }
                }
                SentFrame::Reset { id, reason } => self.resets.push_back((id, reason)),
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Timers

    /// The earliest armed timer; none once closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        // Without any path nothing can be sent: sending deadlines would only spin the driver.
        let can_send = self.paths.active().is_some();
        self.timers.next_timeout(|t| can_send || !t.needs_path())
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        for timer in self.timers.expired(now) {
            match timer {
                Timer::Idle => {
                    self.enter_closed(CloseReason::IdleTimeout);
                    return;
                }
                Timer::Handshake => {
                    self.enter_closed(CloseReason::HandshakeTimeout);
                    return;
                }
                Timer::LossDetection => {
                    let settled = self.recovery.on_timeout(now);
                    self.apply_settled(settled);
                }
                Timer::Keepalive => self.ping_pending = true,
                Timer::Path => {
                    self.hard_nat.on_timer(now);
                    if let Some(p) = self.paths.on_timer(now) {
                        self.events.push_back(Event::PathChanged(p));
                    }
                    self.update_path_timer();
                }
                // poll_transmit arms it again if pacing still holds data back.
                Timer::Pacing => self.timers.stop(Timer::Pacing),
                Timer::KeyDiscard => self.discard_previous_peer_key(),
                // Sent by poll_transmit, which checks these itself.
                Timer::Ack | Timer::HandshakeResend => {}
            }
        }
    }

    /// The path logic's deadline, once established (before that, paths only collect candidates).
    fn update_path_timer(&mut self) {
        if self.state == State::Established {
            let deadline = match (self.paths.next_deadline(), self.hard_nat.next_deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            self.timers.set_or_stop(Timer::Path, deadline);
        }
    }

    fn update_loss_detection_timer(&mut self) {
        self.timers
            .set_or_stop(Timer::LossDetection, self.recovery.deadline());
    }
}

/// Reset reasons the session itself sends (the driver has its own for TCP errors).
pub const RESET_PROTOCOL_VIOLATION: u64 = 100;
pub const RESET_TOO_MANY_STREAMS: u64 = 101;
