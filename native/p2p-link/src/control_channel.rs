//! The control channel (see `docs/PROTOCOL.md`, "Control channel"): Noise `NK` over TCP.
//!
//! The client pins the server's static X25519 public key, so nobody in the path can read credentials or
//! session secrets, and a client talking to the wrong server (or a man in the middle) fails the handshake
//! instead of leaking anything. On the wire each frame is a 2-byte big-endian length and one Noise message;
//! after the handshake each Noise message carries exactly one JSON object (`p2p_proto::control`).
//!
//! Both ends are here: [`ControlClient`] for initiators and targets, [`ControlServerConn`] for `p2p-server`.
//! Either can be split into a read half and a write half ([`ControlReadHalf`], [`ControlWriteHalf`]) so a
//! long-lived connection can be read in one task and written from another.
//!
//! Every type takes the error its methods return as a parameter `E` (by default [`LinkError`]): a side
//! that wants its own error type names it once (`ControlConn<ServerMsg, ClientMsg, p2p_net::Error>`) and
//! gets every failure mapped through its `From<LinkError>`.
//!
//! Limits: one message is at most [`MAX_MESSAGE`] bytes of JSON (a Noise message is at most 65535 bytes,
//! and a message is never split over several frames), the handshake must finish within
//! [`HANDSHAKE_TIMEOUT`], and anything malformed is an error, never a panic.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use p2p_proto::control::{ClientMsg, ServerMsg, MAX_FRAME, NOISE_PATTERN};
use serde::de::DeserializeOwned;
use serde::Serialize;
use snow::{HandshakeState, StatelessTransportState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::error::{LinkError, Peer, Side};

type Result<T, E = LinkError> = std::result::Result<T, E>;

/// The whole Noise handshake (both messages) must finish within this time, on both ends, so a silent
/// or slow peer cannot hold a connection (and, on the server, a connection slot) forever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Size of the ChaChaPoly tag every transport message carries.
const TAG_LEN: usize = 16;

/// Largest JSON message that fits in one frame.
pub const MAX_MESSAGE: usize = MAX_FRAME - TAG_LEN;

/// Read granularity: small enough to keep the buffer bounded, big enough for typical messages at once.
const READ_CHUNK: usize = 8 * 1024;

fn closed(peer: Peer) -> LinkError {
    LinkError::Closed { peer }
}

fn io_failed(peer: Peer) -> impl FnOnce(std::io::Error) -> LinkError {
    move |source| LinkError::Io { peer, source }
}

fn noise_error(e: snow::Error) -> LinkError {
    LinkError::Crypto(format!("noise: {e}"))
}

fn noise_params() -> Result<snow::params::NoiseParams> {
    NOISE_PATTERN
        .parse()
        .map_err(|e| LinkError::Crypto(format!("noise pattern: {e:?}")))
}

/// Derives the public key of a control-channel static private key (X25519): what clients pin.
pub fn public_key_of(private_key: &[u8; 32]) -> Result<[u8; 32]> {
    // snow's own X25519 (the default resolver), so the key printed is exactly the one the handshake uses.
    use snow::resolvers::{CryptoResolver, DefaultResolver};
    let mut dh = DefaultResolver
        .resolve_dh(&snow::params::DHChoice::Curve25519)
        .ok_or_else(|| LinkError::Crypto("X25519 unavailable".into()))?;
    dh.set(private_key);
    <[u8; 32]>::try_from(dh.pubkey())
        .map_err(|_| LinkError::Crypto("unexpected X25519 public key length".into()))
}

/// Generates a fresh static key pair for a server: `(private, public)`.
pub fn generate_server_keypair() -> Result<([u8; 32], [u8; 32])> {
    let kp = snow::Builder::new(noise_params()?)
        .generate_keypair()
        .map_err(|e| LinkError::Crypto(format!("key generation failed: {e}")))?;
    let mut private = [0u8; 32];
    let mut public = [0u8; 32];
    if kp.private.len() != 32 || kp.public.len() != 32 {
        return Err(LinkError::Crypto("unexpected key length".into()));
    }
    private.copy_from_slice(&kp.private);
    public.copy_from_slice(&kp.public);
    Ok((private, public))
}

/// Reads one frame (length + body) during the handshake, before the buffered reader exists.
/// `Ok(None)` is a clean end of stream.
async fn read_handshake_frame(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body).await?;
    Ok(Some(body))
}

async fn write_frame<W: AsyncWriteExt + Unpin>(w: &mut W, body: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(body.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut frame = Vec::with_capacity(2 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    // One write per frame: no small-packet interleaving, and Nagle does not delay the second half.
    w.write_all(&frame).await?;
    w.flush().await
}

/// One end of a control connection after a successful handshake: `In` is what the peer sends, `Out`
/// what we send, `E` the error its methods return. Used as [`ControlClient`] or [`ControlServerConn`].
pub struct ControlConn<In, Out, E = LinkError> {
    reader: ControlReadHalf<In, E>,
    writer: ControlWriteHalf<Out, E>,
}

/// A client's control connection to the server (another error type: `ControlConn<ServerMsg, ClientMsg, E>`).
pub type ControlClient = ControlConn<ServerMsg, ClientMsg>;

/// The server's end of one control connection.
pub type ControlServerConn = ControlConn<ClientMsg, ServerMsg>;

impl<In, Out, E> fmt::Debug for ControlConn<In, Out, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, peer) = match self.reader.peer.side {
            Side::Client => ("ControlClient", "server"),
            Side::Server => ("ControlServerConn", "client"),
        };
        f.debug_struct(name)
            .field(peer, &self.reader.peer.addr)
            .finish_non_exhaustive()
    }
}

impl<In: DeserializeOwned, Out: Serialize, E: From<LinkError>> ControlConn<In, Out, E> {
    /// Wraps a stream whose handshake has finished.
    fn new(stream: TcpStream, state: StatelessTransportState, peer: Peer) -> Self {
        let (reader, writer) = split(stream, state, peer);
        ControlConn { reader, writer }
    }

    /// Sends one message. Not cancel-safe: dropping the future midway may leave half a frame on the wire,
    /// after which the connection is unusable.
    pub async fn send(&mut self, msg: &Out) -> Result<(), E> {
        self.writer.send(msg).await
    }

    /// Receives one message. Cancel-safe (see [`ControlReadHalf::recv`]).
    pub async fn recv(&mut self) -> Result<In, E> {
        self.reader.recv().await
    }

    /// Splits the connection so one task can read (e.g. a target waiting for `Incoming`) while another writes.
    pub fn into_split(self) -> (ControlReadHalf<In, E>, ControlWriteHalf<Out, E>) {
        (self.reader, self.writer)
    }
}

impl<E: From<LinkError>> ControlConn<ServerMsg, ClientMsg, E> {
    /// Connects to `server` (`host:port`, resolved here; every address is tried in turn) and runs the
    /// Noise handshake against the pinned `server_key`.
    ///
    /// `timeout` bounds the TCP connection; the handshake is bounded by [`HANDSHAKE_TIMEOUT`] on top.
    /// Errors: [`LinkError::Unreachable`] when no address answers (the message names the address),
    /// [`LinkError::KeyMismatch`] when the server does not hold the private half of `server_key`.
    pub async fn connect(
        server: &str,
        server_key: &[u8; 32],
        timeout: Duration,
    ) -> Result<Self, E> {
        Self::connect_with(server, server_key, timeout, HANDSHAKE_TIMEOUT)
            .await
            .map_err(E::from)
    }

    async fn connect_with(
        server: &str,
        server_key: &[u8; 32],
        timeout: Duration,
        handshake_timeout: Duration,
    ) -> Result<Self> {
        let unreachable = |why: String| LinkError::Unreachable {
            server: server.to_string(),
            why,
        };
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(server)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer within {} ms",
                    timeout.as_millis()
                )))
            }
        };
        Self::handshake_within(stream, server_key, handshake_timeout).await
    }

    /// Runs the Noise handshake against the pinned `server_key` on a TCP connection the caller opened
    /// (e.g. from a chosen source address), within [`HANDSHAKE_TIMEOUT`].
    pub async fn handshake_over(stream: TcpStream, server_key: &[u8; 32]) -> Result<Self, E> {
        Self::handshake_within(stream, server_key, HANDSHAKE_TIMEOUT)
            .await
            .map_err(E::from)
    }

    async fn handshake_within(
        stream: TcpStream,
        server_key: &[u8; 32],
        handshake_timeout: Duration,
    ) -> Result<Self> {
        let (stream, state, peer) =
            handshake(stream, Side::Client, server_key, handshake_timeout).await?;
        Ok(Self::new(stream, state, peer))
    }

    /// The server's address this connection reached.
    pub fn server_addr(&self) -> SocketAddr {
        self.reader.peer.addr
    }

    /// Sends `msg` and waits for the next message, turning `ServerMsg::Error` into
    /// [`LinkError::Refused`]. Only for strict request/answer exchanges (login, connect): on a target
    /// connection an unrelated `Incoming` could arrive in between.
    pub async fn request(&mut self, msg: &ClientMsg) -> Result<ServerMsg, E> {
        self.send(msg).await?;
        match self.recv().await? {
            ServerMsg::Error { code, message } => {
                Err(E::from(LinkError::Refused { code, message }))
            }
            other => Ok(other),
        }
    }
}

/// How often an otherwise idle control connection sends a `Ping`: keeps NAT and firewall state for the
/// TCP connection alive, and makes a dead connection show up as a write error.
pub const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);

/// Hands every message the server sends (but `Pong`) to the returned channel, from a background task
/// that also owns the write half and sends a `Ping` every [`KEEPALIVE_EVERY`], so the connection stays
/// open for as long as the receiver lives.
///
/// The channel closes (`recv` gives `None`) when the connection fails or the server closes it; dropping
/// the receiver ends the task and closes the connection.
pub fn spawn_reader<E>(
    client: ControlConn<ServerMsg, ClientMsg, E>,
) -> tokio::sync::mpsc::UnboundedReceiver<ServerMsg>
where
    E: From<LinkError> + fmt::Display + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (mut reader, mut writer) = client.into_split();
    tokio::spawn(async move {
        let mut keepalive = tokio::time::interval_at(
            tokio::time::Instant::now() + KEEPALIVE_EVERY,
            KEEPALIVE_EVERY,
        );
        loop {
            tokio::select! {
                msg = reader.recv() => match msg {
                    Ok(ServerMsg::Pong) => {}
                    Ok(msg) => {
                        if tx.send(msg).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        log::debug!("control connection ended: {e}");
                        break;
                    }
                },
                _ = keepalive.tick() => {
                    if let Err(e) = writer.send(&ClientMsg::Ping).await {
                        log::debug!("control keepalive failed: {e}");
                        break;
                    }
                }
                _ = tx.closed() => break,
            }
        }
        writer.shutdown().await;
    });
    rx
}

async fn client_handshake(
    stream: &mut TcpStream,
    server_key: &[u8; 32],
    peer: Peer,
) -> Result<StatelessTransportState> {
    let mut hs: HandshakeState = snow::Builder::new(noise_params()?)
        .remote_public_key(server_key)
        .map_err(noise_error)?
        .build_initiator()
        .map_err(noise_error)?;
    // -> e, es (empty payload, but authenticated under the pinned key: a wrong key fails on the server).
    send_handshake_message(stream, &mut hs, peer).await?;
    // <- e, ee. The server answers a handshake it cannot decrypt with an empty frame, then closes;
    // a close without that frame means the same in practice (it could not read our first message).
    let key_mismatch = LinkError::KeyMismatch { peer };
    let reply = match read_handshake_frame(stream).await {
        Ok(Some(body)) if !body.is_empty() => body,
        Ok(_) => return Err(key_mismatch),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(key_mismatch),
        Err(e) => return Err(io_failed(peer)(e)),
    };
    let mut payload = vec![0u8; MAX_FRAME];
    if hs.read_message(&reply, &mut payload).is_err() {
        return Err(key_mismatch);
    }
    hs.into_stateless_transport_mode().map_err(noise_error)
}

impl<E: From<LinkError>> ControlConn<ClientMsg, ServerMsg, E> {
    /// Runs the responder side of the handshake on an accepted stream, within [`HANDSHAKE_TIMEOUT`].
    /// A client that pinned another key gets an empty frame (so it can report the key mismatch rather
    /// than a vague disconnect) and the connection is closed.
    pub async fn accept(stream: TcpStream, static_private_key: &[u8; 32]) -> Result<Self, E> {
        Self::accept_link(stream, static_private_key)
            .await
            .map_err(E::from)
    }

    async fn accept_link(stream: TcpStream, static_private_key: &[u8; 32]) -> Result<Self> {
        let (stream, state, peer) =
            handshake(stream, Side::Server, static_private_key, HANDSHAKE_TIMEOUT).await?;
        Ok(Self::new(stream, state, peer))
    }

    /// The client's address (as seen by the server).
    pub fn peer_addr(&self) -> SocketAddr {
        self.reader.peer.addr
    }

    /// Our local address of this connection: the address the client reached us at.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.reader.io.local_addr().ok()
    }
}

async fn server_handshake(
    stream: &mut TcpStream,
    static_private_key: &[u8; 32],
    peer: Peer,
) -> Result<StatelessTransportState> {
    let mut hs: HandshakeState = snow::Builder::new(noise_params()?)
        .local_private_key(static_private_key)
        .map_err(noise_error)?
        .build_responder()
        .map_err(noise_error)?;
    let first = match read_handshake_frame(stream).await {
        Ok(Some(body)) => body,
        Ok(None) => return Err(closed(peer)),
        Err(e) => return Err(io_failed(peer)(e)),
    };
    let mut payload = vec![0u8; MAX_FRAME];
    if hs.read_message(&first, &mut payload).is_err() {
        // Tell the client its pinned key is wrong (best effort; an attacker learns nothing from it).
        let _ = write_frame(stream, &[]).await;
        let _ = stream.shutdown().await;
        return Err(LinkError::KeyMismatch { peer });
    }
    // <- e, ee: our answer, which completes the handshake.
    send_handshake_message(stream, &mut hs, peer).await?;
    hs.into_stateless_transport_mode().map_err(noise_error)
}

/// Writes our next handshake message (with an empty payload) as one frame.
async fn send_handshake_message(
    stream: &mut TcpStream,
    hs: &mut HandshakeState,
    peer: Peer,
) -> Result<()> {
    let mut buf = vec![0u8; MAX_FRAME];
    let n = hs.write_message(&[], &mut buf).map_err(noise_error)?;
    write_frame(stream, &buf[..n])
        .await
        .map_err(io_failed(peer))
}

/// Runs our side's handshake on `stream` within `limit`: `key` is the server's public key (client) or
/// its private key (server).
async fn handshake(
    mut stream: TcpStream,
    side: Side,
    key: &[u8; 32],
    limit: Duration,
) -> Result<(TcpStream, StatelessTransportState, Peer)> {
    // Control messages are small and interactive.
    let _ = stream.set_nodelay(true);
    let addr = stream
        .peer_addr()
        .map_err(|source| LinkError::NoPeerAddr { side, source })?;
    let peer = Peer { side, addr };
    let run = async {
        match side {
            Side::Client => client_handshake(&mut stream, key, peer).await,
            Side::Server => server_handshake(&mut stream, key, peer).await,
        }
    };
    let state = tokio::time::timeout(limit, run)
        .await
        .unwrap_or(Err(LinkError::Timeout { peer, limit }))?;
    Ok((stream, state, peer))
}

fn split<R, W, E>(
    stream: TcpStream,
    state: StatelessTransportState,
    peer: Peer,
) -> (ControlReadHalf<R, E>, ControlWriteHalf<W, E>) {
    let (r, w) = stream.into_split();
    // Stateless transport: each half keeps its own nonce, so the halves need no lock between them.
    let state = Arc::new(state);
    (
        ControlReadHalf {
            io: r,
            state: state.clone(),
            nonce: 0,
            buf: Vec::with_capacity(READ_CHUNK),
            broken: false,
            peer,
            _msg: PhantomData,
        },
        ControlWriteHalf {
            io: w,
            state,
            nonce: 0,
            broken: false,
            peer,
            _msg: PhantomData,
        },
    )
}

/// The receiving half of a control connection; `M` is the message type the peer sends, `E` the error
/// `recv` returns.
pub struct ControlReadHalf<M, E = LinkError> {
    io: OwnedReadHalf,
    state: Arc<StatelessTransportState>,
    nonce: u64,
    /// Bytes read but not yet consumed: at most one frame plus one read chunk.
    buf: Vec<u8>,
    /// After an authentication failure the nonces are out of step: refuse to go on.
    broken: bool,
    peer: Peer,
    _msg: PhantomData<fn() -> (M, E)>,
}

impl<M, E> fmt::Debug for ControlReadHalf<M, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ControlReadHalf({})", self.peer)
    }
}

impl<M: DeserializeOwned, E: From<LinkError>> ControlReadHalf<M, E> {
    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer.addr
    }

    /// Receives one message.
    ///
    /// Cancel-safe: bytes read so far stay in this half's buffer, so using `recv` in `tokio::select!`
    /// and dropping it loses nothing. A message that is not valid JSON of the expected type is
    /// [`LinkError::Malformed`]; the connection stays usable after it (the frame was authenticated and
    /// consumed).
    pub async fn recv(&mut self) -> Result<M, E> {
        self.recv_link().await.map_err(E::from)
    }

    async fn recv_link(&mut self) -> Result<M> {
        if self.broken {
            return Err(LinkError::Unusable { peer: self.peer });
        }
        loop {
            if let Some(frame_end) = self.complete_frame() {
                let plain = self.open(frame_end);
                self.buf.drain(..frame_end);
                let plain = plain?;
                return serde_json::from_slice::<M>(&plain).map_err(|source| {
                    LinkError::Malformed {
                        peer: self.peer,
                        source,
                    }
                });
            }
            let mut chunk = [0u8; READ_CHUNK];
            // `read` is cancel-safe: if this future is dropped, no data was consumed.
            let n = match self.io.read(&mut chunk).await {
                Ok(0) => {
                    self.broken = true;
                    return Err(closed(self.peer));
                }
                Ok(n) => n,
                Err(e) => {
                    self.broken = true;
                    return Err(io_failed(self.peer)(e));
                }
            };
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// End offset of the first frame if it is complete in the buffer.
    fn complete_frame(&self) -> Option<usize> {
        let len = self.buf.get(..2)?;
        let end = 2 + usize::from(u16::from_be_bytes([len[0], len[1]]));
        (self.buf.len() >= end).then_some(end)
    }

    fn open(&mut self, frame_end: usize) -> Result<Vec<u8>> {
        let body = &self.buf[2..frame_end];
        let mut plain = vec![0u8; body.len()];
        match self.state.read_message(self.nonce, body, &mut plain) {
            Ok(n) => {
                self.nonce += 1;
                plain.truncate(n);
                Ok(plain)
            }
            Err(_) => {
                self.broken = true;
                Err(LinkError::Unauthenticated { peer: self.peer })
            }
        }
    }
}

/// The sending half of a control connection; `M` is the message type we send, `E` the error `send`
/// returns.
pub struct ControlWriteHalf<M, E = LinkError> {
    io: OwnedWriteHalf,
    state: Arc<StatelessTransportState>,
    nonce: u64,
    broken: bool,
    peer: Peer,
    _msg: PhantomData<fn(M) -> E>,
}

impl<M, E> fmt::Debug for ControlWriteHalf<M, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ControlWriteHalf({})", self.peer)
    }
}

impl<M: Serialize, E: From<LinkError>> ControlWriteHalf<M, E> {
    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer.addr
    }

    /// Sends one message. Not cancel-safe: a send dropped midway may leave half a frame on the wire;
    /// the connection is then unusable (the peer will fail to authenticate the next frame).
    /// A message larger than [`MAX_MESSAGE`] is refused with [`LinkError::TooLarge`] before anything
    /// is written.
    pub async fn send(&mut self, msg: &M) -> Result<(), E> {
        self.send_link(msg).await.map_err(E::from)
    }

    async fn send_link(&mut self, msg: &M) -> Result<()> {
        if self.broken {
            return Err(LinkError::Unusable { peer: self.peer });
        }
        let json = serde_json::to_vec(msg).map_err(LinkError::Encode)?;
        if json.len() > MAX_MESSAGE {
            return Err(LinkError::TooLarge { len: json.len() });
        }
        let mut sealed = vec![0u8; json.len() + TAG_LEN];
        let n = self
            .state
            .write_message(self.nonce, &json, &mut sealed)
            .map_err(noise_error)?;
        self.nonce += 1;
        // Mark broken until the write completes: if this future is dropped midway, the stream is torn.
        self.broken = true;
        write_frame(&mut self.io, &sealed[..n])
            .await
            .map_err(io_failed(self.peer))?;
        self.broken = false;
        Ok(())
    }

    /// Closes our sending direction (the peer's `recv` then reports a closed connection).
    pub async fn shutdown(&mut self) {
        let _ = self.io.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_proto::control::{Credential, ErrorCode};
    use tokio::net::TcpListener;

    async fn listener() -> (TcpListener, String) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap().to_string();
        (l, a)
    }

    #[tokio::test]
    async fn round_trip_both_ways_and_split() {
        let (private, public) = generate_server_keypair().unwrap();
        assert_eq!(public_key_of(&private).unwrap(), public);
        let (l, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut conn = ControlServerConn::accept(s, &private).await.unwrap();
            for _ in 0..3 {
                match conn.recv().await.unwrap() {
                    ClientMsg::Ping => conn.send(&ServerMsg::Pong).await.unwrap(),
                    other => panic!("unexpected {other:?}"),
                }
            }
            conn.send(&ServerMsg::Error {
                code: ErrorCode::BadUser,
                message: "unknown user 'x'".into(),
            })
            .await
            .unwrap();
        });
        let mut c = ControlClient::connect(&addr, &public, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(c.request(&ClientMsg::Ping).await.unwrap(), ServerMsg::Pong);
        let (mut r, mut w) = c.into_split();
        w.send(&ClientMsg::Ping).await.unwrap();
        w.send(&ClientMsg::Ping).await.unwrap();
        assert_eq!(r.recv().await.unwrap(), ServerMsg::Pong);
        assert_eq!(r.recv().await.unwrap(), ServerMsg::Pong);
        assert!(matches!(r.recv().await.unwrap(), ServerMsg::Error { .. }));
        server.await.unwrap();
        let e = r.recv().await.unwrap_err();
        assert!(matches!(e, LinkError::Closed { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!("server {addr} closed the control connection")
        );
    }

    #[tokio::test]
    async fn wrong_pinned_key_is_a_key_mismatch() {
        let (private, _) = generate_server_keypair().unwrap();
        let (_, other_public) = generate_server_keypair().unwrap();
        let (l, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            ControlServerConn::accept(s, &private).await.unwrap_err()
        });
        let e = ControlClient::connect(&addr, &other_public, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(e, LinkError::KeyMismatch { .. }), "{e}");
        assert!(e
            .to_string()
            .contains("server key does not match the pinned key"));
        let e = server.await.unwrap();
        assert!(matches!(e, LinkError::KeyMismatch { .. }), "{e}");
        assert!(e.to_string().contains("pinned another server key"), "{e}");
    }

    #[tokio::test]
    async fn unreachable_server_names_the_address() {
        // Bind then drop to get a port nobody listens on.
        let addr = {
            let (_l, a) = listener().await;
            a
        };
        let e = ControlClient::connect(&addr, &[1; 32], Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(e, LinkError::Unreachable { .. }), "{e}");
        assert!(e.to_string().contains(&addr), "{e}");
    }

    #[tokio::test]
    async fn silent_server_times_out_the_handshake() {
        let (l, addr) = listener().await;
        let _keep = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(s);
        });
        let e = ControlClient::connect_with(
            &addr,
            &[1; 32],
            Duration::from_secs(2),
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, LinkError::Timeout { .. }), "{e}");
        assert!(e.to_string().ends_with("within 200 ms"), "{e}");
    }

    #[tokio::test]
    async fn malformed_json_is_an_error_and_the_connection_survives() {
        let (private, public) = generate_server_keypair().unwrap();
        let (l, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut conn = ControlServerConn::accept(s, &private).await.unwrap();
            let e = conn.recv().await.unwrap_err();
            assert!(matches!(e, LinkError::Malformed { .. }), "{e}");
            assert!(
                e.to_string().starts_with("malformed control message"),
                "{e}"
            );
            assert_eq!(conn.recv().await.unwrap(), ClientMsg::Ping);
        });
        let c = ControlClient::connect(&addr, &public, Duration::from_secs(2))
            .await
            .unwrap();
        let (_r, w) = c.into_split();
        // Reuse the authenticated writer with a message type the server does not expect.
        let mut raw: ControlWriteHalf<serde_json::Value> = ControlWriteHalf {
            io: w.io,
            state: w.state,
            nonce: w.nonce,
            broken: false,
            peer: w.peer,
            _msg: PhantomData,
        };
        raw.send(&serde_json::json!({"type": "no_such_message"}))
            .await
            .unwrap();
        raw.send(&serde_json::json!({"type": "ping"}))
            .await
            .unwrap();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn oversized_message_is_refused_before_sending() {
        let (private, public) = generate_server_keypair().unwrap();
        let (l, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut conn = ControlServerConn::accept(s, &private).await.unwrap();
            conn.recv().await
        });
        let mut c = ControlClient::connect(&addr, &public, Duration::from_secs(2))
            .await
            .unwrap();
        let big = ClientMsg::Login {
            user: "u".repeat(MAX_MESSAGE),
            credential: Credential::Password("p".into()),
            initiator_key: None,
        };
        let e = c.send(&big).await.unwrap_err();
        assert!(matches!(e, LinkError::TooLarge { .. }), "{e}");
        c.send(&ClientMsg::Ping).await.unwrap();
        assert_eq!(server.await.unwrap().unwrap(), ClientMsg::Ping);
    }

    #[tokio::test]
    async fn garbage_instead_of_a_handshake_is_rejected() {
        let (private, _) = generate_server_keypair().unwrap();
        let (l, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            ControlServerConn::accept(s, &private).await
        });
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"\x00\x05hello").await.unwrap();
        assert!(server.await.unwrap().is_err());
    }
    #[tokio::test]
    async fn spawned_reader_forwards_messages_and_closes_with_the_connection() {
        let (private, public) = generate_server_keypair().unwrap();
        let (l, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut conn = ControlServerConn::accept(s, &private).await.unwrap();
            conn.send(&ServerMsg::Pong).await.unwrap();
            conn.send(&ServerMsg::LoginOk { user: "u".into() })
                .await
                .unwrap();
            // Dropping the connection closes the client's channel.
        });
        let c = ControlClient::connect(&addr, &public, Duration::from_secs(2))
            .await
            .unwrap();
        let mut rx = spawn_reader(c);
        // Pong is swallowed: only the login answer arrives.
        assert_eq!(
            rx.recv().await,
            Some(ServerMsg::LoginOk { user: "u".into() })
        );
        server.await.unwrap();
        let end = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap();
        assert_eq!(end, None);
    }
}
