//! Shared test harness: a fresh PostgreSQL database per test (never a
//! skipped test: an unreachable server fails loudly with what to do), a fresh
//! SQLite file per test, and a known data set.

#![allow(dead_code)]

pub mod daemon;
pub mod proxy;
pub mod tail;

#[allow(unused_imports)]
pub use tail::*;

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use egress_audit::config::DatabaseConfig;
use egress_audit::record::Record;
use egress_audit::store::Store;
use sqlx::{Connection, Executor, PgConnection};

/// The server tests use: `DATABASE_URL`, else the local one on 5432.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database created for one test and dropped when the value is dropped.
pub struct PgDatabase {
    /// Its URL.
    pub url: String,
    name: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl PgDatabase {
    /// Creates an empty database on the test server.
    pub async fn create() -> PgDatabase {
        let admin = admin_url();
        let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is needed for this test and is not reachable at {admin}: {e}\n\
                 start it (pg_ctlcluster 15 main start), or set DATABASE_URL to a server \
                 where this user may create databases; `.ci/run` starts a throwaway \
                 cluster when none answers"
            )
        });
        let name = format!(
            "egress_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            Utc::now().timestamp_micros() % 1_000_000
        );
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        conn.close().await.ok();
        let mut url = url::Url::parse(&admin).expect("DATABASE_URL is a URL");
        url.set_path(&name);
        PgDatabase {
            url: url.to_string(),
            name,
        }
    }

    /// Store settings pointing at this database.
    pub fn config(&self) -> DatabaseConfig {
        DatabaseConfig {
            url: self.url.clone(),
            ..DatabaseConfig::default()
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async code; a short-lived runtime on its own
        // thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    if let Ok(mut conn) = PgConnection::connect(&admin_url()).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = conn.execute(sqlx::AssertSqlSafe(sql)).await;
                    }
                });
            }
        })
        .join();
    }
}

/// A SQLite store in a temporary directory.
pub struct SqliteDatabase {
    /// Its URL.
    pub url: String,
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
}

impl SqliteDatabase {
    /// A new, empty file.
    pub fn create() -> SqliteDatabase {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        SqliteDatabase { url, dir }
    }

    /// Store settings pointing at this file.
    pub fn config(&self) -> DatabaseConfig {
        DatabaseConfig {
            url: self.url.clone(),
            ..DatabaseConfig::default()
        }
    }
}

/// Both stores, migrated: the same tests run against each.
pub async fn both_stores() -> (Store, Store, PgDatabase, SqliteDatabase) {
    let pg = PgDatabase::create().await;
    let lite = SqliteDatabase::create();
    let pg_store = Store::open(&pg.config()).await.expect("open postgres");
    let lite_store = Store::open(&lite.config()).await.expect("open sqlite");
    (pg_store, lite_store, pg, lite)
}

/// The known data set's first minute.
pub fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 26, 10, 0, 0).unwrap()
}

/// bot, group, url, method, status (0 = none), request, response, latency, minute
type KnownRow = (
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
    i32,
    i64,
    i64,
    i64,
    i64,
);

/// Eight calls by three bots over three hours from [`base`]; the expected
/// answers in `tests/queries.rs` are worked out by hand from this table.
pub fn known_rows() -> Vec<Record> {
    #[rustfmt::skip]
    let table: [KnownRow; 8] = [
        ("alpha", Some("research"), "https://api.one.example/a", "GET", 200, 100, 1000, 100, 0),
        ("alpha", Some("research"), "https://api.one.example/b", "GET", 404, 100, 200, 200, 10),
        ("alpha", Some("research"), "https://api.two.example/x", "POST", 500, 500, 50, 6000, 20),
        ("alpha", Some("research"), "https://api.one.example/a", "GET", 200, 100, 1000, 300, 70),
        ("beta", Some("ops"), "https://api.two.example/y", "GET", 200, 200, 4000, 50, 5),
        ("beta", Some("ops"), "https://api.two.example/y", "GET", 503, 200, 100, 7000, 65),
        ("beta", Some("ops"), "api.three.example:443", "CONNECT", 200, 1000, 9000, 12000, 130),
        ("gamma", None, "http://plain.example/", "GET", 0, 0, 0, 10, 15),
    ];
    table
        .iter()
        .enumerate()
        .map(
            |(i, (bot, group, url, method, status, req, resp, latency, minute))| {
                let at = base() + chrono::Duration::minutes(*minute);
                let id = uuid::Builder::from_unix_timestamp_millis(
                    at.timestamp_millis() as u64,
                    &[i as u8; 10],
                )
                .into_uuid();
                let mut r = Record::new(id, *bot, *url, at);
                r.group_name = group.map(str::to_string);
                r.destination_host = egress_audit::enrich::destination_host(url, Some(method));
                r.http_method = Some(method.to_string());
                r.status_code = (*status != 0).then_some(*status);
                r.request_size_bytes = Some(*req);
                r.response_size_bytes = Some(*resp);
                r.latency_ms = Some(*latency);
                r.squid_status = Some(
                    if *status == 0 {
                        "NONE_NONE"
                    } else {
                        "TCP_MISS"
                    }
                    .into(),
                );
                r.source = Some("test".into());
                r
            },
        )
        .collect()
}
