//! The tailer: follows each configured log file through rotation and hands
//! on complete lines, with the file's identity and each line's offsets.
//!
//! One [`Tailer`] follows every `[[source]]` (a path or a glob). It sends
//! [`Chunk`]s of whole lines over a bounded channel; when the channel is full
//! it stops reading, keeping every open handle, so a slow consumer loses
//! nothing. It never writes checkpoints: it reads them once, when it is built,
//! to know where to resume, and the consumer records what it has committed.
//!
//! Parts: [`fingerprint`] (file identity), `reader` (one open file), `follow`
//! (one live path through rotation), `siblings` (rotated names), `watch`
//! (filesystem events as wake-ups), [`events`] (what is reported).

pub mod events;
pub mod fingerprint;
mod follow;
mod reader;
mod siblings;
mod watch;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, oneshot, watch as signal};

use crate::checkpoint::Checkpoints;
use crate::config::{Config, SourceConfig, StartAt, TailConfig};
pub use events::{TailCounters, TailEvents};
pub use fingerprint::{fingerprint_of, fingerprint_reader};
use follow::{Context, Follower, Resumed, Start, Step};
pub use reader::BufferPool;

/// Most chunks one file may send in a row before the others get a turn.
const CHUNKS_PER_TURN: usize = 8;

/// The identity of a log file.
///
/// The fingerprint names the contents and survives renames and compression;
/// device and inode tell open files apart quickly but change when a file is
/// copied or compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    /// Device number of the file read.
    pub dev: u64,
    /// Inode number of the file read.
    pub inode: u64,
    /// xxh3 of the file's first line (or first `fingerprint_bytes`); see
    /// [`fingerprint_of`].
    pub fingerprint: u64,
}

/// Most bytes at the end of a committed line whose hash is kept in its
/// checkpoint, to check on restart that the file still holds them.
pub const CHECK_BYTES: usize = 64;

/// The last bytes before a checkpointed offset, as a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Check {
    /// How many bytes before the offset are hashed (0 at offset 0).
    pub len: u32,
    /// xxh3 of those bytes.
    pub hash: u64,
}

/// A point up to which lines are committed: what the consumer hands to
/// [`Checkpoints::record`] once the lines before it are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The live path followed.
    pub path: Arc<Path>,
    /// The file.
    pub file: FileId,
    /// Offset just past the last committed line.
    pub offset: u64,
    /// The last bytes of that line, to detect a rewritten file on restart.
    pub check: Check,
}

/// One or more lines read from one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Index of the source in `config.sources`.
    pub source: usize,
    /// The live path followed (`/var/log/squid/access.log`), also when the
    /// lines come from a rotated file such as `access.log.1`.
    pub path: Arc<Path>,
    /// The file the lines come from.
    pub file: FileId,
    /// Offset of `data[0]` in that file.
    pub start: u64,
    /// Whole lines, each ending in `\n`, except the last one when
    /// `unterminated` is set.
    pub data: Vec<u8>,
    /// True when this chunk reached the end of the file as it was when read:
    /// a good moment to flush a batch.
    pub caught_up: bool,
    /// True when the last line has no `\n`: the final line of a rotated file,
    /// handed on after `tail.rotate_grace` passed without it being finished.
    pub unterminated: bool,
}

impl Chunk {
    /// Offset just past the last byte of `data`.
    pub fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }

    /// The position just past `line`, which must be one of this chunk's lines.
    pub fn position_after(&self, line: &Line<'_>) -> Position {
        let end = (line.end - self.start) as usize;
        let begin = (line.start - self.start) as usize;
        let checked = &self.data[end - (end - begin).min(CHECK_BYTES)..end];
        Position {
            path: Arc::clone(&self.path),
            file: self.file,
            offset: line.end,
            check: Check {
                len: checked.len() as u32,
                hash: xxhash_rust::xxh3::xxh3_64(checked),
            },
        }
    }

    /// The position just past the chunk's last line (`None` when empty).
    pub fn end_position(&self) -> Option<Position> {
        let last = self.lines().last()?;
        Some(self.position_after(&last))
    }

    /// The lines of the chunk, without their `\n`, with their offsets.
    pub fn lines(&self) -> Lines<'_> {
        Lines {
            data: &self.data,
            offset: self.start,
        }
    }
}

/// One line of a [`Chunk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// The line without its `\n`.
    pub text: &'a [u8],
    /// Offset of the line's first byte in its file.
    pub start: u64,
    /// Offset just past the line's `\n` (or past its last byte when
    /// unterminated): where reading resumes once this line is committed.
    pub end: u64,
}

/// Iterator over the lines of a chunk; see [`Chunk::lines`].
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    data: &'a [u8],
    offset: u64,
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        if self.data.is_empty() {
            return None;
        }
        let (text, used) = match memchr::memchr(b'\n', self.data) {
            Some(newline) => (&self.data[..newline], newline + 1),
            None => (self.data, self.data.len()),
        };
        let line = Line {
            text,
            start: self.offset,
            end: self.offset + used as u64,
        };
        self.data = &self.data[used..];
        self.offset += used as u64;
        Some(line)
    }
}

/// Where reading starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// From each file's checkpoint; a file without one starts where its
    /// source's `start_at` says.
    #[default]
    Checkpoints,
    /// Every live file from byte 0, ignoring checkpoints (`run --from-start`).
    /// Safe because row ids are deterministic: replayed lines add no rows.
    Beginning,
}

/// Why the tailer could not start or go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TailError {
    /// A source's `path` is not a valid glob pattern.
    #[error("tail: source path {pattern:?} is not a valid glob: {reason}")]
    Pattern {
        /// The configured path.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A log file exists but could not be opened or positioned at start.
    #[error("tail: cannot open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause (often a permission problem).
        source: std::io::Error,
    },
    /// The tailer's thread or runtime could not be started.
    #[error("tail: cannot start the reading thread: {0}")]
    Thread(std::io::Error),
    /// The tailer's thread ended without reporting (it panicked).
    #[error("tail: the reading thread ended unexpectedly")]
    Vanished,
}

/// A configured source, as the tailer needs it.
struct Source {
    pattern: String,
    is_glob: bool,
}

/// Follows every configured source; see the module docs.
pub struct Tailer {
    sources: Vec<Source>,
    followers: Vec<Follower>,
    known: HashSet<PathBuf>,
    context: Context,
    poll_interval: Duration,
    last_discovery: Instant,
}

/// What the read pass did.
enum Flow {
    /// Something was read or changed: read again at once.
    Busy,
    /// Nothing to read: wait for a wake-up.
    Idle,
    /// Shutdown was asked for, or the consumer went away.
    Stop,
}

impl Tailer {
    /// Builds the tailer and positions every file that exists now.
    ///
    /// Reads `checkpoints` to resume, and moves the entries of files found
    /// rewritten back to offset 0 (they are read again from 0), so save them
    /// after this.
    /// Lines written after this returns are read, also with `start_at = "end"`.
    pub fn new(
        config: &Config,
        checkpoints: &mut Checkpoints,
        start_from: StartFrom,
        events: Arc<dyn TailEvents>,
    ) -> Result<Tailer, TailError> {
        let mut tailer = Tailer {
            sources: config.sources.iter().map(Source::from_config).collect(),
            followers: Vec::new(),
            known: HashSet::new(),
            context: context_for(&config.tail, events),
            poll_interval: config.tail.poll_interval,
            last_discovery: Instant::now(),
        };
        for (index, source) in config.sources.iter().enumerate() {
            for path in tailer.sources[index].expand()? {
                let start = start_for(&path, source, checkpoints, start_from);
                let resumed = tailer.add(index, &path, start)?;
                if resumed == Resumed::Rewritten {
                    // Keep the file's identity at offset 0 rather than
                    // forgetting it: if the file is rotated before anything
                    // of it is committed, the next start still finds it
                    // among the siblings by device and inode.
                    checkpoints.rewind(&path);
                }
            }
        }
        Ok(tailer)
    }

    /// The pool chunk buffers come from; give buffers back to it once their
    /// lines are processed to spare allocations.
    pub fn buffer_pool(&self) -> BufferPool {
        self.context.pool.clone()
    }

    fn add(&mut self, source: usize, path: &Path, start: Start) -> Result<Resumed, TailError> {
        let (follower, resumed) =
            Follower::new(source, path, start, &self.context).map_err(|source| {
                TailError::Open {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        self.followers.push(follower);
        self.known.insert(path.to_path_buf());
        Ok(resumed)
    }

    /// Runs the tailer on a thread of its own (file reads block) until
    /// `stop_rx` turns true or its sender is dropped, or `chunks_tx`'s
    /// receiver is dropped.
    pub fn spawn(
        self,
        chunks_tx: mpsc::Sender<Chunk>,
        stop_rx: signal::Receiver<bool>,
    ) -> Result<TailerHandle, TailError> {
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("egress-tail".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let result = match runtime {
                    Ok(runtime) => runtime.block_on(self.run(chunks_tx, stop_rx)),
                    Err(error) => Err(TailError::Thread(error)),
                };
                let _ = done_tx.send(result);
            })
            .map_err(TailError::Thread)?;
        Ok(TailerHandle { done_rx })
    }

    /// The tailer loop. File reads block, so prefer [`Tailer::spawn`]; run
    /// this directly only on a runtime that may block.
    pub async fn run(
        mut self,
        chunks_tx: mpsc::Sender<Chunk>,
        mut stop_rx: signal::Receiver<bool>,
    ) -> Result<(), TailError> {
        let wake = Arc::new(Notify::new());
        let mut wakeups = watch::Wakeups::new(Arc::clone(&wake));
        self.watch_dirs(&mut wakeups);
        tracing::info!(files = self.followers.len(), "tailer started");
        loop {
            self.discover(&mut wakeups);
            match self.read_ready(&chunks_tx, &mut stop_rx).await {
                Flow::Busy => continue,
                Flow::Stop => break,
                Flow::Idle => {}
            }
            if self.sleep_or_stop(&wake, &mut stop_rx).await {
                break;
            }
        }
        tracing::info!("tailer stopped");
        Ok(())
    }

    /// Watches the directories of every source.
    fn watch_dirs(&self, wakeups: &mut watch::Wakeups) {
        for source in &self.sources {
            if let Some(dir) = source.watch_dir() {
                wakeups.watch(&dir);
            }
        }
    }

    /// Finds files newly matching a glob, at most once per poll interval.
    fn discover(&mut self, wakeups: &mut watch::Wakeups) {
        if self.last_discovery.elapsed() < self.poll_interval {
            return;
        }
        self.last_discovery = Instant::now();
        self.watch_dirs(wakeups);
        for index in 0..self.sources.len() {
            if !self.sources[index].is_glob {
                continue;
            }
            let Ok(paths) = self.sources[index].expand() else {
                continue;
            };
            for path in paths {
                if !self.known.contains(&path)
                    && let Err(error) = self.add(index, &path, Start::Beginning)
                {
                    tracing::warn!(path = %path.display(), %error, "cannot follow new file");
                }
            }
        }
    }

    /// Gives every file a turn at reading, sending what it yields; waits for
    /// room in the channel first, so reading pauses while it is full.
    async fn read_ready(
        &mut self,
        chunks_tx: &mpsc::Sender<Chunk>,
        stop_rx: &mut signal::Receiver<bool>,
    ) -> Flow {
        let mut flow = Flow::Idle;
        for follower in &mut self.followers {
            for _ in 0..CHUNKS_PER_TURN {
                if is_stopped(stop_rx) {
                    return Flow::Stop;
                }
                let permit = tokio::select! {
                    biased;
                    _ = stop_rx.changed() => continue,
                    permit = chunks_tx.reserve() => match permit {
                        Ok(permit) => permit,
                        Err(_) => return Flow::Stop,
                    },
                };
                match follower.step(&self.context) {
                    Step::Chunk(chunk) => permit.send(chunk),
                    Step::Again => {}
                    Step::Idle => break,
                }
                flow = Flow::Busy;
            }
        }
        flow
    }

    /// Waits for a filesystem event, the poll interval or shutdown; true on
    /// shutdown.
    async fn sleep_or_stop(&self, wake: &Notify, stop_rx: &mut signal::Receiver<bool>) -> bool {
        if is_stopped(stop_rx) {
            return true;
        }
        tokio::select! {
            _ = wake.notified() => false,
            _ = tokio::time::sleep(self.poll_interval) => false,
            changed = stop_rx.changed() => changed.is_err() || *stop_rx.borrow(),
        }
    }
}

/// True when shutdown was asked for (the value is true or the sender is gone).
fn is_stopped(stop_rx: &signal::Receiver<bool>) -> bool {
    *stop_rx.borrow() || stop_rx.has_changed().is_err()
}

/// Waits for a spawned tailer to end.
#[derive(Debug)]
pub struct TailerHandle {
    done_rx: oneshot::Receiver<Result<(), TailError>>,
}

impl TailerHandle {
    /// Resolves when the tailer has stopped, with its result.
    pub async fn wait(self) -> Result<(), TailError> {
        self.done_rx.await.unwrap_or(Err(TailError::Vanished))
    }
}

fn context_for(tail: &TailConfig, events: Arc<dyn TailEvents>) -> Context {
    Context {
        fingerprint_bytes: tail.fingerprint_bytes,
        read_buffer_bytes: tail.read_buffer_bytes,
        rotate_grace: tail.rotate_grace,
        events,
        pool: BufferPool::default(),
    }
}

/// Where the file at `path` starts being read.
fn start_for(
    path: &Path,
    source: &SourceConfig,
    checkpoints: &Checkpoints,
    start_from: StartFrom,
) -> Start {
    if start_from == StartFrom::Beginning {
        return Start::Beginning;
    }
    match (checkpoints.get(path), source.start_at) {
        (Some(entry), _) => Start::Checkpoint(*entry),
        (None, StartAt::End) => Start::End,
        (None, StartAt::Beginning) => Start::Beginning,
    }
}

impl Source {
    fn from_config(config: &SourceConfig) -> Source {
        Source {
            pattern: config.path.clone(),
            is_glob: config.path.contains(['*', '?', '[']),
        }
    }

    /// The live paths this source names now. A plain path is returned even
    /// when the file does not exist yet, so that it is waited for.
    fn expand(&self) -> Result<Vec<PathBuf>, TailError> {
        if !self.is_glob {
            return Ok(vec![PathBuf::from(&self.pattern)]);
        }
        let invalid = |reason: String| TailError::Pattern {
            pattern: self.pattern.clone(),
            reason,
        };
        let paths = glob::glob(&self.pattern).map_err(|e| invalid(e.to_string()))?;
        Ok(paths
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect())
    }

    /// The directory to watch: the parent of the path, or of the glob when
    /// only its last part has wildcards.
    fn watch_dir(&self) -> Option<PathBuf> {
        let parent = Path::new(&self.pattern).parent()?;
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let has_wildcard = parent.to_string_lossy().contains(['*', '?', '[']);
        (!has_wildcard).then(|| parent.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(start: u64, data: &[u8]) -> Chunk {
        Chunk {
            source: 0,
            path: Arc::from(Path::new("/x")),
            file: FileId {
                dev: 1,
                inode: 2,
                fingerprint: 3,
            },
            start,
            data: data.to_vec(),
            caught_up: true,
            unterminated: false,
        }
    }

    #[test]
    fn lines_carry_their_offsets() {
        let chunk = chunk(100, b"ab\n\ncde\n");
        let lines: Vec<_> = chunk.lines().map(|l| (l.text, l.start, l.end)).collect();
        assert_eq!(
            lines,
            [
                (&b"ab"[..], 100, 103),
                (&b""[..], 103, 104),
                (&b"cde"[..], 104, 108)
            ]
        );
        assert_eq!(chunk.end(), 108);
    }

    #[test]
    fn unterminated_last_line_ends_at_the_chunk_end() {
        let chunk = chunk(0, b"a\nbc");
        let last = chunk.lines().last().unwrap();
        assert_eq!((last.text, last.start, last.end), (&b"bc"[..], 2, 4));
    }

    #[test]
    fn position_checks_the_end_of_its_line() {
        let chunk = chunk(10, b"ab\ncd\n");
        let last = chunk.lines().last().unwrap();
        let position = chunk.position_after(&last);
        assert_eq!(position.offset, 16);
        assert_eq!(position.check.len, 3);
        assert_eq!(position.check.hash, xxhash_rust::xxh3::xxh3_64(b"cd\n"));
        assert_eq!(chunk.end_position(), Some(position));
    }

    #[test]
    fn glob_watches_its_directory() {
        let source = Source::from_config(&SourceConfig {
            path: "/var/log/squid/*.log".into(),
            name: None,
            format: None,
            logformat: None,
            squid_conf: None,
            group: None,
            start_at: StartAt::End,
        });
        assert!(source.is_glob);
        assert_eq!(source.watch_dir(), Some(PathBuf::from("/var/log/squid")));
    }
}
