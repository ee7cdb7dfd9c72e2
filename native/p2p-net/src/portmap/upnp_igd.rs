//! UPnP Internet Gateway Device through `igd-next`'s blocking client, run on tokio's blocking pool.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use igd_next::{Gateway, PortMappingProtocol, SearchOptions};

use crate::net_util;

/// SSDP search time: answering routers do so within a few hundred milliseconds.
const SEARCH_TIMEOUT: Duration = Duration::from_secs(2);
const DESCRIPTION: &str = "RemoteItP2P";

/// Finds the IGD on the LAN.
pub async fn discover() -> Result<Gateway, String> {
    blocking(|| {
        let mut opts = SearchOptions::default();
        opts.timeout = Some(SEARCH_TIMEOUT);
        opts.single_search_timeout = Some(SEARCH_TIMEOUT);
        igd_next::search_gateway(opts).map_err(|e| format!("no UPnP IGD answered: {e}"))
    })
    .await
}

/// Maps UDP `local_port` on `gw`, preferring the same external port (then the peer's view of us stays
/// the port our NAT already uses), else any port. Returns the external address.
pub async fn map(
    gw: Gateway,
    local_port: u16,
    external_port: u16,
    lease: Duration,
) -> Result<SocketAddr, String> {
    blocking(move || {
        let lan_ip = lan_address(&gw)?;
        let local = SocketAddr::new(lan_ip, local_port);
        let secs = u32::try_from(lease.as_secs()).unwrap_or(u32::MAX).max(1);
        let ext_ip = gw
            .get_external_ip()
            .map_err(|e| format!("{} gave no external address: {e}", gw.addr))?;
        let wanted = if external_port == 0 {
            local_port
        } else {
            external_port
        };
        let port = match gw.add_port(PortMappingProtocol::UDP, wanted, local, secs, DESCRIPTION) {
            Ok(()) => wanted,
            Err(first) => gw
                .add_any_port(PortMappingProtocol::UDP, local, secs, DESCRIPTION)
                .map_err(|e| format!("{} refused the mapping: {first}; {e}", gw.addr))?,
        };
        Ok(SocketAddr::new(ext_ip, port))
    })
    .await
}

pub async fn unmap(gw: Gateway, external_port: u16) -> Result<(), String> {
    blocking(move || {
        gw.remove_port(PortMappingProtocol::UDP, external_port)
            .map_err(|e| format!("{} did not remove the mapping: {e}", gw.addr))
    })
    .await
}

/// Our address on the link to the gateway: where the router must send mapped traffic.
fn lan_address(gw: &Gateway) -> Result<IpAddr, String> {
    net_util::route_source(gw.addr)
        .ok_or_else(|| format!("no local address routes to the gateway {}", gw.addr))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(format!("the UPnP worker failed: {e}")))
}
