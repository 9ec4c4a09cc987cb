//! The daemon end to end: the real binary, real files that really rotate,
//! the real PostgreSQL. Lines must arrive row for row, exactly once, through
//! rotations, kill -9, database outages, refused rows and replays.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{TimeZone, Utc};
use common::PgDatabase;
use common::daemon::{
    EPOCH, Site, append_to, count_rows, native_line, native_lines, rss_kib, stop, wait_for_rows,
    wait_with_timeout,
};
use egress_audit::checkpoint::{CHECKPOINT_FILE, Checkpoints};
use egress_audit::id::{LineOrigin, row_id};
use sqlx::{Connection, PgConnection, Row};

const BOTS: &str = "[[bots]]\ncidr = \"10.0.0.0/24\"\nname = \"test-bot\"\ngroup = \"lab\"\n";

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.unwrap()
}

#[tokio::test]
async fn lines_written_while_running_arrive_row_for_row_through_rotations() {
    let db = PgDatabase::create().await;
    let site = Site::new(&db.url, BOTS);
    site.append(&native_lines(0, 300));
    let mut daemon = site.start(&[]);
    wait_for_rows(&site, 300, Duration::from_secs(30)).await;

    // Rename and create, with a last write through the old name first.
    let rotated = site.log.with_extension("log.1");
    std::fs::rename(&site.log, &rotated).unwrap();
    append_to(&rotated, &native_lines(300, 50));
    site.append(&native_lines(350, 200));
    wait_for_rows(&site, 550, Duration::from_secs(30)).await;

    // copytruncate: copy, then empty the live file in place.
    std::fs::copy(&site.log, site.log.with_extension("log.2")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&site.log)
        .unwrap();
    site.append(&native_lines(550, 100));
    wait_for_rows(&site, 650, Duration::from_secs(30)).await;

    assert!(stop(&mut daemon).success(), "{}", site.diagnostics());
    let mut conn = connect(&db.url).await;
    let distinct: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT destination_url) FROM tq_egress_audit")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(distinct, 650, "every line once");

    let row = sqlx::query(
        "SELECT bot_name, group_name, status_code, response_size_bytes, latency_ms, created_at, \
         destination_host, client_ip, squid_status, hierarchy, content_type, source, http_method \
         FROM tq_egress_audit WHERE destination_url = 'http://host-3.example/item/402'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>("bot_name"), "test-bot");
    assert_eq!(
        row.get::<Option<String>, _>("group_name").as_deref(),
        Some("lab")
    );
    assert_eq!(row.get::<Option<i32>, _>("status_code"), Some(404));
    assert_eq!(row.get::<Option<i64>, _>("response_size_bytes"), Some(4020));
    assert_eq!(row.get::<Option<i64>, _>("latency_ms"), Some(402));
    assert_eq!(
        row.get::<chrono::DateTime<Utc>, _>("created_at"),
        Utc.timestamp_millis_opt((EPOCH + 402) * 1000 + 402)
            .unwrap()
    );
    assert_eq!(
        row.get::<Option<String>, _>("destination_host").as_deref(),
        Some("host-3.example")
    );
    assert_eq!(
        row.get::<Option<String>, _>("client_ip").as_deref(),
        Some("10.0.0.2")
    );
    assert_eq!(
        row.get::<Option<String>, _>("squid_status").as_deref(),
        Some("TCP_MISS")
    );
    assert_eq!(
        row.get::<Option<String>, _>("hierarchy").as_deref(),
        Some("HIER_DIRECT/203.0.113.5")
    );
    assert_eq!(
        row.get::<Option<String>, _>("content_type").as_deref(),
        Some("text/html")
    );
    assert_eq!(
        row.get::<Option<String>, _>("source").as_deref(),
        Some("gw-test")
    );
    assert_eq!(
        row.get::<Option<String>, _>("http_method").as_deref(),
        Some("GET")
    );
}

/// The ids the lines of a file must get: source, fingerprint of the first
/// line, and each line's offset.
fn expected_ids(lines: &[String]) -> BTreeSet<uuid::Uuid> {
    let fingerprint = xxhash_rust::xxh3::xxh3_64(format!("{}\n", lines[0]).as_bytes());
    let mut offset = 0u64;
    lines
        .iter()
        .enumerate()
        .map(|(n, line)| {
            let created = Utc.timestamp_millis_opt((EPOCH + n as i64) * 1000 + (n as i64 % 1000));
            let origin = LineOrigin {
                source: "gw-test",
                fingerprint,
                offset,
            };
            offset += line.len() as u64 + 1;
            row_id(created.unwrap(), origin)
        })
        .collect()
}

/// A small seeded generator (splitmix64), so that a failing schedule of
/// kills can be repeated.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `1..=most`.
    fn up_to(&mut self, most: u64) -> u64 {
        1 + self.next() % most
    }
}

/// Rows in the audit table, on a connection kept open (0 before the schema
/// exists).
async fn count_on(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tq_egress_audit")
        .fetch_one(conn)
        .await
        .unwrap_or(0)
}

#[tokio::test]
async fn kill_9_ten_times_during_a_load_leaves_exactly_every_row_once() {
    const ROWS: i64 = 100_000;
    let db = PgDatabase::create().await;
    let site = Site::new(&db.url, "[database]\nbatch_rows = 2000\n");
    let lines = native_lines(0, ROWS as u64);
    site.append(&lines);
    let seed = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("kill schedule seed {seed} (KILL_SEED={seed} repeats it)");
    let mut random = SplitMix(seed);

    // Each kill lands once the rows have grown by a random amount since the
    // restart (or all are in), so kills fall at random points of the load.
    let mut conn = connect(&db.url).await;
    let mut at_kill = Vec::new();
    let mut seen = Vec::new();
    for round in 0..10 {
        let target = (count_on(&mut conn).await + random.up_to(5000) as i64).min(ROWS);
        let mut daemon = site.start(&[]);
        let started = Instant::now();
        let rows = loop {
            let rows = count_on(&mut conn).await;
            if rows >= target {
                break rows;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "round {round}: {rows} rows after 60 s, waiting for {target}; seed {seed}\n{}",
                site.diagnostics()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        daemon.kill().unwrap();
        daemon.wait().unwrap();
        at_kill.push(rows);
        seen.push(count_on(&mut conn).await);
    }
    eprintln!("rows at each kill: {at_kill:?}; after it: {seen:?}");
    let mut daemon = site.start(&[]);
    site.wait_running(11);
    wait_for_rows(&site, 100_000, Duration::from_secs(180)).await;
    let status = stop(&mut daemon);
    assert!(status.success(), "{status:?}\n{}", site.diagnostics());

    let mut conn = connect(&db.url).await;
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM tq_egress_audit")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let stored: BTreeSet<uuid::Uuid> = ids.iter().copied().collect();
    assert_eq!(ids.len(), ROWS as usize, "seed {seed}");
    assert_eq!(
        stored,
        expected_ids(&lines),
        "every id as derived from its line's origin"
    );
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "rows only ever grew: {seen:?}; seed {seed}"
    );
    let mid_load = at_kill.iter().filter(|rows| **rows < ROWS).count();
    assert!(
        mid_load >= 8,
        "only {mid_load} kills landed while rows were missing: {at_kill:?}; seed {seed}"
    );
}

#[tokio::test]
async fn a_database_outage_with_rotations_is_waited_out_with_memory_bounded() {
    let db = PgDatabase::create().await;
    let (mut proxy, via) = common::proxy::Proxy::in_front_of(&db.url).await;

    let site = Site::new(&via, "[database]\nretry_max_delay = \"1s\"\n");
    site.append(&native_lines(0, 5000));
    let mut daemon = site.start(&[]);
    let direct = Site {
        url: db.url.clone(),
        ..Site::new(&db.url, "")
    };
    wait_for_rows(&direct, 5000, Duration::from_secs(30)).await;
    let before = rss_kib(daemon.id());

    proxy.cut();
    let outage = Instant::now();
    let mut peak = 0;
    let mut next = 5000;
    let mut rounds = 0;
    while outage.elapsed() < Duration::from_secs(15) {
        site.append(&native_lines(next, 4000));
        next += 4000;
        rounds += 1;
        // Rotations while nothing can be committed: once, then twice in a
        // row, as `squid -k rotate` with `logfile_rotate 2` does.
        if rounds == 5 || rounds == 10 {
            rename_rotate(&site, 2);
        }
        if rounds == 10 {
            site.append(&native_lines(next, 10));
            next += 10;
            rename_rotate(&site, 2);
        }
        peak = peak.max(rss_kib(daemon.id()));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(rounds > 10, "the outage saw the rotations");
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "the daemon stays up during the outage"
    );
    assert!(
        count_rows(&db.url).await < next as i64,
        "nothing can be written while cut"
    );
    proxy.restore().await;

    wait_for_rows(&direct, next as i64, Duration::from_secs(90)).await;
    assert!(stop(&mut daemon).success(), "{}", site.diagnostics());
    assert!(
        peak < before + 32 * 1024,
        "memory grew from {before} KiB to {peak} KiB while {} lines waited on disk",
        next - 5000
    );
    let log = site.diagnostics();
    assert!(log.contains("database unavailable"), "the outage is logged");
    assert!(log.contains("database is back"), "the recovery is logged");
    let mut conn = connect(&db.url).await;
    let distinct: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT destination_url) FROM tq_egress_audit")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        distinct, next as i64,
        "every line once, across the rotations"
    );
}

/// Rotates the live log as Squid does: `.N-1` to `.N` down to `.0` to `.1`,
/// the live file to `.0`, and a new, empty live file.
fn rename_rotate(site: &Site, keep: usize) {
    let rotated = |n: usize| site.log.with_extension(format!("log.{n}"));
    for n in (0..keep - 1).rev() {
        if rotated(n).exists() {
            std::fs::rename(rotated(n), rotated(n + 1)).unwrap();
        }
    }
    std::fs::rename(&site.log, rotated(0)).unwrap();
    std::fs::File::create(&site.log).unwrap();
}

#[tokio::test]
async fn lines_that_fail_go_to_the_dead_letter_table_and_the_rest_is_stored() {
    let db = PgDatabase::create().await;
    let site = Site::new(&db.url, "");
    let mut lines = native_lines(0, 10);
    lines.insert(3, "this is not a squid line".to_string());
    let poisoned = native_line(10).replace("/item/10", "/item/nul\u{0}byte");
    lines.insert(7, poisoned.clone());
    site.append(&lines);

    let mut daemon = site.start(&[]);
    wait_for_rows(&site, 10, Duration::from_secs(30)).await;
    let mut conn = connect(&db.url).await;
    let started = Instant::now();
    let rejects = loop {
        let rows = sqlx::query(
            "SELECT stage, raw_line, reason, byte_offset, file FROM tq_egress_audit_rejects \
             ORDER BY byte_offset",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        if rows.len() >= 2 || started.elapsed() > Duration::from_secs(10) {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(stop(&mut daemon).success());

    assert_eq!(rejects.len(), 2, "{}", site.diagnostics());
    assert_eq!(rejects[0].get::<String, _>("stage"), "parse");
    assert_eq!(
        rejects[0].get::<Vec<u8>, _>("raw_line"),
        b"this is not a squid line"
    );
    let offset: usize = lines[..3].iter().map(|l| l.len() + 1).sum();
    assert_eq!(rejects[0].get::<i64, _>("byte_offset"), offset as i64);
    assert_eq!(rejects[1].get::<String, _>("stage"), "database");
    assert_eq!(
        rejects[1].get::<Vec<u8>, _>("raw_line"),
        poisoned.as_bytes()
    );
    assert!(rejects[1].get::<String, _>("reason").contains("0x00"));
    assert_eq!(count_rows(&db.url).await, 10);
}

#[tokio::test]
async fn replays_and_imports_of_loaded_files_add_no_rows() {
    let db = PgDatabase::create().await;
    let site = Site::new(&db.url, "");
    site.append(&native_lines(0, 400));
    let mut daemon = site.start(&[]);
    wait_for_rows(&site, 400, Duration::from_secs(30)).await;
    let rotated = site.log.with_extension("log.1");
    std::fs::rename(&site.log, &rotated).unwrap();
    site.append(&native_lines(400, 100));
    wait_for_rows(&site, 500, Duration::from_secs(30)).await;
    assert!(stop(&mut daemon).success());

    // The replay reads the live file (its 100 lines) again from byte 0:
    // wait until its commits have reported all of them already present.
    let mut replay = site.start(&["--from-start"]);
    site.wait_running(2);
    let started = Instant::now();
    while duplicates_logged(&site, 2) < 100 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the replay did not reach the end of the file\n{}",
            site.diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stop(&mut replay).success());
    assert_eq!(duplicates_logged(&site, 2), 100, "{}", site.diagnostics());
    site.wait_log("lines=100 rows=0 duplicates=100 ", 1);
    assert_eq!(count_rows(&db.url).await, 500);

    // The rotated file compressed, as logrotate leaves it, then imported
    // with everything else: nothing new.
    let gz = site.dir.path().join("access.log.2.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    std::io::copy(&mut std::fs::File::open(&rotated).unwrap(), &mut encoder).unwrap();
    encoder.finish().unwrap();
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("egress-audit"))
        .arg("--config")
        .arg(&site.config)
        .arg("import")
        .args([&site.log, &rotated, &gz])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{summary}");
    assert!(
        summary.contains("900 lines read, 0 rows written, 900 rows already present"),
        "{summary}"
    );
    assert_eq!(count_rows(&db.url).await, 500);
}

/// Rows that the batches committed since the daemon's `run`th start were
/// found to hold already, as its debug log reports them.
fn duplicates_logged(site: &Site, run: usize) -> u64 {
    let log = std::fs::read_to_string(site.dir.path().join("daemon.log")).unwrap_or_default();
    let since = log.split("running sources=").skip(run).collect::<Vec<_>>();
    since
        .iter()
        .flat_map(|part| part.lines())
        .filter(|line| line.contains("batch committed"))
        .filter_map(|line| {
            line.split(" duplicates=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// The offset the checkpoint file on disk holds for the site's live log.
fn checkpointed_offset(site: &Site) -> Option<u64> {
    let file = site.dir.path().join("state").join(CHECKPOINT_FILE);
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
    let files = value["files"].as_array()?;
    let entry = files
        .iter()
        .find(|entry| entry["path"].as_str() == site.log.to_str())?;
    entry["offset"].as_u64()
}

#[tokio::test]
async fn the_last_commits_are_checkpointed_while_the_daemon_sits_idle() {
    let db = PgDatabase::create().await;
    let site = Site::new(&db.url, "");
    site.append(&native_lines(0, 300));
    let mut daemon = site.start(&[]);
    wait_for_rows(&site, 300, Duration::from_secs(30)).await;
    // The first commit is saved at once. These lines are committed within
    // the next second, too soon for another save, and no batch follows them.
    site.append(&native_lines(300, 200));
    wait_for_rows(&site, 500, Duration::from_secs(30)).await;
    let end = std::fs::metadata(&site.log).unwrap().len();
    let committed = Instant::now();
    while checkpointed_offset(&site) != Some(end) && committed.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let offset = checkpointed_offset(&site);
    let is_running = daemon.try_wait().unwrap().is_none();
    assert!(stop(&mut daemon).success(), "{}", site.diagnostics());
    assert!(is_running, "the daemon was still running");
    assert_eq!(
        offset,
        Some(end),
        "the checkpoint on disk reached the end of the log within 3 s of the last commit"
    );
}

#[tokio::test]
async fn run_from_start_replaces_a_corrupt_checkpoint_file() {
    let db = PgDatabase::create().await;
    let site = Site::new(&db.url, "");
    site.append(&native_lines(0, 300));
    let state = site.dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let file = state.join(CHECKPOINT_FILE);
    std::fs::write(&file, b"{\"version\": 1, \"files\": [ garbage").unwrap();
    let named = file.display().to_string();

    // A plain run refuses the file, naming it.
    let mut plain = site.start(&[]);
    let status = wait_with_timeout(&mut plain, Duration::from_secs(20));
    let log = site.diagnostics();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains(&named) && log.contains("corrupt"), "{log}");
    assert_eq!(count_rows(&db.url).await, 0);

    // --from-start needs no checkpoint: it loads every line and replaces
    // the file with a valid one.
    let mut replay = site.start(&["--from-start"]);
    wait_for_rows(&site, 300, Duration::from_secs(30)).await;
    let status = stop(&mut replay);
    assert!(status.success(), "{status:?}\n{}", site.diagnostics());
    let log = site.diagnostics();
    assert!(
        log.contains("checkpoint file unusable") && log.contains(&named),
        "{log}"
    );
    let end = std::fs::metadata(&site.log).unwrap().len();
    let checkpoints = Checkpoints::load(&state).unwrap();
    assert_eq!(checkpoints.get(&site.log).map(|e| e.offset), Some(end));
}

#[tokio::test]
async fn dry_run_prints_records_and_writes_nothing() {
    let db = PgDatabase::create().await;
    let site = Site::new(&db.url, "");
    site.append(&native_lines(0, 5));
    let daemon = std::process::Command::new(assert_cmd::cargo::cargo_bin("egress-audit"))
        .arg("--config")
        .arg(&site.config)
        .args(["run", "--dry-run"])
        .env("DATABASE_URL", &db.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    common::daemon::signal(&daemon, "TERM");
    let out = daemon.wait_with_output().unwrap();
    assert!(out.status.success());
    let printed: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(printed.len(), 5);
    assert_eq!(printed[2]["status_code"], 404);
    assert_eq!(
        printed[2]["destination_url"],
        "http://host-2.example/item/2"
    );
    assert_eq!(count_rows(&db.url).await, 0, "the database was not written");
    assert!(
        !site
            .dir
            .path()
            .join("state")
            .join("checkpoints.json")
            .exists()
    );
}
