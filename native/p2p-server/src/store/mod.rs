//! The storage seam: the rows the accounts layer reads and writes, behind one trait so the same rules
//! (`accounts.rs`: validation, hashing, "owners need no share", ...) run over SQLite or another engine.
//!
//! The methods are plain data access: no policy, no hashing. They are synchronous; the running server
//! calls them on the blocking pool (`Auth::with_db`), the admin commands directly.

pub mod migrate;
pub mod postgres;
pub mod sqlite;

use p2p_proto::Uid;

use crate::accounts::{AuthHashInfo, Device, Share, User, UserSecret};
use crate::error::{Error, Result};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// A device row to insert (the secret already hashed).
pub struct NewDevice<'a> {
    pub uid: Uid,
    pub owner_id: i64,
    pub name: &'a str,
    pub application_type: u16,
    pub secret_hash: &'a str,
    pub created_at: i64,
    /// The device's static public key (base64), when `device add --key` gave it.
    pub public_key: Option<&'a str>,
}

/// A device's recorded static key (schema version 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDeviceKey {
    /// Base64 of the 32-byte public key; `None` until the device registers with one or an admin adds it.
    pub public_key: Option<String>,
    /// `p2p-server device rotate-key` ran: the next registration may bring another key.
    pub rotation_allowed: bool,
}

/// A key an initiator installation logged in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitiatorKey {
    pub public_key: String,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// An auth hash row to insert (only the digest of its secret half).
pub struct NewAuthHash<'a> {
    pub id: &'a str,
    pub user_id: i64,
    pub secret_sha256: &'a [u8; 32],
    pub label: &'a str,
    pub created_at: i64,
}

/// What the store keeps of an auth hash to check one.
pub struct StoredAuthHash {
    pub user_id: i64,
    pub secret_sha256: Vec<u8>,
    pub revoked_at: Option<i64>,
}

pub trait Store: Send {
    // Users
    fn insert_user(&self, name: &str, password_hash: &str, created_at: i64) -> Result<()>;
    fn set_password_hash(&self, user_id: i64, password_hash: &str) -> Result<()>;
    fn find_user(&self, name: &str) -> Result<Option<User>>;
    fn user_secret(&self, name: &str) -> Result<Option<UserSecret>>;
    /// All users, ordered by name.
    fn list_users(&self) -> Result<Vec<User>>;
    fn owned_device_count(&self, user_id: i64) -> Result<i64>;
    /// Deletes the user; their shares and auth hashes go with them.
    fn delete_user(&self, user_id: i64) -> Result<()>;

    // Devices
    fn insert_device(&self, device: &NewDevice) -> Result<()>;
    fn device_exists(&self, uid: Uid) -> Result<bool>;
    /// False when there was no such device.
    fn delete_device(&self, uid: Uid) -> Result<bool>;
    /// All devices with their owner's name, ordered by UID.
    fn list_devices(&self) -> Result<Vec<Device>>;
    fn device_secret_hash(&self, uid: Uid) -> Result<Option<String>>;
    fn device_owner(&self, uid: Uid) -> Result<Option<i64>>;
    /// The device's recorded key; `None`: no such device.
    fn device_key(&self, uid: Uid) -> Result<Option<StoredDeviceKey>>;
    /// Records the device's key and ends an allowed rotation.
    fn set_device_key(&self, uid: Uid, public_key: &str) -> Result<()>;
    /// Lets the next registration replace the key. False when there was no such device.
    fn allow_key_rotation(&self, uid: Uid) -> Result<bool>;

    // Initiator keys
    /// Records that the user logged in with `public_key` at `now` (first seen, or seen again).
    fn record_initiator_key(&self, user_id: i64, public_key: &str, now: i64) -> Result<()>;
    /// The keys the user logged in with, in the order first seen.
    fn list_initiator_keys(&self, user_id: i64) -> Result<Vec<InitiatorKey>>;

    // Shares
    fn is_shared(&self, uid: Uid, user_id: i64) -> Result<bool>;
    fn insert_share(&self, uid: Uid, user_id: i64, created_at: i64) -> Result<()>;
    /// False when the device was not shared with the user.
    fn delete_share(&self, uid: Uid, user_id: i64) -> Result<bool>;
    /// Shares of one device or of all, ordered by UID and user name.
    fn list_shares(&self, uid: Option<Uid>) -> Result<Vec<Share>>;

    // Auth hashes
    /// Inserts the auth hash if its user has fewer than `max` active ones, as one atomic step (several
    /// processes may create at once); false when the user is at the cap.
    fn insert_auth_hash_if_below(&self, hash: &NewAuthHash, max: usize) -> Result<bool>;
    fn auth_hash(&self, id: &str) -> Result<Option<StoredAuthHash>>;
    /// Auth hashes of one user (by name) or of all, in the order they were created.
    fn list_auth_hashes(&self, user: Option<&str>) -> Result<Vec<AuthHashInfo>>;
    fn set_auth_hash_revoked(&self, id: &str, revoked_at: i64) -> Result<()>;
}

/// The store `run` and the admin commands use: PostgreSQL when `database` (a `postgres://` URL or
/// key/value string) is given, otherwise the SQLite database of `data_dir`. Blocks: call it off the
/// async workers.
pub fn open(data_dir: &std::path::Path, database: Option<&str>) -> Result<Box<dyn Store>> {
    Ok(match database {
        Some(config) => Box::new(PgStore::connect(config)?),
        None => Box::new(crate::db::open(data_dir)?),
    })
}

/// The cap as an SQL parameter (no cap: the largest count there is).
fn cap(max: usize) -> i64 {
    i64::try_from(max).unwrap_or(i64::MAX)
}

/// A UID as stored (canonical text) back to a `Uid`; a malformed one is a damaged database.
pub fn parse_stored_uid(text: &str) -> Result<Uid> {
    text.parse().map_err(|_| {
        Error::new(format!(
            "the database holds a malformed UID '{}'",
            crate::accounts::shown(text)
        ))
    })
}
