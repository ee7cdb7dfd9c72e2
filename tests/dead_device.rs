//! A device that dies without a word (its target process killed) shows at once as a
//! session in trouble. The tunnel goes from `Connected` to `Degraded` within a few seconds of the kill
//! (`p2p_net::status::DEGRADED_AFTER` of silence), with `peer_silent_ms` saying how long, well before the
//! session's idle timeout (20 s) ends it as `Failed`. connectd prints one warning on stderr meanwhile and
//! its `!!` status lines stay those of a connected session.

use std::time::{Duration, Instant};

use p2p_net::status::DEGRADED_AFTER;
use p2p_net::TunnelState;
use p2p_system_tests::initiator::tunnel_config;
use p2p_system_tests::services::HttpServer;
use p2p_system_tests::Lab;

/// How long after the kill `Degraded` may come: the silence counts from the last packet (at most ~1 s
/// before the kill on an idle session), plus one status refresh and room for a busy 2-core machine.
const DEGRADED_WITHIN: Duration = Duration::from_secs(10);

#[test]
fn a_killed_device_is_degraded_within_seconds_then_failed_at_the_idle_timeout() {
    let lab = Lab::new("dead_device");
    let http = HttpServer::start(b"alive\n".to_vec());
    let (account, device) = lab.account_and_device();
    let mut target = lab.target(&device, http.port(), &[]);
    // connectd as the initiator (`-s -c`, autoconnect 1), and the same driver in process.
    let mut connectd = lab.initiator(&lab.spec(&account, &device, 3), &[]);
    lab.curl_expect(connectd.port(), &http.body);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let tunnel = rt.block_on(async {
        let cfg = serde_json::from_value(tunnel_config(&lab, &account, &device)).expect("config");
        let t = p2p_net::Tunnel::start(cfg).await.expect("start the tunnel");
        let mut w = t.watch();
        tokio::time::timeout(
            Duration::from_secs(30),
            w.wait_for(|s| s.state != TunnelState::Connecting),
        )
        .await
        .expect("the tunnel did not connect in time")
        .expect("tunnel status");
        t
    });
    let st = tunnel.status();
    assert_eq!(st.state, TunnelState::Connected, "{st:?}");
    lab.curl_expect(tunnel.local_addr().port(), &http.body);

    // Idle but alive: the keepalives (every 2 s each way) keep the silence short, and the state Connected.
    let idle_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < idle_until {
        let st = tunnel.status();
        assert_eq!(st.state, TunnelState::Connected, "{st:?}");
        let silent = st.peer_silent_ms.expect("peer_silent_ms while connected");
        assert!(silent < 3000, "{silent} ms of silence from a live device");
        std::thread::sleep(Duration::from_millis(250));
    }

    // Every state change from the kill on, with when it came and the silence it reported.
    let mut watch = tunnel.watch();
    watch.borrow_and_update();
    let killed = Instant::now();
    target.proc.kill();
    let changes = rt.block_on(async {
        let mut changes = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
        loop {
            match tokio::time::timeout_at(deadline, watch.changed()).await {
                Ok(Ok(())) => {}
                _ => break,
            }
            let s = watch.borrow_and_update().clone();
            let done = s.state.is_final() || s.state == TunnelState::Reconnecting;
            changes.push((killed.elapsed(), s.state, s.peer_silent_ms));
            if done {
                break;
            }
        }
        changes
    });
    // Watchers also wake on path changes (the dead direct path falls back to the relay) and on the
    // last error being set: keep the state changes, from the first one away from Connected.
    let mut states: Vec<TunnelState> = changes.iter().map(|c| c.1).collect();
    states.dedup();
    let first = states
        .iter()
        .position(|s| *s != TunnelState::Connected)
        .unwrap_or(states.len());
    assert_eq!(
        states[first..],
        [TunnelState::Degraded, TunnelState::Failed],
        "state changes after the kill: {changes:?}"
    );
    let degraded = changes
        .iter()
        .find(|c| c.1 == TunnelState::Degraded)
        .expect("Degraded");
    let failed = changes.last().expect("Failed");
    let (degraded_at, _, silent) = *degraded;
    assert!(
        degraded_at <= DEGRADED_WITHIN,
        "Degraded {degraded_at:?} after the kill: {changes:?}"
    );
    let silent = silent.expect("peer_silent_ms while degraded");
    assert!(
        silent >= DEGRADED_AFTER.as_millis() as u64,
        "Degraded with {silent} ms of silence"
    );
    let (failed_at, _, failed_silent) = *failed;
    assert!(
        failed_at >= Duration::from_secs(15),
        "the session ended {failed_at:?} after the kill, before its idle timeout: {changes:?}"
    );
    assert_eq!(failed_silent, None, "no session is up once it failed");
    let st = tunnel.status();
    assert_eq!(
        st.last_error.as_ref().map(|e| e.kind.as_str()),
        Some("PeerTimeout"),
        "{st:?}"
    );
    assert_eq!(st.reconnect_attempts, 0, "autoconnect 1 does not retry");

    // connectd: one warning on stderr, no second `!!connected`, then the end of the session.
    connectd.wait_exit_line(Duration::from_secs(30));
    let lines = connectd.proc.lines();
    let warnings: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("warning: no packet from"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", connectd.proc.tail(30));
    assert!(
        warnings[0].contains(&device.uid),
        "the warning names the device: {}",
        warnings[0]
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("!!connected"))
            .count(),
        1,
        "{}",
        connectd.proc.tail(30)
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("!!") && l.to_lowercase().contains("degraded")),
        "connectd 4.6 has no status line for it: {}",
        connectd.proc.tail(30)
    );
    rt.block_on(tunnel.stop());
    lab.check_logs();
}
