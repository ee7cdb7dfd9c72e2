//! Starting a server: binds the control listener and the three UDP listeners, wires the parts together
//! and runs them as tasks. Used by `p2p-server run` and, in-process, by tests (port 0 everywhere).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use crate::auth::{Auth, AuthLimits};
use crate::broker::{Broker, BrokerLimits};
use crate::control::{self, ControlContext, ControlLimits};
use crate::error::{Error, Result};
use crate::metrics::{Gauges, Metrics};
use crate::ops_http::{self, OpsState};
use crate::probe::{self, ProbeCounters, ProbeLimits, Responder};
use crate::relay::{self, Relay, RelayLimits, RelayStats};
use crate::{keys, store};

/// Everything `run` can be told.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    /// PostgreSQL instead of the data directory's SQLite database (`--database`).
    pub database: Option<String>,
    pub control: SocketAddr,
    /// `udp[0]` is also the relay; `udp[2]` should be on a second address (NAT mapping test).
    pub udp: [SocketAddr; 3],
    /// Written (JSON) once every listener is bound.
    pub ready_file: Option<PathBuf>,
    /// Rewritten (JSON) every `stats_interval` with the relay's counters and sessions.
    pub stats_file: Option<PathBuf>,
    pub stats_interval: Duration,
    /// Active relay sessions are logged (`relay session=... forwarded_bytes=...`) this often.
    pub stats_log_interval: Duration,
    pub max_connections: usize,
    pub auth: AuthLimits,
    pub broker: BrokerLimits,
    pub relay: RelayLimits,
    /// Answers the probe ports give one source address.
    pub probe: ProbeLimits,
    pub control_limits: ControlLimits,
    /// Where `/metrics` and `/healthz` are served over HTTP (none by default).
    pub metrics: Option<SocketAddr>,
}

pub const DEFAULT_CONTROL: &str = "127.0.0.1:5980";
/// Control connections open at once, by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_UDP: [&str; 3] = ["127.0.0.1:5959", "127.0.0.1:5960", "127.0.0.2:5961"];

impl Config {
    /// The documented defaults for `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let addr = |s: &str| {
            s.parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
        };
        Config {
            data_dir: data_dir.into(),
            database: None,
            control: addr(DEFAULT_CONTROL),
            udp: DEFAULT_UDP.map(addr),
            ready_file: None,
            stats_file: None,
            stats_interval: Duration::from_secs(1),
            stats_log_interval: Duration::from_secs(30),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            auth: AuthLimits::default(),
            broker: BrokerLimits::default(),
            relay: RelayLimits::default(),
            probe: ProbeLimits::default(),
            control_limits: ControlLimits::default(),
            metrics: None,
        }
    }

    /// Every listener on 127.0.0.1 with a free port: for tests.
    pub fn loopback_ephemeral(data_dir: impl Into<PathBuf>) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Config {
            control: any,
            udp: [any; 3],
            ..Config::new(data_dir)
        }
    }
}

/// What the ready file holds (and what `listening_line` prints).
#[derive(Debug, Clone, Serialize)]
pub struct Listening {
    pub control: SocketAddr,
    pub udp: [SocketAddr; 3],
    pub relay: SocketAddr,
    /// Base64 of the public key clients pin (`server_key`).
    pub server_key: String,
    pub pid: u32,
    /// The HTTP listener of `/metrics` and `/healthz`, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<SocketAddr>,
}

/// A running server. Dropping it stops every task.
pub struct ServerHandle {
    pub listening: Listening,
    pub server_key: [u8; 32],
    relay: Arc<Mutex<Relay>>,
    broker: Arc<Broker>,
    ops: Arc<OpsState>,
    tasks: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    pub fn control_addr(&self) -> SocketAddr {
        self.listening.control
    }

    pub fn udp_addrs(&self) -> [SocketAddr; 3] {
        self.listening.udp
    }

    /// `listening control=127.0.0.1:5980 udp=127.0.0.1:5959,127.0.0.1:5960,127.0.0.2:5961`
    pub fn listening_line(&self) -> String {
        let l = &self.listening;
        format!(
            "listening control={} udp={},{},{}",
            l.control, l.udp[0], l.udp[1], l.udp[2]
        )
    }

    pub fn relay_stats(&self) -> RelayStats {
        relay::lock(&self.relay).stats(Instant::now())
    }

    pub fn is_online(&self, uid: p2p_proto::Uid) -> bool {
        self.broker.is_online(uid)
    }

    /// From now on `/healthz` answers 503 `draining`, so that load balancers send clients elsewhere.
    pub fn begin_draining(&self) {
        self.ops.draining.store(true, Ordering::Relaxed);
    }

    /// Stops every task (connections are dropped, sockets closed).
    pub fn shutdown(mut self) {
        self.abort_all();
    }

    fn abort_all(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.abort_all();
    }
}

async fn bind_udp(addr: SocketAddr, which: &str) -> Result<Arc<UdpSocket>> {
    // The relay carries whole congestion windows in bursts: it needs the same large buffers as a peer.
    p2p_link::udp_socket::bind(addr).map(Arc::new).map_err(|e| {
        Error::new(format!(
            "cannot bind the {which} UDP listener to {addr}: {e}"
        ))
    })
}

/// Binds every listener and starts the server. Must be called within a tokio runtime.
pub async fn start(config: Config) -> Result<ServerHandle> {
    let static_key = keys::load_private(&config.data_dir)?;
    let public = p2p_link::control_channel::public_key_of(&static_key)?;
    let database = {
        let (dir, url) = (config.data_dir.clone(), config.database.clone());
        // PostgreSQL's store waits for its queries on a runtime of its own, which cannot start here.
        tokio::task::spawn_blocking(move || store::open(&dir, url.as_deref()))
            .await
            .map_err(|e| Error::new(format!("opening the database: {e}")))??
    };

    let (control_listener, [relay_socket, probe2, probe3], mut listening) =
        bind_listeners(&config, &public).await?;
    let ops_listener = match config.metrics {
        Some(addr) => {
            let l = TcpListener::bind(addr).await.map_err(|e| {
                Error::new(format!(
                    "cannot listen for /metrics and /healthz on {addr}: {e}"
                ))
            })?;
            listening.metrics = l.local_addr().ok();
            Some(l)
        }
        None => None,
    };
    let udp = listening.udp;

    let mut relay = Relay::new(config.relay);
    relay.set_server_addrs(&[listening.control, udp[0], udp[1], udp[2]]);
    let relay = Arc::new(Mutex::new(relay));
    let auth = Auth::new(database, public, config.auth);
    let broker = Broker::new(relay.clone(), config.broker);
    let metrics = Arc::new(Metrics::default());
    let ctx = ControlContext::new(
        auth,
        broker.clone(),
        udp,
        static_key,
        config.control_limits,
        metrics.clone(),
    );
    let probe_counters = Arc::new(ProbeCounters::default());
    let ops = Arc::new(OpsState {
        metrics,
        gauges: gauges_reader(broker.clone(), relay.clone(), probe_counters.clone()),
        draining: AtomicBool::new(false),
    });
    // What clients must use: the bound address (the configured one, with a port 0 resolved).
    let responder = Arc::new(Responder::new(
        [relay_socket.clone(), probe2, probe3],
        udp,
        config.probe,
    ));

    let mut tasks = vec![
        tokio::spawn(accept_loop(control_listener, ctx, config.max_connections)),
        tokio::spawn(relay::serve(relay_socket, relay.clone(), responder.clone())),
        tokio::spawn(probe::serve(responder.clone(), 1, probe_counters.clone())),
        tokio::spawn(probe::serve(responder, 2, probe_counters.clone())),
    ];
    if let Some(listener) = ops_listener {
        tasks.push(tokio::spawn(ops_http::serve(listener, ops.clone())));
    }
    tasks.push(tokio::spawn(housekeeping(
        relay.clone(),
        probe_counters,
        config.stats_file.clone(),
        config.stats_interval,
        config.stats_log_interval,
    )));
    let handle = ServerHandle {
        listening,
        server_key: public,
        relay,
        broker,
        ops,
        tasks,
    };
    if let Some(path) = &config.ready_file {
        write_ready_file(path, &handle.listening)?;
    }
    log::info!("{}", handle.listening_line());
    if let Some(addr) = handle.listening.metrics {
        log::info!("serving http://{addr}/metrics and http://{addr}/healthz");
    }
    Ok(handle)
}

/// Binds the control listener and the three UDP listeners, and says where they listen (the configured
/// addresses with any port 0 resolved).
async fn bind_listeners(
    config: &Config,
    server_key: &[u8; 32],
) -> Result<(TcpListener, [Arc<UdpSocket>; 3], Listening)> {
    let control_listener = TcpListener::bind(config.control).await.map_err(|e| {
        Error::new(format!(
            "cannot listen for control connections on {}: {e}",
            config.control
        ))
    })?;
    let relay_socket = bind_udp(config.udp[0], "first (relay)").await?;
    let probe2 = bind_udp(config.udp[1], "second").await?;
    let probe3 = bind_udp(config.udp[2], "third").await?;
    let bound_addr = |r: std::io::Result<SocketAddr>| {
        r.map_err(|e| Error::new(format!("listener address: {e}")))
    };
    let udp = [
        bound_addr(relay_socket.local_addr())?,
        bound_addr(probe2.local_addr())?,
        bound_addr(probe3.local_addr())?,
    ];
    let listening = Listening {
        control: bound_addr(control_listener.local_addr())?,
        udp,
        relay: udp[0],
        server_key: B64.encode(server_key),
        pid: std::process::id(),
        metrics: None,
    };
    Ok((control_listener, [relay_socket, probe2, probe3], listening))
}

/// Reads the figures `/metrics` shows as gauges, at scrape time.
fn gauges_reader(
    broker: Arc<Broker>,
    relay: Arc<Mutex<Relay>>,
    probes: Arc<ProbeCounters>,
) -> Box<dyn Fn() -> Gauges + Send + Sync> {
    Box::new(move || {
        let (devices_online, pending_sessions) = broker.counts();
        let (relay_sessions, relay_counters) = {
            let r = relay::lock(&relay);
            (r.session_count(), r.counters().clone())
        };
        Gauges {
            devices_online,
            pending_sessions,
            relay_sessions,
            relay: relay_counters,
            probes_answered: probes.answered.load(Ordering::Relaxed),
            probes_ignored: probes.ignored.load(Ordering::Relaxed),
        }
    })
}

fn write_ready_file(path: &Path, listening: &Listening) -> Result<()> {
    let json = serde_json::to_string_pretty(listening)
        .map_err(|e| Error::new(format!("encoding the ready file: {e}")))?;
    write_atomically(path, json.as_bytes())
}

/// Connections over the limit that are being told so at once; beyond this they are dropped unexplained
/// (a flood must not cost a handshake per connection).
const MAX_REFUSALS: usize = 64;

async fn accept_loop(listener: TcpListener, ctx: Arc<ControlContext>, max_connections: usize) {
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    // Connection tasks live in this set: aborting the accept loop (shutdown) aborts them all.
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Typically out of file descriptors: back off instead of spinning.
                log::warn!("accepting a control connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Per-address cap on connections not logged in yet, and the reserve for known addresses.
        let fresh = match ctx.admit(peer.ip(), slots.available_permits()) {
            Ok(fresh) => fresh,
            Err(message) => {
                log::info!("refusing control connection from {peer}: {message}");
                tell_refused(&mut connections, &refusals, stream, &ctx, message);
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            log::warn!(
                "refusing control connection from {peer}: {max_connections} connections open"
            );
            let message = format!(
                "the server has too many connections open (limit {max_connections}): retry later"
            );
            tell_refused(&mut connections, &refusals, stream, &ctx, message);
            continue;
        };
        let ctx = ctx.clone();
        connections.spawn(async move {
            control::serve(stream, ctx, fresh).await;
            drop(permit);
        });
    }
}

/// Tells a refused connection why in a task of its own, if fewer than [`MAX_REFUSALS`] are being told
/// already; otherwise drops it unexplained.
fn tell_refused(
    connections: &mut JoinSet<()>,
    refusals: &Arc<Semaphore>,
    stream: TcpStream,
    ctx: &Arc<ControlContext>,
    message: String,
) {
    if let Ok(refusing) = refusals.clone().try_acquire_owned() {
        let ctx = ctx.clone();
        connections.spawn(async move {
            control::refuse(stream, ctx, message).await;
            drop(refusing);
        });
    }
}

#[derive(Serialize)]
struct StatsFile<'a> {
    relay: &'a RelayStats,
    probes_answered: u64,
    probes_ignored: u64,
}

/// Expires idle relay sessions, logs their traffic, and keeps the stats file current.
async fn housekeeping(
    relay: Arc<Mutex<Relay>>,
    probes: Arc<ProbeCounters>,
    stats_file: Option<PathBuf>,
    every: Duration,
    log_every: Duration,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_log = Instant::now();
    let mut reported = Reported::default();
    loop {
        tick.tick().await;
        let now = Instant::now();
        let stats = reported.expire_sessions(&relay, now);
        if now.duration_since(last_log) >= log_every {
            last_log = now;
            reported.log_traffic(&stats);
            reported.log_refused(&stats, &probes);
        }
        if let Some(path) = &stats_file {
            reported.write_stats_file(path, &stats, &probes);
        }
    }
}

/// What housekeeping last logged or wrote, so that it repeats only what changed.
#[derive(Default)]
struct Reported {
    /// Forwarded bytes last logged, per live relay session.
    forwarded_bytes: HashMap<String, u64>,
    /// The refused-datagram counters last logged (relay: garbage, bad token, unknown session, unbound
    /// source; probe ports: garbage).
    refused: (u64, u64, u64, u64, u64),
    /// The stats file's last contents.
    stats_json: String,
}

impl Reported {
    /// Ends the relay sessions idle too long (logging each), and returns the relay's stats after that.
    fn expire_sessions(&mut self, relay: &Mutex<Relay>, now: Instant) -> RelayStats {
        let (expired, stats) = {
            let mut r = relay::lock(relay);
            let expired = r.expire(now);
            (expired, r.stats(now))
        };
        for s in &expired {
            s.log_end("expired");
            self.forwarded_bytes.remove(&s.session_id);
        }
        stats
    }

    /// Logs each relay session that forwarded something since it was last logged.
    fn log_traffic(&mut self, stats: &RelayStats) {
        for s in &stats.sessions {
            if self.forwarded_bytes.get(&s.session_id) != Some(&s.forwarded_bytes) {
                log::info!(
                    "relay session={} forwarded_bytes={} forwarded_packets={}",
                    s.session_id,
                    s.forwarded_bytes,
                    s.forwarded_packets
                );
                self.forwarded_bytes
                    .insert(s.session_id.clone(), s.forwarded_bytes);
            }
        }
        self.forwarded_bytes
            .retain(|id, _| stats.sessions.iter().any(|s| &s.session_id == id));
    }

    /// One line per interval at most, and only when something new was refused.
    fn log_refused(&mut self, stats: &RelayStats, probes: &ProbeCounters) {
        let c = &stats.counters;
        let refused = (
            c.garbage,
            c.bad_token,
            c.unknown_session,
            c.unbound_source,
            probes.ignored.load(Ordering::Relaxed),
        );
        if refused != self.refused {
            self.refused = refused;
            log::info!(
                "udp refused since start: garbage={} bad_token={} unknown_session={} unbound_source={} probe_port_garbage={}",
                refused.0,
                refused.1,
                refused.2,
                refused.3,
                refused.4
            );
        }
    }

    /// Rewrites the stats file when its contents changed.
    fn write_stats_file(&mut self, path: &Path, stats: &RelayStats, probes: &ProbeCounters) {
        let file = StatsFile {
            relay: stats,
            probes_answered: probes.answered.load(Ordering::Relaxed),
            probes_ignored: probes.ignored.load(Ordering::Relaxed),
        };
        match serde_json::to_string_pretty(&file) {
            Ok(json) if json != self.stats_json => {
                if let Err(e) = write_atomically(path, json.as_bytes()) {
                    log::warn!("{e}");
                }
                self.stats_json = json;
            }
            Ok(_) => {}
            Err(e) => log::warn!("encoding the stats file: {e}"),
        }
    }
}

/// Writes `path` through a temporary file (`PATH.tmp`) and a rename, so a reader never sees half a
/// file. The temporary is always a new file ([`create_new_file`]): a symlink or file someone placed at
/// `PATH.tmp` is removed (`remove_file` removes a link, never what it points to) rather than written
/// through, and the rename replaces `PATH` itself, a link there included, never its target.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let fail = |e: std::io::Error| Error::new(format!("cannot write {}: {e}", path.display()));
    let mut file = match create_new_file(&tmp) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Left by a crash, or placed there: take it away and try once more.
            std::fs::remove_file(&tmp).map_err(fail)?;
            create_new_file(&tmp).map_err(fail)?
        }
        other => other.map_err(fail)?,
    };
    let written = file.write_all(bytes);
    drop(file);
    match written.and_then(|_| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(fail(e))
        }
    }
}

/// Creates `path` as a new file, failing if anything (a file, a symlink, even a dangling one) is there
/// already; on Unix also `O_NOFOLLOW` and mode 0644. The only OS-specific part of writing state files.
fn create_new_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW).mode(0o644);
    }
    options.open(path)
}
