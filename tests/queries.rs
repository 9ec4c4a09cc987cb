//! Every query against both stores on a known data set, with the exact
//! answers worked out by hand from `common::known_rows`.

mod common;

use std::time::Duration;

use chrono::Duration as Span;
use common::{base, both_stores, known_rows};
use egress_audit::query::{self, DestinationKey, Filters, Query, Table, Value};
use egress_audit::store::Store;

fn int(v: i64) -> Value {
    Value::Int(v)
}

fn text(v: &str) -> Value {
    Value::Text(v.to_string())
}

fn window() -> Filters {
    Filters {
        since: Some(base()),
        until: Some(base() + Span::hours(3)),
        ..Filters::default()
    }
}

/// The values of the named columns, row by row.
fn pick(table: &Table, names: &[&str]) -> Vec<Vec<Value>> {
    let idx: Vec<usize> = names
        .iter()
        .map(|n| {
            table
                .columns
                .iter()
                .position(|c| c.name == *n)
                .unwrap_or_else(|| panic!("{n}"))
        })
        .collect();
    table
        .rows
        .iter()
        .map(|r| idx.iter().map(|i| r[*i].clone()).collect())
        .collect()
}

/// Runs `query` on both stores, checks they agree, and returns the answer.
async fn ask(stores: &[&Store; 2], query: Query, filters: Filters) -> Table {
    let pg = query::run(stores[0], &query, &filters).await.unwrap();
    let lite = query::run(stores[1], &query, &filters).await.unwrap();
    assert_eq!(pg, lite, "postgres and sqlite disagree on {query:?}");
    pg
}

async fn loaded() -> (Store, Store, common::PgDatabase, common::SqliteDatabase) {
    let (pg, lite, a, b) = both_stores().await;
    pg.write(&known_rows()).await.unwrap();
    lite.write(&known_rows()).await.unwrap();
    (pg, lite, a, b)
}

#[tokio::test]
async fn stats_per_bot() {
    let (pg, lite, _a, _b) = loaded().await;
    let table = ask(
        &[&pg, &lite],
        Query::Stats {
            window: Duration::from_secs(86400),
        },
        window(),
    )
    .await;
    let got = pick(
        &table,
        &[
            "bot_name",
            "calls",
            "errors",
            "error_rate_pct",
            "avg_ms",
            "p50_ms",
            "p95_ms",
            "max_ms",
            "request_bytes",
            "response_bytes",
            "destinations",
        ],
    );
    assert_eq!(
        got,
        vec![
            vec![
                text("alpha"),
                int(4),
                int(2),
                Value::Float(50.0),
                int(1650),
                int(200),
                int(6000),
                int(6000),
                int(800),
                int(2250),
                int(2)
            ],
            vec![
                text("beta"),
                int(3),
                int(1),
                Value::Float(33.3),
                int(6350),
                int(7000),
                int(12000),
                int(12000),
                int(1400),
                int(13100),
                int(2)
            ],
            vec![
                text("gamma"),
                int(1),
                int(0),
                Value::Float(0.0),
                int(10),
                int(10),
                int(10),
                int(10),
                int(0),
                int(0),
                int(1)
            ],
        ]
    );
    let seen = pick(&table, &["first_seen", "last_seen"]);
    assert_eq!(
        seen[0],
        vec![Value::Time(base()), Value::Time(base() + Span::minutes(70))]
    );
}

#[tokio::test]
async fn stats_for_one_bot_and_one_group() {
    let (pg, lite, _a, _b) = loaded().await;
    let stats = Query::Stats {
        window: Duration::from_secs(86400),
    };
    let mut f = window();
    f.bot = Some("beta".into());
    let table = ask(&[&pg, &lite], stats.clone(), f).await;
    assert_eq!(
        pick(&table, &["bot_name", "calls"]),
        vec![vec![text("beta"), int(3)]]
    );

    let mut f = window();
    f.group = Some("research".into());
    let table = ask(&[&pg, &lite], stats.clone(), f).await;
    assert_eq!(
        pick(&table, &["bot_name", "calls"]),
        vec![vec![text("alpha"), int(4)]]
    );

    let mut f = window();
    f.bot = Some("nobody".into());
    assert!(ask(&[&pg, &lite], stats, f).await.rows.is_empty());
}

#[tokio::test]
async fn recent_is_newest_first_and_limited() {
    let (pg, lite, _a, _b) = loaded().await;
    let table = ask(
        &[&pg, &lite],
        Query::Recent { limit: 3 },
        Filters::default(),
    )
    .await;
    let minutes: Vec<Value> = [130, 70, 65]
        .iter()
        .map(|m| Value::Time(base() + Span::minutes(*m)))
        .collect();
    assert_eq!(pick(&table, &["created_at"]).concat(), minutes);

    let f = Filters {
        bot: Some("beta".into()),
        ..Filters::default()
    };
    let table = ask(&[&pg, &lite], Query::Recent { limit: 50 }, f).await;
    assert_eq!(
        pick(&table, &["latency_ms"]).concat(),
        vec![int(12000), int(7000), int(50)]
    );
}

#[tokio::test]
async fn top_destinations_by_host_and_by_url() {
    let (pg, lite, _a, _b) = loaded().await;
    let q = Query::TopDestinations {
        limit: 20,
        by: DestinationKey::Host,
    };
    let table = ask(&[&pg, &lite], q, Filters::default()).await;
    assert_eq!(
        pick(
            &table,
            &[
                "destination_host",
                "calls",
                "errors",
                "request_bytes",
                "response_bytes",
                "bots"
            ]
        ),
        vec![
            vec![
                text("api.one.example"),
                int(3),
                int(1),
                int(300),
                int(2200),
                int(1)
            ],
            vec![
                text("api.two.example"),
                int(3),
                int(2),
                int(900),
                int(4150),
                int(2)
            ],
            vec![
                text("api.three.example"),
                int(1),
                int(0),
                int(1000),
                int(9000),
                int(1)
            ],
            vec![
                text("plain.example"),
                int(1),
                int(0),
                int(0),
                int(0),
                int(1)
            ],
        ]
    );
    let q = Query::TopDestinations {
        limit: 1,
        by: DestinationKey::Url,
    };
    let table = ask(&[&pg, &lite], q, Filters::default()).await;
    assert_eq!(
        pick(&table, &["destination_url", "calls"]),
        vec![vec![text("https://api.one.example/a"), int(2)]]
    );
}

#[tokio::test]
async fn errors_and_server_errors_newest_first() {
    let (pg, lite, _a, _b) = loaded().await;
    let q = Query::Errors {
        server_only: false,
        limit: 50,
    };
    let table = ask(&[&pg, &lite], q, Filters::default()).await;
    assert_eq!(
        pick(&table, &["status_code"]).concat(),
        vec![int(503), int(500), int(404)]
    );
    let q = Query::Errors {
        server_only: true,
        limit: 50,
    };
    let table = ask(&[&pg, &lite], q, Filters::default()).await;
    assert_eq!(
        pick(&table, &["status_code"]).concat(),
        vec![int(503), int(500)]
    );
    let f = Filters {
        bot: Some("alpha".into()),
        ..Filters::default()
    };
    let table = ask(
        &[&pg, &lite],
        Query::Errors {
            server_only: false,
            limit: 50,
        },
        f,
    )
    .await;
    assert_eq!(
        pick(&table, &["status_code"]).concat(),
        vec![int(500), int(404)]
    );
}

#[tokio::test]
async fn timeseries_counts_per_bucket() {
    let (pg, lite, _a, _b) = loaded().await;
    let q = Query::Timeseries {
        bucket: Duration::from_secs(3600),
        window: Duration::from_secs(86400),
    };
    let table = ask(&[&pg, &lite], q, window()).await;
    assert!(table.bars);
    assert_eq!(
        pick(&table, &["bucket", "calls", "errors", "bytes"]),
        vec![
            vec![Value::Time(base()), int(5), int(2), int(6150)],
            vec![
                Value::Time(base() + Span::hours(1)),
                int(2),
                int(1),
                int(1400)
            ],
            vec![
                Value::Time(base() + Span::hours(2)),
                int(1),
                int(0),
                int(10000)
            ],
        ]
    );
    let q = Query::Timeseries {
        bucket: Duration::from_secs(900),
        window: Duration::from_secs(86400),
    };
    let table = ask(&[&pg, &lite], q, window()).await;
    assert_eq!(
        pick(&table, &["calls"]).concat(),
        [3, 2, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0].map(int).to_vec(),
        "every quarter hour from 10:00 to 12:45, the quiet ones with zeros"
    );
}

/// A window with a quiet hour in the middle (13:00) and an unaligned start:
/// every hour shows, the quiet one with zeros, the same on both stores.
#[tokio::test]
async fn timeseries_fills_a_quiet_hour_with_zeros() {
    let (pg, lite, _a, _b) = loaded().await;
    let at = base() + Span::minutes(250);
    let id = uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis() as u64, &[9; 10])
        .into_uuid();
    let mut late = egress_audit::record::Record::new(id, "alpha", "https://api.one.example/a", at);
    late.status_code = Some(502);
    late.response_size_bytes = Some(300);
    for store in [&pg, &lite] {
        store.write(std::slice::from_ref(&late)).await.unwrap();
    }
    let filters = Filters {
        since: Some(base() + Span::minutes(10)),
        until: Some(base() + Span::hours(5)),
        ..Filters::default()
    };
    let q = Query::Timeseries {
        bucket: Duration::from_secs(3600),
        window: Duration::from_secs(86400),
    };
    let table = ask(&[&pg, &lite], q, filters).await;
    let hour = |h: i64| Value::Time(base() + Span::hours(h));
    assert_eq!(
        pick(&table, &["bucket", "calls", "errors", "bytes"]),
        vec![
            vec![hour(0), int(3), int(2), int(850)],
            vec![hour(1), int(2), int(1), int(1400)],
            vec![hour(2), int(1), int(0), int(10000)],
            vec![hour(3), int(0), int(0), int(0)],
            vec![hour(4), int(1), int(1), int(300)],
        ]
    );

    let mut shown = Vec::new();
    let render = egress_audit::query::render::write;
    use egress_audit::query::render::{OutputFormat, TimeZoneChoice};
    render(&mut shown, &table, OutputFormat::Csv, TimeZoneChoice::Utc).unwrap();
    let csv = String::from_utf8(shown).unwrap();
    assert!(csv.contains("\n2026-02-26T13:00:00.000Z,0,0,0\n"), "{csv}");
    let mut shown = Vec::new();
    render(&mut shown, &table, OutputFormat::Table, TimeZoneChoice::Utc).unwrap();
    let lines: Vec<String> = String::from_utf8(shown)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert!(
        lines[4].starts_with("2026-02-26T13:00:00.000Z"),
        "{lines:?}"
    );
    assert!(!lines[4].contains('█'), "{lines:?}");
}

#[tokio::test]
async fn timeseries_refuses_more_than_ten_thousand_buckets() {
    let (pg, lite, _a, _b) = loaded().await;
    for store in [&pg, &lite] {
        let q = Query::Timeseries {
            bucket: Duration::from_secs(1),
            window: Duration::from_secs(86400),
        };
        let err = query::run(store, &q, &Filters::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("buckets of 1s would be too many"), "{err}");
        assert!(err.contains("at most 10000"), "{err}");
    }
}

#[tokio::test]
async fn slow_error_rate_bandwidth_and_top_bots() {
    let (pg, lite, _a, _b) = loaded().await;
    let table = ask(
        &[&pg, &lite],
        Query::Slow {
            min_ms: 5000,
            limit: 50,
        },
        Filters::default(),
    )
    .await;
    assert_eq!(
        pick(&table, &["latency_ms"]).concat(),
        vec![int(12000), int(7000), int(6000)]
    );

    let table = ask(
        &[&pg, &lite],
        Query::ErrorRate { min_calls: 2 },
        Filters::default(),
    )
    .await;
    assert_eq!(
        pick(
            &table,
            &["destination_host", "calls", "errors", "error_rate_pct"]
        ),
        vec![
            vec![text("api.two.example"), int(3), int(2), Value::Float(66.7)],
            vec![text("api.one.example"), int(3), int(1), Value::Float(33.3)],
        ]
    );

    let table = ask(&[&pg, &lite], Query::Bandwidth, Filters::default()).await;
    assert_eq!(
        pick(&table, &["bot_name", "total_bytes", "total_mb"]),
        vec![
            vec![text("beta"), int(14500), int(0)],
            vec![text("alpha"), int(3050), int(0)],
            vec![text("gamma"), int(0), int(0)],
        ]
    );

    let table = ask(
        &[&pg, &lite],
        Query::TopBots { limit: 2 },
        Filters::default(),
    )
    .await;
    assert_eq!(
        pick(&table, &["bot_name", "calls"]),
        vec![vec![text("alpha"), int(4)], vec![text("beta"), int(3)]]
    );
}

#[tokio::test]
async fn audit_is_the_trail_in_time_order() {
    let (pg, lite, _a, _b) = loaded().await;
    let q = Query::Audit {
        from: base() + Span::minutes(10),
        to: base() + Span::minutes(65),
    };
    let table = ask(&[&pg, &lite], q, Filters::default()).await;
    assert_eq!(
        pick(&table, &["bot_name", "status_code"]),
        vec![
            vec![text("alpha"), int(404)],
            vec![text("gamma"), Value::Null],
            vec![text("alpha"), int(500)],
        ]
    );
}
