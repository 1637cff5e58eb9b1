//! A client generated from our contract as it was before bookmarks
//! (`tests/fixtures/pod_before_bookmarks.proto`) keeps working against this
//! server: every RPC, and a watch that never asked for bookmarks gets none,
//! even while the server sends them to others. (The tutorial's client is
//! run in `tests/list.rs`.)

mod common;

use std::time::Duration;

use common::{Backend, TestServer, within};
use pod_service::server::ServerConfig;
use pod_service::store::StoreConfig;

/// The client generated from the older contract.
mod before {
    include!(concat!(env!("OUT_DIR"), "/before_bookmarks/infra.rs"));
}

use before::pod_service_client::PodServiceClient;
use before::{
    GetLogsRequest, ListPodsRequest, LogChunk, Pod, SyncRequest, sync_event, sync_request,
};

async fn a_client_of_the_older_contract_uses_every_rpc(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        StoreConfig::default(),
        ServerConfig {
            bookmark_interval: Duration::from_millis(40),
            ..ServerConfig::default()
        },
    )
    .await;
    let mut client = PodServiceClient::connect(server.url()).await.unwrap();

    // SyncPods: apply a pod.
    let apply = SyncRequest {
        id: 1,
        op: Some(sync_request::Op::Apply(Pod {
            namespace: "old".into(),
            name: "web".into(),
            status: "Running".into(),
            replicas: 2,
            ..Pod::default()
        })),
    };
    let mut events = client
        .sync_pods(tokio_stream::iter([apply]))
        .await
        .unwrap()
        .into_inner();
    let Some(sync_event::Event::Ack(ack)) = events.message().await.unwrap().unwrap().event else {
        panic!("expected an ack");
    };
    assert_eq!((ack.id, ack.code), (1, 0), "{}", ack.message);
    let applied = ack.pod.unwrap();

    // ListPods.
    let list = client
        .list_pods(ListPodsRequest {
            namespace: "old".into(),
            resource_version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.pods, std::slice::from_ref(&applied));
    assert_eq!(list.resource_version, applied.resource_version);

    // WatchPods: the pod, then, after several bookmark intervals of quiet,
    // the next change and nothing else in between.
    let mut watch = client
        .watch_pods(ListPodsRequest {
            namespace: "old".into(),
            resource_version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        within("the pod", watch.message()).await.unwrap(),
        Some(applied)
    );
    // A watcher that asked for bookmarks shows that intervals went by.
    let mut bookmarked = pod_service::contract::PodServiceClient::connect(server.url())
        .await
        .unwrap()
        .watch_pods(pod_service::contract::ListPodsRequest {
            namespace: "old".into(),
            resource_version: list.resource_version,
            allow_bookmarks: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for _ in 0..3 {
        let pod = within("a bookmark", bookmarked.message())
            .await
            .unwrap()
            .unwrap();
        assert!(pod.bookmark);
    }
    let changed = server.apply("old", "web", "Pending", 3).await;
    let next = within("the change", watch.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            next.name.as_str(),
            next.status.as_str(),
            next.resource_version
        ),
        ("web", "Pending", changed.resource_version)
    );

    // UploadLogs and GetLogs.
    let chunk = LogChunk {
        namespace: "old".into(),
        pod: "web".into(),
        lines: vec!["one".into(), "two".into()],
    };
    let summary = client
        .upload_logs(tokio_stream::iter([chunk]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.lines, 2);
    let mut logs = client
        .get_logs(GetLogsRequest {
            namespace: "old".into(),
            pod: "web".into(),
            follow: false,
            tail_lines: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let chunk = logs.message().await.unwrap().unwrap();
    assert_eq!(chunk.lines, ["one", "two"]);
}

common::on_every_store!(a_client_of_the_older_contract_uses_every_rpc);
