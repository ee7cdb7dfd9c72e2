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
use tokio::sync::oneshot;

use crate::auth::Refusal;
use crate::relay::{self, ControlTx, OpenError, Relay, SessionSetup};

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
    pub fn new(relay: Arc<Mutex<Relay>>, limits: BrokerLimits) -> Arc<Self> {
        Arc::new(Broker {
            relay,
            inner: Mutex::new(Inner::default()),
            limits,
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
        device_key: Option<PublicStaticKey>,
    ) -> bool {
        let mut candidates = candidates;
        candidates.truncate(relay::MAX_HOST_CANDIDATES);
        let old = self.inner().targets.insert(
            uid,
            OnlineTarget {
                conn_id,
                tx,
                candidates,
                device_key,
            },
        );
        old.is_some_and(|o| o.conn_id != conn_id)
    }

    /// Forgets what control connection `conn_id` held: its registrations (unless a newer connection
    /// took them over) and the sessions still waiting for its answer (their initiators get an error).
    pub fn connection_closed(&self, conn_id: u64) {
        let mut inner = self.inner();
        inner.targets.retain(|_, t| t.conn_id != conn_id);
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
    /// offers it to the target and waits for the answer. Returns the initiator's grant.
    pub async fn connect(&self, req: ConnectRequest) -> Result<SessionGrant, Refusal> {
        let uid = req.uid;
        let OnlineTarget {
            conn_id: target_conn,
            tx: target_tx,
            candidates: target_candidates,
            device_key,
        } = self.target_to_offer(uid)?;
        let session_secret = hex::encode(random::<32>()?);
        let tokens = [random::<16>()?, random::<16>()?];
        let setup = SessionSetup {
            uid,
            user_id: req.user_id,
            tokens,
            host_candidates: [req.candidates, target_candidates],
            links: [req.initiator_tx, target_tx.clone()],
            relay_addr: req.relay_addr,
        };
        let session_id = self.open_on_relay(setup, &req.user)?;
        let (answer_tx, answer_rx) = oneshot::channel();
        self.inner().pending.insert(
            session_id,
            Pending {
                target_conn,
                answer: answer_tx,
            },
        );
        // Each peer is introduced with the other's key; each checks it in the handshake.
        let grant = |token: &[u8; 16], peer_key: Option<PublicStaticKey>| SessionGrant {
            session_id,
            uid,
            mode: req.mode,
            session_secret: session_secret.clone(),
            relay_token: hex::encode(token),
            relay_addr: req.relay_addr,
            user: req.user.clone(),
            peer_key: peer_key.map(|k| k.to_base64()),
            relay_auth: true,
        };
        let result = self
            .offer(
                session_id,
                uid,
                &target_tx,
                grant(&tokens[1], req.initiator_key),
                answer_rx,
            )
            .await;
        match result {
            Ok(()) => {
                log::info!(
                    "session {session_id:016x}: user '{}' -> {uid} ({}) accepted",
                    req.user,
                    req.mode
                );
                Ok(grant(&tokens[0], device_key))
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

    fn open_on_relay(&self, mut setup: SessionSetup, user: &str) -> Result<u64, Refusal> {
        let mut relay = relay::lock(&self.relay);
        loop {
            let id = u64::from_ne_bytes(random::<8>()?);
            match relay.open(id, setup, Instant::now()) {
                Ok(()) => return Ok(id),
                Err((OpenError::IdInUse, back)) => setup = back,
                Err((OpenError::UserFull, _)) => {
                    let limits = relay.limits();
                    log::info!(
                        "user '{user}' refused a session: {} sessions open",
                        limits.max_sessions_per_user
                    );
                    return Err(Refusal::new(
                        ErrorCode::LimitReached,
                        format!(
                            "too many sessions for user '{user}' (limit {}); an ended session frees \
                             its place at once, one whose peer vanished after {} s without a packet",
                            limits.max_sessions_per_user,
                            limits.idle_timeout.as_secs()
                        ),
                    ));
                }
                Err((OpenError::Full, _)) => {
                    return Err(Refusal::new(
                        ErrorCode::LimitReached,
                        "the relay has too many sessions: retry later",
                    ))
                }
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
                    crate::accounts::shown(&reason)
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
    use tokio::sync::mpsc;

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
        b.register(uid(), 7, ttx, vec![], None);
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

    /// Registers `uid()` on connection 7 with a target that accepts every session.
    fn accepting_target(b: &Arc<Broker>) {
        let (ttx, mut trx) = mpsc::channel(64);
        b.register(uid(), 7, ttx, vec![], None);
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
        b.register(uid(), 7, ttx, vec![], None);
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
