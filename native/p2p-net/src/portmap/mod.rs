//! Port mapping on the home router, so a peer behind a NAT that filters (or a symmetric NAT) can still
//! reach our session socket directly: NAT-PMP (RFC 6886) first, UPnP IGD second. The mapped address is
//! one more host candidate in `Connect`/`Register`. A router with neither is normal: it gives a status
//! line (`port mapping: unavailable (...)`), never an error, and the session goes on without a mapping.
//!
//! Use [`PortMapper::start`] next to the session socket, put [`PortMapper::first_mapping`] into the local
//! candidates, and call [`PortMapper::stop`] when the socket closes (dropping it stops it too).
//!
//! Environment: `P2P_PORTMAP=0` turns port mapping off; `P2P_PORTMAP_LEASE=SECS` sets the lease asked
//! for (default 7200 s, RFC 6886's recommendation; the NAT lab uses a short one to see renewals).

mod nat_pmp;
mod upnp_igd;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub const DEFAULT_LEASE: Duration = Duration::from_secs(7200);
/// How long a target waits for the router before registering: it is long-lived, and a router without
/// NAT-PMP or UPnP takes about 2 s to rule out.
pub const TARGET_WAIT: Duration = Duration::from_secs(3);
/// How long an initiator waits before `Connect`: this delays every connection on networks without
/// port mapping, so only as long as an answering router needs (they answer within milliseconds).
pub const INITIATOR_WAIT: Duration = Duration::from_millis(500);
/// How long `stop` waits for the router to confirm a deletion.
pub const RELEASE_WAIT: Duration = Duration::from_secs(2);
/// After a failed attempt, look again this much later (a router may be rebooting or get UPnP enabled).
const RETRY_AFTER: Duration = Duration::from_secs(300);
/// Leases shorter than this are not asked for: renewing at half would be too busy.
const MIN_LEASE: Duration = Duration::from_secs(20);

/// How a mapping was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    NatPmp,
    UpnpIgd,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::NatPmp => "NAT-PMP",
            Method::UpnpIgd => "UPnP IGD",
        })
    }
}

/// A mapping the router holds for us.
#[derive(Clone, Debug)]
pub struct Mapping {
    pub method: Method,
    /// The address peers can send to.
    pub external: SocketAddr,
    pub local_port: u16,
    /// The lease the router granted.
    pub lease: Duration,
    via: Via,
}

#[derive(Clone, Debug)]
enum Via {
    NatPmp(Ipv4Addr),
    Upnp(Box<igd_next::Gateway>),
}

impl fmt::Display for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} -> local port {}, lease {} s",
            self.method,
            self.external,
            self.local_port,
            self.lease.as_secs()
        )
    }
}

/// Why there is no mapping; its text is the status line's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Asks the router for a UDP mapping of `local_port`: NAT-PMP, else UPnP IGD (its SSDP search runs
/// while NAT-PMP is tried, so a router with only UPnP costs no extra wait).
pub async fn request(local_port: u16, lease: Duration) -> Result<Mapping, Unavailable> {
    let lease = lease.max(MIN_LEASE);
    let search = tokio::spawn(upnp_igd::discover());
    let pmp_error = match nat_pmp::gateway() {
        Ok(gw) => match nat_pmp::map(gw, local_port, local_port, lease).await {
            Ok(g) => {
                search.abort();
                return Ok(Mapping {
                    method: Method::NatPmp,
                    external: SocketAddr::V4(g.external),
                    local_port,
                    lease: g.lifetime,
                    via: Via::NatPmp(gw),
                });
            }
            Err(e) => e,
        },
        Err(e) => e,
    };
    let upnp_error = match search.await {
        Ok(Ok(gw)) => match upnp_igd::map(gw.clone(), local_port, 0, lease).await {
            Ok(external) => {
                return Ok(Mapping {
                    method: Method::UpnpIgd,
                    external,
                    local_port,
                    lease,
                    via: Via::Upnp(Box::new(gw)),
                })
            }
            Err(e) => e,
        },
        Ok(Err(e)) => e,
        Err(e) => format!("the UPnP search failed: {e}"),
    };
    Err(Unavailable(format!(
        "NAT-PMP: {pmp_error}; UPnP: {upnp_error}"
    )))
}

/// Renews `m` for another lease with the same external port.
pub async fn renew(m: &Mapping, lease: Duration) -> Result<Mapping, String> {
    let lease = lease.max(MIN_LEASE);
    let mut next = m.clone();
    match &m.via {
        Via::NatPmp(gw) => {
            let g = nat_pmp::map(*gw, m.local_port, m.external.port(), lease).await?;
            next.external = SocketAddr::V4(g.external);
            next.lease = g.lifetime;
        }
        Via::Upnp(gw) => {
            next.external =
                upnp_igd::map((**gw).clone(), m.local_port, m.external.port(), lease).await?;
            next.lease = lease;
        }
    }
    Ok(next)
}

/// Deletes `m` on the router.
pub async fn release(m: &Mapping) -> Result<(), String> {
    match &m.via {
        Via::NatPmp(gw) => nat_pmp::unmap(*gw, m.local_port).await,
        Via::Upnp(gw) => upnp_igd::unmap((**gw).clone(), m.external.port()).await,
    }
}

/// `P2P_PORTMAP=0` (or `off`, `no`, `false`) disables port mapping.
pub fn enabled() -> bool {
    !matches!(
        std::env::var("P2P_PORTMAP").as_deref(),
        Ok("0" | "off" | "no" | "false")
    )
}

/// The lease to ask for: `P2P_PORTMAP_LEASE` seconds, else [`DEFAULT_LEASE`].
pub fn lease_from_env() -> Duration {
    match std::env::var("P2P_PORTMAP_LEASE") {
        Ok(v) => match v.parse::<u64>() {
            Ok(s) => Duration::from_secs(s),
            Err(_) => {
                log::warn!("ignoring P2P_PORTMAP_LEASE='{v}': not a number of seconds");
                DEFAULT_LEASE
            }
        },
        Err(_) => DEFAULT_LEASE,
    }
}

/// Keeps a mapping of one local port for as long as it lives: asks, renews at half the lease, asks
/// again when a renewal fails (router rebooted), deletes it on [`stop`](Self::stop) or drop.
pub struct PortMapper {
    current: watch::Receiver<State>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

#[derive(Clone, Debug)]
enum State {
    Pending,
    Mapped(Mapping),
    /// No mapping (the reason is logged when it happens).
    Unavailable,
}

impl PortMapper {
    /// Starts mapping `local_port` (UDP) on the tokio runtime. `None` when disabled by `P2P_PORTMAP=0`,
    /// or when `server` is on this machine's loopback: then peers are on this machine too, and asking
    /// the LAN's router would only cost time (and touch a router tests have no business with).
    pub fn start(server: SocketAddr, local_port: u16) -> Option<PortMapper> {
        if !enabled() {
            log::info!("port mapping: off (P2P_PORTMAP)");
            return None;
        }
        if server.ip().is_loopback() {
            log::debug!("port mapping: not needed with a server on loopback");
            return None;
        }
        let (tx, rx) = watch::channel(State::Pending);
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(keep(local_port, lease_from_env(), tx, stop_rx));
        Some(PortMapper {
            current: rx,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// The external address once the first attempt has finished, waiting at most `wait` for it.
    pub async fn first_mapping(&mut self, wait: Duration) -> Option<SocketAddr> {
        let settled = |s: &State| !matches!(s, State::Pending);
        let _ = tokio::time::timeout(wait, self.current.wait_for(settled)).await;
        self.external()
    }

    /// The external address now, if mapped.
    pub fn external(&self) -> Option<SocketAddr> {
        match &*self.current.borrow() {
            State::Mapped(m) => Some(m.external),
            _ => None,
        }
    }

    /// Deletes the mapping on the router and ends the renewals; waits at most [`RELEASE_WAIT`] for the
    /// router (the keeper finishes the deletion on its own if that is not enough).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(RELEASE_WAIT, task).await;
        }
    }
}

impl Drop for PortMapper {
    /// Without `stop`, the keeper still deletes the mapping on its own once told (it runs on the runtime).
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The keeper task behind [`PortMapper`].
async fn keep(
    local_port: u16,
    lease: Duration,
    state: watch::Sender<State>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut held: Option<Mapping> = None;
    loop {
        let wait = match held.take() {
            None => match request(local_port, lease).await {
                Ok(m) => {
                    log::info!("port mapping: {m}");
                    let wait = m.lease / 2;
                    held = Some(m.clone());
                    state.send_replace(State::Mapped(m));
                    wait
                }
                Err(why) => {
                    log::info!("port mapping: unavailable ({why})");
                    state.send_replace(State::Unavailable);
                    RETRY_AFTER
                }
            },
            Some(m) => match renew(&m, lease).await {
                Ok(next) => {
                    if next.external != m.external {
                        log::info!("port mapping: renewed as {next}");
                    } else {
                        log::debug!("port mapping: renewed {next}");
                    }
                    let wait = next.lease / 2;
                    held = Some(next.clone());
                    state.send_replace(State::Mapped(next));
                    wait
                }
                Err(e) => {
                    log::info!(
                        "port mapping: renewal of {} failed ({e}); asking again",
                        m.external
                    );
                    state.send_replace(State::Pending);
                    Duration::ZERO
                }
            },
        };
        tokio::select! {
            _ = tokio::time::sleep(wait.max(Duration::from_secs(1))) => {}
            _ = &mut stop => break,
        }
    }
    if let Some(m) = held {
        match release(&m).await {
            Ok(()) => log::info!("port mapping: deleted {}", m.external),
            Err(e) => log::info!("port mapping: could not delete {} ({e})", m.external),
        }
    }
}

#[cfg(test)]
mod tests;
