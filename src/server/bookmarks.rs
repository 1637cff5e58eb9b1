//! When a quiet watch gets a bookmark: one clock for the whole server, not
//! a timer per watcher.
//!
//! [`BookmarkClock`] ticks four times per bookmark interval, from one task.
//! Each stream that asked for bookmarks holds an [`Idle`]: it notes when
//! the stream sends something, and counts the ticks in which it sent
//! nothing. After a full interval of quiet ticks the stream sends a
//! bookmark, so a quiet watch gets one every 1 to 1.25 intervals and a busy
//! one none (its changes carry their versions). An idle watcher costs one
//! wake-up per tick, and nothing while the ticks are far apart.

use std::time::Duration;

use tokio::sync::watch;

use super::signals::Shutdown;

/// Ticks per bookmark interval.
const TICKS_PER_INTERVAL: u32 = 4;

/// The server's bookmark clock. Cloning it is cheap.
#[derive(Clone)]
pub(super) struct BookmarkClock {
    ticks: watch::Receiver<()>,
}

impl BookmarkClock {
    /// Starts ticking for bookmarks every `interval`, until `shutdown`.
    pub fn start(interval: Duration, shutdown: Shutdown) -> Self {
        let (sender, ticks) = watch::channel(());
        let period = (interval / TICKS_PER_INTERVAL).max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut clock = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = clock.tick() => sender.send_replace(()),
                }
            }
        });
        BookmarkClock { ticks }
    }

    /// The quiet-time tracker of one stream.
    pub fn idle(&self) -> Idle {
        let mut ticks = self.ticks.clone();
        ticks.mark_unchanged();
        Idle {
            ticks,
            quiet_ticks: 0,
            sent: false,
        }
    }
}

/// How long one stream has been quiet, in ticks.
pub(super) struct Idle {
    ticks: watch::Receiver<()>,
    quiet_ticks: u32,
    sent: bool,
}

impl Idle {
    /// Notes that the stream sent something.
    pub fn sent(&mut self) {
        self.sent = true;
    }

    /// Resolves once the stream has sent nothing for a whole interval.
    /// Cancel-safe: the ticks counted so far are kept.
    pub async fn due(&mut self) {
        loop {
            if self.ticks.changed().await.is_err() {
                // The clock stopped (shutdown): no more bookmarks.
                std::future::pending::<()>().await;
            }
            if std::mem::take(&mut self.sent) {
                self.quiet_ticks = 0;
                continue;
            }
            self.quiet_ticks += 1;
            if self.quiet_ticks >= TICKS_PER_INTERVAL {
                self.quiet_ticks = 0;
                return;
            }
        }
    }
}

/// [`Idle::due`] of a stream that asked for bookmarks; never, for one that
/// did not.
pub(super) async fn due(idle: &mut Option<Idle>) {
    match idle {
        Some(idle) => idle.due().await,
        None => std::future::pending().await,
    }
}
