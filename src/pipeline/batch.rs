//! A batch: the records made from a run of chunks, the lines set aside, and
//! the positions to acknowledge once the batch is committed.
//!
//! The batch keeps the chunks it was made from until it is committed, so
//! that a row the database refuses can be set aside with its raw line
//! without copying every line up front; the chunk buffers then go back to
//! the tailer's pool.

use std::sync::atomic::Ordering;

use crate::id::{LineOrigin, reject_id};
use crate::parse::ParseError;
use crate::record::Record;
use crate::store::copy::EncodedRows;
use crate::store::{Reject, RejectStage};
use crate::tail::{Chunk, Position};

use super::Stats;
use super::source::SourceParser;
use crate::metrics::{Egress, Telemetry};

/// What the metrics need of a row, kept after the row itself is encoded.
#[derive(Debug, Clone, Copy)]
struct EgressRow {
    who: u32,
    status: Option<i32>,
    request_bytes: Option<i64>,
    response_bytes: Option<i64>,
    latency_ms: Option<i64>,
}

/// Where a record's line lies: which chunk, and the byte range in it.
#[derive(Debug, Clone, Copy)]
struct LineRef {
    chunk: u32,
    start: u32,
    end: u32,
}

/// A batch's rows: as records (SQLite, `--dry-run`), or encoded for
/// PostgreSQL's COPY as they are made, which keeps a batch in flight to a few
/// hundred contiguous bytes a row.
#[derive(Debug)]
pub enum Rows {
    /// Records as they are.
    Records(Vec<Record>),
    /// Records encoded for COPY.
    Encoded(EncodedRows),
}

impl Rows {
    /// How many rows.
    pub fn len(&self) -> usize {
        match self {
            Rows::Records(records) => records.len(),
            Rows::Encoded(encoded) => encoded.len(),
        }
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&mut self, record: Record) {
        match self {
            Rows::Records(records) => records.push(record),
            Rows::Encoded(encoded) => encoded.push(&record),
        }
    }
}

impl Default for Rows {
    fn default() -> Rows {
        Rows::Records(Vec::new())
    }
}

/// Records and rejects from consecutive chunks.
#[derive(Debug, Default)]
pub struct Batch {
    /// Position in the order batches were cut (for in-order acknowledgement).
    pub seq: u64,
    /// The rows to write.
    pub rows: Rows,
    /// Lines that did not parse.
    pub rejects: Vec<Reject>,
    /// Where each checkpointed file got to, oldest first.
    pub positions: Vec<Position>,
    /// The chunks the batch was made from.
    pub chunks: Vec<Chunk>,
    lines: Vec<LineRef>,
    /// Distinct (bot, group) pairs of the batch's rows.
    who: Vec<(String, Option<String>)>,
    egress: Vec<EgressRow>,
    /// Held from the moment the batch is cut until its rows are committed;
    /// see `pipeline::drive`.
    pub in_flight: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Batch {
    /// An empty batch whose rows are encoded for COPY when `encoded`.
    pub fn new(encoded: bool) -> Batch {
        let rows = if encoded {
            Rows::Encoded(EncodedRows::default())
        } else {
            Rows::Records(Vec::new())
        };
        Batch {
            rows,
            ..Batch::default()
        }
    }

    /// Gives back spare capacity before the batch waits in a queue.
    pub fn shrink_to_fit(&mut self) {
        if let Rows::Encoded(encoded) = &mut self.rows {
            encoded.shrink_to_fit();
        }
        self.lines.shrink_to_fit();
        self.egress.shrink_to_fit();
    }

    /// True when the batch holds nothing to write or acknowledge.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Parses every line of `chunk` into the batch.
    pub fn add(
        &mut self,
        chunk: Chunk,
        parsers: &[SourceParser],
        stats: &Stats,
        telemetry: &Telemetry,
    ) {
        let index = self.chunks.len() as u32;
        let parser = &parsers[chunk.source];
        let mut lines = 0;
        let mut failed = 0;
        for line in chunk.lines() {
            lines += 1;
            let offset_in_chunk = (line.start - chunk.start) as u32;
            let origin = LineOrigin {
                source: &parser.name,
                fingerprint: chunk.file.fingerprint,
                offset: line.start,
            };
            match parse_line(parser, line.text, origin) {
                Ok(record) => {
                    self.note_egress(&record);
                    self.rows.push(record);
                    self.lines.push(LineRef {
                        chunk: index,
                        start: offset_in_chunk,
                        end: offset_in_chunk + line.text.len() as u32,
                    });
                }
                Err((reason, raw)) => {
                    failed += 1;
                    stats.parse_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        path = %chunk.path.display(), offset = line.start, %reason,
                        "line set aside"
                    );
                    self.rejects
                        .push(reject(&chunk, origin, raw, reason, RejectStage::Parse));
                }
            }
        }
        stats.lines_read.fetch_add(lines, Ordering::Relaxed);
        stats
            .bytes_read
            .fetch_add(chunk.data.len() as u64, Ordering::Relaxed);
        telemetry.lines(&parser.name, lines, chunk.data.len() as u64, failed);
        self.note_position(&chunk);
        self.chunks.push(chunk);
    }

    fn note_egress(&mut self, record: &Record) {
        let who = match self
            .who
            .iter()
            .position(|(bot, group)| *bot == record.bot_name && *group == record.group_name)
        {
            Some(i) => i,
            None => {
                self.who
                    .push((record.bot_name.clone(), record.group_name.clone()));
                self.who.len() - 1
            }
        };
        self.egress.push(EgressRow {
            who: who as u32,
            status: record.status_code,
            request_bytes: record.request_size_bytes,
            response_bytes: record.response_size_bytes,
            latency_ms: record.latency_ms,
        });
    }

    /// Counts the batch's calls in the metrics, leaving out the rows at
    /// `skipped` (refused by the database).
    pub fn report_egress(&self, telemetry: &Telemetry, skipped: &[usize]) {
        for (index, row) in self.egress.iter().enumerate() {
            if skipped.contains(&index) {
                continue;
            }
            let (bot, group) = &self.who[row.who as usize];
            telemetry.egress(&Egress {
                bot,
                group: group.as_deref(),
                status: row.status,
                request_bytes: row.request_bytes,
                response_bytes: row.response_bytes,
                latency_ms: row.latency_ms,
            });
        }
    }

    fn note_position(&mut self, chunk: &Chunk) {
        let Some(position) = chunk.end_position() else {
            return;
        };
        match self.positions.last_mut() {
            Some(last) if last.path == position.path && last.file == position.file => {
                *last = position;
            }
            _ => self.positions.push(position),
        }
    }

    /// The dead letter for row `index`, which the database refused.
    pub fn refused(&self, index: usize, reason: String, parsers: &[SourceParser]) -> Reject {
        let line = self.lines[index];
        let chunk = &self.chunks[line.chunk as usize];
        let origin = LineOrigin {
            source: &parsers[chunk.source].name,
            fingerprint: chunk.file.fingerprint,
            offset: chunk.start + u64::from(line.start),
        };
        let raw = chunk.data[line.start as usize..line.end as usize].to_vec();
        reject(chunk, origin, raw, reason, RejectStage::Database)
    }
}

/// The record for one line, or why there is none and the bytes to keep.
fn parse_line(
    parser: &SourceParser,
    text: &[u8],
    origin: LineOrigin<'_>,
) -> Result<Record, (String, Vec<u8>)> {
    let fields = parser.format.parse(text).map_err(|e| match e {
        ParseError::TooLong { ref head, .. } => (e.to_string(), head.clone()),
        other => (other.to_string(), text.to_vec()),
    })?;
    parser
        .enricher
        .record(&fields, origin.fingerprint, origin.offset)
        .map_err(|e| (e.to_string(), text.to_vec()))
}

fn reject(
    chunk: &Chunk,
    origin: LineOrigin<'_>,
    raw_line: Vec<u8>,
    reason: String,
    stage: RejectStage,
) -> Reject {
    Reject {
        id: reject_id(origin),
        source: Some(origin.source.to_string()),
        file: Some(chunk.path.display().to_string()),
        fingerprint: Some(origin.fingerprint),
        offset: Some(origin.offset),
        raw_line,
        reason,
        stage,
        rejected_at: None,
    }
}
