//! `p2p-bench`: the tunnel beside raw TCP, `ssh -L` and socat on loopback, with the real release
//! binaries. Prints a table, the goals (met or not, never asserted) and optionally the same figures as
//! JSON.
//!
//! ```text
//! cargo build --release -p p2p-server -p connectd
//! cargo run --release -p p2p-bench -- [--quick] [--json out.json] [--only LIST] [--bin-dir DIR]
//! ```
//!
//! Modules: [`sections`] the measurements; [`lab`] server / target / initiator processes; [`tcp_load`]
//! the service every path leads to and its clients; [`baselines`] sshd + ssh -L and socat; [`impair`]
//! the delay/loss UDP relay; [`server_load`] in-process control-channel clients; [`procs`] child
//! processes and /proc figures; [`report`] table, JSON and goals; [`aead_speed`] mode 3's two AEADs.

mod aead_speed;
mod baselines;
mod cmdlet_connect;
mod impair;
mod impaired;
mod lab;
mod procs;
mod report;
mod scale;
mod sections;
mod server_load;
mod soak;
mod tcp_load;

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;

use crate::lab::{Bins, Lab};
use crate::report::Report;
use crate::sections::{Budget, Ctx};

const SECTIONS: [&str; 8] = [
    "paths", "connect", "parallel", "memory", "impaired", "server", "scale", "aead",
];

/// Sections run only when named in `--only`.
const EXTRA_SECTIONS: [&str; 2] = ["soak", "endurance"];

const USAGE: &str = "usage: p2p-bench [--quick] [--json FILE] [--only SECTION,...] [--bin-dir DIR]
  --quick      shorter runs (about 1-2 minutes in all)
  --json FILE  also write the figures as JSON to FILE
  --only LIST  run only these sections: paths (throughput, latency, CPU), connect, parallel, memory,
               impaired, server, scale (one node on SQLite, on PostgreSQL, two nodes), aead (seal/open speed of mode 3's AEADs); or soak (one tunnel busy for a while, to attach a profiler), or
               endurance (mixed traffic, impairment, fallbacks and restarts; memory at start and end)
  --minutes N  the endurance section's length (default 60; tools/soak.sh runs it)
  --soak MODE,SECONDS  the soak section's encryption mode and duration (default 3,20)
  --bin-dir    where p2p-server and connectd are (default: the workspace's target/release)
  --module PSD1  the built PowerShell module (out/RemoteItP2P/RemoteItP2P.psd1): the connect section
               then also times New-P2PConnection (build.ps1 -Task Bench passes it)
  --pwsh PATH  PowerShell for --module (default: pwsh)";

struct Args {
    quick: bool,
    json: Option<PathBuf>,
    only: Vec<String>,
    bin_dir: PathBuf,
    soak: (u8, u64),
    minutes: u64,
    module: Option<PathBuf>,
    pwsh: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        json: None,
        only: SECTIONS.iter().map(|s| s.to_string()).collect(),
        bin_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release"),
        soak: (3, 20),
        minutes: 60,
        module: None,
        pwsh: PathBuf::from("pwsh"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => args.quick = true,
            "--json" => args.json = Some(value("--json")?.into()),
            "--bin-dir" => args.bin_dir = value("--bin-dir")?.into(),
            "--module" => args.module = Some(value("--module")?.into()),
            "--pwsh" => args.pwsh = value("--pwsh")?.into(),
            "--only" => {
                let list = value("--only")?;
                args.only = list.split(',').map(|s| s.trim().to_string()).collect();
                let known = |s: &str| SECTIONS.contains(&s) || EXTRA_SECTIONS.contains(&s);
                if let Some(bad) = args.only.iter().find(|s| !known(s)) {
                    return Err(format!(
                        "--only: unknown section '{bad}' (known: {}, {})",
                        SECTIONS.join(", "),
                        EXTRA_SECTIONS.join(", ")
                    ));
                }
            }
            "--soak" => {
                let v = value("--soak")?;
                let parsed = v.split_once(',').and_then(|(m, s)| {
                    Some((
                        m.trim().parse::<u8>().ok().filter(|m| *m <= 3)?,
                        s.trim().parse::<u64>().ok()?,
                    ))
                });
                args.soak = parsed.ok_or_else(|| {
                    format!("--soak: expected MODE,SECONDS like 3,20 (mode 0-3), got '{v}'")
                })?;
            }
            "--minutes" => {
                let v = value("--minutes")?;
                args.minutes = v.parse().ok().filter(|m| *m > 0).ok_or_else(|| {
                    format!("--minutes: expected a whole number above 0, got '{v}'")
                })?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("p2p-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("p2p-bench: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("p2p-bench: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let bins = Bins::in_dir(&args.bin_dir)?;
    let tmp = tempfile::Builder::new()
        .prefix("p2p-bench-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let dir = tmp.path().to_path_buf();
    let service = tcp_load::Service::start()
        .await
        .map_err(|e| format!("cannot start the TCP service: {e}"))?;
    let (lab, target) = tokio::task::block_in_place(|| {
        // The sections open hundreds of sessions for one user, some ended by killing connectd (whose
        // relay sessions then linger until idle): the per-user limit is not what is measured here.
        let lab = Lab::start(&bins, &dir, &["--max-sessions-per-user", "1000000"])?;
        lab.add_device(&lab::uid(0))?;
        let target = lab.start_target(&lab::uid(0), service.addr, &[])?;
        Ok::<_, String>((lab, target))
    })?;
    let mut ctx = Ctx {
        budget: Budget::new(args.quick),
        bins,
        dir,
        service,
        lab,
        target,
        report: Report::default(),
        cmdlet: args.module.map(|module| cmdlet_connect::CmdletHost {
            module,
            pwsh: args.pwsh,
        }),
    };
    let machine = machine();
    eprintln!(
        "p2p-bench{}: {} cores, {}",
        if args.quick { " --quick" } else { "" },
        machine["nproc"],
        machine["cpu"].as_str().unwrap_or("?")
    );
    for section in &args.only {
        let started = std::time::Instant::now();
        eprintln!("[{section}] running...");
        match section.as_str() {
            "paths" => sections::paths(&mut ctx).await,
            "connect" => sections::connect_time(&mut ctx).await,
            "parallel" => sections::parallel(&mut ctx).await,
            "memory" => sections::memory(&mut ctx).await,
            "impaired" => impaired::impaired(&mut ctx).await,
            "server" => sections::server(&mut ctx).await,
            "scale" => scale::run(&mut ctx).await,
            "aead" => aead_speed::run(&mut ctx.report, args.quick),
            "soak" => sections::soak(&mut ctx, args.soak.0, args.soak.1).await,
            "endurance" => soak::run(&mut ctx, args.minutes).await,
            _ => {}
        }
        eprintln!(
            "[{section}] done in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let command = std::iter::once("p2p-bench".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    println!(
        "p2p-bench: {} cores, {} ({})",
        machine["nproc"],
        machine["cpu"].as_str().unwrap_or("?"),
        machine["kernel"].as_str().unwrap_or("?")
    );
    print!("{}", ctx.report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&ctx.report.json(machine, &command))
            .map_err(|e| format!("cannot encode the JSON: {e}"))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("\nJSON written to {}", path.display());
    }
    Ok(())
}

/// What the figures were measured on.
fn machine() -> serde_json::Value {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(
        |_| std::env::consts::OS.to_string(),
        |k| format!("{} {}", std::env::consts::OS, k.trim()),
    );
    json!({"nproc": nproc, "cpu": cpu, "kernel": kernel})
}
