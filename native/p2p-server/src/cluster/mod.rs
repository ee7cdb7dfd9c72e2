//! Several nodes on one PostgreSQL database: which node holds which device (`device_presence`), which
//! nodes are alive (`nodes`, heartbeats), and the messages between nodes (`LISTEN`/`pg_notify` on one
//! channel per node, [`NodeMsg`]). The broker asks here when a device is not online on this node; the
//! session is then relayed by this node (the initiator's) and offered to the target by its node.
//!
//! Only a server over PostgreSQL has a cluster; over SQLite there is one node and none of this runs.

mod limits;
mod messages;
mod schema;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use p2p_proto::control::{ErrorCode, ServerMsg, SessionGrant};
use p2p_proto::crypto::PublicStaticKey;
use p2p_proto::Uid;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, NoTls};

pub use limits::Failure;
pub use messages::NodeMsg;

use crate::auth::Refusal;
use crate::error::{Error, Result};
use crate::relay::ControlTx;
use schema::DB_NOW;

/// How often a node tells the others it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A node silent this long is dead: its devices are not looked up any more, and the next heartbeat of
/// any node deletes it (and, by cascade, its presence rows).
pub const DEAD_AFTER: Duration = Duration::from_secs(15);

/// A device online on another node.
pub struct Located {
    pub node: String,
    pub candidates: Vec<SocketAddr>,
    /// The key the device registered with, which the initiator is introduced with.
    pub device_key: Option<PublicStaticKey>,
}

/// The target's node's answer to a forwarded session: `None` for accepted, else the refusal.
type ForwardAnswer = Option<(ErrorCode, String)>;
/// Forwarded sessions waiting for their answer, by session id.
type Waiting = HashMap<u64, oneshot::Sender<ForwardAnswer>>;

enum Presence {
    Online {
        uid: Uid,
        conn_id: u64,
        candidates: Vec<SocketAddr>,
        device_key: Option<PublicStaticKey>,
    },
    Offline {
        uid: Uid,
        conn_id: u64,
    },
    /// Not presence, but written in the same order-keeping way: a failed login or registration.
    Failure(Failure),
}

pub struct Cluster {
    node_id: String,
    client: Client,
    /// Sessions this node forwarded, waiting for the target's node to answer.
    waiting: Mutex<Waiting>,
    /// Presence changes, written in order by one task (a registration and its end must not swap).
    presence: mpsc::UnboundedSender<Presence>,
    /// The newest failure row of another node this node took in.
    failures_seen: AtomicI64,
    /// A session opened here: the sessions per user are due for publishing.
    sessions_opened: Notify,
}

/// What a started cluster hands the server: itself, the messages other nodes sent this one (for the
/// broker), and its tasks (the bus connection, presence writes, heartbeats).
pub struct Started {
    pub cluster: Arc<Cluster>,
    pub inbound: mpsc::UnboundedReceiver<NodeMsg>,
    pub tasks: Vec<JoinHandle<()>>,
}

fn channel_of(node_id: &str) -> String {
    format!("p2p_node_{node_id}")
}

/// Joins the cluster of `database`: creates the cluster tables if needed, adds this node and listens on
/// its channel. `control` and `relay` are this node's addresses, recorded for operators.
pub async fn start(database: &str, control: SocketAddr, relay: SocketAddr) -> Result<Started> {
    let mut id = [0u8; 8];
    getrandom::getrandom(&mut id).map_err(|e| Error::new(format!("no randomness: {e}")))?;
    let node_id = hex::encode(id);
    // The bus's own connection: its notifications are read by the task that drives it.
    let (client, mut connection) = tokio_postgres::connect(database, NoTls).await?;
    let (inbound_tx, inbound) = mpsc::unbounded_channel();
    let bus = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    match serde_json::from_str::<NodeMsg>(n.payload()) {
                        Ok(msg) => {
                            let _ = inbound_tx.send(msg);
                        }
                        Err(e) => log::warn!("cluster: unreadable message from another node: {e}"),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    log::error!("cluster: the connection to PostgreSQL failed: {e}");
                    return;
                }
                None => return,
            }
        }
    });
    schema::create(&client).await?;
    client
        .execute(
            &format!(
                "INSERT INTO nodes (id, control_addr, relay_addrs, started_at, heartbeat_at)
                 VALUES ($1, $2, $3, {DB_NOW}, {DB_NOW})"
            ),
            &[&node_id, &control.to_string(), &relay.to_string()],
        )
        .await?;
    client
        .batch_execute(&format!("LISTEN {}", channel_of(&node_id)))
        .await?;
    let (presence, presence_rx) = mpsc::unbounded_channel();
    let cluster = Arc::new(Cluster {
        node_id,
        client,
        waiting: Mutex::new(HashMap::new()),
        presence,
        failures_seen: AtomicI64::new(0),
        sessions_opened: Notify::new(),
    });
    let seen = cluster.last_failure_id().await?;
    cluster
        .failures_seen
        .store(seen, std::sync::atomic::Ordering::Release);
    log::info!("cluster: joined as node {}", cluster.node_id);
    let tasks = vec![
        bus,
        tokio::spawn(cluster.clone().write_presence(presence_rx)),
        tokio::spawn(cluster.clone().heartbeat()),
    ];
    Ok(Started {
        cluster,
        inbound,
        tasks,
    })
}

impl Cluster {
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    fn waiting(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `uid` is now online here on control connection `conn_id` (the last registration wins, on any node).
    pub fn set_online(
        &self,
        uid: Uid,
        conn_id: u64,
        candidates: &[SocketAddr],
        device_key: Option<PublicStaticKey>,
    ) {
        let _ = self.presence.send(Presence::Online {
            uid,
            conn_id,
            candidates: candidates.to_vec(),
            device_key,
        });
    }

    /// Control connection `conn_id` that held `uid` closed (a newer registration, anywhere, stays).
    pub fn set_offline(&self, uid: Uid, conn_id: u64) {
        let _ = self.presence.send(Presence::Offline { uid, conn_id });
    }

    async fn write_presence(self: Arc<Self>, mut changes: mpsc::UnboundedReceiver<Presence>) {
        while let Some(change) = changes.recv().await {
            let written = match &change {
                Presence::Online {
                    uid,
                    conn_id,
                    candidates,
                    device_key,
                } => {
                    let candidates: Vec<String> = candidates.iter().map(|c| c.to_string()).collect();
                    let device_key = device_key.as_ref().map(|k| k.to_base64()).unwrap_or_default();
                    self.client
                        .execute(
                            &format!(
                                "INSERT INTO device_presence
                                     (uid, node_id, conn_id, candidates, device_key, registered_at)
                                 VALUES ($1, $2, $3, $4, $5, {DB_NOW})
                                 ON CONFLICT (uid) DO UPDATE SET node_id = $2, conn_id = $3,
                                     candidates = $4, device_key = $5, registered_at = {DB_NOW}"
                            ),
                            &[
                                &uid.to_string(),
                                &self.node_id,
                                &(*conn_id as i64),
                                &candidates.join(","),
                                &device_key,
                            ],
                        )
                        .await
                        .map_err(Error::from)
                }
                Presence::Offline { uid, conn_id } => self
                    .client
                    .execute(
                        "DELETE FROM device_presence WHERE uid = $1 AND node_id = $2 AND conn_id = $3",
                        &[&uid.to_string(), &self.node_id, &(*conn_id as i64)],
                    )
                    .await
                    .map_err(Error::from),
                Presence::Failure(f) => self.insert_failure(f).await.map(|()| 0),
            };
            if let Err(e) = written {
                log::warn!(
                    "cluster: recording a device's presence or a failed attempt failed: {e}"
                );
            }
        }
    }

    /// Marks this node alive every [`HEARTBEAT`] and deletes the nodes silent for [`DEAD_AFTER`].
    async fn heartbeat(self: Arc<Self>) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.beat().await {
                log::warn!("cluster: heartbeat failed: {e}");
            }
        }
    }

    async fn beat(&self) -> Result<()> {
        let alive = self
            .client
            .execute(
                &format!("UPDATE nodes SET heartbeat_at = {DB_NOW} WHERE id = $1"),
                &[&self.node_id],
            )
            .await?;
        if alive == 0 {
            // Swept as dead (this process stalled): the other nodes forward nothing here any more.
            log::error!(
                "cluster: node {} was declared dead by another node; restart it to rejoin",
                self.node_id
            );
        }
        let dead = self
            .client
            .execute(
                &format!("DELETE FROM nodes WHERE heartbeat_at < {DB_NOW} - $1"),
                &[&(DEAD_AFTER.as_secs() as i64)],
            )
            .await?;
        if dead > 0 {
            log::info!("cluster: {dead} dead node(s) removed");
        }
        self.forget_old_failures().await
    }

    /// The live node other than this one where `uid` is online, with the target's candidates.
    pub async fn locate(&self, uid: Uid) -> Result<Option<Located>> {
        let row = self
            .client
            .query_opt(
                &format!(
                    "SELECT p.node_id, p.candidates, p.device_key FROM device_presence p JOIN nodes n ON n.id = p.node_id
                     WHERE p.uid = $1 AND p.node_id <> $2 AND n.heartbeat_at > {DB_NOW} - $3"
                ),
                &[&uid.to_string(), &self.node_id, &(DEAD_AFTER.as_secs() as i64)],
            )
            .await?;
        Ok(row.map(|r| {
            let candidates: String = r.get(1);
            let device_key: String = r.get(2);
            Located {
                node: r.get(0),
                candidates: candidates
                    .split(',')
                    .filter_map(|c| c.parse().ok())
                    .collect(),
                // Written by a node from a key it had validated; an empty one is no key.
                device_key: PublicStaticKey::from_base64(&device_key),
            }
        }))
    }

    async fn send(&self, node: &str, msg: &NodeMsg) -> Result<()> {
        let payload = serde_json::to_string(msg)
            .map_err(|e| Error::new(format!("encoding a message to node {node}: {e}")))?;
        self.client
            .execute("SELECT pg_notify($1, $2)", &[&channel_of(node), &payload])
            .await?;
        Ok(())
    }

    /// Has `node` offer the session of `grant` (the target's) to its target, and waits up to `timeout`
    /// for the answer.
    pub async fn forward(
        &self,
        node: &str,
        grant: SessionGrant,
        timeout: Duration,
    ) -> std::result::Result<(), Refusal> {
        let (session_id, uid) = (grant.session_id, grant.uid);
        let (tx, rx) = oneshot::channel();
        self.waiting().insert(session_id, tx);
        let msg = NodeMsg::Forward {
            from: self.node_id.clone(),
            grant,
        };
        let answer = match self.send(node, &msg).await {
            Ok(()) => tokio::time::timeout(timeout, rx).await,
            Err(e) => {
                self.waiting().remove(&session_id);
                log::error!("cluster: forwarding session {session_id:016x} to node {node}: {e}");
                return Err(Refusal::new(
                    ErrorCode::Internal,
                    "server error while reaching the device's node",
                ));
            }
        };
        self.waiting().remove(&session_id);
        match answer {
            Ok(Ok(refusal)) => messages::refusal_of(refusal),
            _ => Err(Refusal::new(
                ErrorCode::SessionFailed,
                format!(
                    "device {uid} did not accept the session within {} s",
                    timeout.as_secs()
                ),
            )),
        }
    }

    /// Tells `node` (which forwarded a session) the target's answer.
    pub async fn answer(
        &self,
        node: &str,
        session_id: u64,
        result: std::result::Result<(), Refusal>,
    ) {
        let msg = NodeMsg::Answer {
            session_id,
            refusal: result.err().map(|r| (r.code, r.message)),
        };
        if let Err(e) = self.send(node, &msg).await {
            log::warn!("cluster: answering session {session_id:016x} to node {node}: {e}");
        }
    }

    /// An answer from the node this one forwarded `session_id` to.
    pub fn resolve(&self, session_id: u64, refusal: ForwardAnswer) {
        if let Some(tx) = self.waiting().remove(&session_id) {
            let _ = tx.send(refusal);
        }
    }

    /// A session opened on this node's relay (see `Broker::publish_sessions`).
    pub fn sessions_changed(&self) {
        self.sessions_opened.notify_one();
    }

    pub async fn sessions_opened(&self) {
        self.sessions_opened.notified().await
    }

    /// A control link to a target on `node`: what the relay sends it (punches) is delivered there.
    /// Lives as long as the relay session holding its sender.
    pub fn link_to(self: &Arc<Self>, node: String, uid: Uid) -> ControlTx {
        let (tx, mut rx) = mpsc::channel::<ServerMsg>(16);
        let cluster = self.clone();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                if let Err(e) = cluster.send(&node, &NodeMsg::Deliver { uid, msg }).await {
                    log::debug!("cluster: a message for {uid} on node {node} was lost: {e}");
                }
            }
        });
        tx
    }
}
