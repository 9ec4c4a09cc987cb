//! Filesystem events as wake-ups.
//!
//! The directories holding the followed files are watched with `notify`; any
//! event other than a plain read wakes the tailer loop, which then looks at
//! the files itself. Events are hints only: the loop also polls, so a
//! filesystem without events (NFS) or a lost event delays lines by at most one
//! poll interval. This module owns the watcher and the set of directories.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::Notify;

/// Watches directories and wakes the tailer loop on changes.
pub(crate) struct Wakeups {
    watcher: Option<RecommendedWatcher>,
    watched: HashSet<PathBuf>,
}

impl Wakeups {
    /// Starts a watcher that wakes `wake`. Without one (no inotify
    /// instances left), the loop relies on polling alone.
    pub(crate) fn new(wake: Arc<Notify>) -> Wakeups {
        let handler = move |event: notify::Result<Event>| {
            let is_read = matches!(&event, Ok(e) if matches!(e.kind, EventKind::Access(_)));
            if !is_read {
                wake.notify_one();
            }
        };
        let watcher = match notify::recommended_watcher(handler) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(%error, "no filesystem events, polling only");
                None
            }
        };
        Wakeups {
            watcher,
            watched: HashSet::new(),
        }
    }

    /// Watches `dir` unless it is watched already; a directory that does not
    /// exist yet is tried again at the next call.
    pub(crate) fn watch(&mut self, dir: &Path) {
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        if self.watched.contains(dir) {
            return;
        }
        if watcher.watch(dir, RecursiveMode::NonRecursive).is_ok() {
            tracing::debug!(path = %dir.display(), "directory watched");
            self.watched.insert(dir.to_path_buf());
        }
    }
}
