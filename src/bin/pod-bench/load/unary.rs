//! Unary ListPods callers back to back: calls/s and latency.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pod_service::client::{Client, status_error};

use super::Latency;

/// What a unary ListPods run measured.
#[derive(Debug, Clone)]
pub struct UnaryFigures {
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

/// Runs `concurrency` callers of ListPods(`namespace`) back to back for
/// `duration`. Every answer must hold as many pods as the first.
pub async fn unary(
    clients: &[Client],
    namespace: &str,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<UnaryFigures> {
    let request = || pod_service::contract::ListPodsRequest {
        namespace: namespace.to_owned(),
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
    let tasks: Vec<_> = (0..concurrency.max(1))
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
        calls: latencies.len() as u64,
        pods_per_call: expected,
        elapsed: start.elapsed(),
        latency: Latency::of(latencies),
    })
}
