//! Brokering sessions: which targets are online (registered on a control connection), and the exchange
//! `Connect` -> `Incoming` -> `Accept` -> `Session` that creates a session on the relay and hands both
//! peers its grant.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use p2p_proto::control::{ErrorCode, ServerMsg, SessionGrant};
use p2p_proto::crypto::PublicStaticKey;
use p2p_proto::{EncryptionMode, Uid};
use tokio::sync::{mpsc, oneshot};

use crate::auth::Refusal;
use crate::cluster::{Cluster, Located, NodeMsg};
use crate::relay::{self, ControlTx, OpenError, Relay, SessionSetup};

/// How much of a device's reason for refusing a session reaches the initiator: room for a key's
/// fingerprint and what is wrong with it, not for a device to flood the initiator's log.
const MAX_REFUSAL_LEN: usize = 160;

#[derive(Clone, Copy, Debug)]
pub struct BrokerLimits {
    /// How long the target has to answer `Incoming` (the initiator's client waits 10 s for the grant).
    pub accept_timeout: Duration,
    /// Sessions waiting for their target's answer, server-wide.
    pub max_pending: usize,
}

impl Default for BrokerLimits {
    fn default() -> Self {
        BrokerLimits {
            accept_timeout: Duration::from_secs(8),
            max_pending: 256,
        }
    }
}

/// A target's answer to `Incoming`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Reject(String),
}

#[derive(Clone)]
struct OnlineTarget {
    conn_id: u64,
    tx: ControlTx,
    candidates: Vec<SocketAddr>,
    /// The relay address to put in its grants (as it reached this server: its address family).
    relay_addr: SocketAddr,
    /// The static public key the target registered with (none from targets without keys).
    device_key: Option<PublicStaticKey>,
}

struct Pending {
    target_conn: u64,
    answer: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct Inner {
    targets: HashMap<Uid, OnlineTarget>,
    pending: HashMap<u64, Pending>,
}

/// An initiator's request, as the control connection parsed it.
pub struct ConnectRequest {
    pub uid: Uid,
    pub mode: EncryptionMode,
    pub user: String,
    /// The user's database id: what the per-user session limit counts.
    pub user_id: i64,
    pub candidates: Vec<SocketAddr>,
    /// The initiator's static public key from its login.
    pub initiator_key: Option<PublicStaticKey>,
    pub initiator_tx: ControlTx,
    /// The relay address to put in the grant (as the client reached this server).
    pub relay_addr: SocketAddr,
}

pub struct Broker {
    relay: Arc<Mutex<Relay>>,
    inner: Mutex<Inner>,
    limits: BrokerLimits,
    /// The other nodes on the same database, when there are any (PostgreSQL).
    cluster: Option<Arc<Cluster>>,
}

/// Where the target of a session is online.
enum Route {
    Here(OnlineTarget),
    /// On another node, which offers the session to it.
    Node(Arc<Cluster>, Located),
}

fn random<const N: usize>() -> Result<[u8; N], Refusal> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| {
        log::error!("the system random generator failed: {e}");
        Refusal::new(ErrorCode::Internal, "server error: no randomness")
    })?;
    Ok(b)
}

impl Broker {
    pub fn new(
        relay: Arc<Mutex<Relay>>,
        limits: BrokerLimits,
        cluster: Option<Arc<Cluster>>,
    ) -> Arc<Self> {
        Arc::new(Broker {
            relay,
            inner: Mutex::new(Inner::default()),
            limits,
            cluster,
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks `uid` online on control connection `conn_id`. A newer registration replaces an older one
    /// (a target that reconnected before the server noticed its old connection died). Returns whether
    /// it replaced one.
    pub fn register(
        &self,
        uid: Uid,
        conn_id: u64,
        tx: ControlTx,
        candidates: Vec<SocketAddr>,
        relay_addr: SocketAddr,
        device_key: Option<PublicStaticKey>,
    ) -> bool {
        let mut candidates = candidates;
        candidates.truncate(relay::MAX_HOST_CANDIDATES);
        if let Some(cluster) = &self.cluster {
            cluster.set_online(uid, conn_id, &candidates, device_key);
        }
        let old = self.inner().targets.insert(
            uid,
            OnlineTarget {
                conn_id,
                tx,
                candidates,
                relay_addr,
                device_key,
            },
        );
        old.is_some_and(|o| o.conn_id != conn_id)
    }

    /// Forgets what control connection `conn_id` held: its registrations (unless a newer connection
    /// took them over) and the sessions still waiting for its answer (their initiators get an error).
    pub fn connection_closed(&self, conn_id: u64) {
        let mut inner = self.inner();
        inner.targets.retain(|uid, t| {
            let gone = t.conn_id == conn_id;
            if let (true, Some(cluster)) = (gone, &self.cluster) {
                cluster.set_offline(*uid, conn_id);
            }
            !gone
        });
        inner.pending.retain(|_, p| p.target_conn != conn_id);
    }

    pub fn is_online(&self, uid: Uid) -> bool {
        self.inner().targets.contains_key(&uid)
    }

    /// Devices online and sessions waiting for their target, now.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.inner();
        (inner.targets.len(), inner.pending.len())
    }

    /// A target's `Accept` / `Reject`. Only the connection the `Incoming` went to may answer it.
    pub fn answer(&self, conn_id: u64, session_id: u64, answer: Answer) -> Result<(), Refusal> {
        let mut inner = self.inner();
        match inner.pending.get(&session_id) {
            Some(p) if p.target_conn == conn_id => {
                if let Some(p) = inner.pending.remove(&session_id) {
                    let _ = p.answer.send(answer);
                }
                Ok(())
            }
            _ => Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("no session {session_id:016x} is waiting for this connection's answer"),
            )),
        }
    }

    /// Creates a session for an initiator whose access was already checked: opens it on the relay,
    /// offers it to the target (through the target's node when that is another one) and waits for the
    /// answer. Returns the initiator's grant. The session is relayed by this node either way.
    pub async fn connect(&self, req: ConnectRequest) -> Result<SessionGrant, Refusal> {
        let uid = req.uid;
        let route = self.route(uid).await?;
        let (target_link, target_candidates) = match &route {
            Route::Here(t) => (t.tx.clone(), t.candidates.clone()),
            Route::Node(cluster, at) => {
                (cluster.link_to(at.node.clone(), uid), at.candidates.clone())
            }
        };
        let session_secret = hex::encode(random::<32>()?);
        let tokens = [random::<16>()?, random::<16>()?];
        let setup = SessionSetup {
            uid,
            user_id: req.user_id,
            tokens,
            host_candidates: [req.candidates, target_candidates],
            links: [req.initiator_tx, target_link],
            relay_addr: req.relay_addr,
        };
        let elsewhere = self.sessions_elsewhere(req.user_id).await?;
        let session_id = self.open_on_relay(setup, &req.user, elsewhere)?;
        // Each peer is told the relay in its own address family (the relay bridges the two), and is
        // introduced with the other's key, which each checks in the handshake.
        let device_key = match &route {
            Route::Here(t) => t.device_key,
            Route::Node(_, at) => at.device_key,
        };
        let grant = |token: &[u8; 16],
                     relay_addr: SocketAddr,
                     peer_key: Option<PublicStaticKey>| SessionGrant {
            session_id,
            uid,
            mode: req.mode,
            session_secret: session_secret.clone(),
            relay_token: hex::encode(token),
            relay_addr,
            user: req.user.clone(),
            peer_key: peer_key.map(|k| k.to_base64()),
            relay_auth: true,
            key_phases: true,
        };
        let result = match route {
            Route::Here(target) => {
                let (answer_tx, answer_rx) = oneshot::channel();
                self.inner().pending.insert(
                    session_id,
                    Pending {
                        target_conn: target.conn_id,
                        answer: answer_tx,
                    },
                );
                self.offer(
                    session_id,
                    uid,
                    &target.tx,
                    grant(&tokens[1], target.relay_addr, req.initiator_key),
                    answer_rx,
                )
                .await
            }
            Route::Node(cluster, at) => {
                log::debug!(
                    "session {session_id:016x}: {uid} is online on node {}",
                    at.node
                );
                cluster
                    // The target's address family is not known here: its grant names this
                    // node's relay in the initiator's family.
                    .forward(
                        &at.node,
                        grant(&tokens[1], req.relay_addr, req.initiator_key),
                        self.limits.accept_timeout,
                    )
                    .await
            }
        };
        match result {
            Ok(()) => {
                log::info!(
                    "session {session_id:016x}: user '{}' -> {uid} ({}) accepted",
                    req.user,
                    req.mode
                );
                Ok(grant(&tokens[0], req.relay_addr, device_key))
            }
            Err(refusal) => {
                self.inner().pending.remove(&session_id);
                relay::lock(&self.relay).close(session_id, Instant::now());
                log::info!(
                    "session {session_id:016x}: user '{}' -> {uid} failed: {}",
                    req.user,
                    refusal.message
                );
                Err(refusal)
            }
        }
    }

    /// The target of `uid`: here, or else on the live node where it registered last.
    async fn route(&self, uid: Uid) -> Result<Route, Refusal> {
        let offline = match self.target_to_offer(uid) {
            Ok(target) => return Ok(Route::Here(target)),
            Err(r) if r.code == ErrorCode::DeviceOffline => r,
            Err(r) => return Err(r),
        };
        let Some(cluster) = &self.cluster else {
            return Err(offline);
        };
        match cluster.locate(uid).await {
            Ok(Some(at)) => Ok(Route::Node(cluster.clone(), at)),
            Ok(None) => Err(offline),
            Err(e) => {
                log::error!("cluster: looking up where {uid} is online: {e}");
                Err(Refusal::new(
                    ErrorCode::Internal,
                    "server error while looking up the device",
                ))
            }
        }
    }

    /// Handles what other nodes send this one, until the cluster's bus ends.
    pub async fn serve_cluster(self: Arc<Self>, mut inbound: mpsc::UnboundedReceiver<NodeMsg>) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        while let Some(msg) = inbound.recv().await {
            match msg {
                NodeMsg::Forward { from, grant } => {
                    let (broker, cluster) = (self.clone(), cluster.clone());
                    tokio::spawn(async move {
                        let session_id = grant.session_id;
                        let result = broker.offer_forwarded(grant).await;
                        cluster.answer(&from, session_id, result).await;
                    });
                }
                NodeMsg::Answer {
                    session_id,
                    refusal,
                } => cluster.resolve(session_id, refusal),
                NodeMsg::Deliver { uid, msg } => self.deliver(uid, msg),
            }
        }
    }

    /// Offers a session another node set up (and relays) to the target online here.
    async fn offer_forwarded(&self, grant: SessionGrant) -> Result<(), Refusal> {
        let (session_id, uid) = (grant.session_id, grant.uid);
        let target = self.target_to_offer(uid)?;
        let (answer_tx, answer_rx) = oneshot::channel();
        {
            let mut inner = self.inner();
            if inner.pending.contains_key(&session_id) {
                return Err(Refusal::new(
                    ErrorCode::Internal,
                    "server error: session id in use, retry",
                ));
            }
            inner.pending.insert(
                session_id,
                Pending {
                    target_conn: target.conn_id,
                    answer: answer_tx,
                },
            );
        }
        let result = self
            .offer(session_id, uid, &target.tx, grant, answer_rx)
            .await;
        if result.is_err() {
            self.inner().pending.remove(&session_id);
        }
        result
    }

    /// Passes a message of another node's relay to the target online here (never waiting: like the
    /// relay's own punches, a full queue loses it).
    fn deliver(&self, uid: Uid, msg: ServerMsg) {
        if let Some(target) = self.inner().targets.get(&uid) {
            let _ = target.tx.try_send(msg);
        }
    }

    /// The device's target, if it is online and fewer than `max_pending` sessions wait for an answer.
    fn target_to_offer(&self, uid: Uid) -> Result<OnlineTarget, Refusal> {
        let inner = self.inner();
        let Some(t) = inner.targets.get(&uid) else {
            return Err(Refusal::new(
                ErrorCode::DeviceOffline,
                format!("device {uid} is not registered with the server (offline)"),
            ));
        };
        if inner.pending.len() >= self.limits.max_pending {
            return Err(Refusal::new(
                ErrorCode::LimitReached,
                format!(
                    "the server has too many sessions being set up (limit {}): retry shortly",
                    self.limits.max_pending
                ),
            ));
        }
        Ok(t.clone())
    }

    /// Sessions the user holds on the other nodes, which count toward their limit here too.
    async fn sessions_elsewhere(&self, user_id: i64) -> Result<usize, Refusal> {
        let Some(cluster) = &self.cluster else {
            return Ok(0);
        };
        cluster.sessions_elsewhere(user_id).await.map_err(|e| {
            log::error!("cluster: counting a user's sessions on the other nodes: {e}");
            Refusal::new(
                ErrorCode::Internal,
                "server error while counting the user's sessions",
            )
        })
    }

    /// Opens the session on this node's relay, if the user holds fewer than their limit here and on
    /// the other nodes (`elsewhere`) together.
    fn open_on_relay(
        &self,
        mut setup: SessionSetup,
        user: &str,
        elsewhere: usize,
    ) -> Result<u64, Refusal> {
        let mut relay = relay::lock(&self.relay);
        let user_full = |relay: &Relay| {
            let limits = relay.limits();
            log::info!(
                "user '{user}' refused a session: {} sessions open",
                limits.max_sessions_per_user
            );
            Refusal::new(
                ErrorCode::LimitReached,
                format!(
                    "too many sessions for user '{user}' (limit {}); an ended session frees \
                     its place at once, one whose peer vanished after {} s without a packet",
                    limits.max_sessions_per_user,
                    limits.idle_timeout.as_secs()
                ),
            )
        };
        if elsewhere > 0
            && relay.user_sessions(setup.user_id) + elsewhere
                >= relay.limits().max_sessions_per_user
        {
            return Err(user_full(&relay));
        }
        loop {
            let id = u64::from_ne_bytes(random::<8>()?);
            match relay.open(id, setup, Instant::now()) {
                Ok(()) => {
                    if let Some(cluster) = &self.cluster {
                        cluster.sessions_changed();
                    }
                    return Ok(id);
                }
                Err((OpenError::IdInUse, back)) => setup = back,
                Err((OpenError::UserFull, _)) => return Err(user_full(&relay)),
                Err((OpenError::Full, _)) => {
                    return Err(Refusal::new(
                        ErrorCode::LimitReached,
                        "the relay has too many sessions: retry later",
                    ))
                }
            }
        }
    }

    /// Keeps this node's sessions per user published for the other nodes: at once after a session
    /// opens, and every half second for those that ended.
    pub async fn publish_sessions(self: Arc<Self>) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let mut published = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = cluster.sessions_opened() => {}
            }
            let now = relay::lock(&self.relay).sessions_per_user().clone();
            if let Err(e) = cluster.publish_sessions(&now, &mut published).await {
                log::warn!("cluster: publishing the sessions per user failed: {e}");
            }
        }
    }

    /// Sends `Incoming` to the target and waits for its answer.
    async fn offer(
        &self,
        session_id: u64,
        uid: Uid,
        target_tx: &ControlTx,
        target_grant: SessionGrant,
        answer_rx: oneshot::Receiver<Answer>,
    ) -> Result<(), Refusal> {
        let timeout = self.limits.accept_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let offline = || {
            Refusal::new(
                ErrorCode::DeviceOffline,
                format!("device {uid} went offline"),
            )
        };
        match tokio::time::timeout_at(deadline, target_tx.send(ServerMsg::Incoming(target_grant)))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(offline()),
            Err(_) => {
                return Err(Refusal::new(
                    ErrorCode::SessionFailed,
                    format!("device {uid} is not reading its control connection"),
                ))
            }
        }
        log::debug!("session {session_id:016x}: offered to {uid}");
        match tokio::time::timeout_at(deadline, answer_rx).await {
            Ok(Ok(Answer::Accept)) => Ok(()),
            Ok(Ok(Answer::Reject(reason))) => Err(Refusal::new(
                ErrorCode::SessionFailed,
                format!(
                    "device {uid} refused the session: {}",
                    crate::accounts::shown_up_to(&reason, MAX_REFUSAL_LEN)
                ),
            )),
            Ok(Err(_)) => Err(Refusal::new(
                ErrorCode::SessionFailed,
                format!("device {uid} disconnected before accepting the session"),
            )),
            Err(_) => Err(Refusal::new(
                ErrorCode::SessionFailed,
                format!(
                    "device {uid} did not accept the session within {} s",
                    timeout.as_secs()
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::RelayLimits;

    fn uid() -> Uid {
        "80:00:00:00:01:00:0A:C2".parse().unwrap()
    }

    fn key(byte: u8) -> PublicStaticKey {
        PublicStaticKey([byte; 32])
    }

    fn broker(timeout_ms: u64) -> Arc<Broker> {
        broker_with(timeout_ms, RelayLimits::default())
    }

    fn broker_with(timeout_ms: u64, relay: RelayLimits) -> Arc<Broker> {
        Broker::new(
            Arc::new(Mutex::new(Relay::new(relay))),
            BrokerLimits {
                accept_timeout: Duration::from_millis(timeout_ms),
                max_pending: 4,
            },
            None,
        )
    }

    fn request(tx: ControlTx) -> ConnectRequest {
        request_by(tx, "bob", 1)
    }

    fn request_by(tx: ControlTx, user: &str, user_id: i64) -> ConnectRequest {
        ConnectRequest {
            uid: uid(),
            mode: EncryptionMode::default(),
            user: user.into(),
            user_id,
            candidates: vec![],
            initiator_key: None,
            initiator_tx: tx,
            relay_addr: "127.0.0.1:5959".parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn offline_device() {
        let b = broker(100);
        let (tx, _rx) = mpsc::channel(4);
        let e = b.connect(request(tx)).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::DeviceOffline);
    }

    #[tokio::test]
    async fn accepted_session_gives_each_peer_its_own_token() {
        let b = broker(2000);
        let (ttx, mut trx) = mpsc::channel(4);
        b.register(
            uid(),
            7,
            ttx,
            vec!["10.0.0.2:4000".parse().unwrap()],
            "127.0.0.1:5959".parse().unwrap(),
            Some(key(0xD0)),
        );
        let b2 = b.clone();
        let target = tokio::spawn(async move {
            let Some(ServerMsg::Incoming(g)) = trx.recv().await else {
                panic!("no incoming")
            };
            assert!(
                b2.answer(8, g.session_id, Answer::Accept).is_err(),
                "another connection cannot answer"
            );
            b2.answer(7, g.session_id, Answer::Accept).unwrap();
            g
        });
        let (itx, _irx) = mpsc::channel(4);
        let ig = b
            .connect(ConnectRequest {
                initiator_key: Some(key(0x1A)),
                ..request(itx)
            })
            .await
            .unwrap();
        let tg = target.await.unwrap();
        // Each peer is introduced with the other's public key.
        assert_eq!(ig.peer_key, Some(key(0xD0).to_base64()));
        assert_eq!(tg.peer_key, Some(key(0x1A).to_base64()));
        assert_eq!(ig.session_id, tg.session_id);
        assert_eq!(ig.session_secret, tg.session_secret);
        assert_eq!(ig.session_secret.len(), 64);
        assert_ne!(ig.relay_token, tg.relay_token);
        assert_eq!(ig.relay_token.len(), 32);
        assert!(relay::lock(&b.relay).contains(ig.session_id));
    }

    #[tokio::test]
    async fn silent_or_refusing_target_fails_and_frees_the_session() {
        let b = broker(100);
        let (ttx, mut trx) = mpsc::channel(4);
        register_keyless_target(&b, ttx);
        let (itx, _irx) = mpsc::channel(4);
        let e = b.connect(request(itx.clone())).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::SessionFailed);
        assert!(e.message.contains("did not accept"), "{e:?}");
        let Some(ServerMsg::Incoming(g)) = trx.recv().await else {
            panic!()
        };
        assert!(!relay::lock(&b.relay).contains(g.session_id));

        let b2 = b.clone();
        tokio::spawn(async move {
            if let Some(ServerMsg::Incoming(g)) = trx.recv().await {
                b2.answer(7, g.session_id, Answer::Reject("busy".into()))
                    .unwrap();
            }
        });
        let e = b.connect(request(itx)).await.unwrap_err();
        assert!(e.message.contains("refused the session: busy"), "{e:?}");
        b.connection_closed(7);
        assert!(!b.is_online(uid()));
    }

    /// Registers `uid()` on connection 7: a target without candidates or key, whose messages go to `ttx`.
    fn register_keyless_target(b: &Arc<Broker>, ttx: mpsc::Sender<ServerMsg>) {
        b.register(
            uid(),
            7,
            ttx,
            vec![],
            "127.0.0.1:5959".parse().unwrap(),
            None,
        );
    }

    /// Registers `uid()` on connection 7 with a target that accepts every session.
    fn accepting_target(b: &Arc<Broker>) {
        let (ttx, mut trx) = mpsc::channel(64);
        register_keyless_target(b, ttx);
        let b2 = b.clone();
        tokio::spawn(async move {
            while let Some(msg) = trx.recv().await {
                if let ServerMsg::Incoming(g) = msg {
                    b2.answer(7, g.session_id, Answer::Accept).unwrap();
                }
            }
        });
    }

    #[tokio::test]
    async fn a_user_over_the_session_limit_is_refused_until_one_ends() {
        let b = broker_with(
            2000,
            RelayLimits {
                max_sessions_per_user: 2,
                ..RelayLimits::default()
            },
        );
        accepting_target(&b);
        let (itx, _irx) = mpsc::channel(64);
        let first = b.connect(request(itx.clone())).await.unwrap();
        b.connect(request(itx.clone())).await.unwrap();
        let e = b.connect(request(itx.clone())).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::LimitReached);
        assert!(
            e.message
                .starts_with("too many sessions for user 'bob' (limit 2)"),
            "{e:?}"
        );
        assert!(!e.message.contains('\n'), "one line: {e:?}");
        // The refused session left nothing behind on the relay; another user is not limited by bob.
        assert_eq!(relay::lock(&b.relay).user_sessions(1), 2);
        b.connect(request_by(itx.clone(), "alice", 2))
            .await
            .unwrap();
        // Once one of bob's sessions is gone from the relay, he gets a new one.
        relay::lock(&b.relay).close(first.session_id, Instant::now());
        b.connect(request(itx)).await.unwrap();
    }

    #[tokio::test]
    async fn sessions_waiting_for_their_target_are_limited_server_wide() {
        let b = broker(3000);
        // A target that never answers: every session stays pending until the accept timeout.
        let (ttx, _trx) = mpsc::channel(64);
        register_keyless_target(&b, ttx);
        let (itx, _irx) = mpsc::channel(64);
        let waiting: Vec<_> = (0..4)
            .map(|_| {
                let (b, itx) = (b.clone(), itx.clone());
                tokio::spawn(async move { b.connect(request(itx)).await })
            })
            .collect();
        let until = Instant::now() + Duration::from_secs(2);
        while b.inner().pending.len() < 4 {
            assert!(
                Instant::now() < until,
                "the 4 sessions never became pending"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let e = b.connect(request(itx.clone())).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::LimitReached);
        assert_eq!(
            e.message,
            "the server has too many sessions being set up (limit 4): retry shortly"
        );
        // The target's connection closes: the waiting sessions fail, and their places are free again.
        b.connection_closed(7);
        for w in waiting {
            let e = w.await.unwrap().unwrap_err();
            assert_eq!(e.code, ErrorCode::SessionFailed, "{e:?}");
        }
        assert!(b.inner().pending.is_empty());
        accepting_target(&b);
        b.connect(request(itx)).await.unwrap();
    }
}
