//! Where the logs go on NATS, and how they are kept there.

use std::fmt;
use std::time::Duration;

use crate::store::tls::BackendTls;

/// Where the logs go on NATS, and how they are kept there.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// The servers' URLs, `nats://HOST:PORT` or `tls://HOST:PORT` each;
    /// any one will do, the client learns the rest of the cluster from it.
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
    /// TLS towards the servers: the CA that signs their certificates and
    /// the client certificate they may ask for; TLS is then required.
    /// `None`: TLS only for `tls://` URLs or a server that asks for it,
    /// with the system's CAs and no client certificate.
    pub tls: Option<BackendTls>,
    /// Who this server is to NATS.
    pub auth: NatsAuth,
}

/// How `pod-server` authenticates to NATS.
#[derive(Clone, Default)]
pub enum NatsAuth {
    /// As nobody (or by its client certificate alone).
    #[default]
    None,
    /// With a user and a password (`--nats-user`).
    UserPassword {
        /// The user.
        user: String,
        /// Its password: never printed, not even by `Debug`.
        password: String,
    },
}

impl fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatsAuth::None => f.write_str("None"),
            NatsAuth::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"(hidden)")
                .finish(),
        }
    }
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
            tls: None,
            auth: NatsAuth::None,
        }
    }
}
