//! The server under attack from the network, each test written as the
//! attack against a real `p2p-server` process, asserting what the attacker gets and that legitimate
//! users carry on:
//!
//! - a relay re-bind flood (5,000 binds alternating between two source ports) is logged and punched a
//!   handful of times, not 5,000, while a relayed tunnel keeps moving data;
//! - the probe ports answer no unpadded request and at most a burst plus a rate per source address, so
//!   a spoofer gets fewer bytes sent to its victim than it sends itself, while `connectd -n` passes;
//! - a symlink planted at the stats or ready file's temporary does not make the server write through it;
//! - the candidates a peer reports reach the other peer only if the peer can legitimately have them (no
//!   public address of someone else, broadcast, multicast or link-local, no server socket; loopback only
//!   when the peer itself came from loopback), while a loopback tunnel still goes direct;
//! - an on-path attacker who records a relayed session finds no relay token in it (binds carry a MAC
//!   and a counter), and replaying its binds from elsewhere, or turning one into a release, neither
//!   moves nor ends the session.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p2p_net::control_channel::{spawn_reader, ControlClient};
use p2p_proto::control::{ClientMsg, Credential, ServerMsg, SessionGrant};
use p2p_proto::wire::{self, RelayBind, Role};
use p2p_proto::{EncryptionMode, Uid};
use p2p_system_tests::control::{runtime, server_key};
use p2p_system_tests::lab::{env, serial, TRANSFER_TIMEOUT};
use p2p_system_tests::poll::wait_until;
use p2p_system_tests::services::{HttpServer, Kind, Transfer, TransferService};
use p2p_system_tests::udp_relay::{Impairment, UdpRelay};
use p2p_system_tests::{Account, Device, Lab};
use tokio::sync::mpsc::UnboundedReceiver;

const MIB: u64 = 1024 * 1024;

fn token(grant: &SessionGrant) -> [u8; 16] {
    let h = grant.relay_token.as_bytes();
    let nibble = |c: u8| (c as char).to_digit(16).expect("hex relay token") as u8;
    let mut t = [0u8; 16];
    for (i, b) in t.iter_mut().enumerate() {
        *b = nibble(h[2 * i]) << 4 | nibble(h[2 * i + 1]);
    }
    t
}

/// A session between an in-test initiator (logged in as `account`, reporting `candidates`) and an
/// in-test target registered as `device` that accepts it: both grants and every later server message
/// of each side (`Punch`es).
struct RawSession {
    initiator: SessionGrant,
    target: SessionGrant,
    to_initiator: UnboundedReceiver<ServerMsg>,
    to_target: UnboundedReceiver<ServerMsg>,
}

async fn raw_session(
    lab: &Lab,
    account: &Account,
    device: &Device,
    candidates: Vec<SocketAddr>,
) -> RawSession {
    let server = lab.server.address();
    let key = server_key(lab);
    let uid: Uid = device.uid.parse().expect("uid");
    let mut target = ControlClient::connect(&server, &key, Duration::from_secs(10))
        .await
        .expect("target control connection");
    let registered = target
        .request(&ClientMsg::Register {
            uid,
            secret: device.secret.clone(),
            application_type: 1,
            local_candidates: Vec::new(),
            device_key: None,
        })
        .await
        .expect("register");
    assert_eq!(registered, ServerMsg::Registered { uid });
    let (mut reader, mut writer) = target.into_split();
    let (tx, mut to_target) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(msg) = reader.recv().await {
            if let ServerMsg::Incoming(g) = &msg {
                let accept = ClientMsg::Accept {
                    session_id: g.session_id,
                };
                if writer.send(&accept).await.is_err() {
                    break;
                }
            }
            if tx.send(msg).is_err() {
                break;
            }
        }
    });
    let mut initiator = ControlClient::connect(&server, &key, Duration::from_secs(10))
        .await
        .expect("initiator control connection");
    let login = initiator
        .request(&ClientMsg::Login {
            user: account.user.clone(),
            credential: Credential::Password(account.password.clone()),
            initiator_key: None,
        })
        .await
        .expect("login");
    assert!(matches!(login, ServerMsg::LoginOk { .. }), "{login:?}");
    let session = initiator
        .request(&ClientMsg::Connect {
            uid,
            mode: EncryptionMode::ChaCha20Poly1305,
            local_candidates: candidates,
        })
        .await
        .expect("connect");
    let ServerMsg::Session(initiator_grant) = session else {
        panic!("expected a session, got {session:?}")
    };
    let target_grant = match to_target.recv().await {
        Some(ServerMsg::Incoming(g)) => g,
        other => panic!("the target got {other:?} instead of Incoming"),
    };
    RawSession {
        initiator: initiator_grant,
        target: target_grant,
        to_initiator: spawn_reader(initiator),
        to_target,
    }
}

fn bind_bytes(g: &SessionGrant, role: Role) -> Vec<u8> {
    RelayBind {
        session_id: g.session_id,
        role,
        token: token(g),
    }
    .encode()
}

/// Binds `role` from `socket` and waits for the relay's ack.
fn bind_and_ack(socket: &UdpSocket, g: &SessionGrant, role: Role) {
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    for _ in 0..10 {
        socket.send_to(&bind_bytes(g, role), g.relay_addr).unwrap();
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            if wire::decode_relay_bind_ack(&buf[..n]) == Ok(g.session_id) {
                return;
            }
        }
    }
    panic!("the relay did not acknowledge the {role:?}'s bind");
}

/// The `Punch`es waiting in `rx` now.
fn punches(rx: &mut UnboundedReceiver<ServerMsg>) -> Vec<Vec<SocketAddr>> {
    let mut out = Vec::new();
    while let Ok(msg) = rx.try_recv() {
        if let ServerMsg::Punch { candidates, .. } = msg {
            out.push(candidates);
        }
    }
    out
}

/// The next `Punch` in `rx`.
async fn next_punch(rx: &mut UnboundedReceiver<ServerMsg>) -> Vec<SocketAddr> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(ServerMsg::Punch { candidates, .. })) => return candidates,
            Ok(Some(_)) => {}
            other => panic!("no punch: {other:?}"),
        }
    }
}

/// Item 5: a peer (or whoever saw its relay token) floods binds alternating between two source ports.
#[test]
fn a_rebind_flood_is_logged_and_punched_a_handful_of_times() {
    let _serial = serial();
    let mut lab = Lab::new("attack_rebind_flood");
    // The legitimate user: a relayed tunnel moving data through the same relay during the flood.
    let svc = TransferService::start();
    let block = lab.dir().join("block-direct");
    std::fs::write(&block, "blocked").unwrap();
    let knobs = env(&[("P2P_DISABLE_DIRECT_FILE", &block.to_string_lossy())]);
    let legit_tunnel = lab.tunnel(svc.port(), 3, &knobs);
    let (attacker, device) = lab.account_and_device();

    let rt = runtime();
    let mut s = rt.block_on(raw_session(&lab, &attacker, &device, Vec::new()));
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a2 = UdpSocket::bind("127.0.0.1:0").unwrap();
    let t = UdpSocket::bind("127.0.0.1:0").unwrap();
    bind_and_ack(&a, &s.initiator, Role::Initiator);
    bind_and_ack(&t, &s.target, Role::Target);
    rt.block_on(next_punch(&mut s.to_target));
    rt.block_on(next_punch(&mut s.to_initiator));

    let legit = Transfer::start_paced(legit_tunnel.port, Kind::Echo, 8 * MIB, Some(4 * MIB));
    wait_until(
        "the legitimate transfer to be under way",
        Duration::from_secs(30),
        || legit.progress() > MIB / 2,
    );
    const BINDS: usize = 5000;
    let bind = bind_bytes(&s.initiator, Role::Initiator);
    let acks = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Vec<_> = [&a, &a2]
        .into_iter()
        .map(|sock| {
            let sock = sock.try_clone().unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let (acks, stop) = (acks.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, _)) = sock.recv_from(&mut buf) {
                        if n == 10 {
                            acks.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    for i in 0..BINDS {
        let from = if i % 2 == 0 { &a2 } else { &a };
        from.send_to(&bind, s.initiator.relay_addr).unwrap();
    }
    let flood_time = started.elapsed();
    // Long enough for the interval (1 s) to pass and the housekeeping tick to report the rest.
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, Ordering::Relaxed);
    for c in counters {
        c.join().unwrap();
    }

    let sid = format!("{:016x}", s.initiator.session_id);
    let moved: Vec<String> = lab
        .server
        .proc()
        .lines()
        .into_iter()
        .filter(|l| l.contains(&sid) && l.contains("moved"))
        .collect();
    let to_target = punches(&mut s.to_target).len();
    let to_initiator = punches(&mut s.to_initiator).len();
    eprintln!(
        "{BINDS} binds in {flood_time:?} ({} acknowledged): {} 'moved' log lines, {to_target} punches to the target, {to_initiator} to the initiator",
        acks.load(Ordering::Relaxed),
        moved.len()
    );
    // One at once, one summary per interval after: the flood took well under a few seconds.
    let bound = 2 + flood_time.as_secs() as usize;
    assert!(
        !moved.is_empty() && moved.len() <= bound,
        "expected 1..={bound} 'moved' lines for {BINDS} re-binds, got {}:\n{}",
        moved.len(),
        moved
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        (1..=bound).contains(&to_target) && (1..=bound).contains(&to_initiator),
        "expected 1..={bound} punches to each peer, got {to_target} and {to_initiator}"
    );

    // The legitimate tunnel carried on through the relay.
    legit
        .join(TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("the relayed tunnel's transfer failed during the flood: {e}"));
    assert!(
        lab.server.proc().try_status().is_none(),
        "the server exited"
    );
}

/// A probe request in the old, unpadded layout (14 bytes).
fn unpadded_request(txid: [u8; 12]) -> Vec<u8> {
    let mut r = wire::encode_probe_request(txid);
    r.truncate(14);
    r
}

/// What one source got from the probe ports.
#[derive(Debug, Default, Clone, Copy)]
struct Got {
    sent_bytes: u64,
    answered_bytes: u64,
    answers: u64,
}

/// Sends `request(i)` to every port from `source` every `gap` for `duration`, counting answers until
/// shortly after.
fn probe_from(
    source: &str,
    ports: &[SocketAddr],
    duration: Duration,
    gap: Duration,
    request: impl Fn(u32) -> Vec<u8>,
) -> Got {
    let sock = UdpSocket::bind((source, 0)).unwrap();
    let rx = sock.try_clone().unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let counter = std::thread::spawn(move || {
        let mut got = Got::default();
        let mut buf = [0u8; 2048];
        while !stop2.load(Ordering::Relaxed) {
            if let Ok((n, _)) = rx.recv_from(&mut buf) {
                got.answers += 1;
                got.answered_bytes += n as u64;
            }
        }
        got
    });
    let mut sent = 0u64;
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < duration {
        for port in ports {
            let r = request(i);
            sent += sock.send_to(&r, port).unwrap() as u64;
            i += 1;
        }
        std::thread::sleep(gap);
    }
    std::thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::Relaxed);
    let mut got = counter.join().unwrap();
    got.sent_bytes = sent;
    got
}

/// Item 6: a spoofer sends probe requests with its victim's source address (here: its own, from
/// several loopback addresses) to every probe port.
#[test]
fn the_probe_ports_do_not_amplify_and_answer_each_source_at_a_bounded_rate() {
    let _serial = serial();
    let mut lab = Lab::new("attack_probe_amplification");
    let ports = lab.server.addrs.udp.clone();

    // Old, unpadded requests (14 bytes, answered with 35 before) get nothing at all.
    let ports2 = ports.clone();
    let unpadded = std::thread::spawn(move || {
        probe_from(
            "127.0.0.2",
            &ports2,
            Duration::from_secs(1),
            Duration::from_millis(2),
            |i| unpadded_request([i as u8; 12]),
        )
    });
    // Padded requests as fast as the sources can send, from three addresses, for 3 s.
    const FLOOD: Duration = Duration::from_secs(3);
    let flooders: Vec<_> = ["127.0.0.3", "127.0.0.4", "127.0.0.5"]
        .into_iter()
        .map(|source| {
            let ports = ports.clone();
            std::thread::spawn(move || {
                probe_from(source, &ports, FLOOD, Duration::from_micros(500), |i| {
                    wire::encode_probe_request([(i % 251) as u8; 12])
                })
            })
        })
        .collect();
    // Meanwhile a legitimate user's network self-test from 127.0.0.1 passes.
    let probe_env = {
        let u = &lab.server.addrs.udp;
        env(&[
            ("P2P_PROBE_ADDR1", &u[0].to_string()),
            ("P2P_PROBE_ADDR2", &u[1].to_string()),
            ("P2P_PROBE_ADDR3", &u[2].to_string()),
        ])
    };
    let mut netcheck = lab.connectd("netcheck", &["-n".into(), "--json".into()], &probe_env);
    let code = netcheck.wait_exit_code(Duration::from_secs(45));
    let out: String = netcheck
        .lines()
        .into_iter()
        .filter(|l| !l.starts_with("[stderr] "))
        .collect::<Vec<_>>()
        .join("\n");

    let unpadded = unpadded.join().unwrap();
    let flooded: Vec<Got> = flooders.into_iter().map(|f| f.join().unwrap()).collect();
    eprintln!("unpadded requests: {unpadded:?}");
    for (i, g) in flooded.iter().enumerate() {
        eprintln!(
            "padded flood from 127.0.0.{}: {g:?}, answered/sent bytes {:.4}",
            i + 3,
            g.answered_bytes as f64 / g.sent_bytes as f64
        );
    }
    assert_eq!(
        (unpadded.answers, unpadded.answered_bytes),
        (0, 0),
        "unpadded probe requests ({} bytes sent) were answered",
        unpadded.sent_bytes
    );
    // The default limits: a burst of 20 and 10 per second per source address, all ports together.
    let most = 20 + 10 * (FLOOD.as_secs() + 1);
    for g in &flooded {
        assert!(
            g.answers >= 1,
            "the padded flood got no answer at all: {g:?}"
        );
        assert!(
            g.answers <= most,
            "one source got {} answers in {FLOOD:?} (at most {most} expected)",
            g.answers
        );
        assert!(
            g.answered_bytes <= g.sent_bytes,
            "amplification: {} bytes answered to {} sent",
            g.answered_bytes,
            g.sent_bytes
        );
    }

    let v: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("-n --json is not one JSON object ({e}):\n{out}"));
    assert_eq!(code, 0, "-n must pass during the flood:\n{out}");
    assert_eq!(v["udp"]["ok"], true, "{out}");
    let probes = v["udp"]["probes"].as_array().expect("probes");
    assert!(
        probes.iter().all(|p| p["ok"] == true),
        "a probe of the legitimate self-test went unanswered:\n{out}"
    );
    assert!(
        lab.server
            .proc()
            .lines()
            .iter()
            .any(|l| l.contains("probe answers rate-limited")),
        "the operator was not told about the refused answers"
    );
}

/// Item 8: someone who can write to the directory of the stats and ready files plants symlinks at their
/// temporaries (and at the ready file itself) pointing at a file of theirs to destroy.
#[test]
fn state_files_are_not_written_through_planted_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let stats = dir.path().join("stats.json");
    let ready = dir.path().join("ready.json");
    let link = |from: &Path| std::os::unix::fs::symlink(&victim, from).unwrap();
    let with_tmp = |p: &Path| {
        let mut s = p.as_os_str().to_owned();
        s.push(".tmp");
        std::path::PathBuf::from(s)
    };
    link(&with_tmp(&stats));
    link(&with_tmp(&ready));
    link(&ready);
    let (stats_s, ready_s) = (stats.to_string_lossy(), ready.to_string_lossy());
    let lab = Lab::with_server_args(
        "attack_state_file_symlinks",
        &["--stats-file", &stats_s, "--ready-file", &ready_s],
    );
    wait_until("the stats file", Duration::from_secs(10), || {
        std::fs::symlink_metadata(&stats).is_ok_and(|m| m.is_file())
    });
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "precious",
        "the server wrote through a planted symlink"
    );
    // What the legitimate reader gets: both files, as regular files with their JSON.
    for (path, key) in [(&stats, "relay"), (&ready, "server_key")] {
        let meta = std::fs::symlink_metadata(path).unwrap();
        assert!(meta.is_file(), "{} is not a regular file", path.display());
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(!v[key].is_null(), "no {key} in {}", path.display());
        assert!(
            std::fs::symlink_metadata(with_tmp(path)).is_err(),
            "the temporary of {} was left behind",
            path.display()
        );
    }
    drop(lab);
}

/// This machine's address on its way out (not loopback), if it has one: a peer coming from it does
/// not look local to the server.
fn non_loopback_address() -> Option<IpAddr> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("203.0.113.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// A user with access to a device reports candidates that would make the device send its path probes to
/// hosts of the user's choosing. IPv4 candidates must be the peer's own (its reflexive address, its LAN);
/// global IPv6 addresses cannot be checked by the server (no NAT66: a dual-stack peer seen over IPv4 has
/// them), so at most three of them pass, and nothing else of IPv6 (PROTOCOL.md, "IPv6 candidates").
#[test]
fn a_peer_cannot_make_the_other_probe_addresses_it_cannot_have() {
    let _serial = serial();
    let mut lab = Lab::new("attack_candidates");
    let (attacker, device) = lab.account_and_device();
    let server = lab.server.addrs.clone();
    let a = |s: &str| s.parse::<SocketAddr>().unwrap();
    let mut injected = vec![
        a("8.8.8.8:53"),
        a("198.51.100.20:9"),
        a("255.255.255.255:9"),
        a("224.0.0.251:5353"),
        a("169.254.1.1:9"),
        a("[::1]:22"),
        a("[fe80::1]:9"),
        a("[fd00::1]:9"),
        server.control,
    ];
    injected.extend(server.udp.iter().copied());
    let private = a("192.168.77.7:4000");
    let loopback = a("127.0.0.1:22");
    let mut candidates = injected.clone();
    candidates.push(private);
    candidates.push(loopback);
    let global_v6: Vec<SocketAddr> = (1..=5).map(|i| a(&format!("[2001:db8::{i}]:9"))).collect();

    let rt = runtime();
    let attempt_with = |from: IpAddr, candidates: Vec<SocketAddr>| {
        let mut s = rt.block_on(raw_session(&lab, &attacker, &device, candidates));
        let i = UdpSocket::bind((from, 0)).unwrap();
        let t = UdpSocket::bind("127.0.0.1:0").unwrap();
        bind_and_ack(&i, &s.initiator, Role::Initiator);
        bind_and_ack(&t, &s.target, Role::Target);
        let got = rt.block_on(next_punch(&mut s.to_target));
        (i.local_addr().unwrap(), got)
    };
    let attempt = |from: IpAddr| attempt_with(from, candidates.clone());

    // From loopback (the attacker on the server's machine): loopback is its own, the rest is not.
    let (reflexive, got) = attempt("127.0.0.1".parse().unwrap());
    eprintln!("the device was told (attacker on loopback): {got:?}");
    assert_eq!(got[0], reflexive, "the reflexive address comes first");
    for c in &injected {
        assert!(!got.contains(c), "{c} reached the device: {got:?}");
    }
    assert!(got.contains(&private) && got.contains(&loopback), "{got:?}");

    // Global IPv6 addresses: at most three of the five reported reach the device.
    let mut with_v6 = global_v6.clone();
    with_v6.push(private);
    let (_, got) = attempt_with("127.0.0.1".parse().unwrap(), with_v6);
    eprintln!("the device was told (five global IPv6 candidates): {got:?}");
    let v6: Vec<&SocketAddr> = got.iter().filter(|c| global_v6.contains(c)).collect();
    assert_eq!(v6.len(), 3, "{got:?}");
    assert!(got.contains(&private), "{got:?}");

    // From an address that does not look local: no loopback either.
    match non_loopback_address() {
        Some(ip) => {
            let (reflexive, got) = attempt(ip);
            eprintln!("the device was told (attacker at {ip}): {got:?}");
            assert_eq!(got, vec![reflexive, private], "{got:?}");
        }
        None => eprintln!("no non-loopback address here: the remote-looking attacker is skipped"),
    }

    // A legitimate tunnel on loopback still finds its direct path from the loopback candidates.
    let svc = TransferService::start();
    let mut t = lab.tunnel(svc.port(), 3, &[]);
    Transfer::run(t.port, Kind::Echo, MIB, TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("a legitimate tunnel failed: {e}"));
    let initiator = &mut t.initiator;
    wait_until("the tunnel to go direct", Duration::from_secs(30), || {
        initiator
            .proc
            .lines()
            .iter()
            .any(|l| l.starts_with("!!status") && l.contains("path=direct"))
    });
    assert!(
        lab.server.proc().try_status().is_none(),
        "the server exited"
    );
}

/// The attacker is on the path between the peers and the relay (the test's own recording relay on
/// loopback) and keeps every datagram. Before the relay messages were authenticated, a bind carried
/// the token in clear: replaying it from the attacker's address moved the session there, and the same
/// bytes as a `RelayRelease` ended it.
#[test]
fn an_on_path_attacker_can_neither_rebind_nor_release_a_relayed_session() {
    let mut lab = Lab::new("attack_relay_auth");
    let http = HttpServer::with_marker_body("RELAY-AUTH", 16 * 1024);
    let path = UdpRelay::start(lab.server.relay(), Impairment::none(), true);
    let relay = path.addr().to_string();
    let knobs = env(&[("P2P_RELAY_OVERRIDE", &relay), ("P2P_DISABLE_DIRECT", "1")]);
    let t = lab.tunnel(http.port(), 3, &knobs);
    lab.curl_expect(t.port, &http.body);

    let binds = path.captured_of_kind(wire::Kind::RelayBindAuth);
    assert!(binds.len() >= 2, "both peers bound through the attacker");
    for clear in [wire::Kind::RelayBind, wire::Kind::RelayRelease] {
        assert!(
            path.captured_of_kind(clear).is_empty(),
            "a {clear:?} with the token in clear crossed the network"
        );
    }

    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    attacker
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    for bind in &binds {
        // The bind as recorded, from the attacker's address: a replay.
        attacker.send_to(bind, lab.server.relay()).unwrap();
        // The same as a release with a counter far ahead: the MAC no longer matches.
        let mut release = bind.clone();
        release[1] = wire::Kind::RelayReleaseAuth.to_byte();
        release[11..19].copy_from_slice(&u64::MAX.to_be_bytes());
        attacker.send_to(&release, lab.server.relay()).unwrap();
    }
    let mut buf = [0u8; 64];
    assert!(
        attacker.recv(&mut buf).is_err(),
        "the relay acknowledged a bind from the attacker"
    );

    // The session carries on from the peers' own addresses, unmoved and unreleased.
    lab.curl_expect(t.port, &http.body);
    assert_eq!(http.requests(), 2);
    let log = lab.server.proc().output();
    assert!(!log.contains("moved from"), "{log}");
    assert!(!log.contains("released by"), "{log}");
}
