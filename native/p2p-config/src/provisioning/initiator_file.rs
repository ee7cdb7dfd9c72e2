//! An initiator file (one with `remote_address`) to an [`InitiatorConfig`].

use p2p_proto::EncryptionMode;

use super::entries::{error_at, missing, not_for_this_kind, Entry, ServerEntries};
use super::keys::{FileKind, Key};
use super::report::{ProvisionError, Warning};
use crate::config::{loopback, AutoConnect, InitiatorConfig};
use crate::values::{
    parse_device_key, parse_encryption, parse_flag, parse_ip, parse_listen_port, parse_uid,
    parse_window,
};

pub(crate) fn build(
    entries: &[Entry<'_>],
    file: &str,
    warnings: &mut Vec<Warning>,
) -> Result<InitiatorConfig, ProvisionError> {
    let mut device_id = None;
    let mut user = None;
    let mut password: Option<&Entry<'_>> = None;
    let mut auth_hash: Option<&Entry<'_>> = None;
    let mut local_port = None;
    let mut bind_address = None;
    let mut max_outstanding = None;
    let mut autoconnect = AutoConnect::default();
    let mut encryption = EncryptionMode::default();
    let mut shared = ServerEntries::default();
    let mut name = None;
    let mut device_key = None;
    let mut trust_first_use = false;
    let mut key_file = None;

    for entry in entries {
        if shared.take(file, entry)? {
            continue;
        }
        let value = entry.value;
        let bad = |message: String| error_at(file, entry, &message);
        match entry.key {
            Key::RemoteAddress => device_id = Some(parse_uid(value).map_err(bad)?),
            Key::UserId => user = Some(value.to_string()),
            Key::AuthPass => password = Some(entry),
            Key::AuthHash => {
                if looks_like_remoteit_hash(value) {
                    warnings.push(Warning::new(entry.line, entry.key.name(), REMOTEIT_HASH));
                }
                auth_hash = Some(entry);
            }
            Key::ProxyLocalPort => local_port = Some(parse_listen_port(value).map_err(bad)?),
            Key::ProxyBindAddress => bind_address = Some(parse_ip(value).map_err(bad)?),
            Key::MaxDepth => max_outstanding = Some(parse_window(value).map_err(bad)?),
            Key::Autoconnect => autoconnect = parse_autoconnect(entry, warnings).map_err(bad)?,
            Key::Encryption => encryption = parse_encryption(value).map_err(bad)?,
            Key::Name => name = Some(value.to_string()),
            Key::DeviceKey => device_key = Some(parse_device_key(value).map_err(bad)?),
            Key::TrustFirstUse => trust_first_use = parse_flag(value).map_err(bad)?,
            Key::KeyFile => key_file = Some(value.into()),
            _ => warnings.push(not_for_this_kind(entry, FileKind::Initiator)),
        }
    }

    if let (Some(pass), Some(hash)) = (password, auth_hash) {
        let later = if pass.line > hash.line { pass } else { hash };
        let message = format!(
            "both 'auth_pass' (line {}) and 'auth_hash' (line {}) are set: keep one (auth_hash is recommended)",
            pass.line, hash.line
        );
        return Err(error_at(file, later, &message));
    }
    let device_id = device_id.ok_or_else(|| {
        missing(
            file,
            Key::RemoteAddress,
            "the UID of the target to connect to",
        )
    })?;
    let user = user.ok_or_else(|| missing(file, Key::UserId, "the account to log in as"))?;
    if password.is_none() && auth_hash.is_none() {
        return Err(missing(
            file,
            Key::AuthHash,
            "or 'auth_pass': the credential to log in with; auth_hash is recommended",
        ));
    }
    let local_port = local_port
        .ok_or_else(|| missing(file, Key::ProxyLocalPort, "the local port to listen on"))?;

    Ok(InitiatorConfig {
        name,
        device_id,
        user,
        password: password.map(|e| e.value.to_string()),
        auth_hash: auth_hash.map(|e| e.value.to_string()),
        server: shared.server,
        server_key: shared.server_key,
        local_port,
        bind_address: bind_address.unwrap_or_else(loopback),
        encryption,
        max_outstanding,
        autoconnect,
        restrict_ip: None,
        lifetime_min: 0,
        idle_limit_sec: 0,
        key_file,
        device_key,
        accept_key: None,
        trust_first_use,
    })
}

/// connectd's 0 means "connect on demand", which we do not offer: rather than refuse a file that works
/// with connectd, connect at start as 1 does and say so.
fn parse_autoconnect(
    entry: &Entry<'_>,
    warnings: &mut Vec<Warning>,
) -> Result<AutoConnect, String> {
    match entry.value {
        "0" => {
            warnings.push(Warning::new(
                entry.line,
                entry.key.name(),
                "0 (connect on demand) is not supported: connecting at start, as with 1",
            ));
            Ok(AutoConnect::Once)
        }
        "1" => Ok(AutoConnect::Once),
        "2" => Ok(AutoConnect::Reconnect),
        other => Err(format!(
            "invalid value '{}': expected 1 (connect at start), 2 (also reconnect after a network interruption) or 0 (treated as 1)",
            crate::values::shown(other)
        )),
    }
}

const REMOTEIT_HASH: &str = "this looks like a remote.it auth_hash (40 hex characters), which this \
     server does not know: ours have the form <id>.<secret>, printed by 'connectd --auth-hash --user NAME'";

/// remote.it's hashes are 40 hex characters; ours always contain a '.', so this can only be a copy
/// of a remote.it file. A warning, not an error, so the server stays the judge of what it accepts.
fn looks_like_remoteit_hash(value: &str) -> bool {
    value.len() == 40 && value.bytes().all(|b| b.is_ascii_hexdigit())
}
