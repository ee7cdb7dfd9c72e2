//! The `connectd` binary without a server: usage errors, help, failures that happen before any network
//! exchange, signals and `-d`. The end-to-end runs against a real server are system tests (`tests/`).

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_connectd");
/// A syntactically valid server key; no server holds it, which these tests never need.
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SEED_ARGS: [&str; 8] = [
    "-c",
    "eW91cm5hbWVAZXhhbXBsZS5jb20=",
    "c3VwM3JzZWtyZXQh",
    "80:00:00:00:00:00:00:F1",
    "T33000",
    "1",
    "127.0.0.1",
    "12",
];

/// Where these runs keep their device keys: never the user's configuration directory.
fn config_home() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("connectd-cli-test-{}", std::process::id()))
}

fn connectd(args: &[&str]) -> Command {
    let mut c = Command::new(EXE);
    c.args(args)
        .env("XDG_CONFIG_HOME", config_home())
        .env_remove("P2P_SERVER")
        .env_remove("P2P_SERVER_KEY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    c
}

fn run(args: &[&str]) -> Output {
    connectd(args).output().expect("run connectd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs connectd in `mode` (`-s` foreground, `-d` background) with the seed's line on local `port`,
/// against a server address nothing listens on.
fn run_against_closed_server(mode: &str, port: u16) -> Output {
    let server = format!("127.0.0.1:{}", closed_port());
    connectd(&[mode, "-y", &server, "--server-key", KEY])
        .args(seed_line_on(port))
        .output()
        .unwrap()
}

/// Writes `target.conf` in `dir`: a target whose server nothing listens on (it keeps retrying).
#[cfg(unix)] // only the daemon tests, which use Unix signals, need it
fn target_conf_for_closed_server(dir: &std::path::Path) -> std::path::PathBuf {
    let conf = dir.join("target.conf");
    let server = format!("127.0.0.1:{}", closed_port());
    std::fs::write(
        &conf,
        format!("UID 80:00:00:00:01:00:0A:C2\npassword s\nproxy_dest_port 22\nserver {server}\nserver_key {KEY}\n"),
    )
    .unwrap();
    conf
}

/// The seed's line with the local port replaced.
fn seed_line_on(port: u16) -> Vec<String> {
    let mut args: Vec<String> = SEED_ARGS.iter().map(|a| a.to_string()).collect();
    args[4] = format!("T{port}");
    args
}

#[test]
fn help_lists_every_option_and_version_prints() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for option in [
        "-c ",
        "-p ",
        "-f FILE",
        "-e BLOB",
        "-n",
        "-s",
        "-y HOST:PORT",
        "-d [PIDFILE]",
        "--auth-hash",
    ] {
        assert!(help.contains(option), "{option}");
    }
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("connectd "));
}

#[test]
fn usage_errors_are_one_line_and_exit_64() {
    for (args, fragment) in [
        (vec!["-c", "x"], "-c takes 7 arguments"),
        (
            vec![
                "-c",
                "eW91",
                "!!",
                "80:00:00:00:00:00:00:F1",
                "T1",
                "1",
                "127.0.0.1",
                "12",
            ],
            "BASE64_PASSWORD is not valid base64",
        ),
        (vec!["-q"], "unknown option '-q'"),
        (vec!["-f", "/nonexistent/p2p.conf"], "cannot read the file"),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("connectd: ") && err.contains(fragment),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn no_server_is_a_clear_error() {
    let out = connectd(&["-s"])
        .args(seed_line_on(closed_port()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(25));
    assert!(
        text(&out.stderr).contains("no server: set it with -y host:port"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("!!exit [025] : no server"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_port_in_use_exits_017() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let out = run_against_closed_server("-s", port);
    assert_eq!(out.status.code(), Some(17), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("Proxy started."), "{stdout}");
    assert!(
        stdout
            .lines()
            .last()
            .unwrap()
            .starts_with("!!exit [017] : cannot listen on"),
        "{stdout}"
    );
}

#[test]
fn an_unreachable_server_exits_013_after_the_proxy_started() {
    let port = closed_port();
    let out = run_against_closed_server("-s", port);
    assert_eq!(out.status.code(), Some(13), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("!!status - pid="), "{stdout}");
    assert_eq!(
        lines[1],
        format!("Starting Proxy on port {port} on index 1.")
    );
    assert_eq!(lines[2], "Proxy started.");
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("!!exit [013] : cannot reach server"),
        "{stdout}"
    );
    assert!(text(&out.stderr).contains("connectd: cannot reach server"));
}

#[test]
fn self_test_with_the_server_down_finishes_and_reports() {
    let server = format!("127.0.0.1:{}", closed_port());
    let started = Instant::now();
    let out = run(&["-y", &server, "-n", "--json"]);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["compatible"], false);
    assert_eq!(report["tcp"]["ok"], false);
}

/// A target whose server is down keeps retrying; SIGTERM must end it cleanly with 003.
#[cfg(unix)]
#[test]
fn sigterm_ends_a_running_daemon_with_003() {
    let dir = tempfile::tempdir().unwrap();
    let conf = target_conf_for_closed_server(dir.path());
    let child = connectd(&["-s", "-f", conf.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).ends_with("!!exit [003] : terminated by signal\n"),
        "{}",
        text(&out.stdout)
    );
}

/// `-d PIDFILE`: the parent exits 0 at once, the PID file names the background process, which keeps the
/// port; killing it frees the port and removes the PID file.
#[cfg(unix)]
#[test]
fn background_with_a_pid_file() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("connectd.pid");
    let conf = target_conf_for_closed_server(dir.path());
    let out = run(&[
        "-d",
        pid_file.to_str().unwrap(),
        "-f",
        conf.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(pid.parse::<u32>().is_ok(), "{pid}");
    assert!(
        Command::new("kill")
            .args(["-0", &pid])
            .status()
            .unwrap()
            .success(),
        "not running"
    );
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !pid_file.exists(),
        "the background process did not remove its PID file"
    );
}

/// A background run that fails at once says so instead of exiting 0.
#[cfg(unix)]
#[test]
fn background_that_fails_at_once_reports_it() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let out = run_against_closed_server("-d", port);
    assert_eq!(out.status.code(), Some(17));
    assert!(text(&out.stderr).contains("the background process ended at once with status 17"));
}
