//! NAT-PMP (RFC 6886) through the `natpmp` crate: external address, UDP mapping, renewal, deletion.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use natpmp::{new_tokio_natpmp_with, NatpmpAsync, Protocol, Response};
use tokio::net::UdpSocket;

/// RFC 6886 section 3.1 starts at 250 ms and doubles; three tries (1.75 s in all) keep a router without
/// NAT-PMP from holding up the session, which works without a mapping anyway.
const TRIES: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_millis(1000),
];

/// What the router granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granted {
    pub external: SocketAddrV4,
    pub lifetime: Duration,
}

/// The default gateway, where NAT-PMP servers live.
pub fn gateway() -> Result<Ipv4Addr, String> {
    natpmp::get_default_gateway().map_err(|_| "no IPv4 default gateway".to_string())
}

/// Asks `gateway` to map UDP `local_port` to `external_port` (0: any) for `lifetime`.
pub async fn map(
    gateway: Ipv4Addr,
    local_port: u16,
    external_port: u16,
    lifetime: Duration,
) -> Result<Granted, String> {
    let mut client = connect(gateway).await?;
    let ip = match exchange(&mut client, Request::PublicAddress).await? {
        Response::Gateway(g) => *g.public_address(),
        other => return Err(format!("unexpected answer {other:?}")),
    };
    let secs = u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX).max(1);
    match exchange(&mut client, Request::Map(local_port, external_port, secs)).await? {
        Response::UDP(m) if m.private_port() == local_port => Ok(Granted {
            external: SocketAddrV4::new(ip, m.public_port()),
            lifetime: *m.lifetime(),
        }),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

/// Deletes the mapping of UDP `local_port` (RFC 6886 section 3.4: lifetime 0, external port 0).
pub async fn unmap(gateway: Ipv4Addr, local_port: u16) -> Result<(), String> {
    let mut client = connect(gateway).await?;
    exchange(&mut client, Request::Map(local_port, 0, 0))
        .await
        .map(|_| ())
}

#[derive(Clone, Copy)]
enum Request {
    PublicAddress,
    /// local port, external port, lifetime in seconds
    Map(u16, u16, u32),
}

async fn connect(gateway: Ipv4Addr) -> Result<NatpmpAsync<UdpSocket>, String> {
    new_tokio_natpmp_with(gateway)
        .await
        .map_err(|e| format!("cannot open a socket to {gateway}: {e:?}"))
}

/// One request, retransmitted on silence; the crate only reads, so the retry timer is ours.
async fn exchange(client: &mut NatpmpAsync<UdpSocket>, req: Request) -> Result<Response, String> {
    let gw = SocketAddr::from((*client.gateway(), natpmp::NATPMP_PORT));
    for wait in TRIES {
        let sent = match req {
            Request::PublicAddress => client.send_public_address_request().await,
            Request::Map(local, external, secs) => {
                client
                    .send_port_mapping_request(Protocol::UDP, local, external, secs)
                    .await
            }
        };
        sent.map_err(|e| format!("cannot send to {gw}: {e:?}"))?;
        match tokio::time::timeout(wait, read_answer(client, req)).await {
            Err(_) => continue,
            Ok(Ok(r)) => return Ok(r),
            // An ICMP port unreachable shows up as a receive error: nothing listens there.
            Ok(Err(natpmp::Error::NATPMP_ERR_RECVFROM)) => {
                return Err(format!("no NAT-PMP server at {gw}"))
            }
            Ok(Err(e)) => return Err(format!("{gw} refused: {}", describe(e))),
        }
    }
    Err(format!("no NAT-PMP answer from {gw}"))
}

/// The router's answer to `req`. A retransmitted request can be answered twice, and the second answer
/// may arrive while the next request waits: an answer of another kind is such a late one, not ours.
async fn read_answer(
    client: &mut NatpmpAsync<UdpSocket>,
    req: Request,
) -> Result<Response, natpmp::Error> {
    loop {
        let r = client.read_response_or_retry().await?;
        if answers(req, &r) {
            return Ok(r);
        }
        log::debug!("NAT-PMP: a late answer to an earlier request ({r:?}), ignored");
    }
}

fn answers(req: Request, r: &Response) -> bool {
    matches!(
        (req, r),
        (Request::PublicAddress, Response::Gateway(_)) | (Request::Map(..), Response::UDP(_))
    )
}

fn describe(e: natpmp::Error) -> &'static str {
    use natpmp::Error::*;
    match e {
        NATPMP_ERR_NOTAUTHORIZED => "not authorized (mapping disabled on the router)",
        NATPMP_ERR_NETWORKFAILURE => "network failure (the router has no public address)",
        NATPMP_ERR_OUTOFRESOURCES => "out of resources",
        NATPMP_ERR_UNSUPPORTEDVERSION => "unsupported version",
        NATPMP_ERR_UNSUPPORTEDOPCODE => "unsupported opcode",
        _ => "error",
    }
}
