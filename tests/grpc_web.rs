//! gRPC-Web on the gRPC port, without a browser: raw gRPC-Web requests
//! over HTTP/1.1, as a browser's `fetch` sends them. Unary calls; a watch
//! whose messages arrive one by one while the stream is open; errors in
//! the trailer frame and trailers-only; the token check; a request whose
//! connection goes away freeing its watcher; `SyncPods` with its ops in one
//! request body, which is how the dashboard writes. Also the page's protobuf
//! codec against the compiled contract (the page as served, and its
//! JavaScript unit tests, are `tests/grpc_web/page.rs`).

mod common;
#[path = "grpc_web/page.rs"]
mod page;

use common::grpc_web::{Frames, call, call_with_body, framed, header};
use common::{Backend, TestServer};
use http_body_util::BodyExt;
use pod_service::contract::{
    ListPodsRequest, ListPodsResponse, Pod, PodRef, SyncEvent, SyncRequest, Token, bookmark,
    sync_event, sync_request,
};
use pod_service::domain::PodSelector;
use pod_service::sample;
use pod_service::server::ServerConfig;
use prost::Message;

common::on_every_store!(
    a_unary_call_over_http1,
    a_watch_streams_each_change_as_it_happens,
    errors_come_trailers_only_or_in_the_trailer_frame,
    a_sync_body_is_a_session_of_its_ops,
);

async fn a_unary_call_over_http1(backend: Backend) {
    let server = TestServer::with_sample(backend, ServerConfig::default()).await;
    let (head, body) = call(&server, "ListPods", &ListPodsRequest::default(), &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.version, http::Version::HTTP_11);
    assert!(header(&head, "content-type").is_some_and(|ct| ct.starts_with("application/grpc-web")));
    let mut frames = Frames::new(body);
    let list: ListPodsResponse = frames.message().await;
    assert_eq!(list.pods.len(), sample::SAMPLE_PODS.len());
    assert_eq!(list.resource_version, server.store.version());
    assert!(frames.trailers().await.contains("grpc-status:0"));
    assert!(frames.next().await.is_none());
}

async fn a_watch_streams_each_change_as_it_happens(backend: Backend) {
    let server = TestServer::with_sample(backend, ServerConfig::default()).await;
    let request = ListPodsRequest {
        namespace: "production".into(),
        allow_bookmarks: true,
        ..ListPodsRequest::default()
    };
    let (head, body) = call(&server, "WatchPods", &request, &[]).await;
    assert_eq!(head.status, 200);
    let mut frames = Frames::new(body);
    for name in ["api", "postgres", "web"] {
        let pod: Pod = frames.message().await;
        assert_eq!(pod.name, name);
    }
    let snapshot_end: Pod = frames.message().await;
    assert_eq!(snapshot_end, bookmark(server.store.version()));
    // The stream is open: each change arrives as its own frame, now.
    for replicas in [7, 8] {
        let change = server.apply("production", "web", "Running", replicas).await;
        let pod: Pod = frames.message().await;
        assert_eq!(pod, *change);
    }
    // A browser tab that closes drops its connection: the watcher goes.
    assert_eq!(server.store.watcher_count(), 1);
    drop(frames);
    server.await_watchers(0).await;
}

async fn errors_come_trailers_only_or_in_the_trailer_frame(backend: Backend) {
    let mut server = TestServer::with_sample(backend, ServerConfig::default()).await;
    // Refused before any message: the status is in the headers, the body empty.
    let bad = ListPodsRequest {
        namespace: "Bad".into(),
        ..ListPodsRequest::default()
    };
    let (head, body) = call(&server, "ListPods", &bad, &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(header(&head, "grpc-status"), Some("3"), "{head:?}");
    // Percent-encoded, as gRPC requires of grpc-message.
    let message = header(&head, "grpc-message").unwrap_or_default();
    let message = percent_encoding::percent_decode_str(message).decode_utf8_lossy();
    assert!(
        message.starts_with("invalid namespace: must be a DNS-1123 label"),
        "{message}"
    );
    assert!(body.collect().await.unwrap().to_bytes().is_empty());

    // Ended after messages: the status is in the trailer frame.
    let watch = ListPodsRequest {
        namespace: "dev".into(),
        ..ListPodsRequest::default()
    };
    let (_, body) = call(&server, "WatchPods", &watch, &[]).await;
    let mut frames = Frames::new(body);
    let pod: Pod = frames.message().await;
    assert_eq!(pod.name, "scratchpad");
    server.stop().await;
    let trailers = frames.trailers().await;
    assert!(trailers.contains("grpc-status:14"), "{trailers}");
    assert!(trailers.contains("last-resource-version:"), "{trailers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_check_covers_grpc_web() {
    let token = Token::new("t0ken-for-tests").unwrap();
    let config = ServerConfig {
        token: Some(token.clone()),
        ..ServerConfig::default()
    };
    let server = TestServer::with_sample(Backend::Memory, config).await;
    let request = ListPodsRequest::default();
    let (head, _) = call(&server, "ListPods", &request, &[]).await;
    assert_eq!(header(&head, "grpc-status"), Some("16"), "{head:?}");
    let wrong = [("authorization", "Bearer wrong")];
    let (head, _) = call(&server, "ListPods", &request, &wrong).await;
    assert_eq!(header(&head, "grpc-status"), Some("16"), "{head:?}");
    let right = token.header_value();
    let (head, body) = call(&server, "ListPods", &request, &[("authorization", &right)]).await;
    assert_eq!(header(&head, "grpc-status"), None, "{head:?}");
    let list: ListPodsResponse = Frames::new(body).message().await;
    assert_eq!(list.pods.len(), sample::SAMPLE_PODS.len());
}

/// A browser cannot stream a request, but it can send a whole body: a
/// SyncPods call whose body carries its ops, and whose end is the
/// half-close, is a session that applies them in order, acknowledges each,
/// and ends OK. This is how the dashboard applies and deletes.
async fn a_sync_body_is_a_session_of_its_ops(backend: Backend) {
    let server = TestServer::with_sample(backend, ServerConfig::default()).await;
    let op = |id, op| SyncRequest { id, op: Some(op) };
    let apply = op(
        1,
        sync_request::Op::Apply(common::pod("dev", "from-a-page", "Pending", 2)),
    );
    let refused = op(
        2,
        sync_request::Op::Apply(common::pod("dev", "Not_A_Name", "Running", 1)),
    );
    let delete = op(
        3,
        sync_request::Op::Delete(PodRef {
            namespace: "dev".into(),
            name: "scratchpad".into(),
        }),
    );
    let body = framed(&[&apply, &refused, &delete]);
    let (head, body) = call_with_body(&server, "SyncPods", body, &[]).await;
    assert_eq!(head.status, 200);
    let mut frames = Frames::new(body);
    let mut acks = Vec::new();
    for _ in 0..3 {
        match frames.message::<SyncEvent>().await.event {
            Some(sync_event::Event::Ack(ack)) => acks.push(ack),
            other => panic!("expected an ack, got {other:?}"),
        }
    }
    assert_eq!(acks.iter().map(|ack| ack.id).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(
        (acks[0].code, acks[1].code, acks[2].code),
        (0, 3, 0),
        "{acks:?}"
    );
    assert!(
        acks[1]
            .message
            .starts_with("invalid apply.name: must be a DNS-1123 label"),
        "{}",
        acks[1].message
    );
    let trailers = frames.trailers().await;
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    assert!(frames.next().await.is_none());
    // Applied once each, in order; the refused op changed nothing.
    let created = acks[0].pod.as_ref().expect("the stored pod");
    let names: Vec<_> = server
        .store
        .fresh(0)
        .await
        .unwrap()
        .list(&PodSelector::Namespace("dev".into()))
        .pods
        .iter()
        .map(|pod| pod.name.clone())
        .collect();
    assert_eq!(names, ["from-a-page"]);
    let tombstone = acks[2].pod.as_ref().expect("the tombstone");
    assert!(tombstone.deleted, "{tombstone:?}");
    backend.assert_next(created.resource_version, tombstone.resource_version);
    assert_eq!(server.store.version(), tombstone.resource_version);
}

/// The page encodes and decodes messages from its own table of field
/// numbers and types (`protobuf.js`, between `// schema:begin` and
/// `// schema:end`). Every message it declares must be the contract's, with
/// every field under the same number and type, or the page would misread
/// what the server sends.
#[test]
fn the_pages_codec_matches_the_contract() {
    use prost_types::field_descriptor_proto::{Label, Type};

    let descriptors =
        prost_types::FileDescriptorSet::decode(pod_service::contract::FILE_DESCRIPTOR_SET).unwrap();
    let contract: std::collections::BTreeMap<String, Vec<(String, i32, String)>> = descriptors
        .file
        .iter()
        .flat_map(|file| &file.message_type)
        .map(|message| {
            let fields = message.field.iter().map(|field| {
                let scalar = match field.r#type() {
                    Type::String => "string".to_owned(),
                    Type::Uint64 => "uint64".to_owned(),
                    Type::Uint32 => "uint32".to_owned(),
                    Type::Int32 => "int32".to_owned(),
                    Type::Bool => "bool".to_owned(),
                    Type::Message => field.type_name().rsplit('.').next().unwrap().to_owned(),
                    other => panic!("the page's codec has no {other:?}: add it"),
                };
                let kind = match field.label() {
                    Label::Repeated => format!("repeated {scalar}"),
                    _ => scalar,
                };
                (field.name().to_owned(), field.number(), kind)
            });
            (message.name().to_owned(), fields.collect())
        })
        .collect();

    let source = pod_service::server::dashboard::PROTOBUF_JS;
    let schema = source
        .split_once("// schema:begin")
        .and_then(|(_, rest)| rest.split_once("// schema:end"))
        .map(|(schema, _)| schema)
        .expect("protobuf.js marks its schema");
    let mut page: std::collections::BTreeMap<String, Vec<(String, i32, String)>> =
        Default::default();
    let mut current = None;
    for line in schema.lines().map(str::trim) {
        if let Some(message) = line.strip_suffix(": {") {
            current = Some(message.to_owned());
            page.entry(message.to_owned()).or_default();
        } else if let Some((name, rest)) = line.split_once(": [") {
            // `name: [1, "string"],`
            let (number, kind) = rest
                .trim_end_matches(',')
                .trim_end_matches(']')
                .split_once(", ")
                .unwrap_or_else(|| panic!("cannot read {line:?}"));
            let message = current
                .clone()
                .unwrap_or_else(|| panic!("{line:?} is outside a message"));
            page.get_mut(&message).unwrap().push((
                name.to_owned(),
                number
                    .parse()
                    .unwrap_or_else(|_| panic!("field number in {line:?}")),
                kind.trim_matches('"').to_owned(),
            ));
        } else if line.starts_with('}') {
            current = None;
        }
    }
    assert!(
        page.contains_key("Pod") && page.contains_key("SyncEvent"),
        "{page:?}"
    );
    for (message, mut fields) in page {
        let mut expected = contract
            .get(&message)
            .unwrap_or_else(|| panic!("protobuf.js declares {message}, which the contract has not"))
            .clone();
        fields.sort();
        expected.sort();
        assert_eq!(fields, expected, "the fields of {message} in protobuf.js");
    }
}
