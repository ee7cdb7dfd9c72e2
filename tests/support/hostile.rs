//! A hostile server for the end-to-end trust tests: the operator of the real `p2p-server` turned
//! against its users. It holds the server's private key (as that operator does), so clients reach it
//! as the server: it terminates their control channels, talks to the real server on their behalf,
//! and rewrites what the server says. Every grant names this relay, and punches (direct paths) are
//! withheld, so all session datagrams pass here on their way to the real relay.
//!
//! What it does to a session depends on the [`Attack`]:
//! - [`Attack::Watch`]: forwards faithfully.
//! - [`Attack::Inject`]: forwards faithfully and injects forged datagrams into the session (a
//!   replayed copy, a copy with one byte changed, and a datagram with the session's header and
//!   random contents, for each data datagram the initiator sends).
//! - [`Attack::SwapKeys`]: introduces each peer with a key of its own instead of the other's, and
//!   answers the initiator's handshake itself while running a handshake of its own with the target
//!   (a man in the middle who knows the session secret, the handshake's psk). The refused
//!   initiator's `RelayRelease` is withheld so the session stays open for the target's half.
//! - [`Attack::Impersonate`]: the same handshakes, with each peer introduced by its true key, as
//!   against a peer that would check the server's introduction rather than the handshake.
//! - [`Attack::StripKeys`]: forwards faithfully but introduces the peers without their keys, as an
//!   old server would (a downgrade to the legacy handshake, which the server can read, if accepted).
//!
//! It lives in the test harness rather than in the server (a cargo feature or a run option) so that no
//! build of the product can be switched into it: it uses only the public crates, and it is exactly
//! what someone with the server's key could write.
//!
//! Everything it handles (each control message as JSON, each datagram either way) is kept in
//! [`HostileServer::seen`], for a test to check that no plaintext ever reached the server.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use p2p_link::control_channel::{public_key_of, ControlConn};
use p2p_link::LinkError;
use p2p_proto::control::{ClientMsg, ServerMsg, SessionGrant};
use p2p_proto::crypto::{
    session_context, AeadOffer, ExpectedPeer, Fingerprint, PeerHandshake, PeerHandshakeParams,
    PeerStep, StaticKey, PEER_HANDSHAKE_RANDOM_LEN, SECRET_LEN,
};
use p2p_proto::wire::{self, Kind, Role, SessionHeader, SESSION_HEADER_LEN};
use tokio::net::{TcpListener, UdpSocket};
use tokio::runtime::Runtime;

/// What the hostile server does to the sessions it brokers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    /// Forward faithfully and only watch.
    Watch,
    /// Forward faithfully and inject forged datagrams into each session.
    Inject,
    /// Introduce each peer with the server's own key and run the handshake with each side.
    SwapKeys,
    /// Introduce each peer with its true key, and still run the handshake with each side under the
    /// server's own key (what a peer that checks only the server's introduction would accept).
    Impersonate,
    /// Introduce each peer without its key (grants without `peer_key`).
    StripKeys,
}

impl Attack {
    /// The server answers the initiator's handshake and runs one of its own with the target.
    fn runs_both_handshakes(self) -> bool {
        matches!(self, Attack::SwapKeys | Attack::Impersonate)
    }
}

/// What the attack achieved, as the hostile server sees it.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Handshakes the server answered as the target (msg2 with its own key sent to an initiator).
    pub answered_initiators: u64,
    /// Handshakes the server completed with a target as the initiator (the target proved its key).
    pub completed_with_targets: u64,
    /// Forged datagrams injected into sessions.
    pub injected: u64,
}

struct Grant {
    secret: [u8; SECRET_LEN],
    mode: p2p_proto::EncryptionMode,
}

/// One man-in-the-middle session: the server's handshake with each side.
struct Middle {
    facing_initiator: PeerHandshake,
    facing_target: PeerHandshake,
    /// The server's msg1 to the target, until sent.
    msg1_to_target: Option<Vec<u8>>,
    /// The target answered: msg1 is no longer repeated.
    done_with_target: bool,
}

struct Shared {
    attack: Mutex<Attack>,
    key: StaticKey,
    relay: SocketAddr,
    real_relay: SocketAddr,
    front: Arc<UdpSocket>,
    seen: Mutex<Vec<Vec<u8>>>,
    grants: Mutex<HashMap<u64, Grant>>,
    /// Each client's socket towards the real relay, by the client's address.
    clients: Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>,
    middles: Mutex<HashMap<u64, Middle>>,
    /// The last data datagram each initiator sent, replayed after the next one.
    last_data: Mutex<HashMap<SocketAddr, Vec<u8>>>,
    report: Mutex<Report>,
}

/// The hostile server; its tasks stop when it is dropped.
pub struct HostileServer {
    /// Where clients reach its control channel (give them this as the server's address).
    pub control: SocketAddr,
    shared: Arc<Shared>,
    _runtime: Runtime,
}

impl HostileServer {
    /// Starts in front of the lab's server (`server_dir` holds its `server.key`), with `attack`.
    pub fn start(server: &crate::server::Server, attack: Attack) -> HostileServer {
        let secret = server_secret(&server.data_dir);
        let public = public_key_of(&secret).expect("the server key is a valid X25519 key");
        let runtime = crate::control::runtime();
        let (listener, front) = runtime.block_on(async {
            (
                TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                    .await
                    .expect("bind control"),
                UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                    .await
                    .expect("bind relay"),
            )
        });
        let control = listener.local_addr().unwrap();
        let front = Arc::new(front);
        let shared = Arc::new(Shared {
            attack: Mutex::new(attack),
            key: StaticKey::from_secret_bytes(random()),
            relay: front.local_addr().unwrap(),
            real_relay: server.relay(),
            front: front.clone(),
            seen: Mutex::new(Vec::new()),
            grants: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            middles: Mutex::new(HashMap::new()),
            last_data: Mutex::new(HashMap::new()),
            report: Mutex::new(Report::default()),
        });
        let upstream = server.addrs.control.to_string();
        runtime.spawn(accept_control(
            listener,
            upstream,
            secret,
            public,
            shared.clone(),
        ));
        runtime.spawn(front_loop(shared.clone()));
        HostileServer {
            control,
            shared,
            _runtime: runtime,
        }
    }

    /// Changes the attack for the sessions from now on.
    pub fn set_attack(&self, attack: Attack) {
        *self.shared.attack.lock().unwrap() = attack;
    }

    /// The fingerprint of the key the server passes off as the peers'.
    pub fn fingerprint(&self) -> Fingerprint {
        self.shared.key.public().fingerprint()
    }

    /// The key the server passes off as the peers', in base64 (as `known_devices` holds keys).
    pub fn public_key(&self) -> String {
        self.shared.key.public().to_base64()
    }

    pub fn report(&self) -> Report {
        self.shared.report.lock().unwrap().clone()
    }

    /// Everything the server handled: control messages (JSON) and datagrams, both ways.
    pub fn seen(&self) -> Vec<Vec<u8>> {
        self.shared.seen.lock().unwrap().clone()
    }
}

/// A lab whose clients reach `attack`'s hostile server in front of the lab's real server.
pub fn hostile_lab(name: &str, attack: Attack) -> (crate::Lab, HostileServer) {
    let mut lab = crate::Lab::new(name);
    let hostile = HostileServer::start(&lab.server, attack);
    lab.server.put_in_front(hostile.control);
    (lab, hostile)
}

fn server_secret(data_dir: &std::path::Path) -> [u8; 32] {
    use base64::Engine;
    let text = std::fs::read_to_string(data_dir.join("server.key")).expect("read server.key");
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .expect("server.key is base64")
        .try_into()
        .expect("server.key holds 32 bytes")
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("OS random");
    b
}

impl Shared {
    fn record(&self, data: &[u8]) {
        self.seen.lock().unwrap().push(data.to_vec());
    }

    fn attack(&self) -> Attack {
        *self.attack.lock().unwrap()
    }

    /// A server message on its way to a client: grants name this relay (and, under `SwapKeys`, this
    /// server's key; under `StripKeys`, no key); punches are withheld so the session stays on this
    /// relay.
    fn rewrite(&self, msg: ServerMsg) -> Option<ServerMsg> {
        let rewrite_grant = |mut g: SessionGrant| {
            let secret = hex::decode(&g.session_secret)
                .ok()
                .and_then(|s| s.try_into().ok())
                .expect("a grant's session secret is 32 bytes of hex");
            self.grants.lock().unwrap().insert(
                g.session_id,
                Grant {
                    secret,
                    mode: g.mode,
                },
            );
            g.relay_addr = self.relay;
            match self.attack() {
                Attack::SwapKeys => g.peer_key = Some(self.key.public().to_base64()),
                Attack::StripKeys => g.peer_key = None,
                Attack::Watch | Attack::Inject | Attack::Impersonate => {}
            }
            g
        };
        match msg {
            ServerMsg::Session(g) => Some(ServerMsg::Session(rewrite_grant(g))),
            ServerMsg::Incoming(g) => Some(ServerMsg::Incoming(rewrite_grant(g))),
            ServerMsg::Punch { .. } => None,
            other => Some(other),
        }
    }

    fn params<'a>(
        &'a self,
        role: Role,
        grant: &'a Grant,
        context: &'a [u8],
        random: &'a [u8; PEER_HANDSHAKE_RANDOM_LEN],
    ) -> PeerHandshakeParams<'a> {
        PeerHandshakeParams {
            role,
            local: &self.key,
            expected_peer: ExpectedPeer::Any,
            session_secret: &grant.secret,
            session_context: context,
            offer: AeadOffer::this_machine(),
            random,
        }
    }
}

fn datagram(kind: Kind, session_id: u64, payload: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(SESSION_HEADER_LEN + payload.len());
    SessionHeader {
        kind,
        session_id,
        packet_number: 0,
    }
    .encode(&mut d);
    d.extend_from_slice(payload);
    d
}

async fn accept_control(
    listener: TcpListener,
    upstream: String,
    secret: [u8; 32],
    public: [u8; 32],
    shared: Arc<Shared>,
) {
    while let Ok((stream, _)) = listener.accept().await {
        let (upstream, shared) = (upstream.clone(), shared.clone());
        tokio::spawn(async move {
            let _ = proxy_control(stream, &upstream, &secret, &public, &shared).await;
        });
    }
}

/// One client's control channel: as the server towards the client, as a client towards the server.
async fn proxy_control(
    stream: tokio::net::TcpStream,
    upstream: &str,
    secret: &[u8; 32],
    public: &[u8; 32],
    shared: &Shared,
) -> Result<(), LinkError> {
    let client = ControlConn::<ClientMsg, ServerMsg>::accept(stream, secret).await?;
    let server =
        ControlConn::<ServerMsg, ClientMsg>::connect(upstream, public, Duration::from_secs(5))
            .await?;
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let up = async {
        while let Ok(msg) = from_client.recv().await {
            shared.record(&serde_json::to_vec(&msg).unwrap());
            if to_server.send(&msg).await.is_err() {
                break;
            }
        }
    };
    let down = async {
        while let Ok(msg) = from_server.recv().await {
            shared.record(&serde_json::to_vec(&msg).unwrap());
            if let Some(msg) = shared.rewrite(msg) {
                if to_client.send(&msg).await.is_err() {
                    break;
                }
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
    Ok(())
}

/// Datagrams from clients to this relay.
async fn front_loop(shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65536];
    while let Ok((n, from)) = shared.front.recv_from(&mut buf).await {
        let data = buf[..n].to_vec();
        shared.record(&data);
        let upstream = upstream_of(&shared, from).await;
        let kind = wire::peek_kind(&data).ok();
        match (shared.attack(), kind) {
            (attack, Some(Kind::PeerHandshake(Role::Initiator)))
                if attack.runs_both_handshakes() =>
            {
                answer_initiator(&shared, from, upstream, &data).await;
                continue;
            }
            // The refused initiator releases the session: kept open for the target's half.
            (attack, Some(Kind::RelayRelease | Kind::RelayReleaseAuth))
                if attack.runs_both_handshakes() =>
            {
                continue
            }
            (Attack::Inject, Some(Kind::Data(Role::Initiator))) => {
                let _ = upstream.send_to(&data, shared.real_relay).await;
                inject(&shared, from, &upstream, &data).await;
                continue;
            }
            _ => {}
        }
        let _ = upstream.send_to(&data, shared.real_relay).await;
    }
}

/// The socket that forwards `client`'s datagrams to the real relay (made on its first datagram, with
/// a task that forwards the relay's answers back).
async fn upstream_of(shared: &Arc<Shared>, client: SocketAddr) -> Arc<UdpSocket> {
    if let Some(socket) = shared.clients.lock().unwrap().get(&client) {
        return socket.clone();
    }
    let socket = Arc::new(
        UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind upstream"),
    );
    shared
        .clients
        .lock()
        .unwrap()
        .insert(client, socket.clone());
    tokio::spawn(upstream_loop(shared.clone(), client, socket.clone()));
    socket
}

/// Datagrams from the real relay to `client`.
async fn upstream_loop(shared: Arc<Shared>, client: SocketAddr, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 65536];
    while let Ok((n, _)) = socket.recv_from(&mut buf).await {
        let data = buf[..n].to_vec();
        shared.record(&data);
        let kind = wire::peek_kind(&data).ok();
        if shared.attack().runs_both_handshakes() && kind == Some(Kind::PeerHandshake(Role::Target))
        {
            // The target's msg2 answers the server's msg1: it never reaches the initiator.
            finish_with_target(&shared, &socket, &data).await;
            continue;
        }
        let _ = shared.front.send_to(&data, client).await;
    }
}

/// The initiator's msg1 (or msg3): answered with the server's own key, and the server's own msg1
/// goes to the target in its place.
async fn answer_initiator(
    shared: &Arc<Shared>,
    initiator: SocketAddr,
    upstream: Arc<UdpSocket>,
    data: &[u8],
) {
    let Ok((header, payload)) = SessionHeader::decode(data) else {
        return;
    };
    let id = header.session_id;
    let to_target = {
        let grants = shared.grants.lock().unwrap();
        let Some(grant) = grants.get(&id) else {
            return;
        };
        let mut middles = shared.middles.lock().unwrap();
        let context = session_context(id, grant.mode);
        let middle = middles.entry(id).or_insert_with(|| {
            let facing_initiator =
                PeerHandshake::target(shared.params(Role::Target, grant, &context, &random()));
            let (facing_target, msg1) = PeerHandshake::initiator(shared.params(
                Role::Initiator,
                grant,
                &context,
                &random(),
            ));
            Middle {
                facing_initiator,
                facing_target,
                msg1_to_target: Some(msg1),
                done_with_target: false,
            }
        });
        if let Ok(PeerStep::Send(msg2)) = middle.facing_initiator.receive(payload) {
            let answer = datagram(Kind::PeerHandshake(Role::Target), id, &msg2);
            shared.record(&answer);
            // Counted before it is sent: the initiator refuses it and exits within milliseconds,
            // and a test reading the report after that exit must find it counted.
            shared.report.lock().unwrap().answered_initiators += 1;
            let _ = shared.front.try_send_to(&answer, initiator);
        }
        middle.msg1_to_target.take()
    };
    if let Some(msg1) = to_target {
        let d = datagram(Kind::PeerHandshake(Role::Initiator), id, &msg1);
        tokio::spawn(repeat_msg1(shared.clone(), upstream, id, d));
    }
}

/// The server's msg1 to the target, repeated (the target may not have bound yet, and the refused
/// initiator repeats nothing) until the target answers or 5 s have passed.
async fn repeat_msg1(shared: Arc<Shared>, upstream: Arc<UdpSocket>, id: u64, msg1: Vec<u8>) {
    for _ in 0..50 {
        let answered = shared
            .middles
            .lock()
            .unwrap()
            .get(&id)
            .is_some_and(|m| m.done_with_target);
        if answered {
            return;
        }
        shared.record(&msg1);
        let _ = upstream.send_to(&msg1, shared.real_relay).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The target's msg2 to the server's handshake: completes it and sends msg3.
async fn finish_with_target(shared: &Shared, upstream: &UdpSocket, data: &[u8]) {
    let Ok((header, payload)) = SessionHeader::decode(data) else {
        return;
    };
    let msg3 = {
        let mut middles = shared.middles.lock().unwrap();
        let Some(middle) = middles.get_mut(&header.session_id) else {
            return;
        };
        match middle.facing_target.receive(payload) {
            Ok(PeerStep::Established {
                send: Some(msg3), ..
            }) => {
                middle.done_with_target = true;
                shared.report.lock().unwrap().completed_with_targets += 1;
                msg3
            }
            _ => return,
        }
    };
    let d = datagram(
        Kind::PeerHandshake(Role::Initiator),
        header.session_id,
        &msg3,
    );
    // Sent three times: nothing of the server's follows it that would make the target ask again.
    for _ in 0..3 {
        shared.record(&d);
        let _ = upstream.send_to(&d, shared.real_relay).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Forged datagrams after each data datagram of the initiator: the previous one again (a replay),
/// this one with a byte changed, and one of the same size with random contents under its header.
async fn inject(shared: &Shared, initiator: SocketAddr, upstream: &UdpSocket, data: &[u8]) {
    let replay = shared
        .last_data
        .lock()
        .unwrap()
        .insert(initiator, data.to_vec());
    let mut altered = data.to_vec();
    let last = altered.len() - 1;
    altered[last] ^= 0x01;
    let mut random_body = data[..SESSION_HEADER_LEN].to_vec();
    random_body.extend((SESSION_HEADER_LEN..data.len()).map(|_| random::<1>()[0]));
    let forged = [replay, Some(altered), Some(random_body)];
    for d in forged.iter().flatten() {
        let _ = upstream.send_to(d, shared.real_relay).await;
        shared.report.lock().unwrap().injected += 1;
    }
}
