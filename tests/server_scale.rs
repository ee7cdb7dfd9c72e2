//! Load: one server with 1000 registered, online targets and 100 sessions live at once, each
//! moving data both ways through a real tunnel and the server's relay, while the server answers its
//! control channel promptly and stays within a memory bound.
//!
//! The 1000 targets are light ones (`p2p_testkit::light_targets`: real control connections, 50 devices each,
//! that register and accept offers but carry no data); the 100 sessions are in-process initiator tunnels
//! (`p2p_net::Tunnel`, what connectd runs) to 4 real target processes, one per user (the default limit
//! is 64 sessions per user). The targets refuse direct paths, so every byte goes through the relay.

use std::time::{Duration, Instant};

use argon2::PasswordHasher;
use base64::Engine;
use p2p_net::control_channel::ControlClient;
use p2p_net::{PathKind, TunnelState};
use p2p_proto::control::{ClientMsg, Credential, ServerMsg};
use p2p_proto::Uid;
use p2p_system_tests::data::{hex, Rng};
use p2p_system_tests::initiator::tunnel_config;
use p2p_system_tests::lab::{env, serial};
use p2p_system_tests::os::memory;
use p2p_system_tests::services::{Kind, Transfer, TransferService};
use p2p_system_tests::{Account, Device, Lab};
use p2p_testkit::light_targets;

const REGISTERED: usize = 1000;
const USERS: usize = 4;
const SESSIONS_PER_USER: usize = 25;
/// Bytes each session sends, and gets back (echo), checksummed.
const EACH_WAY: u64 = 256 * 1024;
/// The server's resident memory at its peak (Argon2 work areas of the 1000 registrations included).
/// Measured about 90 MiB on a 2-core machine (11 MiB at the end).
const MAX_PEAK_KIB: u64 = 256 * 1024;
/// The server's resident memory once the load is over.
const MAX_END_KIB: u64 = 64 * 1024;
/// A control-channel round trip (`Ping` -> `Pong`) while all of this goes on.
const MAX_PING: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(60);

/// Adds `REGISTERED` devices that share one secret. The first goes through `p2p-server device add`;
/// the others are rows written straight into the database (same owner and secret, another UID) with an
/// Argon2id hash of the smallest cost: a row carries its own Argon2 parameters, and at the real ones
/// (19 MiB, 2 passes) `device add` and registration would spend most of a minute hashing on two cores
/// (the benchmark measures that rate). Registering still verifies each device's secret.
fn add_fleet(lab: &Lab, owner: &Account) -> (Vec<Uid>, String) {
    let uids: Vec<String> = (0..REGISTERED)
        .map(|i| format!("80:00:00:00:02:00:{:02X}:{:02X}", i >> 8, i & 0xff))
        .collect();
    let template = Device {
        uid: uids[0].clone(),
        secret: hex(&Rng::from_os().bytes(16)),
    };
    lab.add_device(&template, owner);
    let cheap = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(8, 1, 1, None).expect("argon2 parameters"),
    );
    let mut db =
        rusqlite::Connection::open(lab.server.data_dir.join("p2p.db")).expect("open p2p.db");
    db.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    let tx = db.transaction().expect("transaction");
    for uid in &uids[1..] {
        let hash = cheap
            .hash_password(template.secret.as_bytes())
            .expect("hash the device secret")
            .to_string();
        tx.execute(
            "INSERT INTO devices (uid, owner_id, name, application_type, secret_hash, created_at) \
             SELECT ?1, owner_id, name, application_type, ?2, created_at FROM devices WHERE uid = ?3",
            [uid, &hash, &template.uid],
        )
        .expect("add a device row");
    }
    tx.commit().expect("commit the devices");
    let uids = uids.iter().map(|u| u.parse().expect("uid")).collect();
    (uids, template.secret)
}

/// Starts every tunnel and waits until all are connected; returns them with their local ports.
async fn start_tunnels(configs: Vec<serde_json::Value>) -> Vec<p2p_net::Tunnel> {
    let mut tunnels = Vec::new();
    for c in configs {
        let cfg = serde_json::from_value(c).expect("tunnel configuration");
        tunnels.push(p2p_net::Tunnel::start(cfg).await.expect("start a tunnel"));
    }
    for (i, t) in tunnels.iter().enumerate() {
        let mut w = t.watch();
        let s = tokio::time::timeout(TIMEOUT, w.wait_for(|s| s.state != TunnelState::Connecting))
            .await
            .unwrap_or_else(|_| panic!("tunnel {i} did not connect within {TIMEOUT:?}"))
            .expect("tunnel status")
            .clone();
        // Degraded (up, the device silent for a while) counts as up: a loaded machine may starve one.
        assert!(
            s.state.is_up(),
            "tunnel {i}: {:?} {:?}",
            s.state,
            s.last_error
        );
    }
    tunnels
}

/// Pings the server on its control channel until `stop`, returning the slowest round trip.
async fn ping_until(mut c: ControlClient, stop: tokio::sync::oneshot::Receiver<()>) -> Duration {
    let mut slowest = Duration::ZERO;
    let pings = async {
        loop {
            let t0 = Instant::now();
            let pong = c.request(&ClientMsg::Ping).await.expect("ping the server");
            assert!(matches!(pong, ServerMsg::Pong), "{pong:?}");
            slowest = slowest.max(t0.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        _ = pings => {}
        _ = stop => {}
    }
    slowest
}

#[test]
fn a_thousand_targets_online_and_a_hundred_sessions_moving_data() {
    let _serial = serial();
    let started = Instant::now();
    let mut lab = Lab::new("server_scale");
    let key: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(&lab.server.key)
        .expect("server key base64")
        .try_into()
        .expect("32-byte server key");
    let server = lab.server.address();
    let pid = lab.server.proc().pid();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    // A client pings the server on its control channel from start to end. It logs in first: a
    // connection that has not is closed at the login deadline, pings or not.
    let pinging_user = lab.account();
    let mut pinger = rt
        .block_on(ControlClient::connect(&server, &key, TIMEOUT))
        .expect("control connection");
    let logged_in = rt
        .block_on(pinger.request(&ClientMsg::Login {
            user: pinging_user.user.clone(),
            credential: Credential::Password(pinging_user.password.clone()),
            initiator_key: None,
        }))
        .expect("the pinging client logs in");
    assert!(
        matches!(logged_in, ServerMsg::LoginOk { .. }),
        "{logged_in:?}"
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let slowest_ping = rt.spawn(ping_until(pinger, stop_rx));

    // 1000 devices online.
    let fleet_owner = lab.account();
    let (uids, secret) = add_fleet(&lab, &fleet_owner);
    let devices: Vec<(Uid, String)> = uids.into_iter().map(|u| (u, secret.clone())).collect();
    let t0 = Instant::now();
    let connections = rt
        .block_on(light_targets::register(&server, &key, &devices, TIMEOUT))
        .expect("register 1000 devices");
    let registering = t0.elapsed();
    let fleet: Vec<_> = connections
        .into_iter()
        .map(|c| rt.spawn(light_targets::accept_all(c)))
        .collect();
    let after_registering = memory(pid);

    // 4 users, each with a real target process; 25 sessions each.
    let svc = TransferService::start();
    let no_direct = env(&[("P2P_DISABLE_DIRECT", "1")]);
    let users: Vec<(Account, Device)> = (0..USERS).map(|_| lab.account_and_device()).collect();
    let _targets: Vec<_> = users
        .iter()
        .map(|(_, d)| lab.target(d, svc.port(), &no_direct))
        .collect();
    let configs = users
        .iter()
        .flat_map(|(a, d)| (0..SESSIONS_PER_USER).map(|_| tunnel_config(&lab, a, d)))
        .collect();
    let t0 = Instant::now();
    let tunnels = rt.block_on(start_tunnels(configs));
    let connecting = t0.elapsed();

    // All 100 move data at once.
    let t0 = Instant::now();
    let transfers: Vec<Transfer> = tunnels
        .iter()
        .map(|t| Transfer::start(t.local_addr().port(), Kind::Echo, EACH_WAY))
        .collect();
    let failures: Vec<String> = transfers
        .into_iter()
        .enumerate()
        .filter_map(|(i, t)| t.join(TIMEOUT).err().map(|e| format!("session {i}: {e}")))
        .collect();
    let moving = t0.elapsed();
    let _ = stop_tx.send(());
    let slowest_ping = rt.block_on(slowest_ping).expect("pinger");
    let end = memory(pid);
    eprintln!(
        "{REGISTERED} devices registered in {registering:?}; {} sessions connected in {connecting:?}; \
         {} KiB each way per session moved in {moving:?}; slowest ping {slowest_ping:?}; server RSS \
         {} KiB after registering, {} KiB at the end, peak {} KiB; whole test {:?}",
        tunnels.len(),
        EACH_WAY / 1024,
        after_registering.rss_kib,
        end.rss_kib,
        end.peak_kib,
        started.elapsed()
    );

    assert!(
        failures.is_empty(),
        "{} of {} transfers failed:\n{}",
        failures.len(),
        tunnels.len(),
        failures.join("\n")
    );
    for (i, t) in tunnels.iter().enumerate() {
        let s = t.status();
        assert!(
            s.state.is_up(),
            "tunnel {i} after its transfer: {:?}",
            s.state
        );
        assert_eq!(
            s.path,
            Some(PathKind::Relayed),
            "tunnel {i} should be relayed"
        );
    }
    assert!(
        fleet.iter().all(|f| !f.is_finished()),
        "a light target's control connection closed during the load"
    );
    assert!(
        slowest_ping < MAX_PING,
        "the server took {slowest_ping:?} to answer a ping under load"
    );
    assert!(
        end.peak_kib < MAX_PEAK_KIB,
        "the server's memory peaked at {} KiB (bound {MAX_PEAK_KIB} KiB)",
        end.peak_kib
    );
    assert!(
        end.rss_kib < MAX_END_KIB,
        "the server holds {} KiB after the load (bound {MAX_END_KIB} KiB)",
        end.rss_kib
    );
    assert!(
        lab.server.proc().try_status().is_none(),
        "the server exited under load"
    );
    rt.block_on(async {
        for t in &tunnels {
            t.stop().await;
        }
    });
    for f in fleet {
        f.abort();
    }
}
