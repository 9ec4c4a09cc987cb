//! PostgreSQL and Neon: connection with TLS and timeouts, and batched writes
//! by binary COPY: straight into the table while no row is stored yet, else
//! through a per-connection staging table and one `INSERT … ON CONFLICT (id)
//! DO NOTHING`, so rows already stored are skipped.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, PgPool};

use super::{StoreError, WriteOutcome, copy};
use crate::config::DatabaseConfig;
use crate::record::Record;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Most connections one process opens: the daemon writes from one task and
/// queries are single statements, so a few suffice and Neon's limits stay far.
const MAX_CONNECTIONS: u32 = 4;

/// Created once per connection; emptied by every commit.
const STAGING_DDL: &str = "CREATE TEMP TABLE IF NOT EXISTS egress_staging \
     (LIKE tq_egress_audit INCLUDING DEFAULTS) ON COMMIT DELETE ROWS";

const COPY_STAGING: &str = concat!(
    "COPY egress_staging (",
    copy::columns!(),
    ") FROM STDIN (FORMAT binary)"
);

const COPY_TABLE: &str = concat!(
    "COPY tq_egress_audit (",
    copy::columns!(),
    ") FROM STDIN (FORMAT binary)"
);

/// Bytes per COPY data message.
const COPY_MESSAGE_BYTES: usize = 64 * 1024;

/// SQLSTATE of a primary-key conflict.
const UNIQUE_VIOLATION: &str = "23505";

const INSERT_FROM_STAGING: &str = concat!(
    "INSERT INTO tq_egress_audit (",
    copy::columns!(),
    ") SELECT ",
    copy::columns!(),
    " FROM egress_staging ON CONFLICT (id) DO NOTHING"
);

pub(super) async fn connect(config: &DatabaseConfig) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(&config.url)
        .map_err(|e| StoreError::Url {
            reason: redact(&e.to_string(), &config.url),
        })?
        .options([("statement_timeout", millis(config.statement_timeout))]);
    let target = describe(&options);

    // One direct connection first: a pool only reports that it timed out,
    // while a connection says what actually went wrong (refused, TLS, auth).
    let probe = tokio::time::timeout(config.connect_timeout, options.connect()).await;
    match probe {
        Ok(Ok(connection)) => connection.close().await?,
        Ok(Err(e)) => return Err(connect_error(e, &target, &config.url)),
        Err(_) => {
            return Err(StoreError::Connect {
                target,
                reason: format!("no answer within {:?}", config.connect_timeout),
                transient: true,
                hint: "check that the host and port are right and reachable; raise \
                       database.connect_timeout for a slow network",
            });
        }
    }

    Ok(PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(config.connect_timeout)
        .connect_lazy_with(options))
}

pub(super) async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await.map_err(|e| StoreError::Migrate {
        backend: "postgres",
        reason: e.to_string(),
    })
}

/// Writes `rows`: first by plain COPY into the table, the fastest path, which
/// holds whenever none of the rows is stored yet (the steady state of
/// tailing). If one is (a replay, or a crash between commit and checkpoint),
/// the primary key stops that COPY, the transaction is rolled back, and the
/// batch is merged instead (see [`merge`]), which skips what is stored.
pub(super) async fn write(pool: &PgPool, rows: &[Record]) -> Result<WriteOutcome, StoreError> {
    write_encoded(pool, &copy::encode_rows(rows), rows.len()).await
}

/// [`write`] for `count` rows already encoded by [`copy::encode_row`].
pub(super) async fn write_encoded(
    pool: &PgPool,
    encoded: &[u8],
    count: usize,
) -> Result<WriteOutcome, StoreError> {
    let mut tx = pool.begin().await?;
    match copy_into(&mut tx, COPY_TABLE, encoded).await {
        Ok(written) => {
            tx.commit().await?;
            Ok(WriteOutcome {
                written,
                duplicates: 0,
            })
        }
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some(UNIQUE_VIOLATION) => {
            tx.rollback().await?;
            merge_encoded(pool, encoded, count).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes `rows` through the staging table: binary COPY into it, then one
/// `INSERT … SELECT … ON CONFLICT (id) DO NOTHING`. Slower than a plain COPY,
/// but rows already stored are skipped instead of failing the batch.
pub(super) async fn merge(pool: &PgPool, rows: &[Record]) -> Result<WriteOutcome, StoreError> {
    merge_encoded(pool, &copy::encode_rows(rows), rows.len()).await
}

/// [`merge`] for `count` rows already encoded by [`copy::encode_row`].
pub(super) async fn merge_encoded(
    pool: &PgPool,
    encoded: &[u8],
    count: usize,
) -> Result<WriteOutcome, StoreError> {
    let mut tx = pool.begin().await?;
    tx.execute(STAGING_DDL).await?;
    copy_into(&mut tx, COPY_STAGING, encoded).await?;
    let written = tx.execute(INSERT_FROM_STAGING).await?.rows_affected();
    tx.commit().await?;
    Ok(WriteOutcome {
        written,
        duplicates: count as u64 - written,
    })
}

/// Sends encoded rows between COPY's header and trailer.
async fn copy_into(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    statement: &'static str,
    encoded: &[u8],
) -> Result<u64, sqlx::Error> {
    let mut sink = tx.copy_in_raw(statement).await?;
    sink.send(copy::HEADER).await?;
    // The driver copies each message into the connection's write buffer,
    // which keeps its largest size: pieces keep it small.
    for piece in encoded.chunks(COPY_MESSAGE_BYTES) {
        sink.send(piece).await?;
    }
    sink.send(copy::TRAILER).await?;
    sink.finish().await
}

fn millis(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

/// `PostgreSQL at HOST:PORT, database NAME`: enough to find it, no secrets.
fn describe(options: &PgConnectOptions) -> String {
    format!(
        "PostgreSQL at {}:{}, database {}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("(default)")
    )
}

fn connect_error(error: sqlx::Error, target: &str, url: &str) -> StoreError {
    let reason = redact(&error.to_string(), url);
    // Certificate problems reach us as I/O errors from the TLS layer.
    let lower = reason.to_ascii_lowercase();
    let tls = matches!(error, sqlx::Error::Tls(_))
        || lower.contains("certificate")
        || lower.contains("tls handshake");
    let transient =
        !tls && matches!(
            &error,
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_)
        ) || matches!(&error, sqlx::Error::Database(db)
        if db.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08") || c == "53300"));
    let hint = match &error {
        _ if tls => {
            "check sslmode and sslrootcert: verify-full needs a certificate that a trusted \
             authority issued for the host name in the URL"
        }
        sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("28P01" | "28000")) => {
            "check the user name and password in the URL or DATABASE_URL"
        }
        sqlx::Error::Database(db) if db.code().as_deref() == Some("3D000") => {
            "check the database name; create it first"
        }
        _ => "check that the server is running and reachable, and the host and port in the URL",
    };
    StoreError::Connect {
        target: target.to_string(),
        reason,
        hint,
        transient,
    }
}

/// Removes the password from any text that might echo the URL.
fn redact(text: &str, url: &str) -> String {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
    {
        Some(password) if !password.is_empty() => text.replace(&password, "***"),
        _ => text.to_string(),
    }
}
