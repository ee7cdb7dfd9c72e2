//! One UDP socket and the sessions that use it: the I/O loop around `p2p_proto::session::Session`.
//!
//! The initiator runs one endpoint per tunnel (one session); the target runs one endpoint for all its
//! sessions, so its public mapping is the same for every session. The endpoint task owns the socket, the
//! sans-IO sessions and the TCP side of every stream; everything else talks to it through commands.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use p2p_proto::session::{
    CloseReason, Event, PathKind as ProtoPath, PeerKeys, ReadResult, Session, SessionConfig,
    SessionStats, StreamId, OPENING_TTL,
};
use p2p_proto::wire::{self, Kind, RelayAuth, RelayBind, Role};
use p2p_proto::EncryptionMode;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::extra_ports::{self, Arrival, ExtraPorts};
use crate::mapping_probe::MappingProbe;
use crate::stream_io::{self, ReaderMsg, WriterMsg, READER_CREDIT, WRITER_CREDIT};
use crate::test_hooks::DirectFilter;
use crate::udp_batch::{RecvBatch, SendBatch, UdpIo};

/// How often an unacknowledged relay bind is repeated, and how often an acknowledged one is refreshed
/// (it keeps the relay's binding and the NAT mapping toward the server alive).
const BIND_RETRY: Duration = Duration::from_millis(300);
const BIND_REFRESH: Duration = Duration::from_secs(15);
/// How often live counters are published to the owner: the refresh the cmdlets document.
const STATS_EVERY: Duration = crate::status::COUNTER_REFRESH;

/// Everything needed to add one session to an endpoint.
pub struct SessionSpec {
    pub role: Role,
    pub session_id: u64,
    pub mode: EncryptionMode,
    pub session_secret: [u8; 32],
    pub relay: SocketAddr,
    pub relay_token: [u8; 16],
    /// The relay takes authenticated binds and releases (the grant said so).
    pub relay_auth: bool,
    /// The relay forwards data packets of key phase 1 (the grant said so): mode 3 sessions announce
    /// key updates and make them when the peer announced them too.
    pub key_phases: bool,
    pub max_outstanding: Option<u32>,
    /// Target side: where each stream the initiator opens is forwarded.
    pub forward_to: Option<SocketAddr>,
    /// The end-to-end handshake's keys (mode 3 with device keys).
    pub peer_keys: Option<PeerKeys>,
    pub notices: mpsc::UnboundedSender<Notice>,
    pub stats: Arc<Mutex<Option<SessionStats>>>,
}

/// What an endpoint tells the owner of a session.
#[derive(Debug, Clone)]
pub enum Notice {
    Connected,
    PathChanged(ProtoPath),
    StreamOpened(StreamId),
    StreamClosed(StreamId),
    Closed(CloseReason),
}

/// What the owner of an endpoint asks of it.
pub enum Command {
    AddSession(Box<SessionSpec>),
    /// The server names the peer's candidate addresses: probe them.
    Punch {
        session_id: u64,
        candidates: Vec<SocketAddr>,
    },
    /// Initiator: carry this accepted TCP connection as a new stream.
    OpenStream {
        session_id: u64,
        tcp: TcpStream,
    },
    CloseSession {
        session_id: u64,
        code: u64,
        text: String,
    },
    /// Closes every session (telling the peers) and ends the endpoint.
    Shutdown,
}

/// What the tasks of one stream (its TCP reader and writer, the connection to the local service)
/// report to the endpoint.
enum StreamReport {
    Reader {
        session_id: u64,
        stream: StreamId,
        msg: ReaderMsg,
    },
    WriterDrained {
        session_id: u64,
        stream: StreamId,
        bytes: usize,
    },
    WriterFailed {
        session_id: u64,
        stream: StreamId,
    },
    ForwardConnected {
        session_id: u64,
        stream: StreamId,
        result: std::io::Result<TcpStream>,
    },
}

/// One message to the endpoint task: both kinds share one queue, so they are handled in the order
/// they were sent.
enum Input {
    Command(Command),
    Stream(StreamReport),
    /// A datagram on one of a session's extra ports (hard-NAT traversal).
    Extra(Arrival),
}

/// A handle to a running endpoint task.
#[derive(Clone)]
pub struct Endpoint {
    commands: mpsc::UnboundedSender<Input>,
    local_addr: SocketAddr,
}

impl Endpoint {
    /// Starts an endpoint on `socket`. The task ends on `Shutdown` or when every handle is dropped.
    pub fn spawn(socket: UdpSocket) -> std::io::Result<(Endpoint, JoinHandle<()>)> {
        let local_addr = socket.local_addr()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = EndpointTask {
            io: UdpIo::new(socket)?,
            sessions: HashMap::new(),
            commands_tx: tx.downgrade(),
            direct: DirectFilter::from_env(),
            relay_override: crate::test_hooks::relay_override(),
            send_batch: SendBatch::default(),
            mapping: MappingProbe::default(),
        };
        let join = tokio::spawn(task.run(rx));
        Ok((
            Endpoint {
                commands: tx,
                local_addr,
            },
            join,
        ))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sends a command; false when the endpoint has ended.
    pub fn send(&self, cmd: Command) -> bool {
        self.commands.send(Input::Command(cmd)).is_ok()
    }
}

/// The TCP side of one stream.
struct StreamSlot {
    /// Bytes read from TCP, not yet accepted by the session.
    pending: std::collections::VecDeque<Vec<u8>>,
    pending_offset: usize,
    /// The TCP reader reached end of file: finish the stream once `pending` is empty.
    reader_done: bool,
    reader_credit: Option<Arc<Semaphore>>,
    writer: Option<mpsc::UnboundedSender<WriterMsg>>,
    /// Bytes we may still hand to the TCP writer before it reports some drained.
    writer_budget: usize,
    /// The peer's FIN was handed to the writer.
    writer_finished: bool,
    tasks: Vec<JoinHandle<()>>,
}

impl StreamSlot {
    fn new() -> Self {
        StreamSlot {
            pending: Default::default(),
            pending_offset: 0,
            reader_done: false,
            reader_credit: None,
            writer: None,
            writer_budget: WRITER_CREDIT,
            writer_finished: false,
            tasks: Vec::new(),
        }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct SessionSlot {
    session: Session,
    spec: SessionSpec,
    streams: HashMap<StreamId, StreamSlot>,
    bind_acked: bool,
    next_bind: Instant,
    next_stats: Instant,
    /// Hard side of hard-NAT traversal: the sockets that opened extra mappings toward the peer.
    extra: ExtraPorts,
    /// The counter of the last authenticated relay message sent.
    relay_counter: u64,
}

impl SessionSlot {
    /// This peer's next message to the relay: a bind (also the keepalive) or, with `release`, the
    /// session's end. With a MAC and the next counter when the grant says the relay takes that form
    /// (the token then never crosses the network); with the token in clear for an older server.
    fn relay_message(&mut self, release: bool) -> Vec<u8> {
        let spec = &self.spec;
        if spec.relay_auth {
            self.relay_counter += 1;
            return RelayAuth {
                session_id: spec.session_id,
                role: spec.role,
                counter: self.relay_counter,
                release,
            }
            .encode(&spec.relay_token);
        }
        let bind = RelayBind {
            session_id: spec.session_id,
            role: spec.role,
            token: spec.relay_token,
        };
        if release {
            bind.encode_release()
        } else {
            bind.encode()
        }
    }

    /// Hands the session's figures at `now` to its owner.
    fn publish_stats(&self, now: Instant) {
        *self.spec.stats.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(self.session.stats_at(now));
    }
}

struct EndpointTask {
    io: UdpIo,
    sessions: HashMap<u64, SessionSlot>,
    /// For spawning stream tasks that report back; weak so the task ends when all handles are gone.
    commands_tx: mpsc::WeakUnboundedSender<Input>,
    direct: DirectFilter,
    relay_override: Option<SocketAddr>,
    /// Kept between flushes so its buffer is allocated once.
    send_batch: SendBatch,
    /// Our NAT's mapping behaviour, which the sessions need for hard-NAT traversal.
    mapping: MappingProbe,
}

impl EndpointTask {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Input>) {
        let mut received = RecvBatch::default();
        let mut send_buf = Vec::with_capacity(wire::MAX_DATAGRAM + 64);
        loop {
            let now = Instant::now();
            self.service_timers(now);
            self.flush(now, &mut send_buf).await;
            self.reap_closed(now);
            let deadline = self.next_deadline(now);
            tokio::select! {
                result = self.io.recv(&mut received) => match result {
                    Ok(()) => {
                        self.on_datagrams(&received);
                        // Drain what else is queued before flushing, so ACKs and data coalesce.
                        for _ in 0..8 {
                            if self.io.try_recv(&mut received).is_err() {
                                break;
                            }
                            self.on_datagrams(&received);
                        }
                        // Events once per burst: a stream's data then reaches its TCP writer as one
                        // chunk instead of one write per datagram.
                        self.process_events();
                    }
                    // ICMP port unreachable surfaces as an error on some OSes: not fatal for UDP.
                    Err(e) => log::debug!("udp receive error: {e}"),
                },
                input = commands.recv() => match input {
                    None | Some(Input::Command(Command::Shutdown)) => break,
                    Some(input) => {
                        self.on_input(input);
                        while let Ok(input) = commands.try_recv() {
                            if matches!(input, Input::Command(Command::Shutdown)) {
                                self.shutdown(&mut send_buf).await;
                                return;
                            }
                            self.on_input(input);
                        }
                    }
                },
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
        self.shutdown(&mut send_buf).await;
    }

    async fn shutdown(&mut self, send_buf: &mut Vec<u8>) {
        let now = Instant::now();
        for slot in self.sessions.values_mut() {
            slot.session.close(now, 0, "endpoint shut down");
        }
        self.flush(now, send_buf).await;
        for slot in self.sessions.values_mut() {
            release_relay(&self.io, slot);
            let _ = slot.spec.notices.send(Notice::Closed(CloseReason::Local));
        }
        self.sessions.clear();
    }

    fn next_deadline(&self, now: Instant) -> Instant {
        let mut deadline = now + Duration::from_secs(1);
        for slot in self.sessions.values() {
            if let Some(t) = slot.session.poll_timeout() {
                deadline = deadline.min(t);
            }
            deadline = deadline.min(slot.next_bind).min(slot.next_stats);
        }
        if let Some(t) = self.mapping.deadline() {
            deadline = deadline.min(t);
        }
        deadline.max(now)
    }

    fn service_timers(&mut self, now: Instant) {
        let io = &self.io;
        if let Some((request, dest)) = self.mapping.due(now) {
            let _ = io.try_send_to(&request, dest);
        }
        for slot in self.sessions.values_mut() {
            if slot.session.poll_timeout().is_some_and(|t| t <= now) {
                slot.session.handle_timeout(now);
            }
            if slot.next_bind <= now {
                // A lost bind is repeated on the next tick: no need to wait for the socket.
                let _ = io.try_send_to(&slot.relay_message(false), slot.spec.relay);
                slot.next_bind = now
                    + if slot.bind_acked {
                        BIND_REFRESH
                    } else {
                        BIND_RETRY
                    };
            }
            if slot.next_stats <= now {
                slot.publish_stats(now);
                slot.next_stats = now + STATS_EVERY;
            }
        }
        self.process_events();
    }

    /// Sends every datagram the sessions want to send, gathered into as few system calls as the
    /// OS allows.
    async fn flush(&mut self, now: Instant, buf: &mut Vec<u8>) {
        self.direct.refresh(now);
        let max = self.io.max_batch();
        let mut batch = std::mem::take(&mut self.send_batch);
        let mut extra_total: usize = self.sessions.values().map(|s| s.extra.len()).sum();
        for slot in self.sessions.values_mut() {
            if let Some(opening) = slot.session.poll_port_opening(now, buf) {
                let count = usize::from(opening.count)
                    .min(extra_ports::MAX_PER_ENDPOINT.saturating_sub(extra_total));
                let commands = self.commands_tx.clone();
                let deliver = move |a: Arrival| {
                    commands
                        .upgrade()
                        .is_some_and(|tx| tx.send(Input::Extra(a)).is_ok())
                };
                let opened = slot
                    .extra
                    .open(
                        slot.spec.session_id,
                        count,
                        opening.dest,
                        buf,
                        OPENING_TTL,
                        deliver,
                    )
                    .await;
                extra_total += opened;
                log::info!(
                    "session={:016x}: {opened} extra ports opened toward {} (hard NAT)",
                    slot.spec.session_id,
                    opening.dest
                );
            }
            if slot.extra.len() > 0 && !slot.session.wants_extra_ports(now) {
                slot.extra.keep_routed();
            }
            // Opening probes first, one by one with a short TTL: the PATH_OPENED that
            // poll_transmit then sends through the relay must not overtake them.
            while let Some(dest) = slot.session.poll_opening(now, buf) {
                if self.direct.blocked() {
                    continue;
                }
                if let Err(e) =
                    crate::udp_socket::send_with_ttl(self.io.socket(), dest, buf, OPENING_TTL).await
                {
                    log::debug!("opening probe to {dest} not sent: {e}");
                }
            }
            // Each packet is built and sealed in the batch's own buffer: no copy per datagram.
            while let Some(dest) = slot.session.poll_transmit_append(now, batch.buffer()) {
                if dest != slot.spec.relay && self.direct.blocked() {
                    batch.discard_written();
                    continue;
                }
                // A path through one of the hard-NAT side's extra ports leaves from that socket.
                if let Some(socket) = slot.extra.socket_for(dest) {
                    if let Err(e) = socket.send_to(batch.written(), dest).await {
                        log::debug!("send to {dest} on an extra port failed: {e}");
                    }
                    batch.discard_written();
                    continue;
                }
                if !batch.commit(dest, max) {
                    self.io.send(&mut batch).await;
                    batch.commit(dest, max);
                }
            }
        }
        if !batch.is_empty() {
            self.io.send(&mut batch).await;
        }
        self.send_batch = batch;
    }

    fn on_datagrams(&mut self, received: &RecvBatch) {
        for (from, data) in received.datagrams() {
            self.on_datagram(from, data);
        }
    }

    fn on_datagram(&mut self, from: SocketAddr, data: &[u8]) {
        let Ok(kind) = wire::peek_kind(data) else {
            return;
        };
        match kind {
            Kind::Data(_) | Kind::DataPhase1(_) | Kind::Handshake(_) | Kind::PeerHandshake(_) => {
                let Some(id) = wire::peek_session_id(data) else {
                    return;
                };
                let Some(slot) = self.sessions.get_mut(&id) else {
                    return;
                };
                if from != slot.spec.relay && self.direct.blocked() {
                    return;
                }
                slot.session.handle_datagram(Instant::now(), from, data);
            }
            Kind::RelayBindAck => {
                if let Ok(id) = wire::decode_relay_bind_ack(data) {
                    if let Some(slot) = self.sessions.get_mut(&id) {
                        if !slot.bind_acked {
                            slot.bind_acked = true;
                            slot.next_bind = Instant::now() + BIND_REFRESH;
                        }
                    }
                }
            }
            Kind::ProbeResponse => {
                let now = Instant::now();
                if let Some((request, dest)) = self.mapping.on_response(now, from, data) {
                    let _ = self.io.try_send_to(&request, dest);
                }
                if let Some(m) = self.mapping.result() {
                    for slot in self.sessions.values_mut() {
                        slot.session.set_nat_mapping(now, m);
                    }
                }
            }
            // Probes are answered by the server; peers ignore stray ones.
            _ => {}
        }
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Command(cmd) => self.on_command(cmd),
            Input::Stream(report) => self.on_stream_report(report),
            Input::Extra(arrival) => self.on_extra_datagram(arrival),
        }
        self.process_events();
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::AddSession(spec) => self.add_session(*spec),
            Command::Punch {
                session_id,
                candidates,
            } => {
                if let Some(slot) = self.sessions.get_mut(&session_id) {
                    let usable = usable_candidates(self.io.local_addr(), &candidates);
                    slot.session.add_candidates(Instant::now(), &usable);
                }
            }
            Command::OpenStream { session_id, tcp } => self.open_stream(session_id, tcp),
            Command::CloseSession {
                session_id,
                code,
                text,
            } => {
                if let Some(slot) = self.sessions.get_mut(&session_id) {
                    slot.session.close(Instant::now(), code, &text);
                }
            }
            Command::Shutdown => {}
        }
    }

    /// A datagram on an extra port: the session's, and if it authenticates, its source is reached
    /// through that port from now on.
    fn on_extra_datagram(&mut self, a: Arrival) {
        let Some(slot) = self.sessions.get_mut(&a.session_id) else {
            return;
        };
        if self.direct.blocked() || wire::peek_session_id(&a.data) != Some(a.session_id) {
            return;
        }
        let before = slot.session.stats().datagrams_received;
        slot.session
            .handle_datagram(Instant::now(), a.from, &a.data);
        if slot.session.stats().datagrams_received > before {
            slot.extra.route(a.from, a.index);
        }
    }

    fn on_stream_report(&mut self, report: StreamReport) {
        match report {
            StreamReport::Reader {
                session_id,
                stream,
                msg,
            } => self.on_reader(session_id, stream, msg),
            StreamReport::WriterDrained {
                session_id,
                stream,
                bytes,
            } => {
                if let Some(slot) = self.sessions.get_mut(&session_id) {
                    if let Some(s) = slot.streams.get_mut(&stream) {
                        s.writer_budget += bytes;
                    }
                    pump_to_tcp(slot, stream);
                }
            }
            StreamReport::WriterFailed { session_id, stream } => {
                if let Some(slot) = self.sessions.get_mut(&session_id) {
                    slot.session.reset(stream, stream_io::RESET_TCP_ERROR);
                    slot.streams.remove(&stream);
                }
            }
            StreamReport::ForwardConnected {
                session_id,
                stream,
                result,
            } => self.on_forward_connected(session_id, stream, result),
        }
    }

    fn add_session(&mut self, spec: SessionSpec) {
        let mut cfg =
            SessionConfig::new(spec.role, spec.session_id, spec.mode, spec.session_secret);
        let relay = self.relay_override.unwrap_or(spec.relay);
        cfg.relay = Some(relay);
        cfg.max_outstanding = spec.max_outstanding;
        cfg.peer_keys = spec.peer_keys.clone();
        cfg.rekey = spec.key_phases.then(crate::test_hooks::rekey_limits);
        let mut random = [0u8; p2p_proto::session::SESSION_RANDOM_LEN];
        if getrandom::getrandom(&mut random).is_err() {
            log::error!("no operating-system randomness: session refused");
            let _ = spec
                .notices
                .send(Notice::Closed(CloseReason::HandshakeTimeout));
            return;
        }
        let now = Instant::now();
        let mut session = Session::new(cfg, now, random);
        self.mapping.start(now, spec.relay);
        if let Some(m) = self.mapping.result() {
            session.set_nat_mapping(now, m);
        }
        let id = spec.session_id;
        let spec = SessionSpec { relay, ..spec };
        self.sessions.insert(
            id,
            SessionSlot {
                session,
                spec,
                streams: HashMap::new(),
                bind_acked: false,
                next_bind: now,
                next_stats: now,
                extra: ExtraPorts::default(),
                relay_counter: 0,
            },
        );
    }

    fn open_stream(&mut self, session_id: u64, tcp: TcpStream) {
        let Some(slot) = self.sessions.get_mut(&session_id) else {
            return;
        };
        match slot.session.open_stream() {
            Ok(id) => {
                let mut s = StreamSlot::new();
                attach_tcp(&mut s, tcp, session_id, id, &self.commands_tx);
                slot.streams.insert(id, s);
            }
            Err(e) => log::warn!("cannot open a stream for a new connection: {e}"),
        }
    }

    fn on_forward_connected(
        &mut self,
        session_id: u64,
        stream: StreamId,
        result: std::io::Result<TcpStream>,
    ) {
        let Some(slot) = self.sessions.get_mut(&session_id) else {
            return;
        };
        match result {
            Ok(tcp) => {
                let Some(s) = slot.streams.get_mut(&stream) else {
                    return;
                };
                attach_tcp(s, tcp, session_id, stream, &self.commands_tx);
                pump_to_tcp(slot, stream);
            }
            Err(e) => {
                log::warn!("stream {stream}: cannot reach the local service: {e}");
                slot.session
                    .reset(stream, stream_io::RESET_SERVICE_UNREACHABLE);
                slot.streams.remove(&stream);
            }
        }
    }

    fn on_reader(&mut self, session_id: u64, stream: StreamId, msg: ReaderMsg) {
        let Some(slot) = self.sessions.get_mut(&session_id) else {
            return;
        };
        let Some(s) = slot.streams.get_mut(&stream) else {
            return;
        };
        match msg {
            ReaderMsg::Data(data) => s.pending.push_back(data),
            ReaderMsg::Eof => s.reader_done = true,
            ReaderMsg::Failed => {
                slot.session.reset(stream, stream_io::RESET_TCP_ERROR);
                slot.streams.remove(&stream);
                return;
            }
        }
        pump_from_tcp(slot, stream);
    }

    /// Handles every event the sessions produced since the last call.
    fn process_events(&mut self) {
        let commands_tx = self.commands_tx.clone();
        for (&id, slot) in self.sessions.iter_mut() {
            while let Some(ev) = slot.session.poll_event() {
                match ev {
                    Event::Connected => {
                        // The figures first: the owner reads the negotiated AEAD from them.
                        slot.publish_stats(Instant::now());
                        let _ = slot.spec.notices.send(Notice::Connected);
                    }
                    Event::PathChanged(p) => {
                        if p == ProtoPath::Relayed {
                            // Back on the relay: our public address may have changed (that is
                            // often why the direct path died), so rebind now rather than at the
                            // next refresh, or the relay keeps sending to the old address.
                            slot.next_bind = Instant::now();
                            slot.bind_acked = false;
                        }
                        let _ = slot.spec.notices.send(Notice::PathChanged(p));
                    }
                    Event::StreamOpened(stream) => {
                        slot.streams.insert(stream, StreamSlot::new());
                        if let Some(dest) = slot.spec.forward_to {
                            spawn_forward(dest, id, stream, &commands_tx);
                        }
                        let _ = slot.spec.notices.send(Notice::StreamOpened(stream));
                    }
                    Event::StreamReadable(stream) | Event::StreamFinished(stream) => {
                        pump_to_tcp(slot, stream)
                    }
                    Event::StreamWritable(stream) => pump_from_tcp(slot, stream),
                    Event::StreamReset(stream, reason) => {
                        log::debug!("stream {stream} reset by peer (reason {reason})");
                        if let Some(s) = slot.streams.remove(&stream) {
                            if let Some(w) = &s.writer {
                                let _ = w.send(WriterMsg::Reset);
                            }
                        }
                    }
                    Event::StreamClosed(stream) => {
                        // The writer task ends by itself once it has flushed; keep it running.
                        if let Some(mut s) = slot.streams.remove(&stream) {
                            s.tasks.clear();
                        }
                        let _ = slot.spec.notices.send(Notice::StreamClosed(stream));
                    }
                    Event::Closed(reason) => {
                        let st = slot.session.stats();
                        if st.aead.is_some() {
                            // What a long session's key updates did, for the log and the tests.
                            log::info!(
                                "session {id:016x}: {} key updates sent, {} received",
                                st.key_updates_sent,
                                st.key_updates_received
                            );
                        }
                        let _ = slot.spec.notices.send(Notice::Closed(reason));
                    }
                }
            }
        }
    }

    /// Removes sessions that have closed and have nothing left to send.
    fn reap_closed(&mut self, now: Instant) {
        let io = &self.io;
        self.sessions.retain(|_, slot| {
            if slot.session.is_closed() {
                release_relay(io, slot);
                slot.publish_stats(now);
                false
            } else {
                true
            }
        });
    }
}

/// The peer's candidates as this socket can use them: IPv4-mapped ones as IPv4, and IPv6 ones only when
/// the socket is IPv6 (dual-stack); an IPv4-only socket cannot send to them.
fn usable_candidates(local: SocketAddr, candidates: &[SocketAddr]) -> Vec<SocketAddr> {
    candidates
        .iter()
        .map(|&c| crate::udp_socket::canonical(c))
        .filter(|c| local.is_ipv6() || c.is_ipv4())
        .collect()
}

/// Tells the relay the session ended so it frees the session (and its user's place) at once instead
/// of after its idle timeout. Twice, as a lost datagram only delays that; best effort, no answer.
fn release_relay(io: &UdpIo, slot: &mut SessionSlot) {
    let release = slot.relay_message(true);
    for _ in 0..2 {
        let _ = io.try_send_to(&release, slot.spec.relay);
    }
}

/// Starts the reader and writer tasks of a TCP connection carried by `stream`.
fn attach_tcp(
    s: &mut StreamSlot,
    tcp: TcpStream,
    session_id: u64,
    stream: StreamId,
    commands: &mpsc::WeakUnboundedSender<Input>,
) {
    let _ = tcp.set_nodelay(true);
    let (read_half, write_half) = tcp.into_split();
    let credit = Arc::new(Semaphore::new(READER_CREDIT));
    let (wtx, wrx) = mpsc::unbounded_channel();
    let c1 = commands.clone();
    let c2 = commands.clone();
    s.tasks.push(tokio::spawn(stream_io::read_tcp(
        read_half,
        credit.clone(),
        move |msg| {
            send_weak(
                &c1,
                StreamReport::Reader {
                    session_id,
                    stream,
                    msg,
                },
            )
        },
    )));
    s.tasks.push(tokio::spawn(stream_io::write_tcp(
        write_half,
        wrx,
        move |drained| {
            send_weak(
                &c2,
                match drained {
                    Some(bytes) => StreamReport::WriterDrained {
                        session_id,
                        stream,
                        bytes,
                    },
                    None => StreamReport::WriterFailed { session_id, stream },
                },
            )
        },
    )));
    s.reader_credit = Some(credit);
    s.writer = Some(wtx);
}

/// Reports to the endpoint from a stream task; false when the endpoint has ended.
fn send_weak(commands: &mpsc::WeakUnboundedSender<Input>, report: StreamReport) -> bool {
    commands
        .upgrade()
        .is_some_and(|tx| tx.send(Input::Stream(report)).is_ok())
}

fn spawn_forward(
    dest: SocketAddr,
    session_id: u64,
    stream: StreamId,
    commands: &mpsc::WeakUnboundedSender<Input>,
) {
    let commands = commands.clone();
    tokio::spawn(async move {
        let result =
            match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(dest)).await {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                )),
            };
        send_weak(
            &commands,
            StreamReport::ForwardConnected {
                session_id,
                stream,
                result,
            },
        );
    });
}

/// Moves bytes read from TCP into the session, as far as the session accepts them.
fn pump_from_tcp(slot: &mut SessionSlot, stream: StreamId) {
    let Some(s) = slot.streams.get_mut(&stream) else {
        return;
    };
    while let Some(chunk) = s.pending.front() {
        let rest = &chunk[s.pending_offset..];
        match slot.session.write(stream, rest) {
            Ok(0) => return,
            Ok(n) => {
                if let Some(c) = &s.reader_credit {
                    c.add_permits(n);
                }
                s.pending_offset += n;
                if s.pending_offset == chunk.len() {
                    s.pending.pop_front();
                    s.pending_offset = 0;
                }
            }
            Err(e) => {
                log::debug!("stream {stream}: write refused: {e}");
                s.pending.clear();
                return;
            }
        }
    }
    if s.reader_done {
        s.reader_done = false;
        let _ = slot.session.finish(stream);
    }
}

/// Moves bytes received on the session to the TCP writer, as far as its budget allows.
fn pump_to_tcp(slot: &mut SessionSlot, stream: StreamId) {
    let Some(s) = slot.streams.get_mut(&stream) else {
        return;
    };
    let Some(writer) = &s.writer else { return };
    while s.writer_budget > 0 && !s.writer_finished {
        let want = s.writer_budget.min(64 * 1024);
        // Read straight into the chunk handed to the writer, allocated at the size read: no
        // scratch buffer (zeroing one per read cost 15-18% of the CPU in a p2p-bench profile)
        // and no second copy.
        let mut data = Vec::new();
        let read = slot
            .session
            .read_append(stream, &mut data, want)
            .map(|r| (r, data));
        match read {
            Ok((ReadResult::Data(n), data)) => {
                s.writer_budget -= n;
                let _ = writer.send(WriterMsg::Data(data));
            }
            Ok((ReadResult::Fin, _)) => {
                s.writer_finished = true;
                let _ = writer.send(WriterMsg::Fin);
            }
            Ok((ReadResult::Blocked, _)) | Err(_) => return,
        }
    }
}
