//! The session operations behind the exports: start, status, wait, list, stop, forget, shutdown.

use std::sync::Arc;
use std::time::Duration;

use p2p_config::{ConfigError, InitiatorConfig};
use p2p_net::{Tunnel, TunnelState};
use tokio::task::JoinHandle;

use crate::cancel::{self, CancelToken};
use crate::error::{FfiError, P2P_ERR_INVALID_CONFIG, P2P_ERR_PANIC, P2P_ERR_TIMEOUT};
use crate::json::{self, HostEnv, StatusWithId};
use crate::registry::{self, Session};
use crate::runtime::{block_on, runtime};

/// How long `p2p_session_forget` waits for a session that is still running to stop.
pub const FORGET_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The last error's kind when no server address was given anywhere (INVALID_CONFIG). Hosts name their
/// own ways of giving one (New-P2PConnection: -Server, `$env:P2P_SERVER`).
pub const KIND_NO_SERVER: &str = "NoServer";
/// The same for the server's public key.
pub const KIND_NO_SERVER_KEY: &str = "NoServerKey";

/// Takes `server` and `server_key` from the host's environment (then the process's) when the
/// configuration has none, so the tunnel gets them explicitly and never reads an environment the host
/// could not set. Neither anywhere is an INVALID_CONFIG of kind `NoServer` / `NoServerKey`, in words
/// that fit any host (connectd's own message names its flags).
pub fn fill_server(cfg: &mut InitiatorConfig, env: &HostEnv) -> Result<(), FfiError> {
    let server = cfg.server.clone().or_else(|| env.var("P2P_SERVER"));
    let server_key = cfg.server_key.clone().or_else(|| env.var("P2P_SERVER_KEY"));
    // The one resolution rule (blank server = none, key decoding), with nothing left to look up.
    match p2p_config::config::resolve_server(&server, &server_key, |_| None) {
        Ok(_) => {
            cfg.server = server;
            cfg.server_key = server_key;
            Ok(())
        }
        Err(ConfigError::NoServer) => Err(FfiError::with_kind(
            P2P_ERR_INVALID_CONFIG,
            KIND_NO_SERVER,
            "no server: the configuration has no 'server' (host:port) and P2P_SERVER is set neither in \
             its 'environment' nor in the process environment",
        )),
        Err(ConfigError::NoServerKey) => Err(FfiError::with_kind(
            P2P_ERR_INVALID_CONFIG,
            KIND_NO_SERVER_KEY,
            "no server key: the configuration has no 'server_key' (the key 'p2p-server init' printed) \
             and P2P_SERVER_KEY is set neither in its 'environment' nor in the process environment",
        )),
        Err(e) => Err(FfiError::invalid_config(e.to_string())),
    }
}

/// Starts a tunnel and registers it. Returns once the local port is bound.
pub fn start(mut cfg: InitiatorConfig, env: &HostEnv) -> Result<u64, FfiError> {
    fill_server(&mut cfg, env)?;
    // Never format `cfg` itself: it holds the credential.
    log::info!(
        "starting session '{}' to {} on {}:{}",
        cfg.display_name(),
        cfg.device_id,
        cfg.bind_address,
        cfg.local_port
    );
    let tunnel = block_on(Tunnel::start(cfg))??;
    let local = tunnel.local_addr();
    let handle = registry::insert(tunnel);
    log::info!("session {handle} listening on {local}");
    Ok(handle)
}

fn status_of(handle: u64, session: &Session) -> Result<String, FfiError> {
    let status = session.tunnel().status();
    json::to_json(&StatusWithId {
        id: handle,
        status: &status,
    })
}

pub fn status_json(handle: u64) -> Result<String, FfiError> {
    let session = registry::get(handle)?;
    status_of(handle, &session)
}

pub fn list_json() -> Result<String, FfiError> {
    let sessions = registry::all();
    let statuses: Vec<_> = sessions
        .iter()
        .map(|(handle, session)| (*handle, session.tunnel().status()))
        .collect();
    let views: Vec<_> = statuses
        .iter()
        .map(|(id, status)| StatusWithId { id: *id, status })
        .collect();
    json::to_json(&views)
}

/// Starts stopping `session` on the runtime. The stop goes on even when the caller stops waiting.
fn spawn_stop(session: Arc<Session>) -> Result<JoinHandle<()>, FfiError> {
    Ok(runtime()?.spawn(async move { session.tunnel().stop().await }))
}

/// The outcome of a finished stop task.
fn stop_result(handle: u64, joined: Result<(), tokio::task::JoinError>) -> Result<(), FfiError> {
    match joined {
        Ok(()) => Ok(()),
        Err(e) if e.is_panic() => Err(FfiError::new(
            P2P_ERR_PANIC,
            format!(
                "internal error while stopping session {handle} (a bug, please report it): {}",
                crate::boundary::panic_message(&e.into_panic())
            ),
        )),
        Err(e) => Err(FfiError::internal(format!(
            "stopping session {handle} was cancelled: {e}"
        ))),
    }
}

fn timeout_error(what: &str, wait: Duration) -> FfiError {
    FfiError::new(
        P2P_ERR_TIMEOUT,
        format!(
            "{what} did not finish within {} ms; it goes on in the background",
            wait.as_millis()
        ),
    )
}

/// Stops a session and waits up to `wait` for its port to close.
pub fn stop(handle: u64, wait: Duration) -> Result<(), FfiError> {
    stop_cancellable(handle, wait, None)
}

/// [`stop`], whose wait also ends when `cancel` is fired (the stop goes on in the background).
pub fn stop_cancellable(
    handle: u64,
    wait: Duration,
    cancel: Option<&CancelToken>,
) -> Result<(), FfiError> {
    let session = registry::get(handle)?;
    log::debug!("stopping session {handle}");
    let task = spawn_stop(session)?;
    // The timer is made inside the future: it needs the runtime, which `block_on` enters.
    let waited = block_on(cancel::or_cancelled(cancel, async move {
        tokio::time::timeout(wait, task).await
    }))?;
    match waited {
        Some(Ok(joined)) => stop_result(handle, joined),
        Some(Err(_elapsed)) => Err(timeout_error(&format!("stopping session {handle}"), wait)),
        None => Err(cancel::cancelled(format!(
            "waiting for session {handle} to stop was cancelled; the stop goes on in the background"
        ))),
    }
}

/// Parses the state a waiter last saw (`"Connecting"`, ...).
pub fn parse_state(name: &str) -> Result<TunnelState, FfiError> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|_| {
        FfiError::invalid_argument(format!(
            "'{name}' is not a session state (Connecting, Connected, Degraded, Reconnecting, Stopped, \
             Failed)"
        ))
    })
}

/// Waits until the session's status changes and returns it as JSON: with `since`, until its state
/// differs from `since` (at once when it already does); without, until the tunnel's next change
/// notification (state, path; not the counters). TIMEOUT after `wait`, CANCELLED when `cancel` fires.
pub fn wait(
    handle: u64,
    since: Option<TunnelState>,
    wait: Duration,
    cancel: Option<&CancelToken>,
) -> Result<String, FfiError> {
    let session = registry::get(handle)?;
    let mut rx = session.tunnel().watch();
    // What is there now counts as seen: only later changes wake the wait below.
    let now = rx.borrow_and_update().state;
    if since.is_some_and(|seen| seen != now) {
        return status_of(handle, &session);
    }
    let changed = async move {
        loop {
            if rx.changed().await.is_err() {
                // The tunnel's task has ended: its status is final and will not change again.
                std::future::pending::<()>().await;
            }
            match since {
                Some(seen) if rx.borrow_and_update().state == seen => continue,
                _ => return,
            }
        }
    };
    let waited = if cancel.is_some_and(CancelToken::is_fired) {
        None
    } else if wait.is_zero() {
        Some(Err(()))
    } else {
        block_on(cancel::or_cancelled(cancel, async {
            tokio::time::timeout(wait, changed).await.map_err(|_| ())
        }))?
    };
    match waited {
        Some(Ok(())) => status_of(handle, &session),
        Some(Err(())) => Err(FfiError::new(
            P2P_ERR_TIMEOUT,
            format!(
                "session {handle} did not change within {} ms",
                wait.as_millis()
            ),
        )),
        None => Err(cancel::cancelled(format!(
            "waiting for session {handle} to change was cancelled"
        ))),
    }
}

/// Stops a session if needed, then drops it from the registry. On a failed or timed-out stop the session
/// stays registered, so its state remains visible and the call can be repeated.
pub fn forget(handle: u64) -> Result<(), FfiError> {
    stop(handle, FORGET_STOP_TIMEOUT)?;
    registry::remove(handle);
    log::debug!("session {handle} forgotten");
    Ok(())
}

/// Stops every session at once, waiting up to `wait` in all, and forgets those whose stop finished.
pub fn shutdown(wait: Duration) -> Result<(), FfiError> {
    let sessions = registry::all();
    if sessions.is_empty() {
        return Ok(());
    }
    log::debug!("shutting down {} session(s)", sessions.len());
    let mut tasks = Vec::with_capacity(sessions.len());
    for (handle, session) in sessions {
        tasks.push((handle, spawn_stop(session)?));
    }
    let (finished, first_error) = block_on(async move {
        let mut finished = Vec::new();
        let mut first_error = None;
        let _ = tokio::time::timeout(wait, async {
            for (handle, task) in tasks.iter_mut() {
                let outcome = stop_result(*handle, task.await);
                finished.push(*handle);
                if let Err(e) = outcome {
                    first_error.get_or_insert(e);
                }
            }
        })
        .await;
        (finished, first_error)
    })?;
    let total = registry::all().len();
    for handle in &finished {
        registry::remove(*handle);
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if finished.len() < total {
        return Err(timeout_error(
            &format!("stopping {} session(s)", total - finished.len()),
            wait,
        ));
    }
    Ok(())
}
