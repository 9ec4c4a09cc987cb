//! Ingest benchmark for the daemon's write path, each figure beside its
//! reference measured in the same run.
//!
//! ```sh
//! cargo bench --bench ingest             # 1,000,000 lines; latency for 30 s
//! cargo bench --bench ingest -- 200000 5 # smaller, quicker
//! ```
//!
//! 1. Throughput: `egress-audit import` of a generated native log into the
//!    local PostgreSQL (table with its indexes), against `psql -c "\copy"` of
//!    the same rows already parsed into CSV, into the same table. Also the
//!    import's peak RSS (VmHWM of the process).
//! 2. Latency: lines appended at 1,000 per second while `egress-audit run`
//!    follows the file with default settings; each row's `ingested_at`
//!    (set to `clock_timestamp()` for this run, so it is taken while the row
//!    is copied, just before the commit) minus the time its line was written.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use egress_audit::config::Config;
use egress_audit::pipeline::source::SourceParser;
use sqlx::{Connection, Executor, PgConnection};

const BIN: &str = env!("CARGO_BIN_EXE_egress-audit");

#[tokio::main]
async fn main() {
    let Some(args) = common::bench_numbers() else {
        return;
    };
    let lines = args.first().copied().unwrap_or(1_000_000);
    let latency_secs = args.get(1).copied().unwrap_or(30);
    let work = tempfile::tempdir().expect("temp dir");
    throughput(work.path(), lines).await;
    latency(work.path(), latency_secs).await;
}

/// A fresh database with the schema; returns its URL.
async fn fresh_database(name: &str) -> String {
    let mut admin = PgConnection::connect(&common::admin_url())
        .await
        .expect("PostgreSQL reachable");
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let mut url = url::Url::parse(&common::admin_url()).unwrap();
    url.set_path(name);
    let status = Command::new(BIN)
        .args(["--database-url", url.as_str(), "migrate"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    url.to_string()
}

async fn throughput(work: &Path, lines: u64) {
    let log = work.join("access.log");
    let csv_path = work.join("rows.csv");
    common::rows::write_log(&log, lines);
    common::rows::write_csv(&log, &csv_path);
    let wc_started = Instant::now();
    let wc = Command::new("wc").arg("-l").arg(&log).output().unwrap();
    let wc_took = wc_started.elapsed();
    assert!(wc.status.success());

    let url = fresh_database("egress_bench_ingest").await;
    let copy = format!(
        "\\copy tq_egress_audit ({}) FROM '{}' WITH (FORMAT csv)",
        common::rows::COLUMNS,
        csv_path.display()
    );
    let psql_started = Instant::now();
    let status = Command::new("psql")
        .args([url.as_str(), "-q", "-c", &copy])
        .status()
        .unwrap();
    let psql_took = psql_started.elapsed();
    assert!(status.success(), "psql \\copy failed");

    let mut conn = PgConnection::connect(&url).await.unwrap();
    conn.execute("TRUNCATE tq_egress_audit").await.unwrap();
    conn.execute("CHECKPOINT").await.unwrap();
    let (import_took, peak_kib) = run_measured(&url, &log);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM tq_egress_audit")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored as u64, lines);

    let rate = |took: Duration| lines as f64 / took.as_secs_f64();
    println!("\n## ingest of {lines} native lines into PostgreSQL (table with its indexes)\n");
    println!("| what | seconds | rows/s |\n|---|---|---|");
    println!(
        "| reference: `psql -c \"\\copy\"` of the same rows as CSV | {:.2} | {:.0} |",
        psql_took.as_secs_f64(),
        rate(psql_took)
    );
    println!(
        "| `egress-audit import` (parse, enrich, binary COPY) | {:.2} | {:.0} |",
        import_took.as_secs_f64(),
        rate(import_took)
    );
    println!(
        "| ratio import / \\copy | {:.2}x | |",
        rate(import_took) / rate(psql_took)
    );
    println!(
        "| `wc -l` of the file (for scale) | {:.3} | |",
        wc_took.as_secs_f64()
    );
    println!(
        "\npeak RSS of the import process: {:.1} MiB",
        peak_kib as f64 / 1024.0
    );

    // The same import again: every row is stored, so every batch is merged.
    let (replay_took, _) = run_measured(&url, &log);
    println!(
        "\n`egress-audit import` of the same file again (all rows present): {:.2} s, {:.0} rows/s",
        replay_took.as_secs_f64(),
        rate(replay_took)
    );
    strategies(&url, &log, lines).await;
}

/// The two ways of writing that keep rows unique, on one connection each,
/// with the same records in 5,000-row batches: plain COPY into the table, and
/// COPY into a staging table followed by `INSERT … ON CONFLICT DO NOTHING`.
async fn strategies(url: &str, log: &Path, lines: u64) {
    let config = Config::default();
    let spec = egress_audit::config::FormatSpec::Builtin("squid".into());
    let parser = SourceParser::new(&config, &spec, log, "bench", None).unwrap();
    let data = std::fs::read(log).unwrap();
    let mut records = Vec::with_capacity(lines as usize);
    let mut offset = 0u64;
    for raw in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let fields = parser.format.parse(raw).unwrap();
        records.push(parser.enricher.record(&fields, 2, offset).unwrap());
        offset += raw.len() as u64 + 1;
    }
    drop(data);
    let database = egress_audit::config::DatabaseConfig {
        url: url.to_string(),
        ..Default::default()
    };
    let store = egress_audit::store::Store::connect(&database)
        .await
        .unwrap();
    let egress_audit::store::Store::Postgres(pool) = &store else {
        unreachable!()
    };
    println!("\n## keeping rows unique: {lines} records, 5,000 a batch, one connection\n");
    println!("| strategy | seconds | rows/s |\n|---|---|---|");
    for merge in [false, true] {
        pool.execute("TRUNCATE tq_egress_audit").await.unwrap();
        pool.execute("CHECKPOINT").await.unwrap();
        let started = Instant::now();
        for batch in records.chunks(5000) {
            if merge {
                store.merge(batch).await.unwrap();
            } else {
                store.write(batch).await.unwrap();
            }
        }
        let took = started.elapsed();
        let label = if merge {
            "COPY into a staging table, then `INSERT … ON CONFLICT (id) DO NOTHING`"
        } else {
            "COPY straight into the table (the primary key guards; merge only on conflict)"
        };
        let rate = lines as f64 / took.as_secs_f64();
        println!("| {label} | {:.2} | {rate:.0} |", took.as_secs_f64());
    }
    store.close().await;
}

/// Runs `egress-audit import` and returns its wall time and peak RSS.
fn run_measured(url: &str, log: &Path) -> (Duration, u64) {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(["--database-url", url, "import"])
        .arg(log)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut peak = 0;
    loop {
        peak = peak.max(hwm_kib(child.id()));
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (started.elapsed(), peak)
}

fn hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn latency(work: &Path, seconds: u64) {
    let url = fresh_database("egress_bench_latency").await;
    let mut conn = PgConnection::connect(&url).await.unwrap();
    conn.execute(
        "ALTER TABLE tq_egress_audit ALTER COLUMN ingested_at SET DEFAULT clock_timestamp()",
    )
    .await
    .unwrap();
    let log: PathBuf = work.join("live.log");
    std::fs::write(&log, "").unwrap();
    let config = work.join("latency.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[[source]]\npath = \"{}\"\nname = \"bench\"\nstart_at = \"beginning\"\n",
            work.join("state").display(),
            log.display()
        ),
    )
    .unwrap();
    let mut daemon = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("DATABASE_URL", &url)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let total = seconds * 1000;
    let mut written: Vec<DateTime<Utc>> = Vec::with_capacity(total as usize);
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let started = Instant::now();
    for n in 0..total {
        let due = started + Duration::from_millis(n);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let at = Utc::now();
        let text = common::rows::line(n, at.timestamp_millis())
            .replace(&format!(" bot-{} ", n % 50), &format!(" seq-{n} "));
        file.write_all(format!("{text}\n").as_bytes()).unwrap();
        written.push(at);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let have: i64 = sqlx::query_scalar("SELECT count(*) FROM tq_egress_audit")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if have as u64 == total || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().to_string())
        .status();
    let _ = daemon.wait();

    let rows: Vec<(String, DateTime<Utc>)> =
        sqlx::query_as("SELECT proxy_user, ingested_at FROM tq_egress_audit")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let mut latencies: Vec<f64> = rows
        .iter()
        .filter_map(|(user, ingested)| {
            let n: usize = user.strip_prefix("seq-")?.parse().ok()?;
            Some((*ingested - written[n]).num_microseconds()? as f64 / 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    println!("\n## latency, {total} lines at 1,000 lines/s for {seconds} s, default settings\n");
    println!("rows seen: {} of {total}", latencies.len());
    println!("| p50 | p90 | p99 | max |\n|---|---|---|---|");
    println!(
        "| {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
        pick(0.5),
        pick(0.9),
        pick(0.99),
        pick(1.0)
    );
}
