//! The initiator tunnel: one local TCP listener, one session to one device, with start / status / stop.
//! This is the one initiator API used by `connectd`, by the C ABI (and so the cmdlets) and by tests.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use p2p_config::{AutoConnect, InitiatorConfig};
use p2p_proto::control::{ClientMsg, ServerMsg};
use p2p_proto::crypto::PublicStaticKey;
use p2p_proto::session::{CloseReason, PathKind as ProtoPath, SessionStats};
use p2p_proto::wire::Role;
use p2p_proto::{EncryptionMode, Uid};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::control_channel::ControlClient;
use crate::device_trust::{self, Expectation, InitiatorTrust};
use crate::endpoint::{Command, Endpoint, Notice};
use crate::error::{Error, ErrorKind};
use crate::grant::ParsedGrant;
use crate::portmap::PortMapper;
use crate::server_list::{on_first_reachable, ServerList};
use crate::session_setup::{self, lock, SharedStats, BACKOFF_MAX, BACKOFF_START, CONTROL_TIMEOUT};
use crate::status::{
    end_reason, LastError, PathFamily, PathKind, TunnelState, TunnelStatus, DEGRADED_AFTER,
};
use crate::{clock, net_util, Result};

/// How long a TCP connection accepted while no session is up may wait for one before it is closed.
const PENDING_CONNECTION_WAIT: Duration = Duration::from_secs(30);
/// How long the peer handshake may take once the server has granted a session.
const HANDSHAKE_WAIT: Duration = Duration::from_secs(15);
/// How often the session's figures (RTT, losses, streams) are copied into the status watch. The byte
/// counters do not wait for it: [`Tunnel::status`] reads them from the session directly.
const STATUS_REFRESH: Duration = crate::status::COUNTER_REFRESH;
/// How long a session that is closing may take to hand over its final figures (one turn of its
/// endpoint's loop, normally well under a millisecond).
const FINAL_FIGURES_WAIT: Duration = Duration::from_secs(1);

/// A running (or ended) tunnel. Dropping it stops the tunnel in the background; call [`Tunnel::stop`] to
/// wait until the local port is closed.
pub struct Tunnel {
    status: watch::Receiver<TunnelStatus>,
    counters: Arc<Mutex<Counters>>,
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
}

/// The bytes a tunnel carried: shared by the [`TunnelDriver`], which keeps it, and the [`Tunnel`] handle, which
/// reads it on every [`Tunnel::status`] call, so the figures are as fresh as the session's own.
#[derive(Default)]
struct Counters {
    /// Exact totals of the sessions that ended (one per reconnect with `autoconnect 2`).
    ended: (u64, u64),
    /// The running session's figures, as its endpoint publishes them (every
    /// [`COUNTER_REFRESH`](crate::status::COUNTER_REFRESH), and once more, exact, when it ends).
    live: Option<SharedStats>,
}

impl Counters {
    /// (sent, received): the ended sessions plus the running one.
    fn totals(&self) -> (u64, u64) {
        let (mut sent, mut received) = self.ended;
        if let Some(st) = self.live.as_ref().and_then(|l| lock(l).clone()) {
            sent += st.bytes_sent;
            received += st.bytes_received;
        }
        (sent, received)
    }

    /// The running session ended: its figures (final once its endpoint dropped it) join the totals.
    fn end_session(&mut self) {
        if let Some(st) = self.live.take().and_then(|l| lock(&l).clone()) {
            self.ended.0 += st.bytes_sent;
            self.ended.1 += st.bytes_received;
        }
    }
}

impl Tunnel {
    /// Validates `cfg`, binds the local port (a port in use fails here, with `ErrorKind::PortInUse`) and
    /// spawns the tunnel on the current tokio runtime. Returns at once: logging in, reaching the device and
    /// the handshake happen in the background and show in [`Tunnel::status`] (state `Connecting`, then
    /// `Connected`, or `Failed` with `last_error`).
    pub async fn start(cfg: InitiatorConfig) -> Result<Tunnel> {
        cfg.credential()
            .map_err(|e| Error::new(ErrorKind::InvalidConfig, e.to_string()))?;
        let (server, server_key) = session_setup::server_and_key(&cfg.server, &cfg.server_key)?;
        let bind = SocketAddr::new(cfg.bind_address, cfg.local_port);
        let listener = TcpListener::bind(bind).await.map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::AddrInUse {
                ErrorKind::PortInUse
            } else {
                ErrorKind::InvalidConfig
            };
            Error::new(kind, format!("cannot listen on {bind}: {e}"))
        })?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        let status = TunnelStatus {
            name: cfg.display_name(),
            device_id: cfg.device_id.to_string(),
            state: TunnelState::Connecting,
            local_endpoint: local_addr.to_string(),
            path: None,
            path_family: None,
            encryption: cfg.encryption.name().to_string(),
            aead: None,
            peer_fingerprint: None,
            peer_endpoint: None,
            session_id: None,
            local_udp_port: None,
            bytes_sent: 0,
            bytes_received: 0,
            rtt_ms: None,
            packets_lost: 0,
            streams_open: 0,
            started_at: clock::now_rfc3339(),
            connected_at: None,
            peer_silent_ms: None,
            key_updates_sent: 0,
            key_updates_received: 0,
            reconnect_attempts: 0,
            last_error: None,
        };
        let trust = InitiatorTrust::load(
            cfg.key_file.as_deref(),
            cfg.device_key.as_deref(),
            cfg.accept_key.as_deref(),
            cfg.trust_first_use,
        )?;
        log::info!("this installation's key: {}", trust.public().fingerprint());
        let (status_tx, status_rx) = watch::channel(status);
        let (stop_tx, stop_rx) = watch::channel(false);
        let counters = Arc::new(Mutex::new(Counters::default()));
        let driver = TunnelDriver {
            cfg,
            servers: server,
            server_key,
            trust,
            status: status_tx,
            counters: counters.clone(),
        };
        tokio::spawn(driver.run(listener, stop_rx));
        Ok(Tunnel {
            status: status_rx,
            counters,
            local_addr,
            stop: stop_tx,
        })
    }

    /// A snapshot. `bytes_sent` and `bytes_received` are read from the session itself: at most
    /// [`COUNTER_REFRESH`](crate::status::COUNTER_REFRESH) behind the traffic while it runs, and the
    /// exact totals once the tunnel has ended. The other figures (RTT, losses, streams) follow within
    /// one more refresh.
    pub fn status(&self) -> TunnelStatus {
        let mut status = self.status.borrow().clone();
        let (sent, received) = lock(&self.counters).totals();
        status.bytes_sent = sent;
        status.bytes_received = received;
        status
    }

    /// Notified on every state or path change (not on counter changes).
    pub fn watch(&self) -> watch::Receiver<TunnelStatus> {
        self.status.clone()
    }

    /// The bound local address (the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the tunnel: closes the local port and every stream, tells the peer, and returns once the port
    /// is closed. Idempotent.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let mut rx = self.status.clone();
        let _ = rx.wait_for(|s| s.state.is_final()).await;
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// How a connected session ended.
enum Outcome {
    Stopped,
    Lost(Error),
    Ended(LastError),
}

/// A session granted by the server, with the endpoint that carries it.
struct ActiveSession {
    endpoint: Endpoint,
    session_id: u64,
    relay: SocketAddr,
    notices: mpsc::UnboundedReceiver<Notice>,
    control: mpsc::UnboundedReceiver<ServerMsg>,
    /// Written by the endpoint every `COUNTER_REFRESH`, and a last time when it drops the session.
    stats: SharedStats,
    /// The router's mapping of this session's UDP port (a candidate the peer may reach us on), deleted
    /// when the session ends.
    port_mapper: Option<PortMapper>,
    /// End to end: what the device must prove, and the pin to write once it did.
    expectation: Option<Expectation>,
}

impl ActiveSession {
    /// Carries an accepted local connection as a new stream.
    fn open_stream(&self, tcp: TcpStream) {
        self.endpoint.send(Command::OpenStream {
            session_id: self.session_id,
            tcp,
        });
    }
}

/// What [`TunnelDriver::carry`] learns about the session while carrying it.
struct SessionProgress {
    /// The handshake must finish by then.
    handshake_deadline: tokio::time::Instant,
    connected: bool,
    /// When this session came up: silence before it (the handshake) is not the device going quiet.
    up_since: Option<Instant>,
    /// When bytes last moved, and the byte total then (for the idle limit).
    last_activity: (Instant, u64),
    /// Both true when a relayed session dies: then the server (the relay) is the likely cause.
    relayed: bool,
    server_gone: bool,
}

impl SessionProgress {
    fn new() -> Self {
        SessionProgress {
            handshake_deadline: tokio::time::Instant::now() + HANDSHAKE_WAIT,
            connected: false,
            up_since: None,
            last_activity: (Instant::now(), 0),
            relayed: true,
            server_gone: false,
        }
    }
}

/// The task behind a [`Tunnel`]: sets sessions up, carries them and publishes the status.
struct TunnelDriver {
    cfg: InitiatorConfig,
    servers: Arc<ServerList>,
    server_key: [u8; 32],
    /// This installation's key and its pins of device keys.
    trust: InitiatorTrust,
    status: watch::Sender<TunnelStatus>,
    counters: Arc<Mutex<Counters>>,
}

/// What changes while a tunnel runs, kept apart from [`TunnelDriver`] so that setting up a session
/// (which borrows the driver) and accepting connections (which changes this) can run at once.
struct TunnelRun {
    local: LocalListener,
    stop: watch::Receiver<bool>,
    connected_once: bool,
    started: Instant,
}

/// The tunnel's local port, and the connections accepted on it while no session was up.
struct LocalListener {
    listener: TcpListener,
    /// `restrict_ip`: the one address that may connect, when set (and not unspecified).
    restrict: Option<IpAddr>,
    /// Connections accepted while no session was up, with when they arrived.
    waiting: VecDeque<(TcpStream, Instant)>,
}

impl LocalListener {
    /// Accepts one connection, honouring `restrict` (connections from other addresses are closed).
    async fn accept_one(&self) -> Option<TcpStream> {
        let restrict = self.restrict;
        match self.listener.accept().await {
            Ok((tcp, peer)) => {
                if restrict.is_some_and(|ip| !ip.is_unspecified() && ip != peer.ip()) {
                    log::warn!(
                        "refused a connection from {peer}: only {} may use this tunnel",
                        restrict.unwrap_or(peer.ip())
                    );
                    return None;
                }
                Some(tcp)
            }
            Err(e) => {
                log::debug!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                None
            }
        }
    }

    /// While no session is up, keeps accepting so clients are not refused; they wait (bounded) for one.
    async fn accept_waiting(&mut self) {
        loop {
            if let Some(tcp) = self.accept_one().await {
                self.forget_expired();
                self.waiting.push_back((tcp, Instant::now()));
            }
        }
    }

    /// Closes the connections that waited longer than [`PENDING_CONNECTION_WAIT`] for a session.
    fn forget_expired(&mut self) {
        self.waiting
            .retain(|(_, t)| t.elapsed() < PENDING_CONNECTION_WAIT);
    }
}

impl TunnelDriver {
    async fn run(self, listener: TcpListener, stop: watch::Receiver<bool>) {
        let mut run = TunnelRun {
            local: LocalListener {
                listener,
                restrict: self.cfg.restrict_ip,
                waiting: VecDeque::new(),
            },
            stop,
            connected_once: false,
            started: Instant::now(),
        };
        let mut backoff = BACKOFF_START;
        let final_state = loop {
            if *run.stop.borrow() {
                break (TunnelState::Stopped, None);
            }
            let attempt = tokio::select! {
                r = self.establish() => r,
                _ = run.stop.changed() => break (TunnelState::Stopped, None),
                _ = run.local.accept_waiting() => continue,
            };
            let err = match attempt {
                Ok(session) => {
                    backoff = BACKOFF_START;
                    match self.carry(session, &mut run).await {
                        Outcome::Stopped => break (TunnelState::Stopped, None),
                        Outcome::Ended(why) => break (TunnelState::Stopped, Some(why)),
                        Outcome::Lost(e) => e,
                    }
                }
                Err(e) => e,
            };
            if !self.will_retry(&err) {
                break (TunnelState::Failed, Some(last_error(&err)));
            }
            Self::back_off(backoff, &mut run).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        };
        // Close the port before announcing the final state: `stop` returns when the port is free.
        drop(run);
        let (state, error) = final_state;
        self.set(|s| {
            s.state = state;
            s.path = None;
            s.path_family = None;
            s.peer_silent_ms = None;
            s.streams_open = 0;
            if error.is_some() {
                s.last_error = error;
            }
        });
    }

    fn set(&self, f: impl FnOnce(&mut TunnelStatus)) {
        self.status.send_modify(f);
    }

    /// Reports `err`; true (and the status says `Reconnecting`) when the tunnel tries again.
    fn will_retry(&self, err: &Error) -> bool {
        let retry = self.cfg.autoconnect == AutoConnect::Reconnect && is_transient(err.kind);
        log::warn!("{}", err.message);
        self.set(|s| s.last_error = Some(last_error(err)));
        if retry {
            self.set(|s| {
                s.state = TunnelState::Reconnecting;
                s.path = None;
                s.path_family = None;
                s.peer_silent_ms = None;
                s.reconnect_attempts += 1;
            });
        }
        retry
    }

    /// Waits `backoff` (or until stopped) before the next attempt, accepting connections meanwhile.
    async fn back_off(backoff: Duration, run: &mut TunnelRun) {
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                _ = run.stop.changed() => break,
                _ = run.local.accept_waiting() => {}
            }
        }
    }

    /// Logs in, asks for the device and sets up the session on a new endpoint, through the first server
    /// of the list that can be reached.
    async fn establish(&self) -> Result<ActiveSession> {
        on_first_reachable!(self.servers, |server| self.establish_via(server).await)
    }

    async fn establish_via(&self, server: &str) -> Result<ActiveSession> {
        let server_addr = net_util::resolve(server).await?;
        // The UDP socket and the router's port mapping come first, so that asking the router runs
        // while we log in instead of after it.
        let (endpoint, mut port_mapper) = session_setup::start_endpoint(server_addr).await?;
        let mapping_started = tokio::time::Instant::now();
        let mut control = self.log_in(server).await?;
        // The router's mapping is one more candidate, if it answers quickly.
        let local_udp = endpoint.local_addr().port();
        let local_candidates = session_setup::local_candidates(
            server_addr,
            endpoint.local_addr(),
            port_mapper.as_mut(),
            crate::portmap::INITIATOR_WAIT.saturating_sub(mapping_started.elapsed()),
        )
        .await;
        let grant = self
            .ask_for_session(&mut control, server_addr, local_candidates)
            .await?;
        let expectation = self.expectation(&grant)?;
        let added = session_setup::add_session(
            &endpoint,
            Role::Initiator,
            &grant,
            self.cfg.max_outstanding,
            None,
            expectation.as_ref().map(|e| self.trust.peer_keys(e)),
        );
        lock(&self.counters).live = Some(added.stats.clone());
        self.set(|s| {
            s.session_id = Some(format!("{:016x}", grant.session_id));
            s.local_udp_port = Some(local_udp);
        });
        Ok(ActiveSession {
            endpoint,
            session_id: grant.session_id,
            relay: grant.relay,
            notices: added.notices,
            control: crate::control_channel::spawn_reader(control),
            stats: added.stats,
            port_mapper,
            expectation,
        })
    }

    /// Whether the session runs end to end, and which device key it expects (docs/E2E-TRUST.md):
    /// mode 3 with a pin or a seed (or, when trusting the server on first use was asked for, the key
    /// it introduced). An unknown device, or a pinned one the server introduces without a key, is
    /// refused here, before any packet.
    fn expectation(&self, grant: &ParsedGrant) -> Result<Option<Expectation>> {
        if grant.mode != EncryptionMode::ChaCha20Poly1305 {
            return Ok(None);
        }
        let expectation = self.trust.expectation(grant.uid, grant.peer_key)?;
        if expectation.is_none() {
            log::warn!(
                "device {} has no key (trusting the server on first use): this session uses the legacy handshake, which the server could read",
                grant.uid
            );
        }
        Ok(expectation)
    }

    /// Opens the control connection and logs in.
    async fn log_in(&self, server: &str) -> Result<ControlClient> {
        let mut control = ControlClient::connect(server, &self.server_key, CONTROL_TIMEOUT).await?;
        let credential = self
            .cfg
            .credential()
            .map_err(|e| Error::new(ErrorKind::InvalidConfig, e.to_string()))?;
        let login = ClientMsg::Login {
            user: self.cfg.user.clone(),
            credential,
            initiator_key: Some(self.trust.public().to_base64()),
        };
        match control.request(&login).await? {
            ServerMsg::LoginOk { .. } => {}
            other => return Err(unexpected(other, "login")),
        }
        log::info!("logged in to {server} as {}", self.cfg.user);
        Ok(control)
    }

    /// Asks the server for a session with the device, offering `local_candidates`.
    async fn ask_for_session(
        &self,
        control: &mut ControlClient,
        server_addr: SocketAddr,
        local_candidates: Vec<SocketAddr>,
    ) -> Result<ParsedGrant> {
        let connect = ClientMsg::Connect {
            uid: self.cfg.device_id,
            mode: self.cfg.encryption,
            local_candidates,
        };
        let grant = match tokio::time::timeout(CONTROL_TIMEOUT, control.request(&connect)).await {
            Ok(Ok(ServerMsg::Session(grant))) => ParsedGrant::parse(&grant, server_addr)?,
            Ok(Ok(other)) => return Err(unexpected(other, "connect")),
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::SessionFailed,
                    "the server did not answer the connect request in time",
                ))
            }
        };
        log::info!(
            "session {:016x} granted for {} ({})",
            grant.session_id,
            self.cfg.device_id,
            grant.mode
        );
        Ok(grant)
    }

    /// Carries streams over a granted session until it ends.
    async fn carry(&self, mut session: ActiveSession, run: &mut TunnelRun) -> Outcome {
        let mut progress = SessionProgress::new();
        let mut refresh = tokio::time::interval(STATUS_REFRESH);
        let outcome = loop {
            let ended = tokio::select! {
                notice = session.notices.recv() => self.on_notice(notice, &session, &mut progress, run),
                msg = session.control.recv() => {
                    Self::on_server_msg(msg, &mut session, &mut progress);
                    None
                }
                accepted = run.local.accept_one() => {
                    if let Some(tcp) = accepted {
                        Self::on_accepted(tcp, &session, &progress, &mut run.local);
                    }
                    None
                }
                _ = refresh.tick() => self.on_refresh(&session, &mut progress, run),
                _ = run.stop.changed() => Some(Outcome::Stopped),
            };
            if let Some(outcome) = ended {
                break outcome;
            }
        };
        self.close(session).await;
        outcome
    }

    /// What the endpoint says about the session; the outcome when it has ended.
    fn on_notice(
        &self,
        notice: Option<Notice>,
        session: &ActiveSession,
        progress: &mut SessionProgress,
        run: &mut TunnelRun,
    ) -> Option<Outcome> {
        match notice {
            Some(Notice::Connected) => self.on_connected(session, progress, run),
            Some(Notice::PathChanged(p)) => {
                let (kind, peer) = match p {
                    ProtoPath::Relayed => (PathKind::Relayed, session.relay),
                    ProtoPath::Direct(a) => (PathKind::Direct, a),
                };
                progress.relayed = kind == PathKind::Relayed;
                log::info!("path is now {kind:?} ({peer})");
                let family = (kind != PathKind::Relayed).then(|| PathFamily::of(peer));
                self.set(|s| {
                    s.path = Some(kind);
                    s.path_family = family;
                    s.peer_endpoint = Some(peer.to_string());
                });
            }
            Some(Notice::Closed(reason)) => {
                let relay_lost = progress.relayed && progress.server_gone;
                return Some(Outcome::Lost(close_error(
                    &reason,
                    relay_lost,
                    self.cfg.device_id,
                )));
            }
            Some(_) => {}
            None => {
                return Some(Outcome::Lost(Error::new(
                    ErrorKind::Internal,
                    "the session endpoint ended",
                )))
            }
        }
        None
    }

    /// The handshake finished: the tunnel is up, and the connections that waited for it go first.
    fn on_connected(
        &self,
        session: &ActiveSession,
        progress: &mut SessionProgress,
        run: &mut TunnelRun,
    ) {
        progress.connected = true;
        progress.up_since = Some(Instant::now());
        let reconnect = run.connected_once;
        run.connected_once = true;
        // The endpoint published the figures before telling us.
        let (aead, peer_key) = lock(&session.stats)
            .as_ref()
            .map_or((None, None), |st| (st.aead, st.peer_key));
        self.note_peer_key(session, peer_key);
        self.set(|s| {
            s.state = TunnelState::Connected;
            s.aead = aead.map(|a| a.name().to_string());
            s.peer_fingerprint = peer_key.map(|k| k.fingerprint().to_string());
            s.peer_silent_ms = Some(0);
            s.path = Some(PathKind::Relayed);
            s.path_family = None;
            s.peer_endpoint = Some(session.relay.to_string());
            s.connected_at = Some(clock::now_rfc3339());
            s.last_error = None;
        });
        log::info!(
            "{} to {}",
            if reconnect {
                "reconnected"
            } else {
                "connected"
            },
            self.cfg.device_id
        );
        // Oldest first.
        for (tcp, _) in run.local.waiting.drain(..) {
            session.open_stream(tcp);
        }
    }

    /// End to end: logs the key the device proved and pins it when `known_devices` does not hold it
    /// yet (a seed, first use, or an accepted rotation). The session proved the expected key, so the
    /// proved key is the one to pin.
    fn note_peer_key(&self, session: &ActiveSession, proved: Option<PublicStaticKey>) {
        let (Some(expectation), Some(proved)) = (&session.expectation, proved) else {
            return;
        };
        let uid = self.cfg.device_id;
        match expectation.pin_after {
            Some(how) if expectation.expected.matches(&proved) => {
                match self.trust.pin(uid, proved, how) {
                    Ok(()) => log::info!("peer key {} (new pin, {how})", proved.fingerprint()),
                    Err(e) => log::warn!("peer key {}: {e}", proved.fingerprint()),
                }
            }
            _ => log::info!("peer key {} (pinned)", proved.fingerprint()),
        }
    }

    /// A message from the server on the control connection (`None`: the connection closed).
    fn on_server_msg(
        msg: Option<ServerMsg>,
        session: &mut ActiveSession,
        progress: &mut SessionProgress,
    ) {
        match msg {
            Some(ServerMsg::Punch {
                session_id,
                candidates,
            }) if session_id == session.session_id => {
                log::debug!("punching toward {} candidate(s)", candidates.len());
                session.endpoint.send(Command::Punch {
                    session_id,
                    candidates,
                });
            }
            Some(ServerMsg::Error { code, message }) => log::warn!("server: {message} ({code:?})"),
            Some(_) => {}
            // The control connection is only needed to set up the session: a live session
            // outlives a server restart.
            None => {
                progress.server_gone = true;
                session.control = closed_receiver();
            }
        }
    }

    /// A local connection: carried at once when the session is up, else it waits for it.
    fn on_accepted(
        tcp: TcpStream,
        session: &ActiveSession,
        progress: &SessionProgress,
        local: &mut LocalListener,
    ) {
        if progress.connected {
            session.open_stream(tcp);
        } else {
            local.waiting.push_back((tcp, Instant::now()));
        }
    }

    /// Every [`STATUS_REFRESH`]: publishes the figures and applies the time limits (handshake,
    /// lifetime, idle); the outcome when one of them ends the session.
    fn on_refresh(
        &self,
        session: &ActiveSession,
        progress: &mut SessionProgress,
        run: &mut TunnelRun,
    ) -> Option<Outcome> {
        let snapshot = lock(&session.stats).clone();
        if let Some(st) = snapshot {
            let moved = st.bytes_sent + st.bytes_received;
            if moved != progress.last_activity.1 {
                progress.last_activity = (Instant::now(), moved);
            }
            self.publish_figures(&st, progress.up_since);
        }
        run.local.forget_expired();
        if !progress.connected && tokio::time::Instant::now() > progress.handshake_deadline {
            return Some(Outcome::Lost(Error::new(
                ErrorKind::P2pFailed,
                "the device did not complete the handshake in time",
            )));
        }
        self.time_limit_reached(run.started, progress.last_activity.0)
            .map(Outcome::Ended)
    }

    /// The configured lifetime (since the tunnel started) or idle limit (since bytes last moved), when
    /// one of them is reached.
    fn time_limit_reached(&self, started: Instant, last_activity: Instant) -> Option<LastError> {
        let lifetime_min = self.cfg.lifetime_min;
        let idle_limit_sec = self.cfg.idle_limit_sec;
        if lifetime_min > 0
            && started.elapsed() >= Duration::from_secs(60 * u64::from(lifetime_min))
        {
            return Some(ended(
                end_reason::LIFETIME_ENDED,
                format!("lifetime of {lifetime_min} minute(s) ended"),
            ));
        }
        if idle_limit_sec > 0
            && last_activity.elapsed() >= Duration::from_secs(u64::from(idle_limit_sec))
        {
            return Some(ended(
                end_reason::IDLE_LIMIT,
                format!("no traffic for {idle_limit_sec} second(s): idle limit reached"),
            ));
        }
        None
    }

    /// Ends the session: tells the peer, collects the final figures, stops the endpoint and deletes the
    /// router's mapping (before the tunnel reports its end).
    async fn close(&self, mut session: ActiveSession) {
        // Let the endpoint send the CLOSE and drop the session: it writes the session's final figures
        // when it drops it, and the notice sender goes with it. Only then end the endpoint (its
        // shutdown would drop the session without those figures).
        session.endpoint.send(Command::CloseSession {
            session_id: session.session_id,
            code: 0,
            text: "initiator closed".into(),
        });
        let dropped = tokio::time::timeout(FINAL_FIGURES_WAIT, async {
            while session.notices.recv().await.is_some() {}
        })
        .await;
        if dropped.is_err() {
            log::debug!(
                "the session's final figures did not arrive in time; the totals may be short"
            );
        }
        session.endpoint.send(Command::Shutdown);
        if let Some(pm) = session.port_mapper.take() {
            pm.stop().await;
        }
        let last = lock(&session.stats).clone();
        if let Some(st) = last {
            // The session has ended: its last figures, but no more state changes from its silence.
            self.publish_figures(&st, None);
        }
        lock(&self.counters).end_session();
    }

    /// Copies the session's figures and the byte totals into the status watch. While the session is up
    /// (`up_since`, when it came up), also the device's silence, and the switch between `Connected` and
    /// `Degraded` at [`DEGRADED_AFTER`]. Watchers wake only on that switch (they wait for state
    /// changes; figures change constantly).
    fn publish_figures(&self, st: &SessionStats, up_since: Option<Instant>) {
        let (sent, received) = lock(&self.counters).totals();
        let device = self.cfg.device_id;
        self.status.send_if_modified(|s| {
            s.bytes_sent = sent;
            s.bytes_received = received;
            s.rtt_ms = st.rtt.map(|r| r.as_secs_f64() * 1000.0);
            s.packets_lost = st.packets_lost;
            s.streams_open = st.streams_open;
            s.key_updates_sent = st.key_updates_sent;
            s.key_updates_received = st.key_updates_received;
            let Some(up_since) = up_since.filter(|_| s.state.is_up()) else {
                return false;
            };
            let silent = st.peer_silent.min(up_since.elapsed());
            s.peer_silent_ms = Some(u64::try_from(silent.as_millis()).unwrap_or(u64::MAX));
            let state = if silent >= DEGRADED_AFTER {
                TunnelState::Degraded
            } else {
                TunnelState::Connected
            };
            if state == s.state {
                return false;
            }
            if state == TunnelState::Degraded {
                log::info!(
                    "no packet from {device} for {} s: degraded",
                    silent.as_secs()
                );
            } else {
                log::info!("heard from {device} again");
            }
            s.state = state;
            true
        });
    }
}

fn ended(kind: &str, message: String) -> LastError {
    LastError {
        kind: kind.to_string(),
        message,
    }
}

fn last_error(e: &Error) -> LastError {
    LastError::from(e)
}

/// Errors worth retrying with `autoconnect 2`: the network, the server or the device may come back;
/// a wrong password or an unknown device will not.
fn is_transient(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ServerUnreachable
            | ErrorKind::DeviceOffline
            | ErrorKind::SessionFailed
            | ErrorKind::PeerTimeout
            | ErrorKind::P2pFailed
            | ErrorKind::UdpBind
            | ErrorKind::Throttled
            // A server limit (sessions per user, sessions being set up) frees up as sessions end.
            | ErrorKind::LimitReached
            | ErrorKind::Internal
    )
}

/// What ended a session, in the user's words. `relay_lost`: the session was relayed and the server's
/// control connection had closed, so the relay (not the device) most likely went away.
fn close_error(reason: &CloseReason, relay_lost: bool, uid: Uid) -> Error {
    match reason {
        CloseReason::IdleTimeout if relay_lost => Error::new(
            ErrorKind::PeerTimeout,
            "the relay stopped forwarding: the server closed its connection and the relayed session \
             went silent (peer timed out)",
        ),
        CloseReason::IdleTimeout => Error::new(
            ErrorKind::PeerTimeout,
            "the device stopped answering (peer timed out)",
        ),
        CloseReason::HandshakeTimeout => Error::new(
            ErrorKind::P2pFailed,
            "the device did not complete the handshake",
        ),
        CloseReason::Remote { text, .. } => Error::new(
            ErrorKind::PeerTimeout,
            format!("the device closed the session: {text}"),
        ),
        CloseReason::Local => Error::new(ErrorKind::PeerTimeout, "the session was closed"),
        CloseReason::PeerRefused(refused) => device_trust::refused_error(uid, refused),
    }
}

/// An answer [`ControlClient::request`] did not turn into an error, but not the one asked for.
fn unexpected(msg: ServerMsg, during: &str) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("unexpected server message during {during}: {msg:?}"),
    )
}

fn closed_receiver() -> mpsc::UnboundedReceiver<ServerMsg> {
    mpsc::unbounded_channel().1
}
