//! A real server in-process on 127.0.0.1 (port 0 everywhere), driven by real clients: the Noise control
//! channel of `p2p-link` and plain UDP sockets.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use p2p_link::control_channel::ControlClient;
use p2p_link::LinkError;
use p2p_proto::control::{ClientMsg, Credential, ErrorCode, ServerMsg, SessionGrant};
use p2p_proto::wire::{self, Kind, RelayBind, Role, SessionHeader};
use p2p_proto::{EncryptionMode, Uid};
use p2p_server::server::{self, Config, ServerHandle};
use p2p_server::throttle::Limit;
use p2p_server::{accounts, admin, db};
use tokio::net::UdpSocket;

const BOB_PW: &str = "correct horse";
const DEV_SECRET: &str = "device-secret-1";
const TIMEOUT: Duration = Duration::from_secs(10);

fn bob_device() -> Uid {
    "80:00:00:00:01:00:0A:C2".parse().unwrap()
}
fn eve_device() -> Uid {
    "80:00:00:00:01:00:0A:C3".parse().unwrap()
}
fn shared_device() -> Uid {
    "80:00:00:00:01:00:0A:C4".parse().unwrap()
}

fn populate(dir: &Path) {
    admin::init(dir).unwrap();
    let conn = db::open(dir).unwrap();
    accounts::add_user(&conn, "bob", BOB_PW).unwrap();
    accounts::add_user(&conn, "eve", "eve-pw").unwrap();
    accounts::add_device(&conn, bob_device(), "bob", "web", 7, DEV_SECRET).unwrap();
    accounts::add_device(&conn, eve_device(), "eve", "", 1, "eve-secret").unwrap();
    accounts::add_device(&conn, shared_device(), "eve", "", 1, "shared-secret").unwrap();
    accounts::add_share(&conn, shared_device(), "bob").unwrap();
}

struct Fixture {
    dir: tempfile::TempDir,
    server: ServerHandle,
}

impl Fixture {
    async fn start(tune: impl FnOnce(&mut Config)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        populate(dir.path());
        let mut config = Config::loopback_ephemeral(dir.path());
        config.broker.accept_timeout = Duration::from_secs(3);
        config.stats_file = Some(dir.path().join("stats.json"));
        config.stats_interval = Duration::from_millis(100);
        tune(&mut config);
        let server = server::start(config).await.unwrap();
        Fixture { dir, server }
    }

    async fn client(&self) -> ControlClient {
        ControlClient::connect(
            &self.server.control_addr().to_string(),
            &self.server.server_key,
            TIMEOUT,
        )
        .await
        .unwrap()
    }

    async fn login(
        &self,
        user: &str,
        credential: Credential,
    ) -> (ControlClient, Result<ServerMsg, LinkError>) {
        let mut c = self.client().await;
        let r = c
            .request(&ClientMsg::Login {
                user: user.into(),
                credential,
                initiator_key: None,
            })
            .await;
        (c, r)
    }

    async fn bob(&self) -> ControlClient {
        let (c, r) = self.login("bob", Credential::Password(BOB_PW.into())).await;
        assert_eq!(r.unwrap(), ServerMsg::LoginOk { user: "bob".into() });
        c
    }

    async fn target(
        &self,
        uid: Uid,
        secret: &str,
        candidates: Vec<SocketAddr>,
    ) -> Result<ControlClient, LinkError> {
        let mut c = self.client().await;
        c.request(&ClientMsg::Register {
            uid,
            secret: secret.into(),
            application_type: 7,
            local_candidates: candidates,
            device_key: None,
        })
        .await
        .map(|r| {
            assert_eq!(r, ServerMsg::Registered { uid });
            c
        })
    }
}

/// The code of the server's refusal (`None` for any other failure).
fn code(e: &LinkError) -> Option<ErrorCode> {
    match e {
        LinkError::Refused { code, .. } => Some(*code),
        _ => None,
    }
}

fn connect_msg(uid: Uid, candidates: Vec<SocketAddr>) -> ClientMsg {
    ClientMsg::Connect {
        uid,
        mode: EncryptionMode::default(),
        local_candidates: candidates,
    }
}

async fn recv(c: &mut ControlClient) -> ServerMsg {
    tokio::time::timeout(TIMEOUT, c.recv())
        .await
        .unwrap()
        .unwrap()
}

async fn udp_recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 2048];
    let (n, from) = tokio::time::timeout(TIMEOUT, s.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf.truncate(n);
    (buf, from)
}

async fn nothing_arrives(s: &UdpSocket) -> bool {
    let mut buf = [0u8; 2048];
    tokio::time::timeout(Duration::from_millis(300), s.recv_from(&mut buf))
        .await
        .is_err()
}

fn token(grant: &SessionGrant) -> [u8; 16] {
    hex::decode(&grant.relay_token).unwrap().try_into().unwrap()
}

/// Sends a relay bind for `role` with `grant`'s session and token (tests pass the other role's grant to
/// forge one).
async fn send_bind(sock: &UdpSocket, role: Role, grant: &SessionGrant, relay: SocketAddr) {
    let bind = RelayBind {
        session_id: grant.session_id,
        role,
        token: token(grant),
    };
    sock.send_to(&bind.encode(), relay).await.unwrap();
}

fn data(session_id: u64, role: Role, pn: u64, payload: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    SessionHeader {
        kind: Kind::Data(role),
        session_id,
        packet_number: pn,
    }
    .encode(&mut d);
    d.extend_from_slice(payload);
    d
}

#[tokio::test]
async fn login_outcomes() {
    let f = Fixture::start(|_| {}).await;
    f.bob().await;
    let (_, r) = f.login("bob", Credential::Password("wrong".into())).await;
    let e = r.unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::AuthFailed), "{e}");
    assert!(
        e.to_string()
            .contains("login refused for user 'bob': unknown user or wrong password"),
        "{e}"
    );
    // An unknown user gets the same answer as a wrong password: a client must not learn
    // which users exist.
    let (_, r) = f.login("mallory", Credential::Password("x".into())).await;
    let unknown = r.unwrap_err();
    assert_eq!(code(&unknown), Some(ErrorCode::AuthFailed), "{unknown}");
    assert_eq!(unknown.to_string().replace("mallory", "bob"), e.to_string());
}

#[tokio::test]
async fn connect_checks_uid_share_and_presence() {
    let f = Fixture::start(|_| {}).await;
    let mut bob = f.bob().await;
    let unknown: Uid = "00:00:00:00:00:00:00:99".parse().unwrap();
    let e = bob
        .request(&connect_msg(unknown, vec![]))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::UnknownUid), "{e}");
    // A device that exists but is not shared gets the same answer as an unknown UID: a user
    // must not learn which devices exist.
    let not_shared = bob
        .request(&connect_msg(eve_device(), vec![]))
        .await
        .unwrap_err();
    assert_eq!(
        code(&not_shared),
        Some(ErrorCode::UnknownUid),
        "{not_shared}"
    );
    assert!(
        not_shared.to_string().contains("not shared with this user"),
        "{not_shared}"
    );
    assert_eq!(
        not_shared
            .to_string()
            .replace(&eve_device().to_string(), &unknown.to_string()),
        e.to_string()
    );
    // Shared with bob, but no target registered.
    let e = bob
        .request(&connect_msg(shared_device(), vec![]))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::DeviceOffline), "{e}");
    // Before login.
    let mut anon = f.client().await;
    let r = anon
        .request(&connect_msg(bob_device(), vec![]))
        .await
        .unwrap_err();
    assert!(r.to_string().contains("log in"), "{r}");
}

#[tokio::test]
async fn wrong_device_secret_and_unknown_device_are_refused() {
    let f = Fixture::start(|_| {}).await;
    let e = f.target(bob_device(), "nope", vec![]).await.unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::BadSecret), "{e}");
    // An unknown UID gets the same answer as a wrong secret: which devices exist is not shown.
    let e = f
        .target("00:00:00:00:00:00:00:99".parse().unwrap(), "x", vec![])
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::BadSecret), "{e}");
    assert!(
        e.to_string().contains("unknown UID or wrong device secret"),
        "{e}"
    );
    assert!(!f.server.is_online(bob_device()));
}

#[tokio::test]
async fn brokered_session_relays_and_punches() {
    let f = Fixture::start(|_| {}).await;
    let target_host: SocketAddr = "10.1.2.3:4000".parse().unwrap();
    let initiator_host: SocketAddr = "192.168.7.8:5000".parse().unwrap();
    let target = f
        .target(bob_device(), DEV_SECRET, vec![target_host])
        .await
        .unwrap();
    assert!(f.server.is_online(bob_device()));
    let (mut t_read, mut t_write) = target.into_split();
    let mut bob = f.bob().await;
    bob.send(&connect_msg(bob_device(), vec![initiator_host]))
        .await
        .unwrap();

    let ServerMsg::Incoming(t_grant) = tokio::time::timeout(TIMEOUT, t_read.recv())
        .await
        .unwrap()
        .unwrap()
    else {
        panic!("expected incoming")
    };
    assert_eq!(t_grant.user, "bob");
    t_write
        .send(&ClientMsg::Accept {
            session_id: t_grant.session_id,
        })
        .await
        .unwrap();
    let ServerMsg::Session(i_grant) = recv(&mut bob).await else {
        panic!("expected session")
    };
    assert_eq!(i_grant.session_id, t_grant.session_id);
    assert_eq!(i_grant.session_secret, t_grant.session_secret);
    assert_ne!(i_grant.relay_token, t_grant.relay_token);
    let relay = f.server.udp_addrs()[0];
    assert_eq!(i_grant.relay_addr, relay);
    let id = i_grant.session_id;

    let i_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let t_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // A bind with the other role's token (or any wrong token) gets no answer.
    send_bind(&i_sock, Role::Initiator, &t_grant, relay).await;
    assert!(nothing_arrives(&i_sock).await);

    for (sock, role, grant) in [
        (&i_sock, Role::Initiator, &i_grant),
        (&t_sock, Role::Target, &t_grant),
    ] {
        send_bind(sock, role, grant, relay).await;
        let (ack, from) = udp_recv(sock).await;
        assert_eq!(from, relay);
        assert_eq!(wire::decode_relay_bind_ack(&ack).unwrap(), id);
    }
    // Both bound: each peer is told the other's reflexive address, then its host candidates.
    let ServerMsg::Punch {
        session_id,
        candidates,
    } = recv(&mut bob).await
    else {
        panic!("expected punch")
    };
    assert_eq!(session_id, id);
    assert_eq!(candidates, vec![t_sock.local_addr().unwrap(), target_host]);
    let ServerMsg::Punch { candidates, .. } = tokio::time::timeout(TIMEOUT, t_read.recv())
        .await
        .unwrap()
        .unwrap()
    else {
        panic!("expected punch")
    };
    assert_eq!(
        candidates,
        vec![i_sock.local_addr().unwrap(), initiator_host]
    );

    // Relayed both ways, byte for byte.
    let to_target = data(id, Role::Initiator, 0, b"hello target");
    i_sock.send_to(&to_target, relay).await.unwrap();
    assert_eq!(udp_recv(&t_sock).await, (to_target.clone(), relay));
    let to_initiator = data(id, Role::Target, 0, b"hello initiator");
    t_sock.send_to(&to_initiator, relay).await.unwrap();
    assert_eq!(udp_recv(&i_sock).await, (to_initiator.clone(), relay));
    // A stranger using the session id gets nothing through.
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    stranger
        .send_to(&data(id, Role::Initiator, 1, b"inject"), relay)
        .await
        .unwrap();
    assert!(nothing_arrives(&t_sock).await);

    let stats = f.server.relay_stats();
    let s = stats
        .sessions
        .iter()
        .find(|s| s.session_id == format!("{id:016x}"))
        .unwrap();
    assert_eq!(
        s.forwarded_bytes,
        (to_target.len() + to_initiator.len()) as u64
    );
    assert_eq!(stats.counters.unbound_source, 1);

    // Roaming: the target binds from a new address; both are punched again and data follows it.
    let t_sock2 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    send_bind(&t_sock2, Role::Target, &t_grant, relay).await;
    udp_recv(&t_sock2).await;
    let ServerMsg::Punch { candidates, .. } = recv(&mut bob).await else {
        panic!("expected punch")
    };
    assert_eq!(candidates[0], t_sock2.local_addr().unwrap());
    i_sock.send_to(&to_target, relay).await.unwrap();
    assert_eq!(udp_recv(&t_sock2).await.0, to_target);

    // The stats file shows the session's traffic.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let text = std::fs::read_to_string(f.dir.path().join("stats.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["relay"]["sessions"][0]["session_id"],
        format!("{id:016x}")
    );
    assert!(
        v["relay"]["sessions"][0]["forwarded_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn target_that_does_not_accept_fails_the_connect() {
    let f = Fixture::start(|c| c.broker.accept_timeout = Duration::from_millis(300)).await;
    let target = f.target(bob_device(), DEV_SECRET, vec![]).await.unwrap();
    let mut bob = f.bob().await;
    let e = bob
        .request(&connect_msg(bob_device(), vec![]))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::SessionFailed), "{e}");
    // A rejecting target.
    let (mut r, mut w) = target.into_split();
    let ServerMsg::Incoming(_) = r.recv().await.unwrap() else {
        panic!()
    };
    let rejecter = tokio::spawn(async move {
        let ServerMsg::Incoming(g) = r.recv().await.unwrap() else {
            panic!()
        };
        w.send(&ClientMsg::Reject {
            session_id: g.session_id,
            reason: "no".into(),
        })
        .await
        .unwrap();
        (r, w)
    });
    let e = bob
        .request(&connect_msg(bob_device(), vec![]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("refused the session"), "{e}");
    rejecter.await.unwrap();
}

#[tokio::test]
async fn newer_registration_replaces_the_older_and_disconnect_goes_offline() {
    let f = Fixture::start(|_| {}).await;
    let old = f.target(bob_device(), DEV_SECRET, vec![]).await.unwrap();
    let new = f.target(bob_device(), DEV_SECRET, vec![]).await.unwrap();
    // Closing the old connection does not take the device offline: the new one holds it.
    drop(old);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(f.server.is_online(bob_device()));
    let (mut r, mut w) = new.into_split();
    let mut bob = f.bob().await;
    bob.send(&connect_msg(bob_device(), vec![])).await.unwrap();
    let ServerMsg::Incoming(g) = r.recv().await.unwrap() else {
        panic!()
    };
    w.send(&ClientMsg::Accept {
        session_id: g.session_id,
    })
    .await
    .unwrap();
    assert!(matches!(recv(&mut bob).await, ServerMsg::Session(_)));
    drop((r, w));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!f.server.is_online(bob_device()));
}

#[tokio::test]
async fn every_udp_port_answers_probes() {
    let f = Fixture::start(|_| {}).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for (i, port) in f.server.udp_addrs().into_iter().enumerate() {
        sock.send_to(b"\x01\x30garbage", port).await.unwrap();
        sock.send_to(&wire::encode_probe_request([i as u8; 12]), port)
            .await
            .unwrap();
        let (reply, from) = udp_recv(&sock).await;
        assert_eq!(from, port);
        assert_eq!(
            wire::decode_probe_response(&reply).unwrap(),
            ([i as u8; 12], sock.local_addr().unwrap())
        );
    }
}

#[tokio::test]
async fn repeated_failures_are_throttled() {
    let f = Fixture::start(|c| c.auth.per_user = Limit::new(2, Duration::from_secs(60))).await;
    for _ in 0..2 {
        let (_, r) = f.login("bob", Credential::Password("bad".into())).await;
        assert_eq!(code(&r.unwrap_err()), Some(ErrorCode::AuthFailed));
    }
    let (_, r) = f.login("bob", Credential::Password(BOB_PW.into())).await;
    let e = r.unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::Throttled), "{e}");
    assert!(e.to_string().contains("retry in"), "{e}");
    // Eve is not affected.
    let (_, r) = f.login("eve", Credential::Password("eve-pw".into())).await;
    assert!(r.is_ok());
}

#[tokio::test]
async fn auth_hash_login_and_revocation() {
    let f = Fixture::start(|_| {}).await;
    let mut bob = f.bob().await;
    let ServerMsg::AuthHash { auth_hash } = bob
        .request(&ClientMsg::CreateAuthHash {
            label: "laptop".into(),
        })
        .await
        .unwrap()
    else {
        panic!()
    };
    let (mut by_hash, r) = f
        .login("bob", Credential::AuthHash(auth_hash.clone()))
        .await;
    assert_eq!(r.unwrap(), ServerMsg::LoginOk { user: "bob".into() });
    // An auth-hash login cannot mint further auth hashes.
    let e = by_hash
        .request(&ClientMsg::CreateAuthHash { label: "x".into() })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("password login"), "{e}");
    // Not valid for another user.
    let (_, r) = f
        .login("eve", Credential::AuthHash(auth_hash.clone()))
        .await;
    assert_eq!(code(&r.unwrap_err()), Some(ErrorCode::AuthFailed));
    // Revoked with the admin command while the server runs.
    let conn = db::open(f.dir.path()).unwrap();
    admin::auth_hash_revoke(&conn, auth_hash.split('.').next().unwrap()).unwrap();
    let (_, r) = f.login("bob", Credential::AuthHash(auth_hash)).await;
    let e = r.unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::AuthFailed));
    assert!(e.to_string().contains("revoked"), "{e}");
}

#[tokio::test]
async fn ping_and_malformed_or_out_of_order_messages() {
    let f = Fixture::start(|_| {}).await;
    let mut c = f.client().await;
    assert_eq!(c.request(&ClientMsg::Ping).await.unwrap(), ServerMsg::Pong);
    let e = c
        .request(&ClientMsg::Accept { session_id: 1 })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("register"), "{e}");
    let mut bob = f.bob().await;
    let e = bob
        .request(&ClientMsg::Register {
            uid: bob_device(),
            secret: DEV_SECRET.into(),
            application_type: 1,
            local_candidates: vec![],
            device_key: None,
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot register"), "{e}");
    assert_eq!(
        bob.request(&ClientMsg::Ping).await.unwrap(),
        ServerMsg::Pong
    );
}

/// A session granted and bound on the relay by both peers.
struct Established {
    id: u64,
    relay: SocketAddr,
    initiator: UdpSocket,
    target: UdpSocket,
    _control: (
        ControlClient,
        p2p_link::control_channel::ControlReadHalf<ServerMsg>,
    ),
}

async fn establish(f: &Fixture) -> Established {
    let target = f.target(bob_device(), DEV_SECRET, vec![]).await.unwrap();
    let (mut t_read, mut t_write) = target.into_split();
    let mut bob = f.bob().await;
    bob.send(&connect_msg(bob_device(), vec![])).await.unwrap();
    let ServerMsg::Incoming(t_grant) = t_read.recv().await.unwrap() else {
        panic!()
    };
    t_write
        .send(&ClientMsg::Accept {
            session_id: t_grant.session_id,
        })
        .await
        .unwrap();
    let ServerMsg::Session(i_grant) = recv(&mut bob).await else {
        panic!()
    };
    let relay = f.server.udp_addrs()[0];
    let initiator = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for (sock, role, grant) in [
        (&initiator, Role::Initiator, &i_grant),
        (&target, Role::Target, &t_grant),
    ] {
        send_bind(sock, role, grant, relay).await;
        udp_recv(sock).await;
    }
    Established {
        id: i_grant.session_id,
        relay,
        initiator,
        target,
        _control: (bob, t_read),
    }
}

#[tokio::test]
async fn random_datagrams_are_refused_and_relaying_goes_on() {
    let f = Fixture::start(|_| {}).await;
    let s = establish(&f).await;
    let attacker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..10_000u32 {
        let mut d = vec![0u8; 1 + (i as usize * 7919) % 1400];
        getrandom::getrandom(&mut d).unwrap();
        // Every 10th datagram looks like a session datagram of the live session from the wrong address.
        if i % 10 == 0 && d.len() >= 18 {
            d[0] = wire::VERSION;
            d[1] = Kind::Data(Role::Initiator).to_byte();
            d[2..10].copy_from_slice(&s.id.to_be_bytes());
        }
        for port in f.server.udp_addrs() {
            let _ = attacker.send_to(&d, port).await;
        }
        if i % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // The session still relays, and nothing from the attacker reached the target.
    let payload = data(s.id, Role::Initiator, 5, b"still here");
    let mut got = None;
    for _ in 0..20 {
        s.initiator.send_to(&payload, s.relay).await.unwrap();
        let mut buf = [0u8; 2048];
        match tokio::time::timeout(Duration::from_millis(200), s.target.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) if buf[..n] == payload[..] => {
                got = Some(());
                break;
            }
            Ok(Ok((n, _))) => panic!("unexpected datagram of {n} bytes reached the target"),
            _ => {}
        }
    }
    assert!(got.is_some(), "relaying stopped under the flood");
    let c = f.server.relay_stats().counters;
    assert!(
        c.garbage + c.unbound_source + c.unknown_session > 5_000,
        "{c:?}"
    );
}
