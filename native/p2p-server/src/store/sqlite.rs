//! The `Store` over the embedded SQLite database (`db.rs` opens it and keeps its schema).

use rusqlite::{params, Connection, OptionalExtension};

use p2p_proto::Uid;

use super::{
    parse_stored_uid, InitiatorKey, NewAuthHash, NewDevice, Store, StoredAuthHash, StoredDeviceKey,
};
use crate::accounts::{AuthHashInfo, Device, Share, User, UserSecret};
use crate::error::Result;

#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    pub fn new(conn: Connection) -> Self {
        SqliteStore { conn }
    }

    /// The connection itself: for `migrate`, which reads tables whole, and tests that inspect the file.
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }
}

fn user_row(r: &rusqlite::Row) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at: r.get(2)?,
    })
}

impl Store for SqliteStore {
    fn insert_user(&self, name: &str, password_hash: &str, created_at: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO users (name, password_hash, created_at) VALUES (?1, ?2, ?3)",
            params![name, password_hash, created_at],
        )?;
        Ok(())
    }

    fn set_password_hash(&self, user_id: i64, password_hash: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE users SET password_hash = ?1 WHERE id = ?2",
            params![password_hash, user_id],
        )?;
        Ok(())
    }

    fn find_user(&self, name: &str) -> Result<Option<User>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, name, created_at FROM users WHERE name = ?1",
                [name],
                user_row,
            )
            .optional()?)
    }

    fn user_secret(&self, name: &str) -> Result<Option<UserSecret>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, password_hash FROM users WHERE name = ?1",
                [name],
                |r| {
                    Ok(UserSecret {
                        id: r.get(0)?,
                        password_hash: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    fn list_users(&self) -> Result<Vec<User>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, name, created_at FROM users ORDER BY name")?;
        let rows = stmt.query_map([], user_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn owned_device_count(&self, user_id: i64) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM devices WHERE owner_id = ?1",
            [user_id],
            |r| r.get(0),
        )?)
    }

    fn delete_user(&self, user_id: i64) -> Result<()> {
        self.conn
            .execute("DELETE FROM users WHERE id = ?1", [user_id])?;
        Ok(())
    }

    fn insert_device(&self, d: &NewDevice) -> Result<()> {
        self.conn.execute(
            "INSERT INTO devices
                 (uid, owner_id, name, application_type, secret_hash, created_at, public_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                d.uid.to_string(),
                d.owner_id,
                d.name,
                d.application_type,
                d.secret_hash,
                d.created_at,
                d.public_key
            ],
        )?;
        Ok(())
    }

    fn device_exists(&self, uid: Uid) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM devices WHERE uid = ?1",
                [uid.to_string()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    fn delete_device(&self, uid: Uid) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM devices WHERE uid = ?1", [uid.to_string()])?
            > 0)
    }

    fn list_devices(&self) -> Result<Vec<Device>> {
        let mut stmt = self.conn.prepare(
            "SELECT d.uid, u.name, d.name, d.application_type, d.created_at
             FROM devices d JOIN users u ON u.id = d.owner_id ORDER BY d.uid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (uid, owner, name, app, created_at) = row?;
            out.push(Device {
                uid: parse_stored_uid(&uid)?,
                owner,
                name,
                application_type: u16::try_from(app).unwrap_or(0),
                created_at,
            });
        }
        Ok(out)
    }

    fn device_secret_hash(&self, uid: Uid) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT secret_hash FROM devices WHERE uid = ?1",
                [uid.to_string()],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn device_owner(&self, uid: Uid) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT owner_id FROM devices WHERE uid = ?1",
                [uid.to_string()],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn device_key(&self, uid: Uid) -> Result<Option<StoredDeviceKey>> {
        Ok(self
            .conn
            .query_row(
                "SELECT public_key, key_rotation FROM devices WHERE uid = ?1",
                [uid.to_string()],
                |r| {
                    Ok(StoredDeviceKey {
                        public_key: r.get(0)?,
                        rotation_allowed: r.get::<_, i64>(1)? != 0,
                    })
                },
            )
            .optional()?)
    }

    fn set_device_key(&self, uid: Uid, public_key: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE devices SET public_key = ?1, key_rotation = 0 WHERE uid = ?2",
            params![public_key, uid.to_string()],
        )?;
        Ok(())
    }

    fn allow_key_rotation(&self, uid: Uid) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE devices SET key_rotation = 1 WHERE uid = ?1",
            [uid.to_string()],
        )? > 0)
    }

    fn record_initiator_key(&self, user_id: i64, public_key: &str, now: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO initiator_keys (user_id, public_key, first_seen, last_seen)
             VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (user_id, public_key) DO UPDATE SET last_seen = excluded.last_seen",
            params![user_id, public_key, now],
        )?;
        Ok(())
    }

    fn list_initiator_keys(&self, user_id: i64) -> Result<Vec<InitiatorKey>> {
        let mut stmt = self.conn.prepare(
            "SELECT public_key, first_seen, last_seen FROM initiator_keys
             WHERE user_id = ?1 ORDER BY first_seen, public_key",
        )?;
        let rows = stmt.query_map([user_id], |r| {
            Ok(InitiatorKey {
                public_key: r.get(0)?,
                first_seen: r.get(1)?,
                last_seen: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn is_shared(&self, uid: Uid, user_id: i64) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM shares WHERE uid = ?1 AND user_id = ?2",
                params![uid.to_string(), user_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    fn insert_share(&self, uid: Uid, user_id: i64, created_at: i64) -> Result<()> {
        self.conn.execute(
            "INSERT INTO shares (uid, user_id, created_at) VALUES (?1, ?2, ?3)",
            params![uid.to_string(), user_id, created_at],
        )?;
        Ok(())
    }

    fn delete_share(&self, uid: Uid, user_id: i64) -> Result<bool> {
        Ok(self.conn.execute(
            "DELETE FROM shares WHERE uid = ?1 AND user_id = ?2",
            params![uid.to_string(), user_id],
        )? > 0)
    }

    fn list_shares(&self, uid: Option<Uid>) -> Result<Vec<Share>> {
        let mut stmt = self.conn.prepare(
            "SELECT s.uid, u.name, s.created_at FROM shares s JOIN users u ON u.id = s.user_id
             WHERE ?1 IS NULL OR s.uid = ?1 ORDER BY s.uid, u.name",
        )?;
        let rows = stmt.query_map([uid.map(|u| u.to_string())], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (uid, user, created_at) = row?;
            out.push(Share {
                uid: parse_stored_uid(&uid)?,
                user,
                created_at,
            });
        }
        Ok(out)
    }

    fn insert_auth_hash_if_below(&self, h: &NewAuthHash, max: usize) -> Result<bool> {
        // IMMEDIATE takes the write lock before counting, so another process's insert cannot slip in
        // between (a deferred transaction would count first and fail to upgrade its lock).
        let tx = rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )?;
        let inserted = tx.execute(
            "INSERT INTO auth_hashes (id, user_id, secret_sha256, label, created_at)
             SELECT ?1, ?2, ?3, ?4, ?5 WHERE (SELECT count(*) FROM auth_hashes
                 WHERE user_id = ?2 AND revoked_at IS NULL) < ?6",
            params![
                h.id,
                h.user_id,
                h.secret_sha256.to_vec(),
                h.label,
                h.created_at,
                super::cap(max)
            ],
        )?;
        tx.commit()?;
        Ok(inserted == 1)
    }

    fn auth_hash(&self, id: &str) -> Result<Option<StoredAuthHash>> {
        Ok(self
            .conn
            .query_row(
                "SELECT user_id, secret_sha256, revoked_at FROM auth_hashes WHERE id = ?1",
                [id],
                |r| {
                    Ok(StoredAuthHash {
                        user_id: r.get(0)?,
                        secret_sha256: r.get(1)?,
                        revoked_at: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    fn list_auth_hashes(&self, user: Option<&str>) -> Result<Vec<AuthHashInfo>> {
        let mut stmt = self.conn.prepare(
            "SELECT a.id, u.name, a.label, a.created_at, a.revoked_at FROM auth_hashes a
             JOIN users u ON u.id = a.user_id WHERE ?1 IS NULL OR u.name = ?1 ORDER BY a.created_at, a.id",
        )?;
        let rows = stmt.query_map([user], |r| {
            Ok(AuthHashInfo {
                id: r.get(0)?,
                user: r.get(1)?,
                label: r.get(2)?,
                created_at: r.get(3)?,
                revoked_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn set_auth_hash_revoked(&self, id: &str, revoked_at: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE auth_hashes SET revoked_at = ?1 WHERE id = ?2",
            params![revoked_at, id],
        )?;
        Ok(())
    }
}
