//! `pod-bench`: measures a server under load, one call pattern at a time.

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use clap::{Parser, Subcommand};
use pod_service::cli;
use pod_service::client::{self, Client, ClientConfig, status_error};
use pod_service::contract::{Pod, SyncRequest, Token, sync_request};

mod load;
mod report;
mod server;

use load::Latency;
use report::{Report, millis, ms};
use server::{InProcess, StoreKind};

/// Measure a PodService under load and print the figures (a table, or JSON
/// with --json): unary ListPods, WatchPods snapshots, fan-out of changes to
/// many watchers, idle watchers' memory, paged lists, SyncPods sessions,
/// log uploads, and followed logs (latency, idle followers' memory).
///
/// Without --addr it starts a server in this process on a free loopback
/// port, with the store chosen by --store (a durable one lives in a fresh
/// temporary directory, removed afterwards).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Load an existing server instead (http://HOST:PORT or https://...);
    /// several, comma-separated, are replicas of one registry: the
    /// connections are spread over them in turn.
    #[arg(long)]
    addr: Option<String>,
    /// With an https address: the CA that signed the server's certificate.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// File holding the server's token (or set POD_SERVICE_TOKEN).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The store of the in-process server.
    #[arg(long, value_enum, default_value_t = StoreKind::Durable)]
    store: StoreKind,
    /// Client connections to spread the streams over.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Pods the in-process server starts with (like the Go peer's -pods N).
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Print one JSON object per run instead of a table.
    #[arg(long)]
    json: bool,
    /// Names the namespaces a run writes to (default: this process's id, so
    /// that concurrent runs do not meet). Runs with the same tag reuse the
    /// same pods, so repeated runs do not grow the store.
    #[arg(long)]
    namespace_tag: Option<String>,
    #[command(subcommand)]
    load: Load,
}

#[derive(Subcommand)]
enum Load {
    /// Unary ListPods callers back to back: calls/s and latency.
    Unary {
        /// Concurrent callers to measure, one run each.
        #[arg(long, value_delimiter = ',', default_value = "64")]
        concurrency: Vec<usize>,
        /// The namespace listed.
        #[arg(long, default_value = "production")]
        namespace: String,
        /// Length of each run.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Idle WatchPods streams held open: the server's resident memory per
    /// watcher (needs --addr and --server-pid: the server's own process).
    Watchers {
        /// How many streams to open.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// The process id of the server at --addr, to read its memory.
        #[arg(long)]
        server_pid: u32,
        /// Ask for bookmarks on every stream.
        #[arg(long)]
        bookmarks: bool,
        /// Then hold them open this long and report the server's CPU time.
        #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
        hold: f64,
    },
    /// One WatchPods snapshot of every pod: pods/s and time to the first pod.
    Watch {
        /// Snapshots to take, one after the other.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// SyncPods sessions applying pods back to back: ops/s and ack latency.
    Sync {
        /// Session counts to measure, one run each.
        #[arg(long, value_delimiter = ',', default_value = "1,64")]
        sessions: Vec<usize>,
        /// Ops each session keeps in flight.
        #[arg(long, default_value_t = 1)]
        in_flight: usize,
        /// Length of each run.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Watchers of one namespace and a writer changing a pod in it: the
    /// delivery latency of each change to each watcher.
    Fanout {
        /// Watcher counts to measure, one run each.
        #[arg(long, value_delimiter = ',', default_value = "100,1000")]
        watchers: Vec<usize>,
        /// Changes the writer makes per run, one in flight.
        #[arg(long, default_value_t = 200)]
        changes: usize,
        /// Changes per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
    },
    /// Paged ListPods through every pod while a writer changes, creates and
    /// deletes pods: time per page, checked to be exactly the list at its
    /// first page's version; then the server's memory with lists held open.
    Pages {
        /// Pods per page.
        #[arg(long, default_value_t = 500)]
        page_size: u32,
        /// Lists to page through, one after the other.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Changes per second the writer makes while a list pages.
        #[arg(long, default_value_t = 1000.0)]
        write_rate: f64,
        /// Then hold this many lists open (their first page read) ...
        #[arg(long, default_value_t = 0)]
        hold: usize,
        /// ... while this many changes are made, and continue each.
        #[arg(long, default_value_t = 5000)]
        hold_changes: u64,
        /// The server's process id, to read its memory (default: this
        /// process, whose in-process server it is).
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Followers of one pod's log (GetLogs with follow) on the last address
    /// of --addr, and uploads of one line each through the first: the
    /// latency of each line to each follower, from the upload's response.
    FollowLatency {
        /// Following streams to open (over --connections connections).
        #[arg(long, default_value_t = 10)]
        followers: usize,
        /// Uploads to make, one line each, one in flight.
        #[arg(long, default_value_t = 500)]
        uploads: usize,
        /// Uploads per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
    },
    /// Idle GetLogs follow streams of one pod held open: the server's
    /// resident memory per follower (needs --addr and --server-pid: the
    /// server's own process).
    Followers {
        /// How many streams to open.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// The process id of the server at --addr, to read its memory.
        #[arg(long)]
        server_pid: u32,
        /// Then hold them open this long and report the server's CPU time.
        #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
        hold: f64,
    },
    /// Concurrent log uploads: lines/s and MB/s.
    Upload {
        /// Stream counts to measure, one run each.
        #[arg(long, value_delimiter = ',', default_value = "1,4")]
        streams: Vec<usize>,
        /// Lines per run, split over the streams.
        #[arg(long, default_value_t = 2_000_000)]
        lines: usize,
        /// Bytes per line.
        #[arg(long, default_value_t = 100)]
        line_bytes: usize,
    },
}

// The same allocator as pod-server, so that the in-process server is the one
// users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    cli::exit(run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (url, _server) = match &args.addr {
        Some(addr) => (addr.clone(), None),
        None => {
            let server = InProcess::start(args.store, args.pods).await?;
            (server.url(), Some(server))
        }
    };
    let token = Token::configured(args.token_file.as_deref()).map_err(anyhow::Error::msg)?;
    let replicas: Vec<&str> = url.split(',').collect();
    let connect = async |addr: &str| {
        let server = ClientConfig {
            ca: args.ca.clone(),
            token: token.clone(),
            ..ClientConfig::new(addr)
        };
        client::connect(&server).await
    };
    let mut clients = Vec::new();
    for i in 0..args.connections.max(1) {
        clients.push(connect(replicas[i % replicas.len()]).await?);
    }
    // Followers of follow-latency read through the last replica, apart from
    // the uploads' connection.
    let mut last_replica = Vec::new();
    if matches!(args.load, Load::FollowLatency { .. }) {
        for _ in 0..args.connections.max(1) {
            last_replica.push(connect(replicas[replicas.len() - 1]).await?);
        }
    }
    let store = match (&args.addr, args.store) {
        (Some(_), _) => "external",
        (None, StoreKind::Memory) => "memory",
        (None, StoreKind::Durable) => "durable",
    };
    let report = Report { json: args.json };
    let tag = args
        .namespace_tag
        .clone()
        .unwrap_or_else(|| std::process::id().to_string());
    match args.load {
        Load::Unary {
            concurrency,
            namespace,
            seconds,
        } => {
            report.header("store     callers  conns  calls      pods/call  calls/s    p50        p99        max");
            for &callers in &concurrency {
                let figures = load::unary::unary(
                    &clients,
                    &namespace,
                    callers,
                    Duration::from_secs_f64(seconds),
                )
                .await?;
                let Latency { p50, p99, max } = figures.latency;
                report.row(
                    format!(
                        "{store:<9} {callers:<8} {:<6} {:<10} {:<10} {:<10.0} {:<10} {:<10} {}",
                        clients.len(),
                        figures.calls,
                        figures.pods_per_call,
                        figures.calls_per_second(),
                        millis(p50),
                        millis(p99),
                        millis(max)
                    ),
                    serde_json::json!({
                        "load": "unary", "store": store, "callers": callers,
                        "connections": clients.len(), "calls": figures.calls,
                        "pods_per_call": figures.pods_per_call,
                        "calls_per_second": figures.calls_per_second(),
                        "p50_ms": ms(p50), "p99_ms": ms(p99), "max_ms": ms(max),
                    }),
                );
            }
        }
        Load::Watchers {
            count,
            server_pid,
            bookmarks,
            hold,
        } => {
            if args.addr.is_none() {
                anyhow::bail!("watchers measures another process: give --addr and --server-pid");
            }
            report.header(
                "watchers   conns  bookmarks  rss before   rss after    bytes/watcher  held s  cpu s",
            );
            let before = load::watchers::resident_bytes(server_pid)?;
            let streams = load::watchers::idle_watchers(&clients, count, bookmarks).await?;
            let after = load::watchers::resident_bytes(server_pid)?;
            let per_watcher = after.saturating_sub(before) as f64 / count.max(1) as f64;
            let cpu_before = load::watchers::cpu_seconds(server_pid)?;
            tokio::time::sleep(Duration::try_from_secs_f64(hold)?).await;
            let cpu = load::watchers::cpu_seconds(server_pid)? - cpu_before;
            report.row(
                format!(
                    "{count:<10} {:<6} {bookmarks:<10} {:<12} {:<12} {per_watcher:<14.0} {hold:<7} {cpu:.2}",
                    clients.len(),
                    before,
                    after
                ),
                serde_json::json!({
                    "load": "watchers", "watchers": count, "connections": clients.len(),
                    "bookmarks": bookmarks, "rss_before": before, "rss_after": after,
                    "bytes_per_watcher": per_watcher, "held_seconds": hold,
                    "server_cpu_seconds": cpu,
                }),
            );
            drop(streams);
        }
        Load::Watch { runs } => {
            report.header("store     pods       seconds  pods/s       first pod");
            for _ in 0..runs.max(1) {
                let figures = load::snapshot::watch_snapshot(&clients[0]).await?;
                report.row(
                    format!(
                        "{store:<9} {:<10} {:<8.3} {:<12.0} {}",
                        figures.pods,
                        figures.elapsed.as_secs_f64(),
                        figures.pods_per_second(),
                        millis(figures.first_pod)
                    ),
                    serde_json::json!({
                        "load": "watch", "store": store, "pods": figures.pods,
                        "seconds": figures.elapsed.as_secs_f64(),
                        "pods_per_second": figures.pods_per_second(),
                        "first_pod_ms": ms(figures.first_pod),
                    }),
                );
            }
        }
        Load::Sync {
            sessions,
            in_flight,
            seconds,
        } => {
            report.header("store     sessions  in-flight  conns  ops        ops/s      ack p50    ack p99    ack max");
            for (run, &sessions) in sessions.iter().enumerate() {
                let namespace = format!("bench-sync-{tag}-{run}");
                let figures = load::sync::sync(
                    &clients,
                    &namespace,
                    sessions,
                    in_flight.max(1),
                    Duration::from_secs_f64(seconds),
                )
                .await?;
                let Latency { p50, p99, max } = figures.ack_latency;
                report.row(
                    format!(
                        "{store:<9} {sessions:<9} {in_flight:<10} {:<6} {:<10} {:<10.0} {:<10} {:<10} {}",
                        clients.len(),
                        figures.ops,
                        figures.ops_per_second(),
                        millis(p50),
                        millis(p99),
                        millis(max),
                    ),
                    serde_json::json!({
                        "load": "sync", "store": store, "sessions": sessions,
                        "in_flight": in_flight, "connections": clients.len(),
                        "ops": figures.ops, "ops_per_second": figures.ops_per_second(),
                        "p50_ms": ms(p50), "p99_ms": ms(p99), "max_ms": ms(max),
                    }),
                );
            }
        }
        Load::Fanout {
            watchers,
            changes,
            rate,
        } => {
            report.header("store     watchers  conns  deliveries  send p50   send p99   send max   ack p50    ack p99    last p50");
            for (run, &watchers) in watchers.iter().enumerate() {
                let namespace = format!("bench-fanout-{tag}-{run}");
                let figures =
                    load::fanout::fanout(&clients, &namespace, watchers, changes.max(1), rate)
                        .await?;
                let (send, ack, last) = (figures.from_send, figures.from_ack, figures.last_watcher);
                report.row(
                    format!(
                        "{store:<9} {watchers:<9} {:<6} {:<11} {:<10} {:<10} {:<10} {:<10} {:<10} {}",
                        clients.len(),
                        figures.deliveries,
                        millis(send.p50),
                        millis(send.p99),
                        millis(send.max),
                        millis(ack.p50),
                        millis(ack.p99),
                        millis(last.p50),
                    ),
                    serde_json::json!({
                        "load": "fanout", "store": store, "watchers": watchers,
                        "connections": clients.len(), "changes": figures.changes,
                        "deliveries": figures.deliveries,
                        "send_p50_ms": ms(send.p50), "send_p99_ms": ms(send.p99),
                        "send_max_ms": ms(send.max),
                        "ack_p50_ms": ms(ack.p50), "ack_p99_ms": ms(ack.p99),
                        "ack_max_ms": ms(ack.max),
                        "last_watcher_p50_ms": ms(last.p50),
                        "last_watcher_max_ms": ms(last.max),
                    }),
                );
            }
        }
        Load::Pages {
            page_size,
            runs,
            write_rate,
            hold,
            hold_changes,
            server_pid,
        } => {
            report.header("store     pods       page  pages   seconds  pages/s   page p50   page p99   writes meanwhile");
            for run in 0..runs {
                let figures =
                    load::pages::page_through(&clients[0], run, args.pods, page_size, write_rate)
                        .await?;
                let Latency { p50, p99, .. } = figures.page_latency;
                let pages_per_second = figures.pages as f64 / figures.elapsed.as_secs_f64();
                report.row(
                    format!(
                        "{store:<9} {:<10} {page_size:<5} {:<7} {:<8.3} {pages_per_second:<9.0} {:<10} {:<10} {}",
                        figures.pods,
                        figures.pages,
                        figures.elapsed.as_secs_f64(),
                        millis(p50),
                        millis(p99),
                        figures.writes,
                    ),
                    serde_json::json!({
                        "load": "pages", "store": store, "pods": figures.pods,
                        "page_size": page_size, "pages": figures.pages,
                        "seconds": figures.elapsed.as_secs_f64(),
                        "pages_per_second": pages_per_second,
                        "page_p50_ms": ms(p50), "page_p99_ms": ms(p99),
                        "writes_meanwhile": figures.writes, "consistent": true,
                    }),
                );
            }
            if hold > 0 {
                let pid = match (server_pid, &args.addr) {
                    (Some(pid), _) => pid,
                    (None, None) => std::process::id(),
                    (None, Some(_)) => anyhow::bail!("--hold with --addr needs --server-pid"),
                };
                let held = load::pages::hold(
                    &clients[0],
                    runs,
                    pid,
                    args.pods,
                    page_size,
                    hold,
                    hold_changes,
                )
                .await?;
                let per_list =
                    held.rss_holding.saturating_sub(held.rss_before) as f64 / hold as f64;
                let changes = held.rss_after_changes.saturating_sub(held.rss_holding);
                report.header(
                    "held lists  rss before   bytes/list  changes  rss growth with the changes",
                );
                report.row(
                    format!(
                        "{:<11} {:<12} {per_list:<11.0} {:<8} {changes}",
                        held.lists, held.rss_before, held.changes
                    ),
                    serde_json::json!({
                        "load": "held-lists", "store": store, "lists": held.lists,
                        "rss_before": held.rss_before, "rss_holding": held.rss_holding,
                        "rss_after_changes": held.rss_after_changes,
                        "bytes_per_list": per_list, "changes": held.changes,
                    }),
                );
            }
        }
        Load::FollowLatency {
            followers,
            uploads,
            rate,
        } => {
            report.header("store     followers  conns  received/expected  ack p50    ack p99    ack max    send p50   last p50   upload p50");
            let namespace = format!("bench-follow-{tag}");
            let figures = load::follow::follow_latency(
                &clients[0],
                &last_replica,
                &namespace,
                followers,
                uploads,
                rate,
            )
            .await?;
            let (ack, send) = (figures.from_ack, figures.from_send);
            report.row(
                format!(
                    "{store:<9} {followers:<10} {:<6} {:<18} {:<10} {:<10} {:<10} {:<10} {:<10} {}",
                    last_replica.len(),
                    format!("{}/{}", figures.received, figures.expected),
                    millis(ack.p50),
                    millis(ack.p99),
                    millis(ack.max),
                    millis(send.p50),
                    millis(figures.last_follower.p50),
                    millis(figures.ack.p50),
                ),
                serde_json::json!({
                    "load": "follow-latency", "store": store, "followers": followers,
                    "connections": last_replica.len(), "uploads": figures.uploads,
                    "rate": rate, "received": figures.received,
                    "expected": figures.expected,
                    "p50_ms": ms(ack.p50), "p99_ms": ms(ack.p99), "max_ms": ms(ack.max),
                    "send_p50_ms": ms(send.p50), "send_p99_ms": ms(send.p99),
                    "send_max_ms": ms(send.max),
                    "last_follower_p50_ms": ms(figures.last_follower.p50),
                    "last_follower_max_ms": ms(figures.last_follower.max),
                    "upload_p50_ms": ms(figures.ack.p50),
                    "upload_p99_ms": ms(figures.ack.p99),
                }),
            );
            if figures.received != figures.expected {
                anyhow::bail!(
                    "the followers received {} lines of {}",
                    figures.received,
                    figures.expected
                );
            }
        }
        Load::Followers {
            count,
            server_pid,
            hold,
        } => {
            if args.addr.is_none() {
                anyhow::bail!("followers measures another process: give --addr and --server-pid");
            }
            report.header(
                "followers  conns  rss before   rss after    bytes/follower  held s  cpu s",
            );
            let before = load::watchers::resident_bytes(server_pid)?;
            let streams = load::follow::idle_followers(&clients, count).await?;
            let after = load::watchers::resident_bytes(server_pid)?;
            let per_follower = after.saturating_sub(before) as f64 / count.max(1) as f64;
            let cpu_before = load::watchers::cpu_seconds(server_pid)?;
            tokio::time::sleep(Duration::try_from_secs_f64(hold)?).await;
            let cpu = load::watchers::cpu_seconds(server_pid)? - cpu_before;
            report.row(
                format!(
                    "{count:<10} {:<6} {:<12} {:<12} {per_follower:<15.0} {hold:<7} {cpu:.2}",
                    clients.len(),
                    before,
                    after
                ),
                serde_json::json!({
                    "load": "followers", "followers": count, "connections": clients.len(),
                    "rss_before": before, "rss_after": after,
                    "bytes_per_follower": per_follower, "held_seconds": hold,
                    "server_cpu_seconds": cpu,
                }),
            );
            drop(streams);
        }
        Load::Upload {
            streams,
            lines,
            line_bytes,
        } => {
            report.header(
                "store     streams  conns  lines      bytes        seconds  lines/s      MB/s",
            );
            for (run, &streams) in streams.iter().enumerate() {
                let namespace = format!("bench-upload-{tag}-{run}");
                create_pods(&clients[0], &namespace, streams).await?;
                let figures =
                    load::upload::upload(&clients, &namespace, streams.max(1), lines, line_bytes)
                        .await?;
                report.row(
                    format!(
                        "{store:<9} {streams:<8} {:<6} {:<10} {:<12} {:<8.3} {:<12.0} {:.0}",
                        clients.len(),
                        figures.lines,
                        figures.bytes,
                        figures.elapsed.as_secs_f64(),
                        figures.lines_per_second(),
                        figures.megabytes_per_second(),
                    ),
                    serde_json::json!({
                        "load": "upload", "store": store, "streams": streams,
                        "connections": clients.len(), "lines": figures.lines,
                        "bytes": figures.bytes, "seconds": figures.elapsed.as_secs_f64(),
                        "lines_per_second": figures.lines_per_second(),
                        "megabytes_per_second": figures.megabytes_per_second(),
                    }),
                );
            }
        }
    }
    Ok(())
}

/// Creates pods `upload-0..n` for the upload streams.
async fn create_pods(client: &Client, namespace: &str, n: usize) -> anyhow::Result<()> {
    let mut client = client.clone();
    let requests = (0..n).map(|i| SyncRequest {
        id: i as u64 + 1,
        op: Some(sync_request::Op::Apply(Pod {
            name: format!("upload-{i}"),
            namespace: namespace.to_owned(),
            status: "Running".into(),
            replicas: 1,
            ..Pod::default()
        })),
    });
    let mut events = client
        .sync_pods(tokio_stream::iter(requests.collect::<Vec<_>>()))
        .await
        .map_err(status_error)?
        .into_inner();
    while events.message().await.map_err(status_error)?.is_some() {}
    Ok(())
}
