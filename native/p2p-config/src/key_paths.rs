//! Where the end-to-end key files live by default (docs/E2E-TRUST.md): `remoteitp2p/` in the user's
//! configuration directory. A service started without HOME (a systemd unit, a container) has no such
//! directory: its keys then go beside its provisioning file, said in one warning.

use std::path::{Path, PathBuf};

use crate::config::{InitiatorConfig, TargetConfig};
use crate::provisioning::{ProvisioningKind, Warning};

const APP_DIR: &str = "remoteitp2p";
/// The initiator installation's key file name; `known_devices` goes beside it.
pub const INITIATOR_KEY: &str = "initiator.key";

/// The user's configuration directory: `%APPDATA%` on Windows, `~/Library/Application Support` on
/// macOS, `$XDG_CONFIG_HOME` (absolute) or `~/.config` elsewhere. `None` without those variables.
pub fn config_dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if cfg!(windows) {
        return var("APPDATA");
    }
    if cfg!(target_os = "macos") {
        return var("HOME").map(|h| h.join("Library").join("Application Support"));
    }
    var("XDG_CONFIG_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| var("HOME").map(|h| h.join(".config")))
}

/// The file name of a device's default key: `device-<UID with - for :>.key`.
pub fn device_key_name(uid: p2p_proto::Uid) -> String {
    format!("device-{}.key", uid.to_string().replace(':', "-"))
}

/// The default path of `file` in the configuration directory, or why there is none (naming the
/// provisioning key that sets the path explicitly).
pub fn default_key_path(file: &str, option: &str) -> Result<PathBuf, String> {
    config_dir()
        .map(|d| d.join(APP_DIR).join(file))
        .ok_or_else(|| {
            format!(
                "no configuration directory for the end-to-end keys (neither HOME nor \
                 XDG_CONFIG_HOME is set): set one, or give {option} in the provisioning file"
            )
        })
}

/// For a provisioning file read from `path`: when the process has no configuration directory, the
/// keys the file leaves at their default go beside the file, with one warning saying where.
pub fn keys_beside_file_when_homeless(
    kind: &mut ProvisioningKind,
    path: &Path,
    warnings: &mut Vec<Warning>,
) {
    keys_beside_file(kind, path, config_dir().is_some(), warnings);
}

/// [`keys_beside_file_when_homeless`] with the configuration directory's presence given (testable
/// without touching the process environment).
fn keys_beside_file(
    kind: &mut ProvisioningKind,
    path: &Path,
    has_config_dir: bool,
    warnings: &mut Vec<Warning>,
) {
    if has_config_dir {
        return;
    }
    let dir = path.parent().unwrap_or(Path::new(""));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let (slot, option, name) = match kind {
        ProvisioningKind::Initiator(InitiatorConfig { key_file, .. }) => {
            (key_file, "key_file", INITIATOR_KEY.to_string())
        }
        ProvisioningKind::Target(TargetConfig {
            device_key_file,
            uid,
            ..
        }) => (device_key_file, "device_key_file", device_key_name(*uid)),
    };
    if slot.is_some() {
        return;
    }
    let beside = dir.join(name);
    warnings.push(Warning::whole_file(
        option,
        &format!(
            "neither HOME nor XDG_CONFIG_HOME is set: the end-to-end key is {} (beside this file); \
             give {option} to choose",
            beside.display()
        ),
    ));
    *slot = Some(beside);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provisioning::parse_provisioning;

    const TARGET: &str = "UID 80:00:00:00:01:00:0A:C2\npassword s3cret\nproxy_dest_port 22\n";
    const INITIATOR: &str =
        "remote_address 80:00:00:00:01:00:0A:C2\nuser_id a@b.c\nauth_pass pw\nproxy_local_port 33000\n";

    fn parsed(text: &str) -> ProvisioningKind {
        parse_provisioning(text.as_bytes(), "x").unwrap().kind
    }

    #[test]
    fn without_a_configuration_directory_keys_go_beside_the_file_with_one_warning() {
        let mut target = parsed(TARGET);
        let mut warnings = Vec::new();
        keys_beside_file(
            &mut target,
            Path::new("/etc/remoteitp2p/target.conf"),
            false,
            &mut warnings,
        );
        let ProvisioningKind::Target(t) = &target else {
            panic!()
        };
        assert_eq!(
            t.device_key_file.as_deref(),
            Some(Path::new(
                "/etc/remoteitp2p/device-80-00-00-00-01-00-0A-C2.key"
            ))
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].to_string().contains("HOME"), "{}", warnings[0]);

        let mut initiator = parsed(INITIATOR);
        keys_beside_file(
            &mut initiator,
            Path::new("tunnel.txt"),
            false,
            &mut warnings,
        );
        let ProvisioningKind::Initiator(i) = &initiator else {
            panic!()
        };
        assert_eq!(i.key_file.as_deref(), Some(Path::new("./initiator.key")));
        assert_eq!(warnings.len(), 2);
    }

    #[test]
    fn a_configuration_directory_or_an_explicit_path_is_left_alone() {
        let mut warnings = Vec::new();
        let mut target = parsed(TARGET);
        keys_beside_file(&mut target, Path::new("/etc/t.conf"), true, &mut warnings);
        let ProvisioningKind::Target(t) = &target else {
            panic!()
        };
        assert_eq!(t.device_key_file, None);
        let mut explicit = parsed(&format!("{TARGET}device_key_file /var/lib/k.key\n"));
        keys_beside_file(
            &mut explicit,
            Path::new("/etc/t.conf"),
            false,
            &mut warnings,
        );
        let ProvisioningKind::Target(t) = &explicit else {
            panic!()
        };
        assert_eq!(
            t.device_key_file.as_deref(),
            Some(Path::new("/var/lib/k.key"))
        );
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
