//! A property test: random appends, rotations, truncations, deletions,
//! acknowledgements and crashes, checked against a model of the log.
//!
//! What the model allows, precisely:
//! - Every complete line written is committed exactly once, and the lines of
//!   each file in the order they were written. Lines of different files (a
//!   rotated file and its successor) may interleave: rows are ordered by
//!   their own time in the store, so the order across files does not matter.
//! - A partial line is completed before any rotation, truncation or deletion
//!   (the final unterminated line of a rotated file has its own tests).
//! - Before a copytruncate or a deletion, the consumer first receives and
//!   acknowledges every complete line: both destroy bytes the tailer may not
//!   have read, which is the window those operations have by nature.
//! - A crash drops the tailer and every line not acknowledged; the restarted
//!   tailer must deliver them again from the checkpoint.
//! - At least one line is acknowledged before the first crash, since a source
//!   without a checkpoint starts from its live file and ignores rotated ones.
//! - After a deletion, the model does not crash until a line of a later file
//!   has been acknowledged: a checkpoint naming a deleted file cannot tell a
//!   restarted tailer which rotated files came after it.

mod common;

use std::fs;
use std::time::Duration;

use common::{Env, Running, Seen, append};
use egress_audit::config::{Config, StartAt};
use egress_audit::tail::StartFrom;
use proptest::prelude::*;

/// Rotated generations kept, enough that none is dropped within a case.
const KEEP: usize = 64;

#[derive(Debug, Clone)]
enum Op {
    Append { lines: usize, partial: bool },
    Rotate,
    CopyTruncate,
    Delete,
    Ack,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0usize..6, any::<bool>()).prop_map(|(lines, partial)| Op::Append { lines, partial }),
        2 => Just(Op::Rotate),
        1 => Just(Op::CopyTruncate),
        1 => Just(Op::Delete),
        2 => Just(Op::Ack),
        1 => Just(Op::Crash),
    ]
}

/// The log as written, and what the consumer has committed.
struct Model {
    env: Env,
    config: Config,
    next: usize,
    /// Every complete line written, in order.
    written: Vec<String>,
    /// A partial line in the live file, not yet completed.
    partial: Option<String>,
    /// Lines committed (acknowledged) across all runs, with the fingerprint
    /// of the file each came from.
    committed: Vec<(String, u64)>,
    copies: usize,
    /// True from a deletion until a line written after it is committed.
    is_checkpoint_deleted: bool,
}

impl Model {
    fn line(&mut self) -> String {
        let n = self.next;
        self.next += 1;
        format!("line-{n:05}-{}", "x".repeat(n * 7 % 40))
    }

    fn append(&mut self, lines: usize, partial: bool) {
        let mut text = String::new();
        if let Some(rest) = self.partial.take() {
            text.push_str("-end\n");
            self.written.push(format!("{rest}-end"));
        }
        for _ in 0..lines {
            let line = self.line();
            text.push_str(&line);
            text.push('\n');
            self.written.push(line);
        }
        if partial {
            let line = self.line();
            text.push_str(&line);
            self.partial = Some(line);
        }
        append(&self.env.log, &text);
    }

    fn complete_partial(&mut self) {
        if self.partial.is_some() {
            self.append(0, false);
        }
    }

    fn rotate(&mut self) {
        self.complete_partial();
        for n in (0..KEEP - 1).rev() {
            let from = self.env.sibling(&format!(".{n}"));
            if from.exists() {
                fs::rename(&from, self.env.sibling(&format!(".{}", n + 1))).unwrap();
            }
        }
        if self.env.log.exists() {
            fs::rename(&self.env.log, self.env.sibling(".0")).unwrap();
        }
        append(&self.env.log, "");
    }

    fn copytruncate(&mut self) {
        self.complete_partial();
        if !self.env.log.exists() {
            return;
        }
        let copy = self.env.dir.path().join(format!("copy-{}", self.copies));
        self.copies += 1;
        fs::copy(&self.env.log, copy).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(&self.env.log)
            .unwrap()
            .set_len(0)
            .unwrap();
    }

    fn delete(&mut self) {
        self.complete_partial();
        if self.env.log.exists() {
            fs::remove_file(&self.env.log).unwrap();
        }
    }

    /// Receives every line written but not yet received.
    async fn catch_up(&self, running: &mut Running) {
        let received = self.committed.len() + running.unacked.len();
        let missing = self.written.len().saturating_sub(received);
        running.lines(missing).await;
    }

    fn ack(&mut self, running: &mut Running) {
        self.committed.extend(
            running
                .unacked
                .iter()
                .map(|s: &Seen| (s.text.clone(), s.file.fingerprint)),
        );
        running.ack_all();
    }

    fn receive_available(&self, running: &mut Running) {
        while let Ok(chunk) = running.chunks_rx.try_recv() {
            running.take_chunk(chunk);
        }
    }
}

async fn run_case(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let env = Env::new();
    let mut config = env.config(StartAt::Beginning);
    config.tail.rotate_grace = Duration::from_millis(100);
    config.tail.poll_interval = Duration::from_millis(50);
    config.tail.read_buffer_bytes = 4096;
    let mut model = Model {
        env,
        config,
        next: 0,
        written: Vec::new(),
        partial: None,
        committed: Vec::new(),
        copies: 0,
        is_checkpoint_deleted: false,
    };
    model.append(1, false);
    let mut running = model.env.start(&model.config, StartFrom::Checkpoints, 4);
    model.catch_up(&mut running).await;
    model.ack(&mut running);

    for op in ops {
        match op {
            Op::Append { lines, partial } => model.append(lines, partial),
            Op::Rotate => model.rotate(),
            Op::CopyTruncate | Op::Delete => {
                model.complete_partial();
                model.catch_up(&mut running).await;
                model.ack(&mut running);
                if matches!(op, Op::Delete) {
                    model.delete();
                    model.is_checkpoint_deleted = true;
                } else {
                    model.copytruncate();
                }
            }
            Op::Ack => {
                model.receive_available(&mut running);
                model.ack(&mut running);
            }
            Op::Crash => {
                if model.is_checkpoint_deleted {
                    model.complete_partial();
                    model.append(1, false);
                    model.catch_up(&mut running).await;
                    model.ack(&mut running);
                    model.is_checkpoint_deleted = false;
                }
                running.unacked.clear();
                running.stop().await;
                running = model.env.start(&model.config, StartFrom::Checkpoints, 4);
            }
        }
        model.receive_available(&mut running);
    }

    model.complete_partial();
    model.catch_up(&mut running).await;
    running.expect_no_lines(Duration::from_millis(250)).await;
    model.ack(&mut running);
    running.stop().await;
    // Exactly once: the same lines, each once.
    let mut committed: Vec<&String> = model.committed.iter().map(|(text, _)| text).collect();
    let mut written: Vec<&String> = model.written.iter().collect();
    committed.sort();
    written.sort();
    prop_assert_eq!(committed, written);
    // In order within each file: line numbers only grow.
    let number = |text: &str| text[5..10].parse::<usize>().unwrap();
    let mut last_of_file = std::collections::HashMap::new();
    for (text, fingerprint) in &model.committed {
        let n = number(text);
        if let Some(previous) = last_of_file.insert(*fingerprint, n) {
            prop_assert!(
                previous < n,
                "{text} after line {previous} of the same file"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_complete_line_is_committed_once_and_in_order(
        ops in proptest::collection::vec(op(), 1..20)
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run_case(ops))?;
    }
}
