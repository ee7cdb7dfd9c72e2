//! connectd provisioning files: `connectd -f FILE`, `connectd -e BLOB`, the C ABI and the cmdlets all
//! read them here. The syntax and every key are described in `docs/PROVISIONING.md`.
//!
//! A file holding `remote_address` configures an initiator tunnel, one holding `UID` a target (device).
//! Parsing is pure: it takes the file's bytes and the name to show in errors, and returns either the
//! configuration with any warnings, or the first error, which names the file, line and key.

mod encoding;
mod entries;
mod initiator_file;
mod keys;
mod lines;
mod report;
mod target_file;

use std::io::Read;
use std::path::Path;

use serde::Serialize;

pub use encoding::MAX_FILE_BYTES;
pub use report::{ProvisionError, Warning};

use crate::config::{InitiatorConfig, TargetConfig};
use crate::values::decode_base64;
use keys::FileKind;

/// A parsed provisioning file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioning {
    pub kind: ProvisioningKind,
    /// In line order. The file was accepted; these are worth showing the user.
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvisioningKind {
    Initiator(InitiatorConfig),
    Target(TargetConfig),
}

/// The name `parse_provisioning_base64` gives its input in errors.
pub const BLOB_NAME: &str = "-e blob";

/// Parses a provisioning file's contents. `file` is only used to name the file in errors.
pub fn parse_provisioning(bytes: &[u8], file: &str) -> Result<Provisioning, ProvisionError> {
    let text = encoding::decode(bytes)
        .map_err(|e| ProvisionError::new(file, e.line(), None, &e.message()))?;
    let mut warnings = Vec::new();
    let entries = entries::known_entries(&text, file, &mut warnings)?;
    let kind = match entries::file_kind(&entries, file, &warnings)? {
        FileKind::Target => {
            ProvisioningKind::Target(target_file::build(&entries, file, &mut warnings)?)
        }
        FileKind::Initiator => {
            ProvisioningKind::Initiator(initiator_file::build(&entries, file, &mut warnings)?)
        }
    };
    Ok(Provisioning { kind, warnings })
}

/// Reads and parses a provisioning file; errors name it by `path` as given.
pub fn parse_provisioning_file(path: impl AsRef<Path>) -> Result<Provisioning, ProvisionError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let cannot_read = |e: std::io::Error| {
        ProvisionError::new(&name, None, None, &format!("cannot read the file: {e}"))
    };
    // One byte past the limit is enough for the parser to refuse an oversized file without reading it all.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(cannot_read)?;
    let mut provisioning = parse_provisioning(&bytes, &name)?;
    crate::key_paths::keys_beside_file_when_homeless(
        &mut provisioning.kind,
        path,
        &mut provisioning.warnings,
    );
    Ok(provisioning)
}

/// Parses `connectd -e BLOB`: a whole provisioning file in standard base64 (padding optional, line
/// breaks and spaces ignored, as a blob pasted from an e-mail or a script may have them).
pub fn parse_provisioning_base64(blob: &str) -> Result<Provisioning, ProvisionError> {
    let compact: String = blob.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = decode_base64(&compact)
        .ok_or_else(|| ProvisionError::new(BLOB_NAME, None, None, "invalid base64 in -e blob"))?;
    parse_provisioning(&bytes, BLOB_NAME)
}

impl Provisioning {
    /// The JSON the C ABI returns:
    /// `{"kind":"initiator","config":{...,"has_auth_pass":true,"has_auth_hash":false},"warnings":[...]}`
    /// or `{"kind":"target","config":{...},"warnings":[...]}`. Secrets are never included: the configs
    /// skip them when serialized, and the `has_*` flags let a UI say which credential the file holds.
    pub fn to_json(&self) -> String {
        let (kind, config) = match &self.kind {
            ProvisioningKind::Initiator(config) => (
                "initiator",
                ConfigView::Initiator {
                    config,
                    has_auth_pass: config.password.is_some(),
                    has_auth_hash: config.auth_hash.is_some(),
                },
            ),
            ProvisioningKind::Target(config) => ("target", ConfigView::Target(config)),
        };
        let view = JsonView {
            kind,
            config,
            warnings: &self.warnings,
        };
        // Serializing plain structs of strings and numbers cannot fail; should it ever, the caller
        // still gets JSON it can parse rather than a panic across the C ABI.
        serde_json::to_string(&view)
            .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string())
    }
}

#[derive(Serialize)]
struct JsonView<'a> {
    kind: &'static str,
    config: ConfigView<'a>,
    warnings: &'a [Warning],
}

#[derive(Serialize)]
#[serde(untagged)]
enum ConfigView<'a> {
    Initiator {
        #[serde(flatten)]
        config: &'a InitiatorConfig,
        has_auth_pass: bool,
        has_auth_hash: bool,
    },
    Target(&'a TargetConfig),
}

#[cfg(test)]
mod tests;
