//! JSON in (configurations) and out (statuses).
//!
//! Error messages name the field at fault but never quote a credential's value: a configuration holds a
//! password, and these messages end up in PowerShell error records and logs.

use p2p_config::InitiatorConfig;
use p2p_net::TunnelStatus;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::FfiError;

/// Fields whose values must never appear in a message.
const SECRET_FIELDS: &[&str] = &["password", "auth_hash"];

/// Parses a session configuration. Unknown fields, missing fields and bad values are INVALID_CONFIG with a
/// message that names the field.
pub fn parse_config(text: &str) -> Result<InitiatorConfig, FfiError> {
    parse_object(text, "configuration")
}

/// Parses `text` as `T` (a JSON object), naming the offending field in the error.
pub fn parse_object<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, FfiError> {
    // Syntax first, so a malformed document is reported as such and not as a field error.
    match serde_json::from_str::<serde_json::Value>(text) {
        Err(e) => {
            return Err(FfiError::invalid_config(format!(
                "malformed {what} JSON: {}",
                syntax_message(&e)
            )))
        }
        // Said here, because serde's own message would quote the value (which could be a password).
        Ok(v) if !v.is_object() => {
            return Err(FfiError::invalid_config(format!(
                "the {what} must be a JSON object"
            )))
        }
        Ok(_) => {}
    }
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // Field names and enum values come from the caller's JSON, where "\n" is legal: escape control
        // characters so the message stays one line (the cmdlets show it as an error record).
        FfiError::invalid_config(p2p_config::values::escape_controls(&field_message(
            what, &path, &inner,
        )))
    })
}

/// serde_json's syntax messages quote no input, only positions.
fn syntax_message(e: &serde_json::Error) -> String {
    e.to_string()
}

fn field_message(what: &str, path: &str, inner: &serde_json::Error) -> String {
    let top = path.split(['.', '[']).next().unwrap_or_default();
    if SECRET_FIELDS.contains(&top) {
        // serde's "invalid type" messages quote the value: say only what was expected.
        return format!("{what}: field '{top}': invalid value (expected a string)");
    }
    // serde_json appends " at line L column C"; keep it, it helps with hand-written JSON.
    let msg = inner.to_string();
    if path.is_empty() || path == "." {
        // Unknown and missing fields are reported at the object itself and name the field in the message.
        format!("{what}: {msg}")
    } else {
        format!("{what}: field '{path}': {msg}")
    }
}

/// A status with the session's handle in front: `{"id":1,"name":...,<every TunnelStatus field>}`.
#[derive(Serialize)]
pub struct StatusWithId<'a> {
    pub id: u64,
    #[serde(flatten)]
    pub status: &'a TunnelStatus,
}

pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, FfiError> {
    serde_json::to_string(value).map_err(|e| FfiError::internal(format!("cannot write JSON: {e}")))
}
