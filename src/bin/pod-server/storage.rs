//! Where `pod-server` keeps its pods and logs: a data directory, memory,
//! or etcd (and NATS JetStream) shared by replicas, and how to reach them.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use pod_service::store::{
    BackendTls, ETCD_TLS_FLAGS, EtcdConfig, NATS_TLS_FLAGS, NatsAuth, NatsConfig, Storage, TlsFiles,
};

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
    /// Trust the etcd servers whose certificates this CA signed (PEM), for
    /// https:// endpoints. Without it, https:// endpoints are checked
    /// against the system's CAs.
    #[arg(
        long,
        value_name = "FILE",
        env = "POD_SERVER_ETCD_CAFILE",
        requires = "etcd_endpoints"
    )]
    etcd_cafile: Option<PathBuf>,
    /// Show etcd this client certificate (PEM), for an etcd started with
    /// --client-cert-auth; needs --etcd-keyfile.
    #[arg(long, value_name = "FILE", env = "POD_SERVER_ETCD_CERTFILE",
          requires_all = ["etcd_endpoints", "etcd_keyfile"])]
    etcd_certfile: Option<PathBuf>,
    /// The private key of --etcd-certfile (PEM).
    #[arg(
        long,
        value_name = "FILE",
        env = "POD_SERVER_ETCD_KEYFILE",
        requires = "etcd_certfile"
    )]
    etcd_keyfile: Option<PathBuf>,
    /// Trust the NATS servers whose certificates this CA signed (PEM), and
    /// require TLS (as tls:// URLs do; without it, tls:// URLs are checked
    /// against the system's CAs).
    #[arg(
        long,
        value_name = "FILE",
        env = "POD_SERVER_NATS_CA",
        requires = "nats_url"
    )]
    nats_ca: Option<PathBuf>,
    /// Show NATS this client certificate (PEM), for a server whose tls
    /// block says verify: true; needs --nats-key.
    #[arg(long, value_name = "FILE", env = "POD_SERVER_NATS_CERT",
          requires_all = ["nats_url", "nats_key"])]
    nats_cert: Option<PathBuf>,
    /// The private key of --nats-cert (PEM).
    #[arg(
        long,
        value_name = "FILE",
        env = "POD_SERVER_NATS_KEY",
        requires = "nats_cert"
    )]
    nats_key: Option<PathBuf>,
    /// Authenticate to NATS as this user, with the password of
    /// --nats-password-file or of the environment variable
    /// POD_SERVER_NATS_PASSWORD (never a flag: flags show in process
    /// listings).
    #[arg(
        long,
        value_name = "USER",
        env = "POD_SERVER_NATS_USER",
        requires = "nats_url"
    )]
    nats_user: Option<String>,
    /// The file holding --nats-user's password (its first line).
    #[arg(
        long,
        value_name = "FILE",
        env = "POD_SERVER_NATS_PASSWORD_FILE",
        requires = "nats_user"
    )]
    nats_password_file: Option<PathBuf>,
}

/// Where --nats-user's password comes from when no file is given.
const NATS_PASSWORD_VAR: &str = "POD_SERVER_NATS_PASSWORD";

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
            tls: tls(
                ETCD_TLS_FLAGS,
                [&self.etcd_cafile, &self.etcd_certfile, &self.etcd_keyfile],
            )?,
            ..EtcdConfig::new(self.etcd_endpoints.clone())
        };
        let nats = if self.nats_url.is_empty() {
            None
        } else {
            Some(NatsConfig {
                stream: self.nats_stream.clone(),
                replicas: self.nats_replicas.map(usize::from),
                tls: tls(
                    NATS_TLS_FLAGS,
                    [&self.nats_ca, &self.nats_cert, &self.nats_key],
                )?,
                auth: self.nats_auth()?,
                ..NatsConfig::new(self.nats_url.clone())
            })
        };
        Ok(Storage::Etcd { etcd, nats })
    }

    /// Who this server is to NATS. The password's file or variable is read
    /// here, so that a missing one stops the server before it connects.
    fn nats_auth(&self) -> anyhow::Result<NatsAuth> {
        let Some(user) = &self.nats_user else {
            return Ok(NatsAuth::None);
        };
        let password = match &self.nats_password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read --nats-password-file {}", path.display())
                })?;
                // The first line, as `echo secret > file` writes it.
                let line = text.lines().next().unwrap_or_default().to_owned();
                if line.is_empty() {
                    anyhow::bail!(
                        "--nats-password-file {} holds no password on its first line",
                        path.display()
                    );
                }
                line
            }
            None => std::env::var(NATS_PASSWORD_VAR).map_err(|_| {
                anyhow::anyhow!(
                    "--nats-user {user} needs a password: --nats-password-file FILE, or the \
                     variable {NATS_PASSWORD_VAR}"
                )
            })?,
        };
        Ok(NatsAuth::UserPassword {
            user: user.clone(),
            password,
        })
    }
}

/// The TLS files named by `flags` (CA, certificate, key), read and checked;
/// `None` when none is given.
fn tls(flags: [&str; 3], files: [&Option<PathBuf>; 3]) -> anyhow::Result<Option<BackendTls>> {
    let [ca, cert, key] = files.map(Option::as_deref);
    if ca.is_none() && cert.is_none() && key.is_none() {
        return Ok(None);
    }
    let files = TlsFiles {
        ca,
        cert,
        key,
        flags,
    };
    BackendTls::load(files)
        .map(Some)
        .map_err(anyhow::Error::msg)
}
