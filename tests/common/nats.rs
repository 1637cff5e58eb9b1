//! Real NATS JetStream clusters on loopback, for the tests of the logs on
//! JetStream: what is NATS's own in a [`Cluster`] (`super::cluster` runs
//! the processes, waits and faults).
//!
//! The tests run against the real thing: Debian's `nats-server` 2.9
//! (package `nats-server`, installed by `super::tools::require` when
//! missing), never a fake. Two ways to get a cluster, as with etcd
//! (`super::etcd`):
//!
//! - [`NatsCluster::shared`]: one 3-node cluster per test binary, started by
//!   the first test that asks and shared by every test that only needs
//!   streams of its own. Such a test works on a [`unique_stream`] and must
//!   not inject faults (the fault controls panic on it).
//! - `NatsCluster::start`: a cluster of the test's own, killed when it is
//!   dropped, for tests that kill or restart nodes or ask which node leads
//!   the JetStream meta group ([`NatsCluster::meta_leader`]).
//!
//! Nodes are numbered from 0 and named `n0`, `n1`, ... in NATS. Each
//! listens on three ports (clients, routes, HTTP monitoring) and keeps its
//! JetStream data under its directory (`-sd`: the server stores in its
//! `jetstream` subdirectory). A cluster of one node runs without cluster
//! flags.
//!
//! A node is ready when its monitoring endpoint says so. `GET /healthz`
//! answers `200 {"status":"ok"}` once JetStream is up and (in a cluster)
//! current with the meta leader, and `503 {"status":"unavailable",
//! "error":"..."}` before; in a cluster, the node's `GET /jsz` must also
//! show a `meta_cluster` with a `leader` (the leader's server name) and a
//! `cluster_size` of every node. (`/jsz` is asked first: each failed
//! `/healthz` is a warning in the node's log, which would crowd out the
//! lines a failure quotes.)

use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use super::cluster::Health;
use super::cluster::{Cluster, Daemon, Member, View, json, probe};

/// A running NATS JetStream cluster on loopback.
pub type NatsCluster = Cluster<Nats>;

/// The indexes of a node's client, route and monitoring ports in
/// [`Member::ports`].
pub(super) const CLIENT: usize = 0;
const ROUTE: usize = 1;
pub const MONITOR: usize = 2;

/// What every node of one NATS cluster shares.
pub struct Nats {
    /// `--cluster_name` and `--routes` (every node's route URL), unless the
    /// cluster is of one node.
    cluster: Option<(String, String)>,
}

impl Daemon for Nats {
    const NAME: &'static str = "nats";
    const MEMBER: &'static str = "node";
    const PROGRAM: &'static str = "nats-server";
    const PACKAGE: &'static str = "nats-server";
    const PORTS: usize = 3;

    /// The server name (`-n`), which `GET /jsz` names the leader by.
    fn member_name(i: usize) -> String {
        format!("n{i}")
    }

    fn settings(tag: String, members: &[Member]) -> Self {
        let routes = members
            .iter()
            .map(|node| format!("nats://127.0.0.1:{}", node.ports[ROUTE]))
            .collect::<Vec<_>>()
            .join(",");
        Nats {
            cluster: (members.len() > 1).then_some((tag, routes)),
        }
    }

    fn args(&self, command: &mut Command, node: &Member, _rejoining: bool) {
        command
            .args(["-js", "-sd"])
            .arg(&node.data_dir)
            .args(["-a", "127.0.0.1", "-p", &node.ports[CLIENT].to_string()])
            .args(["-m", &node.ports[MONITOR].to_string(), "-n", &node.name]);
        if let Some((name, routes)) = &self.cluster {
            let route = format!("nats://127.0.0.1:{}", node.ports[ROUTE]);
            command
                .args(["--cluster_name", name, "--cluster", &route])
                .args(["--routes", routes]);
        }
    }

    /// For a node of a cluster, `GET /jsz` must name a meta leader of
    /// every node; then `GET /healthz` must say ok.
    async fn check(cluster: &NatsCluster, i: usize) -> Health {
        node_health(cluster.member(i).ports[MONITOR], cluster.len()).await
    }

    /// The node's name and the meta leader's, from its `GET /jsz`.
    async fn view(cluster: &NatsCluster, i: usize) -> Result<View, String> {
        node_view(cluster.member(i)).await
    }
}

/// Whether the node monitored at `port`, of a cluster of `size`, is ready:
/// for a node of a cluster, `GET /jsz` must name a meta leader of every
/// node; then `GET /healthz` must say ok.
pub(super) async fn node_health(port: u16, size: usize) -> Health {
    if size > 1 {
        let meta = match json(port, "GET", "/jsz", "").await {
            Ok(jsz) => jsz["meta_cluster"].clone(),
            Err(error) => return Health::NoAnswer(error),
        };
        let led = meta["leader"]
            .as_str()
            .is_some_and(|leader| !leader.is_empty());
        if !led || meta["cluster_size"].as_u64() != Some(size as u64) {
            return Health::NotReady(format!(
                "JetStream meta group of {size} not led yet: {meta}"
            ));
        }
    }
    probe(port, "/healthz", |json| json["status"] == "ok").await
}

/// `node`'s name and the meta leader's, from its `GET /jsz`.
pub(super) async fn node_view(node: &Member) -> Result<View, String> {
    let jsz = json(node.ports[MONITOR], "GET", "/jsz", "").await?;
    Ok(View {
        me: Some(node.name.clone()),
        leader: jsz["meta_cluster"]["leader"].as_str().map(str::to_owned),
    })
}

impl NatsCluster {
    /// The 3-node cluster of this test binary, started by the first call
    /// (which blocks until it is ready, about a second) and alive until the
    /// process exits. Use it on a [`unique_stream`], without faults.
    pub fn shared() -> &'static NatsCluster {
        static SHARED: OnceLock<NatsCluster> = OnceLock::new();
        Cluster::share(&SHARED)
    }

    /// Node `i`'s client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.member(i).ports[CLIENT])
    }

    /// Every node's client URL, in node order.
    pub fn urls(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.url(i)).collect()
    }

    /// The client URLs comma-joined, as `--nats-url` takes them.
    pub fn urls_arg(&self) -> String {
        self.urls().join(",")
    }

    /// Node `i`'s HTTP monitoring URL, `http://127.0.0.1:PORT`.
    pub fn monitor_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.member(i).ports[MONITOR])
    }

    /// The node that leads the JetStream meta group, waited for (see
    /// [`Cluster::await_leader`]). A single node leads itself once ready.
    pub async fn meta_leader(&self) -> usize {
        if self.len() == 1 {
            self.await_ready(0).await;
            return 0;
        }
        self.await_leader("a JetStream meta leader").await
    }
}

/// A JetStream stream name of its own, `logs-<pid>-<n>`, for a test on the
/// shared cluster: lowercase letters, digits and `-` only, so that it is
/// also a valid subject token.
pub fn unique_stream() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "logs-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
