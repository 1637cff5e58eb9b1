//! The server `pod-bench` loads when it is given no `--addr`: the real
//! server in this process, on a free loopback port, with the numbered pods.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::ValueEnum;
use pod_service::sample;
use pod_service::server::{InProcessServer, ServerConfig};
use pod_service::store::{Registry, Storage, StoreConfig};

/// The store of the in-process server.
#[derive(Clone, Copy, ValueEnum)]
pub enum StoreKind {
    /// In memory.
    Memory,
    /// Durable, in a fresh temporary directory, removed afterwards.
    Durable,
}

/// A server in this process, and the directory of its store, if durable.
pub struct InProcess {
    server: InProcessServer,
    data_dir: Option<PathBuf>,
}

impl InProcess {
    /// Starts a server whose store holds `pods` numbered pods.
    pub async fn start(kind: StoreKind, pods: usize) -> anyhow::Result<Self> {
        let data_dir = match kind {
            StoreKind::Memory => None,
            StoreKind::Durable => {
                Some(std::env::temp_dir().join(format!("pod-bench-{}", std::process::id())))
            }
        };
        let storage = data_dir.clone().map_or(Storage::InMemory, Storage::Durable);
        let opened = Registry::open(
            storage,
            StoreConfig::default(),
            sample::numbered(pods).collect(),
        )
        .await?;
        let server = InProcessServer::start(Arc::new(opened.registry), ServerConfig::default())
            .context("cannot start the in-process server")?;
        Ok(InProcess { server, data_dir })
    }

    /// The URL of the server.
    pub fn url(&self) -> String {
        self.server.url()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
