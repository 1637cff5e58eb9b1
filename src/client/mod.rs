//! Client helpers shared by the binaries (and the tests): connecting,
//! one-line error reports, and the logic of each pattern's client.
//!
//! Each binary in `src/bin/` only parses its arguments and calls one of the
//! submodules here.

pub mod sync;
pub mod table;
pub mod upload;
pub mod watch;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tonic::transport::{Channel, Endpoint};

use crate::pb::PodServiceClient;

/// The server address clients use by default.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:50051";

/// The environment variable that overrides [`DEFAULT_ADDR`].
pub const ADDR_ENV: &str = "POD_SERVICE_ADDR";

/// The connection options every client binary takes.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Server address (http://HOST:PORT).
    #[arg(long, default_value = DEFAULT_ADDR, env = ADDR_ENV)]
    pub addr: String,
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

/// How long a client waits for a TCP connection to the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the server now, failing if it is unreachable.
pub async fn connect(addr: &str) -> anyhow::Result<PodServiceClient<Channel>> {
    let channel = endpoint(addr)?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    Ok(PodServiceClient::new(channel))
}

/// A client that connects on first use and reconnects after a failure, for
/// long-running clients that ride through server restarts.
pub fn connect_lazy(addr: &str) -> anyhow::Result<PodServiceClient<Channel>> {
    Ok(PodServiceClient::new(endpoint(addr)?.connect_lazy()))
}

fn endpoint(addr: &str) -> anyhow::Result<Endpoint> {
    let endpoint = Endpoint::from_shared(addr.to_owned()).with_context(|| {
        format!("invalid server address {addr:?} (expected e.g. {DEFAULT_ADDR})")
    })?;
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10)))
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

/// The canonical upper-case name of a gRPC status code, e.g. `NOT_FOUND`.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

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
