//! Paged ListPods through every pod while a writer changes, creates and
//! deletes pods: the time per page, a check that the pages are exactly the
//! list at the first page's version, and the memory of lists held open.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pod_service::client::{Client, Pages, status_error};
use pod_service::contract::{Pod, SyncRequest, sync_event, sync_request};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::Latency;
use super::process::resident_bytes;
use crate::report::{Figure, Row};
use crate::target::Target;

/// The flags of the `pages` load.
#[derive(clap::Args)]
pub struct PagesArgs {
    /// Pods per page.
    #[arg(long, default_value_t = 500)]
    page_size: u32,
    /// Lists to page through, one after the other.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Changes per second the writer makes while a list pages.
    #[arg(long, default_value_t = 1000.0)]
    write_rate: f64,
    /// Then hold this many lists open (their first page read) ...
    #[arg(long, default_value_t = 0)]
    pub hold: usize,
    /// ... while this many changes are made, and continue each.
    #[arg(long, default_value_t = 5000)]
    hold_changes: u64,
    /// The server's process id, to read its memory (default: this
    /// process, whose in-process server it is).
    #[arg(long)]
    server_pid: Option<u32>,
}

/// What one paged list measured.
#[derive(Debug, Clone)]
pub struct PageFigures {
    pub store: &'static str,
    pub page_size: u32,
    pub pods: usize,
    pub pages: usize,
    pub elapsed: Duration,
    pub page_latency: Latency,
    /// Changes the writer made while the list paged.
    pub writes: u64,
}

impl PageFigures {
    pub fn pages_per_second(&self) -> f64 {
        self.pages as f64 / self.elapsed.as_secs_f64()
    }
}

impl Row for PageFigures {
    const LOAD: &'static str = "pages";

    fn figures(&self) -> Vec<Figure> {
        vec![
            Figure::text(self.store).named("store"),
            Figure::count(self.pods).named("pods"),
            Figure::count(self.page_size)
                .json("page_size")
                .table("page"),
            Figure::count(self.pages).named("pages"),
            Figure::seconds(self.elapsed.as_secs_f64()).named("seconds"),
            Figure::real(self.pages_per_second(), 0)
                .json("pages_per_second")
                .table("pages/s"),
            Figure::millis(self.page_latency.p50)
                .json("page_p50_ms")
                .table("page p50"),
            Figure::millis(self.page_latency.p99)
                .json("page_p99_ms")
                .table("page p99"),
            Figure::count(self.writes)
                .json("writes_meanwhile")
                .table("writes meanwhile"),
            // Every list is checked to be exactly the list at its version,
            // or the run fails.
            Figure::flag(true).json("consistent"),
        ]
    }
}

/// The most pods one run of the writer deletes (it stops after three times
/// as many changes).
const RUN_DELETES: usize = 20_000;

/// What a writer did, by version: enough to count the pods at any version.
#[derive(Default)]
struct Writes {
    /// (version, +1 created / -1 deleted / 0 changed), in version order.
    changes: Vec<(u64, i64)>,
}

impl Writes {
    fn pods_at(&self, initial: usize, version: u64) -> usize {
        let delta: i64 = self
            .changes
            .iter()
            .take_while(|(v, _)| *v <= version)
            .map(|(_, d)| d)
            .sum();
        (initial as i64 + delta) as usize
    }
}

/// The writer: one SyncPods session making `rate` changes a second (as
/// fast as acks come if 0) in turn: deleting a `staging` pod (listed last),
/// changing a `production` pod and creating a `dev` pod, until stopped.
struct Writer {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<Writes>>,
}

impl Writer {
    /// Run `run` of the writer deletes and creates pods no earlier run did.
    fn start(client: Client, pods: usize, run: usize, rate: f64, limit: Option<u64>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(write(client, pods, run, rate, limit, stopped));
        Writer { stop, task }
    }

    async fn stop(self) -> anyhow::Result<Writes> {
        let _ = self.stop.send(true);
        self.task.await.context("the writer panicked")?
    }
}

async fn write(
    mut client: Client,
    pods: usize,
    run: usize,
    rate: f64,
    limit: Option<u64>,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<Writes> {
    let (requests, outbound) = mpsc::channel(1);
    let mut events = client
        .sync_pods(ReceiverStream::new(outbound))
        .await
        .map_err(status_error)?
        .into_inner();
    let interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
    let mut writes = Writes::default();
    // The numbered pods in staging are pod-1, pod-4, ...: delete from the end.
    let mut staging = (1..pods).step_by(3).rev().skip(run * RUN_DELETES);
    for id in 1u64.. {
        let limit = limit.unwrap_or(3 * RUN_DELETES as u64);
        if *stopped.borrow() || id > limit {
            break;
        }
        let (op, delta) = match id % 3 {
            0 => match staging.next() {
                Some(i) => (delete("staging", &format!("pod-{i}")), -1),
                None => (apply("dev", &format!("zz-new-{run}-{id}"), 1), 1),
            },
            1 => (
                apply(
                    "production",
                    &format!("pod-{}", 3 * (id as usize % (pods / 3).max(1))),
                    9,
                ),
                0,
            ),
            _ => (apply("dev", &format!("zz-new-{run}-{id}"), 1), 1),
        };
        let started = Instant::now();
        requests
            .send(SyncRequest { id, op: Some(op) })
            .await
            .context("the writer's session ended")?;
        let ack = match events.message().await.map_err(status_error)? {
            Some(event) => match event.event {
                Some(sync_event::Event::Ack(ack)) => ack,
                _ => bail!("the writer expected an ack"),
            },
            None => bail!("the writer's session ended"),
        };
        if ack.code != 0 {
            bail!("a write was refused: {}", ack.message);
        }
        let version = ack.pod.map(|pod| pod.resource_version).unwrap_or_default();
        writes.changes.push((version, delta));
        if let Some(interval) = interval {
            let pause = interval.saturating_sub(started.elapsed());
            let _ = tokio::time::timeout(pause, stopped.changed()).await;
        }
    }
    Ok(writes)
}

fn apply(namespace: &str, name: &str, replicas: i32) -> sync_request::Op {
    sync_request::Op::Apply(Pod {
        name: name.into(),
        namespace: namespace.into(),
        status: "Running".into(),
        replicas,
        ..Pod::default()
    })
}

fn delete(namespace: &str, name: &str) -> sync_request::Op {
    sync_request::Op::Delete(pod_service::contract::PodRef {
        namespace: namespace.into(),
        name: name.into(),
    })
}

/// Run `run` of the load: pages through every pod of a store that started
/// with `--pods` pods, in pages of `--page-size`, while a writer makes
/// `--write-rate` changes a second; fails unless the pages are exactly the
/// list at their version.
pub async fn page_through(
    target: &Target,
    args: &PagesArgs,
    run: usize,
) -> anyhow::Result<PageFigures> {
    let (client, initial) = (&target.clients[0], target.pods);
    let (page_size, write_rate) = (args.page_size, args.write_rate);
    let live_before = current_pods(client).await?;
    let writer = Writer::start(client.clone(), initial, run, write_rate, None);
    let mut client = client.clone();
    let mut pages = Pages::new("", page_size);
    let mut listed: Vec<Pod> = Vec::with_capacity(live_before);
    let mut latencies = Vec::new();
    let start = Instant::now();
    while let Some(request) = pages.next_request() {
        let sent = Instant::now();
        let page = client
            .list_pods(request)
            .await
            .map_err(status_error)?
            .into_inner();
        latencies.push(sent.elapsed());
        if pages.version() != 0 && page.resource_version != pages.version() {
            bail!(
                "a page reported version {}, not the list's",
                page.resource_version
            );
        }
        pages.received(&page);
        listed.extend(page.pods);
    }
    let elapsed = start.elapsed();
    let writes = writer.stop().await?;
    let version = pages.version();
    let expected = writes.pods_at(live_before, version);
    if listed.len() != expected {
        bail!(
            "{} pods listed at version {version}, but {expected} were there",
            listed.len()
        );
    }
    if let Some(pod) = listed.iter().find(|pod| pod.resource_version > version) {
        bail!(
            "{}/{} is listed at {}, after the list's version {version}",
            pod.namespace,
            pod.name,
            pod.resource_version
        );
    }
    let sorted = listed
        .windows(2)
        .all(|w| (&w[0].namespace, &w[0].name) < (&w[1].namespace, &w[1].name));
    if !sorted {
        bail!("the pages are out of order, or list a pod twice");
    }
    Ok(PageFigures {
        store: target.store,
        page_size,
        pods: listed.len(),
        pages: latencies.len(),
        elapsed,
        page_latency: Latency::of(latencies),
        writes: writes.changes.iter().filter(|(v, _)| *v > version).count() as u64,
    })
}

/// How many pods the store holds now, in pages.
async fn current_pods(client: &Client) -> anyhow::Result<usize> {
    let mut client = client.clone();
    let (pods, _) = pod_service::client::list_all(&mut client, "", 4096)
        .await
        .map_err(status_error)?;
    Ok(pods.len())
}

/// What holding lists open cost the server.
#[derive(Debug, Clone)]
pub struct HeldFigures {
    pub store: &'static str,
    pub lists: usize,
    pub changes: u64,
    pub rss_before: u64,
    pub rss_holding: u64,
    pub rss_after_changes: u64,
}

impl Row for HeldFigures {
    const LOAD: &'static str = "held-lists";

    fn figures(&self) -> Vec<Figure> {
        let per_list = self.rss_holding.saturating_sub(self.rss_before) as f64 / self.lists as f64;
        let growth = self.rss_after_changes.saturating_sub(self.rss_holding);
        vec![
            Figure::text(self.store).json("store"),
            Figure::count(self.lists).json("lists").table("held lists"),
            Figure::count(self.rss_before)
                .json("rss_before")
                .table("rss before"),
            Figure::count(self.rss_holding).json("rss_holding"),
            Figure::count(self.rss_after_changes).json("rss_after_changes"),
            Figure::real(per_list, 0)
                .json("bytes_per_list")
                .table("bytes/list"),
            Figure::count(self.changes).named("changes"),
            Figure::count(growth).table("rss growth with the changes"),
        ]
    }
}

/// After the runs (the writer's run `--runs`), opens `--hold` paged lists
/// (their first page each, then left), makes `--hold-changes` changes,
/// continues every list one page (each must still be consistent), and
/// reads the server's memory along the way.
pub async fn hold(target: &Target, args: &PagesArgs) -> anyhow::Result<HeldFigures> {
    let Some(server_pid) = target.server_pid(args.server_pid) else {
        bail!("--hold with --addr needs --server-pid");
    };
    let (run, initial, page_size) = (args.runs, target.pods, args.page_size);
    let (lists, changes) = (args.hold, args.hold_changes);
    let mut client = target.clients[0].clone();
    let rss_before = resident_bytes(server_pid)?;
    let mut held = Vec::with_capacity(lists);
    for _ in 0..lists {
        let mut pages = Pages::new("", page_size);
        let request = pages.next_request().context("a first page")?;
        let page = client
            .list_pods(request)
            .await
            .map_err(status_error)?
            .into_inner();
        pages.received(&page);
        held.push(pages);
    }
    let rss_holding = resident_bytes(server_pid)?;
    Writer::start(client.clone(), initial, run, 0.0, Some(changes))
        .task
        .await
        .context("the writer panicked")??;
    let rss_after_changes = resident_bytes(server_pid)?;
    for pages in &mut held {
        let Some(request) = pages.next_request() else {
            continue;
        };
        let page: pod_service::contract::ListPodsResponse = client
            .list_pods(request)
            .await
            .map_err(status_error)?
            .into_inner();
        if page.resource_version != pages.version() {
            bail!("a held list went on at another version");
        }
    }
    Ok(HeldFigures {
        store: target.store,
        lists,
        changes,
        rss_before,
        rss_holding,
        rss_after_changes,
    })
}
