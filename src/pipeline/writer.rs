//! Writing batches with retries and poison splitting.
//!
//! Errors that heal by themselves (the connection broke, the server is
//! restarting or overloaded, a deadlock, a timeout) are retried with
//! exponential backoff and jitter, by default without end: meanwhile nothing
//! is acknowledged, so the tailer stops reading and the log file on disk is
//! the buffer. Errors that will not heal (a value the database rejects) never
//! block the stream: the batch is split in halves until the offending rows
//! are alone, those are reported as refused with the database's message, and
//! the rest is committed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use tracing::{error, info, warn};

use std::future::Future;
use std::ops::Range;

use crate::metrics::Telemetry;
use crate::record::Record;
use crate::store::copy::EncodedRows;
use crate::store::{Store, StoreError, WriteOutcome};

/// Rows a [`Writer`] can write in parts: records, or records encoded for
/// PostgreSQL's COPY as they were made.
pub trait RowSet: Sync {
    /// How many rows.
    fn count(&self) -> usize;

    /// Writes rows `range`; `merge` skips the fast path (see [`Store::merge`]).
    fn write_range(
        &self,
        store: &Store,
        range: Range<usize>,
        merge: bool,
    ) -> impl Future<Output = Result<WriteOutcome, StoreError>> + Send;
}

impl RowSet for [Record] {
    fn count(&self) -> usize {
        self.len()
    }

    async fn write_range(
        &self,
        store: &Store,
        range: Range<usize>,
        merge: bool,
    ) -> Result<WriteOutcome, StoreError> {
        let rows = &self[range];
        if merge {
            store.merge(rows).await
        } else {
            store.write(rows).await
        }
    }
}

impl RowSet for Vec<Record> {
    fn count(&self) -> usize {
        self.len()
    }

    fn write_range(
        &self,
        store: &Store,
        range: Range<usize>,
        merge: bool,
    ) -> impl Future<Output = Result<WriteOutcome, StoreError>> + Send {
        self.as_slice().write_range(store, range, merge)
    }
}

impl RowSet for EncodedRows {
    fn count(&self) -> usize {
        self.len()
    }

    async fn write_range(
        &self,
        store: &Store,
        range: Range<usize>,
        merge: bool,
    ) -> Result<WriteOutcome, StoreError> {
        let count = range.len();
        store.write_encoded(self.bytes(range), count, merge).await
    }
}

/// How failed writes are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// First delay.
    pub min_delay: Duration,
    /// Cap on the delay between attempts.
    pub max_delay: Duration,
    /// Give up after this many retries; `None` retries without end.
    pub max_retries: Option<usize>,
}

impl RetryPolicy {
    /// Without end, from 100 ms up to `max_delay`.
    pub fn forever(max_delay: Duration) -> RetryPolicy {
        RetryPolicy {
            min_delay: Duration::from_millis(100),
            max_delay,
            max_retries: None,
        }
    }

    /// Exponential backoff with jitter, as this policy says.
    pub(crate) fn backoff(&self) -> ExponentialBuilder {
        let builder = ExponentialBuilder::new()
            .with_jitter()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay);
        match self.max_retries {
            Some(n) => builder.with_max_times(n),
            None => builder.without_max_times(),
        }
    }
}

/// What writing one batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteReport {
    /// Rows stored and rows already present.
    pub outcome: WriteOutcome,
    /// Rows the database refused: their index in the batch and its message.
    pub refused: Vec<(usize, String)>,
    /// Attempts that failed and were retried.
    pub retries: u64,
}

/// Writes batches to a store, retrying and splitting as the module says.
#[derive(Debug)]
pub struct Writer {
    store: Store,
    policy: RetryPolicy,
    outage: Mutex<Option<Instant>>,
    /// Set while batches keep meeting rows already stored (a replay): they
    /// then go straight to the merging write instead of failing a plain
    /// COPY first. Cleared by the first batch that is all new.
    replaying: AtomicBool,
    telemetry: Option<Arc<Telemetry>>,
}

impl Writer {
    /// A writer for `store`.
    pub fn new(store: Store, policy: RetryPolicy) -> Writer {
        Writer {
            store,
            policy,
            outage: Mutex::new(None),
            replaying: AtomicBool::new(false),
            telemetry: None,
        }
    }

    /// Reports retries and outages to `telemetry`.
    pub fn reporting_to(mut self, telemetry: Arc<Telemetry>) -> Writer {
        self.telemetry = Some(telemetry);
        self
    }

    /// How failed writes are retried.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// The store written to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Writes `rows`. Returns an error only when retries are bounded and ran
    /// out; refused rows are in the report, not an error.
    pub async fn write<R: RowSet + ?Sized>(&self, rows: &R) -> Result<WriteReport, StoreError> {
        let mut report = WriteReport::default();
        if rows.count() > 0 {
            self.write_splitting(rows, 0..rows.count(), &mut report)
                .await?;
        }
        Ok(report)
    }

    async fn write_splitting<R: RowSet + ?Sized>(
        &self,
        rows: &R,
        range: Range<usize>,
        report: &mut WriteReport,
    ) -> Result<(), StoreError> {
        match self.write_retrying(rows, range.clone(), report).await {
            Ok(outcome) => {
                report.outcome.add(outcome);
                Ok(())
            }
            Err(e) if !e.is_row_level() => Err(e),
            Err(e) if range.len() == 1 => {
                error!(index = range.start, error = %e, "database refused a row; setting it aside");
                report.refused.push((range.start, e.to_string()));
                Ok(())
            }
            Err(e) => {
                warn!(rows = range.len(), error = %e, "database refused a batch; splitting it");
                let middle = range.start + range.len() / 2;
                Box::pin(self.write_splitting(rows, range.start..middle, report)).await?;
                Box::pin(self.write_splitting(rows, middle..range.end, report)).await
            }
        }
    }

    async fn write_retrying<R: RowSet + ?Sized>(
        &self,
        rows: &R,
        range: Range<usize>,
        report: &mut WriteReport,
    ) -> Result<WriteOutcome, StoreError> {
        let mut retries = 0;
        let merge = self.replaying.load(Ordering::Relaxed);
        let attempt = || rows.write_range(&self.store, range.clone(), merge);
        let result = attempt
            .retry(self.policy.backoff())
            .sleep(tokio::time::sleep)
            .when(|e: &StoreError| !e.is_row_level())
            .notify(|e, delay| {
                retries += 1;
                self.went_away(e, delay);
            })
            .await;
        report.retries += retries;
        if let Ok(outcome) = &result {
            self.came_back();
            self.replaying
                .store(outcome.duplicates > 0, Ordering::Relaxed);
        }
        result
    }

    fn went_away(&self, error: &StoreError, delay: Duration) {
        if let Some(telemetry) = &self.telemetry {
            telemetry.retried(error.kind());
            telemetry.outage(true);
        }
        let mut outage = self.outage.lock().unwrap_or_else(|p| p.into_inner());
        if outage.is_none() {
            *outage = Some(Instant::now());
            if error.needs_operator() {
                error!(
                    error = %error,
                    "database refuses every write; reading paused until it is fixed, retrying"
                );
            } else {
                error!(error = %error, "database unavailable; reading paused, retrying");
            }
        } else {
            warn!(error = %error, retry_in = ?delay, "database still unavailable");
        }
    }

    fn came_back(&self) {
        if let Some(telemetry) = &self.telemetry {
            telemetry.outage(false);
        }
        let mut outage = self.outage.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(since) = outage.take() {
            info!(down_for = ?since.elapsed(), "database is back; writing resumed");
        }
    }
}
