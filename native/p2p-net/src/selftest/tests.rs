use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use p2p_proto::wire;
use tokio::net::{TcpListener, UdpSocket};

use super::gateway::{
    nat_pmp_at, parse_nat_pmp_response, parse_proc_net_route, parse_ssdp_response, upnp_at,
};
use super::probe::{classify, FilteringTest, MappingBehavior};
use super::*;

/// A probe port like the server's: answers each `ProbeRequest` with the source it saw, with the port
/// shifted by `port_shift` (to play a NAT that maps each destination to a new port).
async fn responder(ip: &str, port_shift: u16) -> SocketAddr {
    let s = UdpSocket::bind((ip, 0)).await.unwrap();
    let addr = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 256];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            if let Ok(txid) = wire::decode_probe_request(&buf[..n]) {
                let seen = SocketAddr::new(from.ip(), from.port().wrapping_add(port_shift));
                let _ = s
                    .send_to(&wire::encode_probe_response(txid, seen), from)
                    .await;
            }
        }
    });
    addr
}

/// A port nobody listens on (bound, then released).
async fn closed_udp() -> String {
    UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

fn quick(server: &str, probes: Vec<String>) -> SelfTestConfig {
    SelfTestConfig {
        server: server.into(),
        probe_addrs: probes,
        // Set by hand: as if the environment named them (no server key, so no asking either).
        probe_addrs_from_env: [true; 3],
        server_key: None,
        learn_second_ip: false,
        connect_timeout: Duration::from_secs(2),
        probe_timeout: Duration::from_millis(200),
        probe_attempts: 3,
        gateways: false,
    }
}

#[tokio::test]
async fn loopback_server_passes_every_section() {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = tcp.local_addr().unwrap().to_string();
    let p1 = responder("127.0.0.1", 0).await;
    let p2 = responder("127.0.0.1", 0).await;
    // Linux routes all of 127/8 to loopback: the "second IP" of the one-machine layout.
    let p3 = responder("127.0.0.2", 0).await;
    let cfg = quick(
        &server,
        vec![p1.to_string(), p2.to_string(), p3.to_string()],
    );
    let r = run(&cfg).await;

    assert!(r.dns.ok && r.tcp.ok && r.udp.ok, "{r:#?}");
    assert_eq!(r.tcp.source_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(r.udp.probes.len(), 3);
    let oport = r.udp.local_port.unwrap();
    for (i, p) in r.udp.probes.iter().enumerate() {
        assert!(p.ok, "{p:?}");
        assert_eq!(
            p.mapped,
            Some(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), oport))
        );
        assert!(p.preserve_port);
        assert_eq!(p.no_remap, (i > 0).then_some(true));
        assert_eq!(p.different_ip, i == 2);
    }
    assert_eq!(r.nat.behind_nat, Some(false));
    assert_eq!(r.nat.mapping, MappingBehavior::EndpointIndependent);
    assert_eq!(r.nat.port_preservation, Some(true));
    assert_eq!(r.nat.hairpinning, Some(true));
    assert!(r.crypto.iter().all(|c| c.passed), "{:?}", r.crypto);
    assert!(r.compatible, "{:?}", r.problems);

    let text = r.render_text();
    for expected in [
        "Checking if DNS works ... .[OK]\n".to_string(),
        format!("Checking TCP connectivity to {server}...<oip=127.0.0.1> [OK]\n"),
        format!("Send to {p1} [] [mip=127.0.0.1] [oport={oport} mport={oport}] [preserve port]\n"),
        format!("Send to {p2} [] [mip=127.0.0.1] [oport={oport} mport={oport}] [no remap] [preserve port]\n"),
        format!("Send to {p3} [] [mip=127.0.0.1] [oport={oport} mport={oport}] [no remap] [preserve port different IP] [OK]\n"),
        "This router preserves ports, this is optimal.\n".into(),
        "This router doesn't remap new connections to new ports.\n".into(),
        "Endian : ".into(),
        "SHA1 test:\n  passed.\n".into(),
        "XXTEA test:\n  passed.\n".into(),
        "There is no NAT between this machine and the server".into(),
        "Looks compatible.\n".into(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in\n{text}");
    }

    let json = r.to_json();
    let back: SelfTestReport = serde_json::from_str(&json).unwrap();
    // Floats may come back one ULP off (serde_json's fast parser): compare everything else exactly.
    assert_eq!(
        (&back.dns, &back.nat, &back.crypto, &back.verdict),
        (&r.dns, &r.nat, &r.crypto, &r.verdict)
    );
    assert_eq!(
        back.udp.probes.iter().map(|p| p.mapped).collect::<Vec<_>>(),
        r.udp.probes.iter().map(|p| p.mapped).collect::<Vec<_>>()
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["nat"]["mapping"], "EndpointIndependent");
    assert_eq!(
        v["udp"]["probes"][0]["mapped"],
        format!("127.0.0.1:{oport}")
    );
}

#[tokio::test]
async fn nothing_listening_fails_fast_with_reasons() {
    let server = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().to_string()
    };
    let cfg = quick(
        &server,
        vec![closed_udp().await, closed_udp().await, closed_udp().await],
    );
    let started = Instant::now();
    let r = run(&cfg).await;
    // 3 rounds of 200 ms, and a refused TCP connect.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(r.dns.ok);
    assert!(!r.tcp.ok);
    assert!(
        r.tcp.error.as_deref().unwrap().contains(&server),
        "{:?}",
        r.tcp.error
    );
    assert!(!r.udp.ok);
    for p in &r.udp.probes {
        assert_eq!(p.error.as_deref(), Some("no answer after 3 attempt(s)"));
        assert_eq!(p.attempts, 3);
    }
    assert_eq!(r.nat.mapping, MappingBehavior::Unknown);
    assert!(!r.compatible);
    assert!(
        r.verdict.contains("unreachable over TCP and UDP"),
        "{}",
        r.verdict
    );
    let text = r.render_text();
    assert!(
        text.contains(&format!(
            "Checking TCP connectivity to {server}...[FAILED] cannot connect to {server}"
        )),
        "{text}"
    );
    assert!(
        text.contains("[FAILED] no answer after 3 attempt(s)"),
        "{text}"
    );
    assert!(text.contains("Not compatible: TCP: "), "{text}");
}

#[tokio::test]
async fn unresolvable_server_skips_the_network_sections() {
    let cfg = quick(
        "no-such-host.invalid:5980",
        vec!["no-such-host.invalid:5959".into()],
    );
    let r = run(&cfg).await;
    assert!(!r.dns.ok && !r.tcp.ok && !r.udp.ok);
    assert!(r
        .dns
        .error
        .as_deref()
        .unwrap()
        .contains("no-such-host.invalid"));
    assert!(r.tcp.error.as_deref().unwrap().starts_with("skipped"));
    assert!(
        r.verdict.starts_with("The server's name does not resolve"),
        "{}",
        r.verdict
    );
    assert!(r
        .render_text()
        .contains("Checking if DNS works ... .[FAILED] cannot resolve server"));
}

#[tokio::test]
async fn a_port_changing_nat_is_address_and_port_dependent() {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = tcp.local_addr().unwrap().to_string();
    let p1 = responder("127.0.0.1", 1).await;
    let p2 = responder("127.0.0.1", 2).await;
    let cfg = quick(
        &server,
        vec![p1.to_string(), p2.to_string(), closed_udp().await],
    );
    let r = run(&cfg).await;
    assert!(r.udp.ok);
    assert_eq!(r.udp.probes[1].no_remap, Some(false));
    assert!(!r.udp.probes[0].preserve_port);
    assert!(!r.udp.probes[2].ok);
    assert_eq!(r.nat.behind_nat, Some(true));
    assert_eq!(r.nat.mapping, MappingBehavior::AddressAndPortDependent);
    assert_eq!(r.nat.port_preservation, Some(false));
    let text = r.render_text();
    assert!(
        text.contains("This router remaps new connections to new ports."),
        "{text}"
    );
    assert!(
        text.contains("This router does not preserve ports."),
        "{text}"
    );
    assert!(r.verdict.contains("symmetric"), "{}", r.verdict);
    // One probe unanswered does not make the network incompatible.
    assert!(r.compatible, "{:?}", r.problems);
}

fn probe(target: &str, mapped: &str) -> ProbeResult {
    ProbeResult {
        target: target.into(),
        address: Some(target.parse().unwrap()),
        ok: true,
        mapped: Some(mapped.parse().unwrap()),
        local_port: Some(40000),
        preserve_port: false,
        no_remap: None,
        different_ip: false,
        attempts: 1,
        rtt_ms: Some(1.0),
        error: None,
    }
}

fn udp(probes: Vec<ProbeResult>) -> UdpCheck {
    UdpCheck {
        ok: true,
        local_port: Some(40000),
        probes,
        error: None,
    }
}

fn unknown_filtering() -> FilteringTest {
    FilteringTest {
        behavior: FilteringBehavior::Unknown,
        note: Some("not measured: test".into()),
    }
}

#[test]
fn classification_follows_rfc_5780() {
    let a1 = "198.51.100.1:5959";
    let a2 = "198.51.100.1:5960";
    let b3 = "198.51.100.2:5961";
    let ei = classify(
        &udp(vec![
            probe(a1, "203.0.113.5:40000"),
            probe(a2, "203.0.113.5:40000"),
            probe(b3, "203.0.113.5:40000"),
        ]),
        None,
        &unknown_filtering(),
    );
    assert_eq!(ei.mapping, MappingBehavior::EndpointIndependent);
    assert_eq!(ei.behind_nat, Some(true));
    assert_eq!(ei.port_preservation, Some(true));
    assert_eq!(ei.public_ip.as_deref(), Some("203.0.113.5"));

    let ad = classify(
        &udp(vec![
            probe(a1, "203.0.113.5:50000"),
            probe(a2, "203.0.113.5:50000"),
            probe(b3, "203.0.113.5:50001"),
        ]),
        None,
        &unknown_filtering(),
    );
    assert_eq!(ad.mapping, MappingBehavior::AddressDependent);
    assert_eq!(ad.port_preservation, Some(false));

    let apd = classify(
        &udp(vec![
            probe(a1, "203.0.113.5:50000"),
            probe(a2, "203.0.113.5:50002"),
            probe(b3, "203.0.113.5:50004"),
        ]),
        None,
        &unknown_filtering(),
    );
    assert_eq!(apd.mapping, MappingBehavior::AddressAndPortDependent);

    // Without the second IP's answer, endpoint-independent and address-dependent look the same.
    let partial = classify(
        &udp(vec![
            probe(a1, "203.0.113.5:40000"),
            probe(a2, "203.0.113.5:40000"),
            ProbeResult {
                ok: false,
                mapped: None,
                ..probe(b3, "203.0.113.5:40000")
            },
        ]),
        None,
        &unknown_filtering(),
    );
    assert_eq!(partial.mapping, MappingBehavior::Unknown);
    assert!(partial.notes[0].contains(b3), "{:?}", partial.notes);
    assert_eq!(partial.filtering, "unknown");
    assert!(
        partial.notes[1].contains("not measured"),
        "{:?}",
        partial.notes
    );
}

#[test]
fn default_probe_addresses_follow_the_server() {
    let none = |_: &str| None;
    let c = SelfTestConfig::for_server_with_env("127.0.0.1:5980", none);
    assert_eq!(
        c.probe_addrs,
        ["127.0.0.1:5959", "127.0.0.1:5960", "127.0.0.2:5961"]
    );
    let c = SelfTestConfig::for_server_with_env("p2p.example.org:5980", none);
    assert_eq!(
        c.probe_addrs,
        [
            "p2p.example.org:5959",
            "p2p.example.org:5960",
            "p2p.example.org:5961"
        ]
    );
    let c = SelfTestConfig::for_server_with_env("[2001:db8::1]:5980", none);
    assert_eq!(c.probe_addrs[0], "[2001:db8::1]:5959");
    let c = SelfTestConfig::for_server_with_env("p2p.example.org:5980", |k| {
        (k == "P2P_PROBE_ADDR3").then(|| "192.0.2.9:7000".to_string())
    });
    assert_eq!(c.probe_addrs[2], "192.0.2.9:7000");
    assert_eq!(c.probe_addrs[0], "p2p.example.org:5959");
}

#[test]
fn nat_pmp_responses_parse_and_errors_are_named() {
    let ok = [0, 128, 0, 0, 0, 0x4a, 0xa6, 0x69, 73, 103, 207, 56];
    assert_eq!(
        parse_nat_pmp_response(&ok).unwrap(),
        (4_892_265, Ipv4Addr::new(73, 103, 207, 56))
    );
    let refused = [0, 128, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0];
    assert!(parse_nat_pmp_response(&refused)
        .unwrap_err()
        .contains("result code 2"));
    assert!(parse_nat_pmp_response(&[0, 128, 0])
        .unwrap_err()
        .contains("too short"));
    assert!(parse_nat_pmp_response(&[2; 12])
        .unwrap_err()
        .contains("not an external-address response"));
}

#[tokio::test]
async fn nat_pmp_against_a_local_router() {
    let router = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = router.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 16];
        let (n, from) = router.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], &[0, 0]);
        let answer = [0, 128, 0, 0, 0, 0, 0, 42, 198, 51, 100, 9];
        router.send_to(&answer, from).await.unwrap();
    });
    let c = nat_pmp_at(addr).await;
    assert!(c.found, "{c:?}");
    assert_eq!(c.public_ip.as_deref(), Some("198.51.100.9"));
    assert_eq!(c.epoch, Some(42));

    let started = Instant::now();
    let silent = nat_pmp_at(closed_udp().await.parse().unwrap()).await;
    assert!(!silent.found);
    assert!(silent.error.unwrap().contains("no NAT-PMP answer"));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
#[cfg(target_endian = "little")]
fn default_gateway_from_proc_net_route() {
    let text =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                eth0\t0011A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
    assert_eq!(
        parse_proc_net_route(text),
        Some(Ipv4Addr::new(192, 168, 1, 1))
    );
    assert_eq!(parse_proc_net_route("Iface\tDestination\n"), None);
}

#[test]
fn ssdp_answers_are_recognised() {
    let ok = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
              LOCATION: http://192.168.1.1:5000/rootDesc.xml\r\nSERVER: Linux UPnP/1.1 MiniUPnPd/2.2\r\n\r\n";
    let (loc, server) = parse_ssdp_response(ok).unwrap();
    assert_eq!(loc.as_deref(), Some("http://192.168.1.1:5000/rootDesc.xml"));
    assert!(server.unwrap().contains("MiniUPnPd"));
    assert!(parse_ssdp_response(
        "HTTP/1.1 200 OK\r\nST: urn:dial-multiscreen-org:service:dial:1\r\n\r\n"
    )
    .is_none());
    assert!(parse_ssdp_response("NOTIFY * HTTP/1.1\r\n\r\n").is_none());
}

#[tokio::test]
async fn upnp_search_against_a_local_gateway_and_silence() {
    let gw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = gw.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        let (n, from) = gw.recv_from(&mut buf).await.unwrap();
        let req = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(
            req.starts_with("M-SEARCH * HTTP/1.1\r\n") && req.contains("InternetGatewayDevice"),
            "{req}"
        );
        let answer = "HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLOCATION: http://127.0.0.1/igd.xml\r\n\r\n";
        gw.send_to(answer.as_bytes(), from).await.unwrap();
    });
    let c = upnp_at(addr, Duration::from_secs(1)).await;
    assert!(c.found, "{c:?}");
    assert_eq!(c.location.as_deref(), Some("http://127.0.0.1/igd.xml"));

    let silent = upnp_at(
        closed_udp().await.parse().unwrap(),
        Duration::from_millis(200),
    )
    .await;
    assert!(!silent.found && silent.error.is_some());
}

/// The server's three probe listeners (two ports on 127.0.0.1, one on 127.0.0.2) answering like the
/// real one: flagged requests from the other port or IP, every answer advertising the second IP. A NAT's
/// filter is played by not sending the answers it would drop: `lets_in` says which listeners' answers
/// reach the client (a listener the client sent to always does).
struct ProbeServer {
    addrs: [SocketAddr; 3],
}

async fn probe_server(lets_in: [bool; 3], advertise: bool) -> ProbeServer {
    let mut socks = Vec::new();
    for ip in ["127.0.0.1", "127.0.0.1", "127.0.0.2"] {
        socks.push(std::sync::Arc::new(UdpSocket::bind((ip, 0)).await.unwrap()));
    }
    let addrs: [SocketAddr; 3] = [0, 1, 2].map(|i| socks[i].local_addr().unwrap());
    let others = if advertise {
        vec![addrs[2], addrs[1]]
    } else {
        Vec::new()
    };
    for (i, s) in socks.iter().enumerate() {
        let (s, socks, others) = (s.clone(), socks.clone(), others.clone());
        tokio::spawn(async move {
            let mut buf = [0u8; 256];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                let Ok(req) = wire::ProbeRequest::decode(&buf[..n]) else {
                    continue;
                };
                let via = if req.flags & wire::PROBE_CHANGE_IP != 0 {
                    2
                } else if req.flags & wire::PROBE_CHANGE_PORT != 0 {
                    1
                } else {
                    i
                };
                if via != i && !lets_in[via] {
                    continue;
                }
                let resp = wire::ProbeResponse {
                    txid: req.txid,
                    seen: from,
                    others: others.clone(),
                };
                let _ = socks[via].send_to(&resp.encode(), from).await;
            }
        });
    }
    ProbeServer { addrs }
}

async fn self_test_against(server: &ProbeServer) -> SelfTestReport {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = quick(
        &tcp.local_addr().unwrap().to_string(),
        // The third address is a wrong guess: the server's advertisement must replace it.
        vec![
            server.addrs[0].to_string(),
            server.addrs[1].to_string(),
            closed_udp().await,
        ],
    );
    cfg.learn_second_ip = true;
    run(&cfg).await
}

#[tokio::test]
// Under wine (the Windows unit tests run there) the fake server's answer from its socket bound to
// 127.0.0.2 leaves with source 127.0.0.1, so its change-IP answer looks like the same IP. The same
// measurement of connectd.exe against the real Linux server passes (tests/windows_wine.rs).
#[cfg_attr(
    windows,
    ignore = "wine sends from a socket bound to 127.0.0.2 with source 127.0.0.1"
)]
async fn filtering_is_measured_with_change_requests() {
    for (lets_in, want) in [
        ([true; 3], FilteringBehavior::EndpointIndependent),
        ([true, true, false], FilteringBehavior::AddressDependent),
        (
            [true, false, false],
            FilteringBehavior::AddressAndPortDependent,
        ),
    ] {
        let server = probe_server(lets_in, true).await;
        let r = self_test_against(&server).await;
        assert_eq!(r.nat.filtering, want.describe(), "{lets_in:?}: {:?}", r.nat);
        // The advertised second IP was probed instead of the guess.
        assert_eq!(r.udp.probes[2].target, server.addrs[2].to_string());
        assert!(
            r.udp.probes[2].ok && r.udp.probes[2].different_ip,
            "{:?}",
            r.udp.probes[2]
        );
        assert_eq!(r.nat.mapping, MappingBehavior::EndpointIndependent);
        let text = r.render_text();
        assert!(
            text.contains(&format!("NAT filtering: {}\n", want.describe())),
            "{text}"
        );
        // No NAT on loopback: the verdict names the filter only when there is one.
        let named = r
            .verdict
            .contains(&format!("({} filtering)", want.describe()));
        assert_eq!(
            named,
            want != FilteringBehavior::EndpointIndependent,
            "{}",
            r.verdict
        );
        assert!(r.verdict.starts_with("There is no NAT"), "{}", r.verdict);
    }
}

#[tokio::test]
async fn filtering_is_unknown_without_a_capable_server() {
    // An older server: it advertises nothing (and would ignore flagged requests).
    let old = probe_server([true; 3], false).await;
    let r = self_test_against(&old).await;
    assert_eq!(r.nat.filtering, "unknown");
    assert!(
        r.nat.notes.iter().any(|n| n.contains("advertises none")),
        "{:?}",
        r.nat.notes
    );
    assert!(
        !r.udp.probes[2].ok,
        "the guess is closed: {:?}",
        r.udp.probes[2]
    );

    // No server at all.
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = quick(
        &tcp.local_addr().unwrap().to_string(),
        vec![closed_udp().await, closed_udp().await, closed_udp().await],
    );
    let r = run(&cfg).await;
    assert_eq!(r.nat.filtering, "unknown");
}

#[test]
fn the_env_override_of_the_third_address_beats_the_server() {
    let c = SelfTestConfig::for_server_with_env("p2p.example.org:5980", |_| None);
    assert!(c.learn_second_ip);
    let c = SelfTestConfig::for_server_with_env("p2p.example.org:5980", |k| {
        (k == "P2P_PROBE_ADDR3").then(|| "192.0.2.9:7000".to_string())
    });
    assert!(!c.learn_second_ip);
}

#[test]
fn a_router_whose_external_address_is_carrier_or_private_space_is_a_double_nat() {
    use super::gateway::double_nat_note;
    let cgnat = double_nat_note(Some("100.64.3.13"), Some("198.18.10.3")).unwrap();
    assert!(cgnat.contains("carrier-grade NAT"), "{cgnat}");
    assert!(cgnat.contains("198.18.10.3"), "{cgnat}");
    let private = double_nat_note(Some("192.168.0.20"), Some("198.18.10.3")).unwrap();
    assert!(private.contains("private"), "{private}");
    // A router with a public external address, or one the server sees as is: one NAT.
    assert_eq!(
        double_nat_note(Some("198.18.10.3"), Some("198.18.10.3")),
        None
    );
    assert_eq!(
        double_nat_note(Some("100.128.0.1"), Some("198.18.10.3")),
        None
    );
    assert_eq!(double_nat_note(None, Some("198.18.10.3")), None);
}
