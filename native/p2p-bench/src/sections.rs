//! The measurements, one function per section of the benchmark (numbered as in the issue). Each
//! records its figures in the report; a failure ends that section only.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use p2p_config::{AutoConnect, InitiatorConfig};
use p2p_proto::control::Credential;
use p2p_proto::EncryptionMode;

use crate::baselines::{start_socat, start_ssh};
use crate::lab::{self, uid, wait_connected, Bins, Lab};
use crate::procs::Proc;
use crate::report::Report;
use crate::server_load;
use crate::tcp_load::{self, first_echo, free_port, percentile_ms, Service};
use p2p_testkit::light_targets;

const MB: f64 = 1e6;
pub(crate) const KIB: f64 = 1024.0;

/// How long and how many: the full run and `--quick`.
pub struct Budget {
    pub bulk: Duration,
    pub pings: usize,
    pub connects: usize,
    pub parallel: Duration,
    pub idle_streams: usize,
    pub impaired: Duration,
    pub server_targets: u32,
    pub setups: Duration,
}

impl Budget {
    pub fn new(quick: bool) -> Budget {
        if quick {
            Budget {
                bulk: Duration::from_secs(2),
                pings: 500,
                connects: 10,
                parallel: Duration::from_secs(2),
                idle_streams: 1000,
                impaired: Duration::from_secs(4),
                server_targets: 100,
                setups: Duration::from_secs(3),
            }
        } else {
            Budget {
                bulk: Duration::from_secs(5),
                pings: 3000,
                connects: 20,
                parallel: Duration::from_secs(5),
                idle_streams: 1000,
                impaired: Duration::from_secs(10),
                server_targets: 1000,
                setups: Duration::from_secs(6),
            }
        }
    }
}

/// What every section shares: the binaries, a server with one target forwarding to the service.
pub struct Ctx {
    pub budget: Budget,
    pub bins: Bins,
    pub dir: std::path::PathBuf,
    pub service: Service,
    pub lab: Lab,
    pub target: Proc,
    pub report: Report,
    /// PowerShell and the built module, to time the cmdlet too (`--module`).
    pub cmdlet: Option<crate::cmdlet_connect::CmdletHost>,
}

/// Runs blocking code (waiting for a child's output line) without stalling the runtime's other tasks.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// The main target's device.
fn main_uid() -> String {
    uid(0)
}

/// A tunnel initiator through `connectd -f` (with `max_depth` when given), connected.
fn tunnel(
    ctx: &Ctx,
    mode: u8,
    max_depth: Option<u32>,
    env: &[(&str, String)],
) -> Result<(Proc, SocketAddr), String> {
    let port = free_port()?;
    let mut p = ctx
        .lab
        .initiator_file(&main_uid(), port, mode, max_depth, env)?;
    blocking(|| wait_connected(&mut p))?;
    Ok((p, ([127, 0, 0, 1], port).into()))
}

fn cpu(procs: &[&Proc]) -> f64 {
    procs.iter().filter_map(|p| p.cpu_seconds()).sum()
}

/// Sections 1 and 2, with section 5's CPU figures: bulk throughput and ping-pong latency for raw TCP,
/// socat, ssh -L and the tunnel in each encryption mode.
pub async fn paths(ctx: &mut Ctx) {
    let b = &ctx.budget;
    let (bulk, pings) = (b.bulk, b.pings);
    let dest = ctx.service.addr;
    match measure_path(&ctx.service, dest, bulk, pings, &[]).await {
        Ok((rate, p50, p99, _)) => {
            ctx.report
                .add("throughput", "raw_MBps", "raw TCP", rate / MB, "MB/s");
            ctx.report
                .add("latency", "raw_p50_ms", "raw TCP p50", p50, "ms");
            ctx.report
                .add("latency", "raw_p99_ms", "raw TCP p99", p99, "ms");
        }
        Err(e) => ctx.report.error("raw TCP", &e),
    }
    let socat = async {
        let (addr, _socat) = start_socat(dest).await?;
        tcp_load::bulk(&ctx.service, addr, bulk).await
    };
    match socat.await {
        Ok(rate) => ctx
            .report
            .add("throughput", "socat_MBps", "socat relay", rate / MB, "MB/s"),
        Err(e) => ctx.report.error("socat", &e),
    }
    match start_ssh(&ctx.dir, dest).await {
        Ok(fwd) => {
            match measure_path(&ctx.service, fwd.local, bulk, pings, &[&fwd.ssh, &fwd.sshd]).await {
                Ok((rate, p50, p99, cpu_per_gb)) => {
                    ctx.report
                        .add("throughput", "ssh_MBps", "ssh -L", rate / MB, "MB/s");
                    ctx.report
                        .add("latency", "ssh_p50_ms", "ssh -L p50", p50, "ms");
                    ctx.report
                        .add("latency", "ssh_p99_ms", "ssh -L p99", p99, "ms");
                    ctx.report.add(
                        "cpu",
                        "ssh_cpu_s_per_GB",
                        "ssh + sshd",
                        cpu_per_gb,
                        "CPU s/GB",
                    );
                }
                Err(e) => ctx.report.error("ssh -L", &e),
            }
        }
        Err(e) => ctx.report.error("ssh -L", &e),
    }
    for mode in 0..=3u8 {
        let result = async {
            let (mut p, addr) = tunnel(ctx, mode, None, &[])?;
            let name = cipher_name(&mut p, mode);
            let figures = measure_path(&ctx.service, addr, bulk, pings, &[&p, &ctx.target]).await?;
            Ok::<_, String>((name, figures))
        }
        .await;
        match result {
            Ok((name, (rate, p50, p99, cpu_per_gb))) => {
                let label = format!("tunnel mode {mode} ({name})");
                ctx.report.add(
                    "throughput",
                    &format!("mode{mode}_MBps"),
                    &label,
                    rate / MB,
                    "MB/s",
                );
                ctx.report.add(
                    "latency",
                    &format!("mode{mode}_p50_ms"),
                    &format!("{label} p50"),
                    p50,
                    "ms",
                );
                ctx.report.add(
                    "latency",
                    &format!("mode{mode}_p99_ms"),
                    &format!("{label} p99"),
                    p99,
                    "ms",
                );
                ctx.report.add(
                    "cpu",
                    &format!("mode{mode}_cpu_s_per_GB"),
                    &format!("{label}, both connectd"),
                    cpu_per_gb,
                    "CPU s/GB",
                );
            }
            Err(e) => ctx.report.error(&format!("tunnel mode {mode}"), &e),
        }
    }
    // connectd's own command line as scripts use it (`-c ... 12`): max_depth 12, the window's floor.
    let fixed = async {
        let port = free_port()?;
        let mut p = ctx.lab.initiator_cli(&main_uid(), port, 3, 12, &[])?;
        blocking(|| wait_connected(&mut p))?;
        tcp_load::bulk(&ctx.service, ([127, 0, 0, 1], port).into(), bulk).await
    }
    .await;
    match fixed {
        Ok(rate) => ctx.report.add(
            "throughput",
            "mode3_cli_maxout12_MBps",
            "tunnel mode 3, `-c ... 12` (max_depth 12)",
            rate / MB,
            "MB/s",
        ),
        Err(e) => ctx.report.error("tunnel -c maxout 12", &e),
    }
    let r = &mut ctx.report;
    let ratio =
        |r: &Report, a: &str, b: &str| Some(r.get("throughput", a)? / r.get("throughput", b)?);
    let aead_ssh = ratio(r, "mode3_MBps", "ssh_MBps");
    let aead_raw = ratio(r, "mode3_MBps", "raw_MBps");
    let none_socat = ratio(r, "mode0_MBps", "socat_MBps");
    for (key, label, v) in [
        ("mode3_over_ssh", "ratio tunnel (mode 3) / ssh -L", aead_ssh),
        (
            "mode3_over_raw",
            "ratio tunnel (mode 3) / raw TCP",
            aead_raw,
        ),
        (
            "mode0_over_socat",
            "ratio tunnel (mode 0) / socat",
            none_socat,
        ),
    ] {
        r.add("throughput", key, label, v.unwrap_or(f64::NAN), "x");
    }
    r.goal(
        "modern mode (3) / ssh -L, loopback",
        ">= 1.5",
        shown_ratio(aead_ssh),
        aead_ssh.map(|v| v >= 1.5),
    );
    r.goal(
        "mode 0 / socat relay, loopback",
        ">= 1.0",
        shown_ratio(none_socat),
        none_socat.map(|v| v >= 1.0),
    );
    let round_trip = |r: &Report, p: &str| {
        let (t, s) = (
            r.get("latency", &format!("mode3_{p}_ms"))?,
            r.get("latency", &format!("ssh_{p}_ms"))?,
        );
        Some((t, s, t / s))
    };
    for p in ["p50", "p99"] {
        let ratio = round_trip(r, p).map_or(f64::NAN, |(_, _, v)| v);
        r.add(
            "latency",
            &format!("mode3_over_ssh_{p}"),
            &format!("ratio tunnel (mode 3) / ssh -L, {p}"),
            ratio,
            "x",
        );
    }
    let p99 = round_trip(r, "p99");
    r.goal(
        "1-byte round trip p99, mode 3 / ssh -L",
        "<= 1.0",
        p99.map_or("n/a".into(), |(t, s, v)| {
            format!("{t:.3} ms / {s:.3} ms = {v:.2}x")
        }),
        p99.map(|(_, _, v)| v <= 1.0),
    );
}

/// The cipher a connected initiator negotiated (its `!!status aead=` line: mode 3 picks AES-256-GCM
/// or ChaCha20-Poly1305), else the mode's name.
fn cipher_name(p: &mut Proc, mode: u8) -> String {
    let named = EncryptionMode::from_number(mode).map_or("?", |m| m.name());
    if EncryptionMode::from_number(mode) != Some(EncryptionMode::ChaCha20Poly1305) {
        return named.to_string();
    }
    // Printed right after `!!connected`; the reader thread may not have collected it yet.
    let negotiated = blocking(|| {
        p.wait_line("'!!status aead='", Duration::from_secs(2), |l| {
            l.starts_with("!!status aead=")
        })
    });
    negotiated
        .ok()
        .and_then(|l| Some(l.strip_prefix("!!status aead=")?.trim().to_string()))
        .unwrap_or_else(|| named.to_string())
}

pub(crate) fn shown_ratio(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.2}x"))
}

/// Throughput (bytes/s), latency p50 and p99 (ms) and CPU seconds per GB of `procs` through `addr`.
async fn measure_path(
    service: &Service,
    addr: SocketAddr,
    bulk: Duration,
    pings: usize,
    procs: &[&Proc],
) -> Result<(f64, f64, f64, f64), String> {
    let cpu0 = cpu(procs);
    service.drain();
    tcp_load::send_for(addr, bulk).await?;
    let t = service.transfers(1, bulk + Duration::from_secs(30)).await?;
    let cpu1 = cpu(procs);
    let rate = tcp_load::rate(&t);
    let bytes = t[0].bytes as f64;
    let cpu_per_gb = if procs.is_empty() || bytes == 0.0 {
        f64::NAN
    } else {
        (cpu1 - cpu0) / (bytes / 1e9)
    };
    let mut times = tcp_load::ping_pong(addr, pings).await?;
    let p50 = percentile_ms(&mut times, 50.0);
    let p99 = percentile_ms(&mut times, 99.0);
    Ok((rate, p50, p99, cpu_per_gb))
}

/// Not part of the default run: one tunnel in `mode` moving data for `seconds`, its processes' PIDs
/// printed first, so a profiler can be attached (`perf record -p PID`).
pub async fn soak(ctx: &mut Ctx, mode: u8, seconds: u64) {
    let r = async {
        let (p, addr) = tunnel(ctx, mode, None, &[])?;
        eprintln!(
            "soak: initiator pid {} target pid {}",
            p.pid(),
            ctx.target.pid()
        );
        let d = Duration::from_secs(seconds);
        let cpu0 = cpu(&[&p, &ctx.target]);
        let rate = tcp_load::bulk(&ctx.service, addr, d).await?;
        Ok::<_, String>((rate, cpu(&[&p, &ctx.target]) - cpu0))
    };
    match r.await {
        Ok((rate, cpu)) => {
            ctx.report.add(
                "soak",
                &format!("mode{mode}_MBps"),
                &format!("mode {mode}, {seconds} s"),
                rate / MB,
                "MB/s",
            );
            ctx.report
                .add("soak", "cpu_s", "CPU seconds, both connectd", cpu, "s");
        }
        Err(e) => ctx.report.error("soak", &e),
    }
}

/// Section 3: from the start call to the first byte echoed through the tunnel.
pub async fn connect_time(ctx: &mut Ctx) {
    let runs = ctx.budget.connects;
    let cli = cli_connects(ctx, runs, &[]).await;
    // The same without the router port mapping the initiator waits for before asking for a session
    // (no router answers on loopback): shows what that wait costs.
    let cli_no_portmap = cli_connects(ctx, runs, &[("P2P_PORTMAP", "0".to_string())]).await;
    let mut lib = Vec::new();
    for _ in 0..runs {
        match library_connect(&ctx.lab).await {
            Ok(t) => lib.push(t),
            Err(e) => {
                ctx.report.error("connect (library)", &e);
                break;
            }
        }
    }
    let cmdlet = match &ctx.cmdlet {
        Some(host) => {
            blocking(|| crate::cmdlet_connect::connects(host, &ctx.lab, &main_uid(), runs))
        }
        None => Err("not measured: pass --module (build.ps1 -Task Bench does)".to_string()),
    };
    for (key, label, times, goal) in [
        ("cli", "connectd -c (process start)", cli, true),
        ("cmdlet", "New-P2PConnection (in pwsh)", cmdlet, true),
        (
            "library",
            "p2p_net::Tunnel::start (C ABI stand-in)",
            Ok(lib),
            true,
        ),
        (
            "cli_no_portmap",
            "connectd -c, P2P_PORTMAP=0",
            cli_no_portmap,
            false,
        ),
    ] {
        let mut times = match times {
            Ok(t) => t,
            Err(e) => {
                ctx.report.error(&format!("connect ({key})"), &e);
                continue;
            }
        };
        if times.is_empty() {
            continue;
        }
        let n = times.len();
        let p50 = percentile_ms(&mut times, 50.0);
        let max = percentile_ms(&mut times, 100.0);
        ctx.report.add(
            "connect",
            &format!("{key}_p50_ms"),
            &format!("{label} p50 of {n}"),
            p50,
            "ms",
        );
        ctx.report.add(
            "connect",
            &format!("{key}_max_ms"),
            &format!("{label} max"),
            max,
            "ms",
        );
        if goal {
            ctx.report.goal(
                &format!("connect p50 ({key})"),
                "< 100 ms",
                format!("{p50:.1} ms"),
                Some(p50 < 100.0),
            );
        }
    }
}

/// `runs` times: start `connectd -c`, connect to its port as soon as it listens, wait for the echo.
async fn cli_connects(
    ctx: &Ctx,
    runs: usize,
    env: &[(&str, String)],
) -> Result<Vec<Duration>, String> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let port = free_port()?;
        let t0 = Instant::now();
        let p = ctx.lab.initiator_cli(&main_uid(), port, 3, 12, env)?;
        let c = first_echo(([127, 0, 0, 1], port).into(), Duration::from_secs(30))
            .await
            .map_err(|e| format!("{e}\n{}", p.tail(10)))?;
        times.push(t0.elapsed());
        drop(c);
        drop(p);
    }
    Ok(times)
}

async fn library_connect(lab: &Lab) -> Result<Duration, String> {
    let cfg = InitiatorConfig {
        name: None,
        device_id: main_uid().parse().map_err(|e| format!("{e}"))?,
        user: lab::USER.into(),
        password: Some(lab::PASSWORD.into()),
        auth_hash: None,
        server: Some(lab.control.to_string()),
        server_key: Some(lab.key.clone()),
        local_port: 0,
        bind_address: [127, 0, 0, 1].into(),
        encryption: EncryptionMode::ChaCha20Poly1305,
        max_outstanding: None,
        autoconnect: AutoConnect::Once,
        restrict_ip: None,
        lifetime_min: 0,
        idle_limit_sec: 0,
        key_file: Some(lab.config_dir().join("remoteitp2p").join("initiator.key")),
        device_key: Some(lab.device_fingerprint(&main_uid())?),
        accept_key: None,
        trust_first_use: false,
    };
    let t0 = Instant::now();
    let tunnel = p2p_net::Tunnel::start(cfg).await.map_err(|e| e.message)?;
    let c = first_echo(tunnel.local_addr(), Duration::from_secs(30)).await?;
    let t = t0.elapsed();
    drop(c);
    tunnel.stop().await;
    Ok(t)
}

/// Section 4: 64 streams at once through one tunnel.
pub async fn parallel(ctx: &mut Ctx) {
    let d = ctx.budget.parallel;
    let r = async {
        let (_p, addr) = tunnel(ctx, 3, None, &[])?;
        tcp_load::parallel(&ctx.service, addr, 64, d).await
    }
    .await;
    match r {
        Ok((rate, fairness)) => {
            ctx.report.add(
                "parallel",
                "aggregate_MBps",
                "64 streams, aggregate",
                rate / MB,
                "MB/s",
            );
            ctx.report.add(
                "parallel",
                "fairness",
                "64 streams, slowest/fastest",
                fairness,
                "",
            );
        }
        Err(e) => ctx.report.error("parallel", &e),
    }
    // The same load on raw TCP: how fair the machine itself is with 64 senders on its cores.
    match tcp_load::parallel(&ctx.service, ctx.service.addr, 64, d).await {
        Ok((rate, fairness)) => {
            ctx.report.add(
                "parallel",
                "raw_aggregate_MBps",
                "raw TCP, 64 streams, aggregate",
                rate / MB,
                "MB/s",
            );
            ctx.report.add(
                "parallel",
                "raw_fairness",
                "raw TCP, 64 streams, slowest/fastest",
                fairness,
                "",
            );
        }
        Err(e) => ctx.report.error("parallel (raw)", &e),
    }
}

/// Section 5 (memory): RSS of an idle session, and its growth per idle open stream.
pub async fn memory(ctx: &mut Ctx) {
    let n = ctx.budget.idle_streams;
    let r = async {
        let (p, addr) = tunnel(ctx, 3, None, &[])?;
        // Let the session settle (handshake buffers freed, first stats published).
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = |p: &Proc| {
            p.rss_bytes()
                .ok_or_else(|| "no RSS figure (/proc)".to_string())
        };
        let (i0, t0) = (rss(&p)?, rss(&ctx.target)?);
        let mut open = Vec::with_capacity(n);
        for chunk in 0..n.div_ceil(50) {
            let batch = (chunk * 50..((chunk + 1) * 50).min(n))
                .map(|_| first_echo(addr, Duration::from_secs(30)));
            for c in join_all(batch).await? {
                open.push(c?);
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (i1, t1) = (rss(&p)?, rss(&ctx.target)?);
        drop(open);
        Ok::<_, String>((i0, t0, i1, t1))
    };
    match r.await {
        Ok((i0, t0, i1, t1)) => {
            let per = |a: u64, b: u64| (b as f64 - a as f64) / n as f64 / KIB;
            let (gi, gt) = (per(i0, i1), per(t0, t1));
            let rep = &mut ctx.report;
            rep.add(
                "memory",
                "idle_session_rss_initiator_KiB",
                "idle session RSS, initiator",
                i0 as f64 / KIB,
                "KiB",
            );
            rep.add(
                "memory",
                "rss_target_KiB",
                "target RSS before streams",
                t0 as f64 / KIB,
                "KiB",
            );
            rep.add(
                "memory",
                "per_idle_stream_initiator_KiB",
                &format!("RSS growth per idle stream ({n}), initiator"),
                gi,
                "KiB",
            );
            rep.add(
                "memory",
                "per_idle_stream_target_KiB",
                &format!("RSS growth per idle stream ({n}), target"),
                gt,
                "KiB",
            );
            let worst = gi.max(gt);
            rep.goal(
                "RSS growth per idle stream",
                "< 64 KiB",
                format!("{worst:.1} KiB (larger of both ends)"),
                Some(worst < 64.0),
            );
        }
        Err(e) => ctx.report.error("memory", &e),
    }
}

/// Runs the futures concurrently as tasks (the workspace has no `futures` crate).
async fn join_all<F>(futs: impl Iterator<Item = F>) -> Result<Vec<F::Output>, String>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(
            h.await
                .map_err(|e| format!("a connection task failed: {e}"))?,
        );
    }
    Ok(out)
}

/// Section 7: a server of its own with many registered targets, and set-ups per second.
pub async fn server(ctx: &mut Ctx) {
    let n = ctx.budget.server_targets;
    let d = ctx.budget.setups;
    let dir = ctx.dir.join("server-load");
    let r = async {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let lab = blocking(|| Lab::start(&ctx.bins, &dir, &server_load::SERVER_ARGS))?;
        let uids: Vec<String> = (1000..1000 + n).map(uid).collect();
        let t0 = Instant::now();
        blocking(|| add_devices(&lab, &uids))?;
        let add_ms = t0.elapsed().as_secs_f64() * 1000.0 / f64::from(n);
        let reg_rate =
            server_load::register_targets(&lab, &uids, light_targets::DEVICES_PER_CONNECTION)
                .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = lab.server.rss_bytes().unwrap_or(0) as f64 / KIB / KIB;
        let hash = server_load::auth_hash(&lab).await?;
        let cpu0 = lab.server.cpu_seconds();
        let (by_hash, fail_hash) =
            server_load::setups(&lab, &uids, Credential::AuthHash(hash), 32, d).await?;
        let cpu1 = lab.server.cpu_seconds();
        let (by_pw, fail_pw) = server_load::setups(
            &lab,
            &uids,
            Credential::Password(lab::PASSWORD.into()),
            8,
            d,
        )
        .await?;
        let cpu_per_setup = cpu0
            .zip(cpu1)
            .map(|(a, b)| (b - a) / (by_hash * d.as_secs_f64()) * 1000.0);
        Ok::<_, String>((
            add_ms,
            reg_rate,
            rss,
            by_hash,
            fail_hash,
            by_pw,
            fail_pw,
            cpu_per_setup,
        ))
    };
    match r.await {
        Ok((add_ms, reg_rate, rss, by_hash, fail_hash, by_pw, fail_pw, cpu_per_setup)) => {
            let rep = &mut ctx.report;
            rep.add("server", "targets", "registered targets", f64::from(n), "");
            rep.add(
                "server",
                "device_add_ms",
                "`device add` (admin CLI) per device",
                add_ms,
                "ms",
            );
            rep.add(
                "server",
                "registrations_per_s",
                "registrations per second",
                reg_rate,
                "/s",
            );
            rep.add(
                "server",
                "rss_MiB",
                &format!("server RSS with {n} targets online"),
                rss,
                "MiB",
            );
            rep.add(
                "server",
                "setups_per_s_auth_hash",
                "set-ups per second (auth-hash login, 32 clients)",
                by_hash,
                "/s",
            );
            rep.add(
                "server",
                "setups_failed_auth_hash",
                "  failed",
                fail_hash as f64,
                "",
            );
            rep.add(
                "server",
                "server_cpu_ms_per_setup",
                "  server CPU per set-up",
                cpu_per_setup.unwrap_or(f64::NAN),
                "ms",
            );
            rep.add(
                "server",
                "setups_per_s_password",
                "set-ups per second (password login, 8 clients)",
                by_pw,
                "/s",
            );
            rep.add(
                "server",
                "setups_failed_password",
                "  failed",
                fail_pw as f64,
                "",
            );
            rep.goal(
                "server set-ups per second",
                ">= 200/s",
                format!("{by_hash:.0}/s (auth hash), {by_pw:.0}/s (password)"),
                Some(by_hash >= 200.0),
            );
        }
        Err(e) => ctx.report.error("server", &e),
    }
}

/// `device add` for every UID, two at a time (each hashes the secret with Argon2: CPU bound).
pub(crate) fn add_devices(lab: &Lab, uids: &[String]) -> Result<(), String> {
    let half = uids.len().div_ceil(2);
    std::thread::scope(|s| {
        let jobs: Vec<_> = uids
            .chunks(half.max(1))
            .map(|part| s.spawn(move || part.iter().try_for_each(|u| lab.add_device(u))))
            .collect();
        jobs.into_iter().try_for_each(|j| {
            j.join()
                .map_err(|_| "a device-adding thread panicked".to_string())?
        })
    })
}
