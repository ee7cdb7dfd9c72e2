//! Environment knobs read by the driver (tests use them to insert an impairment relay).

use std::net::SocketAddr;

/// `P2P_RELAY_OVERRIDE=host:port`: send relay traffic there instead of the server's relay address (a
/// user-space impairment relay in front of the real one).
pub fn relay_override() -> Option<SocketAddr> {
    let v = std::env::var("P2P_RELAY_OVERRIDE").ok()?;
    match v.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            log::warn!("ignoring P2P_RELAY_OVERRIDE='{v}': not an address:port");
            None
        }
    }
}
