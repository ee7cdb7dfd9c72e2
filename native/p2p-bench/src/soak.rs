//! The endurance run (outside CI): `p2p-bench --only endurance --minutes N` (`tools/soak.sh`).
//!
//! Two tunnels with `autoconnect 2` to two targets of the benchmark's server carry mixed traffic for N
//! minutes: bulk echo rounds (4 MiB, every byte checked), small request/response exchanges on a kept-open
//! connection, and many short connections. Meanwhile:
//! - every [`FALLBACK_EVERY`] direct UDP between the peers is blocked or unblocked
//!   (`P2P_DISABLE_DIRECT_FILE`): the sessions fall back to the relay, which reaches them through the
//!   impairment relay ([`RTT`] round trip, [`LOSS`] loss), and later return to the direct path;
//! - every [`RESTART_EVERY`] tunnel B's target is killed and started again; B's initiator reconnects.
//!
//! Reported: bytes moved, operations, errors (those on B between a target kill and the first echo after
//! it are counted apart as expected), and the resident memory of the server, target A and both
//! initiators at the start (after a warm-up) and the end, both taken with the traffic paused. Target B is
//! restarted, so its memory says nothing about growth and is not judged.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::impair::Impair;
use crate::lab::{self, uid, Lab};
use crate::procs::Proc;
use crate::sections::Ctx;
use crate::tcp_load::{first_echo, free_port};

const RTT: Duration = Duration::from_millis(40);
const LOSS: f64 = 0.005;
const FALLBACK_EVERY: Duration = Duration::from_secs(60);
const RESTART_EVERY: Duration = Duration::from_secs(150);
const BULK_ROUND: usize = 4 * 1024 * 1024;
const REQUEST: usize = 256;
const SHORT: usize = 64;
/// Memory growth that counts as noise: allocator arenas and buffers sized by the last burst of traffic.
const NOISE_FRACTION: f64 = 0.25;
const NOISE_BYTES: u64 = 8 * 1024 * 1024;
const MIB: f64 = 1024.0 * 1024.0;

/// What the traffic of one tunnel did.
#[derive(Default)]
struct Counters {
    bytes: AtomicU64,
    bulk_rounds: AtomicU64,
    requests: AtomicU64,
    short_connections: AtomicU64,
    errors: AtomicU64,
    expected_errors: AtomicU64,
    /// Set while the tunnel's target is down on purpose: errors then are expected.
    outage: AtomicBool,
}

impl Counters {
    fn error(&self, what: &str, e: &str) {
        if self.outage.load(Ordering::Relaxed) {
            self.expected_errors.fetch_add(1, Ordering::Relaxed);
        } else {
            self.errors.fetch_add(1, Ordering::Relaxed);
            eprintln!("endurance: {what}: {e}");
        }
    }
}

/// Shared switches of the traffic tasks.
#[derive(Default)]
struct Switches {
    stop: AtomicBool,
    pause: AtomicBool,
}

impl Switches {
    /// Waits while paused; false once stopped.
    async fn go_on(&self) -> bool {
        while self.pause.load(Ordering::Relaxed) && !self.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        !self.stop.load(Ordering::Relaxed)
    }
}

/// One tunnel: its target, its initiator (autoconnect 2) and its traffic counters.
struct Tunnel {
    uid: String,
    target: Proc,
    initiator: Proc,
    addr: SocketAddr,
    counters: Arc<Counters>,
}

pub async fn run(ctx: &mut Ctx, minutes: u64) {
    match endurance(ctx, Duration::from_secs(minutes * 60)).await {
        Ok(()) => {}
        Err(e) => ctx.report.error("endurance", &e),
    }
}

async fn endurance(ctx: &mut Ctx, length: Duration) -> Result<(), String> {
    let imp = Impair::start(ctx.lab.relay, RTT)
        .await
        .map_err(|e| format!("impairment relay: {e}"))?;
    imp.set_loss(LOSS);
    let block = ctx.dir.join("endurance-block-direct");
    let env = [
        ("P2P_RELAY_OVERRIDE", imp.addr.to_string()),
        (
            "P2P_DISABLE_DIRECT_FILE",
            block.to_string_lossy().into_owned(),
        ),
    ];
    let mut a = open_tunnel(ctx, uid(2), &env).await?;
    let mut b = open_tunnel(ctx, uid(3), &env).await?;
    let switches = Arc::new(Switches::default());
    let mut tasks = Vec::new();
    for (t, bulk) in [(&a, true), (&b, false)] {
        tasks.extend(traffic(t.addr, bulk, t.counters.clone(), switches.clone()));
    }

    let started = Instant::now();
    let warm_up = (length / 10).clamp(Duration::from_secs(30), Duration::from_secs(120));
    tokio::time::sleep(warm_up).await;
    let first = memory(ctx, &a, &b, &switches).await;
    eprintln!(
        "endurance: memory after the warm-up (MiB): {}",
        shown(&first)
    );

    let mut next_fallback = Instant::now() + FALLBACK_EVERY;
    let mut next_restart = Instant::now() + RESTART_EVERY;
    let mut next_sample = Instant::now() + Duration::from_secs(60);
    let (mut fallbacks, mut restarts) = (0u32, 0u32);
    let mut peak = first.clone();
    while started.elapsed() < length {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if Instant::now() >= next_fallback {
            toggle(&block)?;
            fallbacks += 1;
            next_fallback += FALLBACK_EVERY;
        }
        if Instant::now() >= next_restart {
            restart_target(ctx, &mut b, &env).await?;
            restarts += 1;
            next_restart = Instant::now() + RESTART_EVERY;
        }
        if Instant::now() >= next_sample {
            let now = rss(ctx, &a, &b);
            for (p, n) in peak.iter_mut().zip(&now) {
                p.1 = p.1.max(n.1);
            }
            eprintln!(
                "endurance: {:>4} s  RSS (MiB) {}  moved {:.0} MB  errors {} (+{} expected)",
                started.elapsed().as_secs(),
                shown(&now),
                (total(&a, &b, |c| &c.bytes)) as f64 / 1e6,
                total(&a, &b, |c| &c.errors),
                total(&a, &b, |c| &c.expected_errors),
            );
            next_sample += Duration::from_secs(60);
        }
    }
    // End in the state the first sample was taken in: direct path allowed, both tunnels up.
    let _ = std::fs::remove_file(&block);
    wait_echo(b.addr, &b.counters).await?;
    let last = memory(ctx, &a, &b, &switches).await;
    switches.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!("endurance: memory at the end (MiB): {}", shown(&last));
    report(
        ctx, &a, &b, elapsed, fallbacks, restarts, &first, &last, &peak,
    );
    a.initiator.kill();
    b.initiator.kill();
    Ok(())
}

/// Adds the device, starts its target and an `autoconnect 2` initiator, and waits for an echo.
async fn open_tunnel(ctx: &Ctx, uid: String, env: &[(&str, String)]) -> Result<Tunnel, String> {
    tokio::task::block_in_place(|| ctx.lab.add_device(&uid))?;
    let target = tokio::task::block_in_place(|| ctx.lab.start_target(&uid, ctx.service.addr, env))?;
    let port = free_port()?;
    let initiator = reconnecting_initiator(&ctx.lab, &uid, port, env)?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let counters = Arc::new(Counters::default());
    wait_echo(addr, &counters).await?;
    Ok(Tunnel {
        uid,
        target,
        initiator,
        addr,
        counters,
    })
}

/// `connectd -s -f initiator.conf` with `autoconnect 2` (reconnects by itself), encryption mode 3.
fn reconnecting_initiator(
    lab: &Lab,
    uid: &str,
    port: u16,
    env: &[(&str, String)],
) -> Result<Proc, String> {
    let conf = lab.dir.join(format!("endurance-initiator-{port}.conf"));
    let text = format!(
        "autoconnect 2\nuser_id {}\nauth_pass {}\nremote_address {uid}\nproxy_local_port {port}\n\
         proxy_bind_address 127.0.0.1\nencryption 3\nserver {}\nserver_key {}\n",
        lab::USER,
        lab::PASSWORD,
        lab.control,
        lab.key
    );
    std::fs::write(&conf, text).map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
    let mut cmd = std::process::Command::new(&lab.bins.connectd);
    cmd.arg("-s").arg("-f").arg(&conf);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    Proc::spawn("connectd (endurance initiator)", cmd, None)
}

/// Waits (up to 3 minutes: idle timeout plus reconnect back-off) until one byte echoes through `addr`.
async fn wait_echo(addr: SocketAddr, counters: &Counters) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        match first_echo(addr, Duration::from_secs(10)).await {
            Ok(_) => {
                counters.outage.store(false, Ordering::Relaxed);
                return Ok(());
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(format!("the tunnel on {addr} did not come back: {e}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Blocks direct UDP if it is allowed, allows it if blocked.
fn toggle(block: &Path) -> Result<(), String> {
    if block.exists() {
        std::fs::remove_file(block)
    } else {
        std::fs::write(block, "blocked by the endurance run")
    }
    .map_err(|e| format!("cannot toggle {}: {e}", block.display()))
}

async fn restart_target(ctx: &Ctx, t: &mut Tunnel, env: &[(&str, String)]) -> Result<(), String> {
    t.counters.outage.store(true, Ordering::Relaxed);
    t.target.kill();
    t.target = tokio::task::block_in_place(|| ctx.lab.start_target(&t.uid, ctx.service.addr, env))?;
    wait_echo(t.addr, &t.counters).await
}

/// The three kinds of traffic on one tunnel, as tasks.
fn traffic(
    addr: SocketAddr,
    bulk: bool,
    c: Arc<Counters>,
    s: Arc<Switches>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![
        tokio::spawn(requests(addr, c.clone(), s.clone())),
        tokio::spawn(rounds(addr, &SHORT_CONNECTIONS, c.clone(), s.clone())),
    ];
    if bulk {
        tasks.push(tokio::spawn(rounds(addr, &BULK, c, s)));
    }
    tasks
}

/// Byte `i` of a checked stream: any loss, duplication or reordering shows.
fn pattern(i: usize, seed: u8) -> u8 {
    (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8
}

/// Writes `data` and reads the same number of bytes back (concurrently: the echo would otherwise stall
/// on full buffers) and checks them.
async fn exchange(conn: &mut TcpStream, data: &[u8], timeout: Duration) -> Result<(), String> {
    let (mut rd, mut wr) = conn.split();
    let write = async { wr.write_all(data).await.map_err(|e| format!("write: {e}")) };
    let read = async {
        let mut got = vec![0u8; data.len()];
        rd.read_exact(&mut got)
            .await
            .map_err(|e| format!("read: {e}"))?;
        match got.iter().zip(data).position(|(a, b)| a != b) {
            None => Ok(()),
            Some(i) => Err(format!("byte {i} of {} came back changed", data.len())),
        }
    };
    tokio::time::timeout(timeout, async { tokio::try_join!(write, read).map(|_| ()) })
        .await
        .map_err(|_| format!("no echo within {} s", timeout.as_secs()))?
}

/// One kind of traffic that opens a new connection per exchange.
struct Rounds {
    what: &'static str,
    len: usize,
    timeout: Duration,
    pause: Duration,
    count: fn(&Counters) -> &AtomicU64,
}

const BULK: Rounds = Rounds {
    what: "bulk round",
    len: BULK_ROUND,
    timeout: Duration::from_secs(120),
    pause: Duration::ZERO,
    count: |c| &c.bulk_rounds,
};

const SHORT_CONNECTIONS: Rounds = Rounds {
    what: "short connection",
    len: SHORT,
    timeout: Duration::from_secs(20),
    pause: Duration::from_millis(50),
    count: |c| &c.short_connections,
};

/// Connects, echoes `r.len` checked bytes, closes; again and again.
async fn rounds(addr: SocketAddr, r: &'static Rounds, c: Arc<Counters>, s: Arc<Switches>) {
    let mut n = 0usize;
    while s.go_on().await {
        n += 1;
        let data: Vec<u8> = (0..r.len).map(|i| pattern(i, n as u8)).collect();
        let round = async {
            let mut conn = first_echo(addr, Duration::from_secs(10)).await?;
            exchange(&mut conn, &data, r.timeout).await
        };
        match round.await {
            Ok(()) => {
                c.bytes.fetch_add(2 * r.len as u64, Ordering::Relaxed);
                (r.count)(&c).fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(r.pause).await;
            }
            Err(e) => {
                c.error(r.what, &e);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn requests(addr: SocketAddr, c: Arc<Counters>, s: Arc<Switches>) {
    let mut conn: Option<TcpStream> = None;
    let mut n = 0usize;
    while s.go_on().await {
        n += 1;
        let data: Vec<u8> = (0..REQUEST).map(|i| pattern(i + n, n as u8)).collect();
        let r = async {
            if conn.is_none() {
                conn = Some(first_echo(addr, Duration::from_secs(10)).await?);
            }
            let open = conn.as_mut().expect("just opened");
            exchange(open, &data, Duration::from_secs(20)).await
        };
        match r.await {
            Ok(()) => {
                c.bytes.fetch_add(2 * REQUEST as u64, Ordering::Relaxed);
                c.requests.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => {
                conn = None;
                c.error("request/response", &e);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// (name, RSS bytes) of the processes whose growth is judged.
fn rss(ctx: &Ctx, a: &Tunnel, b: &Tunnel) -> Vec<(&'static str, u64)> {
    [
        ("server", &ctx.lab.server),
        ("target A", &a.target),
        ("initiator A", &a.initiator),
        ("initiator B", &b.initiator),
    ]
    .into_iter()
    .map(|(n, p)| (n, p.rss_bytes().unwrap_or(0)))
    .collect()
}

/// RSS with the traffic paused for a few seconds, so both samples see the same (idle) state.
async fn memory(ctx: &Ctx, a: &Tunnel, b: &Tunnel, s: &Switches) -> Vec<(&'static str, u64)> {
    s.pause.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let m = rss(ctx, a, b);
    s.pause.store(false, Ordering::Relaxed);
    m
}

fn shown(m: &[(&str, u64)]) -> String {
    m.iter()
        .map(|(n, b)| format!("{n} {:.1}", *b as f64 / MIB))
        .collect::<Vec<_>>()
        .join(", ")
}

fn total(a: &Tunnel, b: &Tunnel, f: impl Fn(&Counters) -> &AtomicU64) -> u64 {
    f(&a.counters).load(Ordering::Relaxed) + f(&b.counters).load(Ordering::Relaxed)
}

/// Growth within the noise allowance: `NOISE_FRACTION` of the start or `NOISE_BYTES`, whichever is more.
fn within_noise(start: u64, end: u64) -> bool {
    let allowance = ((start as f64 * NOISE_FRACTION) as u64).max(NOISE_BYTES);
    end <= start + allowance
}

#[allow(clippy::too_many_arguments)]
fn report(
    ctx: &mut Ctx,
    a: &Tunnel,
    b: &Tunnel,
    seconds: f64,
    fallbacks: u32,
    restarts: u32,
    first: &[(&'static str, u64)],
    last: &[(&'static str, u64)],
    peak: &[(&'static str, u64)],
) {
    let rep = &mut ctx.report;
    let sum = |f: fn(&Counters) -> &AtomicU64| total(a, b, f) as f64;
    rep.add("endurance", "seconds", "length", seconds, "s");
    rep.add(
        "endurance",
        "bytes_MB",
        "bytes moved (echoed, both directions)",
        sum(|c| &c.bytes) / 1e6,
        "MB",
    );
    rep.add(
        "endurance",
        "bulk_rounds",
        "4 MiB bulk rounds (tunnel A)",
        sum(|c| &c.bulk_rounds),
        "",
    );
    rep.add(
        "endurance",
        "requests",
        "256-byte request/responses",
        sum(|c| &c.requests),
        "",
    );
    rep.add(
        "endurance",
        "short_connections",
        "short connections",
        sum(|c| &c.short_connections),
        "",
    );
    rep.add(
        "endurance",
        "fallbacks",
        "direct path blocked/unblocked",
        f64::from(fallbacks),
        "",
    );
    rep.add(
        "endurance",
        "restarts",
        "target B restarts",
        f64::from(restarts),
        "",
    );
    let errors = sum(|c| &c.errors);
    rep.add("endurance", "errors", "errors", errors, "");
    rep.add(
        "endurance",
        "expected_errors",
        "  errors while target B was down (expected)",
        sum(|c| &c.expected_errors),
        "",
    );
    let mut grown = Vec::new();
    for ((name, start), ((_, end), (_, top))) in first.iter().zip(last.iter().zip(peak)) {
        let key = name.replace(' ', "_").to_lowercase();
        rep.add(
            "endurance",
            &format!("{key}_rss_start_MiB"),
            &format!("{name} RSS at start"),
            *start as f64 / MIB,
            "MiB",
        );
        rep.add(
            "endurance",
            &format!("{key}_rss_end_MiB"),
            &format!("{name} RSS at end (peak {:.1})", *top as f64 / MIB),
            *end as f64 / MIB,
            "MiB",
        );
        if !within_noise(*start, *end) {
            grown.push(*name);
        }
    }
    rep.goal(
        "endurance: no errors outside planned outages",
        "0",
        format!("{errors:.0}"),
        Some(errors == 0.0),
    );
    rep.goal(
        "endurance: no memory growth beyond noise",
        &format!(
            "end <= start + max({:.0}%, {} MiB)",
            NOISE_FRACTION * 100.0,
            NOISE_BYTES / (1024 * 1024)
        ),
        if grown.is_empty() {
            "none grew".to_string()
        } else {
            format!("grew: {}", grown.join(", "))
        },
        Some(grown.is_empty()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_allowance_is_the_larger_of_fraction_and_floor() {
        let mib = 1024 * 1024;
        assert!(within_noise(10 * mib, 18 * mib));
        assert!(!within_noise(10 * mib, 19 * mib));
        assert!(within_noise(100 * mib, 125 * mib));
        assert!(!within_noise(100 * mib, 126 * mib));
    }

    #[test]
    fn pattern_differs_between_neighbours_and_seeds() {
        assert_ne!(pattern(0, 1), pattern(1, 1));
        assert_ne!(pattern(5, 1), pattern(5, 2));
        assert_ne!(pattern(3, 0), pattern(3 + 256, 0));
    }
}
