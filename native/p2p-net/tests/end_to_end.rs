//! The driver end to end in one process: a real `Target` and a real `Tunnel` talk through a minimal
//! in-test rendezvous server (control channel, brokering, relay), and TCP bytes go through the tunnel to
//! an echo service behind the target. The real `p2p-server` is tested by the system tests; this pins
//! down the driver's side of the contract without it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use p2p_config::{InitiatorConfig, TargetConfig};
use p2p_net::control_channel::{generate_server_keypair, ControlServerConn};
use p2p_net::{PathKind, Target, TargetState, Tunnel, TunnelState};
use p2p_proto::control::{ClientMsg, ServerMsg, SessionGrant};
use p2p_proto::wire::{self, Kind, RelayBind, Role};
use p2p_proto::{EncryptionMode, Uid};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

const UID: &str = "80:00:00:00:01:00:0A:C2";

/// What the fake server knows about the registered target.
#[derive(Default)]
struct Shared {
    target: Option<(mpsc::UnboundedSender<ServerMsg>, Vec<SocketAddr>)>,
    /// The key the target registered with: introduced to the initiator, as the real server does.
    device_key: Option<String>,
    accepts: HashMap<u64, oneshot::Sender<()>>,
}

struct FakeServer {
    control: String,
    key_b64: String,
}

/// Starts the fake server. With `punch` false it sends no candidates, so the session stays relayed.
async fn fake_server(punch: bool) -> FakeServer {
    let (private, public) = generate_server_keypair().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let control = listener.local_addr().unwrap().to_string();
    let relay = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    tokio::spawn(run_relay(relay));
    let shared = Arc::new(Mutex::new(Shared::default()));
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let shared = shared.clone();
            tokio::spawn(async move {
                if let Ok(conn) = ControlServerConn::accept(s, &private).await {
                    serve(conn, shared, relay_addr, punch).await;
                }
            });
        }
    });
    FakeServer {
        control,
        key_b64: base64::engine::general_purpose::STANDARD.encode(public),
    }
}

/// Forwards session datagrams by (session id, role) to the other peer's bound address.
async fn run_relay(socket: UdpSocket) {
    let mut bound: HashMap<(u64, Role), SocketAddr> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    while let Ok((n, from)) = socket.recv_from(&mut buf).await {
        let d = &buf[..n];
        match wire::peek_kind(d) {
            Ok(Kind::RelayBind) => {
                if let Ok(b) = RelayBind::decode(d) {
                    bound.insert((b.session_id, b.role), from);
                    let _ = socket
                        .send_to(&wire::encode_relay_bind_ack(b.session_id), from)
                        .await;
                }
            }
            Ok(Kind::Data(role))
            | Ok(Kind::DataPhase1(role))
            | Ok(Kind::Handshake(role))
            | Ok(Kind::PeerHandshake(role)) => {
                if let Some(id) = wire::peek_session_id(d) {
                    if let Some(dst) = bound.get(&(id, role.peer())) {
                        let _ = socket.send_to(d, *dst).await;
                    }
                }
            }
            _ => {}
        }
    }
}

async fn serve(
    mut conn: ControlServerConn,
    shared: Arc<Mutex<Shared>>,
    relay: SocketAddr,
    punch: bool,
) {
    match conn.recv().await {
        Ok(ClientMsg::Register {
            uid,
            local_candidates,
            device_key,
            ..
        }) => {
            shared.lock().unwrap().device_key = device_key;
            // Known before `Registered` is sent: the test connects as soon as the target says it
            // is registered, and a Connect arriving first found no target.
            let (tx, mut rx) = mpsc::unbounded_channel();
            shared.lock().unwrap().target = Some((tx.clone(), local_candidates));
            conn.send(&ServerMsg::Registered { uid }).await.unwrap();
            let (mut reader, mut writer) = conn.into_split();
            tokio::spawn(async move {
                while let Some(m) = rx.recv().await {
                    if writer.send(&m).await.is_err() {
                        break;
                    }
                }
            });
            while let Ok(m) = reader.recv().await {
                match m {
                    ClientMsg::Accept { session_id } => {
                        if let Some(a) = shared.lock().unwrap().accepts.remove(&session_id) {
                            let _ = a.send(());
                        }
                    }
                    ClientMsg::Ping => {
                        let _ = tx.send(ServerMsg::Pong);
                    }
                    _ => {}
                }
            }
        }
        Ok(ClientMsg::Login {
            user,
            initiator_key,
            ..
        }) => {
            conn.send(&ServerMsg::LoginOk { user: user.clone() })
                .await
                .unwrap();
            let Ok(ClientMsg::Connect {
                uid,
                mode,
                local_candidates,
            }) = conn.recv().await
            else {
                return;
            };
            let mut id = [0u8; 8];
            getrandom::getrandom(&mut id).unwrap();
            let session_id = u64::from_be_bytes(id);
            let grant = SessionGrant {
                session_id,
                uid,
                mode,
                session_secret: "5a".repeat(32),
                relay_token: "a5".repeat(16),
                relay_addr: relay,
                user,
                peer_key: initiator_key,
                relay_auth: false,
                key_phases: true,
            };
            let (accepted_tx, accepted) = oneshot::channel();
            let (target, target_candidates) = {
                let mut s = shared.lock().unwrap();
                s.accepts.insert(session_id, accepted_tx);
                s.target.clone().expect("no target registered")
            };
            target.send(ServerMsg::Incoming(grant.clone())).unwrap();
            tokio::time::timeout(Duration::from_secs(5), accepted)
                .await
                .unwrap()
                .unwrap();
            let device_key = shared.lock().unwrap().device_key.clone();
            let grant = SessionGrant {
                peer_key: device_key,
                relay_auth: false,
                key_phases: true,
                ..grant
            };
            conn.send(&ServerMsg::Session(grant)).await.unwrap();
            let (to_initiator, to_target) = if punch {
                (target_candidates, local_candidates)
            } else {
                (Vec::new(), Vec::new())
            };
            conn.send(&ServerMsg::Punch {
                session_id,
                candidates: to_initiator,
            })
            .await
            .unwrap();
            let _ = target.send(ServerMsg::Punch {
                session_id,
                candidates: to_target,
            });
            while let Ok(m) = conn.recv().await {
                if m == ClientMsg::Ping {
                    let _ = conn.send(&ServerMsg::Pong).await;
                }
            }
        }
        _ => {}
    }
}

/// A TCP echo service: echoes until end of file, then half-closes.
async fn echo_service() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// A target and a tunnel, with their device keys in `keys`.
async fn start_pair(punch: bool, mode: EncryptionMode) -> (Target, Tunnel, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let server = fake_server(punch).await;
    let service = echo_service().await;
    let uid: Uid = UID.parse().unwrap();
    let target = Target::start(TargetConfig {
        uid,
        secret: "device-secret".into(),
        server: Some(server.control.clone()),
        server_key: Some(server.key_b64.clone()),
        proxy_dest_ip: service.ip(),
        proxy_dest_port: service.port(),
        application_type: 1,
        device_key_file: Some(keys.path().join("device.key")),
        authorized_initiators: None,
    })
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(5), target.registered())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(target.status().state, TargetState::Registered);
    // The device's fingerprint, read on the device (as `connectd --fingerprint -f` prints it): an
    // end-to-end session does not take the server's word for an unknown device.
    let device_fingerprint = p2p_net::device_trust::load_key(&keys.path().join("device.key"))
        .unwrap()
        .public()
        .fingerprint()
        .to_string();
    let cfg: InitiatorConfig = serde_json::from_value(serde_json::json!({
        "device_id": UID,
        "user": "bob",
        "password": "pw",
        "server": server.control,
        "server_key": server.key_b64,
        "local_port": 0,
        "encryption": mode,
        "key_file": keys.path().join("initiator.key"),
        "device_key": device_fingerprint,
    }))
    .unwrap();
    let tunnel = Tunnel::start(cfg).await.unwrap();
    let mut w = tunnel.watch();
    let s = tokio::time::timeout(
        Duration::from_secs(10),
        w.wait_for(|s| s.state == TunnelState::Connected || s.state.is_final()),
    )
    .await
    .expect("tunnel did not connect in time")
    .unwrap()
    .clone();
    assert_eq!(s.state, TunnelState::Connected, "{s:?}");
    (target, tunnel, keys)
}

/// Sends `len` pseudo-random bytes through the tunnel, half-closes, and checks the echo.
async fn echo_through(local: SocketAddr, len: usize, seed: u8) {
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let s = TcpStream::connect(local).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::with_capacity(len);
    tokio::time::timeout(Duration::from_secs(30), r.read_to_end(&mut back))
        .await
        .expect("echo did not complete in time")
        .unwrap();
    writer.await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "echoed bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_flow_through_a_direct_session_with_half_close() {
    let (target, tunnel, _keys) = start_pair(true, EncryptionMode::ChaCha20Poly1305).await;
    echo_through(tunnel.local_addr(), 1 << 20, 1).await;
    // Punching on loopback succeeds at once: the session moves to the direct path (goal: within 3 s).
    let mut w = tunnel.watch();
    tokio::time::timeout(
        Duration::from_secs(3),
        w.wait_for(|s| s.path == Some(PathKind::Direct)),
    )
    .await
    .expect("the session did not move to the direct path within 3 s")
    .unwrap();
    // Several streams at once over the one session.
    let local = tunnel.local_addr();
    let streams: Vec<_> = (0..8u8)
        .map(|i| tokio::spawn(echo_through(local, 256 * 1024, i)))
        .collect();
    for s in streams {
        s.await.unwrap();
    }
    let st = tunnel.status();
    assert!(
        st.session_id.is_some() && st.local_udp_port.is_some(),
        "{st:?}"
    );
    // Mode 3 with keys on both sides ran end to end: the tunnel saw the device's own key.
    let device_key = p2p_net::device_trust::load_key(&_keys.path().join("device.key")).unwrap();
    assert_eq!(
        st.peer_fingerprint,
        Some(device_key.public().fingerprint().to_string())
    );
    assert_eq!(target.status().sessions_total, 1);
    tunnel.stop().await;
    assert_eq!(tunnel.status().state, TunnelState::Stopped);
    // The initiator's CLOSE reaches the target, which forgets the session.
    let mut tw = target.watch();
    tokio::time::timeout(
        Duration::from_secs(3),
        tw.wait_for(|s| s.sessions_open == 0),
    )
    .await
    .expect("the target did not see the session close")
    .unwrap();
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_candidates_the_session_runs_through_the_relay() {
    for mode in [
        EncryptionMode::None,
        EncryptionMode::Rc4,
        EncryptionMode::Xxtea,
    ] {
        let (target, tunnel, _keys) = start_pair(false, mode).await;
        echo_through(tunnel.local_addr(), 200 * 1024, 7).await;
        let st = tunnel.status();
        assert_eq!(st.path, Some(PathKind::Relayed), "{st:?}");
        assert_eq!(st.encryption, mode.name());
        assert_eq!(st.aead, None, "no AEAD outside mode 3");
        tunnel.stop().await;
        target.stop().await;
    }
}

/// The byte counters are fresh while the tunnel runs (at most `COUNTER_REFRESH` behind, read
/// straight from the session) and exact once it has stopped, even when the stop comes right after the
/// traffic, before any refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_counters_are_fresh_while_running_and_exact_after_stop() {
    const MIB: usize = 1 << 20;
    let (target, tunnel, _keys) = start_pair(true, EncryptionMode::ChaCha20Poly1305).await;
    echo_through(tunnel.local_addr(), 8 * MIB, 3).await;
    // The echo is back, so every byte was counted both ways: one refresh later the status shows it.
    tokio::time::sleep(p2p_net::status::COUNTER_REFRESH * 2).await;
    let st = tunnel.status();
    assert_eq!(
        (st.bytes_sent, st.bytes_received),
        (8 * MIB as u64, 8 * MIB as u64),
        "{st:?}"
    );
    // Both ends run on this machine, so they agree on the AEAD it runs fastest; the status JSON (C ABI,
    // PowerShell) names it.
    let aead = p2p_proto::crypto::Aead::fastest_here().name();
    assert_eq!(serde_json::to_value(&st).unwrap()["aead"], aead, "{st:?}");
    // More traffic, then stop at once: the final figures are the exact totals of both transfers.
    echo_through(tunnel.local_addr(), 3 * MIB + 12_345, 4).await;
    tunnel.stop().await;
    let st = tunnel.status();
    assert_eq!(st.state, TunnelState::Stopped);
    let total = (11 * MIB + 12_345) as u64;
    assert_eq!((st.bytes_sent, st.bytes_received), (total, total), "{st:?}");
    // The status watch (what connectd's status lines and watchers read) has them too.
    let watched = tunnel.watch().borrow().clone();
    assert_eq!(
        (watched.bytes_sent, watched.bytes_received),
        (total, total),
        "{watched:?}"
    );
    target.stop().await;
}
