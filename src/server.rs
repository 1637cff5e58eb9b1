//! Wiring: a store, the service and a listener, served until shutdown.
//!
//! [`serve`] is what `pod-server` runs and what the tests start on an
//! ephemeral port, so the tests exercise exactly the server users run.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::pb::PodServiceServer;
use crate::service::{DEFAULT_MAX_LINE_BYTES, PodService};
use crate::shutdown::Shutdown;
use crate::store::PodStore;

/// The address `pod-server` listens on by default (the tutorial's port).
pub const DEFAULT_ADDR: &str = "127.0.0.1:50051";

/// Limits of the transport and of requests.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The longest accepted log line, in bytes.
    pub max_line_bytes: usize,
    /// The largest accepted request message, in bytes.
    pub max_message_bytes: usize,
    /// How long in-flight calls may take to finish after shutdown begins.
    pub grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_message_bytes: 4 << 20,
            grace: Duration::from_secs(10),
        }
    }
}

/// Serves the PodService on `listener` until `shutdown` is cancelled, then
/// lets calls in flight finish for up to `config.grace`.
pub async fn serve(
    listener: TcpListener,
    store: Arc<dyn PodStore>,
    config: ServerConfig,
    shutdown: Shutdown,
) -> Result<(), tonic::transport::Error> {
    let service = PodService::new(store, config.max_line_bytes, shutdown.clone());
    let service = PodServiceServer::new(service)
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    // Streams send many small messages: don't let Nagle hold them back.
    // (The builder's `tcp_nodelay` only applies to listeners it binds itself.)
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = tonic::transport::Server::builder()
        // Notice peers that vanished without closing their connection.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned());
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        _ = shutdown.cancelled() => {}
    }
    match tokio::time::timeout(config.grace, server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                grace = ?config.grace,
                "calls still open after the grace period; closing their connections"
            );
            Ok(())
        }
    }
}
