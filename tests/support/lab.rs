//! One test's world: a fresh server (own data directory, loopback ports), the accounts and devices the
//! test adds, the targets and initiators it starts, and one log folder for all of their output
//! (`target/<profile>/system-test-logs/<test>/`, or under `P2P_TEST_LOG_DIR`). When the lab is dropped
//! after a passing test it checks every log for the secrets it knows (passwords, device secrets, auth
//! hashes, the server's private key; plain, base64 and hex) and for any token shaped like a key it does
//! not know to be public (see [`crate::secrets`]): session secrets and relay tokens exist only inside the
//! processes, so that is how a leak of one would show.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::data::{hex, Rng};
use crate::initiator::{Initiator, InitiatorSpec};
use crate::proc::{register_secret, Proc};
use crate::server::Server;
use crate::target::{target_conf, Target};

/// The driver's test hooks: read only by a build with them (see `bins::require_test_hooks`).
const DRIVER_TEST_HOOKS: [&str; 3] = [
    "P2P_RELAY_OVERRIDE",
    "P2P_DISABLE_DIRECT",
    "P2P_DISABLE_DIRECT_FILE",
];

/// Environment variables the driver reads: never inherited from the developer's shell, only set by tests.
const DRIVER_ENV: [&str; 5] = [
    "P2P_SERVER",
    "P2P_SERVER_KEY",
    DRIVER_TEST_HOOKS[0],
    DRIVER_TEST_HOOKS[1],
    DRIVER_TEST_HOOKS[2],
];

/// Which build of connectd a process runs: this machine's, or the Windows one under wine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    Native,
    WindowsUnderWine,
}

impl Build {
    /// A file's path as this build's command line takes it.
    pub fn path_arg(self, path: &Path) -> String {
        match self {
            Build::Native => path.to_string_lossy().into_owned(),
            Build::WindowsUnderWine => crate::wine::windows_path(path),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Account {
    pub user: String,
    pub password: String,
}

#[derive(Clone, Debug)]
pub struct Device {
    pub uid: String,
    pub secret: String,
}

pub struct Lab {
    pub name: String,
    pub server: Server,
    pub logs: PathBuf,
    dir: tempfile::TempDir,
    counter: AtomicU32,
    secrets: Mutex<Vec<String>>,
    /// Values printed by design (the server's public key...): not flagged by the key-shape detector.
    public: Mutex<Vec<String>>,
    /// The environment every process gets (the log level).
    base: Vec<(String, String)>,
    /// Whether the initiators this lab writes get each device's key (`--device-key`, `device_key`), as
    /// a careful user passes it: an end-to-end session refuses a device whose key is not known.
    seed_device_keys: AtomicBool,
    /// Each device's fingerprint once read (`connectd --fingerprint -f TARGET-FILE`).
    fingerprints: Mutex<HashMap<String, String>>,
}

/// Tests that move a lot of data or measure timing take this lock, so that the test threads of one
/// binary do not starve each other on a small machine.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    if pairs.iter().any(|(k, _)| DRIVER_TEST_HOOKS.contains(k)) {
        crate::bins::require_test_hooks();
    }
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Lab {
    /// A lab with a running server.
    pub fn new(name: &str) -> Lab {
        Lab::build(name, base_env(), |_| {}, &[])
    }

    /// A lab whose server runs with extra `p2p-server run` options (limits).
    pub fn with_server_args(name: &str, run_args: &[&str]) -> Lab {
        Lab::build(name, base_env(), |_| {}, run_args)
    }

    /// A lab whose processes all log at the most detailed level (`RUST_LOG=trace`): what the log checks
    /// need to see every value a process could print.
    pub fn verbose(name: &str) -> Lab {
        Lab::build(name, vec![("RUST_LOG".into(), "trace".into())], |_| {}, &[])
    }

    /// A lab whose server data directory is prepared by `prepare` (given its path, not created yet)
    /// before `p2p-server init`: to put it on a file system of the test's choosing.
    pub fn with_server_dir(name: &str, prepare: impl FnOnce(&Path)) -> Lab {
        Lab::build(name, base_env(), prepare, &[])
    }

    fn build(
        name: &str,
        base: Vec<(String, String)>,
        prepare: impl FnOnce(&Path),
        run_args: &[&str],
    ) -> Lab {
        let logs = log_root().join(name);
        let _ = std::fs::remove_dir_all(&logs);
        std::fs::create_dir_all(&logs).expect("create log dir");
        let dir = tempfile::Builder::new()
            .prefix(&format!("p2p-{name}-"))
            .tempdir()
            .expect("temp dir");
        let data_dir = dir.path().join("server");
        prepare(&data_dir);
        let server = Server::start_with(&data_dir, &logs, &base, run_args);
        let lab = Lab {
            name: name.to_string(),
            server,
            logs,
            dir,
            counter: AtomicU32::new(0),
            secrets: Mutex::new(Vec::new()),
            public: Mutex::new(Vec::new()),
            base,
            seed_device_keys: AtomicBool::new(true),
            fingerprints: Mutex::new(HashMap::new()),
        };
        lab.remember_server_keys();
        // The temp dir's random suffix makes its name key-shaped now and then (`p2p-wine_target-z78OiP`
        // is 22 base64 characters), and logs print paths inside it.
        if let Some(dir_name) = lab.dir.path().file_name() {
            lab.public(&dir_name.to_string_lossy());
        }
        lab
    }

    /// The server's private key (its file holds base64) is a secret in every form; its public key,
    /// which `init` and `key` print for clients to pin, is public.
    fn remember_server_keys(&self) {
        let text = std::fs::read_to_string(self.server.data_dir.join("server.key"))
            .expect("read the server's key file");
        let private = text.trim();
        self.secret(private);
        use base64::Engine;
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(private) {
            self.secret(&hex(&bytes));
            self.secret(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes));
        }
        self.public(&self.server.key.clone());
    }

    /// The test's private working directory (deleted afterwards; logs are kept).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn next(&self) -> u32 {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Remembers a secret: it must never appear in a log, and the harness redacts it from command lines.
    pub fn secret(&self, s: &str) {
        register_secret(s);
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(s);
        register_secret(&b64);
        let mut v = self.secrets.lock().unwrap();
        v.push(s.to_string());
        v.push(b64);
    }

    /// Remembers a value that is printed by design (a public key, an id): the key-shape detector lets
    /// it through, in any of the forms [`crate::secrets::forms`] gives.
    pub fn public(&self, s: &str) {
        self.public.lock().unwrap().extend(crate::secrets::forms(s));
    }

    /// `connectd --auth-hash --user NAME` (the password on standard input): the auth hash it prints,
    /// remembered as a secret. The command prints it by design, so its log is redacted afterwards.
    pub fn auth_hash(&self, a: &Account) -> Result<String, String> {
        let mut cmd = self.connectd_cmd(
            &[
                "--auth-hash".to_string(),
                "--user".to_string(),
                a.user.clone(),
            ],
            &self.client_env(&[]),
        );
        cmd.current_dir(self.dir());
        let mut p = Proc::spawn(
            "connectd-auth-hash",
            cmd,
            &self.logs,
            Some(&format!("{}\n", a.password)),
        );
        let code = p.wait_exit(Duration::from_secs(60)).code().unwrap_or(-1);
        let out = p.output();
        if code != 0 {
            return Err(format!("connectd --auth-hash exited {code}: {out}"));
        }
        let hash = out
            .lines()
            .find(|l| !l.starts_with("[stderr]") && l.contains('.'))
            .map(|l| l.trim().to_string())
            .ok_or_else(|| format!("connectd --auth-hash printed no hash: {out}"))?;
        self.secret(&hash);
        if let Some((id, secret_half)) = hash.split_once('.') {
            self.secret(secret_half);
            // The id is the public half: `p2p-server auth-hash list` shows it.
            self.public(id);
        }
        crate::proc::redact_log(p.log_path(), &hash, "<auth hash, printed by design>");
        Ok(hash)
    }

    /// A new user with a random password.
    pub fn account(&self) -> Account {
        let n = self.next();
        let a = Account {
            user: format!("user{n}@example.com"),
            password: format!("pw-{}", hex(&Rng::from_os().bytes(12))),
        };
        self.add_account(&a);
        a
    }

    pub fn add_account(&self, a: &Account) {
        self.secret(&a.password);
        self.server.add_user(&a.user, &a.password);
    }

    /// A new device owned by `owner`, with a random UID and secret.
    pub fn device(&self, owner: &Account) -> Device {
        let b = Rng::from_os().bytes(3);
        let d = Device {
            uid: format!("80:00:00:00:01:{:02X}:{:02X}:{:02X}", b[0], b[1], b[2]),
            secret: hex(&Rng::from_os().bytes(16)),
        };
        self.add_device(&d, owner);
        d
    }

    pub fn add_device(&self, d: &Device, owner: &Account) {
        self.secret(&d.secret);
        self.server.add_device(&d.uid, &owner.user, &d.secret);
    }

    pub fn share(&self, d: &Device, with: &Account) {
        self.server.add_share(&d.uid, &with.user);
    }

    /// An account and a device it owns (owners reach their devices without a share).
    pub fn account_and_device(&self) -> (Account, Device) {
        let a = self.account();
        let d = self.device(&a);
        (a, d)
    }

    /// The seed's account (yourname@example.com / sup3rsekret!, whose base64 forms its one-liner carries)
    /// and device (80:00:00:00:00:00:00:F1), added to the server.
    pub fn seed_account_and_device(&self) -> (Account, Device) {
        let account = Account {
            user: "yourname@example.com".into(),
            password: "sup3rsekret!".into(),
        };
        self.add_account(&account);
        let device = Device {
            uid: "80:00:00:00:00:00:00:F1".into(),
            secret: "seed-device-secret-0001".into(),
        };
        self.add_device(&device, &account);
        (account, device)
    }

    /// The environment clients get: the server by environment, plus `extra`.
    pub fn client_env(&self, extra: &[(String, String)]) -> Vec<(String, String)> {
        let mut e = self.base.clone();
        e.push(("P2P_SERVER".into(), self.server.address()));
        e.push(("P2P_SERVER_KEY".into(), self.server.key.clone()));
        e.extend(extra.iter().cloned());
        e
    }

    /// From now on the initiators this lab writes ([`Lab::spec`], [`Lab::initiator_file`],
    /// [`crate::initiator::tunnel_config`]) get no device key: for the tests of what an initiator does
    /// with a device it does not know (refuses it, or trusts it on first use when told to).
    pub fn without_seeded_device_keys(&self) {
        self.seed_device_keys.store(false, Ordering::SeqCst);
    }

    /// The device key an initiator of this lab passes for `d`: its fingerprint unless seeding is off.
    pub fn seeded_device_key(&self, d: &Device) -> Option<String> {
        self.seed_device_keys
            .load(Ordering::SeqCst)
            .then(|| self.device_fingerprint(d))
    }

    /// The fingerprint of `d`'s key, read the way its owner would on the device: `connectd
    /// --fingerprint -f TARGET-FILE` (creating the key if its target has not run yet). The lab's
    /// targets keep their keys in [`Lab::config_home`], so any target file for `d` names the same key.
    pub fn device_fingerprint(&self, d: &Device) -> String {
        let mut known = self.fingerprints.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(fp) = known.get(&d.uid) {
            return fp.clone();
        }
        let path = self
            .dir()
            .join(format!("fingerprint-{}.conf", d.uid.replace(':', "")));
        // The key depends on the UID alone: the file needs no real secret (a ghost device has none).
        let conf = target_conf(
            &d.uid,
            "unused-to-read-the-key",
            1,
            &self.server.address(),
            &self.server.key,
        );
        std::fs::write(&path, conf).expect("write a target file to read the fingerprint");
        let printed = self.fingerprint(&["-f".into(), path.display().to_string()]);
        known.insert(d.uid.clone(), printed.clone());
        printed
    }

    /// `connectd --fingerprint ARGS`: this lab's initiator installation's key without `-f`, else the
    /// key of the file's device (or of an initiator file's `key_file`), created on first use.
    pub fn fingerprint(&self, args: &[String]) -> String {
        let mut all = vec!["--fingerprint".to_string()];
        all.extend_from_slice(args);
        let out = self
            .connectd_cmd(&all, &self.base)
            .output()
            .expect("run connectd --fingerprint");
        let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success() && printed.starts_with("SHA256:"),
            "connectd {}: {printed} {}",
            all.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        printed
    }

    /// The `XDG_CONFIG_HOME` of this lab's connectd processes: their device keys
    /// (`remoteitp2p/initiator.key`, `remoteitp2p/device-<UID>.key`) and pins (`known_devices`).
    pub fn config_home(&self) -> PathBuf {
        self.dir().join("config")
    }

    /// A `connectd` command with the driver's environment cleared and `env` set.
    pub fn connectd_cmd(&self, args: &[String], env: &[(String, String)]) -> Command {
        self.connectd_cmd_of(Build::Native, args, env)
    }

    /// Like [`Lab::connectd_cmd`], for the given build of connectd.
    pub fn connectd_cmd_of(
        &self,
        build: Build,
        args: &[String],
        env: &[(String, String)],
    ) -> Command {
        let mut cmd = match build {
            Build::Native => Command::new(crate::bins::connectd()),
            Build::WindowsUnderWine => crate::wine::command(&crate::wine::connectd_exe()),
        };
        for k in DRIVER_ENV {
            cmd.env_remove(k);
        }
        // Device keys and pins (known_devices) stay in this lab, not in the user's configuration.
        cmd.env("XDG_CONFIG_HOME", self.config_home());
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir());
        cmd
    }

    /// Starts `connectd ARGS` with the server in the environment (and `extra`).
    pub fn connectd(&self, name: &str, args: &[String], extra: &[(String, String)]) -> Proc {
        self.connectd_of(Build::Native, name, args, extra)
    }

    /// Like [`Lab::connectd`], for the given build of connectd.
    pub fn connectd_of(
        &self,
        build: Build,
        name: &str,
        args: &[String],
        extra: &[(String, String)],
    ) -> Proc {
        Proc::spawn(
            name,
            self.connectd_cmd_of(build, args, &self.client_env(extra)),
            &self.logs,
            None,
        )
    }

    /// Starts `connectd ARGS` without the server in the environment (it must come from a file or `-y`).
    pub fn connectd_plain(&self, name: &str, args: &[String]) -> Proc {
        Proc::spawn(name, self.connectd_cmd(args, &self.base), &self.logs, None)
    }

    /// Writes the seed's sample initiator file with this test's account, device, local port, autoconnect
    /// mode and server, and returns its path.
    pub fn initiator_file(&self, a: &Account, d: &Device, port: u16, autoconnect: u8) -> PathBuf {
        self.initiator_file_for(a, d, port, autoconnect, &self.server.address())
    }

    /// Like [`Lab::initiator_file`], naming `servers` (one node or a list `a:5980,b:5980`).
    pub fn initiator_file_for(
        &self,
        a: &Account,
        d: &Device,
        port: u16,
        autoconnect: u8,
        servers: &str,
    ) -> PathBuf {
        let mut values = vec![
            ("autoconnect", autoconnect.to_string()),
            ("user_id", a.user.clone()),
            ("auth_pass", a.password.clone()),
            ("remote_address", d.uid.clone()),
            ("proxy_local_port", port.to_string()),
            ("server", servers.into()),
            ("server_key", self.server.key.clone()),
        ];
        if let Some(fp) = self.seeded_device_key(d) {
            values.push(("device_key", fp));
        }
        let text = crate::provisioning::with_values(&crate::provisioning::seed_sample(), &values);
        let path = self.dir().join(format!("initiator-{}.txt", self.next()));
        std::fs::write(&path, text).expect("write initiator file");
        path
    }

    /// `connectd -f FILE` for a target for `d` whose file names `servers` (one node or a list), and
    /// the file. The same device gets the same file, so the command can start it again.
    pub fn target_command_for(
        &self,
        d: &Device,
        service_port: u16,
        servers: &str,
    ) -> (Command, PathBuf) {
        let path = self
            .dir()
            .join(format!("target-{}.conf", d.uid.replace(':', "")));
        let conf = target_conf(&d.uid, &d.secret, service_port, servers, &self.server.key);
        std::fs::write(&path, conf).expect("write the target file");
        let cmd = self.connectd_cmd(
            &["-f".into(), path.display().to_string()],
            &self.client_env(&[]),
        );
        (cmd, path)
    }

    /// Starts the target of [`Lab::target_command_for`] and waits for its registration.
    pub fn target_for(&self, d: &Device, service_port: u16, servers: &str) -> Target {
        let (cmd, path) = self.target_command_for(d, service_port, servers);
        let mut t = Target::start("target", cmd, &path, &self.logs);
        t.wait_registered();
        t
    }

    /// Starts a target for `d` forwarding to 127.0.0.1:`service_port` and waits for its registration.
    pub fn target(&self, d: &Device, service_port: u16, extra: &[(String, String)]) -> Target {
        let mut t = self.start_target(d, service_port, extra);
        t.wait_registered();
        t
    }

    /// Starts a target without waiting. The target finds the server in its file, not the environment.
    pub fn start_target(
        &self,
        d: &Device,
        service_port: u16,
        extra: &[(String, String)],
    ) -> Target {
        self.start_target_of(Build::Native, d, service_port, extra)
    }

    /// Like [`Lab::start_target`], for the given build of connectd.
    pub fn start_target_of(
        &self,
        build: Build,
        d: &Device,
        service_port: u16,
        extra: &[(String, String)],
    ) -> Target {
        self.start_target_with_lines(build, d, service_port, "", extra)
    }

    /// Like [`Lab::target`], with `lines` added to the target's file (`key value` lines).
    pub fn target_with_lines(&self, d: &Device, service_port: u16, lines: &str) -> Target {
        let mut t = self.start_target_with_lines(Build::Native, d, service_port, lines, &[]);
        t.wait_registered();
        t
    }

    fn start_target_with_lines(
        &self,
        build: Build,
        d: &Device,
        service_port: u16,
        lines: &str,
        extra: &[(String, String)],
    ) -> Target {
        let mut conf = target_conf(
            &d.uid,
            &d.secret,
            service_port,
            &self.server.address(),
            &self.server.key,
        );
        conf.push_str(lines);
        let path = self.dir().join(format!("target-{}.conf", self.next()));
        std::fs::write(&path, conf).expect("write target conf");
        let mut env = self.base.clone();
        env.extend(extra.iter().cloned());
        let args = vec!["-f".to_string(), build.path_arg(&path)];
        Target::start(
            "target",
            self.connectd_cmd_of(build, &args, &env),
            &path,
            &self.logs,
        )
    }

    /// connectd's `-c` arguments for `a` reaching `d`, on a free port with max outstanding 12, with
    /// `--device-key` (unless [`Lab::without_seeded_device_keys`]). (connectd's `T0` is refused by its
    /// command line, so the harness picks the port.)
    pub fn spec(&self, a: &Account, d: &Device, mode: u8) -> InitiatorSpec {
        InitiatorSpec {
            device_key: self.seeded_device_key(d),
            user: a.user.clone(),
            password: a.password.clone(),
            uid: d.uid.clone(),
            port: crate::ports::free_tcp_port(),
            mode,
            bind: "127.0.0.1".into(),
            max_outstanding: 12,
            limits: None,
        }
    }

    /// Starts an initiator (without waiting).
    pub fn start_initiator(&self, spec: &InitiatorSpec, extra: &[(String, String)]) -> Initiator {
        Initiator::new(self.connectd("initiator", &spec.args(), extra))
    }

    /// Starts an initiator and waits until the tunnel is up.
    pub fn initiator(&self, spec: &InitiatorSpec, extra: &[(String, String)]) -> Initiator {
        let mut i = self.start_initiator(spec, extra);
        i.wait_up();
        i
    }

    /// The whole path for one local service: account, device, target, initiator (mode `mode`),
    /// with `extra` in the environment of both peers.
    pub fn tunnel(&self, service_port: u16, mode: u8, extra: &[(String, String)]) -> Tunnel {
        let (account, device) = self.account_and_device();
        let target = self.target(&device, service_port, extra);
        let initiator = self.initiator(&self.spec(&account, &device, mode), extra);
        let port = initiator.port();
        Tunnel {
            account,
            device,
            target,
            initiator,
            port,
        }
    }

    /// Panics when a recorded secret, or a key-shaped token not known to be public, appears in any log
    /// file of this lab. Returns the files it read.
    pub fn check_logs(&self) -> Vec<PathBuf> {
        let secrets = self.secrets.lock().unwrap().clone();
        let public = self.public.lock().unwrap().clone();
        let mut found = Vec::new();
        let mut read = Vec::new();
        for entry in std::fs::read_dir(&self.logs)
            .into_iter()
            .flatten()
            .flatten()
        {
            let Ok(text) = std::fs::read(entry.path()) else {
                continue;
            };
            read.push(entry.path());
            for s in &secrets {
                if crate::data::contains(&text, s.as_bytes()) {
                    found.push(format!(
                        "{} contains a secret ({} chars)",
                        entry.path().display(),
                        s.len()
                    ));
                }
            }
            let shapes = if is_foreign_tool_log(&entry.path()) {
                Vec::new()
            } else {
                crate::secrets::key_shaped(&String::from_utf8_lossy(&text))
            };
            for (line, token) in shapes {
                if !public.contains(&token) {
                    found.push(format!(
                        "{} line {line} holds a key-shaped token not known to be public ({} chars)",
                        entry.path().display(),
                        token.len(),
                    ));
                }
            }
        }
        assert!(
            found.is_empty(),
            "secrets leaked into logs:\n{}",
            found.join("\n")
        );
        read
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.check_logs();
        } else {
            eprintln!("logs of {} are in {}", self.name, self.logs.display());
        }
    }
}

/// Tools the tests drive that print key fingerprints by design (sshd's `Accepted publickey ...
/// SHA256:...`): their logs are searched for the known secrets but not for key-shaped tokens.
const FOREIGN_TOOLS: [&str; 5] = ["sshd", "ssh", "scp", "ssh-keygen", "curl"];

/// True for `sshd.log`, `ssh-2.log` ...: a log named after one of [`FOREIGN_TOOLS`].
fn is_foreign_tool_log(path: &Path) -> bool {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = match stem.rsplit_once('-') {
        Some((b, n)) if n.bytes().all(|c| c.is_ascii_digit()) => b.to_string(),
        _ => stem,
    };
    FOREIGN_TOOLS.contains(&base.as_str())
}

/// A running tunnel and what it was made of.
pub struct Tunnel {
    pub account: Account,
    pub device: Device,
    pub target: Target,
    pub initiator: Initiator,
    /// The initiator's local port.
    pub port: u16,
}

/// Where log folders go: `P2P_TEST_LOG_DIR`, else beside the binaries.
pub fn log_root() -> PathBuf {
    std::env::var_os("P2P_TEST_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::bins::bin_dir().join("system-test-logs"))
}

/// Logging for every process: info by default (debug logs would drown bulk transfers).
fn base_env() -> Vec<(String, String)> {
    let level = std::env::var("P2P_TEST_RUST_LOG").unwrap_or_else(|_| "info".into());
    vec![("RUST_LOG".into(), level)]
}

/// Standard timeouts, generous for a loaded CI machine with 2 cores.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(300);

impl Lab {
    /// `curl` GET http://127.0.0.1:`port`/ (the real curl): the body, or curl's exit code and message.
    pub fn curl(&self, port: u16) -> Result<Vec<u8>, String> {
        let out = self.dir().join(format!("curl-{}.out", self.next()));
        let mut cmd = Command::new(crate::tools::curl());
        cmd.args(["-sS", "--max-time", "60", "-o"])
            .arg(&out)
            .arg(format!("http://127.0.0.1:{port}/"));
        let (code, text) = crate::proc::run("curl", cmd, &self.logs, None, Duration::from_secs(90));
        if code != 0 {
            return Err(format!(
                "curl through port {port} failed (exit {code}): {text}"
            ));
        }
        std::fs::read(&out).map_err(|e| format!("curl wrote no output: {e}"))
    }

    /// `curl` must return exactly `body`.
    pub fn curl_expect(&self, port: u16, body: &[u8]) {
        let got = self.curl(port).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            got == body,
            "curl through port {port} returned {} bytes (sha256 {}), expected {} bytes (sha256 {})",
            got.len(),
            hex(&crate::data::sha256(&got)),
            body.len(),
            hex(&crate::data::sha256(body))
        );
    }
}
