//! The SQLite database (`DATA_DIR/p2p.db`): users, devices, shares and auth hashes.
//!
//! WAL mode and a busy timeout make the admin commands safe while the server runs: they open the same file
//! from another process, readers never block the writer, and a writer waits for the other instead of
//! failing with "database is locked".

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::store::SqliteStore;

pub const DB_FILE: &str = "p2p.db";
pub const SCHEMA_VERSION: i64 = 2;

const SCHEMA_V1: &str = "
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    -- Argon2id PHC string: salted and slow, never the password itself.
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE devices (
    uid TEXT PRIMARY KEY,            -- canonical form 80:00:00:00:01:00:0A:C2
    owner_id INTEGER NOT NULL REFERENCES users(id),
    name TEXT NOT NULL DEFAULT '',
    application_type INTEGER NOT NULL DEFAULT 1,
    secret_hash TEXT NOT NULL,       -- Argon2id PHC string of the device secret
    created_at INTEGER NOT NULL
);
CREATE TABLE shares (
    uid TEXT NOT NULL REFERENCES devices(uid) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (uid, user_id)
);
CREATE TABLE auth_hashes (
    id TEXT PRIMARY KEY,             -- 8 random bytes, hex: public half of the auth hash
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret_sha256 BLOB NOT NULL,     -- SHA-256 of the 32-byte random secret half
    label TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX auth_hashes_user ON auth_hashes(user_id);
CREATE TABLE schema_version (version INTEGER NOT NULL);
";

/// Version 2: the end-to-end keys. Public keys only: the server never holds a private one.
const SCHEMA_V1_TO_V2: &str = "
-- Base64 of the device's X25519 public key: NULL until it registers with one or `device add --key`.
ALTER TABLE devices ADD COLUMN public_key TEXT;
-- 1 after `device rotate-key`: the next registration may replace public_key.
ALTER TABLE devices ADD COLUMN key_rotation INTEGER NOT NULL DEFAULT 0;
CREATE TABLE initiator_keys (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    public_key TEXT NOT NULL,        -- base64 X25519 public key an initiator logged in with
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (user_id, public_key)
);
UPDATE schema_version SET version = 2;
";

pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_FILE)
}

/// Creates the database (if missing) with the schema. Used by `init`.
pub fn create(data_dir: &Path) -> Result<SqliteStore> {
    let path = db_path(data_dir);
    if !path.exists() {
        // Create the file first with owner-only permissions: SQLite gives its WAL and shared-memory
        // files the database's permissions, so the hashes stay private to the server's account.
        crate::keys::create_private_file(&path)
            .map_err(|e| Error::new(format!("cannot create {}: {e}", path.display())))?;
    }
    open_file(&path)
}

/// Opens the existing database of `data_dir` (admin commands and `run`).
pub fn open(data_dir: &Path) -> Result<SqliteStore> {
    let path = db_path(data_dir);
    if !path.exists() {
        return Err(Error::new(format!(
            "no database at {}: run `p2p-server init --data-dir {}` first",
            path.display(),
            data_dir.display()
        )));
    }
    open_file(&path)
}

fn open_file(path: &Path) -> Result<SqliteStore> {
    let ctx = |e: rusqlite::Error| Error::new(format!("database {}: {e}", path.display()));
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(ctx)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(ctx)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(ctx)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(ctx)?;
    // Deleted hashes are overwritten rather than left in free pages.
    conn.pragma_update(None, "secure_delete", "ON")
        .map_err(ctx)?;
    migrate(&conn).map_err(|e| Error::new(format!("database {}: {e}", path.display())))?;
    Ok(SqliteStore::new(conn))
}

fn migrate(conn: &Connection) -> Result<()> {
    let has_version: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_version {
        // IMMEDIATE: two processes creating the schema at once must not both run it.
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA_V1} INSERT INTO schema_version (version) VALUES (1); COMMIT;"
        ))
        .or_else(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            // Lost the race: the other process created it.
            match conn.query_row("SELECT version FROM schema_version", [], |r| {
                r.get::<_, i64>(0)
            }) {
                Ok(_) => Ok(()),
                Err(_) => Err(e),
            }
        })?;
    }
    upgrade_v1(conn)?;
    let version: i64 =
        conn.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))?;
    if version != SCHEMA_VERSION {
        return Err(Error::new(format!(
            "schema version {version} is not supported by this p2p-server (expects {SCHEMA_VERSION})"
        )));
    }
    Ok(())
}

/// Brings a version 1 database to version 2, in one transaction (IMMEDIATE: a second process
/// upgrading at the same time waits, then finds version 2 and does nothing).
fn upgrade_v1(conn: &Connection) -> Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let upgraded = conn
        .query_row("SELECT max(version) FROM schema_version", [], |r| {
            r.get::<_, i64>(0)
        })
        .and_then(|v| match v {
            1 => conn.execute_batch(SCHEMA_V1_TO_V2),
            _ => Ok(()),
        });
    match upgraded {
        Ok(()) => Ok(conn.execute_batch("COMMIT")?),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e.into())
        }
    }
}

#[cfg(test)]
pub fn memory() -> SqliteStore {
    let conn = Connection::open_in_memory().expect("in-memory sqlite");
    conn.pragma_update(None, "foreign_keys", "ON")
        .expect("pragma");
    migrate(&conn).expect("schema");
    SqliteStore::new(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_is_idempotent_and_records_the_version() {
        let dir = tempfile::tempdir().unwrap();
        drop(create(dir.path()).unwrap());
        let store = open(dir.path()).unwrap();
        let conn = store.connection();
        let v: i64 = conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_version_1_database_is_upgraded_keeping_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(dir.path());
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&format!(
                "{SCHEMA_V1} INSERT INTO schema_version (version) VALUES (1);
                 INSERT INTO users (name, password_hash, created_at) VALUES ('a', 'h', 1);
                 INSERT INTO devices (uid, owner_id, secret_hash, created_at)
                     VALUES ('80:00:00:00:01:00:0A:C2', 1, 'h', 1);"
            ))
            .unwrap();
        }
        let store = open(dir.path()).unwrap();
        let uid = "80:00:00:00:01:00:0A:C2".parse().unwrap();
        use crate::store::Store;
        assert_eq!(
            store.device_key(uid).unwrap(),
            Some(crate::store::StoredDeviceKey {
                public_key: None,
                rotation_allowed: false
            })
        );
        let v: i64 = store
            .connection()
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 2);
        drop(store);
        // Opening again leaves it as it is.
        open(dir.path()).unwrap();
    }

    #[test]
    fn open_without_init_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let e = open(dir.path()).unwrap_err();
        assert!(e.0.contains("p2p-server init"), "{e}");
    }
}
