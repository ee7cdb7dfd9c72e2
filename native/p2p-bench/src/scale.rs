//! Per-node figures for sizing a deployment (docs/SCALING.md): one node over SQLite, one over
//! PostgreSQL, and two nodes on one PostgreSQL. Each node gets the same load as the `server` section:
//! devices added with `p2p-server device add`, registered by in-process light targets (real control
//! channel, one connection per device like real targets), then set-ups from in-process clients (new control connection,
//! auth-hash login, `Connect`, the target's `Accept`, the `Session` grant).
//!
//! Figures: set-ups per second, server CPU per set-up, server memory per online device (RSS growth
//! while the devices register, divided by their number) and, over PostgreSQL, database transactions
//! per set-up (`pg_stat_database`: each of the store's statements is its own transaction). And the
//! relay's cost: one tunnel forced through the main server's relay (`P2P_DISABLE_DIRECT=1` on both
//! peers, mode 0 so the peers spend least), a bulk transfer, bytes per CPU second of the server.

use std::time::Duration;

use p2p_proto::control::Credential;
use p2p_system_tests::postgres::Postgres;

use crate::lab::{uid, wait_connected, Lab};
use crate::sections::{add_devices, blocking, Ctx, KIB};
use crate::server_load;
use crate::tcp_load::{self, free_port};

const SECTION: &str = "scale";
const CLIENTS: usize = 32;
/// The database the benchmark's cluster holds the accounts in.
const DATABASE: &str = "p2p";

/// What one measurement on one node gives.
struct NodeFigures {
    setups_per_s: f64,
    failed: u64,
    cpu_ms_per_setup: f64,
    rss_kib_per_device: f64,
    xacts_per_setup: f64,
}

/// The relayed tunnel's device (clear of the `server` section's and this section's devices).
const RELAY_DEVICE: u32 = 900;

pub async fn run(ctx: &mut Ctx) {
    match relay_per_core(ctx).await {
        Ok((rate, per_cpu_second)) => {
            ctx.report.add(
                SECTION,
                "relay_MBps",
                "relay: one relayed tunnel (mode 0) through the server",
                rate / 1e6,
                "MB/s",
            );
            ctx.report.add(
                SECTION,
                "relay_MB_per_cpu_s",
                "  relayed per second of server CPU (per core)",
                per_cpu_second / 1e6,
                "MB",
            );
        }
        Err(e) => ctx.report.error(SECTION, &format!("relay: {e}")),
    }
    match one_node(ctx, "sqlite", None).await {
        Ok(f) => report(ctx, "sqlite", "one node, SQLite", &f),
        Err(e) => ctx.report.error(SECTION, &format!("SQLite node: {e}")),
    }
    let pg = match blocking(|| std::panic::catch_unwind(Postgres::start)) {
        Ok(pg) => pg,
        Err(_) => {
            let why = "not available: no PostgreSQL here (Debian: postgresql)";
            ctx.report
                .text(SECTION, "pg_setups_per_s", "one node, PostgreSQL", why);
            ctx.report.text(
                SECTION,
                "two_nodes_setups_per_s",
                "two nodes, PostgreSQL",
                why,
            );
            return;
        }
    };
    let url = blocking(|| pg.create_database(DATABASE));
    match one_node(ctx, "postgres", Some((&pg, &url))).await {
        Ok(f) => report(ctx, "pg", "one node, PostgreSQL", &f),
        Err(e) => ctx.report.error(SECTION, &format!("PostgreSQL node: {e}")),
    }
    let url = blocking(|| pg.create_database("p2p_two_nodes"));
    match two_nodes(ctx, &url).await {
        Ok(Some((rate, failed))) => {
            ctx.report.add(
                SECTION,
                "two_nodes_setups_per_s",
                &format!("two nodes, PostgreSQL: set-ups per second ({CLIENTS} clients on each, targets on node A)"),
                rate,
                "/s",
            );
            ctx.report
                .add(SECTION, "two_nodes_failed", "  failed", failed as f64, "");
        }
        Ok(None) => ctx.report.text(
            SECTION,
            "two_nodes_setups_per_s",
            "two nodes, PostgreSQL",
            "not available: an initiator on node B could not reach a device registered on node A (forwarding between nodes failed)",
        ),
        Err(e) => ctx.report.error(SECTION, &format!("two nodes: {e}")),
    }
}

/// (bytes per second through the relay, bytes per CPU second of the server).
async fn relay_per_core(ctx: &Ctx) -> Result<(f64, f64), String> {
    let env = [("P2P_DISABLE_DIRECT", "1".to_string())];
    let device = uid(RELAY_DEVICE);
    blocking(|| ctx.lab.add_device(&device))?;
    let _target = blocking(|| ctx.lab.start_target(&device, ctx.service.addr, &env))?;
    let port = free_port()?;
    let mut initiator = ctx.lab.initiator_file(&device, port, 0, None, &env)?;
    blocking(|| wait_connected(&mut initiator))?;
    let cpu0 = ctx.lab.server.cpu_seconds();
    let rate = tcp_load::bulk(&ctx.service, ([127, 0, 0, 1], port).into(), ctx.budget.bulk).await?;
    let cpu1 = ctx.lab.server.cpu_seconds();
    let bytes = rate * ctx.budget.bulk.as_secs_f64();
    let cpu = cpu0
        .zip(cpu1)
        .map(|(a, b)| b - a)
        .filter(|c| *c > 0.0)
        .ok_or("no CPU time of the server")?;
    Ok((rate, bytes / cpu))
}

fn uids(n: u32) -> Vec<String> {
    (1000..1000 + n).map(uid).collect()
}

async fn start_node(
    ctx: &Ctx,
    name: &str,
    url: Option<&str>,
    uids: &[String],
) -> Result<(Lab, f64), String> {
    let dir = ctx.dir.join(format!("scale-{name}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lab = blocking(|| Lab::start_over(&ctx.bins, &dir, &server_load::SERVER_ARGS, url))?;
    blocking(|| add_devices(&lab, uids))?;
    let before = lab.server.rss_bytes().unwrap_or(0) as f64;
    // One control connection per device, as real targets hold: the memory figure includes it.
    server_load::register_targets(&lab, uids, 1).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = lab.server.rss_bytes().unwrap_or(0) as f64;
    let per_device = (after - before) / KIB / uids.len() as f64;
    Ok((lab, per_device))
}

async fn one_node(
    ctx: &Ctx,
    name: &str,
    pg: Option<(&Postgres, &str)>,
) -> Result<NodeFigures, String> {
    let uids = uids(ctx.budget.server_targets);
    let (lab, rss_kib_per_device) = start_node(ctx, name, pg.map(|(_, url)| url), &uids).await?;
    let hash = server_load::auth_hash(&lab).await?;
    let d = ctx.budget.setups;
    let xacts0 = match pg {
        Some((pg, _)) => Some(transactions(pg).await?),
        None => None,
    };
    let cpu0 = lab.server.cpu_seconds();
    let (rate, failed) =
        server_load::setups(&lab, &uids, Credential::AuthHash(hash), CLIENTS, d).await?;
    let cpu1 = lab.server.cpu_seconds();
    let done = rate * d.as_secs_f64();
    let xacts_per_setup = match (pg, xacts0) {
        (Some((pg, _)), Some(x0)) => (transactions(pg).await? - x0) / done,
        _ => f64::NAN,
    };
    Ok(NodeFigures {
        setups_per_s: rate,
        failed,
        cpu_ms_per_setup: cpu0
            .zip(cpu1)
            .map_or(f64::NAN, |(a, b)| (b - a) / done * 1000.0),
        rss_kib_per_device,
        xacts_per_setup,
    })
}

/// Committed and rolled-back transactions of the benchmark's database so far. Statistics reach the
/// view up to a second after the transactions end; the wait before reading covers that.
async fn transactions(pg: &Postgres) -> Result<f64, String> {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (client, connection) = tokio_postgres::connect(&pg.url("postgres"), tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("statistics connection: {e}"))?;
    let driver = tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT (xact_commit + xact_rollback)::float8 FROM pg_stat_database WHERE datname = $1",
            &[&DATABASE],
        )
        .await
        .map_err(|e| format!("pg_stat_database: {e}"))?;
    drop(client);
    let _ = driver.await;
    Ok(row.get(0))
}

/// Targets on node A, initiators split over A and B. `None` when B cannot reach A's devices at all.
async fn two_nodes(ctx: &Ctx, url: &str) -> Result<Option<(f64, u64)>, String> {
    let uids = uids(ctx.budget.server_targets);
    let (a, _) = start_node(ctx, "two-nodes", Some(url), &uids).await?;
    let b = blocking(|| a.another_node())?;
    let hash = server_load::auth_hash(&a).await?;
    let d = ctx.budget.setups;
    let (on_a, on_b) = tokio::join!(
        server_load::setups(&a, &uids, Credential::AuthHash(hash.clone()), CLIENTS, d),
        server_load::setups(&b, &uids, Credential::AuthHash(hash), CLIENTS, d),
    );
    let ((rate_a, failed_a), (rate_b, failed_b)) = (on_a?, on_b?);
    if rate_b == 0.0 {
        return Ok(None);
    }
    Ok(Some((rate_a + rate_b, failed_a + failed_b)))
}

fn report(ctx: &mut Ctx, key: &str, name: &str, f: &NodeFigures) {
    let n = ctx.budget.server_targets;
    let rep = &mut ctx.report;
    rep.add(
        SECTION,
        &format!("{key}_setups_per_s"),
        &format!("{name}: set-ups per second (auth-hash login, {CLIENTS} clients, {n} targets)"),
        f.setups_per_s,
        "/s",
    );
    rep.add(
        SECTION,
        &format!("{key}_failed"),
        "  failed",
        f.failed as f64,
        "",
    );
    rep.add(
        SECTION,
        &format!("{key}_cpu_ms_per_setup"),
        "  server CPU per set-up",
        f.cpu_ms_per_setup,
        "ms",
    );
    rep.add(
        SECTION,
        &format!("{key}_rss_KiB_per_device"),
        "  server memory per online device",
        f.rss_kib_per_device,
        "KiB",
    );
    if f.xacts_per_setup.is_finite() {
        rep.add(
            SECTION,
            &format!("{key}_db_transactions_per_setup"),
            "  database transactions (statements) per set-up",
            f.xacts_per_setup,
            "",
        );
    }
}
