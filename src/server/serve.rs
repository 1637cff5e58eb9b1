//! Wiring: a registry, the services and a listener, served until shutdown.
//!
//! [`serve`] is what `pod-server` runs and what the tests start on an
//! ephemeral port (through [`InProcessServer`](super::InProcessServer)), so
//! the tests exercise exactly the server users run. Besides the PodService
//! it serves the standard health service and server reflection (v1 and
//! v1alpha), so generic tools such as `grpcurl` work without a copy of the
//! proto. Every call passes the dashboard's browser rules, the gRPC-Web
//! translation, the panic guard, then authentication.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic_web::GrpcWebLayer;

use super::access::{Authenticate, Authenticators, Permissions, Policy, TokenUsers};
use super::batched_writes::BatchedWrites;
use super::bookmarks::BookmarkClock;
use super::call_metrics::CountCalls;
use super::dashboard::Dashboard;
use super::health;
use super::panic_guard::GuardCalls;
use super::service::{DEFAULT_MAX_LINE_BYTES, PodService};
use super::signals::Shutdown;
use crate::contract::{self, PodServiceServer, Token};
use crate::metrics::Metrics;
use crate::store::Registry;

/// Limits, security and shutdown of a server.
#[derive(Clone)]
pub struct ServerConfig {
    /// The longest accepted log line, in bytes.
    pub max_line_bytes: usize,
    /// The largest accepted request message, in bytes.
    pub max_message_bytes: usize,
    /// How long in-flight calls may take to finish after shutdown begins.
    pub grace: Duration,
    /// The most calls open at once on one connection (HTTP/2
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`). A client that opens more waits
    /// for one to end; it needs more connections to hold more streams.
    pub max_streams_per_connection: u32,
    /// How often an idle connection is pinged...
    pub keepalive_interval: Duration,
    /// ...and how long the answer may take before the connection is closed:
    /// a peer that vanished without closing its connection is noticed
    /// within their sum.
    pub keepalive_timeout: Duration,
    /// How long a watch that asked for bookmarks may be sent nothing
    /// before it gets one (see `bookmarks`).
    pub bookmark_interval: Duration,
    /// Serve over TLS with this certificate and key.
    pub tls: Option<Identity>,
    /// Require this token on every PodService call: its holder may do
    /// everything (see `access`).
    pub token: Option<Token>,
    /// Also accept the tokens of these users (`--token-auth-file`).
    pub token_users: Option<TokenUsers>,
    /// Ask TLS clients for a certificate and accept those this CA signed
    /// (PEM; `--client-ca-file`): the user is its CN, the groups its Os.
    /// Needs [`ServerConfig::tls`].
    pub client_ca: Option<Certificate>,
    /// What each user may do (`--authorization-policy-file`); without
    /// one, every authenticated caller may do everything.
    pub policy: Option<Policy>,
    /// Serve the dashboard page at `/` (see `dashboard`).
    pub dashboard: bool,
    /// What the server counts (see [`new_metrics`]); served only where
    /// the caller serves it ([`serve_metrics`](super::serve_metrics)).
    pub metrics: Arc<Metrics>,
}

/// Written by hand: tonic's `Identity` would print the private key.
impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("max_line_bytes", &self.max_line_bytes)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("grace", &self.grace)
            .field(
                "max_streams_per_connection",
                &self.max_streams_per_connection,
            )
            .field("keepalive_interval", &self.keepalive_interval)
            .field("keepalive_timeout", &self.keepalive_timeout)
            .field("bookmark_interval", &self.bookmark_interval)
            .field("tls", &self.tls.is_some())
            .field("token", &self.token)
            .field("token_users", &self.token_users)
            .field("client_ca", &self.client_ca.is_some())
            .field("policy", &self.policy.as_ref().map(Policy::len))
            .field("dashboard", &self.dashboard)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// The default of [`ServerConfig::max_message_bytes`]: gRPC's usual 4 MiB.
    pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 << 20;
    /// The default of [`ServerConfig::grace`].
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
    /// The default of [`ServerConfig::bookmark_interval`]: one tick for all
    /// watchers every 2.5 s is nothing to a server, and a quiet watch keeps
    /// its place through up to the default history of 10,000 changes as long
    /// as the store takes fewer than 1,000 changes a second.
    pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);
    /// The default of [`ServerConfig::max_streams_per_connection`]. Kept
    /// below the number of small unread request messages after which h2
    /// closes a connection as a flood (`ENHANCE_YOUR_CALM`): a burst of new
    /// watches brings one each, and with no limit a client opening thousands
    /// of watches at once on one connection had it cut instead of made to
    /// wait (RELIABILITY.md).
    pub const DEFAULT_MAX_STREAMS_PER_CONNECTION: u32 = 1_000;
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_message_bytes: Self::DEFAULT_MAX_MESSAGE_BYTES,
            grace: Self::DEFAULT_GRACE,
            max_streams_per_connection: Self::DEFAULT_MAX_STREAMS_PER_CONNECTION,
            keepalive_interval: contract::DEFAULT_KEEPALIVE_INTERVAL,
            keepalive_timeout: contract::DEFAULT_KEEPALIVE_TIMEOUT,
            bookmark_interval: Self::DEFAULT_BOOKMARK_INTERVAL,
            tls: None,
            token: None,
            token_users: None,
            client_ca: None,
            policy: None,
            dashboard: true,
            metrics: Arc::new(new_metrics()),
        }
    }
}

/// A server's metrics, with a series for every method it serves: the
/// PodService, health, and reflection (v1 and v1alpha).
pub fn new_metrics() -> Metrics {
    Metrics::new(&[
        contract::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ])
}

/// The warnings for a server that can be reached beyond this machine without
/// TLS or without authentication (a token or client certificates).
pub fn exposure_warnings(
    addr: std::net::SocketAddr,
    tls: bool,
    authenticated: bool,
) -> Vec<&'static str> {
    let mut warnings = Vec::new();
    if !addr.ip().is_loopback() {
        if !tls {
            warnings.push("listening beyond loopback without TLS: traffic can be read and changed");
        }
        if !authenticated {
            warnings.push(
                "listening beyond loopback without authentication (a token or client \
                 certificates): anyone who can connect can write",
            );
        }
    }
    warnings
}

/// Why the server could not serve.
#[derive(Debug)]
pub struct ServeError(String);

impl ServeError {
    pub(super) fn new(reason: impl Into<String>) -> Self {
        ServeError(reason.into())
    }
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServeError {}

/// Serves on `listener` until `shutdown` is cancelled, then lets calls in
/// flight finish for up to `config.grace`.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    config: ServerConfig,
    shutdown: Shutdown,
) -> Result<(), ServeError> {
    let bookmarks = BookmarkClock::start(config.bookmark_interval, shutdown.clone());
    let pods = PodServiceServer::new(PodService::new(
        Arc::clone(&registry),
        config.max_line_bytes,
        bookmarks,
        shutdown.clone(),
        Arc::clone(&config.metrics.service),
        Permissions::new(config.policy.clone()),
    ))
    .max_decoding_message_size(config.max_message_bytes)
    .max_encoding_message_size(config.max_message_bytes);
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(contract::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|err| ServeError(format!("reflection: {err}")))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|err| ServeError(format!("reflection: {err}")))?;

    let mut builder = tonic::transport::Server::builder()
        // gRPC-Web (browsers) speaks HTTP/1.1 as well as HTTP/2.
        .accept_http1(true)
        .max_concurrent_streams(config.max_streams_per_connection)
        // Notice peers that vanished without closing their connection.
        .http2_keepalive_interval(Some(config.keepalive_interval))
        .http2_keepalive_timeout(Some(config.keepalive_timeout));
    if let Some(identity) = config.tls.clone() {
        let mut tls = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = config.client_ca.clone() {
            // Optional, so that token holders and health probes connect
            // without a certificate; a certificate sent must be the CA's.
            tls = tls.client_ca_root(ca).client_auth_optional(true);
        }
        builder = builder
            .tls_config(tls)
            .map_err(|err| ServeError(format!("TLS: {err}")))?;
    } else if config.client_ca.is_some() {
        return Err(ServeError::new(
            "client certificates need TLS: give a server certificate too",
        ));
    }
    let authenticators = Authenticators {
        token: config.token.clone(),
        users: config.token_users.clone(),
        client_certs: config.client_ca.is_some(),
    };
    // A browser reaching a loopback listener must call it by a loopback name.
    let loopback = listener
        .local_addr()
        .is_ok_and(|addr| addr.ip().is_loopback());
    // Streams send many small messages: don't let Nagle hold them back.
    // (The builder's `tcp_nodelay` only applies to listeners it binds itself.)
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .map(|connection| connection.map(BatchedWrites::new));
    let server = builder
        // Outermost: the page's files, and the browser rules for every
        // request (same origin, loopback hosts), before anything else runs.
        .layer(Dashboard::new(config.dashboard, loopback))
        // Next, so that a gRPC-Web call is plain gRPC by the time the
        // guard and the token check see it, and their answers (a refusal,
        // a panic's INTERNAL) go back to the browser as gRPC-Web too.
        .layer(GrpcWebLayer::new())
        // Before the guard and authentication, so that the calls they
        // answer are counted too.
        .layer(CountCalls::new(Arc::clone(&config.metrics)))
        .layer(GuardCalls)
        .layer(Authenticate::new(authenticators))
        .add_service(health::service(shutdown.clone()).await)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(pods)
        .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned());
    tokio::pin!(server);
    let result = tokio::select! {
        result = &mut server => result,
        _ = shutdown.cancelled() => match tokio::time::timeout(config.grace, server).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    grace = ?config.grace,
                    "calls still open after the grace period; closing their connections"
                );
                Ok(())
            }
        },
    };
    // Whatever was written without an fsync (chunks of uploads that did not
    // finish) is made durable too before the server is gone.
    if let Err(err) = registry.sync().await {
        tracing::error!(%err, "the final flush of the store failed");
    }
    result.map_err(|err| ServeError(format!("server failed: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let config = ServerConfig {
            tls: Some(Identity::from_pem("CERT", "PRIVATE-KEY-BYTES")),
            token: Some(Token::new("s3cret").unwrap()),
            ..ServerConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("PRIVATE") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(shown.contains("tls: true"), "{shown}");
    }

    #[test]
    fn warns_only_beyond_loopback() {
        let loopback = "127.0.0.1:50051".parse().unwrap();
        let everywhere = "0.0.0.0:50051".parse().unwrap();
        assert!(exposure_warnings(loopback, false, false).is_empty());
        assert_eq!(exposure_warnings(everywhere, false, false).len(), 2);
        assert_eq!(exposure_warnings(everywhere, true, false).len(), 1);
        assert!(exposure_warnings(everywhere, false, true)[0].contains("without TLS"));
        assert!(exposure_warnings(everywhere, true, true).is_empty());
    }
}
