//! What the decoders promise about any input, as plain assertions (a broken promise panics). Shared by
//! the proptest targets of this directory (proptest catches the panic and shrinks the input) and by the
//! coverage-guided libFuzzer targets in `native/fuzz`, which include this file by path; so it depends
//! on nothing but `p2p_proto` and `serde_json`.

#![allow(dead_code)] // each target uses a different part of this module

use p2p_proto::control::{ClientMsg, ServerMsg};
use p2p_proto::frame::{parse, Frame, FrameError, MAX_VARINT};
use p2p_proto::wire::{
    decode_probe_request, decode_probe_response, decode_relay_bind_ack, encode_probe_request,
    encode_probe_response, encode_relay_bind_ack, peek_kind, peek_session_id, Kind, ProbeRequest,
    ProbeResponse, RelayBind, SessionHeader, MAX_PACKET_NUMBER, SESSION_HEADER_LEN, VERSION,
};

/// Every clear-layout decoder of `wire` on datagram `d`: whatever one accepts encodes back to `d`
/// itself, so two different datagrams never decode to the same value (nothing ambiguous for a relay
/// to route on).
pub fn wire_datagram(d: &[u8]) {
    let kind = peek_kind(d);
    if let Ok(k) = kind {
        assert_eq!(Kind::from_byte(k.to_byte()), Some(k));
        assert_eq!(d[0], VERSION);
    }
    let sid = peek_session_id(d);
    match SessionHeader::decode(d) {
        Ok((header, payload)) => {
            assert!(header.kind.is_session());
            assert_eq!(sid, Some(header.session_id));
            let mut again = Vec::new();
            header.encode(&mut again);
            assert_eq!(again.len(), SESSION_HEADER_LEN);
            again.extend_from_slice(payload);
            assert_eq!(&again[..], d);
        }
        // The relay routes on the session id alone; a header whose packet number no ACK could carry
        // still has one, but no session accepts it.
        Err(_) => {
            if sid.is_some() {
                let packet_number = u64::from_be_bytes(d[10..18].try_into().unwrap());
                assert!(packet_number > MAX_PACKET_NUMBER);
            }
        }
    }
    // One layout serves RelayBind and RelayRelease; the kind byte says which one to re-encode.
    if let Ok(bind) = RelayBind::decode(d) {
        let again = match kind {
            Ok(Kind::RelayRelease) => bind.encode_release(),
            _ => bind.encode(),
        };
        assert_eq!(&again[..], d);
    }
    // An authenticated bind or release decodes to fields that re-encode to its first 19 bytes (the
    // MAC depends on a token the datagram does not carry).
    if let Ok(auth) = p2p_proto::wire::RelayAuth::decode(d) {
        assert_eq!(&auth.encode(&[0; 16])[..19], &d[..19]);
    }
    if let Ok(session_id) = decode_relay_bind_ack(d) {
        assert_eq!(&encode_relay_bind_ack(session_id)[..], d);
    }
    if let Ok(req) = ProbeRequest::decode(d) {
        assert_eq!(&req.encode()[..], d);
        // The short form reads the same transaction id, and the unflagged request is the old layout.
        assert_eq!(decode_probe_request(d), Ok(req.txid));
        if req.flags == 0 {
            assert_eq!(&encode_probe_request(req.txid)[..], d);
        }
    }
    if let Ok(resp) = ProbeResponse::decode(d) {
        assert_eq!(&resp.encode()[..], d);
        assert_eq!(decode_probe_response(d), Ok((resp.txid, resp.seen)));
        if resp.others.is_empty() {
            assert_eq!(&encode_probe_response(resp.txid, resp.seen)[..], d);
        }
    } else {
        assert!(decode_probe_response(d).is_err());
    }
}

/// The frames `parse` yields before its first error (and whether there was one). The iterator must
/// stop after an error.
pub fn parse_all(payload: &[u8]) -> (Vec<Frame<'_>>, Option<FrameError>) {
    let mut frames = Vec::new();
    let mut iter = parse(payload);
    for f in iter.by_ref() {
        match f {
            Ok(f) => frames.push(f),
            Err(e) => {
                assert!(iter.next().is_none(), "parse went on after an error");
                return (frames, Some(e));
            }
        }
    }
    (frames, None)
}

/// Everything the frame decoder promises about what it accepted from a decrypted `payload`: ACK
/// ranges well formed, stream data within the varint range, and a re-encoding that parses to the same
/// frames.
pub fn frame_payload(payload: &[u8]) {
    let (frames, error) = parse_all(payload);
    for f in &frames {
        match f {
            Frame::Ack(ack) => {
                let ranges: Vec<_> = ack.ranges().collect();
                assert!(!ranges.is_empty());
                assert_eq!(*ranges[0].end(), ack.largest);
                for w in ranges.windows(2) {
                    // Highest first, disjoint and not adjacent.
                    assert!(w[1].end() + 1 < *w[0].start(), "{ranges:?}");
                }
                for r in &ranges {
                    assert!(r.start() <= r.end());
                }
            }
            Frame::Stream { offset, data, .. } => {
                assert!(offset + data.len() as u64 <= MAX_VARINT)
            }
            _ => {}
        }
    }
    // Re-encoding what parsed gives a payload that parses to the same frames; our own encoding is a
    // fixed point (the input may have used longer varints than needed, so it can differ from it).
    let mut again = Vec::new();
    for f in &frames {
        f.encode(&mut again);
    }
    let (reparsed, reerror) = parse_all(&again);
    assert_eq!(reerror, None);
    assert_eq!(&reparsed, &frames);
    let mut third = Vec::new();
    for f in &reparsed {
        f.encode(&mut third);
    }
    assert_eq!(&third, &again);
    if error.is_none() && frames.is_empty() {
        assert!(payload.is_empty());
    }
}

/// A control frame's JSON parsed both ways (server side and peer side): whatever is accepted
/// serializes back to JSON that parses to the same message.
pub fn control_json(bytes: &[u8]) {
    if let Ok(m) = serde_json::from_slice::<ClientMsg>(bytes) {
        let again = serde_json::to_vec(&m).expect("serializes");
        assert_eq!(serde_json::from_slice::<ClientMsg>(&again).ok(), Some(m));
    }
    if let Ok(m) = serde_json::from_slice::<ServerMsg>(bytes) {
        let again = serde_json::to_vec(&m).expect("serializes");
        assert_eq!(serde_json::from_slice::<ServerMsg>(&again).ok(), Some(m));
    }
}
