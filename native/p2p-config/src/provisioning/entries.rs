//! From a file's `key value` lines to the known settings it holds, and which kind of file it is.
//! Everything here concerns the file's shape (unknown, empty and repeated keys; initiator or target);
//! what a value must look like is left to the builders of each kind of file.

use super::keys::{FileKind, Key};
use super::lines::settings;
use super::report::{ProvisionError, Warning};
use crate::values::{check_server_address, check_server_key};

/// A setting whose key is known and whose value is not empty.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'a> {
    pub line: usize,
    pub key: Key,
    pub value: &'a str,
}

/// An error about this entry, shown with its line and key.
pub(crate) fn error_at(file: &str, entry: &Entry<'_>, message: &str) -> ProvisionError {
    // No message is built from a secret value; this makes sure one never slips in later.
    let message = if entry.key.is_secret() {
        message.replace(entry.value, "<redacted>")
    } else {
        message.to_string()
    };
    ProvisionError::new(file, Some(entry.line), Some(entry.key.name()), &message)
}

/// A mandatory key the file does not have.
pub(crate) fn missing(file: &str, key: Key, what: &str) -> ProvisionError {
    ProvisionError::new(
        file,
        None,
        Some(key.name()),
        &format!("missing mandatory key ({what})"),
    )
}

/// The known settings in line order. Unknown keys become warnings (connectd ignores them too); a known
/// key without a value or given twice is an error, since which value was meant cannot be guessed.
pub(crate) fn known_entries<'a>(
    text: &'a str,
    file: &str,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<Entry<'a>>, ProvisionError> {
    let mut entries: Vec<Entry<'a>> = Vec::new();
    for setting in settings(text) {
        let Some(key) = Key::lookup(setting.key) else {
            warnings.push(unknown_key(setting.line, setting.key));
            continue;
        };
        let entry = Entry {
            line: setting.line,
            key,
            value: setting.value,
        };
        if entry.value.is_empty() {
            let message = format!("no value: write '{} VALUE' on one line", key.name());
            return Err(error_at(file, &entry, &message));
        }
        if let Some(first) = entries.iter().find(|e| e.key == key) {
            let message = format!(
                "duplicate key: set on line {} and again on line {}; keep one",
                first.line, entry.line
            );
            return Err(error_at(file, &entry, &message));
        }
        entries.push(entry);
    }
    Ok(entries)
}

fn unknown_key(line: usize, written: &str) -> Warning {
    let mut message = String::from("unknown key, ignored");
    if let Some((name, _value)) = written.split_once('=') {
        message.push_str(" (separate key and value with a space, not '=')");
        // What follows '=' is a value, perhaps a password: never show it.
        return Warning::new(line, &format!("{name}=..."), &message);
    }
    // A secret key's line with its separator mangled (`password!s3cret`, `auth_passs3cret`) reads as
    // one long unknown key: show only the secret key's name, never what follows it.
    let lower = written.to_ascii_lowercase();
    if let Some(secret) = Key::ALL
        .iter()
        .filter(|k| k.is_secret())
        .find(|k| lower.starts_with(k.name()) && lower.len() > k.name().len())
    {
        message.push_str(&format!(" (did you mean '{}'?)", secret.name()));
        return Warning::new(line, &format!("{}...", secret.name()), &message);
    }
    if let Some(near) = Key::closest(written) {
        message.push_str(&format!(" (did you mean '{}'?)", near.name()));
    }
    Warning::new(line, written, &message)
}

/// A target file has `UID`, an initiator file `remote_address`. When a file has neither, its other keys
/// tell which one it lacks, so the error can name the missing key rather than just "unknown kind".
/// `warnings` are those found so far: when no key at all was known, the first unknown one is the likely
/// cause (`key=value` syntax, a file of another program), and the error points at it, since warnings are
/// not shown when parsing fails.
pub(crate) fn file_kind(
    entries: &[Entry<'_>],
    file: &str,
    warnings: &[Warning],
) -> Result<FileKind, ProvisionError> {
    let find = |key: Key| entries.iter().find(|e| e.key == key);
    match (find(Key::RemoteAddress), find(Key::Uid)) {
        (Some(_), None) => Ok(FileKind::Initiator),
        (None, Some(_)) => Ok(FileKind::Target),
        (Some(remote), Some(uid)) => {
            let later = if remote.line > uid.line { remote } else { uid };
            let message = format!(
                "a file has either 'UID' (a target file, line {}) or 'remote_address' (an initiator file, line {}), not both",
                uid.line, remote.line
            );
            Err(error_at(file, later, &message))
        }
        (None, None) => {
            let has = |kind: FileKind| entries.iter().any(|e| e.key.kind() == Some(kind));
            match (has(FileKind::Initiator), has(FileKind::Target)) {
                (true, false) => Err(missing(
                    file,
                    Key::RemoteAddress,
                    "the UID of the target to connect to",
                )),
                (false, true) => Err(missing(file, Key::Uid, "this device's UID")),
                _ => {
                    if let (true, Some(first)) = (entries.is_empty(), warnings.first()) {
                        let message = format!(
                            "no known key in the file (an initiator file needs 'remote_address', a target file needs 'UID'); this is the first line with a key: {}",
                            first.message
                        );
                        return Err(ProvisionError::new(
                            file,
                            Some(first.line),
                            Some(&first.key),
                            &message,
                        ));
                    }
                    let what = if entries.is_empty() {
                        "no settings found (the file is empty or only comments)"
                    } else {
                        "not a provisioning file"
                    };
                    let message = format!(
                        "{what}: an initiator file needs 'remote_address', a target file needs 'UID'"
                    );
                    Err(ProvisionError::new(file, None, None, &message))
                }
            }
        }
    }
}

/// The settings both kinds of file share: our server's address and the key pinned for it.
#[derive(Debug, Default)]
pub(crate) struct ServerEntries {
    pub server: Option<String>,
    pub server_key: Option<String>,
}

impl ServerEntries {
    /// Takes `entry` if it is one of the shared keys, after checking its value: `Ok(false)` leaves
    /// it to the caller.
    pub(crate) fn take(&mut self, file: &str, entry: &Entry<'_>) -> Result<bool, ProvisionError> {
        let bad = |message: String| error_at(file, entry, &message);
        match entry.key {
            Key::Server => {
                check_server_address(entry.value).map_err(bad)?;
                self.server = Some(entry.value.to_string());
            }
            Key::ServerKey => {
                check_server_key(entry.value).map_err(bad)?;
                self.server_key = Some(entry.value.to_string());
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// A known key that belongs to the other kind of file: ignored, but said, since it is often a mistake.
/// The builders send every key they do not handle here; [`Key::kind`] is the one list of which key
/// belongs where, and this catches (in tests) a key of this kind that a builder forgot.
pub(crate) fn not_for_this_kind(entry: &Entry<'_>, kind: FileKind) -> Warning {
    debug_assert!(
        entry.key.kind().is_some_and(|k| k != kind),
        "{:?} is not handled by the builder of its kind of file",
        entry.key
    );
    let (here, there) = match kind {
        FileKind::Target => ("a target file", "initiator files"),
        FileKind::Initiator => ("an initiator file", "target files"),
    };
    let mut message = format!("belongs in {there}; ignored in {here}");
    if entry.key == Key::Password {
        message.push_str(" (the user's password is 'auth_pass')");
    }
    Warning::new(entry.line, entry.key.name(), &message)
}
