//! A target's `authorized_initiators` (docs/E2E-TRUST.md, section 3): the device takes end-to-end
//! sessions from the initiator keys on its list only, whatever the server says. What a user checks:
//! the listed laptop reaches the service; another installation of the same user, a legacy mode, and
//! a hostile server that opens a session with a key of its own are refused by the device, which logs
//! the refused key's fingerprint, and none of them reaches the service.

use std::path::{Path, PathBuf};
use std::time::Duration;

use p2p_system_tests::hostile::{hostile_lab, Attack, HostileServer};
use p2p_system_tests::initiator::Initiator;
use p2p_system_tests::services::HttpServer;
use p2p_system_tests::target::Target;
use p2p_system_tests::{Account, Device, Lab};

const MARKER: &str = "AUTHORIZED-INITIATORS-MARKER";

/// The fingerprint of an initiator installation whose key is `key_file` (created on first use).
fn installation_fingerprint(lab: &Lab, d: &Device, key_file: &Path) -> String {
    let file = lab.dir().join("other-installation.txt");
    let text = format!(
        "user_id x\nauth_pass y\nremote_address {}\nproxy_local_port 1\nkey_file {}\n",
        d.uid,
        key_file.display()
    );
    std::fs::write(&file, text).unwrap();
    lab.fingerprint(&["-f".into(), file.display().to_string()])
}

/// The device's `authorized_initiators` file listing `fingerprint`, and the target file line naming it.
fn authorized_list(lab: &Lab, fingerprint: &str) -> (PathBuf, String) {
    let path = lab.dir().join("authorized_initiators");
    let text = format!("# who may open sessions to this device\n{fingerprint} the lab's laptop\n");
    std::fs::write(&path, text).unwrap();
    let line = format!("authorized_initiators {}\n", path.display());
    (path, line)
}

/// `connectd -s -f FILE` for `a` reaching `d` in `mode` (the lab seeds the device's key), as
/// another installation of the same user when `key_file` is given.
fn initiator_with_file(
    lab: &Lab,
    a: &Account,
    d: &Device,
    mode: u8,
    key_file: Option<&Path>,
) -> Initiator {
    let port = p2p_system_tests::ports::free_tcp_port();
    let file = lab.initiator_file(a, d, port, 1);
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(&format!("encryption {mode}\n"));
    if let Some(k) = key_file {
        text.push_str(&format!("key_file {}\n", k.display()));
    }
    std::fs::write(&file, text).unwrap();
    Initiator::new(lab.connectd(
        "initiator-file",
        &["-s".into(), "-f".into(), file.display().to_string()],
        &[],
    ))
}

#[test]
fn a_device_takes_only_the_initiators_on_its_list() {
    let lab = Lab::new("authorized_initiators");
    let http = HttpServer::with_marker_body(MARKER, 16 * 1024);
    let (account, device) = lab.account_and_device();
    let laptop = lab.fingerprint(&[]);
    let (_list, line) = authorized_list(&lab, &laptop);
    let mut target = lab.target_with_lines(&device, http.port(), &line);
    target.proc.wait_for_text(
        "end-to-end sessions from the 1 initiator key(s)",
        Duration::from_secs(5),
    );

    // The listed installation reaches the service.
    let mut listed = initiator_with_file(&lab, &account, &device, 3, None);
    listed.wait_ready();
    lab.curl_expect(listed.port(), &http.body);
    listed.proc.interrupt();
    listed.proc.wait_exit(Duration::from_secs(10));

    // Another installation of the same user (its own key) is refused by the device.
    let other_key = lab.dir().join("other-installation.key");
    let other_fp = installation_fingerprint(&lab, &device, &other_key);
    assert_ne!(other_fp, laptop);
    let mut other = initiator_with_file(&lab, &account, &device, 3, Some(&other_key));
    let (_, why) = other.wait_exit_line(Duration::from_secs(20));
    assert!(
        why.contains(&format!("initiator key {other_fp} is not in")),
        "{why}"
    );
    target.proc.wait_for_text(
        &format!("refused: initiator key {other_fp} is not in"),
        Duration::from_secs(5),
    );

    // A legacy mode from the listed installation is refused too: its keys come from the server.
    let mut legacy = initiator_with_file(&lab, &account, &device, 2, None);
    let (_, why) = legacy.wait_exit_line(Duration::from_secs(20));
    assert!(why.contains("end-to-end sessions only"), "{why}");
    assert_eq!(
        http.requests(),
        1,
        "only the listed initiator reached the service"
    );
}

/// A device listing the lab's initiator installation, behind a hostile server.
struct Behind {
    lab: Lab,
    hostile: HostileServer,
    http: HttpServer,
    account: Account,
    device: Device,
    target: Target,
}

fn listing_device_behind(name: &str, attack: Attack) -> Behind {
    let (lab, hostile) = hostile_lab(name, attack);
    let http = HttpServer::with_marker_body(MARKER, 16 * 1024);
    let (account, device) = lab.account_and_device();
    let (_list, line) = authorized_list(&lab, &lab.fingerprint(&[]));
    let target = lab.target_with_lines(&device, http.port(), &line);
    Behind {
        lab,
        hostile,
        http,
        account,
        device,
        target,
    }
}

#[test]
fn a_hostile_server_cannot_open_a_session_to_a_device_with_a_list() {
    let mut b = listing_device_behind("authorized_initiators_hostile", Attack::SwapKeys);

    // The server introduces its own key to the device (and to the initiator, which refuses it too).
    // The device refuses the grant before any handshake, naming the key it was offered.
    let mut refused = initiator_with_file(&b.lab, &b.account, &b.device, 3, None);
    let server_fp = b.hostile.fingerprint().to_string();
    let (_, why) = refused.wait_exit_line(Duration::from_secs(20));
    assert!(
        why.contains(&format!("initiator key {server_fp} is not in")),
        "{why}"
    );
    b.target.proc.wait_for_text(
        &format!("refused: initiator key {server_fp} is not in"),
        Duration::from_secs(5),
    );
    // Given time to try, the server never completed a handshake with the device.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        b.hostile.report().completed_with_targets,
        0,
        "{:?}",
        b.hostile.report()
    );
    assert_eq!(
        b.http.requests(),
        0,
        "a refused session reached the service"
    );
}

#[test]
fn a_device_with_a_list_refuses_a_handshake_under_another_key_than_the_one_introduced() {
    let mut b = listing_device_behind("authorized_initiators_impersonate", Attack::Impersonate);

    // The grant names the listed laptop, but the handshake the device gets is the server's.
    let mut refused = initiator_with_file(&b.lab, &b.account, &b.device, 3, None);
    let (code, _) = refused.wait_exit_line(Duration::from_secs(20));
    assert_eq!(code, 23, "the initiator refuses the server's key too");
    p2p_system_tests::poll::wait_until(
        "the server's handshake with the device",
        Duration::from_secs(5),
        || b.hostile.report().completed_with_targets > 0,
    );
    let server_fp = b.hostile.fingerprint().to_string();
    b.target.proc.wait_for_text(
        &format!("refused: the peer's key {server_fp} is not one of the 1 authorized keys"),
        Duration::from_secs(10),
    );
    assert_eq!(
        b.http.requests(),
        0,
        "a refused session reached the service"
    );
}
