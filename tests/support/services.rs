//! Local services for the target to forward to, in-process on std::net: a tiny HTTP server with known
//! bytes, and a transfer service that echoes, sinks (answers with the SHA-256 of what it received) or
//! sources (sends a seeded pseudo-random stream) so both ends can check every byte.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::data::{hex, read_to_end_hashed, write_stream, Rng};

/// Accepts on 127.0.0.1:0 in a thread and hands each connection to `handle` in its own thread; stops
/// accepting on drop.
struct Acceptor {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    fn start(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> Acceptor {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind service");
        let addr = listener.local_addr().expect("service addr");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Arc::new(handle);
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let h = handle.clone();
                        std::thread::spawn(move || h(s));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Acceptor {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An HTTP/1.1 server answering every GET with the same known body.
pub struct HttpServer {
    acceptor: Acceptor,
    pub body: Arc<Vec<u8>>,
    requests: Arc<AtomicU64>,
}

impl HttpServer {
    pub fn start(body: Vec<u8>) -> HttpServer {
        let body = Arc::new(body);
        let requests = Arc::new(AtomicU64::new(0));
        let (b, r) = (body.clone(), requests.clone());
        let acceptor = Acceptor::start(move |s| serve_http(s, &b, &r));
        HttpServer {
            acceptor,
            body,
            requests,
        }
    }

    /// A body of `len` bytes of readable text with a marker phrase on every line, so a capture can be
    /// searched for plaintext.
    pub fn with_marker_body(marker: &str, len: usize) -> HttpServer {
        let mut body = Vec::with_capacity(len + 80);
        let mut n = 0u64;
        while body.len() < len {
            body.extend_from_slice(format!("{marker} line {n:06}\n").as_bytes());
            n += 1;
        }
        body.truncate(len);
        HttpServer::start(body)
    }

    pub fn port(&self) -> u16 {
        self.acceptor.addr.port()
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

fn serve_http(mut s: TcpStream, body: &[u8], requests: &AtomicU64) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !crate::data::contains(&head, b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    requests.fetch_add(1, Ordering::Relaxed);
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s
        .write_all(reply.as_bytes())
        .and_then(|_| s.write_all(body))
        .and_then(|_| s.flush());
    let _ = s.shutdown(Shutdown::Write);
    // Drain until the client closes, so the close is orderly (no reset racing the last bytes).
    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
}

/// What a transfer connection asks of the [`TransferService`] (its first byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Everything sent comes back; the service half-closes after the client does.
    Echo,
    /// The service reads to the end and answers with the length (8 bytes BE) and SHA-256.
    Upload,
    /// The service sends `len` bytes of the seeded stream and closes.
    Download,
}

/// The transfer service: echo, sink with checksum, or seeded source (see [`Kind`]).
pub struct TransferService {
    acceptor: Acceptor,
}

impl TransferService {
    pub fn start() -> TransferService {
        TransferService {
            acceptor: Acceptor::start(serve_transfer),
        }
    }

    pub fn port(&self) -> u16 {
        self.acceptor.addr.port()
    }
}

fn serve_transfer(mut s: TcpStream) {
    let mut kind = [0u8; 1];
    if s.read_exact(&mut kind).is_err() {
        return;
    }
    match kind[0] {
        b'E' => {
            let Ok(mut r) = s.try_clone() else { return };
            let _ = std::io::copy(&mut r, &mut s);
            let _ = s.shutdown(Shutdown::Write);
        }
        b'U' => {
            if let Ok((len, digest)) = read_to_end_hashed(&mut s) {
                let _ = s
                    .write_all(&len.to_be_bytes())
                    .and_then(|_| s.write_all(&digest));
                let _ = s.shutdown(Shutdown::Write);
            }
        }
        b'D' => {
            let mut hdr = [0u8; 16];
            if s.read_exact(&mut hdr).is_ok() {
                let len = u64::from_be_bytes(hdr[..8].try_into().unwrap());
                let seed = u64::from_be_bytes(hdr[8..].try_into().unwrap());
                let _ = write_stream(&mut s, len, seed);
                let _ = s.shutdown(Shutdown::Write);
                let mut buf = [0u8; 64];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            }
        }
        _ => {}
    }
}

/// Counts bytes as they pass, so a test can act mid-transfer, and optionally paces them (so a transfer
/// is still running when the test acts).
struct Counting<T> {
    inner: T,
    count: Arc<AtomicU64>,
    /// (start, bytes per second) for the whole transfer (reads and writes together).
    pace: Option<(Instant, u64)>,
}

impl<T> Counting<T> {
    fn add(&self, n: usize) {
        let total = self.count.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if let Some((start, rate)) = self.pace {
            let due = Duration::from_secs_f64(total as f64 / rate as f64);
            if let Some(ahead) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
    }
}

impl<T: Read> Read for Counting<T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.add(n);
        Ok(n)
    }
}

impl<T: Write> Write for Counting<T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.add(n);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// One transfer through a local port (usually the tunnel's), run in a thread and checked byte for byte.
pub struct Transfer {
    progress: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<Duration, String>>>,
    pub kind: Kind,
    pub len: u64,
}

impl Transfer {
    /// Starts a transfer of `len` bytes (each way for `Echo`) to 127.0.0.1:`port`.
    pub fn start(port: u16, kind: Kind, len: u64) -> Transfer {
        Transfer::start_paced(port, kind, len, None)
    }

    /// Like [`Transfer::start`], moving at most `rate` bytes per second (sent plus received).
    pub fn start_paced(port: u16, kind: Kind, len: u64, rate: Option<u64>) -> Transfer {
        let progress = Arc::new(AtomicU64::new(0));
        let p = progress.clone();
        let seed = Rng::from_os().next_u64();
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            run_transfer(port, kind, len, seed, p, rate.map(|r| (t0, r))).map(|_| t0.elapsed())
        });
        Transfer {
            progress,
            thread: Some(thread),
            kind,
            len,
        }
    }

    /// Bytes moved so far (sent plus received).
    pub fn progress(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    pub fn is_finished(&self) -> bool {
        match &self.thread {
            Some(t) => t.is_finished(),
            None => true,
        }
    }

    /// Waits for the end (panics after `timeout`) and returns the result with the elapsed time.
    pub fn join(mut self, timeout: Duration) -> Result<Duration, String> {
        let deadline = Instant::now() + timeout;
        while !self.is_finished() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "{:?} transfer of {} bytes did not finish within {timeout:?} ({} bytes moved)",
                    self.kind,
                    self.len,
                    self.progress()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.thread
            .take()
            .unwrap()
            .join()
            .unwrap_or_else(|_| Err("transfer thread panicked".into()))
    }

    /// Runs a transfer to its end on this thread.
    pub fn run(port: u16, kind: Kind, len: u64, timeout: Duration) -> Result<Duration, String> {
        Transfer::start(port, kind, len).join(timeout)
    }
}

fn run_transfer(
    port: u16,
    kind: Kind,
    len: u64,
    seed: u64,
    progress: Arc<AtomicU64>,
    pace: Option<(Instant, u64)>,
) -> Result<(), String> {
    let ctx =
        |what: &str, e: std::io::Error| format!("{kind:?} transfer of {len} bytes: {what}: {e}");
    let s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| ctx("connect", e))?;
    // A stalled tunnel must fail the test, not hang it.
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| ctx("timeout", e))?;
    let mut w = Counting {
        inner: s.try_clone().map_err(|e| ctx("clone", e))?,
        count: progress.clone(),
        pace,
    };
    let mut r = Counting {
        inner: s,
        count: progress,
        pace,
    };
    match kind {
        Kind::Echo => {
            w.write_all(b"E").map_err(|e| ctx("send", e))?;
            let writer = std::thread::spawn(move || {
                let h = write_stream(&mut w, len, seed)?;
                w.inner.shutdown(Shutdown::Write)?;
                Ok::<_, std::io::Error>(h)
            });
            let (got_len, got) = read_to_end_hashed(&mut r).map_err(|e| ctx("receive", e))?;
            let sent = writer
                .join()
                .map_err(|_| "writer panicked".to_string())?
                .map_err(|e| ctx("send", e))?;
            check(kind, len, sent, got_len, got)
        }
        Kind::Upload => {
            w.write_all(b"U").map_err(|e| ctx("send", e))?;
            let sent = write_stream(&mut w, len, seed).map_err(|e| ctx("send", e))?;
            w.inner
                .shutdown(Shutdown::Write)
                .map_err(|e| ctx("half-close", e))?;
            let mut reply = [0u8; 40];
            r.read_exact(&mut reply)
                .map_err(|e| ctx("read the service's checksum", e))?;
            let got_len = u64::from_be_bytes(reply[..8].try_into().unwrap());
            check(kind, len, sent, got_len, reply[8..].try_into().unwrap())
        }
        Kind::Download => {
            let mut hdr = vec![b'D'];
            hdr.extend_from_slice(&len.to_be_bytes());
            hdr.extend_from_slice(&seed.to_be_bytes());
            w.write_all(&hdr).map_err(|e| ctx("send", e))?;
            let expected =
                write_stream(&mut std::io::sink(), len, seed).map_err(|e| ctx("hash", e))?;
            let (got_len, got) = read_to_end_hashed(&mut r).map_err(|e| ctx("receive", e))?;
            check(kind, len, expected, got_len, got)
        }
    }
}

fn check(
    kind: Kind,
    len: u64,
    expected: [u8; 32],
    got_len: u64,
    got: [u8; 32],
) -> Result<(), String> {
    if got_len != len || got != expected {
        return Err(format!(
            "{kind:?} transfer corrupted: expected {len} bytes sha256 {}, got {got_len} bytes sha256 {}",
            hex(&expected),
            hex(&got)
        ));
    }
    Ok(())
}

/// Echoes `each` bytes both ways on `connections` TCP connections to `port` at once and asserts that
/// every one arrived intact (SHA-256 both ways), naming the ones that did not.
pub fn parallel_echo(port: u16, connections: usize, each: u64) {
    let started = Instant::now();
    let transfers: Vec<Transfer> = (0..connections)
        .map(|_| Transfer::start(port, Kind::Echo, each))
        .collect();
    let failures: Vec<String> = transfers
        .into_iter()
        .enumerate()
        .filter_map(|(i, tr)| {
            tr.join(crate::lab::TRANSFER_TIMEOUT)
                .err()
                .map(|e| format!("connection {i}: {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {connections} connections failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{connections} x {each} bytes each way in {:?}",
        started.elapsed()
    );
}
