//! `connectd -n` against the lab's server on loopback prints every section of the seed's
//! diagnostics and passes; `-n --json` parses and holds the same facts; with the server down it finishes
//! within its timeouts and reports the failed sections.

use std::time::{Duration, Instant};

use p2p_system_tests::lab::env;
use p2p_system_tests::ports::free_tcp_port;
use p2p_system_tests::Lab;

/// Every probe has a timeout; the whole run with nothing answering must stay well inside this.
const NETCHECK_TIMEOUT: Duration = Duration::from_secs(45);

/// The server's UDP probe ports by environment (they are random here, not 5959-5961).
fn probe_env(lab: &Lab) -> Vec<(String, String)> {
    let u = &lab.server.addrs.udp;
    env(&[
        ("P2P_PROBE_ADDR1", &u[0].to_string()),
        ("P2P_PROBE_ADDR2", &u[1].to_string()),
        ("P2P_PROBE_ADDR3", &u[2].to_string()),
    ])
}

fn stdout_of(lines: &[String]) -> String {
    lines
        .iter()
        .filter(|l| !l.starts_with("[stderr] "))
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn self_test_text_passes_on_loopback() {
    let lab = Lab::new("cli_netcheck_text");
    let mut p = lab.connectd("netcheck", &["-n".into()], &probe_env(&lab));
    let code = p.wait_exit_code(NETCHECK_TIMEOUT);
    let out = stdout_of(&p.lines());
    for section in [
        "Running Network Diagnostics",
        "Checking if DNS works ... .[OK]",
        "Checking TCP connectivity to",
        "Checking UDP connectivity to",
        "Checking if NAT-PMP Router is found...",
        "Checking if UPnP IGD is found...",
        "NAT mapping (RFC 4787):",
        "NAT filtering:",
        "Hairpinning:",
        "Endian : Little",
        "SHA1 test:",
        "RC4 test:",
        "XXTEA test:",
        "AES-256-GCM test:",
        "Looks compatible.",
    ] {
        assert!(
            out.contains(section),
            "no '{section}' in the -n output:\n{out}"
        );
    }
    assert_eq!(
        out.matches("Send to ").count(),
        3,
        "expected three UDP probes:\n{out}"
    );
    assert!(
        !out.contains("[FAILED]") && !out.contains("FAILED."),
        "a section failed on loopback:\n{out}"
    );
    assert!(
        out.contains("different IP"),
        "the third probe (second IP) was not recognised:\n{out}"
    );
    assert_eq!(code, 0, "-n must pass on loopback:\n{out}");
}

#[test]
fn self_test_json_holds_the_same_facts() {
    let lab = Lab::new("cli_netcheck_json");
    let mut p = lab.connectd(
        "netcheck-json",
        &["-n".into(), "--json".into()],
        &probe_env(&lab),
    );
    let code = p.wait_exit_code(NETCHECK_TIMEOUT);
    let out = stdout_of(&p.lines());
    let v: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("-n --json is not one JSON object ({e}):\n{out}"));
    assert_eq!(code, 0, "-n --json must pass on loopback:\n{out}");
    assert_eq!(v["compatible"], true, "{out}");
    assert_eq!(v["dns"]["ok"], true, "{out}");
    assert_eq!(v["tcp"]["ok"], true, "{out}");
    assert_eq!(v["udp"]["ok"], true, "{out}");
    assert_eq!(
        v["udp"]["probes"].as_array().map(Vec::len),
        Some(3),
        "{out}"
    );
    assert_eq!(v["server"], lab.server.address(), "{out}");
    let crypto = v["crypto"]
        .as_array()
        .unwrap_or_else(|| panic!("no crypto array:\n{out}"));
    for name in ["SHA1", "RC4", "XXTEA", "AES-256-GCM"] {
        assert!(
            crypto.iter().any(
                |c| c["name"].as_str().is_some_and(|n| n.contains(name)) && c["passed"] == true
            ),
            "no passed {name} self-test in the JSON:\n{out}"
        );
    }
    assert!(v["nat"].is_object() && v["verdict"].is_string(), "{out}");
}

#[test]
fn self_test_with_the_server_down_finishes_and_reports() {
    let lab = Lab::new("cli_netcheck_down");
    let dead = format!("127.0.0.1:{}", free_tcp_port());
    let started = Instant::now();
    // Probe ports nobody answers on, like the control port.
    let silent: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_tcp_port()))
        .collect();
    let knobs = env(&[
        ("P2P_SERVER", &dead),
        ("P2P_PROBE_ADDR1", &silent[0]),
        ("P2P_PROBE_ADDR2", &silent[1]),
        ("P2P_PROBE_ADDR3", &silent[2]),
    ]);
    let mut p = lab.connectd("netcheck-down", &["-n".into()], &knobs);
    let code = p.wait_exit_code(NETCHECK_TIMEOUT);
    let took = started.elapsed();
    let out = stdout_of(&p.lines());
    assert_ne!(code, 0, "-n passed although the server is down:\n{out}");
    assert!(
        out.contains("Checking TCP connectivity to") && out.contains("[FAILED]"),
        "the TCP section does not say it failed:\n{out}"
    );
    assert!(
        out.contains("SHA1 test:") && out.contains("Endian"),
        "the local sections are missing:\n{out}"
    );
    assert!(
        !out.contains("Looks compatible."),
        "says compatible with the server down:\n{out}"
    );
    eprintln!("-n with the server down took {took:?}");
}

/// With the server's key and no `P2P_PROBE_ADDRn`, `-n` probes the UDP ports the server
/// names over the control channel (here random ones, not 5959-5961), and passes.
#[test]
fn self_test_probes_the_ports_the_server_names() {
    let lab = Lab::new("cli_netcheck_named");
    let mut p = lab.connectd("netcheck-named", &["-n".into(), "--json".into()], &[]);
    let code = p.wait_exit_code(NETCHECK_TIMEOUT);
    let out = stdout_of(&p.lines());
    let v: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("-n --json is not one JSON object ({e}):\n{out}"));
    let probed: Vec<&str> = v["udp"]["probes"]
        .as_array()
        .unwrap_or_else(|| panic!("no probes:\n{out}"))
        .iter()
        .filter_map(|p| p["target"].as_str())
        .collect();
    let served: Vec<String> = lab.server.addrs.udp.iter().map(|a| a.to_string()).collect();
    assert_eq!(
        probed, served,
        "-n did not probe the server's ports:\n{out}"
    );
    assert_eq!(v["control"]["ok"], true, "{out}");
    assert_eq!(v["control"]["probe_addrs_from"], "server", "{out}");
    assert_eq!(v["udp"]["ok"], true, "{out}");
    assert_eq!(
        code, 0,
        "-n must pass against a server on other ports:\n{out}"
    );
}

/// The text report says where the probe ports came from; with a wrong key it fails on that line and
/// names the key, as a tunnel with that key would fail.
#[test]
fn self_test_checks_the_server_key() {
    let lab = Lab::new("cli_netcheck_key");
    let mut p = lab.connectd("netcheck-key", &["-n".into()], &[]);
    let code = p.wait_exit_code(NETCHECK_TIMEOUT);
    let out = stdout_of(&p.lines());
    let served = lab
        .server
        .addrs
        .udp
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    assert!(
        out.contains(&format!(
            "Checking the control channel to {}...[OK] probe ports {served}",
            lab.server.address()
        )),
        "no control channel line naming the server's ports:\n{out}"
    );
    assert_eq!(code, 0, "{out}");

    // Another server's key: 32 bytes of base64, but not this server's.
    let wrong = "q0ZlqEl8cs1IyzSwBkmQX6bHVQTeUJQBH2wTCcYb2Gs=";
    lab.public(wrong); // a public key, on the command line the log starts with
    let mut p = lab.connectd(
        "netcheck-wrong-key",
        &["-n".into(), "--server-key".into(), wrong.into()],
        &[],
    );
    let code = p.wait_exit_code(NETCHECK_TIMEOUT);
    let out = stdout_of(&p.lines());
    let line = out
        .lines()
        .find(|l| l.starts_with("Checking the control channel to"))
        .unwrap_or_else(|| panic!("no control channel line:\n{out}"));
    assert!(
        line.contains("[FAILED]") && line.to_lowercase().contains("key"),
        "the control channel line does not name the key: {line}\n{out}"
    );
    assert!(!out.contains("Looks compatible."), "{out}");
    assert_ne!(code, 0, "-n passed with a wrong server key:\n{out}");

    // No key at all: the default ports, and the report says why.
    let mut p = lab.connectd_plain(
        "netcheck-no-key",
        &["-n".into(), "-y".into(), lab.server.address()],
    );
    p.wait_exit_code(NETCHECK_TIMEOUT);
    let out = stdout_of(&p.lines());
    assert!(
        out.contains("[SKIPPED]") && out.contains("P2P_SERVER_KEY"),
        "without a key the report does not say the default ports were probed, and why:\n{out}"
    );
}
