//! Faults: a party killed with SIGKILL mid-transfer (the server under a direct and under a
//! relayed session), a server database that cannot be written (read-only, disk full), and a database
//! from an older version. Nothing is corrupted, the other sessions go on, and whoever is affected gets a
//! clear state and a one-line error. Also the log-secrecy run at trace level.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use p2p_system_tests::lab::{env, serial, TRANSFER_TIMEOUT};
use p2p_system_tests::ports::free_tcp_port;
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

/// Waits for the initiator's `!!exit [CODE] : REASON` line, which must have a non-zero code and a reason.
fn exit_with_reason(i: &mut p2p_system_tests::initiator::Initiator, timeout: Duration) -> String {
    let (code, line) = i.wait_exit_line(timeout);
    let reason = line.split("] :").nth(1).unwrap_or("").trim();
    assert!(
        code != 0 && !reason.is_empty(),
        "no error code or reason in '{line}'\n{}",
        i.proc.tail(20)
    );
    line
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
    let line = exit_with_reason(&mut victim.initiator, Duration::from_secs(60));
    eprintln!("initiator after the target was killed: {line}");

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
    set_schema_version(&data_dir, p2p_server::db::SCHEMA_VERSION);
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

/// A tmpfs of a fixed size mounted on a directory (root only), so a test can fill the disk under the
/// server's database without touching the machine's. Unmounted lazily on drop: a process that still has
/// a file open there (a server being stopped) must not keep the test's temporary directory from going.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Writes a file into `dir` until the file system is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("create filler");
    let block = vec![0x42u8; 64 * 1024];
    loop {
        match f.write_all(&block).and_then(|_| f.sync_all()) {
            Ok(()) => continue,
            Err(e) if e.raw_os_error() == Some(28) => return path,
            Err(e) => panic!("filling {} failed otherwise: {e}", dir.display()),
        }
    }
}

/// SQLite's own check of the whole file (pages, indexes, free list).
fn integrity(data_dir: &Path) -> String {
    let conn = rusqlite::Connection::open(data_dir.join("p2p.db")).expect("open p2p.db");
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check")
}

#[test]
fn full_disk_fails_admin_commands_clearly_and_loses_nothing() {
    let _serial = serial();
    let probe = tempfile::tempdir().expect("temp dir");
    if let Err(e) = Tmpfs::mount(&probe.path().join("fs"), "1m") {
        eprintln!("SKIPPED: mounting a tmpfs is not permitted here (needs root): {e}");
        return;
    }
    let mut disk = None;
    let lab = Lab::with_server_dir("fault_disk_full", |dir| {
        disk = Some(Tmpfs::mount(dir, "4m").expect("mount the server's tmpfs"));
    });
    let svc = TransferService::start();
    let t = lab.tunnel(svc.port(), 3, &[]);
    let friend = lab.account();
    lab.share(&t.device, &friend);
    let other = lab.account();
    let data_dir = lab.server.data_dir.clone();

    let filler = fill(&data_dir);
    lab.secret("pw-not-stored-1");
    lab.secret("secret-not-stored-1");
    let new_uid = "80:00:00:00:01:FE:ED:01";
    let attempts: [(&[&str], Option<&str>); 3] = [
        (
            &["user", "add", "late@example.com"],
            Some("pw-not-stored-1\n"),
        ),
        (
            &["device", "add", new_uid, "--owner", &t.account.user],
            Some("secret-not-stored-1\n"),
        ),
        (&["share", "add", &t.device.uid, &other.user], None),
    ];
    for (args, stdin) in attempts {
        let (code, out) = lab.server.admin(args, stdin);
        assert_ne!(
            code,
            0,
            "`{}` succeeded on a full disk:\n{out}",
            args.join(" ")
        );
        let lines = error_lines(&out);
        // `error: database /…/p2p.db: database or disk is full`: the cause and the file.
        assert!(
            lines.len() == 1
                && lines[0].starts_with("error: ")
                && lines[0].contains("full")
                && lines[0].contains("p2p.db"),
            "expected one 'error: ... full' line from `{}`, got:\n{out}",
            args.join(" ")
        );
        eprintln!("{} on a full disk: {}", args.join(" "), lines[0]);
    }
    // The server's own write (issuing an auth hash) fails too, as a refusal the user can read.
    let refused = lab
        .auth_hash(&t.account)
        .expect_err("an auth hash was issued on a full disk");
    eprintln!("connectd --auth-hash on a full disk: {refused}");

    // Sessions and logins go on: the open tunnel, a new login, and the friend through the share.
    Transfer::run(t.port, Kind::Echo, MIB, TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("the open tunnel failed on a full disk: {e}"));
    for who in [&t.account, &friend] {
        let i = lab.initiator(&lab.spec(who, &t.device, 3), &[]);
        Transfer::run(i.port(), Kind::Echo, MIB, TRANSFER_TIMEOUT)
            .unwrap_or_else(|e| panic!("a login of {} failed on a full disk: {e}", who.user));
    }

    // Space again: nothing was lost or corrupted, the refused writes left no trace, new writes work.
    std::fs::remove_file(&filler).expect("remove filler");
    assert_eq!(integrity(&data_dir), "ok", "the database is damaged");
    let users = lab.server.admin_ok(&["user", "list"], None);
    for u in [&t.account.user, &friend.user, &other.user] {
        assert!(users.contains(u.as_str()), "user list lost {u}:\n{users}");
    }
    assert!(!users.contains("late@example.com"), "{users}");
    let devices = lab.server.admin_ok(&["device", "list"], None);
    assert!(devices.contains(&t.device.uid), "{devices}");
    assert!(!devices.contains(new_uid), "{devices}");
    let shares = lab.server.admin_ok(&["share", "list"], None);
    assert!(shares.contains(&friend.user), "{shares}");
    assert!(!shares.contains(&other.user), "{shares}");
    lab.share(&t.device, &other);
    let late = lab.account();
    lab.device(&late);
    lab.auth_hash(&t.account)
        .unwrap_or_else(|e| panic!("no auth hash with space again: {e}"));
    let i = lab.initiator(&lab.spec(&other, &t.device, 3), &[]);
    Transfer::run(i.port(), Kind::Echo, MIB, TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("the new share does not work: {e}"));
    drop(disk);
}

fn connected_count(p: &p2p_system_tests::proc::Proc) -> usize {
    p.lines()
        .iter()
        .filter(|l| l.starts_with("!!connected"))
        .count()
}

#[test]
fn server_killed_under_a_relayed_session_ends_it_clearly_and_autoconnect_2_recovers() {
    let _serial = serial();
    let mut lab = Lab::new("fault_server_killed_relayed");
    let svc = TransferService::start();
    // Direct UDP blocked on both peers: the session can only be relayed, through the server.
    let knobs = env(&[("P2P_DISABLE_DIRECT", "1")]);
    let mut t = lab.tunnel(svc.port(), 3, &knobs);
    t.initiator
        .proc
        .wait_for_text("!!status path=relayed", Duration::from_secs(30));
    // A second initiator of the same user and device with `autoconnect 2` (reconnects by itself).
    let port = free_tcp_port();
    let file = lab.initiator_file(&t.account, &t.device, port, 2);
    let mut auto = lab.connectd(
        "initiator-autoconnect",
        &[
            "-s".into(),
            "-f".into(),
            file.to_string_lossy().into_owned(),
        ],
        &knobs,
    );
    auto.wait_for_text("!!connected", Duration::from_secs(30));
    Transfer::run(port, Kind::Echo, MIB, TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("the autoconnect tunnel does not work: {e}"));
    let before = connected_count(&auto);

    let running = Transfer::start_paced(t.port, Kind::Download, 64 * MIB, Some(4 * MIB));
    wait_progress(&running, MIB);
    lab.server.stop();
    let killed = std::time::Instant::now();

    // The relayed session goes with the server: the transfer fails, and `connectd -s -c` (no
    // reconnect) ends with an exit code and a reason in one line.
    assert!(
        running.join(Duration::from_secs(120)).is_err(),
        "a transfer through a killed relay reported success"
    );
    let line = exit_with_reason(&mut t.initiator, Duration::from_secs(90));
    eprintln!(
        "relayed initiator {:.1} s after the server was killed: {line}",
        killed.elapsed().as_secs_f64()
    );
    // The reason points at the relay, not at the device.
    assert!(
        line.contains("[020]") && line.contains("the relay stopped forwarding"),
        "{line}"
    );

    // The autoconnect initiator keeps its local port open while the server is down ...
    assert!(
        p2p_system_tests::ports::tcp_port_accepts(port),
        "the autoconnect initiator closed its local port when the server died\n{}",
        auto.tail(20)
    );
    assert!(auto.try_status().is_none(), "{}", auto.tail(20));
    // ... and its tunnel comes back once the server does.
    lab.server.restart();
    t.target.wait_registered_again(Duration::from_secs(60));
    p2p_system_tests::poll::wait_until(
        "the autoconnect initiator to reconnect after the server restart",
        Duration::from_secs(120),
        || connected_count(&auto) > before,
    );
    eprintln!(
        "autoconnect tunnel back {:.1} s after the server was killed",
        killed.elapsed().as_secs_f64()
    );
    Transfer::run(port, Kind::Echo, MIB, TRANSFER_TIMEOUT)
        .unwrap_or_else(|e| panic!("the autoconnect tunnel did not come back: {e}"));
}

/// Log secrecy: every process at the most detailed log level, through every kind of session
/// (direct and relayed, all four encryption modes, a password and an auth-hash login). Besides the
/// secrets the lab knows (passwords, device secrets, the auth hash, the server's private key), the log
/// check flags any key-shaped token it does not know to be public: that is where a session secret, a
/// relay token or a derived key would show. (Here rather than in a file of its own so the test list in
/// tests/Cargo.toml stays as it is.)
#[test]
fn trace_logs_of_every_kind_of_session_hold_no_secret_and_no_unknown_key() {
    let _serial = serial();
    let lab = Lab::verbose("log_secrecy_trace");
    let svc = TransferService::start();
    let direct = lab.tunnel(svc.port(), 3, &[]);
    let knobs = env(&[("P2P_DISABLE_DIRECT", "1")]);
    let relayed = lab.tunnel(svc.port(), 0, &knobs);
    let mut ports = vec![direct.port, relayed.port];
    let mut keep = Vec::new();
    for mode in [1, 2, 3] {
        let i = lab.initiator(&lab.spec(&relayed.account, &relayed.device, mode), &knobs);
        ports.push(i.port());
        keep.push(i);
    }
    let hash = lab
        .auth_hash(&direct.account)
        .unwrap_or_else(|e| panic!("connectd --auth-hash: {e}"));
    use base64::Engine;
    let hash_port = free_tcp_port();
    let args: Vec<String> = [
        "-s",
        "-p",
        &base64::engine::general_purpose::STANDARD.encode(&direct.account.user),
        &hash,
        &direct.device.uid,
        &format!("T{hash_port}"),
        "2",
        "127.0.0.1",
        "0.0.0.0",
        "12",
        "0",
        "0",
    ]
    .map(String::from)
    .to_vec();
    let mut by_hash = p2p_system_tests::initiator::Initiator::new(lab.connectd(
        "initiator-auth-hash",
        &args,
        &[],
    ));
    ports.push(by_hash.wait_up());
    for port in ports {
        Transfer::run(port, Kind::Echo, 256 * 1024, TRANSFER_TIMEOUT)
            .unwrap_or_else(|e| panic!("transfer through port {port}: {e}"));
    }
    drop(keep);
    drop(by_hash);

    let files = lab.check_logs();
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    eprintln!("grepped {} logs: {}", files.len(), names.join(" "));
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    eprintln!("{bytes} bytes of logs in {}", lab.logs.display());
    for part in ["p2p-server", "target", "initiator", "connectd-auth-hash"] {
        assert!(
            names.iter().any(|n| n.starts_with(part)),
            "no {part} log among {names:?}"
        );
    }
    // The check can fail: a log line with an unknown 32-byte value in hex (what a leaked session secret
    // would look like) is caught, and so is one with a relay token's 16 bytes in base64.
    use p2p_system_tests::data::{hex, Rng};
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    for planted in [
        format!("session secret {}", hex(&Rng::from_os().bytes(32))),
        format!("relay token={}", b64.encode(Rng::from_os().bytes(16))),
    ] {
        let path = lab.logs.join("planted.log");
        std::fs::write(&path, &planted).unwrap();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lab.check_logs()));
        std::fs::remove_file(&path).unwrap();
        assert!(caught.is_err(), "the log check missed '{planted}'");
    }
    // The check proves something only if the processes did log at trace level.
    let server_log = std::fs::read_to_string(lab.logs.join("p2p-server.log")).unwrap();
    assert!(
        server_log.contains("TRACE") || server_log.contains("DEBUG"),
        "the server did not log at a detailed level"
    );
}
