//! The scripts' flow. Start connectd in the background (`-d PIDFILE`, and `-f FILE` with the
//! seed's sample provisioning file started like `&`), use the port, stop it by its PID, and the port is
//! free afterwards.

use std::time::Duration;

use p2p_system_tests::os::{alive, terminate, PidGuard};
use p2p_system_tests::poll::{wait_for, wait_until};
use p2p_system_tests::ports::{free_tcp_port, tcp_port_is_free};
use p2p_system_tests::services::HttpServer;
use p2p_system_tests::Lab;

#[test]
fn daemon_with_pidfile_then_kill_by_pid() {
    let lab = Lab::new("cli_daemon");
    let http = HttpServer::start(b"daemon mode works\n".to_vec());
    let (account, device) = lab.account_and_device();
    let _target = lab.target(&device, http.port(), &[]);

    let port = free_tcp_port();
    let pidfile = lab.dir().join("connectd.pid");
    let mut spec = lab.spec(&account, &device, 3);
    spec.port = port;
    let mut args = vec!["-d".to_string(), pidfile.to_string_lossy().into_owned()];
    args.extend(spec.args());
    let mut launcher = lab.connectd("initiator-daemon", &args, &[]);
    let code = launcher.wait_exit_code(Duration::from_secs(30));
    assert_eq!(
        code,
        0,
        "connectd -d should return at once with status 0:\n{}",
        launcher.tail(20)
    );

    let pid: u32 = wait_for("the pid file", Duration::from_secs(30), || {
        std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    });
    let _guard = PidGuard(pid);
    assert!(alive(pid), "the daemon (pid {pid}) is not running");
    // The port opens once the tunnel is up; poll with curl until it answers.
    let body = wait_for(
        "curl through the daemon's port",
        Duration::from_secs(30),
        || lab.curl(port).ok(),
    );
    assert_eq!(body, *http.body);

    terminate(pid);
    wait_until("the daemon to exit", Duration::from_secs(20), || {
        !alive(pid)
    });
    wait_until("the port to be free", Duration::from_secs(10), || {
        tcp_port_is_free(port)
    });
}

#[test]
fn seed_sample_file_in_background_then_kill_by_pid() {
    let lab = Lab::new("cli_file_background");
    let http = HttpServer::start(b"provisioning file works\n".to_vec());
    let (account, device) = lab.account_and_device();
    let _target = lab.target(&device, http.port(), &[]);

    let port = free_tcp_port();
    let file = lab.initiator_file(&account, &device, port, 1);
    // `connectd -f FILE &`: a background process the script only knows by its PID; the server comes from
    // the file alone.
    let mut p = lab.connectd_plain(
        "initiator-file",
        &["-f".into(), file.to_string_lossy().into_owned()],
    );
    p.wait_for_text("Proxy started.", Duration::from_secs(30));
    let body = wait_for(
        "curl through the file's port",
        Duration::from_secs(30),
        || lab.curl(port).ok(),
    );
    assert_eq!(body, *http.body);

    let pid = p.pid();
    terminate(pid);
    let status = p.wait_exit(Duration::from_secs(20));
    assert!(
        status.code().is_some(),
        "connectd did not handle SIGTERM itself ({status})"
    );
    wait_until("the port to be free", Duration::from_secs(10), || {
        tcp_port_is_free(port)
    });
}
