//! `egress-audit rejects list|retry`: the dead letters, and replaying them
//! once the format or the data is fixed.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Context;

use super::EXIT_OK;
use crate::config::{Config, FormatSpec};
use crate::id::LineOrigin;
use crate::pipeline::source::SourceParser;
use crate::query::render::{self, OutputFormat, TimeZoneChoice};
use crate::query::{Column, Kind, Table, Value};
use crate::store::{Reject, RejectStage, Store};

/// The rejects subcommands.
#[derive(Debug, clap::Subcommand)]
#[command(
    after_help = "Examples:\n  egress-audit rejects list --stage parse\n  \
                        egress-audit rejects retry --format combined"
)]
pub enum RejectsCommand {
    /// Show dead letters, oldest first.
    #[command(after_help = "Examples:\n  egress-audit rejects list\n  \
                            egress-audit rejects list --stage parse --format json")]
    List {
        /// Most rows.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only lines that did not parse, or only rows the database refused.
        #[arg(long, value_enum)]
        stage: Option<StageArg>,
        /// Output format (default: table on a terminal, json when piped).
        #[arg(long, value_enum)]
        format: Option<OutputFormat>,
    },
    /// Parse and write dead letters again; those that now succeed are removed.
    #[command(after_help = "Examples:\n  egress-audit rejects retry\n  \
                            egress-audit rejects retry --format combined --limit 1000")]
    Retry {
        /// Most dead letters to retry.
        #[arg(long, default_value_t = 10_000)]
        limit: u32,
        /// Parse with this built-in format instead of the source's.
        #[arg(long, value_name = "NAME", group = "format_source")]
        format: Option<String>,
        /// Parse with this logformat specification instead of the source's.
        #[arg(long, value_name = "SPEC", group = "format_source")]
        logformat: Option<String>,
    },
}

/// `--stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StageArg {
    /// Lines that did not parse.
    Parse,
    /// Rows the database refused.
    Database,
}

pub(super) async fn run(config: &Config, command: RejectsCommand) -> anyhow::Result<u8> {
    let store = Store::open(&config.database).await?;
    match command {
        RejectsCommand::List {
            limit,
            stage,
            format,
        } => {
            let stage = stage.map(|s| match s {
                StageArg::Parse => RejectStage::Parse,
                StageArg::Database => RejectStage::Database,
            });
            let rejects = store.list_rejects(limit, stage).await?;
            show(&rejects, format)?;
        }
        RejectsCommand::Retry {
            limit,
            format,
            logformat,
        } => {
            let spec = format
                .map(FormatSpec::Builtin)
                .or(logformat.map(FormatSpec::Logformat));
            retry(config, &store, limit, spec).await?;
        }
    }
    store.close().await;
    Ok(EXIT_OK)
}

fn show(rejects: &[Reject], format: Option<OutputFormat>) -> anyhow::Result<()> {
    const COLUMNS: &[Column] = &[
        Column {
            name: "rejected_at",
            label: "time",
            kind: Kind::Time,
            in_table: true,
        },
        Column {
            name: "stage",
            label: "stage",
            kind: Kind::Text,
            in_table: true,
        },
        Column {
            name: "file",
            label: "file",
            kind: Kind::Text,
            in_table: false,
        },
        Column {
            name: "offset",
            label: "offset",
            kind: Kind::Int,
            in_table: true,
        },
        Column {
            name: "reason",
            label: "reason",
            kind: Kind::Text,
            in_table: true,
        },
        Column {
            name: "raw_line",
            label: "line",
            kind: Kind::Text,
            in_table: true,
        },
        Column {
            name: "source",
            label: "source",
            kind: Kind::Text,
            in_table: false,
        },
        Column {
            name: "id",
            label: "id",
            kind: Kind::Text,
            in_table: false,
        },
    ];
    let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::Text);
    let rows = rejects
        .iter()
        .map(|r| {
            vec![
                r.rejected_at.map_or(Value::Null, Value::Time),
                Value::Text(r.stage.as_str().into()),
                text(&r.file),
                r.offset.map_or(Value::Null, |o| Value::Int(o as i64)),
                Value::Text(r.reason.clone()),
                Value::Text(String::from_utf8_lossy(&r.raw_line).into_owned()),
                text(&r.source),
                Value::Text(r.id.to_string()),
            ]
        })
        .collect();
    let table = Table {
        columns: COLUMNS.to_vec(),
        rows,
        bars: false,
    };
    let stdout = std::io::stdout();
    let format = format.unwrap_or(if stdout.is_terminal() {
        OutputFormat::Table
    } else {
        OutputFormat::Json
    });
    let mut out = stdout.lock();
    render::write(&mut out, &table, format, TimeZoneChoice::Utc)?;
    out.flush()?;
    Ok(())
}

/// Re-parses each dead letter with its source's format (or the one given),
/// writes what now parses (a refused row is simply written again), and
/// removes the dead letters that made it into the table.
async fn retry(
    config: &Config,
    store: &Store,
    limit: u32,
    spec: Option<FormatSpec>,
) -> anyhow::Result<()> {
    let rejects = store.list_rejects(limit, None).await?;
    let (mut fixed, mut failing) = (Vec::new(), 0);
    let mut records = Vec::new();
    for reject in &rejects {
        let parser = parser_for(config, reject, spec.as_ref())?;
        let origin = LineOrigin {
            source: &parser.name,
            fingerprint: reject.fingerprint.unwrap_or(0),
            offset: reject.offset.unwrap_or(0),
        };
        let record = parser
            .format
            .parse(&reject.raw_line)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                parser
                    .enricher
                    .record(&f, origin.fingerprint, origin.offset)
                    .map_err(|e| e.to_string())
            });
        match record {
            Ok(record) => {
                records.push(record);
                fixed.push(reject.id);
            }
            Err(_) => failing += 1,
        }
    }
    let mut written = 0;
    let mut removable = Vec::new();
    for (record, id) in records.iter().zip(&fixed) {
        match store.merge(std::slice::from_ref(record)).await {
            Ok(outcome) => {
                written += outcome.written;
                removable.push(*id);
            }
            Err(e) if !e.is_row_level() => return Err(e).context("rejects retry"),
            Err(_) => failing += 1,
        }
    }
    store.delete_rejects(&removable).await?;
    eprintln!(
        "rejects retry: {} retried, {written} rows written, {} removed, {failing} still failing",
        rejects.len(),
        removable.len()
    );
    Ok(())
}

fn parser_for(
    config: &Config,
    reject: &Reject,
    spec: Option<&FormatSpec>,
) -> anyhow::Result<SourceParser> {
    let source = config
        .sources
        .iter()
        .find(|s| Some(s.source_name()) == reject.source);
    let spec = spec
        .cloned()
        .or_else(|| source.map(|s| s.format_spec()))
        .unwrap_or(FormatSpec::Builtin("squid".into()));
    let name = reject
        .source
        .clone()
        .unwrap_or_else(crate::config::local_host_name);
    let path = source.map_or("", |s| s.path.as_str());
    let group = source.and_then(|s| s.group.as_deref());
    Ok(SourceParser::new(
        config,
        &spec,
        Path::new(path),
        &name,
        group,
    )?)
}
