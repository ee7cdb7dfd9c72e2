//! A fresh `p2p-server`: `init` in a data directory of its own, then `run` on loopback ports (0 at first,
//! the same ports again on restart, because targets and initiators know the server by its address).
//! Admin subcommands (users, devices, shares) run against the same data directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::proc::{run, Proc};

const START_TIMEOUT: Duration = Duration::from_secs(20);
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The addresses a running server reported.
#[derive(Clone, Debug)]
pub struct ServerAddrs {
    pub control: SocketAddr,
    /// udp[0] (probe and relay), udp[1] (same IP), udp[2] (second IP).
    pub udp: Vec<SocketAddr>,
}

pub struct Server {
    pub data_dir: PathBuf,
    pub key: String,
    pub addrs: ServerAddrs,
    log_dir: PathBuf,
    proc: Option<Proc>,
    env: Vec<(String, String)>,
    /// Extra `p2p-server run` options (limits), kept across restarts.
    run_args: Vec<String>,
    /// What clients are given as the server's address instead of `addrs.control` (a hostile server in
    /// front of this one: `hostile.rs`).
    front: Option<SocketAddr>,
}

impl Server {
    /// `init`s a data directory and starts the server on free loopback ports.
    pub fn start(data_dir: &Path, log_dir: &Path, env: &[(String, String)]) -> Server {
        Server::start_with(data_dir, log_dir, env, &[])
    }

    /// Like [`Server::start`], with extra `p2p-server run` options (`--max-sessions-per-user 2`).
    pub fn start_with(
        data_dir: &Path,
        log_dir: &Path,
        env: &[(String, String)],
        run_args: &[&str],
    ) -> Server {
        std::fs::create_dir_all(data_dir).expect("create server data dir");
        let run_args: Vec<String> = run_args.iter().map(|a| a.to_string()).collect();
        let mut init = Command::new(crate::bins::server());
        init.arg("init").arg("--data-dir").arg(data_dir);
        init.args(database_args(&run_args));
        let (code, out) = run("p2p-server-init", init, log_dir, None, ADMIN_TIMEOUT);
        assert_eq!(code, 0, "p2p-server init failed:\n{out}");
        let key = parse_key(&out)
            .unwrap_or_else(|| panic!("p2p-server init printed no server key:\n{out}"));
        let mut server = Server {
            data_dir: data_dir.to_path_buf(),
            key,
            addrs: ServerAddrs {
                control: "127.0.0.1:0".parse().unwrap(),
                udp: Vec::new(),
            },
            log_dir: log_dir.to_path_buf(),
            proc: None,
            env: env.to_vec(),
            run_args,
            front: None,
        };
        server.launch(None);
        server
    }

    /// `host:port` of the control listener, as clients are given it.
    pub fn address(&self) -> String {
        self.front.unwrap_or(self.addrs.control).to_string()
    }

    /// From now on clients are given `addr` as this server's address: a server in front of it
    /// (`hostile.rs`). Admin commands still work on the data directory.
    pub fn put_in_front(&mut self, addr: SocketAddr) {
        self.front = Some(addr);
    }

    /// The relay (udp[0]) address.
    pub fn relay(&self) -> SocketAddr {
        self.addrs.udp[0]
    }

    pub fn proc(&mut self) -> &mut Proc {
        self.proc.as_mut().expect("server is not running")
    }

    pub fn is_running(&self) -> bool {
        self.proc.is_some()
    }

    fn launch(&mut self, same_as: Option<&ServerAddrs>) {
        let mut cmd = Command::new(crate::bins::server());
        cmd.arg("run").arg("--data-dir").arg(&self.data_dir);
        let (control, udp) = match same_as {
            None => (
                "127.0.0.1:0".to_string(),
                ["127.0.0.1:0", "127.0.0.1:0", "127.0.0.2:0"].map(String::from),
            ),
            Some(a) => (
                a.control.to_string(),
                [0, 1, 2].map(|i| a.udp[i].to_string()),
            ),
        };
        cmd.arg("--control").arg(control);
        for (flag, addr) in ["--udp", "--udp2", "--udp3"].iter().zip(udp) {
            cmd.arg(flag).arg(addr);
        }
        cmd.args(&self.run_args);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut p = Proc::spawn("p2p-server", cmd, &self.log_dir, None);
        let addrs = wait_addrs(&mut p);
        if let Some(a) = same_as {
            assert_eq!(
                a.control, addrs.control,
                "the restarted server is on another control address"
            );
        }
        self.addrs = addrs;
        self.proc = Some(p);
    }

    /// A second node of the same service: a copy of this server's data directory as it is now (its key,
    /// accounts and devices), run on ports of its own. (Nodes share their accounts through PostgreSQL;
    /// the copy stands in for that where a test is about the clients.)
    pub fn copy_as_node(&self, name: &str) -> Server {
        let data_dir = self.data_dir.with_file_name(name);
        std::fs::create_dir_all(&data_dir).expect("create the node's data dir");
        for entry in std::fs::read_dir(&self.data_dir)
            .expect("list the data dir")
            .flatten()
        {
            if entry.path().is_file() {
                std::fs::copy(entry.path(), data_dir.join(entry.file_name()))
                    .expect("copy the data dir");
            }
        }
        let mut node = Server {
            data_dir,
            key: self.key.clone(),
            addrs: ServerAddrs {
                control: "127.0.0.1:0".parse().unwrap(),
                udp: Vec::new(),
            },
            log_dir: self.log_dir.clone(),
            proc: None,
            env: self.env.clone(),
            run_args: self.run_args.clone(),
            front: None,
        };
        node.launch(None);
        node
    }

    /// Stops the server (kill: a crash or power loss is the harder case for the clients).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Starts it again on the same ports with the same data.
    pub fn restart(&mut self) {
        self.stop();
        let addrs = self.addrs.clone();
        // The old sockets are closed once the process is reaped, so the ports are free again; a
        // port another process grabbed meanwhile fails loudly in `launch`.
        self.launch(Some(&addrs));
    }

    /// Starts it again on the same ports over the PostgreSQL database `url` (its admin commands too):
    /// the node an operator runs after `p2p-server migrate`.
    pub fn restart_over(&mut self, url: &str) {
        match self.run_args.iter().position(|a| a == "--database") {
            Some(i) => self.run_args[i + 1] = url.to_string(),
            None => self
                .run_args
                .extend(["--database".to_string(), url.to_string()]),
        }
        self.restart();
    }

    /// Runs an admin subcommand (`user add NAME` ...) on this server's data directory.
    pub fn admin(&self, args: &[&str], stdin: Option<&str>) -> (i32, String) {
        let mut cmd = Command::new(crate::bins::server());
        cmd.args(args).arg("--data-dir").arg(&self.data_dir);
        cmd.args(database_args(&self.run_args));
        run(
            &format!("p2p-server-{}", args[..args.len().min(2)].join("-")),
            cmd,
            &self.log_dir,
            stdin,
            ADMIN_TIMEOUT,
        )
    }

    /// Like [`Server::admin`] but the command must succeed.
    pub fn admin_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (code, out) = self.admin(args, stdin);
        assert_eq!(
            code,
            0,
            "p2p-server {} failed (exit {code}):\n{out}",
            args.join(" ")
        );
        out
    }

    pub fn add_user(&self, name: &str, password: &str) {
        self.admin_ok(&["user", "add", name], Some(&format!("{password}\n")));
    }

    pub fn add_device(&self, uid: &str, owner: &str, secret: &str) {
        self.admin_ok(
            &["device", "add", uid, "--owner", owner],
            Some(&format!("{secret}\n")),
        );
    }

    pub fn add_share(&self, uid: &str, user: &str) {
        self.admin_ok(&["share", "add", uid, user], None);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The key `init` printed (`server_key BASE64`): the last token that is base64 of 32 bytes.
fn parse_key(out: &str) -> Option<String> {
    use base64::Engine;
    out.split_whitespace()
        .rev()
        .find(|t| {
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .is_ok_and(|b| b.len() == 32)
        })
        .map(str::to_string)
}

/// Waits until the server printed its control address and its three UDP addresses.
fn wait_addrs(p: &mut Proc) -> ServerAddrs {
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    loop {
        if let Some(a) = parse_addrs(&p.lines()) {
            return a;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if let Err(why) = p.try_wait_line(left.min(Duration::from_millis(200)), |_| false) {
            if why.starts_with("ended") || left.is_zero() {
                panic!(
                    "p2p-server did not report its addresses ({why})\n{}",
                    p.tail(40)
                );
            }
        }
    }
}

/// `listening control=ADDR udp=ADDR,ADDR,ADDR`, the line `p2p-server run` prints once bound.
fn parse_addrs(lines: &[String]) -> Option<ServerAddrs> {
    lines.iter().find_map(|l| {
        let rest = l.strip_prefix("listening ")?;
        let mut control = None;
        let mut udp = Vec::new();
        for field in rest.split_whitespace() {
            if let Some(v) = field.strip_prefix("control=") {
                control = v.parse().ok();
            } else if let Some(v) = field.strip_prefix("udp=") {
                udp = v.split(',').filter_map(|a| a.parse().ok()).collect();
            }
        }
        (udp.len() == 3).then_some(ServerAddrs {
            control: control?,
            udp,
        })
    })
}

/// The `--database URL` among a server's run options: a server run over PostgreSQL is initialised and
/// administered there too.
fn database_args(run_args: &[String]) -> &[String] {
    match run_args.iter().position(|a| a == "--database") {
        Some(i) => &run_args[i..(i + 2).min(run_args.len())],
        None => &[],
    }
}
