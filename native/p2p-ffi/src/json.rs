//! JSON in (configurations) and out (statuses).
//!
//! Error messages name the field at fault but never quote a credential's value: a configuration holds a
//! password, and these messages end up in PowerShell error records and logs.

use std::collections::HashMap;

use p2p_config::InitiatorConfig;
use p2p_net::TunnelStatus;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::FfiError;

/// Fields whose values must never appear in a message.
const SECRET_FIELDS: &[&str] = &["password", "auth_hash"];

/// Environment variables the host passes in (`"environment":{"P2P_SERVER":"..."}` in a configuration,
/// overrides or self-test options). On Unix a managed host (.NET, so PowerShell) keeps its own copy of the
/// environment: variables set there never reach the C runtime's, which is all `std::env` sees. The
/// library looks a variable up here first, then in the process environment.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(transparent)]
pub struct HostEnv(HashMap<String, String>);

impl HostEnv {
    /// The host's value of `name`, else the process environment's.
    pub fn var(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    }
}

/// The key under which a JSON object carries its [`HostEnv`].
pub const ENVIRONMENT_FIELD: &str = "environment";

/// Parses a session configuration and its optional `environment`. Unknown fields, missing fields and bad
/// values are INVALID_CONFIG with a message that names the field.
pub fn parse_config(text: &str) -> Result<(InitiatorConfig, HostEnv), FfiError> {
    const WHAT: &str = "configuration";
    // `InitiatorConfig` refuses unknown fields: take `environment` out first (only when it is there, so
    // every other document is parsed, and its errors positioned, exactly as written).
    let Some((rest, env)) = split_environment(text, WHAT)? else {
        return Ok((parse_object(text, WHAT)?, HostEnv::default()));
    };
    Ok((parse_object(&rest, WHAT)?, env))
}

/// When `text` is an object with an `environment` field: the object without it, and the field parsed.
fn split_environment(text: &str, what: &str) -> Result<Option<(String, HostEnv)>, FfiError> {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str::<serde_json::Value>(text)
    else {
        // Not an object: `parse_object` reports it.
        return Ok(None);
    };
    let Some(value) = map.remove(ENVIRONMENT_FIELD) else {
        return Ok(None);
    };
    let env = serde_json::from_value::<HostEnv>(value).map_err(|_| {
        FfiError::invalid_config(format!(
            "{what}: field '{ENVIRONMENT_FIELD}': expected an object of strings, like {{\"P2P_SERVER\":\"host:port\"}}"
        ))
    })?;
    let rest = serde_json::to_string(&map)
        .map_err(|e| FfiError::internal(format!("cannot write JSON: {e}")))?;
    Ok(Some((rest, env)))
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
