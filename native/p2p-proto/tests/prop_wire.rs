//! Property ("fuzz") targets of the clear datagram layouts in `p2p_proto::wire`: every decoder gets
//! random bytes, random bytes behind a valid version and kind, and mutated valid datagrams. None may
//! panic, and whatever a decoder accepts must encode back to exactly the bytes it came from, so two
//! different datagrams can never decode to the same value (nothing ambiguous for a relay to route on).

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use common::{apply, bytes, check, invariants, mutations};
use p2p_proto::wire::{
    encode_probe_request, encode_probe_response, encode_relay_bind_ack, peek_kind, peek_session_id,
    Kind, ProbeRequest, ProbeResponse, RelayBind, SessionHeader, MAX_DATAGRAM, MAX_PACKET_NUMBER,
    MAX_PROBE_OTHERS, VERSION,
};
use p2p_proto::Role;

const KIND_BYTES: [u8; 9] = [0x10, 0x11, 0x12, 0x13, 0x20, 0x21, 0x22, 0x30, 0x31];

/// Random bytes, half of them behind a valid version and kind so the decoders get past the first check.
fn datagram() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        bytes(MAX_DATAGRAM),
        (prop::sample::select(&KIND_BYTES[..]), bytes(64)).prop_map(|(kind, tail)| {
            let mut d = vec![VERSION, kind];
            d.extend_from_slice(&tail);
            d
        }),
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Initiator), Just(Role::Target)]
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)),
    ]
}

/// A valid datagram of every layout the wire module knows.
fn valid_datagram() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (
            prop_oneof![
                role().prop_map(Kind::Data),
                role().prop_map(Kind::DataPhase1),
                role().prop_map(Kind::Handshake),
                role().prop_map(Kind::PeerHandshake)
            ],
            any::<u64>(),
            prop_oneof![0..=MAX_PACKET_NUMBER, Just(MAX_PACKET_NUMBER)],
            bytes(200),
        )
            .prop_map(|(kind, session_id, packet_number, payload)| {
                let mut d = Vec::new();
                SessionHeader {
                    kind,
                    session_id,
                    packet_number,
                }
                .encode(&mut d);
                d.extend_from_slice(&payload);
                d
            }),
        (any::<u64>(), role(), any::<[u8; 16]>()).prop_map(|(session_id, role, token)| {
            RelayBind {
                session_id,
                role,
                token,
            }
            .encode()
        }),
        (any::<u64>(), role(), any::<[u8; 16]>()).prop_map(|(session_id, role, token)| {
            RelayBind {
                session_id,
                role,
                token,
            }
            .encode_release()
        }),
        any::<u64>().prop_map(encode_relay_bind_ack),
        any::<[u8; 12]>().prop_map(encode_probe_request),
        (any::<[u8; 12]>(), any::<u8>())
            .prop_map(|(txid, flags)| ProbeRequest { txid, flags }.encode()),
        (any::<[u8; 12]>(), socket_addr()).prop_map(|(t, a)| encode_probe_response(t, a)),
        (
            any::<[u8; 12]>(),
            socket_addr(),
            prop::collection::vec(socket_addr(), 0..=MAX_PROBE_OTHERS)
        )
            .prop_map(|(txid, seen, others)| ProbeResponse { txid, seen, others }.encode()),
    ]
}

#[test]
fn wire_decoders_never_panic_on_random_datagrams() {
    check("wire_random", 2000, datagram(), |d| {
        invariants::wire_datagram(&d);
        Ok(())
    });
}

#[test]
fn wire_decoders_never_panic_on_mutated_valid_datagrams() {
    check(
        "wire_mutated",
        2000,
        (valid_datagram(), mutations()),
        |(mut d, m)| {
            // The unmutated datagram decodes (and round-trips) first.
            invariants::wire_datagram(&d);
            prop_assert!(peek_kind(&d).is_ok());
            if peek_session_id(&d).is_some() {
                prop_assert!(SessionHeader::decode(&d).is_ok());
            }
            apply(&mut d, &m);
            invariants::wire_datagram(&d);
            Ok(())
        },
    );
}
