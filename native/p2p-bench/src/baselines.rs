//! What users would pick instead of the tunnel, started by the benchmark on loopback: an `ssh -L` port
//! forward through a private `sshd` (its own host key, client key and config, on a free port), and a
//! `socat` TCP relay. Both forward a local port to the same service the tunnel reaches.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::procs::{run_ok, Proc};
use crate::tcp_load::{first_echo, free_port};

const READY_TIMEOUT: Duration = Duration::from_secs(15);

fn find(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Installation hint in errors: the benchmark does not install packages itself.
fn missing(tool: &str, package: &str) -> String {
    format!("{tool} not found: install it (Debian: apt-get install {package})")
}

/// An `ssh -N -L` forward and the `sshd` behind it. Dropping it stops both.
pub struct SshForward {
    pub local: SocketAddr,
    pub ssh: Proc,
    pub sshd: Proc,
}

pub async fn start_ssh(dir: &Path, dest: SocketAddr) -> Result<SshForward, String> {
    let sshd_bin = find(&["/usr/sbin/sshd", "/usr/bin/sshd"])
        .ok_or_else(|| missing("sshd", "openssh-server"))?;
    let ssh_bin = find(&["/usr/bin/ssh"]).ok_or_else(|| missing("ssh", "openssh-client"))?;
    let keygen =
        find(&["/usr/bin/ssh-keygen"]).ok_or_else(|| missing("ssh-keygen", "openssh-client"))?;
    let dir = dir.join("ssh");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let host_key = dir.join("host_ed25519");
    let client_key = dir.join("client_ed25519");
    for key in [&host_key, &client_key] {
        let mut k = Command::new(&keygen);
        k.args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(key);
        run_ok("ssh-keygen", k, None, Duration::from_secs(20))?;
    }
    let authorized = dir.join("authorized_keys");
    std::fs::copy(client_key.with_extension("pub"), &authorized)
        .map_err(|e| format!("cannot write {}: {e}", authorized.display()))?;
    // sshd refuses to start without its privilege-separation directory (normally made by the package's
    // service unit, which is not running here).
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = free_port()?;
    let config = dir.join("sshd_config");
    let text = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
         UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\nAllowTcpForwarding yes\nLogLevel ERROR\n",
        host_key.display(),
        authorized.display(),
        dir.join("sshd.pid").display()
    );
    std::fs::write(&config, text).map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let mut d = Command::new(&sshd_bin);
    d.arg("-D").arg("-e").arg("-f").arg(&config);
    let sshd = Proc::spawn("sshd", d, None)?;
    wait_listening(port)
        .await
        .map_err(|e| format!("sshd: {e}\n{}", sshd.tail(10)))?;

    let local_port = free_port()?;
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into());
    let mut s = Command::new(&ssh_bin);
    s.args(["-N", "-L"]).arg(format!(
        "127.0.0.1:{local_port}:{}:{}",
        dest.ip(),
        dest.port()
    ));
    s.arg("-p").arg(port.to_string()).arg("-i").arg(&client_key);
    for o in [
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "BatchMode=yes",
        "ExitOnForwardFailure=yes",
        "LogLevel=ERROR",
    ] {
        s.arg("-o").arg(o);
    }
    s.arg(format!("{user}@127.0.0.1"));
    let ssh = Proc::spawn("ssh -L", s, None)?;
    let local: SocketAddr = ([127, 0, 0, 1], local_port).into();
    first_echo(local, READY_TIMEOUT).await.map_err(|e| {
        format!(
            "ssh -L is not forwarding: {e}\n{}\n{}",
            ssh.tail(10),
            sshd.tail(10)
        )
    })?;
    Ok(SshForward { local, ssh, sshd })
}

/// `socat TCP-LISTEN:PORT,fork TCP:DEST` with socat's defaults.
pub async fn start_socat(dest: SocketAddr) -> Result<(SocketAddr, Proc), String> {
    let bin = find(&["/usr/bin/socat", "/usr/local/bin/socat"])
        .ok_or_else(|| missing("socat", "socat"))?;
    let port = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
        .arg(format!("TCP:{dest}"));
    let p = Proc::spawn("socat", cmd, None)?;
    let local: SocketAddr = ([127, 0, 0, 1], port).into();
    first_echo(local, READY_TIMEOUT)
        .await
        .map_err(|e| format!("socat is not relaying: {e}\n{}", p.tail(10)))?;
    Ok((local, p))
}

async fn wait_listening(port: u16) -> Result<(), String> {
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "nothing listens on port {port} after {} s",
                READY_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
