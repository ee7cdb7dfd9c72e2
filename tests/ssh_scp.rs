//! A real sshd (Debian's openssh-server, on a free port with its own host key) behind the
//! target: `ssh -p <local port>` runs a command, and `scp` copies a 50 MB random file each way with equal
//! SHA-256. ssh and scp depend on half-close and on many round trips, so this is the protocol's
//! end-to-end check with a real application.

use std::time::Duration;

use p2p_system_tests::data::{hex, random_file, sha256_file};
use p2p_system_tests::ssh::Sshd;
use p2p_system_tests::Lab;

const FILE_SIZE: u64 = 50 * 1024 * 1024;
const SCP_TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn ssh_command_and_scp_both_ways() {
    let lab = Lab::new("ssh_scp");
    let sshd = Sshd::start(&lab.dir().join("sshd"), &lab.logs);
    let t = lab.tunnel(sshd.port, 3, &[]);

    let (code, out) = sshd.ssh(
        t.port,
        "echo remoteitp2p-ssh-ok; uname -s",
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "ssh through the tunnel failed: {out}");
    assert!(
        out.contains("remoteitp2p-ssh-ok"),
        "ssh ran, but the command's output is missing: {out}"
    );

    let local = lab.dir().join("upload.bin");
    let remote = lab.dir().join("remote-copy.bin");
    let back = lab.dir().join("download.bin");
    let sent = random_file(&local, FILE_SIZE);

    let t0 = std::time::Instant::now();
    let (code, out) = sshd.scp(
        t.port,
        &local.to_string_lossy(),
        &format!(":{}", remote.display()),
        SCP_TIMEOUT,
    );
    assert_eq!(code, 0, "scp upload failed: {out}");
    eprintln!("scp upload of {FILE_SIZE} bytes: {:?}", t0.elapsed());
    // sshd wrote the file on the "device" side (the same machine here).
    assert_eq!(
        hex(&sha256_file(&remote)),
        hex(&sent),
        "scp upload corrupted the file"
    );

    let t0 = std::time::Instant::now();
    let (code, out) = sshd.scp(
        t.port,
        &format!(":{}", remote.display()),
        &back.to_string_lossy(),
        SCP_TIMEOUT,
    );
    assert_eq!(code, 0, "scp download failed: {out}");
    eprintln!("scp download of {FILE_SIZE} bytes: {:?}", t0.elapsed());
    assert_eq!(
        hex(&sha256_file(&back)),
        hex(&sent),
        "scp download corrupted the file"
    );
}
