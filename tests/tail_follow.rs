//! Following a single file: where reading starts, partial lines, latency.

mod common;

use std::time::{Duration, Instant};

use common::{Env, append, numbered, numbered_texts, texts};
use egress_audit::config::StartAt;
use egress_audit::tail::{StartFrom, TailCounters};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_at_end_skips_existing_lines() {
    let env = Env::new();
    append(&env.log, &numbered("old", 0, 3));
    let mut running = env.start(&env.config(StartAt::End), StartFrom::Checkpoints, 16);
    append(&env.log, &numbered("new", 0, 2));
    assert_eq!(texts(&running.lines(2).await), numbered_texts("new", 0, 2));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_at_end_skips_a_partial_last_line_whole() {
    let env = Env::new();
    append(&env.log, "old-1\nold-2-partial");
    let mut running = env.start(&env.config(StartAt::End), StartFrom::Checkpoints, 16);
    append(&env.log, "-finished\nnew-1\n");
    let lines = running.lines(2).await;
    assert_eq!(texts(&lines), ["old-2-partial-finished", "new-1"]);
    assert_eq!(lines[0].start, 6);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_at_beginning_reads_existing_lines_with_offsets() {
    let env = Env::new();
    append(&env.log, "a\nbb\nccc\n");
    let mut running = env.start(&env.config(StartAt::Beginning), StartFrom::Checkpoints, 16);
    let lines = running.lines(3).await;
    let spans: Vec<(u64, u64)> = lines.iter().map(|l| (l.start, l.end)).collect();
    assert_eq!(spans, [(0, 2), (2, 5), (5, 9)]);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_line_is_held_until_its_newline_arrives() {
    let env = Env::new();
    append(&env.log, "");
    let mut running = env.start(&env.config(StartAt::Beginning), StartFrom::Checkpoints, 16);
    append(&env.log, "first\nsec");
    assert_eq!(texts(&running.lines(1).await), ["first"]);
    running.expect_no_lines(Duration::from_millis(400)).await;
    append(&env.log, "ond\n");
    assert_eq!(texts(&running.lines(1).await), ["second"]);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_lines_arrive_within_100ms() {
    let env = Env::new();
    append(&env.log, "");
    let mut config = env.config(StartAt::End);
    // A long poll interval shows the filesystem events are what wake the tailer.
    config.tail.poll_interval = Duration::from_secs(5);
    let mut running = env.start(&config, StartFrom::Checkpoints, 16);
    for round in 0..5 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let written = Instant::now();
        append(&env.log, &format!("line-{round}\n"));
        running.lines(1).await;
        let latency = written.elapsed();
        assert!(
            latency < Duration::from_millis(100),
            "round {round}: {latency:?}"
        );
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_start_ignores_checkpoints() {
    let env = Env::new();
    append(&env.log, &numbered("l", 0, 4));
    let config = env.config(StartAt::Beginning);
    let mut running = env.start(&config, StartFrom::Checkpoints, 16);
    running.lines(4).await;
    running.ack_all();
    running.stop().await;

    let mut again = env.start(&config, StartFrom::Beginning, 16);
    assert_eq!(texts(&again.lines(4).await), numbered_texts("l", 0, 4));
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_after_the_acknowledged_line() {
    let env = Env::new();
    append(&env.log, &numbered("l", 0, 5));
    let config = env.config(StartAt::Beginning);
    let mut running = env.start(&config, StartFrom::Checkpoints, 16);
    running.lines(5).await;
    running.unacked.truncate(3);
    running.ack_all();
    running.stop().await;

    append(&env.log, &numbered("l", 5, 1));
    let mut again = env.start(&config, StartFrom::Checkpoints, 16);
    assert_eq!(texts(&again.lines(3).await), numbered_texts("l", 3, 3));
    again.expect_no_lines(Duration::from_millis(300)).await;
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lines_are_handed_on_whole() {
    let env = Env::new();
    let long = "x".repeat(200_000);
    append(&env.log, &format!("short\n{long}\nafter\n"));
    let mut config = env.config(StartAt::Beginning);
    config.tail.read_buffer_bytes = 4096;
    let mut running = env.start(&config, StartFrom::Checkpoints, 16);
    let lines = running.lines(3).await;
    assert_eq!(lines[1].text.len(), 200_000);
    assert_eq!(lines[2].text, "after");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_is_prompt_while_the_channel_is_full() {
    let env = Env::new();
    append(&env.log, &numbered("l", 0, 10_000));
    let mut config = env.config(StartAt::Beginning);
    config.tail.read_buffer_bytes = 4096;
    let running = env.start(&config, StartFrom::Checkpoints, 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    running.stop().await;
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_file_at_start_is_waited_for_and_read_from_zero() {
    let env = Env::new();
    let mut running = env.start(&env.config(StartAt::End), StartFrom::Checkpoints, 16);
    tokio::time::sleep(Duration::from_millis(200)).await;
    append(&env.log, &numbered("l", 0, 3));
    assert_eq!(texts(&running.lines(3).await), numbered_texts("l", 0, 3));
    let opened = TailCounters::get(&running.counters.opened);
    running.expect_no_lines(Duration::from_millis(300)).await;
    assert_eq!(TailCounters::get(&running.counters.opened), opened);
    running.stop().await;
}
