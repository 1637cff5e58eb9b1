//! The server a run loads and the connections to it: the servers given by
//! the shared client options (`--addr`, `--ca`, `--token-file` and their
//! environment variables), or, without an address, the in-process server.

use pod_service::cli::ServerArgs;
use pod_service::client::{self, Client, ClientConfig};

use crate::server::{InProcess, StoreKind};

/// The server under load, and the connections the loads spread their calls
/// and streams over, round the replicas in turn.
pub struct Target {
    pub clients: Vec<Client>,
    /// `memory`, `durable`, or `external` for a server given by `--addr`.
    pub store: &'static str,
    /// The pods the server started with (`--pods`).
    pub pods: usize,
    /// Names the namespaces this run writes to (`--namespace-tag`).
    tag: String,
    config: ClientConfig,
    // Dropped last, after the connections to it.
    server: Option<InProcess>,
}

impl Target {
    /// Starts the in-process server if `server` gives no address, then
    /// opens `connections` connections (at least one).
    pub async fn open(
        server: &ServerArgs,
        store: StoreKind,
        pods: usize,
        connections: usize,
        tag: Option<String>,
    ) -> anyhow::Result<Self> {
        let mut config = server.client_config()?;
        let (store, server) = if config.addrs.is_empty() {
            let server = InProcess::start(store, pods).await?;
            config.addrs = vec![server.url()];
            let store = match store {
                StoreKind::Memory => "memory",
                StoreKind::Durable => "durable",
            };
            (store, Some(server))
        } else {
            ("external", None)
        };
        let mut target = Target {
            clients: Vec::new(),
            store,
            pods,
            tag: tag.unwrap_or_else(|| std::process::id().to_string()),
            config,
            server,
        };
        for i in 0..connections.max(1) {
            let addr = target.config.addr_for(i).to_owned();
            target.clients.push(target.connect(addr).await?);
        }
        Ok(target)
    }

    /// Whether the server runs in another process (given by `--addr`).
    pub fn is_external(&self) -> bool {
        self.server.is_none()
    }

    /// As many connections again, all to the last address: what a run
    /// reads through apart from the one it writes through.
    pub async fn last_replica(&self) -> anyhow::Result<Vec<Client>> {
        let last = self
            .config
            .addr_for(self.config.addrs.len().saturating_sub(1));
        let mut clients = Vec::with_capacity(self.clients.len());
        for _ in 0..self.clients.len() {
            clients.push(self.connect(last.to_owned()).await?);
        }
        Ok(clients)
    }

    /// The namespace run `run` of `load` writes to: concurrent runs (with
    /// other tags) do not meet, and repeated ones reuse the same pods.
    pub fn namespace(&self, load: &str, run: Option<usize>) -> String {
        match run {
            Some(run) => format!("bench-{load}-{}-{run}", self.tag),
            None => format!("bench-{load}-{}", self.tag),
        }
    }

    /// The process id of the server: `given`, else this process if the
    /// server is in it.
    pub fn server_pid(&self, given: Option<u32>) -> Option<u32> {
        given.or_else(|| (!self.is_external()).then(std::process::id))
    }

    async fn connect(&self, addr: String) -> anyhow::Result<Client> {
        let config = ClientConfig {
            addrs: vec![addr],
            ..self.config.clone()
        };
        client::connect(&config).await
    }
}
