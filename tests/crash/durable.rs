//! The durable store: what is acknowledged survives a restart, with the same
//! versions; limits hold across restarts; bad data directories are refused
//! and left untouched.
//!
//! These tests run on the embedded stores, which number changes
//! consecutively; where a test expects exact versions (`+ 1` between two
//! changes), it tests that property of the embedded stores: a cluster
//! store only promises that versions strictly increase.

use crate::common;

use std::path::Path;
use std::sync::Arc;

use common::{Session, TestServer, list_request, pod, within};
use pod_service::contract::{LogChunk, PodServiceClient};
use pod_service::domain::{PodKey, PodSelector};
use pod_service::server::ServerConfig;
use pod_service::store::line_cost;
use pod_service::store::{DataDirError, OpenError, Opened, Registry, Storage, StoreConfig};
use tonic::Code;
use tonic::transport::Channel;

/// Opens the durable registry in `dir`, as `pod-server --data-dir` does.
async fn try_open(dir: &Path, config: StoreConfig) -> Result<Opened, OpenError> {
    Registry::open(Storage::Durable(dir.to_owned()), config, Vec::new()).await
}

async fn open(dir: &Path, config: StoreConfig) -> Arc<Registry> {
    Arc::new(
        try_open(dir, config)
            .await
            .expect("open the store")
            .registry,
    )
}

async fn start(dir: &Path) -> TestServer {
    TestServer::start_on(
        open(dir, StoreConfig::default()).await,
        ServerConfig::default(),
    )
    .await
}

/// Stops a server and drops its store, which closes the database.
async fn shut(mut server: TestServer) {
    server.stop().await;
    drop(server);
}

async fn upload(
    client: &mut PodServiceClient<Channel>,
    namespace: &str,
    pod: &str,
    lines: Vec<String>,
) {
    let chunks: Vec<LogChunk> = lines
        .chunks(100)
        .map(|lines| LogChunk {
            namespace: namespace.into(),
            pod: pod.into(),
            lines: lines.to_vec(),
            first_line: 0,
        })
        .collect();
    client
        .upload_logs(tokio_stream::iter(chunks))
        .await
        .unwrap();
}

#[tokio::test]
async fn everything_acknowledged_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let mut client = server.client().await;
    let mut session = Session::open(&mut client).await;
    for i in 0..20 {
        assert_eq!(
            session
                .apply(pod("a", &format!("p{i}"), "Running", i))
                .await
                .code,
            0
        );
    }
    for i in 0..5 {
        assert_eq!(
            session
                .apply(pod("a", &format!("p{i}"), "Failed", 0))
                .await
                .code,
            0
        );
        assert_eq!(session.delete("a", &format!("p{}", 19 - i)).await.code, 0);
    }
    let lines: Vec<String> = (0..1_000).map(|i| format!("line {i} ✓")).collect();
    upload(&mut client, "a", "p0", lines.clone()).await;
    let before = client
        .list_pods(list_request("", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.resource_version, 30, "the last change was a delete");
    drop((session, client));
    shut(server).await;

    let server = start(dir.path()).await;
    let mut client = server.client().await;
    let after = client
        .list_pods(list_request("", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after, before, "same pods, same versions");
    assert_eq!(common::read_log(&mut client, "a", "p0").await, lines);
    // The history came back too: a watch resumes from before the restart.
    let mut watch = client
        .watch_pods(list_request("", 27))
        .await
        .unwrap()
        .into_inner();
    for version in 28..=30 {
        let change = within("a change", watch.message()).await.unwrap().unwrap();
        assert_eq!(change.resource_version, version);
    }
    // And the counter: the next change continues from it.
    let next = server.apply("a", "new", "Running", 1).await;
    assert_eq!(next.resource_version, 31);
}

#[tokio::test]
async fn deleted_pods_lose_their_logs_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    server.apply("a", "web", "Running", 1).await;
    let mut client = server.client().await;
    upload(&mut client, "a", "web", vec!["old".into()]).await;
    server.delete("a", "web").await;
    server.apply("a", "web", "Running", 1).await;
    upload(&mut client, "a", "web", vec!["new".into()]).await;
    drop(client);
    shut(server).await;

    let server = start(dir.path()).await;
    let mut client = server.client().await;
    assert_eq!(common::read_log(&mut client, "a", "web").await, ["new"]);
}

#[tokio::test]
async fn limits_hold_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        history: 5,
        log_bytes_per_pod: 2_000,
        ..StoreConfig::default()
    };
    let server = TestServer::start_on(
        open(dir.path(), config.clone()).await,
        ServerConfig::default(),
    )
    .await;
    for replicas in 0..20 {
        server.apply("a", "web", "Running", replicas).await;
    }
    let mut client = server.client().await;
    // 100 uploads of 10 lines of 10 bytes: 50,000 bytes counted with their
    // overhead, 25 times the limit.
    for upload_number in 0..100 {
        let lines = (0..10)
            .map(|i| format!("{upload_number:04}-{i:05}"))
            .collect();
        upload(&mut client, "a", "web", lines).await;
    }
    drop(client);
    shut(server).await;

    let server =
        TestServer::start_on(open(dir.path(), config).await, ServerConfig::default()).await;
    let mut client = server.client().await;
    let status = client.watch_pods(list_request("", 14)).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);
    assert!(client.watch_pods(list_request("", 15)).await.is_ok());

    let lines = common::read_log(&mut client, "a", "web").await;
    let bytes: usize = lines.iter().map(|line| line_cost(line)).sum();
    assert!((1_000..=2_000).contains(&bytes), "{bytes} bytes kept");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("0099-00009"),
        "the newest are kept"
    );
    // What is kept is a contiguous run of the newest lines, in order.
    let all: Vec<String> = (0..100)
        .flat_map(|u| (0..10).map(move |i| format!("{u:04}-{i:05}")))
        .collect();
    assert_eq!(lines, all[all.len() - lines.len()..]);
}

#[tokio::test]
async fn a_directory_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = try_open(dir.path(), StoreConfig::default()).await.unwrap();
    let second = try_open(dir.path(), StoreConfig::default()).await;
    assert!(
        matches!(second, Err(OpenError::DataDir(DataDirError::Locked(_)))),
        "{:?}",
        second.err()
    );
    let message = try_open(dir.path(), StoreConfig::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("in use by another running pod-server"),
        "{message}"
    );
    drop(first);
    assert!(try_open(dir.path(), StoreConfig::default()).await.is_ok());
}

/// Creates a store in `dir` and closes it, so that another program can
/// open its database. (Dropping a store closes it in the background.)
async fn create(dir: &Path) {
    let store = open(dir, StoreConfig::default()).await;
    store.close().await.unwrap();
}

/// Opens a bad directory: it must fail with `expected` in the message and
/// leave the database file byte for byte as it was.
async fn assert_refused_untouched(dir: &Path, expected: &str) {
    let file = dir.join(pod_service::store::DATABASE_FILE);
    let digest = |bytes: Vec<u8>| {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        (bytes.len(), hasher.finish())
    };
    let before = digest(std::fs::read(&file).unwrap());
    let err = try_open(dir, StoreConfig::default())
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains(expected), "{err}");
    assert!(err.to_string().contains("left untouched"), "{err}");
    assert_eq!(
        digest(std::fs::read(&file).unwrap()),
        before,
        "the file was changed"
    );
}

#[tokio::test]
async fn garbage_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let garbage: Vec<u8> = (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(dir.path().join(pod_service::store::DATABASE_FILE), garbage).unwrap();
    assert_refused_untouched(dir.path(), "is corrupt").await;
}

#[tokio::test]
async fn other_databases_and_versions_are_refused_untouched() {
    use redb::{Database, TableDefinition};
    let file = |dir: &Path| dir.join(pod_service::store::DATABASE_FILE);

    // A redb database of some other program.
    let foreign = tempfile::tempdir().unwrap();
    {
        let db = Database::create(file(foreign.path())).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(TableDefinition::<&str, u64>::new("accounts"))
            .unwrap()
            .insert("alice", 10)
            .unwrap();
        tx.commit().unwrap();
    }
    assert_refused_untouched(foreign.path(), "not a pod-server database").await;

    // A future layout of this one.
    let future = tempfile::tempdir().unwrap();
    create(future.path()).await;
    {
        let db = Database::create(file(future.path())).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(TableDefinition::<&str, u64>::new("meta"))
            .unwrap()
            .insert("schema", 99)
            .unwrap();
        tx.commit().unwrap();
    }
    let err = try_open(future.path(), StoreConfig::default())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, OpenError::DataDir(DataDirError::Incompatible(..))),
        "{err}"
    );
    assert_refused_untouched(future.path(), "schema version 99").await;

    // A record that does not decode.
    let damaged = tempfile::tempdir().unwrap();
    create(damaged.path()).await;
    {
        let db = Database::create(file(damaged.path())).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(TableDefinition::<(&str, &str), &[u8]>::new("pods"))
            .unwrap()
            .insert(("a", "web"), &b"\xff\xff\xff"[..])
            .unwrap();
        tx.commit().unwrap();
    }
    assert_refused_untouched(damaged.path(), "does not decode").await;
}

#[tokio::test]
async fn the_store_version_of_a_key_is_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), StoreConfig::default()).await;
    let pod = store
        .apply(pod_service::domain::ApplyPod {
            key: PodKey::new("a", "x"),
            status: "Running".into(),
            replicas: 1,
            expected_version: None,
        })
        .await
        .unwrap();
    store.delete(PodKey::new("a", "x")).await.unwrap();
    drop(store);
    let store = open(dir.path(), StoreConfig::default()).await;
    // The delete took the next version (this store numbers consecutively).
    assert_eq!(store.version(), pod.resource_version + 1);
    assert!(
        store
            .fresh(0)
            .await
            .unwrap()
            .list(&PodSelector::All)
            .pods
            .is_empty()
    );
}
