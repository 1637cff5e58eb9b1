//! Why a store operation was refused.

use std::fmt;

use crate::domain::PodKey;

/// Why a store operation was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No pod has this key.
    NotFound(PodKey),
    /// The pod is not at the version the apply expected (`current` is `None`
    /// when the pod does not exist).
    Conflict {
        /// The pod applied.
        key: PodKey,
        /// The version the apply asked for.
        expected: u64,
        /// The version the pod is at.
        current: Option<u64>,
    },
    /// A watch asked to continue from a version the history cannot continue
    /// from without a gap.
    VersionOutOfRange {
        /// The version asked for.
        requested: u64,
        /// The oldest version the history can continue from.
        oldest: u64,
        /// The newest version.
        current: u64,
    },
    /// A paged list can no longer be continued at its version.
    ListExpired {
        /// The version of the list's first page.
        version: u64,
        /// The oldest version a list can be continued at now; `None` when
        /// the list began in another life of the store (before a restart).
        oldest: Option<u64>,
    },
    /// The store could not make the write durable; it did not happen.
    Storage(String),
    /// The store cannot answer now (a shared store is unreachable, or this
    /// server has not caught up with it); the same call may succeed later
    /// or on another server. A write refused so did not happen.
    Unavailable(String),
    /// A log append stopped part-way, the store being unavailable: its
    /// first `stored` lines are stored; the rest may or may not be.
    Interrupted {
        /// How many of the append's lines are stored, in order.
        stored: u64,
        /// Why it stopped, and what became of the rest.
        reason: String,
    },
}

impl StoreError {
    /// A write refused because its store was closed (the server is stopping).
    pub fn shut_down() -> Self {
        StoreError::Storage("the store is shut down".into())
    }
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
            StoreError::ListExpired { version, oldest } => {
                write!(
                    f,
                    "the list at resource_version {version} can no longer be continued: "
                )?;
                match oldest {
                    Some(oldest) => write!(
                        f,
                        "the history has moved past it (it keeps changes after {oldest})"
                    )?,
                    None => write!(
                        f,
                        "the server restarted since its first page, or it began on another registry"
                    )?,
                }
                write!(f, "; list again from the first page")
            }
            StoreError::Storage(reason) => write!(f, "storage failure: {reason}"),
            StoreError::Unavailable(reason) => write!(f, "store unavailable: {reason}"),
            StoreError::Interrupted { stored, reason } => write!(
                f,
                "store unavailable after the chunk's first {stored} lines were stored: {reason}"
            ),
        }
    }
}

impl std::error::Error for StoreError {}
