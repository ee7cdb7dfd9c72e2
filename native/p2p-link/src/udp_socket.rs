//! UDP sockets with buffers sized for a tunnel.
//!
//! A session sends its congestion window as a burst; with the OS's default receive buffer (about
//! 208 KiB on Linux) the peer's socket overflows long before the window is large, and every overflow
//! looks like congestion and halves the window. The benchmark measured mode 0 going from 64 to 117 MB/s
//! with 4 MiB buffers. Every UDP socket of the project (peers, relay, probes) is made here.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// What we ask the OS for, each way.
pub const BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// Binds a non-blocking UDP socket on `addr` with large buffers (as large as the OS allows) and hands it
/// to tokio.
pub fn bind(addr: SocketAddr) -> io::Result<tokio::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Same behaviour on every OS: an IPv6 socket is IPv6 only (Windows defaults to that already).
        let _ = socket.set_only_v6(true);
    }
    grow_buffers(&socket);
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// Binds a non-blocking UDP socket on every IPv6 and IPv4 address at once (`[::]` with IPV6_V6ONLY off,
/// which Linux, macOS and Windows all support), port `port` (0: any), with large buffers. One socket then
/// reaches the server and the relay over IPv4 and a peer's global IPv6 address alike, and keeps one port
/// (one NAT mapping) for everything. IPv4 peers appear on it as IPv4-mapped IPv6 addresses: see
/// [`to_socket_family`] and [`canonical`]. Fails where IPv6 is off; the caller then binds IPv4 alone.
pub fn bind_dual_stack(port: u16) -> io::Result<tokio::net::UdpSocket> {
    let addr = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port));
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(false)?;
    grow_buffers(&socket);
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// `dest` as a socket bound on `local` can send to it: an IPv4 address becomes IPv4-mapped on an IPv6
/// (dual-stack) socket; anything else is left as it is.
pub fn to_socket_family(local: SocketAddr, dest: SocketAddr) -> SocketAddr {
    match dest {
        SocketAddr::V4(v4) if local.is_ipv6() => {
            SocketAddr::new(std::net::IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
        }
        _ => dest,
    }
}

/// A sender's address as the rest of the program compares it: an IPv4-mapped IPv6 address (an IPv4
/// peer seen through a dual-stack socket) becomes the plain IPv4 address.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// A global unicast IPv6 address (2000::/3): one a peer anywhere can reach when no firewall stops it.
/// Not link-local (fe80::/10: valid on one link only), not unique-local (fc00::/7), not IPv4-mapped,
/// loopback or multicast. Behind a home router such an address is not translated, only firewalled.
pub fn is_global_ipv6(ip: std::net::IpAddr) -> bool {
    matches!(ip, std::net::IpAddr::V6(v6) if (v6.segments()[0] & 0xe000) == 0x2000)
}

/// Best effort: a smaller buffer only costs speed.
fn grow_buffers(socket: &Socket) {
    let _ = socket.set_recv_buffer_size(BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(BUFFER_BYTES);
    force_beyond_os_limit(socket);
}

/// Linux caps SO_RCVBUF/SO_SNDBUF at `net.core.rmem_max`/`wmem_max` (208 KiB by default); a privileged
/// process (root, CAP_NET_ADMIN: a daemon, a server) may go beyond with the FORCE variants.
#[cfg(target_os = "linux")]
fn force_beyond_os_limit(socket: &Socket) {
    use std::os::fd::AsRawFd;
    if socket.recv_buffer_size().unwrap_or(0) >= BUFFER_BYTES {
        return;
    }
    // Failure (no privilege) leaves the buffer as it was.
    for option in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        set_int_option(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            BUFFER_BYTES as libc::c_int,
        );
    }
}

/// Best-effort `setsockopt` of an `int` option (the options here have no socket2 setter).
#[cfg(target_os = "linux")]
fn set_int_option(
    fd: std::os::fd::RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) {
    // SAFETY: a valid socket descriptor and a c_int option value of the right size.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn force_beyond_os_limit(_socket: &Socket) {}

/// Lets the OS fragment our datagrams again, as a plain UDP socket does. quinn-udp (the batching in
/// p2p-net's `udp_batch`) sets "don't fragment" for QUIC's path-MTU discovery; the tunnel has none and
/// sends 1428-byte IP packets, which would be dropped for good on a path with a smaller MTU (WireGuard's
/// is 1420). Best effort: on failure the socket keeps don't-fragment.
pub fn allow_fragmentation(socket: &tokio::net::UdpSocket) {
    let v6 = socket.local_addr().is_ok_and(|a| a.is_ipv6());
    os_allow_fragmentation(socket, v6);
}

#[cfg(target_os = "linux")]
fn os_allow_fragmentation(socket: &tokio::net::UdpSocket, v6: bool) {
    use std::os::fd::AsRawFd;
    // PMTUDISC_WANT is Linux's default for UDP: don't-fragment until the kernel learns a smaller path
    // MTU, then fragment locally.
    // An IPv6 socket may be dual-stack: its IPv4 datagrams follow the IPv4 option (Linux accepts it there).
    let options: &[(libc::c_int, libc::c_int, libc::c_int)] = if v6 {
        &[
            (
                libc::IPPROTO_IPV6,
                libc::IPV6_MTU_DISCOVER,
                libc::IPV6_PMTUDISC_WANT,
            ),
            (libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, 0),
            (
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                libc::IP_PMTUDISC_WANT,
            ),
        ]
    } else {
        &[(
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_WANT,
        )]
    };
    for &(level, name, value) in options {
        set_int_option(socket.as_raw_fd(), level, name, value);
    }
}

#[cfg(windows)]
fn os_allow_fragmentation(socket: &tokio::net::UdpSocket, v6: bool) {
    use std::os::windows::io::AsRawSocket;
    // Winsock's setsockopt and option numbers (ws2def.h / ws2ipdef.h): IP_DONTFRAGMENT and
    // IPV6_DONTFRAG are both 14.
    #[link(name = "ws2_32")]
    extern "system" {
        fn setsockopt(s: usize, level: i32, optname: i32, optval: *const u8, optlen: i32) -> i32;
    }
    const IPPROTO_IP: i32 = 0;
    const IPPROTO_IPV6: i32 = 41;
    const DONT_FRAGMENT: i32 = 14;
    // A dual-stack IPv6 socket carries IPv4 too: both levels.
    let levels: &[i32] = if v6 {
        &[IPPROTO_IPV6, IPPROTO_IP]
    } else {
        &[IPPROTO_IP]
    };
    let off: u32 = 0;
    for &level in levels {
        // SAFETY: a valid socket handle and a DWORD option value of the right size.
        unsafe {
            setsockopt(
                socket.as_raw_socket() as usize,
                level,
                DONT_FRAGMENT,
                &off as *const u32 as *const u8,
                std::mem::size_of::<u32>() as i32,
            );
        }
    }
}

// macOS and the BSDs: quinn-udp sets IP_DONTFRAG only for IPv4 there; left as is (untested here).
#[cfg(not(any(target_os = "linux", windows)))]
fn os_allow_fragmentation(_socket: &tokio::net::UdpSocket, _v6: bool) {}

/// Sends one datagram with the IP TTL (IPv6: hop limit) `ttl`, then gives the socket its own value
/// back. A TTL the OS refuses is an error and nothing is sent: the caller asked for a short-lived
/// packet, and one with the full TTL could do harm (path probes that must not reach the peer's NAT).
/// socket2 covers every OS here (IP_TTL / IPV6_UNICAST_HOPS on Unix and Windows alike). The socket's
/// TTL is changed until the datagram is out: nothing else may send on it meanwhile (the endpoint's one
/// task owns its socket).
pub async fn send_with_ttl(
    socket: &tokio::net::UdpSocket,
    dest: SocketAddr,
    datagram: &[u8],
    ttl: u8,
) -> io::Result<usize> {
    let sock = socket2::SockRef::from(socket);
    let local = socket.local_addr()?;
    let dest = to_socket_family(local, dest);
    // The option follows the packet's family: an IPv4 datagram from a dual-stack socket obeys IP_TTL.
    let v6 = !matches!(canonical(dest), SocketAddr::V4(_));
    let set = |value: u32| {
        if v6 {
            sock.set_unicast_hops_v6(value)
        } else {
            sock.set_ttl_v4(value)
        }
    };
    let own = if v6 {
        sock.unicast_hops_v6()?
    } else {
        sock.ttl_v4()?
    };
    set(u32::from(ttl))?;
    let sent = socket.send_to(datagram, dest).await;
    let restored = set(own);
    let sent = sent?;
    restored?;
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_and_carries_datagrams_with_bigger_buffers_than_the_default() {
        let a = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        a.send_to(b"ping", b.local_addr().unwrap()).await.unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr().unwrap()));
        let plain = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let default = socket2::SockRef::from(&plain).recv_buffer_size().unwrap();
        let ours = socket2::SockRef::from(&b).recv_buffer_size().unwrap();
        assert!(ours >= default, "ours {ours} < default {default}");
    }

    #[tokio::test]
    async fn a_short_ttl_datagram_leaves_and_the_socket_keeps_its_own_ttl() {
        for (a, b) in [("127.0.0.1:0", "127.0.0.1:0"), ("[::1]:0", "[::1]:0")] {
            let Ok(a) = bind(a.parse().unwrap()) else {
                continue; // no IPv6 here
            };
            let b = bind(b.parse().unwrap()).unwrap();
            let sock = socket2::SockRef::from(&a);
            let v6 = a.local_addr().unwrap().is_ipv6();
            let own = || {
                if v6 {
                    sock.unicast_hops_v6()
                } else {
                    sock.ttl_v4()
                }
                .unwrap()
            };
            let before = own();
            let to = b.local_addr().unwrap();
            assert_eq!(send_with_ttl(&a, to, b"open", 2).await.unwrap(), 4);
            assert_eq!(own(), before);
            let mut buf = [0u8; 8];
            let (n, _) = b.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"open");
        }
    }

    #[tokio::test]
    async fn a_dual_stack_socket_reaches_ipv4_and_ipv6_peers_and_short_ttl_works_for_both() {
        let Ok(dual) = bind_dual_stack(0) else {
            return; // no IPv6 here
        };
        let local = dual.local_addr().unwrap();
        for peer in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(peer) = bind(peer.parse().unwrap()) else {
                continue;
            };
            let to = SocketAddr::new(
                peer.local_addr().unwrap().ip(),
                peer.local_addr().unwrap().port(),
            );
            dual.send_to(b"full", to_socket_family(local, to))
                .await
                .unwrap();
            assert_eq!(send_with_ttl(&dual, to, b"open", 2).await.unwrap(), 4);
            let mut buf = [0u8; 8];
            for want in [&b"full"[..], b"open"] {
                let (n, _) = peer.recv_from(&mut buf).await.unwrap();
                assert_eq!(&buf[..n], want);
            }
            peer.send_to(b"back", SocketAddr::new(to.ip(), local.port()))
                .await
                .unwrap();
            let (n, from) = dual.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"back");
            assert_eq!(canonical(from), to, "an IPv4 sender compares as IPv4");
        }
    }

    #[test]
    fn a_port_in_use_is_an_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let a = bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let err = bind(a.local_addr().unwrap()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        });
    }
}
