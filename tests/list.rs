//! ListPods (unary) end to end, and compatibility with clients generated
//! from the original tutorial's proto.
//!
//! These tests run on every store: memory, durable and etcd (a fresh
//! prefix of a real 3-member cluster). The embedded stores number changes
//! consecutively; where a test expects that, it says so
//! ([`Backend::assert_next`](common::Backend::assert_next)): etcd only
//! promises that versions strictly increase.

mod common;
#[path = "list/one_pod.rs"]
mod one_pod;
#[path = "list/paging.rs"]
mod paging;

use common::{Backend, TestServer, list_request, pod, within};
use pod_service::contract::LogChunk;
use pod_service::sample;
use pod_service::server::ServerConfig;
use tonic::Code;

/// The client a user of the original tutorial has: generated from
/// `tests/fixtures/tutorial_pod.proto` (fields 1-4, two RPCs) by `build.rs`.
mod tutorial {
    include!(concat!(env!("OUT_DIR"), "/tutorial/infra.rs"));
}

async fn lists_every_pod_sorted_with_the_store_version(backend: Backend) {
    let server = TestServer::with_sample(backend, ServerConfig::default()).await;
    let mut client = server.client().await;
    let list = client
        .list_pods(list_request("", 0))
        .await
        .unwrap()
        .into_inner();
    let mut expected: Vec<(String, String)> = sample::SAMPLE_PODS
        .iter()
        .map(|(ns, name, ..)| (ns.to_string(), name.to_string()))
        .collect();
    expected.sort();
    let got: Vec<(String, String)> = list
        .pods
        .iter()
        .map(|p| (p.namespace.clone(), p.name.clone()))
        .collect();
    assert_eq!(got, expected);
    let newest = list.pods.iter().map(|p| p.resource_version).max();
    assert!(
        Some(list.resource_version) >= newest,
        "the list reflects every pod"
    );
    if backend != Backend::Etcd {
        // (Embedded stores: one version per pod loaded.)
        assert_eq!(list.resource_version, sample::SAMPLE_PODS.len() as u64);
    }
    assert!(
        list.pods
            .iter()
            .all(|p| p.resource_version > 0 && !p.deleted)
    );
}

async fn lists_one_namespace(backend: Backend) {
    let server = TestServer::with_sample(backend, ServerConfig::default()).await;
    let mut client = server.client().await;
    let list = client
        .list_pods(list_request("production", 0))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = list.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["api", "postgres", "web"]);
    assert!(list.pods.iter().all(|p| p.namespace == "production"));

    let empty = client
        .list_pods(list_request("nothing-here", 0))
        .await
        .unwrap()
        .into_inner();
    assert!(empty.pods.is_empty());
}

async fn an_invalid_namespace_filter_is_refused(backend: Backend) {
    let server = TestServer::with_sample(backend, ServerConfig::default()).await;
    let mut client = server.client().await;
    for bad in ["Production", "prod/../etc", "a b", &"n".repeat(64)] {
        let status = client.list_pods(list_request(bad, 0)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
        assert!(
            status
                .message()
                .starts_with("invalid namespace: must be a DNS-1123 label"),
            "{}",
            status.message()
        );
    }
}

async fn a_tutorial_client_keeps_working(backend: Backend) {
    let server = TestServer::with_sample(backend, ServerConfig::default()).await;
    let mut client = tutorial::pod_service_client::PodServiceClient::connect(server.url())
        .await
        .unwrap();
    let list = client
        .list_pods(tutorial::ListPodsRequest {
            namespace: "production".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.pods.len(), 3);
    assert_eq!(
        list.pods[0],
        tutorial::Pod {
            name: "api".into(),
            namespace: "production".into(),
            status: "Running".into(),
            replicas: 3,
        }
    );

    // WatchPods{}: every pod, then live changes (the stream stays open).
    let mut watch = client
        .watch_pods(tutorial::ListPodsRequest::default())
        .await
        .unwrap()
        .into_inner();
    for _ in sample::SAMPLE_PODS {
        within("a pod", watch.message()).await.unwrap().unwrap();
    }
    server.apply("default", "late", "Running", 1).await;
    let late = within("a change", watch.message()).await.unwrap().unwrap();
    assert_eq!(late.name, "late");
}

/// Every call refuses a request message over the 4 MiB limit with
/// RESOURCE_EXHAUSTED (tonic's own code would be OUT_OF_RANGE), changes
/// nothing, and the server goes on.
async fn an_oversized_message_is_refused_and_the_server_goes_on(backend: Backend) {
    let server = TestServer::with_sample(backend, ServerConfig::default()).await;
    let mut client = server.client().await;
    let version_before = client
        .list_pods(list_request("", 0))
        .await
        .unwrap()
        .into_inner()
        .resource_version;
    // Read through the server: on NATS the lines are not in this process.
    let log_end_before = common::read_log(&mut client, "default", "hello-world")
        .await
        .len();
    let huge = "x".repeat(5 << 20); // 5 MiB > the 4 MiB limit
    let mut refused = Vec::new();
    refused.push((
        "ListPods",
        client.list_pods(list_request(&huge, 0)).await.map(drop),
    ));
    let watch = client.watch_pods(list_request(&huge, 0)).await;
    refused.push(("WatchPods", first_error(watch).await));
    let logs = client
        .get_logs(pod_service::contract::GetLogsRequest {
            namespace: huge.clone(),
            ..Default::default()
        })
        .await;
    refused.push(("GetLogs", first_error(logs).await));
    let chunk = LogChunk {
        namespace: "default".into(),
        pod: "hello-world".into(),
        lines: vec!["x".repeat(1000); 5_000],
        first_line: 0,
    };
    refused.push((
        "UploadLogs",
        client
            .upload_logs(tokio_stream::iter([chunk]))
            .await
            .map(drop),
    ));
    let op = pod_service::contract::SyncRequest {
        id: 1,
        op: Some(pod_service::contract::sync_request::Op::Apply(pod(
            "default", &huge, "Running", 1,
        ))),
    };
    let sync = client.sync_pods(tokio_stream::iter([op])).await;
    refused.push(("SyncPods", first_error(sync).await));

    for (call, result) in refused {
        let status = result.expect_err(call);
        assert_eq!(status.code(), Code::ResourceExhausted, "{call}: {status:?}");
        assert!(
            status
                .message()
                .contains("request message too large: found "),
            "{call}: {}",
            status.message()
        );
    }
    let after = client
        .list_pods(list_request("", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.resource_version, version_before, "nothing changed");
    let log_end = common::read_log(&mut client, "default", "hello-world")
        .await
        .len();
    assert_eq!(log_end, log_end_before, "no line stored");
}

/// The first error of a stream (or of opening it).
async fn first_error<T>(
    opened: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
) -> Result<(), tonic::Status> {
    let mut stream = opened?.into_inner();
    loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => return Ok(()),
            Err(status) => return Err(status),
        }
    }
}

/// Lists are encoded once per namespace and store version: a change must
/// show in the very next list, and an unchanged store gives the same list.
async fn a_list_after_a_change_shows_it(backend: Backend) {
    let server = TestServer::with_sample(backend, ServerConfig::default()).await;
    let mut client = server.client().await;
    let list = |client: &mut pod_service::contract::PodServiceClient<tonic::transport::Channel>| {
        let mut client = client.clone();
        async move {
            client
                .list_pods(list_request("dev", 0))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = list(&mut client).await;
    assert_eq!(list(&mut client).await, first);
    server.apply("dev", "new", "Running", 1).await;
    let second = list(&mut client).await;
    backend.assert_next(first.resource_version, second.resource_version);
    let names: Vec<&str> = second.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["new", "scratchpad"]);
    // A change elsewhere moves the version; the list follows it.
    server.apply("prod", "other", "Running", 1).await;
    let third = list(&mut client).await;
    backend.assert_next(second.resource_version, third.resource_version);
    assert_eq!(third.pods, second.pods);
}

common::on_every_store!(
    lists_every_pod_sorted_with_the_store_version,
    lists_one_namespace,
    an_invalid_namespace_filter_is_refused,
    a_tutorial_client_keeps_working,
    an_oversized_message_is_refused_and_the_server_goes_on,
    a_list_after_a_change_shows_it,
);

/// The oversized upload on the logs on NATS too.
mod nats {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_oversized_message_is_refused_and_the_server_goes_on() {
        super::an_oversized_message_is_refused_and_the_server_goes_on(super::common::Backend::Nats)
            .await
    }
}
