//! Replicas of one registry over etcd, for the tests of several replicas
//! (tests/etcd.rs) and of a cluster in trouble (tests/etcd/faults.rs): opening
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
    open_seeded_on(cluster.endpoints(), prefix, store, seed).await
}

/// [`open_seeded`] knowing only `endpoints`, in this order: a replica
/// starts on the first.
pub async fn open_seeded_on(
    endpoints: Vec<String>,
    prefix: &str,
    store: StoreConfig,
    seed: Vec<ApplyPod>,
) -> Result<Opened, OpenError> {
    let config = EtcdConfig {
        prefix: prefix.to_owned(),
        compaction_interval: Duration::ZERO,
        ..EtcdConfig::new(endpoints)
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
        servers.push(replica_on(cluster.endpoints(), prefix).await);
    }
    servers
}

/// An in-process replica that knows only `endpoints`, in this order: it
/// starts (its writes, reads and feed) on the first.
pub async fn replica_on(endpoints: Vec<String>, prefix: &str) -> TestServer {
    let store = open_seeded_on(endpoints, prefix, StoreConfig::default(), Vec::new())
        .await
        .expect("open the etcd store")
        .registry;
    TestServer::start_on(Arc::new(store), ServerConfig::default()).await
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

/// How many `Txn` calls etcd member `i` has started, and how many it has
/// finished (`grpc_server_started_total`, and `grpc_server_handled_total`
/// summed over every code, in its `/metrics`).
pub async fn txn_calls(cluster: &EtcdCluster, i: usize) -> (u64, u64) {
    let metrics = http_get(&cluster.endpoint(i), "/metrics").await;
    let count = |metric: &str| {
        let calls = metrics
            .lines()
            .filter(|line| line.starts_with(metric) && line.contains("grpc_method=\"Txn\""))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok());
        calls.sum::<f64>() as u64
    };
    (
        count("grpc_server_started_total{"),
        count("grpc_server_handled_total{"),
    )
}

/// Waits until member `i`, resumed after a SIGSTOP, has dealt with the
/// writes it held unread in its sockets, so that whatever they will ever do
/// is done: it answers, with a leader ([`EtcdCluster::await_ready`]), and a
/// write sent through it is committed while it neither starts nor has in
/// progress any `Txn` call (its counters, read before and after the write,
/// are equal, every call started finished). The member reads what it held
/// the moment it runs again, long before it has answered a new connection
/// twice; a held call it starts has then finished, its proposal (if it
/// made one: its caller gave up long ago, which cancels the call) ahead
/// of the write's; and etcd commits one member's proposals in the order it
/// made them. So a held write is committed by then, or never will be (a
/// call dropped before it started, or a proposal made by a deposed
/// leader).
pub async fn settle(cluster: &EtcdCluster, i: usize) {
    cluster.await_ready(i).await;
    let marker = format!(
        r#"{{"key":"{}","value":"{}"}}"#,
        base64(b"/settled"),
        base64(i.to_string().as_bytes())
    );
    let mut calls = (0, 0);
    let quiet = async {
        loop {
            calls = txn_calls(cluster, i).await;
            if calls.0 == calls.1 {
                let put = http(&cluster.endpoint(i), "POST", "/v3/kv/put", &marker).await;
                assert!(put.contains("200 OK"), "a write through member {i}: {put}");
                if txn_calls(cluster, i).await == calls {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(super::PATIENCE, quiet).await.is_err() {
        panic!(
            "etcd member {i} did not finish the writes it held: it started {} Txn calls \
             and finished {}",
            calls.0, calls.1
        );
    }
}

/// The pod `namespace/name` of the registry under `prefix` as etcd holds
/// it, read through member `i` (a linearizable read): the stored value
/// (a pod without its version) and the key's `mod_revision`.
pub async fn stored_pod(
    cluster: &EtcdCluster,
    i: usize,
    prefix: &str,
    namespace: &str,
    name: &str,
) -> Option<(Pod, u64)> {
    use base64::Engine as _;
    use prost::Message as _;
    let key = format!("{prefix}pods/{namespace},{name}");
    let body = format!(r#"{{"key":"{}"}}"#, base64(key.as_bytes()));
    let response = http(&cluster.endpoint(i), "POST", "/v3/kv/range", &body).await;
    let (_, json) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let json: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let kv = json["kvs"].get(0)?;
    let value = base64::engine::general_purpose::STANDARD
        .decode(kv["value"].as_str().unwrap_or_default())
        .expect("base64 from etcd");
    let pod = Pod::decode(value.as_slice()).expect("a pod in etcd");
    let version = kv["mod_revision"].as_str().and_then(|v| v.parse().ok());
    Some((pod, version.expect("a mod_revision")))
}
