//! `egress-audit check` as a monitoring system runs it: every exit status
//! (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN) against a real store, with calls
//! loaded through `Store::write` at times relative to now. SQLite for most
//! cases, PostgreSQL for one.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use assert_cmd::Command;
use chrono::{Duration, Utc};
use common::{PgDatabase, SqliteDatabase};
use egress_audit::record::Record;
use egress_audit::store::Store;

/// Distinct ids across every call a test makes.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// `count` calls by `bot`, all with `status`, `minutes_ago` minutes ago.
fn calls(bot: &str, status: i32, count: usize, minutes_ago: i64) -> Vec<Record> {
    let at = Utc::now() - Duration::minutes(minutes_ago);
    (0..count)
        .map(|_| {
            let n = NEXT_ID.fetch_add(1, Ordering::Relaxed).to_be_bytes();
            let mut random = [0u8; 10];
            random[2..].copy_from_slice(&n);
            let id =
                uuid::Builder::from_unix_timestamp_millis(at.timestamp_millis() as u64, &random)
                    .into_uuid();
            let mut record = Record::new(id, bot, "https://api.example.com/v1", at);
            record.status_code = Some(status);
            record
        })
        .collect()
}

async fn load(url: &str, batches: &[Vec<Record>]) {
    let config = egress_audit::config::DatabaseConfig {
        url: url.to_string(),
        ..Default::default()
    };
    let store = Store::open(&config).await.expect("open store");
    for batch in batches {
        store.write(batch).await.expect("write calls");
    }
    store.close().await;
}

/// Runs `check` against `url` and returns its exit status and stdout.
fn check(url: &str, args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("egress-audit")
        .unwrap()
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .args(["--database-url", url, "check"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        stdout.lines().count(),
        1,
        "a plugin prints one line; got:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().expect("an exit status"), stdout)
}

/// A SQLite store holding `batches`.
async fn sqlite_with(batches: &[Vec<Record>]) -> SqliteDatabase {
    let db = SqliteDatabase::create();
    load(&db.url, batches).await;
    db
}

#[tokio::test]
async fn error_rate_below_warning_is_ok_with_performance_data() {
    let db = sqlite_with(&[calls("crawler", 200, 99, 5), calls("crawler", 502, 1, 5)]).await;

    let (status, line) = check(&db.url, &[]);

    assert_eq!(status, 0, "{line}");
    assert_eq!(
        line,
        "EGRESS-AUDIT OK - error rate 1.0% (1 of 100 calls, 15m) \
         | error_rate=1.0%;5;10 calls=100 errors=1\n"
    );
}

#[tokio::test]
async fn error_rate_above_warning_is_warning() {
    let db = sqlite_with(&[calls("crawler", 200, 93, 5), calls("crawler", 500, 7, 5)]).await;

    let (status, line) = check(&db.url, &[]);

    assert_eq!(status, 1, "{line}");
    assert!(line.starts_with("EGRESS-AUDIT WARNING - error rate 7.0% (7 of 100"));
}

#[tokio::test]
async fn error_rate_above_critical_is_critical_and_thresholds_are_settable() {
    let db = sqlite_with(&[calls("crawler", 200, 80, 5), calls("crawler", 503, 20, 5)]).await;

    let (status, line) = check(&db.url, &[]);
    assert_eq!(status, 2, "{line}");
    assert!(line.starts_with("EGRESS-AUDIT CRITICAL - error rate 20.0%"));

    let (status, line) = check(&db.url, &["--warning", "10", "--critical", "25"]);
    assert_eq!(status, 1, "{line}");
    assert!(line.contains("error_rate=20.0%;10;25"), "{line}");
}

#[tokio::test]
async fn client_errors_count_only_with_errors_4xx() {
    let db = sqlite_with(&[calls("crawler", 200, 80, 5), calls("crawler", 404, 20, 5)]).await;

    let (status, line) = check(&db.url, &[]);
    assert_eq!(status, 0, "{line}");

    let (status, line) = check(&db.url, &["--errors", "4xx"]);
    assert_eq!(status, 2, "{line}");
    assert!(
        line.contains("(20 of 100 calls, 15m, 4xx counted)"),
        "{line}"
    );
}

#[tokio::test]
async fn bot_option_judges_that_bot_alone() {
    let db = sqlite_with(&[
        calls("flaky", 200, 10, 5),
        calls("flaky", 500, 10, 5),
        calls("steady", 200, 20, 5),
    ])
    .await;

    let (status, line) = check(&db.url, &["--bot", "steady"]);
    assert_eq!(status, 0, "{line}");
    assert!(
        line.contains("error rate of bot steady 0.0% (0 of 20"),
        "{line}"
    );

    let (status, line) = check(&db.url, &["--bot", "flaky"]);
    assert_eq!(status, 2, "{line}");

    let (status, line) = check(&db.url, &[]);
    assert_eq!(status, 2, "overall 25%: {line}");
}

#[tokio::test]
async fn calls_before_the_window_are_not_counted() {
    let db = sqlite_with(&[calls("crawler", 500, 20, 60), calls("crawler", 200, 20, 5)]).await;

    let (status, line) = check(&db.url, &[]);
    assert_eq!(status, 0, "{line}");

    let (status, line) = check(&db.url, &["--window", "2h"]);
    assert_eq!(status, 2, "{line}");
    assert!(line.contains("(20 of 40 calls, 2h)"), "{line}");
}

#[tokio::test]
async fn fewer_calls_than_min_calls_is_ok_with_a_note() {
    let db = sqlite_with(&[calls("crawler", 500, 3, 5)]).await;

    let (status, line) = check(&db.url, &[]);
    assert_eq!(status, 0, "{line}");
    assert!(
        line.contains("not judged: 3 calls in 15m, fewer than --min-calls 10"),
        "{line}"
    );

    let (status, line) = check(&db.url, &["--min-calls", "3"]);
    assert_eq!(status, 2, "{line}");
}

#[tokio::test]
async fn lag_above_max_lag_warns_and_above_twice_is_critical() {
    let twenty = sqlite_with(&[calls("crawler", 200, 5, 20)]).await;
    let forty = sqlite_with(&[calls("crawler", 200, 5, 40)]).await;

    let (status, line) = check(&twenty.url, &["--max-lag", "15m"]);
    assert_eq!(status, 1, "{line}");
    assert!(
        line.starts_with("EGRESS-AUDIT WARNING - newest call 20m"),
        "{line}"
    );
    assert!(line.contains(" lag=120"), "lag in seconds: {line}");

    let (status, line) = check(&forty.url, &["--max-lag", "15m"]);
    assert_eq!(status, 2, "{line}");

    let (status, line) = check(&forty.url, &["--max-lag", "15m", "--critical-lag", "1h"]);
    assert_eq!(status, 1, "{line}");
    assert!(line.contains(";900;3600"), "{line}");

    let (status, line) = check(&forty.url, &["--max-lag", "1h"]);
    assert_eq!(status, 0, "{line}");
}

#[tokio::test]
async fn empty_store_is_critical_when_freshness_is_checked() {
    let db = sqlite_with(&[]).await;

    let (status, line) = check(&db.url, &[]);
    assert_eq!(status, 0, "{line}");

    let (status, line) = check(&db.url, &["--max-lag", "15m"]);
    assert_eq!(status, 2, "{line}");
    assert!(line.contains("no calls stored"), "{line}");
}

#[tokio::test]
async fn unknown_for_bad_arguments_and_unreachable_stores() {
    let db = sqlite_with(&[calls("crawler", 200, 20, 5)]).await;
    let missing = format!("sqlite://{}", db.dir.path().join("missing.db").display());
    let cases: [(&str, &[&str], &str); 6] = [
        (&db.url, &["--warning", "abc"], "bad arguments"),
        (&db.url, &["--no-such-flag"], "bad arguments"),
        (
            &db.url,
            &["--warning", "20", "--critical", "10"],
            "--warning 20",
        ),
        (&db.url, &["--critical-lag", "5m"], "--max-lag"),
        (
            "postgres://postgres@127.0.0.1:1/audit",
            &[],
            "cannot connect",
        ),
        (&missing, &[], "does not exist"),
    ];
    for (url, args, says) in cases {
        let (status, line) = check(url, args);
        assert_eq!(status, 3, "{args:?}: {line}");
        assert!(
            line.starts_with("EGRESS-AUDIT UNKNOWN - "),
            "{args:?}: {line}"
        );
        assert!(line.contains(says), "{args:?}: {line}");
    }
}

#[tokio::test]
async fn postgres_store_is_judged_the_same_way() {
    let pg = PgDatabase::create().await;
    load(
        &pg.url,
        &[calls("crawler", 200, 85, 20), calls("crawler", 500, 15, 20)],
    )
    .await;

    let (status, line) = check(&pg.url, &["--window", "1h", "--max-lag", "15m"]);

    assert_eq!(status, 2, "{line}");
    assert!(
        line.starts_with(
            "EGRESS-AUDIT CRITICAL - error rate 15.0% (15 of 100 calls, 1h); newest call 20m"
        ),
        "{line}"
    );
    assert!(
        line.contains("| error_rate=15.0%;5;10 calls=100 errors=15 lag=12"),
        "{line}"
    );
}
