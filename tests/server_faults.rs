//! Issue 7 (faults): a party killed with SIGKILL mid-transfer, a server database that cannot be written,
//! and a database from an older version. Nothing is corrupted, the other sessions go on, and whoever is
//! affected gets a clear state and a one-line error.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use p2p_system_tests::lab::{serial, TRANSFER_TIMEOUT};
use p2p_system_tests::services::{Kind, Transfer, TransferService};
use p2p_system_tests::Lab;

const MIB: u64 = 1024 * 1024;

/// Waits until a transfer has moved at least `bytes`, so the fault hits it mid-way.
fn wait_progress(tr: &Transfer, bytes: u64) {
    p2p_system_tests::poll::wait_until(
        "the transfer to get going",
        Duration::from_secs(30),
        || tr.progress() >= bytes,
    );
}

/// The lines of an admin command's output, without the harness's `[stderr] ` prefix.
fn error_lines(out: &str) -> Vec<&str> {
    out.lines()
        .map(|l| l.strip_prefix("[stderr] ").unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
        .collect()
}

#[test]
fn target_killed_mid_transfer_ends_that_tunnel_clearly_and_others_go_on() {
    let _serial = serial();
    let lab = Lab::new("fault_target_killed");
    let svc = TransferService::start();
    let mut victim = lab.tunnel(svc.port(), 3, &[]);
    let other = lab.tunnel(svc.port(), 3, &[]);

    let doomed = Transfer::start_paced(victim.port, Kind::Download, 64 * MIB, Some(4 * MIB));
    wait_progress(&doomed, MIB);
    victim.target.proc.kill();

    // The other device's session on the same server keeps carrying data meanwhile.
    Transfer::run(other.port, Kind::Echo, 4 * MIB, TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("the other tunnel failed after a target was killed: {e}"));

    // The interrupted transfer fails (it does not hang or report success) ...
    let result = doomed.join(Duration::from_secs(90));
    assert!(
        result.is_err(),
        "a transfer through a killed target reported success"
    );
    // ... and the initiator (connectd -s -c does not reconnect) exits with a code and a reason in one
    // line (today `!!exit [020] : the device stopped answering (peer timed out)`).
    let (code, line) = victim.initiator.wait_exit_line(Duration::from_secs(60));
    eprintln!("initiator after the target was killed: {line}");
    let reason = line.split("] :").nth(1).unwrap_or("").trim();
    assert!(
        code != 0 && !reason.is_empty(),
        "no error code or reason in '{line}'\n{}",
        victim.initiator.proc.tail(20)
    );

    Transfer::run(other.port, Kind::Echo, MIB, TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("the other tunnel failed later: {e}"));
}

#[test]
fn initiator_killed_mid_transfer_frees_the_target_for_the_next_one() {
    let _serial = serial();
    let lab = Lab::new("fault_initiator_killed");
    let svc = TransferService::start();
    let mut victim = lab.tunnel(svc.port(), 3, &[]);
    let other = lab.tunnel(svc.port(), 3, &[]);

    let doomed = Transfer::start_paced(victim.port, Kind::Download, 64 * MIB, Some(4 * MIB));
    wait_progress(&doomed, MIB);
    victim.initiator.proc.kill();
    assert!(
        doomed.join(Duration::from_secs(90)).is_err(),
        "a transfer through a killed initiator reported success"
    );
    Transfer::run(other.port, Kind::Echo, 4 * MIB, TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("the other tunnel failed after an initiator was killed: {e}"));

    // The target notices the silent peer (idle timeout) and closes that session, and stays registered.
    victim.target.proc.wait_line(
        "the target to close the dead session",
        Duration::from_secs(60),
        // `session ID closed: IdleTimeout` (the target's info log).
        |l| l.contains("session") && l.contains(" closed: "),
    );
    assert!(
        victim.target.proc.try_status().is_none(),
        "the target exited after its initiator was killed:\n{}",
        victim.target.proc.tail(20)
    );
    let again = lab.initiator(&lab.spec(&victim.account, &victim.device, 3), &[]);
    Transfer::run(again.port(), Kind::Echo, MIB, TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("a new tunnel to the same target failed: {e}"));
}

#[test]
fn server_killed_mid_transfer_does_not_stop_an_established_session() {
    let _serial = serial();
    let mut lab = Lab::new("fault_server_killed");
    let svc = TransferService::start();
    let mut t = lab.tunnel(svc.port(), 3, &[]);
    // Only a direct path outlives the server (a relayed one goes through it).
    t.initiator
        .proc
        .wait_for_text("!!status path=direct", Duration::from_secs(30));

    let running = Transfer::start_paced(t.port, Kind::Echo, 6 * MIB, Some(4 * MIB));
    wait_progress(&running, MIB);
    lab.server.stop();
    running
        .join(TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("the session stopped with the server: {e}"));
    // A new connection on the same session, with the server still down.
    Transfer::run(t.port, Kind::Echo, MIB, TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("no new stream while the server is down: {e}"));

    lab.server.restart();
    t.target.wait_registered_again(Duration::from_secs(60));
    let again = lab.initiator(&lab.spec(&t.account, &t.device, 3), &[]);
    Transfer::run(again.port(), Kind::Echo, MIB, TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("a new tunnel after the restart failed: {e}"));
}

/// Makes the server's data directory unwritable even for root (`chattr +i`, which root's
/// CAP_DAC_OVERRIDE does not bypass; plain permissions for other users), and undoes it on drop so the
/// temporary directory can be deleted.
struct ReadOnly {
    paths: Vec<PathBuf>,
    immutable: bool,
}

impl ReadOnly {
    fn apply(dir: &Path) -> ReadOnly {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("read data dir")
            .flatten()
            .map(|e| e.path())
            .collect();
        paths.push(dir.to_path_buf());
        let immutable = is_root();
        for p in &paths {
            if immutable {
                let ok = Command::new("chattr")
                    .arg("+i")
                    .arg(p)
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "chattr +i {} failed", p.display());
            } else {
                use std::os::unix::fs::PermissionsExt;
                let mode = if p.is_dir() { 0o500 } else { 0o400 };
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
            }
        }
        ReadOnly { paths, immutable }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        for p in &self.paths {
            if self.immutable {
                let _ = Command::new("chattr").arg("-i").arg(p).status();
            } else {
                use std::os::unix::fs::PermissionsExt;
                let mode = if p.is_dir() { 0o700 } else { 0o600 };
                let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
            }
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn read_only_database_fails_admin_commands_clearly_and_logins_go_on() {
    let _serial = serial();
    let lab = Lab::new("fault_read_only_db");
    let svc = TransferService::start();
    let t = lab.tunnel(svc.port(), 3, &[]);
    let data_dir = lab.server.data_dir.clone();

    {
        let _ro = ReadOnly::apply(&data_dir);
        lab.secret("pw-not-stored");
        let (code, out) = lab.server.admin(
            &["user", "add", "late@example.com"],
            Some("pw-not-stored\n"),
        );
        assert_ne!(
            code, 0,
            "user add succeeded on a read-only database:\n{out}"
        );
        let lines = error_lines(&out);
        // (The message says what failed but not which file: `database error: attempt to write a
        // readonly database`.)
        assert!(
            lines.len() == 1 && lines[0].starts_with("error: ") && lines[0].contains("readonly"),
            "expected one 'error: ... readonly ...' line, got:\n{out}"
        );
        eprintln!("user add on a read-only database: {}", lines[0]);

        // The running server still serves: the open tunnel carries data and the same user logs in again.
        Transfer::run(t.port, Kind::Echo, MIB, TRANSFER_TIMEOUT)
            .unwrap_or_else(|e| panic!("the open tunnel failed on a read-only database: {e}"));
        let again = lab.initiator(&lab.spec(&t.account, &t.device, 3), &[]);
        Transfer::run(again.port(), Kind::Echo, MIB, TRANSFER_TIMEOUT)
            .unwrap_or_else(|e| panic!("a new login failed on a read-only database: {e}"));
    }

    // Writable again: nothing was lost and writes work.
    let list = lab.server.admin_ok(&["user", "list"], None);
    assert!(
        list.contains(&t.account.user),
        "user list lost the user:\n{list}"
    );
    assert!(!list.contains("late@example.com"), "{list}");
    lab.account();
}

/// Sets the schema version recorded in the database (what an older p2p-server would have written).
fn set_schema_version(data_dir: &Path, version: i64) {
    let conn = rusqlite::Connection::open(data_dir.join("p2p.db")).expect("open p2p.db");
    conn.execute("UPDATE schema_version SET version = ?1", [version])
        .expect("set schema version");
}

#[test]
fn database_from_an_older_version_is_refused_clearly_and_left_intact() {
    let _serial = serial();
    let mut lab = Lab::new("fault_old_db");
    let (account, device) = lab.account_and_device();
    lab.server.stop();
    let data_dir = lab.server.data_dir.clone();
    set_schema_version(&data_dir, 0);

    // Admin commands refuse it with one line naming the database and both versions.
    let (code, out) = lab.server.admin(&["user", "list"], None);
    assert_ne!(code, 0, "user list accepted an older database:\n{out}");
    let lines = error_lines(&out);
    assert!(
        lines.len() == 1
            && lines[0].starts_with("error: ")
            && lines[0].contains("p2p.db")
            && lines[0].contains("schema version 0"),
        "expected one 'error: ... schema version 0 ...' line, got:\n{out}"
    );
    eprintln!("user list on an older database: {}", lines[0]);

    // So does the server: it exits with the same kind of line instead of serving from it.
    let mut run = Command::new(p2p_system_tests::bins::server());
    run.args(["run", "--control", "127.0.0.1:0", "--udp", "127.0.0.1:0"])
        .args([
            "--udp2",
            "127.0.0.1:0",
            "--udp3",
            "127.0.0.2:0",
            "--data-dir",
        ])
        .arg(&data_dir);
    let (code, out) = p2p_system_tests::proc::run(
        "p2p-server-run-old-db",
        run,
        &lab.logs,
        None,
        Duration::from_secs(30),
    );
    assert_ne!(code, 0, "the server ran on an older database:\n{out}");
    assert!(out.contains("schema version 0"), "{out}");
    assert!(!out.contains("listening "), "{out}");

    // Nothing was changed: with the version put back, every row is still there.
    set_schema_version(&data_dir, 1);
    let list = lab.server.admin_ok(&["user", "list"], None);
    assert!(
        list.contains(&account.user),
        "user list lost the user:\n{list}"
    );
    let devices = lab.server.admin_ok(&["device", "list"], None);
    assert!(
        devices.contains(&device.uid),
        "device list lost the device:\n{devices}"
    );
}
