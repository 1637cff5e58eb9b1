//! A server in this process, on a free loopback port: what `tour` and
//! `pod-bench` run, and what the end-to-end tests start. It is [`serve`]
//! itself, the same as `pod-server` runs, not a test double.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use super::serve::{ServeError, ServerConfig, serve};
use super::signals::Shutdown;
use crate::store::Registry;

/// See the module docs. Dropping it begins the server's shutdown.
pub struct InProcessServer {
    addr: SocketAddr,
    /// Held for the server's whole life, across restarts, so that no other
    /// socket can take the port while the server is down.
    listener: std::net::TcpListener,
    registry: Arc<Registry>,
    config: ServerConfig,
    runtime: Handle,
    shutdown: Shutdown,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl InProcessServer {
    /// Serves `registry` on a free loopback port, on the current Tokio runtime.
    pub fn start(registry: Arc<Registry>, config: ServerConfig) -> std::io::Result<Self> {
        let runtime = Handle::try_current().map_err(std::io::Error::other)?;
        Self::start_on(runtime, registry, config)
    }

    /// Serves `registry` on a free loopback port, on `runtime` (for a test that
    /// counts the server's tasks apart from its own).
    pub fn start_on(
        runtime: Handle,
        registry: Arc<Registry>,
        config: ServerConfig,
    ) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let mut server = InProcessServer {
            addr: listener.local_addr()?,
            listener,
            registry,
            config,
            runtime,
            shutdown: Shutdown::new(),
            task: None,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let listener = self.listener.try_clone()?;
        let (registry, config, shutdown) = (
            Arc::clone(&self.registry),
            self.config.clone(),
            self.shutdown.clone(),
        );
        self.task = Some(self.runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|err| ServeError::new(format!("cannot listen: {err}")))?;
            serve(listener, registry, config, shutdown).await
        }));
        Ok(())
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL clients connect to, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts the server down (endless streams end with `UNAVAILABLE`) and
    /// waits until it has stopped.
    pub async fn stop(&mut self) -> Result<(), ServeError> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|err| ServeError::new(format!("the server task failed: {err}")))?,
            None => Ok(()),
        }
    }

    /// Stops the server, then serves the same registry again on the same port,
    /// as a restarted server would. (Connections attempted while it was
    /// down wait in the listen backlog and are served now.)
    pub async fn restart(&mut self) -> Result<(), ServeError> {
        self.stop().await?;
        self.shutdown = Shutdown::new();
        self.spawn()
            .map_err(|err| ServeError::new(format!("cannot serve again: {err}")))
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
