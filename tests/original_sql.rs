//! The original design's SQL examples run unchanged against the PostgreSQL
//! schema, and answer what they should on data written through the store.

mod common;

use chrono::{Duration, Utc};
use common::{PgDatabase, known_rows};
use egress_audit::record::Record;
use egress_audit::store::Store;
use sqlx::Row;

/// Calls in the last hours: 12 to one URL (3 failing), and a slow, large one.
fn recent_rows() -> Vec<Record> {
    let now = Utc::now();
    let mut rows = Vec::new();
    for i in 0..12u8 {
        let at = now - Duration::minutes(i64::from(i) * 4 + 1);
        let id = uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis() as u64, &[i; 10]);
        let mut r = Record::new(id.into_uuid(), "crawler", "https://api.busy.example/v1", at);
        r.status_code = Some(if i < 3 { 502 } else { 200 });
        r.request_size_bytes = Some(100);
        r.response_size_bytes = Some(1000);
        r.latency_ms = Some(100);
        rows.push(r);
    }
    let at = now - Duration::hours(2);
    let id = uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis() as u64, &[99; 10]);
    let mut big = Record::new(
        id.into_uuid(),
        "fetcher",
        "https://files.example/big.iso",
        at,
    );
    big.status_code = Some(200);
    big.request_size_bytes = Some(500);
    big.response_size_bytes = Some(3 * 1024 * 1024 * 1024);
    big.latency_ms = Some(90_000);
    rows.push(big);
    rows
}

async fn loaded() -> (PgDatabase, sqlx::PgPool) {
    let db = PgDatabase::create().await;
    let store = Store::open(&db.config()).await.unwrap();
    store.write(&known_rows()).await.unwrap();
    store.write(&recent_rows()).await.unwrap();
    let Store::Postgres(pool) = store else {
        unreachable!()
    };
    (db, pool)
}

async fn run(pool: &sqlx::PgPool, sql: &'static str) -> Vec<sqlx::postgres::PgRow> {
    sqlx::query(sql)
        .fetch_all(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}\nfailed: {e}"))
}

#[tokio::test]
async fn bytes_by_destination_over_a_day() {
    let (_db, pool) = loaded().await;
    let rows = run(
        &pool,
        "SELECT destination_url, COUNT(*) as calls, SUM(response_size_bytes) as total_bytes
FROM tq_egress_audit WHERE created_at > NOW() - INTERVAL '1 day'
GROUP BY destination_url ORDER BY total_bytes DESC;",
    )
    .await;
    assert_eq!(
        rows[0].get::<String, _>("destination_url"),
        "https://files.example/big.iso"
    );
    // SUM(bigint) is numeric in PostgreSQL: read the order, not the decimal.
    assert_eq!(rows[0].get::<i64, _>("calls"), 1);
    assert_eq!(rows[1].get::<i64, _>("calls"), 12);
}

#[tokio::test]
async fn slow_calls_newest_first() {
    let (_db, pool) = loaded().await;
    let rows = run(
        &pool,
        "SELECT bot_name, destination_url, latency_ms, created_at FROM tq_egress_audit
WHERE latency_ms > 5000 ORDER BY created_at DESC;",
    )
    .await;
    let latencies: Vec<i64> = rows.iter().map(|r| r.get("latency_ms")).collect();
    assert_eq!(latencies, vec![90_000, 12_000, 7000, 6000]);
}

#[tokio::test]
async fn error_rate_by_destination() {
    let (_db, pool) = loaded().await;
    let rows = run(
        &pool,
        "SELECT destination_url, COUNT(*) as total_calls,
  COUNT(CASE WHEN status_code >= 400 THEN 1 END) as errors,
  (COUNT(CASE WHEN status_code >= 400 THEN 1 END)::FLOAT / COUNT(*) * 100)::INT as error_rate_pct
FROM tq_egress_audit WHERE created_at > NOW() - INTERVAL '24 hours'
GROUP BY destination_url HAVING COUNT(*) > 10 ORDER BY error_rate_pct DESC;",
    )
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<i64, _>("errors"), 3);
    assert_eq!(rows[0].get::<i32, _>("error_rate_pct"), 25);
}

#[tokio::test]
async fn one_day_trail() {
    let (_db, pool) = loaded().await;
    let rows = run(
        &pool,
        "SELECT * FROM tq_egress_audit
WHERE created_at BETWEEN '2026-02-26 00:00:00' AND '2026-02-26 23:59:59' ORDER BY created_at;",
    )
    .await;
    assert_eq!(rows.len(), 8);
    assert_eq!(rows[0].get::<String, _>("bot_name"), "alpha");
}

#[tokio::test]
async fn busiest_bot_in_the_last_hour() {
    let (_db, pool) = loaded().await;
    let rows = run(
        &pool,
        "SELECT bot_name, COUNT(*) as calls FROM tq_egress_audit
WHERE created_at > NOW() - INTERVAL '1 hour' GROUP BY bot_name ORDER BY calls DESC LIMIT 1;",
    )
    .await;
    assert_eq!(rows[0].get::<String, _>("bot_name"), "crawler");
    assert_eq!(rows[0].get::<i64, _>("calls"), 12);
}

#[tokio::test]
async fn bandwidth_by_bot() {
    let (_db, pool) = loaded().await;
    let rows = run(
        &pool,
        "SELECT bot_name, SUM(request_size_bytes + response_size_bytes) as total_bytes,
  (SUM(request_size_bytes + response_size_bytes) / 1024 / 1024)::INT as total_mb
FROM tq_egress_audit WHERE created_at > NOW() - INTERVAL '24 hours'
GROUP BY bot_name ORDER BY total_bytes DESC;",
    )
    .await;
    assert_eq!(rows[0].get::<String, _>("bot_name"), "fetcher");
    assert_eq!(rows[0].get::<i32, _>("total_mb"), 3072);
}

#[tokio::test]
async fn calls_per_hour_and_bot() {
    let (_db, pool) = loaded().await;
    let rows = run(
        &pool,
        "SELECT date_trunc('hour', created_at) as hour, bot_name, COUNT(*) as calls
FROM tq_egress_audit WHERE created_at > NOW() - INTERVAL '24 hours'
GROUP BY hour, bot_name ORDER BY hour DESC, calls DESC;",
    )
    .await;
    let total: i64 = rows.iter().map(|r| r.get::<i64, _>("calls")).sum();
    assert_eq!(total, 13);
}
