//! What an operator watches: counters the control path bumps as things happen (logins, registrations,
//! sessions, refusals by reason), gauges read from the broker and the relay when scraped, rendered in
//! Prometheus' text exposition format. `ops_http` serves them with `/healthz`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use p2p_proto::control::ErrorCode;

use crate::relay::Counters;

/// What a client asked for when it was refused: the `request` label of `p2p_refusals_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Request {
    /// A control connection itself (connection limits).
    Connection,
    Login,
    Register,
    Connect,
    AuthHash,
    /// A target's answer to a session offer (typically one that came after the timeout).
    Answer,
}

impl Request {
    fn label(self) -> &'static str {
        match self {
            Request::Connection => "connection",
            Request::Login => "login",
            Request::Register => "register",
            Request::Connect => "connect",
            Request::AuthHash => "auth_hash",
            Request::Answer => "answer",
        }
    }
}

/// The `reason` label: the refusal's error code, in the snake case Prometheus labels use.
fn reason(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::BadUser => "bad_user",
        ErrorCode::AuthFailed => "auth_failed",
        ErrorCode::Throttled => "throttled",
        ErrorCode::UnknownUid => "unknown_uid",
        ErrorCode::NotShared => "not_shared",
        ErrorCode::DeviceOffline => "device_offline",
        ErrorCode::BadSecret => "bad_secret",
        ErrorCode::SessionFailed => "session_failed",
        ErrorCode::BadRequest => "bad_request",
        ErrorCode::LimitReached => "limit_reached",
        ErrorCode::KeyChanged => "key_changed",
        ErrorCode::Internal => "internal",
    }
}

/// Counters since the server started. Cheap to bump from any task.
#[derive(Default)]
pub struct Metrics {
    logins_password: AtomicU64,
    logins_auth_hash: AtomicU64,
    registrations: AtomicU64,
    sessions_granted: AtomicU64,
    connections_accepted: AtomicU64,
    connections_open: AtomicU64,
    refusals: Mutex<BTreeMap<(Request, &'static str), u64>>,
}

impl Metrics {
    pub fn login(&self, by_password: bool) {
        let counter = match by_password {
            true => &self.logins_password,
            false => &self.logins_auth_hash,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn registered(&self) {
        self.registrations.fetch_add(1, Ordering::Relaxed);
    }

    pub fn session_granted(&self) {
        self.sessions_granted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self, request: Request, code: ErrorCode) {
        let mut map = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((request, reason(code))).or_default() += 1;
    }

    /// A control connection was accepted; the guard counts it as open until dropped.
    pub fn connection_opened(&self) -> OpenConnection<'_> {
        self.connections_accepted.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self)
    }

    /// The exposition text: these counters plus the gauges of `now`.
    pub fn render(&self, now: &Gauges) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let plain = |v: u64| vec![(String::new(), v)];
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        metric(
            "p2p_devices_online",
            "gauge",
            "Devices registered on this node now.",
            &plain(now.devices_online as u64),
        );
        metric(
            "p2p_control_connections",
            "gauge",
            "Control connections open now (targets and initiators).",
            &plain(load(&self.connections_open)),
        );
        metric(
            "p2p_control_connections_accepted_total",
            "counter",
            "Control connections accepted.",
            &plain(load(&self.connections_accepted)),
        );
        metric(
            "p2p_pending_sessions",
            "gauge",
            "Sessions waiting for their target to accept.",
            &plain(now.pending_sessions as u64),
        );
        metric(
            "p2p_logins_total",
            "counter",
            "Successful logins, by credential.",
            &[
                ("{method=\"password\"}".into(), load(&self.logins_password)),
                (
                    "{method=\"auth_hash\"}".into(),
                    load(&self.logins_auth_hash),
                ),
            ],
        );
        metric(
            "p2p_registrations_total",
            "counter",
            "Successful device registrations.",
            &plain(load(&self.registrations)),
        );
        metric(
            "p2p_sessions_granted_total",
            "counter",
            "Sessions set up (the target accepted).",
            &plain(load(&self.sessions_granted)),
        );
        let refusals: Vec<(String, u64)> = self
            .refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((request, reason), n)| {
                (
                    format!("{{request=\"{}\",reason=\"{reason}\"}}", request.label()),
                    *n,
                )
            })
            .collect();
        metric(
            "p2p_refusals_total",
            "counter",
            "Requests refused, by request and reason.",
            &refusals,
        );
        metric(
            "p2p_relay_sessions",
            "gauge",
            "Sessions the relay holds now.",
            &plain(now.relay_sessions as u64),
        );
        let c = &now.relay;
        metric(
            "p2p_relay_forwarded_bytes_total",
            "counter",
            "Bytes the relay forwarded.",
            &plain(c.forwarded_bytes),
        );
        metric(
            "p2p_relay_forwarded_packets_total",
            "counter",
            "Datagrams the relay forwarded.",
            &plain(c.forwarded_packets),
        );
        metric(
            "p2p_relay_sessions_ended_total",
            "counter",
            "Relay sessions that ended, by how.",
            &[
                ("{how=\"released\"}".into(), c.sessions_released),
                ("{how=\"expired\"}".into(), c.sessions_expired),
            ],
        );
        metric(
            "p2p_relay_dropped_total",
            "counter",
            "Datagrams the relay dropped, by reason.",
            &[
                ("{reason=\"garbage\"}".into(), c.garbage),
                ("{reason=\"bad_token\"}".into(), c.bad_token),
                ("{reason=\"unknown_session\"}".into(), c.unknown_session),
                ("{reason=\"unbound_source\"}".into(), c.unbound_source),
            ],
        );
        metric(
            "p2p_probe_answers_total",
            "counter",
            "NAT probe requests answered.",
            &plain(now.probes_answered),
        );
        metric(
            "p2p_probe_ignored_total",
            "counter",
            "NAT probe requests ignored (malformed or over the rate limit).",
            &plain(now.probes_ignored),
        );
        out
    }
}

/// Counts a control connection as open while it lives.
pub struct OpenConnection<'a>(&'a Metrics);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What is read from the broker, the relay and the probe listeners at scrape time.
pub struct Gauges {
    pub devices_online: usize,
    pub pending_sessions: usize,
    pub relay_sessions: usize,
    pub relay: Counters,
    pub probes_answered: u64,
    pub probes_ignored: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            devices_online: 3,
            pending_sessions: 1,
            relay_sessions: 0,
            relay: Counters::default(),
            probes_answered: 7,
            probes_ignored: 2,
        }
    }

    /// Every sample line is `name{labels} value` under its own HELP and TYPE lines, as Prometheus parses.
    #[test]
    fn renders_counters_and_gauges_in_the_exposition_format() {
        let m = Metrics::default();
        m.login(true);
        m.login(false);
        m.login(true);
        m.refused(Request::Login, ErrorCode::AuthFailed);
        m.refused(Request::Login, ErrorCode::AuthFailed);
        m.refused(Request::Connect, ErrorCode::DeviceOffline);
        let open = m.connection_opened();
        let text = m.render(&gauges());
        for line in [
            "p2p_devices_online 3",
            "p2p_control_connections 1",
            "p2p_logins_total{method=\"password\"} 2",
            "p2p_logins_total{method=\"auth_hash\"} 1",
            "p2p_refusals_total{request=\"login\",reason=\"auth_failed\"} 2",
            "p2p_refusals_total{request=\"connect\",reason=\"device_offline\"} 1",
            "p2p_probe_answers_total 7",
            "# TYPE p2p_relay_forwarded_bytes_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line '{line}' in:\n{text}"
            );
        }
        drop(open);
        assert!(m
            .render(&gauges())
            .lines()
            .any(|l| l == "p2p_control_connections 0"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').expect("name and value");
            assert!(value.parse::<u64>().is_ok(), "{line}");
            assert!(name.starts_with("p2p_"), "{line}");
        }
    }
}
