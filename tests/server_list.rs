//! Several nodes of one service where a server is given (`server a:5980,b:5980`, `P2P_SERVER`, `-y`):
//! the clients try them in turn. A node that cannot be reached is skipped at once. When the node the
//! clients use is killed, the direct session carries on, the target registers on the next node, and an
//! `autoconnect 2` initiator whose session ends reconnects through that node, on the same local port.

use std::time::Duration;

use p2p_system_tests::nodes::wait_reconnected;
use p2p_system_tests::ports::free_tcp_port;
use p2p_system_tests::services::HttpServer;
use p2p_system_tests::Lab;

#[test]
fn a_node_that_cannot_be_reached_is_skipped() {
    let lab = Lab::new("server_list_skip");
    let page = HttpServer::with_marker_body("server list page", 20_000);
    let (account, device) = lab.account_and_device();
    // Nothing listens on the first node.
    let servers = format!("127.0.0.1:{},{}", free_tcp_port(), lab.server.address());
    let target = lab.target_for(&device, page.port(), &servers);
    let env = [("P2P_SERVER".to_string(), servers.clone())];
    let initiator = lab.initiator(&lab.spec(&account, &device, 3), &env);
    lab.curl_expect(initiator.port(), &page.body);
    for (who, out) in [
        ("target", target.proc.output()),
        ("initiator", initiator.proc.output()),
    ] {
        assert!(
            out.contains("cannot be reached") && out.contains("trying the next one"),
            "the {who} does not say it skipped the first node:\n{out}"
        );
    }
    lab.check_logs();
}

#[test]
fn when_the_node_in_use_dies_the_clients_move_to_the_next() {
    let mut lab = Lab::new("server_list_failover");
    let page = HttpServer::with_marker_body("failover page", 20_000);
    let (account, device) = lab.account_and_device();
    let node_b = lab.server.copy_as_node("node-b");
    let servers = format!("{},{}", lab.server.address(), node_b.address());
    let mut target = lab.target_for(&device, page.port(), &servers);
    let port = free_tcp_port();
    let file = lab
        .initiator_file_for(&account, &device, port, 2, &servers)
        .display()
        .to_string();
    let mut initiator = lab.connectd("initiator", &["-s".into(), "-f".into(), file], &[]);
    initiator.wait_line("!!connected", Duration::from_secs(30), |l| {
        l.starts_with("!!connected")
    });
    lab.curl_expect(port, &page.body);

    // kill -9 node A, which both use: the direct session carries on without it.
    lab.server.stop();
    lab.curl_expect(port, &page.body);
    // The target registers on B.
    target.wait_registered_again(Duration::from_secs(60));
    let moved = node_b.address();
    assert!(
        target
            .proc
            .output()
            .contains(&format!("with server {moved}")),
        "the target did not register on node B:\n{}",
        target.proc.tail(30)
    );
    // The session ends (the target restarts); the initiator reconnects through B, on the same port.
    let (cmd, _) = lab.target_command_for(&device, page.port(), &servers);
    target.restart(cmd, &lab.logs);
    target.wait_registered();
    wait_reconnected(&lab, &initiator, port, &page.body, &moved);
    drop(node_b);
    lab.check_logs();
}
