//! The store against real databases: writes, duplicates ignored, values kept.

mod common;

use common::{PgDatabase, SqliteDatabase, both_stores, known_rows};
use egress_audit::query::{self, Filters, Query, Value};
use egress_audit::store::{NewCall, Store, WriteOutcome, log_call};

async fn count(store: &Store) -> i64 {
    let table = query::run(store, &Query::TopBots { limit: 100 }, &Filters::default())
        .await
        .unwrap();
    table.rows.iter().map(|r| r[1].as_int()).sum()
}

#[tokio::test]
async fn writing_the_same_rows_twice_adds_nothing_on_either_store() {
    let (pg, lite, _pg_db, _lite_db) = both_stores().await;
    let rows = known_rows();
    for store in [&pg, &lite] {
        let first = store.write(&rows).await.unwrap();
        assert_eq!(
            first,
            WriteOutcome {
                written: 8,
                duplicates: 0
            },
            "{}",
            store.backend()
        );
        let second = store.write(&rows).await.unwrap();
        assert_eq!(
            second,
            WriteOutcome {
                written: 0,
                duplicates: 8
            },
            "{}",
            store.backend()
        );
        let mixed = store.write(&rows[..3]).await.unwrap();
        assert_eq!(mixed.duplicates, 3);
        assert_eq!(count(store).await, 8, "{}", store.backend());
    }
}

#[tokio::test]
async fn every_column_reads_back_as_written() {
    let (pg, lite, _pg_db, _lite_db) = both_stores().await;
    let mut rows = known_rows();
    rows[0].response_size_bytes = Some(6_000_000_000); // beyond 32 bits
    rows[0].user_agent = Some("Bücherwurm/1.0 \"quoted\" \\ tab\there".into());
    rows[0].client_ip = Some("2001:db8::10".into());
    rows[0].proxy_user = Some("carol smith".into());
    rows[0].hierarchy = Some("HIER_DIRECT/203.0.113.5".into());
    rows[0].content_type = Some("text/html".into());
    for store in [&pg, &lite] {
        store.write(&rows).await.unwrap();
        let audit = Query::Audit {
            from: common::base(),
            to: common::base() + chrono::Duration::days(1),
        };
        let table = query::run(store, &audit, &Filters::default())
            .await
            .unwrap();
        let first = &table.rows[0];
        let get = |name: &str| {
            let i = table.columns.iter().position(|c| c.name == name).unwrap();
            first[i].clone()
        };
        assert_eq!(get("id"), Value::Text(rows[0].id.to_string()));
        assert_eq!(get("response_size_bytes"), Value::Int(6_000_000_000));
        assert_eq!(
            get("user_agent"),
            Value::Text(rows[0].user_agent.clone().unwrap())
        );
        assert_eq!(get("client_ip"), Value::Text("2001:db8::10".into()));
        assert_eq!(get("proxy_user"), Value::Text("carol smith".into()));
        assert_eq!(get("created_at"), Value::Time(rows[0].created_at));
        assert_eq!(
            get("destination_host"),
            Value::Text("api.one.example".into())
        );
        assert_eq!(get("squid_status"), Value::Text("TCP_MISS".into()));
        assert_eq!(get("source"), Value::Text("test".into()));
        assert_eq!(table.rows.len(), 8, "{}", store.backend());
    }
}

#[tokio::test]
async fn log_call_stores_one_row_and_returns_its_id() {
    let (pg, lite, _pg_db, _lite_db) = both_stores().await;
    for store in [&pg, &lite] {
        let call = NewCall {
            bot_name: "crawler".into(),
            destination_url: "https://api.example.com/v1".into(),
            http_method: Some("GET".into()),
            status_code: Some(200),
            latency_ms: Some(42),
            ..Default::default()
        };
        let id = log_call(store, call).await.unwrap();
        assert_eq!(id.get_version_num(), 7);
        let recent = query::run(store, &Query::Recent { limit: 5 }, &Filters::default())
            .await
            .unwrap();
        assert_eq!(recent.rows.len(), 1);
        let id_col = recent.columns.iter().position(|c| c.name == "id").unwrap();
        assert_eq!(recent.rows[0][id_col], Value::Text(id.to_string()));
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_create_the_named_indexes() {
    let pg = PgDatabase::create().await;
    let store = Store::open(&pg.config()).await.unwrap();
    store.migrate().await.unwrap();
    let Store::Postgres(pool) = &store else {
        unreachable!()
    };
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE tablename = 'tq_egress_audit' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for wanted in ["idx_egress_bot", "idx_egress_dest", "idx_egress_time"] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} missing from {names:?}"
        );
    }

    let lite = SqliteDatabase::create();
    let store = Store::open(&lite.config()).await.unwrap();
    store.migrate().await.unwrap();
    let Store::Sqlite(pool) = &store else {
        unreachable!()
    };
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

/// Processes that open a new SQLite file at once (the daemon starting while
/// `query` runs) each migrate it; none may fail because another did first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_opens_of_an_sqlite_file_all_succeed() {
    for _ in 0..5 {
        let db = SqliteDatabase::create();
        let opens: Vec<_> = (0..4)
            .map(|_| {
                let config = db.config();
                tokio::spawn(async move { Store::open(&config).await.map(|_| ()) })
            })
            .collect();
        for open in opens {
            open.await
                .unwrap()
                .expect("a concurrent first open migrates or finds it done");
        }
    }
}
