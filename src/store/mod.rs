//! The store: where records are kept and read back.
//!
//! `database.url` chooses the backend: `sqlite://PATH` for the embedded store
//! (created on first use, WAL mode) or `postgres://…`/`postgresql://…` for
//! PostgreSQL and Neon (TLS through rustls, `sslmode` honoured). This module
//! owns the connection pool, the migrations (one folder per backend, embedded
//! in the binary) and batched writes that ignore rows already stored, so that
//! writing the same record twice adds nothing. Reads live in [`crate::query`].

pub mod copy;
mod error;
mod postgres;
mod rejects;
mod sqlite;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::DatabaseConfig;
use crate::record::Record;

pub use error::{StoreError, is_missing_table};
pub use rejects::{Reject, RejectStage};
pub use sqlite::TIME_FORMAT as SQLITE_TIME_FORMAT;

/// What writing a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Rows that were new and are now stored.
    pub written: u64,
    /// Rows whose id was already stored; they were left as they were.
    pub duplicates: u64,
}

impl WriteOutcome {
    /// Adds another outcome to this one.
    pub fn add(&mut self, other: WriteOutcome) {
        self.written += other.written;
        self.duplicates += other.duplicates;
    }
}

/// A connection pool to one of the supported databases.
#[derive(Debug, Clone)]
pub enum Store {
    /// The embedded SQLite store.
    Sqlite(sqlx::SqlitePool),
    /// PostgreSQL or Neon.
    Postgres(sqlx::PgPool),
}

impl Store {
    /// Connects to the database `config.url` names, without touching its schema.
    pub async fn connect(config: &DatabaseConfig) -> Result<Store, StoreError> {
        if config.url.starts_with("sqlite:") {
            sqlite::connect(config).await.map(Store::Sqlite)
        } else if config.url.starts_with("postgres://") || config.url.starts_with("postgresql://") {
            postgres::connect(config).await.map(Store::Postgres)
        } else {
            Err(StoreError::Scheme {
                scheme: config.url.split(':').next().unwrap_or("").into(),
            })
        }
    }

    /// Connects for reading only. For SQLite this opens an existing file
    /// without writing anything next to it (a read-only copy can be queried);
    /// for PostgreSQL it is [`Store::connect`].
    pub async fn connect_read_only(config: &DatabaseConfig) -> Result<Store, StoreError> {
        if config.url.starts_with("sqlite:") {
            sqlite::connect_read_only(config).await.map(Store::Sqlite)
        } else {
            Store::connect(config).await
        }
    }

    /// Connects and brings the schema up to date: what every writing command does.
    pub async fn open(config: &DatabaseConfig) -> Result<Store, StoreError> {
        let store = Store::connect(config).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations this build carries that the database lacks.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(pool) => sqlite::migrate(pool).await,
            Store::Postgres(pool) => postgres::migrate(pool).await,
        }
    }

    /// Writes `rows` in one transaction. Rows whose id is already stored are
    /// skipped and counted as duplicates; nothing fails because of them.
    pub async fn write(&self, rows: &[Record]) -> Result<WriteOutcome, StoreError> {
        if rows.is_empty() {
            return Ok(WriteOutcome::default());
        }
        match self {
            Store::Sqlite(pool) => sqlite::write(pool, rows).await,
            Store::Postgres(pool) => postgres::write(pool, rows).await,
        }
    }

    /// Writes `rows` the way that skips stored rows without first trying the
    /// fast path: for replays, where most rows are expected to be present.
    pub async fn merge(&self, rows: &[Record]) -> Result<WriteOutcome, StoreError> {
        if rows.is_empty() {
            return Ok(WriteOutcome::default());
        }
        match self {
            Store::Sqlite(pool) => sqlite::write(pool, rows).await,
            Store::Postgres(pool) => postgres::merge(pool, rows).await,
        }
    }

    /// Writes `count` rows encoded with [`copy::encode_row`] (PostgreSQL
    /// only), as [`Store::write`] does; `merge` as [`Store::merge`] does.
    pub async fn write_encoded(
        &self,
        encoded: &[u8],
        count: usize,
        merge: bool,
    ) -> Result<WriteOutcome, StoreError> {
        match self {
            Store::Postgres(pool) if merge => postgres::merge_encoded(pool, encoded, count).await,
            Store::Postgres(pool) => postgres::write_encoded(pool, encoded, count).await,
            Store::Sqlite(_) => Err(StoreError::Unsupported("encoded rows are for PostgreSQL")),
        }
    }

    /// `sqlite` or `postgres`, for messages.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(pool) => pool.close().await,
            Store::Postgres(pool) => pool.close().await,
        }
    }
}

/// One call to record by hand or from a program that embeds this crate:
/// what `egress-audit log` takes.
#[derive(Debug, Clone, Default)]
pub struct NewCall {
    /// Which bot made the call.
    pub bot_name: String,
    /// The URL called.
    pub destination_url: String,
    /// HTTP method.
    pub http_method: Option<String>,
    /// HTTP status.
    pub status_code: Option<i32>,
    /// Time taken in milliseconds.
    pub latency_ms: Option<i64>,
    /// The bot's group.
    pub group_name: Option<String>,
    /// Bytes sent.
    pub request_size_bytes: Option<i64>,
    /// Bytes received.
    pub response_size_bytes: Option<i64>,
    /// User agent.
    pub user_agent: Option<String>,
    /// When the call happened; now when absent.
    pub at: Option<DateTime<Utc>>,
    /// The `source` column.
    pub source: Option<String>,
}

/// Why a hand-made call was refused before reaching the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The bot name is empty.
    #[error("bot name is empty")]
    EmptyBot,
    /// The URL is empty.
    #[error("url is empty")]
    EmptyUrl,
    /// A value is longer than its column.
    #[error("{field} is longer than {max} characters")]
    TooLong {
        /// The column.
        field: &'static str,
        /// Its limit.
        max: usize,
    },
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes one call and returns its id (a fresh UUIDv7 at the call's time).
pub async fn log_call(store: &Store, call: NewCall) -> Result<Uuid, CallError> {
    let record = call_record(call)?;
    let id = record.id;
    store.write(std::slice::from_ref(&record)).await?;
    Ok(id)
}

fn call_record(call: NewCall) -> Result<Record, CallError> {
    use crate::record::{MAX_METHOD_CHARS, MAX_NAME_CHARS};

    if call.bot_name.trim().is_empty() {
        return Err(CallError::EmptyBot);
    }
    if call.destination_url.trim().is_empty() {
        return Err(CallError::EmptyUrl);
    }
    let checks = [
        ("bot_name", Some(&call.bot_name), MAX_NAME_CHARS),
        ("group_name", call.group_name.as_ref(), MAX_NAME_CHARS),
        ("http_method", call.http_method.as_ref(), MAX_METHOD_CHARS),
    ];
    for (field, value, max) in checks {
        if value.is_some_and(|v| v.chars().count() > max) {
            return Err(CallError::TooLong { field, max });
        }
    }

    let at = call.at.unwrap_or_else(Utc::now);
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &rand_bytes()).into_uuid();
    let mut record = Record::new(id, call.bot_name, call.destination_url, at);
    record.destination_host =
        crate::enrich::destination_host(&record.destination_url, call.http_method.as_deref());
    record.http_method = call.http_method;
    record.status_code = call.status_code;
    record.latency_ms = call.latency_ms;
    record.group_name = call.group_name;
    record.request_size_bytes = call.request_size_bytes;
    record.response_size_bytes = call.response_size_bytes;
    record.user_agent = call.user_agent;
    record.source = call.source;
    Ok(record)
}

/// Ten random bytes for a hand-made id, taken from a v4 UUID.
fn rand_bytes() -> [u8; 10] {
    let mut out = [0u8; 10];
    out.copy_from_slice(&Uuid::new_v4().as_bytes()[..10]);
    out
}

/// The SQLite file a `sqlite://` URL names, for messages.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(|rest| PathBuf::from(rest.split('?').next().unwrap_or(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_needs_a_bot_and_a_url() {
        let call = NewCall {
            bot_name: " ".into(),
            destination_url: "x".into(),
            ..Default::default()
        };
        assert!(matches!(call_record(call), Err(CallError::EmptyBot)));
    }

    #[test]
    fn an_overlong_method_is_refused() {
        let call = NewCall {
            bot_name: "b".into(),
            destination_url: "http://x/".into(),
            http_method: Some("PROPPATCHXYZ".into()),
            ..Default::default()
        };
        assert!(matches!(
            call_record(call),
            Err(CallError::TooLong {
                field: "http_method",
                ..
            })
        ));
    }
}
