//! Checking credentials for the control channel: user logins (password or auth hash) and device
//! registrations (device secret), with failure throttling per user / device and per source address.
//!
//! Argon2 is slow and memory-hungry on purpose, so it runs on the blocking pool and at most
//! `max_concurrent_hashes` at once: a flood of logins queues instead of exhausting memory.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use p2p_proto::control::{Credential, ErrorCode};
use p2p_proto::Uid;
use rusqlite::Connection;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::accounts::{self, Access, AuthHashCheck};
use crate::throttle::{Limit, Throttle};

#[derive(Clone, Copy, Debug)]
pub struct AuthLimits {
    /// Failed logins per user name.
    pub per_user: Limit,
    /// Failed logins and registrations per source address.
    pub per_ip: Limit,
    /// Failed registrations per device UID.
    pub per_device: Limit,
    /// Keys each throttle remembers at most.
    pub max_tracked: usize,
    pub max_concurrent_hashes: usize,
}

impl Default for AuthLimits {
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        AuthLimits {
            per_user: Limit::new(5, minute),
            per_ip: Limit::new(20, minute),
            per_device: Limit::new(10, minute),
            max_tracked: 65_536,
            max_concurrent_hashes: 4,
        }
    }
}

/// A refused request: what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }
    fn internal(what: &str, e: impl std::fmt::Display) -> Self {
        log::error!("{what}: {e}");
        Refusal::new(ErrorCode::Internal, format!("server error while {what}"))
    }
}

/// A successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedIn {
    pub user_id: i64,
    pub name: String,
    /// Only a password login may mint auth hashes: a leaked auth hash must not be able to outlive its
    /// revocation by minting successors.
    pub by_password: bool,
}

pub struct Auth {
    db: Mutex<Connection>,
    server_key: [u8; 32],
    limits: AuthLimits,
    users: Mutex<Throttle<String>>,
    ips: Mutex<Throttle<IpAddr>>,
    devices: Mutex<Throttle<Uid>>,
    hashing: Semaphore,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn retry_text(wait: Duration) -> String {
    format!("retry in {} s", wait.as_secs().max(1))
}

impl Auth {
    pub fn new(db: Connection, server_key: [u8; 32], limits: AuthLimits) -> Arc<Self> {
        Arc::new(Auth {
            db: Mutex::new(db),
            server_key,
            limits,
            users: Mutex::new(Throttle::new(limits.per_user, limits.max_tracked)),
            ips: Mutex::new(Throttle::new(limits.per_ip, limits.max_tracked)),
            devices: Mutex::new(Throttle::new(limits.per_device, limits.max_tracked)),
            hashing: Semaphore::new(limits.max_concurrent_hashes.max(1)),
        })
    }

    /// Runs `f` with the database on the blocking pool.
    async fn with_db<T: Send + 'static>(
        self: &Arc<Self>,
        what: &'static str,
        f: impl FnOnce(&Connection, &[u8; 32]) -> crate::Result<T> + Send + 'static,
    ) -> Result<T, Refusal> {
        let me = self.clone();
        match tokio::task::spawn_blocking(move || f(&guard(&me.db), &me.server_key)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Refusal::internal(what, e)),
            Err(e) => Err(Refusal::internal(what, e)),
        }
    }

    /// Runs a slow hash check on the blocking pool, at most `max_concurrent_hashes` at once.
    async fn hash_check(
        self: &Arc<Self>,
        f: impl FnOnce() -> bool + Send + 'static,
    ) -> Result<bool, Refusal> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| Refusal::internal("checking a credential", e))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Refusal::internal("checking a credential", e))
    }

    fn check_ip(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        guard(&self.ips).check(&ip, now).map_err(|wait| {
            Refusal::new(
                ErrorCode::Throttled,
                format!("too many failed attempts from {ip}: {}", retry_text(wait)),
            )
        })
    }

    pub async fn login(
        self: &Arc<Self>,
        user: &str,
        credential: Credential,
        ip: IpAddr,
    ) -> Result<LoggedIn, Refusal> {
        let now = Instant::now();
        self.check_ip(ip, now)?;
        let shown = accounts::shown(user);
        if accounts::check_user_name(user).is_err() {
            guard(&self.ips).record_failure(&ip, now);
            return Err(Refusal::new(
                ErrorCode::BadUser,
                format!("unknown user '{shown}'"),
            ));
        }
        if let Err(wait) = guard(&self.users).check(&user.to_string(), now) {
            return Err(Refusal::new(
                ErrorCode::Throttled,
                format!(
                    "too many failed logins for user '{shown}': {}",
                    retry_text(wait)
                ),
            ));
        }
        let name = user.to_string();
        let found = self
            .with_db("looking up a user", move |db, _| {
                accounts::user_secret(db, &name)
            })
            .await?;
        let Some(found) = found else {
            guard(&self.ips).record_failure(&ip, now);
            log::info!("login refused: unknown user '{shown}' from {ip}");
            return Err(Refusal::new(
                ErrorCode::BadUser,
                format!("unknown user '{shown}'"),
            ));
        };
        let user_id = found.id;
        let (ok, by_password, why) = match credential {
            Credential::Password(password) => {
                let password = Zeroizing::new(password);
                let hash = found.password_hash;
                let ok = self
                    .hash_check(move || accounts::verify_secret(&password, &hash))
                    .await?;
                (ok, true, "wrong password")
            }
            Credential::AuthHash(text) => {
                let text = Zeroizing::new(text);
                let check = self
                    .with_db("checking an auth hash", move |db, key| {
                        accounts::check_auth_hash(db, user_id, &text, key)
                    })
                    .await?;
                let why = match check {
                    AuthHashCheck::Valid => "",
                    AuthHashCheck::Revoked => "revoked auth hash",
                    AuthHashCheck::Malformed => "malformed auth hash",
                    AuthHashCheck::Unknown
                    | AuthHashCheck::WrongSecret
                    | AuthHashCheck::WrongUser => "unknown auth hash",
                };
                (check == AuthHashCheck::Valid, false, why)
            }
        };
        if !ok {
            guard(&self.users).record_failure(&user.to_string(), now);
            guard(&self.ips).record_failure(&ip, now);
            log::info!("login refused: {why} for user '{shown}' from {ip}");
            let message = if by_password {
                format!("wrong password for user '{shown}'")
            } else {
                format!("auth hash not accepted for user '{shown}' ({why}; revoked or issued by another server?)")
            };
            return Err(Refusal::new(ErrorCode::AuthFailed, message));
        }
        guard(&self.users).record_success(&user.to_string());
        Ok(LoggedIn {
            user_id,
            name: user.to_string(),
            by_password,
        })
    }

    /// Checks a target's device secret.
    pub async fn register(
        self: &Arc<Self>,
        uid: Uid,
        secret: String,
        ip: IpAddr,
    ) -> Result<(), Refusal> {
        let secret = Zeroizing::new(secret);
        let now = Instant::now();
        self.check_ip(ip, now)?;
        if let Err(wait) = guard(&self.devices).check(&uid, now) {
            return Err(Refusal::new(
                ErrorCode::Throttled,
                format!(
                    "too many failed registrations for device {uid}: {}",
                    retry_text(wait)
                ),
            ));
        }
        let hash = self
            .with_db("looking up a device", move |db, _| {
                accounts::device_secret_hash(db, uid)
            })
            .await?;
        let Some(hash) = hash else {
            guard(&self.ips).record_failure(&ip, now);
            log::info!("registration refused: unknown device {uid} from {ip}");
            return Err(Refusal::new(
                ErrorCode::UnknownUid,
                format!("no device with UID {uid} on this server"),
            ));
        };
        if !self
            .hash_check(move || accounts::verify_secret(&secret, &hash))
            .await?
        {
            guard(&self.devices).record_failure(&uid, now);
            guard(&self.ips).record_failure(&ip, now);
            log::info!("registration refused: wrong secret for device {uid} from {ip}");
            return Err(Refusal::new(
                ErrorCode::BadSecret,
                format!("wrong secret for device {uid}"),
            ));
        }
        guard(&self.devices).record_success(&uid);
        Ok(())
    }

    pub async fn access(self: &Arc<Self>, uid: Uid, user_id: i64) -> Result<Access, Refusal> {
        self.with_db("checking access to a device", move |db, _| {
            accounts::access(db, uid, user_id)
        })
        .await
    }

    pub async fn create_auth_hash(
        self: &Arc<Self>,
        user_id: i64,
        label: String,
    ) -> Result<Zeroizing<String>, Refusal> {
        if let Err(e) = accounts::check_label(&label, "auth-hash label") {
            return Err(Refusal::new(ErrorCode::BadRequest, e.0));
        }
        self.with_db("creating an auth hash", move |db, key| {
            accounts::create_auth_hash(db, user_id, &label, key)
        })
        .await
    }

    pub fn limits(&self) -> AuthLimits {
        self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    fn auth(limits: AuthLimits) -> Arc<Auth> {
        let conn = db::memory();
        accounts::add_user(&conn, "bob", "right").unwrap();
        accounts::add_device(
            &conn,
            "80:00:00:00:01:00:0A:C2".parse().unwrap(),
            "bob",
            "",
            1,
            "devsecret",
        )
        .unwrap();
        Auth::new(conn, [5; 32], limits)
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn login_outcomes() {
        let a = auth(AuthLimits::default());
        let ok = a
            .login("bob", Credential::Password("right".into()), IP)
            .await
            .unwrap();
        assert!(ok.by_password);
        let e = a
            .login("bob", Credential::Password("wrong".into()), IP)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::AuthFailed);
        assert!(!e.message.contains("wrong\""), "{e:?}");
        let e = a
            .login("nobody", Credential::Password("x".into()), IP)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::BadUser);
        let h = a.create_auth_hash(ok.user_id, "t".into()).await.unwrap();
        let by_hash = a
            .login("bob", Credential::AuthHash(h.to_string()), IP)
            .await
            .unwrap();
        assert!(!by_hash.by_password);
        let e = a
            .login("bob", Credential::AuthHash("0011.22".into()), IP)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::AuthFailed);
    }

    #[tokio::test]
    async fn throttles_per_user_then_per_ip() {
        let a = auth(AuthLimits {
            per_user: Limit::new(2, Duration::from_secs(60)),
            per_ip: Limit::new(4, Duration::from_secs(60)),
            ..AuthLimits::default()
        });
        for _ in 0..2 {
            let e = a
                .login("bob", Credential::Password("bad".into()), IP)
                .await
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::AuthFailed);
        }
        // Even the right password is refused while throttled (a guesser learns nothing).
        let e = a
            .login("bob", Credential::Password("right".into()), IP)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Throttled, "{e:?}");
        assert!(e.message.contains("retry in"), "{e:?}");
        // Other users from the same address until the address's own limit is used up.
        for _ in 0..2 {
            a.login("ghost", Credential::Password("x".into()), IP)
                .await
                .unwrap_err();
        }
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        let e = a
            .login("ghost", Credential::Password("x".into()), IP)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Throttled);
        let e = a
            .login("ghost", Credential::Password("x".into()), other)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::BadUser);
    }

    #[tokio::test]
    async fn registration_checks_the_device_secret() {
        let a = auth(AuthLimits::default());
        let uid: Uid = "80:00:00:00:01:00:0A:C2".parse().unwrap();
        a.register(uid, "devsecret".into(), IP).await.unwrap();
        assert_eq!(
            a.register(uid, "nope".into(), IP).await.unwrap_err().code,
            ErrorCode::BadSecret
        );
        let other: Uid = "80:00:00:00:01:00:0A:C3".parse().unwrap();
        assert_eq!(
            a.register(other, "x".into(), IP).await.unwrap_err().code,
            ErrorCode::UnknownUid
        );
    }
}
