//! UDP probes to the server's probe ports from one socket, and what their answers say about the NAT
//! (RFC 4787 mapping behaviour as RFC 5780 section 4.3 measures it, port preservation, hairpinning).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use p2p_proto::wire;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;

use super::{DnsCheck, NatClassification, SelfTestConfig, TcpCheck, UdpCheck};
use crate::net_util;

/// How long the hairpinning datagram may take to come back through the NAT.
const HAIRPIN_TIMEOUT: Duration = Duration::from_millis(300);

/// One probe port: where we sent, what the server saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// The probe address as configured (`host:port`).
    pub target: String,
    /// What it resolved to.
    pub address: Option<SocketAddr>,
    pub ok: bool,
    /// connectd's `mip`/`mport`: our address and port as the server saw them.
    pub mapped: Option<SocketAddr>,
    /// connectd's `oport`: the local port the probe left from.
    pub local_port: Option<u16>,
    /// `mport == oport`.
    pub preserve_port: bool,
    /// Same mapping as the first probe (`None` for the first probe or when the first had no answer).
    pub no_remap: Option<bool>,
    /// This probe went to another server IP than the first.
    pub different_ip: bool,
    pub attempts: u32,
    pub rtt_ms: Option<f64>,
    pub error: Option<String>,
}

/// RFC 4787 section 4.1 mapping behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MappingBehavior {
    /// The same public address and port for every destination (or no NAT at all).
    EndpointIndependent,
    /// A new mapping per destination IP address.
    AddressDependent,
    /// A new mapping per destination address and port ("symmetric NAT").
    AddressAndPortDependent,
    /// Not enough answers to tell.
    Unknown,
}

impl MappingBehavior {
    pub fn describe(self) -> &'static str {
        match self {
            MappingBehavior::EndpointIndependent => "endpoint-independent",
            MappingBehavior::AddressDependent => "address-dependent",
            MappingBehavior::AddressAndPortDependent => "address-and-port-dependent",
            MappingBehavior::Unknown => "unknown",
        }
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // Without OS randomness the transaction ids are merely predictable: fine for a diagnostic.
    let _ = getrandom::getrandom(&mut b);
    b
}

fn failed(target: &str, address: Option<SocketAddr>, error: String) -> ProbeResult {
    ProbeResult {
        target: target.to_string(),
        address,
        ok: false,
        mapped: None,
        local_port: None,
        preserve_port: false,
        no_remap: None,
        different_ip: false,
        attempts: 0,
        rtt_ms: None,
        error: Some(error),
    }
}

/// Sends a `ProbeRequest` to every probe address from one socket, in rounds (unanswered probes are
/// repeated), then tests hairpinning through the first mapping. Returns the check and the hairpin result.
pub(super) async fn check_udp(cfg: &SelfTestConfig) -> (UdpCheck, Option<bool>) {
    let udp_failed = |probes: Vec<ProbeResult>, error: String| UdpCheck {
        ok: false,
        local_port: None,
        probes,
        error: Some(error),
    };
    if cfg.probe_addrs.is_empty() {
        return (
            udp_failed(Vec::new(), "no probe addresses configured".into()),
            None,
        );
    }
    let mut resolved = Vec::with_capacity(cfg.probe_addrs.len());
    for target in &cfg.probe_addrs {
        resolved.push(net_util::resolve_within(target, cfg.connect_timeout).await);
    }
    let Some(first) = resolved.iter().find_map(|r| r.as_ref().ok().copied()) else {
        let probes = cfg
            .probe_addrs
            .iter()
            .zip(resolved)
            .map(|(t, r)| failed(t, None, r.err().map(|e| e.message).unwrap_or_default()))
            .collect();
        return (udp_failed(probes, "no probe address resolved".into()), None);
    };
    let socket = match net_util::bind_udp(first).await {
        Ok(s) => s,
        Err(e) => return (udp_failed(Vec::new(), e.message), None),
    };
    let local_port = socket.local_addr().ok().map(|a| a.port());
    let targets: Vec<Result<SocketAddr, String>> = resolved
        .into_iter()
        .map(|r| match r {
            Ok(a) if a.is_ipv4() != first.is_ipv4() => {
                Err(format!("{a} is not in the same address family as {first}"))
            }
            Ok(a) => Ok(a),
            Err(e) => Err(e.message),
        })
        .collect();
    let answers = exchange(&socket, &targets, cfg).await;

    let first_target_ip = targets
        .first()
        .and_then(|t| t.as_ref().ok())
        .map(|a| a.ip());
    let first_mapped = answers.first().and_then(|a| a.answer.map(|(m, _)| m));
    let probes: Vec<ProbeResult> = cfg
        .probe_addrs
        .iter()
        .zip(targets.iter().zip(&answers))
        .enumerate()
        .map(|(i, (target, (addr, ans)))| match (addr, ans.answer) {
            (Err(e), _) => failed(target, None, e.clone()),
            (Ok(a), None) => ProbeResult {
                attempts: ans.attempts,
                ..failed(
                    target,
                    Some(*a),
                    ans.send_error
                        .clone()
                        .unwrap_or_else(|| format!("no answer after {} attempt(s)", ans.attempts)),
                )
            },
            (Ok(a), Some((mapped, rtt))) => ProbeResult {
                target: target.clone(),
                address: Some(*a),
                ok: true,
                mapped: Some(mapped),
                local_port,
                preserve_port: Some(mapped.port()) == local_port,
                no_remap: (i > 0)
                    .then_some(first_mapped.map(|f| f == mapped))
                    .flatten(),
                different_ip: first_target_ip.is_some_and(|ip| ip != a.ip()),
                attempts: ans.attempts,
                rtt_ms: Some(super::millis(rtt)),
                error: None,
            },
        })
        .collect();
    let ok = probes.iter().any(|p| p.ok);
    let hairpin = match first_mapped {
        Some(m) if ok => hairpin(&socket, m).await,
        _ => None,
    };
    let check = UdpCheck {
        ok,
        local_port,
        error: (!ok).then(|| "no probe port of the server answered".to_string()),
        probes,
    };
    (check, hairpin)
}

/// What came back for one probe address.
#[derive(Default)]
struct Answer {
    answer: Option<(SocketAddr, Duration)>,
    attempts: u32,
    send_error: Option<String>,
}

/// Runs the probe rounds: each round sends to every address still unanswered, then collects answers
/// (matched by transaction id) until all are in or the round's timeout passes.
async fn exchange(
    socket: &UdpSocket,
    targets: &[Result<SocketAddr, String>],
    cfg: &SelfTestConfig,
) -> Vec<Answer> {
    let txids: Vec<[u8; 12]> = targets.iter().map(|_| random_bytes()).collect();
    let mut answers: Vec<Answer> = targets.iter().map(|_| Answer::default()).collect();
    let mut sent_at = vec![Instant::now(); targets.len()];
    let pending = |answers: &[Answer]| {
        targets
            .iter()
            .zip(answers)
            .any(|(t, a)| t.is_ok() && a.answer.is_none())
    };
    let mut buf = [0u8; 256];
    for _ in 0..cfg.probe_attempts.max(1) {
        for (i, t) in targets.iter().enumerate() {
            let Ok(addr) = t else { continue };
            if answers[i].answer.is_some() {
                continue;
            }
            answers[i].attempts += 1;
            sent_at[i] = Instant::now();
            match socket
                .send_to(&wire::encode_probe_request(txids[i]), addr)
                .await
            {
                Ok(_) => answers[i].send_error = None,
                Err(e) => answers[i].send_error = Some(format!("cannot send to {addr}: {e}")),
            }
        }
        let deadline = tokio::time::Instant::now() + cfg.probe_timeout;
        while pending(&answers) {
            match tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
                Err(_) => break,
                // Windows reports an ICMP "port unreachable" as an error on the next receive: not fatal.
                Ok(Err(_)) => continue,
                Ok(Ok((n, _from))) => {
                    let Ok((txid, seen)) = wire::decode_probe_response(&buf[..n]) else {
                        continue;
                    };
                    if let Some(i) = txids.iter().position(|t| *t == txid) {
                        if answers[i].answer.is_none() {
                            answers[i].answer = Some((seen, sent_at[i].elapsed()));
                        }
                    }
                }
            }
        }
        if !pending(&answers) {
            break;
        }
    }
    answers
}

/// Sends a datagram from a second local socket to `mapped` (our public address for `socket`): if it
/// arrives, the NAT hairpins, so two devices behind the same NAT can reach each other by public address.
async fn hairpin(socket: &UdpSocket, mapped: SocketAddr) -> Option<bool> {
    let other = net_util::bind_udp(mapped).await.ok()?;
    let token: [u8; 16] = random_bytes();
    other.send_to(&token, mapped).await.ok()?;
    let deadline = tokio::time::Instant::now() + HAIRPIN_TIMEOUT;
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
            Err(_) => return Some(false),
            Ok(Ok((n, _))) if buf[..n] == token => return Some(true),
            Ok(_) => {}
        }
    }
}

/// Classifies the NAT from the probe answers.
pub(super) fn classify(
    udp: &UdpCheck,
    hairpinning: Option<bool>,
    probe_addrs: &[String],
) -> NatClassification {
    let answered: Vec<(SocketAddr, SocketAddr)> = udp
        .probes
        .iter()
        .filter_map(|p| Some((p.address?, p.mapped?)))
        .collect();
    let mut notes = Vec::new();
    let filtering =
        "not measured: the server answers only from the address a probe was sent to".to_string();
    let Some(&(_, first_mapped)) = answered.first() else {
        notes.push("no probe answered: nothing to classify".into());
        return NatClassification {
            behind_nat: None,
            public_ip: None,
            mapping: MappingBehavior::Unknown,
            filtering,
            port_preservation: None,
            hairpinning: None,
            notes,
        };
    };
    // No translation at all: the server saw our own interface address and port.
    let untranslated = answered.iter().all(|(target, mapped)| {
        Some(mapped.port()) == udp.local_port
            && net_util::route_source(*target) == Some(mapped.ip())
    });
    let port_preservation = answered
        .iter()
        .all(|(_, m)| Some(m.port()) == udp.local_port);

    let mut differs_same_ip = false;
    let mut differs_other_ip = false;
    let mut compared_other_ip = false;
    for (i, (ta, ma)) in answered.iter().enumerate() {
        for (tb, mb) in &answered[i + 1..] {
            let same_ip = ta.ip() == tb.ip();
            compared_other_ip |= !same_ip;
            if ma != mb {
                if same_ip {
                    differs_same_ip = true;
                } else {
                    differs_other_ip = true;
                }
            }
        }
    }
    let mapping = if untranslated {
        notes.push("no NAT between this machine and the server".into());
        MappingBehavior::EndpointIndependent
    } else if differs_same_ip {
        MappingBehavior::AddressAndPortDependent
    } else if differs_other_ip {
        MappingBehavior::AddressDependent
    } else if compared_other_ip {
        MappingBehavior::EndpointIndependent
    } else {
        if answered.len() < 2 {
            notes.push("only one probe answered: mapping behaviour unknown".into());
        } else {
            notes.push(format!(
                "no probe on a second server IP answered{}: cannot tell endpoint-independent from address-dependent mapping",
                probe_addrs
                    .get(2)
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default()
            ));
        }
        MappingBehavior::Unknown
    };
    NatClassification {
        behind_nat: Some(!untranslated),
        public_ip: Some(first_mapped.ip().to_string()),
        mapping,
        filtering,
        port_preservation: Some(port_preservation),
        hairpinning,
        notes,
    }
}

/// One plain sentence on what the results mean for a direct P2P path.
pub(super) fn verdict(
    dns: &DnsCheck,
    tcp: &TcpCheck,
    udp: &UdpCheck,
    nat: &NatClassification,
) -> String {
    if !dns.ok {
        return "The server's name does not resolve, so nothing else could be tested: check the server address and DNS.".into();
    }
    if !tcp.ok && !udp.ok {
        return "The server is unreachable over TCP and UDP (is it running, and is the address right?), so no connection can be made from here.".into();
    }
    if !tcp.ok {
        return "The server's control port refuses TCP connections, so no session can be set up from here.".into();
    }
    if !udp.ok {
        return "UDP to the server is blocked, so neither a direct P2P path nor the relay can work from this network.".into();
    }
    if nat.behind_nat == Some(false) {
        return "There is no NAT between this machine and the server, so direct P2P paths work whenever the other side's network allows them.".into();
    }
    match nat.mapping {
        MappingBehavior::EndpointIndependent => "This NAT keeps one public address and port for every destination (endpoint-independent mapping), so hole punching should give a direct P2P path with most peers.".into(),
        MappingBehavior::AddressDependent => "This NAT maps each destination address separately (address-dependent mapping), so a direct path works with peers behind friendly NATs and other sessions use the relay.".into(),
        MappingBehavior::AddressAndPortDependent => "This NAT picks a new public port for every destination (symmetric, address-and-port-dependent mapping), so direct paths rarely work and sessions will mostly go through the relay.".into(),
        MappingBehavior::Unknown => "The NAT's mapping behaviour could not be fully measured; sessions will work, directly when hole punching succeeds and through the relay otherwise.".into(),
    }
}
