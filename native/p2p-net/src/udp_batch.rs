//! Batched UDP I/O for the endpoint: many datagrams per system call.
//!
//! One `sendto`/`recvfrom` per 1400-byte datagram was the largest single cost of a bulk transfer
//! (about 17% of the CPU in the p2p-bench profile, plus the wake-ups around it). quinn-udp gives the
//! OS's batching behind one API: on Linux, UDP GSO for sending (one `sendmsg` carries up to 64
//! equal-size datagrams to one destination) and GRO or `recvmmsg` for receiving; on Windows, USO and
//! URO; elsewhere one datagram per call, as before. The wire does not change: the kernel (or the
//! NIC) splits a batch back into the same datagrams.
//!
//! Batching is an optimisation, never a requirement: when the OS refuses quinn-udp's socket set-up
//! (wine, older Windows network stacks, unusual kernels), or `P2P_UDP_BATCHING=off` asks for it, the
//! socket sends and receives one datagram per system call with plain `send_to`/`recv_from`, and says
//! so in one log line.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Receive buffers per call, each large enough for one coalesced (GRO) batch.
const RECV_BUFFERS: usize = 8;
const RECV_BUFFER_BYTES: usize = 64 * 1024;
/// Never build a send batch beyond this, whatever the OS allows (64 KiB is GSO's own limit).
const MAX_BATCH_BYTES: usize = 64 * 1024 - 1024;

/// The environment variable that turns batching off (`off`, `0`, `false` or `no`).
pub const BATCHING_ENV: &str = "P2P_UDP_BATCHING";

/// A UDP socket with the OS's batching state, or without it.
pub struct UdpIo {
    socket: UdpSocket,
    /// Where the socket is bound: an IPv6 one is dual-stack and needs IPv4 destinations mapped.
    local: SocketAddr,
    /// `None`: one datagram per system call.
    state: Option<UdpSocketState>,
}

impl UdpIo {
    /// Wraps `socket`, with batching when the OS allows it and it is not turned off.
    pub fn new(socket: UdpSocket) -> io::Result<Self> {
        let state = if batching_turned_off(std::env::var(BATCHING_ENV).ok().as_deref()) {
            log::info!(
                "UDP batching off ({BATCHING_ENV}): one datagram per system call on {}",
                describe(&socket)
            );
            None
        } else {
            match UdpSocketState::new(UdpSockRef::from(&socket)) {
                Ok(state) => {
                    crate::udp_socket::allow_fragmentation(&socket);
                    Some(state)
                }
                Err(e) => {
                    log::info!(
                        "UDP batching unavailable on {} ({e}): one datagram per system call",
                        describe(&socket)
                    );
                    None
                }
            }
        };
        let local = socket.local_addr()?;
        Ok(UdpIo {
            socket,
            local,
            state,
        })
    }

    /// Whether sends and receives go through the OS's batching.
    #[cfg(test)]
    pub fn is_batched(&self) -> bool {
        self.state.is_some()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Sends one datagram at once, or not at all when the socket's buffer is full (for packets that are
    /// repeated anyway, like relay binds).
    pub fn try_send_to(&self, datagram: &[u8], dest: SocketAddr) -> io::Result<usize> {
        let dest = p2p_link::udp_socket::to_socket_family(self.local, dest);
        self.socket.try_send_to(datagram, dest)
    }

    /// Waits for datagrams and reads as many as one call gives into `batch`.
    pub async fn recv(&self, batch: &mut RecvBatch) -> io::Result<()> {
        loop {
            self.socket.readable().await?;
            match self.try_recv(batch) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }

    /// Reads what is queued without waiting (`WouldBlock` when nothing is).
    pub fn try_recv(&self, batch: &mut RecvBatch) -> io::Result<()> {
        batch.count = 0;
        let Some(state) = &self.state else {
            return self.try_recv_plain(batch);
        };
        let RecvBatch { bufs, meta, count } = batch;
        let mut slices: Vec<IoSliceMut<'_>> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        *count = self.socket.try_io(Interest::READABLE, || {
            state.recv(UdpSockRef::from(&self.socket), &mut slices, meta)
        })?;
        Ok(())
    }

    /// Without batching: one `recv_from` per datagram, as many as are queued and fit the batch.
    fn try_recv_plain(&self, batch: &mut RecvBatch) -> io::Result<()> {
        let RecvBatch { bufs, meta, count } = batch;
        for (buf, meta) in bufs.iter_mut().zip(meta.iter_mut()) {
            match self.socket.try_recv_from(buf) {
                Ok((len, addr)) => {
                    *meta = RecvMeta {
                        addr,
                        len,
                        stride: len,
                        ecn: None,
                        dst_ip: None,
                    };
                    *count += 1;
                }
                // Something read already: hand that over; the error (if lasting) comes back next call.
                Err(_) if *count > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends the datagrams gathered in `batch` (one system call where the OS allows) and empties it.
    /// A failure other than a full socket buffer loses the datagrams, as a network would; the
    /// session's loss recovery repeats them.
    pub async fn send(&self, batch: &mut SendBatch) {
        let Some(destination) = batch.destination else {
            return;
        };
        let destination = p2p_link::udp_socket::to_socket_family(self.local, destination);
        let transmit = Transmit {
            destination,
            ecn: None,
            contents: &batch.bytes[..batch.committed],
            segment_size: (batch.count > 1).then_some(batch.segment),
            src_ip: None,
        };
        loop {
            let sent = match &self.state {
                Some(state) => self.socket.try_io(Interest::WRITABLE, || {
                    state.try_send(UdpSockRef::from(&self.socket), &transmit)
                }),
                // max_batch() is 1 without batching: the batch is one datagram.
                None => self
                    .socket
                    .try_send_to(transmit.contents, destination)
                    .map(drop),
            };
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.socket.writable().await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    log::debug!("udp send to {destination} failed: {e}");
                    break;
                }
                Ok(()) => break,
            }
        }
        batch.clear();
    }

    /// How many datagrams one send may carry.
    pub fn max_batch(&self) -> usize {
        self.state
            .as_ref()
            .map_or(1, |s| s.max_gso_segments().max(1))
    }
}

/// `P2P_UDP_BATCHING=off` (or 0, false, no; any case) turns batching off.
fn batching_turned_off(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        ["off", "0", "false", "no"]
            .iter()
            .any(|off| v.trim().eq_ignore_ascii_case(off))
    })
}

fn describe(socket: &UdpSocket) -> String {
    socket
        .local_addr()
        .map_or_else(|_| "a UDP socket".to_string(), |a| format!("UDP {a}"))
}

/// Datagrams read by one receive call.
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
    count: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: (0..RECV_BUFFERS)
                .map(|_| vec![0; RECV_BUFFER_BYTES])
                .collect(),
            meta: vec![RecvMeta::default(); RECV_BUFFERS],
            count: 0,
        }
    }
}

impl RecvBatch {
    /// Each datagram with its sender: a coalesced buffer is split at its stride.
    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.meta[..self.count]
            .iter()
            .zip(&self.bufs)
            .flat_map(|(meta, buf)| {
                let stride = meta.stride.max(1);
                // A dual-stack socket shows IPv4 senders as IPv4-mapped: compare them as IPv4.
                let from = p2p_link::udp_socket::canonical(meta.addr);
                buf[..meta.len].chunks(stride).map(move |d| (from, d))
            })
    }
}

/// Datagrams to one destination, all of one size except possibly a shorter last one: the shape one
/// segmented send can carry.
///
/// A datagram can be written straight onto the end of the batch ([`SendBatch::buffer`]) and then
/// taken in ([`SendBatch::commit`]): the session seals its packets there, with no copy. One that
/// does not fit the shape stays behind the batch until the batch is sent, and then starts the next.
pub struct SendBatch {
    /// The batched datagrams (`..committed`), then possibly one written but not yet taken in.
    bytes: Vec<u8>,
    committed: usize,
    destination: Option<SocketAddr>,
    segment: usize,
    count: usize,
    /// A shorter datagram ended the batch.
    sealed: bool,
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch {
            bytes: Vec::with_capacity(MAX_BATCH_BYTES),
            committed: 0,
            destination: None,
            segment: 0,
            count: 0,
            sealed: false,
        }
    }
}

impl SendBatch {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Where the next datagram is written: appended to this buffer, after the batched ones.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// The datagram written onto [`buffer`](Self::buffer) and not taken in yet.
    pub fn written(&self) -> &[u8] {
        &self.bytes[self.committed..]
    }

    /// Drops the datagram written onto [`buffer`](Self::buffer) and not taken in.
    pub fn discard_written(&mut self) {
        self.bytes.truncate(self.committed);
    }

    /// Takes in the datagram written onto [`buffer`](Self::buffer) if it fits the batch's shape
    /// and `max` datagrams; false when the batch must be sent first (the datagram then waits and
    /// becomes the first of the next batch).
    pub fn commit(&mut self, destination: SocketAddr, max: usize) -> bool {
        let len = self.bytes.len() - self.committed;
        if self.count > 0 {
            let fits = self.destination == Some(destination)
                && !self.sealed
                && len <= self.segment
                && self.count < max
                && self.bytes.len() <= MAX_BATCH_BYTES;
            if !fits {
                return false;
            }
            self.sealed = len < self.segment;
        } else {
            self.destination = Some(destination);
            self.segment = len;
        }
        self.committed = self.bytes.len();
        self.count += 1;
        true
    }

    /// Adds a copy of `datagram` if it fits the batch's shape and `max` datagrams; false (and
    /// nothing added) when the batch must be sent first.
    #[cfg(test)]
    pub fn push(&mut self, destination: SocketAddr, datagram: &[u8], max: usize) -> bool {
        self.bytes.extend_from_slice(datagram);
        let taken = self.commit(destination, max);
        if !taken {
            self.discard_written();
        }
        taken
    }

    /// Forgets the sent datagrams; one written but not taken in moves to the front.
    fn clear(&mut self) {
        self.bytes.drain(..self.committed);
        self.committed = 0;
        self.destination = None;
        self.count = 0;
        self.sealed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    // The option is read back with getsockopt, which socket2 does not offer for it.
    #[allow(unsafe_code)]
    async fn batching_sockets_still_let_the_os_fragment() {
        let io = UdpIo::new(crate::udp_socket::bind(addr(0)).unwrap()).unwrap();
        use std::os::fd::AsRawFd;
        let mut value: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a valid descriptor and an int-sized out value.
        let rc = unsafe {
            libc::getsockopt(
                io.socket().as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                &mut value as *mut libc::c_int as *mut libc::c_void,
                &mut len,
            )
        };
        assert_eq!((rc, value), (0, libc::IP_PMTUDISC_WANT));
    }

    #[test]
    fn a_batch_takes_equal_datagrams_to_one_destination_and_one_shorter_last() {
        let mut b = SendBatch::default();
        assert!(b.push(addr(1), &[1; 100], 8));
        assert!(b.push(addr(1), &[2; 100], 8));
        assert!(!b.push(addr(2), &[3; 100], 8), "other destination");
        assert!(!b.push(addr(1), &[3; 101], 8), "longer than the segment");
        assert!(b.push(addr(1), &[4; 40], 8), "a shorter last one");
        assert!(!b.push(addr(1), &[5; 40], 8), "nothing after a shorter one");
        assert_eq!((b.count, b.bytes.len()), (3, 240));
    }

    #[tokio::test]
    async fn a_datagram_written_in_place_that_does_not_fit_starts_the_next_batch() {
        let a = UdpIo::new(crate::udp_socket::bind(addr(0)).unwrap()).unwrap();
        let b = UdpIo::new(crate::udp_socket::bind(addr(0)).unwrap()).unwrap();
        let to = b.socket().local_addr().unwrap();
        let mut batch = SendBatch::default();
        batch.buffer().extend_from_slice(&[1; 100]);
        assert!(batch.commit(to, 8));
        batch.buffer().extend_from_slice(&[9; 50]);
        batch.discard_written();
        batch.buffer().extend_from_slice(&[2; 120]);
        assert!(!batch.commit(to, 8), "longer than the segment");
        a.send(&mut batch).await;
        assert!(
            batch.commit(to, 8),
            "the waiting datagram starts the next batch"
        );
        a.send(&mut batch).await;
        let mut got = Vec::new();
        let mut rb = RecvBatch::default();
        while got.len() < 2 {
            tokio::time::timeout(std::time::Duration::from_secs(5), b.recv(&mut rb))
                .await
                .expect("datagrams arrive")
                .unwrap();
            got.extend(rb.datagrams().map(|(_, d)| d.to_vec()));
        }
        assert_eq!(got, vec![vec![1; 100], vec![2; 120]]);
    }

    #[test]
    fn a_batch_stops_at_the_os_limit() {
        let mut b = SendBatch::default();
        assert!(b.push(addr(1), &[0; 10], 2));
        assert!(b.push(addr(1), &[0; 10], 2));
        assert!(!b.push(addr(1), &[0; 10], 2));
    }

    #[test]
    fn batching_is_turned_off_only_by_an_off_value() {
        for off in ["off", "OFF", "0", "false", " no "] {
            assert!(batching_turned_off(Some(off)), "{off}");
        }
        for on in [None, Some("on"), Some("1"), Some(""), Some("yes")] {
            assert!(!batching_turned_off(on), "{on:?}");
        }
    }

    fn plain(socket: UdpSocket) -> UdpIo {
        UdpIo {
            local: socket.local_addr().unwrap(),
            socket,
            state: None,
        }
    }

    #[tokio::test]
    async fn batches_arrive_as_the_datagrams_they_were_made_of() {
        let a = UdpIo::new(crate::udp_socket::bind(addr(0)).unwrap()).unwrap();
        let b = UdpIo::new(crate::udp_socket::bind(addr(0)).unwrap()).unwrap();
        round_trip(&a, &b).await;
    }

    /// The fallback (as under wine, where quinn-udp's set-up fails) carries the same datagrams, both
    /// ways round with a batching peer.
    #[tokio::test]
    async fn without_batching_the_same_datagrams_arrive() {
        let a = plain(crate::udp_socket::bind(addr(0)).unwrap());
        let b = UdpIo::new(crate::udp_socket::bind(addr(0)).unwrap()).unwrap();
        assert_eq!(a.max_batch(), 1);
        assert!(!a.is_batched());
        round_trip(&a, &b).await;
        round_trip(&b, &a).await;
        let c = plain(crate::udp_socket::bind(addr(0)).unwrap());
        round_trip(&a, &c).await;
    }

    async fn round_trip(a: &UdpIo, b: &UdpIo) {
        let to = b.socket().local_addr().unwrap();
        let mut batch = SendBatch::default();
        let mut sent = Vec::new();
        for i in 0..20u8 {
            let d = if i == 19 { vec![i; 300] } else { vec![i; 1400] };
            if !batch.push(to, &d, a.max_batch()) {
                a.send(&mut batch).await;
                assert!(batch.push(to, &d, a.max_batch()));
            }
            sent.push(d);
        }
        a.send(&mut batch).await;
        let from = a.socket().local_addr().unwrap();
        let mut got = Vec::new();
        let mut rb = RecvBatch::default();
        while got.len() < sent.len() {
            tokio::time::timeout(std::time::Duration::from_secs(5), b.recv(&mut rb))
                .await
                .expect("datagrams arrive")
                .unwrap();
            for (src, d) in rb.datagrams() {
                assert_eq!(src, from);
                got.push(d.to_vec());
            }
        }
        assert_eq!(got, sent);
    }
}
