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
    let size = BUFFER_BYTES as libc::c_int;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_SNDBUFFORCE] {
        // SAFETY: a valid socket descriptor and a c_int option value of the right size; failure (no
        // privilege) leaves the buffer as it was.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                &size as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn force_beyond_os_limit(_socket: &Socket) {}

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
