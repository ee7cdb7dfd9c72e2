//! The `p2p-server` binary: init, admin subcommands with secrets on stdin, and `run` printing its ports.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_p2p-server");

fn cmd(data: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(BIN);
    c.arg("--data-dir").arg(data).env_remove("RUST_LOG");
    c
}

/// Runs `c`, expecting success, and returns its standard output.
fn stdout_ok(c: &mut assert_cmd::Command) -> String {
    String::from_utf8_lossy(&c.assert().success().get_output().stdout).into_owned()
}

/// Runs `c`, expecting exit code `code`, and returns its standard error.
fn stderr_with_code(c: &mut assert_cmd::Command, code: i32) -> String {
    String::from_utf8_lossy(&c.assert().code(code).get_output().stderr).into_owned()
}

#[test]
fn init_prints_the_key_and_refuses_a_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let line = stdout_ok(cmd(&data).arg("init"));
    assert!(line.starts_with("server_key "), "{line}");
    let key = line.trim().strip_prefix("server_key ").unwrap();
    assert_eq!(key.len(), 44, "base64 of 32 bytes: {key}");
    let again = stdout_ok(cmd(&data).arg("key"));
    assert_eq!(again, line);
    let fail = stderr_with_code(cmd(&data).arg("init"), 1);
    assert!(fail.contains("already initialized"));
}

#[test]
fn admin_commands_with_secrets_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    cmd(&data).arg("init").assert().success();

    cmd(&data)
        .args(["user", "add", "bob"])
        .write_stdin("s3cret pw\n")
        .assert()
        .success();
    cmd(&data)
        .args(["user", "add", "eve"])
        .write_stdin("other\n")
        .assert()
        .success();
    // No password on stdin: a clear error, nothing added.
    let err = stderr_with_code(cmd(&data).args(["user", "add", "carol"]).write_stdin(""), 1);
    assert!(
        err.contains("no password for user 'carol' on standard input"),
        "{err}"
    );
    let users = stdout_ok(cmd(&data).args(["user", "list"]));
    assert!(
        users.contains("bob") && users.contains("eve") && !users.contains("carol"),
        "{users}"
    );
    assert!(!users.contains("s3cret"));

    let uid = "80:00:00:00:01:00:0A:C2";
    let text = stdout_ok(cmd(&data).args([
        "device",
        "add",
        uid,
        "--owner",
        "bob",
        "--name",
        "web",
        "--app-type",
        "7",
        "--generate-secret",
    ]));
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("secret "))
        .unwrap();
    assert_eq!(secret.len(), 64, "{text}");
    cmd(&data)
        .args(["device", "add", "80:00:00:00:01:00:0A:C3", "--owner", "eve"])
        .write_stdin("typed secret\n")
        .assert()
        .success();
    let err = stderr_with_code(
        cmd(&data)
            .args([
                "device",
                "add",
                "80:00:00:00:01:00:0A:C4",
                "--owner",
                "nobody",
            ])
            .write_stdin("x\n"),
        1,
    );
    assert!(err.contains("unknown user 'nobody'"));
    let err = stderr_with_code(
        cmd(&data).args(["device", "add", "not-a-uid", "--owner", "bob"]),
        2,
    );
    assert!(err.contains("invalid device UID"));

    let json = stdout_ok(cmd(&data).args(["device", "list", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["uid"], uid);
    assert_eq!(v[0]["owner"], "bob");

    cmd(&data)
        .args(["share", "add", uid, "eve"])
        .assert()
        .success();
    let shares = stdout_ok(cmd(&data).args(["share", "list"]));
    assert!(shares.contains(uid) && shares.contains("eve"), "{shares}");
    cmd(&data)
        .args(["share", "remove", uid, "eve"])
        .assert()
        .success();
    cmd(&data)
        .args(["share", "remove", uid, "eve"])
        .assert()
        .code(1);

    let hashes = stdout_ok(cmd(&data).args(["auth-hash", "list"]));
    assert!(hashes.starts_with("ID"), "{hashes}");
    cmd(&data)
        .args(["auth-hash", "revoke", "0011223344556677"])
        .assert()
        .code(1);

    cmd(&data).args(["user", "remove", "bob"]).assert().code(1);
    cmd(&data)
        .args(["device", "remove", uid])
        .assert()
        .success();
    cmd(&data)
        .args(["user", "remove", "bob"])
        .assert()
        .success();
}

#[test]
fn missing_data_dir_or_uninitialized_dir_is_a_clear_error() {
    let err = stderr_with_code(assert_cmd::Command::new(BIN).args(["user", "list"]), 1);
    assert!(err.contains("--data-dir"));
    let dir = tempfile::tempdir().unwrap();
    let err = stderr_with_code(cmd(dir.path()).args(["user", "list"]), 1);
    assert!(err.contains("p2p-server init"));
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn run_prints_the_bound_addresses_and_writes_the_ready_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    cmd(&data).arg("init").assert().success();
    let ready = dir.path().join("ready.json");
    let mut child = Command::new(BIN)
        .arg("run")
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--control",
            "127.0.0.1:0",
            "--udp",
            "127.0.0.1:0",
            "--udp2",
            "127.0.0.1:0",
            "--udp3",
            "127.0.0.1:0",
        ])
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Running(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(line.starts_with("listening control=127.0.0.1:"), "{line}");
    let udp = line.trim().split(" udp=").nth(1).unwrap();
    assert_eq!(udp.split(',').count(), 3, "{line}");
    assert!(!udp.contains(":0,"), "{line}");

    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ready).unwrap()).unwrap();
    let control = v["control"].as_str().unwrap();
    assert!(
        line.contains(&format!("control={control} ")),
        "{line} vs {v}"
    );
    assert_eq!(v["udp"].as_array().unwrap().len(), 3);
    let key = stdout_ok(cmd(&data).arg("key"));
    assert_eq!(
        key.trim(),
        format!("server_key {}", v["server_key"].as_str().unwrap())
    );

    // Admin commands work while the server holds the database.
    cmd(&data)
        .args(["user", "add", "live"])
        .write_stdin("pw\n")
        .assert()
        .success();
    drop(child);
}

#[test]
fn run_reports_a_port_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    cmd(&data).arg("init").assert().success();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let err = stderr_with_code(
        cmd(&data)
            .args([
                "run",
                "--control",
                &addr,
                "--udp",
                "127.0.0.1:0",
                "--udp2",
                "127.0.0.1:0",
                "--udp3",
                "127.0.0.1:0",
            ])
            .timeout(Duration::from_secs(20)),
        1,
    );
    assert!(
        err.contains(&format!("cannot listen for control connections on {addr}")),
        "{err}"
    );
}
