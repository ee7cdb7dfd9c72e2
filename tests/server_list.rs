//! Several nodes of one service where a server is given (`server a:5980,b:5980`, `P2P_SERVER`, `-y`):
//! the clients try them in turn. A node that cannot be reached is skipped at once. When the node the
//! clients use is killed, the direct session carries on, the target registers on the next node, and an
//! `autoconnect 2` initiator whose session ends reconnects through that node, on the same local port.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use p2p_system_tests::ports::free_tcp_port;
use p2p_system_tests::provisioning::{seed_sample, with_values};
use p2p_system_tests::services::HttpServer;
use p2p_system_tests::target::{target_conf, Target};
use p2p_system_tests::{Account, Device, Lab};

/// `connectd -f FILE` for a target for `d` whose file names `servers`.
fn target_command(lab: &Lab, d: &Device, service_port: u16, servers: &str) -> (Command, PathBuf) {
    let path = lab
        .dir()
        .join(format!("target-{}.conf", d.uid.replace(':', "")));
    let conf = target_conf(&d.uid, &d.secret, service_port, servers, &lab.server.key);
    std::fs::write(&path, conf).expect("write the target file");
    let cmd = lab.connectd_cmd(
        &["-f".into(), path.display().to_string()],
        &lab.client_env(&[]),
    );
    (cmd, path)
}

fn target_on(lab: &Lab, d: &Device, service_port: u16, servers: &str) -> Target {
    let (cmd, path) = target_command(lab, d, service_port, servers);
    let mut t = Target::start("target", cmd, &path, &lab.logs);
    t.wait_registered();
    t
}

/// The seed's provisioning file for `a` reaching `d` on `port`, with `autoconnect 2` and `servers`.
fn initiator_file(lab: &Lab, a: &Account, d: &Device, port: u16, servers: &str) -> String {
    let text = with_values(
        &seed_sample(),
        &[
            ("autoconnect", "2".into()),
            ("user_id", a.user.clone()),
            ("auth_pass", a.password.clone()),
            ("remote_address", d.uid.clone()),
            ("proxy_local_port", port.to_string()),
            ("server", servers.into()),
            ("server_key", lab.server.key.clone()),
        ],
    );
    let path = lab.dir().join(format!("initiator-{port}.txt"));
    std::fs::write(&path, text).expect("write the initiator file");
    path.display().to_string()
}

#[test]
fn a_node_that_cannot_be_reached_is_skipped() {
    let lab = Lab::new("server_list_skip");
    let page = HttpServer::with_marker_body("server list page", 20_000);
    let (account, device) = lab.account_and_device();
    // Nothing listens on the first node.
    let servers = format!("127.0.0.1:{},{}", free_tcp_port(), lab.server.address());
    let target = target_on(&lab, &device, page.port(), &servers);
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
    let mut target = target_on(&lab, &device, page.port(), &servers);
    let port = free_tcp_port();
    let file = initiator_file(&lab, &account, &device, port, &servers);
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
    let (cmd, _) = target_command(&lab, &device, page.port(), &servers);
    target.restart(cmd, &lab.logs);
    target.wait_registered();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match lab.curl(port) {
            Ok(body)
                if body == *page.body
                    && initiator
                        .output()
                        .contains(&format!("logged in to {moved}")) =>
            {
                break
            }
            other if Instant::now() > deadline => panic!(
                "no new session through node B on port {port}: {:?}\n{}",
                other.map(|b| b.len()),
                initiator.tail(30)
            ),
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
    drop(node_b);
    lab.check_logs();
}
