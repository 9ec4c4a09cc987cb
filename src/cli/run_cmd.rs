//! `egress-audit run`: the daemon. Follows every configured source and loads
//! its lines into the store until stopped.
//!
//! Shutdown, in phases: the first SIGTERM or SIGINT stops the tailer; the
//! batcher cuts what was read; the writers commit it; the acker moves and
//! saves the checkpoint; then the process exits 0, all within
//! `run.shutdown_timeout`. A second signal exits at once.

use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::sync::mpsc;
use tracing::{error, info};

use super::EXIT_OK;
use crate::checkpoint::Checkpoints;
use crate::config::Config;
use crate::pipeline::shutdown::{self, EXIT_FORCED};
use crate::pipeline::source::SourceParser;
use crate::pipeline::writer::{RetryPolicy, Writer};
use crate::pipeline::{self, Options, Sink, Stats};
use crate::store::Store;
use crate::tail::{StartFrom, TailCounters, Tailer};

const EXAMPLES: &str = "Examples:
  egress-audit --config /etc/egress-audit/config.toml run
  egress-audit run --from-start        # replay every source from byte 0 (adds no duplicates)
  egress-audit run --dry-run           # print records as JSON lines, write nothing";

/// Chunks between the tailer and the batcher: with 64 KiB chunks, half a
/// megabyte of read-ahead at most.
const CHUNK_QUEUE: usize = 8;

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct RunArgs {
    /// Read every source from byte 0, ignoring checkpoints; rows already
    /// stored are skipped.
    #[arg(long)]
    pub from_start: bool,
    /// Tail and parse as configured, print records as JSON lines, and write
    /// nothing to the database or the checkpoint.
    #[arg(long)]
    pub dry_run: bool,
}

pub(super) async fn run(config: &Config, args: RunArgs) -> anyhow::Result<u8> {
    if config.sources.is_empty() {
        bail!("no [[source]] is configured: add one with `path = \"/var/log/squid/access.log\"`");
    }
    // Signals first, so that a stop during start-up is a clean stop too.
    let (trigger, stop) = shutdown::channel();
    shutdown::on_signals(trigger)?;
    let parsers = Arc::new(SourceParser::for_sources(config)?);
    let mut checkpoints = Checkpoints::load(&config.state_dir)?;
    let start = if args.from_start {
        StartFrom::Beginning
    } else {
        StartFrom::Checkpoints
    };
    let tailer = Tailer::new(
        config,
        &mut checkpoints,
        start,
        Arc::new(TailCounters::default()),
    )?;
    let pool = tailer.buffer_pool();

    let (sink, checkpoints, writers) = if args.dry_run {
        (Sink::Print(Box::new(std::io::stdout())), None, 1)
    } else {
        checkpoints.save().context("checkpoint")?;
        let store = open_store(config).await?;
        let writers = if matches!(store, Store::Sqlite(_)) {
            1
        } else {
            config.run.writers
        };
        let policy = RetryPolicy::forever(config.database.retry_max_delay);
        (
            Sink::Store(Arc::new(Writer::new(store, policy))),
            Some(checkpoints),
            writers,
        )
    };

    let (chunks_tx, chunks_rx) = mpsc::channel(CHUNK_QUEUE);
    let tail = tailer.spawn(chunks_tx, stop.receiver())?;
    info!(
        sources = config.sources.len(),
        dry_run = args.dry_run,
        "running"
    );

    let options = Options {
        batch_rows: config.database.batch_rows,
        flush_interval: config.database.flush_interval,
        writers,
        encode: sink.encodes_rows(),
    };
    let stats = Arc::new(Stats::default());
    let drive = pipeline::drive(
        chunks_rx,
        parsers,
        sink,
        checkpoints,
        pool,
        options,
        stats.clone(),
    );
    let finished = finish_within(drive, stop, config.run.shutdown_timeout).await;
    tail.wait().await?;
    finished?;
    info!(
        lines = Stats::get(&stats.lines_read),
        rows = Stats::get(&stats.rows_written),
        duplicates = Stats::get(&stats.duplicates),
        set_aside = Stats::get(&stats.parse_errors) + Stats::get(&stats.refused),
        "stopped"
    );
    Ok(EXIT_OK)
}

/// Opens the store, waiting for it when it is not reachable yet: a daemon
/// started with the machine may come up before the network or the database,
/// and Neon waking from scale-to-zero is just a slow connect. Errors that
/// will not heal (a bad URL, a wrong password) end the daemon at once.
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let mut delay = std::time::Duration::from_millis(200);
    loop {
        match Store::open(&config.database).await {
            Ok(store) => return Ok(store),
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, retry_in = ?delay, "database not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(config.database.retry_max_delay);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits for the pipeline; once a stop is asked for, gives it `timeout` to
/// commit what was read, then exits the process (the checkpoint on disk is
/// still correct: it never runs ahead of committed rows).
async fn finish_within<F>(
    drive: F,
    mut stop: shutdown::Shutdown,
    timeout: std::time::Duration,
) -> anyhow::Result<()>
where
    F: std::future::Future<Output = Result<Option<Checkpoints>, pipeline::PipelineError>>,
{
    tokio::pin!(drive);
    tokio::select! {
        result = &mut drive => return result.map(|_| ()).map_err(Into::into),
        _ = stop.wait() => {}
    }
    match tokio::time::timeout(timeout, drive).await {
        Ok(result) => result.map(|_| ()).map_err(Into::into),
        Err(_) => {
            error!(
                ?timeout,
                "stop took too long; exiting with the checkpoint at the last commit"
            );
            std::process::exit(EXIT_FORCED);
        }
    }
}
