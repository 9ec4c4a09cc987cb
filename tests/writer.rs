//! Writing batches: poison rows are split out and refused alone, while a
//! database outage, or a database that refuses every row alike, is waited
//! out with retries, nothing lost or doubled.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{PgDatabase, known_rows, proxy::Proxy};
use egress_audit::pipeline::writer::{RetryPolicy, WriteReport, Writer};
use egress_audit::store::{Store, StoreError};
use sqlx::{Connection, Executor, PgConnection};

/// Retries every 50 to 200 ms without end, so a test sees them soon.
const QUICK_RETRIES: RetryPolicy = RetryPolicy {
    min_delay: Duration::from_millis(50),
    max_delay: Duration::from_millis(200),
    max_retries: None,
};

/// Writes the known rows on a task of its own, for a test to watch.
fn write_in_background(
    writer: &Arc<Writer>,
) -> tokio::task::JoinHandle<Result<WriteReport, StoreError>> {
    let writer = writer.clone();
    tokio::spawn(async move { writer.write(&known_rows()).await })
}

#[tokio::test]
async fn rows_the_database_refuses_are_split_out_and_the_rest_committed() {
    let db = PgDatabase::create().await;
    let store = Store::open(&db.config()).await.unwrap();
    let writer = Writer::new(store.clone(), RetryPolicy::forever(Duration::from_secs(1)));

    let mut rows = known_rows();
    rows[2].user_agent = Some("nul\0byte".into());
    rows[6].bot_name = "b".repeat(100);
    let report = writer.write(&rows).await.unwrap();

    assert_eq!(report.outcome.written, 6);
    let refused: Vec<usize> = report.refused.iter().map(|(i, _)| *i).collect();
    assert_eq!(refused, vec![2, 6]);
    assert!(
        report.refused[0].1.contains("0x00"),
        "{}",
        report.refused[0].1
    );
    assert!(
        report.refused[1].1.contains("too long"),
        "{}",
        report.refused[1].1
    );

    let again = writer.write(&rows).await.unwrap();
    assert_eq!((again.outcome.written, again.outcome.duplicates), (0, 6));
}

#[tokio::test]
async fn an_outage_is_retried_until_the_database_is_back() {
    let db = PgDatabase::create().await;
    Store::open(&db.config()).await.unwrap();
    let (mut proxy, via) = Proxy::in_front_of(&db.url).await;
    let mut config = db.config();
    config.url = via;
    config.connect_timeout = Duration::from_millis(500);
    let store = Store::connect(&config).await.unwrap();
    let writer = Arc::new(Writer::new(store, QUICK_RETRIES));
    writer.write(&known_rows()[..2]).await.unwrap();

    proxy.cut();
    let pending = write_in_background(&writer);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !pending.is_finished(),
        "the write finished while the database was away"
    );
    proxy.restore().await;

    let report = tokio::time::timeout(Duration::from_secs(20), pending)
        .await
        .expect("write resumes once the database is back")
        .unwrap()
        .unwrap();
    assert!(report.retries > 0);
    assert_eq!((report.outcome.written, report.outcome.duplicates), (6, 2));
}

#[tokio::test]
async fn a_write_refused_for_every_row_waits_instead_of_setting_rows_aside() {
    let db = PgDatabase::create().await;
    Store::open(&db.config()).await.unwrap();
    let mut admin = PgConnection::connect(&db.url).await.unwrap();
    let role = format!("writer_{}", db.url.rsplit('/').next().unwrap());
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"),
    ] {
        admin.execute(sqlx::AssertSqlSafe(sql)).await.unwrap();
    }
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&role).unwrap();
    let mut config = db.config();
    config.url = url.to_string();
    let store = Store::connect(&config).await.unwrap();
    let writer = Arc::new(Writer::new(store, QUICK_RETRIES));

    // Without INSERT every row is refused alike: that is the database's
    // state, not the rows' fault, so nothing may go to the dead letters.
    let pending = write_in_background(&writer);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !pending.is_finished(),
        "the write gave up or set rows aside while the privilege was missing"
    );
    let grant = format!("GRANT INSERT ON ALL TABLES IN SCHEMA public TO {role}");
    admin.execute(sqlx::AssertSqlSafe(grant)).await.unwrap();

    let report = tokio::time::timeout(Duration::from_secs(20), pending)
        .await
        .expect("the write resumes once the privilege is granted")
        .unwrap()
        .unwrap();
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    assert!(report.retries > 0);
    assert_eq!(report.outcome.written, known_rows().len() as u64);

    drop(writer);
    let cleanup = format!("DROP OWNED BY {role}");
    admin.execute(sqlx::AssertSqlSafe(cleanup)).await.unwrap();
    admin.close().await.unwrap();
    let mut server = PgConnection::connect(&common::admin_url()).await.unwrap();
    let drop_role = format!("DROP ROLE {role}");
    drop(db);
    server
        .execute(sqlx::AssertSqlSafe(drop_role))
        .await
        .unwrap();
}
