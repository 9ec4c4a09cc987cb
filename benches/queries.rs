//! Query benchmark: loads generated rows into PostgreSQL through the store and
//! times every query, printing the plans of the ones that must be
//! index-driven (`recent BOT`, `errors BOT`, `audit` over one hour).
//!
//! ```sh
//! cargo bench --bench queries -- 1000000 10000000
//! ```
//!
//! Uses `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! to create a database `egress_bench_queries`, which it leaves in place so
//! that a later run with the same row count reuses it.

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use egress_audit::config::DatabaseConfig;
use egress_audit::query::{self, DestinationKey, Filters, Query};
use egress_audit::record::Record;
use egress_audit::store::Store;
use sqlx::{Connection, Executor, PgConnection, Row};

const BOTS: u64 = 50;
const HOSTS: u64 = 5000;
const DAYS: i64 = 30;
const REPEATS: usize = 5;

#[tokio::main]
async fn main() {
    let Some(sizes) = common::bench_numbers() else {
        return;
    };
    let sizes = if sizes.is_empty() {
        vec![1_000_000]
    } else {
        sizes
    };
    for rows in sizes {
        bench(rows).await;
    }
}

async fn bench(rows: u64) {
    let name = format!("egress_bench_queries_{rows}");
    let mut admin = PgConnection::connect(&common::admin_url())
        .await
        .expect("PostgreSQL reachable");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    if !exists {
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
    }
    let mut url = url::Url::parse(&common::admin_url()).unwrap();
    url.set_path(&name);
    let config = DatabaseConfig {
        url: url.to_string(),
        ..DatabaseConfig::default()
    };
    let store = Store::open(&config).await.unwrap();
    let Store::Postgres(pool) = &store else {
        unreachable!()
    };

    let present: i64 = sqlx::query_scalar("SELECT count(*) FROM tq_egress_audit")
        .fetch_one(pool)
        .await
        .unwrap();
    let end = start_time() + chrono::Duration::days(DAYS);
    if present as u64 != rows {
        pool.execute("TRUNCATE tq_egress_audit").await.unwrap();
        let started = Instant::now();
        load(&store, rows).await;
        let took = started.elapsed();
        println!(
            "loaded {rows} rows through Store::write in {:.1} s ({:.0} rows/s)",
            took.as_secs_f64(),
            rows as f64 / took.as_secs_f64()
        );
        pool.execute("VACUUM ANALYZE tq_egress_audit")
            .await
            .unwrap();
    }

    println!("\n## {rows} rows ({BOTS} bots, {HOSTS} hosts, {DAYS} days)\n");
    let (reference, ()) = time(|| async {
        sqlx::query("SELECT count(*) FROM tq_egress_audit")
            .fetch_one(pool)
            .await
            .unwrap();
    })
    .await;
    println!("| query | median of {REPEATS} | rows |\n|---|---|---|");
    println!(
        "| reference: `SELECT count(*)` (full scan) | {} | 1 |",
        ms(reference)
    );

    let bot = Filters {
        bot: Some("bot-7".into()),
        ..Filters::default()
    };
    let day = Filters {
        since: Some(end - chrono::Duration::days(1)),
        ..Filters::default()
    };
    let hour_from = end - chrono::Duration::hours(5);
    let cases: Vec<(&str, Query, Filters)> = vec![
        ("recent bot-7 50", Query::Recent { limit: 50 }, bot.clone()),
        (
            "errors bot-7",
            Query::Errors {
                server_only: false,
                limit: 50,
            },
            bot.clone(),
        ),
        (
            "audit (one hour)",
            Query::Audit {
                from: hour_from,
                to: hour_from + chrono::Duration::hours(1),
            },
            Filters::default(),
        ),
        ("recent 50", Query::Recent { limit: 50 }, Filters::default()),
        (
            "stats (24 hours)",
            Query::Stats {
                window: Duration::from_secs(86_400),
            },
            day.clone(),
        ),
        (
            "stats bot-7 (24 hours)",
            Query::Stats {
                window: Duration::from_secs(86_400),
            },
            {
                let mut f = day.clone();
                f.bot = Some("bot-7".into());
                f
            },
        ),
        (
            "top-destinations (24 hours)",
            Query::TopDestinations {
                limit: 20,
                by: DestinationKey::Host,
            },
            day.clone(),
        ),
        (
            "timeseries 1h (24 hours)",
            Query::Timeseries {
                bucket: Duration::from_secs(3600),
                window: Duration::from_secs(86_400),
            },
            day.clone(),
        ),
        (
            "slow (24 hours)",
            Query::Slow {
                min_ms: 5000,
                limit: 50,
            },
            day.clone(),
        ),
        (
            "error-rate (24 hours)",
            Query::ErrorRate { min_calls: 10 },
            day.clone(),
        ),
        ("bandwidth (24 hours)", Query::Bandwidth, day.clone()),
        (
            "top-bots (24 hours)",
            Query::TopBots { limit: 10 },
            day.clone(),
        ),
    ];
    for (label, q, f) in &cases {
        let (took, count) =
            time(|| async { query::run(&store, q, f).await.unwrap().rows.len() }).await;
        println!("| `{label}` | {} | {count} |", ms(took));
    }

    println!();
    let plans = [
        (
            "recent bot-7",
            "SELECT * FROM tq_egress_audit WHERE bot_name = 'bot-7' ORDER BY created_at DESC, id DESC LIMIT 50"
                .to_string(),
        ),
        (
            "errors bot-7",
            "SELECT * FROM tq_egress_audit WHERE bot_name = 'bot-7' AND status_code >= 400 \
             ORDER BY created_at DESC, id DESC LIMIT 50"
                .to_string(),
        ),
        (
            "audit one hour",
            format!(
                "SELECT * FROM tq_egress_audit WHERE created_at >= '{}' AND created_at < '{}' \
                 ORDER BY created_at ASC, id ASC",
                hour_from.to_rfc3339(),
                (hour_from + chrono::Duration::hours(1)).to_rfc3339()
            ),
        ),
    ];
    for (label, sql) in plans {
        println!("plan for {label}:");
        let explain = format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}");
        for row in sqlx::query(sqlx::AssertSqlSafe(explain))
            .fetch_all(pool)
            .await
            .unwrap()
        {
            println!("    {}", row.get::<String, _>(0));
        }
    }
    store.close().await;
}

/// The median time of [`REPEATS`] runs, and the last run's output.
async fn time<F, Fut, T>(mut f: F) -> (Duration, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..REPEATS {
        let started = Instant::now();
        last = Some(f().await);
        times.push(started.elapsed());
    }
    times.sort();
    (times[REPEATS / 2], last.expect("at least one run"))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// A small deterministic generator (SplitMix64), so runs load the same rows.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

async fn load(store: &Store, rows: u64) {
    let mut mix = Mix(7);
    let span_ms = DAYS * 86_400_000;
    let mut batch = Vec::with_capacity(5000);
    for i in 0..rows {
        let at_ms = start_time().timestamp_millis() + (i as i64 * span_ms) / rows as i64;
        let at = Utc.timestamp_millis_opt(at_ms).unwrap();
        let r = mix.next();
        let bot = r % BOTS;
        let host = (r >> 8) % HOSTS;
        let status = match (r >> 20) % 100 {
            0..=2 => 404,
            3 => 503,
            4 => 403,
            _ => 200,
        };
        let mut random = [0u8; 10];
        random.copy_from_slice(&mix.next().to_le_bytes().repeat(2)[..10]);
        let id = uuid::Builder::from_unix_timestamp_millis(at_ms as u64, &random).into_uuid();
        let url = format!(
            "https://host-{host}.example/v1/items/{}",
            (r >> 32) % 100_000
        );
        let mut record = Record::new(id, format!("bot-{bot}"), url, at);
        record.destination_host = Some(format!("host-{host}.example"));
        record.group_name = Some(format!("group-{}", bot % 5));
        record.http_method = Some(if r.is_multiple_of(7) { "POST" } else { "GET" }.into());
        record.status_code = Some(status);
        record.request_size_bytes = Some(((r >> 40) % 2000) as i64);
        record.response_size_bytes = Some(((r >> 24) % 200_000) as i64);
        record.latency_ms =
            Some(((r >> 12) % 1000 + if r.is_multiple_of(50) { 6000 } else { 0 }) as i64);
        record.squid_status = Some("TCP_MISS".into());
        record.hierarchy = Some("HIER_DIRECT/203.0.113.5".into());
        record.client_ip = Some(format!("10.0.{}.{}", bot / 250, bot % 250));
        record.content_type = Some("application/json".into());
        record.source = Some("bench".into());
        batch.push(record);
        if batch.len() == 5000 {
            store.write(&batch).await.unwrap();
            batch.clear();
        }
    }
    store.write(&batch).await.unwrap();
}
