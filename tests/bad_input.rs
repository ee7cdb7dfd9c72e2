//! Bad input gets a clear one-line error and a non-zero exit (connectd's code), and nothing else
//! is disturbed: a good tunnel on the same server still works afterwards. Cases: wrong password, unknown
//! user, unknown UID, a UID not shared with the user, a wrong device secret, the bind port in use, the
//! server unreachable.

use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use p2p_system_tests::initiator::Initiator;
use p2p_system_tests::lab::env;
use p2p_system_tests::services::HttpServer;
use p2p_system_tests::{Device, Lab};

const FAIL_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs an initiator that must fail: returns a failure description, or None when it failed as expected
/// (exit `codes`, a `!!exit [code]` line, and a plain line containing one of `words`).
fn expect_failure(mut i: Initiator, case: &str, codes: &[i32], words: &[&str]) -> Option<String> {
    let code = i.proc.wait_exit_code(FAIL_TIMEOUT);
    let out = i.proc.output();
    let lower = out.to_ascii_lowercase();
    let mut problems = Vec::new();
    if !codes.contains(&code) {
        problems.push(format!("exit code {code}, expected one of {codes:?}"));
    }
    if !out.contains(&format!("!!exit [{code:03}]")) {
        problems.push(format!("no '!!exit [{code:03}] : ...' line"));
    }
    if !words
        .iter()
        .any(|w| lower.contains(&w.to_ascii_lowercase()))
    {
        problems.push(format!("no line mentions any of {words:?}"));
    }
    if lower.contains("panicked") || lower.contains("backtrace") {
        problems.push("it panicked".to_string());
    }
    (!problems.is_empty()).then(|| format!("{case}: {}\n{}", problems.join("; "), i.proc.tail(15)))
}

#[test]
fn bad_input_fails_clearly_and_disturbs_nothing() {
    let lab = Lab::new("bad_input");
    let http = HttpServer::start(b"still fine\n".to_vec());
    let (owner, device) = lab.account_and_device();
    let mut target = lab.target(&device, http.port(), &[]);
    let mut failures = Vec::new();

    // Wrong password.
    let mut spec = lab.spec(&owner, &device, 3);
    spec.password = "not-the-password".into();
    lab.secret(&spec.password);
    failures.extend(expect_failure(
        lab.start_initiator(&spec, &[]),
        "wrong password",
        &[11],
        &["password", "authentication"],
    ));

    // Unknown user.
    let mut spec = lab.spec(&owner, &device, 3);
    spec.user = "nobody@example.com".into();
    failures.extend(expect_failure(
        lab.start_initiator(&spec, &[]),
        "unknown user",
        &[10, 11],
        &["user", "password"],
    ));

    // Unknown UID.
    let ghost = Device {
        uid: "80:00:00:00:01:FF:FF:FE".into(),
        secret: String::new(),
    };
    failures.extend(expect_failure(
        lab.start_initiator(&lab.spec(&owner, &ghost, 3), &[]),
        "unknown UID",
        &[15],
        &["uid", "unknown", "no such"],
    ));

    // A UID that exists but is not shared with this user.
    let stranger = lab.account();
    failures.extend(expect_failure(
        lab.start_initiator(&lab.spec(&stranger, &device, 3), &[]),
        "not shared",
        &[15],
        &["shared", "access", "not allowed", "permission"],
    ));

    // Bind port in use.
    let squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let mut spec = lab.spec(&owner, &device, 3);
    spec.port = squatter.local_addr().unwrap().port();
    failures.extend(expect_failure(
        lab.start_initiator(&spec, &[]),
        "port in use",
        &[17],
        &["in use", "already"],
    ));
    drop(squatter);

    // Server unreachable: nothing listens on that port.
    let dead = format!("127.0.0.1:{}", p2p_system_tests::ports::free_tcp_port());
    let i = Initiator::new(p2p_system_tests::proc::Proc::spawn(
        "initiator",
        lab.connectd_cmd(
            &lab.spec(&owner, &device, 3).args(),
            &lab.client_env(&env(&[("P2P_SERVER", &dead)])),
        ),
        &lab.logs,
        None,
    ));
    failures.extend(expect_failure(
        i,
        "server unreachable",
        &[13],
        &["unreachable", "cannot reach", "connect", "refused"],
    ));

    // Wrong device secret: a second target for the same UID with a bad secret is refused.
    let impostor = Device {
        uid: device.uid.clone(),
        secret: "wrong-device-secret".into(),
    };
    lab.secret(&impostor.secret);
    let mut bad_target = lab.start_target(&impostor, http.port(), &[]);
    let code = bad_target.proc.wait_exit_code(FAIL_TIMEOUT);
    let out = bad_target.proc.output().to_ascii_lowercase();
    if code == 0 || !out.contains("secret") || out.contains("panicked") {
        failures.push(format!(
            "wrong device secret: exit {code}, expected non-zero and a line about the secret\n{}",
            bad_target.proc.tail(15)
        ));
    }

    // Nothing else was disturbed: the real target is still registered and serves a new tunnel.
    assert!(
        target.proc.try_status().is_none(),
        "the good target died:\n{}",
        target.proc.tail(30)
    );
    let i = lab.initiator(&lab.spec(&owner, &device, 3), &[]);
    lab.curl_expect(i.port(), &http.body);
    assert!(
        failures.is_empty(),
        "{} bad-input case(s) misbehaved:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
