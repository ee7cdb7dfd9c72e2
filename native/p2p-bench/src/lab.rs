//! The real binaries on loopback: a `p2p-server` with its own data directory, users and devices added
//! with its admin subcommands, `connectd -f target.conf` targets and `connectd` initiators.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::procs::{run_ok, Proc};

const START_TIMEOUT: Duration = Duration::from_secs(30);
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);
pub const USER: &str = "bench@example.com";
pub const PASSWORD: &str = "bench-password-1";
const DEVICE_SECRET: &str = "bench-device-secret-1";

/// The build that gives the benchmark its binaries: with p2p-bench in the same build, cargo unifies
/// p2p-testkit's `test-hooks` feature into connectd.
const BUILD: &str = "`cargo build --release -p p2p-server -p connectd -p p2p-bench`";

/// Where the release binaries are.
#[derive(Clone)]
pub struct Bins {
    pub server: PathBuf,
    pub connectd: PathBuf,
}

impl Bins {
    pub fn in_dir(dir: &Path) -> Result<Bins, String> {
        let bin = |name: &str| dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        let bins = Bins {
            server: bin("p2p-server"),
            connectd: bin("connectd"),
        };
        for b in [&bins.server, &bins.connectd] {
            if !b.is_file() {
                return Err(format!(
                    "{} not found: build it first with {BUILD}",
                    b.display()
                ));
            }
        }
        // The impaired sections put a relay in the path through the driver's test hooks; a build
        // without them would measure the direct path instead.
        if !p2p_testkit::connectd_build::has_test_hooks(&bins.connectd)? {
            return Err(format!(
                "{} was built without test hooks: build it with {BUILD}",
                bins.connectd.display()
            ));
        }
        Ok(bins)
    }
}

/// Starts `p2p-server run` on free loopback ports; returns it with its control and relay addresses.
fn launch(
    bins: &Bins,
    data: &Path,
    extra: &[String],
    database: Option<&str>,
) -> Result<(Proc, SocketAddr, SocketAddr), String> {
    let mut run = Command::new(&bins.server);
    run.arg("run").arg("--data-dir").arg(data);
    run.args(["--control", "127.0.0.1:0", "--udp", "127.0.0.1:0"]);
    run.args(["--udp2", "127.0.0.1:0", "--udp3", "127.0.0.2:0"]);
    run.args(extra);
    if let Some(d) = database {
        run.args(["--database", d]);
    }
    run.env("RUST_LOG", "warn");
    let mut server = Proc::spawn("p2p-server", run, None)?;
    let line = server.wait_line("its addresses", START_TIMEOUT, |l| {
        l.starts_with("listening ")
    })?;
    let control = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("control="))
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("no control address in '{line}'"))?;
    let relay = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("udp="))
        .and_then(|a| a.split(',').next()?.parse().ok())
        .ok_or_else(|| format!("no relay address in '{line}'"))?;
    Ok((server, control, relay))
}

/// The UID of the `i`th benchmark device.
pub fn uid(i: u32) -> String {
    let b = i.to_be_bytes();
    format!("80:00:00:00:0B:{:02X}:{:02X}:{:02X}", b[1], b[2], b[3])
}

pub struct Lab {
    pub bins: Bins,
    pub dir: PathBuf,
    pub control: SocketAddr,
    /// The server's relay (its first UDP listener).
    pub relay: SocketAddr,
    pub key: String,
    pub server: Proc,
    /// `--database` of the server and its admin commands (PostgreSQL); none: SQLite in the data dir.
    pub database: Option<String>,
    /// `run` options, for another node of the same service.
    extra: Vec<String>,
    /// Each device's fingerprint, read once (outside the timed connections).
    fingerprints: Mutex<HashMap<String, String>>,
}

impl Lab {
    /// `init`s a data directory under `dir`, adds the benchmark user and starts the server.
    pub fn start(bins: &Bins, dir: &Path, extra: &[&str]) -> Result<Lab, String> {
        Lab::start_over(bins, dir, extra, None)
    }

    /// Like [`Lab::start`], with the accounts in the PostgreSQL database `database` when given.
    pub fn start_over(
        bins: &Bins,
        dir: &Path,
        extra: &[&str],
        database: Option<&str>,
    ) -> Result<Lab, String> {
        let data = dir.join("server");
        let database_args: Vec<&str> = database.map(|d| vec!["--database", d]).unwrap_or_default();
        let mut init = Command::new(&bins.server);
        init.arg("init").arg("--data-dir").arg(&data);
        init.args(&database_args);
        let out = run_ok("p2p-server init", init, None, ADMIN_TIMEOUT)?;
        let key = out
            .split_whitespace()
            .rev()
            .find(|t| B64.decode(t).is_ok_and(|b| b.len() == 32))
            .ok_or_else(|| format!("p2p-server init printed no server key:\n{out}"))?
            .to_string();
        let mut user = Command::new(&bins.server);
        user.args(["user", "add", USER, "--data-dir"]).arg(&data);
        user.args(&database_args);
        run_ok(
            "p2p-server user add",
            user,
            Some(&format!("{PASSWORD}\n")),
            ADMIN_TIMEOUT,
        )?;
        let database = database.map(str::to_string);
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let (server, control, relay) = launch(bins, &data, &extra, database.as_deref())?;
        Ok(Lab {
            bins: bins.clone(),
            dir: dir.to_path_buf(),
            control,
            relay,
            key,
            server,
            database,
            extra,
            fingerprints: Mutex::default(),
        })
    }

    /// Another node of the same service: the same data directory (server key) and database, its own
    /// ports.
    pub fn another_node(&self) -> Result<Lab, String> {
        let (server, control, relay) = launch(
            &self.bins,
            &self.data_dir(),
            &self.extra,
            self.database.as_deref(),
        )?;
        Ok(Lab {
            bins: self.bins.clone(),
            dir: self.dir.clone(),
            control,
            relay,
            key: self.key.clone(),
            server,
            database: self.database.clone(),
            extra: self.extra.clone(),
            fingerprints: Mutex::default(),
        })
    }

    fn database_args(&self) -> Vec<&str> {
        self.database
            .as_deref()
            .map(|d| vec!["--database", d])
            .unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("server")
    }

    /// Adds device `uid` owned by the benchmark user (the secret goes on standard input).
    pub fn add_device(&self, uid: &str) -> Result<(), String> {
        let mut cmd = Command::new(&self.bins.server);
        cmd.args(["device", "add", uid, "--owner", USER, "--data-dir"])
            .arg(self.data_dir())
            .args(self.database_args());
        run_ok(
            "p2p-server device add",
            cmd,
            Some(&format!("{DEVICE_SECRET}\n")),
            ADMIN_TIMEOUT,
        )
        .map(|_| ())
    }

    pub fn device_secret(&self) -> &'static str {
        DEVICE_SECRET
    }

    /// Starts `connectd -s -f target.conf` for `uid`, forwarding to `dest`, and waits for its registration.
    pub fn start_target(
        &self,
        uid: &str,
        dest: SocketAddr,
        env: &[(&str, String)],
    ) -> Result<Proc, String> {
        let conf = self.target_conf(uid);
        let text = format!(
            "UID {uid}\npassword {DEVICE_SECRET}\nproxy_dest_ip {}\nproxy_dest_port {}\napplication_type 1\nserver {}\nserver_key {}\n",
            dest.ip(),
            dest.port(),
            self.control,
            self.key
        );
        std::fs::write(&conf, text).map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
        let mut cmd = Command::new(&self.bins.connectd);
        cmd.arg("-s").arg("-f").arg(&conf);
        self.keys_env(&mut cmd);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let mut p = Proc::spawn("connectd (target)", cmd, None)?;
        p.wait_line("its registration", START_TIMEOUT, |l| {
            l.starts_with("Registered ")
        })?;
        self.device_fingerprint(uid)?;
        Ok(p)
    }

    fn target_conf(&self, uid: &str) -> PathBuf {
        self.dir
            .join(format!("target-{}.conf", uid.replace(':', "")))
    }

    /// The fingerprint of device `uid`'s key, read as its owner would on the device
    /// (`connectd --fingerprint -f TARGET-FILE`) once its target started: the initiators pass it
    /// (`--device-key`), as an end-to-end session refuses a device whose key is not known.
    pub fn device_fingerprint(&self, uid: &str) -> Result<String, String> {
        let mut known = self.fingerprints.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(fp) = known.get(uid) {
            return Ok(fp.clone());
        }
        let mut cmd = Command::new(&self.bins.connectd);
        cmd.arg("--fingerprint")
            .arg("-f")
            .arg(self.target_conf(uid));
        self.keys_env(&mut cmd);
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run connectd --fingerprint: {e}"))?;
        let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || !printed.starts_with("SHA256:") {
            return Err(format!(
                "connectd --fingerprint -f for {uid}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        known.insert(uid.to_string(), printed.clone());
        Ok(printed)
    }

    /// `connectd -s --device-key FP -c B64USER B64PASS UID T<port> MODE 127.0.0.1 MAXOUT`: connectd's own command line,
    /// which always sets max_outstanding (the window's floor, MAXOUT packets). Does not wait.
    pub fn initiator_cli(
        &self,
        uid: &str,
        port: u16,
        mode: u8,
        maxout: u32,
        env: &[(&str, String)],
    ) -> Result<Proc, String> {
        let mut cmd = Command::new(&self.bins.connectd);
        // Options before -c: everything after it is -c's.
        cmd.arg("-s")
            .arg("--device-key")
            .arg(self.device_fingerprint(uid)?)
            .arg("-c");
        cmd.arg(B64.encode(USER)).arg(B64.encode(PASSWORD)).arg(uid);
        cmd.arg(format!("T{port}"))
            .arg(mode.to_string())
            .arg("127.0.0.1");
        cmd.arg(maxout.to_string());
        self.server_env(&mut cmd);
        self.keys_env(&mut cmd);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        Proc::spawn("connectd (initiator)", cmd, None)
    }

    /// `connectd -s -f initiator.conf`, with `max_depth` when given. Does not wait.
    pub fn initiator_file(
        &self,
        uid: &str,
        port: u16,
        mode: u8,
        max_depth: Option<u32>,
        env: &[(&str, String)],
    ) -> Result<Proc, String> {
        let conf = self.dir.join(format!("initiator-{port}.conf"));
        let mut text = format!(
            "autoconnect 1\nuser_id {USER}\nauth_pass {PASSWORD}\nremote_address {uid}\nproxy_local_port {port}\n\
             proxy_bind_address 127.0.0.1\nencryption {mode}\nserver {}\nserver_key {}\n",
            self.control, self.key
        );
        if let Some(d) = max_depth {
            text.push_str(&format!("max_depth {d}\n"));
        }
        text.push_str(&format!("device_key {}\n", self.device_fingerprint(uid)?));
        std::fs::write(&conf, text).map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
        let mut cmd = Command::new(&self.bins.connectd);
        cmd.arg("-s").arg("-f").arg(&conf);
        self.keys_env(&mut cmd);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        Proc::spawn("connectd (initiator)", cmd, None)
    }

    /// The device keys and pins of the benchmark's processes live in its directory, not the user's.
    fn keys_env(&self, cmd: &mut Command) {
        cmd.env("XDG_CONFIG_HOME", self.config_dir());
    }

    /// Where the benchmark's device keys and pins live (the `XDG_CONFIG_HOME` of its processes).
    pub fn config_dir(&self) -> PathBuf {
        self.dir.join("config")
    }

    fn server_env(&self, cmd: &mut Command) {
        cmd.env("P2P_SERVER", self.control.to_string());
        cmd.env("P2P_SERVER_KEY", &self.key);
    }
}

/// Waits until an initiator says its session is up (`!!connected`).
pub fn wait_connected(p: &mut Proc) -> Result<(), String> {
    p.wait_line("'!!connected'", START_TIMEOUT, |l| {
        l.starts_with("!!connected")
    })
    .map(|_| ())
}
