//! Checkpoint files: atomic replacement, recovery, and refusal of corrupt state.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use egress_audit::checkpoint::{
    CHECKPOINT_FILE, CHECKPOINT_TEMP_FILE, CheckpointError, Checkpoints,
};
use egress_audit::tail::{Check, FileId, Position};

fn position(path: &str, fingerprint: u64, offset: u64) -> Position {
    Position {
        path: Arc::from(Path::new(path)),
        file: FileId {
            dev: 3,
            inode: 4,
            fingerprint,
        },
        offset,
        check: Check { len: 1, hash: 5 },
    }
}

#[test]
fn missing_state_directory_means_no_checkpoints_and_is_created_on_save() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("nested/state");
    let mut checkpoints = Checkpoints::load(&state).unwrap();
    assert_eq!(checkpoints.entries().count(), 0);
    checkpoints.record(&position("/l/a.log", 1, 10)).unwrap();
    checkpoints.save().unwrap();
    assert!(state.join(CHECKPOINT_FILE).exists());
    assert!(
        !state.join(CHECKPOINT_TEMP_FILE).exists(),
        "temp file renamed away"
    );
}

#[test]
fn the_file_is_versioned_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut checkpoints = Checkpoints::load(dir.path()).unwrap();
    checkpoints
        .record(&position("/l/a.log", 0xabc, 10))
        .unwrap();
    checkpoints.save().unwrap();
    let text = fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["version"], 1);
    assert_eq!(value["files"][0]["path"], "/l/a.log");
    assert_eq!(value["files"][0]["fingerprint"], "0000000000000abc");
    assert_eq!(value["files"][0]["offset"], 10);
}

#[test]
fn corrupt_file_is_an_error_naming_it_and_the_ways_forward() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(CHECKPOINT_FILE),
        b"{\"version\": 1, \"files\": [",
    )
    .unwrap();
    let error = Checkpoints::load(dir.path()).unwrap_err();
    assert!(matches!(error, CheckpointError::Corrupt { .. }));
    let text = error.to_string();
    assert!(
        text.contains(&dir.path().join(CHECKPOINT_FILE).display().to_string()),
        "{text}"
    );
    assert!(
        text.contains("--from-start") && text.contains("delete"),
        "{text}"
    );
}

#[test]
fn replacing_checkpoints_overwrite_a_corrupt_file_only_once_an_offset_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(CHECKPOINT_FILE);
    fs::write(&path, b"not json").unwrap();
    let error = Checkpoints::load(dir.path()).unwrap_err();
    assert_eq!(
        error.unusable().map(|(p, _)| p.to_path_buf()),
        Some(path.clone())
    );

    let mut checkpoints = Checkpoints::replacing(dir.path());
    checkpoints.save().unwrap();
    assert_eq!(
        fs::read(&path).unwrap(),
        b"not json",
        "nothing committed yet"
    );
    checkpoints.record(&position("/l/a.log", 1, 10)).unwrap();
    checkpoints.save().unwrap();
    let loaded = Checkpoints::load(dir.path()).unwrap();
    assert_eq!(loaded.get(Path::new("/l/a.log")).unwrap().offset, 10);
}

#[test]
fn unknown_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(CHECKPOINT_FILE),
        b"{\"version\": 2, \"files\": []}",
    )
    .unwrap();
    let text = Checkpoints::load(dir.path()).unwrap_err().to_string();
    assert!(text.contains("version 2"), "{text}");
}

#[test]
fn unreadable_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(CHECKPOINT_FILE);
    // A directory where the file should be cannot be read as a file, also
    // for root, which ignores permission bits.
    fs::create_dir(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    let error = Checkpoints::load(dir.path()).unwrap_err();
    assert!(
        matches!(error, CheckpointError::Unreadable { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("--from-start"));
}

#[test]
fn complete_leftover_temp_file_is_preferred() {
    let dir = tempfile::tempdir().unwrap();
    let mut checkpoints = Checkpoints::load(dir.path()).unwrap();
    checkpoints.record(&position("/l/a.log", 1, 20)).unwrap();
    checkpoints.save().unwrap();
    // A crash between writing the temp file and renaming it: the temp file
    // holds offset 20, the real file still the older 10.
    let real = dir.path().join(CHECKPOINT_FILE);
    fs::rename(&real, dir.path().join(CHECKPOINT_TEMP_FILE)).unwrap();
    let mut older = Checkpoints::load(tempfile::tempdir().unwrap().path()).unwrap();
    older.record(&position("/l/a.log", 1, 10)).unwrap();
    older.save().unwrap();
    fs::rename(older.path(), &real).unwrap();

    let loaded = Checkpoints::load(dir.path()).unwrap();
    assert_eq!(loaded.get(Path::new("/l/a.log")).unwrap().offset, 20);
}

#[test]
fn torn_temp_file_is_discarded_and_the_real_file_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut checkpoints = Checkpoints::load(dir.path()).unwrap();
    checkpoints.record(&position("/l/a.log", 1, 10)).unwrap();
    checkpoints.save().unwrap();
    fs::write(
        dir.path().join(CHECKPOINT_TEMP_FILE),
        b"{\"version\": 1, \"fi",
    )
    .unwrap();

    let loaded = Checkpoints::load(dir.path()).unwrap();
    assert_eq!(loaded.get(Path::new("/l/a.log")).unwrap().offset, 10);
    assert!(!dir.path().join(CHECKPOINT_TEMP_FILE).exists());
}

#[test]
fn offsets_only_move_forward_for_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut checkpoints = Checkpoints::load(dir.path()).unwrap();
    checkpoints.record(&position("/l/a.log", 1, 30)).unwrap();
    let refused = checkpoints.record(&position("/l/a.log", 1, 20));
    assert!(matches!(
        refused,
        Err(CheckpointError::Backwards {
            held: 30,
            offered: 20,
            ..
        })
    ));
    assert_eq!(checkpoints.get(Path::new("/l/a.log")).unwrap().offset, 30);
}

#[test]
fn a_newer_file_replaces_the_entry_of_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut checkpoints = Checkpoints::load(dir.path()).unwrap();
    checkpoints.record(&position("/l/a.log", 1, 30)).unwrap();
    checkpoints.record(&position("/l/a.log", 2, 5)).unwrap();
    assert_eq!(checkpoints.entries().count(), 1);
    assert_eq!(
        checkpoints
            .get(Path::new("/l/a.log"))
            .unwrap()
            .file
            .fingerprint,
        2
    );
}

#[test]
fn entries_of_vanished_paths_are_forgotten_beyond_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut checkpoints = Checkpoints::load(dir.path()).unwrap();
    let limit = egress_audit::checkpoint::MAX_ENTRIES;
    for n in 0..limit + 10 {
        checkpoints
            .record(&position(&format!("/gone/{n}.log"), 1, 1))
            .unwrap();
    }
    assert_eq!(checkpoints.entries().count(), limit);
}

#[test]
fn saving_without_changes_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut checkpoints = Checkpoints::load(dir.path()).unwrap();
    checkpoints.save().unwrap();
    assert!(!dir.path().join(CHECKPOINT_FILE).exists());
}
