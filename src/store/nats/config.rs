//! Where the logs go on NATS, and how they are kept there.

use std::time::Duration;

/// Where the logs go on NATS, and how they are kept there.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// The servers' URLs, `nats://HOST:PORT` each; any one will do, the
    /// client learns the rest of the cluster from it.
    pub urls: Vec<String>,
    /// The JetStream stream that holds every pod's log, under the subjects
    /// `<stream>.<namespace>.<pod>.<created>` (see docs/nats.md); created
    /// when missing. Its name is its subjects' first token.
    pub stream: String,
    /// How many servers keep a copy of each line: the stream's replicas.
    /// `None`: 3 on a cluster of 3 or more servers, otherwise 1.
    pub replicas: Option<usize>,
    /// How long an upload waits for JetStream to acknowledge a chunk.
    pub ack_timeout: Duration,
}

impl NatsConfig {
    /// The default of [`NatsConfig::stream`].
    pub const DEFAULT_STREAM: &str = "pod-logs";
    /// The default of [`NatsConfig::ack_timeout`].
    pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);

    /// The defaults, for these servers.
    pub fn new(urls: Vec<String>) -> Self {
        NatsConfig {
            urls,
            stream: Self::DEFAULT_STREAM.into(),
            replicas: None,
            ack_timeout: Self::DEFAULT_ACK_TIMEOUT,
        }
    }
}
