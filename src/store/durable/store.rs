//! [`DurableStore`]: opening a data directory into a watch cache, and the
//! backend's calls, which submit to the committer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};

use super::committer::{Committer, DiskLog, Op, Request, closed};
use super::data_dir;
use super::error::DataDirError;
use super::load::load;
use super::schema::{self, DATABASE_FILE, Fault, Schema, stored_version};
use crate::contract::Pod;
use crate::domain::{ApplyPod, PodKey};
use crate::store::backend::{LogBackend, Pending, PodBackend};
use crate::store::cache::WatchCache;
use crate::store::config::StoreConfig;
use crate::store::error::StoreError;
use crate::store::order::WriteOrder;
use crate::store::pod_log::PodLog;

/// The default store: every write of pods and logs committed to a `redb`
/// database in a data directory before it is published or acknowledged.
/// See the [module docs](super).
pub struct DurableStore {
    /// The data directory, canonical: the key of [`CLOSING`] (`None` for
    /// a test's disk).
    dir: Option<PathBuf>,
    /// `None` only while dropping. Unbounded, so that submitting never
    /// waits and keeps the callers' order; callers bound what they have in
    /// flight (a sync session its pipeline, an upload one chunk).
    ops: Option<mpsc::UnboundedSender<Op>>,
    committer: Option<JoinHandle<()>>,
}

/// The committers of stores dropped in this process that may still be
/// closing their database, by directory: opening the same directory again
/// waits for its committer, so dropping a store never has to.
static CLOSING: Mutex<Vec<(PathBuf, JoinHandle<()>)>> = Mutex::new(Vec::new());

impl DurableStore {
    /// Opens (or creates) the store in `dir`, loading everything in it into
    /// a watch cache, which the store then keeps up to date.
    /// This reads the whole database, and first waits for a store of the
    /// same directory dropped in this process to finish closing it: call it
    /// before serving, or from a blocking thread.
    ///
    /// An existing database is first checked read-only, so that a file that
    /// is not ours, from another version, or damaged is refused without a
    /// single byte of it being written. A new one is made whole under
    /// another name and then renamed into place (see `data_dir`).
    pub fn open(dir: &Path, config: StoreConfig) -> Result<(Self, Arc<WatchCache>), DataDirError> {
        let io = |err: std::io::Error| DataDirError::Io(dir.into(), err);
        data_dir::create(dir).map_err(io)?;
        // The same directory, however it is named, for the wait on CLOSING.
        let canonical = dir.canonicalize().map_err(io)?;
        await_closed(&canonical);
        let path = dir.join(DATABASE_FILE);
        let exists = std::fs::metadata(&path).is_ok_and(|meta| meta.len() > 0);
        if !exists {
            let db = data_dir::create_database(dir)?;
            return Self::start(db, None, config, Some(canonical), &path)
                .map_err(|fault| fault.of(dir));
        }
        let mut loaded = None;
        match redb::ReadOnlyDatabase::open(&path) {
            Ok(db) => {
                if schema::check(&db).map_err(|fault| fault.of(dir))? == Schema::Current {
                    loaded = Some(load(&db, config.clone()).map_err(|c| Fault::from(c).of(dir))?);
                }
                db.close().map_err(|err| DataDirError::opening(dir, err))?;
            }
            // After a crash redb must repair the file, which a read-only
            // open cannot do: the read-write open below does it.
            Err(redb::DatabaseError::RepairAborted) => {}
            Err(err) => return Err(DataDirError::opening(dir, err)),
        }
        let db = redb::Database::create(&path).map_err(|err| DataDirError::opening(dir, err))?;
        Self::start(db, loaded, config, Some(canonical), &path).map_err(|fault| fault.of(dir))
    }

    /// Opens (or creates) the store in a database over `disk` rather than
    /// a file: for the power-cut tests, whose disk keeps what was written
    /// apart from what was synced. A new database is initialised, and then
    /// `named`, where a file would be renamed into place.
    #[cfg(test)]
    pub fn open_on(
        disk: impl redb::StorageBackend,
        named: impl FnOnce(),
        config: StoreConfig,
    ) -> Result<(Self, Arc<WatchCache>), String> {
        let fault = |fault: OpenFault| fault.of(Path::new("(disk)")).to_string();
        let new = disk.len().map_err(|err| err.to_string())? == 0;
        let db = redb::Builder::new()
            .create_with_backend(disk)
            .map_err(|err| DataDirError::opening(Path::new("(disk)"), err).to_string())?;
        if new {
            schema::initialise(&db).map_err(|c| fault(c.into()))?;
            named();
        }
        Self::start(db, None, config, None, Path::new("")).map_err(fault)
    }

    /// Checks and, if new, initialises an open database; loads it unless
    /// `loaded` already holds what it contains; and starts its committer.
    fn start(
        db: redb::Database,
        loaded: Option<Loaded>,
        config: StoreConfig,
        dir: Option<PathBuf>,
        path: &Path,
    ) -> Result<(Self, Arc<WatchCache>), OpenFault> {
        if schema::check(&db)? == Schema::New {
            schema::initialise(&db).map_err(Fault::from)?;
        }
        // What was read before the read-write open is current unless
        // another process wrote in between (or a repair was needed).
        let (index, logs) = match loaded {
            Some(loaded) if stored_version(&db).ok() == Some(loaded.0.version()) => loaded,
            _ => load(&db, config).map_err(Fault::from)?,
        };
        let cache = Arc::new(index);
        let (ops, queue) = mpsc::unbounded_channel();
        let committer = Committer {
            db,
            cache: Arc::clone(&cache),
            logs,
            failed: None,
            path: path.to_owned(),
        };
        let committer = std::thread::Builder::new()
            .name("pod-store-committer".into())
            .spawn(move || committer.run(queue))
            .map_err(OpenFault::Io)?;
        let store = DurableStore {
            dir,
            ops: Some(ops),
            committer: Some(committer),
        };
        Ok((store, cache))
    }

    /// Queues a request now; the future resolves with its answer.
    fn submit(&self, request: Request) -> Pending<Option<Arc<Pod>>> {
        let (reply, answer) = oneshot::channel();
        let queued = self
            .ops
            .as_ref()
            .is_some_and(|ops| ops.send(Op { request, reply }).is_ok());
        async move {
            if !queued {
                return Err(closed());
            }
            answer.await.map_err(|_| closed())?
        }
        .boxed()
    }
}

/// Dropping the store lets the committer finish the ops already queued and
/// close the database on its own thread: the drop itself never waits, so it
/// is safe anywhere, a runtime worker included. Opening the directory again
/// in this process waits for that close; [`PodBackend::close`] awaits it.
impl Drop for DurableStore {
    fn drop(&mut self) {
        self.ops = None;
        if let (Some(dir), Some(committer)) = (self.dir.take(), self.committer.take()) {
            let finished = {
                let mut closing = CLOSING.lock().unwrap_or_else(|e| e.into_inner());
                closing.push((dir, committer));
                let (finished, running) = closing
                    .drain(..)
                    .partition(|(_, committer)| committer.is_finished());
                *closing = running;
                finished
            };
            // Finished threads join at once: this only reports their panics.
            for (dir, committer) in finished {
                join(&dir, committer);
            }
        }
    }
}

/// Waits for the committers of dropped stores of `dir` to close it.
fn await_closed(dir: &Path) {
    let committers: Vec<JoinHandle<()>> = {
        let mut closing = CLOSING.lock().unwrap_or_else(|e| e.into_inner());
        let (ours, others) = closing.drain(..).partition(|(path, _)| path == dir);
        *closing = others;
        ours.into_iter().map(|(_, committer)| committer).collect()
    };
    for committer in committers {
        join(dir, committer);
    }
}

fn join(dir: &Path, committer: JoinHandle<()>) {
    if committer.join().is_err() {
        tracing::error!(dir = %dir.display(), "a store's committer thread panicked");
    }
}

impl PodBackend for DurableStore {
    fn apply(&self, apply: ApplyPod, _order: &mut WriteOrder) -> Pending<Arc<Pod>> {
        let pod = self.submit(Request::Apply(apply));
        async move {
            pod.await?
                .ok_or_else(|| StoreError::Storage("apply returned no pod".into()))
        }
        .boxed()
    }

    fn delete(&self, key: PodKey, _order: &mut WriteOrder) -> Pending<Arc<Pod>> {
        let pod = self.submit(Request::Delete(key));
        async move {
            pod.await?
                .ok_or_else(|| StoreError::Storage("delete returned no tombstone".into()))
        }
        .boxed()
    }

    fn close(&self) -> Pending<()> {
        self.submit(Request::Close).map(|r| r.map(|_| ())).boxed()
    }
}

/// The logs go through the same committer as the pods, so that a chunk is
/// ordered with the pod's create and delete, and the pod's life in the
/// cache (`_life`) receives the lines when the chunk is published.
impl LogBackend for DurableStore {
    fn append(&self, key: PodKey, _life: Arc<PodLog>, lines: Vec<String>) -> Pending<()> {
        self.submit(Request::Append(key, lines))
            .map(|r| r.map(|_| ()))
            .boxed()
    }

    fn sync(&self) -> Pending<()> {
        self.submit(Request::Sync).map(|r| r.map(|_| ())).boxed()
    }
}

/// What a database read so far holds.
type Loaded = (WatchCache, HashMap<PodKey, DiskLog>);

/// Why [`DurableStore::start`] failed, before it is put to a directory.
enum OpenFault {
    Data(Fault),
    Io(std::io::Error),
}

impl<E: Into<Fault>> From<E> for OpenFault {
    fn from(fault: E) -> Self {
        OpenFault::Data(fault.into())
    }
}

impl OpenFault {
    fn of(self, dir: &Path) -> DataDirError {
        match self {
            OpenFault::Data(fault) => fault.of(dir),
            OpenFault::Io(err) => DataDirError::Io(dir.into(), err),
        }
    }
}
