//! Where `pod-server` keeps its pods and logs: a data directory, memory,
//! or etcd (and NATS JetStream) shared by replicas, and how to reach them.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use pod_service::store::{EtcdConfig, NatsConfig, Storage};

/// The store's flags.
#[derive(clap::Args)]
pub struct StorageArgs {
    /// Where the store keeps its data (created if missing).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "pod-data",
        env = "POD_SERVER_DATA_DIR"
    )]
    data_dir: PathBuf,
    /// Keep everything in memory instead (lost when the server stops).
    #[arg(long, conflicts_with = "data_dir")]
    in_memory: bool,
    /// Keep the pods in this etcd cluster instead (client URLs,
    /// comma-separated), shared by every pod-server pointed at the same
    /// endpoints and prefix. Nothing goes on local disk; uploaded logs stay
    /// in this server's memory, unless --nats-url is given.
    #[arg(long, value_name = "URL,...", value_delimiter = ',',
          env = "POD_SERVER_ETCD_ENDPOINTS", conflicts_with_all = ["data_dir", "in_memory"])]
    etcd_endpoints: Vec<String>,
    /// The key prefix of the registry in etcd: servers with the same
    /// endpoints and prefix serve one registry.
    #[arg(long, value_name = "PREFIX", default_value = EtcdConfig::DEFAULT_PREFIX,
          env = "POD_SERVER_ETCD_PREFIX")]
    etcd_prefix: String,
    /// Seconds between this server's attempts to compact etcd so that the
    /// newest --history revisions stay watchable (one server of the
    /// registry wins each round); 0: never (let etcd compact itself).
    #[arg(long, value_name = "SECONDS",
          default_value_t = EtcdConfig::DEFAULT_COMPACTION_INTERVAL.as_secs_f64())]
    etcd_compaction_interval: f64,
    /// Keep uploaded logs on these NATS servers instead (URLs,
    /// comma-separated; one is enough to find the cluster), in a JetStream
    /// stream shared by every pod-server of the registry: a log uploaded
    /// through one is read and followed through any. Needs --etcd-endpoints.
    #[arg(
        long,
        value_name = "URL,...",
        value_delimiter = ',',
        env = "POD_SERVER_NATS_URL",
        requires = "etcd_endpoints"
    )]
    nats_url: Vec<String>,
    /// How many NATS servers keep a copy of each log line (the stream's
    /// replicas). A line is acknowledged once a majority of them have it,
    /// so 3 survive the loss of one, and 1 survives none. Default: 3 on a
    /// cluster of 3 or more servers, else 1.
    #[arg(long, value_name = "N", requires = "nats_url",
          value_parser = clap::value_parser!(u8).range(1..=5))]
    nats_replicas: Option<u8>,
    /// The JetStream stream that holds the logs (created if missing):
    /// servers of one registry use the same.
    #[arg(long, value_name = "NAME", default_value = NatsConfig::DEFAULT_STREAM,
          requires = "nats_url")]
    nats_stream: String,
}

impl StorageArgs {
    /// Whether the pods are shared through etcd.
    pub fn shared(&self) -> bool {
        !self.etcd_endpoints.is_empty()
    }

    /// Where the pods and logs are kept, from the flags.
    pub fn storage(&self) -> anyhow::Result<Storage> {
        if self.etcd_endpoints.is_empty() {
            return Ok(if self.in_memory {
                Storage::InMemory
            } else {
                Storage::Durable(self.data_dir.clone())
            });
        }
        let compaction_interval = Duration::try_from_secs_f64(self.etcd_compaction_interval)
            .context("invalid --etcd-compaction-interval")?;
        let etcd = EtcdConfig {
            prefix: self.etcd_prefix.clone(),
            compaction_interval,
            ..EtcdConfig::new(self.etcd_endpoints.clone())
        };
        let nats = (!self.nats_url.is_empty()).then(|| NatsConfig {
            stream: self.nats_stream.clone(),
            replicas: self.nats_replicas.map(usize::from),
            ..NatsConfig::new(self.nats_url.clone())
        });
        Ok(Storage::Etcd { etcd, nats })
    }
}
