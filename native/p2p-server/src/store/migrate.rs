//! `p2p-server migrate`: copies the SQLite database of a data directory into an empty PostgreSQL schema,
//! in one transaction, and proves the copy complete before committing it: per table the row count and a
//! SHA-256 over its rows in primary-key order must be the same on both sides.
//!
//! The tables and columns are listed once, in [`TABLES`]; a schema change adds its column there and the
//! copy and the check follow.

use std::path::Path;

use sha2::{Digest, Sha256};
use tokio_postgres::types::ToSql;

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use crate::error::{Error, Result};

/// How a column is typed in PostgreSQL (SQLite stores the same values with looser types).
#[derive(Clone, Copy)]
enum Kind {
    /// `BIGINT`
    Int8,
    /// `INTEGER`
    Int4,
    Text,
    /// `BYTEA` (SQLite `BLOB`)
    Bytes,
    /// `BOOLEAN` (SQLite `INTEGER` 0 or 1)
    Bool,
}

struct Table {
    name: &'static str,
    /// Every column, in the order both sides read them.
    columns: &'static [(&'static str, Kind)],
    /// The primary key: the order of the rows the digest covers.
    key: &'static [&'static str],
    /// An identity column whose sequence must continue after the copied ids.
    identity: Option<&'static str>,
}

use Kind::{Bool, Bytes, Int4, Int8, Text};

/// Parents before children, so foreign keys hold at every insert. `schema_version` is not copied: both
/// stores have checked on opening that they are at the version this program expects.
const TABLES: &[Table] = &[
    Table {
        name: "users",
        columns: &[
            ("id", Int8),
            ("name", Text),
            ("password_hash", Text),
            ("created_at", Int8),
        ],
        key: &["id"],
        identity: Some("id"),
    },
    Table {
        name: "devices",
        columns: &[
            ("uid", Text),
            ("owner_id", Int8),
            ("name", Text),
            ("application_type", Int4),
            ("secret_hash", Text),
            ("created_at", Int8),
            ("public_key", Text),
            ("key_rotation", Bool),
        ],
        key: &["uid"],
        identity: None,
    },
    Table {
        name: "shares",
        columns: &[("uid", Text), ("user_id", Int8), ("created_at", Int8)],
        key: &["uid", "user_id"],
        identity: None,
    },
    Table {
        name: "auth_hashes",
        columns: &[
            ("id", Text),
            ("user_id", Int8),
            ("secret_sha256", Bytes),
            ("label", Text),
            ("created_at", Int8),
            ("revoked_at", Int8),
        ],
        key: &["id"],
        identity: None,
    },
    Table {
        name: "initiator_keys",
        columns: &[
            ("user_id", Int8),
            ("public_key", Text),
            ("first_seen", Int8),
            ("last_seen", Int8),
        ],
        key: &["user_id", "public_key"],
        identity: None,
    },
];

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Value {
    /// An unambiguous encoding for the digest: a tag, then a length where the value has one.
    fn hash_into(&self, h: &mut Sha256) {
        match self {
            Value::Null => h.update([0u8]),
            Value::Int(i) => {
                h.update([1u8]);
                h.update(i.to_be_bytes());
            }
            Value::Text(s) => {
                h.update([2u8]);
                h.update((s.len() as u64).to_be_bytes());
                h.update(s.as_bytes());
            }
            Value::Bytes(b) => {
                h.update([3u8]);
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
        }
    }
}

/// What the check compares for one table.
#[derive(Debug, PartialEq)]
struct Summary {
    rows: u64,
    sha256: [u8; 32],
}

fn summarize(rows: &[Vec<Value>]) -> Summary {
    let mut h = Sha256::new();
    for row in rows {
        for value in row {
            value.hash_into(&mut h);
        }
    }
    Summary {
        rows: rows.len() as u64,
        sha256: h.finalize().into(),
    }
}

impl Table {
    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(c, _)| *c)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Primary-key order; text compared byte-wise on both sides (SQLite's default, `"C"` in PostgreSQL).
    fn order_by(&self, postgres: bool) -> String {
        self.key
            .iter()
            .map(|k| {
                let text = matches!(self.kind(k), Some(Text));
                if postgres && text {
                    format!("{k} COLLATE \"C\"")
                } else {
                    k.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn kind(&self, column: &str) -> Option<Kind> {
        self.columns
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, k)| *k)
    }

    fn select(&self, postgres: bool) -> String {
        format!(
            "SELECT {} FROM {} ORDER BY {}",
            self.column_list(),
            self.name,
            self.order_by(postgres)
        )
    }
}

fn read_sqlite(conn: &rusqlite::Connection, table: &Table) -> Result<Vec<Vec<Value>>> {
    let mut stmt = conn.prepare(&table.select(false))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(table.columns.len());
        for (i, (column, kind)) in table.columns.iter().enumerate() {
            use rusqlite::types::ValueRef;
            let value = match (row.get_ref(i)?, kind) {
                (ValueRef::Null, _) => Value::Null,
                (ValueRef::Integer(n), Int8 | Int4 | Bool) => Value::Int(n),
                (ValueRef::Text(t), Text) => Value::Text(
                    String::from_utf8(t.to_vec())
                        .map_err(|_| mismatch(table, column, "text that is not UTF-8"))?,
                ),
                (ValueRef::Blob(b), Bytes) => Value::Bytes(b.to_vec()),
                (other, _) => {
                    return Err(mismatch(
                        table,
                        column,
                        &format!("a value of type {}", other.data_type()),
                    ))
                }
            };
            values.push(value);
        }
        out.push(values);
    }
    Ok(out)
}

fn mismatch(table: &Table, column: &str, found: &str) -> Error {
    Error::new(format!(
        "the SQLite database holds {found} in {}.{column}: it cannot be copied as it is",
        table.name
    ))
}

fn read_postgres(pg: &PgStore, table: &Table) -> Result<Vec<Vec<Value>>> {
    let rows = pg.rows(&table.select(true), &[])?;
    rows.iter()
        .map(|row| {
            table
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| {
                    Ok(match kind {
                        Int8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
                        Int4 => row
                            .try_get::<_, Option<i32>>(i)?
                            .map(|n| Value::Int(n.into())),
                        Text => row.try_get::<_, Option<String>>(i)?.map(Value::Text),
                        Bytes => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Bytes),
                        Bool => row
                            .try_get::<_, Option<bool>>(i)?
                            .map(|b| Value::Int(b.into())),
                    }
                    .unwrap_or(Value::Null))
                })
                .collect()
        })
        .collect()
}

/// One value as a parameter of the column's PostgreSQL type (a NULL too is typed).
fn parameter(
    table: &Table,
    column: &str,
    kind: Kind,
    value: &Value,
) -> Result<Box<dyn ToSql + Sync>> {
    Ok(match (kind, value) {
        (Int8, Value::Int(n)) => Box::new(*n),
        (Int4, Value::Int(n)) => Box::new(
            i32::try_from(*n).map_err(|_| mismatch(table, column, &format!("the number {n}")))?,
        ),
        (Text, Value::Text(s)) => Box::new(s.clone()),
        (Bytes, Value::Bytes(b)) => Box::new(b.clone()),
        (Int8, Value::Null) => Box::new(None::<i64>),
        (Int4, Value::Null) => Box::new(None::<i32>),
        (Text, Value::Null) => Box::new(None::<String>),
        (Bytes, Value::Null) => Box::new(None::<Vec<u8>>),
        (Bool, Value::Int(n @ (0 | 1))) => Box::new(*n == 1),
        (Bool, Value::Null) => Box::new(None::<bool>),
        (_, other) => return Err(mismatch(table, column, &format!("{other:?}"))),
    })
}

fn insert_postgres(pg: &PgStore, table: &Table, rows: &[Vec<Value>]) -> Result<()> {
    let placeholders: Vec<String> = (1..=table.columns.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        table.name,
        table.column_list(),
        placeholders.join(", ")
    );
    for row in rows {
        let params = table
            .columns
            .iter()
            .zip(row)
            .map(|((column, kind), value)| parameter(table, column, *kind, value))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        pg.execute(&sql, &refs)?;
    }
    Ok(())
}

/// Per table, what was copied: the report `migrate` prints.
pub struct Copied {
    pub counts: Vec<(&'static str, u64)>,
}

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .counts
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        write!(
            f,
            "copied {} (row counts and SHA-256 of every table checked)",
            parts.join(", ")
        )
    }
}

/// Copies `from`'s SQLite database into the PostgreSQL database `database` (a URL or key/value string).
pub fn migrate(from: &Path, database: &str) -> Result<Copied> {
    let sqlite = crate::db::open(from)?;
    let source = read_all(&sqlite).map_err(|e| e.in_database(&crate::db::db_path(from)))?;
    let pg = PgStore::connect(database)?;
    copy(&source, &pg)
}

/// Every table, read in one transaction: one snapshot even if a server still writes.
fn read_all(sqlite: &SqliteStore) -> Result<Vec<Vec<Vec<Value>>>> {
    let conn = sqlite.connection();
    conn.execute_batch("BEGIN")?;
    let read = TABLES
        .iter()
        .map(|t| read_sqlite(conn, t))
        .collect::<Result<Vec<_>>>();
    conn.execute_batch("COMMIT")?;
    read
}

fn copy(source: &[Vec<Vec<Value>>], pg: &PgStore) -> Result<Copied> {
    pg.in_transaction(|| {
        let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        // No node may write while the copy runs, and "empty" must still hold at commit.
        pg.execute(
            &format!("LOCK TABLE {} IN EXCLUSIVE MODE", names.join(", ")),
            &[],
        )?;
        for table in TABLES {
            let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", table.name);
            let has_rows: bool = pg.rows(&sql, &[])?[0].get(0);
            if has_rows {
                return Err(Error::new(format!(
                    "the PostgreSQL database is not empty (table {} has rows): migrate copies only into a fresh database",
                    table.name
                )));
            }
        }
        let mut counts = Vec::new();
        for (table, rows) in TABLES.iter().zip(source) {
            insert_postgres(pg, table, rows)?;
            if let Some(column) = table.identity {
                // New rows must not reuse a copied id.
                pg.execute(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{0}', '{column}'), max({column})) FROM {0} HAVING count(*) > 0",
                        table.name
                    ),
                    &[],
                )?;
            }
            let expected = summarize(rows);
            let copied = summarize(&read_postgres(pg, table)?);
            if copied != expected {
                return Err(Error::new(format!(
                    "table {} differs after the copy ({} rows read from SQLite, {} in PostgreSQL, or their contents): nothing was committed",
                    table.name, expected.rows, copied.rows
                )));
            }
            counts.push((table.name, expected.rows));
        }
        Ok(Copied { counts })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_tells_apart_values_that_concatenate_alike() {
        let a = summarize(&[vec![Value::Text("ab".into()), Value::Text("c".into())]]);
        let b = summarize(&[vec![Value::Text("a".into()), Value::Text("bc".into())]]);
        let c = summarize(&[vec![Value::Null, Value::Text("abc".into())]]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.rows, 1);
    }

    #[test]
    fn every_table_of_the_sqlite_schema_is_listed_with_all_its_columns() {
        let store = crate::db::memory();
        let conn = store.connection();
        let mut tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'schema_version' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let mut listed: Vec<String> = TABLES.iter().map(|t| t.name.to_string()).collect();
        tables.sort();
        listed.sort();
        assert_eq!(listed, tables);
        for table in TABLES {
            let columns: Vec<String> = conn
                .prepare(&format!(
                    "SELECT name FROM pragma_table_info('{}')",
                    table.name
                ))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let listed: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
            assert_eq!(listed, columns, "columns of {}", table.name);
        }
    }
}
