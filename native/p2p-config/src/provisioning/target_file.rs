//! A target file (one with `UID`) to a [`TargetConfig`].

use super::entries::{error_at, missing, not_for_this_kind, Entry, ServerEntries};
use super::keys::{FileKind, Key};
use super::report::{ProvisionError, Warning};
use crate::config::{loopback, TargetConfig, DEFAULT_APPLICATION_TYPE};
use crate::values::{parse_application_type, parse_ip, parse_port, parse_uid};

pub(crate) fn build(
    entries: &[Entry<'_>],
    file: &str,
    warnings: &mut Vec<Warning>,
) -> Result<TargetConfig, ProvisionError> {
    let mut uid = None;
    let mut secret = None;
    let mut proxy_dest_ip = None;
    let mut proxy_dest_port = None;
    let mut application_type = None;
    let mut device_key_file = None;
    let mut authorized_initiators = None;
    let mut shared = ServerEntries::default();

    for entry in entries {
        if shared.take(file, entry)? {
            continue;
        }
        let value = entry.value;
        let bad = |message: String| error_at(file, entry, &message);
        match entry.key {
            Key::Uid => uid = Some(parse_uid(value).map_err(bad)?),
            Key::Password => secret = Some(value.to_string()),
            Key::ProxyDestIp => proxy_dest_ip = Some(parse_ip(value).map_err(bad)?),
            Key::ProxyDestPort => proxy_dest_port = Some(parse_port(value).map_err(bad)?),
            Key::ApplicationType => {
                application_type = Some(parse_application_type(value).map_err(bad)?)
            }
            Key::DeviceKeyFile => device_key_file = Some(value.into()),
            Key::AuthorizedInitiators => authorized_initiators = Some(value.into()),
            _ => warnings.push(not_for_this_kind(entry, FileKind::Target)),
        }
    }

    Ok(TargetConfig {
        uid: uid.ok_or_else(|| missing(file, Key::Uid, "this device's UID"))?,
        secret: secret.ok_or_else(|| missing(file, Key::Password, "the device secret"))?,
        server: shared.server,
        server_key: shared.server_key,
        proxy_dest_ip: proxy_dest_ip.unwrap_or_else(loopback),
        proxy_dest_port: proxy_dest_port.ok_or_else(|| {
            missing(
                file,
                Key::ProxyDestPort,
                "the port of the local service to forward to",
            )
        })?,
        application_type: application_type.unwrap_or(DEFAULT_APPLICATION_TYPE),
        device_key_file,
        authorized_initiators,
    })
}
