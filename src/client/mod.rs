//! Client helpers shared by the binaries (and the tests): connecting,
//! one-line error reports, and the logic of each pattern's client.
//!
//! Each binary in `src/bin/` only parses its arguments and calls one of the
//! submodules here.

pub mod output;
pub mod sync;
pub mod upload;
pub mod watch;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tonic::Status;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::auth::Token;
use crate::pb::PodServiceClient;

/// The server address clients use by default.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:50051";

/// The environment variable that overrides [`DEFAULT_ADDR`].
pub const ADDR_ENV: &str = "POD_SERVICE_ADDR";

/// The connection options every client binary takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Server address: http://HOST:PORT, or https://HOST:PORT for TLS.
    #[arg(long, default_value = DEFAULT_ADDR, env = ADDR_ENV)]
    pub addr: String,
    /// PEM file of the CA that signed the server's TLS certificate (https).
    #[arg(long, value_name = "FILE", env = CA_ENV)]
    pub ca: Option<PathBuf>,
    /// File holding the server's token (or set POD_SERVICE_TOKEN to the token).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The token itself; only from the environment, so it stays out of
    /// process listings.
    #[arg(skip = std::env::var(crate::auth::TOKEN_ENV).ok())]
    pub token: Option<String>,
    /// Seconds between pings while a call is open, and seconds an answer
    /// may take: a server (or network path) that died silently is noticed
    /// within their sum, and the long-running clients reconnect.
    #[arg(long, value_name = "SECONDS", default_value_t = KEEPALIVE_INTERVAL)]
    pub keepalive_interval: f64,
    #[arg(long, value_name = "SECONDS", default_value_t = KEEPALIVE_TIMEOUT)]
    pub keepalive_timeout: f64,
}

/// The clients' keepalive, in seconds: the same as the server's.
const KEEPALIVE_INTERVAL: f64 = 30.0;
const KEEPALIVE_TIMEOUT: f64 = 10.0;

impl ServerArgs {
    /// Plain options for an address (no TLS, no token).
    pub fn new(addr: impl Into<String>) -> Self {
        ServerArgs {
            addr: addr.into(),
            ..ServerArgs::default()
        }
    }
}

impl Default for ServerArgs {
    fn default() -> Self {
        ServerArgs {
            addr: DEFAULT_ADDR.to_owned(),
            ca: None,
            token_file: None,
            token: None,
            keepalive_interval: KEEPALIVE_INTERVAL,
            keepalive_timeout: KEEPALIVE_TIMEOUT,
        }
    }
}

/// The environment variable that names the CA file.
pub const CA_ENV: &str = "POD_SERVICE_CA";

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

/// Names one pod, for the log clients.
#[derive(Debug, Clone, clap::Args)]
pub struct PodArgs {
    /// The pod's namespace.
    #[arg(short, long, default_value = crate::validate::DEFAULT_NAMESPACE)]
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

/// How long a client waits for a TCP connection to the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the server now, failing if it is unreachable.
pub async fn connect(server: &ServerArgs) -> anyhow::Result<Client> {
    let (endpoint, auth) = endpoint(server)?;
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot connect to {}", server.addr))?;
    Ok(PodServiceClient::with_interceptor(channel, auth))
}

/// A client that connects on first use and reconnects after a failure, for
/// long-running clients that ride through server restarts.
pub fn connect_lazy(server: &ServerArgs) -> anyhow::Result<Client> {
    let (endpoint, auth) = endpoint(server)?;
    Ok(PodServiceClient::with_interceptor(
        endpoint.connect_lazy(),
        auth,
    ))
}

fn endpoint(server: &ServerArgs) -> anyhow::Result<(Endpoint, Auth)> {
    let addr = &server.addr;
    let mut endpoint = Endpoint::from_shared(addr.clone()).with_context(|| {
        format!("invalid server address {addr:?} (expected e.g. {DEFAULT_ADDR})")
    })?;
    let https = addr.starts_with("https://");
    match (&server.ca, https) {
        (Some(ca), true) => {
            let pem = std::fs::read(ca)
                .with_context(|| format!("cannot read CA file {}", ca.display()))?;
            let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
            endpoint = endpoint.tls_config(tls).context("invalid TLS settings")?;
        }
        (None, true) => anyhow::bail!(
            "{addr} uses TLS: give the CA that signed the server's certificate with --ca FILE"
        ),
        (Some(_), false) => anyhow::bail!("--ca is for https:// addresses; {addr} is plaintext"),
        (None, false) => {}
    }
    let token = match (&server.token_file, &server.token) {
        (Some(path), _) => Some(Token::from_file(path).map_err(anyhow::Error::msg)?),
        (None, Some(text)) => Some(
            Token::new(text).map_err(|err| anyhow::anyhow!("{}: {err}", crate::auth::TOKEN_ENV))?,
        ),
        (None, None) => None,
    };
    let header = token
        .map(|token| token.header_value().parse())
        .transpose()
        .context("the token cannot be sent as a header")?;
    let seconds = |value: f64, flag: &str| {
        Duration::try_from_secs_f64(value).with_context(|| format!("invalid {flag}"))
    };
    let endpoint = endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(seconds(server.keepalive_interval, "--keepalive-interval")?)
        .keep_alive_timeout(seconds(server.keepalive_timeout, "--keepalive-timeout")?);
    Ok((endpoint, Auth { header }))
}

/// An error status from the server as one readable line, e.g.
/// `server answered NOT_FOUND: pod default/web not found`.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!(
        "server answered {}: {}",
        code_name(status.code()),
        one_line(status.message())
    )
}

pub use crate::telemetry::code_name;

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Writes to stdout and flushes, so streamed output appears as it arrives.
pub fn print(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Ends a binary: prints an error as one line on stderr and picks the exit
/// code. A closed stdout (e.g. piped into `head`) is a normal way to stop.
pub fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&describe_chain(&err)));
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|err| err.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// An error and its causes joined by ": ", leaving out a cause whose text
/// is already in the line (transport errors tend to repeat themselves).
fn describe_chain(err: &anyhow::Error) -> String {
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
