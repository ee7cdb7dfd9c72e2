//! `autoconnect 2` keeps a tunnel alive through outages without the user doing anything. During
//! an idle session the target is killed and restarted, then the server is restarted, then the target
//! again: after each, a new curl through the same local port succeeds, the initiator never restarted,
//! and the local port stayed open throughout.

use std::time::Duration;

use p2p_system_tests::poll::wait_until;
use p2p_system_tests::ports::{free_tcp_port, tcp_port_accepts};
use p2p_system_tests::proc::Proc;
use p2p_system_tests::services::HttpServer;
use p2p_system_tests::Lab;

/// How long a re-established session may take: the dead peer is noticed after the idle timeout (20 s),
/// then reconnects back off up to 10 s.
const RECOVERY: Duration = Duration::from_secs(90);

fn connected_count(p: &Proc) -> usize {
    p.lines()
        .iter()
        .filter(|l| l.starts_with("!!connected"))
        .count()
}

#[test]
fn autoconnect_2_survives_target_and_server_restarts() {
    let mut lab = Lab::new("cli_autoconnect");
    let http = HttpServer::start(b"autoconnect keeps me reachable\n".to_vec());
    let (account, device) = lab.account_and_device();
    let mut target = lab.target(&device, http.port(), &[]);

    let port = free_tcp_port();
    let file = lab.initiator_file(&account, &device, port, 2);
    let mut i = lab.connectd_plain(
        "initiator",
        &[
            "-s".into(),
            "-f".into(),
            file.to_string_lossy().into_owned(),
        ],
    );
    i.wait_for_text("!!connected", Duration::from_secs(30));
    lab.curl_expect(port, &http.body);

    // 1. The target dies and comes back.
    let before = connected_count(&i);
    target.proc.kill();
    assert!(
        tcp_port_accepts(port),
        "the local port closed when the target died"
    );
    let mut target = lab.start_target(&device, http.port(), &[]);
    target.wait_registered();
    wait_until(
        "the initiator to reconnect after the target restart",
        RECOVERY,
        || connected_count(&i) > before,
    );
    lab.curl_expect(port, &http.body);

    // 2. The server restarts: the target re-registers; the tunnel still (or again) works.
    lab.server.restart();
    target.wait_registered_again(Duration::from_secs(60));
    lab.curl_expect(port, &http.body);

    // 3. The target dies again: the new session has to be set up through the restarted server.
    let before = connected_count(&i);
    target.proc.kill();
    let mut target = lab.start_target(&device, http.port(), &[]);
    target.wait_registered();
    wait_until(
        "the initiator to reconnect through the restarted server",
        RECOVERY,
        || connected_count(&i) > before,
    );
    lab.curl_expect(port, &http.body);

    assert!(
        i.try_status().is_none(),
        "the initiator exited:\n{}",
        i.tail(30)
    );
}
