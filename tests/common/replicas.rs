//! Replicas of one registry over etcd, for the tests of several replicas
//! (tests/etcd.rs) and of a cluster in trouble (tests/etcd_faults.rs): opening
//! a registry the way `pod-server --etcd-endpoints` does, in-process
//! replicas, what their lists and watches must show, and etcd's own HTTP
//! gateway for what only etcd can say.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use pod_service::contract::{Pod, PodServiceClient};
use pod_service::domain::ApplyPod;
use pod_service::server::ServerConfig;
use pod_service::store::{EtcdConfig, OpenError, Opened, Registry, Storage, StoreConfig};
use tonic::transport::Channel;

use super::etcd::EtcdCluster;
use super::{Session, TestServer, list_request, within};

/// A registry under `prefix` of `cluster`, without compaction.
pub async fn open(cluster: &EtcdCluster, prefix: &str, store: StoreConfig) -> Registry {
    open_seeded(cluster, prefix, store, Vec::new())
        .await
        .expect("open the etcd store")
        .registry
}

pub async fn open_seeded(
    cluster: &EtcdCluster,
    prefix: &str,
    store: StoreConfig,
    seed: Vec<ApplyPod>,
) -> Result<Opened, OpenError> {
    let config = EtcdConfig {
        prefix: prefix.to_owned(),
        compaction_interval: Duration::ZERO,
        ..EtcdConfig::new(cluster.endpoints())
    };
    within(
        "the etcd store to open",
        Registry::open(
            Storage::Etcd {
                etcd: config,
                nats: None,
            },
            store,
            seed,
        ),
    )
    .await
}

/// `n` in-process replicas of one registry.
pub async fn replicas(cluster: &EtcdCluster, prefix: &str, n: usize) -> Vec<TestServer> {
    let mut servers = Vec::new();
    for _ in 0..n {
        let store = open(cluster, prefix, StoreConfig::default()).await;
        servers.push(TestServer::start_on(Arc::new(store), ServerConfig::default()).await);
    }
    servers
}

pub async fn list(client: &mut PodServiceClient<Channel>, namespace: &str) -> (Vec<Pod>, u64) {
    let list = client
        .list_pods(list_request(namespace, 0))
        .await
        .expect("list")
        .into_inner();
    (list.pods, list.resource_version)
}

/// Reads a watch until it has yielded every version in `expected`; returns
/// every change it yielded, in order.
pub async fn watch_until(
    mut stream: tonic::Streaming<Pod>,
    expected: &BTreeSet<u64>,
) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    let mut missing = expected.clone();
    while !missing.is_empty() {
        let change = within("a watched change", stream.message())
            .await
            .expect("watch failed")
            .expect("watch ended");
        missing.remove(&change.resource_version);
        seen.push((change.resource_version, change.name));
    }
    seen
}

pub fn assert_once_in_order(seen: &[(u64, String)], expected: &BTreeSet<u64>, who: &str) {
    let versions: Vec<u64> = seen.iter().map(|(version, _)| *version).collect();
    assert!(
        versions.windows(2).all(|pair| pair[0] < pair[1]),
        "{who}: versions in strictly increasing order (no repeat): {versions:?}"
    );
    let got: BTreeSet<u64> = versions.iter().copied().collect();
    assert_eq!(
        &got, expected,
        "{who}: every acknowledged change, nothing else"
    );
}

/// [`Session::apply`] for a test that needs the apply to succeed.
pub trait AppliedVersion {
    /// The version `pod` was stored at. A refusal fails the test with the
    /// server's reason, which the ack of a refused apply, carrying no pod,
    /// would otherwise hide.
    async fn applied_version(&mut self, pod: Pod) -> u64;
}

impl AppliedVersion for Session {
    async fn applied_version(&mut self, pod: Pod) -> u64 {
        let ack = self.apply(pod).await;
        assert_eq!(ack.code, 0, "{}", ack.message);
        ack.pod.expect("the stored pod").resource_version
    }
}

/// etcd's own count of its watchers (`etcd_debugging_mvcc_watcher_total`).
pub async fn etcd_watchers(cluster: &EtcdCluster) -> u64 {
    let metrics = http_get(&cluster.endpoint(0), "/metrics").await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("etcd_debugging_mvcc_watcher_total "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map(|value| value as u64)
        .expect("etcd_debugging_mvcc_watcher_total in /metrics")
}

pub async fn http_get(endpoint: &str, path: &str) -> String {
    http(endpoint, "GET", path, "").await
}

/// A tiny HTTP/1.0 request to a member's client URL.
pub async fn http(endpoint: &str, method: &str, path: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .expect("connect to etcd");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

pub fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        out.extend(std::iter::repeat_n('=', 3 - chunk.len()));
    }
    out
}

// ---- Faults ----
