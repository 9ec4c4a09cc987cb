//! Rotation: every way a followed file can be replaced, and what survives it.

mod common;

use std::fs;
use std::io::Write;
use std::time::Duration;

use common::{Env, append, numbered, numbered_texts, texts, until};
use egress_audit::config::StartAt;
use egress_audit::tail::{StartFrom, TailCounters};

const QUIET: Duration = Duration::from_millis(400);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_and_create_reads_the_old_file_to_its_end_then_the_new_one() {
    let env = Env::new();
    append(&env.log, &numbered("a", 0, 3));
    let mut running = env.start(&env.config(StartAt::Beginning), StartFrom::Checkpoints, 16);
    let first = running.lines(3).await;

    fs::rename(&env.log, env.sibling(".0")).unwrap();
    // The writer still has the old file open and adds to it before reopening.
    append(&env.sibling(".0"), &numbered("a", 3, 2));
    append(&env.log, &numbered("b", 0, 3));

    let rest = running.lines(5).await;
    let mut expected = numbered_texts("a", 3, 2);
    expected.extend(numbered_texts("b", 0, 3));
    assert_eq!(texts(&rest), expected);
    assert_eq!(
        rest[1].file, first[0].file,
        "old lines keep the old file id"
    );
    assert_ne!(rest[2].file.fingerprint, first[0].file.fingerprint);
    assert_eq!(rest[2].start, 0);
    assert_eq!(TailCounters::get(&running.counters.rotated), 1);
    running.expect_no_lines(QUIET).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_unterminated_line_of_a_rotated_file_is_handed_on_after_the_grace() {
    let env = Env::new();
    append(&env.log, "a-1\n");
    let mut running = env.start(&env.config(StartAt::Beginning), StartFrom::Checkpoints, 16);
    running.lines(1).await;

    append(&env.log, "a-2-cut");
    fs::rename(&env.log, env.sibling(".1")).unwrap();
    append(&env.log, "b-1\n");

    let lines = running.lines(2).await;
    assert_eq!(texts(&lines), ["a-2-cut", "b-1"]);
    assert!(lines[0].unterminated);
    assert_eq!((lines[0].start, lines[0].end), (4, 11));
    assert!(!lines[1].unterminated);
    assert_eq!(TailCounters::get(&running.counters.unterminated), 1);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_finished_within_the_grace_is_handed_on_whole() {
    let env = Env::new();
    append(&env.log, "a-1\n");
    let mut config = env.config(StartAt::Beginning);
    config.tail.rotate_grace = Duration::from_secs(2);
    let mut running = env.start(&config, StartFrom::Checkpoints, 16);
    running.lines(1).await;

    let mut old = fs::OpenOptions::new().append(true).open(&env.log).unwrap();
    old.write_all(b"a-2-").unwrap();
    fs::rename(&env.log, env.sibling(".1")).unwrap();
    append(&env.log, "b-1\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    old.write_all(b"done\n").unwrap();

    let lines = running.lines(2).await;
    assert_eq!(texts(&lines), ["a-2-done", "b-1"]);
    assert!(!lines[0].unterminated);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_is_noticed_and_reading_restarts_at_zero() {
    let env = Env::new();
    append(&env.log, &numbered("a", 0, 4));
    let mut running = env.start(&env.config(StartAt::Beginning), StartFrom::Checkpoints, 16);
    running.lines(4).await;

    fs::copy(&env.log, env.sibling(".1")).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&env.log)
        .unwrap()
        .set_len(0)
        .unwrap();
    let counters = running.counters.clone();
    until("the shrink to be noticed", || {
        TailCounters::get(&counters.truncated) == 1
    })
    .await;
    append(&env.log, &numbered("b", 0, 2));

    let lines = running.lines(2).await;
    assert_eq!(texts(&lines), numbered_texts("b", 0, 2));
    assert_eq!(lines[0].start, 0);
    assert_eq!(TailCounters::get(&running.counters.truncated), 1);
    running.expect_no_lines(QUIET).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_with_more_written_than_was_read_is_still_noticed() {
    let env = Env::new();
    append(&env.log, "a-1\n");
    let mut running = env.start(&env.config(StartAt::Beginning), StartFrom::Checkpoints, 16);
    running.lines(1).await;

    // Truncate and write a longer file at once: only the first bytes tell.
    fs::write(&env.log, numbered("b", 0, 3)).unwrap();
    let lines = running.lines(3).await;
    assert_eq!(texts(&lines), numbered_texts("b", 0, 3));
    assert_eq!(lines[0].start, 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_file_is_read_to_its_end_and_its_successor_waited_for() {
    let env = Env::new();
    append(&env.log, &numbered("a", 0, 2));
    let mut running = env.start(&env.config(StartAt::Beginning), StartFrom::Checkpoints, 16);
    running.lines(2).await;

    let mut old = fs::OpenOptions::new().append(true).open(&env.log).unwrap();
    fs::remove_file(&env.log).unwrap();
    old.write_all(numbered("a", 2, 1).as_bytes()).unwrap();
    assert_eq!(texts(&running.lines(1).await), numbered_texts("a", 2, 1));
    drop(old);

    let counters = running.counters.clone();
    until("the deleted file to be closed after the grace", || {
        TailCounters::get(&counters.finished) == 1
    })
    .await;
    append(&env.log, &numbered("b", 0, 2));
    assert_eq!(texts(&running.lines(2).await), numbered_texts("b", 0, 2));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_rotations_in_quick_succession_lose_nothing() {
    let env = Env::new();
    append(&env.log, "");
    let mut running = env.start(&env.config(StartAt::Beginning), StartFrom::Checkpoints, 16);
    let mut expected = Vec::new();
    for generation in 0..4 {
        let prefix = format!("g{generation}");
        append(&env.log, &numbered(&prefix, 0, 3));
        expected.extend(numbered_texts(&prefix, 0, 3));
        squid_rotate(&env, 3);
    }
    append(&env.log, &numbered("live", 0, 1));
    expected.extend(numbered_texts("live", 0, 1));

    let lines = running.lines(expected.len()).await;
    assert_eq!(texts(&lines), expected);
    running.expect_no_lines(QUIET).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_while_the_consumer_is_not_taking_lines_lose_nothing() {
    let env = Env::new();
    append(&env.log, "");
    let mut config = env.config(StartAt::Beginning);
    config.tail.read_buffer_bytes = 4096;
    let mut running = env.start(&config, StartFrom::Checkpoints, 1);

    let mut expected = Vec::new();
    for generation in 0..3 {
        let prefix = format!("g{generation}");
        append(&env.log, &numbered(&prefix, 0, 2000));
        expected.extend(numbered_texts(&prefix, 0, 2000));
        tokio::time::sleep(Duration::from_millis(50)).await;
        squid_rotate(&env, 3);
    }
    append(&env.log, &numbered("live", 0, 10));
    expected.extend(numbered_texts("live", 0, 10));

    let lines = running.lines(expected.len()).await;
    assert_eq!(texts(&lines), expected);
    running.expect_no_lines(QUIET).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_while_stopped_the_checkpointed_file_is_finished_first() {
    let env = Env::new();
    append(&env.log, &numbered("a", 0, 3));
    let config = env.config(StartAt::Beginning);
    let mut running = env.start(&config, StartFrom::Checkpoints, 16);
    running.lines(3).await;
    running.unacked.truncate(1);
    running.ack_all();
    running.stop().await;

    // While stopped: more lines, Squid's own rotation twice, new lines.
    append(&env.log, &numbered("a", 3, 1));
    squid_rotate(&env, 3);
    append(&env.log, &numbered("b", 0, 2));
    squid_rotate(&env, 3);
    append(&env.log, &numbered("c", 0, 2));

    let mut again = env.start(&config, StartFrom::Checkpoints, 16);
    let mut expected = numbered_texts("a", 1, 3);
    expected.extend(numbered_texts("b", 0, 2));
    expected.extend(numbered_texts("c", 0, 2));
    let lines = again.lines(expected.len()).await;
    assert_eq!(texts(&lines), expected);
    assert_eq!(lines[0].start, 8, "resumed from the checkpointed offset");
    again.expect_no_lines(QUIET).await;
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_and_compressed_while_stopped_the_gz_file_is_finished_first() {
    let env = Env::new();
    append(&env.log, &numbered("a", 0, 3));
    let config = env.config(StartAt::Beginning);
    let mut running = env.start(&config, StartFrom::Checkpoints, 16);
    running.lines(3).await;
    running.unacked.truncate(2);
    running.ack_all();
    let checkpointed = running.checkpoints.get(&env.log).unwrap().file;
    running.stop().await;

    // logrotate with compress and dateext: access.log-20240301.gz
    let old = fs::read(&env.log).unwrap();
    let gz = fs::File::create(env.sibling("-20240301.gz")).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(gz, flate2::Compression::default());
    encoder.write_all(&old).unwrap();
    encoder.finish().unwrap();
    fs::remove_file(&env.log).unwrap();
    append(&env.log, &numbered("b", 0, 2));

    let mut again = env.start(&config, StartFrom::Checkpoints, 16);
    let lines = again.lines(3).await;
    let mut expected = numbered_texts("a", 2, 1);
    expected.extend(numbered_texts("b", 0, 2));
    assert_eq!(texts(&lines), expected);
    assert_eq!(lines[0].file.fingerprint, checkpointed.fingerprint);
    again.expect_no_lines(QUIET).await;
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_file_is_reported_and_replayed_from_zero() {
    let env = Env::new();
    append(&env.log, "same first line\nxx\nyy\n");
    let config = env.config(StartAt::Beginning);
    let mut running = env.start(&config, StartFrom::Checkpoints, 16);
    running.lines(3).await;
    running.ack_all();
    running.stop().await;

    // Same first line, different bytes before the checkpointed offset.
    fs::write(&env.log, "same first line\nxyz\nw\n").unwrap();
    let mut again = env.start(&config, StartFrom::Checkpoints, 16);
    let lines = again.lines(3).await;
    assert_eq!(texts(&lines), ["same first line", "xyz", "w"]);
    assert_eq!(TailCounters::get(&again.counters.rewritten), 1);
    let entry = again
        .checkpoints
        .get(&env.log)
        .expect("the entry keeps the file");
    assert_eq!(entry.offset, 0, "the stale entry is moved back to 0");
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpointed_file_that_is_gone_is_reported_and_the_live_file_read_whole() {
    let env = Env::new();
    append(&env.log, &numbered("a", 0, 2));
    let config = env.config(StartAt::End);
    let mut running = env.start(&config, StartFrom::Checkpoints, 16);
    append(&env.log, &numbered("a", 2, 1));
    running.lines(1).await;
    running.ack_all();
    running.stop().await;

    fs::remove_file(&env.log).unwrap();
    append(&env.log, &numbered("b", 0, 2));
    let mut again = env.start(&config, StartFrom::Checkpoints, 16);
    assert_eq!(texts(&again.lines(2).await), numbered_texts("b", 0, 2));
    // The new file may reuse the deleted file's inode; it then counts as the
    // checkpointed file truncated and refilled. Either way it is read whole.
    let lost = TailCounters::get(&again.counters.checkpoint_lost);
    let truncated = TailCounters::get(&again.counters.truncated);
    assert_eq!(lost + truncated, 1);
    again.stop().await;
}

/// What `squid -k rotate` does with `logfile_rotate N`: shift `.0`… up by
/// one, rename the live file to `.0`, and reopen (create) the live file.
fn squid_rotate(env: &Env, keep: usize) {
    for n in (0..keep - 1).rev() {
        let from = env.sibling(&format!(".{n}"));
        if from.exists() {
            fs::rename(&from, env.sibling(&format!(".{}", n + 1))).unwrap();
        }
    }
    fs::rename(&env.log, env.sibling(".0")).unwrap();
    append(&env.log, "");
}
