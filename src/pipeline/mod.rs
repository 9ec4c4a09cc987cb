//! The pipeline from log lines to stored rows, shared by `run` and `import`:
//!
//! ```text
//! chunks ──> batcher ──> writers (1 for SQLite, 2 for PostgreSQL) ──> acker ──> checkpoint
//! ```
//!
//! The batcher parses and enriches each chunk's lines and cuts a batch when
//! the tailer has caught up with its file, at `batch_rows`, or when
//! `flush_interval` has passed since the batch's first line, whichever comes
//! first. Writers commit batches (retrying outages, setting refused rows
//! aside); the acker releases committed batches in the order they were cut
//! and moves the checkpoint past them. Every queue between the stages is
//! bounded, so a slow or absent database stops the tailer from reading and
//! nothing piles up in memory: the log file on disk is the buffer.

pub mod acker;
pub mod batch;
pub mod import;
pub mod shutdown;
pub mod source;
pub mod writer;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backon::Retryable;
use tokio::sync::{Mutex, Semaphore, mpsc};
use tracing::{debug, error, warn};

use crate::checkpoint::Checkpoints;
use crate::metrics::Telemetry;
use crate::store::StoreError;
use crate::tail::{BufferPool, Chunk};
use acker::Acker;
use batch::Batch;
use source::SourceParser;
use writer::Writer;

/// Capacity of the channel to the writers. How many batches are cut and not
/// yet committed is bounded separately, by one permit per writer: the
/// batcher waits for a permit before it hands a batch on, so memory holds at
/// most one batch per writer plus the one being filled.
const BATCH_QUEUE: usize = 1;

/// How often at most the checkpoint file is rewritten; offsets recorded are
/// saved at most this long after the previous save, whether or not more
/// batches follow. Between saves a crash replays at most this much, which
/// adds no rows.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Why the pipeline could not start or go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// A source's format could not be built.
    #[error("format for {path}: {reason}")]
    Format {
        /// The source's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing failed in a way retries did not cure (only with bounded retries).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Counters of what the pipeline did, readable while it runs.
#[derive(Debug, Default)]
pub struct Stats {
    /// Lines read from files.
    pub lines_read: AtomicU64,
    /// Bytes read from files.
    pub bytes_read: AtomicU64,
    /// Lines set aside because they did not parse.
    pub parse_errors: AtomicU64,
    /// Rows stored.
    pub rows_written: AtomicU64,
    /// Rows already stored, skipped.
    pub duplicates: AtomicU64,
    /// Rows the database refused, set aside.
    pub refused: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Write attempts retried.
    pub retries: AtomicU64,
}

impl Stats {
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// How batches are cut and written.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Most rows in one batch (a chunk's worth more at most).
    pub batch_rows: usize,
    /// Longest a line waits before its batch is cut.
    pub flush_interval: Duration,
    /// Batches written at once.
    pub writers: usize,
    /// Encode rows for PostgreSQL's COPY as they are made (see [`batch::Rows`]).
    pub encode: bool,
}

/// What every stage of one pipeline shares.
#[derive(Debug)]
pub struct Shared {
    /// One parser per source (index = `Chunk::source`).
    pub parsers: Vec<SourceParser>,
    /// How batches are cut and written.
    pub options: Options,
    /// Counters for summaries and status lines.
    pub stats: Stats,
    /// Metrics and health.
    pub telemetry: Arc<Telemetry>,
}

/// Where batches go.
pub enum Sink {
    /// The store, through a writer that retries.
    Store(Arc<Writer>),
    /// Records printed as JSON lines, nothing written (`run --dry-run`).
    Print(Box<dyn Write + Send>),
}

impl Sink {
    /// True when rows are best encoded for COPY as they are made: writing to
    /// PostgreSQL.
    pub fn encodes_rows(&self) -> bool {
        let Sink::Store(writer) = self else {
            return false;
        };
        matches!(writer.store(), crate::store::Store::Postgres(_))
    }
}

/// Runs batcher, writers and acker until `chunks_rx` closes and everything
/// received is committed. Positions are recorded into `checkpoints` (saved
/// every [`CHECKPOINT_INTERVAL`] and at the end) when given.
pub async fn drive(
    chunks_rx: mpsc::Receiver<Chunk>,
    shared: Arc<Shared>,
    sink: Sink,
    checkpoints: Option<Checkpoints>,
    pool: BufferPool,
) -> Result<Option<Checkpoints>, PipelineError> {
    let (batches_tx, batches_rx) = mpsc::channel::<Batch>(BATCH_QUEUE);
    let writers_wanted = shared.options.writers.max(1);
    let in_flight = Arc::new(Semaphore::new(writers_wanted));
    let batcher = tokio::spawn(cut_batches(
        chunks_rx,
        batches_tx,
        in_flight,
        shared.clone(),
    ));

    let (done_tx, done_rx) = mpsc::channel::<Batch>(BATCH_QUEUE + writers_wanted);
    let mut writers = Vec::new();
    match sink {
        Sink::Store(writer) => {
            let shared_rx = Arc::new(Mutex::new(batches_rx));
            for _ in 0..writers_wanted {
                let task = write_batches(
                    shared_rx.clone(),
                    writer.clone(),
                    done_tx.clone(),
                    shared.clone(),
                );
                writers.push(tokio::spawn(task));
            }
        }
        Sink::Print(out) => {
            writers.push(tokio::spawn(print_batches(
                batches_rx,
                out,
                done_tx.clone(),
            )));
        }
    }
    drop(done_tx);
    let acker = tokio::spawn(acknowledge(
        done_rx,
        checkpoints,
        pool,
        shared.telemetry.clone(),
    ));

    let _ = batcher.await;
    let mut result = Ok(());
    for writer in writers {
        if let Ok(Err(e)) = writer.await {
            result = Err(e);
        }
    }
    let checkpoints = acker.await.unwrap_or(None);
    result.map(|()| checkpoints)
}

/// Parses chunks into batches and cuts them as the module docs say.
async fn cut_batches(
    mut chunks_rx: mpsc::Receiver<Chunk>,
    batches_tx: mpsc::Sender<Batch>,
    in_flight: Arc<Semaphore>,
    shared: Arc<Shared>,
) {
    let options = shared.options;
    let mut cutter = Cutter {
        seq: 0,
        batches_tx,
        in_flight,
        shared: shared.clone(),
    };
    let mut batch = Batch::new(options.encode);
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let chunk = match deadline {
            Some(at) => tokio::select! {
                chunk = chunks_rx.recv() => chunk,
                _ = tokio::time::sleep_until(at) => {
                    cutter.cut(&mut batch).await;
                    deadline = None;
                    continue;
                }
            },
            None => chunks_rx.recv().await,
        };
        let Some(chunk) = chunk else { break };
        let caught_up = chunk.caught_up;
        batch.add(chunk, &shared.parsers, &shared.stats, &shared.telemetry);
        if deadline.is_none() {
            deadline = Some(tokio::time::Instant::now() + options.flush_interval);
        }
        if caught_up || batch.rows.len() >= options.batch_rows {
            cutter.cut(&mut batch).await;
            deadline = None;
        }
    }
    cutter.cut(&mut batch).await;
}

/// Numbers batches and hands them to the writers.
struct Cutter {
    seq: u64,
    batches_tx: mpsc::Sender<Batch>,
    in_flight: Arc<Semaphore>,
    shared: Arc<Shared>,
}

impl Cutter {
    async fn cut(&mut self, batch: &mut Batch) {
        if batch.is_empty() {
            return;
        }
        let mut full = std::mem::replace(batch, Batch::new(self.shared.options.encode));
        full.seq = self.seq;
        full.shrink_to_fit();
        self.seq += 1;
        // Wait for a writer to be free (reading pauses meanwhile).
        full.in_flight = self.in_flight.clone().acquire_owned().await.ok();
        self.shared.telemetry.batch_cut();
        debug!(seq = full.seq, rows = full.rows.len(), "batch cut");
        let _ = self.batches_tx.send(full).await;
    }
}

/// Takes batches from the shared queue and commits them.
async fn write_batches(
    batches_rx: Arc<Mutex<mpsc::Receiver<Batch>>>,
    writer: Arc<Writer>,
    done_tx: mpsc::Sender<Batch>,
    shared: Arc<Shared>,
) -> Result<(), PipelineError> {
    loop {
        let next = batches_rx.lock().await.recv().await;
        let Some(mut batch) = next else { return Ok(()) };
        commit(&writer, &batch, &shared).await?;
        // The acker needs only positions and buffers: free the rows now, and
        // let the batcher hand on the next batch.
        batch.rows = batch::Rows::default();
        batch.in_flight = None;
        if done_tx.send(batch).await.is_err() {
            return Ok(());
        }
    }
}

/// Stores a batch's parse rejects, then its rows, then the rows refused.
async fn commit(writer: &Writer, batch: &Batch, shared: &Shared) -> Result<(), PipelineError> {
    let started = Instant::now();
    let telemetry = &shared.telemetry;
    if !batch.rejects.is_empty() {
        store_rejects(writer, &batch.rejects).await?;
        telemetry.dead_letters("parse", batch.rejects.len() as u64);
    }
    let report = match &batch.rows {
        batch::Rows::Records(records) => writer.write(records.as_slice()).await?,
        batch::Rows::Encoded(encoded) => writer.write(encoded).await?,
    };
    let refused_rows: Vec<usize> = report.refused.iter().map(|(i, _)| *i).collect();
    if !report.refused.is_empty() {
        let refused: Vec<_> = report
            .refused
            .iter()
            .map(|(i, reason)| batch.refused(*i, reason.clone(), &shared.parsers))
            .collect();
        store_rejects(writer, &refused).await?;
        telemetry.refused(refused.len() as u64);
        telemetry.dead_letters("database", refused.len() as u64);
    }

    let stats = &shared.stats;
    let outcome = report.outcome;
    stats
        .rows_written
        .fetch_add(outcome.written, Ordering::Relaxed);
    stats
        .duplicates
        .fetch_add(outcome.duplicates, Ordering::Relaxed);
    stats
        .refused
        .fetch_add(report.refused.len() as u64, Ordering::Relaxed);
    stats.retries.fetch_add(report.retries, Ordering::Relaxed);
    stats.batches.fetch_add(1, Ordering::Relaxed);
    // Calls are counted once: a batch that was wholly present (a replay)
    // adds nothing to the egress metrics.
    if outcome.written > 0 {
        batch.report_egress(telemetry, &refused_rows);
    }
    telemetry.batch_committed(outcome.written, outcome.duplicates, started.elapsed());
    debug!(
        seq = batch.seq, rows = outcome.written, duplicates = outcome.duplicates,
        took = ?started.elapsed(), "batch committed"
    );
    Ok(())
}

/// Dead letters are written with the same retries as rows: they must be
/// stored before the checkpoint moves past their lines.
async fn store_rejects(
    writer: &Writer,
    rejects: &[crate::store::Reject],
) -> Result<(), PipelineError> {
    let store = writer.store();
    let attempt = || store.write_rejects(rejects);
    let result = attempt
        .retry(writer.policy().backoff())
        .sleep(tokio::time::sleep)
        .when(|e: &StoreError| !e.is_row_level())
        .notify(|e, delay| {
            warn!(error = %e, retry_in = ?delay, "storing dead letters failed; retrying");
        })
        .await;
    if let Err(e) = result {
        error!(error = %e, rows = rejects.len(), "dead letters could not be stored");
        return Err(e.into());
    }
    Ok(())
}

/// `--dry-run`: prints each record as a JSON line instead of writing it.
async fn print_batches(
    mut batches_rx: mpsc::Receiver<Batch>,
    mut out: Box<dyn Write + Send>,
    done_tx: mpsc::Sender<Batch>,
) -> Result<(), PipelineError> {
    while let Some(batch) = batches_rx.recv().await {
        let records = match &batch.rows {
            batch::Rows::Records(records) => records.as_slice(),
            batch::Rows::Encoded(_) => &[],
        };
        for record in records {
            let line = serde_json::to_string(record).unwrap_or_default();
            if writeln!(out, "{line}").is_err() {
                return Ok(());
            }
        }
        for reject in &batch.rejects {
            let file = reject.file.as_deref().unwrap_or("");
            let offset = reject.offset.unwrap_or(0);
            eprintln!("{file}:{offset}: {}", reject.reason);
        }
        let _ = out.flush();
        if done_tx.send(batch).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Releases committed batches in order, moves the checkpoint past them and
/// returns their buffers to the tailer.
async fn acknowledge(
    mut done_rx: mpsc::Receiver<Batch>,
    mut checkpoints: Option<Checkpoints>,
    pool: BufferPool,
    telemetry: Arc<Telemetry>,
) -> Option<Checkpoints> {
    let mut acker = Acker::new();
    // The first commit is saved at once; later ones at most every interval.
    let mut last_save = Instant::now()
        .checked_sub(CHECKPOINT_INTERVAL)
        .unwrap_or_else(Instant::now);
    loop {
        // Offsets recorded but not saved are saved one interval after the
        // last save even when no further batch comes: a daemon that goes
        // idle still has its last commits in the file, not only at the stop.
        let is_pending = checkpoints.as_ref().is_some_and(Checkpoints::is_changed);
        let batch = match is_pending.then(|| last_save + CHECKPOINT_INTERVAL) {
            Some(due) => tokio::select! {
                batch = done_rx.recv() => batch,
                _ = tokio::time::sleep_until(due.into()) => {
                    save(checkpoints.as_mut(), &telemetry);
                    last_save = Instant::now();
                    continue;
                }
            },
            None => done_rx.recv().await,
        };
        let Some(batch) = batch else { break };
        for batch in acker.finish(batch.seq, batch) {
            if let Some(checkpoints) = checkpoints.as_mut() {
                for position in &batch.positions {
                    if let Err(e) = checkpoints.record(position) {
                        warn!(path = %position.path.display(), error = %e, "checkpoint not moved");
                    }
                }
            }
            for chunk in batch.chunks {
                pool.give_back(chunk.data);
            }
        }
        if last_save.elapsed() >= CHECKPOINT_INTERVAL {
            save(checkpoints.as_mut(), &telemetry);
            last_save = Instant::now();
        }
    }
    save(checkpoints.as_mut(), &telemetry);
    checkpoints
}

/// Saves the checkpoint if it moved, and reports how far each file lags.
fn save(checkpoints: Option<&mut Checkpoints>, telemetry: &Telemetry) {
    let Some(checkpoints) = checkpoints else {
        return;
    };
    if checkpoints.is_changed()
        && let Err(e) = checkpoints.save()
    {
        error!(error = %e, "checkpoint not saved; a restart will replay more (without duplicates)");
    }
    for (path, entry) in checkpoints.entries() {
        if let Ok(metadata) = std::fs::metadata(path)
            && std::os::unix::fs::MetadataExt::ino(&metadata) == entry.file.inode
        {
            telemetry.checkpoint_lag(path, metadata.len().saturating_sub(entry.offset));
        }
    }
}
