//! `pod-server`: serves the PodService until Ctrl-C or SIGTERM.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use pod_service::contract::{self, DEFAULT_SERVER_ADDR};
use pod_service::domain::{ApplyPod, PodSelector};
use pod_service::server::{self, ServerConfig, Shutdown, certs};
use pod_service::store::{Registry, Storage, StoreConfig};
use pod_service::{cli, sample};
use tonic::transport::Identity;

use access::AccessArgs;
use storage::StorageArgs;

mod access;
mod storage;

/// Serve the PodService (ListPods, WatchPods, UploadLogs, GetLogs, SyncPods).
///
/// Pods, versions, the watch history and uploaded logs are kept in the data
/// directory: everything acknowledged survives a restart or a crash. A new,
/// empty store starts with a small sample set of pods (see the README),
/// unless --no-sample or --pods N is given. With --etcd-endpoints, the pods
/// live in etcd instead, and any number of servers serve them together;
/// with --nats-url too, so do the logs, on NATS JetStream. Stop it with Ctrl-C.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = DEFAULT_SERVER_ADDR, env = "POD_SERVER_ADDR")]
    addr: SocketAddr,
    #[command(flatten)]
    storage: StorageArgs,
    /// Start a new store empty instead of with the sample pods.
    #[arg(long)]
    no_sample: bool,
    /// Start a new store with N numbered pods (pod-0..pod-N-1 over
    /// production, staging, dev) instead of the sample pods, like the Go
    /// peer's -pods N.
    #[arg(long, value_name = "N", conflicts_with = "no_sample")]
    pods: Option<usize>,
    /// Recent changes kept for watches that resume from a version.
    #[arg(long, default_value_t = StoreConfig::default().history)]
    history: usize,
    /// Also keep every change of the last SECONDS for watches that resume,
    /// whatever --history says (on etcd, compaction keeps them too).
    /// Default: 75 with --etcd-endpoints, whose write rate grows with its
    /// replicas, so that a watch resumes across a replica's restart; 0
    /// otherwise.
    #[arg(long, value_name = "SECONDS")]
    history_window: Option<f64>,
    /// Seconds a watch that asked for bookmarks may be sent nothing before it
    /// gets one, so that a quiet watch keeps its place in the history.
    #[arg(long, value_name = "SECONDS",
          default_value_t = ServerConfig::DEFAULT_BOOKMARK_INTERVAL.as_secs_f64())]
    bookmark_interval: f64,
    /// Changes a watcher may fall behind before its stream ends with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = StoreConfig::default().watch_buffer)]
    watch_buffer: usize,
    /// Longest accepted log line, in bytes.
    #[arg(long, default_value_t = ServerConfig::default().max_line_bytes)]
    max_line_bytes: usize,
    /// Bytes of log kept per pod (each line counts its length plus its
    /// bookkeeping); the oldest lines are dropped beyond it (on NATS, once
    /// a log is an eighth over it).
    #[arg(long, default_value_t = StoreConfig::default().log_bytes_per_pod)]
    log_bytes_per_pod: usize,
    /// Serve over TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    access: AccessArgs,
    /// Seconds that calls in flight may take to finish once shutdown begins.
    #[arg(long, value_name = "SECONDS", default_value_t = ServerConfig::DEFAULT_GRACE.as_secs_f64())]
    grace: f64,
    /// The most calls open at once on one connection; a client that opens
    /// more waits for one to end.
    #[arg(long, value_name = "N", default_value_t = ServerConfig::DEFAULT_MAX_STREAMS_PER_CONNECTION)]
    max_streams_per_connection: u32,
    /// Seconds between pings on a connection, and seconds an answer may
    /// take: a vanished client is noticed within their sum.
    #[arg(long, value_name = "SECONDS",
          default_value_t = contract::DEFAULT_KEEPALIVE_INTERVAL.as_secs_f64())]
    keepalive_interval: f64,
    #[arg(long, value_name = "SECONDS",
          default_value_t = contract::DEFAULT_KEEPALIVE_TIMEOUT.as_secs_f64())]
    keepalive_timeout: f64,
    /// Don't serve the dashboard page at / (gRPC-Web calls still work).
    #[arg(long)]
    no_dashboard: bool,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics, plain HTTP on
    /// a listener of its own (off unless given).
    #[arg(long, value_name = "HOST:PORT", env = "POD_SERVER_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Write a new CA (ca.pem, for the clients' --ca) and a server
    /// certificate it signed (server.pem, server-key.pem, for --tls-cert and
    /// --tls-key) into DIR, print how to use them, and exit.
    #[arg(long, value_name = "DIR")]
    make_certs: Option<PathBuf>,
    /// The DNS names and IP addresses the --make-certs server certificate is
    /// for, comma-separated: the names clients will connect with.
    #[arg(long, value_name = "NAMES", value_delimiter = ',', requires = "make_certs",
          default_value = certs::DEFAULT_CERT_NAMES)]
    cert_names: Vec<String>,
}

// Every call allocates (messages, strings, stream state) on both cores at
// once; mimalloc's thread-local pages make that cheaper than the system
// allocator (see BENCHMARKS.md for the figure).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    cli::exit(run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(dir) = &args.make_certs {
        let made = certs::make_certs(dir, &args.cert_names)?;
        return cli::print(&made.instructions(args.addr)).map_err(Into::into);
    }
    // Every option is checked before the store is opened.
    let config = server_config(&args)?;
    let storage = args.storage.storage()?;
    // A registry in memory is always new: "listening" says all there is.
    let place = (!matches!(storage, Storage::InMemory)).then(|| storage.to_string());
    let store_config = StoreConfig {
        metrics: config.metrics.store.clone(),
        ..store_config(&args)?
    };
    let opened = Registry::open(storage, store_config, starting_pods(&args)).await?;
    match (place, opened.seeded) {
        (None, _) => {}
        (Some(place), Some(pods)) => {
            tracing::info!(%place, pods, "new registry, starting pods loaded")
        }
        (Some(place), None) => {
            tracing::info!(%place, version = opened.registry.version(), "registry opened")
        }
    }
    if opened.seeded.is_none() && args.pods.is_some() {
        tracing::warn!("the registry is not new: --pods is ignored");
    }
    let store = Arc::new(opened.registry);
    let served = serve(&args, Arc::clone(&store), config).await;
    // However serving ended, the store is closed cleanly, so that it opens
    // at once next time (no repair).
    if let Err(err) = store.close().await {
        tracing::error!(%err, "the store did not close cleanly");
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

fn store_config(args: &Args) -> anyhow::Result<StoreConfig> {
    let history_window = match args.history_window {
        Some(seconds) => {
            Duration::try_from_secs_f64(seconds).context("invalid --history-window")?
        }
        None if args.storage.shared() => StoreConfig::SHARED_HISTORY_WINDOW,
        None => Duration::ZERO,
    };
    Ok(StoreConfig {
        history: args.history,
        history_window,
        watch_buffer: args.watch_buffer,
        log_bytes_per_pod: args.log_bytes_per_pod,
        ..StoreConfig::default()
    })
}

/// The pods a new store starts with.
fn starting_pods(args: &Args) -> Vec<ApplyPod> {
    match args.pods {
        Some(n) => sample::numbered(n).collect(),
        None if !args.no_sample => sample::sample().collect(),
        None => Vec::new(),
    }
}

fn server_config(args: &Args) -> anyhow::Result<ServerConfig> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let read = |path: &PathBuf| {
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
            };
            Some(Identity::from_pem(read(cert)?, read(key)?))
        }
        _ => None,
    };
    let seconds = |value: f64, flag: &str| {
        Duration::try_from_secs_f64(value).with_context(|| format!("invalid {flag}"))
    };
    let mut config = ServerConfig {
        max_line_bytes: args.max_line_bytes,
        grace: seconds(args.grace, "--grace")?,
        max_streams_per_connection: args.max_streams_per_connection.max(1),
        keepalive_interval: seconds(args.keepalive_interval, "--keepalive-interval")?,
        keepalive_timeout: seconds(args.keepalive_timeout, "--keepalive-timeout")?,
        bookmark_interval: match seconds(args.bookmark_interval, "--bookmark-interval")? {
            interval if interval.is_zero() => anyhow::bail!("--bookmark-interval must be above 0"),
            interval => interval,
        },
        tls,
        dashboard: !args.no_dashboard,
        ..ServerConfig::default()
    };
    args.access.configure(&mut config)?;
    Ok(config)
}

/// Listens and serves until Ctrl-C or SIGTERM.
async fn serve(args: &Args, store: Arc<Registry>, config: ServerConfig) -> anyhow::Result<()> {
    let signals = server::signals().context("cannot install the signal handlers")?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    let (tls, authenticated) = (config.tls.is_some(), AccessArgs::authenticates(&config));
    for warning in server::exposure_warnings(addr, tls, authenticated) {
        tracing::warn!(%addr, "{warning}");
    }
    if let Some(metrics_addr) = args.metrics_addr {
        let listener = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("cannot listen on {metrics_addr} for metrics"))?;
        let metrics_addr = listener.local_addr()?;
        if !metrics_addr.ip().is_loopback() {
            tracing::warn!(
                %metrics_addr,
                "metrics listening beyond loopback: anyone who can connect can read them"
            );
        }
        tracing::info!("metrics at http://{metrics_addr}/metrics");
        // Not tied to shutdown: scrapes are answered until the process
        // exits. (Logged before "listening", which says the server is up.)
        tokio::spawn(server::serve_metrics(
            listener,
            Arc::clone(&config.metrics),
            Arc::clone(&store),
        ));
    }
    tracing::info!(
        %addr,
        tls,
        authenticated,
        policies = config.policy.as_ref().map_or(0, |policy| policy.len()),
        pods = store.fresh(0).await?.list(&PodSelector::All).pods.len(),
        "pod-server listening"
    );
    if config.dashboard {
        tracing::info!("dashboard at {}", server::dashboard::url(addr, tls));
    }

    let shutdown = Shutdown::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            signals.await;
            tracing::info!("shutting down");
            shutdown.cancel();
        }
    });
    server::serve(listener, store, config, shutdown).await?;
    Ok(())
}
