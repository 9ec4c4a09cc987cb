//! Reading historic files for `import`: plain or gzip (detected by content,
//! multi-member as logrotate writes it), cut into chunks of whole lines with
//! the same file fingerprint and offsets the tailer would give, so that
//! importing a file that was already tailed adds no rows.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;
use tokio::sync::mpsc;

use super::PipelineError;
use crate::tail::{BufferPool, Chunk, FileId, fingerprint_reader};

/// One file to import and the index of the parser for it.
#[derive(Debug, Clone)]
pub struct ImportFile {
    /// The file.
    pub path: PathBuf,
    /// Which parser (see [`super::source::SourceParser`]) reads it.
    pub parser: usize,
}

/// Sizes that must match the tailer's for ids to agree.
#[derive(Debug, Clone, Copy)]
pub struct ReadSizes {
    /// `tail.fingerprint_bytes`.
    pub fingerprint_bytes: usize,
    /// `tail.read_buffer_bytes`.
    pub read_buffer_bytes: usize,
}

/// True when the file starts with gzip's magic bytes.
pub fn is_gzip(path: &Path) -> io::Result<bool> {
    let mut magic = [0u8; 2];
    let mut file = File::open(path)?;
    let read = file.read(&mut magic)?;
    Ok(read == 2 && magic == [0x1f, 0x8b])
}

/// Opens a file for reading, decompressing gzip; `consumed` (when given)
/// counts the bytes read from disk.
fn open(path: &Path, consumed: Option<Arc<AtomicU64>>) -> io::Result<Box<dyn Read + Send>> {
    let file = Counted {
        inner: File::open(path)?,
        consumed,
    };
    if is_gzip(path)? {
        Ok(Box::new(MultiGzDecoder::new(BufReader::new(file))))
    } else {
        Ok(Box::new(file))
    }
}

/// A reader that adds what it reads to a shared counter, for progress.
struct Counted {
    inner: File,
    consumed: Option<Arc<AtomicU64>>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        if let Some(consumed) = &self.consumed {
            consumed.fetch_add(read as u64, Ordering::Relaxed);
        }
        Ok(read)
    }
}

/// Reads every file in turn, sending chunks until done or the receiver is
/// gone. Blocking: run it on a blocking thread. `consumed` counts the bytes
/// read from disk as they are read (compressed bytes for `.gz`), for progress.
pub fn read_files(
    files: &[ImportFile],
    chunks_tx: &mpsc::Sender<Chunk>,
    pool: &BufferPool,
    sizes: ReadSizes,
    consumed: &Arc<AtomicU64>,
) -> Result<(), PipelineError> {
    for file in files {
        let error = |source| PipelineError::Read {
            path: file.path.display().to_string(),
            source,
        };
        let metadata = std::fs::metadata(&file.path).map_err(error)?;
        let Some(fingerprint) = fingerprint_reader(
            open(&file.path, None).map_err(error)?,
            sizes.fingerprint_bytes,
        )
        .map_err(error)?
        else {
            tracing::info!(path = %file.path.display(), "empty file; nothing to import");
            continue;
        };
        let id = FileId {
            dev: metadata.dev(),
            inode: metadata.ino(),
            fingerprint,
        };
        let reader = open(&file.path, Some(consumed.clone())).map_err(error)?;
        let sent = send_chunks(reader, file, id, chunks_tx, pool, sizes.read_buffer_bytes)
            .map_err(error)?;
        if !sent {
            break;
        }
    }
    Ok(())
}

/// Cuts one file into chunks of whole lines; a final line without a newline
/// is sent last, flagged. Returns false when the receiver went away.
fn send_chunks(
    mut reader: Box<dyn Read + Send>,
    file: &ImportFile,
    id: FileId,
    chunks_tx: &mpsc::Sender<Chunk>,
    pool: &BufferPool,
    read_size: usize,
) -> io::Result<bool> {
    let path: Arc<Path> = Arc::from(file.path.as_path());
    let mut offset = 0u64;
    let mut carry: Vec<u8> = Vec::new();
    loop {
        // A pooled buffer comes back with its old bytes: empty it first.
        let mut data = pool.take(read_size + carry.len());
        data.clear();
        data.append(&mut carry);
        let filled = data.len();
        data.resize(filled + read_size, 0);
        let read = read_full(&mut reader, &mut data[filled..])?;
        data.truncate(filled + read);
        // read_full stops short only at the end of the input.
        let at_end = read < read_size;

        let cut = if at_end {
            data.len()
        } else {
            match memchr::memrchr(b'\n', &data) {
                Some(newline) => newline + 1,
                None => {
                    carry = data;
                    continue;
                }
            }
        };
        carry.extend_from_slice(&data[cut..]);
        data.truncate(cut);
        if data.is_empty() && at_end {
            return Ok(true);
        }
        let unterminated = at_end && data.last() != Some(&b'\n');
        let chunk = Chunk {
            source: file.parser,
            path: Arc::clone(&path),
            file: id,
            start: offset,
            caught_up: at_end,
            unterminated,
            data,
        };
        offset = chunk.end();
        if chunks_tx.blocking_send(chunk).is_err() {
            return Ok(false);
        }
        if at_end {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the reader is at its end.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(content: &[u8], gz: bool, read_size: usize) -> Vec<Chunk> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log.1");
        let mut file = File::create(&path).unwrap();
        if gz {
            let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
            encoder.write_all(content).unwrap();
            encoder.finish().unwrap();
        } else {
            file.write_all(content).unwrap();
        }
        let (tx, mut rx) = mpsc::channel(1024);
        let files = [ImportFile { path, parser: 0 }];
        let sizes = ReadSizes {
            fingerprint_bytes: 256,
            read_buffer_bytes: read_size,
        };
        read_files(&files, &tx, &BufferPool::default(), sizes, &Arc::default()).unwrap();
        drop(tx);
        let mut chunks = Vec::new();
        while let Ok(chunk) = rx.try_recv() {
            chunks.push(chunk);
        }
        chunks
    }

    #[test]
    fn chunks_hold_whole_lines_with_their_offsets() {
        let content = b"first line\nsecond\nthird one\n";
        let chunks = collect(content, false, 8);
        let lines: Vec<(u64, Vec<u8>)> = chunks
            .iter()
            .flat_map(|c| c.lines().map(|l| (l.start, l.text.to_vec())))
            .collect();
        assert_eq!(
            lines,
            vec![
                (0, b"first line".to_vec()),
                (11, b"second".to_vec()),
                (18, b"third one".to_vec())
            ]
        );
        assert!(chunks.last().unwrap().caught_up);
    }

    #[test]
    fn gzip_gives_the_same_fingerprint_and_offsets_as_plain() {
        let content = b"1709647387.123 a\n1709647388.000 b\nunfinished";
        let plain = collect(content, false, 16);
        let gz = collect(content, true, 16);
        assert_eq!(plain[0].file.fingerprint, gz[0].file.fingerprint);
        let ends = |c: &[Chunk]| c.iter().map(Chunk::end).collect::<Vec<_>>();
        assert_eq!(ends(&plain), ends(&gz));
        assert!(gz.last().unwrap().unterminated);
    }
}
