//! The TCP ends of every measurement: one in-process service every path leads to (the tunnel's target
//! forwards to it, and so do raw TCP, socat and ssh -L), and the clients that load it.
//!
//! The first byte of a connection picks what the service does with it: `S` sink (count bytes until end
//! of stream and report the transfer), `E` echo. The sink measures at the receiving end, from its first
//! data byte to its last, so buffering anywhere on the path cannot inflate a figure.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const SINK: u8 = b'S';
pub const ECHO: u8 = b'E';
const CHUNK: usize = 256 * 1024;

/// What the sink saw on one connection.
#[derive(Clone, Copy, Debug)]
pub struct Transfer {
    pub bytes: u64,
    pub first: Instant,
    pub last: Instant,
}

pub struct Service {
    pub addr: SocketAddr,
    transfers: Mutex<mpsc::UnboundedReceiver<Transfer>>,
}

impl Service {
    pub async fn start() -> std::io::Result<Service> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, tx.clone()));
            }
        });
        Ok(Service {
            addr,
            transfers: Mutex::new(rx),
        })
    }

    /// Forgets transfers of earlier measurements.
    pub fn drain(&self) {
        let mut rx = self.transfers.lock().unwrap_or_else(|p| p.into_inner());
        while rx.try_recv().is_ok() {}
    }

    /// The next `n` transfers, waiting at most `timeout` for all of them.
    pub async fn transfers(&self, n: usize, timeout: Duration) -> Result<Vec<Transfer>, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            // Taken out of the lock for the wait, so the lock is never held across an await.
            let got = {
                let mut rx = self.transfers.lock().unwrap_or_else(|p| p.into_inner());
                rx.try_recv().ok()
            };
            match got {
                Some(t) => out.push(t),
                None if tokio::time::Instant::now() >= deadline => {
                    return Err(format!(
                        "the sink saw {} of {n} transfers end within {} s",
                        out.len(),
                        timeout.as_secs()
                    ))
                }
                None => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
        Ok(out)
    }
}

async fn serve(mut conn: TcpStream, transfers: mpsc::UnboundedSender<Transfer>) {
    let _ = conn.set_nodelay(true);
    let mut kind = [0u8; 1];
    if conn.read_exact(&mut kind).await.is_err() {
        return;
    }
    match kind[0] {
        SINK => {
            let mut buf = vec![0u8; CHUNK];
            let mut bytes = 0u64;
            let mut first = None;
            let mut last = Instant::now();
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        last = Instant::now();
                        first.get_or_insert(last);
                        bytes += n as u64;
                    }
                }
            }
            let _ = transfers.send(Transfer {
                bytes,
                first: first.unwrap_or(last),
                last,
            });
        }
        ECHO => {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if conn.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

async fn connect(addr: SocketAddr, kind: u8) -> Result<TcpStream, String> {
    let mut c = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = c.set_nodelay(true);
    c.write_all(&[kind])
        .await
        .map_err(|e| format!("cannot write to {addr}: {e}"))?;
    Ok(c)
}

/// Sends as fast as the path takes for `duration`, then aborts the connection. Returns the bytes written.
///
/// Aborting (a reset, not a clean close) discards what is still queued on the way: the loopback socket
/// buffers hold megabytes, and a slow path would otherwise take long to drain them after the
/// measurement is over. The sink's figure covers only the bytes it received, so it is unaffected.
pub async fn send_for(addr: SocketAddr, duration: Duration) -> Result<u64, String> {
    let mut c = connect(addr, SINK).await?;
    let buf = vec![0x5au8; CHUNK];
    let end = Instant::now() + duration;
    let mut sent = 0u64;
    while Instant::now() < end {
        match tokio::time::timeout_at(end.into(), c.write(&buf)).await {
            Ok(Ok(n)) => sent += n as u64,
            Ok(Err(e)) => return Err(format!("sending to {addr} failed after {sent} bytes: {e}")),
            Err(_) => break,
        }
    }
    let _ = c.set_zero_linger();
    drop(c);
    Ok(sent)
}

/// Bytes per second of one bulk stream through `addr`, measured at the sink.
pub async fn bulk(service: &Service, addr: SocketAddr, duration: Duration) -> Result<f64, String> {
    service.drain();
    send_for(addr, duration).await?;
    let t = service
        .transfers(1, duration + Duration::from_secs(30))
        .await?;
    Ok(rate(&t))
}

/// Aggregate bytes per second of all transfers over their common span.
pub fn rate(transfers: &[Transfer]) -> f64 {
    let bytes: u64 = transfers.iter().map(|t| t.bytes).sum();
    let first = transfers.iter().map(|t| t.first).min();
    let last = transfers.iter().map(|t| t.last).max();
    match (first, last) {
        (Some(f), Some(l)) if l > f => bytes as f64 / (l - f).as_secs_f64(),
        _ => 0.0,
    }
}

/// `n` streams at once for `duration`: aggregate bytes per second and fairness (slowest / fastest).
pub async fn parallel(
    service: &Service,
    addr: SocketAddr,
    n: usize,
    duration: Duration,
) -> Result<(f64, f64), String> {
    service.drain();
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(send_for(addr, duration)))
        .collect();
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let transfers = service
        .transfers(n, duration + Duration::from_secs(60))
        .await?;
    let min = transfers.iter().map(|t| t.bytes).min().unwrap_or(0) as f64;
    let max = transfers.iter().map(|t| t.bytes).max().unwrap_or(0) as f64;
    Ok((rate(&transfers), if max > 0.0 { min / max } else { 0.0 }))
}

/// Round-trip times of `n` 1-byte exchanges on one connection (after a few not counted).
pub async fn ping_pong(addr: SocketAddr, n: usize) -> Result<Vec<Duration>, String> {
    let mut c = connect(addr, ECHO).await?;
    let mut times = Vec::with_capacity(n);
    let mut b = [0u8; 1];
    for i in 0..n + 20 {
        let t0 = Instant::now();
        c.write_all(b"p")
            .await
            .map_err(|e| format!("ping through {addr}: {e}"))?;
        tokio::time::timeout(Duration::from_secs(10), c.read_exact(&mut b))
            .await
            .map_err(|_| format!("no echo through {addr} within 10 s"))?
            .map_err(|e| format!("echo through {addr}: {e}"))?;
        if i >= 20 {
            times.push(t0.elapsed());
        }
    }
    Ok(times)
}

/// Connects (retrying while the port is not listening yet) and waits for one byte echoed back: the
/// moment a tunnel is usable. Returns the open connection.
pub async fn first_echo(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let deadline = Instant::now() + timeout;
    let mut c = loop {
        match connect(addr, ECHO).await {
            Ok(c) => break c,
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    };
    c.write_all(b"x")
        .await
        .map_err(|e| format!("write through {addr}: {e}"))?;
    let mut b = [0u8; 1];
    let left = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout(left, c.read_exact(&mut b))
        .await
        .map_err(|_| format!("no echo through {addr} within {} s", timeout.as_secs()))?
        .map_err(|e| format!("echo through {addr}: {e}"))?;
    Ok(c)
}

/// A free loopback TCP port (bound and released: another process could take it meanwhile, which on a
/// benchmark machine it does not).
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free TCP port: {e}"))
}

/// A percentile (0..=100) of durations, in milliseconds.
pub fn percentile_ms(times: &mut [Duration], p: f64) -> f64 {
    if times.is_empty() {
        return f64::NAN;
    }
    times.sort();
    let i = ((p / 100.0) * (times.len() - 1) as f64).round() as usize;
    times[i.min(times.len() - 1)].as_secs_f64() * 1000.0
}
