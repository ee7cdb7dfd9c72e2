//! `p2p_network_test`: the network self-test of `p2p_net` (the same one as `connectd -n`), as JSON.

use std::time::Duration;

use p2p_net::selftest::{self, SelfTestConfig};
use serde::Deserialize;

use crate::cancel::{self, CancelToken};
use crate::error::{FfiError, P2P_ERR_INVALID_CONFIG};
use crate::json::{self, HostEnv};
use crate::runtime::block_on;
use crate::session::KIND_NO_SERVER;

/// `options_json`: every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// `host:port` of the server; the environment's `P2P_SERVER` when absent.
    server: Option<String>,
    /// The server's public key (base64); the environment's `P2P_SERVER_KEY` when absent. With a key the
    /// test asks the server where its UDP probe ports are (and checks the key).
    server_key: Option<String>,
    /// How long one resolve or TCP connect may take.
    timeout_ms: Option<u32>,
    /// Look for NAT-PMP and UPnP routers (default true).
    gateways: Option<bool>,
    /// The host's environment variables (`P2P_SERVER`, `P2P_SERVER_KEY`, `P2P_PROBE_ADDR1`..`3`), looked up before the
    /// process environment.
    #[serde(default)]
    environment: HostEnv,
}

/// Runs the self-test and returns the report's JSON with one more field, `text`: the report as
/// `connectd -n` prints it. Abandoned (its sockets closed) when `cancel` is fired: CANCELLED.
pub fn run_json_cancellable(
    options_json: Option<&str>,
    cancel: Option<&CancelToken>,
) -> Result<String, FfiError> {
    let options: Options = match options_json {
        Some(text) => json::parse_object(text, "self-test options")?,
        None => Options::default(),
    };
    let env = options.environment;
    let server = options
        .server
        .or_else(|| env.var("P2P_SERVER"))
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            FfiError::with_kind(
                P2P_ERR_INVALID_CONFIG,
                KIND_NO_SERVER,
                "no server to test: the options have no 'server' (host:port) and P2P_SERVER is set \
                 neither in their 'environment' nor in the process environment",
            )
        })?;
    let mut cfg = SelfTestConfig::for_server_with_env(&server, |k| env.var(k));
    if let Some(key) = options.server_key.filter(|k| !k.trim().is_empty()) {
        cfg.server_key = Some(key);
    }
    if let Some(ms) = options.timeout_ms.filter(|ms| *ms > 0) {
        cfg.connect_timeout = Duration::from_millis(u64::from(ms.min(120_000)));
    }
    if let Some(gateways) = options.gateways {
        cfg.gateways = gateways;
    }
    log::info!("network self-test against {server}");
    let report = block_on(cancel::or_cancelled(cancel, selftest::run(&cfg)))?.ok_or_else(|| {
        cancel::cancelled(format!(
            "the network self-test against {server} was cancelled"
        ))
    })?;
    let mut value = serde_json::to_value(&report)
        .map_err(|e| FfiError::internal(format!("cannot write the report: {e}")))?;
    if let Some(map) = value.as_object_mut() {
        map.insert("text".into(), report.render_text().into());
    }
    json::to_json(&value)
}
