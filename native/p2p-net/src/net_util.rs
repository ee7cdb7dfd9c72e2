//! Small socket helpers shared by the initiator, the target and the self-test: resolving the server,
//! binding the session socket, and finding our own (host) candidate addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::error::{Error, ErrorKind, Result};

/// A name lookup that takes longer than this is treated as a failure (a hung resolver must not hang us).
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves `host:port` to one address (the first the resolver returns), within [`RESOLVE_TIMEOUT`].
pub async fn resolve(server: &str) -> Result<SocketAddr> {
    resolve_within(server, RESOLVE_TIMEOUT).await
}

/// [`resolve`] with an explicit time limit.
///
/// Errors: [`ErrorKind::InvalidConfig`] when `server` is not `host:port`, [`ErrorKind::ServerUnreachable`]
/// when the name does not resolve or the resolver does not answer in time.
pub async fn resolve_within(server: &str, timeout: Duration) -> Result<SocketAddr> {
    let server = server.trim();
    check_host_port(server)?;
    let unreachable = |why: String| {
        Error::new(
            ErrorKind::ServerUnreachable,
            format!("cannot resolve server '{server}': {why}"),
        )
    };
    match tokio::time::timeout(timeout, tokio::net::lookup_host(server)).await {
        Ok(Ok(mut addrs)) => addrs
            .next()
            .ok_or_else(|| unreachable("the name has no address".into())),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!(
            "no answer from the resolver within {} ms",
            timeout.as_millis()
        ))),
    }
}

/// Checks the shape `host:port` (or `[v6]:port`) so a typo gets a config error, not a DNS error.
pub(crate) fn check_host_port(server: &str) -> Result<()> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::InvalidConfig,
            format!("invalid server address '{server}': {why} (expected host:port)"),
        )
    };
    let (host, port) = server.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    if host.is_empty() {
        return Err(bad("no host"));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad("the port must be a number from 1 to 65535")),
        Ok(_) => Ok(()),
    }
}

/// The unspecified address (`0.0.0.0` or `::`) of `addr`'s family.
pub fn unspecified_for(addr: SocketAddr) -> IpAddr {
    match addr {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// Binds a UDP socket on an ephemeral port of the same family as `server_addr`, on every interface:
/// the one socket then reaches the server, the relay and the peer.
pub async fn bind_udp(server_addr: SocketAddr) -> Result<UdpSocket> {
    let local = SocketAddr::new(unspecified_for(server_addr), 0);
    crate::udp_socket::bind(local).map_err(|e| {
        Error::new(
            ErrorKind::UdpBind,
            format!("cannot bind a UDP socket on {local}: {e}"),
        )
    })
}

/// Binds the session socket: dual-stack (`[::]`, IPv4 and IPv6 at once) where the host has IPv6, so that
/// a peer's global IPv6 address can be probed from the same socket that talks to the server over IPv4;
/// else one of `server_addr`'s family ([`bind_udp`]).
pub async fn bind_session_udp(server_addr: SocketAddr) -> Result<UdpSocket> {
    match crate::udp_socket::bind_dual_stack(0) {
        Ok(socket) => Ok(socket),
        Err(e) => {
            log::debug!("no dual-stack UDP socket ({e}): binding the server's family alone");
            bind_udp(server_addr).await
        }
    }
}

/// At most this many global IPv6 addresses become candidates (a host with privacy addresses has a
/// few per prefix; the peer probes each one).
const MAX_IPV6_CANDIDATES: usize = 3;

/// Which IPv6 addresses become candidates. Not unique-local ones: a peer at the same site reaches us at
/// our IPv4 LAN address anyway, and a remote peer could hit another site's identical private prefix.
pub use crate::udp_socket::is_global_ipv6;

/// Our global IPv6 addresses on the session socket's `port`, from the OS's interface list (first in its
/// order, at most [`MAX_IPV6_CANDIDATES`]). Empty without IPv6 or when listing the interfaces fails.
pub fn global_ipv6_candidates(port: u16) -> Vec<SocketAddr> {
    let interfaces = match if_addrs::get_if_addrs() {
        Ok(list) => list,
        Err(e) => {
            log::debug!("cannot list the network interfaces: {e}");
            return Vec::new();
        }
    };
    let mut out: Vec<SocketAddr> = Vec::new();
    for ip in interfaces
        .iter()
        .map(|i| i.ip())
        .filter(|ip| is_global_ipv6(*ip))
    {
        let c = SocketAddr::new(ip, port);
        if !out.contains(&c) && out.len() < MAX_IPV6_CANDIDATES {
            out.push(c);
        }
    }
    out
}

/// The address of our interface that routes to `server_addr`, learnt by "connecting" a UDP socket
/// (which sends nothing: the OS only picks the route and the source address).
pub fn route_source(server_addr: SocketAddr) -> Option<IpAddr> {
    let probe = std::net::UdpSocket::bind(SocketAddr::new(unspecified_for(server_addr), 0)).ok()?;
    probe.connect(server_addr).ok()?;
    let ip = probe.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// Our host candidates for a session socket bound on `port`: the interface address that reaches the
/// server (a peer on the same LAN reaches us there), plus loopback when the server is on this machine's
/// loopback (peers on one machine). Never empty for a loopback server; may be empty when there is no route.
pub fn host_candidates(server_addr: SocketAddr, port: u16) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    if let Some(ip) = route_source(server_addr) {
        out.push(SocketAddr::new(ip, port));
    }
    if server_addr.ip().is_loopback() {
        let lo = match server_addr {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        let c = SocketAddr::new(lo, port);
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_literal_and_localhost() {
        assert_eq!(
            resolve("127.0.0.1:5980").await.unwrap(),
            "127.0.0.1:5980".parse().unwrap()
        );
        assert_eq!(
            resolve(" [::1]:7 ").await.unwrap(),
            "[::1]:7".parse().unwrap()
        );
        let a = resolve("localhost:80").await.unwrap();
        assert!(a.ip().is_loopback() && a.port() == 80, "{a}");
    }

    #[tokio::test]
    async fn bad_shapes_are_config_errors() {
        for bad in [
            "example.org",
            ":80",
            "host:",
            "host:0",
            "host:99999",
            "host:http",
        ] {
            let e = resolve(bad).await.unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidConfig, "{bad}: {e}");
            assert!(e.message.contains(bad), "{e}");
        }
    }

    #[tokio::test]
    async fn unknown_name_is_server_unreachable() {
        // `.invalid` never resolves (RFC 2606).
        let e = resolve("no-such-host.invalid:5980").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::ServerUnreachable, "{e}");
        assert!(e.message.contains("no-such-host.invalid"), "{e}");
    }

    #[tokio::test]
    async fn binds_the_server_family() {
        let s = bind_udp("127.0.0.1:9".parse().unwrap()).await.unwrap();
        let a = s.local_addr().unwrap();
        assert!(
            a.is_ipv4() && a.ip().is_unspecified() && a.port() != 0,
            "{a}"
        );
        // IPv6 may be disabled on a build machine: only check the family when it binds.
        if let Ok(s6) = bind_udp("[::1]:9".parse().unwrap()).await {
            assert!(s6.local_addr().unwrap().is_ipv6());
        }
    }

    #[test]
    fn only_global_unicast_ipv6_addresses_are_candidates() {
        let global = |s: &str| is_global_ipv6(s.parse().unwrap());
        for yes in ["2001:db8:5::2", "2a01:4f8::1", "3fff::1"] {
            assert!(global(yes), "{yes}");
        }
        for no in [
            "fe80::1",
            "fd12:3456::1",
            "::1",
            "::",
            "::ffff:198.18.10.1",
            "ff02::1",
            "198.18.10.1",
        ] {
            assert!(!global(no), "{no}");
        }
        for c in global_ipv6_candidates(4321) {
            assert!(is_global_ipv6(c.ip()) && c.port() == 4321, "{c}");
        }
    }

    #[tokio::test]
    async fn the_session_socket_is_dual_stack_where_ipv6_exists() {
        let s = bind_session_udp("127.0.0.1:9".parse().unwrap())
            .await
            .unwrap();
        let a = s.local_addr().unwrap();
        assert!(a.ip().is_unspecified() && a.port() != 0, "{a}");
        if a.is_ipv6() {
            let v4 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let to = crate::udp_socket::to_socket_family(a, v4.local_addr().unwrap());
            s.send_to(b"x", to).await.unwrap();
            let mut buf = [0u8; 4];
            assert_eq!(v4.recv(&mut buf).unwrap(), 1);
        }
    }

    #[test]
    fn loopback_server_gives_loopback_candidate() {
        let c = host_candidates("127.0.0.1:5959".parse().unwrap(), 4000);
        assert_eq!(c, vec!["127.0.0.1:4000".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn candidates_carry_the_port() {
        // A documentation address: a route may or may not exist here; whatever is found uses our port.
        for c in host_candidates("192.0.2.1:5959".parse().unwrap(), 4321) {
            assert_eq!(c.port(), 4321);
            assert!(!c.ip().is_unspecified());
        }
    }
}
