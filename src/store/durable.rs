//! The durable store: the [`Index`] in memory, and every write committed to
//! a `redb` database in the data directory before it is published or
//! acknowledged.
//!
//! All writes go through one committer thread. It takes whatever operations
//! are waiting (up to a bound), plans them into one [`Batch`], writes the
//! batch in one `redb` transaction, commits it (with an fsync when any op in
//! it must be durable), and only then publishes the batch and answers each
//! op. So concurrent writers share commits — 64 sessions cost about one
//! fsync per round, not 64 — and nothing is visible or acknowledged before
//! it is on disk.
//!
//! Log chunks are committed without an fsync (they are visible to readers
//! at once); an upload is acknowledged after a [`PodStore::sync`], whose
//! fsync makes every earlier commit durable too. A crash loses at most the
//! lines of unacknowledged uploads, and never tears or reorders a line: a
//! chunk is one record in one transaction.
//!
//! If a commit fails, the store refuses all later writes (reads go on) until
//! the server is restarted, which reloads the last durable state.
//!
//! On disk (`<data-dir>/pods.redb`):
//!
//! | table     | key                      | value                                  |
//! |-----------|--------------------------|----------------------------------------|
//! | `meta`    | `"schema"`, `"version"`  | `u64`                                  |
//! | `pods`    | `(namespace, name)`      | a `Pod`, protobuf-encoded              |
//! | `history` | version                  | the changed `Pod` or tombstone         |
//! | `logs`    | `(namespace, name, line)`| a `LogChunk` of lines from `line` on   |

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::FutureExt;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use tokio::sync::{mpsc, oneshot};

use super::index::{Batch, Step};
use super::records;
use super::{ApplyPod, Index, Pending, PodKey, PodList, PodStore, StoreConfig, StoreError};
use crate::logs::{PodLog, line_cost};
use crate::pb::Pod;
use crate::watch::Watcher;

/// The file inside the data directory.
pub const DATABASE_FILE: &str = "pods.redb";

/// The layout version this code reads and writes.
const SCHEMA_VERSION: u64 = 1;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const PODS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("pods");
const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
const LOGS: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("logs");

/// At most this many ops share one commit...
const MAX_BATCH_OPS: usize = 1_024;
/// ...and at most this many bytes of log lines.
const MAX_BATCH_LOG_BYTES: usize = 16 << 20;

/// Why a data directory could not be opened. Nothing was changed in it.
#[derive(Debug)]
pub enum OpenError {
    /// Another process (a running server) has the database open.
    Locked(PathBuf),
    /// The files do not hold what this store writes.
    Corrupt(PathBuf, String),
    /// The database was written by an incompatible version.
    Incompatible(PathBuf, String),
    /// The directory or file could not be read or created.
    Io(PathBuf, String),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Locked(path) => write!(
                f,
                "data directory {} is in use by another running pod-server",
                path.display()
            ),
            OpenError::Corrupt(path, reason) => write!(
                f,
                "data directory {} is corrupt ({reason}); it was left untouched",
                path.display()
            ),
            OpenError::Incompatible(path, reason) => write!(
                f,
                "data directory {} is from an incompatible version ({reason}); it was left untouched",
                path.display()
            ),
            OpenError::Io(path, reason) => {
                write!(f, "cannot open data directory {}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for OpenError {}

pub struct DurableStore {
    index: Arc<Index>,
    /// `None` only while dropping. Unbounded, so that submitting never
    /// waits and keeps the callers' order; callers bound what they have in
    /// flight (a sync session its pipeline, an upload one chunk).
    ops: Option<mpsc::UnboundedSender<Op>>,
    committer: Option<std::thread::JoinHandle<()>>,
}

struct Op {
    request: Request,
    reply: oneshot::Sender<Result<Option<Arc<Pod>>, StoreError>>,
}

enum Request {
    Apply(ApplyPod),
    Delete(PodKey),
    Append(PodKey, Vec<String>),
    Sync,
}

impl DurableStore {
    /// Opens (or creates) the store in `dir`, loading everything in it.
    ///
    /// An existing database is first checked read-only, so that a file that
    /// is not ours, from another version, or damaged is refused without a
    /// single byte of it being written.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Self, OpenError> {
        std::fs::create_dir_all(dir).map_err(|err| OpenError::Io(dir.into(), err.to_string()))?;
        let path = dir.join(DATABASE_FILE);
        let exists = std::fs::metadata(&path).is_ok_and(|meta| meta.len() > 0);
        let fault = |fault: Fault| match fault {
            Fault::Corrupt(reason) => OpenError::Corrupt(dir.into(), reason),
            Fault::Incompatible(reason) => OpenError::Incompatible(dir.into(), reason),
        };
        let corrupt = |reason: String| OpenError::Corrupt(dir.into(), reason);
        let mut loaded = None;
        if exists {
            match redb::ReadOnlyDatabase::open(&path) {
                Ok(db) => {
                    if check_schema(&db).map_err(fault)? == Schema::Current {
                        loaded = Some(load(&db, config.clone()).map_err(corrupt)?);
                    }
                    db.close().map_err(|err| open_error(dir, err))?;
                }
                // After a crash redb must repair the file, which a read-only
                // open cannot do: the read-write open below does it.
                Err(redb::DatabaseError::RepairAborted) => {}
                Err(err) => return Err(open_error(dir, err)),
            }
        }
        let db = Database::create(&path).map_err(|err| open_error(dir, err))?;
        if check_schema(&db).map_err(fault)? == Schema::New {
            write_schema(&db).map_err(fault)?;
        }
        // What was read before the read-write open is current unless
        // another process wrote in between (or a repair was needed).
        let (index, logs) = match loaded {
            Some(loaded) if stored_version(&db).ok() == Some(loaded.0.version()) => loaded,
            _ => load(&db, config).map_err(corrupt)?,
        };
        let index = Arc::new(index);
        let (ops, queue) = mpsc::unbounded_channel();
        let committer = Committer {
            db,
            index: Arc::clone(&index),
            logs,
            failed: None,
        };
        let committer = std::thread::Builder::new()
            .name("pod-store-committer".into())
            .spawn(move || committer.run(queue))
            .map_err(|err| OpenError::Io(dir.into(), err.to_string()))?;
        Ok(DurableStore {
            index,
            ops: Some(ops),
            committer: Some(committer),
        })
    }

    /// Queues a request now; the future resolves with its answer.
    fn submit(&self, request: Request) -> Pending<Option<Arc<Pod>>> {
        let stopped = || StoreError::Storage("the store is shut down".into());
        let (reply, answer) = oneshot::channel();
        let queued = self
            .ops
            .as_ref()
            .is_some_and(|ops| ops.send(Op { request, reply }).is_ok());
        async move {
            if !queued {
                return Err(stopped());
            }
            answer.await.map_err(|_| stopped())?
        }
        .boxed()
    }
}

/// Dropping the store finishes the ops already queued and closes the
/// database, so the directory can be opened again as soon as this returns.
impl Drop for DurableStore {
    fn drop(&mut self) {
        self.ops = None;
        if let Some(committer) = self.committer.take()
            && committer.join().is_err()
        {
            tracing::error!("the store's committer thread panicked");
        }
    }
}

impl PodStore for DurableStore {
    fn list(&self, namespace: Option<&str>) -> PodList {
        self.index.list(namespace)
    }

    fn watch(&self, namespace: Option<String>, from: u64) -> Result<Watcher, StoreError> {
        self.index.watch(namespace, from)
    }

    fn log(&self, key: &PodKey) -> Result<Arc<PodLog>, StoreError> {
        self.index.log(key)
    }

    fn apply(&self, apply: ApplyPod) -> Pending<Arc<Pod>> {
        let pod = self.submit(Request::Apply(apply));
        async move {
            pod.await?
                .ok_or_else(|| StoreError::Storage("apply returned no pod".into()))
        }
        .boxed()
    }

    fn delete(&self, key: PodKey) -> Pending<Arc<Pod>> {
        let pod = self.submit(Request::Delete(key));
        async move {
            pod.await?
                .ok_or_else(|| StoreError::Storage("delete returned no tombstone".into()))
        }
        .boxed()
    }

    fn append_log(&self, key: PodKey, lines: Vec<String>) -> Pending<()> {
        self.submit(Request::Append(key, lines))
            .map(|r| r.map(|_| ()))
            .boxed()
    }

    fn sync(&self) -> Pending<()> {
        self.submit(Request::Sync).map(|r| r.map(|_| ())).boxed()
    }

    fn version(&self) -> u64 {
        self.index.version()
    }

    fn watcher_count(&self) -> usize {
        self.index.watcher_count()
    }
}

/// The log chunks of one pod as they are on disk, for numbering new chunks
/// and dropping the oldest beyond the retention limit.
#[derive(Debug, Default)]
struct DiskLog {
    /// The number of the next line to be written.
    next_line: u64,
    /// `(first line, bytes)` of each stored chunk, oldest first.
    chunks: VecDeque<(u64, usize)>,
    bytes: usize,
}

/// The only writer of the database.
struct Committer {
    db: Database,
    index: Arc<Index>,
    logs: HashMap<PodKey, DiskLog>,
    /// Set by a failed commit: the in-memory and on-disk states may differ
    /// from then on, so no further write is accepted.
    failed: Option<String>,
}

impl Committer {
    fn run(mut self, mut queue: mpsc::UnboundedReceiver<Op>) {
        while let Some(first) = queue.blocking_recv() {
            let mut ops = vec![first];
            let mut log_bytes = 0;
            while ops.len() < MAX_BATCH_OPS && log_bytes < MAX_BATCH_LOG_BYTES {
                let Ok(op) = queue.try_recv() else { break };
                if let Request::Append(_, lines) = &op.request {
                    log_bytes += lines.iter().map(String::len).sum::<usize>();
                }
                ops.push(op);
            }
            self.commit(ops);
        }
    }

    /// Plans, writes, commits, publishes and answers one batch of ops.
    fn commit(&mut self, ops: Vec<Op>) {
        if let Some(reason) = &self.failed {
            for op in ops {
                let _ = op.reply.send(Err(StoreError::Storage(format!(
                    "writes are refused after an earlier failure ({reason}); restart the server"
                ))));
            }
            return;
        }
        let mut batch = self.index.batch();
        let mut durable = false;
        let mut answers = Vec::with_capacity(ops.len());
        for op in ops {
            let is_sync = matches!(op.request, Request::Sync);
            let planned = match op.request {
                Request::Apply(apply) => self.index.plan_apply(&mut batch, apply).map(Some),
                Request::Delete(key) => self.index.plan_delete(&mut batch, key).map(Some),
                Request::Append(key, lines) => self
                    .index
                    .plan_append(&mut batch, key, lines)
                    .map(|()| None),
                Request::Sync => Ok(None),
            };
            // Pod changes and sync barriers must reach the disk before
            // their answer; log appends wait for their upload's sync.
            durable |= is_sync || matches!(planned, Ok(Some(_)));
            answers.push((op.reply, planned));
        }
        if (!batch.is_empty() || durable)
            && let Err(err) = self.write(&batch, durable)
        {
            let reason = err.to_string();
            tracing::error!(%reason, "commit failed; refusing further writes");
            self.failed = Some(reason.clone());
            for (reply, _) in answers {
                let _ = reply.send(Err(StoreError::Storage(reason.clone())));
            }
            return;
        }
        self.index.publish(batch);
        for (reply, planned) in answers {
            let _ = reply.send(planned);
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
                        if self.index.config().history > 0 {
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
                let cutoff = version.saturating_sub(self.index.config().history as u64);
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
        let limit = self.index.config().log_bytes_per_pod;
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

/// What can be wrong with a database's contents.
enum Fault {
    Corrupt(String),
    Incompatible(String),
}

fn open_error(dir: &Path, err: redb::DatabaseError) -> OpenError {
    match err {
        redb::DatabaseError::DatabaseAlreadyOpen => OpenError::Locked(dir.into()),
        redb::DatabaseError::UpgradeRequired(version) => OpenError::Incompatible(
            dir.into(),
            format!("redb file format {version} needs an upgrade"),
        ),
        redb::DatabaseError::Storage(redb::StorageError::Io(err))
            if err.kind() != std::io::ErrorKind::InvalidData =>
        {
            OpenError::Io(dir.into(), err.to_string())
        }
        other => OpenError::Corrupt(dir.into(), other.to_string()),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Schema {
    /// An empty database, to be initialised.
    New,
    /// A database of this layout.
    Current,
}

/// Checks that a database is empty or of our layout, without writing.
fn check_schema(db: &impl ReadableDatabase) -> Result<Schema, Fault> {
    let corrupt = |err: &dyn fmt::Display| Fault::Corrupt(err.to_string());
    let tx = db.begin_read().map_err(|e| corrupt(&e))?;
    let tables: Vec<String> = tx
        .list_tables()
        .map_err(|e| corrupt(&e))?
        .map(|table| table.name().to_owned())
        .collect();
    if tables.is_empty() {
        return Ok(Schema::New);
    }
    let schema = match tx.open_table(META) {
        Ok(meta) => meta
            .get("schema")
            .map_err(|e| corrupt(&e))?
            .map(|v| v.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(err) => return Err(corrupt(&err)),
    };
    match schema {
        Some(SCHEMA_VERSION) => Ok(Schema::Current),
        Some(other) => Err(Fault::Incompatible(format!(
            "schema version {other}, this server reads {SCHEMA_VERSION}"
        ))),
        None => Err(Fault::Corrupt(format!(
            "it holds tables {tables:?} but no schema version: not a pod-server database"
        ))),
    }
}

/// Records our layout in a new database.
fn write_schema(db: &Database) -> Result<(), Fault> {
    let corrupt = |err: &dyn fmt::Display| Fault::Corrupt(err.to_string());
    let tx = db.begin_write().map_err(|e| corrupt(&e))?;
    {
        let mut meta = tx.open_table(META).map_err(|e| corrupt(&e))?;
        meta.insert("schema", SCHEMA_VERSION)
            .map_err(|e| corrupt(&e))?;
        meta.insert("version", 0).map_err(|e| corrupt(&e))?;
        tx.open_table(PODS).map_err(|e| corrupt(&e))?;
        tx.open_table(HISTORY).map_err(|e| corrupt(&e))?;
        tx.open_table(LOGS).map_err(|e| corrupt(&e))?;
    }
    tx.commit().map_err(|e| corrupt(&e))
}

/// The store version recorded in the database.
fn stored_version(db: &impl ReadableDatabase) -> Result<u64, String> {
    let tx = db.begin_read().map_err(|e| e.to_string())?;
    let meta = tx.open_table(META).map_err(|e| e.to_string())?;
    meta.get("version")
        .map_err(|e| e.to_string())?
        .map(|v| v.value())
        .ok_or_else(|| "no version counter".to_owned())
}

/// Reads everything into an index, checking it is consistent.
fn load(
    db: &impl ReadableDatabase,
    config: StoreConfig,
) -> Result<(Index, HashMap<PodKey, DiskLog>), String> {
    let version = stored_version(db)?;
    let tx = db.begin_read().map_err(|e| e.to_string())?;

    let mut pods = Vec::new();
    for row in tx
        .open_table(PODS)
        .map_err(|e| e.to_string())?
        .iter()
        .map_err(|e| e.to_string())?
    {
        let (key, value) = row.map_err(|e| e.to_string())?;
        let pod = records::decode_pod(value.value())?;
        let (ns, name) = key.value();
        if (ns, name) != (pod.namespace.as_str(), pod.name.as_str())
            || pod.deleted
            || pod.resource_version > version
        {
            return Err(format!(
                "pod record {ns}/{name} does not match its key or version"
            ));
        }
        pods.push(pod);
    }

    let mut history = Vec::new();
    for row in tx
        .open_table(HISTORY)
        .map_err(|e| e.to_string())?
        .iter()
        .map_err(|e| e.to_string())?
    {
        let (key, value) = row.map_err(|e| e.to_string())?;
        let pod = records::decode_pod(value.value())?;
        let expected = history.last().map(|p: &Pod| p.resource_version + 1);
        if pod.resource_version != key.value() || expected.is_some_and(|v| v != key.value()) {
            return Err(format!("history record {} is out of sequence", key.value()));
        }
        history.push(pod);
    }
    if history
        .last()
        .is_some_and(|p| p.resource_version != version)
    {
        return Err("the history does not end at the store version".into());
    }
    // A smaller limit than last time keeps only the newest changes.
    let excess = history.len().saturating_sub(config.history);
    history.drain(..excess);

    let index = Index::restore(config, pods, version, history);
    let mut disk_logs: HashMap<PodKey, DiskLog> = HashMap::new();
    for row in tx
        .open_table(LOGS)
        .map_err(|e| e.to_string())?
        .iter()
        .map_err(|e| e.to_string())?
    {
        let (key, value) = row.map_err(|e| e.to_string())?;
        let (ns, name, first_line) = key.value();
        let key = PodKey::new(ns, name);
        let lines = records::decode_lines(value.value())?;
        let log = index
            .log(&key)
            .map_err(|_| format!("log record of {key}, which does not exist"))?;
        let disk = disk_logs.entry(key).or_default();
        let bytes = lines.iter().map(|line| line_cost(line)).sum();
        disk.chunks.push_back((first_line, bytes));
        disk.next_line = first_line + lines.len() as u64;
        disk.bytes += bytes;
        log.append(lines);
    }
    Ok((index, disk_logs))
}
