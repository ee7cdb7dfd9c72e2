//! The seed's one-line example, pointed at a local server by environment (P2P_SERVER,
//! P2P_SERVER_KEY), opens the tunnel on port 33000 and curl works through it; the expected lines appear
//! in order; Ctrl-C ends it with `!!exit [003]` (also the exit status) and frees the port.

use std::time::Duration;

use p2p_system_tests::poll::wait_until;
use p2p_system_tests::ports::{tcp_port_is_free, wait_for_seed_port};
use p2p_system_tests::services::HttpServer;
use p2p_system_tests::Lab;

/// The seed, verbatim: `.\connectd.exe -s -c eW91cm5hbWVAZXhhbXBsZS5jb20= c3VwM3JzZWtyZXQh
/// 80:00:00:00:00:00:00:F1 T33000 1 127.0.0.1 12`
const SEED_ARGS: [&str; 9] = [
    "-s",
    "-c",
    "eW91cm5hbWVAZXhhbXBsZS5jb20=",
    "c3VwM3JzZWtyZXQh",
    "80:00:00:00:00:00:00:F1",
    "T33000",
    "1",
    "127.0.0.1",
    "12",
];

#[test]
fn seed_one_liner_then_ctrl_c() {
    wait_for_seed_port(Duration::from_secs(90));
    let lab = Lab::new("cli_oneliner");
    let http = HttpServer::start(b"<html>hello through the seed's tunnel</html>\n".to_vec());
    let (_, device) = lab.seed_account_and_device();
    let _target = lab.target(&device, http.port(), &[]);

    let args: Vec<String> = SEED_ARGS.iter().map(|s| s.to_string()).collect();
    let mut p = lab.connectd("initiator", &args, &[]);
    p.wait_for_text("!!connected", Duration::from_secs(30));
    lab.curl_expect(33000, &http.body);

    // The lines scripts wait for, in order.
    let lines = p.lines();
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line '{needle}':\n{}", p.tail(40)))
    };
    let starting = pos("Starting Proxy on port 33000 on index 1.");
    let started = pos("Proxy started.");
    assert!(
        starting < started,
        "'Proxy started.' came before 'Starting Proxy ...':\n{}",
        lines.join("\n")
    );
    pos("!!connected");

    p.interrupt();
    let code = p.wait_exit_code(Duration::from_secs(20));
    assert!(
        p.output().contains("!!exit [003]"),
        "no '!!exit [003]' after Ctrl-C:\n{}",
        p.tail(20)
    );
    assert_eq!(code, 3, "Ctrl-C must end with exit status 3");
    wait_until(
        "port 33000 to be free again",
        Duration::from_secs(10),
        || tcp_port_is_free(33000),
    );
}
