//! The command-line options the client binaries share, parsed by clap.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::client::{ClientConfig, ClientIdentity};
use crate::contract::{
    DEFAULT_KEEPALIVE_INTERVAL, DEFAULT_KEEPALIVE_TIMEOUT, DEFAULT_NAMESPACE, DEFAULT_SERVER_URL,
    Token,
};

/// The environment variable that overrides the default server address
/// (or addresses, comma-separated, as `--addr`).
const ADDR_ENV: &str = "POD_SERVICE_ADDR";

/// The environment variable that names the CA file.
const CA_ENV: &str = "POD_SERVICE_CA";

/// The environment variables that name the client certificate and its key.
const CERT_ENV: &str = "POD_SERVICE_CERT";
const KEY_ENV: &str = "POD_SERVICE_KEY";

/// The connection options every client binary takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Server address: http://HOST:PORT, or https://HOST:PORT for TLS.
    /// Several, comma-separated, are replicas of one registry: a client uses
    /// the first that accepts a connection, and list-pods, watch-pods,
    /// pod-logs and sync-pods move on to the next when theirs fails.
    #[arg(long = "addr", value_name = "ADDR[,ADDR...]", value_delimiter = ',',
          default_value = DEFAULT_SERVER_URL, env = ADDR_ENV)]
    pub addrs: Vec<String>,
    /// PEM file of the CA that signed the server's TLS certificate, or of
    /// that certificate itself (https).
    #[arg(long, value_name = "FILE", env = CA_ENV)]
    pub ca: Option<PathBuf>,
    /// PEM file of this client's certificate, for a server that
    /// authenticates callers by certificate (https); needs --key.
    #[arg(long, value_name = "FILE", env = CERT_ENV, requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM file of the private key of --cert.
    #[arg(long, value_name = "FILE", env = KEY_ENV, requires = "cert")]
    pub key: Option<PathBuf>,
    /// File holding the server's token (or set POD_SERVICE_TOKEN to the token).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Seconds between pings while a call is open, and seconds an answer
    /// may take: a server (or network path) that died silently is noticed
    /// within their sum, and the long-running clients reconnect.
    #[arg(long, value_name = "SECONDS",
          default_value_t = DEFAULT_KEEPALIVE_INTERVAL.as_secs_f64())]
    pub keepalive_interval: f64,
    #[allow(missing_docs)] // documented with the interval above, as clap shows them
    #[arg(long, value_name = "SECONDS",
          default_value_t = DEFAULT_KEEPALIVE_TIMEOUT.as_secs_f64())]
    pub keepalive_timeout: f64,
}

impl ServerArgs {
    /// The client configuration these options describe (the token as
    /// [`Token::configured`] finds it).
    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let token = Token::configured(self.token_file.as_deref()).map_err(anyhow::Error::msg)?;
        let seconds = |value: f64, flag: &str| {
            Duration::try_from_secs_f64(value).with_context(|| format!("invalid {flag}"))
        };
        Ok(ClientConfig {
            // `a, b` is as clear as `a,b`.
            addrs: self
                .addrs
                .iter()
                .map(|addr| addr.trim().to_owned())
                .collect(),
            ca: self.ca.clone(),
            identity: match (&self.cert, &self.key) {
                (Some(cert), Some(key)) => Some(ClientIdentity {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
            token,
            keepalive_interval: seconds(self.keepalive_interval, "--keepalive-interval")?,
            keepalive_timeout: seconds(self.keepalive_timeout, "--keepalive-timeout")?,
        })
    }
}

/// Names one pod, for the log clients.
#[derive(Debug, Clone, clap::Args)]
pub struct PodArgs {
    /// The pod's namespace.
    #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// The pod's name.
    #[arg(short, long)]
    pub pod: String,
}

/// The namespace filter of the list and watch clients.
#[derive(Debug, Clone, clap::Args)]
pub struct NamespaceArgs {
    /// Only this namespace (default: every namespace).
    #[arg(short, long, default_value = "", hide_default_value = true)]
    pub namespace: String,
}
