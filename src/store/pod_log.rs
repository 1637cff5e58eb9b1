//! Per-pod log buffers: appended by `UploadLogs`, read and followed by `GetLogs`.
//!
//! Each pod owns one [`PodLog`] (created with the pod, closed when it is
//! deleted), for one life of the pod: a pod deleted and created again gets
//! a new, empty one. Lines are numbered from 1 in upload order; a reader
//! keeps the number of its next line and reads in batches, so a follower
//! costs nothing per line while it waits and a slow follower never holds up
//! an upload. Retention is by bytes, counted by [`line_cost`]: beyond the
//! limit the oldest lines are dropped, keeping their numbers, and a read
//! from a dropped line continues from the oldest retained one.
//!
//! Where a [`LogBackend`](super::LogBackend) keeps the lines elsewhere
//! (NATS JetStream), the pod's `PodLog` holds no lines: it stands for the pod's life, its [`created`](PodLog::created)
//! version naming it and its [`close`](PodLog::close) ending it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::stream::BoxStream;
use tokio::sync::watch;

use super::error::StoreError;

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

/// Where a read of a log starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStart {
    /// At the oldest retained line.
    Oldest,
    /// At the `n`th line from the end (all of them if there are fewer).
    Tail(u32),
    /// At this line number, or at the oldest retained line if it is newer.
    Line(u64),
}

/// Lines read from a log, in order, in batches.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LogBatch {
    /// The number of the first line.
    pub first_line: u64,
    /// The lines, oldest first; never empty.
    pub lines: Vec<String>,
}

/// A read of a log: its batches, in order. Without follow it ends at the
/// newest line; with follow it ends when the pod is deleted.
pub type LogLines = BoxStream<'static, Result<LogBatch, StoreError>>;

/// The log of one pod: its retained lines, numbered in upload order.
pub struct PodLog {
    buffer: Mutex<Buffer>,
    /// Bumped on every append and on close, to wake followers.
    updates: watch::Sender<()>,
    max_bytes: usize,
    created: u64,
}

struct Buffer {
    lines: VecDeque<String>,
    /// The number of the oldest retained line.
    first: u64,
    bytes: usize,
    closed: bool,
}

impl Buffer {
    /// The number the next appended line gets.
    fn next(&self) -> u64 {
        self.first + self.lines.len() as u64
    }
}

/// What one [`PodLog::read`] gives: a batch, and whether the log ends after it.
#[derive(Debug, Default)]
pub struct LogSlice {
    /// The lines from the first one asked for (or the oldest retained).
    pub batch: LogBatch,
    /// The number of the line after the batch.
    pub next: u64,
    /// The log was closed (its pod deleted) and every line has been read.
    pub at_end_of_closed_log: bool,
}

impl PodLog {
    /// An empty log of the pod created at version `created` (0 where the
    /// store does not know it), keeping at most `max_bytes` (by [`line_cost`]).
    pub fn new(max_bytes: usize, created: u64) -> Self {
        PodLog {
            buffer: Mutex::new(Buffer {
                lines: VecDeque::new(),
                first: 1,
                bytes: 0,
                closed: false,
            }),
            updates: watch::Sender::new(()),
            max_bytes,
            created,
        }
    }

    /// The store version that created this life of the pod, or 0 where the
    /// store does not know it (pods an embedded store loaded from disk).
    pub fn created(&self) -> u64 {
        self.created
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

    /// Appends lines numbered from `first_line` on, as they were before a
    /// restart: the lines before it were dropped, and keep their numbers.
    pub fn restore(&self, first_line: u64, lines: Vec<String>) {
        {
            let mut buffer = self.lock();
            if buffer.lines.is_empty() && first_line > buffer.first {
                buffer.first = first_line;
            }
        }
        self.append(lines);
    }

    /// Marks the log as finished: followers end after the last line.
    pub fn close(&self) {
        self.lock().closed = true;
        self.updates.send_replace(());
    }

    /// Whether the pod is gone.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The number of the line a read from `start` begins with.
    pub fn start(&self, start: LogStart) -> u64 {
        let buffer = self.lock();
        match start {
            LogStart::Oldest => buffer.first,
            LogStart::Tail(0) => buffer.first,
            LogStart::Tail(n) => buffer.next().saturating_sub(u64::from(n)).max(buffer.first),
            LogStart::Line(line) => line.max(buffer.first),
        }
    }

    /// How many lines were ever appended (retained or dropped).
    pub fn end_cursor(&self) -> u64 {
        self.lock().next() - 1
    }

    /// Up to one batch of lines from line number `from` on.
    pub fn read(&self, from: u64) -> LogSlice {
        let buffer = self.lock();
        let start = from.max(buffer.first);
        let skip = usize::try_from(start - buffer.first).unwrap_or(usize::MAX);
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
        LogSlice {
            at_end_of_closed_log: buffer.closed && next >= buffer.next(),
            batch: LogBatch {
                first_line: start,
                lines,
            },
            next,
        }
    }

    /// A receiver that is marked changed by every later append or close.
    /// Take it before reading, so that no append between a read and the
    /// wait is missed.
    pub fn updates(&self) -> watch::Receiver<()> {
        self.updates.subscribe()
    }

    /// Reads this log from `start`: to its newest line, or with `follow`
    /// on until the pod is deleted. The read holds the log, not the pod.
    pub fn lines(self: Arc<Self>, start: LogStart, follow: bool) -> LogLines {
        Box::pin(async_stream::stream! {
            let mut updates = self.updates();
            let mut next = self.start(start);
            loop {
                updates.borrow_and_update();
                let read = self.read(next);
                next = read.next;
                let caught_up = read.batch.lines.is_empty();
                if !caught_up {
                    yield Ok(read.batch);
                }
                if read.at_end_of_closed_log || (caught_up && !follow) {
                    break;
                }
                if caught_up && updates.changed().await.is_err() {
                    break;
                }
            }
        })
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
    fn reads_in_batches_from_a_line_number() {
        let log = PodLog::new(usize::MAX, 1);
        log.append(lines(1..2501));
        let first = log.read(1);
        assert_eq!(first.batch.lines.len(), READ_BATCH_LINES);
        assert_eq!((first.batch.first_line, first.next), (1, 1001));
        let rest = log.read(2001);
        assert_eq!(
            rest.batch.lines.first().map(String::as_str),
            Some("line 2001")
        );
        assert_eq!(rest.next, 2501);
        assert!(log.read(2501).batch.lines.is_empty());
    }

    #[test]
    fn tail_and_retention_keep_the_numbers() {
        let log = PodLog::new(10 * line_cost("0000"), 1); // 10 lines of 4 bytes fit
        log.append((1..26).map(|i| format!("{i:04}")).collect());
        assert_eq!(log.start(LogStart::Oldest), 16);
        assert_eq!(log.start(LogStart::Tail(3)), 23);
        assert_eq!(log.start(LogStart::Tail(100)), 16);
        assert_eq!(log.start(LogStart::Line(2)), 16);
        assert_eq!(log.start(LogStart::Line(20)), 20);
        let read = log.read(1);
        assert_eq!(read.batch.first_line, 16);
        assert_eq!(read.batch.lines.first().map(String::as_str), Some("0016"));
        assert_eq!(read.batch.lines.len(), 10);
        assert_eq!(log.end_cursor(), 25);
    }

    #[test]
    fn a_restored_log_keeps_its_numbers() {
        let log = PodLog::new(usize::MAX, 0);
        log.restore(41, lines(41..43));
        log.restore(43, lines(43..44));
        let read = log.read(0);
        assert_eq!(read.batch.first_line, 41);
        assert_eq!(read.batch.lines, lines(41..44));
    }

    #[test]
    fn tiny_lines_count_their_overhead() {
        let log = PodLog::new(1 << 20, 1);
        log.append(vec!["x".to_owned(); 1_000_000]);
        let kept = log.end_cursor() + 1 - log.start(LogStart::Oldest);
        assert_eq!(kept, (1 << 20) / line_cost("x") as u64);
    }

    #[test]
    fn close_is_seen_after_the_last_line() {
        let log = PodLog::new(usize::MAX, 1);
        log.append(lines(0..3));
        log.close();
        assert!(!log.read(1).batch.lines.is_empty());
        assert!(log.read(1).at_end_of_closed_log);
    }
}
