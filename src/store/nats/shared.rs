//! What the reads and writes of the logs share: the connection, the
//! stream, the limits, and the per-pod state of this server.

use async_nats::jetstream::{self, stream};

use super::config::NatsConfig;
use super::lanes::Lanes;
use super::wakeups::Wakeups;
use crate::domain::PodKey;
use crate::metrics::StoreMetrics;
use crate::store::error::StoreError;

/// What the reads and writes share.
pub(super) struct Logs {
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    /// The stream, for purges.
    pub stream: stream::Stream,
    /// The stream, for reads: their requests time out sooner than writes',
    /// so that a read that went nowhere (to a server just killed, say) is
    /// asked again soon.
    pub reads: stream::Stream<()>,
    pub config: NatsConfig,
    /// The most payload one message of ours carries.
    pub max_message_bytes: usize,
    /// Bytes of log kept per pod (by `line_cost`).
    pub log_bytes_per_pod: u64,
    pub lanes: Lanes,
    pub wakeups: Wakeups,
    /// Where each publish and read is counted.
    pub metrics: StoreMetrics,
}

impl Logs {
    pub fn subject(&self, key: &PodKey, created: u64) -> String {
        format!(
            "{}.{}.{}.{created}",
            self.config.stream, key.namespace, key.name
        )
    }
}

/// A JetStream failure, for a client: the logs are unreachable now.
pub(super) fn unavailable(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("NATS JetStream {what}: {err}"))
}
