//! Load on the server alone, from in-process clients speaking the real control channel
//! (`p2p_net::control_channel`): many registered targets, then as many connection set-ups as it takes
//! (a new control connection, login, `Connect`, the target's `Accept`, the `Session` grant).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use p2p_net::control_channel::ControlClient;
use p2p_proto::control::{ClientMsg, Credential, ServerMsg};
use p2p_proto::{EncryptionMode, Uid};
use p2p_testkit::light_targets;

use crate::lab::{Lab, PASSWORD, USER};

const TIMEOUT: Duration = Duration::from_secs(10);

/// `p2p-server run` options of a server under set-up load: relay sessions of finished set-ups linger
/// until idle, so allow plenty and forget them fast.
pub const SERVER_ARGS: [&str; 6] = [
    "--max-sessions",
    "1000000",
    "--max-sessions-per-user",
    "1000000",
    "--relay-idle-timeout",
    "5",
];

fn key(lab: &Lab) -> Result<[u8; 32], String> {
    p2p_config::config::decode_server_key(&lab.key).map_err(|e| e.to_string())
}

fn parse_uid(text: &str) -> Result<Uid, String> {
    text.parse().map_err(|e| format!("bad UID {text}: {e}"))
}

/// Registers `uids` with light targets (`p2p_testkit::light_targets`: `per_connection` devices per
/// control connection) that keep answering `Incoming` with `Accept` in the background. Returns
/// registrations per second.
pub async fn register_targets(
    lab: &Lab,
    uids: &[String],
    per_connection: usize,
) -> Result<f64, String> {
    let secret = lab.device_secret().to_string();
    let devices: Vec<(Uid, String)> = uids
        .iter()
        .map(|u| Ok((parse_uid(u)?, secret.clone())))
        .collect::<Result<_, String>>()?;
    let start = Instant::now();
    let clients = light_targets::register_in_groups(
        &lab.control.to_string(),
        &key(lab)?,
        &devices,
        per_connection,
        TIMEOUT,
    )
    .await
    .map_err(|e| e.to_string())?;
    let rate = uids.len() as f64 / start.elapsed().as_secs_f64();
    for c in clients {
        tokio::spawn(light_targets::accept_all(c));
    }
    Ok(rate)
}

/// An auth hash for the benchmark user (what `connectd -p` logs in with: no password hashing per login).
pub async fn auth_hash(lab: &Lab) -> Result<String, String> {
    let mut c = login(lab, Credential::Password(PASSWORD.into())).await?;
    match c
        .request(&ClientMsg::CreateAuthHash {
            label: "bench".into(),
        })
        .await
        .map_err(|e| e.to_string())?
    {
        ServerMsg::AuthHash { auth_hash } => Ok(auth_hash),
        other => Err(format!("asking for an auth hash: {other:?}")),
    }
}

async fn login(lab: &Lab, credential: Credential) -> Result<ControlClient, String> {
    let mut c = ControlClient::connect(&lab.control.to_string(), &key(lab)?, TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    match c
        .request(&ClientMsg::Login {
            user: USER.into(),
            credential,
            initiator_key: None,
        })
        .await
        .map_err(|e| e.to_string())?
    {
        ServerMsg::LoginOk { .. } => Ok(c),
        other => Err(format!("login: {other:?}")),
    }
}

/// Set-ups per second with `workers` clients in parallel for `duration`, each set-up a fresh control
/// connection that logs in with `credential` and gets a session grant for one of `uids` (round robin).
/// Returns (set-ups per second, failures).
pub async fn setups(
    lab: &Lab,
    uids: &[String],
    credential: Credential,
    workers: usize,
    duration: Duration,
) -> Result<(f64, u64), String> {
    let uids: Arc<Vec<Uid>> = Arc::new(
        uids.iter()
            .map(|u| parse_uid(u))
            .collect::<Result<_, _>>()?,
    );
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (uids, next, done, failed) = (uids.clone(), next.clone(), done.clone(), failed.clone());
        let credential = credential.clone();
        let lab_view = (lab.control, key(lab)?);
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize % uids.len();
                match one_setup(lab_view, credential.clone(), uids[i]).await {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((
        done.load(Ordering::Relaxed) as f64 / secs,
        failed.load(Ordering::Relaxed),
    ))
}

async fn one_setup(
    (control, key): (std::net::SocketAddr, [u8; 32]),
    credential: Credential,
    uid: Uid,
) -> Result<(), String> {
    let mut c = ControlClient::connect(&control.to_string(), &key, TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let reply = c
        .request(&ClientMsg::Login {
            user: USER.into(),
            credential,
            initiator_key: None,
        })
        .await
        .map_err(|e| e.to_string())?;
    if !matches!(reply, ServerMsg::LoginOk { .. }) {
        return Err(format!("login: {reply:?}"));
    }
    let reply = c
        .request(&ClientMsg::Connect {
            uid,
            mode: EncryptionMode::ChaCha20Poly1305,
            local_candidates: vec![],
        })
        .await
        .map_err(|e| e.to_string())?;
    match reply {
        ServerMsg::Session(_) => Ok(()),
        other => Err(format!("connect: {other:?}")),
    }
}
