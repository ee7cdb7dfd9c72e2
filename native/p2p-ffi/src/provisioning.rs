//! Provisioning files through the C ABI: parsed by `p2p_config` (the same parser as `connectd -f`), shown
//! as JSON, or turned into a session configuration.

use std::net::IpAddr;

use p2p_config::{
    parse_provisioning_file, InitiatorConfig, ProvisionError, Provisioning, ProvisioningKind,
};
use serde::Deserialize;

use crate::error::{FfiError, P2P_ERR_PROVISIONING};
use crate::json::{self, HostEnv};

/// What a caller may change in a file's configuration (New-P2PConnection's -Name, -LocalPort, ...).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Overrides {
    name: Option<String>,
    local_port: Option<u16>,
    bind_address: Option<IpAddr>,
    server: Option<String>,
    server_key: Option<String>,
    /// The device's key pinned before the first connection (New-P2PConnection -DeviceKey).
    device_key: Option<String>,
    /// A changed device key the user accepts (New-P2PConnection -AcceptDeviceKey).
    accept_key: Option<String>,
    /// Trust the server's word for an unknown device's key (New-P2PConnection -TrustFirstUse); only
    /// turns it on, as a file's `trust_first_use 1` is the file owner's choice.
    #[serde(default)]
    trust_first_use: bool,
    /// The host's environment variables (`P2P_SERVER`, `P2P_SERVER_KEY`): used only where the file and
    /// the overrides give no value, as connectd uses its environment.
    #[serde(default)]
    environment: HostEnv,
}

fn provisioning_error(e: ProvisionError) -> FfiError {
    // Display is `FILE:LINE: key 'K': message` and never holds a secret value.
    FfiError::new(P2P_ERR_PROVISIONING, e.to_string())
}

fn parse(path: &str) -> Result<Provisioning, FfiError> {
    let parsed = parse_provisioning_file(path).map_err(provisioning_error)?;
    for warning in &parsed.warnings {
        log::warn!("{path}: {warning}");
    }
    Ok(parsed)
}

/// The file as the JSON of `Provisioning::to_json` (no secrets).
pub fn parse_json(path: &str) -> Result<String, FfiError> {
    Ok(parse(path)?.to_json())
}

/// The initiator configuration of a file, with `overrides_json` applied, and the host environment the
/// overrides carried.
pub fn initiator_config(
    path: &str,
    overrides_json: Option<&str>,
) -> Result<(InitiatorConfig, HostEnv), FfiError> {
    let overrides: Overrides = match overrides_json {
        Some(text) => json::parse_object(text, "overrides")?,
        None => Overrides::default(),
    };
    let mut cfg = match parse(path)?.kind {
        ProvisioningKind::Initiator(cfg) => cfg,
        ProvisioningKind::Target(_) => {
            return Err(FfiError::new(
                P2P_ERR_PROVISIONING,
                format!(
                    "{path}: this is a target (device) file (it has 'UID'); a connection needs an initiator \
                     file (with 'remote_address')"
                ),
            ))
        }
    };
    let Overrides {
        name,
        local_port,
        bind_address,
        server,
        server_key,
        device_key,
        accept_key,
        trust_first_use,
        environment,
    } = overrides;
    cfg.trust_first_use |= trust_first_use;
    if device_key.is_some() {
        cfg.device_key = device_key;
    }
    if accept_key.is_some() {
        cfg.accept_key = accept_key;
    }
    if name.is_some() {
        cfg.name = name;
    }
    if let Some(port) = local_port {
        cfg.local_port = port;
    }
    if let Some(address) = bind_address {
        cfg.bind_address = address;
    }
    if server.is_some() {
        cfg.server = server;
    }
    if server_key.is_some() {
        cfg.server_key = server_key;
    }
    Ok((cfg, environment))
}
