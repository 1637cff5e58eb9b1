//! Real etcd clusters on loopback, for the tests of the etcd-backed store:
//! what is etcd's own in a [`Cluster`] (`super::cluster` runs the
//! processes, waits and faults).
//!
//! The store's tests run against the real thing: Debian's `etcd` 3.4
//! (package `etcd-server`, installed by `super::tools::require` when
//! missing), never a fake. Two ways to get a cluster:
//!
//! - [`EtcdCluster::shared`]: one 3-member cluster per test binary, started
//!   by the first test that asks and shared by every test that only needs
//!   keys of its own. Such a test works under a [`unique_prefix`] and must
//!   not inject faults (the fault controls panic on it).
//! - `EtcdCluster::start`: a cluster of the test's own, killed when it is
//!   dropped, for tests that kill, restart, pause or resume members or ask
//!   which member leads ([`EtcdCluster::leader`]).
//!
//! Members are numbered from 0 (named `m1`, `m2`, ... in etcd), each on a
//! client and a peer port. A member is ready when its `GET /health` says
//! `{"health":"true"}`: it has a leader and serves. A killed member starts
//! again with `--initial-cluster-state existing`, on its data.

use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use super::cluster::Health;
use super::cluster::{Cluster, Daemon, Member, View, json, probe};

/// A running etcd cluster on loopback.
pub type EtcdCluster = Cluster<Etcd>;

/// The index of a member's client port in [`Member::ports`], then its peer
/// port's.
pub(super) const CLIENT: usize = 0;
pub(super) const PEER: usize = 1;

/// What every member of one etcd cluster shares.
pub struct Etcd {
    /// `--initial-cluster`: every member's name and peer URL.
    initial_cluster: String,
    token: String,
}

impl Daemon for Etcd {
    const NAME: &'static str = "etcd";
    const MEMBER: &'static str = "member";
    const PROGRAM: &'static str = "etcd";
    const PACKAGE: &'static str = "etcd-server";
    const PORTS: usize = 2;

    fn member_name(i: usize) -> String {
        format!("m{}", i + 1)
    }

    fn settings(tag: String, members: &[Member]) -> Self {
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.ports[PEER]))
            .collect::<Vec<_>>()
            .join(",");
        Etcd {
            initial_cluster,
            token: tag,
        }
    }

    fn args(&self, command: &mut Command, member: &Member, rejoining: bool) {
        let client = format!("http://127.0.0.1:{}", member.ports[CLIENT]);
        self.args_serving(command, member, rejoining, &client);
    }

    /// `GET /health` says `{"health":"true"}`: the member has a leader
    /// and serves.
    async fn check(cluster: &EtcdCluster, i: usize) -> Health {
        let port = cluster.member(i).ports[CLIENT];
        probe(port, "/health", |json| json["health"] == "true").await
    }

    /// The member's id and its leader's, from `POST
    /// /v3/maintenance/status`.
    async fn view(cluster: &EtcdCluster, i: usize) -> Result<View, String> {
        let port = cluster.member(i).ports[CLIENT];
        let status = json(port, "POST", "/v3/maintenance/status", "{}").await?;
        Ok(View {
            me: status["header"]["member_id"].as_str().map(str::to_owned),
            leader: status["leader"].as_str().map(str::to_owned),
        })
    }
}

impl Etcd {
    /// A member's arguments, serving clients at `client` (its URL).
    pub(super) fn args_serving(
        &self,
        command: &mut Command,
        member: &Member,
        rejoining: bool,
        client: &str,
    ) {
        let peer = format!("http://127.0.0.1:{}", member.ports[PEER]);
        let state = if rejoining { "existing" } else { "new" };
        command
            .args(["--name", &member.name, "--data-dir"])
            .arg(&member.data_dir)
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--listen-client-urls", client])
            .args(["--advertise-client-urls", client])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", &self.token])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--experimental-watch-progress-notify-interval", "1s"]);
    }
}

impl EtcdCluster {
    /// The 3-member cluster of this test binary, started by the first call
    /// (which blocks until it is healthy, a few seconds) and alive until the
    /// process exits. Use it under a [`unique_prefix`], without faults.
    pub fn shared() -> &'static EtcdCluster {
        static SHARED: OnceLock<EtcdCluster> = OnceLock::new();
        Cluster::share(&SHARED)
    }

    /// Member `i`'s client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.member(i).ports[CLIENT])
    }

    /// Every member's client URL, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.endpoint(i)).collect()
    }

    /// The client URLs comma-joined, as `--etcd-endpoints` takes them.
    pub fn endpoints_arg(&self) -> String {
        self.endpoints().join(",")
    }

    /// The member that leads: the running, unpaused member that says it is
    /// the leader and that a majority of all members name as their leader,
    /// waited for (see [`Cluster::await_leader`]).
    pub async fn leader(&self) -> usize {
        self.await_leader("an etcd leader").await
    }
}

/// A key prefix of its own, `/test-<n>-<random>/`, for a test on the shared
/// cluster.
pub fn unique_prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "/test-{}-{:08x}/",
        NEXT.fetch_add(1, Ordering::Relaxed),
        fastrand::u32(..)
    )
}
