//! The outer header of every UDP datagram, and the datagrams that talk to the server rather than a peer.
//!
//! ```text
//! 0      version (1)
//! 1      kind     (see `Kind`)
//! 2..10  session id (u64, big endian)          -- session kinds only
//! 10..18 packet number (u64, big endian)       -- session kinds only
//! 18..   protected payload (frames), see `frame.rs`
//! ```
//! Server-bound kinds (`RelayBind`, `Probe*`) have their own short layouts below. The header is sent in
//! clear (the relay routes on it) and is authenticated as associated data in every mode but 0.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const VERSION: u8 = 1;
pub const SESSION_HEADER_LEN: usize = 18;
/// Largest UDP payload we send: a real path's MTU (1500) minus IP and UDP headers with margin.
pub const MAX_DATAGRAM: usize = 1400;
/// Highest valid packet number: ACK frames carry packet numbers as varints (62 bits), so a number above
/// this could never be acknowledged. Refusing it here also keeps `pn + 1` from overflowing anywhere a
/// receiver does range arithmetic on a number it has not authenticated yet (mode 0 authenticates
/// nothing: a spoofed `u64::MAX` reached the session's ACK bookkeeping and panicked on overflow).
pub const MAX_PACKET_NUMBER: u64 = (1 << 62) - 1;

/// Which peer sent a session datagram: the relay forwards it to the other one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Initiator,
    Target,
}

impl Role {
    pub fn peer(self) -> Role {
        match self {
            Role::Initiator => Role::Target,
            Role::Target => Role::Initiator,
        }
    }
    fn bit(self) -> u8 {
        match self {
            Role::Initiator => 0,
            Role::Target => 1,
        }
    }
    fn from_bit(b: u8) -> Role {
        if b & 1 == 0 {
            Role::Initiator
        } else {
            Role::Target
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Protected frames of an established session (0x10 from the initiator, 0x11 from the target),
    /// sealed in key phase 0: under the first key of the sender's direction, or after an even number
    /// of key updates.
    Data(Role),
    /// The same in key phase 1 (0x18 from the initiator, 0x19 from the target): after an odd number
    /// of key updates. Sent only in mode 3 sessions whose peers both announced key updates.
    DataPhase1(Role),
    /// Peer handshake (0x12 from the initiator, 0x13 from the target).
    Handshake(Role),
    /// End-to-end peer handshake between the peers' static keys (0x14 from the initiator: its first
    /// and third messages; 0x15 from the target), `crypto::PeerHandshake`.
    PeerHandshake(Role),
    /// Peer to server: bind this socket's address to a session on the relay (0x20).
    RelayBind,
    /// Server to peer: the bind was accepted (0x21).
    RelayBindAck,
    /// Peer to server: the session ended, forget it now (0x22; same layout as `RelayBind`).
    RelayRelease,
    /// `RelayBind` proving the token by a MAC with a counter instead of carrying it (0x23, [`RelayAuth`]).
    RelayBindAuth,
    /// `RelayRelease` in the same form (0x24).
    RelayReleaseAuth,
    /// Peer to server: what address do you see me as? (0x30)
    ProbeRequest,
    /// Server to peer: the answer (0x31).
    ProbeResponse,
}

impl Kind {
    pub fn to_byte(self) -> u8 {
        match self {
            Kind::Data(r) => 0x10 | r.bit(),
            Kind::DataPhase1(r) => 0x18 | r.bit(),
            Kind::Handshake(r) => 0x12 | r.bit(),
            Kind::PeerHandshake(r) => 0x14 | r.bit(),
            Kind::RelayBind => 0x20,
            Kind::RelayBindAck => 0x21,
            Kind::RelayRelease => 0x22,
            Kind::RelayBindAuth => 0x23,
            Kind::RelayReleaseAuth => 0x24,
            Kind::ProbeRequest => 0x30,
            Kind::ProbeResponse => 0x31,
        }
    }
    pub fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            0x10 | 0x11 => Kind::Data(Role::from_bit(b)),
            0x12 | 0x13 => Kind::Handshake(Role::from_bit(b)),
            0x14 | 0x15 => Kind::PeerHandshake(Role::from_bit(b)),
            0x18 | 0x19 => Kind::DataPhase1(Role::from_bit(b)),
            0x20 => Kind::RelayBind,
            0x21 => Kind::RelayBindAck,
            0x22 => Kind::RelayRelease,
            0x23 => Kind::RelayBindAuth,
            0x24 => Kind::RelayReleaseAuth,
            0x30 => Kind::ProbeRequest,
            0x31 => Kind::ProbeResponse,
            _ => return None,
        })
    }
    pub fn is_session(self) -> bool {
        self.session_role().is_some()
    }

    /// Who sent a session datagram; `None` for the kinds that talk to the server.
    pub fn session_role(self) -> Option<Role> {
        match self {
            Kind::Data(r) | Kind::DataPhase1(r) | Kind::Handshake(r) | Kind::PeerHandshake(r) => {
                Some(r)
            }
            _ => None,
        }
    }

    /// A data packet from `role` in key phase 1 (`phase1`) or 0.
    pub fn data(role: Role, phase1: bool) -> Kind {
        if phase1 {
            Kind::DataPhase1(role)
        } else {
            Kind::Data(role)
        }
    }

    /// The key phase of a data packet (true for phase 1); `None` for other kinds.
    pub fn key_phase1(self) -> Option<bool> {
        match self {
            Kind::Data(_) => Some(false),
            Kind::DataPhase1(_) => Some(true),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("datagram too short")]
    Truncated,
    #[error("unsupported protocol version {0}")]
    Version(u8),
    #[error("unknown datagram kind 0x{0:02x}")]
    UnknownKind(u8),
    #[error("malformed datagram")]
    Malformed,
}

/// The clear header of a session datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionHeader {
    pub kind: Kind,
    pub session_id: u64,
    pub packet_number: u64,
}

impl SessionHeader {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.push(self.kind.to_byte());
        out.extend_from_slice(&self.session_id.to_be_bytes());
        out.extend_from_slice(&self.packet_number.to_be_bytes());
    }

    /// Splits a session datagram into its header and the protected payload.
    pub fn decode(d: &[u8]) -> Result<(SessionHeader, &[u8]), WireError> {
        let kind = peek_kind(d)?;
        if !kind.is_session() {
            return Err(WireError::Malformed);
        }
        if d.len() < SESSION_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let session_id = u64::from_be_bytes(d[2..10].try_into().unwrap());
        let packet_number = u64::from_be_bytes(d[10..18].try_into().unwrap());
        if packet_number > MAX_PACKET_NUMBER {
            return Err(WireError::Malformed);
        }
        Ok((
            SessionHeader {
                kind,
                session_id,
                packet_number,
            },
            &d[SESSION_HEADER_LEN..],
        ))
    }
}

/// Reads version and kind, the only two bytes every datagram shares.
pub fn peek_kind(d: &[u8]) -> Result<Kind, WireError> {
    if d.len() < 2 {
        return Err(WireError::Truncated);
    }
    if d[0] != VERSION {
        return Err(WireError::Version(d[0]));
    }
    Kind::from_byte(d[1]).ok_or(WireError::UnknownKind(d[1]))
}

/// The session id of a session datagram, for routing to the right session.
pub fn peek_session_id(d: &[u8]) -> Option<u64> {
    if d.len() >= SESSION_HEADER_LEN && peek_kind(d).map(Kind::is_session).unwrap_or(false) {
        Some(u64::from_be_bytes(d[2..10].try_into().unwrap()))
    } else {
        None
    }
}

/// `RelayBind`: version, kind, session id (8), role (1), relay token (16). Also used as the relay keepalive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayBind {
    pub session_id: u64,
    pub role: Role,
    pub token: [u8; 16],
}

impl RelayBind {
    pub const LEN: usize = 2 + 8 + 1 + 16;
    pub fn encode(&self) -> Vec<u8> {
        self.encode_as(Kind::RelayBind)
    }

    /// The same fields as a `RelayRelease`: the token proves the sender is a peer of the session.
    pub fn encode_release(&self) -> Vec<u8> {
        self.encode_as(Kind::RelayRelease)
    }

    fn encode_as(&self, kind: Kind) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.push(VERSION);
        out.push(kind.to_byte());
        out.extend_from_slice(&self.session_id.to_be_bytes());
        out.push(self.role.bit());
        out.extend_from_slice(&self.token);
        out
    }
    /// Decodes a `RelayBind` or a `RelayRelease` (which one: `peek_kind`).
    pub fn decode(d: &[u8]) -> Result<Self, WireError> {
        if !matches!(peek_kind(d)?, Kind::RelayBind | Kind::RelayRelease) {
            return Err(WireError::Malformed);
        }
        if d.len() != Self::LEN || d[10] > 1 {
            return Err(WireError::Malformed);
        }
        Ok(RelayBind {
            session_id: u64::from_be_bytes(d[2..10].try_into().unwrap()),
            role: Role::from_bit(d[10]),
            token: d[11..27].try_into().unwrap(),
        })
    }
}

/// `RelayBindAuth` / `RelayReleaseAuth`: version, kind, session id (8), role (1), counter (8), MAC (16)
/// over the first 19 bytes under the role's relay token (`crypto::relay_mac`). The token itself never
/// travels; the counter starts at 1 and grows by one per message of the session, so the relay can refuse
/// a replay (it accepts only a counter greater than the last it accepted for that session and role).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayAuth {
    pub session_id: u64,
    pub role: Role,
    pub counter: u64,
    /// `RelayReleaseAuth` rather than `RelayBindAuth`.
    pub release: bool,
}

impl RelayAuth {
    pub const LEN: usize = Self::SIGNED_LEN + crate::crypto::RELAY_MAC_LEN;
    const SIGNED_LEN: usize = 2 + 8 + 1 + 8;

    pub fn encode(&self, token: &[u8; 16]) -> Vec<u8> {
        let kind = if self.release {
            Kind::RelayReleaseAuth
        } else {
            Kind::RelayBindAuth
        };
        let mut out = Vec::with_capacity(Self::LEN);
        out.push(VERSION);
        out.push(kind.to_byte());
        out.extend_from_slice(&self.session_id.to_be_bytes());
        out.push(self.role.bit());
        out.extend_from_slice(&self.counter.to_be_bytes());
        let mac = crate::crypto::relay_mac(token, &out);
        out.extend_from_slice(&mac);
        out
    }

    /// The fields, not yet authenticated: the relay looks up the token by session and role, then
    /// checks with [`RelayAuth::is_signed_by`].
    pub fn decode(d: &[u8]) -> Result<Self, WireError> {
        let release = match peek_kind(d)? {
            Kind::RelayBindAuth => false,
            Kind::RelayReleaseAuth => true,
            _ => return Err(WireError::Malformed),
        };
        if d.len() != Self::LEN || d[10] > 1 {
            return Err(WireError::Malformed);
        }
        Ok(RelayAuth {
            session_id: u64::from_be_bytes(d[2..10].try_into().unwrap()),
            role: Role::from_bit(d[10]),
            counter: u64::from_be_bytes(d[11..19].try_into().unwrap()),
            release,
        })
    }

    /// Whether the datagram `d` (decoded by [`RelayAuth::decode`]) carries a valid MAC under `token`.
    pub fn is_signed_by(d: &[u8], token: &[u8; 16]) -> bool {
        d.len() == Self::LEN
            && crate::crypto::relay_mac_matches(
                token,
                &d[..Self::SIGNED_LEN],
                &d[Self::SIGNED_LEN..],
            )
    }
}

/// `RelayBindAck`: version, kind, session id (8).
pub fn encode_relay_bind_ack(session_id: u64) -> Vec<u8> {
    let mut out = vec![VERSION, Kind::RelayBindAck.to_byte()];
    out.extend_from_slice(&session_id.to_be_bytes());
    out
}

pub fn decode_relay_bind_ack(d: &[u8]) -> Result<u64, WireError> {
    if peek_kind(d)? != Kind::RelayBindAck || d.len() != 10 {
        return Err(WireError::Malformed);
    }
    Ok(u64::from_be_bytes(d[2..10].try_into().unwrap()))
}

/// `ProbeRequest` flag: answer from another port of the same server IP (RFC 5780 "change port").
pub const PROBE_CHANGE_PORT: u8 = 0x01;
/// `ProbeRequest` flag: answer from the server's other IP (RFC 5780 "change IP", which changes the port
/// as well, since that listener has its own).
pub const PROBE_CHANGE_IP: u8 = 0x02;

/// `ProbeRequest`: version, kind, transaction id (12), flags (1: `PROBE_CHANGE_PORT`,
/// `PROBE_CHANGE_IP`, 0 for none), then zero bytes up to [`PROBE_REQUEST_LEN`]. Without flags the server
/// answers from the port it was asked on.
///
/// The padding is what keeps the probe ports from being an amplifier: a request is as long as the
/// longest answer any server may send ([`ProbeResponse::MAX_LEN`], an IPv6 seen address and
/// [`MAX_PROBE_OTHERS`] IPv6 others), so whoever spoofs a victim's source address gets at most as many
/// bytes sent to it as it sent itself. Servers refuse any other length, and nonzero padding (every
/// request has exactly one encoding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeRequest {
    pub txid: [u8; 12],
    pub flags: u8,
}

/// The length of every `ProbeRequest`: the longest `ProbeResponse`.
pub const PROBE_REQUEST_LEN: usize = ProbeResponse::MAX_LEN;

impl ProbeRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PROBE_REQUEST_LEN);
        out.extend_from_slice(&[VERSION, Kind::ProbeRequest.to_byte()]);
        out.extend_from_slice(&self.txid);
        out.push(self.flags);
        out.resize(PROBE_REQUEST_LEN, 0);
        out
    }

    pub fn decode(d: &[u8]) -> Result<Self, WireError> {
        if peek_kind(d)? != Kind::ProbeRequest {
            return Err(WireError::Malformed);
        }
        // Short (unpadded) requests are refused: answering them would amplify.
        if d.len() != PROBE_REQUEST_LEN || d[15..].iter().any(|b| *b != 0) {
            return Err(WireError::Malformed);
        }
        Ok(ProbeRequest {
            txid: d[2..14].try_into().unwrap(),
            flags: d[14],
        })
    }
}

/// An unflagged `ProbeRequest`.
pub fn encode_probe_request(txid: [u8; 12]) -> Vec<u8> {
    ProbeRequest { txid, flags: 0 }.encode()
}

/// The transaction id of a `ProbeRequest`, flagged or not.
pub fn decode_probe_request(d: &[u8]) -> Result<[u8; 12], WireError> {
    ProbeRequest::decode(d).map(|r| r.txid)
}

/// `ProbeResponse`: version, kind, transaction id (12), then the source address the server saw the
/// request come from, then zero or more of the server's other probe addresses, the second-IP listener's
/// first (a client needs it for the mapping test). Each address is family (4 or 6), port (2), address
/// (4 or 16). Responses without other addresses are what servers predating them send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeResponse {
    pub txid: [u8; 12],
    pub seen: SocketAddr,
    pub others: Vec<SocketAddr>,
}

/// Most other addresses a response may carry: the server has three listeners.
pub const MAX_PROBE_OTHERS: usize = 4;

/// One address in a `ProbeResponse`: family, port, and an IPv6 address at most.
const MAX_ADDR_LEN: usize = 1 + 2 + 16;

impl ProbeResponse {
    /// The longest response: an IPv6 seen address and [`MAX_PROBE_OTHERS`] IPv6 others.
    pub const MAX_LEN: usize = 2 + 12 + MAX_ADDR_LEN * (1 + MAX_PROBE_OTHERS);

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION, Kind::ProbeResponse.to_byte()];
        out.extend_from_slice(&self.txid);
        for a in std::iter::once(&self.seen).chain(&self.others) {
            encode_addr(*a, &mut out);
        }
        out
    }

    pub fn decode(d: &[u8]) -> Result<Self, WireError> {
        if peek_kind(d)? != Kind::ProbeResponse || d.len() < 14 {
            return Err(WireError::Malformed);
        }
        let txid: [u8; 12] = d[2..14].try_into().unwrap();
        let mut rest = &d[14..];
        let seen = decode_addr(&mut rest)?;
        let mut others = Vec::new();
        while !rest.is_empty() {
            if others.len() == MAX_PROBE_OTHERS {
                return Err(WireError::Malformed);
            }
            others.push(decode_addr(&mut rest)?);
        }
        Ok(ProbeResponse { txid, seen, others })
    }
}

fn encode_addr(a: SocketAddr, out: &mut Vec<u8>) {
    match a.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&a.port().to_be_bytes());
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&a.port().to_be_bytes());
            out.extend_from_slice(&ip.octets());
        }
    }
}

/// Reads one family/port/address triple from the front of `d`.
fn decode_addr(d: &mut &[u8]) -> Result<SocketAddr, WireError> {
    let len = match d.first() {
        Some(4) => 4,
        Some(6) => 16,
        _ => return Err(WireError::Malformed),
    };
    if d.len() < 3 + len {
        return Err(WireError::Malformed);
    }
    let port = u16::from_be_bytes([d[1], d[2]]);
    let raw = &d[3..3 + len];
    let ip = if len == 4 {
        IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(raw).unwrap()))
    } else {
        IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(raw).unwrap()))
    };
    *d = &d[3 + len..];
    Ok(SocketAddr::new(ip, port))
}

/// A `ProbeResponse` without other addresses.
pub fn encode_probe_response(txid: [u8; 12], seen: SocketAddr) -> Vec<u8> {
    ProbeResponse {
        txid,
        seen,
        others: Vec::new(),
    }
    .encode()
}

/// The transaction id and seen address of a `ProbeResponse` (other addresses are skipped).
pub fn decode_probe_response(d: &[u8]) -> Result<([u8; 12], SocketAddr), WireError> {
    ProbeResponse::decode(d).map(|r| (r.txid, r.seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authenticated_relay_message_carries_no_token_and_its_mac_covers_every_field() {
        let token = [0xA5u8; 16];
        let msg = RelayAuth {
            session_id: 0x0102_0304_0506_0708,
            role: Role::Target,
            counter: 9,
            release: false,
        };
        let d = msg.encode(&token);
        assert_eq!(d.len(), RelayAuth::LEN);
        assert_eq!(peek_kind(&d), Ok(Kind::RelayBindAuth));
        assert!(!d.windows(token.len()).any(|w| w == token));
        assert_eq!(RelayAuth::decode(&d), Ok(msg));
        assert!(RelayAuth::is_signed_by(&d, &token));
        assert!(!RelayAuth::is_signed_by(&d, &[0xA4u8; 16]));
        for i in 2..d.len() {
            let mut changed = d.clone();
            changed[i] ^= 0x80;
            assert!(!RelayAuth::is_signed_by(&changed, &token), "byte {i}");
        }
        let release = RelayAuth {
            release: true,
            ..msg
        };
        assert_eq!(
            peek_kind(&release.encode(&token)),
            Ok(Kind::RelayReleaseAuth)
        );
        assert_eq!(RelayAuth::decode(&d[..34]), Err(WireError::Malformed));
    }

    #[test]
    fn session_header_round_trips() {
        let h = SessionHeader {
            kind: Kind::Data(Role::Target),
            session_id: 0x0102030405060708,
            packet_number: 77,
        };
        let mut buf = Vec::new();
        h.encode(&mut buf);
        buf.extend_from_slice(b"payload");
        let (back, rest) = SessionHeader::decode(&buf).unwrap();
        assert_eq!(back, h);
        assert_eq!(rest, b"payload");
        assert_eq!(peek_session_id(&buf), Some(0x0102030405060708));
    }

    #[test]
    fn short_or_foreign_datagrams_are_rejected() {
        assert_eq!(peek_kind(&[]), Err(WireError::Truncated));
        assert_eq!(peek_kind(&[9, 0x10]), Err(WireError::Version(9)));
        assert_eq!(peek_kind(&[1, 0x99]), Err(WireError::UnknownKind(0x99)));
        assert_eq!(
            SessionHeader::decode(&[1, 0x10, 0, 0]),
            Err(WireError::Truncated)
        );
        assert!(RelayBind::decode(&[1, 0x20, 1]).is_err());
        let mut too_high = Vec::new();
        SessionHeader {
            kind: Kind::Data(Role::Initiator),
            session_id: 1,
            packet_number: MAX_PACKET_NUMBER + 1,
        }
        .encode(&mut too_high);
        assert_eq!(SessionHeader::decode(&too_high), Err(WireError::Malformed));
    }

    #[test]
    fn probe_and_bind_round_trip() {
        let addr: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        let r = encode_probe_response([7; 12], addr);
        assert_eq!(decode_probe_response(&r).unwrap(), ([7; 12], addr));
        let addr6: SocketAddr = "[2001:db8::1]:5".parse().unwrap();
        assert_eq!(
            decode_probe_response(&encode_probe_response([1; 12], addr6))
                .unwrap()
                .1,
            addr6
        );
        let b = RelayBind {
            session_id: 9,
            role: Role::Target,
            token: [3; 16],
        };
        assert_eq!(RelayBind::decode(&b.encode()).unwrap(), b);
        assert_eq!(peek_kind(&b.encode_release()).unwrap(), Kind::RelayRelease);
        assert_eq!(RelayBind::decode(&b.encode_release()).unwrap(), b);
        assert_eq!(decode_relay_bind_ack(&encode_relay_bind_ack(5)).unwrap(), 5);
    }

    #[test]
    fn probe_requests_are_padded_to_the_longest_answer() {
        let plain = encode_probe_request([4; 12]);
        assert_eq!(plain.len(), PROBE_REQUEST_LEN);
        assert_eq!(PROBE_REQUEST_LEN, 109);
        let flagged = ProbeRequest {
            txid: [4; 12],
            flags: PROBE_CHANGE_IP,
        };
        let bytes = flagged.encode();
        assert_eq!(bytes.len(), PROBE_REQUEST_LEN);
        assert_eq!(ProbeRequest::decode(&bytes).unwrap(), flagged);
        assert_eq!(ProbeRequest::decode(&plain).unwrap().flags, 0);
        // The old unpadded forms (14 bytes, or 15 with flags), a cut or a longer request and nonzero
        // padding are all refused.
        for bad in [
            &plain[..14],
            &bytes[..15],
            &plain[..PROBE_REQUEST_LEN - 1],
            &[plain.clone(), vec![0]].concat()[..],
        ] {
            assert_eq!(ProbeRequest::decode(bad), Err(WireError::Malformed));
        }
        let mut dirty = plain.clone();
        dirty[PROBE_REQUEST_LEN - 1] = 1;
        assert_eq!(ProbeRequest::decode(&dirty), Err(WireError::Malformed));

        // No answer is longer than a request, whatever its addresses.
        let v6: SocketAddr = "[2001:db8::1]:5".parse().unwrap();
        let longest = ProbeResponse {
            txid: [0; 12],
            seen: v6,
            others: vec![v6; MAX_PROBE_OTHERS],
        };
        assert_eq!(longest.encode().len(), ProbeResponse::MAX_LEN);
        assert!(longest.encode().len() <= PROBE_REQUEST_LEN);
    }

    #[test]
    fn probe_responses_may_carry_other_addresses() {
        let seen: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        let r = ProbeResponse {
            txid: [5; 12],
            seen,
            others: vec![
                "198.18.0.2:5961".parse().unwrap(),
                "[2001:db8::2]:5960".parse().unwrap(),
            ],
        };
        let bytes = r.encode();
        assert_eq!(ProbeResponse::decode(&bytes).unwrap(), r);
        // An old client reads the txid and seen address and skips the rest.
        assert_eq!(decode_probe_response(&bytes).unwrap(), ([5; 12], seen));
        assert!(ProbeResponse::decode(&bytes[..bytes.len() - 1]).is_err());
        let old = encode_probe_response([5; 12], seen);
        assert!(ProbeResponse::decode(&old).unwrap().others.is_empty());
    }
}
