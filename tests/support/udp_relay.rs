//! A user-space UDP relay put between the peers and the server's relay port (through the driver's
//! `P2P_RELAY_OVERRIDE`): it forwards each client's datagrams from a socket of its own (as a NAT would),
//! and can impair them (loss, reordering, duplication, delay, from a fixed seed) and record them (so a
//! test can check that no plaintext crosses the wire).

use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::data::Rng;

/// What happens to each datagram, each way.
#[derive(Clone, Copy, Debug)]
pub struct Impairment {
    /// Probability of dropping a datagram.
    pub loss: f64,
    /// Probability of holding a datagram back by `reorder_delay` so that later ones overtake it.
    pub reorder: f64,
    pub reorder_delay: Duration,
    /// Probability of sending a datagram twice.
    pub duplicate: f64,
    /// One-way delay added to every datagram.
    pub delay: Duration,
    pub seed: u64,
}

impl Impairment {
    pub fn none() -> Self {
        Impairment {
            loss: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            duplicate: 0.0,
            delay: Duration::ZERO,
            seed: 1,
        }
    }

    /// The lossy path: 5% loss, reordering, duplication, 20 ms delay.
    pub fn lossy() -> Self {
        Impairment {
            loss: 0.05,
            reorder: 0.05,
            reorder_delay: Duration::from_millis(10),
            duplicate: 0.02,
            delay: Duration::from_millis(20),
            seed: 0x5EED_2024,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct RelayStats {
    pub received: u64,
    pub forwarded: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

/// A datagram waiting for its time.
struct Pending {
    due: Instant,
    seq: u64,
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    data: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    // BinaryHeap is a max-heap: the earliest due comes out first.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.due, o.seq).cmp(&(self.due, self.seq))
    }
}

struct Shared {
    upstream: SocketAddr,
    imp: Impairment,
    rng: Mutex<Rng>,
    queue: Mutex<BinaryHeap<Pending>>,
    queued: Condvar,
    seq: AtomicU64,
    stop: AtomicBool,
    stats: Mutex<RelayStats>,
    /// Recorded datagrams (both directions), when capturing.
    capture: Option<Mutex<Vec<Vec<u8>>>>,
    /// Per-client upstream sockets, by client address.
    clients: Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The relay; its threads stop when it is dropped.
pub struct UdpRelay {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

const POLL: Duration = Duration::from_millis(100);
/// Keep at most this much captured traffic (a bulk transfer would otherwise fill memory).
const CAPTURE_LIMIT: usize = 256 << 20;

impl UdpRelay {
    /// A relay on 127.0.0.1:0 in front of `upstream` (the server's relay port).
    pub fn start(upstream: SocketAddr, imp: Impairment, capture: bool) -> UdpRelay {
        let front = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind relay"));
        front.set_read_timeout(Some(POLL)).unwrap();
        let addr = front.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream,
            imp,
            rng: Mutex::new(Rng::new(imp.seed)),
            queue: Mutex::new(BinaryHeap::new()),
            queued: Condvar::new(),
            seq: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            stats: Mutex::new(RelayStats::default()),
            capture: capture.then(|| Mutex::new(Vec::new())),
            clients: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
        });
        let sender = {
            let s = shared.clone();
            std::thread::spawn(move || send_loop(&s))
        };
        let front_loop = {
            let s = shared.clone();
            std::thread::spawn(move || front_loop(&s, front))
        };
        shared.threads.lock().unwrap().extend([sender, front_loop]);
        UdpRelay { addr, shared }
    }

    /// The address clients send to (give it as `P2P_RELAY_OVERRIDE`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> RelayStats {
        *self.shared.stats.lock().unwrap()
    }

    fn capture(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.shared
            .capture
            .as_ref()
            .expect("relay started without capture")
            .lock()
            .unwrap()
    }

    /// True when any recorded datagram contains `needle`.
    pub fn captured_contains(&self, needle: &[u8]) -> bool {
        self.capture()
            .iter()
            .any(|d| crate::data::contains(d, needle))
    }

    /// Number and total size of recorded datagrams.
    pub fn captured_size(&self) -> (usize, usize) {
        let c = self.capture();
        (c.len(), c.iter().map(Vec::len).sum())
    }

    /// The recorded datagrams (both ways) of the given kind, as an on-path attacker would keep them.
    pub fn captured_of_kind(&self, kind: p2p_proto::wire::Kind) -> Vec<Vec<u8>> {
        self.capture()
            .iter()
            .filter(|d| p2p_proto::wire::peek_kind(d) == Ok(kind))
            .cloned()
            .collect()
    }
}

fn front_loop(s: &Arc<Shared>, front: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 65536];
    while !s.stop.load(Ordering::Relaxed) {
        let (n, from) = match front.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue,
        };
        let up = upstream_for(s, from, &front);
        s.schedule(&up, s.upstream, &buf[..n]);
    }
}

/// The socket that carries `client`'s datagrams upstream, created (with its reader) on first use.
fn upstream_for(
    shared: &Arc<Shared>,
    client: SocketAddr,
    front: &Arc<UdpSocket>,
) -> Arc<UdpSocket> {
    let mut clients = shared.clients.lock().unwrap();
    if let Some(s) = clients.get(&client) {
        return s.clone();
    }
    let up = Arc::new(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind relay upstream"));
    up.set_read_timeout(Some(POLL)).unwrap();
    clients.insert(client, up.clone());
    let (s, u, f) = (shared.clone(), up.clone(), front.clone());
    let t = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while !s.stop.load(Ordering::Relaxed) {
            match u.recv_from(&mut buf) {
                // Only the real relay's answers go back, as through a firewall in front of it.
                Ok((n, from)) if from == s.upstream => s.schedule(&f, client, &buf[..n]),
                _ => {}
            }
        }
    });
    shared.threads.lock().unwrap().push(t);
    up
}

impl Shared {
    fn schedule(&self, socket: &Arc<UdpSocket>, to: SocketAddr, data: &[u8]) {
        if let Some(cap) = &self.capture {
            let mut c = cap.lock().unwrap();
            if c.iter().map(Vec::len).sum::<usize>() < CAPTURE_LIMIT {
                c.push(data.to_vec());
            }
        }
        let (drop, dup, reorder) = {
            let mut rng = self.rng.lock().unwrap();
            (
                rng.unit() < self.imp.loss,
                rng.unit() < self.imp.duplicate,
                rng.unit() < self.imp.reorder,
            )
        };
        {
            let mut st = self.stats.lock().unwrap();
            st.received += 1;
            if drop {
                st.dropped += 1;
                return;
            }
            st.duplicated += u64::from(dup);
            st.reordered += u64::from(reorder);
        }
        let mut due = Instant::now() + self.imp.delay;
        if reorder {
            due += self.imp.reorder_delay;
        }
        let mut q = self.queue.lock().unwrap();
        for copy in 0..if dup { 2 } else { 1 } {
            q.push(Pending {
                due: due + Duration::from_micros(copy * 200),
                seq: self.seq.fetch_add(1, Ordering::Relaxed),
                socket: socket.clone(),
                to,
                data: data.to_vec(),
            });
        }
        self.queued.notify_one();
    }
}

fn send_loop(s: &Shared) {
    let mut q = s.queue.lock().unwrap();
    while !s.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        match q.peek() {
            Some(p) if p.due <= now => {
                let p = q.pop().unwrap();
                drop(q);
                if p.socket.send_to(&p.data, p.to).is_ok() {
                    s.stats.lock().unwrap().forwarded += 1;
                }
                q = s.queue.lock().unwrap();
            }
            Some(p) => {
                let wait = p.due - now;
                q = s.queued.wait_timeout(q, wait.min(POLL)).unwrap().0;
            }
            None => q = s.queued.wait_timeout(q, POLL).unwrap().0,
        }
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.queued.notify_all();
        // Every thread polls `stop` at least every POLL.
        let threads: Vec<_> = self.shared.threads.lock().unwrap().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

/// What the flood's datagrams look like.
#[derive(Clone, Copy, Debug)]
pub enum Garbage {
    /// Random bytes.
    Random,
    /// A plausible header (version 1, a session kind) with a random session id.
    OtherSessions,
    /// The live session's id with the data kinds (0x10 | role), random packet number and payload.
    SessionData(u64),
    /// The live session's id with the handshake kinds (0x12 | role).
    SessionHandshake(u64),
}

/// Fires `count` datagrams of kind `garbage` at 127.0.0.1:`port` from a fresh socket. Returns how many
/// were sent.
pub fn flood(port: u16, count: usize, garbage: Garbage, seed: u64) -> usize {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind flood socket");
    let mut rng = Rng::new(seed);
    let mut sent = 0;
    for i in 0..count {
        let len = 18 + rng.below(1400) as usize;
        let mut d = rng.bytes(len);
        let role = (i % 2) as u8;
        let session = match garbage {
            Garbage::Random => None,
            Garbage::OtherSessions => Some((0x10 + 2 * (i % 2) as u8 + role, rng.next_u64())),
            Garbage::SessionData(id) => Some((0x10 | role, id)),
            Garbage::SessionHandshake(id) => Some((0x12 | role, id)),
        };
        if let Some((kind, id)) = session {
            d[0] = 1;
            d[1] = kind;
            d[2..10].copy_from_slice(&id.to_be_bytes());
        }
        if sock.send_to(&d, (Ipv4Addr::LOCALHOST, port)).is_ok() {
            sent += 1;
        }
        // Pace a little so the kernel does not just drop most of them from a full receive buffer.
        if i % 200 == 199 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    sent
}
