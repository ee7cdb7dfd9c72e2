//! NAT probe responders: every UDP listener answers a `ProbeRequest` with the source address it saw, so
//! a client comparing the answers of the three listeners learns its public address, whether its NAT keeps
//! the port, and whether the mapping changes with the destination (see `connectd -n`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use p2p_proto::wire::{self, Kind};
use tokio::net::UdpSocket;

/// Receive buffer: larger than any datagram a peer sends, so a full buffer means "too big, maybe cut".
pub const RECV_BUF: usize = 2048;

/// The answer to `data` if it is a well-formed probe request.
pub fn answer(data: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    let txid = wire::decode_probe_request(data).ok()?;
    Some(wire::encode_probe_response(txid, from))
}

/// Counters of one probe-only listener.
#[derive(Debug, Default)]
pub struct ProbeCounters {
    pub answered: AtomicU64,
    /// Anything that is not a well-formed probe request: dropped without an answer.
    pub ignored: AtomicU64,
}

/// Serves a probe-only listener (`udp[1]`, `udp[2]`) until the task is aborted.
pub async fn serve(socket: Arc<UdpSocket>, counters: Arc<ProbeCounters>) {
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
        let reply = if n < RECV_BUF && wire::peek_kind(&buf[..n]) == Ok(Kind::ProbeRequest) {
            answer(&buf[..n], from)
        } else {
            None
        };
        match reply {
            Some(r) => {
                counters.answered.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = socket.send_to(&r, from).await {
                    log::debug!("probe answer to {from} failed: {e}");
                }
            }
            None => {
                counters.ignored.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn answers_with_the_source_address_and_ignores_garbage() {
        let server = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let server_addr = server.local_addr().unwrap();
        let counters = Arc::new(ProbeCounters::default());
        let task = tokio::spawn(serve(server, counters.clone()));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"garbage", server_addr).await.unwrap();
        client
            .send_to(&wire::encode_probe_request([9; 12]), server_addr)
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from, server_addr);
        let (txid, seen) = wire::decode_probe_response(&buf[..n]).unwrap();
        assert_eq!(txid, [9; 12]);
        assert_eq!(seen, client.local_addr().unwrap());
        assert_eq!(counters.ignored.load(Ordering::Relaxed), 1);
        assert_eq!(counters.answered.load(Ordering::Relaxed), 1);
        task.abort();
    }
}
