//! Tails one file from byte 0 to its end through the real tailer, splitting
//! every chunk into lines, then prints the line count, the time taken and
//! the peak resident memory. Used by `bench/tail.sh`.

use std::sync::Arc;
use std::time::Instant;

use egress_audit::checkpoint::Checkpoints;
use egress_audit::config::{Config, SourceConfig, StartAt};
use egress_audit::tail::{StartFrom, TailCounters, Tailer};
use tokio::sync::{mpsc, watch};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: FILE"))?;
    let size = std::fs::metadata(&path)?.len();
    let state = tempfile::tempdir()?;
    let config = Config {
        state_dir: state.path().to_path_buf(),
        sources: vec![SourceConfig {
            path: path.clone(),
            name: Some("bench".into()),
            format: None,
            logformat: None,
            squid_conf: None,
            group: None,
            start_at: StartAt::Beginning,
        }],
        ..Config::default()
    };

    let started = Instant::now();
    let mut checkpoints = Checkpoints::load(&config.state_dir)?;
    let counters = Arc::new(TailCounters::default());
    let tailer = Tailer::new(&config, &mut checkpoints, StartFrom::Checkpoints, counters)?;
    let pool = tailer.buffer_pool();
    let (chunks_tx, mut chunks_rx) = mpsc::channel(16);
    let (stop_tx, stop_rx) = watch::channel(false);
    let handle = tailer.spawn(chunks_tx, stop_rx)?;

    let (mut lines, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = chunks_rx.recv().await {
        for line in chunk.lines() {
            lines += 1;
            bytes += line.text.len() as u64 + 1;
        }
        let end = chunk.end();
        pool.give_back(chunk.data);
        if end >= size {
            break;
        }
    }
    let elapsed = started.elapsed();
    stop_tx.send(true)?;
    handle.wait().await?;

    println!(
        "lines={lines} bytes={bytes} seconds={:.3} mib_per_s={:.0} peak_rss_kib={}",
        elapsed.as_secs_f64(),
        bytes as f64 / 1_048_576.0 / elapsed.as_secs_f64(),
        peak_rss_kib()
    );
    Ok(())
}

/// VmHWM from /proc/self/status: the peak resident set size.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
