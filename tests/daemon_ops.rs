//! The daemon as operations meet it: the metrics endpoint scraped while it
//! runs, reload on SIGHUP, stopping during an outage, and the SQLite store.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::PgDatabase;
use common::daemon::{
    Site, count_rows, native_lines, signal, stop, wait_for_rows, wait_with_timeout,
};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP GET on loopback; returns status line and body.
fn get(port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("metrics endpoint answers");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

/// The value of the series whose line starts with `series` (name and labels).
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_and_health_are_served_while_running() {
    let db = PgDatabase::create().await;
    let port = free_port();
    let extra = format!(
        "[metrics]\nlisten = \"127.0.0.1:{port}\"\n[[bots]]\ncidr = \"10.0.0.0/24\"\nname = \"test-bot\"\n\
         group = \"lab\"\n"
    );
    let site = Site::new(&db.url, &extra);
    site.append(&native_lines(0, 100));
    let mut daemon = site.start(&[]);
    wait_for_rows(&site, 100, Duration::from_secs(30)).await;

    let (status, body) = get(port, "/healthz");
    assert!(status.contains("200"), "{status} {body}");
    let (status, metrics) = get(port, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert_eq!(
        value(&metrics, "egress_audit_rows_written_total"),
        Some(100.0),
        "{metrics}"
    );
    assert_eq!(
        value(
            &metrics,
            "egress_audit_lines_read_total{source=\"gw-test\"}"
        ),
        Some(100.0)
    );
    assert_eq!(
        value(
            &metrics,
            "egress_audit_parse_errors_total{source=\"gw-test\"}"
        ),
        Some(0.0)
    );
    // native_line: statuses cycle 200, 200, 404, 200, 503.
    let series = |class: &str| {
        format!(
            "egress_audit_requests_total{{bot=\"test-bot\",group=\"lab\",status_class=\"{class}\"}}"
        )
    };
    assert_eq!(value(&metrics, &series("2xx")), Some(60.0), "{metrics}");
    assert_eq!(value(&metrics, &series("4xx")), Some(20.0));
    assert_eq!(value(&metrics, &series("5xx")), Some(20.0));
    let bytes: u64 = (0..100u64).map(|n| n * 10).sum();
    assert_eq!(
        value(
            &metrics,
            "egress_audit_response_bytes_total{bot=\"test-bot\",group=\"lab\"}"
        ),
        Some(bytes as f64)
    );
    assert!(value(&metrics, "egress_audit_last_commit_timestamp_seconds").unwrap() > 1.7e9);
    assert!(metrics.contains("egress_audit_latency_seconds_bucket{bot=\"test-bot\",group=\"lab\""));
    assert!(metrics.contains("egress_audit_batch_duration_seconds_bucket"));
    let lag = format!(
        "egress_audit_checkpoint_lag_bytes{{path=\"{}\"}}",
        site.log.display()
    );
    assert_eq!(value(&metrics, &lag), Some(0.0), "{metrics}");
    let (status, _) = get(port, "/nothing");
    assert!(status.contains("404"));

    assert!(stop(&mut daemon).success());
}

#[tokio::test]
async fn sighup_applies_a_new_bot_map_and_refuses_a_bad_config() {
    let db = PgDatabase::create().await;
    let bots = |name: &str| format!("[[bots]]\ncidr = \"10.0.0.0/24\"\nname = \"{name}\"\n");
    let site = Site::new(&db.url, &bots("before"));
    site.append(&native_lines(0, 10));
    let mut daemon = site.start(&[]);
    wait_for_rows(&site, 10, Duration::from_secs(30)).await;

    // A bad file: refused, the daemon keeps going with the old map.
    let good = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(
        &site.config,
        format!("{good}\n[database]\nbatch_rowz = 1\n"),
    )
    .unwrap();
    signal(&daemon, "HUP");
    let started = Instant::now();
    while !site.diagnostics().contains("new configuration refused") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            site.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    site.append(&native_lines(10, 5));
    wait_for_rows(&site, 15, Duration::from_secs(30)).await;

    // A good one: new lines get the new name, nothing is read twice.
    std::fs::write(
        &site.config,
        good.replace("name = \"before\"", "name = \"after\""),
    )
    .unwrap();
    signal(&daemon, "HUP");
    site.wait_running(2);
    site.append(&native_lines(15, 5));
    wait_for_rows(&site, 20, Duration::from_secs(30)).await;
    assert!(stop(&mut daemon).success(), "{}", site.diagnostics());

    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let names: Vec<(String, i64)> = sqlx::query_as(
        "SELECT bot_name, count(*) FROM tq_egress_audit GROUP BY bot_name ORDER BY bot_name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        names,
        vec![("after".to_string(), 5), ("before".to_string(), 15)]
    );
}

#[tokio::test]
async fn a_stop_during_an_outage_exits_within_the_timeout_and_a_second_signal_at_once() {
    let db = PgDatabase::create().await;
    let (mut proxy, via) = common::proxy::Proxy::in_front_of(&db.url).await;
    let site = Site::new(&via, "[run]\nshutdown_timeout = \"2s\"\n");
    let direct = Site {
        url: db.url.clone(),
        ..Site::new(&db.url, "")
    };

    site.append(&native_lines(0, 10));
    let mut daemon = site.start(&[]);
    wait_for_rows(&direct, 10, Duration::from_secs(30)).await;
    proxy.cut();
    site.append(&native_lines(10, 10));
    std::thread::sleep(Duration::from_millis(500));

    // First signal: it cannot commit, so it gives up after the timeout.
    let asked = Instant::now();
    signal(&daemon, "TERM");
    let status = wait_with_timeout(&mut daemon, Duration::from_secs(10));
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(130), "{}", site.diagnostics());
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "{took:?}"
    );

    // Second signal: at once.
    proxy.restore().await;
    let mut daemon = site.start(&[]);
    wait_for_rows(&direct, 20, Duration::from_secs(30)).await;
    proxy.cut();
    site.append(&native_lines(20, 10));
    std::thread::sleep(Duration::from_millis(500));
    signal(&daemon, "TERM");
    std::thread::sleep(Duration::from_millis(100));
    let asked = Instant::now();
    signal(&daemon, "TERM");
    let status = wait_with_timeout(&mut daemon, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130));
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );

    // Back online: the lines read but never committed arrive once.
    proxy.restore().await;
    let mut daemon = site.start(&[]);
    wait_for_rows(&direct, 30, Duration::from_secs(30)).await;
    assert!(stop(&mut daemon).success());
    assert_eq!(count_rows(&db.url).await, 30);

    // A stop while waiting for the database at start-up is a clean stop.
    proxy.cut();
    let mut daemon = site.start(&[]);
    site.wait_log("file opened", 4);
    std::thread::sleep(Duration::from_millis(300));
    assert!(stop(&mut daemon).success(), "{}", site.diagnostics());
}

#[tokio::test]
async fn the_sqlite_store_keeps_the_same_guarantees() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("audit.db").display());
    let site = Site::new(&url, "");
    site.append(&native_lines(0, 300));
    let mut daemon = site.start(&[]);
    let count = || {
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("egress-audit"))
            .args([
                "--database-url",
                &url,
                "query",
                "top-bots",
                "--format",
                "csv",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').nth(1)?.parse::<i64>().ok())
            .sum::<i64>()
    };
    let wait = |rows: i64| {
        let started = Instant::now();
        while count() != rows {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{}",
                site.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait(300);
    std::fs::rename(&site.log, site.log.with_extension("log.1")).unwrap();
    site.append(&native_lines(300, 100));
    wait(400);
    assert!(stop(&mut daemon).success());

    let mut replay = site.start(&["--from-start"]);
    site.wait_running(2);
    std::thread::sleep(Duration::from_secs(1));
    assert!(stop(&mut replay).success());
    assert_eq!(count(), 400, "a replay adds nothing");
}
