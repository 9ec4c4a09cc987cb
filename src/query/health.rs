//! Figures for monitoring (`egress-audit check`): how many calls failed over
//! a window, and how old the newest stored call is.
//!
//! The SQL is the subset both databases share and runs through
//! [`fetch::Sql`], so SQLite and PostgreSQL give the same answers. Judging
//! the figures against thresholds is left to the caller.

use chrono::{DateTime, Utc};

use super::{Column, Filters, Kind, QueryError, Value, col, fetch};
use crate::store::Store;

/// Calls and failed calls matching some filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCount {
    /// Calls.
    pub calls: i64,
    /// Calls whose status is at or above the error floor.
    pub errors: i64,
}

/// When the newest stored call happened and when it was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// The newest `created_at` (when Squid logged the call); `None` when no
    /// call matches.
    pub newest_call: Option<DateTime<Utc>>,
    /// The newest `ingested_at` (when a row was stored).
    pub newest_ingest: Option<DateTime<Utc>>,
}

/// Counts the calls matching `filters` and those among them with a status of
/// at least `error_floor` (500 for server errors, 400 to add client errors).
pub async fn error_count(
    store: &Store,
    filters: &Filters,
    error_floor: u16,
) -> Result<ErrorCount, QueryError> {
    const FETCHED: &[Column] = &[col("calls", Kind::Int), col("errors", Kind::Int)];
    let mut sql = fetch::Sql::new(store);
    sql.push(&format!(
        "SELECT COUNT(*), COUNT(CASE WHEN status_code >= {error_floor} THEN 1 END) \
         FROM tq_egress_audit"
    ));
    sql.filters(filters, "");
    let rows = sql.fetch(FETCHED).await?;
    let row = rows.first().map(Vec::as_slice).unwrap_or_default();
    let int = |i: usize| row.get(i).map_or(0, Value::as_int);
    Ok(ErrorCount {
        calls: int(0),
        errors: int(1),
    })
}

/// The newest call and the newest ingestion among the rows matching `filters`.
pub async fn freshness(store: &Store, filters: &Filters) -> Result<Freshness, QueryError> {
    const FETCHED: &[Column] = &[
        col("newest_call", Kind::Time),
        col("newest_ingest", Kind::Time),
    ];
    let mut sql = fetch::Sql::new(store);
    sql.push("SELECT MAX(created_at), MAX(ingested_at) FROM tq_egress_audit");
    sql.filters(filters, "");
    let rows = sql.fetch(FETCHED).await?;
    let time = |i: usize| match rows.first().and_then(|row| row.get(i)) {
        Some(Value::Time(t)) => Some(*t),
        _ => None,
    };
    Ok(Freshness {
        newest_call: time(0),
        newest_ingest: time(1),
    })
}
