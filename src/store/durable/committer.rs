//! The only writer of the database: one thread that takes whatever writes
//! are waiting, plans them into one batch, commits the batch in one redb
//! transaction, and only then publishes it and answers each write.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use redb::{Database, Durability};
use tokio::sync::{mpsc, oneshot};

use super::records;
use super::schema::{HISTORY, LOGS, META, PODS};
use crate::contract::Pod;
use crate::domain::{ApplyPod, PodKey};
use crate::store::cache::{Batch, Step, WatchCache};
use crate::store::error::StoreError;
use crate::store::pod_log::line_cost;

/// At most this many ops share one commit...
const MAX_BATCH_OPS: usize = 1_024;
/// ...and at most this many bytes of log lines.
const MAX_BATCH_LOG_BYTES: usize = 16 << 20;

/// A write submitted to the committer, and where its answer goes.
pub(super) struct Op {
    pub request: Request,
    pub reply: oneshot::Sender<Result<Option<Arc<Pod>>, StoreError>>,
}

/// What an op asks for.
pub(super) enum Request {
    Apply(ApplyPod),
    Delete(PodKey),
    Append(PodKey, Vec<String>),
    /// A barrier: answered once everything before it is durable.
    Sync,
    /// Like `Sync`, then the database is closed and the committer stops.
    Close,
}

/// The log chunks of one pod as they are on disk, for numbering new chunks
/// and dropping the oldest beyond the retention limit.
#[derive(Debug, Default)]
pub(super) struct DiskLog {
    /// The number of the next line to be written.
    next_line: u64,
    /// `(first line, bytes)` of each stored chunk, oldest first.
    chunks: VecDeque<(u64, usize)>,
    bytes: usize,
}

impl DiskLog {
    /// Records a chunk found on disk: `lines` lines from `first_line` on,
    /// costing `bytes`.
    pub fn loaded(&mut self, first_line: u64, lines: u64, bytes: usize) {
        self.chunks.push_back((first_line, bytes));
        self.next_line = first_line + lines;
        self.bytes += bytes;
    }
}

/// See the module docs.
pub(super) struct Committer {
    pub db: Database,
    pub cache: Arc<WatchCache>,
    pub logs: HashMap<PodKey, DiskLog>,
    /// Set by a failed commit: the in-memory and on-disk states may differ
    /// from then on, so no further write is accepted.
    pub failed: Option<String>,
    /// The database file, whose size the metrics show.
    pub path: PathBuf,
}

type Reply = oneshot::Sender<Result<Option<Arc<Pod>>, StoreError>>;

impl Committer {
    /// Commits batches of waiting ops until every sender is gone or an op
    /// asks to close; then closes the database and refuses what is left.
    pub fn run(mut self, mut queue: mpsc::UnboundedReceiver<Op>) {
        let mut closing = Vec::new();
        while let Some(first) = queue.blocking_recv() {
            let mut ops = vec![first];
            let mut log_bytes = 0;
            // A close ends its batch: nothing after it is committed.
            while ops.len() < MAX_BATCH_OPS
                && log_bytes < MAX_BATCH_LOG_BYTES
                && !ops
                    .last()
                    .is_some_and(|op| matches!(op.request, Request::Close))
            {
                let Ok(op) = queue.try_recv() else { break };
                if let Request::Append(_, lines) = &op.request {
                    log_bytes += lines.iter().map(String::len).sum::<usize>();
                }
                ops.push(op);
            }
            let close = ops
                .last()
                .is_some_and(|op| matches!(op.request, Request::Close));
            closing = self.commit(ops);
            if close {
                break;
            }
        }
        queue.close();
        while let Ok(op) = queue.try_recv() {
            let _ = op.reply.send(Err(closed()));
        }
        drop(self.db);
        for reply in closing {
            let _ = reply.send(Ok(None));
        }
    }

    /// Plans, writes, commits, publishes and answers one batch of ops. The
    /// replies of a close that succeeded are returned, to be sent once the
    /// database is closed.
    fn commit(&mut self, ops: Vec<Op>) -> Vec<Reply> {
        if let Some(reason) = &self.failed {
            // A close still closes: everything before it has been answered.
            let (closing, refused): (Vec<Op>, Vec<Op>) = ops
                .into_iter()
                .partition(|op| matches!(op.request, Request::Close));
            for op in refused {
                let _ = op.reply.send(Err(StoreError::Storage(format!(
                    "writes are refused after an earlier failure ({reason}); restart the server"
                ))));
            }
            return closing.into_iter().map(|op| op.reply).collect();
        }
        let mut batch = self.cache.batch();
        let mut durable = false;
        let mut answers = Vec::with_capacity(ops.len());
        for op in ops {
            let barrier = matches!(op.request, Request::Sync | Request::Close);
            let close = matches!(op.request, Request::Close);
            let planned = match op.request {
                Request::Apply(apply) => self.cache.plan_apply(&mut batch, apply).map(Some),
                Request::Delete(key) => self.cache.plan_delete(&mut batch, key).map(Some),
                Request::Append(key, lines) => self
                    .cache
                    .plan_append(&mut batch, key, lines)
                    .map(|()| None),
                Request::Sync | Request::Close => Ok(None),
            };
            // Pod changes and barriers must reach the disk before their
            // answer; log appends wait for their upload's sync.
            durable |= barrier || matches!(planned, Ok(Some(_)));
            answers.push((op.reply, planned, close));
        }
        let writes = answers.len();
        let began = Instant::now();
        if (!batch.is_empty() || durable)
            && let Err(err) = self
                .write(&batch, durable)
                .inspect(|()| self.counted(writes, began))
        {
            let reason = err.to_string();
            tracing::error!(%reason, "commit failed; refusing further writes");
            self.failed = Some(reason.clone());
            for (reply, _, _) in answers {
                let _ = reply.send(Err(StoreError::Storage(reason.clone())));
            }
            return Vec::new();
        }
        self.cache.publish_batch(batch);
        let mut closing = Vec::new();
        for (reply, planned, close) in answers {
            if close {
                closing.push(reply);
            } else {
                let _ = reply.send(planned);
            }
        }
        closing
    }

    /// Counts a commit of `writes` ops that began at `began`.
    fn counted(&self, writes: usize, began: Instant) {
        let metrics = &self.cache.config().metrics;
        metrics.committed(writes, began);
        if let Ok(file) = std::fs::metadata(&self.path) {
            metrics
                .file_bytes
                .set(i64::try_from(file.len()).unwrap_or(i64::MAX));
        }
    }

    /// Writes a batch in one transaction.
    fn write(&mut self, batch: &Batch, durable: bool) -> Result<(), redb::Error> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        let mut last_version = None;
        {
            let mut pods = tx.open_table(PODS)?;
            let mut history = tx.open_table(HISTORY)?;
            let mut logs = tx.open_table(LOGS)?;
            for step in batch.steps() {
                match step {
                    Step::Change(change) => {
                        let key = (change.namespace.as_str(), change.name.as_str());
                        let record = records::encode_pod(change);
                        if change.deleted {
                            pods.remove(key)?;
                            let (ns, name) = key;
                            logs.retain_in((ns, name, 0)..=(ns, name, u64::MAX), |_, _| false)?;
                            self.logs.remove(&PodKey::of(change));
                        } else {
                            pods.insert(key, record.as_slice())?;
                        }
                        if self.cache.config().history > 0 {
                            history.insert(change.resource_version, record.as_slice())?;
                        }
                        last_version = Some(change.resource_version);
                    }
                    Step::Append(key, lines) => {
                        self.append(&mut logs, key, lines)?;
                    }
                }
            }
            if let Some(version) = last_version {
                // This store's versions are consecutive: the newest `history` are kept.
                let cutoff = version.saturating_sub(self.cache.config().history as u64);
                history.retain_in(..=cutoff, |_, _| false)?;
                tx.open_table(META)?.insert("version", version)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Writes one chunk and drops the pod's oldest chunks beyond the limit.
    fn append(
        &mut self,
        logs: &mut redb::Table<(&str, &str, u64), &[u8]>,
        key: &PodKey,
        lines: &[String],
    ) -> Result<(), redb::Error> {
        let limit = self.cache.config().log_bytes_per_pod;
        let disk = self.logs.entry(key.clone()).or_default();
        let (ns, name) = (key.namespace.as_str(), key.name.as_str());
        let bytes = lines.iter().map(|line| line_cost(line)).sum();
        logs.insert(
            (ns, name, disk.next_line),
            records::encode_lines(lines).as_slice(),
        )?;
        disk.chunks.push_back((disk.next_line, bytes));
        disk.next_line += lines.len() as u64;
        disk.bytes += bytes;
        // Keep at least the newest chunk, whatever its size.
        while disk.bytes > limit && disk.chunks.len() > 1 {
            if let Some((first_line, bytes)) = disk.chunks.pop_front() {
                logs.remove((ns, name, first_line))?;
                disk.bytes -= bytes;
            }
        }
        Ok(())
    }
}

/// The answer to a write after the store was closed.
pub(super) fn closed() -> StoreError {
    StoreError::shut_down()
}
