//! Checking credentials for the control channel: user logins (password or auth hash) and device
//! registrations (device secret), with failure throttling.
//!
//! What an attacker on the internet must not get, and how:
//!
//! - **More guesses by going parallel.** Every attempt is counted when it is admitted, before the slow
//!   Argon2 check (see `throttle.rs`): at most the limit is evaluated, however many arrive at once.
//! - **A lock-out of the real user or device.** Failures are limited per (user or device, source address),
//!   with backoff, and per source address; a stranger's failures lock only the stranger's address. A
//!   second limit per user (device) counts password (secret) failures from *every* address the user
//!   (device) has not succeeded from lately: it stops a guesser with many addresses, and when it trips
//!   the operator is told (a warning) while logins from the user's known addresses and auth hashes
//!   (256 random bits, not guessable) go on.
//! - **The Argon2 queue.** Checks run on the blocking pool, at most `max_concurrent_hashes` at once and at
//!   most `hashes_per_address` of them for one source address, and one address has at most
//!   `max_in_progress_per_address` logins/registrations in progress: one address cannot delay the others.
//! - **Who exists.** An unknown user gets the same answer as a wrong password, after the same Argon2
//!   work (a dummy hash); an unknown UID the same as a wrong device secret. The server log tells them apart.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use p2p_proto::control::{Credential, ErrorCode};
use p2p_proto::crypto::PublicStaticKey;
use p2p_proto::Uid;
use tokio::sync::{Notify, Semaphore};
use zeroize::Zeroizing;

use crate::accounts::{self, Access, AuthHashCheck, RegisteredKey, UserSecret};
use crate::cluster::Cluster;
use crate::store::Store;
use crate::throttle::{Admit, Limit, Recent, Throttle};

#[derive(Clone, Copy, Debug)]
pub struct AuthLimits {
    /// Failed logins per (user name, source address).
    pub per_user: Limit,
    /// Failed password logins per user name from addresses it has not logged in from lately.
    pub per_user_total: Limit,
    /// Failed logins and registrations per source address.
    pub per_ip: Limit,
    /// Failed registrations per (device UID, source address).
    pub per_device: Limit,
    /// Failed registrations per device UID from addresses it has not registered from lately.
    pub per_device_total: Limit,
    /// Keys each throttle remembers at most.
    pub max_tracked: usize,
    pub max_concurrent_hashes: usize,
    /// Argon2 checks one source address may have running at once.
    pub hashes_per_address: usize,
    /// Logins and registrations one source address may have in progress (checked or waiting) at once.
    pub max_in_progress_per_address: usize,
    /// Active (not revoked) auth hashes one user may hold.
    pub max_auth_hashes_per_user: usize,
    /// How long a successful login (registration) makes its address known-good for that user (device).
    pub known_for: Duration,
}

impl Default for AuthLimits {
    fn default() -> Self {
        let minute = Duration::from_secs(60);
        AuthLimits {
            per_user: Limit::new(5, minute),
            per_user_total: Limit::new(50, minute),
            per_ip: Limit::new(20, minute),
            per_device: Limit::new(10, minute),
            per_device_total: Limit::new(50, minute),
            max_tracked: 65_536,
            max_concurrent_hashes: 4,
            hashes_per_address: 2,
            max_in_progress_per_address: 128,
            max_auth_hashes_per_user: 100,
            known_for: Duration::from_secs(30 * 24 * 3600),
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

/// The one answer to a failed login, whatever failed (unknown user, wrong password, unknown or revoked
/// auth hash): a client must not learn which user names exist.
pub fn login_refused(user: &str, by_password: bool) -> String {
    let shown = accounts::shown(user);
    if by_password {
        format!("login refused for user '{shown}': unknown user or wrong password")
    } else {
        format!(
            "login refused for user '{shown}': unknown user or auth hash not accepted (revoked, or issued by another server?)"
        )
    }
}

/// The one answer to a failed registration (unknown UID or wrong secret).
pub fn registration_refused(uid: Uid) -> String {
    format!("registration of device {uid} refused: unknown UID or wrong device secret")
}

/// The one answer to a session request for a device the user may not reach (unknown UID or not shared).
pub fn no_access(uid: Uid, user: &str) -> String {
    format!(
        "no device with UID {uid} for user '{}' (unknown UID, or not shared with this user)",
        accounts::shown(user)
    )
}

/// Who an attempt is for: the key of its pair and total throttles.
#[derive(Clone, Debug)]
enum Who {
    User(String),
    Device(Uid),
}

impl Who {
    /// How the other nodes are told (`user:<name>`, `device:<uid>`).
    fn to_text(&self) -> String {
        match self {
            Who::User(u) => format!("user:{u}"),
            Who::Device(d) => format!("device:{d}"),
        }
    }

    fn from_text(text: &str) -> Option<Who> {
        match text.split_once(':')? {
            ("user", u) => Some(Who::User(u.to_string())),
            ("device", d) => d.parse().ok().map(Who::Device),
            _ => None,
        }
    }
}

/// Every throttle and what they need to know, behind one lock so an attempt is admitted atomically.
struct Throttles {
    ips: Throttle<IpAddr>,
    user_ip: Throttle<(String, IpAddr)>,
    users: Throttle<String>,
    device_ip: Throttle<(Uid, IpAddr)>,
    devices: Throttle<Uid>,
    /// (user, address) and (device, address) pairs that succeeded lately.
    good_users: Recent<(String, IpAddr)>,
    good_devices: Recent<(Uid, IpAddr)>,
    /// Addresses any login or registration succeeded from lately (the control channel's reserve).
    good_ips: Recent<IpAddr>,
}

impl Throttles {
    fn known(&self, who: &Who, ip: IpAddr, now: Instant) -> bool {
        match who {
            Who::User(u) => self.good_users.contains(&(u.clone(), ip), now),
            Who::Device(d) => self.good_devices.contains(&(*d, ip), now),
        }
    }

    /// What each throttle that applies to an attempt for `who` from `ip` says of it (`total`: the
    /// per-user or per-device limit for unknown addresses applies too).
    fn verdicts(
        &mut self,
        who: &Who,
        ip: IpAddr,
        total: bool,
        now: Instant,
    ) -> Vec<(Admit, Limited)> {
        let mut verdicts = vec![(self.ips.admit(&ip, now), Limited::Ip)];
        match who {
            Who::User(u) => {
                verdicts.push((self.user_ip.admit(&(u.clone(), ip), now), Limited::Pair));
                if total {
                    verdicts.push((self.users.admit(u, now), Limited::Total));
                }
            }
            Who::Device(d) => {
                verdicts.push((self.device_ip.admit(&(*d, ip), now), Limited::Pair));
                if total {
                    verdicts.push((self.devices.admit(d, now), Limited::Total));
                }
            }
        }
        verdicts
    }

    /// Counts a failure another node recorded in the throttles it counted in there (a lock it
    /// completes is logged like one of this node's).
    fn record_elsewhere(&mut self, who: &Who, ip: IpAddr, total: bool, now: Instant) {
        let locked = [
            self.ips.record_failure(&ip, now),
            match who {
                Who::User(u) => self.user_ip.record_failure(&(u.clone(), ip), now),
                Who::Device(d) => self.device_ip.record_failure(&(*d, ip), now),
            },
            match (who, total) {
                (Who::User(u), true) => self.users.record_failure(u, now),
                (Who::Device(d), true) => self.devices.record_failure(d, now),
                _ => None,
            },
        ];
        if let Some(lock) = locked.iter().flatten().max() {
            log::warn!(
                "{} from {ip}: failures on this and other nodes reached a limit: refused for {} s",
                match who {
                    Who::User(u) => format!("user '{}'", accounts::shown(u)),
                    Who::Device(d) => format!("device {d}"),
                },
                lock.as_secs()
            );
        }
    }

    /// Counts an admitted attempt as pending in the same throttles [`Throttles::verdicts`] asked.
    fn reserve(&mut self, who: &Who, ip: IpAddr, total: bool, now: Instant) {
        self.ips.reserve(&ip, now);
        match who {
            Who::User(u) => {
                self.user_ip.reserve(&(u.clone(), ip), now);
                if total {
                    self.users.reserve(u, now);
                }
            }
            Who::Device(d) => {
                self.device_ip.reserve(&(*d, ip), now);
                if total {
                    self.devices.reserve(d, now);
                }
            }
        }
    }
}

/// Source addresses with logins or registrations in progress, and their Argon2 permits.
struct InProgress {
    count: usize,
    hashing: Arc<Semaphore>,
}

pub struct Auth {
    db: Mutex<Box<dyn Store>>,
    /// The other nodes, which share their failures with this one (PostgreSQL).
    cluster: Option<Arc<Cluster>>,
    server_key: [u8; 32],
    limits: AuthLimits,
    throttles: Mutex<Throttles>,
    /// Signalled whenever an attempt in progress is resolved (attempts waiting for room re-check).
    resolved: Notify,
    in_progress: Mutex<HashMap<IpAddr, InProgress>>,
    hashing: Semaphore,
    /// An Argon2 hash of nothing anyone knows: checked against for unknown users and UIDs.
    dummy_hash: String,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn retry_text(wait: Duration) -> String {
    format!("retry in {} s", wait.as_secs().max(1))
}

/// The source an address counts as for per-address limits: an IPv4 address (an IPv4-mapped IPv6 one
/// included) is itself, an IPv6 address its /64 (one host or site gets a whole /64: counting its
/// addresses one by one would give it 2^64 separate allowances).
pub fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(std::net::Ipv6Addr::from(seg))
            }
        },
    }
}

/// Throttle keys for user names: bounded, whatever a client sends.
fn user_key(user: &str) -> String {
    user.chars().take(accounts::MAX_NAME_LEN + 1).collect()
}

/// An admitted attempt: counted in every throttle that applies until resolved (dropped unresolved, it
/// is cancelled: a connection that goes away does not leave a phantom attempt behind).
struct Ticket {
    auth: Arc<Auth>,
    who: Who,
    ip: IpAddr,
    total: bool,
    done: bool,
}

impl Ticket {
    fn fail(mut self, why: &str) {
        self.done = true;
        let now = Instant::now();
        let auth = self.auth.clone();
        if let Some(cluster) = &auth.cluster {
            cluster.record_failure(self.who.to_text(), self.ip, self.total);
        }
        {
            let mut t = guard(&auth.throttles);
            self.count_address_failure(&mut t, now);
            match &self.who {
                Who::User(u) => self.count_user_failure(&mut t, u, why, now),
                Who::Device(d) => self.count_device_failure(&mut t, *d, why, now),
            }
        }
        auth.resolved.notify_waiters();
    }

    fn count_address_failure(&self, t: &mut Throttles, now: Instant) {
        let limit = self.auth.limits.per_ip;
        if let Some(lock) = t.ips.fail_pending(&self.ip, now) {
            log::warn!(
                "address {}: {} failed logins/registrations within {} s: refused for {} s",
                self.ip,
                limit.max_failures,
                limit.window.as_secs(),
                lock.as_secs()
            );
        }
    }

    fn count_user_failure(&self, t: &mut Throttles, u: &str, why: &str, now: Instant) {
        let limits = self.auth.limits;
        let shown = accounts::shown(u);
        log::info!("login refused: {why} for user '{shown}' from {}", self.ip);
        if let Some(lock) = t.user_ip.fail_pending(&(u.to_string(), self.ip), now) {
            log::warn!(
                "user '{shown}': {} failed logins from {} within {} s: logins for it from that address are refused for {} s",
                limits.per_user.max_failures,
                self.ip,
                limits.per_user.window.as_secs(),
                lock.as_secs()
            );
        }
        if self.total {
            if let Some(lock) = t.users.fail_pending(&u.to_string(), now) {
                log::warn!(
                    "user '{shown}' may be under a password-guessing attack: {} failed logins within {} s from addresses it has not logged in from; password logins for it from such addresses are refused for {} s (its known addresses and auth hashes still log in)",
                    limits.per_user_total.max_failures,
                    limits.per_user_total.window.as_secs(),
                    lock.as_secs()
                );
            }
        }
    }

    fn count_device_failure(&self, t: &mut Throttles, d: Uid, why: &str, now: Instant) {
        let limits = self.auth.limits;
        log::info!(
            "registration refused: {why} for device {d} from {}",
            self.ip
        );
        if let Some(lock) = t.device_ip.fail_pending(&(d, self.ip), now) {
            log::warn!(
                "device {d}: {} failed registrations from {} within {} s: registrations for it from that address are refused for {} s",
                limits.per_device.max_failures,
                self.ip,
                limits.per_device.window.as_secs(),
                lock.as_secs()
            );
        }
        if self.total {
            if let Some(lock) = t.devices.fail_pending(&d, now) {
                log::warn!(
                    "device {d} may be under a secret-guessing attack: {} failed registrations within {} s from addresses it has not registered from; registrations for it from such addresses are refused for {} s (its known addresses still register)",
                    limits.per_device_total.max_failures,
                    limits.per_device_total.window.as_secs(),
                    lock.as_secs()
                );
            }
        }
    }

    /// A success frees its place but forgives no failure: otherwise one right guess among parallel
    /// wrong ones would let more of them be evaluated than the limit.
    fn succeed(mut self) {
        self.done = true;
        let now = Instant::now();
        {
            let mut t = guard(&self.auth.throttles);
            t.ips.succeed_pending(&self.ip, false);
            t.good_ips.insert(self.ip, now);
            match &self.who {
                Who::User(u) => {
                    let key = (u.clone(), self.ip);
                    t.user_ip.succeed_pending(&key, false);
                    t.good_users.insert(key, now);
                    if self.total {
                        t.users.succeed_pending(u, false);
                    }
                }
                Who::Device(d) => {
                    t.device_ip.succeed_pending(&(*d, self.ip), false);
                    t.good_devices.insert((*d, self.ip), now);
                    if self.total {
                        t.devices.succeed_pending(d, false);
                    }
                }
            }
        }
        self.auth.resolved.notify_waiters();
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        {
            let mut t = guard(&self.auth.throttles);
            t.ips.cancel_pending(&self.ip);
            match &self.who {
                Who::User(u) => {
                    t.user_ip.cancel_pending(&(u.clone(), self.ip));
                    if self.total {
                        t.users.cancel_pending(u);
                    }
                }
                Who::Device(d) => {
                    t.device_ip.cancel_pending(&(*d, self.ip));
                    if self.total {
                        t.devices.cancel_pending(d);
                    }
                }
            }
        }
        self.auth.resolved.notify_waiters();
    }
}

/// One login or registration in progress from an address (released on drop).
struct Slot {
    auth: Arc<Auth>,
    ip: IpAddr,
    hashing: Arc<Semaphore>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = guard(&self.auth.in_progress);
        if let Some(p) = map.get_mut(&self.ip) {
            p.count = p.count.saturating_sub(1);
            if p.count == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// How long an attempt waits for attempts in progress before it is refused as throttled.
const ADMIT_WAIT: Duration = Duration::from_secs(30);

impl Auth {
    pub fn new(db: Box<dyn Store>, server_key: [u8; 32], limits: AuthLimits) -> Arc<Self> {
        Auth::in_cluster(db, server_key, limits, None)
    }

    /// An `Auth` whose failures count on every node of `cluster` (and theirs here).
    pub fn in_cluster(
        db: Box<dyn Store>,
        server_key: [u8; 32],
        limits: AuthLimits,
        cluster: Option<Arc<Cluster>>,
    ) -> Arc<Self> {
        let tracked = limits.max_tracked;
        // A random secret nobody knows; if even that fails, a fixed valid PHC string of the same cost.
        let dummy_hash = accounts::generate_device_secret()
            .and_then(|s| accounts::hash_secret(&s))
            .unwrap_or_else(|_| {
                "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$wvCDa8X8KXUHx1cbdzJp2R6Pjb0MRjjnnSMA8NVEl2E".into()
            });
        Arc::new(Auth {
            db: Mutex::new(db),
            cluster,
            server_key,
            limits,
            throttles: Mutex::new(Throttles {
                ips: Throttle::new(limits.per_ip, tracked),
                user_ip: Throttle::new(limits.per_user, tracked),
                users: Throttle::new(limits.per_user_total, tracked),
                device_ip: Throttle::new(limits.per_device, tracked),
                devices: Throttle::new(limits.per_device_total, tracked),
                good_users: Recent::new(limits.known_for, tracked),
                good_devices: Recent::new(limits.known_for, tracked),
                good_ips: Recent::new(limits.known_for, tracked),
            }),
            resolved: Notify::new(),
            in_progress: Mutex::new(HashMap::new()),
            hashing: Semaphore::new(limits.max_concurrent_hashes.max(1)),
            dummy_hash,
        })
    }

    /// Whether a login or registration succeeded from `ip` lately (it may use the reserved connections).
    pub fn is_known_address(&self, ip: IpAddr) -> bool {
        guard(&self.throttles)
            .good_ips
            .contains(&source(ip), Instant::now())
    }

    /// Runs `f` with the database on the blocking pool.
    async fn with_db<T: Send + 'static>(
        self: &Arc<Self>,
        what: &'static str,
        f: impl FnOnce(&dyn Store, &[u8; 32]) -> crate::Result<T> + Send + 'static,
    ) -> Result<T, Refusal> {
        let me = self.clone();
        match tokio::task::spawn_blocking(move || f(guard(&me.db).as_ref(), &me.server_key)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Refusal::internal(what, e)),
            Err(e) => Err(Refusal::internal(what, e)),
        }
    }

    /// Takes one of `ip`'s places for a login or registration in progress.
    fn slot(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let max = self.limits.max_in_progress_per_address.max(1);
        let mut map = guard(&self.in_progress);
        let p = map.entry(ip).or_insert_with(|| InProgress {
            count: 0,
            hashing: Arc::new(Semaphore::new(self.limits.hashes_per_address.max(1))),
        });
        if p.count >= max {
            return Err(Refusal::new(
                ErrorCode::Throttled,
                format!("too many logins or registrations in progress from {ip} (limit {max}): retry later"),
            ));
        }
        p.count += 1;
        Ok(Slot {
            auth: self.clone(),
            ip,
            hashing: p.hashing.clone(),
        })
    }

    /// Runs a slow hash check on the blocking pool: at most `hashes_per_address` for the slot's address
    /// and `max_concurrent_hashes` in all at once (both queues are FIFO, so every address gets its turn).
    async fn hash_check(
        self: &Arc<Self>,
        slot: &Slot,
        f: impl FnOnce() -> bool + Send + 'static,
    ) -> Result<bool, Refusal> {
        let _mine = slot
            .hashing
            .acquire()
            .await
            .map_err(|e| Refusal::internal("checking a credential", e))?;
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| Refusal::internal("checking a credential", e))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Refusal::internal("checking a credential", e))
    }

    /// Admits an attempt for `who` from `ip`, waiting while attempts in progress fill a throttle's limit.
    /// `total`: the attempt is a guessable secret (password, device secret), so the per-user (device)
    /// limit for unknown addresses applies.
    async fn admit(self: &Arc<Self>, who: Who, ip: IpAddr, total: bool) -> Result<Ticket, Refusal> {
        self.take_in_failures_elsewhere().await;
        let deadline = tokio::time::Instant::now() + ADMIT_WAIT;
        loop {
            let notified = self.resolved.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let now = Instant::now();
                let mut t = guard(&self.throttles);
                let total = total && !t.known(&who, ip, now);
                let verdicts = t.verdicts(&who, ip, total, now);
                if let Some((wait, which)) = verdicts.iter().find_map(|(v, which)| match v {
                    Admit::Refused(wait) => Some((*wait, *which)),
                    _ => None,
                }) {
                    return Err(throttled(&who, ip, which, wait));
                }
                if verdicts.iter().all(|(v, _)| *v == Admit::Yes) {
                    t.reserve(&who, ip, total, now);
                    return Ok(Ticket {
                        auth: self.clone(),
                        who,
                        ip,
                        total,
                        done: false,
                    });
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Refusal::new(
                    ErrorCode::Throttled,
                    format!("too many attempts in progress from {ip}: retry later"),
                ));
            }
        }
    }

    /// Counts the failures the other nodes recorded since this node last looked. A database error
    /// leaves this node's own counts to decide (logged).
    async fn take_in_failures_elsewhere(&self) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let failures = match cluster.failures_elsewhere().await {
            Ok(f) => f,
            Err(e) => {
                log::warn!("cluster: reading the other nodes' failed attempts: {e}");
                return;
            }
        };
        if failures.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut t = guard(&self.throttles);
        for f in failures {
            if let Some(who) = Who::from_text(&f.who) {
                t.record_elsewhere(&who, f.ip, f.total, now);
            }
        }
    }

    pub async fn login(
        self: &Arc<Self>,
        user: &str,
        credential: Credential,
        ip: IpAddr,
    ) -> Result<LoggedIn, Refusal> {
        let ip = source(ip);
        let slot = self.slot(ip)?;
        let by_password = matches!(credential, Credential::Password(_));
        let key = user_key(user);
        let ticket = self.admit(Who::User(key), ip, by_password).await?;
        let found = self.find_user(user).await?;
        let user_id = found.as_ref().map(|f| f.id);
        // Why the login fails ("" when it does not).
        let why = match credential {
            Credential::Password(password) => self.check_password(&slot, password, found).await?,
            Credential::AuthHash(text) => self.check_auth_hash(text, user_id).await?,
        };
        match user_id {
            Some(user_id) if why.is_empty() => {
                ticket.succeed();
                Ok(LoggedIn {
                    user_id,
                    name: user.to_string(),
                    by_password,
                })
            }
            _ => {
                ticket.fail(why);
                Err(Refusal::new(
                    ErrorCode::AuthFailed,
                    login_refused(user, by_password),
                ))
            }
        }
    }

    /// The user's id and password hash; `None` for a name that is unknown or not a valid name.
    async fn find_user(self: &Arc<Self>, user: &str) -> Result<Option<UserSecret>, Refusal> {
        if accounts::check_user_name(user).is_err() {
            return Ok(None);
        }
        let name = user.to_string();
        self.with_db("looking up a user", move |db, _| {
            accounts::user_secret(db, &name)
        })
        .await
    }

    /// Why a password login fails ("" when it does not).
    async fn check_password(
        self: &Arc<Self>,
        slot: &Slot,
        password: String,
        found: Option<UserSecret>,
    ) -> Result<&'static str, Refusal> {
        let password = Zeroizing::new(password);
        // Unknown users cost the same Argon2 check as known ones.
        let (hash, known) = match found {
            Some(f) => (f.password_hash, true),
            None => (self.dummy_hash.clone(), false),
        };
        let ok = self
            .hash_check(slot, move || accounts::verify_secret(&password, &hash))
            .await?;
        Ok(match (known, ok) {
            (false, _) => "unknown user",
            (true, false) => "wrong password",
            (true, true) => "",
        })
    }

    /// Why an auth hash login fails ("" when it does not).
    async fn check_auth_hash(
        self: &Arc<Self>,
        text: String,
        user_id: Option<i64>,
    ) -> Result<&'static str, Refusal> {
        let text = Zeroizing::new(text);
        let owner = user_id.unwrap_or(-1);
        let check = self
            .with_db("checking an auth hash", move |db, key| {
                accounts::check_auth_hash(db, owner, &text, key)
            })
            .await?;
        Ok(match check {
            _ if user_id.is_none() => "unknown user",
            AuthHashCheck::Valid => "",
            AuthHashCheck::Revoked => "revoked auth hash",
            AuthHashCheck::Malformed => "malformed auth hash",
            AuthHashCheck::Unknown | AuthHashCheck::WrongSecret | AuthHashCheck::WrongUser => {
                "unknown auth hash"
            }
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
        let ip = source(ip);
        let slot = self.slot(ip)?;
        let ticket = self.admit(Who::Device(uid), ip, true).await?;
        let hash = self
            .with_db("looking up a device", move |db, _| {
                accounts::device_secret_hash(db, uid)
            })
            .await?;
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.clone());
        let ok = self
            .hash_check(&slot, move || accounts::verify_secret(&secret, &hash))
            .await?;
        if known && ok {
            ticket.succeed();
            return Ok(());
        }
        ticket.fail(if known {
            "wrong secret"
        } else {
            "unknown device"
        });
        Err(Refusal::new(
            ErrorCode::BadSecret,
            registration_refused(uid),
        ))
    }

    /// Checks the key a target registers with against the one recorded for its UID: a first key (or
    /// one after `device rotate-key`) is recorded, another new key refused with `KeyChanged`.
    pub async fn check_device_key(
        self: &Arc<Self>,
        uid: Uid,
        key: Option<PublicStaticKey>,
    ) -> Result<(), Refusal> {
        let outcome = self
            .with_db("checking a device key", move |db, _| {
                accounts::register_device_key(db, uid, key.as_ref())
            })
            .await?;
        let new = key.map(|k| k.fingerprint().to_string()).unwrap_or_default();
        match outcome {
            RegisteredKey::None | RegisteredKey::Same => Ok(()),
            RegisteredKey::Recorded => {
                log::info!("device {uid}: key {new} recorded");
                Ok(())
            }
            RegisteredKey::Rotated { old } => {
                log::warn!(
                    "device {uid}: key rotated from {} to {new} (allowed by device rotate-key)",
                    old.fingerprint()
                );
                Ok(())
            }
            RegisteredKey::Changed { recorded } => {
                log::warn!(
                    "device {uid} refused: it presented key {new}, the recorded key is {}",
                    recorded.fingerprint()
                );
                Err(Refusal::new(
                    ErrorCode::KeyChanged,
                    format!(
                        "device {uid} presented key {new} but the server holds {}: if the device was \
                         re-installed, the administrator runs `p2p-server device rotate-key {uid}`",
                        recorded.fingerprint()
                    ),
                ))
            }
        }
    }

    /// Records the key an initiator logged in with (`user keys NAME` lists them). A failure to
    /// record is logged, not refused: the key is a hint to the peer, not a credential.
    pub async fn record_initiator_key(self: &Arc<Self>, user_id: i64, key: PublicStaticKey) {
        let recorded = self
            .with_db("recording an initiator key", move |db, _| {
                accounts::record_initiator_key(db, user_id, &key)
            })
            .await;
        if let Err(r) = recorded {
            log::warn!("{}", r.message);
        }
    }

    /// Whether the user may reach the device; one refusal for an unknown UID and a device not shared
    /// (the server log tells them apart).
    pub async fn access(
        self: &Arc<Self>,
        uid: Uid,
        user_id: i64,
        user: &str,
    ) -> Result<Access, Refusal> {
        let access = self
            .with_db("checking access to a device", move |db, _| {
                accounts::access(db, uid, user_id)
            })
            .await?;
        match access {
            Access::Owner | Access::Shared => Ok(access),
            Access::NoSuchDevice | Access::NotShared => {
                log::info!(
                    "session refused: user '{}' asked for device {uid}, which {}",
                    accounts::shown(user),
                    if access == Access::NotShared {
                        "is not shared with them"
                    } else {
                        "does not exist"
                    }
                );
                Err(Refusal::new(ErrorCode::UnknownUid, no_access(uid, user)))
            }
        }
    }

    pub async fn create_auth_hash(
        self: &Arc<Self>,
        user_id: i64,
        user: &str,
        label: String,
    ) -> Result<Zeroizing<String>, Refusal> {
        if let Err(e) = accounts::check_label(&label, "auth-hash label") {
            return Err(Refusal::new(ErrorCode::BadRequest, e.0));
        }
        let max = self.limits.max_auth_hashes_per_user.max(1);
        let created = self
            .with_db("creating an auth hash", move |db, key| {
                accounts::create_auth_hash_below(db, user_id, &label, key, max)
            })
            .await?;
        created.ok_or_else(|| {
            let shown = accounts::shown(user);
            log::warn!("auth hash refused to user '{shown}': {max} active auth hashes");
            Refusal::new(
                ErrorCode::LimitReached,
                format!(
                    "user '{shown}' has too many active auth hashes (limit {max}): ask the operator to revoke unused ones (p2p-server auth-hash list --user {shown}, auth-hash revoke ID)"
                ),
            )
        })
    }

    pub fn limits(&self) -> AuthLimits {
        self.limits
    }
}

/// Which throttle refused an attempt.
#[derive(Clone, Copy, Debug)]
enum Limited {
    Ip,
    Pair,
    Total,
}

fn throttled(who: &Who, ip: IpAddr, which: Limited, wait: Duration) -> Refusal {
    let retry = retry_text(wait);
    let message = match (which, who) {
        (Limited::Ip, _) => format!("too many failed attempts from {ip}: {retry}"),
        (Limited::Pair, Who::User(u)) => format!(
            "too many failed logins for user '{}' from {ip}: {retry}",
            accounts::shown(u)
        ),
        (Limited::Total, Who::User(u)) => format!(
            "too many failed logins for user '{}' from unfamiliar addresses: {retry} (or log in from an address used before, or with an auth hash)",
            accounts::shown(u)
        ),
        (Limited::Pair, Who::Device(d)) => {
            format!("too many failed registrations for device {d} from {ip}: {retry}")
        }
        (Limited::Total, Who::Device(d)) => format!(
            "too many failed registrations for device {d} from unfamiliar addresses: {retry}"
        ),
    };
    Refusal::new(ErrorCode::Throttled, message)
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
        Auth::new(Box::new(conn), [5; 32], limits)
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, n))
    }

    #[tokio::test]
    async fn login_outcomes() {
        let a = auth(AuthLimits::default());
        let ok = a
            .login("bob", Credential::Password("right".into()), IP)
            .await
            .unwrap();
        assert!(ok.by_password);
        let wrong = a
            .login("bob", Credential::Password("wrong".into()), IP)
            .await
            .unwrap_err();
        assert_eq!(wrong.code, ErrorCode::AuthFailed);
        assert!(!wrong.message.contains("wrong\""), "{wrong:?}");
        // An unknown user gets the very same answer as a wrong password.
        let unknown = a
            .login("nobody", Credential::Password("x".into()), IP)
            .await
            .unwrap_err();
        assert_eq!(unknown.code, ErrorCode::AuthFailed);
        assert_eq!(unknown.message.replace("nobody", "bob"), wrong.message);
        let h = a
            .create_auth_hash(ok.user_id, "bob", "t".into())
            .await
            .unwrap();
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
        let e2 = a
            .login("nobody", Credential::AuthHash(h.to_string()), IP)
            .await
            .unwrap_err();
        assert_eq!(e2.message.replace("nobody", "bob"), e.message);
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
        // Even the right password is refused from that address while throttled (a guesser learns
        // nothing)...
        let e = a
            .login("bob", Credential::Password("right".into()), IP)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Throttled, "{e:?}");
        assert!(e.message.contains("retry in"), "{e:?}");
        // ...but not from another address: a stranger cannot lock the user out.
        a.login("bob", Credential::Password("right".into()), ip(9))
            .await
            .unwrap();
        // Other users from the same address until the address's own limit is used up.
        for _ in 0..2 {
            a.login("ghost", Credential::Password("x".into()), IP)
                .await
                .unwrap_err();
        }
        let e = a
            .login("ghost", Credential::Password("x".into()), IP)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Throttled);
        let e = a
            .login("ghost", Credential::Password("x".into()), ip(2))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::AuthFailed);
    }

    #[tokio::test]
    async fn parallel_attempts_are_counted_when_admitted() {
        let a = auth(AuthLimits {
            per_user: Limit::new(3, Duration::from_secs(60)),
            ..AuthLimits::default()
        });
        let mut tasks = Vec::new();
        for i in 0..20 {
            let a = a.clone();
            let pw = if i == 19 { "right" } else { "wrong" };
            tasks.push(tokio::spawn(async move {
                a.login("bob", Credential::Password(pw.into()), IP).await
            }));
        }
        let mut failed = 0;
        for t in tasks {
            if let Err(e) = t.await.unwrap() {
                if e.code == ErrorCode::AuthFailed {
                    failed += 1;
                }
            }
        }
        assert!(failed <= 3, "{failed} attempts were evaluated");
    }

    #[tokio::test]
    async fn a_distributed_guesser_trips_the_user_limit_but_known_addresses_go_on() {
        let a = auth(AuthLimits {
            per_user_total: Limit::new(4, Duration::from_secs(60)),
            ..AuthLimits::default()
        });
        a.login("bob", Credential::Password("right".into()), IP)
            .await
            .unwrap();
        for n in 10..14 {
            let e = a
                .login("bob", Credential::Password("bad".into()), ip(n))
                .await
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::AuthFailed);
        }
        let e = a
            .login("bob", Credential::Password("right".into()), ip(20))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Throttled, "{e:?}");
        a.login("bob", Credential::Password("right".into()), IP)
            .await
            .expect("a known address still logs in");
    }

    #[test]
    fn an_ipv6_source_is_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        assert_eq!(source(a), source(b));
        assert_ne!(source(a), source("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(
            source("::ffff:192.0.2.7".parse().unwrap()),
            ip4(192, 0, 2, 7)
        );
        assert_eq!(source(ip4(192, 0, 2, 7)), ip4(192, 0, 2, 7));
    }

    fn ip4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d))
    }

    #[tokio::test]
    async fn registration_refusals_are_one_answer() {
        let a = auth(AuthLimits::default());
        let uid: Uid = "80:00:00:00:01:00:0A:C2".parse().unwrap();
        a.register(uid, "devsecret".into(), IP).await.unwrap();
        let wrong = a.register(uid, "nope".into(), IP).await.unwrap_err();
        assert_eq!(wrong.code, ErrorCode::BadSecret);
        let other: Uid = "80:00:00:00:01:00:0A:C3".parse().unwrap();
        let unknown = a.register(other, "x".into(), IP).await.unwrap_err();
        assert_eq!(unknown.code, ErrorCode::BadSecret);
        assert_eq!(
            unknown
                .message
                .replace(&other.to_string(), &uid.to_string()),
            wrong.message
        );
    }

    #[tokio::test]
    async fn auth_hashes_per_user_are_capped() {
        let a = auth(AuthLimits {
            max_auth_hashes_per_user: 3,
            ..AuthLimits::default()
        });
        let bob = a
            .login("bob", Credential::Password("right".into()), IP)
            .await
            .unwrap();
        for _ in 0..3 {
            a.create_auth_hash(bob.user_id, "bob", "x".into())
                .await
                .unwrap();
        }
        let e = a
            .create_auth_hash(bob.user_id, "bob", "x".into())
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::LimitReached);
        assert!(e.message.contains("limit 3"), "{e:?}");
    }
}
