//! The sessions of this process, by handle. Handles start at 1 and are never reused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use p2p_net::Tunnel;

use crate::error::FfiError;

/// One registered tunnel. The tunnel is dropped inside the runtime's context wherever its last reference
/// goes (a host thread or a runtime worker), because dropping it may spawn its background shutdown.
pub struct Session {
    tunnel: Option<Tunnel>,
}

impl Session {
    pub fn tunnel(&self) -> &Tunnel {
        // Only `drop` takes the tunnel out.
        self.tunnel
            .as_ref()
            .expect("session tunnel present until drop")
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let tunnel = self.tunnel.take();
        match crate::runtime::runtime() {
            Ok(rt) => {
                let _context = rt.enter();
                drop(tunnel);
            }
            Err(_) => drop(tunnel),
        }
    }
}

fn sessions() -> MutexGuard<'static, HashMap<u64, Arc<Session>>> {
    static SESSIONS: OnceLock<Mutex<HashMap<u64, Arc<Session>>>> = OnceLock::new();
    // A panic never happens while the lock is held (only map operations run under it); recover anyway so
    // one bug cannot disable every later call.
    SESSIONS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// Registers a started tunnel and returns its new handle.
pub fn insert(tunnel: Tunnel) -> u64 {
    let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
    let session = Arc::new(Session {
        tunnel: Some(tunnel),
    });
    sessions().insert(handle, session);
    handle
}

pub fn get(handle: u64) -> Result<Arc<Session>, FfiError> {
    sessions()
        .get(&handle)
        .cloned()
        .ok_or_else(|| FfiError::invalid_handle(handle))
}

/// Every registered session, by ascending handle.
pub fn all() -> Vec<(u64, Arc<Session>)> {
    let mut list: Vec<_> = sessions()
        .iter()
        .map(|(handle, session)| (*handle, Arc::clone(session)))
        .collect();
    list.sort_by_key(|(handle, _)| *handle);
    list
}

pub fn remove(handle: u64) -> Option<Arc<Session>> {
    sessions().remove(&handle)
}
