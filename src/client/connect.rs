//! Connecting to a server: where it is (or where its replicas are), how to
//! trust it, the token to send, and one-line reports of what it answered.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::tls::{ClientIdentity, TlsConnector, client_config};

use crate::contract::{
    DEFAULT_KEEPALIVE_INTERVAL, DEFAULT_KEEPALIVE_TIMEOUT, DEFAULT_SERVER_URL, PodServiceClient,
    Token, code_name,
};

/// How long a client waits for a TCP connection to the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a server is and how to talk to it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http://HOST:PORT`, or `https://HOST:PORT` for TLS; never empty.
    /// Several are replicas serving one registry, tried in this order (see
    /// [`Servers`](super::Servers)).
    pub addrs: Vec<String>,
    /// For https: the PEM file of the CA that signed the server's certificate,
    /// or the server's own certificate itself (as grpc-go accepts).
    pub ca: Option<PathBuf>,
    /// For https: a client certificate and its key (PEM files), for a
    /// server that authenticates callers by certificate.
    pub identity: Option<ClientIdentity>,
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
            addrs: vec![addr.into()],
            ca: None,
            identity: None,
            token: None,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
        }
    }

    /// The first address: the one tried first, and the only one a
    /// [`connect_lazy`] client uses.
    pub fn addr(&self) -> &str {
        self.addrs.first().map_or("", String::as_str)
    }

    /// The address for attempt `n` (from 0), going round the list: each
    /// failed attempt moves on, so the server that just failed is the last
    /// to be tried again.
    pub fn addr_for(&self, attempt: usize) -> &str {
        match self.addrs.len() {
            0 => "",
            len => &self.addrs[attempt % len],
        }
    }

    /// Every address, as messages name them: `http://a, http://b`.
    pub(super) fn addr_list(&self) -> String {
        self.addrs.join(", ")
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

/// Connects to a server now, failing if none is reachable: the first of
/// the addresses that accepts a connection wins.
pub async fn connect(config: &ClientConfig) -> anyhow::Result<Client> {
    connect_first(config).await.map(|(_, client)| client)
}

/// Connects to the first of the addresses that accepts a connection,
/// trying them in order, and says which it was (its index). Every address
/// is checked before any is tried, so a typo in the last one fails at once
/// rather than on the day the others are down.
pub(super) async fn connect_first(config: &ClientConfig) -> anyhow::Result<(usize, Client)> {
    let targets = config
        .addrs
        .iter()
        .map(|addr| target(config, addr))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut failures = Vec::new();
    for (index, (target, auth)) in targets.into_iter().enumerate() {
        let addr = config.addr_for(index);
        let channel = match target.tls {
            Some(tls) => target.endpoint.connect_with_connector(tls).await,
            None => target.endpoint.connect().await,
        };
        match channel {
            Ok(channel) => return Ok((index, PodServiceClient::with_interceptor(channel, auth))),
            Err(err) if config.addrs.len() == 1 => {
                return Err(err).with_context(|| format!("cannot connect to {addr}"));
            }
            Err(err) => failures.push((addr, one_line(&anyhow::Error::new(err)))),
        }
    }
    anyhow::ensure!(!failures.is_empty(), "no server address given");
    // One reason when every server failed alike (all refused, say), else
    // each server's own.
    let reason = match failures.as_slice() {
        [(_, first), rest @ ..] if rest.iter().all(|(_, reason)| reason == first) => first.clone(),
        _ => failures
            .iter()
            .map(|(addr, reason)| format!("{addr}: {reason}"))
            .collect::<Vec<_>>()
            .join("; "),
    };
    Err(anyhow::anyhow!("{reason}").context(format!("cannot reach any of {}", config.addr_list())))
}

/// A client that connects on first use and reconnects after a failure, for
/// long-running clients that ride through server restarts. It uses the
/// first address only; [`Servers`](super::Servers) moves between several.
pub fn connect_lazy(config: &ClientConfig) -> anyhow::Result<Client> {
    anyhow::ensure!(!config.addrs.is_empty(), "no server address given");
    connect_lazy_to(config, config.addr())
}

/// A lazily connecting client (as [`connect_lazy`]) of one of the addresses.
pub(super) fn connect_lazy_to(config: &ClientConfig, addr: &str) -> anyhow::Result<Client> {
    let (target, auth) = target(config, addr)?;
    let channel = match target.tls {
        Some(tls) => target.endpoint.connect_with_connector_lazy(tls),
        None => target.endpoint.connect_lazy(),
    };
    Ok(PodServiceClient::with_interceptor(channel, auth))
}

/// An error and its causes on one line, each cause left out whose text is
/// already there (transport errors repeat themselves): how the binaries
/// print errors, and how a client names why each address failed.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Where to connect, and for https the connector that makes the TLS
/// connection (see [`super::tls`]).
struct Target {
    endpoint: Endpoint,
    tls: Option<TlsConnector>,
}

fn target(config: &ClientConfig, addr: &str) -> anyhow::Result<(Target, Auth)> {
    let invalid =
        || format!("invalid server address {addr:?} (expected e.g. {DEFAULT_SERVER_URL})");
    let https = addr.starts_with("https://");
    // Checked here, not left to the connection, so that a bad address
    // fails before any server is tried, wherever it is in the list.
    anyhow::ensure!(https || addr.starts_with("http://"), invalid());
    let mut endpoint = Endpoint::from_shared(addr.to_owned()).with_context(invalid)?;
    let tls = match (&config.ca, https) {
        (Some(ca), true) => {
            let tls = TlsConnector::new(client_config(ca, config.identity.as_ref())?, ca);
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
        (None, false) if config.identity.is_some() => {
            anyhow::bail!("--cert is for https:// addresses; {addr} is plaintext")
        }
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
/// client. A failure is a [`CallFailed`].
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
    Err(CallFailed {
        code: Code::DeadlineExceeded,
        line: format!(
            "the server did not answer within {:.1}s (--timeout)",
            timeout.as_secs_f64()
        ),
    }
    .into())
}

/// An error status from the server as one readable line, e.g.
/// `server answered NOT_FOUND: pod default/web not found`: a [`CallFailed`].
pub fn status_error(status: Status) -> anyhow::Error {
    let message: Vec<&str> = status.message().split_whitespace().collect();
    CallFailed {
        code: status.code(),
        line: format!(
            "server answered {}: {}",
            code_name(status.code()),
            message.join(" ")
        ),
    }
    .into()
}

/// A call that failed, as one readable line, keeping its code: whoever
/// holds several servers can tell a server's failure, which another
/// replica may not share, from an answer every replica would give.
#[derive(Debug, Clone)]
pub struct CallFailed {
    /// The status code, `DEADLINE_EXCEEDED` when no answer came in time.
    pub code: Code,
    line: String,
}

impl std::fmt::Display for CallFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

impl std::error::Error for CallFailed {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_go_round_the_addresses() {
        let config = ClientConfig {
            addrs: vec!["http://a:1".into(), "http://b:1".into()],
            ..ClientConfig::new("")
        };
        let order: Vec<&str> = (0..3).map(|attempt| config.addr_for(attempt)).collect();
        assert_eq!(order, ["http://a:1", "http://b:1", "http://a:1"]);
        assert_eq!(config.addr(), "http://a:1");
        assert_eq!(ClientConfig::new("http://c:1").addr_for(5), "http://c:1");
    }

    #[test]
    fn a_failed_call_keeps_its_code_and_its_line() {
        let error = status_error(Status::unavailable("server  is\nstopping"));
        let failed = error.downcast_ref::<CallFailed>().map(|failed| failed.code);
        assert_eq!(failed, Some(Code::Unavailable));
        assert_eq!(
            error.to_string(),
            "server answered UNAVAILABLE: server is stopping"
        );
    }
}
