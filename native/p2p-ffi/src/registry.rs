//! The sessions of this process, by handle (a `HandleTable`: handles start at 1, never reused).

use std::sync::Arc;

use p2p_net::Tunnel;

use crate::error::FfiError;
use crate::handle_table::HandleTable;

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

static SESSIONS: HandleTable<Session> = HandleTable::new();

/// Registers a started tunnel and returns its new handle.
pub fn insert(tunnel: Tunnel) -> u64 {
    SESSIONS.insert(Session {
        tunnel: Some(tunnel),
    })
}

pub fn get(handle: u64) -> Result<Arc<Session>, FfiError> {
    SESSIONS
        .get(handle)
        .ok_or_else(|| FfiError::invalid_handle(handle))
}

/// Every registered session, by ascending handle.
pub fn all() -> Vec<(u64, Arc<Session>)> {
    SESSIONS.all()
}

pub fn remove(handle: u64) -> Option<Arc<Session>> {
    SESSIONS.remove(handle)
}
