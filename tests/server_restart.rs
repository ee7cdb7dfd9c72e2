//! The server restarts while a target is registered: the target re-registers (with backoff) and
//! a new connection works.

use std::time::Duration;

use p2p_system_tests::services::HttpServer;
use p2p_system_tests::Lab;

#[test]
fn target_reregisters_after_server_restart() {
    let mut lab = Lab::new("server_restart");
    let http = HttpServer::start(b"served after a restart\n".repeat(1000));
    let (account, device) = lab.account_and_device();
    let mut target = lab.target(&device, http.port(), &[]);
    let first = lab.initiator(&lab.spec(&account, &device, 3), &[]);
    lab.curl_expect(first.port(), &http.body);
    drop(first);

    lab.server.restart();
    target.wait_registered_again(Duration::from_secs(60));
    assert!(
        target.proc.try_status().is_none(),
        "the target exited instead of re-registering:\n{}",
        target.proc.tail(30)
    );

    let second = lab.initiator(&lab.spec(&account, &device, 3), &[]);
    lab.curl_expect(second.port(), &http.body);
}
