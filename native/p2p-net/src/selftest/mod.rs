//! The network self-test (`connectd -n`): DNS, TCP and UDP reachability of the server, the NAT's mapping
//! mapping and filtering behaviour as the server's three probe ports see it, NAT-PMP and UPnP routers, and known-answer tests of
//! the ciphers. Every probe is bounded by a timeout, so with the server down the report still finishes
//! within a few seconds and says which sections failed and why.
//!
//! - [`probe`]: UDP probes and the RFC 4787 / RFC 5780 classification.
//! - [`gateway`]: NAT-PMP (RFC 6886) and UPnP IGD discovery (SSDP).
//! - [`server_ports`]: asks the server for its probe ports over the control channel (needs its key).
//! - [`render`]: the text layout connectd prints.

pub mod gateway;
pub mod ipv6;
pub mod probe;
mod render;
pub mod server_ports;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use crate::net_util;

pub use ipv6::Ipv6Check;
pub use probe::{FilteringBehavior, MappingBehavior, ProbeResult};
pub use server_ports::ControlCheck;

/// The server's UDP probe ports (PROTOCOL.md): the first two on the server's address, the third on a
/// second address.
pub const PROBE_PORTS: [u16; 3] = [5959, 5960, 5961];

/// What to test and how long each probe may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfTestConfig {
    /// The server's control address, `host:port`.
    pub server: String,
    /// UDP probe addresses (`host:port`), in the server's order: base port, second port on the same IP,
    /// third port on a second IP. Fewer than three still runs, with a less precise classification.
    /// Defaults until the server names its own (see `server_key`).
    pub probe_addrs: Vec<String>,
    /// Which of `probe_addrs` the environment set (`P2P_PROBE_ADDR1`..`3`): they win over the server's.
    pub probe_addrs_from_env: [bool; 3],
    /// The server's public key (base64): with it the test asks the server for its probe addresses over
    /// the control channel, and checks the key on the way. `P2P_SERVER_KEY` by default.
    pub server_key: Option<String>,
    /// The third address is only a guess: use the second-IP address the server's first answer
    /// advertises instead, when it advertises one.
    pub learn_second_ip: bool,
    /// How long one resolve or TCP connect may take.
    pub connect_timeout: Duration,
    /// How long to wait for answers after each round of UDP probes.
    pub probe_timeout: Duration,
    /// Rounds of UDP probes (unanswered probes are sent again each round).
    pub probe_attempts: u32,
    /// Look for a NAT-PMP router and a UPnP IGD (each costs up to about a second when there is none).
    pub gateways: bool,
}

impl SelfTestConfig {
    /// Defaults for `server` (`host:port`): probes at `host:5959`, `host:5960` and, for the second IP,
    /// the address the server advertises in its probe answers; without one, `127.0.0.2:5961` when the
    /// host is `127.0.0.1` (the one-machine layout) or `host:5961` otherwise. The environment overrides
    /// each: `P2P_PROBE_ADDR1`, `P2P_PROBE_ADDR2`, `P2P_PROBE_ADDR3` (which also wins over the server).
    /// Of a list of nodes (`a:5980,b:5980`), the test checks the first.
    pub fn for_server(server: &str) -> SelfTestConfig {
        Self::for_server_with_env(server, |k| std::env::var(k).ok())
    }

    /// [`SelfTestConfig::for_server`] with the environment injected (for tests).
    pub fn for_server_with_env(
        server: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> SelfTestConfig {
        let server = server
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let host = server
            .rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .unwrap_or_else(|| server.clone());
        let defaults = [
            format!("{host}:{}", PROBE_PORTS[0]),
            format!("{host}:{}", PROBE_PORTS[1]),
            if host == "127.0.0.1" {
                format!("127.0.0.2:{}", PROBE_PORTS[2])
            } else {
                format!("{host}:{}", PROBE_PORTS[2])
            },
        ];
        let set = |k: &str| {
            env(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let from_env: [Option<String>; 3] =
            std::array::from_fn(|i| set(&format!("P2P_PROBE_ADDR{}", i + 1)));
        let probe_addrs_from_env = from_env.clone().map(|v| v.is_some());
        let probe_addrs = defaults
            .into_iter()
            .zip(from_env)
            .map(|(d, e)| e.unwrap_or(d))
            .collect();
        SelfTestConfig {
            server,
            probe_addrs,
            learn_second_ip: !probe_addrs_from_env[2],
            probe_addrs_from_env,
            server_key: set("P2P_SERVER_KEY"),
            connect_timeout: Duration::from_secs(3),
            probe_timeout: Duration::from_millis(400),
            probe_attempts: 3,
            gateways: true,
        }
    }
}

/// Everything the self-test found; `render_text` prints it the way connectd does, serde gives the JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelfTestReport {
    pub server: String,
    pub dns: DnsCheck,
    pub tcp: TcpCheck,
    /// The control channel: the server's key and where its probe ports are.
    pub control: ControlCheck,
    pub udp: UdpCheck,
    pub nat_pmp: NatPmpCheck,
    pub upnp: UpnpCheck,
    pub nat: NatClassification,
    #[serde(default)]
    pub ipv6: Ipv6Check,
    /// "Little" or "Big".
    pub endian: String,
    pub crypto: Vec<CryptoCheck>,
    /// One plain sentence on what the network means for a direct P2P path.
    pub verdict: String,
    /// DNS, TCP, at least one UDP probe and every cipher test passed.
    pub compatible: bool,
    /// Why not compatible (empty when compatible).
    pub problems: Vec<String>,
    pub elapsed_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnsCheck {
    pub ok: bool,
    /// The server's address it resolved to.
    pub address: Option<String>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TcpCheck {
    pub ok: bool,
    /// The control address connected to.
    pub address: Option<String>,
    /// connectd's `oip`: our source address on that connection.
    pub source_ip: Option<String>,
    pub connect_ms: Option<f64>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UdpCheck {
    /// At least one probe answered.
    pub ok: bool,
    /// connectd's `oport`: the local port every probe was sent from.
    pub local_port: Option<u16>,
    pub probes: Vec<ProbeResult>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NatPmpCheck {
    pub found: bool,
    /// The default gateway asked, or `None` when it is unknown on this OS.
    pub gateway: Option<String>,
    pub public_ip: Option<String>,
    /// Seconds since the router's port-mapping table was (re)started.
    pub epoch: Option<u32>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpnpCheck {
    pub found: bool,
    /// The device description URL the IGD announced.
    pub location: Option<String>,
    pub server: Option<String>,
    pub error: Option<String>,
}

/// The NAT in RFC 4787 / RFC 5780 terms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NatClassification {
    /// Whether any translation happens between us and the server (`None` when no probe answered).
    pub behind_nat: Option<bool>,
    pub public_ip: Option<String>,
    pub mapping: MappingBehavior,
    /// RFC 4787 filtering as [`FilteringBehavior::describe`] names it ("endpoint-independent",
    /// "address-dependent", "address-and-port-dependent" or "unknown"; why unknown is in `notes`).
    pub filtering: String,
    /// The mapped port equals our local port for every probe.
    pub port_preservation: Option<bool>,
    /// A datagram from a second local socket to our mapped address reached us.
    pub hairpinning: Option<bool>,
    /// Why the classification is partial, when it is.
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CryptoCheck {
    pub name: String,
    pub passed: bool,
}

/// Runs the whole self-test. Never fails: each section records its own error.
pub async fn run(cfg: &SelfTestConfig) -> SelfTestReport {
    let started = Instant::now();
    let (dns, server_addr) = check_dns(cfg).await;
    let tcp = match server_addr {
        Some(a) => check_tcp(a, cfg.connect_timeout).await,
        None => TcpCheck {
            ok: false,
            address: None,
            source_ip: None,
            connect_ms: None,
            error: Some("skipped: the server's name did not resolve".into()),
        },
    };
    // Before the UDP probes: the server may name other probe ports than the defaults.
    let (control, probed) = if tcp.ok {
        server_ports::ask(cfg).await
    } else {
        server_ports::skipped(cfg, "skipped: no TCP connection to the server")
    };
    let cfg = &probed;
    // UDP probes and router discovery are independent: run them at once to keep the total short.
    let gateways = async {
        if cfg.gateways {
            tokio::join!(gateway::nat_pmp(), gateway::upnp())
        } else {
            (gateway::nat_pmp_skipped(), gateway::upnp_skipped())
        }
    };
    let (findings, (nat_pmp, upnp)) = tokio::join!(probe::check_udp(cfg), gateways);
    let mut nat = probe::classify(&findings.check, findings.hairpin, &findings.filtering);
    nat.notes.extend(gateway::double_nat_note(
        nat_pmp.public_ip.as_deref(),
        nat.public_ip.as_deref(),
    ));
    let udp = findings.check;
    let crypto: Vec<CryptoCheck> = p2p_proto::crypto::self_test()
        .into_iter()
        .map(|(name, passed)| CryptoCheck {
            name: name.to_string(),
            passed,
        })
        .collect();
    let mut problems = Vec::new();
    if let Some(e) = &dns.error {
        problems.push(format!("DNS: {e}"));
    }
    if let Some(e) = &tcp.error {
        problems.push(format!("TCP: {e}"));
    }
    if let (true, Some(e)) = (control.problem, &control.error) {
        problems.push(e.clone());
    }
    if !udp.ok {
        problems.push(format!(
            "UDP: {}",
            udp.error.as_deref().unwrap_or("no probe answered")
        ));
    }
    for c in crypto.iter().filter(|c| !c.passed) {
        problems.push(format!("{} self-test failed", c.name));
    }
    let ipv6 = Ipv6Check::gather();
    let mut verdict = probe::verdict(&dns, &tcp, &udp, &nat);
    if let Some(more) = ipv6.verdict_addition() {
        verdict = format!("{verdict} {more}");
    }
    SelfTestReport {
        server: cfg.server.clone(),
        dns,
        tcp,
        control,
        udp,
        nat_pmp,
        upnp,
        nat,
        ipv6,
        endian: if cfg!(target_endian = "little") {
            "Little"
        } else {
            "Big"
        }
        .into(),
        compatible: problems.is_empty(),
        problems,
        crypto,
        verdict,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }
}

impl SelfTestReport {
    /// The report as connectd prints it (see the seed's `connectd -n` output).
    pub fn render_text(&self) -> String {
        render::text(self)
    }

    /// The report as one JSON object (what `connectd -n --json` prints and `Test-P2PNetwork` reads).
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialization cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

async fn check_dns(cfg: &SelfTestConfig) -> (DnsCheck, Option<SocketAddr>) {
    match net_util::resolve_within(&cfg.server, cfg.connect_timeout).await {
        Ok(a) => (
            DnsCheck {
                ok: true,
                address: Some(a.to_string()),
                error: None,
            },
            Some(a),
        ),
        Err(e) => (
            DnsCheck {
                ok: false,
                address: None,
                error: Some(e.message),
            },
            None,
        ),
    }
}

/// A plain TCP connect to the control port (no handshake: the self-test needs no server key).
async fn check_tcp(addr: SocketAddr, timeout: Duration) -> TcpCheck {
    let started = Instant::now();
    let fail = |why: String| TcpCheck {
        ok: false,
        address: Some(addr.to_string()),
        source_ip: None,
        connect_ms: None,
        error: Some(format!("cannot connect to {addr}: {why}")),
    };
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => TcpCheck {
            ok: true,
            address: Some(addr.to_string()),
            source_ip: s.local_addr().ok().map(|a| a.ip().to_string()),
            connect_ms: Some(millis(started.elapsed())),
            error: None,
        },
        Ok(Err(e)) => fail(e.to_string()),
        Err(_) => fail(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// Milliseconds with microsecond resolution (what a report needs; keeps the JSON short).
fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

#[cfg(test)]
mod tests;
