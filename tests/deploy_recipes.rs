//! deploy/'s recipes, run as far as this machine can: the systemd unit passes `systemd-analyze verify`
//! and its ExecStart line, run as written (the unit's paths pointed at this build), starts a node that
//! creates its key once, answers `/healthz`, and drains and exits 0 on SIGTERM; the container image's
//! entry point does the same with the files its COPY lines name. (No container engine runs here, so the
//! image itself is not built.) The recipes' ports are fixed (5980, 5959, 5960, 9598): when one is taken
//! the test says so and skips.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use p2p_system_tests::bins;
use p2p_system_tests::lab::log_root;
use p2p_system_tests::poll::wait_for;
use p2p_system_tests::ports::{free_tcp_port, tcp_port_is_free};
use p2p_system_tests::proc::Proc;
use p2p_system_tests::{os, tools};

const RECIPE_PORTS: [u16; 2] = [5980, 9598];
/// The recipes' `--drain-seconds`.
const DRAIN: Duration = Duration::from_secs(5);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// The recipes' `/healthz` (status 0 while nothing answers).
fn healthz() -> (u16, String) {
    tools::http_get(9598, "/healthz")
}

fn test_dir(name: &str) -> PathBuf {
    let dir = log_root().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test folder");
    dir
}

/// Starts `cmd` (the recipe's command line, with the built binaries first on PATH) twice on the same data
/// folder: the first start creates the server key, the second keeps it; each time the node answers
/// `/healthz`, then on SIGTERM answers 503 `draining` and exits 0 after the drain.
fn start_serve_drain(name: &str, cmd: impl Fn() -> Command, data: &Path, dir: &Path) {
    let mut keys = Vec::new();
    for round in 1..=2 {
        let mut cmd = cmd();
        let path = format!(
            "{}:{}",
            bins::bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("PATH", path).current_dir(dir);
        let mut node = Proc::spawn(&format!("{name}-{round}"), cmd, dir, None);
        let answer = wait_for("/healthz", Duration::from_secs(30), || {
            Some(healthz()).filter(|(code, _)| *code == 200)
        });
        assert_eq!(answer.1, "ok\n");
        let key = Command::new(bins::server())
            .args(["key", "--data-dir"])
            .arg(data)
            .output()
            .expect("p2p-server key");
        keys.push(String::from_utf8_lossy(&key.stdout).trim().to_string());
        let init_lines = node
            .lines()
            .iter()
            .filter(|l| l.starts_with("server_key "))
            .count();
        assert_eq!(
            init_lines,
            usize::from(round == 1),
            "start {round}: `init` runs on the first start only\n{}",
            node.tail(20)
        );
        let signalled = Instant::now();
        os::terminate(node.pid());
        let draining = wait_for("/healthz to say draining", Duration::from_secs(4), || {
            Some(healthz()).filter(|(code, _)| *code == 503)
        });
        assert_eq!(draining.1, "draining\n");
        let status = node.wait_exit(DRAIN + Duration::from_secs(20));
        assert!(
            status.success(),
            "{name} exited with {status}\n{}",
            node.tail(20)
        );
        assert!(
            signalled.elapsed() >= DRAIN,
            "closed before the drain ended"
        );
    }
    assert!(keys[0].starts_with("server_key "), "{keys:?}");
    assert_eq!(keys[0], keys[1], "the second start made a new key");
}

fn ports_free() -> bool {
    match RECIPE_PORTS.iter().find(|p| !tcp_port_is_free(**p)) {
        Some(port) => {
            eprintln!("SKIP: port {port}, which the recipes use, is taken on this machine");
            false
        }
        None => true,
    }
}

/// The unit's ExecStart, its continuation lines joined and `${VAR}` taken from `env`, split into words
/// (it has no quoting).
fn exec_start(unit: &str, env: &[(&str, &str)]) -> Vec<String> {
    let joined = unit.replace("\\\n", " ");
    let line = joined
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has ExecStart=");
    let mut line = line.to_string();
    for (k, v) in env {
        line = line.replace(&format!("${{{k}}}"), v);
    }
    line.split_whitespace().map(str::to_string).collect()
}

#[test]
fn the_recipes_start_a_node_that_serves_and_drains() {
    if !ports_free() {
        return;
    }
    // Both recipes use the same ports: one after the other.
    systemd_unit();
    container_entry_point();
}

fn systemd_unit() {
    let dir = test_dir("deploy_systemd");
    let script = repo().join("deploy/p2p-server-start");
    let udp3 = format!("127.0.0.2:{}", free_tcp_port());
    let env_file = dir.join("p2p-server.env");
    std::fs::write(&env_file, format!("P2P_UDP3={udp3}\n")).expect("write the env file");
    let unit = read("deploy/p2p-server.service")
        .replace(
            "/usr/local/lib/p2p-server/p2p-server-start",
            &script.display().to_string(),
        )
        .replace("/etc/default/p2p-server", &env_file.display().to_string());

    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(_) => {
            let file = dir.join("p2p-server.service");
            std::fs::write(&file, &unit).expect("write the unit");
            let out = Command::new("systemd-analyze")
                .arg("verify")
                .arg(&file)
                .output()
                .expect("run systemd-analyze");
            let said = String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && said.trim().is_empty(),
                "systemd-analyze verify: {said}"
            );
        }
        Err(_) => eprintln!("systemd-analyze is not installed: the unit's syntax is not verified"),
    }

    let data = dir.join("var-lib-p2p");
    let words = exec_start(&unit, &[("P2P_UDP3", &udp3)]);
    let words: Vec<String> = words
        .into_iter()
        .map(|w| w.replace("/var/lib/p2p", &data.display().to_string()))
        .collect();
    start_serve_drain(
        "systemd-exec-start",
        || {
            let mut cmd = Command::new(&words[0]);
            cmd.args(&words[1..]).env("RUST_LOG", "info");
            cmd
        },
        &data,
        &dir,
    );
}

fn container_entry_point() {
    let dir = test_dir("deploy_container");
    let recipe = read("deploy/Containerfile");
    // What the image holds: every COPY source exists in a built checkout.
    for line in recipe.lines().filter(|l| l.starts_with("COPY ")) {
        let source = line.split_whitespace().nth(1).expect("COPY SOURCE DEST");
        assert!(
            repo().join(source).exists(),
            "{line}: {source} does not exist"
        );
    }
    let entry = recipe
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("the recipe has an ENTRYPOINT");
    let words: Vec<String> = serde_json::from_str(entry).expect("ENTRYPOINT is a JSON array");
    let data = dir.join("var-lib-p2p");
    let words: Vec<String> = words
        .into_iter()
        .map(|w| {
            w.replace(
                "/usr/local/bin/p2p-server-start",
                &repo().join("deploy/p2p-server-start").display().to_string(),
            )
            .replace("/var/lib/p2p", &data.display().to_string())
        })
        .collect();
    // The image's ENV, with P2P_UDP3 overridden as `docker run -e` would (a second loopback address).
    let mut env: Vec<(String, String)> = recipe
        .lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.push(("P2P_UDP3".into(), format!("127.0.0.2:{}", free_tcp_port())));
    start_serve_drain(
        "container-entrypoint",
        || {
            let mut cmd = Command::new(&words[0]);
            cmd.args(&words[1..]).envs(env.iter().map(|(k, v)| (k, v)));
            cmd
        },
        &data,
        &dir,
    );
}
