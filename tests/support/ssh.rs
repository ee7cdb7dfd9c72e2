//! A real OpenSSH server for the tests, started on a free port with its own host key and one authorized
//! client key, all inside the test's directory; and the `ssh`/`scp` client arguments that use them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::proc::{run, Proc};
use crate::tools::require;

pub struct Sshd {
    pub port: u16,
    pub user: String,
    client_key: PathBuf,
    log_dir: PathBuf,
    _proc: Proc,
}

impl Sshd {
    pub fn start(dir: &Path, log_dir: &Path) -> Sshd {
        let sshd = require("sshd", "openssh-server");
        let keygen = require("ssh-keygen", "openssh-client");
        std::fs::create_dir_all(dir).unwrap();
        let host_key = dir.join("host_ed25519");
        let client_key = dir.join("client_ed25519");
        for key in [&host_key, &client_key] {
            let mut cmd = Command::new(&keygen);
            cmd.args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(key);
            let (code, out) = run("ssh-keygen", cmd, log_dir, None, Duration::from_secs(30));
            assert_eq!(code, 0, "ssh-keygen failed: {out}");
        }
        let authorized = dir.join("authorized_keys");
        std::fs::copy(client_key.with_extension("pub"), &authorized).unwrap();
        restrict_permissions(&[&host_key, &client_key]);
        // sshd refuses to start without its privilege separation directory (root only).
        #[cfg(unix)]
        if is_root() {
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let user = current_user();
        let config = dir.join("sshd_config");
        // The port is picked free just before binding; retry if something took it meanwhile.
        for attempt in 0..5 {
            let port = crate::ports::free_tcp_port();
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
                     StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                     PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nSubsystem sftp internal-sftp\n\
                     LogLevel VERBOSE\n",
                    host_key.display(),
                    dir.join("sshd.pid").display(),
                    authorized.display()
                ),
            )
            .unwrap();
            let mut cmd = Command::new(&sshd);
            cmd.arg("-D").arg("-e").arg("-f").arg(&config);
            let mut p = Proc::spawn("sshd", cmd, log_dir, None);
            let ready = crate::poll::wait_for("sshd to listen", Duration::from_secs(20), || {
                if p.try_status().is_some() {
                    return Some(false);
                }
                crate::ports::tcp_port_accepts(port).then_some(true)
            });
            if ready {
                return Sshd {
                    port,
                    user,
                    client_key,
                    log_dir: log_dir.to_path_buf(),
                    _proc: p,
                };
            }
            assert!(attempt < 4, "sshd did not start\n{}", p.tail(30));
        }
        unreachable!()
    }

    /// Options shared by ssh and scp: our key only, no host key prompts, no agent, never ask.
    fn common(&self) -> Vec<String> {
        [
            "-i",
            &self.client_key.to_string_lossy(),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=30",
            "-o",
            "ServerAliveInterval=10",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// `ssh -p PORT user@127.0.0.1 COMMAND`: exit code and output.
    pub fn ssh(&self, port: u16, command: &str, timeout: Duration) -> (i32, String) {
        let mut cmd = Command::new(require("ssh", "openssh-client"));
        cmd.arg("-p").arg(port.to_string()).args(self.common());
        cmd.arg(format!("{}@127.0.0.1", self.user)).arg(command);
        run("ssh", cmd, &self.log_dir, None, timeout)
    }

    /// `scp -P PORT FROM TO`, where a remote path is written `:path`.
    pub fn scp(&self, port: u16, from: &str, to: &str, timeout: Duration) -> (i32, String) {
        let remote = |p: &str| match p.strip_prefix(':') {
            Some(path) => format!("{}@127.0.0.1:{path}", self.user),
            None => p.to_string(),
        };
        let mut cmd = Command::new(require("scp", "openssh-client"));
        cmd.arg("-P")
            .arg(port.to_string())
            .args(self.common())
            .arg("-q");
        cmd.arg(remote(from)).arg(remote(to));
        run("scp", cmd, &self.log_dir, None, timeout)
    }
}

#[cfg(unix)]
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[cfg(unix)]
fn restrict_permissions(keys: &[&PathBuf]) {
    use std::os::unix::fs::PermissionsExt;
    for k in keys {
        std::fs::set_permissions(k, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[cfg(not(unix))]
fn restrict_permissions(_keys: &[&PathBuf]) {}
