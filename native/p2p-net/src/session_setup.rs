//! The set-up steps the initiator tunnel and the target daemon share: finding the server, starting the
//! UDP endpoint with the router's port mapping of its port, gathering our candidate addresses, and
//! handing a granted session to the endpoint. Also the timings both use toward the server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use p2p_proto::session::{PeerKeys, SessionStats};
use p2p_proto::wire::Role;
use tokio::sync::mpsc;

use crate::endpoint::{Command, Endpoint, Notice, SessionSpec};
use crate::error::{Error, ErrorKind, Result};
use crate::grant::ParsedGrant;
use crate::net_util;
use crate::portmap::PortMapper;
use crate::server_list::ServerList;

/// How long the server has to accept a control connection, and to answer a request on it.
pub(crate) const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// Backoff between attempts to reach the server (an initiator with `autoconnect 2`, a target always):
/// doubles from the first value up to the second, back to the first after a success.
pub(crate) const BACKOFF_START: Duration = Duration::from_millis(500);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The session figures an endpoint publishes for its owner (every
/// [`COUNTER_REFRESH`](crate::status::COUNTER_REFRESH), and a last time when it drops the session).
pub(crate) type SharedStats = Arc<Mutex<Option<SessionStats>>>;

/// Locks a mutex whose data stays consistent even if a holder panicked (plain figures and sets).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The servers (`host:port`, or several separated by commas) and their pinned key from a configuration
/// (or the environment's defaults); a missing or malformed one is an [`ErrorKind::InvalidConfig`].
pub(crate) fn server_and_key(
    server: &Option<String>,
    server_key: &Option<String>,
) -> Result<(Arc<ServerList>, [u8; 32])> {
    let (server, key) =
        p2p_config::config::resolve_server(server, server_key, |k| std::env::var(k).ok())
            .map_err(|e| Error::new(ErrorKind::InvalidConfig, e.to_string()))?;
    Ok((Arc::new(ServerList::parse(&server)?), key))
}

/// Starts a UDP endpoint whose socket's family follows `server_addr`, and asks the router to map its
/// port (`None` when port mapping is off or not needed). The mapping is asked for at once, so the
/// router answers while the caller talks to the server.
pub(crate) async fn start_endpoint(
    server_addr: SocketAddr,
) -> Result<(Endpoint, Option<PortMapper>)> {
    let socket = net_util::bind_session_udp(server_addr).await?;
    let (endpoint, _join) = Endpoint::spawn(socket).map_err(|e| {
        Error::new(
            ErrorKind::UdpBind,
            format!("cannot start the UDP endpoint: {e}"),
        )
    })?;
    let port_mapper = PortMapper::start(server_addr, endpoint.local_addr().port());
    Ok((endpoint, port_mapper))
}

/// Our candidate addresses for the endpoint bound on `local`: the host candidates, our global IPv6
/// addresses when the socket can use them (dual-stack or IPv6), plus the router's mapping of the port
/// when it answers within `wait`.
pub(crate) async fn local_candidates(
    server_addr: SocketAddr,
    local: SocketAddr,
    port_mapper: Option<&mut PortMapper>,
    wait: Duration,
) -> Vec<SocketAddr> {
    let port = local.port();
    let mut candidates = net_util::host_candidates(server_addr, port);
    if local.is_ipv6() {
        for c in net_util::global_ipv6_candidates(port) {
            if !candidates.contains(&c) {
                candidates.push(c);
            }
        }
    }
    if let Some(pm) = port_mapper {
        if let Some(mapped) = pm.first_mapping(wait).await {
            if !candidates.contains(&mapped) {
                candidates.push(mapped);
            }
        }
    }
    candidates
}

/// A session granted by the server, as the endpoint runs it: the notices it sends, and the figures it
/// publishes.
pub(crate) struct AddedSession {
    pub notices: mpsc::UnboundedReceiver<Notice>,
    pub stats: SharedStats,
    /// False when the endpoint had already ended: then `notices` is closed at once.
    pub accepted: bool,
}

/// Hands the granted session to `endpoint`. `forward_to`: on a target, where each stream goes.
pub(crate) fn add_session(
    endpoint: &Endpoint,
    role: Role,
    grant: &ParsedGrant,
    max_outstanding: Option<u32>,
    forward_to: Option<SocketAddr>,
    peer_keys: Option<PeerKeys>,
) -> AddedSession {
    let (notices_tx, notices) = mpsc::unbounded_channel();
    let stats = SharedStats::default();
    let accepted = endpoint.send(Command::AddSession(Box::new(SessionSpec {
        role,
        session_id: grant.session_id,
        mode: grant.mode,
        session_secret: grant.session_secret,
        relay: grant.relay,
        relay_token: grant.relay_token,
        relay_auth: grant.relay_auth,
        key_phases: grant.key_phases,
        max_outstanding,
        forward_to,
        peer_keys,
        notices: notices_tx,
        stats: stats.clone(),
    })));
    AddedSession {
        notices,
        stats,
        accepted,
    }
}
