//! What the table's indexes cost at load time, to choose them by
//! measurement: the same rows loaded by `psql \copy` into the table with
//! each candidate set of indexes, in one run.
//!
//! ```sh
//! cargo bench --bench indexes            # 1,000,000 rows
//! cargo bench --bench indexes -- 300000  # quicker
//! ```
//!
//! Every variant starts from an empty table with the primary key and is
//! loaded from the same CSV (the rows egress-audit stores, parsed by the
//! library). The reference is the primary key alone.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};

/// The table as the migration creates it, without its indexes.
const TABLE: &str = "CREATE TABLE tq_egress_audit (
    id uuid PRIMARY KEY, bot_name varchar(64) NOT NULL, group_name varchar(64),
    destination_url text NOT NULL, http_method varchar(10), status_code integer,
    request_size_bytes bigint, response_size_bytes bigint, latency_ms bigint,
    user_agent text, created_at timestamptz NOT NULL DEFAULT now(), destination_host text,
    client_ip text, proxy_user text, squid_status text, hierarchy text, content_type text,
    source text, ingested_at timestamptz NOT NULL DEFAULT now())";

const BOT: &str = "CREATE INDEX idx_egress_bot ON tq_egress_audit (bot_name, created_at, id)";
const TIME: &str = "CREATE INDEX idx_egress_time ON tq_egress_audit (created_at, id)";
const ERRORS: &str = "CREATE INDEX idx_egress_errors ON tq_egress_audit \
                      (bot_name, created_at, id) WHERE status_code >= 400";
const DEST_HOST: &str = "CREATE INDEX idx_egress_dest ON tq_egress_audit (destination_host)";

/// One candidate: a label, its indexes, and whether ids are random (v4,
/// made by the server) instead of the time-ordered v7 ids egress-audit makes.
struct Variant {
    label: &'static str,
    indexes: Vec<&'static str>,
    random_ids: bool,
}

fn variants() -> Vec<Variant> {
    let shipped = vec![BOT, TIME, ERRORS, DEST_HOST];
    let with = |replace: &str, by: &'static str| -> Vec<&'static str> {
        shipped
            .iter()
            .map(|i| if i.contains(replace) { by } else { *i })
            .collect()
    };
    vec![
        Variant {
            label: "reference: primary key only",
            indexes: vec![],
            random_ids: false,
        },
        Variant {
            label: "shipped: bot, time, errors (partial), dest on host (btree)",
            indexes: shipped.clone(),
            random_ids: false,
        },
        Variant {
            label: "shipped without the partial errors index",
            indexes: vec![BOT, TIME, DEST_HOST],
            random_ids: false,
        },
        Variant {
            label: "dest as btree on the full URL (the original design)",
            indexes: with(
                "idx_egress_dest",
                "CREATE INDEX idx_egress_dest ON tq_egress_audit (destination_url)",
            ),
            random_ids: false,
        },
        Variant {
            label: "dest as hash on the host",
            indexes: with(
                "idx_egress_dest",
                "CREATE INDEX idx_egress_dest ON tq_egress_audit USING hash (destination_host)",
            ),
            random_ids: false,
        },
        Variant {
            label: "time as BRIN on created_at",
            indexes: with(
                "idx_egress_time",
                "CREATE INDEX idx_egress_time ON tq_egress_audit USING brin (created_at)",
            ),
            random_ids: false,
        },
        Variant {
            label: "shipped, with random (v4) ids",
            indexes: shipped,
            random_ids: true,
        },
    ]
}

#[tokio::main]
async fn main() {
    let Some(args) = common::bench_numbers() else {
        return;
    };
    let lines = args.first().copied().unwrap_or(1_000_000);
    let work = tempfile::tempdir().expect("temp dir");
    let log = work.path().join("access.log");
    let csv = work.path().join("rows.csv");
    common::rows::write_log(&log, lines);
    common::rows::write_csv(&log, &csv);
    let url = fresh_database("egress_bench_indexes").await;

    println!("\n## index choices: `psql \\copy` of {lines} rows into an empty table\n");
    println!("| indexes | seconds | rows/s | vs. primary key only |\n|---|---|---|---|");
    let mut reference = None;
    for variant in variants() {
        let took = load(&url, &csv, &variant).await;
        let rate = lines as f64 / took.as_secs_f64();
        let base = *reference.get_or_insert(rate);
        println!(
            "| {} | {:.2} | {rate:.0} | {:.2} |",
            variant.label,
            took.as_secs_f64(),
            rate / base
        );
    }
}

/// Recreates the table with `variant`'s indexes and times the load.
async fn load(url: &str, csv: &Path, variant: &Variant) -> Duration {
    let mut conn = PgConnection::connect(url).await.unwrap();
    conn.execute("DROP TABLE IF EXISTS tq_egress_audit")
        .await
        .unwrap();
    conn.execute(TABLE).await.unwrap();
    for index in &variant.indexes {
        conn.execute(*index).await.unwrap();
    }
    let columns = if variant.random_ids {
        conn.execute("ALTER TABLE tq_egress_audit ALTER id SET DEFAULT gen_random_uuid()")
            .await
            .unwrap();
        common::rows::COLUMNS.trim_start_matches("id, ").to_string()
    } else {
        common::rows::COLUMNS.to_string()
    };
    conn.execute("CHECKPOINT").await.unwrap();
    conn.close().await.unwrap();

    // With random ids the CSV's id column is left out: psql reads the file
    // through a query that drops it.
    let source = if variant.random_ids {
        format!("PROGRAM 'cut -d, -f2- {}'", csv.display())
    } else {
        format!("'{}'", csv.display())
    };
    let copy = format!("\\copy tq_egress_audit ({columns}) FROM {source} WITH (FORMAT csv)");
    let started = Instant::now();
    let status = Command::new("psql")
        .args([url, "-q", "-c", &copy])
        .status()
        .unwrap();
    assert!(status.success(), "psql \\copy failed");
    started.elapsed()
}

/// An empty database for the benchmark; returns its URL.
async fn fresh_database(name: &str) -> String {
    let mut admin = PgConnection::connect(&common::admin_url())
        .await
        .expect("PostgreSQL reachable");
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    admin.execute(sqlx::AssertSqlSafe(drop)).await.unwrap();
    let create = format!("CREATE DATABASE {name}");
    admin.execute(sqlx::AssertSqlSafe(create)).await.unwrap();
    let mut url = url::Url::parse(&common::admin_url()).unwrap();
    url.set_path(name);
    url.to_string()
}
