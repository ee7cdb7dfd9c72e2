//! The hard side of hard-NAT traversal (`p2p_proto::session::Session::poll_port_opening`): extra UDP
//! sockets of one session, each of which opened its own mapping on our NAT toward the peer. A task per
//! socket passes what arrives to the endpoint; what the session sends to an address heard on one of
//! them leaves from that socket (the only mapping the peer's NAT lets in). Once the session no longer
//! wants them, all go but the ones such a route uses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Most extra sockets one endpoint holds at once (a target with many sessions from hard NATs must not
/// run out of file descriptors for its TCP connections).
pub const MAX_PER_ENDPOINT: usize = 1024;

/// A datagram that arrived on extra socket `index` of a session.
pub struct Arrival {
    pub session_id: u64,
    pub index: usize,
    pub from: SocketAddr,
    pub data: Vec<u8>,
}

struct Port {
    socket: Arc<UdpSocket>,
    reader: JoinHandle<()>,
}

impl Drop for Port {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[derive(Default)]
pub struct ExtraPorts {
    ports: HashMap<usize, Port>,
    /// Peer address -> the socket its packets arrived on.
    routes: HashMap<SocketAddr, usize>,
}

impl ExtraPorts {
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// Opens up to `count` sockets and sends `probe` from each to `dest` with the IP TTL `ttl`; what
    /// arrives goes to `arrivals`. Returns how many were opened.
    pub async fn open(
        &mut self,
        session_id: u64,
        count: usize,
        dest: SocketAddr,
        probe: &[u8],
        ttl: u8,
        arrivals: impl Fn(Arrival) -> bool + Clone + Send + Sync + 'static,
    ) -> usize {
        let any: IpAddr = if dest.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let mut opened = 0;
        for index in self.ports.len()..self.ports.len() + count {
            let socket = match crate::udp_socket::bind(SocketAddr::new(any, 0)) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    log::debug!("extra port {index} not opened: {e}");
                    break;
                }
            };
            // The opening probe dies beyond our NAT: it makes the mapping and nothing else.
            if let Err(e) = crate::udp_socket::send_with_ttl(&socket, dest, probe, ttl).await {
                log::debug!("extra port {index}: opening probe not sent: {e}");
                break;
            }
            let reader = tokio::spawn(read_loop(
                socket.clone(),
                session_id,
                index,
                arrivals.clone(),
            ));
            self.ports.insert(index, Port { socket, reader });
            opened += 1;
        }
        opened
    }

    /// A datagram from `from` that arrived on socket `index` authenticated: `from` is reached
    /// through that socket from now on.
    pub fn route(&mut self, from: SocketAddr, index: usize) {
        if self.ports.contains_key(&index) {
            self.routes.insert(from, index);
        }
    }

    /// The socket that reaches `dest`, if one of ours does.
    pub fn socket_for(&self, dest: SocketAddr) -> Option<Arc<UdpSocket>> {
        let index = self.routes.get(&dest)?;
        self.ports.get(index).map(|p| p.socket.clone())
    }

    /// Closes every socket no route uses.
    pub fn keep_routed(&mut self) {
        let used: Vec<usize> = self.routes.values().copied().collect();
        self.ports.retain(|i, _| used.contains(i));
    }
}

async fn read_loop(
    socket: Arc<UdpSocket>,
    session_id: u64,
    index: usize,
    arrivals: impl Fn(Arrival) -> bool,
) {
    let mut buf = vec![0u8; p2p_proto::wire::MAX_DATAGRAM + 64];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let arrival = Arrival {
                    session_id,
                    index,
                    from,
                    data: buf[..n].to_vec(),
                };
                if !arrivals(arrival) {
                    return;
                }
            }
            // ICMP errors surface here on some OSes: not fatal for UDP (the pause keeps a
            // persistent error from spinning).
            Err(e) => {
                log::debug!("extra port {index}: receive error: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}
