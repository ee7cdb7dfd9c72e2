//! A user-space UDP impairment relay: put in front of the server's relay (`P2P_RELAY_OVERRIDE`), it
//! forwards each peer's datagrams from a socket of its own and adds a fixed delay and random loss.
//!
//! Every datagram between the two peers crosses it twice (peer A -> relay, relay -> peer B), so a
//! round trip is four crossings: each crossing is delayed by a quarter of the RTT asked for. Loss is
//! applied on the peer -> relay crossing only, so each one-way path loses exactly the fraction set.
//! The delay is the same for every datagram, so a FIFO delay line per direction keeps the order.
//!
//! Optionally the peer -> relay crossing is also a bottleneck: a rate in bytes per second and a
//! queue in bytes (a router's buffer), tail-dropping what does not fit. Both peers' datagrams
//! share it, as two tunnels share a home uplink; the relay -> peer crossing only delays.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub struct Impair {
    pub addr: SocketAddr,
    /// Loss in parts per million, changeable while running.
    loss_ppm: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

/// A rate limit with a queue in front of it.
#[derive(Debug, Clone, Copy)]
pub struct Bottleneck {
    pub bytes_per_second: f64,
    pub queue_bytes: usize,
}

impl Bottleneck {
    /// When a datagram of `len` bytes arriving `now` has been served, or `None` when the queue
    /// is full. `busy_until`: when everything queued before it has been served.
    fn serve(&self, busy_until: &mut Instant, now: Instant, len: usize) -> Option<Instant> {
        let queued = busy_until.saturating_duration_since(now);
        if queued.as_secs_f64() * self.bytes_per_second > self.queue_bytes as f64 {
            return None;
        }
        let done =
            (*busy_until).max(now) + Duration::from_secs_f64(len as f64 / self.bytes_per_second);
        *busy_until = done;
        Some(done)
    }
}

impl Impair {
    pub async fn start(upstream: SocketAddr, rtt: Duration) -> std::io::Result<Impair> {
        Impair::start_limited(upstream, rtt, None).await
    }

    /// With `bottleneck` on the peer -> relay crossing.
    pub async fn start_limited(
        upstream: SocketAddr,
        rtt: Duration,
        bottleneck: Option<Bottleneck>,
    ) -> std::io::Result<Impair> {
        let front = Arc::new(p2p_net::udp_socket::bind(([127, 0, 0, 1], 0).into())?);
        let addr = front.local_addr()?;
        let loss_ppm = Arc::new(AtomicU32::new(0));
        let task = tokio::spawn(run(front, upstream, rtt / 4, bottleneck, loss_ppm.clone()));
        Ok(Impair {
            addr,
            loss_ppm,
            task,
        })
    }

    pub fn set_loss(&self, fraction: f64) {
        self.loss_ppm
            .store((fraction * 1e6).round() as u32, Ordering::Relaxed);
    }
}

impl Drop for Impair {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A datagram waiting in the delay line.
struct Delayed {
    due: Instant,
    data: Vec<u8>,
    socket: Arc<UdpSocket>,
    to: SocketAddr,
}

async fn run(
    front: Arc<UdpSocket>,
    upstream: SocketAddr,
    leg: Duration,
    bottleneck: Option<Bottleneck>,
    loss_ppm: Arc<AtomicU32>,
) {
    // One delay line each way: a datagram held in the bottleneck's queue must not hold back
    // those going the other way.
    let (line, queue) = mpsc::unbounded_channel::<Delayed>();
    let sender = tokio::spawn(deliver(queue));
    let (back_line, back_queue) = mpsc::unbounded_channel::<Delayed>();
    let back_sender = tokio::spawn(deliver(back_queue));
    let mut busy_until = Instant::now();
    let mut peers: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut rng = XorShift::seeded();
    let mut buf = vec![0u8; 65536];
    while let Ok((n, from)) = front.recv_from(&mut buf).await {
        let up = match peers.get(&from) {
            Some(s) => s.clone(),
            None => match p2p_net::udp_socket::bind(([127, 0, 0, 1], 0).into()) {
                Ok(s) => {
                    let s = Arc::new(s);
                    peers.insert(from, s.clone());
                    tokio::spawn(back(s.clone(), front.clone(), from, leg, back_line.clone()));
                    s
                }
                Err(e) => {
                    eprintln!("impairment relay: cannot open a socket: {e}");
                    continue;
                }
            },
        };
        if rng.below_ppm(loss_ppm.load(Ordering::Relaxed)) {
            continue;
        }
        let now = Instant::now();
        let served = match &bottleneck {
            Some(b) => match b.serve(&mut busy_until, now, n) {
                Some(t) => t,
                None => continue,
            },
            None => now,
        };
        let _ = line.send(Delayed {
            due: served + leg,
            data: buf[..n].to_vec(),
            socket: up,
            to: upstream,
        });
    }
    sender.abort();
    back_sender.abort();
}

/// Relay -> peer: what the relay sends to this peer's socket goes back to the peer, delayed.
async fn back(
    up: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    peer: SocketAddr,
    leg: Duration,
    line: mpsc::UnboundedSender<Delayed>,
) {
    let mut buf = vec![0u8; 65536];
    while let Ok((n, _)) = up.recv_from(&mut buf).await {
        let d = Delayed {
            due: Instant::now() + leg,
            data: buf[..n].to_vec(),
            socket: front.clone(),
            to: peer,
        };
        if line.send(d).is_err() {
            break;
        }
    }
}

async fn deliver(mut queue: mpsc::UnboundedReceiver<Delayed>) {
    while let Some(d) = queue.recv().await {
        // Sleep only when the datagram is not due yet: a timer, even an expired one, completes on
        // the next 1 ms tick, which would cap the relay at about one datagram per millisecond.
        if d.due > Instant::now() {
            tokio::time::sleep_until(d.due).await;
        }
        let _ = d.socket.send_to(&d.data, d.to).await;
    }
}

/// Loss decisions need no cryptographic randomness, only independence from the traffic.
struct XorShift(u64);

impl XorShift {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64);
        XorShift(nanos | 1)
    }

    fn below_ppm(&mut self, ppm: u32) -> bool {
        if ppm == 0 {
            return false;
        }
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 1_000_000) < u64::from(ppm)
    }
}
