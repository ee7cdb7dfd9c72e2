//! The session state machine (`Session::handle_datagram`) of a target whose handshake with a genuine
//! initiator completed, fed attacker-chosen datagrams from the relay and from strangers, in the mode
//! the first byte picks, with time moving on, every readable stream read: it never panics. In mode 0 (no integrity) a chunk wrapped in a valid data header reaches the
//! frame and stream logic; in modes 1–3 it is an unauthenticated packet to drop.
//!
//! Input layout: `[mode] ([len][flags][len bytes])*`; flags bit 0: wrap in a data header, bit 1:
//! from a stranger instead of the relay, bits 2–7: how far the clock moves afterwards (× 50 ms).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use p2p_proto::session::{Event, ReadResult, Session, SessionConfig, SESSION_RANDOM_LEN};
use p2p_proto::wire::{Kind, SessionHeader};
use p2p_proto::{EncryptionMode, Role};

const SID: u64 = 0x0bad_cafe_f00d_0001;
const RELAY: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), 5000);
const STRANGER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 66)), 4444);

fn session(role: Role, mode: EncryptionMode, now: Instant, seed: u8) -> Session {
    let mut config = SessionConfig::new(role, SID, mode, [0x5c; 32]);
    config.relay = Some(RELAY);
    Session::new(config, now, [seed; SESSION_RANDOM_LEN])
}

/// Delivers what each side sends to the relay to the other side until the handshake completed.
fn connect(initiator: &mut Session, target: &mut Session, now: Instant) {
    let mut buf = Vec::new();
    for _ in 0..100 {
        while initiator.poll_transmit(now, &mut buf) == Some(RELAY) {
            target.handle_datagram(now, RELAY, &buf);
        }
        while target.poll_transmit(now, &mut buf) == Some(RELAY) {
            initiator.handle_datagram(now, RELAY, &buf);
        }
        if initiator.is_connected() && target.is_connected() {
            return;
        }
    }
    panic!("the genuine handshake did not complete");
}

/// Drains the target's output and events, reading every readable stream.
fn drain(target: &mut Session, now: Instant, buf: &mut Vec<u8>) {
    while target.poll_transmit(now, buf).is_some() {}
    while let Some(event) = target.poll_event() {
        if let Event::StreamReadable(id) = event {
            let mut chunk = [0u8; 4096];
            while let Ok(ReadResult::Data(_)) = target.read(id, &mut chunk) {}
        }
    }
}

fuzz_target!(|d: &[u8]| {
    let Some((&pick, mut rest)) = d.split_first() else {
        return;
    };
    let mode = match pick % 4 {
        0 => EncryptionMode::None,
        1 => EncryptionMode::Rc4,
        2 => EncryptionMode::Xxtea,
        _ => EncryptionMode::ChaCha20Poly1305,
    };
    let mut now = Instant::now();
    let mut initiator = session(Role::Initiator, mode, now, 0x11);
    let mut target = session(Role::Target, mode, now, 0x22);
    connect(&mut initiator, &mut target, now);
    let mut buf = Vec::new();
    let mut packet_number = 1_000;
    while let [len, flags, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (chunk, next) = tail.split_at(n);
        rest = next;
        let mut datagram = Vec::new();
        if flags & 1 != 0 {
            packet_number += 1;
            SessionHeader {
                kind: Kind::Data(Role::Initiator),
                session_id: SID,
                packet_number,
            }
            .encode(&mut datagram);
        }
        datagram.extend_from_slice(chunk);
        let from = if flags & 2 == 0 { RELAY } else { STRANGER };
        target.handle_datagram(now, from, &datagram);
        drain(&mut target, now, &mut buf);
        now += Duration::from_millis(u64::from(flags >> 2) * 50);
        target.handle_timeout(now);
        drain(&mut target, now, &mut buf);
    }
});
