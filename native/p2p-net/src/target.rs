//! The target (device) daemon: registers a UID with the server, accepts the sessions initiators ask for,
//! and forwards each of their streams to the local service (`proxy_dest_ip:proxy_dest_port`).
//!
//! One UDP [`Endpoint`] carries every session, so the device's public mapping is the same for all of them.
//! The control connection is only needed to set sessions up: when it drops (server restart, network
//! outage) the daemon reconnects and registers again with backoff while running sessions go on.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use p2p_config::TargetConfig;
use p2p_proto::control::{ClientMsg, ServerMsg, SessionGrant};
use p2p_proto::crypto::StaticKey;
use p2p_proto::session::CloseReason;
use p2p_proto::wire::Role;
use tokio::sync::{mpsc, watch};

use crate::control_channel::{ControlClient, ControlReadHalf, ControlWriteHalf, KEEPALIVE_EVERY};
use crate::device_trust;
use crate::endpoint::{Command, Endpoint, Notice};
use crate::error::{Error, ErrorKind, Result};
use crate::grant::ParsedGrant;
use crate::portmap::PortMapper;
use crate::server_list::{on_first_reachable, ServerList};
use crate::session_setup::{self, lock, BACKOFF_MAX, BACKOFF_START, CONTROL_TIMEOUT};
use crate::status::{LastError, TargetState, TargetStatus};
use crate::{clock, net_util};

/// A server that has not said anything (not even `Pong`) for this long is gone, even if TCP has not
/// noticed (a silently dropped connection would otherwise keep the device unreachable for hours).
const SILENCE_LIMIT: Duration = Duration::from_secs(3 * KEEPALIVE_EVERY.as_secs());

/// A running (or ended) target daemon. Dropping it stops the daemon in the background.
pub struct Target {
    status: watch::Receiver<TargetStatus>,
    stop: watch::Sender<bool>,
}

impl Target {
    /// Validates `cfg` and starts the daemon on the current tokio runtime. Returns at once: connecting
    /// and registering happen in the background and show in [`Target::status`]; use
    /// [`Target::registered`] to wait for the first registration.
    ///
    /// Errors here are configuration errors ([`ErrorKind::InvalidConfig`]): no server, a bad server key,
    /// an empty secret, port 0 as the service port.
    pub async fn start(cfg: TargetConfig) -> Result<Target> {
        let invalid = |m: String| Error::new(ErrorKind::InvalidConfig, m);
        let (server, server_key) = session_setup::server_and_key(&cfg.server, &cfg.server_key)?;
        if cfg.secret.is_empty() {
            return Err(invalid(format!("no device secret for UID {}", cfg.uid)));
        }
        if cfg.proxy_dest_port == 0 {
            return Err(invalid(
                "proxy_dest_port must be the local service's port (1-65535), not 0".into(),
            ));
        }
        let service = SocketAddr::new(cfg.proxy_dest_ip, cfg.proxy_dest_port);
        let key_path = device_trust::device_key_path(cfg.device_key_file.as_deref(), cfg.uid)?;
        let device_key = device_trust::load_key(&key_path)?;
        if let Some(path) = &cfg.authorized_initiators {
            // Checked now so a typo fails the start; read again for every session, so edits apply.
            let listed = device_trust::load_authorized_initiators(path)?;
            if listed.is_empty() {
                log::warn!(
                    "{} lists no initiator key: device {} refuses every session",
                    path.display(),
                    cfg.uid
                );
            } else {
                log::info!(
                    "device {} takes end-to-end sessions from the {} initiator key(s) in {}",
                    cfg.uid,
                    listed.len(),
                    path.display()
                );
            }
        }
        log::info!(
            "device {} key: {} ({})",
            cfg.uid,
            device_key.public().fingerprint(),
            key_path.display()
        );
        let status = TargetStatus {
            uid: cfg.uid.to_string(),
            state: TargetState::Connecting,
            service: service.to_string(),
            server: server.display(),
            local_udp_port: None,
            sessions_open: 0,
            sessions_total: 0,
            started_at: clock::now_rfc3339(),
            registered_at: None,
            reregistrations: 0,
            last_error: None,
        };
        let (status_tx, status_rx) = watch::channel(status);
        let (stop_tx, stop_rx) = watch::channel(false);
        let daemon = Daemon {
            cfg,
            device_key,
            servers: server,
            server_key,
            service,
            status: Arc::new(status_tx),
            endpoint: None,
            sessions: Arc::new(Mutex::new(HashSet::new())),
            registered_once: false,
            port_mapper: None,
        };
        tokio::spawn(daemon.run(stop_rx));
        Ok(Target {
            status: status_rx,
            stop: stop_tx,
        })
    }

    /// A snapshot of the daemon's state.
    pub fn status(&self) -> TargetStatus {
        self.status.borrow().clone()
    }

    /// Notified on every change of the status.
    pub fn watch(&self) -> watch::Receiver<TargetStatus> {
        self.status.clone()
    }

    /// Waits until the daemon is registered (`Ok`) or has ended (`Err` with the reason). While the server
    /// is unreachable this keeps waiting (the daemon retries): bound it with a timeout if needed.
    pub async fn registered(&self) -> std::result::Result<(), LastError> {
        let mut rx = self.status.clone();
        let outcome = rx
            .wait_for(|s| s.state == TargetState::Registered || s.state.is_final())
            .await
            .map(|s| s.clone());
        match outcome {
            Ok(s) if s.state == TargetState::Registered => Ok(()),
            Ok(s) => Err(s.last_error.unwrap_or_else(stopped)),
            Err(_) => Err(stopped()),
        }
    }

    /// Waits until the daemon has ended (stopped, or failed with an error retrying cannot fix).
    pub async fn wait(&self) -> TargetStatus {
        let mut rx = self.status.clone();
        let _ = rx.wait_for(|s| s.state.is_final()).await;
        let s = rx.borrow().clone();
        s
    }

    /// Stops the daemon: closes every session (telling the initiators) and the control connection.
    /// Returns once it has ended. Idempotent.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        self.wait().await;
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn stopped() -> LastError {
    LastError {
        kind: crate::status::end_reason::STOPPED.into(),
        message: "the target daemon was stopped".into(),
    }
}

/// Errors that registering again cannot fix: the daemon ends with them.
fn is_fatal(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::BadSecret
            | ErrorKind::PeerKeyMismatch
            | ErrorKind::UnknownUid
            | ErrorKind::ServerKeyMismatch
            | ErrorKind::InvalidConfig
            | ErrorKind::UdpBind
            | ErrorKind::BadUser
            | ErrorKind::AuthFailed
            | ErrorKind::NotShared
    )
}

/// How a registered control connection ended.
enum Served {
    Stopped,
    Lost(Error),
}

struct Daemon {
    cfg: TargetConfig,
    /// The device's static key: the end-to-end handshake proves it to initiators.
    device_key: StaticKey,
    servers: Arc<ServerList>,
    server_key: [u8; 32],
    service: SocketAddr,
    /// Shared with the per-session watcher tasks, which update the session counts.
    status: Arc<watch::Sender<TargetStatus>>,
    /// Created on the first connection attempt and kept for the daemon's life: sessions outlive
    /// control connections.
    endpoint: Option<Endpoint>,
    /// Sessions the endpoint is running (removed by their watcher when they close).
    sessions: Arc<Mutex<HashSet<u64>>>,
    registered_once: bool,
    /// The router's mapping of the endpoint's port (a candidate initiators may reach us on), kept
    /// (renewed) as long as the endpoint.
    port_mapper: Option<PortMapper>,
}

impl Daemon {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_START;
        let (state, error) = loop {
            if *stop.borrow() {
                break (TargetState::Stopped, None);
            }
            let attempt = tokio::select! {
                r = self.register() => r,
                _ = stop.changed() => break (TargetState::Stopped, None),
            };
            let err = match attempt {
                Ok((reader, writer, server_addr)) => {
                    backoff = BACKOFF_START;
                    match self.serve(reader, writer, server_addr, &mut stop).await {
                        Served::Stopped => break (TargetState::Stopped, None),
                        Served::Lost(e) => e,
                    }
                }
                Err(e) if is_fatal(e.kind) => {
                    log::error!("{}", e.message);
                    break (TargetState::Failed, Some(LastError::from(&e)));
                }
                Err(e) => e,
            };
            self.report_retry(&err, backoff);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        };
        self.shut_down(state, error).await;
    }

    fn set(&self, f: impl FnOnce(&mut TargetStatus)) {
        self.status.send_modify(f);
    }

    /// Reports an attempt that failed (or a connection that was lost) before the next attempt.
    fn report_retry(&self, err: &Error, backoff: Duration) {
        log::warn!(
            "{}; registering again in {} ms",
            err.message,
            backoff.as_millis()
        );
        self.set(|s| {
            s.state = if s.registered_at.is_some() {
                TargetState::Reconnecting
            } else {
                TargetState::Connecting
            };
            s.last_error = Some(LastError::from(err));
        });
    }

    /// Closes every session with a CLOSE to its initiator and deletes the router's mapping with the
    /// socket it pointed to, then announces the end.
    async fn shut_down(&mut self, state: TargetState, error: Option<LastError>) {
        if let Some(ep) = self.endpoint.take() {
            ep.send(Command::Shutdown);
        }
        if let Some(pm) = self.port_mapper.take() {
            pm.stop().await;
        }
        self.set(|s| {
            s.state = state;
            if error.is_some() {
                s.last_error = error;
            }
        });
    }

    /// The shared endpoint, started on first use (its socket's family follows the server's address).
    async fn endpoint(&mut self, server_addr: SocketAddr) -> Result<Endpoint> {
        if let Some(ep) = &self.endpoint {
            return Ok(ep.clone());
        }
        let (ep, port_mapper) = session_setup::start_endpoint(server_addr).await?;
        let port = ep.local_addr().port();
        self.set(|s| s.local_udp_port = Some(port));
        self.endpoint = Some(ep.clone());
        self.port_mapper = port_mapper;
        Ok(ep)
    }

    /// Connects the control channel and registers the UID.
    async fn register(
        &mut self,
    ) -> Result<(
        ControlReadHalf<ServerMsg>,
        ControlWriteHalf<ClientMsg>,
        SocketAddr,
    )> {
        let servers = self.servers.clone();
        on_first_reachable!(servers, |server| self.register_via(server).await)
    }

    async fn register_via(
        &mut self,
        server: &str,
    ) -> Result<(
        ControlReadHalf<ServerMsg>,
        ControlWriteHalf<ClientMsg>,
        SocketAddr,
    )> {
        let server_addr = net_util::resolve(server).await?;
        let endpoint = self.endpoint(server_addr).await?;
        let mut control = ControlClient::connect(server, &self.server_key, CONTROL_TIMEOUT).await?;
        let server_addr = control.server_addr();
        // The router's mapping is one more candidate. The target is long-lived, so it can wait for
        // the first answer (NAT-PMP answers in milliseconds, no router in ~2 s).
        let local_candidates = session_setup::local_candidates(
            server_addr,
            endpoint.local_addr(),
            self.port_mapper.as_mut(),
            crate::portmap::TARGET_WAIT,
        )
        .await;
        control
            .send(&ClientMsg::Register {
                uid: self.cfg.uid,
                secret: self.cfg.secret.clone(),
                application_type: self.cfg.application_type,
                local_candidates,
                device_key: Some(self.device_key.public().to_base64()),
            })
            .await?;
        // Not `ControlClient::request`: a refusal is worded here with the UID, and only a refusal
        // (an I/O error keeps its own words).
        match tokio::time::timeout(CONTROL_TIMEOUT, control.recv()).await {
            Ok(Ok(ServerMsg::Registered { .. })) => {}
            Ok(Ok(other)) => return Err(self.registration_refused(other)),
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::ServerUnreachable,
                    format!("server {server} did not answer the registration in time"),
                ))
            }
        }
        log::info!("registered as {} with server {server}", self.cfg.uid);
        self.note_registered();
        let (reader, writer) = control.into_split();
        Ok((reader, writer, server_addr))
    }

    /// The error for an answer to `Register` other than `Registered`.
    fn registration_refused(&self, answer: ServerMsg) -> Error {
        let uid = self.cfg.uid;
        match answer {
            ServerMsg::Error { code, message } => {
                let kind = ErrorKind::from(code);
                let what = match kind {
                    ErrorKind::BadSecret => format!("wrong device secret for UID {uid}"),
                    ErrorKind::UnknownUid => format!("the server does not know device UID {uid}"),
                    ErrorKind::PeerKeyMismatch => {
                        format!("the server holds another key for device UID {uid}")
                    }
                    _ => format!("the server refused to register UID {uid}"),
                };
                Error::new(kind, format!("{what}: {message}"))
            }
            other => Error::new(
                ErrorKind::Internal,
                format!("unexpected server message while registering: {other:?}"),
            ),
        }
    }

    /// The status says `Registered` (and counts a registration again).
    fn note_registered(&mut self) {
        let reconnect = self.registered_once;
        self.registered_once = true;
        self.set(|s| {
            s.state = TargetState::Registered;
            s.registered_at = Some(clock::now_rfc3339());
            s.last_error = None;
            if reconnect {
                s.reregistrations += 1;
            }
        });
    }

    /// Answers the server until the connection ends or the daemon is stopped.
    async fn serve(
        &mut self,
        mut reader: ControlReadHalf<ServerMsg>,
        mut writer: ControlWriteHalf<ClientMsg>,
        server_addr: SocketAddr,
        stop: &mut watch::Receiver<bool>,
    ) -> Served {
        let mut keepalive = tokio::time::interval_at(
            tokio::time::Instant::now() + KEEPALIVE_EVERY,
            KEEPALIVE_EVERY,
        );
        let mut last_heard = Instant::now();
        let served = loop {
            tokio::select! {
                msg = reader.recv() => match msg {
                    Ok(msg) => {
                        last_heard = Instant::now();
                        if let Err(e) = self.on_server_msg(msg, &mut writer, server_addr).await {
                            break Served::Lost(e);
                        }
                    }
                    Err(e) => break Served::Lost(e),
                },
                _ = keepalive.tick() => {
                    if let Err(e) = self.keep_alive(&mut writer, last_heard).await {
                        break Served::Lost(e);
                    }
                }
                _ = stop.changed() => break Served::Stopped,
            }
        };
        writer.shutdown().await;
        served
    }

    /// Every [`KEEPALIVE_EVERY`]: a server silent for [`SILENCE_LIMIT`] is gone; else a `Ping`.
    async fn keep_alive(
        &self,
        writer: &mut ControlWriteHalf<ClientMsg>,
        last_heard: Instant,
    ) -> Result<()> {
        if last_heard.elapsed() >= SILENCE_LIMIT {
            return Err(Error::new(
                ErrorKind::ServerUnreachable,
                format!("server {} stopped answering", self.servers.preferred()),
            ));
        }
        writer.send(&ClientMsg::Ping).await
    }

    async fn on_server_msg(
        &mut self,
        msg: ServerMsg,
        writer: &mut ControlWriteHalf<ClientMsg>,
        server_addr: SocketAddr,
    ) -> Result<()> {
        match msg {
            ServerMsg::Incoming(grant) => {
                let answer = self.accept(&grant, server_addr);
                writer.send(&answer).await
            }
            ServerMsg::Punch {
                session_id,
                candidates,
            } => {
                log::debug!(
                    "session {session_id:016x}: punching toward {} candidate(s)",
                    candidates.len()
                );
                if let Some(ep) = &self.endpoint {
                    ep.send(Command::Punch {
                        session_id,
                        candidates,
                    });
                }
                Ok(())
            }
            ServerMsg::Error { code, message } => {
                log::warn!("server: {message} ({code:?})");
                Ok(())
            }
            ServerMsg::Pong | ServerMsg::Registered { .. } => Ok(()),
            other => {
                log::debug!("ignoring unexpected server message {other:?}");
                Ok(())
            }
        }
    }

    /// Adds the session an initiator asked for to the endpoint; the answer to send to the server.
    fn accept(&mut self, grant: &SessionGrant, server_addr: SocketAddr) -> ClientMsg {
        let session_id = grant.session_id;
        let reject = |reason: String| {
            log::warn!("session {session_id:016x} refused: {reason}");
            ClientMsg::Reject { session_id, reason }
        };
        if grant.uid != self.cfg.uid {
            return reject(format!(
                "this device is {}, not {}",
                self.cfg.uid, grant.uid
            ));
        }
        let parsed = match ParsedGrant::parse(grant, server_addr) {
            Ok(p) => p,
            Err(e) => return reject(e.message),
        };
        let Some(endpoint) = self.endpoint.clone() else {
            return reject("the device's UDP endpoint is not running".into());
        };
        // A repeated `Incoming` (the server retrying) must not start a second session with the same id.
        let fresh = lock(&self.sessions).insert(session_id);
        if !fresh {
            return ClientMsg::Accept { session_id };
        }
        let peer_keys = match device_trust::target_peer_keys(
            &self.device_key,
            parsed.mode,
            parsed.peer_key,
            self.cfg.authorized_initiators.as_deref(),
        ) {
            Ok(keys) => keys,
            Err(reason) => {
                lock(&self.sessions).remove(&session_id);
                return reject(reason);
            }
        };
        let added = session_setup::add_session(
            &endpoint,
            Role::Target,
            &parsed,
            None,
            Some(self.service),
            Some(peer_keys),
        );
        if !added.accepted {
            lock(&self.sessions).remove(&session_id);
            return reject("the device's UDP endpoint has ended".into());
        }
        log::info!(
            "session {session_id:016x} from user '{}' ({}), forwarding to {}",
            parsed.user,
            parsed.mode,
            self.service
        );
        let open = lock(&self.sessions).len() as u32;
        self.set(|s| {
            s.sessions_open = open;
            s.sessions_total += 1;
        });
        tokio::spawn(watch_session(
            session_id,
            added.notices,
            self.sessions.clone(),
            self.status.clone(),
        ));
        ClientMsg::Accept { session_id }
    }
}

/// Logs what happens to one session and forgets it when it closes.
async fn watch_session(
    session_id: u64,
    mut notices: mpsc::UnboundedReceiver<Notice>,
    sessions: Arc<Mutex<HashSet<u64>>>,
    status: Arc<watch::Sender<TargetStatus>>,
) {
    while let Some(notice) = notices.recv().await {
        match notice {
            Notice::Connected => log::info!("session {session_id:016x} connected"),
            Notice::PathChanged(p) => log::info!("session {session_id:016x}: path is now {p:?}"),
            Notice::StreamOpened(s) => log::debug!("session {session_id:016x}: stream {s} opened"),
            Notice::StreamClosed(s) => log::debug!("session {session_id:016x}: stream {s} closed"),
            Notice::Closed(CloseReason::PeerRefused(refused)) => {
                log::warn!("session {session_id:016x} refused: {refused}");
                break;
            }
            Notice::Closed(reason) => {
                log::info!("session {session_id:016x} closed: {reason:?}");
                break;
            }
        }
    }
    let open = {
        let mut set = lock(&sessions);
        set.remove(&session_id);
        set.len() as u32
    };
    status.send_modify(|s| s.sessions_open = open);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control_channel::{generate_server_keypair, ControlServerConn};
    use p2p_proto::control::ErrorCode;
    use tokio::net::TcpListener;

    fn config(server: &str, public: &[u8; 32]) -> TargetConfig {
        use base64::Engine;
        TargetConfig {
            uid: "80:00:00:00:01:00:0A:C2".parse().unwrap(),
            secret: "device-secret".into(),
            server: Some(server.into()),
            server_key: Some(base64::engine::general_purpose::STANDARD.encode(public)),
            proxy_dest_ip: "127.0.0.1".parse().unwrap(),
            proxy_dest_port: 22,
            application_type: 28,
            device_key_file: Some(
                std::env::temp_dir()
                    .join(format!("p2p-net-target-test-{}.key", std::process::id())),
            ),
            authorized_initiators: None,
        }
    }

    /// Accepts one control connection and answers its `Register` with `answer`; returns the request.
    async fn answer_one(
        l: &TcpListener,
        private: &[u8; 32],
        answer: ServerMsg,
    ) -> ControlServerConn {
        let (s, _) = l.accept().await.unwrap();
        let mut conn = ControlServerConn::accept(s, private).await.unwrap();
        match conn.recv().await.unwrap() {
            ClientMsg::Register {
                secret,
                application_type,
                local_candidates,
                ..
            } => {
                assert_eq!(secret, "device-secret");
                assert_eq!(application_type, 28);
                assert!(!local_candidates.is_empty());
            }
            other => panic!("expected Register, got {other:?}"),
        }
        conn.send(&answer).await.unwrap();
        conn
    }

    #[tokio::test]
    async fn wrong_secret_is_fatal_with_a_clear_message() {
        let (private, public) = generate_server_keypair().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let t = Target::start(config(&addr, &public)).await.unwrap();
        let _conn = answer_one(
            &l,
            &private,
            ServerMsg::Error {
                code: ErrorCode::BadSecret,
                message: "bad device secret".into(),
            },
        )
        .await;
        let e = tokio::time::timeout(Duration::from_secs(5), t.registered())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.kind, "BadSecret");
        assert!(
            e.message
                .contains("wrong device secret for UID 80:00:00:00:01:00:0A:C2"),
            "{}",
            e.message
        );
        assert_eq!(t.status().state, TargetState::Failed);
    }

    #[tokio::test]
    async fn registers_again_after_the_server_restarts() {
        let (private, public) = generate_server_keypair().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let uid = "80:00:00:00:01:00:0A:C2".parse().unwrap();
        let t = Target::start(config(&addr, &public)).await.unwrap();
        let conn = answer_one(&l, &private, ServerMsg::Registered { uid }).await;
        t.registered().await.unwrap();
        assert_eq!(t.status().reregistrations, 0);
        assert!(t.status().local_udp_port.is_some());
        // "Restart": drop the connection; the daemon comes back within its first backoff steps.
        drop(conn);
        let _conn2 = tokio::time::timeout(
            Duration::from_secs(5),
            answer_one(&l, &private, ServerMsg::Registered { uid }),
        )
        .await
        .unwrap();
        let mut w = t.watch();
        tokio::time::timeout(
            Duration::from_secs(5),
            w.wait_for(|s| s.state == TargetState::Registered && s.reregistrations == 1),
        )
        .await
        .unwrap()
        .unwrap();
        t.stop().await;
        assert_eq!(t.status().state, TargetState::Stopped);
    }

    #[tokio::test]
    async fn unreachable_server_is_retried_not_fatal() {
        let (_, public) = generate_server_keypair().unwrap();
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().to_string()
        };
        let t = Target::start(config(&addr, &public)).await.unwrap();
        let mut w = t.watch();
        let s = tokio::time::timeout(
            Duration::from_secs(5),
            w.wait_for(|s| s.last_error.is_some()),
        )
        .await
        .unwrap()
        .unwrap()
        .clone();
        assert_eq!(s.state, TargetState::Connecting);
        assert_eq!(s.last_error.unwrap().kind, "ServerUnreachable");
        t.stop().await;
    }

    #[tokio::test]
    async fn missing_server_and_zero_port_are_config_errors() {
        let (_, public) = generate_server_keypair().unwrap();
        let mut c = config("127.0.0.1:1", &public);
        c.proxy_dest_port = 0;
        let e = Target::start(c).await.err().unwrap();
        assert_eq!(e.kind, ErrorKind::InvalidConfig);
        assert!(e.message.contains("proxy_dest_port"), "{e}");
    }
}
