//! Stopping on SIGTERM or SIGINT.
//!
//! The first signal asks the pipeline to stop: reading stops, what was read
//! is written and committed, the checkpoint is saved, and the process exits
//! 0, all within the configured deadline. A second signal exits at once; the
//! checkpoint on disk is still correct then, because it is only ever
//! replaced whole (see [`crate::checkpoint`]) and only moves past committed
//! lines, so the next start replays at most what was in flight, which
//! deterministic row ids turn into no duplicates.

use tokio::sync::watch;
use tracing::{info, warn};

/// Exit status after a second signal: 128 + SIGINT, as shells report it.
pub const EXIT_FORCED: i32 = 130;

/// A stop request that many tasks can wait for.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The side that asks for the stop.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

/// A new, untriggered pair.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger { tx }, Shutdown { rx })
}

impl Trigger {
    /// Asks every [`Shutdown`] holder to stop.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

impl Shutdown {
    /// True once a stop was asked for.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// The underlying receiver, for tasks that select on it directly.
    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }

    /// Waits until a stop is asked for (at once if it already was).
    pub async fn wait(&mut self) {
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

/// Listens for SIGTERM and SIGINT: the first triggers `trigger`, the second
/// ends the process at once.
pub fn on_signals(trigger: Trigger) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        info!("stop requested; finishing what was read (a second signal exits at once)");
        trigger.trigger();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        warn!("second stop signal; exiting now, the checkpoint stays at the last commit");
        std::process::exit(EXIT_FORCED);
    });
    Ok(())
}
