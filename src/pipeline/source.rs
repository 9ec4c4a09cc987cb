//! Per-source parsing state: each configured source's compiled format and
//! enricher, built once and shared by the batcher.

use std::path::Path;

use crate::config::{Config, FormatSpec};
use crate::enrich::Enricher;
use crate::parse::{self, LineFormat};

use super::PipelineError;

/// What the pipeline needs to turn one source's lines into records.
#[derive(Debug)]
pub struct SourceParser {
    /// The name in the `source` column and in row ids.
    pub name: String,
    /// The compiled format.
    pub format: LineFormat,
    /// Bot identity, hosts, redaction and limits.
    pub enricher: Enricher,
}

impl SourceParser {
    /// Builds the parser for a format and a source name.
    pub fn new(
        config: &Config,
        spec: &FormatSpec,
        log_path: &Path,
        name: &str,
        default_group: Option<&str>,
    ) -> Result<SourceParser, PipelineError> {
        let format = parse::load(spec, log_path)
            .map_err(|e| PipelineError::Format {
                path: log_path.display().to_string(),
                reason: e.to_string(),
            })?
            .with_max_line_bytes(config.limits.max_line_bytes);
        for warning in format.warnings() {
            tracing::warn!(path = %log_path.display(), %warning, "format warning");
        }
        let enricher =
            Enricher::new(config, name, default_group).map_err(|e| PipelineError::Format {
                path: log_path.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(SourceParser {
            name: name.to_string(),
            format,
            enricher,
        })
    }

    /// Parsers for every `[[source]]`, in configuration order.
    pub fn for_sources(config: &Config) -> Result<Vec<SourceParser>, PipelineError> {
        config
            .sources
            .iter()
            .map(|source| {
                SourceParser::new(
                    config,
                    &source.format_spec(),
                    Path::new(&source.path),
                    &source.source_name(),
                    source.group.as_deref(),
                )
            })
            .collect()
    }
}
