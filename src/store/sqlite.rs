//! The embedded SQLite store: one file, WAL mode, batched multi-row inserts
//! that skip ids already present.

use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::{StoreError, WriteOutcome};
use crate::config::DatabaseConfig;
use crate::record::Record;

/// How SQLite stores times: UTC text that sorts in time order.
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3f";

/// Rows per INSERT statement: 18 bound columns a row stays well under
/// SQLite's limit of 32,766 parameters, and 500 rows a statement is within a
/// few percent of the fastest size measured here.
const ROWS_PER_STATEMENT: usize = 500;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub(super) async fn connect(config: &DatabaseConfig) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::from_str(&config.url)
        .map_err(|e| StoreError::Url {
            reason: e.to_string(),
        })?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL, not WAL's usual NORMAL: a commit must survive a power cut
        // before the checkpoint, which is synced, moves past its lines.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(config.statement_timeout);
    let path = options.get_filename().display().to_string();

    // Switching a new file to WAL takes a lock that the busy timeout does
    // not cover: another process opening it at the same moment gets
    // SQLITE_BUSY at once. That passes as soon as the other is done.
    let mut attempt = 1;
    loop {
        let result = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(config.connect_timeout)
            .connect_with(options.clone())
            .await
            .map_err(|e| classify(e, &path));
        match result {
            Err(e) if e.is_retryable() && attempt < MIGRATE_ATTEMPTS => {
                tracing::debug!(attempt, error = %e, "SQLite file busy at open; again");
                tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt)))
                    .await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Opens an existing file for reading only, without the write-ahead log's
/// shared-memory file, so that a read-only copy of a store can be queried.
pub(super) async fn connect_read_only(config: &DatabaseConfig) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::from_str(&config.url)
        .map_err(|e| StoreError::Url {
            reason: e.to_string(),
        })?
        .read_only(true)
        .immutable(true);
    let path = options.get_filename().display().to_string();
    SqlitePoolOptions::new()
        .max_connections(2)
        .acquire_timeout(config.connect_timeout)
        .connect_with(options)
        .await
        .map_err(|e| classify(e, &path))
}

/// Attempts at opening or migrating while another process opens or
/// migrates the same file.
const MIGRATE_ATTEMPTS: u32 = 5;

pub(super) async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    // SQLite has no migration lock: two processes opening a new file at once
    // (the daemon starting while `query` runs) both apply the first
    // migration, and the second to record it fails on the unique version.
    // Its statements are idempotent, so running again finds the work done.
    let mut attempt = 1;
    let result = loop {
        let result = MIGRATOR.run(pool).await;
        let raced = result.as_ref().is_err_and(|e| {
            let reason = e.to_string();
            reason.contains("_sqlx_migrations") || reason.contains("database is locked")
        });
        if !raced || attempt == MIGRATE_ATTEMPTS {
            break result;
        }
        tracing::debug!(
            attempt,
            "another process is migrating the SQLite file; again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt))).await;
        attempt += 1;
    };
    result.map_err(|e| {
        let reason = e.to_string();
        if reason.contains("readonly") {
            StoreError::ReadOnly {
                path: file_of(pool),
            }
        } else {
            StoreError::Migrate {
                backend: "sqlite",
                reason,
            }
        }
    })
}

pub(super) async fn write(pool: &SqlitePool, rows: &[Record]) -> Result<WriteOutcome, StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| classify(e, &file_of(pool)))?;
    let mut written = 0;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut insert = insert_statement(chunk);
        let result = insert
            .build()
            .execute(&mut *tx)
            .await
            .map_err(|e| classify(e, &file_of(pool)))?;
        written += result.rows_affected();
    }
    tx.commit().await?;
    Ok(WriteOutcome {
        written,
        duplicates: rows.len() as u64 - written,
    })
}

fn insert_statement(rows: &[Record]) -> QueryBuilder<Sqlite> {
    let mut insert = QueryBuilder::new(
        "INSERT INTO tq_egress_audit (id, bot_name, group_name, destination_url, \
         destination_host, http_method, status_code, request_size_bytes, \
         response_size_bytes, latency_ms, user_agent, created_at, client_ip, proxy_user, \
         squid_status, hierarchy, content_type, source) ",
    );
    insert.push_values(rows, |mut b, r| {
        b.push_bind(r.id.to_string())
            .push_bind(r.bot_name.clone())
            .push_bind(r.group_name.clone())
            .push_bind(r.destination_url.clone())
            .push_bind(r.destination_host.clone())
            .push_bind(r.http_method.clone())
            .push_bind(r.status_code)
            .push_bind(r.request_size_bytes)
            .push_bind(r.response_size_bytes)
            .push_bind(r.latency_ms)
            .push_bind(r.user_agent.clone())
            .push_bind(r.created_at.format(TIME_FORMAT).to_string())
            .push_bind(r.client_ip.clone())
            .push_bind(r.proxy_user.clone())
            .push_bind(r.squid_status.clone())
            .push_bind(r.hierarchy.clone())
            .push_bind(r.content_type.clone())
            .push_bind(r.source.clone());
    });
    insert.push(" ON CONFLICT (id) DO NOTHING");
    insert
}

fn file_of(pool: &SqlitePool) -> String {
    pool.connect_options().get_filename().display().to_string()
}

/// Turns driver errors about the file into ones that say what to check.
fn classify(error: sqlx::Error, path: &str) -> StoreError {
    let text = error.to_string();
    if text.contains("readonly") || text.contains("read-only") {
        return StoreError::ReadOnly {
            path: path.to_string(),
        };
    }
    match error {
        sqlx::Error::Database(_) if text.contains("unable to open") => StoreError::Connect {
            target: format!("SQLite file {path}"),
            reason: text,
            hint: "check that the directory exists and is writable",
            transient: false,
        },
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => StoreError::Connect {
            target: format!("SQLite file {path}"),
            reason: text,
            hint: "check that the file is not locked by another program",
            transient: true,
        },
        other => StoreError::Database(other),
    }
}
