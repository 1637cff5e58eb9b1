//! Connecting to a server: where it is, how to trust it, the token to
//! send, and one-line reports of what it answered.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tonic::Status;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use super::tls::{TlsConnector, client_config};

use crate::contract::{
    DEFAULT_KEEPALIVE_INTERVAL, DEFAULT_KEEPALIVE_TIMEOUT, DEFAULT_SERVER_URL, PodServiceClient,
    Token, code_name,
};

/// How long a client waits for a TCP connection to the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a server is and how to talk to it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http://HOST:PORT`, or `https://HOST:PORT` for TLS.
    pub addr: String,
    /// For https: the PEM file of the CA that signed the server's certificate,
    /// or the server's own certificate itself (as grpc-go accepts).
    pub ca: Option<PathBuf>,
    /// Sent with every call, if set.
    pub token: Option<Token>,
    /// How often an open connection is pinged...
    pub keepalive_interval: Duration,
    /// ...and how long an answer may take: a server (or network path) that
    /// died silently is noticed within their sum, and the long-running
    /// clients reconnect.
    pub keepalive_timeout: Duration,
}

impl ClientConfig {
    /// Plain options for an address (no TLS, no token).
    pub fn new(addr: impl Into<String>) -> Self {
        ClientConfig {
            addr: addr.into(),
            ca: None,
            token: None,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
        }
    }
}

/// A PodService client that sends the token, if any, with every call.
pub type Client = PodServiceClient<InterceptedService<Channel, Auth>>;

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    header: Option<MetadataValue<Ascii>>,
}

impl Interceptor for Auth {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

/// Connects to the server now, failing if it is unreachable.
pub async fn connect(config: &ClientConfig) -> anyhow::Result<Client> {
    let (target, auth) = target(config)?;
    let channel = match target.tls {
        Some(tls) => target.endpoint.connect_with_connector(tls).await,
        None => target.endpoint.connect().await,
    }
    .with_context(|| format!("cannot connect to {}", config.addr))?;
    Ok(PodServiceClient::with_interceptor(channel, auth))
}

/// A client that connects on first use and reconnects after a failure, for
/// long-running clients that ride through server restarts.
pub fn connect_lazy(config: &ClientConfig) -> anyhow::Result<Client> {
    let (target, auth) = target(config)?;
    let channel = match target.tls {
        Some(tls) => target.endpoint.connect_with_connector_lazy(tls),
        None => target.endpoint.connect_lazy(),
    };
    Ok(PodServiceClient::with_interceptor(channel, auth))
}

/// Where to connect, and for https the connector that makes the TLS
/// connection (see [`super::tls`]).
struct Target {
    endpoint: Endpoint,
    tls: Option<TlsConnector>,
}

fn target(config: &ClientConfig) -> anyhow::Result<(Target, Auth)> {
    let addr = &config.addr;
    let invalid =
        || format!("invalid server address {addr:?} (expected e.g. {DEFAULT_SERVER_URL})");
    let mut endpoint = Endpoint::from_shared(addr.clone()).with_context(invalid)?;
    let https = addr.starts_with("https://");
    let tls = match (&config.ca, https) {
        (Some(ca), true) => {
            let tls = TlsConnector::new(client_config(ca)?, ca);
            // tonic refuses to hand an https URI to a custom connector (it
            // would do TLS itself), so the connector is given the same
            // address as http://, while every request still carries
            // `:scheme https` and the address's authority, from the origin.
            let origin: http::Uri = addr.parse().with_context(invalid)?;
            let rest = addr.strip_prefix("https://").unwrap_or(addr);
            endpoint = Endpoint::from_shared(format!("http://{rest}"))
                .with_context(invalid)?
                .origin(origin);
            Some(tls)
        }
        (None, true) => anyhow::bail!(
            "{addr} uses TLS: give the CA that signed the server's certificate (or the \
             server's own certificate) with --ca FILE"
        ),
        (Some(_), false) => anyhow::bail!("--ca is for https:// addresses; {addr} is plaintext"),
        (None, false) => None,
    };
    let header = config
        .token
        .as_ref()
        .map(|token| token.header_value().parse())
        .transpose()
        .context("the token cannot be sent as a header")?;
    let endpoint = endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(config.keepalive_interval)
        .keep_alive_timeout(config.keepalive_timeout);
    Ok((Target { endpoint, tls }, Auth { header }))
}

/// How long a one-shot call (a list) may take, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a one-shot call with a deadline: sent to the server as
/// `grpc-timeout`, so that it stops working on a call nobody waits for, and
/// enforced here too, so that a server that never answers cannot hang the
/// client.
pub async fn with_deadline<Req, Res, F>(
    timeout: Duration,
    request: Req,
    call: impl FnOnce(tonic::Request<Req>) -> F,
) -> anyhow::Result<Res>
where
    F: std::future::Future<Output = Result<tonic::Response<Res>, Status>>,
{
    let mut request = tonic::Request::new(request);
    request.set_timeout(timeout);
    let started = std::time::Instant::now();
    // tonic's channel ends a call at its deadline itself, as CANCELLED.
    match tokio::time::timeout(timeout, call(request)).await {
        Ok(Ok(answer)) => return Ok(answer.into_inner()),
        Ok(Err(status))
            if status.code() != tonic::Code::Cancelled || started.elapsed() < timeout =>
        {
            return Err(status_error(status));
        }
        Ok(Err(_)) | Err(_) => {}
    }
    anyhow::bail!(
        "the server did not answer within {:.1}s (--timeout)",
        timeout.as_secs_f64()
    )
}

/// An error status from the server as one readable line, e.g.
/// `server answered NOT_FOUND: pod default/web not found`.
pub fn status_error(status: Status) -> anyhow::Error {
    let message: Vec<&str> = status.message().split_whitespace().collect();
    anyhow::anyhow!(
        "server answered {}: {}",
        code_name(status.code()),
        message.join(" ")
    )
}
