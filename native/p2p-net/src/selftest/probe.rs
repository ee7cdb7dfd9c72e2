//! UDP probes to the server's probe ports from one socket, and what their answers say about the NAT
//! (RFC 4787 mapping behaviour as RFC 5780 section 4.3 measures it, port preservation, hairpinning), and
//! the filtering test of RFC 5780 section 4.4 from a second, fresh socket.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use p2p_proto::wire::{self, ProbeRequest, ProbeResponse};
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

/// RFC 4787 section 5 filtering behaviour: which inbound datagrams reach a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilteringBehavior {
    /// Datagrams from any address reach the mapping (or there is no filter at all).
    EndpointIndependent,
    /// Only datagrams from IP addresses the mapping has sent to.
    AddressDependent,
    /// Only datagrams from the exact addresses and ports the mapping has sent to.
    AddressAndPortDependent,
    /// The server did not answer, or cannot answer from another address.
    Unknown,
}

impl FilteringBehavior {
    pub fn describe(self) -> &'static str {
        match self {
            FilteringBehavior::EndpointIndependent => "endpoint-independent",
            FilteringBehavior::AddressDependent => "address-dependent",
            FilteringBehavior::AddressAndPortDependent => "address-and-port-dependent",
            FilteringBehavior::Unknown => "unknown",
        }
    }
}

/// The filtering test's outcome, with why it is unknown or partial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilteringTest {
    pub behavior: FilteringBehavior,
    pub note: Option<String>,
}

impl FilteringTest {
    fn unknown(why: impl Into<String>) -> Self {
        FilteringTest {
            behavior: FilteringBehavior::Unknown,
            note: Some(why.into()),
        }
    }
}

/// Everything the UDP probes found.
pub(super) struct UdpFindings {
    pub check: UdpCheck,
    pub hairpin: Option<bool>,
    pub filtering: FilteringTest,
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
/// repeated), then tests hairpinning through the first mapping. Meanwhile a second socket runs the
/// filtering test against the first probe address.
pub(super) async fn check_udp(cfg: &SelfTestConfig) -> UdpFindings {
    let udp_failed = |probes: Vec<ProbeResult>, error: String| UdpFindings {
        check: UdpCheck {
            ok: false,
            local_port: None,
            probes,
            error: Some(error),
        },
        hairpin: None,
        filtering: FilteringTest::unknown("no probe port of the server answered"),
    };
    if cfg.probe_addrs.is_empty() {
        return udp_failed(Vec::new(), "no probe addresses configured".into());
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
        return udp_failed(probes, "no probe address resolved".into());
    };
    let socket = match net_util::bind_udp(first).await {
        Ok(s) => s,
        Err(e) => return udp_failed(Vec::new(), e.message),
    };
    let local_port = socket.local_addr().ok().map(|a| a.port());
    let same_family = |r: Result<SocketAddr, String>| match r {
        Ok(a) if a.is_ipv4() != first.is_ipv4() => {
            Err(format!("{a} is not in the same address family as {first}"))
        }
        r => r,
    };
    let mut targets: Vec<Result<SocketAddr, String>> = resolved
        .into_iter()
        .map(|r| same_family(r.map_err(|e| e.message)))
        .collect();
    let mut labels = cfg.probe_addrs.clone();
    let filtering = filtering_test(targets[0].clone(), cfg);
    let mapping = async {
        if !(cfg.learn_second_ip && targets.len() > 2) {
            return exchange(&socket, &targets, &vec![0; targets.len()], cfg).await;
        }
        // The second IP comes from the server's first answer; the configured guess only without one.
        let mut first_round = targets.clone();
        first_round[2] = Err(String::new());
        let mut answers = exchange(&socket, &first_round, &[0; 3], cfg).await;
        let advertised = answers
            .iter()
            .find_map(|a| a.response.as_ref()?.0.others.first().copied());
        if let Some(a) = advertised {
            labels[2] = a.to_string();
            targets[2] = same_family(Ok(a));
        }
        let third = [targets[2].clone()];
        answers[2] = exchange(&socket, &third, &[0], cfg).await.remove(0);
        answers
    };
    let (answers, filtering) = tokio::join!(mapping, filtering);

    let first_target_ip = targets
        .first()
        .and_then(|t| t.as_ref().ok())
        .map(|a| a.ip());
    let first_mapped = answers.first().and_then(|a| a.seen());
    let probes: Vec<ProbeResult> = labels
        .iter()
        .zip(targets.iter().zip(&answers))
        .enumerate()
        .map(|(i, (target, (addr, ans)))| match (addr, ans.seen()) {
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
            (Ok(a), Some(mapped)) => ProbeResult {
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
                rtt_ms: ans.rtt.map(super::millis),
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
    UdpFindings {
        check,
        hairpin,
        filtering,
    }
}

/// RFC 5780 section 4.4 from a fresh socket (so no earlier probe has opened the filter towards the
/// server's other listeners): a plain request, a change-port and a change-IP request to the first probe
/// address. An answer to change-IP means anyone can reach the mapping, one only to change-port means the
/// filter looks at addresses, and neither means it looks at addresses and ports.
async fn filtering_test(target: Result<SocketAddr, String>, cfg: &SelfTestConfig) -> FilteringTest {
    let Ok(target) = target else {
        return FilteringTest::unknown("the first probe address did not resolve");
    };
    let socket = match net_util::bind_udp(target).await {
        Ok(s) => s,
        Err(e) => return FilteringTest::unknown(format!("filtering test: {}", e.message)),
    };
    let flags = [0, wire::PROBE_CHANGE_PORT, wire::PROBE_CHANGE_IP];
    let answers = exchange(&socket, &[Ok(target), Ok(target), Ok(target)], &flags, cfg).await;
    let Some((plain, _)) = &answers[0].response else {
        return FilteringTest::unknown(format!(
            "{target} did not answer the filtering test's probe"
        ));
    };
    // A server that advertises no other address predates change requests and ignores them.
    if plain.others.is_empty() {
        return FilteringTest::unknown(
            "not measured: the server does not answer from another address (it advertises none)",
        );
    }
    let from = |i: usize| answers[i].response.as_ref().map(|(_, from)| *from);
    match (from(2), from(1)) {
        (Some(f), _) if f.ip() != target.ip() => FilteringTest {
            behavior: FilteringBehavior::EndpointIndependent,
            note: None,
        },
        (Some(_), _) | (None, Some(_)) => FilteringTest {
            behavior: FilteringBehavior::AddressDependent,
            note: from(2).is_some().then(|| {
                "the server's change-IP answer came from the same IP: endpoint-independent filtering could not be told apart".to_string()
            }),
        },
        (None, None) => FilteringTest {
            behavior: FilteringBehavior::AddressAndPortDependent,
            note: None,
        },
    }
}

/// What came back for one probe request.
#[derive(Default)]
struct Answer {
    /// The response and the address it came from.
    response: Option<(ProbeResponse, SocketAddr)>,
    rtt: Option<Duration>,
    attempts: u32,
    send_error: Option<String>,
}

impl Answer {
    fn seen(&self) -> Option<SocketAddr> {
        self.response.as_ref().map(|(r, _)| r.seen)
    }
}

/// Runs the probe rounds: each round sends a request (with `flags[i]`) to every target still
/// unanswered, then collects answers (matched by transaction id, from any source address) until all
/// are in or the round's timeout passes.
async fn exchange(
    socket: &UdpSocket,
    targets: &[Result<SocketAddr, String>],
    flags: &[u8],
    cfg: &SelfTestConfig,
) -> Vec<Answer> {
    let txids: Vec<[u8; 12]> = targets.iter().map(|_| random_bytes()).collect();
    let mut answers: Vec<Answer> = targets.iter().map(|_| Answer::default()).collect();
    let mut sent_at = vec![Instant::now(); targets.len()];
    let pending = |answers: &[Answer]| {
        targets
            .iter()
            .zip(answers)
            .any(|(t, a)| t.is_ok() && a.response.is_none())
    };
    let mut buf = [0u8; 256];
    for _ in 0..cfg.probe_attempts.max(1) {
        for (i, t) in targets.iter().enumerate() {
            let Ok(addr) = t else { continue };
            if answers[i].response.is_some() {
                continue;
            }
            answers[i].attempts += 1;
            sent_at[i] = Instant::now();
            let request = ProbeRequest {
                txid: txids[i],
                flags: flags.get(i).copied().unwrap_or(0),
            };
            match socket.send_to(&request.encode(), addr).await {
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
                Ok(Ok((n, from))) => {
                    let Ok(response) = ProbeResponse::decode(&buf[..n]) else {
                        continue;
                    };
                    if let Some(i) = txids.iter().position(|t| *t == response.txid) {
                        if answers[i].response.is_none() {
                            answers[i].rtt = Some(sent_at[i].elapsed());
                            answers[i].response = Some((response, from));
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

/// Classifies the NAT from the probe answers and the filtering test.
pub(super) fn classify(
    udp: &UdpCheck,
    hairpinning: Option<bool>,
    filtering: &FilteringTest,
) -> NatClassification {
    let answered: Vec<(SocketAddr, SocketAddr)> = udp
        .probes
        .iter()
        .filter_map(|p| Some((p.address?, p.mapped?)))
        .collect();
    let mut notes = Vec::new();
    let Some(&(_, first_mapped)) = answered.first() else {
        notes.push("no probe answered: nothing to classify".into());
        return NatClassification {
            behind_nat: None,
            public_ip: None,
            mapping: MappingBehavior::Unknown,
            filtering: FilteringBehavior::Unknown.describe().into(),
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
                udp.probes
                    .get(2)
                    .map(|p| format!(" ({})", p.target))
                    .unwrap_or_default()
            ));
        }
        MappingBehavior::Unknown
    };
    if let Some(n) = &filtering.note {
        notes.push(format!("filtering: {n}"));
    }
    NatClassification {
        behind_nat: Some(!untranslated),
        public_ip: Some(first_mapped.ip().to_string()),
        mapping,
        filtering: filtering.behavior.describe().into(),
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
    let filtering = match nat.filtering.as_str() {
        f if f == FilteringBehavior::EndpointIndependent.describe() => {
            " and lets in datagrams from any address once a mapping exists (endpoint-independent filtering)"
        }
        f if f == FilteringBehavior::AddressDependent.describe() => {
            " and lets in only datagrams from addresses it has sent to (address-dependent filtering)"
        }
        f if f == FilteringBehavior::AddressAndPortDependent.describe() => {
            " and lets in only datagrams from the addresses and ports it has sent to (address-and-port-dependent filtering)"
        }
        _ => "",
    };
    let open = nat.filtering == FilteringBehavior::EndpointIndependent.describe();
    if nat.behind_nat == Some(false) {
        if open || filtering.is_empty() {
            return "There is no NAT between this machine and the server, so direct P2P paths work whenever the other side's network allows them.".into();
        }
        // No translation, yet something (a firewall) drops unsolicited datagrams.
        return format!("There is no NAT between this machine and the server, but a firewall here{filtering}, so direct P2P paths need both sides to punch.");
    }
    match nat.mapping {
        MappingBehavior::EndpointIndependent if open => format!("This NAT keeps one public address and port for every destination (endpoint-independent mapping){filtering}, so direct P2P paths should work with almost every peer."),
        MappingBehavior::EndpointIndependent => format!("This NAT keeps one public address and port for every destination (endpoint-independent mapping){filtering}, so hole punching should give a direct P2P path with most peers."),
        MappingBehavior::AddressDependent => format!("This NAT maps each destination address separately (address-dependent mapping){filtering}, so a direct path works with peers behind friendly NATs and other sessions use the relay."),
        MappingBehavior::AddressAndPortDependent => format!("This NAT picks a new public port for every destination (symmetric, address-and-port-dependent mapping){filtering}, so direct paths rarely work and sessions will mostly go through the relay."),
        MappingBehavior::Unknown => format!("The NAT's mapping behaviour could not be fully measured{}; sessions will work, directly when hole punching succeeds and through the relay otherwise.", if filtering.is_empty() { String::new() } else { format!(" (it{})", filtering.trim_start_matches(" and")) }),
    }
}
