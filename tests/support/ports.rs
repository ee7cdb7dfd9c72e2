//! Local ports: finding a free one (for programs that cannot bind port 0 and report it, like sshd) and
//! checking whether one is free again after a process ended.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// True when nothing listens on 127.0.0.1:`port` and it can be bound again.
pub fn tcp_port_is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// The seed's fixed local port 33000, once it is free. Busy machines hand out ports in that range as
/// clients' ephemeral source ports (Linux: 32768-60999), so it may be taken for a moment; a listener on
/// it for longer than `wait` fails the test with that reason.
pub fn wait_for_seed_port(wait: Duration) -> u16 {
    const SEED_PORT: u16 = 33000;
    crate::poll::wait_until(
        "port 33000 (the seed's example needs it) to be free",
        wait,
        || tcp_port_is_free(SEED_PORT),
    );
    SEED_PORT
}

/// True when a connection to 127.0.0.1:`port` is accepted.
pub fn tcp_port_accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}
