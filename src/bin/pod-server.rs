//! `pod-server`: serves the PodService until Ctrl-C or SIGTERM.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use pod_service::server::{self, DEFAULT_ADDR, ServerConfig};
use pod_service::shutdown::{self, Shutdown};
use pod_service::store::{Store, StoreConfig};
use pod_service::{client, sample};

/// Serve the PodService (ListPods, WatchPods, UploadLogs, GetLogs, SyncPods).
///
/// On start the store holds a small sample set of pods (see the README),
/// unless --no-sample or --pods N is given. Stop it with Ctrl-C.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = DEFAULT_ADDR, env = "POD_SERVER_ADDR")]
    addr: SocketAddr,
    /// Start with an empty store instead of the sample pods.
    #[arg(long)]
    no_sample: bool,
    /// Start with N numbered pods (pod-0..pod-N-1 over production, staging,
    /// dev) instead of the sample pods, like the Go peer's -pods N.
    #[arg(long, value_name = "N", conflicts_with = "no_sample")]
    pods: Option<usize>,
    /// Recent changes kept for watches that resume from a version.
    #[arg(long, default_value_t = StoreConfig::default().history)]
    history: usize,
    /// Changes a watcher may fall behind before its stream ends with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = StoreConfig::default().watch_buffer)]
    watch_buffer: usize,
    /// Longest accepted log line, in bytes.
    #[arg(long, default_value_t = ServerConfig::default().max_line_bytes)]
    max_line_bytes: usize,
    /// Bytes of log kept per pod; the oldest lines are dropped beyond it.
    #[arg(long, default_value_t = StoreConfig::default().log_bytes_per_pod)]
    log_bytes_per_pod: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    client::exit(run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let store = Arc::new(Store::new(StoreConfig {
        history: args.history,
        watch_buffer: args.watch_buffer,
        log_bytes_per_pod: args.log_bytes_per_pod,
    }));
    match args.pods {
        Some(n) => sample::load(&store, sample::numbered(n)),
        None if !args.no_sample => sample::load(&store, sample::sample()),
        None => {}
    }
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, pods = store.list(None).pods.len(), "pod-server listening");

    let shutdown = Shutdown::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown::signal().await;
            tracing::info!("shutting down");
            shutdown.cancel();
        }
    });
    let config = ServerConfig {
        max_line_bytes: args.max_line_bytes,
        ..ServerConfig::default()
    };
    server::serve(listener, store, config, shutdown)
        .await
        .context("server failed")
}
