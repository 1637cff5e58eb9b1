//! The stores' figures, `pod_service_store_*`: what the durable store's
//! commits cost, and how the shared stores' requests to etcd and NATS go.
//! The backends hold a clone of [`StoreMetrics`] (through the store's
//! configuration) and count where the work happens; a default one counts
//! into series nobody registered, which costs the same and shows nowhere.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    backend: &'static str,
    operation: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Why a shared store's feed (its watch of etcd) began again.
#[derive(Clone, Copy, Debug)]
pub enum FeedRestart {
    /// The watch broke (a member went away); resumed where it was.
    Broken,
    /// The resume point was compacted away.
    Compacted,
    /// The cache started over from a new list.
    StartOver,
}

/// The stores' figures.
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    commit_seconds: Histogram,
    ops_per_commit: Histogram,
    /// The durable store's database file, in bytes (set at each scrape).
    pub file_bytes: Gauge,
    requests: Family<RequestLabels, Histogram>,
    restarts: Family<ReasonLabel, Counter>,
    /// How many revisions the cache is behind the newest one etcd named.
    pub cache_lag: Gauge,
}

fn seconds_histogram() -> Histogram {
    // 100 µs to about 6.5 s: an fsync, a quorum round, a stalled member.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            commit_seconds: seconds_histogram(),
            ops_per_commit: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            file_bytes: Gauge::default(),
            requests: Family::new_with_constructor(seconds_histogram as fn() -> Histogram),
            restarts: Family::default(),
            cache_lag: Gauge::default(),
        }
    }
}

impl StoreMetrics {
    /// Registers the figures in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = StoreMetrics::default();
        registry.register(
            "pod_service_store_commit_seconds",
            "The durable store's commits: how long each took, its fsync included.",
            metrics.commit_seconds.clone(),
        );
        registry.register(
            "pod_service_store_ops_per_commit",
            "The durable store's commits: how many writes each carried (group commit).",
            metrics.ops_per_commit.clone(),
        );
        registry.register(
            "pod_service_store_file_bytes",
            "The durable store's database file, in bytes.",
            metrics.file_bytes.clone(),
        );
        registry.register(
            "pod_service_store_request_seconds",
            "Requests to etcd and NATS, by backend, operation and result (ok or error).",
            metrics.requests.clone(),
        );
        registry.register(
            "pod_service_store_feed_restarts",
            "Times the cache's watch of etcd began again, by reason.",
            metrics.restarts.clone(),
        );
        registry.register(
            "pod_service_store_cache_lag_revisions",
            "How many revisions the cache is behind the newest etcd named.",
            metrics.cache_lag.clone(),
        );
        metrics
    }

    /// Counts a durable commit of `ops` writes that began at `began`.
    pub fn committed(&self, ops: usize, began: Instant) {
        self.commit_seconds.observe(began.elapsed().as_secs_f64());
        self.ops_per_commit.observe(ops as f64);
    }

    /// Counts a request of `backend` (`etcd`, `nats`) that began at
    /// `began`. `operation` is one of a fixed few per backend.
    pub fn request(
        &self,
        backend: &'static str,
        operation: &'static str,
        ok: bool,
        began: Instant,
    ) {
        let labels = RequestLabels {
            backend,
            operation,
            result: if ok { "ok" } else { "error" },
        };
        self.requests
            .get_or_create(&labels)
            .observe(began.elapsed().as_secs_f64());
    }

    /// Counts a restart of the feed.
    pub fn feed_restarted(&self, why: FeedRestart) {
        let reason = match why {
            FeedRestart::Broken => "broken",
            FeedRestart::Compacted => "compacted",
            FeedRestart::StartOver => "start_over",
        };
        self.restarts.get_or_create(&ReasonLabel { reason }).inc();
    }
}
