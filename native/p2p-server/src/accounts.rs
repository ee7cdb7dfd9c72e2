//! Users, devices, shares and auth hashes in the database: the synchronous data layer shared by the admin
//! commands and the running server (`auth.rs` wraps it for the async control channel).
//!
//! Passwords and device secrets are stored as Argon2id PHC strings (salted, slow); auth hashes as a
//! SHA-256 digest, because their secret half is 32 random bytes that no dictionary can guess.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use p2p_proto::crypto::PublicStaticKey;
use p2p_proto::Uid;

use crate::error::{Error, Result};
use crate::store::{InitiatorKey, NewAuthHash, NewDevice, Store, StoredAuthHash, StoredDeviceKey};
use p2p_link::clock::now_unix;

/// Longest user name, device label or auth-hash label we store.
pub const MAX_NAME_LEN: usize = 64;
/// Longest password or device secret we hash (Argon2 accepts more; nobody needs more).
pub const MAX_SECRET_LEN: usize = 1024;

// ---------------------------------------------------------------------------------------------------
// Hashing

/// Argon2id with the crate's defaults (the OWASP recommendation: 19 MiB, 2 passes), random salt.
pub fn hash_secret(secret: &str) -> Result<String> {
    check_secret(secret, "password")?;
    Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::new(format!("cannot hash the secret: {e}")))
}

/// Checks `secret` against a stored PHC string (the parameters come from the string, so old hashes keep
/// working if the defaults change). The final comparison is constant time.
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    secret.len() <= MAX_SECRET_LEN
        && Argon2::default()
            .verify_password(secret.as_bytes(), phc)
            .is_ok()
}

fn check_secret(secret: &str, what: &str) -> Result<()> {
    if secret.is_empty() {
        return Err(Error::new(format!("the {what} is empty")));
    }
    if secret.len() > MAX_SECRET_LEN {
        return Err(Error::new(format!(
            "the {what} is too long ({} bytes, at most {MAX_SECRET_LEN})",
            secret.len()
        )));
    }
    Ok(())
}

/// User names: what remote.it accepts (e-mail addresses) and nothing that could confuse a log or a shell.
pub fn check_user_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._-@+".contains(c);
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(ok_char) {
        return Err(Error::new(format!(
            "invalid user name '{}': use 1 to {MAX_NAME_LEN} letters, digits or . _ - @ +",
            shown(name)
        )));
    }
    Ok(())
}

/// Labels (device names, auth-hash labels): any printable text up to [`MAX_NAME_LEN`] characters.
pub fn check_label(label: &str, what: &str) -> Result<()> {
    if label.chars().count() > MAX_NAME_LEN || label.chars().any(char::is_control) {
        return Err(Error::new(format!(
            "invalid {what} '{}': at most {MAX_NAME_LEN} printable characters",
            shown(label)
        )));
    }
    Ok(())
}

/// A user-supplied value made safe to echo in one line of an error or a log.
pub fn shown(text: &str) -> String {
    shown_up_to(text, MAX_NAME_LEN)
}

/// [`shown`] for longer text (a device's reason for refusing a session), cut at `max` characters.
pub fn shown_up_to(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().count() > max {
        out.push_str("...");
    }
    out
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b)
        .map_err(|e| Error::new(format!("the system random generator failed: {e}")))?;
    Ok(b)
}

/// A fresh device secret for `device add --generate-secret`: 32 random bytes, hex.
pub fn generate_device_secret() -> Result<Zeroizing<String>> {
    Ok(Zeroizing::new(hex::encode(*Zeroizing::new(
        random_bytes::<32>()?,
    ))))
}

// ---------------------------------------------------------------------------------------------------
// Users

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
}

/// A user and the stored hash of their password (for login).
pub struct UserSecret {
    pub id: i64,
    pub password_hash: String,
}

pub fn add_user(store: &dyn Store, name: &str, password: &str) -> Result<()> {
    check_user_name(name)?;
    if store.find_user(name)?.is_some() {
        return Err(Error::new(format!("user '{name}' already exists")));
    }
    let hash = hash_secret(password)?;
    store.insert_user(name, &hash, now_unix())
}

pub fn set_password(store: &dyn Store, name: &str, password: &str) -> Result<()> {
    let user = require_user(store, name)?;
    let hash = hash_secret(password)?;
    store.set_password_hash(user.id, &hash)
}

pub fn find_user(store: &dyn Store, name: &str) -> Result<Option<User>> {
    store.find_user(name)
}

fn require_user(store: &dyn Store, name: &str) -> Result<User> {
    store
        .find_user(name)?
        .ok_or_else(|| Error::new(format!("unknown user '{}'", shown(name))))
}

pub fn user_secret(store: &dyn Store, name: &str) -> Result<Option<UserSecret>> {
    store.user_secret(name)
}

pub fn list_users(store: &dyn Store) -> Result<Vec<User>> {
    store.list_users()
}

/// Removes a user with their shares and auth hashes. A user who still owns devices is refused: removing
/// the devices silently would cut off every user they are shared with.
pub fn remove_user(store: &dyn Store, name: &str) -> Result<()> {
    let user = require_user(store, name)?;
    let owned = store.owned_device_count(user.id)?;
    if owned > 0 {
        return Err(Error::new(format!(
            "user '{name}' owns {owned} device(s): remove them first (`p2p-server device list`)"
        )));
    }
    store.delete_user(user.id)
}

// ---------------------------------------------------------------------------------------------------
// Devices

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub uid: Uid,
    pub owner: String,
    pub name: String,
    pub application_type: u16,
    pub created_at: i64,
}

pub fn add_device(
    store: &dyn Store,
    uid: Uid,
    owner: &str,
    name: &str,
    application_type: u16,
    secret: &str,
) -> Result<()> {
    add_device_with_key(store, uid, owner, name, application_type, secret, None)
}

/// [`add_device`] with the device's static public key recorded at once (`device add --key`), so that
/// not even its first registration is taken on trust.
pub fn add_device_with_key(
    store: &dyn Store,
    uid: Uid,
    owner: &str,
    name: &str,
    application_type: u16,
    secret: &str,
    public_key: Option<&PublicStaticKey>,
) -> Result<()> {
    check_label(name, "device name")?;
    check_secret(secret, "device secret")?;
    let owner = require_user(store, owner)?;
    if store.device_exists(uid)? {
        return Err(Error::new(format!("device {uid} already exists")));
    }
    let hash = hash_secret(secret)?;
    store.insert_device(&NewDevice {
        uid,
        owner_id: owner.id,
        name,
        application_type,
        secret_hash: &hash,
        created_at: now_unix(),
        public_key: public_key.map(PublicStaticKey::to_base64).as_deref(),
    })
}

/// A device's static key as `device add --key` takes it: base64 of the 32-byte public key.
pub fn parse_device_key(text: &str) -> Result<PublicStaticKey> {
    PublicStaticKey::from_base64(text.trim()).ok_or_else(|| {
        Error::new(format!(
            "'{}' is not a device key: expected the device's public key in base64 (44 characters)",
            shown(text)
        ))
    })
}

/// The device's recorded key, or an error naming the UID when there is no such device.
pub fn device_key(store: &dyn Store, uid: Uid) -> Result<StoredDeviceKey> {
    store
        .device_key(uid)?
        .ok_or_else(|| Error::new(format!("no device with UID {uid}")))
}

/// The recorded key as a key (a malformed one is a damaged database).
pub fn recorded_key(stored: &StoredDeviceKey) -> Result<Option<PublicStaticKey>> {
    stored
        .public_key
        .as_deref()
        .map(|k| {
            PublicStaticKey::from_base64(k)
                .ok_or_else(|| Error::new("the database holds a malformed device key"))
        })
        .transpose()
}

/// `device rotate-key`: the next registration may replace the device's key.
pub fn allow_key_rotation(store: &dyn Store, uid: Uid) -> Result<StoredDeviceKey> {
    let stored = device_key(store, uid)?;
    store.allow_key_rotation(uid)?;
    Ok(stored)
}

/// What a registration's key did to the device's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisteredKey {
    /// The target sent no key (an older connectd): nothing recorded, no end-to-end session with it.
    None,
    /// The recorded key, presented again.
    Same,
    /// The device's first key, now recorded.
    Recorded,
    /// An administrator allowed a rotation: the new key replaced this one.
    Rotated { old: PublicStaticKey },
    /// Another key than the recorded one, with no rotation allowed: the registration is refused.
    Changed { recorded: PublicStaticKey },
}

/// Checks the key a target registers with against the device's record: records a first key or an
/// allowed rotation, refuses (`Changed`) any other new key. This protects the device's identity
/// against someone who holds its secret but not its key.
pub fn register_device_key(
    store: &dyn Store,
    uid: Uid,
    presented: Option<&PublicStaticKey>,
) -> Result<RegisteredKey> {
    let Some(presented) = presented else {
        return Ok(RegisteredKey::None);
    };
    let stored = device_key(store, uid)?;
    let outcome = match recorded_key(&stored)? {
        Some(recorded) if recorded == *presented => return Ok(RegisteredKey::Same),
        Some(recorded) if !stored.rotation_allowed => {
            return Ok(RegisteredKey::Changed { recorded })
        }
        Some(old) => RegisteredKey::Rotated { old },
        None => RegisteredKey::Recorded,
    };
    store.set_device_key(uid, &presented.to_base64())?;
    Ok(outcome)
}

/// Records that `user_id` logged in with `key`.
pub fn record_initiator_key(store: &dyn Store, user_id: i64, key: &PublicStaticKey) -> Result<()> {
    store.record_initiator_key(user_id, &key.to_base64(), now_unix())
}

/// The keys a user (by name) logged in with.
pub fn initiator_keys(store: &dyn Store, user: &str) -> Result<Vec<InitiatorKey>> {
    let user = require_user(store, user)?;
    store.list_initiator_keys(user.id)
}

pub fn remove_device(store: &dyn Store, uid: Uid) -> Result<()> {
    if !store.delete_device(uid)? {
        return Err(Error::new(format!("no device with UID {uid}")));
    }
    Ok(())
}

pub fn list_devices(store: &dyn Store) -> Result<Vec<Device>> {
    store.list_devices()
}

/// The stored hash of a device's secret, or `None` if there is no such device.
pub fn device_secret_hash(store: &dyn Store, uid: Uid) -> Result<Option<String>> {
    store.device_secret_hash(uid)
}

/// What a user may do with a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Owner,
    Shared,
    NotShared,
    NoSuchDevice,
}

pub fn access(store: &dyn Store, uid: Uid, user_id: i64) -> Result<Access> {
    Ok(match store.device_owner(uid)? {
        None => Access::NoSuchDevice,
        Some(o) if o == user_id => Access::Owner,
        Some(_) if store.is_shared(uid, user_id)? => Access::Shared,
        Some(_) => Access::NotShared,
    })
}

// ---------------------------------------------------------------------------------------------------
// Shares

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub uid: Uid,
    pub user: String,
    pub created_at: i64,
}

pub fn add_share(store: &dyn Store, uid: Uid, user: &str) -> Result<()> {
    let u = require_user(store, user)?;
    match access(store, uid, u.id)? {
        Access::NoSuchDevice => Err(Error::new(format!("no device with UID {uid}"))),
        Access::Owner => Err(Error::new(format!(
            "user '{user}' owns device {uid}: owners need no share"
        ))),
        Access::Shared => Err(Error::new(format!(
            "device {uid} is already shared with '{user}'"
        ))),
        Access::NotShared => store.insert_share(uid, u.id, now_unix()),
    }
}

pub fn remove_share(store: &dyn Store, uid: Uid, user: &str) -> Result<()> {
    let u = require_user(store, user)?;
    if !store.delete_share(uid, u.id)? {
        return Err(Error::new(format!(
            "device {uid} is not shared with '{user}'"
        )));
    }
    Ok(())
}

pub fn list_shares(store: &dyn Store, uid: Option<Uid>) -> Result<Vec<Share>> {
    store.list_shares(uid)
}

// ---------------------------------------------------------------------------------------------------
// Auth hashes: `<id>.<secret>`, id = 8 random bytes hex (public, names the hash for revocation),
// secret = 32 random bytes hex (never stored).

const AUTH_HASH_ID_LEN: usize = 16;
const AUTH_HASH_SECRET_LEN: usize = 64;

/// The stored digest: the server's public key is part of it, so a hash issued here is worthless on a
/// server with another key even if someone copied the database there.
fn auth_hash_digest(server_key: &[u8; 32], id: &str, secret: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"remoteitp2p auth-hash v1\0");
    h.update(server_key);
    h.update(id.as_bytes());
    h.update(secret);
    h.finalize().into()
}

/// Issues a new auth hash for `user_id` and returns its text (shown once, never stored).
pub fn create_auth_hash(
    store: &dyn Store,
    user_id: i64,
    label: &str,
    server_key: &[u8; 32],
) -> Result<Zeroizing<String>> {
    create_auth_hash_below(store, user_id, label, server_key, usize::MAX)?
        .ok_or_else(|| Error::new("no more auth hashes can be issued to this user"))
}

/// Like [`create_auth_hash`], unless the user already has `max` active auth hashes (then `None`):
/// checked and inserted as one step, so creations at once on several nodes cannot overshoot.
pub fn create_auth_hash_below(
    store: &dyn Store,
    user_id: i64,
    label: &str,
    server_key: &[u8; 32],
    max: usize,
) -> Result<Option<Zeroizing<String>>> {
    check_label(label, "auth-hash label")?;
    let id = hex::encode(random_bytes::<8>()?);
    let secret = Zeroizing::new(random_bytes::<32>()?);
    let digest = auth_hash_digest(server_key, &id, &secret);
    let row = NewAuthHash {
        id: &id,
        user_id,
        secret_sha256: &digest,
        label,
        created_at: now_unix(),
    };
    if !store.insert_auth_hash_if_below(&row, max)? {
        return Ok(None);
    }
    Ok(Some(Zeroizing::new(format!(
        "{id}.{}",
        hex::encode(*secret)
    ))))
}

/// Why an auth hash was not accepted (all are `AuthFailed` to the client; the server log tells them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthHashCheck {
    Valid,
    Malformed,
    Unknown,
    WrongUser,
    Revoked,
    WrongSecret,
}

/// Checks `text` (`<id>.<secret>`) for the user `user_id`.
pub fn check_auth_hash(
    store: &dyn Store,
    user_id: i64,
    text: &str,
    server_key: &[u8; 32],
) -> Result<AuthHashCheck> {
    let Some((id, secret_hex)) = text.trim().split_once('.') else {
        return Ok(AuthHashCheck::Malformed);
    };
    if id.len() != AUTH_HASH_ID_LEN
        || secret_hex.len() != AUTH_HASH_SECRET_LEN
        || !id.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Ok(AuthHashCheck::Malformed);
    }
    let mut secret = Zeroizing::new([0u8; 32]);
    if hex::decode_to_slice(secret_hex, secret.as_mut()).is_err() {
        return Ok(AuthHashCheck::Malformed);
    }
    let id = id.to_ascii_lowercase();
    let Some(stored) = store.auth_hash(&id)? else {
        return Ok(AuthHashCheck::Unknown);
    };
    let digest = auth_hash_digest(server_key, &id, &secret);
    if !bool::from(digest.as_slice().ct_eq(stored.secret_sha256.as_slice())) {
        return Ok(AuthHashCheck::WrongSecret);
    }
    if stored.user_id != user_id {
        return Ok(AuthHashCheck::WrongUser);
    }
    if stored.revoked_at.is_some() {
        return Ok(AuthHashCheck::Revoked);
    }
    Ok(AuthHashCheck::Valid)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHashInfo {
    pub id: String,
    pub user: String,
    pub label: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

pub fn list_auth_hashes(store: &dyn Store, user: Option<&str>) -> Result<Vec<AuthHashInfo>> {
    if let Some(name) = user {
        require_user(store, name)?;
    }
    store.list_auth_hashes(user)
}

/// Revokes by id (the part before the '.'; a whole auth hash is accepted too, and only its id is used).
pub fn revoke_auth_hash(store: &dyn Store, id: &str) -> Result<()> {
    let id = id
        .split('.')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match store.auth_hash(&id)? {
        None => Err(Error::new(format!("no auth hash with id '{}'", shown(&id)))),
        Some(StoredAuthHash {
            revoked_at: Some(_),
            ..
        }) => Err(Error::new(format!("auth hash '{id}' is already revoked"))),
        Some(_) => store.set_auth_hash_revoked(&id, now_unix()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    fn uid(s: &str) -> Uid {
        s.parse().unwrap()
    }

    #[test]
    fn passwords_are_hashed_and_verified() {
        let conn = db::memory();
        add_user(&conn, "bob@example.com", "hunter22").unwrap();
        let s = user_secret(&conn, "bob@example.com").unwrap().unwrap();
        assert!(s.password_hash.starts_with("$argon2id$"));
        assert!(!s.password_hash.contains("hunter22"));
        assert!(verify_secret("hunter22", &s.password_hash));
        assert!(!verify_secret("hunter23", &s.password_hash));
        let e = add_user(&conn, "bob@example.com", "x").unwrap_err();
        assert!(e.0.contains("already exists"), "{e}");
        assert!(add_user(&conn, "bad name", "x")
            .unwrap_err()
            .0
            .contains("invalid user name"));
        assert!(add_user(&conn, "carol", "")
            .unwrap_err()
            .0
            .contains("empty"));
    }

    #[test]
    fn access_follows_owner_and_shares() {
        let conn = db::memory();
        add_user(&conn, "owner", "pw").unwrap();
        add_user(&conn, "friend", "pw").unwrap();
        let d = uid("80:00:00:00:01:00:0A:C2");
        add_device(&conn, d, "owner", "web", 28, "devsecret").unwrap();
        let owner = find_user(&conn, "owner").unwrap().unwrap();
        let friend = find_user(&conn, "friend").unwrap().unwrap();
        assert_eq!(access(&conn, d, owner.id).unwrap(), Access::Owner);
        assert_eq!(access(&conn, d, friend.id).unwrap(), Access::NotShared);
        add_share(&conn, d, "friend").unwrap();
        assert_eq!(access(&conn, d, friend.id).unwrap(), Access::Shared);
        assert_eq!(list_shares(&conn, Some(d)).unwrap().len(), 1);
        assert!(add_share(&conn, d, "owner").unwrap_err().0.contains("owns"));
        remove_share(&conn, d, "friend").unwrap();
        assert_eq!(access(&conn, d, friend.id).unwrap(), Access::NotShared);
        assert_eq!(
            access(&conn, uid("00:00:00:00:00:00:00:01"), owner.id).unwrap(),
            Access::NoSuchDevice
        );
        assert!(remove_user(&conn, "owner")
            .unwrap_err()
            .0
            .contains("owns 1 device"));
        remove_device(&conn, d).unwrap();
        remove_user(&conn, "owner").unwrap();
        assert!(list_devices(&conn).unwrap().is_empty());
    }

    #[test]
    fn auth_hashes_are_bound_to_user_and_server_and_revocable() {
        let conn = db::memory();
        add_user(&conn, "bob", "pw").unwrap();
        add_user(&conn, "eve", "pw").unwrap();
        let bob = find_user(&conn, "bob").unwrap().unwrap().id;
        let eve = find_user(&conn, "eve").unwrap().unwrap().id;
        let key = [7u8; 32];
        let h = create_auth_hash(&conn, bob, "laptop", &key).unwrap();
        assert_eq!(
            check_auth_hash(&conn, bob, &h, &key).unwrap(),
            AuthHashCheck::Valid
        );
        assert_eq!(
            check_auth_hash(&conn, eve, &h, &key).unwrap(),
            AuthHashCheck::WrongUser
        );
        assert_eq!(
            check_auth_hash(&conn, bob, &h, &[8u8; 32]).unwrap(),
            AuthHashCheck::WrongSecret
        );
        let mut tampered = h.to_string();
        tampered.pop();
        tampered.push(if h.ends_with('0') { '1' } else { '0' });
        assert_eq!(
            check_auth_hash(&conn, bob, &tampered, &key).unwrap(),
            AuthHashCheck::WrongSecret
        );
        assert_eq!(
            check_auth_hash(&conn, bob, "nope", &key).unwrap(),
            AuthHashCheck::Malformed
        );
        let id = h.split('.').next().unwrap().to_string();
        let stored = conn.auth_hash(&id).unwrap().unwrap().secret_sha256;
        assert_eq!(stored.len(), 32);
        assert!(!hex::encode(&stored).contains(h.split('.').nth(1).unwrap()));
        revoke_auth_hash(&conn, &id).unwrap();
        assert_eq!(
            check_auth_hash(&conn, bob, &h, &key).unwrap(),
            AuthHashCheck::Revoked
        );
        assert!(revoke_auth_hash(&conn, &id)
            .unwrap_err()
            .0
            .contains("already revoked"));
        let list = list_auth_hashes(&conn, Some("bob")).unwrap();
        assert_eq!(list.len(), 1);
        assert!(list[0].revoked_at.is_some());
    }
}
