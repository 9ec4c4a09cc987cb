//! Telemetry: Prometheus metrics at `metrics.listen` (`/metrics` in the text
//! format, `/healthz` for whether the pipeline is moving) and the health
//! state that systemd's watchdog and status lines read.
//!
//! Everything the pipeline reports goes through [`Telemetry`], one method per
//! event; the counters themselves are the `metrics` facade's, exported by
//! `metrics-exporter-prometheus`. Without `metrics.listen` no recorder is
//! installed and every report costs next to nothing. Bot and group labels are
//! bounded: the first `metrics.max_bots` distinct names get their own series,
//! later ones are counted as `other`.
//!
//! The exporter's own HTTP listener serves only `/metrics` (and would bring an
//! HTTP stack); `/healthz` needs this module's state, so the two fixed routes
//! are answered by the small server in [`serve`].

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::tail::{FileId, TailCounters, TailEvents};

/// Every metric the daemon exports (histograms add `_bucket`, `_sum` and
/// `_count`); the alert rules and the dashboard use only these.
pub const METRIC_NAMES: &[&str] = &[
    "egress_audit_lines_read_total",
    "egress_audit_bytes_read_total",
    "egress_audit_records_parsed_total",
    "egress_audit_parse_errors_total",
    "egress_audit_rows_written_total",
    "egress_audit_rows_duplicate_total",
    "egress_audit_batches_total",
    "egress_audit_batch_duration_seconds",
    "egress_audit_last_commit_timestamp_seconds",
    "egress_audit_dead_letters_total",
    "egress_audit_db_retries_total",
    "egress_audit_db_errors_total",
    "egress_audit_database_up",
    "egress_audit_checkpoint_lag_bytes",
    "egress_audit_rotations_total",
    "egress_audit_truncations_total",
    "egress_audit_rewritten_files_total",
    "egress_audit_checkpoints_lost_total",
    "egress_audit_read_errors_total",
    "egress_audit_requests_total",
    "egress_audit_request_bytes_total",
    "egress_audit_response_bytes_total",
    "egress_audit_latency_seconds",
];

/// Label for bots and groups beyond `metrics.max_bots`.
pub const OTHER: &str = "other";

/// How long committed work may be absent while batches are pending before
/// `/healthz` reports the pipeline as stuck.
pub const STALL_AFTER: Duration = Duration::from_secs(120);

/// Latency buckets in seconds: egress calls range from cache hits to
/// minutes-long tunnels.
const LATENCY_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// Batch write buckets in seconds.
const BATCH_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The address is taken or not allowed.
    #[error("metrics: cannot listen on {addr}: {source}")]
    Listen {
        /// `metrics.listen`.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The exporter could not be set up.
    #[error("metrics: {0}")]
    Exporter(String),
}

/// The pipeline's reports, counted.
#[derive(Debug)]
pub struct Telemetry {
    max_labels: usize,
    bots: Mutex<HashSet<String>>,
    groups: Mutex<HashSet<String>>,
    /// Unix seconds of the last commit (0: none yet).
    last_commit: AtomicU64,
    /// Batches cut and not yet committed.
    pending: AtomicU64,
    /// True while the database is away.
    outage: AtomicBool,
    /// Tail events, for tests and status lines.
    pub tail: TailCounters,
}

impl Telemetry {
    /// Telemetry that keeps at most `max_bots` bot (and group) labels.
    pub fn new(max_bots: usize) -> Telemetry {
        Telemetry {
            max_labels: max_bots,
            bots: Mutex::new(HashSet::new()),
            groups: Mutex::new(HashSet::new()),
            last_commit: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            outage: AtomicBool::new(false),
            tail: TailCounters::default(),
        }
    }

    /// Lines read from a source, and whether they parsed.
    pub fn lines(&self, source: &str, lines: u64, bytes: u64, parse_errors: u64) {
        let source = source.to_string();
        counter!("egress_audit_lines_read_total", "source" => source.clone()).increment(lines);
        counter!("egress_audit_bytes_read_total", "source" => source.clone()).increment(bytes);
        counter!("egress_audit_records_parsed_total", "source" => source.clone())
            .increment(lines - parse_errors);
        counter!("egress_audit_parse_errors_total", "source" => source).increment(parse_errors);
    }

    /// A batch was cut.
    pub fn batch_cut(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// A batch was committed.
    pub fn batch_committed(&self, written: u64, duplicates: u64, took: Duration) {
        self.pending.fetch_sub(1, Ordering::Relaxed);
        let now = unix_now();
        self.last_commit.store(now, Ordering::Relaxed);
        counter!("egress_audit_rows_written_total").increment(written);
        counter!("egress_audit_rows_duplicate_total").increment(duplicates);
        counter!("egress_audit_batches_total").increment(1);
        histogram!("egress_audit_batch_duration_seconds").record(took.as_secs_f64());
        gauge!("egress_audit_last_commit_timestamp_seconds").set(now as f64);
    }

    /// Lines set aside, by stage (`parse` or `database`).
    pub fn dead_letters(&self, stage: &'static str, count: u64) {
        counter!("egress_audit_dead_letters_total", "stage" => stage).increment(count);
    }

    /// A write failed with an error of `kind` and is retried.
    pub fn retried(&self, kind: &'static str) {
        counter!("egress_audit_db_retries_total", "kind" => kind).increment(1);
        counter!("egress_audit_db_errors_total", "kind" => kind).increment(1);
    }

    /// The database refused rows (an error that retrying will not cure).
    pub fn refused(&self, count: u64) {
        counter!("egress_audit_db_errors_total", "kind" => "refused").increment(count);
    }

    /// The database went away (true) or came back (false).
    pub fn outage(&self, away: bool) {
        self.outage.store(away, Ordering::Relaxed);
        gauge!("egress_audit_database_up").set(if away { 0.0 } else { 1.0 });
    }

    /// Bytes of a file not yet committed.
    pub fn checkpoint_lag(&self, path: &Path, bytes: u64) {
        let path = path.display().to_string();
        gauge!("egress_audit_checkpoint_lag_bytes", "path" => path).set(bytes as f64);
    }

    /// One committed egress call.
    pub fn egress(&self, call: &Egress<'_>) {
        let bot = bounded(&self.bots, call.bot, self.max_labels);
        let group = bounded(&self.groups, call.group.unwrap_or("none"), self.max_labels);
        let class = status_class(call.status);
        let labels = [("bot", bot.clone()), ("group", group.clone())];
        counter!(
            "egress_audit_requests_total",
            "bot" => bot.clone(), "group" => group.clone(), "status_class" => class
        )
        .increment(1);
        if let Some(bytes) = call.request_bytes {
            counter!("egress_audit_request_bytes_total", &labels).increment(bytes.max(0) as u64);
        }
        if let Some(bytes) = call.response_bytes {
            counter!("egress_audit_response_bytes_total", &labels).increment(bytes.max(0) as u64);
        }
        if let Some(ms) = call.latency_ms {
            histogram!("egress_audit_latency_seconds", &labels).record(ms.max(0) as f64 / 1000.0);
        }
    }

    /// Whether the pipeline is moving: the database is there, and work that
    /// was cut has been committed recently. `Err` says what is wrong.
    pub fn health(&self) -> Result<(), String> {
        if self.outage.load(Ordering::Relaxed) {
            return Err("database unavailable; reading paused".into());
        }
        let pending = self.pending.load(Ordering::Relaxed);
        let last = self.last_commit.load(Ordering::Relaxed);
        let idle = unix_now().saturating_sub(last);
        if pending > 0 && last > 0 && idle > STALL_AFTER.as_secs() {
            return Err(format!(
                "{pending} batches pending, last commit {idle} s ago"
            ));
        }
        Ok(())
    }

    /// Unix seconds of the last commit, 0 before the first.
    pub fn last_commit(&self) -> u64 {
        self.last_commit.load(Ordering::Relaxed)
    }
}

/// One call, as counted by [`Telemetry::egress`].
#[derive(Debug, Clone, Copy)]
pub struct Egress<'a> {
    /// Bot name.
    pub bot: &'a str,
    /// Group name.
    pub group: Option<&'a str>,
    /// HTTP status (none: no reply sent).
    pub status: Option<i32>,
    /// Bytes from the client.
    pub request_bytes: Option<i64>,
    /// Bytes to the client.
    pub response_bytes: Option<i64>,
    /// Squid's response time.
    pub latency_ms: Option<i64>,
}

/// `2xx`, `4xx`, … or `none` when no status was sent.
pub fn status_class(status: Option<i32>) -> &'static str {
    match status {
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) => "other",
        None => "none",
    }
}

/// `name` if it is one of the first `max` names seen, else [`OTHER`].
fn bounded(seen: &Mutex<HashSet<String>>, name: &str, max: usize) -> String {
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    if seen.contains(name) {
        return name.to_string();
    }
    if seen.len() < max {
        seen.insert(name.to_string());
        return name.to_string();
    }
    OTHER.to_string()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TailEvents for Telemetry {
    fn opened(&self, path: &Path, file: &FileId, offset: u64) {
        self.tail.opened(path, file, offset);
    }

    fn rotated(&self, path: &Path, file: &FileId) {
        self.tail.rotated(path, file);
        let path = path.display().to_string();
        counter!("egress_audit_rotations_total", "path" => path).increment(1);
    }

    fn finished(&self, path: &Path, file: &FileId, offset: u64) {
        self.tail.finished(path, file, offset);
    }

    fn truncated(&self, path: &Path, file: &FileId, offset: u64) {
        self.tail.truncated(path, file, offset);
        let path = path.display().to_string();
        counter!("egress_audit_truncations_total", "path" => path).increment(1);
    }

    fn rewritten(&self, path: &Path, file: &FileId, offset: u64) {
        self.tail.rewritten(path, file, offset);
        let path = path.display().to_string();
        counter!("egress_audit_rewritten_files_total", "path" => path).increment(1);
    }

    fn checkpoint_lost(&self, path: &Path, file: &FileId, offset: u64) {
        self.tail.checkpoint_lost(path, file, offset);
        let path = path.display().to_string();
        counter!("egress_audit_checkpoints_lost_total", "path" => path).increment(1);
    }

    fn unterminated(&self, path: &Path, file: &FileId, offset: u64) {
        self.tail.unterminated(path, file, offset);
    }

    fn read(&self, path: &Path, bytes: u64) {
        self.tail.read(path, bytes);
    }

    fn io_error(&self, path: &Path, error: &std::io::Error) {
        self.tail.io_error(path, error);
        let path = path.display().to_string();
        counter!("egress_audit_read_errors_total", "path" => path).increment(1);
    }
}

/// Installs the Prometheus recorder for this process and returns the handle
/// that renders `/metrics`. Call once.
pub fn install_recorder() -> Result<PrometheusHandle, MetricsError> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("egress_audit_latency_seconds".into()),
            LATENCY_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("egress_audit_batch_duration_seconds".into()),
                BATCH_BUCKETS,
            )
        })
        .map_err(|e| MetricsError::Exporter(e.to_string()))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| MetricsError::Exporter(e.to_string()))?;
    Ok(handle)
}

/// Binds `addr` and serves `/metrics` and `/healthz` until the task is dropped.
pub async fn serve(
    addr: SocketAddr,
    handle: PrometheusHandle,
    telemetry: std::sync::Arc<Telemetry>,
) -> Result<tokio::task::JoinHandle<()>, MetricsError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Listen { addr, source })?;
    tracing::info!(%addr, "metrics endpoint listening");
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (handle, telemetry) = (handle.clone(), telemetry.clone());
            tokio::spawn(async move {
                let answer = tokio::time::timeout(
                    Duration::from_secs(5),
                    answer(stream, &handle, &telemetry),
                );
                let _ = answer.await;
            });
        }
    }))
}

/// Reads one request head and answers it.
async fn answer(
    mut stream: TcpStream,
    handle: &PrometheusHandle,
    telemetry: &Telemetry,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let read = stream.read(&mut buf).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buf[..read]);
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|b| *b == b' ');
    let (method, path) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let (status, kind, body) = match (method, path) {
        (b"GET", b"/metrics") => ("200 OK", "text/plain; version=0.0.4", handle.render()),
        (b"GET", b"/healthz") => match telemetry.health() {
            Ok(()) => ("200 OK", "text/plain", "ok\n".to_string()),
            Err(why) => ("503 Service Unavailable", "text/plain", format!("{why}\n")),
        },
        (b"GET", _) => (
            "404 Not Found",
            "text/plain",
            "try /metrics or /healthz\n".into(),
        ),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bot_labels_are_bounded() {
        let seen = Mutex::new(HashSet::new());
        assert_eq!(bounded(&seen, "a", 2), "a");
        assert_eq!(bounded(&seen, "b", 2), "b");
        assert_eq!(bounded(&seen, "c", 2), OTHER);
        assert_eq!(bounded(&seen, "a", 2), "a");
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(Some(204)), "2xx");
        assert_eq!(status_class(Some(503)), "5xx");
        assert_eq!(status_class(None), "none");
    }

    #[test]
    fn health_turns_bad_during_an_outage() {
        let telemetry = Telemetry::new(10);
        assert!(telemetry.health().is_ok());
        telemetry.outage(true);
        assert!(telemetry.health().unwrap_err().contains("database"));
        telemetry.outage(false);
        assert!(telemetry.health().is_ok());
    }
}
