//! File fingerprints: a stable name for a file's contents, taken from its start.
//!
//! The fingerprint is the xxh3 (64-bit) hash of the file's first line,
//! including its `\n`, or of its first `fingerprint_bytes` bytes when the first
//! line is longer. The same bytes give the same value whether the file is read
//! live, after a rename or decompressed from `.gz`, which matters because the
//! fingerprint is part of every row's id. This module owns no state.

use std::io::{self, Read};

use xxhash_rust::xxh3::xxh3_64;

/// The fingerprint of a file that starts with `prefix`, or `None` while it
/// cannot be known yet.
///
/// `prefix` holds the file's first bytes (at most `fingerprint_bytes` are
/// looked at). The value is known once the first line is complete or
/// `fingerprint_bytes` are present. When `is_final` is true the file will not
/// grow (a rotated or compressed file), so a shorter, unterminated first line
/// is hashed as it stands; an empty file has no fingerprint.
pub fn fingerprint_of(prefix: &[u8], fingerprint_bytes: usize, is_final: bool) -> Option<u64> {
    fingerprint_span(prefix, fingerprint_bytes, is_final).map(|len| xxh3_64(&prefix[..len]))
}

/// How many bytes of `prefix` the fingerprint covers, under the rules of
/// [`fingerprint_of`].
pub(crate) fn fingerprint_span(
    prefix: &[u8],
    fingerprint_bytes: usize,
    is_final: bool,
) -> Option<usize> {
    let window = &prefix[..prefix.len().min(fingerprint_bytes)];
    match memchr::memchr(b'\n', window) {
        Some(newline) => Some(newline + 1),
        None if window.len() == fingerprint_bytes => Some(window.len()),
        None if is_final && !window.is_empty() => Some(window.len()),
        None => None,
    }
}

/// The fingerprint of everything `reader` yields, read as a finished file.
///
/// Reads at most `fingerprint_bytes`. Use it on a plain file or on a
/// `flate2::read::MultiGzDecoder` over a `.gz` file: both give the value the
/// tailer gave the same contents. `Ok(None)` means the reader was empty.
pub fn fingerprint_reader<R: Read>(reader: R, fingerprint_bytes: usize) -> io::Result<Option<u64>> {
    let mut prefix = Vec::with_capacity(fingerprint_bytes);
    reader
        .take(fingerprint_bytes as u64)
        .read_to_end(&mut prefix)?;
    Ok(fingerprint_of(&prefix, fingerprint_bytes, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_alone_is_hashed() {
        let a = fingerprint_of(b"one\ntwo\n", 256, false);
        let b = fingerprint_of(b"one\nsomething else", 256, false);
        assert_eq!(a, b);
        assert_eq!(a, Some(xxh3_64(b"one\n")));
    }

    #[test]
    fn unfinished_short_first_line_has_no_fingerprint_yet() {
        assert_eq!(fingerprint_of(b"partial", 256, false), None);
        assert_eq!(fingerprint_of(b"", 256, true), None);
    }

    #[test]
    fn finished_short_file_is_hashed_whole() {
        assert_eq!(
            fingerprint_of(b"partial", 256, true),
            Some(xxh3_64(b"partial"))
        );
    }

    #[test]
    fn long_first_line_is_cut_at_fingerprint_bytes() {
        let line = vec![b'x'; 300];
        assert_eq!(
            fingerprint_of(&line, 256, false),
            Some(xxh3_64(&line[..256]))
        );
    }

    #[test]
    fn reader_and_live_prefix_agree() {
        let text = b"1709647387.123 157 192.0.2.10 TCP_MISS/200\nmore\n";
        let live = fingerprint_of(text, 256, false);
        assert_eq!(fingerprint_reader(&text[..], 256).unwrap(), live);
    }
}
