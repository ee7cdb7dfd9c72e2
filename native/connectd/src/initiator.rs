//! The initiator: one tunnel (`p2p_net::Tunnel`) with connectd's output.
//!
//! ```text
//! !!status - pid=4242                    (-s)
//! Starting Proxy on port 33000 on index 1.
//! Proxy started.
//! !!status connecting                    (-s)
//! !!connected local=127.0.0.1:33000 encryption=ChaCha20Poly1305 session=... ip=...   (-s)
//! !!status aead=AES-256-GCM             (-s, mode 3: the AEAD agreed with the device)
//! !!throughput txBps=... rxBps=...       (-s, every few seconds while connected)
//! !!exit [003] : terminated by signal    (-s)
//! ```
//! The process status is the `!!exit` code.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use p2p_config::{AutoConnect, ExitCode, InitiatorConfig};
use p2p_net::{PathFamily, PathKind, Tunnel, TunnelState, TunnelStatus};

use crate::os::Shutdown;
use crate::output::Output;

/// How often `-s` prints `!!throughput`.
const THROUGHPUT_EVERY: Duration = Duration::from_secs(5);

pub async fn run(config: InitiatorConfig, out: &Output) -> ExitCode {
    let mut shutdown = Shutdown::register();
    if config.encryption.is_weak() {
        log::warn!(
            "encryption mode {} is kept for connectd compatibility and is not secure; use 3 (X25519 + AEAD)",
            config.encryption.name()
        );
    }
    let autoconnect = config.autoconnect;
    out.status(&format!("!!status - pid={}", std::process::id()));
    let tunnel = match Tunnel::start(config).await {
        Ok(tunnel) => tunnel,
        Err(e) => return out.fail(crate::exit_codes::for_error(e.kind), &e.message),
    };
    // The local port listens from here on: connections made before the session is up wait for it.
    out.line(&format!(
        "Starting Proxy on port {} on index 1.",
        tunnel.local_addr().port()
    ));
    out.line("Proxy started.");

    let mut watch = tunnel.watch();
    let mut shown = StatusReporter::default();
    let mut rates = Rates::new(&tunnel.status());
    let mut throughput = tokio::time::interval_at(
        tokio::time::Instant::now() + THROUGHPUT_EVERY,
        THROUGHPUT_EVERY,
    );
    loop {
        let status = watch.borrow_and_update().clone();
        shown.report(&status, out);
        if status.state.is_final() {
            return finish(&status, &shown, autoconnect, out);
        }
        tokio::select! {
            changed = watch.changed() => {
                if changed.is_err() {
                    return out.fail(ExitCode::Unknown, "the tunnel ended without a final status");
                }
            }
            _ = throughput.tick() => {
                let now = tunnel.status();
                let (tx, rx) = rates.update(&now);
                if now.state.is_up() {
                    out.status(&format!("!!throughput txBps={tx} rxBps={rx}"));
                }
            }
            signal = shutdown.wait() => {
                log::info!("{signal}: closing the tunnel");
                tunnel.stop().await;
                return out.exit(ExitCode::Signal, ExitCode::Signal.description());
            }
        }
    }
}

/// How the tunnel ended, as a code and a plain line.
fn finish(
    status: &TunnelStatus,
    shown: &StatusReporter,
    autoconnect: AutoConnect,
    out: &Output,
) -> ExitCode {
    let Some(error) = &status.last_error else {
        // Ended without a reason: only `stop` does that, and only this module calls it.
        return out.exit(ExitCode::Ok, "");
    };
    let code = crate::exit_codes::for_end(error);
    match status.state {
        // An end the user asked for (lifetime, idle limit): not a failure.
        TunnelState::Stopped => {
            log::info!("{}", error.message);
            out.line(&format!("Proxy stopped: {}.", error.message));
            out.exit(code, &error.message)
        }
        _ if shown.was_connected && autoconnect == AutoConnect::Once => {
            let message = format!(
                "session lost: {} (autoconnect 1 does not reconnect; set autoconnect 2 in the file to reconnect by itself)",
                error.message
            );
            out.problem(&message);
            out.exit(code, &error.message)
        }
        _ => out.fail(code, &error.message),
    }
}

/// Prints the status lines for what changed: remembers what has been printed, so each change is
/// reported once.
#[derive(Default)]
struct StatusReporter {
    state: Option<TunnelState>,
    /// The session the last `!!connected` line was about.
    session: Option<String>,
    path: Option<(PathKind, Option<PathFamily>)>,
    udp_port: Option<u16>,
    was_connected: bool,
}

impl StatusReporter {
    fn report(&mut self, status: &TunnelStatus, out: &Output) {
        if let Some(port) = status.local_udp_port {
            if self.udp_port != Some(port) {
                self.udp_port = Some(port);
                out.status(&format!("!!status - bound to UDP port {port}"));
            }
        }
        // Degraded is Connected with a silent device: connectd 4.6 has no status line for it, so the
        // `!!` lines stay those of a connected session, and one warning goes to stderr.
        let shown = |s: TunnelState| {
            if s == TunnelState::Degraded {
                TunnelState::Connected
            } else {
                s
            }
        };
        let state_changed = self.state.map(shown) != Some(shown(status.state));
        if status.state == TunnelState::Degraded && self.state != Some(TunnelState::Degraded) {
            out.problem(&degraded_line(status));
        }
        match shown(status.state) {
            TunnelState::Connecting if state_changed => out.status("!!status connecting"),
            TunnelState::Connected => {
                if state_changed || self.session != status.session_id {
                    self.session.clone_from(&status.session_id);
                    self.was_connected = true;
                    self.path = None;
                    out.status(&connected_line(status));
                    if let Some(aead) = &status.aead {
                        out.status(&format!("!!status aead={aead}"));
                    }
                    log::info!(
                        "connected to {} through {}",
                        status.device_id,
                        status.local_endpoint
                    );
                }
                let path = status.path.map(|p| (p, status.path_family));
                if path.is_some() && path != self.path {
                    self.path = path;
                    out.status(&path_line(status));
                }
            }
            TunnelState::Reconnecting if state_changed => {
                let why = status
                    .last_error
                    .as_ref()
                    .map_or("the session was lost", |e| e.message.as_str());
                out.problem(&format!("{why}; reconnecting (the local port stays open)"));
                out.status("!!status reconnecting");
            }
            _ => {}
        }
        self.state = Some(status.state);
    }
}

/// The warning printed when the session goes `Degraded`.
fn degraded_line(status: &TunnelStatus) -> String {
    let silent = status.peer_silent_ms.unwrap_or(0) / 1000;
    // The driver keeps the protocol's default silence limit.
    let limit = p2p_proto::session::DEFAULT_IDLE_TIMEOUT.as_secs();
    format!(
        "warning: no packet from {} for {silent} s; connections may stall (the session ends after {limit} s of silence)",
        status.device_id
    )
}

/// `!!connected local=127.0.0.1:33000 encryption=ChaCha20Poly1305 session=<hex> ip=<peer address>`.
fn connected_line(status: &TunnelStatus) -> String {
    let peer = status.peer_endpoint.as_deref().map_or_else(
        || "-".to_string(),
        |p| {
            p.parse::<SocketAddr>()
                .map_or_else(|_| p.to_string(), |a| a.ip().to_string())
        },
    );
    format!(
        "!!connected local={} encryption={} session={} ip={}",
        status.local_endpoint,
        status.encryption,
        status.session_id.as_deref().unwrap_or("-"),
        peer
    )
}

/// `!!status path=direct family=IPv6`: the family only for a direct (or port-mapped) path.
fn path_line(status: &TunnelStatus) -> String {
    let family = match status.path_family {
        Some(PathFamily::IPv4) => " family=IPv4",
        Some(PathFamily::IPv6) => " family=IPv6",
        None => "",
    };
    format!("!!status path={}{family}", path_name(status.path))
}

fn path_name(path: Option<PathKind>) -> &'static str {
    match path {
        Some(PathKind::Direct) => "direct",
        Some(PathKind::Relayed) => "relayed",
        Some(PathKind::PortMapped) => "port-mapped",
        None => "none",
    }
}

/// Bytes per second since the last sample.
struct Rates {
    sent: u64,
    received: u64,
    at: Instant,
}

impl Rates {
    fn new(status: &TunnelStatus) -> Self {
        Rates {
            sent: status.bytes_sent,
            received: status.bytes_received,
            at: Instant::now(),
        }
    }

    fn update(&mut self, status: &TunnelStatus) -> (u64, u64) {
        let seconds = self.at.elapsed().as_secs_f64().max(0.001);
        // Counters restart with a new session on some paths: a smaller value means a new base.
        let per_second =
            |now: u64, before: u64| (now.saturating_sub(before) as f64 / seconds) as u64;
        let rates = (
            per_second(status.bytes_sent, self.sent),
            per_second(status.bytes_received, self.received),
        );
        *self = Rates::new(status);
        rates
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_net::LastError;

    fn status() -> TunnelStatus {
        TunnelStatus {
            name: "t".into(),
            device_id: "80:00:00:00:00:00:00:F1".into(),
            state: TunnelState::Connected,
            local_endpoint: "127.0.0.1:33000".into(),
            path: Some(PathKind::Direct),
            path_family: Some(PathFamily::IPv4),
            encryption: "ChaCha20Poly1305".into(),
            aead: Some("AES-256-GCM".into()),
            peer_fingerprint: None,
            peer_endpoint: Some("192.0.2.7:40000".into()),
            session_id: Some("0b173cebde7951e2".into()),
            local_udp_port: Some(50000),
            bytes_sent: 0,
            bytes_received: 0,
            rtt_ms: None,
            packets_lost: 0,
            streams_open: 0,
            started_at: String::new(),
            connected_at: None,
            peer_silent_ms: None,
            key_updates_sent: 0,
            key_updates_received: 0,
            reconnect_attempts: 0,
            last_error: None::<LastError>,
        }
    }

    #[test]
    fn connected_line_as_connectd_prints_it() {
        assert_eq!(
            connected_line(&status()),
            "!!connected local=127.0.0.1:33000 encryption=ChaCha20Poly1305 session=0b173cebde7951e2 ip=192.0.2.7"
        );
    }

    #[test]
    fn the_path_line_names_the_family_of_a_direct_path_only() {
        let mut s = status();
        assert_eq!(path_line(&s), "!!status path=direct family=IPv4");
        s.path_family = Some(PathFamily::IPv6);
        assert_eq!(path_line(&s), "!!status path=direct family=IPv6");
        s.path = Some(PathKind::Relayed);
        s.path_family = None;
        assert_eq!(path_line(&s), "!!status path=relayed");
    }

    #[test]
    fn a_degraded_session_is_one_warning_naming_the_device_and_its_silence() {
        let mut s = status();
        s.state = TunnelState::Degraded;
        s.peer_silent_ms = Some(5250);
        assert_eq!(
            degraded_line(&s),
            "warning: no packet from 80:00:00:00:00:00:00:F1 for 5 s; connections may stall (the session ends after 20 s of silence)"
        );
    }

    #[test]
    fn rates_are_per_second_and_survive_a_counter_reset() {
        let mut s = status();
        let mut rates = Rates::new(&s);
        rates.at = Instant::now() - Duration::from_secs(2);
        s.bytes_sent = 2000;
        s.bytes_received = 1000;
        let (tx, rx) = rates.update(&s);
        assert!(
            (900..=1000).contains(&tx) && (450..=500).contains(&rx),
            "{tx} {rx}"
        );
        s.bytes_sent = 0;
        assert_eq!(rates.update(&s).0, 0);
    }
}
