//! What the tailer reports while it follows files.
//!
//! The tailer calls one [`TailEvents`] method per event and decides nothing
//! about logging or metrics itself. [`TailCounters`] is the implementation
//! used by default: it writes the tracing lines and keeps atomic counters
//! that tests and the metrics module can read.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::FileId;

/// Receives the tailer's events. Every method is called from the tailer's
/// thread and must return quickly.
pub trait TailEvents: Send + Sync + 'static {
    /// A file started being read at `offset`.
    fn opened(&self, path: &Path, file: &FileId, offset: u64);
    /// The file behind `path` was replaced (renamed away or deleted).
    fn rotated(&self, path: &Path, file: &FileId);
    /// A file was read to its end and closed for good.
    fn finished(&self, path: &Path, file: &FileId, offset: u64);
    /// The file shrank below the offset already read (copytruncate);
    /// reading restarts at 0.
    fn truncated(&self, path: &Path, file: &FileId, offset: u64);
    /// The bytes already read no longer match the file; it is read again
    /// from 0.
    fn rewritten(&self, path: &Path, file: &FileId, offset: u64);
    /// The checkpointed file of `path` could not be found; lines written to it
    /// after `offset` and before it disappeared are not read.
    fn checkpoint_lost(&self, path: &Path, file: &FileId, offset: u64);
    /// A rotated file ended in a line without `\n`, handed on as it stands.
    fn unterminated(&self, path: &Path, file: &FileId, offset: u64);
    /// A chunk of `bytes` bytes was handed on. Lines are not counted here:
    /// that would be a second pass over every byte, and the consumer walks
    /// the lines anyway.
    fn read(&self, path: &Path, bytes: u64);
    /// An error reading `path`; the tailer tries again at the next poll.
    fn io_error(&self, path: &Path, error: &std::io::Error);
}

/// Counters for every event, plus tracing output.
#[derive(Debug, Default)]
pub struct TailCounters {
    /// Files opened.
    pub opened: AtomicU64,
    /// Rotations noticed.
    pub rotated: AtomicU64,
    /// Files read to their end and closed.
    pub finished: AtomicU64,
    /// Shrinks noticed (copytruncate).
    pub truncated: AtomicU64,
    /// Files found rewritten and read again from 0.
    pub rewritten: AtomicU64,
    /// Checkpointed files that could not be found.
    pub checkpoint_lost: AtomicU64,
    /// Final lines handed on without `\n`.
    pub unterminated: AtomicU64,
    /// Chunks handed on.
    pub chunks: AtomicU64,
    /// Bytes handed on.
    pub bytes: AtomicU64,
    /// Read errors.
    pub io_errors: AtomicU64,
}

impl TailCounters {
    /// The current value of one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl TailEvents for TailCounters {
    fn opened(&self, path: &Path, file: &FileId, offset: u64) {
        bump(&self.opened, 1);
        tracing::info!(path = %path.display(), inode = file.inode, offset, "file opened");
    }

    fn rotated(&self, path: &Path, file: &FileId) {
        bump(&self.rotated, 1);
        tracing::info!(path = %path.display(), inode = file.inode, "file rotated");
    }

    fn finished(&self, path: &Path, file: &FileId, offset: u64) {
        bump(&self.finished, 1);
        tracing::info!(path = %path.display(), inode = file.inode, offset, "file finished");
    }

    fn truncated(&self, path: &Path, file: &FileId, offset: u64) {
        bump(&self.truncated, 1);
        tracing::warn!(
            path = %path.display(), inode = file.inode, offset,
            "file truncated, reading again from 0"
        );
    }

    fn rewritten(&self, path: &Path, file: &FileId, offset: u64) {
        bump(&self.rewritten, 1);
        tracing::warn!(
            path = %path.display(), inode = file.inode, offset,
            "file rewritten, reading again from 0"
        );
    }

    fn checkpoint_lost(&self, path: &Path, file: &FileId, offset: u64) {
        bump(&self.checkpoint_lost, 1);
        tracing::error!(
            path = %path.display(), fingerprint = file.fingerprint, offset,
            "checkpointed file not found, its unread lines are lost"
        );
    }

    fn unterminated(&self, path: &Path, file: &FileId, offset: u64) {
        bump(&self.unterminated, 1);
        tracing::warn!(
            path = %path.display(), inode = file.inode, offset,
            "rotated file ends without newline"
        );
    }

    fn read(&self, path: &Path, bytes: u64) {
        bump(&self.chunks, 1);
        bump(&self.bytes, bytes);
        tracing::trace!(path = %path.display(), bytes, "chunk read");
    }

    fn io_error(&self, path: &Path, error: &std::io::Error) {
        bump(&self.io_errors, 1);
        tracing::warn!(path = %path.display(), %error, "read failed, retrying");
    }
}
