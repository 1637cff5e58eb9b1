//! The pod store: what the service reads and writes, behind one trait.
//!
//! [`PodStore`] is the whole interface the service uses. It has two
//! implementations:
//!
//! - [`MemoryStore`]: volatile, for tests and demos (`pod-server --in-memory`);
//! - [`DurableStore`]: the default, in a data directory, on `redb`; every
//!   acknowledged write is on disk before the acknowledgement leaves.
//!
//! Both keep the current pods, the change history and the log lines in the
//! same in-memory [`Index`], which is also the one place changes are
//! published to watchers, so the watch code does not know which store it
//! runs on. A backend shared by several servers (etcd, say) would be a third
//! implementation of the trait.

mod durable;
mod index;
mod memory;
pub mod records;

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;

pub use durable::{DATABASE_FILE, DurableStore, OpenError};
pub use index::{Index, PodList};

pub use memory::MemoryStore;

use crate::logs::PodLog;
use crate::pb::Pod;
use crate::watch::Watcher;

/// A write in flight. Writes are ordered by when they are *submitted* (the
/// call that returns this), not when the future is polled, so a caller can
/// submit several and await them in order: that is how one sync session
/// pipelines its ops into shared commits.
pub type Pending<T> = BoxFuture<'static, Result<T, StoreError>>;

/// Everything the service needs from a store.
pub trait PodStore: Send + Sync + 'static {
    /// The pods of one namespace (or all), sorted by namespace then name,
    /// and the version they were read at.
    fn list(&self, namespace: Option<&str>) -> PodList;

    /// Registers a watcher of one namespace (or all). With `from == 0` it
    /// yields every current matching pod, then every later change; with
    /// `from > 0`, exactly the changes after version `from`, which must lie
    /// within the retained history.
    fn watch(&self, namespace: Option<String>, from: u64) -> Result<Watcher, StoreError>;

    /// The log of an existing pod, for reading and following.
    fn log(&self, key: &PodKey) -> Result<Arc<PodLog>, StoreError>;

    /// Creates or replaces a pod; resolves to the stored pod with its new
    /// version once the change is durable and published.
    fn apply(&self, apply: ApplyPod) -> Pending<Arc<Pod>>;

    /// Deletes a pod and its log; resolves to its tombstone once durable.
    fn delete(&self, key: PodKey) -> Pending<Arc<Pod>>;

    /// Appends lines to an existing pod's log, in order. They are visible
    /// to readers when this resolves, and durable after the next [`sync`].
    ///
    /// [`sync`]: PodStore::sync
    fn append_log(&self, key: PodKey, lines: Vec<String>) -> Pending<()>;

    /// Resolves once everything submitted before it is durable.
    fn sync(&self) -> Pending<()>;

    /// The version of the newest change.
    fn version(&self) -> u64;

    /// How many watchers are registered (for tests and metrics).
    fn watcher_count(&self) -> usize;
}

/// A pod's identity: its namespace and name. Orders by namespace, then name,
/// which is the order `ListPods` returns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl PodKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        PodKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    pub fn of(pod: &Pod) -> Self {
        PodKey::new(pod.namespace.clone(), pod.name.clone())
    }
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A validated create-or-update (see [`crate::validate::apply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyPod {
    pub key: PodKey,
    pub status: String,
    pub replicas: i32,
    /// Optimistic concurrency: apply only if the pod is still at this version.
    pub expected_version: Option<u64>,
}

/// Why a store operation was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NotFound(PodKey),
    /// The pod is not at the version the apply expected (`current` is `None`
    /// when the pod does not exist).
    Conflict {
        key: PodKey,
        expected: u64,
        current: Option<u64>,
    },
    /// A watch asked to continue from a version the history cannot continue
    /// from without a gap.
    VersionOutOfRange {
        requested: u64,
        oldest: u64,
        current: u64,
    },
    /// The data directory could not be written; the write did not happen.
    Storage(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound(key) => write!(f, "pod {key} not found"),
            StoreError::Conflict {
                key,
                expected,
                current: Some(current),
            } => write!(
                f,
                "version conflict on pod {key}: resource_version {expected} expected, \
                 but the pod is at {current}"
            ),
            StoreError::Conflict {
                key,
                expected,
                current: None,
            } => write!(
                f,
                "version conflict on pod {key}: resource_version {expected} expected, \
                 but the pod does not exist"
            ),
            StoreError::VersionOutOfRange {
                requested,
                oldest,
                current,
            } => write!(
                f,
                "resource_version {requested} is out of range: the history can continue \
                 from {oldest} to {current}; list again and watch from the list's version"
            ),
            StoreError::Storage(reason) => write!(f, "storage failure: {reason}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<StoreError> for tonic::Status {
    fn from(err: StoreError) -> Self {
        let code = match err {
            StoreError::NotFound(_) => tonic::Code::NotFound,
            StoreError::Conflict { .. } => tonic::Code::Aborted,
            StoreError::VersionOutOfRange { .. } => tonic::Code::OutOfRange,
            StoreError::Storage(_) => tonic::Code::Internal,
        };
        tonic::Status::new(code, err.to_string())
    }
}

/// Limits of the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How many recent changes are kept for watches that resume from a version.
    pub history: usize,
    /// How many changes a watcher may fall behind the newest before its
    /// stream ends with `RESOURCE_EXHAUSTED`.
    pub watch_buffer: usize,
    /// Bytes of log kept per pod; the oldest lines are dropped beyond it.
    pub log_bytes_per_pod: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            history: 10_000,
            watch_buffer: 4_096,
            log_bytes_per_pod: 16 << 20,
        }
    }
}

/// Whether a change belongs to a watch of `namespace` (`None` = every namespace).
pub fn matches(namespace: Option<&str>, pod: &Pod) -> bool {
    namespace.is_none_or(|ns| pod.namespace == ns)
}
