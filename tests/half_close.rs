//! Half-close (a FIN on one side reaches the other: ssh, scp and HTTP depend on it), in the
//! cases a bulk transfer does not exercise: the client's FIN comes alone, after every byte it sent was
//! already delivered (an idle pause, or a writer slower than the tunnel). The service must see the end
//! of the stream and its answer must come back.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use p2p_system_tests::data::{hex, sha256, Rng};
use p2p_system_tests::services::{Kind, Transfer, TransferService};
use p2p_system_tests::Lab;

/// Sends `chunks` to the transfer service's sink (pausing `pause` after each), half-closes, and checks
/// the service's answer (length and SHA-256 of everything it received).
fn upload_with_pauses(port: u16, chunks: &[Vec<u8>], pause: Duration) -> Result<(), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"U").map_err(|e| format!("send: {e}"))?;
    let mut all = Vec::new();
    for c in chunks {
        s.write_all(c).map_err(|e| format!("send: {e}"))?;
        all.extend_from_slice(c);
        std::thread::sleep(pause);
    }
    s.shutdown(Shutdown::Write)
        .map_err(|e| format!("half-close: {e}"))?;
    let mut reply = [0u8; 40];
    s.read_exact(&mut reply).map_err(|e| {
        format!(
            "no answer within 20 s after the half-close ({e}): the FIN did not reach the service"
        )
    })?;
    let len = u64::from_be_bytes(reply[..8].try_into().unwrap());
    if len != all.len() as u64 || reply[8..] != sha256(&all) {
        return Err(format!(
            "the service received {len} bytes (sha256 {}), {} were sent (sha256 {})",
            hex(&reply[8..]),
            all.len(),
            hex(&sha256(&all))
        ));
    }
    Ok(())
}

#[test]
fn fin_after_an_idle_pause_reaches_the_service() {
    let lab = Lab::new("half_close_pause");
    let svc = TransferService::start();
    let t = lab.tunnel(svc.port(), 3, &[]);
    let mut rng = Rng::from_os();
    upload_with_pauses(t.port, &[rng.bytes(100_000)], Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("{e}"));
    upload_with_pauses(t.port, &[], Duration::ZERO)
        .unwrap_or_else(|e| panic!("an empty upload: {e}"));
}

#[test]
fn slow_writer_then_half_close() {
    let lab = Lab::new("half_close_slow_writer");
    let svc = TransferService::start();
    let t = lab.tunnel(svc.port(), 3, &[]);
    let mut rng = Rng::from_os();
    let chunks: Vec<Vec<u8>> = (0..20).map(|_| rng.bytes(32 * 1024)).collect();
    upload_with_pauses(t.port, &chunks, Duration::from_millis(50))
        .unwrap_or_else(|e| panic!("{e}"));
    // The same through the harness's paced transfer (sent plus echoed at most 2 MB/s).
    Transfer::start_paced(t.port, Kind::Echo, 4 * 1024 * 1024, Some(2 * 1024 * 1024))
        .join(Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("paced echo: {e}"));
}
