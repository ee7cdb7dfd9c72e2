//! The cluster's tables, PostgreSQL only. They hold what the nodes tell each other (who is alive, which
//! node holds which device), nothing authoritative: a node's death loses nothing the accounts need.
//! Created idempotently at every `run` start, under the same advisory lock as the schema, so they need
//! no schema version of their own.

use tokio_postgres::Client;

use crate::error::Result;
use crate::store::postgres::SCHEMA_LOCK;

const CLUSTER_TABLES: &str = "
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY,
    control_addr TEXT NOT NULL,
    relay_addrs TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS device_presence (
    uid TEXT PRIMARY KEY REFERENCES devices(uid) ON DELETE CASCADE,
    node_id TEXT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    conn_id BIGINT NOT NULL,
    candidates TEXT NOT NULL DEFAULT '',
    -- The device's static public key as it registered (base64; empty for a device without one).
    device_key TEXT NOT NULL DEFAULT '',
    registered_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS device_presence_node ON device_presence(node_id);
CREATE TABLE IF NOT EXISTS user_sessions (
    user_id BIGINT NOT NULL,
    node_id TEXT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    count BIGINT NOT NULL,
    PRIMARY KEY (user_id, node_id)
);
CREATE TABLE IF NOT EXISTS auth_failures (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node_id TEXT NOT NULL,
    who TEXT NOT NULL,
    ip TEXT NOT NULL,
    total BOOLEAN NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_failures_at ON auth_failures(at);
";

/// Seconds since the epoch by the database's clock: the one clock every node shares.
pub const DB_NOW: &str = "extract(epoch from now())::bigint";

pub async fn create(client: &Client) -> Result<()> {
    client
        .batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); {CLUSTER_TABLES} COMMIT;"
        ))
        .await?;
    Ok(())
}
