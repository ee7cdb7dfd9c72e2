//! The admin subcommands: each takes the database (and, for secrets, the value already read by
//! `secret_input`) and returns the text to print, so they are tested without a process.
//!
//! They open the database on their own connection, which is safe while `run` serves the same file (WAL).

use std::path::Path;

use p2p_proto::crypto::PublicStaticKey;
use p2p_proto::Uid;
use serde::Serialize;

use crate::accounts;
use crate::error::{Error, Result};
use crate::store::{self, Store};
use crate::{db, keys};
use p2p_link::clock::format_utc;

/// `init`: creates the data directory, the database and the server key; returns the `server_key` line.
pub fn init(data_dir: &Path) -> Result<String> {
    init_with(data_dir, None)
}

/// `init` with the accounts in PostgreSQL (`--database`): the data directory then holds only the key.
pub fn init_with(data_dir: &Path, database: Option<&str>) -> Result<String> {
    // Check first, so a second `init` changes nothing at all.
    if keys::key_path(data_dir).exists() {
        return Err(Error::new(format!(
            "{} is already initialized (it has a server key): use `p2p-server key --data-dir {}` to print it",
            data_dir.display(),
            data_dir.display()
        )));
    }
    keys::create_private_dir(data_dir)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", data_dir.display())))?;
    match database {
        Some(config) => drop(store::PgStore::connect(config)?),
        None => drop(db::create(data_dir)?),
    }
    let public = keys::create(data_dir)?;
    Ok(keys::server_key_line(&public))
}

/// `key`: the `server_key` line of an initialized data directory.
pub fn key(data_dir: &Path) -> Result<String> {
    Ok(keys::server_key_line(&keys::load_public(data_dir)?))
}

/// How list commands print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// A listing as JSON (every field of the rows) or as a table (the columns `cells` picks).
fn listing<R: Serialize>(
    rows: Vec<R>,
    format: Format,
    header: &[&str],
    cells: impl Fn(R) -> Vec<String>,
) -> Result<String> {
    match format {
        Format::Json => serde_json::to_string_pretty(&rows)
            .map_err(|e| Error::new(format!("encoding JSON: {e}"))),
        Format::Text => Ok(table(header, rows.into_iter().map(cells).collect())),
    }
}

/// Left-aligned columns, two spaces apart, header first.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out
    };
    let mut out = vec![line(header.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

// ---------------------------------------------------------------------------------------------------

pub fn user_add(conn: &dyn Store, name: &str, password: &str) -> Result<String> {
    accounts::add_user(conn, name, password)?;
    Ok(format!("added user '{name}'"))
}

pub fn user_passwd(conn: &dyn Store, name: &str, password: &str) -> Result<String> {
    accounts::set_password(conn, name, password)?;
    Ok(format!("changed the password of user '{name}'"))
}

pub fn user_remove(conn: &dyn Store, name: &str) -> Result<String> {
    accounts::remove_user(conn, name)?;
    Ok(format!(
        "removed user '{name}' (with their shares and auth hashes)"
    ))
}

#[derive(Serialize)]
struct UserRow {
    name: String,
    created: String,
}

pub fn user_list(conn: &dyn Store, format: Format) -> Result<String> {
    let rows: Vec<UserRow> = accounts::list_users(conn)?
        .into_iter()
        .map(|u| UserRow {
            name: u.name,
            created: format_utc(u.created_at),
        })
        .collect();
    listing(rows, format, &["NAME", "CREATED"], |r| {
        vec![r.name, r.created]
    })
}

pub fn device_add(
    conn: &dyn Store,
    uid: Uid,
    owner: &str,
    name: &str,
    application_type: u16,
    secret: &str,
) -> Result<String> {
    device_add_with_key(conn, uid, owner, name, application_type, secret, None)
}

/// `device add --key`: [`device_add`] with the device's public key recorded.
pub fn device_add_with_key(
    conn: &dyn Store,
    uid: Uid,
    owner: &str,
    name: &str,
    application_type: u16,
    secret: &str,
    key: Option<&PublicStaticKey>,
) -> Result<String> {
    accounts::add_device_with_key(conn, uid, owner, name, application_type, secret, key)?;
    let mut done = format!("added device {uid} owned by '{owner}'");
    if let Some(key) = key {
        done.push_str(&format!("\ndevice_key {}", key.fingerprint()));
    }
    Ok(done)
}

/// `device show UID`: the device's row and its recorded key.
pub fn device_show(conn: &dyn Store, uid: Uid) -> Result<String> {
    let stored = accounts::device_key(conn, uid)?;
    let device = accounts::list_devices(conn)?
        .into_iter()
        .find(|d| d.uid == uid)
        .ok_or_else(|| Error::new(format!("no device with UID {uid}")))?;
    let key = match accounts::recorded_key(&stored)? {
        Some(k) => k.fingerprint().to_string(),
        None => "none (recorded at its first registration with a key)".to_string(),
    };
    let mut out = format!(
        "uid {}\nowner {}\nname {}\napplication_type {}\ncreated {}\ndevice_key {key}",
        device.uid,
        device.owner,
        device.name,
        device.application_type,
        format_utc(device.created_at)
    );
    if stored.rotation_allowed {
        out.push_str("\nkey_rotation allowed (the next registration may bring a new key)");
    }
    Ok(out)
}

/// `device rotate-key UID`: the device's next registration may replace its recorded key.
pub fn device_rotate_key(conn: &dyn Store, uid: Uid) -> Result<String> {
    let stored = accounts::allow_key_rotation(conn, uid)?;
    Ok(match accounts::recorded_key(&stored)? {
        Some(old) => format!(
            "device {uid}: the next registration may replace key {} (the server logs both fingerprints)",
            old.fingerprint()
        ),
        None => format!("device {uid} has no key yet: its first registration with one records it"),
    })
}

/// `user keys NAME`: the keys the user's initiators logged in with.
pub fn user_keys(conn: &dyn Store, name: &str, format: Format) -> Result<String> {
    #[derive(Serialize)]
    struct KeyRow {
        fingerprint: String,
        public_key: String,
        first_seen: String,
        last_seen: String,
    }
    let rows: Vec<KeyRow> = accounts::initiator_keys(conn, name)?
        .into_iter()
        .map(|k| KeyRow {
            fingerprint: PublicStaticKey::from_base64(&k.public_key)
                .map_or_else(|| "malformed".to_string(), |p| p.fingerprint().to_string()),
            public_key: k.public_key,
            first_seen: format_utc(k.first_seen),
            last_seen: format_utc(k.last_seen),
        })
        .collect();
    listing(
        rows,
        format,
        &["FINGERPRINT", "FIRST SEEN", "LAST SEEN"],
        |r| vec![r.fingerprint, r.first_seen, r.last_seen],
    )
}

pub fn device_remove(conn: &dyn Store, uid: Uid) -> Result<String> {
    accounts::remove_device(conn, uid)?;
    Ok(format!("removed device {uid} (with its shares)"))
}

#[derive(Serialize)]
struct DeviceRow {
    uid: Uid,
    owner: String,
    name: String,
    application_type: u16,
    created: String,
}

pub fn device_list(conn: &dyn Store, format: Format) -> Result<String> {
    let rows: Vec<DeviceRow> = accounts::list_devices(conn)?
        .into_iter()
        .map(|d| DeviceRow {
            uid: d.uid,
            owner: d.owner,
            name: d.name,
            application_type: d.application_type,
            created: format_utc(d.created_at),
        })
        .collect();
    listing(
        rows,
        format,
        &["UID", "OWNER", "APP", "CREATED", "NAME"],
        |r| {
            vec![
                r.uid.to_string(),
                r.owner,
                r.application_type.to_string(),
                r.created,
                r.name,
            ]
        },
    )
}

pub fn share_add(conn: &dyn Store, uid: Uid, user: &str) -> Result<String> {
    accounts::add_share(conn, uid, user)?;
    Ok(format!("shared device {uid} with '{user}'"))
}

pub fn share_remove(conn: &dyn Store, uid: Uid, user: &str) -> Result<String> {
    accounts::remove_share(conn, uid, user)?;
    Ok(format!("device {uid} is no longer shared with '{user}'"))
}

#[derive(Serialize)]
struct ShareRow {
    uid: Uid,
    user: String,
    created: String,
}

pub fn share_list(conn: &dyn Store, uid: Option<Uid>, format: Format) -> Result<String> {
    let rows: Vec<ShareRow> = accounts::list_shares(conn, uid)?
        .into_iter()
        .map(|s| ShareRow {
            uid: s.uid,
            user: s.user,
            created: format_utc(s.created_at),
        })
        .collect();
    listing(rows, format, &["UID", "USER", "CREATED"], |r| {
        vec![r.uid.to_string(), r.user, r.created]
    })
}

#[derive(Serialize)]
struct AuthHashRow {
    id: String,
    user: String,
    label: String,
    created: String,
    revoked: Option<String>,
}

pub fn auth_hash_list(conn: &dyn Store, user: Option<&str>, format: Format) -> Result<String> {
    let rows: Vec<AuthHashRow> = accounts::list_auth_hashes(conn, user)?
        .into_iter()
        .map(|a| AuthHashRow {
            id: a.id,
            user: a.user,
            label: a.label,
            created: format_utc(a.created_at),
            revoked: a.revoked_at.map(format_utc),
        })
        .collect();
    listing(
        rows,
        format,
        &["ID", "USER", "CREATED", "REVOKED", "LABEL"],
        |r| {
            vec![
                r.id,
                r.user,
                r.created,
                r.revoked.unwrap_or_else(|| "-".into()),
                r.label,
            ]
        },
    )
}

pub fn auth_hash_revoke(conn: &dyn Store, id: &str) -> Result<String> {
    accounts::revoke_auth_hash(conn, id)?;
    Ok(format!(
        "revoked auth hash '{}'",
        id.split('.').next().unwrap_or_default().trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_twice_is_refused_and_key_prints_the_same_line() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested").join("data");
        let line = init(&data).unwrap();
        assert!(line.starts_with("server_key "), "{line}");
        assert_eq!(key(&data).unwrap(), line);
        let e = init(&data).unwrap_err();
        assert!(e.0.contains("already initialized"), "{e}");
    }

    #[test]
    fn lists_as_table_and_json() {
        let conn = db::memory();
        user_add(&conn, "bob", "pw").unwrap();
        let uid: Uid = "80:00:00:00:01:00:0A:C2".parse().unwrap();
        device_add(&conn, uid, "bob", "my web", 28, "s").unwrap();
        let text = device_list(&conn, Format::Text).unwrap();
        assert!(text.starts_with("UID"), "{text}");
        assert!(text.contains("80:00:00:00:01:00:0A:C2  bob"), "{text}");
        let v: serde_json::Value =
            serde_json::from_str(&device_list(&conn, Format::Json).unwrap()).unwrap();
        assert_eq!(v[0]["uid"], "80:00:00:00:01:00:0A:C2");
        assert_eq!(v[0]["application_type"], 28);
        let users: serde_json::Value =
            serde_json::from_str(&user_list(&conn, Format::Json).unwrap()).unwrap();
        assert_eq!(users[0]["name"], "bob");
        assert!(!user_list(&conn, Format::Text).unwrap().contains("argon2"));
    }
}
