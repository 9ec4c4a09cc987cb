//! Dead letters: lines that did not parse and rows the database refused, kept
//! in `tq_egress_audit_rejects` with the raw bytes, where they came from and
//! why. Ids are derived from the line's origin, so a replay that rejects the
//! same line again stores it once.

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{AssertSqlSafe, QueryBuilder, Row};
use uuid::Uuid;

use super::{SQLITE_TIME_FORMAT, Store, StoreError};

/// Why a line was set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectStage {
    /// The line did not match the format, or a value was out of range.
    Parse,
    /// The database refused the row.
    Database,
}

impl RejectStage {
    /// `parse` or `database`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectStage::Parse => "parse",
            RejectStage::Database => "database",
        }
    }
}

/// A line set aside.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    /// Derived from the origin (see [`crate::id::reject_id`]).
    pub id: Uuid,
    /// The source name.
    pub source: Option<String>,
    /// The file the line was read from.
    pub file: Option<String>,
    /// That file's fingerprint.
    pub fingerprint: Option<u64>,
    /// Byte offset of the line's start.
    pub offset: Option<u64>,
    /// The line as read, without its newline.
    pub raw_line: Vec<u8>,
    /// What was wrong.
    pub reason: String,
    /// Which step refused it.
    pub stage: RejectStage,
    /// When it was set aside (filled in by the store on reading).
    pub rejected_at: Option<DateTime<Utc>>,
}

/// Most rejects one INSERT statement carries (8 parameters each).
const ROWS_PER_STATEMENT: usize = 1000;

/// One multi-row INSERT of `chunk` into `pool`, skipping ids already stored;
/// `id` turns a reject's id into what that database stores (a uuid, or its
/// text for SQLite). A macro because the two databases' query builders are
/// different types.
macro_rules! insert_rejects {
    ($pool:expr, $chunk:expr, $id:expr) => {{
        let mut insert = QueryBuilder::new(INSERT);
        insert.push_values($chunk, |mut b, r| {
            b.push_bind($id(r.id))
                .push_bind(r.source.clone())
                .push_bind(r.file.clone())
                .push_bind(r.fingerprint.map(|f| f as i64))
                .push_bind(r.offset.map(|o| o as i64))
                .push_bind(r.raw_line.clone())
                .push_bind(r.reason.clone())
                .push_bind(r.stage.as_str());
        });
        insert.push(" ON CONFLICT (id) DO NOTHING");
        insert.build().execute($pool).await?.rows_affected()
    }};
}

impl Store {
    /// Stores dead letters; ones already stored are left as they are.
    /// Returns how many were new.
    pub async fn write_rejects(&self, rejects: &[Reject]) -> Result<u64, StoreError> {
        let mut added = 0;
        for chunk in rejects.chunks(ROWS_PER_STATEMENT) {
            added += match self {
                Store::Postgres(pool) => insert_rejects!(pool, chunk, |id: Uuid| id),
                Store::Sqlite(pool) => insert_rejects!(pool, chunk, |id: Uuid| id.to_string()),
            };
        }
        Ok(added)
    }

    /// The oldest `limit` dead letters, optionally only one stage's.
    pub async fn list_rejects(
        &self,
        limit: u32,
        stage: Option<RejectStage>,
    ) -> Result<Vec<Reject>, StoreError> {
        let filter = stage
            .map(|s| format!(" WHERE stage = '{}'", s.as_str()))
            .unwrap_or_default();
        let sql = format!(
            "SELECT id, source, file, fingerprint, byte_offset, raw_line, reason, stage, \
             rejected_at FROM tq_egress_audit_rejects{filter} \
             ORDER BY rejected_at, id LIMIT {limit}"
        );
        match self {
            Store::Postgres(pool) => {
                let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(pool).await?;
                rows.iter()
                    .map(|r| {
                        Ok(Reject {
                            id: r.try_get("id")?,
                            rejected_at: Some(r.try_get("rejected_at")?),
                            ..common_fields(r)?
                        })
                    })
                    .collect()
            }
            Store::Sqlite(pool) => {
                let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(pool).await?;
                rows.iter()
                    .map(|r| {
                        let id: String = r.try_get("id")?;
                        let at: String = r.try_get("rejected_at")?;
                        Ok(Reject {
                            id: id.parse().map_err(|e| decode_error("id", e))?,
                            rejected_at: NaiveDateTime::parse_from_str(&at, SQLITE_TIME_FORMAT)
                                .ok()
                                .map(|t| t.and_utc()),
                            ..common_fields(r)?
                        })
                    })
                    .collect()
            }
        }
    }

    /// Removes dead letters by id (after a successful retry).
    pub async fn delete_rejects(&self, ids: &[Uuid]) -> Result<u64, StoreError> {
        let mut removed = 0;
        for id in ids {
            removed += match self {
                Store::Postgres(pool) => {
                    sqlx::query("DELETE FROM tq_egress_audit_rejects WHERE id = $1")
                        .bind(id)
                        .execute(pool)
                        .await?
                        .rows_affected()
                }
                Store::Sqlite(pool) => {
                    sqlx::query("DELETE FROM tq_egress_audit_rejects WHERE id = ?")
                        .bind(id.to_string())
                        .execute(pool)
                        .await?
                        .rows_affected()
                }
            };
        }
        Ok(removed)
    }
}

const INSERT: &str = "INSERT INTO tq_egress_audit_rejects \
     (id, source, file, fingerprint, byte_offset, raw_line, reason, stage) ";

/// The columns both databases store alike.
fn common_fields<R>(row: &R) -> Result<Reject, StoreError>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let stage: String = row.try_get("stage")?;
    Ok(Reject {
        id: Uuid::nil(),
        source: row.try_get("source")?,
        file: row.try_get("file")?,
        fingerprint: row
            .try_get::<Option<i64>, _>("fingerprint")?
            .map(|f| f as u64),
        offset: row
            .try_get::<Option<i64>, _>("byte_offset")?
            .map(|o| o as u64),
        raw_line: row.try_get("raw_line")?,
        reason: row.try_get("reason")?,
        stage: if stage == "database" {
            RejectStage::Database
        } else {
            RejectStage::Parse
        },
        rejected_at: None,
    })
}

fn decode_error(column: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(format!("{column}: {e}").into()))
}
