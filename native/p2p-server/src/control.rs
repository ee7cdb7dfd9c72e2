//! One control connection: the Noise handshake, then the message loop of an initiator (`Login`,
//! `CreateAuthHash`, `Connect`) or a target (`Register`, `Accept`, `Reject`).
//!
//! Everything the server sends on a connection goes through one queue drained by a writer task, so the
//! broker (`Incoming`) and the relay (`Punch`) can reach the peer while the reader waits, and messages
//! keep their order (`Session` always before the `Punch` of that session).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use p2p_link::control_channel::{ControlReadHalf, ControlServerConn, ControlWriteHalf};
use p2p_link::udp_socket::canonical;
use p2p_link::LinkError;
use p2p_proto::control::{ClientMsg, Credential, ErrorCode, ServerMsg};
use p2p_proto::crypto::PublicStaticKey;
use p2p_proto::Uid;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use crate::accounts;
use crate::auth::{Auth, LoggedIn, Refusal};
use crate::broker::{Answer, Broker, ConnectRequest};
use crate::metrics::{Metrics, Request};
use crate::relay::ControlTx;

#[derive(Clone, Copy, Debug)]
pub struct ControlLimits {
    /// A connection that has neither logged in nor registered is closed this long after it was accepted,
    /// whatever it sends meanwhile (pings do not extend it).
    pub login_timeout: Duration,
    /// Connections from one source address that have not logged in or registered yet, at most.
    pub max_unauthenticated_per_address: usize,
    /// Connection slots only addresses that logged in or registered lately may take: strangers holding
    /// connections open cannot keep the known users and devices out.
    pub reserved_connections: usize,
    /// An authenticated connection is closed after this long without a message (clients ping every 15 s).
    pub idle_timeout: Duration,
    /// Messages queued to one connection; a peer that does not read is disconnected when it is full.
    pub queue: usize,
    /// Device UIDs one connection may register.
    pub max_registrations: usize,
    /// Malformed messages tolerated on one connection before it is closed.
    pub max_malformed: u32,
}

impl Default for ControlLimits {
    fn default() -> Self {
        ControlLimits {
            login_timeout: Duration::from_secs(15),
            max_unauthenticated_per_address: crate::server::DEFAULT_MAX_CONNECTIONS / 8,
            reserved_connections: crate::server::DEFAULT_MAX_CONNECTIONS / 8,
            idle_timeout: Duration::from_secs(90),
            queue: 64,
            max_registrations: 64,
            max_malformed: 3,
        }
    }
}

/// How long a reply may wait for room in the connection's queue before the peer is deemed stuck.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a refused connection may take to hear why (handshake included).
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the writer may take to flush the last messages when a connection ends.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// What every control connection shares.
pub struct ControlContext {
    pub auth: Arc<Auth>,
    pub broker: Arc<Broker>,
    /// The three UDP probe listeners' bound addresses, per address family the server listens on; the
    /// first of each is also the relay's.
    pub probe_addrs: Vec<[SocketAddr; 3]>,
    pub static_key: Zeroizing<[u8; 32]>,
    pub limits: ControlLimits,
    /// What `/metrics` reports; bumped here as requests succeed or are refused.
    pub metrics: Arc<Metrics>,
    next_conn_id: AtomicU64,
    /// Connections not logged in or registered yet, per source address.
    unauthenticated: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection that has not logged in or registered yet: counted against its address until it does
/// (`authenticated`) or closes.
pub struct Unauthenticated {
    ctx: Arc<ControlContext>,
    ip: IpAddr,
    accepted: tokio::time::Instant,
    counted: bool,
}

impl Unauthenticated {
    fn authenticated(&mut self) {
        if std::mem::take(&mut self.counted) {
            let mut map = lock(&self.ctx.unauthenticated);
            if let Some(n) = map.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&self.ip);
                }
            }
        }
    }
}

impl Drop for Unauthenticated {
    fn drop(&mut self) {
        self.authenticated();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ControlContext {
    /// The UDP listeners a client that reached the control port at `control_local` must use: those of
    /// its address family (a client may have only one), as it can reach them.
    pub fn probe_addrs_for(&self, control_local: Option<SocketAddr>) -> [SocketAddr; 3] {
        let family = self
            .probe_addrs
            .iter()
            .find(|set| control_local.is_some_and(|l| same_family(set[0].ip(), l.ip())))
            .or(self.probe_addrs.first())
            .copied()
            .unwrap_or([SocketAddr::from(([0, 0, 0, 0], 0)); 3]);
        family.map(|a| reachable_addr(a, control_local))
    }

    /// The relay as a client that reached the control port at `control_local` must use it: the
    /// first probe listener of its family is the relay.
    pub fn relay_addr_for(&self, control_local: Option<SocketAddr>) -> SocketAddr {
        self.probe_addrs_for(control_local)[0]
    }

    pub fn new(
        auth: Arc<Auth>,
        broker: Arc<Broker>,
        probe_addrs: Vec<[SocketAddr; 3]>,
        static_key: Zeroizing<[u8; 32]>,
        limits: ControlLimits,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(ControlContext {
            auth,
            broker,
            probe_addrs,
            static_key,
            limits,
            metrics,
            next_conn_id: AtomicU64::new(1),
            unauthenticated: Mutex::new(HashMap::new()),
        })
    }

    /// Admits a new connection from `ip` when `free_slots` connection slots are free (before it takes
    /// one), or says why not: the address already has `max_unauthenticated_per_address` connections
    /// that have not logged in, or only reserved slots are left and the address is not a known one.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        free_slots: usize,
    ) -> Result<Unauthenticated, String> {
        let ip = crate::auth::source(ip);
        let reserved = self.limits.reserved_connections;
        // (With no slot free at all, the caller refuses with the server-wide limit.)
        if free_slots > 0 && free_slots <= reserved && !self.auth.is_known_address(ip) {
            return Err(format!(
                "the server has too many connections open (the last {reserved} are kept for clients that logged in before): retry later"
            ));
        }
        let max = self.limits.max_unauthenticated_per_address.max(1);
        let mut map = lock(&self.unauthenticated);
        let n = map.entry(ip).or_default();
        if *n >= max {
            return Err(format!(
                "too many connections from {ip} that have not logged in (limit {max}): retry later"
            ));
        }
        *n += 1;
        Ok(Unauthenticated {
            ctx: self.clone(),
            ip,
            accepted: tokio::time::Instant::now(),
            counted: true,
        })
    }
}

/// How far a connection has come: what it may ask for next.
enum Standing {
    /// Neither logged in nor registered yet: the login deadline applies.
    Fresh,
    /// Logged in as a user: may connect to devices and create auth hashes.
    Initiator(LoggedIn),
    /// Registered these devices: answers their sessions.
    Target(Vec<Uid>),
}

struct Conn {
    id: u64,
    peer: SocketAddr,
    /// The address the client reached this server at (unknown if the socket could not tell).
    local: Option<SocketAddr>,
    standing: Standing,
    tx: ControlTx,
    /// The initiator's static public key from its login: handed to the targets it connects to.
    initiator_key: Option<PublicStaticKey>,
}

enum Flow {
    Continue,
    Close,
}

/// Serves one accepted TCP connection until it closes. `fresh` counts it as not logged in yet, and its
/// acceptance time starts the login deadline.
pub async fn serve(stream: TcpStream, ctx: Arc<ControlContext>, mut fresh: Unauthenticated) {
    let login_deadline = fresh.accepted + ctx.limits.login_timeout;
    let _open = ctx.metrics.connection_opened();
    let Some(conn) = handshake(stream, &ctx, login_deadline).await else {
        return;
    };
    // A dual-stack listener shows IPv4 clients as IPv4-mapped IPv6: keep and report them as IPv4.
    let peer = canonical(conn.peer_addr());
    let local = conn.local_addr().map(canonical);
    let (mut reader, writer) = conn.into_split();
    let (tx, rx) = mpsc::channel(ctx.limits.queue.max(1));
    let (stop_tx, stop_rx) = oneshot::channel();
    let mut writer_task = tokio::spawn(write_loop(writer, rx, stop_rx));
    let mut conn = Conn {
        id: ctx.next_conn_id.fetch_add(1, Ordering::Relaxed),
        peer,
        local,
        standing: Standing::Fresh,
        tx,
        initiator_key: None,
    };
    log::debug!("control connection {} from {peer}", conn.id);
    read_loop(&ctx, &mut conn, &mut reader, &mut fresh, login_deadline).await;
    connection_closed(&ctx, &conn);
    drop(conn);
    let _ = stop_tx.send(());
    if tokio::time::timeout(FLUSH_TIMEOUT, &mut writer_task)
        .await
        .is_err()
    {
        writer_task.abort();
    }
}

/// The Noise handshake, which must be over by the login deadline.
async fn handshake(
    stream: TcpStream,
    ctx: &ControlContext,
    login_deadline: tokio::time::Instant,
) -> Option<ControlServerConn> {
    match tokio::time::timeout_at(
        login_deadline,
        ControlServerConn::accept(stream, &ctx.static_key),
    )
    .await
    {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => {
            log::debug!("control handshake failed: {e}");
            None
        }
        Err(_) => {
            log::debug!("control handshake not completed before the login deadline");
            None
        }
    }
}

/// Reads and handles the client's messages until the connection ends: the client hangs up, misses its
/// deadline, sends too many malformed messages, or a reply finds it not reading.
async fn read_loop(
    ctx: &ControlContext,
    conn: &mut Conn,
    reader: &mut ControlReadHalf<ClientMsg>,
    fresh: &mut Unauthenticated,
    login_deadline: tokio::time::Instant,
) {
    let mut malformed = 0u32;
    loop {
        let deadline = match conn.standing {
            // A hard deadline: messages (pings, failed logins) do not move it.
            Standing::Fresh => login_deadline,
            _ => {
                fresh.authenticated();
                tokio::time::Instant::now() + ctx.limits.idle_timeout
            }
        };
        let flow = match tokio::time::timeout_at(deadline, reader.recv()).await {
            Ok(Ok(msg)) => handle(ctx, conn, msg).await,
            Ok(Err(e @ LinkError::Malformed { .. })) => {
                malformed += 1;
                malformed_message(ctx, conn, &e, malformed).await
            }
            Ok(Err(e)) => {
                log::debug!("control connection {} ended: {e}", conn.id);
                Flow::Close
            }
            Err(_) => {
                log_deadline_missed(ctx, conn);
                Flow::Close
            }
        };
        if let Flow::Close = flow {
            break;
        }
    }
}

/// Tells the client its message could not be parsed; closes the connection once the malformed messages
/// (`count` so far) exceed `max_malformed`.
async fn malformed_message(ctx: &ControlContext, conn: &Conn, e: &LinkError, count: u32) -> Flow {
    log::debug!("control connection {} from {}: {e}", conn.id, conn.peer);
    let flow = reply(
        conn,
        error(ErrorCode::BadRequest, "malformed control message"),
    )
    .await;
    if count > ctx.limits.max_malformed {
        Flow::Close
    } else {
        flow
    }
}

fn log_deadline_missed(ctx: &ControlContext, conn: &Conn) {
    if let Standing::Fresh = conn.standing {
        log::info!(
            "control connection {} from {}: closed, not logged in or registered within {} s",
            conn.id,
            conn.peer,
            ctx.limits.login_timeout.as_secs()
        );
    } else {
        log::info!(
            "control connection {} from {}: closed after {} s without a message",
            conn.id,
            conn.peer,
            ctx.limits.idle_timeout.as_secs()
        );
    }
}

/// Forgets the connection's sessions and registrations, and logs the devices it took offline.
fn connection_closed(ctx: &ControlContext, conn: &Conn) {
    ctx.broker.connection_closed(conn.id);
    if let Standing::Target(uids) = &conn.standing {
        for uid in uids {
            if !ctx.broker.is_online(*uid) {
                log::info!(
                    "device {uid} is offline (its control connection from {} closed)",
                    conn.peer
                );
            }
        }
    }
}

/// Tells a client the server cannot take its connection (`message`, as a `LimitReached` error) instead of
/// dropping it unexplained: runs the handshake, sends the error, then reads until the client hangs up
/// (closing with its next message unread would reset the connection and could lose the error).
pub async fn refuse(stream: TcpStream, ctx: Arc<ControlContext>, message: String) {
    ctx.metrics
        .refused(Request::Connection, ErrorCode::LimitReached);
    let refusal = async {
        let conn = ControlServerConn::accept(stream, &ctx.static_key)
            .await
            .ok()?;
        let (mut reader, mut writer) = conn.into_split();
        writer
            .send(&error(ErrorCode::LimitReached, message))
            .await
            .ok()?;
        writer.shutdown().await;
        loop {
            match reader.recv().await {
                Ok(_) => {}
                // A message it could decrypt but not parse: the connection is still usable.
                Err(LinkError::Malformed { .. }) => {}
                Err(_) => return Some(()),
            }
        }
    };
    // The handshake has its own limit; this bounds a client that never hangs up.
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, refusal).await;
}

async fn write_loop(
    mut writer: ControlWriteHalf<ServerMsg>,
    mut rx: mpsc::Receiver<ServerMsg>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            biased;
            msg = rx.recv() => match msg {
                Some(m) => {
                    if let Err(e) = writer.send(&m).await {
                        log::debug!("control write failed: {e}");
                        return;
                    }
                }
                None => break,
            },
            _ = &mut stop => {
                // The reader is done: flush what is already queued (a final error), then close.
                while let Ok(m) = rx.try_recv() {
                    if writer.send(&m).await.is_err() {
                        return;
                    }
                }
                break;
            }
        }
    }
    writer.shutdown().await;
}

fn error(code: ErrorCode, message: impl Into<String>) -> ServerMsg {
    ServerMsg::Error {
        code,
        message: message.into(),
    }
}

/// The refusal's message to the client, counted by request and reason.
fn refused(ctx: &ControlContext, request: Request, r: Refusal) -> ServerMsg {
    ctx.metrics.refused(request, r.code);
    error(r.code, r.message)
}

async fn reply(conn: &Conn, msg: ServerMsg) -> Flow {
    match tokio::time::timeout(REPLY_TIMEOUT, conn.tx.send(msg)).await {
        Ok(Ok(())) => Flow::Continue,
        _ => {
            log::info!(
                "control connection {} from {}: peer is not reading, closing",
                conn.id,
                conn.peer
            );
            Flow::Close
        }
    }
}

/// A request the connection may not make in its standing: the client is told, the connection stays.
async fn bad_request(conn: &Conn, message: &str) -> Flow {
    reply(conn, error(ErrorCode::BadRequest, message)).await
}

async fn handle(ctx: &ControlContext, conn: &mut Conn, msg: ClientMsg) -> Flow {
    match msg {
        ClientMsg::Ping => reply(conn, ServerMsg::Pong).await,
        ClientMsg::ProbeAddresses => probe_addresses(ctx, conn).await,
        ClientMsg::Login {
            user,
            credential,
            initiator_key,
        } => match parse_static_key(initiator_key.as_deref()) {
            Ok(key) => login(ctx, conn, &user, credential, key).await,
            Err(message) => bad_request(conn, &message).await,
        },
        ClientMsg::CreateAuthHash { label } => create_auth_hash(ctx, conn, label).await,
        ClientMsg::Connect {
            uid,
            mode,
            local_candidates,
        } => connect(ctx, conn, uid, mode, local_candidates).await,
        ClientMsg::Register {
            uid,
            secret,
            application_type: _,
            local_candidates,
            device_key,
        } => match parse_static_key(device_key.as_deref()) {
            Ok(key) => register(ctx, conn, uid, secret, local_candidates, key).await,
            Err(message) => bad_request(conn, &message).await,
        },
        ClientMsg::Accept { session_id } => answer(ctx, conn, session_id, Answer::Accept).await,
        ClientMsg::Reject { session_id, reason } => {
            answer(ctx, conn, session_id, Answer::Reject(reason)).await
        }
    }
}

/// A client's static public key (base64 of 32 bytes), if it sent one. The server only ever sees
/// public keys: it records them and introduces each peer with the other's.
fn parse_static_key(text: Option<&str>) -> Result<Option<PublicStaticKey>, String> {
    text.map(|t| {
        PublicStaticKey::from_base64(t)
            .ok_or_else(|| "the static key is not base64 of 32 bytes".to_string())
    })
    .transpose()
}

/// Public facts (the answers to UDP probes carry them too): no login needed, and asking does not count
/// as logging in, so the login deadline still applies.
async fn probe_addresses(ctx: &ControlContext, conn: &Conn) -> Flow {
    let addrs = ctx.probe_addrs_for(conn.local).to_vec();
    reply(conn, ServerMsg::ProbeAddresses { addrs }).await
}

async fn login(
    ctx: &ControlContext,
    conn: &mut Conn,
    user: &str,
    credential: Credential,
    initiator_key: Option<PublicStaticKey>,
) -> Flow {
    if !matches!(conn.standing, Standing::Fresh) {
        return bad_request(conn, "this connection is already logged in or registered").await;
    }
    match ctx.auth.login(user, credential, conn.peer.ip()).await {
        Ok(logged_in) => {
            log::info!(
                "user '{}' logged in from {} ({}{})",
                logged_in.name,
                conn.peer,
                if logged_in.by_password {
                    "password"
                } else {
                    "auth hash"
                },
                key_note(initiator_key.as_ref())
            );
            ctx.metrics.login(logged_in.by_password);
            if let Some(key) = initiator_key {
                ctx.auth.record_initiator_key(logged_in.user_id, key).await;
            }
            let name = logged_in.name.clone();
            conn.initiator_key = initiator_key;
            conn.standing = Standing::Initiator(logged_in);
            reply(conn, ServerMsg::LoginOk { user: name }).await
        }
        Err(r) => reply(conn, refused(ctx, Request::Login, r)).await,
    }
}

async fn create_auth_hash(ctx: &ControlContext, conn: &Conn, label: String) -> Flow {
    let Standing::Initiator(user) = &conn.standing else {
        return bad_request(conn, "log in before asking for an auth hash").await;
    };
    if !user.by_password {
        return bad_request(
            conn,
            "an auth hash can only be created after a password login",
        )
        .await;
    }
    let (user_id, name) = (user.user_id, user.name.clone());
    match ctx.auth.create_auth_hash(user_id, &name, label).await {
        Ok(hash) => {
            let id = hash.split('.').next().unwrap_or_default();
            log::info!("auth hash {id} issued to user '{name}'");
            reply(
                conn,
                ServerMsg::AuthHash {
                    auth_hash: hash.to_string(),
                },
            )
            .await
        }
        Err(r) => reply(conn, refused(ctx, Request::AuthHash, r)).await,
    }
}

async fn connect(
    ctx: &ControlContext,
    conn: &Conn,
    uid: Uid,
    mode: p2p_proto::EncryptionMode,
    local_candidates: Vec<SocketAddr>,
) -> Flow {
    let Standing::Initiator(user) = &conn.standing else {
        return bad_request(conn, "log in before connecting").await;
    };
    let (user_id, name) = (user.user_id, user.name.clone());
    let msg = match grant_session(ctx, conn, user_id, &name, uid, mode, local_candidates).await {
        Ok(grant) => {
            ctx.metrics.session_granted();
            ServerMsg::Session(grant)
        }
        Err(r) => refused(ctx, Request::Connect, r),
    };
    reply(conn, msg).await
}

/// Checks that the user may reach the device, then has the broker offer the session to its target.
async fn grant_session(
    ctx: &ControlContext,
    conn: &Conn,
    user_id: i64,
    user: &str,
    uid: Uid,
    mode: p2p_proto::EncryptionMode,
    local_candidates: Vec<SocketAddr>,
) -> Result<p2p_proto::control::SessionGrant, Refusal> {
    // An unknown UID and a device not shared get the same refusal (`Auth::access`).
    ctx.auth.access(uid, user_id, user).await?;
    ctx.broker
        .connect(ConnectRequest {
            uid,
            mode,
            user: user.to_string(),
            user_id,
            candidates: local_candidates,
            initiator_key: conn.initiator_key,
            initiator_tx: conn.tx.clone(),
            relay_addr: ctx.relay_addr_for(conn.local),
        })
        .await
}

/// A UDP listener's address (the relay, a probe port) as this client can reach it: one on a wildcard
/// address is reached at the address the client used for the control connection.
fn reachable_addr(bound: SocketAddr, control_local: Option<SocketAddr>) -> SocketAddr {
    match control_local {
        Some(local) if bound.ip().is_unspecified() && same_family(bound.ip(), local.ip()) => {
            SocketAddr::new(local.ip(), bound.port())
        }
        _ => bound,
    }
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

async fn register(
    ctx: &ControlContext,
    conn: &mut Conn,
    uid: Uid,
    secret: String,
    candidates: Vec<SocketAddr>,
    device_key: Option<PublicStaticKey>,
) -> Flow {
    let registered = match &conn.standing {
        Standing::Initiator(_) => {
            return bad_request(conn, "a logged-in connection cannot register a device").await
        }
        Standing::Fresh => 0,
        Standing::Target(uids) => uids.len(),
    };
    if registered >= ctx.limits.max_registrations {
        let r = Refusal::new(
            ErrorCode::LimitReached,
            "too many devices registered on this connection",
        );
        return reply(conn, refused(ctx, Request::Register, r)).await;
    }
    if let Err(r) = ctx.auth.register(uid, secret, conn.peer.ip()).await {
        return reply(conn, refused(ctx, Request::Register, r)).await;
    }
    if let Err(r) = ctx.auth.check_device_key(uid, device_key).await {
        return reply(conn, refused(ctx, Request::Register, r)).await;
    }
    ctx.metrics.registered();
    let replaced = ctx.broker.register(
        uid,
        conn.id,
        conn.tx.clone(),
        candidates,
        ctx.relay_addr_for(conn.local),
        device_key,
    );
    log::info!(
        "device {uid} registered from {}{}{}",
        conn.peer,
        key_note(device_key.as_ref()),
        if replaced {
            " (replacing an older registration)"
        } else {
            ""
        }
    );
    match &mut conn.standing {
        Standing::Target(uids) => {
            if !uids.contains(&uid) {
                uids.push(uid)
            }
        }
        standing => *standing = Standing::Target(vec![uid]),
    }
    reply(conn, ServerMsg::Registered { uid }).await
}

/// How a log line names a client's key: its fingerprint, or that it has none (no end-to-end
/// sessions with it).
fn key_note(key: Option<&PublicStaticKey>) -> String {
    match key {
        Some(k) => format!(", key {}", k.fingerprint()),
        None => ", no key".to_string(),
    }
}

async fn answer(ctx: &ControlContext, conn: &Conn, session_id: u64, answer: Answer) -> Flow {
    if !matches!(conn.standing, Standing::Target(_)) {
        return bad_request(conn, "register a device before answering a session").await;
    }
    if let Answer::Reject(reason) = &answer {
        log::info!(
            "session {session_id:016x} rejected by the target: {}",
            accounts::shown(reason)
        );
    }
    match ctx.broker.answer(conn.id, session_id, answer) {
        Ok(()) => Flow::Continue,
        // Typically an answer that came after the timeout: tell the target, keep the connection.
        Err(r) => reply(conn, refused(ctx, Request::Answer, r)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_relay_is_reported_at_the_control_address() {
        let relay: SocketAddr = "0.0.0.0:5959".parse().unwrap();
        let local: SocketAddr = "192.0.2.10:5980".parse().unwrap();
        assert_eq!(
            reachable_addr(relay, Some(local)),
            "192.0.2.10:5959".parse().unwrap()
        );
        let fixed: SocketAddr = "198.51.100.1:5959".parse().unwrap();
        assert_eq!(reachable_addr(fixed, Some(local)), fixed);
        let v6: SocketAddr = "[::1]:5980".parse().unwrap();
        assert_eq!(reachable_addr(relay, Some(v6)), relay);
    }
}
