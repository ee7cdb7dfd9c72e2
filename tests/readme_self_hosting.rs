//! README.md's "Self-hosting, step by step", run as written: its `sh` blocks go to bash and its
//! `target.conf` block becomes the target's file, read from README.md itself so that an edit there is
//! tested as it stands. (Pester/Readme.Tests.ps1 does the same for the PowerShell blocks.)
//!
//! The only changes are the README's own placeholders:
//!
//! - `/var/lib/p2p` -> a data folder of this test's own (no test writes outside its folder);
//! - `SECOND_IP` -> 127.0.0.2, a second loopback address;
//! - `server.example.com` -> 127.0.0.1, `3q2+7w...=` -> the key that step 1's `init` printed;
//! - `<the device secret printed above>` -> the secret that step 2's `device add` printed;
//! - `SHA256:q0ZlUm...` -> the fingerprint that step 3's `connectd --fingerprint -f target.conf` printed;
//! - `proxy_dest_port 22` -> the port of an HTTP service of this test, and `ssh -p PORT pi@127.0.0.1` goes
//!   to a shell function that fetches that service's page through PORT (what the README's ssh proves).
//!
//! The README's daemons (`p2p-server run`, `connectd -f`, the initiator) each run in a terminal of their
//! own; here each block runs in a bash of its own, the daemons in the background, and Ctrl-C is SIGINT to
//! the initiator's process group. The ports are the README's (5980, 5959-5961, 33000): when one is taken
//! on this machine the test says so and skips.
#![cfg(unix)]

use p2p_system_tests::lab::log_root;
use p2p_system_tests::ports::{tcp_port_accepts, tcp_port_is_free};
use p2p_system_tests::proc::{run, Proc};
use p2p_system_tests::services::HttpServer;
use p2p_system_tests::{bins, os};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const README_PORTS: [u16; 2] = [5980, 33000];
const PASSWORD: &str = "sup3rsekret!";
const PAGE_MARKER: &str = "readme self-hosting page";

/// The self-hosting section's shell and file blocks, in order: (language, text). Its PowerShell block
/// (step 5) is Pester's.
fn self_hosting_blocks() -> Vec<(String, String)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("read README.md");
    let start = readme
        .find("## Self-hosting, step by step")
        .expect("README has the section \"Self-hosting, step by step\"");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let mut blocks = Vec::new();
    let mut rest = &section[..end];
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let lang_end = after.find('\n').expect("a fence line");
        let body = &after[lang_end + 1..];
        let close = body.find("\n```").expect("a closing fence");
        blocks.push((
            after[..lang_end].trim().to_string(),
            body[..=close].to_string(),
        ));
        rest = &body[close + 4..];
    }
    blocks.retain(|(lang, _)| lang != "powershell");
    blocks
}

/// The commands of a shell block: lines joined where they end in `\\`, blank lines dropped.
fn shell_commands(block: &str) -> Vec<String> {
    let mut commands = vec![String::new()];
    for line in block.lines() {
        let current = commands.last_mut().expect("never empty");
        match line.trim_end().strip_suffix('\\') {
            Some(continued) => current.push_str(continued),
            None => {
                current.push_str(line);
                commands.push(String::new());
            }
        }
    }
    commands.retain(|c| !c.trim().is_empty());
    commands
}

/// A bash that runs `script` in `dir` with the built binaries first on PATH.
fn bash(dir: &Path, script: &str) -> Command {
    let mut cmd = Command::new("bash");
    let path = format!(
        "{}:{}",
        bins::bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("RUST_LOG", "info")
        .env_remove("P2P_SERVER")
        .env_remove("P2P_SERVER_KEY");
    cmd
}

/// A block that runs in a terminal of its own: its own process group, so that Ctrl-C reaches the daemon
/// and not only bash, and so that the daemon bash started ends with the test, whatever happens.
struct Terminal(Proc);

impl Terminal {
    fn open(name: &str, mut cmd: Command, dir: &Path) -> Terminal {
        cmd.process_group(0);
        Terminal(Proc::spawn(name, cmd, dir, None))
    }

    fn signal(&self, signal: &str) -> bool {
        os::signal_group(self.0.pid(), signal)
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.signal("KILL");
    }
}

fn test_dir() -> PathBuf {
    let dir = log_root().join("readme_self_hosting");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test folder");
    dir
}

fn value_after<'a>(output: &'a str, key: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no line '{key} ...' in:\n{output}"))
}

#[test]
fn self_hosting_steps_run_as_written() {
    if let Some(port) = README_PORTS.iter().find(|p| !tcp_port_is_free(**p)) {
        eprintln!("SKIP: port {port}, which the README uses, is taken on this machine");
        return;
    }
    let blocks = self_hosting_blocks();
    let langs: Vec<&str> = blocks.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        langs,
        ["sh", "sh", "text", "sh", "sh"],
        "the blocks this test knows: server, accounts, target.conf, target, initiator"
    );
    let dir = test_dir();
    let data = dir.join("data");
    let placeholders = |text: &str| {
        text.replace("/var/lib/p2p", &data.display().to_string())
            .replace("SECOND_IP", "127.0.0.2")
            .replace("server.example.com", "127.0.0.1")
    };

    // 1. The server: `init` prints the key every client pins, `run` serves.
    let mut server = Terminal::open("server", bash(&dir, &placeholders(&blocks[0].1)), &dir);
    let key_line = server
        .0
        .wait_line("init's server_key", Duration::from_secs(30), |l| {
            l.trim_start().starts_with("server_key ")
        });
    let server_key = value_after(&key_line, "server_key").to_string();
    let with_key = |text: &str| placeholders(text).replace("3q2+7w...=", &server_key);
    p2p_system_tests::poll::wait_until(
        "the server's control port",
        Duration::from_secs(30),
        || tcp_port_accepts(5980),
    );

    // 2. The accounts, one command at a time as typed at a prompt: each `user add` reads its password from
    //    one line of stdin (the README's user gets the password step 4 uses).
    let mut accounts = String::new();
    for command in shell_commands(&placeholders(&blocks[1].1)) {
        let password = match command.contains("user add yourname@example.com") {
            true => Some(format!("{PASSWORD}\n")),
            false if command.contains("user add") => Some("a-colleague's-password\n".to_string()),
            false => None,
        };
        let (code, out) = run(
            "accounts",
            bash(&dir, &command),
            &dir,
            password.as_deref(),
            Duration::from_secs(60),
        );
        assert_eq!(code, 0, "step 2's `{command}` failed:\n{out}");
        accounts.push_str(&out);
        accounts.push('\n');
    }
    let secret = value_after(&accounts, "secret").to_string();
    assert!(
        secret.len() >= 32 && secret.chars().all(|c| c.is_ascii_hexdigit()),
        "device add printed 'secret {secret}', not a hex secret"
    );

    // 3. The target, with target.conf as written, exposing this test's web page instead of sshd.
    let page = HttpServer::with_marker_body(PAGE_MARKER, 4096);
    let conf = with_key(&blocks[2].1)
        .replace("<the device secret printed above>", &secret)
        .replace(
            "proxy_dest_port 22",
            &format!("proxy_dest_port {}", page.port()),
        );
    std::fs::write(dir.join("target.conf"), conf).expect("write target.conf");
    let mut target = Terminal::open("target", bash(&dir, &blocks[3].1), &dir);
    let fingerprint_line =
        target
            .0
            .wait_line("the device's fingerprint", Duration::from_secs(30), |l| {
                l.starts_with("SHA256:")
            });
    let device_fingerprint = fingerprint_line.trim().to_string();
    target
        .0
        .wait_line("Registered", Duration::from_secs(30), |l| {
            l.contains("Registered 80:00:00:00:01:00:0A:C2")
        });

    // 4. The initiator, the seed's one-liner, in a terminal of its own; the block's last line, ssh, runs
    //    once it connected.
    let (initiator_lines, ssh_line): (Vec<&str>, Vec<&str>) = blocks[4]
        .1
        .lines()
        .partition(|l| !l.trim_start().starts_with("ssh "));
    let initiator_script =
        with_key(&initiator_lines.join("\n")).replace("SHA256:q0ZlUm...", &device_fingerprint);
    let mut initiator = Terminal::open("initiator", bash(&dir, &initiator_script), &dir);
    for expected in [
        "Starting Proxy on port 33000 on index 1.",
        "Proxy started.",
        "!!connected local=127.0.0.1:33000 encryption=",
    ] {
        initiator
            .0
            .wait_line(expected, Duration::from_secs(30), |l| {
                l.starts_with(expected)
            });
    }
    let ssh_stand_in = format!(
        "ssh() {{ local port=$2; curl -fsS --max-time 20 \"http://${{3#*@}}:$port/\" | grep -q '{PAGE_MARKER}' \
         && echo \"reached the service through port $port\"; }}\n{}",
        ssh_line.join("\n")
    );
    let (code, ssh_out) = run(
        "ssh",
        bash(&dir, &ssh_stand_in),
        &dir,
        None,
        Duration::from_secs(60),
    );
    assert_eq!(
        code, 0,
        "the README's ssh line did not reach the service: {ssh_out}"
    );
    assert!(
        ssh_out.contains("reached the service through port 33000"),
        "{ssh_out}"
    );

    // "Ctrl-C in connectd's window ends the tunnel (!!exit [003])".
    assert!(initiator.signal("INT"), "kill -INT the initiator's group");
    initiator
        .0
        .wait_line("!!exit [003]", Duration::from_secs(30), |l| {
            l.contains("!!exit [003]")
        });
    assert!(
        !tcp_port_accepts(33000),
        "port 33000 still accepts after Ctrl-C"
    );

    // What the programs printed (not the harness's record of the command lines: the seed's one-liner
    // carries the password in its own text) shows no password; only `device add`, whose job it is, prints
    // the device secret.
    for (name, out) in [
        ("p2p-server", server.0.output()),
        ("the target", target.0.output()),
        ("the initiator", initiator.0.output()),
    ] {
        assert!(!out.contains(PASSWORD), "{name} printed the password");
        assert!(
            !out.contains(secret.as_str()),
            "{name} printed the device secret"
        );
    }
    assert!(
        !accounts.contains(PASSWORD),
        "the admin commands printed the password"
    );
}
