//! Limits that hold across nodes: sessions per user (each node publishes how many sessions it relays
//! per user; a new session counts the others' too) and failure throttling (each node records its failed
//! logins and registrations; before admitting an attempt, a node takes in those the others recorded
//! since it last looked, so guesses spread over nodes lock out after the same count as on one).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

use super::schema::DB_NOW;
use super::{Cluster, DEAD_AFTER};
use crate::error::Result;

/// A failed login or registration another node recorded: `who` is `user:<name>` or `device:<uid>`.
pub struct Failure {
    pub who: String,
    pub ip: IpAddr,
    /// Whether it counted toward the per-user (per-device) total.
    pub total: bool,
}

/// How long failure rows are kept: longer than any throttle window.
const FAILURES_KEPT_SECS: i64 = 3600;

impl Cluster {
    /// Sessions `user_id` holds on the other live nodes (as they last published).
    pub async fn sessions_elsewhere(&self, user_id: i64) -> Result<usize> {
        let row = self
            .client
            .query_one(
                &format!(
                    "SELECT coalesce(sum(s.count), 0)::bigint FROM user_sessions s JOIN nodes n ON n.id = s.node_id
                     WHERE s.user_id = $1 AND s.node_id <> $2 AND n.heartbeat_at > {DB_NOW} - $3"
                ),
                &[&user_id, &self.node_id, &(DEAD_AFTER.as_secs() as i64)],
            )
            .await?;
        Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }

    /// Publishes this node's sessions per user where they changed since `published` (updated).
    pub async fn publish_sessions(
        &self,
        now: &HashMap<i64, usize>,
        published: &mut HashMap<i64, usize>,
    ) -> Result<()> {
        let gone: Vec<i64> = published
            .keys()
            .filter(|u| !now.contains_key(u))
            .copied()
            .collect();
        for user_id in gone {
            self.client
                .execute(
                    "DELETE FROM user_sessions WHERE user_id = $1 AND node_id = $2",
                    &[&user_id, &self.node_id],
                )
                .await?;
            published.remove(&user_id);
        }
        for (&user_id, &count) in now {
            if published.get(&user_id) == Some(&count) {
                continue;
            }
            self.client
                .execute(
                    "INSERT INTO user_sessions (user_id, node_id, count) VALUES ($1, $2, $3)
                     ON CONFLICT (user_id, node_id) DO UPDATE SET count = $3",
                    &[&user_id, &self.node_id, &(count as i64)],
                )
                .await?;
            published.insert(user_id, count);
        }
        Ok(())
    }

    /// Records a failed attempt here for the other nodes (written in order by the presence task).
    pub fn record_failure(&self, who: String, ip: IpAddr, total: bool) {
        let _ = self
            .presence
            .send(super::Presence::Failure(Failure { who, ip, total }));
    }

    pub(super) async fn insert_failure(&self, f: &Failure) -> Result<()> {
        self.client
            .execute(
                &format!(
                    "INSERT INTO auth_failures (node_id, who, ip, total, at) VALUES ($1, $2, $3, $4, {DB_NOW})"
                ),
                &[&self.node_id, &f.who, &f.ip.to_string(), &f.total],
            )
            .await?;
        Ok(())
    }

    /// The failures other nodes recorded since this node last asked (or joined).
    pub async fn failures_elsewhere(&self) -> Result<Vec<Failure>> {
        let since = self.failures_seen.load(Ordering::Acquire);
        let rows = self
            .client
            .query(
                "SELECT id, who, ip, total FROM auth_failures WHERE id > $1 AND node_id <> $2 ORDER BY id",
                &[&since, &self.node_id],
            )
            .await?;
        let Some(last) = rows.last() else {
            return Ok(Vec::new());
        };
        // Two attempts asking at once must not both take in the same rows.
        let last: i64 = last.get(0);
        if self
            .failures_seen
            .compare_exchange(since, last, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Ok(Vec::new());
        }
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(Failure {
                    who: r.get(1),
                    ip: r.get::<_, String>(2).parse().ok()?,
                    total: r.get(3),
                })
            })
            .collect())
    }

    /// The newest failure row now: a node that joins takes in only what comes after.
    pub(super) async fn last_failure_id(&self) -> Result<i64> {
        Ok(self
            .client
            .query_one(
                "SELECT coalesce(max(id), 0)::bigint FROM auth_failures",
                &[],
            )
            .await?
            .get(0))
    }

    pub(super) async fn forget_old_failures(&self) -> Result<()> {
        self.client
            .execute(
                &format!("DELETE FROM auth_failures WHERE at < {DB_NOW} - $1"),
                &[&FAILURES_KEPT_SECS],
            )
            .await?;
        Ok(())
    }
}
