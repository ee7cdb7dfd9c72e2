//! Router discovery: NAT-PMP (RFC 6886) on the default gateway, and a UPnP Internet Gateway Device
//! through an SSDP `M-SEARCH` (UPnP Device Architecture 1.1, section 1.3).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

use super::{NatPmpCheck, UpnpCheck};

pub const NAT_PMP_PORT: u16 = 5351;
/// RFC 6886 section 3.1: first retry after 250 ms, doubling. Two tries keep the self-test short.
const NAT_PMP_TIMEOUTS: [Duration; 2] = [Duration::from_millis(250), Duration::from_millis(500)];
pub const SSDP_ADDR: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(Ipv4Addr::new(239, 255, 255, 250)),
    1900,
);
const SSDP_WAIT: Duration = Duration::from_secs(1);
const IGD_TYPE: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";

/// Asks the default gateway for its external address.
pub async fn nat_pmp() -> NatPmpCheck {
    match default_gateway() {
        Some(gw) => nat_pmp_at(SocketAddr::new(gw.into(), NAT_PMP_PORT)).await,
        None => NatPmpCheck {
            found: false,
            gateway: None,
            public_ip: None,
            epoch: None,
            error: Some("default gateway unknown on this system".into()),
        },
    }
}

pub(super) fn nat_pmp_skipped() -> NatPmpCheck {
    NatPmpCheck {
        found: false,
        gateway: None,
        public_ip: None,
        epoch: None,
        error: Some("skipped".into()),
    }
}

/// A UDP socket on an ephemeral IPv4 port for one check; when none can be had, `error` says why.
async fn bind_udp(error: &mut Option<String>) -> Option<UdpSocket> {
    match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await {
        Ok(s) => Some(s),
        Err(e) => {
            *error = Some(format!("cannot bind a UDP socket: {e}"));
            None
        }
    }
}

/// Sends the external-address request (version 0, opcode 0) to `gateway` and waits for the answer.
pub async fn nat_pmp_at(gateway: SocketAddr) -> NatPmpCheck {
    let mut check = NatPmpCheck {
        found: false,
        gateway: Some(gateway.ip().to_string()),
        public_ip: None,
        epoch: None,
        error: None,
    };
    let Some(socket) = bind_udp(&mut check.error).await else {
        return check;
    };
    let mut buf = [0u8; 64];
    for wait in NAT_PMP_TIMEOUTS {
        if let Err(e) = socket.send_to(&[0, 0], gateway).await {
            check.error = Some(format!("cannot send to {gateway}: {e}"));
            return check;
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
                Err(_) => break,
                Ok(Ok((n, from))) if from == gateway => match parse_nat_pmp_response(&buf[..n]) {
                    Ok((epoch, ip)) => {
                        check.found = true;
                        check.public_ip = Some(ip.to_string());
                        check.epoch = Some(epoch);
                        return check;
                    }
                    Err(e) => {
                        check.error = Some(format!("{gateway} answered: {e}"));
                        return check;
                    }
                },
                // Another sender, or an ICMP error reported on receive: keep waiting.
                Ok(_) => {}
            }
        }
    }
    check.error = Some(format!("no NAT-PMP answer from {gateway}"));
    check
}

/// Parses an external-address response: `version(0) opcode(128) result(2) epoch(4) address(4)`.
pub fn parse_nat_pmp_response(d: &[u8]) -> Result<(u32, Ipv4Addr), String> {
    if d.len() < 12 {
        return Err(format!("response too short ({} bytes)", d.len()));
    }
    if d[0] != 0 || d[1] != 128 {
        return Err(format!(
            "not an external-address response (version {}, opcode {})",
            d[0], d[1]
        ));
    }
    let result = u16::from_be_bytes([d[2], d[3]]);
    if result != 0 {
        let meaning = match result {
            1 => "unsupported version",
            2 => "not authorized/refused",
            3 => "network failure",
            4 => "out of resources",
            5 => "unsupported opcode",
            _ => "unknown result code",
        };
        return Err(format!("result code {result} ({meaning})"));
    }
    let epoch = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
    Ok((epoch, Ipv4Addr::new(d[8], d[9], d[10], d[11])))
}

/// The IPv4 default gateway, where the OS tells it cheaply (Linux: `/proc/net/route`); `None` elsewhere.
pub fn default_gateway() -> Option<Ipv4Addr> {
    #[cfg(target_os = "linux")]
    {
        let text = std::fs::read_to_string("/proc/net/route").ok()?;
        parse_proc_net_route(&text)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// Finds the default route in `/proc/net/route`'s text: destination `00000000` with the gateway flag.
/// Addresses are the kernel's network-order bytes printed as a host-order number.
pub fn parse_proc_net_route(text: &str) -> Option<Ipv4Addr> {
    const RTF_GATEWAY: u32 = 0x2;
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (dest, gw, flags) = (f.get(1)?, f.get(2)?, f.get(3)?);
        let flags = u32::from_str_radix(flags, 16).ok()?;
        if *dest != "00000000" || flags & RTF_GATEWAY == 0 {
            return None;
        }
        let gw = u32::from_str_radix(gw, 16).ok()?;
        Some(Ipv4Addr::from(gw.to_ne_bytes()))
    })
}

pub(super) fn upnp_skipped() -> UpnpCheck {
    UpnpCheck {
        found: false,
        location: None,
        server: None,
        error: Some("skipped".into()),
    }
}

/// Looks for an Internet Gateway Device on the local network.
pub async fn upnp() -> UpnpCheck {
    upnp_at(SSDP_ADDR, SSDP_WAIT).await
}

/// Sends an `M-SEARCH` for an IGD to `dest` (the SSDP multicast address, or a unicast one in tests) and
/// waits up to `wait` for a `200 OK`.
pub async fn upnp_at(dest: SocketAddr, wait: Duration) -> UpnpCheck {
    let mut check = UpnpCheck {
        found: false,
        location: None,
        server: None,
        error: None,
    };
    let Some(socket) = bind_udp(&mut check.error).await else {
        return check;
    };
    let search = format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: {dest}\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: {IGD_TYPE}\r\n\r\n"
    );
    if let Err(e) = socket.send_to(search.as_bytes(), dest).await {
        check.error = Some(format!("cannot send the SSDP search to {dest}: {e}"));
        return check;
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = vec![0u8; 2048];
    loop {
        match tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
            Err(_) => {
                check.error = Some(format!(
                    "no UPnP gateway answered within {} ms",
                    wait.as_millis()
                ));
                return check;
            }
            Ok(Ok((n, _))) => {
                if let Some((location, server)) =
                    parse_ssdp_response(&String::from_utf8_lossy(&buf[..n]))
                {
                    check.found = true;
                    check.location = location;
                    check.server = server;
                    return check;
                }
            }
            Ok(Err(_)) => {}
        }
    }
}

/// Accepts a `200 OK` whose `ST` (if present) is an IGD; returns its `LOCATION` and `SERVER` headers.
pub fn parse_ssdp_response(text: &str) -> Option<(Option<String>, Option<String>)> {
    let mut lines = text.split("\r\n");
    let status = lines.next()?;
    if !(status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200")) {
        return None;
    }
    let (mut location, mut server, mut st) = (None, None, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = Some(value.trim().to_string());
        match name.trim().to_ascii_lowercase().as_str() {
            "location" => location = value,
            "server" => server = value,
            "st" => st = value,
            _ => {}
        }
    }
    if st.is_some_and(|s| !s.contains("InternetGatewayDevice")) {
        return None;
    }
    Some((location, server))
}

/// A second NAT beyond the router: its NAT-PMP external address is carrier-grade NAT space
/// (100.64.0.0/10, RFC 6598) or private, and the server saw another public address. Port mappings the
/// router grants then stop at the next NAT, and peers reach this host only through both.
pub fn double_nat_note(router_external: Option<&str>, public_ip: Option<&str>) -> Option<String> {
    let external: Ipv4Addr = router_external?.parse().ok()?;
    let [a, b, ..] = external.octets();
    let carrier = a == 100 && (64..128).contains(&b);
    if !(carrier || external.is_private()) || public_ip == Some(router_external?) {
        return None;
    }
    let what = if carrier {
        "carrier-grade NAT space (100.64.0.0/10): the carrier's NAT"
    } else {
        "a private range: another NAT"
    };
    Some(format!(
        "double NAT: the router's own external address {external} (NAT-PMP) is in {what} sits \
         between it and the Internet{}; the router's port mappings do not reach the Internet",
        public_ip.map_or_else(String::new, |p| format!(" (public address {p})"))
    ))
}
