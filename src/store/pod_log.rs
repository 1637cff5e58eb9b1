//! Per-pod log buffers: appended by `UploadLogs`, read and followed by `GetLogs`.
//!
//! Each pod owns one [`PodLog`] (created with the pod, closed when it is
//! deleted). Lines are numbered from 0 in upload order; a reader keeps a
//! cursor (the number of its next line) and reads in batches, so a follower
//! costs nothing per line while it waits and a slow follower never holds up
//! an upload. Retention is by bytes, counted by [`line_cost`]: beyond the
//! limit the oldest lines are dropped, and a cursor that points before the
//! oldest retained line simply continues from it.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;

/// The most lines returned by one [`PodLog::read`]...
const READ_BATCH_LINES: usize = 1_000;
/// ...and the most bytes: each `GetLogs` message stays well under the 4 MiB
/// gRPC limit.
const READ_BATCH_BYTES: usize = 1 << 20;

/// What a kept line costs beyond its text: its `String`, its slot in the
/// queue and the allocator's rounding (measured: RELIABILITY.md).
const LINE_OVERHEAD: usize = 40;

/// The bytes a kept line counts against a log's limit: its text and its
/// bookkeeping, so that a log of many tiny lines stays within its limit in
/// memory too (the soak that showed why is in RELIABILITY.md).
pub fn line_cost(line: &str) -> usize {
    line.len() + LINE_OVERHEAD
}

/// The log of one pod: its retained lines, numbered in upload order.
pub struct PodLog {
    buffer: Mutex<Buffer>,
    /// Bumped on every append and on close, to wake followers.
    updates: watch::Sender<()>,
    max_bytes: usize,
}

struct Buffer {
    lines: VecDeque<String>,
    /// The number of the oldest retained line.
    first: u64,
    bytes: usize,
    closed: bool,
}

/// One batch of lines and the cursor to read the next batch from.
#[derive(Debug, Default)]
pub struct LogBatch {
    /// The lines, oldest first.
    pub lines: Vec<String>,
    /// The cursor of the line after the last one in `lines`.
    pub next: u64,
    /// The log was closed (its pod deleted) and every line has been read.
    pub at_end_of_closed_log: bool,
}

impl PodLog {
    /// An empty log that keeps at most `max_bytes` (by [`line_cost`]).
    pub fn new(max_bytes: usize) -> Self {
        PodLog {
            buffer: Mutex::new(Buffer {
                lines: VecDeque::new(),
                first: 0,
                bytes: 0,
                closed: false,
            }),
            updates: watch::Sender::new(()),
            max_bytes,
        }
    }

    /// Appends lines in order and wakes followers.
    pub fn append(&self, lines: Vec<String>) {
        {
            let mut buffer = self.lock();
            for line in lines {
                buffer.bytes += line_cost(&line);
                buffer.lines.push_back(line);
            }
            while buffer.bytes > self.max_bytes {
                let Some(dropped) = buffer.lines.pop_front() else {
                    break;
                };
                buffer.bytes -= line_cost(&dropped);
                buffer.first += 1;
            }
        }
        self.updates.send_replace(());
    }

    /// Marks the log as finished: followers end after the last line.
    pub fn close(&self) {
        self.lock().closed = true;
        self.updates.send_replace(());
    }

    /// The cursor of the `n`th line from the end (0 = the oldest retained line).
    pub fn tail_cursor(&self, n: u32) -> u64 {
        let buffer = self.lock();
        let end = buffer.first + buffer.lines.len() as u64;
        if n == 0 {
            buffer.first
        } else {
            end.saturating_sub(u64::from(n)).max(buffer.first)
        }
    }

    /// The cursor after the newest line: the number of lines ever appended.
    pub fn end_cursor(&self) -> u64 {
        let buffer = self.lock();
        buffer.first + buffer.lines.len() as u64
    }

    /// Up to one batch of lines from `cursor` on.
    pub fn read(&self, cursor: u64) -> LogBatch {
        let buffer = self.lock();
        let start = cursor.max(buffer.first);
        let skip = (start - buffer.first) as usize;
        let mut lines = Vec::new();
        let mut bytes = 0;
        for line in buffer.lines.iter().skip(skip) {
            if lines.len() == READ_BATCH_LINES
                || (!lines.is_empty() && bytes + line.len() > READ_BATCH_BYTES)
            {
                break;
            }
            bytes += line.len();
            lines.push(line.clone());
        }
        let next = start + lines.len() as u64;
        let end = buffer.first + buffer.lines.len() as u64;
        LogBatch {
            lines,
            next,
            at_end_of_closed_log: buffer.closed && next == end,
        }
    }

    /// A receiver that is marked changed by every later append or close.
    /// Take it before reading, so that no append between a read and the
    /// wait is missed.
    pub fn updates(&self) -> watch::Receiver<()> {
        self.updates.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        // Appends keep the buffer consistent at every step, so a poisoned
        // lock holds usable data.
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(range: std::ops::Range<u32>) -> Vec<String> {
        range.map(|i| format!("line {i}")).collect()
    }

    #[test]
    fn reads_in_batches_from_a_cursor() {
        let log = PodLog::new(usize::MAX);
        log.append(lines(0..2500));
        let first = log.read(0);
        assert_eq!(first.lines.len(), READ_BATCH_LINES);
        assert_eq!(first.next, 1000);
        let rest = log.read(2000);
        assert_eq!(rest.lines.first().map(String::as_str), Some("line 2000"));
        assert_eq!(rest.next, 2500);
        assert!(log.read(2500).lines.is_empty());
    }

    #[test]
    fn tail_and_retention() {
        let log = PodLog::new(10 * line_cost("0000")); // 10 lines of 4 bytes fit
        log.append((0..25).map(|i| format!("{i:04}")).collect());
        assert_eq!(log.tail_cursor(0), 15);
        assert_eq!(log.tail_cursor(3), 22);
        assert_eq!(log.tail_cursor(100), 15);
        let batch = log.read(0);
        assert_eq!(batch.lines.first().map(String::as_str), Some("0015"));
        assert_eq!(batch.lines.len(), 10);
    }

    #[test]
    fn tiny_lines_count_their_overhead() {
        let log = PodLog::new(1 << 20);
        log.append(vec!["x".to_owned(); 1_000_000]);
        let kept = log.end_cursor() - log.tail_cursor(0);
        assert_eq!(kept, (1 << 20) / line_cost("x") as u64);
    }

    #[test]
    fn close_is_seen_after_the_last_line() {
        let log = PodLog::new(usize::MAX);
        log.append(lines(0..3));
        log.close();
        assert!(!log.read(0).lines.is_empty());
        assert!(log.read(0).at_end_of_closed_log);
    }
}
