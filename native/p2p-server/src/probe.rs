//! NAT probe responders: every UDP listener answers a `ProbeRequest` with the source address it saw, so
//! a client comparing the answers of the three listeners learns its public address, whether its NAT keeps
//! the port, and whether the mapping changes with the destination (see `connectd -n`). A flagged request
//! is answered from another listener (RFC 5780 "change port" / "change IP"), which tells the client how
//! its NAT filters datagrams from addresses it never sent to. Every answer also names the second-IP
//! listener, so clients need not guess where it is.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use p2p_proto::wire::{self, Kind, ProbeRequest, ProbeResponse};
use tokio::net::UdpSocket;

/// Receive buffer: larger than any datagram a peer sends, so a full buffer means "too big, maybe cut".
pub const RECV_BUF: usize = 2048;

/// Indexes into the server's three UDP listeners (`udp[0]` is also the relay).
pub const SECOND_IP_LISTENER: usize = 2;

/// Which listener answers a request that arrived on `arrived_on` with `flags`, or `None` when no
/// listener fits (a change of port asked of the second IP, which has only one port). Change-IP wins
/// when both are set: the second-IP listener's port differs too.
pub fn answering_listener(arrived_on: usize, flags: u8) -> Option<usize> {
    if flags & wire::PROBE_CHANGE_IP != 0 {
        Some(if arrived_on == SECOND_IP_LISTENER {
            0
        } else {
            SECOND_IP_LISTENER
        })
    } else if flags & wire::PROBE_CHANGE_PORT != 0 {
        match arrived_on {
            0 => Some(1),
            1 => Some(0),
            _ => None,
        }
    } else {
        Some(arrived_on)
    }
}

/// The addresses every answer advertises: the second-IP listener first (what a client probes for the
/// mapping test), then the second port. A wildcard address tells a client nothing and is left out.
pub fn advertised(public: [SocketAddr; 3]) -> Vec<SocketAddr> {
    [public[SECOND_IP_LISTENER], public[1]]
        .into_iter()
        .filter(|a| !a.ip().is_unspecified() && a.port() != 0)
        .collect()
}

/// The three listeners, shared by every probe-answering task so any of them can answer from another.
pub struct Responder {
    sockets: [Arc<UdpSocket>; 3],
    others: Vec<SocketAddr>,
}

impl Responder {
    /// `public` are the listeners' addresses as clients must use them (bound or configured).
    pub fn new(sockets: [Arc<UdpSocket>; 3], public: [SocketAddr; 3]) -> Self {
        Responder {
            sockets,
            others: advertised(public),
        }
    }

    /// Which listener answers `req` and with what bytes.
    pub fn answer(
        &self,
        req: &ProbeRequest,
        from: SocketAddr,
        arrived_on: usize,
    ) -> Option<(usize, Vec<u8>)> {
        let via = answering_listener(arrived_on, req.flags)?;
        let bytes = ProbeResponse {
            txid: req.txid,
            seen: from,
            others: self.others.clone(),
        }
        .encode();
        Some((via, bytes))
    }

    /// Answers `req`; false when no listener fits the request's flags.
    pub async fn respond(&self, req: &ProbeRequest, from: SocketAddr, arrived_on: usize) -> bool {
        let Some((via, bytes)) = self.answer(req, from, arrived_on) else {
            return false;
        };
        if let Err(e) = self.sockets[via].send_to(&bytes, from).await {
            log::debug!("probe answer to {from} failed: {e}");
        }
        true
    }
}

/// Counters of the probe-only listeners.
#[derive(Debug, Default)]
pub struct ProbeCounters {
    pub answered: AtomicU64,
    /// Anything that is not a well-formed probe request we can answer: dropped without an answer.
    pub ignored: AtomicU64,
}

/// Serves the probe-only listener `udp[index]` (1 or 2) until the task is aborted.
pub async fn serve(responder: Arc<Responder>, index: usize, counters: Arc<ProbeCounters>) {
    let socket = responder.sockets[index].clone();
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            // Windows reports an earlier send's ICMP "port unreachable" here; it concerns nobody now.
            Err(e) => {
                log::debug!("probe socket receive error: {e}");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let request = if n < RECV_BUF && wire::peek_kind(&buf[..n]) == Ok(Kind::ProbeRequest) {
            ProbeRequest::decode(&buf[..n]).ok()
        } else {
            None
        };
        let answered = match request {
            Some(req) => responder.respond(&req, from, index).await,
            None => false,
        };
        let counter = if answered {
            &counters.answered
        } else {
            &counters.ignored
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn listeners() -> ([Arc<UdpSocket>; 3], [SocketAddr; 3]) {
        let mut socks = Vec::new();
        // Linux routes all of 127/8 to loopback: 127.0.0.2 plays the server's second IP.
        for ip in ["127.0.0.1", "127.0.0.1", "127.0.0.2"] {
            socks.push(Arc::new(UdpSocket::bind((ip, 0)).await.unwrap()));
        }
        let addrs = [0, 1, 2].map(|i| socks[i].local_addr().unwrap());
        (socks.try_into().unwrap(), addrs)
    }

    async fn receive(client: &UdpSocket) -> (ProbeResponse, SocketAddr) {
        let mut buf = [0u8; 128];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        (ProbeResponse::decode(&buf[..n]).unwrap(), from)
    }

    #[tokio::test]
    async fn answers_with_the_source_address_and_ignores_garbage() {
        let (socks, addrs) = listeners().await;
        let responder = Arc::new(Responder::new(socks, addrs));
        let counters = Arc::new(ProbeCounters::default());
        let task = tokio::spawn(serve(responder, 1, counters.clone()));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"garbage", addrs[1]).await.unwrap();
        client
            .send_to(&wire::encode_probe_request([9; 12]), addrs[1])
            .await
            .unwrap();
        let (resp, from) = receive(&client).await;
        assert_eq!(from, addrs[1]);
        assert_eq!(resp.txid, [9; 12]);
        assert_eq!(resp.seen, client.local_addr().unwrap());
        assert_eq!(resp.others, vec![addrs[2], addrs[1]]);
        assert_eq!(counters.ignored.load(Ordering::Relaxed), 1);
        assert_eq!(counters.answered.load(Ordering::Relaxed), 1);
        task.abort();
    }

    #[tokio::test]
    async fn flagged_requests_are_answered_from_the_other_port_or_ip() {
        let (socks, addrs) = listeners().await;
        let responder = Arc::new(Responder::new(socks, addrs));
        let counters = Arc::new(ProbeCounters::default());
        let tasks = [1, 2].map(|i| tokio::spawn(serve(responder.clone(), i, counters.clone())));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for (flags, to, want_from) in [
            (wire::PROBE_CHANGE_PORT, 1, 0),
            (wire::PROBE_CHANGE_IP, 1, 2),
            (wire::PROBE_CHANGE_IP | wire::PROBE_CHANGE_PORT, 2, 0),
        ] {
            let req = ProbeRequest {
                txid: [flags; 12],
                flags,
            };
            client.send_to(&req.encode(), addrs[to]).await.unwrap();
            let (resp, from) = receive(&client).await;
            assert_eq!(from, addrs[want_from], "flags {flags}");
            assert_eq!(resp.txid, [flags; 12]);
            assert_eq!(resp.seen, client.local_addr().unwrap());
        }
        // The second IP has no second port: a change-port request there goes unanswered.
        let req = ProbeRequest {
            txid: [7; 12],
            flags: wire::PROBE_CHANGE_PORT,
        };
        client.send_to(&req.encode(), addrs[2]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(counters.ignored.load(Ordering::Relaxed), 1);
        assert_eq!(counters.answered.load(Ordering::Relaxed), 3);
        for t in tasks {
            t.abort();
        }
    }

    #[test]
    fn wildcard_addresses_are_not_advertised() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            advertised([a("0.0.0.0:5959"), a("0.0.0.0:5960"), a("198.18.0.2:5961")]),
            vec![a("198.18.0.2:5961")]
        );
        assert_eq!(answering_listener(0, 0), Some(0));
        assert_eq!(answering_listener(2, wire::PROBE_CHANGE_PORT), None);
    }
}
