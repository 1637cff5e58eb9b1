//! How far back the history reaches in time, as well as in count.
//!
//! A count of changes (`--history`) is the right bound for a store that
//! writes at one machine's pace, but a cluster store's write rate grows
//! with its replicas: at thousands of writes a second, 10,000 changes are
//! a few seconds, too few for a watch to resume across a replica's restart.
//! With a window configured, the history also keeps every change published
//! within it, as kube-apiserver's watch cache keeps at least 75 s of events.
//!
//! Rather than a time per change, the cache keeps a mark (a time and the
//! version published then) at most once a second, so the cost is one clock
//! read per change and some seventy marks, and the window is honoured to
//! the second, on the generous side.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How often a mark is taken, at most.
const MARK_EVERY: Duration = Duration::from_secs(1);

/// Marks of when versions were published; see the module docs.
#[derive(Debug, Default)]
pub(super) struct Recent {
    /// Oldest first; the first may be older than the window (it covers the
    /// window's start), the others are within it.
    marks: VecDeque<(Instant, u64)>,
}

impl Recent {
    /// Notes that `version` is being published now, and forgets marks that
    /// no longer cover any of the last `window`.
    pub fn note(&mut self, version: u64, window: Duration) {
        let now = Instant::now();
        let due = self
            .marks
            .back()
            .is_none_or(|(at, _)| now.duration_since(*at) >= MARK_EVERY);
        if due {
            self.marks.push_back((now, version));
        }
        while self
            .marks
            .get(1)
            .is_some_and(|(at, _)| now.duration_since(*at) >= window)
        {
            self.marks.pop_front();
        }
    }

    /// The oldest version that may have been published within the window:
    /// changes from it on are kept whatever their count.
    pub fn kept_from(&self) -> u64 {
        self.marks.front().map_or(u64::MAX, |(_, version)| *version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_cover_the_window_and_no_more() {
        let mut recent = Recent::default();
        assert_eq!(
            recent.kept_from(),
            u64::MAX,
            "nothing published, nothing kept"
        );
        recent.note(10, Duration::from_secs(60));
        recent.note(11, Duration::from_secs(60));
        assert_eq!(recent.kept_from(), 10, "one mark a second: 11 shares 10's");
        // A zero window drops every mark but the newest, which covers now.
        recent.marks.push_back((Instant::now(), 12));
        recent.note(13, Duration::ZERO);
        assert_eq!(recent.kept_from(), 12);
    }
}
