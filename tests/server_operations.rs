//! What the operator of a p2p-server node watches: `run --metrics ADDR` serves `/metrics` in Prometheus'
//! text format, whose figures follow what happened (a device online, a login, a refused login, a session,
//! connections open), and `/healthz`; on SIGTERM with `--drain-seconds` the node answers 503 `draining`
//! before it closes; `--log-format json` makes every log line a JSON object. Scraped with the real curl.

use std::time::{Duration, Instant};

use p2p_system_tests::initiator::exit_line_code;
use p2p_system_tests::poll::wait_for;
use p2p_system_tests::ports::free_tcp_port;
use p2p_system_tests::services::HttpServer;
use p2p_system_tests::tools::http_get as get;
use p2p_system_tests::{os, Lab};

/// The value of the sample `name_and_labels` in a scrape (0 when the series has no sample yet).
fn sample(scrape: &str, name_and_labels: &str) -> u64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map_or(0, |v| v.parse().expect("a number"))
}

fn lab_with_metrics(name: &str, extra: &[&str]) -> (Lab, u16) {
    let port = free_tcp_port();
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["--metrics", addr.as_str()];
    args.extend_from_slice(extra);
    (Lab::with_server_args(name, &args), port)
}

#[test]
fn metrics_follow_devices_logins_refusals_and_sessions() {
    let (lab, port) = lab_with_metrics("server_metrics", &[]);
    let (code, before) = get(port, "/metrics");
    assert_eq!(code, 200, "{before}");
    assert_eq!(sample(&before, "p2p_devices_online"), 0, "{before}");

    let page = HttpServer::with_marker_body("metrics test page", 10_000);
    let tunnel = lab.tunnel(page.port(), 3, &[]);
    lab.curl_expect(tunnel.port, &page.body);

    // A second initiator with a wrong password is refused at login.
    let mut wrong = lab.spec(&tunnel.account, &tunnel.device, 3);
    wrong.password = "not-the-password".into();
    lab.secret(&wrong.password);
    let mut refused = lab.start_initiator(&wrong, &[]);
    let (exit, line) = refused.wait_exit_line(Duration::from_secs(30));
    assert_eq!(exit, 11, "{line}");
    assert_eq!(exit_line_code(&line), Some(11), "{line}");

    let after = wait_for("the refusal in /metrics", Duration::from_secs(10), || {
        let (_, body) = get(port, "/metrics");
        (sample(
            &body,
            "p2p_refusals_total{request=\"login\",reason=\"auth_failed\"}",
        ) == 1)
            .then_some(body)
    });
    for (series, expected) in [
        ("p2p_devices_online", 1),
        ("p2p_logins_total{method=\"password\"}", 1),
        ("p2p_registrations_total", 1),
        ("p2p_sessions_granted_total", 1),
    ] {
        assert_eq!(sample(&after, series), expected, "{series} in:\n{after}");
    }
    // The target and the connected initiator hold their control connections.
    assert!(sample(&after, "p2p_control_connections") >= 2, "{after}");
    assert!(
        after.contains("# TYPE p2p_relay_forwarded_bytes_total counter"),
        "{after}"
    );

    assert_eq!(get(port, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(get(port, "/nope").0, 404);
    lab.check_logs();
}

#[test]
fn on_sigterm_healthz_says_draining_before_the_node_closes() {
    let (mut lab, port) = lab_with_metrics("server_drain", &["--drain-seconds", "4"]);
    assert_eq!(get(port, "/healthz"), (200, "ok\n".to_string()));
    let server = lab.server.proc();
    let pid = server.pid();
    let signalled = Instant::now();
    os::terminate(pid);
    let draining = wait_for("/healthz to say draining", Duration::from_secs(3), || {
        let answer = get(port, "/healthz");
        (answer.0 == 503).then_some(answer)
    });
    assert_eq!(draining, (503, "draining\n".to_string()));
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "p2p-server exited with {status}");
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_secs(4),
        "closed after {took:?}, before the 4 s drain"
    );
}

#[test]
fn json_log_format_gives_one_object_per_line() {
    let mut lab = Lab::with_server_args("server_json_logs", &["--log-format", "json"]);
    let page = HttpServer::with_marker_body("json log page", 1000);
    let tunnel = lab.tunnel(page.port(), 3, &[]);
    lab.curl_expect(tunnel.port, &page.body);
    let user = tunnel.account.user.clone();
    let lines: Vec<String> = lab
        .server
        .proc()
        .lines()
        .into_iter()
        .filter_map(|l| l.strip_prefix("[stderr] ").map(str::to_string))
        .collect();
    assert!(!lines.is_empty(), "the server logged nothing");
    let mut saw_login = false;
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        for key in ["ts", "level", "target", "msg"] {
            assert!(
                v.get(key).is_some_and(|k| k.is_string()),
                "no {key}: {line}"
            );
        }
        saw_login |= v["msg"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("user '{user}' logged in")));
    }
    assert!(saw_login, "no login line among:\n{}", lines.join("\n"));
    lab.check_logs();
}
