//! The PodService's own figures, `pod_service_*`: what its watchers, log
//! uploads, followers and sync sessions do. Every series is created here,
//! up front, and handed out as plain counters, so that the handlers count
//! with one atomic add and no label lookup; no label names a pod, a
//! namespace or a peer. The figures a scrape reads off the registry (its
//! version, pods, watchers) are [`Figures`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tonic::Code;

use super::grpc::code_label;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    kind: &'static str,
    result: &'static str,
}

/// Watch events sent, by type.
#[derive(Clone, Debug, Default)]
pub struct WatchEvents {
    /// A pod of a watch's starting snapshot.
    pub added: Counter,
    /// A change that is not a deletion (a pod created after the watch
    /// began counts here: the watch cache hands out pods, not whether
    /// they existed before).
    pub modified: Counter,
    /// A deletion.
    pub deleted: Counter,
    /// A bookmark.
    pub bookmark: Counter,
}

/// Why a watch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchEnded {
    /// It fell too far behind.
    Overflow,
    /// The server is stopping.
    Shutdown,
    /// Its client's deadline passed.
    Deadline,
    /// Its client went away.
    ClientGone,
    /// The server's cache started over in the shared store it follows.
    StartedOver,
}

const REASONS: [(WatchEnded, &str); 5] = [
    (WatchEnded::Overflow, "overflow"),
    (WatchEnded::Shutdown, "shutdown"),
    (WatchEnded::Deadline, "deadline"),
    (WatchEnded::ClientGone, "client_gone"),
    (WatchEnded::StartedOver, "started_over"),
];

/// A SyncPods op's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// `apply`.
    Apply = 0,
    /// `delete`.
    Delete = 1,
    /// `subscribe`.
    Subscribe = 2,
    /// An op of no kind (refused).
    None = 3,
}

const KINDS: [&str; 4] = ["apply", "delete", "subscribe", "none"];

/// The service's figures.
#[derive(Clone, Debug, Default)]
pub struct ServiceMetrics {
    /// Watch events sent, by type.
    pub events: WatchEvents,
    ended: Vec<Counter>,
    /// Log lines stored by uploads.
    pub lines_uploaded: Counter,
    /// Bytes of those lines.
    pub bytes_uploaded: Counter,
    /// `GetLogs` calls following a log now.
    pub followers: Gauge,
    ops: Vec<[Counter; 17]>,
    /// Read off the registry at each scrape.
    pub figures: Figures,
}

/// What a scrape reads off the registry.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// The registry's current version.
    pub version: Gauge,
    /// Pods stored.
    pub pods: Gauge,
    /// Watchers registered with the watch cache.
    pub watchers: Gauge,
}

impl ServiceMetrics {
    /// Registers the figures in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let events = Family::<TypeLabel, Counter>::default();
        let ended = Family::<ReasonLabel, Counter>::default();
        let ops = Family::<OpLabels, Counter>::default();
        let metrics = ServiceMetrics {
            events: WatchEvents {
                added: events.get_or_create_owned(&TypeLabel { r#type: "added" }),
                modified: events.get_or_create_owned(&TypeLabel { r#type: "modified" }),
                deleted: events.get_or_create_owned(&TypeLabel { r#type: "deleted" }),
                bookmark: events.get_or_create_owned(&TypeLabel { r#type: "bookmark" }),
            },
            ended: REASONS
                .iter()
                .map(|(_, reason)| ended.get_or_create_owned(&ReasonLabel { reason }))
                .collect(),
            ops: KINDS
                .iter()
                .map(|kind| {
                    std::array::from_fn(|code| {
                        let result = code_label(Code::from(code as i32));
                        ops.get_or_create_owned(&OpLabels { kind, result })
                    })
                })
                .collect(),
            ..ServiceMetrics::default()
        };
        registry.register(
            "pod_service_watch_events",
            "Watch events sent, by type (added: a pod of a watch's starting snapshot).",
            events,
        );
        registry.register(
            "pod_service_watchers_ended",
            "Watches ended, by reason.",
            ended,
        );
        registry.register(
            "pod_service_log_lines_uploaded",
            "Log lines stored by UploadLogs.",
            metrics.lines_uploaded.clone(),
        );
        registry.register(
            "pod_service_log_bytes_uploaded",
            "Bytes of the log lines stored by UploadLogs.",
            metrics.bytes_uploaded.clone(),
        );
        registry.register(
            "pod_service_log_followers",
            "GetLogs calls following a log now.",
            metrics.followers.clone(),
        );
        registry.register(
            "pod_service_sync_ops",
            "SyncPods ops answered, by kind and result (the ack's code, as grpc-go spells it).",
            ops,
        );
        registry.register(
            "pod_service_registry_version",
            "The registry's current version (resource_version).",
            metrics.figures.version.clone(),
        );
        registry.register(
            "pod_service_pods",
            "Pods stored.",
            metrics.figures.pods.clone(),
        );
        registry.register(
            "pod_service_watchers",
            "Watchers registered with the watch cache.",
            metrics.figures.watchers.clone(),
        );
        metrics
    }

    /// Counts a watch that ended for `why`.
    pub fn watch_ended(&self, why: WatchEnded) {
        let at = REASONS.iter().position(|(reason, _)| *reason == why);
        if let Some(counter) = at.and_then(|at| self.ended.get(at)) {
            counter.inc();
        }
    }

    /// Counts a SyncPods op of `kind` answered with `code`.
    pub fn op(&self, kind: OpKind, code: Code) {
        if let Some(codes) = self.ops.get(kind as usize) {
            codes[code as usize].inc();
        }
    }
}
