//! A client generated from our contract as it was before bookmarks
//! (`tests/fixtures/pod_before_bookmarks.proto`) keeps working against this
//! server: every RPC, and a watch that never asked for bookmarks gets none,
//! even while the server sends them to others. A client generated from the
//! contract just before `ListPodsRequest.name`
//! (`tests/fixtures/pod_before_name.proto`) gets the same answers as a new
//! client that leaves the name empty, byte for byte, beside a new client
//! that reads one pod by name. (The tutorial's client is run in
//! `tests/list.rs`.)

mod common;
#[path = "compat/interop.rs"]
mod interop;

use std::time::Duration;

use common::{Backend, TestServer, within};
use pod_service::server::ServerConfig;
use pod_service::store::StoreConfig;

/// The client generated from the older contract.
mod before {
    include!(concat!(env!("OUT_DIR"), "/before_bookmarks/infra.rs"));
}

/// The client generated from the contract just before `ListPodsRequest.name`.
mod before_name {
    include!(concat!(env!("OUT_DIR"), "/before_name/infra.rs"));
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

/// The answers a client of the contract before `name` gets, for a
/// namespace holding a pod of the name others read one by one: the whole
/// list, its pages, and a watch with its bookmark, then a change of
/// another pod of the namespace. Nothing is narrowed by a field it never
/// sends, and a new client that leaves `name` empty gets the same bytes.
async fn a_client_from_before_names_gets_the_same_answers(backend: Backend) {
    use before_name::pod_service_client::PodServiceClient as OldClient;
    use pod_service::contract::{ListPodsRequest as NewRequest, PodServiceClient as NewClient};
    use prost::Message;

    let server = TestServer::start(backend).await;
    for (namespace, name) in [("old", "api"), ("old", "web"), ("old", "z"), ("new", "web")] {
        server.apply(namespace, name, "Running", 1).await;
    }
    let mut old = OldClient::connect(server.url()).await.unwrap();
    let mut new = NewClient::connect(server.url()).await.unwrap();
    let old_request = |limit, continue_token: &str| before_name::ListPodsRequest {
        namespace: "old".into(),
        limit,
        continue_token: continue_token.into(),
        ..Default::default()
    };
    let names = |pods: &[before_name::Pod]| -> Vec<String> {
        pods.iter().map(|pod| pod.name.clone()).collect()
    };

    // The whole list, and the same bytes for a new client without a name.
    let whole = old
        .list_pods(old_request(0, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&whole.pods), ["api", "web", "z"]);
    let same = new
        .list_pods(NewRequest {
            namespace: "old".into(),
            ..NewRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(same.encode_to_vec(), whole.encode_to_vec());

    // Pages, continued with their token.
    let first = old
        .list_pods(old_request(2, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&first.pods), ["api", "web"]);
    let second = old
        .list_pods(old_request(2, &first.continue_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&second.pods), ["z"]);
    assert!(second.continue_token.is_empty());
    assert_eq!(second.resource_version, first.resource_version);

    // A watch of the namespace with bookmarks: every pod, the bookmark at
    // the list's version, then a change of a pod other than `web`.
    let mut watch = old
        .watch_pods(before_name::ListPodsRequest {
            namespace: "old".into(),
            allow_bookmarks: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for name in ["api", "web", "z"] {
        let pod = within("a pod", watch.message()).await.unwrap().unwrap();
        assert_eq!(pod.name, name);
    }
    let end = within("the bookmark", watch.message())
        .await
        .unwrap()
        .unwrap();
    assert!(end.bookmark);
    assert!(end.resource_version >= whole.resource_version);
    let changed = server.apply("old", "z", "Pending", 2).await;
    let mut next = within("the change", watch.message())
        .await
        .unwrap()
        .unwrap();
    while next.bookmark {
        next = within("the change", watch.message())
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        (next.name.as_str(), next.resource_version),
        ("z", changed.resource_version)
    );

    // Beside it, a new client reads one pod by name.
    let one = new
        .list_pods(NewRequest {
            namespace: "old".into(),
            name: "web".into(),
            ..NewRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.pods.len(), 1);
    assert_eq!(
        (one.pods[0].namespace.as_str(), one.pods[0].name.as_str()),
        ("old", "web")
    );
    assert!(one.resource_version >= changed.resource_version);
}

common::on_every_store!(
    a_client_of_the_older_contract_uses_every_rpc,
    a_client_from_before_names_gets_the_same_answers,
);
