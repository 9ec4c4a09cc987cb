//! `egress-audit import FILE…`: loads historic logs (plain or gzip) through
//! the same parse and write path as the daemon, then exits. Importing a file
//! twice, or one the daemon already tailed, adds nothing the second time.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::mpsc;

use super::EXIT_OK;
use super::format_args::FormatArgs;
use crate::config::{Config, FormatSpec, SourceConfig};
use crate::metrics::Telemetry;
use crate::pipeline::import::{ImportFile, ReadSizes, read_files};
use crate::pipeline::source::SourceParser;
use crate::pipeline::writer::{RetryPolicy, Writer};
use crate::pipeline::{self, Options, Shared, Sink, Stats};
use crate::store::Store;
use crate::tail::BufferPool;

const EXAMPLES: &str = "Examples:
  egress-audit import /var/log/squid/access.log.1 /var/log/squid/access.log.*.gz
  egress-audit import --format combined old/combined-2026-02.log
  egress-audit import --logformat '%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru \"%{X-Bot-Name}>h\"' bots.log";

/// Arguments of `import`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct ImportArgs {
    /// The format to read with (else the matching source's, else `squid`).
    #[command(flatten)]
    pub formats: FormatArgs,
    /// Log files, plain or gzip.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

pub(super) async fn run(config: &Config, args: ImportArgs) -> anyhow::Result<u8> {
    let mut parsers = Vec::new();
    let mut files = Vec::new();
    let mut total_bytes = 0;
    for path in &args.files {
        let metadata =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if !metadata.is_file() {
            bail!("{} is not a file", path.display());
        }
        total_bytes += metadata.len();
        parsers.push(parser_for(config, &args, path)?);
        files.push(ImportFile {
            path: path.clone(),
            parser: parsers.len() - 1,
        });
    }

    let store = Store::open(&config.database).await?;
    let writers = if matches!(store, Store::Sqlite(_)) {
        1
    } else {
        config.run.writers
    };
    let policy = RetryPolicy::forever(config.database.retry_max_delay);
    let sink = Sink::Store(Arc::new(Writer::new(store, policy)));
    let options = Options {
        batch_rows: config.database.batch_rows,
        flush_interval: config.database.flush_interval,
        writers,
        encode: sink.encodes_rows(),
    };

    let telemetry = Arc::new(Telemetry::new(config.metrics.max_bots));
    let shared = Arc::new(Shared {
        parsers,
        options,
        stats: Stats::default(),
        telemetry,
    });
    let consumed = Arc::new(AtomicU64::new(0));
    let pool = BufferPool::default();
    let (chunks_tx, chunks_rx) = mpsc::channel(8);
    let sizes = ReadSizes {
        fingerprint_bytes: config.tail.fingerprint_bytes,
        read_buffer_bytes: config.tail.read_buffer_bytes,
    };
    let reader = {
        let (pool, consumed) = (pool.clone(), consumed.clone());
        tokio::task::spawn_blocking(move || read_files(&files, &chunks_tx, &pool, sizes, &consumed))
    };
    let started = Instant::now();
    let progress = Progress::start(total_bytes, shared.clone(), consumed);
    let driven = pipeline::drive(chunks_rx, shared.clone(), sink, None, pool);
    let result = driven.await;
    progress.finish();
    reader.await.context("file reader")??;
    result?;

    eprintln!("{}", summary(&shared.stats, started.elapsed()));
    Ok(EXIT_OK)
}

/// The parser for one file: the format flags, else the configured source
/// whose path matches the file, else `squid`. The source name (part of row
/// ids) and default group come from that source, so a file imported after
/// the daemon tailed it gets the same ids.
fn parser_for(config: &Config, args: &ImportArgs, path: &Path) -> anyhow::Result<SourceParser> {
    let source = matching_source(config, path);
    let spec = match args.formats.spec()? {
        Some(spec) => spec,
        None => source.map_or(
            FormatSpec::Builtin("squid".into()),
            SourceConfig::format_spec,
        ),
    };
    let name = source.map_or_else(crate::config::local_host_name, SourceConfig::source_name);
    let group = source.and_then(|s| s.group.as_deref());
    let log_path = source.map_or(path, |s| Path::new(&s.path));
    Ok(SourceParser::new(config, &spec, log_path, &name, group)?)
}

/// The configured source whose path (or glob) names `path` or a rotated copy
/// of it: `access.log.1`, `access.log.2.gz`, `access.log-20260226`.
pub fn matching_source<'c>(config: &'c Config, path: &Path) -> Option<&'c SourceConfig> {
    let path_text = path.to_string_lossy();
    let absolute = std::fs::canonicalize(path).ok();
    config.sources.iter().find(|source| {
        let pattern = glob::Pattern::new(&source.path).ok();
        let candidates = [
            Some(path_text.to_string()),
            absolute.as_ref().map(|p| p.to_string_lossy().to_string()),
        ];
        candidates.iter().flatten().any(|candidate| {
            let base = strip_rotation(candidate);
            pattern
                .as_ref()
                .is_some_and(|p| p.matches(candidate) || p.matches(base))
                || base == source.path
        })
    })
}

/// `access.log.2.gz` → `access.log`; `access.log-20260226` → `access.log`.
fn strip_rotation(path: &str) -> &str {
    let mut rest = path.strip_suffix(".gz").unwrap_or(path);
    for separator in ['.', '-'] {
        if let Some((head, tail)) = rest.rsplit_once(separator)
            && !tail.is_empty()
            && tail.bytes().all(|b| b.is_ascii_digit())
        {
            rest = head;
        }
    }
    rest
}

fn summary(stats: &Stats, took: Duration) -> String {
    let lines = Stats::get(&stats.lines_read);
    format!(
        "import: {lines} lines read, {} rows written, {} rows already present, {} lines set aside \
         ({:.1} s, {:.0} lines/s)",
        Stats::get(&stats.rows_written),
        Stats::get(&stats.duplicates),
        Stats::get(&stats.parse_errors) + Stats::get(&stats.refused),
        took.as_secs_f64(),
        lines as f64 / took.as_secs_f64().max(1e-9)
    )
}

/// A progress bar on a terminal (bytes, lines/s, ETA); nothing otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(total: u64, shared: Arc<Shared>, consumed: Arc<AtomicU64>) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress {
                bar: None,
                ticker: None,
            };
        }
        let bar = indicatif::ProgressBar::new(total);
        let style = indicatif::ProgressStyle::with_template(
            "{bar:30} {bytes}/{total_bytes} {msg} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        let ticking = bar.clone();
        let started = Instant::now();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let lines = Stats::get(&shared.stats.lines_read);
                let rate = lines as f64 / started.elapsed().as_secs_f64().max(1e-9);
                ticking.set_position(consumed.load(Ordering::Relaxed));
                ticking.set_message(format!("{lines} lines, {rate:.0} lines/s"));
            }
        });
        Progress {
            bar: Some(bar),
            ticker: Some(ticker),
        }
    }

    fn finish(self) {
        if let Some(ticker) = self.ticker {
            ticker.abort();
        }
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_names_lose_their_suffix() {
        assert_eq!(
            strip_rotation("/var/log/squid/access.log.2.gz"),
            "/var/log/squid/access.log"
        );
        assert_eq!(
            strip_rotation("/var/log/squid/access.log.1"),
            "/var/log/squid/access.log"
        );
        assert_eq!(
            strip_rotation("/var/log/squid/access.log-20260226"),
            "/var/log/squid/access.log"
        );
        assert_eq!(
            strip_rotation("/var/log/squid/access.log"),
            "/var/log/squid/access.log"
        );
    }
}
