//! One open log file: reading it in fixed-size pieces and cutting complete lines.
//!
//! An [`OpenFile`] owns the handle (plain, or a gzip decoder for a compressed
//! rotated file), the offset just past the last byte read and the bytes of a
//! partial last line. It knows nothing about paths, rotation or checkpoints;
//! [`super::follow`] decides when to read, reopen or give up on a file.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use flate2::read::MultiGzDecoder;
use xxhash_rust::xxh3::xxh3_64;

use super::FileId;
use super::fingerprint::fingerprint_span;

/// Most spare buffers a [`BufferPool`] keeps (16 x 64 KiB = 1 MiB); more are
/// dropped.
const POOL_LIMIT: usize = 16;

/// Buffers handed back by the consumer, reused for the next chunks so that a
/// steady stream of lines does not allocate.
#[derive(Debug, Clone, Default)]
pub struct BufferPool {
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl BufferPool {
    /// A buffer at least `len` bytes long, to be overwritten. A buffer given
    /// back keeps its length, so reusing it zeroes at most its last bytes.
    pub(crate) fn take(&self, len: usize) -> Vec<u8> {
        let reused = self.spare.lock().ok().and_then(|mut spare| spare.pop());
        let mut buf = reused.unwrap_or_default();
        if buf.len() < len {
            buf.resize(len, 0);
        }
        buf
    }

    /// Returns a chunk's buffer once its lines are no longer needed.
    pub fn give_back(&self, buf: Vec<u8>) {
        if let Ok(mut spare) = self.spare.lock()
            && spare.len() < POOL_LIMIT
        {
            spare.push(buf);
        }
    }
}

/// The handle itself.
enum Input {
    Plain(File),
    Gz(Box<MultiGzDecoder<BufReader<File>>>),
}

/// What one read produced.
pub(crate) enum Read1 {
    /// Complete lines: the offset of `data[0]`, the bytes, and whether the
    /// read reached the end of the file as it was then.
    Lines {
        start: u64,
        data: Vec<u8>,
        caught_up: bool,
    },
    /// Bytes arrived but no line is complete yet (or the file has no
    /// fingerprint yet).
    Partial,
    /// Nothing new.
    Eof,
}

/// An open file being read.
pub(crate) struct OpenFile {
    input: Input,
    dev: u64,
    inode: u64,
    /// The fingerprint and how many leading bytes it covers, once known.
    fingerprint: Option<(u64, usize)>,
    /// Offset just past the last byte read from the file.
    read_to: u64,
    /// The read buffer; `pending[..filled]` holds bytes read but not handed
    /// on (a partial last line ending at `read_to`), the rest is room.
    pending: Vec<u8>,
    /// How many bytes of `pending` are filled.
    filled: usize,
    /// When bytes last arrived (or the file was opened).
    last_growth: Instant,
    /// True for a compressed file, which never grows.
    is_final: bool,
}

impl OpenFile {
    /// Opens a plain file and positions it at `offset`.
    pub(crate) fn open_plain(
        path: &Path,
        offset: u64,
        fingerprint_bytes: usize,
    ) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        file.seek(SeekFrom::Start(offset))?;
        let mut open = OpenFile {
            input: Input::Plain(file),
            dev: meta.dev(),
            inode: meta.ino(),
            fingerprint: None,
            read_to: offset,
            pending: Vec::new(),
            filled: 0,
            last_growth: Instant::now(),
            is_final: false,
        };
        open.identify(fingerprint_bytes)?;
        Ok(open)
    }

    /// Opens a `.gz` file and skips `offset` decompressed bytes.
    pub(crate) fn open_gz(path: &Path, offset: u64, fingerprint_bytes: usize) -> io::Result<Self> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let mut prefix = Vec::with_capacity(fingerprint_bytes);
        MultiGzDecoder::new(BufReader::new(File::open(path)?))
            .take(fingerprint_bytes as u64)
            .read_to_end(&mut prefix)?;
        let fingerprint = fingerprint_span(&prefix, fingerprint_bytes, true)
            .map(|len| (xxh3_64(&prefix[..len]), len));

        let mut decoder = MultiGzDecoder::new(BufReader::new(file));
        let skipped = io::copy(&mut (&mut decoder).take(offset), &mut io::sink())?;
        Ok(OpenFile {
            input: Input::Gz(Box::new(decoder)),
            dev: meta.dev(),
            inode: meta.ino(),
            fingerprint,
            read_to: skipped,
            pending: Vec::new(),
            filled: 0,
            last_growth: Instant::now(),
            is_final: true,
        })
    }

    /// Opens `path` as plain or compressed, going by its name.
    pub(crate) fn open(path: &Path, offset: u64, fingerprint_bytes: usize) -> io::Result<Self> {
        if is_gz(path) {
            OpenFile::open_gz(path, offset, fingerprint_bytes)
        } else {
            OpenFile::open_plain(path, offset, fingerprint_bytes)
        }
    }

    /// The file's identity, once its fingerprint is known.
    pub(crate) fn id(&self) -> Option<FileId> {
        self.fingerprint.map(|(fingerprint, _)| FileId {
            dev: self.dev,
            inode: self.inode,
            fingerprint,
        })
    }

    /// The identity to report before the fingerprint is known (fingerprint 0).
    pub(crate) fn id_or_zero(&self) -> FileId {
        self.id().unwrap_or(FileId {
            dev: self.dev,
            inode: self.inode,
            fingerprint: 0,
        })
    }

    /// Device and inode of the handle.
    pub(crate) fn dev_inode(&self) -> (u64, u64) {
        (self.dev, self.inode)
    }

    /// Offset just past the last byte read.
    pub(crate) fn read_to(&self) -> u64 {
        self.read_to
    }

    /// Offset just past the last byte handed on.
    pub(crate) fn handed_to(&self) -> u64 {
        self.read_to - self.filled as u64
    }

    /// When bytes last arrived.
    pub(crate) fn last_growth(&self) -> Instant {
        self.last_growth
    }

    /// True when a compressed file, which never grows.
    pub(crate) fn is_final(&self) -> bool {
        self.is_final
    }

    /// Computes the fingerprint if it is not known yet and the file now has
    /// enough bytes for it.
    fn identify(&mut self, fingerprint_bytes: usize) -> io::Result<()> {
        if self.fingerprint.is_some() {
            return Ok(());
        }
        if let Input::Plain(file) = &self.input {
            let prefix = read_prefix(file, fingerprint_bytes)?;
            self.fingerprint = fingerprint_span(&prefix, fingerprint_bytes, false)
                .map(|len| (xxh3_64(&prefix[..len]), len));
        }
        Ok(())
    }

    /// Fixes the fingerprint of a file that is known not to grow any more,
    /// so that a short unterminated first line gets one.
    pub(crate) fn identify_as_final(&mut self, fingerprint_bytes: usize) -> io::Result<()> {
        if self.fingerprint.is_some() {
            return Ok(());
        }
        if let Input::Plain(file) = &self.input {
            let prefix = read_prefix(file, fingerprint_bytes)?;
            self.fingerprint = fingerprint_span(&prefix, fingerprint_bytes, true)
                .map(|len| (xxh3_64(&prefix[..len]), len));
        }
        Ok(())
    }

    /// True when the bytes the fingerprint was taken from are no longer the
    /// same (the file was truncated or rewritten). Always false for
    /// compressed files and files without a fingerprint yet.
    pub(crate) fn is_prefix_changed(&self, fingerprint_bytes: usize) -> io::Result<bool> {
        let (Input::Plain(file), Some((fingerprint, len))) = (&self.input, self.fingerprint) else {
            return Ok(false);
        };
        let prefix = read_prefix(file, fingerprint_bytes.max(len))?;
        Ok(prefix.len() < len || xxh3_64(&prefix[..len]) != fingerprint)
    }

    /// The file's size now, through the handle (compressed files: the bytes
    /// read so far).
    pub(crate) fn size(&self) -> io::Result<u64> {
        match &self.input {
            Input::Plain(file) => Ok(file.metadata()?.len()),
            Input::Gz(_) => Ok(self.read_to),
        }
    }

    /// Goes back to byte 0 and forgets the fingerprint (after a truncation
    /// or a rewrite).
    pub(crate) fn restart(&mut self, fingerprint_bytes: usize) -> io::Result<()> {
        match &mut self.input {
            Input::Plain(file) => {
                file.seek(SeekFrom::Start(0))?;
            }
            Input::Gz(decoder) => {
                let mut file = decoder.get_ref().get_ref().try_clone()?;
                file.seek(SeekFrom::Start(0))?;
                **decoder = MultiGzDecoder::new(BufReader::new(file));
                self.read_to = 0;
                self.filled = 0;
                return Ok(());
            }
        }
        self.read_to = 0;
        self.filled = 0;
        self.fingerprint = None;
        self.last_growth = Instant::now();
        self.identify(fingerprint_bytes)
    }

    /// Reads once, up to `buf_size` bytes (more when a single line is longer),
    /// and returns the complete lines read so far.
    pub(crate) fn read_lines(
        &mut self,
        buf_size: usize,
        fingerprint_bytes: usize,
        pool: &BufferPool,
    ) -> io::Result<Read1> {
        // The buffer doubles only while one line fills it entirely.
        let wanted = if self.filled < buf_size {
            buf_size
        } else {
            self.filled * 2
        };
        if self.pending.len() < wanted {
            self.pending.resize(wanted, 0);
        }
        let room = &mut self.pending[self.filled..];
        let count = match &mut self.input {
            Input::Plain(file) => file.read(room)?,
            Input::Gz(decoder) => decoder.read(room)?,
        };
        if count == 0 {
            return Ok(Read1::Eof);
        }
        self.filled += count;
        self.read_to += count as u64;
        self.last_growth = Instant::now();
        self.identify(fingerprint_bytes)?;

        let Some(last_newline) = memchr::memrchr(b'\n', &self.pending[..self.filled]) else {
            return Ok(Read1::Partial);
        };
        if self.fingerprint.is_none() {
            return Ok(Read1::Partial);
        }
        let start = self.handed_to();
        let data = self.split_off_lines(last_newline + 1, buf_size, pool);
        let caught_up = self.read_to >= self.size()?;
        Ok(Read1::Lines {
            start,
            data,
            caught_up,
        })
    }

    /// Takes `pending[..cut]` out as a chunk's data; the rest stays pending.
    fn split_off_lines(&mut self, cut: usize, buf_size: usize, pool: &BufferPool) -> Vec<u8> {
        let left = self.filled - cut;
        let mut rest = pool.take(buf_size.max(left));
        rest[..left].copy_from_slice(&self.pending[cut..self.filled]);
        let mut data = std::mem::replace(&mut self.pending, rest);
        data.truncate(cut);
        self.filled = left;
        data
    }

    /// Moves the read position `count` bytes on (for a compressed file, by
    /// decompressing them), stopping early at the end of the file.
    pub(crate) fn skip(&mut self, count: u64) -> io::Result<()> {
        let skipped = match &mut self.input {
            Input::Plain(file) => {
                let target = self.read_to + count;
                file.seek(SeekFrom::Start(target))?;
                count
            }
            Input::Gz(decoder) => io::copy(&mut decoder.take(count), &mut io::sink())?,
        };
        self.read_to += skipped;
        Ok(())
    }

    /// Fills `buf` from the read position as far as the file allows and
    /// moves past those bytes; returns how many were filled.
    pub(crate) fn read_into(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let count = match &mut self.input {
                Input::Plain(file) => file.read(&mut buf[filled..])?,
                Input::Gz(decoder) => decoder.read(&mut buf[filled..])?,
            };
            if count == 0 {
                break;
            }
            filled += count;
        }
        self.read_to += filled as u64;
        Ok(filled)
    }

    /// The modification time of the handle's file, in nanoseconds since the
    /// Unix epoch.
    pub(crate) fn modified_nanos(&self) -> io::Result<i128> {
        let meta = match &self.input {
            Input::Plain(file) => file.metadata()?,
            Input::Gz(decoder) => decoder.get_ref().get_ref().metadata()?,
        };
        Ok(mtime_nanos(&meta))
    }

    /// Takes the partial last line, for a file that will not grow any more.
    pub(crate) fn take_unterminated(&mut self) -> Option<(u64, Vec<u8>)> {
        if self.filled == 0 {
            return None;
        }
        let start = self.handed_to();
        let mut data = std::mem::take(&mut self.pending);
        data.truncate(self.filled);
        self.filled = 0;
        Some((start, data))
    }
}

/// The modification time in `meta`, in nanoseconds since the Unix epoch.
pub(crate) fn mtime_nanos(meta: &std::fs::Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

/// True when `path` names a gzip file.
pub(crate) fn is_gz(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "gz")
}

/// Up to `len` bytes from the start of `file`, without moving its position.
fn read_prefix(file: &File, len: usize) -> io::Result<Vec<u8>> {
    let mut prefix = vec![0; len];
    let mut filled = 0;
    while filled < len {
        let count = file.read_at(&mut prefix[filled..], filled as u64)?;
        if count == 0 {
            break;
        }
        filled += count;
    }
    prefix.truncate(filled);
    Ok(prefix)
}
