//! The binary as an operator meets it: help, `log` then `query`, and every
//! kind of bad input giving one clear line and exit status 2.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn cli(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("egress-audit").unwrap();
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG");
    cmd
}

fn one_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr).to_string();
    assert_eq!(
        text.trim_end().lines().count(),
        1,
        "expected one line, got: {text}"
    );
    text
}

#[test]
fn every_command_has_help_with_an_example() {
    let dir = tempfile::tempdir().unwrap();
    let commands: &[&[&str]] = &[
        &[],
        &["log"],
        &["config"],
        &["migrate"],
        &["check"],
        &["query"],
        &["query", "recent"],
        &["query", "stats"],
        &["query", "top-destinations"],
        &["query", "errors"],
        &["query", "timeseries"],
        &["query", "slow"],
        &["query", "error-rate"],
        &["query", "bandwidth"],
        &["query", "top-bots"],
        &["query", "audit"],
    ];
    for args in commands {
        let out = cli(dir.path()).args(*args).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}");
        assert!(
            text.contains("Example") || text.contains("egress-audit query"),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn log_then_query_on_the_default_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let id = cli(dir.path())
        .args([
            "log",
            "crawler",
            "https://api.example.com/v1/items",
            "get",
            "503",
            "250",
        ])
        .args(["--group", "research", "--response-bytes", "6000000000"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let id = String::from_utf8(id).unwrap().trim().to_string();
    assert_eq!(id.len(), 36);
    assert!(
        dir.path().join("egress-audit.db").exists(),
        "default store is ./egress-audit.db"
    );

    let out = cli(dir.path())
        .args(["query", "recent", "--format", "json"])
        .output()
        .unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    let row: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(row["id"], id.as_str());
    assert_eq!(row["http_method"], "GET");
    assert_eq!(row["status_code"], 503);
    assert_eq!(row["response_size_bytes"], 6_000_000_000i64);
    assert_eq!(row["destination_host"], "api.example.com");

    cli(dir.path())
        .args(["query", "stats", "--format", "csv"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "bot_name,calls,errors,error_rate_pct",
        ))
        .stdout(predicate::str::contains(
            "crawler,1,1,100.0,250,250,250,250",
        ));
    cli(dir.path())
        .args(["query", "timeseries", "15m", "2h", "--format", "table"])
        .assert()
        .success()
        .stdout(predicate::str::contains("█"));
}

#[test]
fn unknown_bot_is_an_empty_answer_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    cli(dir.path())
        .args(["log", "crawler", "https://a.example/"])
        .assert()
        .success();
    cli(dir.path())
        .args(["query", "stats", "nobody", "--format", "json"])
        .assert()
        .code(0)
        .stdout("")
        .stderr(predicate::str::contains("nobody"));
}

#[test]
fn malformed_window_is_one_line_and_status_2() {
    let dir = tempfile::tempdir().unwrap();
    cli(dir.path())
        .args(["log", "crawler", "https://a.example/"])
        .assert()
        .success();
    let out = cli(dir.path())
        .args(["query", "stats", "6 hourz"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out.stderr).contains("6 hourz"));
    let out = cli(dir.path())
        .args(["query", "stats", "crawler", "6 hourz"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_url_scheme_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(dir.path())
        .args([
            "--database-url",
            "mysql://db.example/x",
            "log",
            "b",
            "https://a.example/",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out.stderr).contains("mysql"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn unreachable_database_names_the_host_not_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(dir.path())
        .args(["--database-url", "postgres://app:hunter2@127.0.0.1:1/audit"])
        .args(["log", "b", "https://a.example/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let line = one_line(&out.stderr);
    assert!(line.contains("127.0.0.1:1"), "{line}");
    assert!(!line.contains("hunter2"), "{line}");
}

#[test]
fn missing_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(dir.path())
        .args(["--config", "missing.toml", "config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out.stderr).contains("missing.toml"));
}

#[test]
fn config_prints_the_effective_values_with_the_password_masked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.toml"), "[database]\nbatch_rows = 77\n").unwrap();
    cli(dir.path())
        .args(["--config", "c.toml", "config"])
        .env("DATABASE_URL", "postgres://app:hunter2@db.example/audit")
        .env("EGRESS_AUDIT_DATABASE__FLUSH_INTERVAL", "250ms")
        .assert()
        .success()
        .stdout(predicate::str::contains("batch_rows = 77"))
        .stdout(predicate::str::contains("flush_interval = \"250ms\""))
        .stdout(predicate::str::contains(
            "postgres://app:***@db.example/audit",
        ))
        .stdout(predicate::str::contains("hunter2").not());
}

#[test]
fn unknown_environment_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(dir.path())
        .env("EGRESS_AUDIT_DATABASE__BATCH_ROWZ", "5")
        .arg("config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out.stderr).contains("batch_rowz"));
}

#[test]
fn read_only_database_file_is_reported_and_still_queryable() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ro.db").display());
    cli(dir.path())
        .args(["--database-url", &url, "log", "b", "https://a.example/"])
        .assert()
        .success();
    std::fs::set_permissions(
        dir.path().join("ro.db"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();

    // Root ignores permissions, so the write is tried as an unprivileged user.
    let binary = assert_cmd::cargo::cargo_bin("egress-audit");
    let run_as_nobody = |args: &[&str]| {
        std::process::Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(&binary)
            .args(["--database-url", &url])
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("runuser (util-linux) is needed to test a read-only store")
    };
    let out = run_as_nobody(&["log", "b", "https://b.example/"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(one_line(&out.stderr).contains("read-only"));
    let out = run_as_nobody(&["query", "recent", "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn log_and_query_against_postgres() {
    let db = common::PgDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    cli(dir.path())
        .env("DATABASE_URL", &db.url)
        .args([
            "log",
            "crawler",
            "https://api.example.com/",
            "GET",
            "200",
            "15",
        ])
        .assert()
        .success();
    cli(dir.path())
        .env("DATABASE_URL", &db.url)
        .args(["query", "top-bots", "--format", "csv"])
        .assert()
        .success()
        .stdout(predicate::str::contains("crawler,1,0,1,"));
}

/// A database nobody migrated: one line that says what to do, from `query`
/// (status 2) and from `check` (UNKNOWN, status 3), not the driver's message
/// once per level of the error chain.
#[tokio::test]
async fn an_unmigrated_database_asks_for_migrate() {
    let db = common::PgDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let expected = "the database has no egress-audit tables: run egress-audit migrate";
    let out = cli(dir.path())
        .env("DATABASE_URL", &db.url)
        .args(["query", "stats", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        one_line(&out.stderr).trim_end(),
        format!("egress-audit: {expected}")
    );
    let out = cli(dir.path())
        .env("DATABASE_URL", &db.url)
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        format!("EGRESS-AUDIT UNKNOWN - {expected}")
    );
}

/// `--local` shows times in the zone `TZ` names (Newfoundland, half an hour
/// off the hour: no chance of passing by accident); without it they are UTC
/// whatever the zone.
#[test]
fn local_shows_times_in_the_local_zone_and_utc_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    cli(dir.path())
        .args(["log", "crawler", "https://a.example/", "GET", "200"])
        .args(["--at", "2026-02-26T12:00:00Z"])
        .assert()
        .success();
    let query = |extra: &[&str]| {
        let out = cli(dir.path())
            .env("TZ", "America/St_Johns")
            .args([
                "query",
                "recent",
                "--since",
                "2026-02-26",
                "--format",
                "csv",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let local = query(&["--local"]);
    assert!(local.contains("2026-02-26T08:30:00.000-03:30"), "{local}");
    let utc = query(&[]);
    assert!(utc.contains("2026-02-26T12:00:00.000Z"), "{utc}");
    assert!(!utc.contains("-03:30"), "{utc}");

    let out = cli(dir.path())
        .env("TZ", "America/St_Johns")
        .args([
            "query",
            "stats",
            "--since",
            "2026-02-26",
            "--format",
            "table",
            "--local",
        ])
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("02-26 08:30"), "{table}");
}

/// README's quick start, run as written, prints what README shows: the
/// stats header and the rows the sample lists, so the two cannot drift.
#[test]
fn readme_quick_start_prints_what_readme_shows() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let command = "cargo run -q -- --config fixtures/quickstart.toml import \
                   fixtures/sample-access.log && cargo run -q -- query stats --since 2025-11-01 \
                   --format table";
    assert!(
        readme.contains(command),
        "README's quick start command changed"
    );
    let shown: Vec<&str> = readme
        .lines()
        .skip_while(|line| !line.contains(command))
        .skip_while(|line| !line.starts_with("bot "))
        .take_while(|line| *line != "…" && !line.starts_with("```"))
        .collect();
    assert!(shown.len() >= 2, "README shows no stats sample: {shown:?}");

    let dir = tempfile::tempdir().unwrap();
    cli(dir.path())
        .arg("--config")
        .arg(repo.join("fixtures/quickstart.toml"))
        .arg("import")
        .arg(repo.join("fixtures/sample-access.log"))
        .assert()
        .success();
    assert!(dir.path().join("egress-audit.db").exists());
    let out = cli(dir.path())
        .args([
            "query",
            "stats",
            "--since",
            "2025-11-01",
            "--format",
            "table",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    let printed: Vec<&str> = printed.lines().take(shown.len()).collect();
    assert_eq!(printed, shown);
}
