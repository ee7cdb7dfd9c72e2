//! NAT-PMP against a small RFC 6886 responder on a loopback address (Linux routes all of 127/8 to lo,
//! so the fixed port 5351 can be had on an address of our own). The real routers are in tests/natlab.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Only Linux routes all of 127/8 to lo; elsewhere the responder's fixed port needs an address of its own.
#[cfg(target_os = "linux")]
mod loopback_responder {
    use std::net::Ipv4Addr;
    use std::time::{Duration, Instant};

    use tokio::net::UdpSocket;

    use super::super::nat_pmp;

    /// Answers NAT-PMP requests like a router whose public address is 198.51.100.7 and which maps every
    /// request to external port 40000 + private port % 1000. Returns the requests it saw.
    async fn responder(addr: Ipv4Addr, answers: usize) -> tokio::task::JoinHandle<Vec<Vec<u8>>> {
        let sock = UdpSocket::bind((addr, nat_pmp_port()))
            .await
            .expect("bind responder");
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut buf = [0u8; 64];
            for _ in 0..answers {
                let (n, from) = sock.recv_from(&mut buf).await.expect("recv");
                let req = buf[..n].to_vec();
                let mut resp = vec![0u8, 128 + req[1], 0, 0, 0, 0, 0, 42];
                if req[1] == 0 {
                    resp.extend_from_slice(&[198, 51, 100, 7]);
                } else {
                    let private = u16::from_be_bytes([req[4], req[5]]);
                    let lifetime = &req[8..12];
                    let public: u16 = if lifetime == [0, 0, 0, 0] {
                        0
                    } else {
                        40000 + private % 1000
                    };
                    resp.extend_from_slice(&req[4..6]);
                    resp.extend_from_slice(&public.to_be_bytes());
                    resp.extend_from_slice(lifetime);
                }
                sock.send_to(&resp, from).await.expect("send");
                seen.push(req);
            }
            seen
        })
    }

    fn nat_pmp_port() -> u16 {
        natpmp::NATPMP_PORT
    }

    #[tokio::test]
    async fn maps_then_deletes_through_nat_pmp() {
        let gw = Ipv4Addr::new(127, 0, 83, 51);
        let server = responder(gw, 3).await;
        let granted = nat_pmp::map(gw, 4321, 4321, Duration::from_secs(60))
            .await
            .expect("mapped");
        assert_eq!(granted.external, "198.51.100.7:40321".parse().unwrap());
        assert_eq!(granted.lifetime, Duration::from_secs(60));
        nat_pmp::unmap(gw, 4321).await.expect("deleted");
        let seen = server.await.unwrap();
        assert_eq!(seen[0], vec![0, 0], "public address request");
        // version 0, opcode 1 (UDP), reserved, private 4321, public 4321, lifetime 60
        assert_eq!(
            seen[1],
            vec![0, 1, 0, 0, 0x10, 0xe1, 0x10, 0xe1, 0, 0, 0, 60]
        );
        // deletion: lifetime 0 and external port 0 (RFC 6886 section 3.4)
        assert_eq!(seen[2], vec![0, 1, 0, 0, 0x10, 0xe1, 0, 0, 0, 0, 0, 0]);
    }

    #[tokio::test]
    async fn a_router_without_nat_pmp_is_a_clear_error_within_two_seconds() {
        // Nothing listens on this address: the OS answers "port unreachable" or nothing at all.
        let gw = Ipv4Addr::new(127, 0, 83, 52);
        let started = Instant::now();
        let err = nat_pmp::map(gw, 4321, 4321, Duration::from_secs(60))
            .await
            .expect_err("no mapping");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
        assert!(err.contains("127.0.83.52"), "{err}");
    }
}

#[test]
fn a_mapping_reads_as_one_status_line() {
    let m = super::Mapping {
        method: super::Method::NatPmp,
        external: SocketAddr::from(([198, 51, 100, 7], 40321)),
        local_port: 4321,
        lease: Duration::from_secs(7200),
        via: super::Via::NatPmp(Ipv4Addr::new(192, 168, 1, 1)),
    };
    assert_eq!(
        m.to_string(),
        "NAT-PMP 198.51.100.7:40321 -> local port 4321, lease 7200 s"
    );
}

/// Against the real router of the network this runs in (the NAT lab runs it inside a site:
/// `lab.sh exec h-SITE .../p2p_net-* --ignored --nocapture live_router`). With `P2P_PORTMAP_EXPECT=1`
/// the router must grant, renew and delete a mapping; otherwise the status line is only printed.
#[tokio::test]
#[ignore = "needs a real router; run by tests/natlab"]
async fn live_router() {
    let expect = std::env::var("P2P_PORTMAP_EXPECT").as_deref() == Ok("1");
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let lease = Duration::from_secs(60);
    match super::request(port, lease).await {
        Ok(m) => {
            println!("port mapping: {m}");
            let renewed = super::renew(&m, lease).await.expect("renewed");
            assert_eq!(
                renewed.external, m.external,
                "renewal keeps the external port"
            );
            println!("renewed: {renewed}");
            super::release(&renewed).await.expect("deleted");
            println!("deleted");
        }
        Err(why) => {
            println!("port mapping: unavailable ({why})");
            assert!(!expect, "expected a mapping");
        }
    }
}
