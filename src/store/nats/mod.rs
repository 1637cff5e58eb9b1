//! Pod logs on NATS JetStream, shared by every server of a registry.
//!
//! [`JetStreamLogs`] is a [`LogBackend`] that keeps the log lines in one
//! JetStream stream, which every server reads and writes, so that a log
//! uploaded through one server is read and followed through any other, and
//! an acknowledged line survives the loss of any one NATS server (with 3
//! replicas). The pods are the registry's (on etcd), which hands over each
//! pod's life: its creation version names the subject, and its end ends a
//! follower.
//!
//! - **Subjects.** One per life of a pod: `<stream>.<namespace>.<pod>.<created>`,
//!   `created` being the version that created the pod (etcd's
//!   `create_revision`). A pod deleted and created again writes to a new
//!   subject, so it starts with an empty log whatever became of the old
//!   one, which is purged when the server that deleted the pod sees its
//!   tombstone. Namespaces and names are
//!   DNS-1123 labels, valid subject tokens.
//! - **Messages** hold runs of lines with their numbers ([`records`]).
//! - **Writes** ([`writer`]) are serialised per pod with JetStream's
//!   expected-last-subject-sequence check, so that two servers uploading to
//!   one pod never give two lines one number; an upload is answered after
//!   JetStream acknowledged every message (a quorum of replicas has it).
//! - **Retention** is by bytes, as on the embedded stores: the writer
//!   purges a pod's oldest messages once its log is an eighth over
//!   `log_bytes_per_pod`. JetStream has no per-subject byte limit, and its
//!   per-subject message limit would count messages of any size alike.
//! - **Reads** ([`reader`]) use JetStream's direct get, which any replica
//!   answers, so stored lines stay readable while the stream has no
//!   leader; a follower is woken by a plain NATS subscription to the
//!   subject, one per followed pod per server ([`wakeups`]).
//!
//! The pods' backend must never give two lives of a pod one creation
//! version, even across restarts: the etcd backend, whose revisions are
//! never reused. `pod-server` only allows `--nats-url` with it.

mod config;
mod connect;
mod lanes;
mod reader;
mod records;
mod shared;
mod wakeups;
mod writer;

use std::sync::Arc;

use async_nats::jetstream::{self, stream};

pub use config::{NatsAuth, NatsConfig};
pub use connect::NATS_TLS_FLAGS;
use shared::Logs;

use futures::future::BoxFuture;
use tracing::instrument::WithSubscriber;

use super::backend::{LogBackend, Pending};
use super::error::StoreError;
use super::pod_log::{LogLines, LogStart, PodLog};
use crate::contract::Pod;
use crate::domain::PodKey;
use crate::metrics::StoreMetrics;

/// The most payload one message carries: small enough that finding a line
/// (some tens of direct gets) moves little, large enough that one message
/// takes a typical 1,000-line chunk.
const MAX_MESSAGE_BYTES: usize = 128 << 10;

/// How long one read request may take before it is asked again.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// How long opening waits for JetStream to be ready.
const OPEN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Logs on JetStream (see the module docs).
pub(super) struct JetStreamLogs {
    logs: Arc<Logs>,
}

/// Why the logs could not be opened: one line for the operator.
#[derive(Debug)]
pub struct NatsError(String);

impl std::fmt::Display for NatsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NatsError {}

impl JetStreamLogs {
    /// Connects to NATS, creates the stream if it is missing (or sets its
    /// replicas if they differ), and keeps the logs there, at most
    /// `log_bytes_per_pod` each, counting its requests into `metrics`.
    pub async fn open(
        config: NatsConfig,
        log_bytes_per_pod: usize,
        metrics: StoreMetrics,
    ) -> Result<Self, NatsError> {
        let addrs = config
            .urls
            .iter()
            .map(|url| {
                url.parse::<async_nats::ServerAddr>()
                    .map_err(|err| NatsError(format!("bad NATS URL {url:?}: {err}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let urls = config.urls.join(",");
        // Silent while connecting: async-nats logs a refusal (an
        // authorization violation) as an error of its own, and the operator
        // is to get one line, ours. Its connection's later events (lost,
        // reconnected) are logged as usual, from the task it spawns.
        let client = connect::options(&config)
            .connect(addrs)
            .with_subscriber(tracing::subscriber::NoSubscriber::default())
            .await
            .map_err(|err| NatsError(connect::refused(&config, &err)))?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(config.ack_timeout)
            .build(client.clone());
        let info = client.server_info();
        let servers = info.connect_urls.len().max(config.urls.len()).max(1);
        let replicas = config.replicas.unwrap_or(if servers >= 3 { 3 } else { 1 });
        let wanted = stream::Config {
            name: config.stream.clone(),
            subjects: vec![format!("{}.>", config.stream)],
            num_replicas: replicas,
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            allow_direct: true,
            ..stream::Config::default()
        };
        // A cluster that just started has no JetStream leader for a moment.
        let deadline = tokio::time::Instant::now() + OPEN_PATIENCE;
        let stream = loop {
            match ensure_stream(&jetstream, &wanted).await {
                Ok(stream) => break stream,
                Err(err) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(%err, "the log stream is not ready; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(err) => return Err(NatsError(format!("{err} (NATS at {urls})"))),
            }
        };
        let reads = jetstream::ContextBuilder::new()
            .timeout(READ_TIMEOUT)
            .build(client.clone());
        let read_stream = reads
            .get_stream_no_info(&config.stream)
            .await
            .map_err(|err| NatsError(format!("cannot open the stream {}: {err}", config.stream)))?;
        // Headers take some of the server's payload limit.
        let max_message_bytes = MAX_MESSAGE_BYTES.min(info.max_payload / 2);
        let logs = Arc::new(Logs {
            lanes: lanes::Lanes::default(),
            wakeups: wakeups::Wakeups::new(client.clone(), read_stream.clone()),
            reads: read_stream,
            client,
            jetstream,
            stream,
            config,
            max_message_bytes: max_message_bytes.max(1024),
            log_bytes_per_pod: log_bytes_per_pod as u64,
            metrics,
        });
        tracing::info!(
            stream = logs.config.stream,
            replicas,
            "pod logs on NATS JetStream"
        );
        Ok(JetStreamLogs { logs })
    }

    /// The subject of a life of a pod.
    fn subject(&self, key: &PodKey, life: &PodLog) -> Result<String, StoreError> {
        if life.created() == 0 {
            return Err(StoreError::Storage(format!(
                "the creation version of pod {key} is not known, so its log has no subject"
            )));
        }
        Ok(self.logs.subject(key, life.created()))
    }
}

/// The stream as `wanted`: created if missing, its replicas set if they differ.
async fn ensure_stream(
    jetstream: &jetstream::Context,
    wanted: &stream::Config,
) -> Result<stream::Stream, String> {
    let name = &wanted.name;
    match jetstream.get_stream(name).await {
        Ok(mut existing) => {
            let current = existing
                .info()
                .await
                .map_err(|err| format!("cannot read the JetStream stream {name}: {err}"))?
                .config
                .clone();
            if current.num_replicas != wanted.num_replicas || !current.allow_direct {
                jetstream
                    .update_stream(stream::Config {
                        num_replicas: wanted.num_replicas,
                        allow_direct: true,
                        ..current
                    })
                    .await
                    .map_err(|err| {
                        format!(
                            "cannot set the JetStream stream {name} to {} replicas: {err}",
                            wanted.num_replicas
                        )
                    })?;
            }
            Ok(existing)
        }
        Err(_) => jetstream
            .create_stream(wanted.clone())
            .await
            .map_err(|err| {
                format!(
                    "cannot create the JetStream stream {name} with {} replicas: {err}",
                    wanted.num_replicas
                )
            }),
    }
}

impl LogBackend for JetStreamLogs {
    fn append(&self, key: PodKey, life: Arc<PodLog>, lines: Vec<String>) -> Pending<()> {
        let subject = self.subject(&key, &life);
        let logs = Arc::clone(&self.logs);
        Box::pin(async move { writer::append(&logs, subject?, lines).await })
    }

    fn read(
        &self,
        key: &PodKey,
        life: Arc<PodLog>,
        start: LogStart,
        follow: bool,
    ) -> Result<LogLines, StoreError> {
        let subject = self.subject(key, &life)?;
        Ok(reader::read(
            Arc::clone(&self.logs),
            subject,
            life,
            start,
            follow,
        ))
    }

    fn deleted(&self, tombstone: &Pod, life: &PodLog) -> BoxFuture<'static, ()> {
        let subject = self.subject(&PodKey::of(tombstone), life);
        let logs = Arc::clone(&self.logs);
        Box::pin(async move {
            let Ok(subject) = subject else { return };
            // The subject is never written again; purging it only frees
            // its space, so a failure leaves no wrong answer.
            if let Err(err) = logs.stream.purge().filter(subject.as_str()).await {
                tracing::warn!(subject, %err, "cannot purge a deleted pod's log");
            }
            logs.lanes.forget(&subject);
        })
    }

    // Every append is acknowledged by JetStream before it resolves: `sync`
    // has nothing to wait for.

    fn close(&self) -> Pending<()> {
        let client = self.logs.client.clone();
        Box::pin(async move {
            // Nothing is buffered that an acknowledged write needs.
            let _ = client.flush().await;
            Ok(())
        })
    }
}
