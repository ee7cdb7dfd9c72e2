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

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn init_prints_the_key_and_refuses_a_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = cmd(&data)
        .arg("init")
        .assert()
        .success()
        .get_output()
        .clone();
    let line = stdout_of(&out);
    assert!(line.starts_with("server_key "), "{line}");
    let key = line.trim().strip_prefix("server_key ").unwrap();
    assert_eq!(key.len(), 44, "base64 of 32 bytes: {key}");
    let again = cmd(&data)
        .arg("key")
        .assert()
        .success()
        .get_output()
        .clone();
    assert_eq!(stdout_of(&again), line);
    let fail = cmd(&data).arg("init").assert().code(1).get_output().clone();
    assert!(String::from_utf8_lossy(&fail.stderr).contains("already initialized"));
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
    let out = cmd(&data)
        .args(["user", "add", "carol"])
        .write_stdin("")
        .assert()
        .code(1)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("no password for user 'carol' on standard input"),
        "{err}"
    );
    let users = stdout_of(
        cmd(&data)
            .args(["user", "list"])
            .assert()
            .success()
            .get_output(),
    );
    assert!(
        users.contains("bob") && users.contains("eve") && !users.contains("carol"),
        "{users}"
    );
    assert!(!users.contains("s3cret"));

    let uid = "80:00:00:00:01:00:0A:C2";
    let out = cmd(&data)
        .args([
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
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let text = stdout_of(&out);
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
    let out = cmd(&data)
        .args([
            "device",
            "add",
            "80:00:00:00:01:00:0A:C4",
            "--owner",
            "nobody",
        ])
        .write_stdin("x\n")
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown user 'nobody'"));
    let out = cmd(&data)
        .args(["device", "add", "not-a-uid", "--owner", "bob"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid device UID"));

    let json = stdout_of(
        cmd(&data)
            .args(["device", "list", "--json"])
            .assert()
            .success()
            .get_output(),
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["uid"], uid);
    assert_eq!(v[0]["owner"], "bob");

    cmd(&data)
        .args(["share", "add", uid, "eve"])
        .assert()
        .success();
    let shares = stdout_of(
        cmd(&data)
            .args(["share", "list"])
            .assert()
            .success()
            .get_output(),
    );
    assert!(shares.contains(uid) && shares.contains("eve"), "{shares}");
    cmd(&data)
        .args(["share", "remove", uid, "eve"])
        .assert()
        .success();
    cmd(&data)
        .args(["share", "remove", uid, "eve"])
        .assert()
        .code(1);

    let hashes = stdout_of(
        cmd(&data)
            .args(["auth-hash", "list"])
            .assert()
            .success()
            .get_output(),
    );
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
    let out = assert_cmd::Command::new(BIN)
        .args(["user", "list"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--data-dir"));
    let dir = tempfile::tempdir().unwrap();
    let out = cmd(dir.path())
        .args(["user", "list"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(String::from_utf8_lossy(&out.stderr).contains("p2p-server init"));
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
    let key = stdout_of(cmd(&data).arg("key").assert().success().get_output());
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
    let out = cmd(&data)
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
        .timeout(Duration::from_secs(20))
        .assert()
        .code(1)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains(&format!("cannot listen for control connections on {addr}")),
        "{err}"
    );
}
