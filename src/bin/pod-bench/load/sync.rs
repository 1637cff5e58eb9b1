//! SyncPods sessions applying pods back to back: ops/s and ack latency.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pod_service::client::{Client, status_error};
use pod_service::contract::{Pod, SyncRequest, sync_event, sync_request};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::Latency;
use crate::report::{Figure, Row};
use crate::target::Target;

/// The flags of the `sync` load.
#[derive(clap::Args)]
pub struct SyncArgs {
    /// Session counts to measure, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub sessions: Vec<usize>,
    /// Ops each session keeps in flight.
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// Length of each run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
}

/// What a SyncPods run measured.
#[derive(Debug, Clone)]
pub struct SyncFigures {
    pub store: &'static str,
    pub sessions: usize,
    pub in_flight: usize,
    pub connections: usize,
    pub ops: u64,
    pub elapsed: Duration,
    pub ack_latency: Latency,
}

impl SyncFigures {
    pub fn ops_per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

impl Row for SyncFigures {
    const LOAD: &'static str = "sync";

    fn figures(&self) -> Vec<Figure> {
        let Latency { p50, p99, max } = self.ack_latency;
        vec![
            Figure::text(self.store).named("store"),
            Figure::count(self.sessions).named("sessions"),
            Figure::count(self.in_flight)
                .json("in_flight")
                .table("in-flight"),
            Figure::count(self.connections)
                .json("connections")
                .table("conns"),
            Figure::count(self.ops).named("ops"),
            Figure::real(self.ops_per_second(), 0)
                .json("ops_per_second")
                .table("ops/s"),
            Figure::millis(p50).json("p50_ms").table("ack p50"),
            Figure::millis(p99).json("p99_ms").table("ack p99"),
            Figure::millis(max).json("max_ms").table("ack max"),
        ]
    }
}

/// Run `run` of the load: `sessions` SyncPods sessions for `--seconds`,
/// each keeping `--in-flight` applies outstanding over 10 pods of its own,
/// in a namespace of the run's. Every ack must be OK, in order, with a
/// version above the previous one.
pub async fn sync(
    target: &Target,
    args: &SyncArgs,
    run: usize,
    sessions: usize,
) -> anyhow::Result<SyncFigures> {
    let duration = Duration::try_from_secs_f64(args.seconds).context("invalid --seconds")?;
    let namespace = target.namespace("sync", Some(run));
    let (clients, in_flight) = (&target.clients, args.in_flight.max(1));
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..sessions)
        .map(|session| {
            let client = clients[session % clients.len()].clone();
            let namespace = namespace.clone();
            tokio::spawn(sync_session(
                client, namespace, session, in_flight, deadline,
            ))
        })
        .collect();
    let mut ops = 0;
    let mut latencies = Vec::new();
    for task in tasks {
        let (session_ops, samples) = task.await.context("a session panicked")??;
        ops += session_ops;
        latencies.extend(samples);
    }
    Ok(SyncFigures {
        store: target.store,
        sessions,
        in_flight: args.in_flight,
        connections: clients.len(),
        ops,
        elapsed: start.elapsed(),
        ack_latency: Latency::of(latencies),
    })
}

async fn sync_session(
    mut client: Client,
    namespace: String,
    session: usize,
    in_flight: usize,
    deadline: Instant,
) -> anyhow::Result<(u64, Vec<Duration>)> {
    let (requests, outbound) = mpsc::channel(in_flight + 1);
    let mut sent_at = std::collections::VecDeque::with_capacity(in_flight);
    let mut next_id = 0u64;
    let mut last_version = 0;
    let mut samples = Vec::new();
    let send = |id: u64| SyncRequest {
        id,
        op: Some(sync_request::Op::Apply(Pod {
            name: format!("s{session}-{}", id % 10),
            namespace: namespace.clone(),
            status: "Running".into(),
            replicas: (id % 5) as i32,
            ..Pod::default()
        })),
    };
    // Queued before the call is awaited: some servers (grpc-go) send the
    // response headers only with the first event.
    for _ in 0..in_flight {
        next_id += 1;
        sent_at.push_back(Instant::now());
        requests.send(send(next_id)).await?;
    }
    let mut events = client
        .sync_pods(ReceiverStream::new(outbound))
        .await
        .map_err(status_error)?
        .into_inner();
    let mut requests = Some(requests);
    while let Some(event) = events.message().await.map_err(status_error)? {
        let Some(sync_event::Event::Ack(ack)) = event.event else {
            bail!("an unsubscribed session got a change");
        };
        let Some(sent) = sent_at.pop_front() else {
            bail!("an ack for nothing sent");
        };
        if ack.code != 0 {
            bail!("op {} failed: {}", ack.id, ack.message);
        }
        let version = ack.pod.map(|p| p.resource_version).unwrap_or_default();
        if version <= last_version {
            bail!("versions went backwards: {version} after {last_version}");
        }
        last_version = version;
        samples.push(sent.elapsed());
        if let Some(sender) = &requests {
            if Instant::now() < deadline {
                next_id += 1;
                sent_at.push_back(Instant::now());
                sender.send(send(next_id)).await?;
            } else {
                // Half-close: the server sends the remaining acks, then OK.
                requests = None;
            }
        }
    }
    if !sent_at.is_empty() {
        bail!("the session ended with {} acks missing", sent_at.len());
    }
    Ok((samples.len() as u64, samples))
}
