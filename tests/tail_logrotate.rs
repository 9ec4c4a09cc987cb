//! The tailer against the real logrotate, with `create` and `copytruncate`.
//! Fails (never skips) when logrotate is not installed.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Env, append, numbered, numbered_texts, texts};
use egress_audit::config::StartAt;
use egress_audit::tail::{StartFrom, TailCounters};

const LOGROTATE: &str = "/usr/sbin/logrotate";

/// Runs logrotate with `directives` for the env's log, forced, with its own
/// state file.
fn logrotate(env: &Env, directives: &str) {
    assert!(
        Path::new(LOGROTATE).exists(),
        "{LOGROTATE} is missing: install it with `apt-get install logrotate`"
    );
    let conf = env.dir.path().join("logrotate.conf");
    let state = env.dir.path().join("logrotate.state");
    fs::write(
        &conf,
        format!("{} {{\n{directives}\n}}\n", env.log.display()),
    )
    .unwrap();
    let output = Command::new(LOGROTATE)
        .arg("-f")
        .arg("-s")
        .arg(&state)
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "logrotate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logrotate_create_hands_on_every_line_once() {
    let env = Env::new();
    append(&env.log, &numbered("a", 0, 3));
    let mut running = env.start(&env.config(StartAt::Beginning), StartFrom::Checkpoints, 16);
    assert_eq!(texts(&running.lines(3).await), numbered_texts("a", 0, 3));

    append(&env.log, &numbered("a", 3, 2));
    logrotate(&env, "rotate 3\ncreate\nmissingok");
    assert!(
        env.sibling(".1").exists(),
        "logrotate renamed the file to .1"
    );
    append(&env.log, &numbered("b", 0, 3));

    let mut expected = numbered_texts("a", 3, 2);
    expected.extend(numbered_texts("b", 0, 3));
    let lines = running.lines(5).await;
    assert_eq!(texts(&lines), expected);
    assert_eq!(lines[2].start, 0);
    running.expect_no_lines(Duration::from_millis(400)).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logrotate_create_with_compress_reads_the_old_file_through_its_handle() {
    let env = Env::new();
    append(&env.log, &numbered("a", 0, 2));
    let mut running = env.start(&env.config(StartAt::Beginning), StartFrom::Checkpoints, 16);
    running.lines(2).await;

    logrotate(&env, "rotate 3\ncreate\ncompress");
    assert!(
        env.sibling(".1.gz").exists(),
        "logrotate compressed the old file"
    );
    append(&env.log, &numbered("b", 0, 2));
    assert_eq!(texts(&running.lines(2).await), numbered_texts("b", 0, 2));
    running.expect_no_lines(Duration::from_millis(400)).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logrotate_copytruncate_restarts_at_zero() {
    let env = Env::new();
    append(&env.log, &numbered("a", 0, 3));
    let mut running = env.start(&env.config(StartAt::Beginning), StartFrom::Checkpoints, 16);
    // Caught up before the copy: copytruncate loses lines written between
    // the copy and the truncation, and those not yet read at truncation.
    assert_eq!(texts(&running.lines(3).await), numbered_texts("a", 0, 3));

    logrotate(&env, "rotate 3\ncopytruncate");
    assert_eq!(fs::metadata(&env.log).unwrap().len(), 0);
    append(&env.log, &numbered("b", 0, 3));

    let lines = running.lines(3).await;
    assert_eq!(texts(&lines), numbered_texts("b", 0, 3));
    assert_eq!(lines[0].start, 0);
    // Seen as a shrink, or, when the new lines arrive first, as changed bytes.
    let truncated = TailCounters::get(&running.counters.truncated);
    let rewritten = TailCounters::get(&running.counters.rewritten);
    assert_eq!(truncated + rewritten, 1);
    running.expect_no_lines(Duration::from_millis(400)).await;
    running.stop().await;
}
