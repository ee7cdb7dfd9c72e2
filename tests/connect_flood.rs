//! Protocol attacks, load: a flood of control-channel clients asking for sessions — some
//! without logging in, some logged in but asking for a device that is offline — while a legitimate
//! tunnel moves data. Every request gets a clear refusal, the tunnel's transfer completes, the server's
//! memory stays bounded, and the legitimate user still connects afterwards.

use std::time::{Duration, Instant};

use base64::Engine;
use p2p_net::control_channel::ControlClient;
use p2p_proto::control::{ClientMsg, Credential, ErrorCode, ServerMsg};
use p2p_proto::{EncryptionMode, Uid};
use p2p_system_tests::lab::{serial, TRANSFER_TIMEOUT};
use p2p_system_tests::os::{memory, Memory};
use p2p_system_tests::services::{Kind, Transfer, TransferService};
use p2p_system_tests::Lab;

const MIB: u64 = 1024 * 1024;
/// Clients that send `Connect` without `Login`.
const UNAUTHENTICATED: usize = 300;
/// Clients that log in (a real Argon2 check each) and ask for an offline device.
const LOGGED_IN: usize = 100;
/// Generous: the server's idle size is a few MiB; Argon2 work areas (19 MiB, 4 at once) come and go.
const MAX_GROWTH_KIB: u64 = 300 * 1024;

/// What one flooding client got: `Ok(code)` of the refusal, or why the exchange failed.
async fn one_request(
    server: String,
    key: [u8; 32],
    login: Option<(String, String)>,
    uid: Uid,
) -> Result<ErrorCode, String> {
    let mut c = ControlClient::connect(&server, &key, Duration::from_secs(20))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    if let Some((user, password)) = login {
        c.send(&ClientMsg::Login {
            user,
            credential: Credential::Password(password),
            initiator_key: None,
        })
        .await
        .map_err(|e| format!("send login: {e}"))?;
        match c.recv().await.map_err(|e| format!("login answer: {e}"))? {
            ServerMsg::LoginOk { .. } => {}
            other => return Err(format!("login refused: {other:?}")),
        }
    }
    c.send(&ClientMsg::Connect {
        uid,
        mode: EncryptionMode::ChaCha20Poly1305,
        local_candidates: Vec::new(),
    })
    .await
    .map_err(|e| format!("send connect: {e}"))?;
    match c.recv().await.map_err(|e| format!("connect answer: {e}"))? {
        ServerMsg::Error { code, message } => {
            if message.trim().is_empty() || message.contains('\n') {
                return Err(format!(
                    "refusal {code:?} without a one-line message: {message:?}"
                ));
            }
            Ok(code)
        }
        other => Err(format!("expected a refusal, got {other:?}")),
    }
}

#[test]
fn a_flood_of_session_requests_is_refused_in_bounded_memory_while_a_tunnel_works() {
    let _serial = serial();
    let mut lab = Lab::new("connect_flood");
    let svc = TransferService::start();
    let t = lab.tunnel(svc.port(), 3, &[]);
    let flooder = lab.account();
    let offline = lab.device(&flooder); // never started: always offline
    let server = lab.server.address();
    let key: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(&lab.server.key)
        .expect("server key base64")
        .try_into()
        .expect("32-byte server key");
    let pid = lab.server.proc().pid();
    let rss_before = memory(pid).rss_kib;

    // The legitimate tunnel moves data for the whole flood.
    let legit = Transfer::start_paced(t.port, Kind::Echo, 16 * MIB, Some(4 * MIB));

    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let uid: Uid = offline.uid.parse().expect("uid");
    let results: Vec<(bool, Result<ErrorCode, String>)> = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..UNAUTHENTICATED + LOGGED_IN {
            let login =
                (i >= UNAUTHENTICATED).then(|| (flooder.user.clone(), flooder.password.clone()));
            let authed = login.is_some();
            tasks.push((
                authed,
                tokio::spawn(one_request(server.clone(), key, login, uid)),
            ));
        }
        let mut out = Vec::new();
        for (authed, task) in tasks {
            out.push((
                authed,
                task.await.unwrap_or_else(|e| Err(format!("task: {e}"))),
            ));
        }
        out
    });
    let flood_time = started.elapsed();

    let mut wrong = Vec::new();
    for (i, (authed, r)) in results.iter().enumerate() {
        let expected = if *authed {
            ErrorCode::DeviceOffline
        } else {
            ErrorCode::BadRequest
        };
        match r {
            Ok(code) if *code == expected => {}
            other => wrong.push(format!("client {i} (logged in: {authed}): {other:?}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} flooding clients did not get the expected refusal:\n{}",
        wrong.len(),
        results.len(),
        wrong.join("\n")
    );

    legit
        .join(TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("the tunnel's transfer failed during the flood: {e}"));

    let Memory {
        rss_kib: rss_after,
        peak_kib: peak,
    } = memory(pid);
    eprintln!(
        "{} requests refused in {flood_time:?}; server RSS {rss_before} KiB before, peak {peak} KiB, {rss_after} KiB after",
        results.len()
    );
    assert!(
        peak.saturating_sub(rss_before) < MAX_GROWTH_KIB,
        "server memory grew from {rss_before} KiB to a peak of {peak} KiB during the flood"
    );

    // The server still serves: the legitimate user opens a new tunnel.
    let again = lab.initiator(&lab.spec(&t.account, &t.device, 3), &[]);
    Transfer::run(again.port(), Kind::Echo, MIB, TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("a new tunnel after the flood failed: {e}"));
    assert!(
        lab.server.proc().try_status().is_none(),
        "the server exited during the flood"
    );
}
