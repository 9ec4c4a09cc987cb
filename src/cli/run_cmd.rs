//! `egress-audit run`: the daemon. Follows every configured source and loads
//! its lines into the store until stopped.
//!
//! Shutdown, in phases: the first SIGTERM or SIGINT stops the tailer; the
//! batcher cuts what was read; the writers commit it; the acker moves and
//! saves the checkpoint; then the process exits 0, all within
//! `run.shutdown_timeout`. A second signal exits at once.
//!
//! Reload: SIGHUP reads the configuration again. A bad one is reported and
//! the running one kept. A good one replaces it by the same phases as a stop
//! (so nothing read is lost and the checkpoint is current), then the pipeline
//! starts again from the checkpoint with the new sources, formats, bot map
//! and redaction. The metrics endpoint keeps the address it started with.
//!
//! Under systemd (`Type=notify`) the daemon reports READY once its sources
//! are open and the database answers, a STATUS line every few seconds, and
//! watchdog pings while the pipeline is alive.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use backon::Retryable;
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use super::EXIT_OK;
use crate::checkpoint::{CheckpointError, Checkpoints};
use crate::config::{Config, ConfigError};
use crate::metrics::{self, Telemetry};
use crate::pipeline::shutdown::{self, EXIT_FORCED, Shutdown};
use crate::pipeline::source::SourceParser;
use crate::pipeline::writer::{RetryPolicy, Writer};
use crate::pipeline::{self, Options, Shared, Sink, Stats};
use crate::store::{Store, StoreError};
use crate::tail::{StartFrom, Tailer, TailerHandle};

const EXAMPLES: &str = "Examples:
  egress-audit --config /etc/egress-audit/config.toml run
  egress-audit run --from-start        # replay every source from byte 0 (adds no duplicates)
  egress-audit run --dry-run           # print records as JSON lines, write nothing";

/// Chunks between the tailer and the batcher: with 64 KiB chunks, half a
/// megabyte of read-ahead at most.
const CHUNK_QUEUE: usize = 8;

/// How often systemd gets a STATUS line (and, when asked for, a watchdog ping).
const STATUS_EVERY: Duration = Duration::from_secs(5);

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

/// Reads the configuration again for a reload.
pub type Reloader = dyn Fn() -> Result<Config, ConfigError> + Send + Sync;

/// How one run of the pipeline ended.
enum Ended {
    /// Stopped by a signal or because the tailer ended.
    Stopped,
    /// A new configuration was accepted: run again with it.
    Reload(Box<Config>),
}

pub(super) async fn run(config: &Config, args: RunArgs, reload: &Reloader) -> anyhow::Result<u8> {
    // Signals first, so that a stop during start-up is a clean stop too.
    let (trigger, stop) = shutdown::channel();
    shutdown::on_signals(trigger)?;
    let mut hangups = signal(SignalKind::hangup())?;

    let telemetry = Arc::new(Telemetry::new(config.metrics.max_bots));
    if let Some(addr) = config.metrics.listen {
        let handle = metrics::install_recorder()?;
        metrics::serve(addr, handle, telemetry.clone()).await?;
    }

    let mut config = config.clone();
    let mut from_start = args.from_start;
    let mut first = true;
    loop {
        let ended = run_once(
            &config,
            &args,
            from_start,
            first,
            &stop,
            &mut hangups,
            &telemetry,
            reload,
        )
        .await?;
        match ended {
            Ended::Stopped => break,
            Ended::Reload(new) => {
                config = *new;
                from_start = false;
                first = false;
                info!("configuration reloaded");
            }
        }
    }
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
    Ok(EXIT_OK)
}

#[allow(clippy::too_many_arguments)]
async fn run_once(
    config: &Config,
    args: &RunArgs,
    from_start: bool,
    first: bool,
    stop: &Shutdown,
    hangups: &mut tokio::signal::unix::Signal,
    telemetry: &Arc<Telemetry>,
    reload: &Reloader,
) -> anyhow::Result<Ended> {
    if config.sources.is_empty() {
        bail!("no [[source]] is configured: add one with `path = \"/var/log/squid/access.log\"`");
    }
    let parsers = SourceParser::for_sources(config)?;
    let mut checkpoints = load_checkpoints(config, from_start)?;
    let start = if from_start {
        StartFrom::Beginning
    } else {
        StartFrom::Checkpoints
    };
    let tailer = Tailer::new(config, &mut checkpoints, start, telemetry.clone())?;
    let pool = tailer.buffer_pool();

    let (sink, checkpoints, writers) = if args.dry_run {
        (Sink::Print(Box::new(std::io::stdout())), None, 1)
    } else {
        checkpoints.save().context("checkpoint")?;
        let mut stop = stop.clone();
        let store = tokio::select! {
            store = open_store(config) => store?,
            _ = stop.wait() => return Ok(Ended::Stopped),
        };
        telemetry.outage(false);
        let writers = if matches!(store, Store::Sqlite(_)) {
            1
        } else {
            config.run.writers
        };
        let policy = RetryPolicy::forever(config.database.retry_max_delay);
        let writer = Writer::new(store, policy).reporting_to(telemetry.clone());
        (Sink::Store(Arc::new(writer)), Some(checkpoints), writers)
    };

    let (tail_stop_tx, tail_stop_rx) = watch::channel(false);
    let (chunks_tx, chunks_rx) = mpsc::channel(CHUNK_QUEUE);
    let tail = tailer.spawn(chunks_tx, tail_stop_rx)?;
    info!(
        sources = config.sources.len(),
        dry_run = args.dry_run,
        "running"
    );
    if first {
        let _ = sd_notify::notify(&[NotifyState::Ready]);
    } else {
        let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status("reloaded")]);
    }

    let options = Options {
        batch_rows: config.database.batch_rows,
        flush_interval: config.database.flush_interval,
        writers,
        encode: sink.encodes_rows(),
    };
    let shared = Arc::new(Shared {
        parsers,
        options,
        stats: Stats::default(),
        telemetry: telemetry.clone(),
    });
    let drive = pipeline::drive(chunks_rx, shared.clone(), sink, checkpoints, pool);
    let ended = supervise(
        drive,
        tail,
        tail_stop_tx,
        stop,
        hangups,
        &shared,
        config,
        reload,
    )
    .await?;
    info!(
        lines = Stats::get(&shared.stats.lines_read),
        rows = Stats::get(&shared.stats.rows_written),
        duplicates = Stats::get(&shared.stats.duplicates),
        set_aside = Stats::get(&shared.stats.parse_errors) + Stats::get(&shared.stats.refused),
        "pipeline stopped"
    );
    Ok(ended)
}

/// Loads the checkpoints. With `--from-start` they are not needed (every
/// source is read from byte 0), so a corrupt or unreadable file is only
/// reported and replaced by the first save after a commit.
fn load_checkpoints(config: &Config, from_start: bool) -> Result<Checkpoints, CheckpointError> {
    match Checkpoints::load(&config.state_dir) {
        Err(error) if from_start => {
            let Some((path, reason)) = error.unusable() else {
                return Err(error);
            };
            warn!(
                path = %path.display(), %reason,
                "checkpoint file unusable; the first commit replaces it"
            );
            Ok(Checkpoints::replacing(&config.state_dir))
        }
        loaded => loaded,
    }
}

/// Runs the pipeline until it ends, a stop is asked for, or a good new
/// configuration arrives; meanwhile reports status to systemd.
#[allow(clippy::too_many_arguments)]
async fn supervise<F>(
    drive: F,
    tail: TailerHandle,
    tail_stop: watch::Sender<bool>,
    stop: &Shutdown,
    hangups: &mut tokio::signal::unix::Signal,
    shared: &Shared,
    config: &Config,
    reload: &Reloader,
) -> anyhow::Result<Ended>
where
    F: std::future::Future<Output = Result<Option<Checkpoints>, pipeline::PipelineError>>,
{
    tokio::pin!(drive);
    let mut stop = stop.clone();
    let watchdog = sd_notify::watchdog_enabled();
    let mut ticks =
        tokio::time::interval(watchdog.map_or(STATUS_EVERY, |d| (d / 2).min(STATUS_EVERY)));
    let ended = loop {
        tokio::select! {
            result = &mut drive => {
                result?;
                break Ended::Stopped;
            }
            _ = stop.wait() => {
                let _ = sd_notify::notify(&[NotifyState::Stopping]);
                let _ = tail_stop.send(true);
                finish_within(&mut drive, config.run.shutdown_timeout).await?;
                break Ended::Stopped;
            }
            _ = hangups.recv() => match reload() {
                Ok(new) => {
                    info!("reloading configuration");
                    let _ = sd_notify::notify(&[NotifyState::Reloading]);
                    let _ = tail_stop.send(true);
                    finish_within(&mut drive, config.run.shutdown_timeout).await?;
                    break Ended::Reload(Box::new(new));
                }
                Err(e) => error!(error = %e, "new configuration refused; keeping the running one"),
            },
            _ = ticks.tick() => report_status(shared, watchdog.is_some()),
        }
    };
    tail.wait().await?;
    Ok(ended)
}

/// Sends systemd a STATUS line, and a watchdog ping while the pipeline is
/// healthy (a stuck pipeline stops pinging and systemd restarts it).
fn report_status(shared: &Shared, watchdog: bool) {
    let stats = &shared.stats;
    let health = shared.telemetry.health();
    let status = format!(
        "{} lines read, {} rows written, {} set aside{}",
        Stats::get(&stats.lines_read),
        Stats::get(&stats.rows_written),
        Stats::get(&stats.parse_errors) + Stats::get(&stats.refused),
        health
            .as_ref()
            .err()
            .map(|why| format!("; {why}"))
            .unwrap_or_default()
    );
    let _ = sd_notify::notify(&[NotifyState::Status(&status)]);
    if watchdog && health.is_ok() {
        let _ = sd_notify::notify(&[NotifyState::Watchdog]);
    }
}

/// Opens the store, waiting for it when it is not reachable yet: a daemon
/// started with the machine may come up before the network or the database,
/// and Neon waking from scale-to-zero is just a slow connect. Errors that
/// will not heal (a bad URL, a wrong password) end the daemon at once.
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let policy = RetryPolicy::forever(config.database.retry_max_delay);
    let store = (|| Store::open(&config.database))
        .retry(policy.backoff())
        .sleep(tokio::time::sleep)
        .when(StoreError::is_retryable)
        .notify(|e, delay| warn!(error = %e, retry_in = ?delay, "database not reachable yet"))
        .await?;
    Ok(store)
}

/// Gives the pipeline `timeout` to commit what was read, then exits the
/// process (the checkpoint on disk is still correct: it never runs ahead of
/// committed rows).
async fn finish_within<F>(
    drive: &mut std::pin::Pin<&mut F>,
    timeout: Duration,
) -> anyhow::Result<()>
where
    F: std::future::Future<Output = Result<Option<Checkpoints>, pipeline::PipelineError>>,
{
    match tokio::time::timeout(timeout, drive.as_mut()).await {
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
