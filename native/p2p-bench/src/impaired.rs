//! Section 6: tunnels over impaired paths through the impairment relay. Random loss against the
//! same path without it, the seed's one-liner (`... 12`, max_depth 12) against the default, two
//! tunnels sharing one rate-limited bottleneck, and the round trip under load through a deep
//! buffer against the idle one; and the lossy_path system test's 50 MiB upload through its own
//! impairment relay (loss, reordering, duplication). Each ratio comes from figures of this run.

use std::net::SocketAddr;
use std::time::Duration;

use p2p_system_tests::services::{Kind, Transfer, TransferService};
use p2p_system_tests::udp_relay::{Impairment, UdpRelay};

use crate::impair::{Bottleneck, Impair};
use crate::lab::{uid, wait_connected};
use crate::procs::Proc;
use crate::sections::{blocking, shown_ratio, Ctx};
use crate::tcp_load::{self, free_port, percentile_ms, send_for};

const MB: f64 = 1e6;
/// The lossy path's round trip.
const LOSSY_RTT: Duration = Duration::from_millis(50);
/// The bottleneck path: 10 Mbit/s, 40 ms, a 1 MB buffer (800 ms of queue, a bloated home router).
const BOTTLENECK_RTT: Duration = Duration::from_millis(40);
/// How long two tunnels share the bottleneck before their shares are measured again.
const WARM_UP: Duration = Duration::from_secs(12);
const BOTTLENECK: Bottleneck = Bottleneck {
    bytes_per_second: 1_250_000.0,
    queue_bytes: 1_000_000,
};

/// An impairment relay in front of the server's relay, with a target of its own device behind it;
/// initiators started with `env` go through it.
struct ImpairedPath {
    imp: Impair,
    target: TargetBehind,
}

impl ImpairedPath {
    async fn start(
        ctx: &Ctx,
        device: u32,
        rtt: Duration,
        bottleneck: Option<Bottleneck>,
    ) -> Result<ImpairedPath, String> {
        let imp = Impair::start_limited(ctx.lab.relay, rtt, bottleneck)
            .await
            .map_err(|e| format!("impairment relay: {e}"))?;
        let target = target_behind(ctx, device, imp.addr, ctx.service.addr)?;
        Ok(ImpairedPath { imp, target })
    }

    /// A connected initiator (mode 3): the seed's command line with `12` when `seed`, otherwise
    /// a configuration file with the default window.
    fn tunnel(&self, ctx: &Ctx, seed: bool) -> Result<(Proc, SocketAddr), String> {
        let port = free_port()?;
        let mut p = if seed {
            ctx.lab
                .initiator_cli(&self.target.device, port, 3, 12, &self.target.env)?
        } else {
            ctx.lab
                .initiator_file(&self.target.device, port, 3, None, &self.target.env)?
        };
        blocking(|| wait_connected(&mut p))?;
        Ok((p, ([127, 0, 0, 1], port).into()))
    }
}

/// A new device's target forwarding to `dest`, both peers sending through `relay` only: `env`
/// puts an initiator on the same path.
struct TargetBehind {
    env: [(&'static str, String); 2],
    device: String,
    _target: Proc,
}

fn target_behind(
    ctx: &Ctx,
    device: u32,
    relay: SocketAddr,
    dest: SocketAddr,
) -> Result<TargetBehind, String> {
    let env = [
        ("P2P_RELAY_OVERRIDE", relay.to_string()),
        ("P2P_DISABLE_DIRECT", "1".to_string()),
    ];
    let device = uid(device);
    blocking(|| ctx.lab.add_device(&device))?;
    let target = blocking(|| ctx.lab.start_target(&device, dest, &env))?;
    Ok(TargetBehind {
        env,
        device,
        _target: target,
    })
}

pub async fn impaired(ctx: &mut Ctx) {
    if let Err(e) = lossy(ctx).await {
        ctx.report.error("impaired", &e);
    }
    if let Err(e) = bottleneck(ctx).await {
        ctx.report.error("impaired", &e);
    }
    if let Err(e) = lossy_path_test(ctx) {
        ctx.report.error("impaired", &e);
    }
}

/// The lossy_path system test's figure: its impairment relay (5% loss, reordering, duplication,
/// 20 ms each way, fixed seed) and its checked 50 MiB upload through a mode-3 tunnel, timed.
fn lossy_path_test(ctx: &mut Ctx) -> Result<(), String> {
    const LEN: u64 = 50 * 1024 * 1024;
    let service = TransferService::start();
    let relay = UdpRelay::start(ctx.lab.relay, Impairment::lossy(), false);
    let dest = SocketAddr::from(([127, 0, 0, 1], service.port()));
    let target = target_behind(ctx, 3, relay.addr(), dest)?;
    let port = free_port()?;
    let mut p = ctx
        .lab
        .initiator_file(&target.device, port, 3, None, &target.env)?;
    blocking(|| wait_connected(&mut p))?;
    let took = blocking(|| Transfer::run(port, Kind::Upload, LEN, Duration::from_secs(600)))?;
    let secs = took.as_secs_f64();
    let r = &mut ctx.report;
    r.add(
        "impaired",
        "lossy_path_50MiB_s",
        "lossy_path test (5% loss, reorder, dup, 40 ms): 50 MiB upload",
        secs,
        "s",
    );
    r.goal(
        "5% loss, 40 ms RTT, reordering, duplication: 50 MiB upload",
        "< 60 s",
        format!("{secs:.1} s"),
        Some(secs < 60.0),
    );
    Ok(())
}

/// 50 ms RTT without a rate limit: the default at 0% and 1% loss each way, the seed's `12` at 0%.
async fn lossy(ctx: &mut Ctx) -> Result<(), String> {
    let d = ctx.budget.impaired;
    let path = ImpairedPath::start(ctx, 1, LOSSY_RTT, None).await?;
    let mut figures = Vec::new();
    for (loss, seed) in [(0.0, false), (0.01, false), (0.0, true)] {
        path.imp.set_loss(loss);
        let (p, addr) = path.tunnel(ctx, seed)?;
        figures.push(tcp_load::bulk(&ctx.service, addr, d).await?);
        drop(p);
    }
    drop(path);
    let [clean, lossy, seed] = figures[..] else {
        unreachable!()
    };
    let r = &mut ctx.report;
    r.add(
        "impaired",
        "loss0_MBps",
        "50 ms RTT, 0% loss",
        clean / MB,
        "MB/s",
    );
    r.add(
        "impaired",
        "loss1_MBps",
        "50 ms RTT, 1% loss each way",
        lossy / MB,
        "MB/s",
    );
    r.add(
        "impaired",
        "loss0_seed12_MBps",
        "50 ms RTT, 0% loss, seed one-liner (max_depth 12)",
        seed / MB,
        "MB/s",
    );
    let loss_ratio = lossy / clean;
    let seed_ratio = seed / clean;
    r.add(
        "impaired",
        "loss1_over_loss0",
        "1% loss / 0% loss",
        loss_ratio,
        "x",
    );
    r.add(
        "impaired",
        "seed12_over_default",
        "seed one-liner / default",
        seed_ratio,
        "x",
    );
    r.goal(
        "1% loss each way / 0% loss, 50 ms RTT",
        ">= 0.5",
        shown_ratio(Some(loss_ratio)),
        Some(loss_ratio >= 0.5),
    );
    r.goal(
        "seed one-liner (max_depth 12) / default, 50 ms RTT",
        ">= 0.5",
        shown_ratio(Some(seed_ratio)),
        Some(seed_ratio >= 0.5),
    );
    Ok(())
}

/// 10 Mbit/s with a deep buffer at 40 ms RTT: two tunnels at once, then one tunnel's round trip
/// idle and under its own load.
async fn bottleneck(ctx: &mut Ctx) -> Result<(), String> {
    let d = ctx.budget.impaired;
    let path = ImpairedPath::start(ctx, 2, BOTTLENECK_RTT, Some(BOTTLENECK)).await?;
    let (p1, a1) = path.tunnel(ctx, false)?;
    let (p2, a2) = path.tunnel(ctx, false)?;
    // Both from their start, then again once the tunnels have run long enough for their first
    // minimum-RTT probe (10 s), which is when the model-based controllers converge.
    let first = both_at_once(ctx, a1, a2, d).await?;
    both_at_once(ctx, a1, a2, WARM_UP.saturating_sub(d)).await?;
    let steady = both_at_once(ctx, a1, a2, d).await?;
    drop(p2);
    let pings = 50;
    let mut idle = tcp_load::ping_pong(a1, pings).await?;
    let loaded = tokio::spawn(send_for(a1, d));
    // Pings once the transfer has filled the path.
    tokio::time::sleep(d / 4).await;
    let mut busy = tcp_load::ping_pong(a1, pings).await?;
    loaded.await.map_err(|e| e.to_string())??;
    drop(p1);
    drop(path);
    let (idle_ms, busy_ms) = (percentile_ms(&mut idle, 0.5), percentile_ms(&mut busy, 0.5));

    let r = &mut ctx.report;
    for ((slow, fast), when, key) in [(first, "first", "first"), (steady, "after 12 s", "steady")] {
        r.add(
            "impaired",
            &format!("shared_{key}_slower_MBps"),
            &format!("10 Mbit/s shared by two tunnels, {when}: slower"),
            slow / MB,
            "MB/s",
        );
        r.add(
            "impaired",
            &format!("shared_{key}_faster_MBps"),
            &format!("10 Mbit/s shared by two tunnels, {when}: faster"),
            fast / MB,
            "MB/s",
        );
    }
    r.add(
        "impaired",
        "shared_first_ratio",
        "two tunnels from their start: slower / faster",
        first.0 / first.1,
        "x",
    );
    r.add(
        "impaired",
        "rtt_idle_ms",
        "10 Mbit/s, 1 MB buffer, 40 ms: RTT p50 idle",
        idle_ms,
        "ms",
    );
    r.add(
        "impaired",
        "rtt_loaded_ms",
        "same, RTT p50 under load",
        busy_ms,
        "ms",
    );
    let share = steady.0 / steady.1;
    let bloat = busy_ms / idle_ms;
    r.goal(
        "two tunnels sharing a bottleneck (after 12 s): slower / faster",
        ">= 0.7",
        shown_ratio(Some(share)),
        Some(share >= 0.7),
    );
    r.goal(
        "RTT under load / base RTT, deep buffer",
        "<= 2",
        shown_ratio(Some(bloat)),
        Some(bloat <= 2.0),
    );
    Ok(())
}

/// Two bulk transfers through `a` and `b` at once for `d`: their rates, (slower, faster).
async fn both_at_once(
    ctx: &Ctx,
    a: SocketAddr,
    b: SocketAddr,
    d: Duration,
) -> Result<(f64, f64), String> {
    ctx.service.drain();
    let (sa, sb) = tokio::join!(send_for(a, d), send_for(b, d));
    sa?;
    sb?;
    let transfers = ctx
        .service
        .transfers(2, d + Duration::from_secs(30))
        .await?;
    let rates: Vec<f64> = transfers.iter().map(|t| tcp_load::rate(&[*t])).collect();
    Ok((rates[0].min(rates[1]), rates[0].max(rates[1])))
}
