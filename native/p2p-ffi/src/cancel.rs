//! Cancellation tokens: `p2p_cancel_new` / `p2p_cancel_fire` / `p2p_cancel_free`, and the blocking calls
//! that take one (`p2p_session_wait`, `p2p_session_stop_cancellable`, `p2p_network_test_cancellable`).
//!
//! A token is named by an integer id, like a session (a `HandleTable`: ids start at 1 and are never
//! reused; 0 means "no token"), so a stale or made-up id is an error code, never a dangling pointer. Firing is sticky: every
//! wait using the token ends, those in progress and those started later. A wait holds its own reference,
//! so freeing a token while another thread waits on it is safe (that wait then ends by its timeout or its
//! event only, since nobody can fire a freed id).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

use crate::error::{FfiError, P2P_ERR_CANCELLED, P2P_ERR_INVALID_HANDLE};
use crate::handle_table::HandleTable;

/// One token: `true` once fired.
pub struct CancelToken {
    fired: watch::Sender<bool>,
}

impl CancelToken {
    fn new() -> Self {
        CancelToken {
            fired: watch::Sender::new(false),
        }
    }

    pub fn is_fired(&self) -> bool {
        *self.fired.borrow()
    }

    fn fire(&self) {
        // `send_replace` stores the value even when nobody waits yet, so later waits see it.
        self.fired.send_replace(true);
    }

    /// Completes once the token is fired (at once when it already was).
    pub async fn fired(&self) {
        let mut rx = self.fired.subscribe();
        // The sender lives in `self`, so the channel cannot close while this runs.
        let _ = rx.wait_for(|fired| *fired).await;
    }
}

static TOKENS: HandleTable<CancelToken> = HandleTable::new();

fn unknown(id: u64) -> FfiError {
    FfiError::new(
        P2P_ERR_INVALID_HANDLE,
        format!("no cancellation token with id {id} (never created, or freed)"),
    )
}

/// Creates a token and returns its id (never 0).
pub fn create() -> u64 {
    TOKENS.insert(CancelToken::new())
}

pub fn fire(id: u64) -> Result<(), FfiError> {
    let token = TOKENS.get(id).ok_or_else(|| unknown(id))?;
    token.fire();
    Ok(())
}

pub fn free(id: u64) -> Result<(), FfiError> {
    TOKENS.remove(id).map(|_| ()).ok_or_else(|| unknown(id))
}

/// The token a blocking call was given: `None` for 0, an error for an unknown id.
pub fn lookup(id: u64) -> Result<Option<Arc<CancelToken>>, FfiError> {
    if id == 0 {
        return Ok(None);
    }
    TOKENS.get(id).map(Some).ok_or_else(|| unknown(id))
}

/// The error of a call whose token was fired; `message` says what was abandoned and what goes on.
pub fn cancelled(message: String) -> FfiError {
    FfiError::new(P2P_ERR_CANCELLED, message)
}

/// Runs `fut` until it completes or `token` is fired (`None` never fires). `fut` is polled first, so a
/// result that is ready wins over a fired token.
pub async fn or_cancelled<F: Future>(token: Option<&CancelToken>, fut: F) -> Option<F::Output> {
    let Some(token) = token else {
        return Some(fut.await);
    };
    tokio::select! {
        biased;
        out = fut => Some(out),
        () = token.fired() => None,
    }
}
