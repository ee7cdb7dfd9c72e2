//! The server under attack, the authentication side: raw control-channel clients in parallel,
//! from several loopback source addresses (127.0.0.x), against a real `p2p-server`. Each test asserts
//! what the attacker gets and that the legitimate user and device carry on.
//!
//! - parallel guesses are counted when admitted: at most the limit is ever evaluated (item 1);
//! - a stranger cannot lock out the real user or device; a guesser with many addresses trips a per-user
//!   limit that known addresses and auth hashes pass, and the operator is told (item 2);
//! - connections that do not log in cannot hold the slots: hard deadline, per-address cap, reserve (item 3);
//! - one address cannot fill the Argon2 queue for the others (item 4);
//! - auth hashes per user are capped and managed with `p2p-server auth-hash list/revoke` (item 7);
//! - who exists is not visible: one answer for unknown users, UIDs and unshared devices (item 10).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use p2p_net::control_channel::ControlClient;
use p2p_proto::control::{ClientMsg, Credential, ErrorCode, ServerMsg};
use p2p_proto::{EncryptionMode, Uid};
use p2p_system_tests::control::{runtime, server_key};
use p2p_system_tests::lab::serial;
use p2p_system_tests::{Account, Device, Lab};
use tokio::net::TcpSocket;

/// What the legitimate user and device must get through within, whatever the attacker does.
const LEGIT_WITHIN: Duration = Duration::from_secs(2);

fn from(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

/// A control client whose TCP connection comes from `source` (127.0.0.x).
async fn client(
    server: SocketAddr,
    key: [u8; 32],
    source: Ipv4Addr,
) -> Result<ControlClient, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket
        .bind(SocketAddr::from((source, 0)))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let stream = tokio::time::timeout(Duration::from_secs(10), socket.connect(server))
        .await
        .map_err(|_| format!("connect from {source}: timed out"))?
        .map_err(|e| format!("connect from {source}: {e}"))?;
    ControlClient::handshake_over(stream, &key)
        .await
        .map_err(|e| format!("handshake from {source}: {e}"))
}

/// Sends `msg` and waits (at most 60 s) for the answer.
async fn ask(c: &mut ControlClient, msg: &ClientMsg) -> Result<ServerMsg, String> {
    c.send(msg).await.map_err(|e| format!("send: {e}"))?;
    match tokio::time::timeout(Duration::from_secs(60), c.recv()).await {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) => Err(format!("recv: {e}")),
        Err(_) => Err("no answer within 60 s".into()),
    }
}

fn password(user: &str, pw: &str) -> ClientMsg {
    ClientMsg::Login {
        user: user.into(),
        credential: Credential::Password(pw.into()),
        initiator_key: None,
    }
}

fn auth_hash(user: &str, hash: &str) -> ClientMsg {
    ClientMsg::Login {
        user: user.into(),
        credential: Credential::AuthHash(hash.into()),
        initiator_key: None,
    }
}

fn register(d: &Device, secret: &str) -> ClientMsg {
    ClientMsg::Register {
        uid: d.uid.parse().expect("uid"),
        secret: secret.into(),
        application_type: 28,
        local_candidates: Vec::new(),
        device_key: None,
    }
}

/// One request on a new connection from `source`: `Ok(None)` for success (`LoginOk`, `Registered`...),
/// `Ok(Some((code, message)))` for a refusal.
async fn attempt(
    server: SocketAddr,
    key: [u8; 32],
    source: Ipv4Addr,
    msg: ClientMsg,
) -> Result<Option<(ErrorCode, String)>, String> {
    let mut c = client(server, key, source).await?;
    match ask(&mut c, &msg).await? {
        ServerMsg::Error { code, message } => Ok(Some((code, message))),
        _ => Ok(None),
    }
}

/// Runs `attempts` in parallel (each on its own connection) and returns their outcomes in order.
async fn in_parallel(
    server: SocketAddr,
    key: [u8; 32],
    attempts: Vec<(Ipv4Addr, ClientMsg)>,
) -> Vec<Result<Option<(ErrorCode, String)>, String>> {
    let tasks: Vec<_> = attempts
        .into_iter()
        .map(|(source, msg)| tokio::spawn(attempt(server, key, source, msg)))
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap_or_else(|e| Err(format!("task: {e}"))));
    }
    out
}

/// Counts outcomes: successes, and refusals by code; panics on a failed exchange.
fn tally(results: &[Result<Option<(ErrorCode, String)>, String>]) -> (usize, Vec<ErrorCode>) {
    let mut ok = 0;
    let mut codes = Vec::new();
    for r in results {
        match r {
            Ok(None) => ok += 1,
            Ok(Some((code, message))) => {
                assert!(
                    !message.trim().is_empty() && !message.contains('\n'),
                    "refusal {code:?} without a one-line message: {message:?}"
                );
                codes.push(*code)
            }
            Err(e) => panic!("an attacking client's exchange failed: {e}"),
        }
    }
    (ok, codes)
}

fn count(codes: &[ErrorCode], code: ErrorCode) -> usize {
    codes.iter().filter(|c| **c == code).count()
}

/// The legitimate user logs in with `msg` from `source` within [`LEGIT_WITHIN`].
async fn legit_login(
    server: SocketAddr,
    key: [u8; 32],
    source: Ipv4Addr,
    msg: ClientMsg,
) -> ControlClient {
    let started = Instant::now();
    let mut c = client(server, key, source)
        .await
        .unwrap_or_else(|e| panic!("the legitimate client cannot connect: {e}"));
    let answer = ask(&mut c, &msg).await;
    let took = started.elapsed();
    assert!(
        matches!(answer, Ok(ServerMsg::LoginOk { .. })),
        "the legitimate login from {source} was refused: {answer:?}"
    );
    assert!(
        took <= LEGIT_WITHIN,
        "the legitimate login from {source} took {took:?}"
    );
    eprintln!("legitimate login from {source} in {took:?}");
    c
}

async fn legit_register(
    server: SocketAddr,
    key: [u8; 32],
    source: Ipv4Addr,
    d: &Device,
) -> ControlClient {
    let started = Instant::now();
    let mut c = client(server, key, source)
        .await
        .unwrap_or_else(|e| panic!("the device cannot connect: {e}"));
    let answer = ask(&mut c, &register(d, &d.secret)).await;
    let took = started.elapsed();
    assert!(
        matches!(answer, Ok(ServerMsg::Registered { .. })),
        "the real device was refused from {source}: {answer:?}"
    );
    assert!(
        took <= LEGIT_WITHIN,
        "the device's registration took {took:?}"
    );
    c
}

async fn new_auth_hash(c: &mut ControlClient) -> Result<String, (ErrorCode, String)> {
    match ask(
        c,
        &ClientMsg::CreateAuthHash {
            label: "attack test".into(),
        },
    )
    .await
    .expect("auth hash answer")
    {
        ServerMsg::AuthHash { auth_hash } => Ok(auth_hash),
        ServerMsg::Error { code, message } => Err((code, message)),
        other => panic!("unexpected answer to CreateAuthHash: {other:?}"),
    }
}

// -------------------------------------------------------------------------------------------------

#[test]
fn parallel_guesses_are_counted_when_admitted() {
    let _serial = serial();
    let lab = Lab::new("attack_parallel_guesses");
    let bob = lab.account();
    let (server, key) = (lab.server.addrs.control, server_key(&lab));
    let rt = runtime();
    rt.block_on(async {
        // 40 logins for one user at once from one address, 39 wrong and 1 right: at most the per-user
        // limit (5) of wrong ones is evaluated, the others are refused unevaluated.
        let mut attempts: Vec<_> = (0..39)
            .map(|i| (from(2), password(&bob.user, &format!("guess-{i}"))))
            .collect();
        attempts.push((from(2), password(&bob.user, &bob.password)));
        let (ok, codes) = tally(&in_parallel(server, key, attempts).await);
        let evaluated = ok + count(&codes, ErrorCode::AuthFailed);
        eprintln!("40 parallel logins for one user: {ok} ok, {codes:?}");
        // The limit counts failures: a right password admitted among the first five frees its place
        // when it succeeds, so one more wrong guess may be evaluated after it, never a sixth failure.
        let failed = count(&codes, ErrorCode::AuthFailed);
        assert!(
            failed <= 5 && ok <= 1,
            "{failed} wrong passwords of 39 parallel guesses were evaluated (limit 5), {ok} right"
        );
        assert_eq!(
            count(&codes, ErrorCode::Throttled) + evaluated,
            40,
            "{codes:?}"
        );

        // 300 logins at once from one address, for 300 names: at most the per-address limit (20).
        let attempts = (0..300)
            .map(|i| (from(3), password(&format!("guess{i}@example.com"), "x")))
            .collect();
        let (ok, codes) = tally(&in_parallel(server, key, attempts).await);
        let evaluated = ok + count(&codes, ErrorCode::AuthFailed);
        eprintln!("300 parallel logins from one address: {evaluated} evaluated");
        assert!(
            evaluated <= 20,
            "{evaluated} of 300 parallel logins were evaluated (limit 20)"
        );
        assert_eq!(
            count(&codes, ErrorCode::Throttled) + evaluated,
            300,
            "{codes:?}"
        );

        // The user, from their own address, logs in at once.
        legit_login(server, key, from(1), password(&bob.user, &bob.password)).await;
    });
}

#[test]
fn a_stranger_cannot_lock_out_the_user_or_the_device() {
    let _serial = serial();
    let mut lab = Lab::with_server_args("attack_lockout", &["--max-failures-per-user-total", "12"]);
    let (bob, device) = lab.account_and_device();
    let (server, key) = (lab.server.addrs.control, server_key(&lab));
    let rt = runtime();
    rt.block_on(async {
        // Bob's usual address, and an auth hash of his.
        let mut c = legit_login(server, key, from(1), password(&bob.user, &bob.password)).await;
        let hash = new_auth_hash(&mut c).await.expect("an auth hash");
        lab.secret(&hash);
        drop(c);
        drop(legit_register(server, key, from(1), &device).await);

        // A stranger guesses bob's password and the device's secret from 127.0.0.2.
        let guesses = (0..10)
            .map(|i| (from(2), password(&bob.user, &format!("guess-{i}"))))
            .collect();
        let (ok, codes) = tally(&in_parallel(server, key, guesses).await);
        assert_eq!(ok, 0);
        assert_eq!(count(&codes, ErrorCode::AuthFailed), 5, "{codes:?}");
        assert_eq!(count(&codes, ErrorCode::Throttled), 5, "{codes:?}");
        let guesses = (0..15)
            .map(|i| (from(2), register(&device, &format!("guess-{i}"))))
            .collect();
        let (ok, codes) = tally(&in_parallel(server, key, guesses).await);
        assert_eq!(ok, 0);
        assert_eq!(count(&codes, ErrorCode::BadSecret), 10, "{codes:?}");
        assert_eq!(count(&codes, ErrorCode::Throttled), 5, "{codes:?}");

        // The stranger is locked out, bob and the device are not: his password from his address and
        // from a new one, his auth hash from anywhere, the device's secret from its address.
        let (_, codes) = tally(
            &in_parallel(
                server,
                key,
                vec![(from(2), password(&bob.user, &bob.password))],
            )
            .await,
        );
        assert_eq!(
            codes,
            [ErrorCode::Throttled],
            "the stranger's address is not throttled"
        );
        legit_login(server, key, from(1), password(&bob.user, &bob.password)).await;
        legit_login(server, key, from(3), auth_hash(&bob.user, &hash)).await;
        legit_login(server, key, from(4), password(&bob.user, &bob.password)).await;
        drop(legit_register(server, key, from(1), &device).await);

        // A guesser with many addresses (3 guesses from each of 127.0.0.10-16) trips the limit per user
        // for unfamiliar addresses (12): new addresses are refused, bob's known ones and his auth hash
        // are not.
        let guesses = (10..17)
            .flat_map(|n| (0..3).map(move |i| (from(n), i)))
            .map(|(source, i)| (source, password(&bob.user, &format!("spray-{i}"))))
            .collect();
        let (_, codes) = tally(&in_parallel(server, key, guesses).await);
        assert!(
            count(&codes, ErrorCode::AuthFailed) <= 12 - 5,
            "more guesses evaluated than the per-user limit allows: {codes:?}"
        );
        let (_, codes) = tally(
            &in_parallel(
                server,
                key,
                vec![(from(20), password(&bob.user, &bob.password))],
            )
            .await,
        );
        assert_eq!(
            codes,
            [ErrorCode::Throttled],
            "an unfamiliar address still logs in during the attack"
        );
        legit_login(server, key, from(1), password(&bob.user, &bob.password)).await;
        legit_login(server, key, from(21), auth_hash(&bob.user, &hash)).await;
    });
    // The operator is told.
    let log = lab.server.proc().output();
    assert!(
        log.contains("may be under a password-guessing attack"),
        "no warning in the server's log:\n{}",
        lab.server.proc().tail(30)
    );
    assert!(
        log.contains("registrations for it from that address are refused"),
        "{}",
        lab.server.proc().tail(30)
    );
}

#[test]
fn unauthenticated_connections_cannot_hold_the_slots() {
    let _serial = serial();
    let lab = Lab::with_server_args(
        "attack_slots",
        &[
            "--max-connections",
            "20",
            "--max-unauthenticated-per-address",
            "4",
            "--reserved-connections",
            "6",
            "--login-timeout",
            "4",
        ],
    );
    let (bob, device) = lab.account_and_device();
    let (server, key) = (lab.server.addrs.control, server_key(&lab));
    let rt = runtime();
    rt.block_on(async {
        drop(legit_login(server, key, from(1), password(&bob.user, &bob.password)).await);

        // 10 connections from one address that never log in but ping: 4 are let in, 6 told the limit.
        let mut held = Vec::new();
        let mut refused = Vec::new();
        for _ in 0..10 {
            let mut c = client(server, key, from(2)).await.expect("connect");
            match ask(&mut c, &ClientMsg::Ping).await {
                Ok(ServerMsg::Pong) => held.push(c),
                Ok(ServerMsg::Error { code, message }) => refused.push((code, message)),
                other => panic!("unexpected answer: {other:?}"),
            }
        }
        assert_eq!(held.len(), 4, "refused: {refused:?}");
        assert!(
            refused
                .iter()
                .all(|(code, m)| *code == ErrorCode::LimitReached
                    && m.contains("have not logged in (limit 4)")),
            "{refused:?}"
        );
        // Pinging does not keep them open past the login deadline (4 s).
        let started = Instant::now();
        let pinging: Vec<_> = held
            .into_iter()
            .map(|mut c| {
                tokio::spawn(async move {
                    loop {
                        if !matches!(ask(&mut c, &ClientMsg::Ping).await, Ok(ServerMsg::Pong)) {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                })
            })
            .collect();
        for p in pinging {
            tokio::time::timeout(Duration::from_secs(8), p)
                .await
                .expect("a pinging connection that never logged in was still open 8 s later")
                .expect("pinger");
        }
        let held_for = started.elapsed();
        eprintln!("pinging unauthenticated connections closed after {held_for:?}");

        // Strangers on four addresses fill what is not reserved (20 - 6 = 14 slots)...
        let mut strangers = Vec::new();
        let mut reserve_refusals = 0;
        for n in 3..7 {
            for _ in 0..4 {
                let mut c = client(server, key, from(n)).await.expect("connect");
                match ask(&mut c, &ClientMsg::Ping).await {
                    Ok(ServerMsg::Pong) => strangers.push(c),
                    Ok(ServerMsg::Error {
                        code: ErrorCode::LimitReached,
                        message,
                    }) if message.contains("kept for clients that logged in before") => {
                        reserve_refusals += 1
                    }
                    other => panic!("unexpected answer: {other:?}"),
                }
            }
        }
        assert_eq!(strangers.len(), 14);
        assert_eq!(reserve_refusals, 2);
        // ...a new address is refused, but the user and the device, known, get in and stay in.
        let (_, codes) = tally(
            &in_parallel(
                server,
                key,
                vec![(from(7), password(&bob.user, &bob.password))],
            )
            .await,
        );
        assert_eq!(codes, [ErrorCode::LimitReached]);
        let mut user = legit_login(server, key, from(1), password(&bob.user, &bob.password)).await;
        let _target = legit_register(server, key, from(1), &device).await;
        drop(strangers);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(
            matches!(ask(&mut user, &ClientMsg::Ping).await, Ok(ServerMsg::Pong)),
            "the logged-in user was disconnected"
        );
    });
}

#[test]
fn one_address_cannot_delay_the_others_logins() {
    let _serial = serial();
    // No failure limits in the way: what is tested is the Argon2 queue alone.
    let lab = Lab::with_server_args(
        "attack_argon2_queue",
        &[
            "--max-failures-per-user",
            "100000",
            "--max-failures-per-user-total",
            "100000",
            "--max-failures-per-ip",
            "100000",
        ],
    );
    let bob = lab.account();
    let eve = lab.account();
    let (server, key) = (lab.server.addrs.control, server_key(&lab));
    let rt = runtime();
    rt.block_on(async {
        // 400 wrong logins from one address, all sent at once.
        let mut conns = Vec::new();
        for _ in 0..400 {
            conns.push(client(server, key, from(2)).await.expect("connect"));
        }
        let flood: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                let msg = password(&eve.user, &format!("wrong-{i}"));
                tokio::spawn(async move {
                    match ask(&mut c, &msg).await {
                        Ok(ServerMsg::Error { code, .. }) => Ok(code),
                        other => Err(format!("{other:?}")),
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        // A legitimate login from another address gets through at once.
        legit_login(server, key, from(1), password(&bob.user, &bob.password)).await;
        let mut codes = Vec::new();
        for f in flood {
            codes.push(
                f.await
                    .expect("task")
                    .expect("an answer to every flooding login"),
            );
        }
        let throttled = count(&codes, ErrorCode::Throttled);
        eprintln!(
            "400 queued wrong logins: {} evaluated, {throttled} refused unevaluated",
            count(&codes, ErrorCode::AuthFailed)
        );
        assert!(throttled >= 400 - 128, "{codes:?}");
    });
}

#[test]
fn auth_hashes_per_user_are_capped_and_managed() {
    let _serial = serial();
    let lab = Lab::with_server_args("attack_auth_hashes", &["--max-auth-hashes-per-user", "5"]);
    let bob = lab.account();
    let (server, key) = (lab.server.addrs.control, server_key(&lab));
    let rt = runtime();
    let mut c = rt.block_on(legit_login(
        server,
        key,
        from(1),
        password(&bob.user, &bob.password),
    ));
    // Minting in parallel from 4 connections: exactly 5 are issued, the others refused clearly.
    let results: Vec<Result<String, (ErrorCode, String)>> = rt.block_on(async {
        let mut conns = vec![];
        for _ in 0..4 {
            conns.push(legit_login(server, key, from(1), password(&bob.user, &bob.password)).await);
        }
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|mut c| {
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    for _ in 0..10 {
                        out.push(new_auth_hash(&mut c).await);
                    }
                    out
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("task"));
        }
        all
    });
    let issued: Vec<&String> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    for h in &issued {
        lab.secret(h);
    }
    assert_eq!(issued.len(), 5);
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.0, ErrorCode::LimitReached, "{r:?}");
        assert!(
            r.1.contains("too many active auth hashes (limit 5)"),
            "{r:?}"
        );
    }
    // The operator sees them and revokes one; then one more can be issued.
    let list = lab
        .server
        .admin_ok(&["auth-hash", "list", "--user", &bob.user, "--json"], None);
    let rows: serde_json::Value = serde_json::from_str(&list).expect("JSON list");
    let rows = rows.as_array().expect("array");
    assert_eq!(rows.len(), 5, "{list}");
    let id = rows[0]["id"].as_str().expect("id").to_string();
    lab.server.admin_ok(&["auth-hash", "revoke", &id], None);
    let again = rt
        .block_on(new_auth_hash(&mut c))
        .expect("an auth hash after a revocation");
    lab.secret(&again);
    let e = rt.block_on(new_auth_hash(&mut c)).unwrap_err();
    assert_eq!(e.0, ErrorCode::LimitReached);
    // The revoked one no longer logs in; the others do.
    let revoked = issued
        .iter()
        .find(|h| h.starts_with(&format!("{id}.")))
        .expect("the revoked hash was issued here");
    let (_, codes) = tally(&rt.block_on(in_parallel(
        server,
        key,
        vec![(from(1), auth_hash(&bob.user, revoked))],
    )));
    assert_eq!(codes, [ErrorCode::AuthFailed]);
    rt.block_on(legit_login(
        server,
        key,
        from(1),
        auth_hash(&bob.user, &again),
    ));
}

#[test]
fn who_exists_is_not_visible() {
    let _serial = serial();
    let lab = Lab::new("attack_who_exists");
    let (bob, device) = lab.account_and_device();
    let eve = lab.account();
    let ghost = Account {
        user: "ghost@example.com".into(),
        password: "whatever".into(),
    };
    let (server, key) = (lab.server.addrs.control, server_key(&lab));
    let rt = runtime();
    rt.block_on(async {
        // Logins: an unknown user and a wrong password get the same answer, after as much work.
        let mut unknown_times = Vec::new();
        let mut wrong_times = Vec::new();
        let mut answers = Vec::new();
        for round in 0..4u8 {
            for (who, times) in [(&ghost, &mut unknown_times), (&bob, &mut wrong_times)] {
                let started = Instant::now();
                let r = attempt(server, key, from(30 + round), password(&who.user, "not-it")).await;
                times.push(started.elapsed());
                let (code, message) = r.expect("exchange").expect("a refusal");
                answers.push((code, message.replace(&who.user, "USER")));
            }
        }
        assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
        assert_eq!(answers[0].0, ErrorCode::AuthFailed);
        unknown_times.sort();
        wrong_times.sort();
        let (unknown, wrong) = (unknown_times[2], wrong_times[2]);
        eprintln!("median refusal: unknown user {unknown:?}, wrong password {wrong:?}");
        assert!(
            unknown * 2 >= wrong,
            "an unknown user is refused much faster ({unknown:?}) than a wrong password ({wrong:?})"
        );

        // Registrations: an unknown UID and a wrong secret get the same answer.
        let nobody = Device {
            uid: "80:00:00:00:01:FF:FF:FE".into(),
            secret: String::new(),
        };
        let a = attempt(server, key, from(40), register(&device, "wrong"))
            .await
            .unwrap()
            .unwrap();
        let b = attempt(server, key, from(40), register(&nobody, "wrong"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.0, b.0);
        assert_eq!(
            a.1.replace(&device.uid, "UID"),
            b.1.replace(&nobody.uid, "UID")
        );

        // Sessions: for eve, bob's device (not shared) and a UID that does not exist look the same.
        let mut c = legit_login(server, key, from(41), password(&eve.user, &eve.password)).await;
        let refusal = |uid: &str| {
            let uid: Uid = uid.parse().unwrap();
            let msg = ClientMsg::Connect {
                uid,
                mode: EncryptionMode::ChaCha20Poly1305,
                local_candidates: Vec::new(),
            };
            (uid, msg)
        };
        let mut answers = Vec::new();
        for uid in [device.uid.clone(), nobody.uid.clone()] {
            let (uid, msg) = refusal(&uid);
            match ask(&mut c, &msg).await {
                Ok(ServerMsg::Error { code, message }) => {
                    answers.push((code, message.replace(&uid.to_string(), "UID")))
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        assert_eq!(answers[0], answers[1]);
    });
}
