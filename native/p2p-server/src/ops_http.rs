//! The operator's HTTP listener (`run --metrics ADDR`): `GET /metrics` (Prometheus text) and
//! `GET /healthz` (200 `ok` while the node serves, 503 `draining` once it is shutting down, so that a
//! load balancer stops sending clients). Plain HTTP/1.1, one request per connection, no authentication:
//! it belongs on a private address, which `--help` says.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::metrics::{Gauges, Metrics};

/// A scraper that does not send its request within this is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Request heads larger than this are refused (a scrape's is about 100 bytes).
const MAX_REQUEST: usize = 8 * 1024;
/// Requests served at once; more connections wait for a slot.
const MAX_CONCURRENT: usize = 16;

/// What the listener reads: the counters, a way to read the gauges, and whether the node is draining.
pub struct OpsState {
    pub metrics: Arc<Metrics>,
    pub gauges: Box<dyn Fn() -> Gauges + Send + Sync>,
    pub draining: AtomicBool,
}

pub async fn serve(listener: TcpListener, state: Arc<OpsState>) {
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &state)).await;
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, state: &OpsState) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_REQUEST {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, body) = route(&String::from_utf8_lossy(&head), state);
    let content_type = if body.starts_with("# HELP") {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The status line's code and reason, and the body, for a request head.
fn route(head: &str, state: &OpsState) -> (&'static str, String) {
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (words.next(), words.next().unwrap_or_default());
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        (Some("GET"), "/metrics") => ("200 OK", state.metrics.render(&(state.gauges)())),
        (Some("GET"), "/healthz") if state.draining.load(Ordering::Relaxed) => {
            ("503 Service Unavailable", "draining\n".into())
        }
        (Some("GET"), "/healthz") => ("200 OK", "ok\n".into()),
        (Some("GET"), _) => (
            "404 Not Found",
            "not found: try /metrics or /healthz\n".into(),
        ),
        _ => ("405 Method Not Allowed", "only GET\n".into()),
    }
}
