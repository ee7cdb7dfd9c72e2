//! Resource limits with clear errors, through the real server and connectd processes: sessions
//! per user, sessions waiting for their target, control connections, and streams per session. Each limit
//! is hit, the one refused gets a one-line error naming the limit (connectd: `!!exit [013]`, "session
//! create failed", like the server's other refusals), what was admitted keeps working, and a place freed
//! is taken again. Small limits come from `p2p-server run` options; streams per session (4096, fixed in
//! the protocol's session) are provoked at their real value.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use p2p_net::control_channel::ControlClient;
use p2p_net::ErrorKind;
use p2p_proto::control::{ClientMsg, Credential, ServerMsg};
use p2p_proto::{EncryptionMode, Uid};
use p2p_system_tests::control::{runtime, server_key};
use p2p_system_tests::initiator::{field, tunnel_config, Initiator};
use p2p_system_tests::lab::{serial, TRANSFER_TIMEOUT};
use p2p_system_tests::services::{Kind, Transfer, TransferService};
use p2p_system_tests::{Account, Lab};

const MIB: u64 = 1024 * 1024;
/// connectd's exit code for a session the server would not create.
const SESSION_CREATE_FAILED: i32 = 13;

/// The initiator must end with `!!exit [013]` and a line containing `expected`.
fn expect_refused(i: &mut Initiator, expected: &str) {
    let (code, line) = i.wait_exit_line(Duration::from_secs(60));
    assert_eq!(
        i32::from(code),
        SESSION_CREATE_FAILED,
        "unexpected exit line '{line}'"
    );
    assert_eq!(
        i.proc.wait_exit_code(Duration::from_secs(20)),
        SESSION_CREATE_FAILED
    );
    let out = i.proc.output();
    assert!(
        out.contains(expected),
        "no line says '{expected}':\n{}",
        i.proc.tail(20)
    );
    assert!(
        !out.contains("panicked"),
        "it panicked:\n{}",
        i.proc.tail(20)
    );
}

/// The session id an initiator reported in its `!!connected` line.
fn session_of(i: &Initiator) -> String {
    i.proc
        .lines()
        .iter()
        .find(|l| l.starts_with("!!connected"))
        .and_then(|l| field(l, "session"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no session in the !!connected line:\n{}", i.proc.tail(20)))
}

async fn control(lab_server: &str, key: &[u8; 32]) -> Result<ControlClient, p2p_net::Error> {
    ControlClient::connect(lab_server, key, Duration::from_secs(10)).await
}

async fn login(server: &str, key: &[u8; 32], a: &Account) -> Result<ControlClient, p2p_net::Error> {
    let mut c = control(server, key).await?;
    c.request(&ClientMsg::Login {
        user: a.user.clone(),
        credential: Credential::Password(a.password.clone()),
        initiator_key: None,
    })
    .await?;
    Ok(c)
}

fn connect_msg(uid: Uid) -> ClientMsg {
    ClientMsg::Connect {
        uid,
        mode: EncryptionMode::ChaCha20Poly1305,
        local_candidates: Vec::new(),
    }
}

#[test]
fn sessions_per_user_are_limited_and_freed_when_a_session_ends() {
    // A peer whose session ends tells the relay (RelayRelease), which frees the place at once; the
    // idle timeout (20 s here, more than the peers' 15 s bind keepalive) is only for peers that vanish.
    let mut lab = Lab::with_server_args(
        "limit_sessions_per_user",
        &["--max-sessions-per-user", "2", "--relay-idle-timeout", "20"],
    );
    let svc = TransferService::start();
    let (a, d) = lab.account_and_device();
    let _target = lab.target(&d, svc.port(), &[]);
    let mut first = lab.initiator(&lab.spec(&a, &d, 3), &[]);
    let second = lab.initiator(&lab.spec(&a, &d, 3), &[]);

    let mut third = lab.start_initiator(&lab.spec(&a, &d, 3), &[]);
    let refusal = format!("too many sessions for user '{}' (limit 2)", a.user);
    expect_refused(&mut third, &refusal);
    // What the C ABI and the cmdlets see: the tunnel's status.
    let failed = runtime().block_on(async {
        let cfg = serde_json::from_value(tunnel_config(&lab, &a, &d)).expect("tunnel config");
        let t = p2p_net::Tunnel::start(cfg).await.expect("start a tunnel");
        let mut w = t.watch();
        let end = tokio::time::timeout(Duration::from_secs(30), w.wait_for(|s| s.state.is_final()));
        let status = end
            .await
            .expect("the tunnel ended")
            .expect("status")
            .clone();
        status
    });
    assert_eq!(failed.state, p2p_net::TunnelState::Failed);
    let e = failed.last_error.expect("last error");
    assert_eq!(e.kind, "LimitReached", "{e:?}");
    assert!(e.message.starts_with(&refusal), "{e:?}");

    // Another user of the same device is not limited by the first user's sessions.
    let other = lab.account();
    lab.share(&d, &other);
    let others = lab.initiator(&lab.spec(&other, &d, 3), &[]);

    // The two admitted sessions carry data while at the limit.
    let transfers: Vec<Transfer> = [first.port(), second.port(), others.port()]
        .iter()
        .map(|p| Transfer::start(*p, Kind::Echo, MIB))
        .collect();
    for (i, t) in transfers.into_iter().enumerate() {
        t.join(TRANSFER_TIMEOUT)
            .unwrap_or_else(|e| panic!("session {i} at the limit: {e}"));
    }

    // One session ends (connectd stopped as a user stops it); its place is free at once, well before
    // the relay's idle timeout.
    let first_session = session_of(&first);
    p2p_system_tests::os::terminate(first.proc.pid());
    first.proc.wait_exit(Duration::from_secs(20));
    let ended = Instant::now();
    lab.server.proc().wait_line(
        "the relay to release the ended session",
        Duration::from_secs(10),
        |l| l.contains(&format!("relay session={first_session} ")) && l.contains("released by"),
    );
    eprintln!(
        "the ended session's place was free after {:?}",
        ended.elapsed()
    );
    let mut again = lab.initiator(&lab.spec(&a, &d, 3), &[]);
    Transfer::run(again.port(), Kind::Echo, MIB, TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("the session that took the freed place: {e}"));
    again.proc.kill();
}

#[test]
fn sessions_waiting_for_their_target_are_limited() {
    let lab = Lab::with_server_args(
        "limit_pending_sessions",
        &["--max-pending", "3", "--accept-timeout", "15"],
    );
    let (a, d) = lab.account_and_device();
    let uid: Uid = d.uid.parse().expect("uid");
    let server = lab.server.address();
    let key = server_key(&lab);
    let rt = runtime();

    // The device is online on a connection that does not answer offers (yet).
    let mut silent = rt
        .block_on(p2p_testkit::light_targets::register(
            &server,
            &key,
            &[(uid, d.secret.clone())],
            Duration::from_secs(10),
        ))
        .expect("register the device");
    let target = silent.pop().expect("one connection");

    // Three initiators wait for the target's answer: the server's limit.
    let waiting: Vec<_> = (0..3)
        .map(|_| {
            let (server, a) = (server.clone(), a.clone());
            rt.spawn(async move {
                let mut c = login(&server, &key, &a).await?;
                c.request(&connect_msg(uid)).await
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        waiting.iter().all(|w| !w.is_finished()),
        "the three sessions should still be waiting for the target"
    );

    let mut refused = lab.start_initiator(&lab.spec(&a, &d, 3), &[]);
    expect_refused(
        &mut refused,
        "the server has too many sessions being set up (limit 3): retry shortly",
    );

    // The target starts answering: the waiting sessions are accepted and the limit no longer bites.
    rt.spawn(p2p_testkit::light_targets::accept_all(target));
    for (i, w) in waiting.into_iter().enumerate() {
        let answer = rt.block_on(w).expect("task");
        assert!(
            matches!(answer, Ok(ServerMsg::Session(_))),
            "waiting session {i}: {answer:?}"
        );
    }
    let answer = rt.block_on(async {
        let mut c = login(&server, &key, &a).await?;
        c.request(&connect_msg(uid)).await
    });
    assert!(
        matches!(answer, Ok(ServerMsg::Session(_))),
        "a new session after the wait: {answer:?}"
    );
}

#[test]
fn control_connections_are_limited_with_a_clear_error() {
    let lab = Lab::with_server_args("limit_control_connections", &["--max-connections", "4"]);
    let (a, d) = lab.account_and_device();
    let server = lab.server.address();
    let key = server_key(&lab);
    let rt = runtime();

    let mut held: Vec<ControlClient> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(
                login(&server, &key, &a)
                    .await
                    .expect("a connection within the limit"),
            );
        }
        v
    });

    // A client over the limit is told why, in the error kind and the message.
    let Err(e) = rt.block_on(login(&server, &key, &a)) else {
        panic!("a fifth connection must be refused");
    };
    assert_eq!(e.kind, ErrorKind::LimitReached, "{e}");
    let expected = "the server has too many connections open (limit 4): retry later";
    assert_eq!(e.message, expected);
    let mut refused = lab.start_initiator(&lab.spec(&a, &d, 3), &[]);
    expect_refused(&mut refused, expected);

    // The held connections still work; closing one frees its place.
    rt.block_on(async {
        for c in held.iter_mut() {
            let pong = c.request(&ClientMsg::Ping).await.expect("ping");
            assert!(matches!(pong, ServerMsg::Pong), "{pong:?}");
        }
    });
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match rt.block_on(login(&server, &key, &a)) {
            Ok(_) => break,
            Err(e) if e.kind == ErrorKind::LimitReached && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => panic!("no connection after one was closed: {e}"),
        }
    }
}

/// The protocol's limit on streams open at once in one session (`SessionConfig::max_streams`).
const MAX_STREAMS: usize = 4096;

/// Connects to the tunnel and asks the transfer service for an echo, sending one byte.
fn start_echo_stream(port: u16) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(b"Ex")?;
    Ok(s)
}

/// The byte came back: the stream reaches the service through the session.
fn check_echo(s: &mut TcpStream) -> std::io::Result<()> {
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    if &b != b"x" {
        return Err(std::io::Error::other("wrong echo"));
    }
    Ok(())
}

/// Opens `n` streams through the tunnel, a batch at a time (each one a round trip), each proven to
/// reach the service.
fn open_echo_streams(port: u16, n: usize) -> Vec<TcpStream> {
    const BATCH: usize = 256;
    let mut open = Vec::with_capacity(n);
    while open.len() < n {
        let first = open.len();
        let batch: Vec<TcpStream> = (first..n.min(first + BATCH))
            .map(|i| start_echo_stream(port).unwrap_or_else(|e| panic!("stream {i}: {e}")))
            .collect();
        for (i, mut s) in batch.into_iter().enumerate() {
            check_echo(&mut s).unwrap_or_else(|e| panic!("stream {}: {e}", first + i));
            open.push(s);
        }
    }
    open
}

#[test]
fn streams_per_session_are_limited_and_the_session_carries_on() {
    let _serial = serial();
    // Both ends of 4097 connections live in this process, plus one per stream in each connectd.
    if let Some(limit) = p2p_system_tests::os::open_files_limit() {
        assert!(
            limit >= 3 * MAX_STREAMS as u64,
            "this test needs {} open files (ulimit -n), the limit is {limit}",
            3 * MAX_STREAMS
        );
    }
    let lab = Lab::new("limit_streams_per_session");
    let svc = TransferService::start();
    let mut t = lab.tunnel(svc.port(), 3, &[]);

    let started = Instant::now();
    let mut held = open_echo_streams(t.port, MAX_STREAMS);
    eprintln!("{MAX_STREAMS} streams open in {:?}", started.elapsed());

    // One more: the initiator closes the connection and says why.
    match start_echo_stream(t.port).and_then(|mut s| check_echo(&mut s)) {
        Ok(_) => panic!("stream {} was opened beyond the limit", MAX_STREAMS + 1),
        Err(e) => eprintln!("stream {} refused: {e}", MAX_STREAMS + 1),
    }
    t.initiator.proc.wait_for_text(
        "too many streams open at once (limit 4096)",
        Duration::from_secs(10),
    );

    // The open streams still carry data; one closed frees its place for a new transfer.
    let mut s = held.pop().expect("a held stream");
    s.write_all(b"still here").expect("write on a held stream");
    let mut back = [0u8; 10];
    s.read_exact(&mut back).expect("echo on a held stream");
    assert_eq!(&back, b"still here");
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Transfer::run(t.port, Kind::Echo, MIB, Duration::from_secs(60)) {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("no new stream after one was closed: {e}"),
        }
    }
    drop(held);
}
