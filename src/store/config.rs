//! The store's limits and their defaults, and where it counts its work.

use std::time::Duration;

use crate::metrics::StoreMetrics;

/// Limits of the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How many recent changes are kept for watches that resume from a version.
    pub history: usize,
    /// Every change of this last stretch of time is kept too, whatever
    /// `history` says (zero: none): a cluster store's write rate grows with
    /// its replicas, and a watch must still resume across a restart.
    pub history_window: Duration,
    /// How many changes a watcher may fall behind the newest before its
    /// stream ends with `RESOURCE_EXHAUSTED`.
    pub watch_buffer: usize,
    /// Bytes of log kept per pod, each line counted by
    /// [`line_cost`](super::pod_log::line_cost); the oldest lines are
    /// dropped beyond it.
    pub log_bytes_per_pod: usize,
    /// Where the backends count their work (commits, requests to etcd
    /// and NATS); a server registers it with its other metrics.
    pub metrics: StoreMetrics,
}

impl StoreConfig {
    /// The default of [`StoreConfig::history`].
    pub const DEFAULT_HISTORY: usize = 10_000;
    /// The [`StoreConfig::history_window`] of a shared store by default:
    /// kube-apiserver's watch cache keeps at least 75 s of events too.
    pub const SHARED_HISTORY_WINDOW: Duration = Duration::from_secs(75);
    /// The default of [`StoreConfig::watch_buffer`].
    pub const DEFAULT_WATCH_BUFFER: usize = 4_096;
    /// The default of [`StoreConfig::log_bytes_per_pod`]: 16 MiB.
    pub const DEFAULT_LOG_BYTES_PER_POD: usize = 16 << 20;
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            history: Self::DEFAULT_HISTORY,
            history_window: Duration::ZERO,
            watch_buffer: Self::DEFAULT_WATCH_BUFFER,
            log_bytes_per_pod: Self::DEFAULT_LOG_BYTES_PER_POD,
            metrics: StoreMetrics::default(),
        }
    }
}
