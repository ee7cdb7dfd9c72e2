//! Mode 3's two AEADs side by side on this CPU: seal and open of full-size datagrams through the
//! session's own packet protection (`p2p_proto::crypto::Protection`, after a real handshake forcing
//! each AEAD), one core, no I/O. Shows what negotiating AES-256-GCM gains where the CPU has AES
//! instructions, and which AEAD two peers on this machine agree on.

use std::time::{Duration, Instant};

use p2p_proto::crypto::{Aead, AeadOffer, Handshake, Protection};
use p2p_proto::wire::{Kind, SessionHeader, MAX_DATAGRAM, SESSION_HEADER_LEN};
use p2p_proto::{EncryptionMode, Role};

use crate::report::Report;

const SECTION: &str = "aead";
/// Packets sealed, then opened, per timed batch.
const BATCH: usize = 1000;

/// Adds seal and open speed per AEAD, and AES-256-GCM / ChaCha20-Poly1305, to the report.
pub fn run(report: &mut Report, quick: bool) {
    let per_aead = if quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(2)
    };
    let mut seal_rates = Vec::new();
    for aead in Aead::ALL {
        let (seal, open) = speed(aead, per_aead);
        let key = aead.name().to_ascii_lowercase().replace('-', "_");
        report.add(
            SECTION,
            &format!("{key}_seal_GBps"),
            &format!("{aead} seal"),
            seal,
            "GB/s",
        );
        report.add(
            SECTION,
            &format!("{key}_open_GBps"),
            &format!("{aead} open"),
            open,
            "GB/s",
        );
        seal_rates.push((aead, seal));
    }
    let seal_rate = |wanted: Aead| {
        seal_rates
            .iter()
            .find(|(aead, _)| *aead == wanted)
            .map_or(f64::NAN, |(_, rate)| *rate)
    };
    report.add(
        SECTION,
        "aes_over_chacha_seal",
        "ratio AES-256-GCM / ChaCha20-Poly1305 (seal)",
        seal_rate(Aead::Aes256Gcm) / seal_rate(Aead::ChaCha20Poly1305),
        "",
    );
    // 1 when two peers on this machine (the `paths` tunnels) agree on AES-256-GCM, 0 for ChaCha20.
    report.add(
        SECTION,
        "negotiated_here_is_aes",
        &format!("mode 3 on this machine negotiates {}", Aead::fastest_here()),
        f64::from(u8::from(Aead::fastest_here() == Aead::Aes256Gcm)),
        "",
    );
}

/// (seal, open) in GB/s of payload for `aead` over about `budget` each.
fn speed(aead: Aead, budget: Duration) -> (f64, f64) {
    let (sealer, mut opener) = pair(aead);
    let payload_len = MAX_DATAGRAM - SESSION_HEADER_LEN - sealer.max_overhead();
    let plain = vec![0x5a; payload_len];
    let mut packets: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(BATCH);
    let mut out = Vec::with_capacity(MAX_DATAGRAM);
    let (mut sealing, mut opening, mut bytes) = (Duration::ZERO, Duration::ZERO, 0u64);
    let mut pn = 0u64;
    while sealing + opening < 2 * budget {
        packets.clear();
        let started = Instant::now();
        for _ in 0..BATCH {
            pn += 1;
            let header = header(pn);
            let mut body = plain.clone();
            sealer.seal(&header, pn, &mut body);
            packets.push((header, body));
        }
        sealing += started.elapsed();
        let started = Instant::now();
        for (i, (header, body)) in packets.iter().enumerate() {
            let number = pn - BATCH as u64 + 1 + i as u64;
            opener
                .open(header, number, body, &mut out)
                .expect("a packet sealed by the peer opens");
        }
        opening += started.elapsed();
        bytes += (BATCH * payload_len) as u64;
    }
    let gbps = |t: Duration| bytes as f64 / t.as_secs_f64() / 1e9;
    (gbps(sealing), gbps(opening))
}

/// The initiator's protection and the target's, after a handshake where both accept only `aead`.
fn pair(aead: Aead) -> (Protection, Protection) {
    let offer = Some(AeadOffer::only(aead));
    let mode = EncryptionMode::ChaCha20Poly1305;
    let secret = [0x42; 32];
    let i = Handshake::with_offer(Role::Initiator, mode, &secret, &[0x11; 48], offer);
    let t = Handshake::with_offer(Role::Target, mode, &secret, &[0x22; 48], offer);
    let hs = |role| {
        let mut h = Vec::new();
        SessionHeader {
            kind: Kind::Handshake(role),
            session_id: 1,
            packet_number: 0,
        }
        .encode(&mut h);
        h
    };
    let (h1, h2) = (hs(Role::Initiator), hs(Role::Target));
    let target = t.receive(&h1, &i.message(&h1)).expect("HS1 accepted");
    let initiator = i.receive(&h2, &t.message(&h2)).expect("HS2 accepted");
    (initiator, target)
}

fn header(pn: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(SESSION_HEADER_LEN);
    SessionHeader {
        kind: Kind::Data(Role::Initiator),
        session_id: 1,
        packet_number: pn,
    }
    .encode(&mut h);
    h
}
