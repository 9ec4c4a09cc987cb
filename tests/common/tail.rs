//! Test harness for the tailer: a temporary log directory, a running tailer
//! and helpers that wait for lines with short explicit timeouts.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egress_audit::checkpoint::Checkpoints;
use egress_audit::config::{Config, SourceConfig, StartAt};
use egress_audit::tail::{Chunk, FileId, Position, StartFrom, TailCounters, Tailer, TailerHandle};
use tokio::sync::{mpsc, watch};

/// How long a test waits for lines it expects.
pub const WAIT: Duration = Duration::from_secs(15);

/// One line as the consumer saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub text: String,
    pub file: FileId,
    pub start: u64,
    pub end: u64,
    pub unterminated: bool,
    pub position: Position,
}

/// A temporary directory with a log and a state directory.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
    pub state: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        fs::create_dir(&logs).unwrap();
        let state = dir.path().join("state");
        Env {
            log: logs.join("access.log"),
            state,
            dir,
        }
    }

    pub fn logs(&self) -> &Path {
        self.log.parent().unwrap()
    }

    pub fn sibling(&self, suffix: &str) -> PathBuf {
        self.logs().join(format!("access.log{suffix}"))
    }

    pub fn config(&self, start_at: StartAt) -> Config {
        let mut config = Config {
            state_dir: self.state.clone(),
            sources: vec![source(&self.log, start_at)],
            ..Config::default()
        };
        config.tail.rotate_grace = Duration::from_millis(300);
        config.tail.poll_interval = Duration::from_millis(100);
        config
    }

    /// Starts a tailer over `config` with a channel of `capacity` chunks.
    pub fn start(&self, config: &Config, from: StartFrom, capacity: usize) -> Running {
        let mut checkpoints = Checkpoints::load(&config.state_dir).unwrap();
        let counters = Arc::new(TailCounters::default());
        let tailer = Tailer::new(config, &mut checkpoints, from, counters.clone()).unwrap();
        let (chunks_tx, chunks_rx) = mpsc::channel(capacity);
        let (stop_tx, stop_rx) = watch::channel(false);
        let handle = tailer.spawn(chunks_tx, stop_rx).unwrap();
        Running {
            chunks_rx,
            stop_tx,
            handle: Some(handle),
            counters,
            checkpoints,
            unacked: Vec::new(),
        }
    }
}

pub fn source(path: &Path, start_at: StartAt) -> SourceConfig {
    SourceConfig {
        path: path.to_string_lossy().into_owned(),
        name: Some("test".into()),
        format: None,
        logformat: None,
        squid_conf: None,
        group: None,
        start_at,
    }
}

/// Appends `text` to `path`, creating it if needed.
pub fn append(path: &Path, text: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// `count` numbered lines starting at `first`, each ending in `\n`.
pub fn numbered(prefix: &str, first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("{prefix}-{n:05}\n"))
        .collect()
}

/// The texts of `numbered(prefix, first, count)`.
pub fn numbered_texts(prefix: &str, first: usize, count: usize) -> Vec<String> {
    (first..first + count)
        .map(|n| format!("{prefix}-{n:05}"))
        .collect()
}

/// A running tailer and the consumer side of its channel.
pub struct Running {
    pub chunks_rx: mpsc::Receiver<Chunk>,
    pub stop_tx: watch::Sender<bool>,
    pub handle: Option<TailerHandle>,
    pub counters: Arc<TailCounters>,
    pub checkpoints: Checkpoints,
    /// Lines received but not acknowledged yet.
    pub unacked: Vec<Seen>,
}

impl Running {
    /// Waits until `count` lines have arrived, and returns them; fails with
    /// what did arrive when they do not within `WAIT`.
    pub async fn lines(&mut self, count: usize) -> Vec<Seen> {
        self.lines_within(count, WAIT).await
    }

    pub async fn lines_within(&mut self, count: usize, wait: Duration) -> Vec<Seen> {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        while seen.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.chunks_rx.recv()).await {
                Ok(Some(chunk)) => seen.extend(self.take_chunk(chunk)),
                Ok(None) => panic!("tailer ended; got {} of {count}: {seen:#?}", seen.len()),
                Err(_) => panic!(
                    "timed out after {wait:?}; got {} of {count} lines: {:#?}",
                    seen.len(),
                    seen.iter().map(|s| &s.text).collect::<Vec<_>>()
                ),
            }
        }
        seen
    }

    /// Asserts that no line arrives within `wait`.
    pub async fn expect_no_lines(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.chunks_rx.recv()).await {
                Ok(Some(chunk)) => {
                    let extra = self.take_chunk(chunk);
                    assert!(extra.is_empty(), "unexpected lines: {extra:#?}");
                }
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// Turns a chunk into lines and keeps them as received, not acknowledged.
    pub fn take_chunk(&mut self, chunk: Chunk) -> Vec<Seen> {
        let seen: Vec<Seen> = chunk
            .lines()
            .map(|line| Seen {
                text: String::from_utf8_lossy(line.text).into_owned(),
                file: chunk.file,
                start: line.start,
                end: line.end,
                unterminated: chunk.unterminated && line.end == chunk.end(),
                position: chunk.position_after(&line),
            })
            .collect();
        self.unacked.extend(seen.iter().cloned());
        seen
    }

    /// Records every line received so far as committed, and saves.
    pub fn ack_all(&mut self) {
        for line in self.unacked.drain(..) {
            self.checkpoints.record(&line.position).unwrap();
        }
        self.checkpoints.save().unwrap();
    }

    /// Stops the tailer and waits for it.
    pub async fn stop(mut self) -> Checkpoints {
        self.stop_tx.send(true).unwrap();
        let handle = self.handle.take().unwrap();
        tokio::time::timeout(WAIT, handle.wait())
            .await
            .expect("tailer stops promptly")
            .unwrap();
        self.checkpoints
    }
}

/// The texts of `lines`.
pub fn texts(lines: &[Seen]) -> Vec<String> {
    lines.iter().map(|l| l.text.clone()).collect()
}

/// Waits until `condition` holds, checking every few milliseconds; fails
/// after `WAIT` naming `what`.
pub async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
