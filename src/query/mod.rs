//! The questions operators ask of the store, answered the same way on SQLite
//! and PostgreSQL.
//!
//! Each query is one [`Query`] variant. Its SQL is written once in the subset
//! both databases share; the few places where they differ (parameter binding,
//! time values, time buckets) are handled in [`fetch`]. The databases return
//! only integers, text and times; ratios and averages are computed here, so
//! both stores give byte-identical answers. Output formatting lives in
//! [`render`]; the figures `check` judges for monitoring in [`health`].

mod fetch;
pub mod health;
pub mod render;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::{Store, StoreError};

pub use fetch::{Kind, Value};

/// Filters every query takes.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Only calls at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only calls before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only calls of this group.
    pub group: Option<String>,
    /// Only calls of this bot.
    pub bot: Option<String>,
}

/// How `top-destinations` groups calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DestinationKey {
    /// By host (`destination_host`).
    #[default]
    Host,
    /// By whole URL (`destination_url`).
    Url,
}

/// A question for the store.
#[derive(Debug, Clone)]
pub enum Query {
    /// The newest calls.
    Recent {
        /// Most rows.
        limit: u32,
    },
    /// Per-bot summary over a window ending now.
    Stats {
        /// How far back.
        window: Duration,
    },
    /// The most called destinations.
    TopDestinations {
        /// Most rows.
        limit: u32,
        /// Host or URL.
        by: DestinationKey,
    },
    /// Failed calls (status >= 400), newest first.
    Errors {
        /// Only status >= 500.
        server_only: bool,
        /// Most rows.
        limit: u32,
    },
    /// Calls per time bucket over a window ending now.
    Timeseries {
        /// Bucket width.
        bucket: Duration,
        /// How far back.
        window: Duration,
    },
    /// Calls slower than a threshold, newest first.
    Slow {
        /// Threshold in milliseconds.
        min_ms: i64,
        /// Most rows.
        limit: u32,
    },
    /// Error rate by destination host, worst first.
    ErrorRate {
        /// Hosts with fewer calls are left out.
        min_calls: i64,
    },
    /// Bytes by bot, most first.
    Bandwidth,
    /// The busiest bots.
    TopBots {
        /// Most rows.
        limit: u32,
    },
    /// Every call in a time range, oldest first.
    Audit {
        /// Start (inclusive).
        from: DateTime<Utc>,
        /// End (exclusive).
        to: DateTime<Utc>,
    },
}

/// A query's answer: named, typed columns and rows of values.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// The rows; each has one value per column.
    pub rows: Vec<Vec<Value>>,
    /// Whether the renderer draws a bar for the `calls` column.
    pub bars: bool,
}

/// A column of a [`Table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Its name (the table's column name where it is one), used by JSON and CSV.
    pub name: &'static str,
    /// Its short heading in an aligned table.
    pub label: &'static str,
    /// What its values are.
    pub kind: Kind,
    /// Whether the aligned table shows it (JSON and CSV show every column).
    pub in_table: bool,
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        label: name,
        kind,
        in_table: true,
    }
}

/// A column whose table heading is shorter than its name.
const fn short(name: &'static str, label: &'static str, kind: Kind) -> Column {
    Column {
        name,
        label,
        kind,
        in_table: true,
    }
}

const fn hidden(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        label: name,
        kind,
        in_table: false,
    }
}

/// A query that could not be answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The arguments do not make sense together.
    #[error("{0}")]
    Invalid(String),
}

impl From<sqlx::Error> for QueryError {
    fn from(e: sqlx::Error) -> QueryError {
        QueryError::Store(StoreError::Database(e))
    }
}

/// Every column of the audit table, as row listings return them.
const RECORD_COLUMNS: &[Column] = &[
    short("created_at", "time", Kind::Time),
    short("bot_name", "bot", Kind::Text),
    hidden("group_name", Kind::Text),
    short("http_method", "method", Kind::Text),
    short("status_code", "status", Kind::Int),
    short("latency_ms", "ms", Kind::Int),
    hidden("request_size_bytes", Kind::Int),
    short("response_size_bytes", "bytes", Kind::Bytes),
    short("destination_url", "url", Kind::Text),
    hidden("destination_host", Kind::Text),
    hidden("user_agent", Kind::Text),
    hidden("client_ip", Kind::Text),
    hidden("proxy_user", Kind::Text),
    hidden("squid_status", Kind::Text),
    hidden("hierarchy", Kind::Text),
    hidden("content_type", Kind::Text),
    hidden("source", Kind::Text),
    hidden("id", Kind::Text),
];

/// Answers `query` from `store`, restricted by `filters`.
pub async fn run(store: &Store, query: &Query, filters: &Filters) -> Result<Table, QueryError> {
    let now = Utc::now();
    match query {
        Query::Recent { limit } => rows(store, filters, "", "DESC", *limit).await,
        Query::Errors { server_only, limit } => {
            let floor = if *server_only { 500 } else { 400 };
            let condition = format!("status_code >= {floor}");
            rows(store, filters, &condition, "DESC", *limit).await
        }
        Query::Slow { min_ms, limit } => {
            let condition = format!("latency_ms > {min_ms}");
            rows(store, filters, &condition, "DESC", *limit).await
        }
        Query::Audit { from, to } => {
            if from >= to {
                return Err(QueryError::Invalid(
                    "audit: --from must be before --to".into(),
                ));
            }
            let mut f = filters.clone();
            f.since = Some(f.since.map_or(*from, |s| s.max(*from)));
            f.until = Some(f.until.map_or(*to, |u| u.min(*to)));
            rows(store, &f, "", "ASC", u32::MAX).await
        }
        Query::Stats { window } => stats(store, &windowed(filters, now, *window)).await,
        Query::Timeseries { bucket, window } => {
            timeseries(store, &windowed(filters, now, *window), *bucket, now).await
        }
        Query::TopDestinations { limit, by } => top_destinations(store, filters, *limit, *by).await,
        Query::ErrorRate { min_calls } => error_rate(store, filters, *min_calls).await,
        Query::Bandwidth => bandwidth(store, filters).await,
        Query::TopBots { limit } => top_bots(store, filters, *limit).await,
    }
}

/// The filters with `since` moved to `now - window` unless given explicitly.
fn windowed(filters: &Filters, now: DateTime<Utc>, window: Duration) -> Filters {
    let mut f = filters.clone();
    if f.since.is_none() {
        let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        f.since = now.checked_sub_signed(window);
    }
    f
}

async fn rows(
    store: &Store,
    filters: &Filters,
    condition: &str,
    order: &str,
    limit: u32,
) -> Result<Table, QueryError> {
    let names: Vec<&str> = RECORD_COLUMNS.iter().map(|c| c.name).collect();
    let mut sql = fetch::Sql::new(store);
    sql.push(&format!("SELECT {} FROM tq_egress_audit", names.join(", ")));
    sql.filters(filters, condition);
    sql.push(&format!(" ORDER BY created_at {order}, id {order}"));
    if limit != u32::MAX {
        sql.push(&format!(" LIMIT {limit}"));
    }
    let rows = sql.fetch(RECORD_COLUMNS).await?;
    Ok(Table {
        columns: RECORD_COLUMNS.to_vec(),
        rows,
        bars: false,
    })
}

async fn stats(store: &Store, filters: &Filters) -> Result<Table, QueryError> {
    const FETCHED: &[Column] = &[
        col("bot_name", Kind::Text),
        col("calls", Kind::Int),
        col("errors", Kind::Int),
        col("latency_sum", Kind::Int),
        col("latency_count", Kind::Int),
        col("max_ms", Kind::Int),
        col("request_bytes", Kind::Int),
        col("response_bytes", Kind::Int),
        col("destinations", Kind::Int),
        col("first_seen", Kind::Time),
        col("last_seen", Kind::Time),
    ];
    let mut sql = fetch::Sql::new(store);
    sql.push(
        "SELECT bot_name, COUNT(*), \
         COUNT(CASE WHEN status_code >= 400 THEN 1 END), \
         CAST(COALESCE(SUM(latency_ms), 0) AS BIGINT), COUNT(latency_ms), MAX(latency_ms), \
         CAST(COALESCE(SUM(request_size_bytes), 0) AS BIGINT), \
         CAST(COALESCE(SUM(response_size_bytes), 0) AS BIGINT), \
         COUNT(DISTINCT destination_host), MIN(created_at), MAX(created_at) \
         FROM tq_egress_audit",
    );
    sql.filters(filters, "");
    sql.push(" GROUP BY bot_name ORDER BY COUNT(*) DESC, bot_name");
    let fetched = sql.fetch(FETCHED).await?;
    let percentiles = latency_percentiles(store, filters).await?;

    let columns = vec![
        short("bot_name", "bot", Kind::Text),
        col("calls", Kind::Int),
        col("errors", Kind::Int),
        short("error_rate_pct", "err%", Kind::Float),
        short("avg_ms", "avg", Kind::Int),
        short("p50_ms", "p50", Kind::Int),
        short("p95_ms", "p95", Kind::Int),
        short("max_ms", "max", Kind::Int),
        short("request_bytes", "sent", Kind::Bytes),
        // Shorter than elsewhere, to leave room for the last call's time.
        short("response_bytes", "recv", Kind::Bytes),
        short("destinations", "hosts", Kind::Int),
        hidden("first_seen", Kind::Time),
        short("last_seen", "last seen", Kind::Minute),
    ];
    let rows = fetched
        .into_iter()
        .map(|r| {
            let bot = r[0].clone();
            let (p50, p95) = percentiles
                .get(&bot.as_text())
                .cloned()
                .unwrap_or((Value::Null, Value::Null));
            vec![
                bot,
                r[1].clone(),
                r[2].clone(),
                Value::percent(r[2].as_int(), r[1].as_int()),
                Value::average(r[3].as_int(), r[4].as_int()),
                p50,
                p95,
                r[5].clone(),
                r[6].clone(),
                r[7].clone(),
                r[8].clone(),
                r[9].clone(),
                r[10].clone(),
            ]
        })
        .collect();
    Ok(Table {
        columns,
        rows,
        bars: false,
    })
}

/// p50 and p95 latency per bot, as `percentile_disc` defines them: the first
/// value whose position in the ordered list reaches the fraction. PostgreSQL
/// has the aggregate; SQLite gets the same definition from window functions.
async fn latency_percentiles(
    store: &Store,
    filters: &Filters,
) -> Result<std::collections::HashMap<String, (Value, Value)>, QueryError> {
    const FETCHED: &[Column] = &[
        col("bot_name", Kind::Text),
        col("p50", Kind::Int),
        col("p95", Kind::Int),
    ];
    let mut sql = fetch::Sql::new(store);
    match store {
        Store::Postgres(_) => {
            sql.push(
                "SELECT bot_name, \
                 percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms), \
                 percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) \
                 FROM tq_egress_audit",
            );
            sql.filters(filters, "latency_ms IS NOT NULL");
            sql.push(" GROUP BY bot_name");
        }
        Store::Sqlite(_) => {
            sql.push(
                "SELECT bot_name, \
                 MIN(CASE WHEN rn * 100 >= n * 50 THEN latency_ms END), \
                 MIN(CASE WHEN rn * 100 >= n * 95 THEN latency_ms END) \
                 FROM (SELECT bot_name, latency_ms, \
                 ROW_NUMBER() OVER (PARTITION BY bot_name ORDER BY latency_ms) AS rn, \
                 COUNT(*) OVER (PARTITION BY bot_name) AS n FROM tq_egress_audit",
            );
            sql.filters(filters, "latency_ms IS NOT NULL");
            sql.push(") ranked GROUP BY bot_name");
        }
    }
    let rows = sql.fetch(FETCHED).await?;
    Ok(rows
        .into_iter()
        .map(|r| (r[0].as_text(), (r[1].clone(), r[2].clone())))
        .collect())
}

/// Most buckets a time series is drawn with; more is refused rather than
/// printing a screenful of rows nobody asked for.
pub const MAX_BUCKETS: i64 = 10_000;

/// Calls per bucket over the window, every bucket from the one holding
/// `since` to the one before `until` (or `now`) listed, those without calls
/// with zeros, so that a gap in traffic shows.
async fn timeseries(
    store: &Store,
    filters: &Filters,
    bucket: Duration,
    now: DateTime<Utc>,
) -> Result<Table, QueryError> {
    let seconds = bucket.as_secs();
    if seconds == 0 {
        return Err(QueryError::Invalid(
            "timeseries: the bucket must be at least 1 second".into(),
        ));
    }
    let width = i64::try_from(seconds).unwrap_or(i64::MAX);
    let span = filters
        .since
        .map(|since| BucketSpan::new(since, filters.until.unwrap_or(now), width));
    if let Some(span) = &span
        && span.count() > MAX_BUCKETS
    {
        return Err(QueryError::Invalid(format!(
            "timeseries: {} buckets of {} would be too many (at most {MAX_BUCKETS}): use a \
             wider bucket or a shorter window",
            span.count(),
            crate::duration::render(bucket)
        )));
    }
    const FETCHED: &[Column] = &[
        col("bucket", Kind::Int),
        col("calls", Kind::Int),
        col("errors", Kind::Int),
        col("bytes", Kind::Int),
    ];
    let mut sql = fetch::Sql::new(store);
    let bucket_expr = sql.epoch_bucket("created_at", seconds);
    sql.push(&format!(
        "SELECT {bucket_expr} AS bucket, COUNT(*), \
         COUNT(CASE WHEN status_code >= 400 THEN 1 END), \
         CAST(COALESCE(SUM(COALESCE(request_size_bytes, 0) + COALESCE(response_size_bytes, 0)), 0) \
         AS BIGINT) FROM tq_egress_audit"
    ));
    sql.filters(filters, "");
    sql.push(" GROUP BY bucket ORDER BY bucket");
    let fetched = sql.fetch(FETCHED).await?;

    let columns = vec![
        col("bucket", Kind::Time),
        col("calls", Kind::Int),
        col("errors", Kind::Int),
        col("bytes", Kind::Bytes),
    ];
    let mut counts: std::collections::BTreeMap<i64, [Value; 3]> = fetched
        .into_iter()
        .map(|r| (r[0].as_int(), [r[1].clone(), r[2].clone(), r[3].clone()]))
        .collect();
    if let Some(span) = span {
        for start in span.starts() {
            counts
                .entry(start)
                .or_insert([Value::Int(0), Value::Int(0), Value::Int(0)]);
        }
    }
    let rows = counts
        .into_iter()
        .map(|(start, [calls, errors, bytes])| {
            let start = DateTime::from_timestamp(start, 0).unwrap_or_default();
            vec![Value::Time(start), calls, errors, bytes]
        })
        .collect();
    Ok(Table {
        columns,
        rows,
        bars: true,
    })
}

/// The buckets a time series covers, in Unix seconds: the first starts at
/// the window's start rounded down to a multiple of the bucket width, as the
/// SQL rounds each call's time; the last is the one holding the instant just
/// before the window's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BucketSpan {
    first: i64,
    /// Past the last bucket's start; `first` when the window is empty.
    end: i64,
    width: i64,
}

impl BucketSpan {
    fn new(since: DateTime<Utc>, until: DateTime<Utc>, width: i64) -> BucketSpan {
        let first = since.timestamp().div_euclid(width).saturating_mul(width);
        // The window ends before `until`: a bucket starting at or after it
        // holds nothing the filters let through.
        let until_secs = if until.timestamp_subsec_nanos() > 0 {
            until.timestamp().saturating_add(1)
        } else {
            until.timestamp()
        };
        BucketSpan {
            first,
            end: until_secs.max(first),
            width,
        }
    }

    /// How many buckets there are.
    fn count(&self) -> i64 {
        let length = self.end - self.first;
        length / self.width + i64::from(length % self.width != 0)
    }

    /// Each bucket's start, oldest first.
    fn starts(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.count()).map(|i| self.first + i * self.width)
    }
}

async fn top_destinations(
    store: &Store,
    filters: &Filters,
    limit: u32,
    by: DestinationKey,
) -> Result<Table, QueryError> {
    let key = match by {
        DestinationKey::Host => "destination_host",
        DestinationKey::Url => "destination_url",
    };
    let columns = vec![
        col(key, Kind::Text),
        col("calls", Kind::Int),
        col("errors", Kind::Int),
        short("request_bytes", "sent", Kind::Bytes),
        short("response_bytes", "received", Kind::Bytes),
        col("bots", Kind::Int),
    ];
    let mut sql = fetch::Sql::new(store);
    sql.push(&format!(
        "SELECT {key}, COUNT(*), COUNT(CASE WHEN status_code >= 400 THEN 1 END), \
         CAST(COALESCE(SUM(request_size_bytes), 0) AS BIGINT), \
         CAST(COALESCE(SUM(response_size_bytes), 0) AS BIGINT), COUNT(DISTINCT bot_name) \
         FROM tq_egress_audit"
    ));
    sql.filters(filters, "");
    sql.push(&format!(
        " GROUP BY {key} ORDER BY COUNT(*) DESC, {key} LIMIT {limit}"
    ));
    let rows = sql.fetch(&columns).await?;
    Ok(Table {
        columns,
        rows,
        bars: false,
    })
}

async fn error_rate(store: &Store, filters: &Filters, min_calls: i64) -> Result<Table, QueryError> {
    const FETCHED: &[Column] = &[
        col("destination_host", Kind::Text),
        col("calls", Kind::Int),
        col("errors", Kind::Int),
        col("server_errors", Kind::Int),
    ];
    let mut sql = fetch::Sql::new(store);
    sql.push(
        "SELECT destination_host, COUNT(*), COUNT(CASE WHEN status_code >= 400 THEN 1 END), \
         COUNT(CASE WHEN status_code >= 500 THEN 1 END) FROM tq_egress_audit",
    );
    sql.filters(filters, "");
    sql.push(&format!(
        " GROUP BY destination_host HAVING COUNT(*) >= {min_calls}"
    ));
    let fetched = sql.fetch(FETCHED).await?;

    let columns = vec![
        short("destination_host", "host", Kind::Text),
        col("calls", Kind::Int),
        col("errors", Kind::Int),
        short("server_errors", "5xx", Kind::Int),
        short("error_rate_pct", "err%", Kind::Float),
    ];
    let mut rows: Vec<Vec<Value>> = fetched
        .into_iter()
        .map(|mut r| {
            let rate = Value::percent(r[2].as_int(), r[1].as_int());
            r.push(rate);
            r
        })
        .collect();
    rows.sort_by(|a, b| {
        let rate = |r: &Vec<Value>| (r[2].as_int() * 1_000_000) / r[1].as_int().max(1);
        rate(b)
            .cmp(&rate(a))
            .then(b[1].as_int().cmp(&a[1].as_int()))
            .then(a[0].cmp_text(&b[0]))
    });
    Ok(Table {
        columns,
        rows,
        bars: false,
    })
}

async fn bandwidth(store: &Store, filters: &Filters) -> Result<Table, QueryError> {
    const FETCHED: &[Column] = &[
        col("bot_name", Kind::Text),
        col("calls", Kind::Int),
        col("request_bytes", Kind::Int),
        col("response_bytes", Kind::Int),
    ];
    let mut sql = fetch::Sql::new(store);
    sql.push(
        "SELECT bot_name, COUNT(*), CAST(COALESCE(SUM(request_size_bytes), 0) AS BIGINT), \
         CAST(COALESCE(SUM(response_size_bytes), 0) AS BIGINT) FROM tq_egress_audit",
    );
    sql.filters(filters, "");
    sql.push(" GROUP BY bot_name");
    let fetched = sql.fetch(FETCHED).await?;

    let columns = vec![
        short("bot_name", "bot", Kind::Text),
        col("calls", Kind::Int),
        short("request_bytes", "sent", Kind::Bytes),
        short("response_bytes", "received", Kind::Bytes),
        short("total_bytes", "total", Kind::Bytes),
        short("total_mb", "MB", Kind::Int),
    ];
    let mut rows: Vec<Vec<Value>> = fetched
        .into_iter()
        .map(|r| {
            let total = r[2].as_int() + r[3].as_int();
            vec![
                r[0].clone(),
                r[1].clone(),
                r[2].clone(),
                r[3].clone(),
                Value::Int(total),
                Value::Int(total / 1024 / 1024),
            ]
        })
        .collect();
    rows.sort_by(|a, b| b[4].as_int().cmp(&a[4].as_int()).then(a[0].cmp_text(&b[0])));
    Ok(Table {
        columns,
        rows,
        bars: false,
    })
}

async fn top_bots(store: &Store, filters: &Filters, limit: u32) -> Result<Table, QueryError> {
    const FETCHED: &[Column] = &[
        short("bot_name", "bot", Kind::Text),
        col("calls", Kind::Int),
        col("errors", Kind::Int),
        short("destinations", "hosts", Kind::Int),
        col("last_seen", Kind::Time),
    ];
    let mut sql = fetch::Sql::new(store);
    sql.push(
        "SELECT bot_name, COUNT(*), COUNT(CASE WHEN status_code >= 400 THEN 1 END), \
         COUNT(DISTINCT destination_host), MAX(created_at) FROM tq_egress_audit",
    );
    sql.filters(filters, "");
    sql.push(&format!(
        " GROUP BY bot_name ORDER BY COUNT(*) DESC, bot_name LIMIT {limit}"
    ));
    let rows = sql.fetch(FETCHED).await?;
    Ok(Table {
        columns: FETCHED.to_vec(),
        rows,
        bars: true,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 2, 26, h, m, s).unwrap()
    }

    #[test]
    fn buckets_start_aligned_and_stop_before_the_end() {
        let span = BucketSpan::new(at(10, 10, 0), at(13, 0, 0), 3600);
        let starts: Vec<i64> = span.starts().collect();
        let hours: Vec<i64> = [10, 11, 12].map(|h| at(h, 0, 0).timestamp()).into();
        assert_eq!(starts, hours);
    }

    #[test]
    fn an_end_inside_a_bucket_keeps_that_bucket() {
        let span = BucketSpan::new(at(10, 0, 0), at(12, 0, 1), 3600);
        assert_eq!(span.count(), 3);
        let until = at(11, 0, 0) + chrono::Duration::milliseconds(1);
        assert_eq!(BucketSpan::new(at(10, 0, 0), until, 3600).count(), 2);
    }

    #[test]
    fn an_empty_or_reversed_window_has_no_buckets() {
        assert_eq!(BucketSpan::new(at(10, 0, 0), at(10, 0, 0), 60).count(), 0);
        assert_eq!(BucketSpan::new(at(11, 0, 0), at(10, 0, 0), 60).count(), 0);
    }
}
