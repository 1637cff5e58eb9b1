//! A real server on an ephemeral loopback port, for the end-to-end tests.

#![allow(dead_code)] // each test crate uses a different part of this

pub mod browser;
pub mod certs;
pub mod cluster;
pub mod etcd;
pub mod etcd_tls;
pub mod grpc_web;
pub mod load;
pub mod metrics;
pub mod nats;
pub mod nats_secure;
pub mod pki;
pub mod power_fs;
pub mod process;
pub mod proxy;
pub mod replicas;
mod suites;
pub mod tools;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pod_service::contract::{
    ListPodsRequest, Pod, PodRef, PodServiceClient, SyncAck, SyncEvent, SyncRequest, sync_event,
    sync_request,
};
use pod_service::domain::{ApplyPod, PodKey};
use pod_service::server::{InProcessServer, ServerConfig};
use pod_service::store::{EtcdConfig, NATS_TLS_FLAGS, NatsConfig, Registry, Storage, StoreConfig};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

/// Long enough for any step of a test on a loaded 2-core machine; a hang
/// becomes a failure instead of a stuck suite.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Which store a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    /// A durable store in a fresh temporary directory.
    Durable,
    /// An etcd store under a fresh prefix of the test binary's shared
    /// 3-member etcd cluster.
    Etcd,
    /// As `Etcd`, with the logs in a fresh stream (3 replicas) of the test
    /// binary's shared 3-node NATS JetStream cluster.
    Nats,
    /// As `Nats`, on a cluster that serves TLS and verifies the client's
    /// certificate (`nats_secure`), over `tls://` URLs.
    NatsTls,
}

impl Backend {
    /// Asserts that `later` is the version of the change right after the
    /// one at `earlier`: the next integer on the embedded stores, any
    /// larger version on etcd (whose revisions also count other keys).
    pub fn assert_next(self, earlier: u64, later: u64) {
        match self {
            Backend::Memory | Backend::Durable => {
                assert_eq!(later, earlier + 1, "the next version")
            }
            Backend::Etcd | Backend::Nats | Backend::NatsTls => {
                assert!(later > earlier, "{later} is not after {earlier}")
            }
        }
    }
}

#[allow(unused_imports)]
pub(crate) use suites::{on_every_log_store, on_every_store};

/// A fresh stream of the shared NATS cluster, for the logs.
pub fn nats_logs() -> NatsConfig {
    NatsConfig {
        stream: nats::unique_stream(),
        replicas: Some(3),
        ..NatsConfig::new(nats::NatsCluster::shared().urls())
    }
}

/// A fresh stream of the shared NATS cluster that serves TLS and verifies
/// client certificates, for the logs.
pub fn nats_tls_logs() -> NatsConfig {
    NatsConfig {
        stream: nats::unique_stream(),
        replicas: Some(3),
        tls: Some(pki::backend_tls(pki::shared(), true, NATS_TLS_FLAGS)),
        ..NatsConfig::new(nats_secure::shared_tls().urls())
    }
}

/// A registry under `prefix` of the shared etcd cluster, with no
/// compaction unless a test asks for it.
pub fn etcd_registry(prefix: &str) -> EtcdConfig {
    EtcdConfig {
        prefix: prefix.to_owned(),
        compaction_interval: Duration::ZERO,
        ..EtcdConfig::new(etcd::EtcdCluster::shared().endpoints())
    }
}

/// Opens a registry the one way every server does, with no starting pods.
pub async fn open(storage: Storage, limits: StoreConfig) -> Registry {
    within(
        "the registry to open",
        Registry::open(storage, limits, Vec::new()),
    )
    .await
    .expect("open the registry")
    .registry
}

/// The server of a test: the real server in this process
/// ([`InProcessServer`]), and where its registry keeps its data.
pub struct TestServer {
    pub addr: SocketAddr,
    pub store: Arc<Registry>,
    server: InProcessServer,
    /// The data directory of a durable store, removed with the server.
    data: Option<tempfile::TempDir>,
    /// Where the registry keeps its data, to open it again.
    storage: Storage,
}

impl TestServer {
    /// An empty store with default limits.
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, StoreConfig::default(), ServerConfig::default()).await
    }

    pub async fn start_with(backend: Backend, limits: StoreConfig, config: ServerConfig) -> Self {
        let mut data = None;
        let storage = match backend {
            Backend::Memory => Storage::InMemory,
            Backend::Durable => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let storage = Storage::Durable(dir.path().to_owned());
                data = Some(dir);
                storage
            }
            Backend::Etcd => Storage::Etcd {
                etcd: etcd_registry(&etcd::unique_prefix()),
                nats: None,
            },
            Backend::Nats => Storage::Etcd {
                etcd: etcd_registry(&etcd::unique_prefix()),
                nats: Some(nats_logs()),
            },
            Backend::NatsTls => Storage::Etcd {
                etcd: etcd_registry(&etcd::unique_prefix()),
                nats: Some(nats_tls_logs()),
            },
        };
        let registry = open(storage.clone(), limits).await;
        let mut server = Self::start_on(Arc::new(registry), config).await;
        server.data = data;
        server.storage = storage;
        server
    }

    /// A server whose store starts with the sample pods.
    pub async fn with_sample(backend: Backend, config: ServerConfig) -> Self {
        let server = Self::start_with(backend, StoreConfig::default(), config).await;
        server
            .store
            .load(pod_service::sample::sample())
            .await
            .expect("load the sample pods");
        server
    }

    /// A server on a given registry.
    pub async fn start_on(store: Arc<Registry>, config: ServerConfig) -> Self {
        let server = InProcessServer::start(Arc::clone(&store), config).expect("start the server");
        TestServer {
            addr: server.addr(),
            store,
            server,
            data: None,
            storage: Storage::InMemory,
        }
    }

    /// The data directory of a durable store.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.data.as_ref().map(|dir| dir.path())
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub async fn client(&self) -> PodServiceClient<Channel> {
        PodServiceClient::connect(self.url())
            .await
            .expect("connect")
    }

    /// Shuts the server down (streams end with UNAVAILABLE) and waits for it.
    pub async fn stop(&mut self) {
        within("the server to stop", self.server.stop())
            .await
            .expect("server failed");
    }

    /// Serves the same store again on the same port, as a restarted server
    /// would.
    pub async fn restart(&mut self) {
        within("the server to restart", self.server.restart())
            .await
            .expect("server failed");
    }

    /// Starts over as a restarted `pod-server` process would: the server
    /// stops, its store closes and opens again from its directory (a memory
    /// store starts empty), and a new server serves it (on a new port).
    pub async fn restart_process(&mut self, config: ServerConfig) {
        self.stop().await;
        within("the store to close", self.store.close())
            .await
            .expect("close the store");
        let registry = open(self.storage.clone(), StoreConfig::default()).await;
        let (data, storage) = (self.data.take(), self.storage.clone());
        *self = Self::start_on(Arc::new(registry), config).await;
        self.data = data;
        self.storage = storage;
    }

    /// Applies a pod directly to the store (bypassing gRPC).
    pub async fn apply(
        &self,
        namespace: &str,
        name: &str,
        status: &str,
        replicas: i32,
    ) -> Arc<Pod> {
        self.store
            .apply(ApplyPod {
                key: PodKey::new(namespace, name),
                status: status.into(),
                replicas,
                expected_version: None,
            })
            .await
            .expect("apply")
    }

    /// The life (and, on the embedded stores, the lines) of a pod's log.
    pub async fn pod_log(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<pod_service::store::PodLog>, pod_service::store::StoreError> {
        self.store
            .fresh(0)
            .await?
            .log(&PodKey::new(namespace, name))
    }

    /// Deletes a pod directly in the store.
    pub async fn delete(&self, namespace: &str, name: &str) -> Arc<Pod> {
        self.store
            .delete(PodKey::new(namespace, name))
            .await
            .expect("delete")
    }

    /// Waits until the store has exactly `n` watchers (registered or freed).
    pub async fn await_watchers(&self, n: usize) {
        eventually(|| self.store.watcher_count() == n, "watcher count").await;
    }
}

/// Polls a condition that some event will make true, failing after [`PATIENCE`].
pub async fn eventually(mut condition: impl FnMut() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Awaits a future, failing after [`PATIENCE`].
pub async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// The PodService's methods, as the compiled descriptor lists them.
pub fn pod_service_methods() -> Vec<String> {
    use prost::Message;
    let descriptors =
        prost_types::FileDescriptorSet::decode(pod_service::contract::FILE_DESCRIPTOR_SET).unwrap();
    descriptors
        .file
        .iter()
        .flat_map(|file| {
            file.service
                .iter()
                .filter(move |service| {
                    format!("{}.{}", file.package(), service.name())
                        == pod_service::contract::POD_SERVICE
                })
                .flat_map(|service| service.method.iter().map(|m| m.name().to_owned()))
        })
        .collect()
}

pub fn list_request(namespace: &str, resource_version: u64) -> ListPodsRequest {
    ListPodsRequest {
        namespace: namespace.into(),
        resource_version,
        ..ListPodsRequest::default()
    }
}

pub fn pod(namespace: &str, name: &str, status: &str, replicas: i32) -> Pod {
    Pod {
        name: name.into(),
        namespace: namespace.into(),
        status: status.into(),
        replicas,
        ..Pod::default()
    }
}

/// A SyncPods session driven from the test.
pub struct Session {
    requests: Option<mpsc::Sender<SyncRequest>>,
    pub events: Streaming<SyncEvent>,
    next_id: u64,
}

impl Session {
    pub async fn open(client: &mut PodServiceClient<Channel>) -> Self {
        let (requests, outbound) = mpsc::channel(1024);
        let events = client
            .sync_pods(ReceiverStream::new(outbound))
            .await
            .expect("sync_pods")
            .into_inner();
        Session {
            requests: Some(requests),
            events,
            next_id: 0,
        }
    }

    /// Sends an op; returns its id.
    pub async fn send(&mut self, op: sync_request::Op) -> u64 {
        self.next_id += 1;
        self.send_raw(SyncRequest {
            id: self.next_id,
            op: Some(op),
        })
        .await;
        self.next_id
    }

    /// Sends an op unless the session's stream is gone (its server died,
    /// say): its id, or `None`.
    pub async fn try_send(&mut self, op: sync_request::Op) -> Option<u64> {
        self.next_id += 1;
        let request = SyncRequest {
            id: self.next_id,
            op: Some(op),
        };
        self.requests.as_ref()?.send(request).await.ok()?;
        Some(self.next_id)
    }

    pub async fn send_raw(&mut self, request: SyncRequest) {
        self.requests
            .as_ref()
            .expect("session is half-closed")
            .send(request)
            .await
            .expect("send");
    }

    pub fn half_close(&mut self) {
        self.requests = None;
    }

    pub async fn next_event(&mut self) -> Option<sync_event::Event> {
        within("a sync event", self.events.message())
            .await
            .expect("sync stream failed")
            .map(|event| event.event.expect("empty event"))
    }

    pub async fn next_ack(&mut self) -> SyncAck {
        match self.next_event().await {
            Some(sync_event::Event::Ack(ack)) => ack,
            other => panic!("expected an ack, got {other:?}"),
        }
    }

    pub async fn next_change(&mut self) -> Pod {
        match self.next_event().await {
            Some(sync_event::Event::Change(pod)) => pod,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    /// Sends an op and returns its ack, skipping changes that come before it.
    pub async fn call(&mut self, op: sync_request::Op) -> SyncAck {
        let id = self.send(op).await;
        loop {
            match self.next_event().await {
                Some(sync_event::Event::Ack(ack)) => {
                    assert_eq!(ack.id, id, "acks come in order");
                    return ack;
                }
                Some(sync_event::Event::Change(_)) => {}
                None => panic!("stream ended before ack {id}"),
            }
        }
    }

    pub async fn apply(&mut self, pod: Pod) -> SyncAck {
        self.call(sync_request::Op::Apply(pod)).await
    }

    pub async fn delete(&mut self, namespace: &str, name: &str) -> SyncAck {
        self.call(sync_request::Op::Delete(PodRef {
            namespace: namespace.into(),
            name: name.into(),
        }))
        .await
    }
}

/// A connection for a client that will stop reading: a stream window of
/// 64 KiB (tonic's is 2 MiB), so that what the transport absorbs is small
/// next to what the test sends. Its connection window stays large: h2
/// treats many small unread DATA frames against a small connection window
/// as a flood.
pub async fn stalling_connection(url: String) -> PodServiceClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("url")
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(8 << 20)
        .connect()
        .await
        .expect("connect");
    PodServiceClient::new(channel)
}

/// Waits until the log of `namespace/pod` holds at least one line.
pub async fn await_log_line(client: &mut PodServiceClient<Channel>, namespace: &str, pod: &str) {
    within("a line in the log", async {
        loop {
            let mut logs = client
                .get_logs(pod_service::contract::GetLogsRequest {
                    namespace: namespace.into(),
                    pod: pod.into(),
                    tail_lines: 1,
                    ..Default::default()
                })
                .await
                .expect("get_logs")
                .into_inner();
            if logs.message().await.expect("read the log").is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// Every stored line of a pod's log.
pub async fn read_log(
    client: &mut PodServiceClient<Channel>,
    namespace: &str,
    pod: &str,
) -> Vec<String> {
    let mut stream = client
        .get_logs(pod_service::contract::GetLogsRequest {
            namespace: namespace.into(),
            pod: pod.into(),
            follow: false,
            tail_lines: 0,
            from_line: 0,
        })
        .await
        .expect("get_logs")
        .into_inner();
    let mut lines = Vec::new();
    while let Some(chunk) = within("log lines", stream.message())
        .await
        .expect("read the log")
    {
        lines.extend(chunk.lines);
    }
    lines
}

/// Resident memory of a process, in bytes (Linux: `VmRSS` in `/proc/PID/status`).
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}
