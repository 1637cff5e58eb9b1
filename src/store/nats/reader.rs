//! Reading and following a pod's log on JetStream.
//!
//! Reads are direct gets ("the pod's next message at or after sequence
//! S"), which any replica of the stream answers, without a consumer: a
//! read costs JetStream nothing while it waits, and stored lines stay
//! readable while the stream has no leader. A start line is found by
//! binary search over sequences: line numbers grow with them.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::stream::{DirectGetError, DirectGetErrorKind};

use super::records::Record;
use super::shared::{Logs, unavailable};
use crate::store::error::StoreError;
use crate::store::pod_log::{LogBatch, LogLines, LogStart, PodLog};

/// How long a read retries JetStream (while the client moves to another
/// server, say) before it fails.
const READ_PATIENCE: Duration = Duration::from_secs(5);

/// Reads the subject from `start`: to its newest line, or with `follow`
/// on until `life` ends (the pod is deleted).
pub(super) fn read(
    logs: Arc<Logs>,
    subject: String,
    life: Arc<PodLog>,
    start: LogStart,
    follow: bool,
) -> LogLines {
    Box::pin(async_stream::try_stream! {
        // Taken first, so that no line stored after the start is missed.
        let wakeup = follow.then(|| logs.wakeups.watch(&subject));
        let mut ended = life.updates();
        let (mut seq, mut wanted) = position(&logs, &subject, start).await?;
        loop {
            match next_from(&logs, &subject, seq).await? {
                Some(record) => {
                    seq = record.seq + 1;
                    // Lines before the wanted one are not given (again).
                    let skip = wanted.saturating_sub(record.first_line);
                    let skip = usize::try_from(skip).unwrap_or(usize::MAX);
                    if skip < record.lines.len() {
                        wanted = record.end_line();
                        let mut lines = record.lines;
                        yield LogBatch {
                            first_line: record.first_line + skip as u64,
                            lines: lines.split_off(skip),
                        };
                    }
                }
                None => {
                    let Some(wakeup) = &wakeup else { break };
                    if life.is_closed() {
                        break;
                    }
                    let mut newest = wakeup.newest();
                    ended.borrow_and_update();
                    tokio::select! {
                        _ = newest.wait_for(|newest| *newest >= seq) => {}
                        _ = ended.changed() => {}
                    }
                }
            }
        }
    })
}

/// Where a read from `start` begins: the sequence to read from, and the
/// first line number wanted.
async fn position(logs: &Logs, subject: &str, start: LogStart) -> Result<(u64, u64), StoreError> {
    let line = match start {
        LogStart::Oldest | LogStart::Tail(0) => return Ok((1, 1)),
        LogStart::Line(line) => line,
        LogStart::Tail(n) => match last(logs, subject).await? {
            None => return Ok((1, 1)),
            Some(last) => last.end_line().saturating_sub(u64::from(n)).max(1),
        },
    };
    let Some(last) = last(logs, subject).await? else {
        return Ok((1, line));
    };
    if last.end_line() <= line {
        // Not written yet: wait for it after the newest.
        return Ok((last.seq + 1, line));
    }
    let from = first_where(logs, subject, last, |record| record.end_line() > line).await?;
    Ok((from.seq, line))
}

/// The first message of the subject for which `wanted` holds, given that
/// it holds for `last`, the newest, and for every message after one it
/// holds for.
pub(super) async fn first_where(
    logs: &Logs,
    subject: &str,
    last: Record,
    wanted: impl Fn(&Record) -> bool,
) -> Result<Record, StoreError> {
    // Every message of the subject before `low` is unwanted; `best` is
    // wanted, and no message between `high` and it is the subject's.
    let mut best = last;
    let (mut low, mut high) = (1, best.seq);
    while low < high {
        let middle = low + (high - low) / 2;
        match next_from(logs, subject, middle).await? {
            Some(record) if wanted(&record) => {
                high = middle;
                best = record;
            }
            Some(record) => low = record.seq + 1,
            // Purged under us: what is left starts later.
            None => low = middle + 1,
        }
    }
    Ok(best)
}

/// The subject's first message at or after `seq`.
pub(super) async fn next_from(
    logs: &Logs,
    subject: &str,
    seq: u64,
) -> Result<Option<Record>, StoreError> {
    let got = retrying(logs, || {
        logs.reads
            .direct_get_next_for_subject(subject, Some(seq.max(1)))
    })
    .await?;
    decode(subject, got)
}

/// The subject's newest message.
pub(super) async fn last(logs: &Logs, subject: &str) -> Result<Option<Record>, StoreError> {
    let got = retrying(logs, || logs.reads.direct_get_last_for_subject(subject)).await?;
    decode(subject, got)
}

fn decode(
    subject: &str,
    got: Option<async_nats::jetstream::message::StreamMessage>,
) -> Result<Option<Record>, StoreError> {
    match got {
        None => Ok(None),
        Some(message) => Record::decode(&message).map(Some).ok_or_else(|| {
            StoreError::Storage(format!(
                "message {} of {subject} is not a log record",
                message.sequence
            ))
        }),
    }
}

/// A direct get, retried for a while if JetStream does not answer;
/// `None` when there is no such message.
async fn retrying<F, T>(logs: &Logs, get: impl Fn() -> F) -> Result<Option<T>, StoreError>
where
    F: Future<Output = Result<T, DirectGetError>>,
{
    let deadline = tokio::time::Instant::now() + READ_PATIENCE;
    let mut pause = Duration::from_millis(10);
    loop {
        let began = std::time::Instant::now();
        let got = get().await;
        let answered = got
            .as_ref()
            .map_or_else(|err| err.kind() == DirectGetErrorKind::NotFound, |_| true);
        logs.metrics.request("nats", "get", answered, began);
        let err = match got {
            Ok(found) => return Ok(Some(found)),
            Err(err) if err.kind() == DirectGetErrorKind::NotFound => return Ok(None),
            Err(err) => err,
        };
        if tokio::time::Instant::now() + pause > deadline {
            return Err(unavailable("cannot read the log", err));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}
