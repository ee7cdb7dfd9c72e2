//! What parsing a provisioning file reports: one error that stops it, or warnings beside the result.
//! Neither ever holds a secret value (see `keys::Key::is_secret`): messages are built from key names,
//! line numbers and non-secret values only.

use std::fmt;

use serde::Serialize;

use crate::values::{escape_controls, shown};

/// Why a provisioning file was refused. Displayed as `FILE:LINE: key 'KEY': MESSAGE`; without a line
/// (a problem with the whole file, such as a missing mandatory key) as `FILE: key 'KEY': MESSAGE`;
/// without a key, the `key '...': ` part is left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvisionError {
    /// The path, or `-e blob` for `connectd -e`.
    pub file: String,
    /// 1-based line number.
    pub line: Option<usize>,
    /// The key as connectd spells it (`remote_address`, `UID`).
    pub key: Option<String>,
    pub message: String,
}

impl ProvisionError {
    pub(crate) fn new(file: &str, line: Option<usize>, key: Option<&str>, message: &str) -> Self {
        ProvisionError {
            file: escape_controls(file),
            line,
            key: key.map(shown),
            message: escape_controls(message),
        }
    }
}

impl fmt::Display for ProvisionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "key '{key}': ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProvisionError {}

/// Something in an accepted file the user should know about: an unknown key (often a typo), a key that
/// does not apply to this kind of file, a value accepted with a different meaning than connectd's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// 1-based; 0 for a warning about the whole file.
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl Warning {
    pub(crate) fn new(line: usize, key: &str, message: &str) -> Self {
        Warning {
            line,
            key: shown(key),
            message: escape_controls(message),
        }
    }

    /// A warning about the file as a whole (shown without a line number).
    pub(crate) fn whole_file(key: &str, message: &str) -> Self {
        Warning::new(0, key, message)
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        write!(f, "key '{}': {}", self.key, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_forms() {
        let at_line = ProvisionError::new("a.txt", Some(12), Some("max_depth"), "bad");
        assert_eq!(at_line.to_string(), "a.txt:12: key 'max_depth': bad");
        let whole_file = ProvisionError::new("a.txt", None, Some("remote_address"), "missing");
        assert_eq!(
            whole_file.to_string(),
            "a.txt: key 'remote_address': missing"
        );
        let no_key = ProvisionError::new("a.txt", Some(3), None, "not text");
        assert_eq!(no_key.to_string(), "a.txt:3: not text");
    }
}
