//! Where the etcd store keeps its registry, and how it treats etcd.

use std::time::Duration;

use crate::store::tls::BackendTls;

/// Where the etcd store keeps its registry, and how it treats etcd.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// The cluster's client URLs, `http://HOST:PORT` each, or
    /// `https://HOST:PORT` each (not a mix).
    pub endpoints: Vec<String>,
    /// TLS towards `https://` endpoints: the CA that signs etcd's
    /// certificates and the client certificate etcd may ask for. `None`
    /// with `https://` endpoints: the system's CAs, no client
    /// certificate. Refused with `http://` endpoints.
    pub tls: Option<BackendTls>,
    /// Every key of the registry starts with it, so that several
    /// registries (and tests) can share one cluster.
    pub prefix: String,
    /// How often this server tries to compact etcd (one server of the
    /// registry wins each round); zero: never (compact etcd otherwise,
    /// e.g. with its `--auto-compaction-retention`).
    pub compaction_interval: Duration,
    /// How long a read waits for this server to catch up with etcd
    /// before it fails with `UNAVAILABLE`.
    pub catch_up_timeout: Duration,
}

impl EtcdConfig {
    /// The default of [`EtcdConfig::prefix`].
    pub const DEFAULT_PREFIX: &str = "/pod-service/";
    /// The default of [`EtcdConfig::compaction_interval`] (kube-apiserver
    /// compacts every 5 minutes).
    pub const DEFAULT_COMPACTION_INTERVAL: Duration = Duration::from_secs(60);
    /// The default of [`EtcdConfig::catch_up_timeout`] (as kube-apiserver
    /// waits for its cache).
    pub const DEFAULT_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(3);

    /// The defaults, for these endpoints.
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdConfig {
            endpoints,
            tls: None,
            prefix: Self::DEFAULT_PREFIX.into(),
            compaction_interval: Self::DEFAULT_COMPACTION_INTERVAL,
            catch_up_timeout: Self::DEFAULT_CATCH_UP_TIMEOUT,
        }
    }
}
