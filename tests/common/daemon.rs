//! Running the real binary as a daemon against real files and a real
//! database: configuration, log lines with known values, and waiting for rows.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

/// A temporary directory with a log file, a state directory and a config.
pub struct Site {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The live log.
    pub log: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// The database URL.
    pub url: String,
}

impl Site {
    /// A site whose source starts at the beginning of the log, with `extra`
    /// appended to the config (more sections, e.g. `[database]` keys).
    pub fn new(url: &str, extra: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let config = dir.path().join("config.toml");
        let text = format!(
            "state_dir = \"{state}\"\n{extra}\n[[source]]\npath = \"{log}\"\nname = \"gw-test\"\n\
             format = \"squid\"\ngroup = \"testing\"\nstart_at = \"beginning\"\n\
             [tail]\npoll_interval = \"100ms\"\nrotate_grace = \"300ms\"\n",
            state = dir.path().join("state").display(),
            log = log.display(),
        );
        std::fs::write(&config, text).unwrap();
        Site {
            dir,
            log,
            config,
            url: url.to_string(),
        }
    }

    /// Starts `egress-audit run` with `args`; its diagnostics go to `daemon.log`.
    pub fn start(&self, args: &[&str]) -> Child {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .unwrap();
        Command::new(assert_cmd::cargo::cargo_bin("egress-audit"))
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .args(args)
            .env("DATABASE_URL", &self.url)
            .env("RUST_LOG", "egress_audit=debug")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the daemon")
    }

    /// What the daemon logged so far at info level and above (for failure
    /// messages), the last 40 lines.
    pub fn diagnostics(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.contains("DEBUG")).collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Appends lines to the live log.
    pub fn append(&self, lines: &[String]) {
        append_to(&self.log, lines);
    }
}

/// Appends lines to a file, creating it.
pub fn append_to(path: &Path, lines: &[String]) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    file.write_all(text.as_bytes()).unwrap();
}

/// The first second of the generated lines' times.
pub const EPOCH: i64 = 1_772_100_000;

/// A native-format line whose values all derive from `n`: time
/// `EPOCH + n` seconds and `n % 1000` ms, latency `n % 5000`, status from a
/// small cycle, `n * 10` bytes, URL `http://host-{n % 7}.example/item/{n}`.
pub fn native_line(n: u64) -> String {
    let status = [200, 200, 404, 200, 503][(n % 5) as usize];
    format!(
        "{}.{:03} {:>6} 10.0.0.{} TCP_MISS/{status} {} GET http://host-{}.example/item/{n} - \
         HIER_DIRECT/203.0.113.5 text/html",
        EPOCH + n as i64,
        n % 1000,
        n % 5000,
        n % 200,
        n * 10,
        n % 7
    )
}

/// Lines `first..first + count`.
pub fn native_lines(first: u64, count: u64) -> Vec<String> {
    (first..first + count).map(native_line).collect()
}

/// Rows in the audit table (0 before the schema exists).
pub async fn count_rows(url: &str) -> i64 {
    let Ok(mut conn) = PgConnection::connect(url).await else {
        return -1;
    };
    sqlx::query_scalar("SELECT count(*) FROM tq_egress_audit")
        .fetch_one(&mut conn)
        .await
        .unwrap_or(0)
}

/// Waits until the table holds `rows` rows; panics with the daemon's
/// diagnostics after `timeout`.
pub async fn wait_for_rows(site: &Site, rows: i64, timeout: Duration) {
    let started = Instant::now();
    loop {
        let now = count_rows(&site.url).await;
        if now == rows {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "waited {timeout:?} for {rows} rows, have {now}\n{}",
            site.diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends SIGTERM and waits for the exit status.
pub fn stop(child: &mut Child) -> std::process::ExitStatus {
    signal(child, "TERM");
    wait_with_timeout(child, Duration::from_secs(20))
}

impl Site {
    /// Waits until the daemon has logged that it runs `times` times in all
    /// (its signal handlers are in place by then), at most 20 s.
    pub fn wait_running(&self, times: usize) {
        self.wait_log("running sources=", times);
    }

    /// Waits until the daemon's log holds `text` `times` times, at most 20 s.
    pub fn wait_log(&self, text: &str, times: usize) {
        let started = Instant::now();
        let log = self.dir.path().join("daemon.log");
        while started.elapsed() < Duration::from_secs(20) {
            let logged = std::fs::read_to_string(&log).unwrap_or_default();
            if logged.matches(text).count() >= times {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "the daemon did not log {text:?} {times} times\n{}",
            self.diagnostics()
        );
    }
}

/// Sends a signal by name with `kill`.
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} failed");
}

/// Waits for the process to exit, killing it after `timeout`.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            panic!("the daemon did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
