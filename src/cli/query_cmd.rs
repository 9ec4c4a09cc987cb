//! `egress-audit query …`: the operators' questions, as subcommands.

use std::io::{IsTerminal, Write};

use anyhow::{Context, bail};
use chrono::Utc;

use super::{EXIT_OK, parse_time};
use crate::config::Config;
use crate::duration;
use crate::query::render::{self, OutputFormat, TimeZoneChoice};
use crate::query::{self, DestinationKey, Filters, Query};
use crate::store::{self, Store};

const COMMON_HELP: &str = "Every query takes --since/--until (RFC 3339, \"2026-02-26 10:00\" UTC, \
or a duration ago such as 6h), --group, --format table|json|csv (default: table on a terminal, \
JSON lines otherwise) and --local (times in the local zone instead of UTC). Windows and buckets \
accept \"6 hours\", \"15 minutes\", 6h, 15m or 1d.

Examples:
  egress-audit query stats --since 24h
  egress-audit query recent crawler 20 --format table
  egress-audit query audit --from 2026-02-26 --to 2026-02-27 --format csv > trail.csv";

/// Options every query takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Only calls at or after this time (or this long ago, e.g. 6h).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only calls before this time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only calls of this group.
    #[arg(long)]
    pub group: Option<String>,
    /// Output format (default: table on a terminal, json when piped).
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,
    /// Show times in the local zone instead of UTC.
    #[arg(long)]
    pub local: bool,
}

/// The queries.
#[derive(Debug, clap::Subcommand)]
#[command(after_help = COMMON_HELP)]
pub enum QueryCommand {
    /// The newest calls, of one bot or all: `recent [BOT] [LIMIT=50]`.
    #[command(after_help = "Examples:\n  egress-audit query recent\n  \
                            egress-audit query recent crawler 20\n  egress-audit query recent 10")]
    Recent {
        /// Bot name (a lone number is taken as LIMIT).
        bot: Option<String>,
        /// Most rows.
        limit: Option<u32>,
        #[command(flatten)]
        common: Common,
    },
    /// Per bot: calls, errors, error rate, latency avg/p50/p95/max, bytes, destinations.
    #[command(after_help = "Examples:\n  egress-audit query stats\n  \
                            egress-audit query stats crawler \"6 hours\"\n  \
                            egress-audit query stats 7d")]
    Stats {
        /// Bot name (a lone duration such as 6h is taken as WINDOW).
        bot: Option<String>,
        /// How far back from now [default: 24 hours].
        window: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Most called destinations by host (or whole URL) with calls, bytes and errors.
    #[command(after_help = "Examples:\n  egress-audit query top-destinations\n  \
                            egress-audit query top-destinations 5 --by url --since 1d")]
    TopDestinations {
        /// Most rows.
        #[arg(default_value_t = 20)]
        limit: u32,
        /// Group by host or by whole URL.
        #[arg(long, value_enum, default_value_t = By::Host)]
        by: By,
        #[command(flatten)]
        common: Common,
    },
    /// Failed calls (status >= 400), newest first.
    #[command(after_help = "Examples:\n  egress-audit query errors\n  \
                            egress-audit query errors crawler --server-only")]
    Errors {
        /// Bot name.
        bot: Option<String>,
        /// Only server errors (status >= 500).
        #[arg(long)]
        server_only: bool,
        /// Most rows.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        common: Common,
    },
    /// Calls per time bucket, with a bar per bucket.
    #[command(after_help = "Examples:\n  egress-audit query timeseries\n  \
                            egress-audit query timeseries crawler 15m 6h")]
    Timeseries {
        /// Bot name (a lone duration is taken as BUCKET).
        bot: Option<String>,
        /// Bucket width [default: 1 hour].
        bucket: Option<String>,
        /// How far back from now [default: 24 hours].
        window: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Calls slower than a threshold, newest first.
    #[command(after_help = "Example:\n  egress-audit query slow --min-ms 10000 --since 1d")]
    Slow {
        /// Threshold in milliseconds.
        #[arg(long, default_value_t = 5000)]
        min_ms: i64,
        /// Most rows.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        common: Common,
    },
    /// Error rate by destination host, worst first.
    #[command(after_help = "Example:\n  egress-audit query error-rate --min-calls 20 --since 24h")]
    ErrorRate {
        /// Leave out hosts with fewer calls.
        #[arg(long, default_value_t = 10)]
        min_calls: i64,
        #[command(flatten)]
        common: Common,
    },
    /// Bytes sent and received by bot, in bytes and MB.
    #[command(after_help = "Example:\n  egress-audit query bandwidth --since 24h")]
    Bandwidth {
        #[command(flatten)]
        common: Common,
    },
    /// The busiest bots.
    #[command(after_help = "Example:\n  egress-audit query top-bots 5 --since 1h")]
    TopBots {
        /// Most rows.
        #[arg(default_value_t = 10)]
        limit: u32,
        #[command(flatten)]
        common: Common,
    },
    /// The full trail between two times, oldest first, every column.
    #[command(
        after_help = "Example:\n  egress-audit query audit --from 2026-02-26 --to 2026-02-27 \
                            --format csv > trail.csv"
    )]
    Audit {
        /// Start (inclusive).
        #[arg(long, value_name = "TIME")]
        from: String,
        /// End (exclusive).
        #[arg(long, value_name = "TIME")]
        to: String,
        #[command(flatten)]
        common: Common,
    },
}

/// `--by` of `top-destinations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    /// Group by destination host.
    Host,
    /// Group by whole URL.
    Url,
}

pub(super) async fn run(config: &Config, command: QueryCommand) -> anyhow::Result<u8> {
    let (query, bot, common) = build(command)?;
    let filters = filters(&common, bot)?;
    let store = open_for_reading(config).await?;
    let table = query::run(&store, &query, &filters)
        .await
        .context("query")?;
    store.close().await;

    if no_calls(&table)
        && let Some(bot) = &filters.bot
    {
        eprintln!("note: no calls from bot {bot:?} match");
    }
    let stdout = std::io::stdout();
    let format = common.format.unwrap_or(if stdout.is_terminal() {
        OutputFormat::Table
    } else {
        OutputFormat::Json
    });
    let zone = if common.local {
        TimeZoneChoice::Local
    } else {
        TimeZoneChoice::Utc
    };
    let mut out = stdout.lock();
    render::write(&mut out, &table, format, zone)?;
    out.flush()?;
    Ok(EXIT_OK)
}

/// True when the answer holds no call: no rows, or only a time series'
/// empty buckets.
fn no_calls(table: &query::Table) -> bool {
    match table.columns.iter().position(|c| c.name == "calls") {
        Some(calls) => table.rows.iter().all(|row| row[calls].as_int() == 0),
        None => table.rows.is_empty(),
    }
}

/// Opens the store without creating anything: a query never makes an empty
/// SQLite file where the user expected their data.
pub(super) async fn open_for_reading(config: &Config) -> anyhow::Result<Store> {
    if let Some(path) = store::sqlite_path(&config.database.url)
        && !path.exists()
    {
        bail!(
            "SQLite file {} does not exist: import a log or log a call first, or point \
             --database-url / DATABASE_URL at your store",
            path.display()
        );
    }
    if store::sqlite_path(&config.database.url).is_some() {
        // The embedded store is the user's own: bring its schema up to date,
        // unless it is read-only, in which case read it as it is.
        match Store::open(&config.database).await {
            Err(store::StoreError::ReadOnly { .. }) => {}
            other => return Ok(other?),
        }
    }
    Ok(Store::connect_read_only(&config.database).await?)
}

fn build(command: QueryCommand) -> anyhow::Result<(Query, Option<String>, Common)> {
    Ok(match command {
        QueryCommand::Recent { bot, limit, common } => {
            let (bot, limit) = match (bot, limit) {
                (Some(b), None) if b.chars().all(|c| c.is_ascii_digit()) => {
                    (None, Some(b.parse()?))
                }
                other => other,
            };
            (
                Query::Recent {
                    limit: limit.unwrap_or(50),
                },
                bot,
                common,
            )
        }
        QueryCommand::Stats {
            bot,
            window,
            common,
        } => {
            let (bot, window) = bot_or_duration(bot, window);
            let window = duration_or(window.as_deref(), "24 hours")?;
            (Query::Stats { window }, bot, common)
        }
        QueryCommand::TopDestinations { limit, by, common } => {
            let by = match by {
                By::Host => DestinationKey::Host,
                By::Url => DestinationKey::Url,
            };
            (Query::TopDestinations { limit, by }, None, common)
        }
        QueryCommand::Errors {
            bot,
            server_only,
            limit,
            common,
        } => (Query::Errors { server_only, limit }, bot, common),
        QueryCommand::Timeseries {
            bot,
            bucket,
            window,
            common,
        } => {
            let (bot, bucket, window) = match (bot, bucket, window) {
                (Some(b), bucket, window) if looks_like_duration(&b) => {
                    (None, Some(b), bucket.or(window))
                }
                other => other,
            };
            let bucket = duration_or(bucket.as_deref(), "1 hour")?;
            let window = duration_or(window.as_deref(), "24 hours")?;
            (Query::Timeseries { bucket, window }, bot, common)
        }
        QueryCommand::Slow {
            min_ms,
            limit,
            common,
        } => (Query::Slow { min_ms, limit }, None, common),
        QueryCommand::ErrorRate { min_calls, common } => {
            (Query::ErrorRate { min_calls }, None, common)
        }
        QueryCommand::Bandwidth { common } => (Query::Bandwidth, None, common),
        QueryCommand::TopBots { limit, common } => (Query::TopBots { limit }, None, common),
        QueryCommand::Audit { from, to, common } => {
            let now = Utc::now();
            let from = parse_time(&from, now)
                .map_err(anyhow::Error::msg)
                .context("--from")?;
            let to = parse_time(&to, now)
                .map_err(anyhow::Error::msg)
                .context("--to")?;
            (Query::Audit { from, to }, None, common)
        }
    })
}

/// A lone positional that starts with a digit is the window, not a bot, so
/// that `stats 6h` works and `stats "6 hourz"` is reported as a bad window.
fn bot_or_duration(
    bot: Option<String>,
    window: Option<String>,
) -> (Option<String>, Option<String>) {
    match (bot, window) {
        (Some(b), None) if looks_like_duration(&b) => (None, Some(b)),
        other => other,
    }
}

fn looks_like_duration(text: &str) -> bool {
    text.trim_start().starts_with(|c: char| c.is_ascii_digit())
}

fn duration_or(text: Option<&str>, default: &str) -> anyhow::Result<std::time::Duration> {
    Ok(duration::parse_positive(text.unwrap_or(default))?)
}

fn filters(common: &Common, bot: Option<String>) -> anyhow::Result<Filters> {
    let now = Utc::now();
    let time = |text: &Option<String>, flag: &str| {
        text.as_deref()
            .map(|t| {
                parse_time(t, now)
                    .map_err(anyhow::Error::msg)
                    .context(flag.to_string())
            })
            .transpose()
    };
    Ok(Filters {
        since: time(&common.since, "--since")?,
        until: time(&common.until, "--until")?,
        group: common.group.clone(),
        bot,
    })
}
