//! `connectd -n [--json]`: the network self-test against the server (`-y`/`--server`, else `P2P_SERVER`);
//! with the server's key (`--server-key`, else `P2P_SERVER_KEY`) it probes the UDP ports the server names.
//! The report comes from `p2p_net::selftest`; every probe there has a timeout, so this always finishes.
//! Exit status: 0 when the verdict is "compatible", 1 when a section failed.

use p2p_config::cli_args::ServerChoice;
use p2p_config::ExitCode;
use p2p_net::selftest::{self, SelfTestConfig};

use crate::output::Output;

/// The status when a section failed (a test tool's "failed"; not a connectd tunnel code).
const FAILED: i32 = 1;

pub async fn run(server_choice: &ServerChoice, json: bool, out: &Output) -> i32 {
    let Some(server) = server_choice
        .server
        .clone()
        .or_else(|| std::env::var("P2P_SERVER").ok())
        .filter(|s| !s.trim().is_empty())
    else {
        out.problem("no server to test: give -y HOST:PORT (or --server) or set the environment variable P2P_SERVER");
        return i32::from(ExitCode::Unknown.code());
    };
    let mut cfg = SelfTestConfig::for_server(&server);
    // With the key, the test asks the server where its probe ports are (and checks the key).
    if let Some(key) = &server_choice.server_key {
        cfg.server_key = Some(key.clone());
    }
    let report = selftest::run(&cfg).await;
    if json {
        out.line(&report.to_json());
    } else {
        out.line(report.render_text().trim_end());
    }
    if report.compatible {
        0
    } else {
        FAILED
    }
}
