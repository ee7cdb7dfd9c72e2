//! The keys a provisioning file may hold: connectd's own, plus ours for finding our server
//! (`server`, `server_key`), for what connectd fixes on its command line (`encryption`, `name`), and
//! for the end-to-end keys (`device_key`, `trust_first_use`, `key_file`, `device_key_file`).

/// The two kinds of provisioning file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Initiator,
    Target,
}

// `Key::ServerKey` is the `server_key` key: the name says what it is.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    Autoconnect,
    UserId,
    AuthPass,
    AuthHash,
    ProxyLocalPort,
    ProxyBindAddress,
    RemoteAddress,
    MaxDepth,
    Encryption,
    Name,
    Uid,
    Password,
    ProxyDestIp,
    ProxyDestPort,
    ApplicationType,
    Server,
    ServerKey,
    DeviceKey,
    TrustFirstUse,
    KeyFile,
    DeviceKeyFile,
    AuthorizedInitiators,
}

impl Key {
    pub(crate) const ALL: [Key; 22] = [
        Key::Autoconnect,
        Key::UserId,
        Key::AuthPass,
        Key::AuthHash,
        Key::ProxyLocalPort,
        Key::ProxyBindAddress,
        Key::RemoteAddress,
        Key::MaxDepth,
        Key::Encryption,
        Key::Name,
        Key::Uid,
        Key::Password,
        Key::ProxyDestIp,
        Key::ProxyDestPort,
        Key::ApplicationType,
        Key::Server,
        Key::ServerKey,
        Key::DeviceKey,
        Key::TrustFirstUse,
        Key::KeyFile,
        Key::DeviceKeyFile,
        Key::AuthorizedInitiators,
    ];

    /// The spelling connectd uses (and the one errors show).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Key::Autoconnect => "autoconnect",
            Key::UserId => "user_id",
            Key::AuthPass => "auth_pass",
            Key::AuthHash => "auth_hash",
            Key::ProxyLocalPort => "proxy_local_port",
            Key::ProxyBindAddress => "proxy_bind_address",
            Key::RemoteAddress => "remote_address",
            Key::MaxDepth => "max_depth",
            Key::Encryption => "encryption",
            Key::Name => "name",
            Key::Uid => "UID",
            Key::Password => "password",
            Key::ProxyDestIp => "proxy_dest_ip",
            Key::ProxyDestPort => "proxy_dest_port",
            Key::ApplicationType => "application_type",
            Key::Server => "server",
            Key::ServerKey => "server_key",
            Key::DeviceKey => "device_key",
            Key::TrustFirstUse => "trust_first_use",
            Key::KeyFile => "key_file",
            Key::DeviceKeyFile => "device_key_file",
            Key::AuthorizedInitiators => "authorized_initiators",
        }
    }

    /// Keys are matched without regard to case: connectd writes `UID` in target files and everything else
    /// in lower case, and a hand-written `uid` or `User_ID` means the same thing.
    pub(crate) fn lookup(written: &str) -> Option<Key> {
        Key::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(written))
    }

    /// Values of these keys are never repeated in errors, warnings, `Debug` or JSON.
    pub(crate) fn is_secret(self) -> bool {
        matches!(self, Key::AuthPass | Key::AuthHash | Key::Password)
    }

    /// The kind of file this key belongs to; `None` for keys meaningful in both.
    pub(crate) fn kind(self) -> Option<FileKind> {
        match self {
            Key::Autoconnect
            | Key::UserId
            | Key::AuthPass
            | Key::AuthHash
            | Key::ProxyLocalPort
            | Key::ProxyBindAddress
            | Key::RemoteAddress
            | Key::MaxDepth
            | Key::Encryption
            | Key::Name
            | Key::DeviceKey
            | Key::TrustFirstUse
            | Key::KeyFile => Some(FileKind::Initiator),
            Key::Uid
            | Key::Password
            | Key::ProxyDestIp
            | Key::ProxyDestPort
            | Key::ApplicationType
            | Key::DeviceKeyFile
            | Key::AuthorizedInitiators => Some(FileKind::Target),
            Key::Server | Key::ServerKey => None,
        }
    }

    /// The known key a misspelt one most likely meant (at most two edits away), for "did you mean".
    pub(crate) fn closest(written: &str) -> Option<Key> {
        let written = written.to_ascii_lowercase();
        Key::ALL
            .into_iter()
            .map(|k| (edit_distance(&written, &k.name().to_ascii_lowercase()), k))
            .filter(|&(d, _)| d <= 2)
            .min_by_key(|&(d, _)| d)
            .map(|(_, k)| k)
    }
}

/// Levenshtein distance; the inputs are short (a line's first word is compared only when it is no
/// key at all), and a long one is cut so a garbage line cannot cost much.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_case_insensitively() {
        for key in Key::ALL {
            assert_eq!(Key::lookup(key.name()), Some(key));
            assert_eq!(Key::lookup(&key.name().to_ascii_uppercase()), Some(key));
        }
        assert_eq!(Key::lookup("uid"), Some(Key::Uid));
        assert_eq!(Key::lookup("remote"), None);
    }

    #[test]
    fn suggests_near_misses_only() {
        assert_eq!(Key::closest("auth_pas"), Some(Key::AuthPass));
        assert_eq!(Key::closest("remote_adress"), Some(Key::RemoteAddress));
        assert_eq!(Key::closest("proxy_local-port"), Some(Key::ProxyLocalPort));
        assert_eq!(Key::closest("hostname"), None);
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
