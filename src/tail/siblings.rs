//! Rotated siblings of a live log file, in the order they were rotated.
//!
//! A sibling of `access.log` is a file in the same directory named
//! `access.log.<suffix>` or `access.log-<suffix>`, optionally ending in `.gz`:
//! Squid's `access.log.0`…`.9`, logrotate's `access.log.1`, `access.log.2.gz`,
//! and dated names such as `access.log-20240301`. Numbered suffixes are newer
//! the smaller they are; other suffixes (dates) are newer the larger they
//! sort. This module only lists and orders; it owns no state.

use std::io;
use std::path::{Path, PathBuf};

/// Most digits of a numbered rotation suffix (`.0` … `.9999`).
const MAX_COUNT_DIGITS: usize = 4;

/// Where a sibling sits in rotation order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Age {
    /// A dated or otherwise named suffix; larger sorts newer.
    Named(String),
    /// A numbered suffix, stored negated so that larger numbers sort older.
    Numbered(i64),
}

/// Most listings taken while looking for two that agree.
const MAX_LISTINGS: usize = 5;

/// The rotated siblings of `live`, oldest first. A missing directory gives
/// an empty list.
///
/// A directory read while files are being renamed can miss a file that
/// moves from one name to another, so the directory is listed until two
/// listings agree on every name and inode (at most [`MAX_LISTINGS`] times).
pub(crate) fn siblings_oldest_first(live: &Path) -> io::Result<Vec<PathBuf>> {
    use std::os::unix::fs::MetadataExt;
    let inodes = |paths: &[PathBuf]| -> Vec<Option<u64>> {
        paths
            .iter()
            .map(|p| std::fs::metadata(p).ok().map(|m| m.ino()))
            .collect()
    };
    let mut previous = list_once(live)?;
    let mut previous_inodes = inodes(&previous);
    for _ in 1..MAX_LISTINGS {
        let current = list_once(live)?;
        let current_inodes = inodes(&current);
        if current == previous && current_inodes == previous_inodes {
            break;
        }
        (previous, previous_inodes) = (current, current_inodes);
    }
    Ok(previous)
}

/// One listing of the siblings of `live`, oldest first.
fn list_once(live: &Path) -> io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(name)) = (live.parent(), live.file_name()) else {
        return Ok(Vec::new());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let name = name.to_string_lossy();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };

    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if let Some(age) = age_of(&name, &file_name) {
            found.push((age, dir.join(&file_name)));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, path)| path).collect())
}

/// The rotation age of `candidate` as a sibling of `live`, or `None` when it
/// is not one.
fn age_of(live: &str, candidate: &str) -> Option<Age> {
    let rest = candidate.strip_prefix(live)?;
    let suffix = rest.strip_prefix('.').or_else(|| rest.strip_prefix('-'))?;
    let suffix = suffix.strip_suffix(".gz").unwrap_or(suffix);
    if suffix.is_empty() {
        return None;
    }
    // A rotation count has a few digits; a longer number is a date
    // (`-20240301`) or a timestamp, which sorts by name.
    let is_count = suffix.len() <= MAX_COUNT_DIGITS && suffix.bytes().all(|b| b.is_ascii_digit());
    match suffix.parse::<i64>() {
        Ok(number) if is_count => Some(Age::Numbered(-number)),
        _ => Some(Age::Named(suffix.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_siblings_sort_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "access.log",
            "access.log.0",
            "access.log.2.gz",
            "access.log.1",
            "other.log",
        ] {
            std::fs::write(dir.path().join(name), b"x\n").unwrap();
        }
        let names: Vec<String> = siblings_oldest_first(&dir.path().join("access.log"))
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["access.log.2.gz", "access.log.1", "access.log.0"]);
    }

    #[test]
    fn dated_siblings_sort_by_date() {
        assert!(age_of("a.log", "a.log-20240101") < age_of("a.log", "a.log-20240102.gz"));
        assert_eq!(age_of("a.log", "a.logx"), None);
        assert_eq!(age_of("a.log", "a.log"), None);
    }
}
