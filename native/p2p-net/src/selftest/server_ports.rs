//! Asks the server where its UDP probe ports are, over the control channel, so that the self-test
//! probes this server's ports and not the default ones (a server may run on any ports, and another
//! server on the defaults would otherwise answer for it).
//!
//! The control channel pins the server's key, so this needs one: without a key the probes go to the
//! default ports and the report says so. With a key, a failed handshake is a finding of its own: a
//! tunnel with that key would fail the same way.

use std::time::Duration;

use p2p_proto::control::{ClientMsg, ErrorCode, ServerMsg};
use serde::{Deserialize, Serialize};

use super::SelfTestConfig;
use crate::control_channel::ControlClient;

/// What the control channel said (`control` in the report).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlCheck {
    /// A server key was given, so the control channel was tried.
    pub checked: bool,
    /// The handshake with the pinned key worked and the server named its probe ports.
    pub ok: bool,
    /// The probe addresses the server named, in its order.
    pub probe_addrs: Vec<String>,
    /// Where the probed addresses came from: "server", "environment" (`P2P_PROBE_ADDR1`..`3`, which win
    /// over the server's), "server and environment", or "defaults".
    pub probe_addrs_from: String,
    /// Why the control channel was not tried, or what went wrong.
    pub error: Option<String>,
    /// `error` is one a tunnel would meet too (a wrong key, no answer), unlike a missing key or a
    /// server too old to answer: it makes the report not compatible.
    pub problem: bool,
}

/// The report when the control channel is not tried at all (no TCP connection).
pub(super) fn skipped(cfg: &SelfTestConfig, why: &str) -> (ControlCheck, SelfTestConfig) {
    (unchanged(cfg, why.into(), false, false), cfg.clone())
}

/// The check when the server named no probe ports: the configured ones are probed.
fn unchanged(cfg: &SelfTestConfig, error: String, checked: bool, problem: bool) -> ControlCheck {
    ControlCheck {
        checked,
        ok: false,
        probe_addrs: Vec::new(),
        probe_addrs_from: if cfg.probe_addrs_from_env.iter().any(|e| *e) {
            "environment".into()
        } else {
            "defaults".into()
        },
        error: Some(error),
        problem,
    }
}

/// The server's probe addresses when a key is given, and `cfg` with them in place of the defaults (the
/// environment's `P2P_PROBE_ADDRn` still win).
pub(super) async fn ask(cfg: &SelfTestConfig) -> (ControlCheck, SelfTestConfig) {
    let mut cfg = cfg.clone();
    let from_env = cfg.probe_addrs_from_env;
    let Some(key_text) = cfg.server_key.clone() else {
        let check = unchanged(
            &cfg,
            "no server key to ask the server for its probe ports with (P2P_SERVER_KEY, \
             connectd --server-key, Test-P2PNetwork -ServerKey): probing the default ports"
                .into(),
            false,
            false,
        );
        return (check, cfg);
    };
    let Ok(key) = p2p_config::config::decode_server_key(&key_text) else {
        let check = unchanged(
            &cfg,
            "the server key is not 32 bytes of base64 (as p2p-server init prints it)".into(),
            true,
            true,
        );
        return (check, cfg);
    };
    let addrs = match request(&cfg.server, &key, cfg.connect_timeout).await {
        Ok(addrs) => addrs,
        Err(no) => return (unchanged(&cfg, no.why, true, no.problem), cfg),
    };
    let mut from_server = false;
    for (i, addr) in addrs.iter().enumerate().take(cfg.probe_addrs.len()) {
        if !from_env.get(i).copied().unwrap_or(false) {
            cfg.probe_addrs[i] = addr.to_string();
            from_server = true;
        }
    }
    if from_server {
        // The server named its second address itself: nothing left to learn from the probe answers.
        cfg.learn_second_ip = false;
    }
    let check = ControlCheck {
        checked: true,
        ok: true,
        probe_addrs: addrs.iter().map(|a| a.to_string()).collect(),
        probe_addrs_from: match (from_server, from_env.iter().any(|e| *e)) {
            (true, true) => "server and environment",
            (true, false) => "server",
            (false, _) => "environment",
        }
        .into(),
        error: None,
        problem: false,
    };
    (check, cfg)
}

/// Why the server's probe ports are unknown, and whether a tunnel would fail the same way.
struct NoAnswer {
    why: String,
    problem: bool,
}

async fn request(
    server: &str,
    key: &[u8; 32],
    timeout: Duration,
) -> Result<Vec<std::net::SocketAddr>, NoAnswer> {
    let exchange = async {
        let mut client = ControlClient::connect(server, key, timeout).await?;
        client.send(&ClientMsg::ProbeAddresses).await?;
        client.recv().await
    };
    let problem = |why: String| NoAnswer { why, problem: true };
    match tokio::time::timeout(timeout * 2, exchange).await {
        Ok(Ok(ServerMsg::ProbeAddresses { addrs })) if !addrs.is_empty() => Ok(addrs),
        // A server from before the question existed: not a fault of the network or the key.
        Ok(Ok(ServerMsg::Error {
            code: ErrorCode::BadRequest,
            message,
        })) => Err(NoAnswer {
            why: format!(
                "the server does not say where its probe ports are ({message}): probing the default ports"
            ),
            problem: false,
        }),
        Ok(Ok(other)) => Err(problem(format!(
            "the server answered the probe-port question with {other:?}"
        ))),
        Ok(Err(e)) => Err(problem(format!("control channel: {}", e.message))),
        Err(_) => Err(problem(format!(
            "control channel: no answer within {} ms",
            (timeout * 2).as_millis()
        ))),
    }
}
