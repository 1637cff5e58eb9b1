//! Unary ListPods callers back to back: calls/s and latency.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pod_service::client::status_error;

use super::Latency;
use crate::report::{Figure, Row};
use crate::target::Target;

/// The flags of the `unary` load.
#[derive(clap::Args)]
pub struct UnaryArgs {
    /// Concurrent callers to measure, one run each.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    pub concurrency: Vec<usize>,
    /// The namespace listed.
    #[arg(long, default_value = "production")]
    namespace: String,
    /// Length of each run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
}

/// What a unary ListPods run measured.
#[derive(Debug, Clone)]
pub struct UnaryFigures {
    pub store: &'static str,
    pub callers: usize,
    pub connections: usize,
    pub calls: u64,
    pub pods_per_call: usize,
    pub elapsed: Duration,
    pub latency: Latency,
}

impl UnaryFigures {
    pub fn calls_per_second(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }
}

impl Row for UnaryFigures {
    const LOAD: &'static str = "unary";

    fn figures(&self) -> Vec<Figure> {
        vec![
            Figure::text(self.store).named("store"),
            Figure::count(self.callers).named("callers"),
            Figure::count(self.connections)
                .json("connections")
                .table("conns"),
            Figure::count(self.calls).named("calls"),
            Figure::count(self.pods_per_call)
                .json("pods_per_call")
                .table("pods/call"),
            Figure::real(self.calls_per_second(), 0)
                .json("calls_per_second")
                .table("calls/s"),
            Figure::millis(self.latency.p50).json("p50_ms").table("p50"),
            Figure::millis(self.latency.p99).json("p99_ms").table("p99"),
            Figure::millis(self.latency.max).json("max_ms").table("max"),
        ]
    }
}

/// Runs `callers` callers of ListPods(`--namespace`) back to back for
/// `--seconds`, spread over the target's connections. Every answer must
/// hold as many pods as the first.
pub async fn unary(
    target: &Target,
    args: &UnaryArgs,
    callers: usize,
) -> anyhow::Result<UnaryFigures> {
    let duration = Duration::try_from_secs_f64(args.seconds).context("invalid --seconds")?;
    let clients = &target.clients;
    let request = || pod_service::contract::ListPodsRequest {
        namespace: args.namespace.clone(),
        ..Default::default()
    };
    let mut probe = clients[0].clone();
    let expected = probe
        .list_pods(request())
        .await
        .map_err(status_error)?
        .into_inner()
        .pods
        .len();
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..callers.max(1))
        .map(|caller| {
            let mut client = clients[caller % clients.len()].clone();
            let request = request();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let list = client
                        .list_pods(request.clone())
                        .await
                        .map_err(status_error)?
                        .into_inner();
                    samples.push(sent.elapsed());
                    if list.pods.len() != expected {
                        bail!(
                            "{} pods in an answer, {expected} in the first",
                            list.pods.len()
                        );
                    }
                }
                Ok::<_, anyhow::Error>(samples)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.context("a caller panicked")??);
    }
    Ok(UnaryFigures {
        store: target.store,
        callers,
        connections: clients.len(),
        calls: latencies.len() as u64,
        pods_per_call: expected,
        elapsed: start.elapsed(),
        latency: Latency::of(latencies),
    })
}
