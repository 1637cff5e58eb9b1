//! Watchers of one namespace and a writer changing a pod in it: the
//! delivery latency of each change to each watcher.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pod_service::client::status_error;
use pod_service::contract::{Pod, SyncRequest, sync_event, sync_request};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{Latency, registered_watch};
use crate::report::{Figure, Row};
use crate::target::Target;

/// The flags of the `fanout` load.
#[derive(clap::Args)]
pub struct FanoutArgs {
    /// Watcher counts to measure, one run each.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    pub watchers: Vec<usize>,
    /// Changes the writer makes per run, one in flight.
    #[arg(long, default_value_t = 200)]
    changes: usize,
    /// Changes per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
}

/// What a fan-out run measured: how long each change took to reach each
/// watcher, from the writer's send and from its ack.
#[derive(Debug, Clone)]
pub struct FanoutFigures {
    pub store: &'static str,
    pub watchers: usize,
    pub connections: usize,
    pub changes: usize,
    /// Deliveries counted: `watchers * changes`, each checked exactly once.
    pub deliveries: u64,
    pub from_send: Latency,
    pub from_ack: Latency,
    /// Per change, the delivery to its last watcher, from the send.
    pub last_watcher: Latency,
}

impl Row for FanoutFigures {
    const LOAD: &'static str = "fanout";

    fn figures(&self) -> Vec<Figure> {
        let (send, ack, last) = (self.from_send, self.from_ack, self.last_watcher);
        vec![
            Figure::text(self.store).named("store"),
            Figure::count(self.watchers).named("watchers"),
            Figure::count(self.connections)
                .json("connections")
                .table("conns"),
            Figure::count(self.changes).json("changes"),
            Figure::count(self.deliveries).named("deliveries"),
            Figure::millis(send.p50)
                .json("send_p50_ms")
                .table("send p50"),
            Figure::millis(send.p99)
                .json("send_p99_ms")
                .table("send p99"),
            Figure::millis(send.max)
                .json("send_max_ms")
                .table("send max"),
            Figure::millis(ack.p50).json("ack_p50_ms").table("ack p50"),
            Figure::millis(ack.p99).json("ack_p99_ms").table("ack p99"),
            Figure::millis(ack.max).json("ack_max_ms"),
            Figure::millis(last.p50)
                .json("last_watcher_p50_ms")
                .table("last p50"),
            Figure::millis(last.max).json("last_watcher_max_ms"),
        ]
    }
}

/// Run `run` of the load: opens `watchers` WatchPods streams of a namespace
/// of the run's, spread over the target's connections, then applies
/// `--changes` updates of one pod in it at `--rate` per second from a
/// SyncPods session, and times each change's arrival at each watcher.
/// Every watcher must see every change exactly once, in order.
pub async fn fanout(
    target: &Target,
    args: &FanoutArgs,
    run: usize,
    watchers: usize,
) -> anyhow::Result<FanoutFigures> {
    let namespace = &target.namespace("fanout", Some(run));
    let (clients, changes, rate) = (&target.clients, args.changes.max(1), args.rate);
    let pod = |replicas: usize| Pod {
        name: "fanout".into(),
        namespace: namespace.to_owned(),
        status: "Running".into(),
        replicas: replicas as i32,
        ..Pod::default()
    };
    // The writer's session; its first op creates the pod every watch starts with.
    let (requests, outbound) = mpsc::channel(4);
    let apply = |id: usize| SyncRequest {
        id: id as u64,
        op: Some(sync_request::Op::Apply(pod(id))),
    };
    // Queued before the call is awaited (see `sync_session`).
    requests.send(apply(0)).await?;
    let mut writer = clients[0].clone();
    let mut acks = writer
        .sync_pods(ReceiverStream::new(outbound))
        .await
        .map_err(status_error)?
        .into_inner();
    acks.message().await.map_err(status_error)?;

    // Each watcher reads its snapshot (so it is registered), then reports it
    // is ready and records when each change arrives, indexed by its replicas.
    let (ready_tx, mut ready) = mpsc::channel::<()>(watchers.max(1));
    let mut tasks = Vec::with_capacity(watchers);
    for i in 0..watchers {
        let client = clients[i % clients.len()].clone();
        let namespace = namespace.to_owned();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = registered_watch(&client, &namespace, false).await?;
            let _ = ready.send(()).await;
            drop(ready);
            let mut arrivals = Vec::with_capacity(changes);
            while arrivals.len() < changes {
                let Some(change) = stream.message().await.map_err(status_error)? else {
                    bail!("watch {i} ended after {} changes", arrivals.len());
                };
                let at = Instant::now();
                if change.replicas as usize != arrivals.len() + 1 {
                    bail!(
                        "watch {i} got change {} after {}",
                        change.replicas,
                        arrivals.len()
                    );
                }
                arrivals.push(at);
            }
            Ok::<_, anyhow::Error>(arrivals)
        }));
    }
    drop(ready_tx);
    for _ in 0..watchers {
        if ready.recv().await.is_none() {
            break; // a watcher failed: its task reports why below
        }
    }

    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut ticks = tokio::time::interval(interval);
    let mut sent = Vec::with_capacity(changes);
    let mut acked = Vec::with_capacity(changes);
    for id in 1..=changes {
        ticks.tick().await;
        sent.push(Instant::now());
        requests.send(apply(id)).await?;
        match acks.message().await.map_err(status_error)? {
            Some(event) => match event.event {
                Some(sync_event::Event::Ack(ack)) if ack.code == 0 => acked.push(Instant::now()),
                other => bail!("change {id} was not acknowledged: {other:?}"),
            },
            None => bail!("the writer's session ended"),
        }
    }
    drop(requests);

    let (mut from_send, mut from_ack) = (Vec::new(), Vec::new());
    let mut last = vec![Duration::ZERO; changes];
    for task in tasks {
        let arrivals = task.await.context("a watcher panicked")??;
        for (change, at) in arrivals.into_iter().enumerate() {
            let since_send = at.saturating_duration_since(sent[change]);
            from_send.push(since_send);
            // A watcher may beat the ack; such deliveries count as 0.
            from_ack.push(at.saturating_duration_since(acked[change]));
            last[change] = last[change].max(since_send);
        }
    }
    Ok(FanoutFigures {
        store: target.store,
        watchers,
        connections: clients.len(),
        changes,
        deliveries: from_send.len() as u64,
        from_send: Latency::of(from_send),
        from_ack: Latency::of(from_ack),
        last_watcher: Latency::of(last),
    })
}
