//! End-to-end device keys with real processes (docs/E2E-TRUST.md): a mode 3 session between two
//! connectd processes runs the peer handshake between their device keys (the server only introduces
//! them), the initiator pins the device key it was given (`--device-key`) so later connections need
//! not repeat it, a device it does not know is refused (exit 24) unless it opts into trusting the
//! server on first use, and a device that comes back with another
//! key is refused with connectd's exit code 23 naming both fingerprints: by the server until its
//! administrator runs `device rotate-key`, then by the initiator until the user accepts the new
//! fingerprint with --accept-key. A service without HOME keeps its keys beside its files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use p2p_system_tests::services::HttpServer;
use p2p_system_tests::Lab;

/// `connectd --fingerprint [-f FILE]` as the lab's processes see their keys.
fn fingerprint(lab: &Lab, file: Option<&Path>) -> String {
    let mut args = vec!["--fingerprint".to_string()];
    if let Some(f) = file {
        args.push("-f".into());
        args.push(f.display().to_string());
    }
    let out = lab
        .connectd_cmd(&args, &[])
        .output()
        .expect("run connectd --fingerprint");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(text.starts_with("SHA256:") && text.len() == 50, "{text}");
    text
}

fn known_devices(lab: &Lab) -> PathBuf {
    lab.config_home().join("remoteitp2p").join("known_devices")
}

#[test]
fn a_mode_3_session_runs_between_the_device_keys_and_pins_the_device() {
    let mut lab = Lab::new("e2e_keys_session");
    let http = HttpServer::with_marker_body("E2E-KEYS-BODY", 64 * 1024);
    let mut t = lab.tunnel(http.port(), 3, &[]);
    lab.curl_expect(t.port, &http.body);

    let device = fingerprint(&lab, Some(&t.target.conf));
    let installation = fingerprint(&lab, None);
    assert_ne!(device, installation);
    // The initiator checked the device's own key, given with --device-key, and pinned it; the server
    // saw both public keys.
    t.initiator.proc.wait_for_text(
        &format!("peer key {device} (new pin, seeded)"),
        Duration::from_secs(5),
    );
    let pins = std::fs::read_to_string(known_devices(&lab)).expect("known_devices written");
    assert!(
        pins.contains(&t.device.uid) && pins.contains(" seeded"),
        "{pins}"
    );
    // Seeding once is enough: the next connection, without --device-key, meets the pin.
    let unseeded = lab.spec(&t.account, &t.device, 3).without_device_key();
    let mut again = lab.initiator(&unseeded, &[]);
    lab.curl_expect(again.port(), &http.body);
    again.proc.wait_for_text(
        &format!("peer key {device} (pinned)"),
        Duration::from_secs(5),
    );
    let server_log = lab.server.proc().output();
    assert!(
        server_log.contains(&format!("key {device}")),
        "{server_log}"
    );
    assert!(
        server_log.contains(&format!("key {installation}")),
        "{server_log}"
    );
}

#[test]
fn a_device_back_with_another_key_is_refused_until_its_new_fingerprint_is_accepted() {
    let lab = Lab::new("e2e_keys_mismatch");
    let http = HttpServer::with_marker_body("E2E-KEYS-BODY", 16 * 1024);
    let (account, device) = lab.account_and_device();
    let mut target = lab.target(&device, http.port(), &[]);
    let spec = lab.spec(&account, &device, 3);
    let mut first = lab.initiator(&spec, &[]);
    lab.curl_expect(first.port(), &http.body);
    let old = fingerprint(&lab, Some(&target.conf));
    first.proc.interrupt();
    first.proc.wait_exit(Duration::from_secs(10));

    // The device is re-installed: same UID and secret, a new key.
    target.proc.kill();
    let key_file = lab
        .config_home()
        .join("remoteitp2p")
        .join(format!("device-{}.key", device.uid.replace(':', "-")));
    std::fs::remove_file(&key_file).expect("the device key was at its default path");
    // The server recorded the old key: the device is refused (exit 23, both fingerprints) until the
    // administrator allows the rotation.
    let mut unrotated = lab.start_target(&device, http.port(), &[]);
    assert_eq!(unrotated.proc.wait_exit_code(Duration::from_secs(30)), 23);
    let new = fingerprint(&lab, Some(&unrotated.conf));
    assert_ne!(old, new);
    let said = unrotated.proc.output();
    assert!(
        said.contains(&old) && said.contains(&new) && said.contains("rotate-key"),
        "{said}"
    );
    let shown = lab.server.admin_ok(&["device", "show", &device.uid], None);
    assert!(shown.contains(&format!("device_key {old}")), "{shown}");
    lab.server
        .admin_ok(&["device", "rotate-key", &device.uid], None);
    let target = lab.target(&device, http.port(), &[]);
    let shown = lab.server.admin_ok(&["device", "show", &device.uid], None);
    assert!(shown.contains(&format!("device_key {new}")), "{shown}");

    let mut refused = lab.start_initiator(&spec, &[]);
    let (code, line) = refused.wait_exit_line(Duration::from_secs(30));
    assert_eq!(code, 23, "{line}");
    assert!(line.contains(&old) && line.contains(&new), "{line}");
    assert!(line.contains("--accept-key"), "{line}");
    assert_eq!(refused.proc.wait_exit_code(Duration::from_secs(10)), 23);
    assert_eq!(http.requests(), 1, "nothing reached the service");

    // The owner read the new fingerprint on the device and accepts it.
    let args = spec.args_with(&["--accept-key", &new]);
    let mut accepted =
        p2p_system_tests::initiator::Initiator::new(lab.connectd("initiator-accept", &args, &[]));
    accepted.wait_up();
    lab.curl_expect(accepted.port(), &http.body);
    accepted.proc.wait_for_text(
        &format!("peer key {new} (new pin, accepted)"),
        Duration::from_secs(5),
    );
    target.proc.interrupt();
}

#[test]
fn a_service_without_home_keeps_its_keys_beside_its_provisioning_files() {
    let lab = Lab::new("e2e_keys_homeless");
    let http = HttpServer::with_marker_body("E2E-KEYS-BODY", 16 * 1024);
    let (account, device) = lab.account_and_device();
    // As a systemd unit starts them: no HOME, no XDG_CONFIG_HOME.
    let homeless = |args: &[String]| {
        let mut cmd = lab.connectd_cmd(args, &[]);
        cmd.env_remove("HOME").env_remove("XDG_CONFIG_HOME");
        cmd
    };
    let service = lab.dir().join("service");
    std::fs::create_dir(&service).unwrap();
    let conf = service.join("target.conf");
    std::fs::write(
        &conf,
        p2p_system_tests::target::target_conf(
            &device.uid,
            &device.secret,
            http.port(),
            &lab.server.address(),
            &lab.server.key,
        ),
    )
    .unwrap();
    let mut target = p2p_system_tests::target::Target::start(
        "target-homeless",
        homeless(&["-f".into(), conf.display().to_string()]),
        &conf,
        &lab.logs,
    );
    target.wait_registered();
    let device_key = service.join(format!("device-{}.key", device.uid.replace(':', "-")));
    assert!(device_key.exists(), "no key beside the target file");
    let warning = "neither HOME nor XDG_CONFIG_HOME is set";
    target.proc.wait_for_text(warning, Duration::from_secs(5));

    // Its owner reads its fingerprint as the service sees its key, and gives it to the initiator.
    let device_fingerprint = {
        let out = homeless(&[
            "--fingerprint".into(),
            "-f".into(),
            conf.display().to_string(),
        ])
        .output()
        .expect("run connectd --fingerprint");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert!(
        device_fingerprint.starts_with("SHA256:"),
        "{device_fingerprint}"
    );
    lab.without_seeded_device_keys();
    let port = p2p_system_tests::ports::free_tcp_port();
    let file = lab.initiator_file(&account, &device, port, 1);
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(&format!("device_key {device_fingerprint}\n"));
    std::fs::write(&file, text).unwrap();
    let mut initiator = p2p_system_tests::proc::Proc::spawn(
        "initiator-homeless",
        homeless(&["-s".into(), "-f".into(), file.display().to_string()]),
        &lab.logs,
        None,
    );
    initiator.wait_for_text("!!connected", Duration::from_secs(30));
    lab.curl_expect(port, &http.body);
    initiator.wait_for_text(warning, Duration::from_secs(5));
    let beside = file.parent().unwrap();
    assert!(beside.join("initiator.key").exists());
    let pins = std::fs::read_to_string(beside.join("known_devices")).expect("pinned beside");
    assert!(pins.contains(&device.uid), "{pins}");
    initiator.interrupt();
    target.proc.interrupt();
}

#[test]
fn an_unknown_device_is_refused_unless_trusting_the_server_on_first_use_is_asked_for() {
    let lab = Lab::new("e2e_keys_unknown");
    lab.without_seeded_device_keys();
    let http = HttpServer::with_marker_body("E2E-KEYS-BODY", 16 * 1024);
    let (account, device) = lab.account_and_device();
    let target = lab.target(&device, http.port(), &[]);
    let device_fp = fingerprint(&lab, Some(&target.conf));
    let spec = lab.spec(&account, &device, 3);

    // By default: refused before any packet, naming what the server introduced and the remedies.
    let mut refused = lab.start_initiator(&spec, &[]);
    let (code, line) = refused.wait_exit_line(Duration::from_secs(30));
    assert_eq!(code, 24, "{line}");
    assert!(
        line.contains(&device.uid) && line.contains(&device_fp),
        "{line}"
    );
    assert!(
        line.contains("--device-key") && line.contains("--trust-first-use"),
        "{line}"
    );
    assert_eq!(refused.proc.wait_exit_code(Duration::from_secs(10)), 24);
    assert!(!known_devices(&lab).exists(), "nothing pinned");

    // The explicit opt-in: trusted on first use and pinned, as before.
    let args = spec.args_with(&["--trust-first-use"]);
    let mut tofu =
        p2p_system_tests::initiator::Initiator::new(lab.connectd("initiator-tofu", &args, &[]));
    tofu.wait_up();
    lab.curl_expect(tofu.port(), &http.body);
    tofu.proc.wait_for_text(
        &format!("peer key {device_fp} (new pin, tofu)"),
        Duration::from_secs(5),
    );
    assert_eq!(http.requests(), 1);
}
