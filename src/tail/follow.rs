//! Following one live path through rotation: which file to read next, and
//! when a file is finished.
//!
//! A [`Follower`] owns the file being read for one live path (such as
//! `/var/log/squid/access.log`), a queue of rotated files still to be read
//! before it, and the fingerprints of files it recently finished. It hands
//! chunks back to the tailer loop one [`Step`] at a time and never waits
//! itself. Checkpoints are only read here, when the follower is built.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::xxh3_64;

use super::reader::{BufferPool, OpenFile, Read1, mtime_nanos};
use super::siblings::siblings_oldest_first;
use super::{Chunk, FileId, TailEvents};
use crate::checkpoint::Entry;

/// How many finished fingerprints a follower remembers, so that a compressed
/// copy of a file it already read is not read again.
const FINISHED_MEMORY: usize = 16;

/// Settings and shared helpers every follower uses.
pub(crate) struct Context {
    /// Bytes at the start of a file that identify it.
    pub fingerprint_bytes: usize,
    /// Size of each read.
    pub read_buffer_bytes: usize,
    /// How long a rotated file may stay quiet before it is finished.
    pub rotate_grace: Duration,
    /// Where events go.
    pub events: Arc<dyn TailEvents>,
    /// Buffers for chunks.
    pub pool: BufferPool,
}

/// What one call to [`Follower::step`] did.
pub(crate) enum Step {
    /// Lines to hand on.
    Chunk(Chunk),
    /// Something changed (a file opened or finished); call again.
    Again,
    /// Nothing to do until the files change.
    Idle,
}

/// The role of the file being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The file that was at the live path when it was opened.
    Live,
    /// A rotated file being read to its end before the live one.
    Rotated,
}

/// The file being read.
struct Current {
    file: OpenFile,
    role: Role,
}

/// Follows one live path.
pub(crate) struct Follower {
    source: usize,
    path: Arc<Path>,
    current: Option<Current>,
    /// Files, open and positioned, to read before the live path is looked at
    /// again: rotated ones, then possibly the live file as it was when they
    /// were queued.
    backlog: VecDeque<(PathBuf, OpenFile, Role)>,
    /// Fingerprints of files finished lately.
    finished: VecDeque<u64>,
    /// When the live path was seen pointing at another file than `current`.
    rotated_at: Option<Instant>,
    /// While the live path is missing with nothing left to read: the device
    /// and inode of every sibling when the wait began.
    waiting_among: Option<HashSet<(u64, u64)>>,
    /// The kind of the last error reported, so that a lasting one is not
    /// reported at every poll.
    last_error: Option<io::ErrorKind>,
}

/// Where a follower starts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Start {
    /// At the beginning of the live file.
    Beginning,
    /// After the last complete line of the live file.
    End,
    /// From a checkpoint.
    Checkpoint(Entry),
}

/// What [`Follower::new`] found out about a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resumed {
    /// No checkpoint was involved, or it was used as it stands.
    AsRecorded,
    /// The checkpointed file no longer matches; it is read from 0 and the
    /// checkpoint must be forgotten.
    Rewritten,
}

impl Follower {
    /// A follower for `path`, positioned according to `start`.
    pub(crate) fn new(
        source: usize,
        path: &Path,
        start: Start,
        context: &Context,
    ) -> io::Result<(Follower, Resumed)> {
        let mut follower = Follower {
            source,
            path: Arc::from(path),
            current: None,
            backlog: VecDeque::new(),
            finished: VecDeque::new(),
            rotated_at: None,
            waiting_among: None,
            last_error: None,
        };
        let resumed = match start {
            Start::Beginning => {
                follower.open_live_at(0, context)?;
                Resumed::AsRecorded
            }
            Start::End => {
                follower.open_live_at_end(context)?;
                Resumed::AsRecorded
            }
            Start::Checkpoint(entry) => follower.resume(entry, context)?,
        };
        if follower.current.is_none() && follower.backlog.is_empty() {
            follower.waiting_among = Some(sibling_inodes(path)?);
        }
        Ok((follower, resumed))
    }

    /// Opens the live file at `offset`, if it exists.
    fn open_live_at(&mut self, offset: u64, context: &Context) -> io::Result<bool> {
        match OpenFile::open_plain(&self.path, offset, context.fingerprint_bytes) {
            Ok(file) => {
                context
                    .events
                    .opened(&self.path, &file.id_or_zero(), offset);
                self.current = Some(Current {
                    file,
                    role: Role::Live,
                });
                self.rotated_at = None;
                Ok(true)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Opens the live file just after its last complete line.
    fn open_live_at_end(&mut self, context: &Context) -> io::Result<()> {
        let offset = match std::fs::File::open(&self.path) {
            Ok(file) => last_line_end(&file)?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        self.open_live_at(offset, context)?;
        Ok(())
    }

    /// Positions the follower from a checkpoint: in the live file when it is
    /// the checkpointed one, else in the rotated sibling that is, followed
    /// by the siblings rotated after it. Files are opened at once, so that
    /// a rotation while they wait their turn cannot swap them.
    fn resume(&mut self, entry: Entry, context: &Context) -> io::Result<Resumed> {
        let fingerprint = entry.file.fingerprint;
        let mut live = self.open_live(context)?;
        if let Some(file) = &mut live
            && file.id().map(|id| id.fingerprint) == Some(fingerprint)
        {
            let mut file = live.take().expect("matched just above");
            let resumed = position_at(&mut file, &self.path, &entry, context)?;
            context
                .events
                .opened(&self.path, &file.id_or_zero(), file.read_to());
            self.current = Some(Current {
                file,
                role: Role::Live,
            });
            return Ok(resumed);
        }

        let siblings = siblings_oldest_first(&self.path)?;
        for (index, sibling) in siblings.iter().enumerate() {
            let Some(mut file) = open_rotated(sibling, context)? else {
                continue;
            };
            if file.id().map(|id| id.fingerprint) != Some(fingerprint) {
                continue;
            }
            let resumed = position_at(&mut file, sibling, &entry, context)?;
            self.backlog
                .push_back((sibling.clone(), file, Role::Rotated));
            self.remember_finished(fingerprint);
            self.queue_newer(&siblings[index + 1..], live.as_ref(), context)?;
            self.queue_live(live)?;
            return Ok(resumed);
        }
        self.resume_truncated(entry, live, &siblings, context)
    }

    /// No file has the checkpointed fingerprint. A file with the checkpointed
    /// device and inode was truncated (copytruncate) after the checkpoint and
    /// refilled: it is read from 0, then what was rotated after it. Failing
    /// that, the checkpointed file is lost and the live file is read from 0.
    fn resume_truncated(
        &mut self,
        entry: Entry,
        live: Option<OpenFile>,
        siblings: &[PathBuf],
        context: &Context,
    ) -> io::Result<Resumed> {
        let same_inode = |file: &OpenFile| file.dev_inode() == (entry.file.dev, entry.file.inode);
        if live.as_ref().is_some_and(same_inode) {
            context
                .events
                .truncated(&self.path, &entry.file, entry.offset);
            self.queue_live(live)?;
            return Ok(Resumed::Rewritten);
        }
        for (index, sibling) in siblings.iter().enumerate() {
            let Some(file) = open_rotated(sibling, context)? else {
                continue;
            };
            if !same_inode(&file) {
                continue;
            }
            context.events.truncated(sibling, &entry.file, entry.offset);
            self.backlog
                .push_back((sibling.clone(), file, Role::Rotated));
            self.queue_newer(&siblings[index + 1..], live.as_ref(), context)?;
            self.queue_live(live)?;
            return Ok(Resumed::Rewritten);
        }
        context
            .events
            .checkpoint_lost(&self.path, &entry.file, entry.offset);
        Ok(Resumed::AsRecorded)
    }

    /// Opens and queues the `newer` siblings (oldest first) not read already,
    /// leaving out the `live` file if it was rotated since it was opened.
    fn queue_newer(
        &mut self,
        newer: &[PathBuf],
        live: Option<&OpenFile>,
        context: &Context,
    ) -> io::Result<()> {
        let live = live.map(OpenFile::dev_inode);
        for sibling in newer {
            let Some(file) = open_rotated(sibling, context)? else {
                continue;
            };
            if Some(file.dev_inode()) == live {
                continue;
            }
            match file.id() {
                Some(id) if !self.finished.contains(&id.fingerprint) => {
                    self.remember_finished(id.fingerprint);
                    self.backlog
                        .push_back((sibling.clone(), file, Role::Rotated));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Queues the live file, opened before its siblings were listed so that
    /// a rotation in between cannot skip a file.
    /// When there is no live file, remembers the siblings there are now, so
    /// that files rotated away before the live one is seen are recognised.
    fn queue_live(&mut self, live: Option<OpenFile>) -> io::Result<()> {
        match live {
            Some(file) => {
                let path = self.path.to_path_buf();
                self.backlog.push_back((path, file, Role::Live));
            }
            None => self.waiting_among = Some(sibling_inodes(&self.path)?),
        }
        Ok(())
    }

    /// The live file opened at 0, if it exists.
    fn open_live(&self, context: &Context) -> io::Result<Option<OpenFile>> {
        match OpenFile::open_plain(&self.path, 0, context.fingerprint_bytes) {
            Ok(file) => Ok(Some(file)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn remember_finished(&mut self, fingerprint: u64) {
        if self.finished.len() == FINISHED_MEMORY {
            self.finished.pop_front();
        }
        self.finished.push_back(fingerprint);
    }

    /// Does the next piece of work for this path.
    pub(crate) fn step(&mut self, context: &Context) -> Step {
        match self.try_step(context) {
            Ok(step) => {
                self.last_error = None;
                step
            }
            Err(error) => {
                if self.last_error != Some(error.kind()) {
                    context.events.io_error(&self.path, &error);
                    self.last_error = Some(error.kind());
                }
                Step::Idle
            }
        }
    }

    fn try_step(&mut self, context: &Context) -> io::Result<Step> {
        let Some(current) = &mut self.current else {
            return self.open_next(context);
        };
        let read = current.file.read_lines(
            context.read_buffer_bytes,
            context.fingerprint_bytes,
            &context.pool,
        )?;

        // Checked after the read, so that bytes read from a file truncated
        // and refilled meanwhile are dropped rather than handed on as lines
        // of the old file.
        if current.role == Role::Live
            && current.file.is_prefix_changed(context.fingerprint_bytes)?
        {
            if let Read1::Lines { data, .. } = read {
                context.pool.give_back(data);
            }
            return self.restart_changed(context);
        }
        match read {
            Read1::Lines {
                start,
                data,
                caught_up,
            } => Ok(Step::Chunk(
                self.chunk(start, data, caught_up, false, context),
            )),
            Read1::Partial => Ok(Step::Again),
            Read1::Eof => self.at_end(context),
        }
    }

    /// Starts on the next rotated file of the backlog, else opens the live
    /// file.
    fn open_next(&mut self, context: &Context) -> io::Result<Step> {
        let Some((path, file, role)) = self.backlog.pop_front() else {
            return self.open_live_after_wait(context);
        };
        context
            .events
            .opened(&path, &file.id_or_zero(), file.read_to());
        self.current = Some(Current { file, role });
        self.rotated_at = None;
        Ok(Step::Again)
    }

    /// Opens the live file once it exists. Files rotated away while it was
    /// being waited for (created and rotated between two looks) are queued
    /// before it: the siblings that were not there when the wait began.
    fn open_live_after_wait(&mut self, context: &Context) -> io::Result<Step> {
        let Some(live) = self.open_live(context)? else {
            if self.waiting_among.is_none() {
                self.waiting_among = Some(sibling_inodes(&self.path)?);
            }
            return Ok(Step::Idle);
        };
        if let Some(known) = self.waiting_among.take() {
            let newer: Vec<PathBuf> = siblings_oldest_first(&self.path)?
                .into_iter()
                .filter(|sibling| inode_of(sibling).is_some_and(|id| !known.contains(&id)))
                .collect();
            self.queue_newer(&newer, Some(&live), context)?;
        }
        self.queue_live(Some(live))?;
        Ok(Step::Again)
    }

    /// The file being read has no more bytes: finish it, or look at the live
    /// path for a rotation or a truncation.
    fn at_end(&mut self, context: &Context) -> io::Result<Step> {
        let current = self
            .current
            .as_ref()
            .expect("at_end is called with a file open");
        if current.role == Role::Rotated || current.file.is_final() {
            return self.finish(context);
        }
        let (dev, inode) = current.file.dev_inode();
        let live = match std::fs::metadata(&self.path) {
            Ok(meta) => Some(meta),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(error),
        };

        use std::os::unix::fs::MetadataExt;
        if let Some(meta) = &live
            && (meta.dev(), meta.ino()) == (dev, inode)
        {
            self.rotated_at = None;
            if meta.len() < current.file.read_to() {
                return self.restart_changed(context);
            }
            return Ok(Step::Idle);
        }

        if self.rotated_at.is_none() {
            self.rotated_at = Some(Instant::now());
            context
                .events
                .rotated(&self.path, &current.file.id_or_zero());
        }
        let successor_has_data = live.is_some_and(|meta| meta.len() > 0);
        let is_clean_end = current.file.handed_to() == current.file.read_to();
        let is_quiet = current.file.last_growth().elapsed() >= context.rotate_grace;
        if (successor_has_data && is_clean_end) || is_quiet {
            return self.finish(context);
        }
        Ok(Step::Idle)
    }

    /// The live file shrank or its first bytes changed: read it again from 0.
    fn restart_changed(&mut self, context: &Context) -> io::Result<Step> {
        let current = self
            .current
            .as_mut()
            .expect("restart_changed is called with a file open");
        let id = current.file.id_or_zero();
        let offset = current.file.read_to();
        if current.file.size()? < offset {
            context.events.truncated(&self.path, &id, offset);
        } else {
            context.events.rewritten(&self.path, &id, offset);
        }
        current.file.restart(context.fingerprint_bytes)?;
        Ok(Step::Again)
    }

    /// Closes the file being read for good, handing on a final unterminated
    /// line, and queues the siblings rotated after it.
    fn finish(&mut self, context: &Context) -> io::Result<Step> {
        let mut current = self
            .current
            .take()
            .expect("finish is called with a file open");
        current.file.identify_as_final(context.fingerprint_bytes)?;
        let id = current.file.id_or_zero();
        context
            .events
            .finished(&self.path, &id, current.file.read_to());
        self.remember_finished(id.fingerprint);
        if current.role == Role::Live {
            self.queue_rotated_after(&current.file, context)?;
        }

        let Some((start, data)) = current.file.take_unterminated() else {
            return Ok(Step::Again);
        };
        context.events.unterminated(&self.path, &id, start);
        let mut chunk = self.chunk(start, data, true, true, context);
        chunk.file = id;
        Ok(Step::Chunk(chunk))
    }

    /// After a live file was rotated away and read to its end, queues the
    /// siblings rotated after it (several rotations while reading paused).
    /// Found by name order when the file is still among its siblings; when it
    /// is gone (deleted, or rotated out of the kept count), every sibling
    /// modified since it last changed is taken instead.
    fn queue_rotated_after(&mut self, file: &OpenFile, context: &Context) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let live = self.open_live(context)?;
        let siblings = siblings_oldest_first(&self.path)?;
        let position = siblings.iter().position(|sibling| {
            std::fs::metadata(sibling)
                .is_ok_and(|meta| (meta.dev(), meta.ino()) == file.dev_inode())
        });
        let newer: Vec<PathBuf> = match position {
            Some(index) => siblings[index + 1..].to_vec(),
            None => {
                let modified = file.modified_nanos()?;
                siblings
                    .into_iter()
                    .filter(|sibling| {
                        std::fs::metadata(sibling).is_ok_and(|meta| mtime_nanos(&meta) >= modified)
                    })
                    .collect()
            }
        };
        self.queue_newer(&newer, live.as_ref(), context)?;
        self.queue_live(live)?;
        Ok(())
    }

    fn chunk(
        &self,
        start: u64,
        data: Vec<u8>,
        caught_up: bool,
        unterminated: bool,
        context: &Context,
    ) -> Chunk {
        let current = self.current.as_ref();
        let file = current.map(|c| c.file.id_or_zero()).unwrap_or(FileId {
            dev: 0,
            inode: 0,
            fingerprint: 0,
        });
        context.events.read(&self.path, data.len() as u64);
        Chunk {
            source: self.source,
            path: Arc::clone(&self.path),
            file,
            start,
            data,
            caught_up,
            unterminated,
        }
    }
}

/// The offset just past the last `\n` of `file` (0 when it has none).
fn last_line_end(file: &std::fs::File) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    const BLOCK: u64 = 64 * 1024;
    let mut end = file.metadata()?.len();
    let mut block = vec![0; BLOCK as usize];
    while end > 0 {
        let begin = end.saturating_sub(BLOCK);
        let len = (end - begin) as usize;
        file.read_exact_at(&mut block[..len], begin)?;
        if let Some(newline) = memchr::memrchr(b'\n', &block[..len]) {
            return Ok(begin + newline as u64 + 1);
        }
        end = begin;
    }
    Ok(0)
}

/// Opens a rotated sibling at 0 with its final fingerprint; `None` when it
/// vanished meanwhile.
fn open_rotated(path: &Path, context: &Context) -> io::Result<Option<OpenFile>> {
    match OpenFile::open(path, 0, context.fingerprint_bytes) {
        Ok(mut file) => {
            file.identify_as_final(context.fingerprint_bytes)?;
            Ok(Some(file))
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Moves `file`, open at 0, to the checkpointed offset after checking that
/// the bytes just before it are the ones committed. When they are not, the
/// file was rewritten: it is reported and left at 0.
fn position_at(
    file: &mut OpenFile,
    path: &Path,
    entry: &Entry,
    context: &Context,
) -> io::Result<Resumed> {
    let len = u64::from(entry.check.len).min(entry.offset);
    file.skip(entry.offset - len)?;
    let mut bytes = vec![0; len as usize];
    let filled = file.read_into(&mut bytes)?;
    let is_intact = filled == bytes.len()
        && file.read_to() == entry.offset
        && (len == 0 || xxh3_64(&bytes) == entry.check.hash);
    if is_intact {
        return Ok(Resumed::AsRecorded);
    }
    context.events.rewritten(path, &entry.file, entry.offset);
    file.restart(context.fingerprint_bytes)?;
    Ok(Resumed::Rewritten)
}

/// Device and inode of the file at `path`, if it exists.
fn inode_of(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|meta| (meta.dev(), meta.ino()))
}

/// Device and inode of every rotated sibling of `live`.
fn sibling_inodes(live: &Path) -> io::Result<HashSet<(u64, u64)>> {
    Ok(siblings_oldest_first(live)?
        .iter()
        .filter_map(|sibling| inode_of(sibling))
        .collect())
}
