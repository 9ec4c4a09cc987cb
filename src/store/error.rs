//! Store errors, worded for an operator: which database, what went wrong and
//! what to check. A connection string's password never appears in them.

/// Something the store could not do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL names a database this build does not support.
    #[error("database url scheme {scheme:?} is not supported: use sqlite://PATH or postgres://…")]
    Scheme {
        /// The scheme given.
        scheme: String,
    },
    /// The URL could not be understood.
    #[error("database url is invalid: {reason}")]
    Url {
        /// What the driver said (without the URL itself).
        reason: String,
    },
    /// The database did not answer or refused the connection.
    #[error("cannot connect to {target}: {reason}; {hint}")]
    Connect {
        /// `PostgreSQL at host:port, database NAME` or `SQLite file PATH`.
        target: String,
        /// What went wrong.
        reason: String,
        /// What to check.
        hint: &'static str,
        /// Whether trying again later may work (the server is down or
        /// starting), as opposed to a wrong password or database name.
        transient: bool,
    },
    /// The SQLite file cannot be written.
    #[error("SQLite file {path} is read-only: check its permissions and its directory's")]
    ReadOnly {
        /// The file.
        path: String,
    },
    /// Bringing the schema up to date failed.
    #[error("migrating the {backend} schema failed: {reason}")]
    Migrate {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The operation does not exist for this backend (a programming error).
    #[error("not supported by this store: {0}")]
    Unsupported(&'static str),
    /// A statement failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// True when trying again later may succeed: the connection broke, the
    /// server is shutting down or overloaded, a deadlock or serialization
    /// failure, a timeout. A value the database rejects is not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Connect { transient, .. } => *transient,
            StoreError::Database(e) => is_retryable_sqlx(e),
            _ => false,
        }
    }

    /// True when the database refused the data itself: a value out of range
    /// or too long, a NUL byte, a violated constraint, a row too large to
    /// index. Other rows of the same batch may then still be stored, and the
    /// refused ones are set aside. Errors about the schema, privileges, disk
    /// space or a read-only server refuse every row alike and are not
    /// row-level: setting rows aside for them would empty the stream into
    /// the dead-letter table.
    pub fn is_row_level(&self) -> bool {
        let StoreError::Database(sqlx::Error::Database(db)) = self else {
            return false;
        };
        match db.code().as_deref() {
            Some(code) => match sqlite_primary(code) {
                // SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH, SQLITE_RANGE.
                Some(primary) => matches!(primary, 18 | 19 | 20 | 25),
                // Data exception, integrity constraint violation, program limit.
                None => ["22", "23", "54"]
                    .iter()
                    .any(|class| code.starts_with(class)),
            },
            None => false,
        }
    }

    /// True when the database refuses every write until an operator acts
    /// (a missing table, a revoked privilege, a full disk, a read-only
    /// server): neither a passing fault nor a fault of particular rows.
    pub fn needs_operator(&self) -> bool {
        !self.is_retryable() && !self.is_row_level()
    }
}

/// The primary result code of an SQLite error code (`"5"`, `"517"`), or
/// `None` for a PostgreSQL SQLSTATE, which always has five characters.
fn sqlite_primary(code: &str) -> Option<u32> {
    if code.len() >= 5 {
        return None;
    }
    code.parse::<u32>().ok().map(|c| c & 0xff)
}

impl StoreError {
    /// True when a statement failed because the audit table does not exist:
    /// the database was never migrated.
    pub fn is_missing_table(&self) -> bool {
        match self {
            StoreError::Database(e) => is_missing_table(e),
            _ => false,
        }
    }
}

/// True when the database says a table the statement names does not exist:
/// SQLSTATE 42P01 (`undefined_table`) on PostgreSQL, `no such table` on
/// SQLite, which gives only its generic error code.
pub fn is_missing_table(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("42P01") || db.message().starts_with("no such table")
        }
        _ => false,
    }
}

impl StoreError {
    /// A short name for the kind of failure, for metrics labels:
    /// `connection`, `timeout`, `serialization`, `deadlock`, `shutdown`,
    /// `too_many_connections`, `locked`, `refused` (a row's data),
    /// `blocked` (every write refused until an operator acts) or `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Connect { .. } => "connection",
            StoreError::Database(sqlx::Error::Io(_) | sqlx::Error::Tls(_)) => "connection",
            StoreError::Database(sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed) => {
                "connection"
            }
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => "timeout",
            StoreError::Database(sqlx::Error::Database(db)) => {
                let code = db.code().unwrap_or_default();
                match (code.as_ref(), sqlite_primary(&code)) {
                    (_, Some(5 | 6)) | ("55P03", _) => "locked",
                    ("40001", _) => "serialization",
                    ("40P01", _) => "deadlock",
                    ("57014", _) => "timeout",
                    ("53300", _) => "too_many_connections",
                    (c, _) if c.starts_with("57P") => "shutdown",
                    (c, _) if c.starts_with("08") => "connection",
                    _ if self.is_row_level() => "refused",
                    _ => "blocked",
                }
            }
            _ => "other",
        }
    }
}

/// PostgreSQL SQLSTATE classes and codes that heal by themselves.
const RETRYABLE_STATES: &[&str] = &[
    "40001", // serialization_failure
    "40P01", // deadlock_detected
    "53300", // too_many_connections
    "57P01", // admin_shutdown
    "57P02", // crash_shutdown
    "57P03", // cannot_connect_now
    "57014", // query_canceled (statement_timeout)
    "55P03", // lock_not_available
    "08000", "08003", "08006", "08001", "08004", // connection exceptions
];

fn is_retryable_sqlx(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => {
                RETRYABLE_STATES.contains(&code.as_ref())
                    // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6), with
                    // their extended codes (SQLITE_BUSY_SNAPSHOT is 517).
                    || matches!(sqlite_primary(&code), Some(5 | 6))
            }
            None => false,
        },
        _ => false,
    }
}
