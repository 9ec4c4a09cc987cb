//! Checkpoints: for each followed file, the offset up to which the store has
//! committed its lines.
//!
//! All checkpoints live in one versioned JSON file, `checkpoints.json` in the
//! state directory, replaced atomically by [`Checkpoints::save`]. Offsets move
//! only when the consumer calls [`Checkpoints::record`] after a commit, never
//! when a line is merely read. One entry is kept per live path: the file most
//! recently committed from it. Older files of that path need no entry, because
//! lines are committed in order and a newer file is only started once the
//! older one is finished. The tailer reads the entries when it starts; this
//! module does no reading of log files.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::tail::{Check, FileId, Position};

/// Name of the checkpoint file inside the state directory.
pub const CHECKPOINT_FILE: &str = "checkpoints.json";

/// Name of the temporary file a new checkpoint is written to before it
/// replaces [`CHECKPOINT_FILE`].
pub const CHECKPOINT_TEMP_FILE: &str = "checkpoints.json.tmp";

/// Version written into the file; a file of another version is refused.
pub const FORMAT_VERSION: u32 = 1;

/// Most entries kept. Beyond it, entries of paths that no longer exist are
/// dropped, least recently updated first, so that a glob over short-lived
/// files cannot grow the file without bound.
pub const MAX_ENTRIES: usize = 1024;

/// How far one live path has been committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The file last committed from the path.
    pub file: FileId,
    /// Offset just past the last committed line of that file.
    pub offset: u64,
    /// The last bytes before `offset`, to check the file was not rewritten.
    pub check: Check,
    /// When the entry last moved, in seconds since the Unix epoch.
    pub updated_at: u64,
}

/// The checkpoint file as written.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    version: u32,
    files: Vec<StoredEntry>,
}

/// One entry as written. The fingerprint is hexadecimal so that the file
/// reads well and no JSON tool rounds it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredEntry {
    path: PathBuf,
    fingerprint: String,
    dev: u64,
    inode: u64,
    offset: u64,
    check_len: u32,
    check_hash: String,
    updated_at: u64,
}

/// A checkpoint file that cannot be used, or cannot be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The file exists but cannot be read.
    #[error(
        "checkpoint file {} cannot be read: {source}; {WAYS_FORWARD}",
        path.display()
    )]
    Unreadable {
        /// The checkpoint file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file was read but its contents are not a checkpoint this version
    /// understands.
    #[error("checkpoint file {} is corrupt ({reason}); {WAYS_FORWARD}", path.display())]
    Corrupt {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The new checkpoint could not be written; the previous one is intact.
    #[error("checkpoint file {} cannot be written: {source}", path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// An offset lower than the one held was recorded for the same file.
    /// The higher offset is kept.
    #[error(
        "checkpoint for {}: offset {offered} is behind the committed {held}; keeping {held}",
        path.display()
    )]
    Backwards {
        /// The live path.
        path: PathBuf,
        /// The offset held.
        held: u64,
        /// The offset refused.
        offered: u64,
    },
}

/// What an operator can do about an unusable checkpoint file.
const WAYS_FORWARD: &str = "either run `egress-audit run --from-start` to read every source \
     again from byte 0 (safe: replayed lines add no duplicate rows; the file is replaced once \
     lines are committed), or delete it: each source then starts where its start_at says \
     (with start_at = \"end\", lines written meanwhile are not loaded)";

impl CheckpointError {
    /// The checkpoint file and why it cannot be used, when the error is a
    /// corrupt or unreadable file (not a failed write or a refused offset).
    pub fn unusable(&self) -> Option<(&Path, String)> {
        match self {
            CheckpointError::Unreadable { path, source } => Some((path, source.to_string())),
            CheckpointError::Corrupt { path, reason } => Some((path, reason.clone())),
            _ => None,
        }
    }
}

/// The committed offsets, in memory, and where they are saved.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    path: PathBuf,
    temp_path: PathBuf,
    entries: BTreeMap<PathBuf, Entry>,
    is_changed: bool,
}

impl Checkpoints {
    /// Loads the checkpoints kept in `state_dir`. A missing file (or
    /// directory) means no checkpoints. A leftover temporary file that parses
    /// is newer than the real one and is preferred; one that does not parse is
    /// an interrupted write and is removed.
    pub fn load(state_dir: &Path) -> Result<Checkpoints, CheckpointError> {
        let mut checkpoints = Checkpoints {
            path: state_dir.join(CHECKPOINT_FILE),
            temp_path: state_dir.join(CHECKPOINT_TEMP_FILE),
            entries: BTreeMap::new(),
            is_changed: false,
        };
        if let Some(entries) = checkpoints.recover_temp() {
            checkpoints.entries = entries;
            checkpoints.is_changed = true;
            return Ok(checkpoints);
        }
        let text = match fs::read(&checkpoints.path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(checkpoints),
            Err(source) => {
                return Err(CheckpointError::Unreadable {
                    path: checkpoints.path,
                    source,
                });
            }
        };
        checkpoints.entries = parse(&text).map_err(|reason| CheckpointError::Corrupt {
            path: checkpoints.path.clone(),
            reason,
        })?;
        Ok(checkpoints)
    }

    /// No checkpoints, to be saved in `state_dir` over whatever file is
    /// there: for `run --from-start`, which reads every source from byte 0
    /// and so needs no old checkpoint, when the file there cannot be used.
    /// Nothing is written until an offset is recorded, so a run that stops
    /// before its first commit leaves the old file (and its error) in place.
    pub fn replacing(state_dir: &Path) -> Checkpoints {
        Checkpoints {
            path: state_dir.join(CHECKPOINT_FILE),
            temp_path: state_dir.join(CHECKPOINT_TEMP_FILE),
            entries: BTreeMap::new(),
            is_changed: false,
        }
    }

    /// The entries of a complete leftover temporary file, if there is one.
    fn recover_temp(&self) -> Option<BTreeMap<PathBuf, Entry>> {
        let text = fs::read(&self.temp_path).ok()?;
        match parse(&text) {
            Ok(entries) => {
                let path = self.temp_path.display();
                tracing::warn!(%path, "checkpoint recovered from temporary file");
                Some(entries)
            }
            Err(reason) => {
                tracing::warn!(
                    path = %self.temp_path.display(), %reason,
                    "interrupted checkpoint write discarded"
                );
                let _ = fs::remove_file(&self.temp_path);
                None
            }
        }
    }

    /// The checkpoint file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry of the live path `path`, if any.
    pub fn get(&self, path: &Path) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Every entry, by live path.
    pub fn entries(&self) -> impl Iterator<Item = (&Path, &Entry)> {
        self.entries
            .iter()
            .map(|(path, entry)| (path.as_path(), entry))
    }

    /// True when there are changes not yet saved.
    pub fn is_changed(&self) -> bool {
        self.is_changed
    }

    /// Records that the lines before `position` are committed. Call it only
    /// after the store has committed them, in the order they were read. An
    /// offset behind the one held for the same file is refused; a different
    /// file replaces the entry (lines are committed in order, so the earlier
    /// file is finished).
    pub fn record(&mut self, position: &Position) -> Result<(), CheckpointError> {
        let path: &Path = &position.path;
        if let Some(entry) = self.entries.get(path)
            && entry.file.fingerprint == position.file.fingerprint
        {
            if position.offset < entry.offset {
                return Err(CheckpointError::Backwards {
                    path: path.to_path_buf(),
                    held: entry.offset,
                    offered: position.offset,
                });
            }
            if position.offset == entry.offset && entry.file == position.file {
                return Ok(());
            }
        }
        let entry = Entry {
            file: position.file,
            offset: position.offset,
            check: position.check,
            updated_at: now_seconds(),
        };
        if self.entries.insert(path.to_path_buf(), entry).is_none() {
            self.forget_excess();
        }
        self.is_changed = true;
        Ok(())
    }

    /// Moves the entry of `path` back to offset 0, keeping the file's
    /// identity: the file was found rewritten and is read again from 0.
    pub fn rewind(&mut self, path: &Path) {
        if let Some(entry) = self.entries.get_mut(path)
            && entry.offset != 0
        {
            entry.offset = 0;
            entry.check = Check::default();
            entry.updated_at = now_seconds();
            self.is_changed = true;
        }
    }

    /// Drops the entry of `path`.
    pub fn forget(&mut self, path: &Path) {
        if self.entries.remove(path).is_some() {
            self.is_changed = true;
        }
    }

    /// Keeps the entry count at [`MAX_ENTRIES`] by dropping entries of paths
    /// that no longer exist, least recently updated first.
    fn forget_excess(&mut self) {
        let excess = self.entries.len().saturating_sub(MAX_ENTRIES);
        if excess == 0 {
            return;
        }
        let mut gone: Vec<(u64, PathBuf)> = self
            .entries
            .iter()
            .filter(|(path, _)| !path.exists())
            .map(|(path, entry)| (entry.updated_at, path.clone()))
            .collect();
        gone.sort();
        for (_, path) in gone.into_iter().take(excess) {
            self.entries.remove(&path);
        }
    }

    /// Writes the checkpoints if they changed since the last save.
    pub fn save(&mut self) -> Result<(), CheckpointError> {
        if !self.is_changed {
            return Ok(());
        }
        let text = render(&self.entries);
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let failed = |source| CheckpointError::Write {
            path: self.path.clone(),
            source,
        };

        // First the whole new state goes to a temporary file, which is
        // fsynced: a crash from here on leaves the old checkpoint intact and
        // at worst a temporary file that load() either completes or discards.
        fs::create_dir_all(dir).map_err(failed)?;
        write_synced(&self.temp_path, &text).map_err(failed)?;

        // Then it is renamed over the real file. A rename within one directory
        // is atomic: readers see the old or the new checkpoint, never a mix.
        fs::rename(&self.temp_path, &self.path).map_err(failed)?;

        // Once the directory is fsynced the rename itself survives a power
        // cut, and only then is the state considered saved.
        File::open(dir).and_then(|d| d.sync_all()).map_err(failed)?;
        self.is_changed = false;
        Ok(())
    }
}

fn write_synced(path: &Path, text: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(text)?;
    file.sync_all()
}

fn render(entries: &BTreeMap<PathBuf, Entry>) -> Vec<u8> {
    let files = entries
        .iter()
        .map(|(path, entry)| StoredEntry {
            path: path.clone(),
            fingerprint: format!("{:016x}", entry.file.fingerprint),
            dev: entry.file.dev,
            inode: entry.file.inode,
            offset: entry.offset,
            check_len: entry.check.len,
            check_hash: format!("{:016x}", entry.check.hash),
            updated_at: entry.updated_at,
        })
        .collect();
    let stored = Stored {
        version: FORMAT_VERSION,
        files,
    };
    let mut text = serde_json::to_vec_pretty(&stored).expect("checkpoint entries always serialize");
    text.push(b'\n');
    text
}

fn parse(text: &[u8]) -> Result<BTreeMap<PathBuf, Entry>, String> {
    let stored: Stored = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    if stored.version != FORMAT_VERSION {
        return Err(format!(
            "version {} is not the supported version {FORMAT_VERSION}",
            stored.version
        ));
    }
    let mut entries = BTreeMap::new();
    for stored in stored.files {
        let fingerprint = hex(&stored.fingerprint, "fingerprint")?;
        let check = Check {
            len: stored.check_len,
            hash: hex(&stored.check_hash, "check_hash")?,
        };
        let entry = Entry {
            file: FileId {
                dev: stored.dev,
                inode: stored.inode,
                fingerprint,
            },
            offset: stored.offset,
            check,
            updated_at: stored.updated_at,
        };
        entries.insert(stored.path, entry);
    }
    Ok(entries)
}

fn hex(text: &str, key: &str) -> Result<u64, String> {
    u64::from_str_radix(text, 16).map_err(|_| format!("{key} {text:?} is not hexadecimal"))
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_version_is_corrupt() {
        let text = br#"{"version": 9, "files": []}"#;
        assert!(parse(text).unwrap_err().contains("version 9"));
    }

    #[test]
    fn rendered_entries_parse_back() {
        let mut entries = BTreeMap::new();
        let file = FileId {
            dev: 1,
            inode: 2,
            fingerprint: u64::MAX,
        };
        let check = Check { len: 3, hash: 4 };
        let entry = Entry {
            file,
            offset: 9,
            check,
            updated_at: 5,
        };
        entries.insert(PathBuf::from("/l/a.log"), entry);
        assert_eq!(parse(&render(&entries)).unwrap(), entries);
    }
}
