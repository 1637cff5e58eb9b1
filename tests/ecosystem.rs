//! What gRPC tooling expects: reflection, health, TLS, token auth, and a
//! graceful shutdown.

mod common;

use common::{Backend, Session, TestServer, list_request, pod, within};
use pod_service::client::{self, ClientConfig};
use pod_service::contract::{
    GetLogsRequest, LogChunk, POD_SERVICE, PodServiceClient, Token, sync_request,
};
use pod_service::server::ServerConfig;
use pod_service::store::StoreConfig;
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

async fn channel(url: String) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn list_services_v1(url: String) -> Vec<String> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut client = ServerReflectionClient::new(channel(url).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

#[tokio::test]
async fn reflection_lists_and_describes_the_service() {
    let server = TestServer::start(Backend::Memory).await;
    let services = list_services_v1(server.url()).await;
    for expected in ["infra.PodService", "grpc.health.v1.Health"] {
        assert!(services.iter().any(|s| s == expected), "{services:?}");
    }

    // v1alpha too, and a describe of the service by symbol.
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    let mut client = ServerReflectionClient::new(channel(server.url()).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "infra.PodService".into(),
        )),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
        panic!("expected a file descriptor");
    };
    use prost::Message;
    let file = prost_types::FileDescriptorProto::decode(files.file_descriptor_proto[0].as_slice())
        .unwrap();
    assert_eq!(file.package(), "infra");
    let methods: Vec<&str> = file.service[0].method.iter().map(|m| m.name()).collect();
    assert_eq!(
        methods,
        ["ListPods", "WatchPods", "UploadLogs", "GetLogs", "SyncPods"]
    );
}

#[tokio::test]
async fn health_is_serving_then_not_serving_during_shutdown() {
    let mut server = TestServer::start(Backend::Memory).await;
    let mut health = HealthClient::new(channel(server.url()).await);
    for service in ["", "infra.PodService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "infra.PodService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = within("a health status", watch.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    // The watch sees NOT_SERVING, then ends, and does not hold shutdown up.
    let stop = tokio::spawn(async move { server.stop().await });
    let next = within("NOT_SERVING", watch.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    assert!(
        within("the end of the watch", watch.message())
            .await
            .unwrap()
            .is_none()
    );
    within("the server to stop", stop).await.unwrap();
}

fn with_token(token: &str) -> ServerConfig {
    ServerConfig {
        token: Some(Token::new(token).unwrap()),
        ..ServerConfig::default()
    }
}

/// Calls `/PodService/method` with one empty message, as a stream both
/// ways (which every kind of method accepts on the wire), and returns the
/// status it was refused with, if any.
async fn call_raw(url: String, method: &str, token: Option<&str>) -> Option<Code> {
    use tonic::codegen::http;
    let mut grpc = tonic::client::Grpc::new(channel(url).await);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(tokio_stream::iter([()]));
    if let Some(token) = token {
        let header = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", header);
    }
    let path = http::uri::PathAndQuery::try_from(format!("/{POD_SERVICE}/{method}")).unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match grpc.streaming(request, path, codec).await {
        Ok(_) => None,
        Err(status) => Some(status.code()),
    }
}

/// Every method of the service, found in the compiled descriptor (so that
/// a new RPC is covered without a change here), is refused without the
/// token and with a wrong one, and passes the check with the right one.
#[tokio::test]
async fn with_a_token_every_method_of_the_descriptor_is_guarded() {
    let server = TestServer::start_with(
        Backend::Memory,
        StoreConfig::default(),
        with_token("s3cret"),
    )
    .await;
    let methods = common::pod_service_methods();
    // The enumeration finds the service: its first and last RPCs at least.
    for known in ["ListPods", "SyncPods"] {
        assert!(methods.iter().any(|m| m == known), "{methods:?}");
    }
    for method in &methods {
        for token in [None, Some("wrong")] {
            assert_eq!(
                call_raw(server.url(), method, token).await,
                Some(Code::Unauthenticated),
                "{method} with token {token:?}"
            );
        }
        let with_token = call_raw(server.url(), method, Some("s3cret")).await;
        assert_ne!(with_token, Some(Code::Unauthenticated), "{method}");
    }
    assert_eq!(server.store.version(), 0, "nothing was changed");
}

#[tokio::test]
async fn with_a_token_every_rpc_needs_it() {
    let server = TestServer::start_with(
        Backend::Memory,
        StoreConfig::default(),
        with_token("s3cret"),
    )
    .await;
    server.apply("default", "web", "Running", 1).await;
    let before = server.store.version();

    for token in [None, Some("wrong")] {
        let mut config = ClientConfig::new(server.url());
        config.token = token.map(|token| Token::new(token).unwrap());
        let mut client = client::connect(&config).await.unwrap();
        let refused = |status: tonic::Status| {
            assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
            assert!(
                status.message().contains("requires a token"),
                "{}",
                status.message()
            );
        };
        refused(client.list_pods(list_request("", 0)).await.unwrap_err());
        refused(client.watch_pods(list_request("", 0)).await.unwrap_err());
        let chunk = LogChunk {
            namespace: "default".into(),
            pod: "web".into(),
            lines: vec!["sneaky".into()],
            first_line: 0,
        };
        refused(
            client
                .upload_logs(tokio_stream::iter([chunk]))
                .await
                .unwrap_err(),
        );
        let request = GetLogsRequest {
            namespace: "default".into(),
            pod: "web".into(),
            ..Default::default()
        };
        refused(client.get_logs(request).await.unwrap_err());
        let op = pod_service::contract::SyncRequest {
            id: 1,
            op: Some(sync_request::Op::Apply(pod(
                "default", "evil", "Running", 1,
            ))),
        };
        refused(
            client
                .sync_pods(tokio_stream::iter([op]))
                .await
                .unwrap_err(),
        );
    }
    assert_eq!(server.store.version(), before, "nothing was written");
    let log = server.pod_log("default", "web").await.unwrap();
    assert_eq!(log.end_cursor(), 0, "no line was stored");

    // Health stays open without a token.
    let mut health = HealthClient::new(channel(server.url()).await);
    assert!(health.check(HealthCheckRequest::default()).await.is_ok());

    // With the token, everything works.
    let mut config = ClientConfig::new(server.url());
    config.token = Some(Token::new("s3cret").unwrap());
    exercise_every_rpc(client::connect(&config).await.unwrap()).await;
}

/// Calls every RPC once and checks the answers.
async fn exercise_every_rpc(mut client: client::Client) {
    let list = client
        .list_pods(list_request("", 0))
        .await
        .unwrap()
        .into_inner();
    let mut watch = client
        .watch_pods(list_request("", list.resource_version))
        .await
        .unwrap()
        .into_inner();
    let ops = [sync_request::Op::Apply(pod(
        "default", "tour", "Running", 2,
    ))];
    let requests: Vec<_> = ops
        .into_iter()
        .enumerate()
        .map(|(i, op)| pod_service::contract::SyncRequest {
            id: i as u64 + 1,
            op: Some(op),
        })
        .collect();
    let mut events = client
        .sync_pods(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let ack = events.message().await.unwrap().unwrap();
    assert!(
        matches!(ack.event, Some(pod_service::contract::sync_event::Event::Ack(ref a)) if a.code == 0)
    );
    let change = within("the change", watch.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(change.name, "tour");

    let chunk = LogChunk {
        namespace: "default".into(),
        pod: "tour".into(),
        lines: vec!["one".into(), "two".into()],
        first_line: 0,
    };
    let summary = client
        .upload_logs(tokio_stream::iter([chunk]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.lines, 2);
    let mut logs = client
        .get_logs(GetLogsRequest {
            namespace: "default".into(),
            pod: "tour".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let chunk = logs.message().await.unwrap().unwrap();
    assert_eq!(chunk.lines, ["one", "two"]);
}

#[tokio::test]
async fn every_rpc_works_over_tls() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let config = ServerConfig {
        tls: Some(tonic::transport::Identity::from_pem(
            cert.cert.pem(),
            cert.signing_key.serialize_pem(),
        )),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(Backend::Memory, StoreConfig::default(), config).await;
    let https = format!("https://{}", server.addr);
    let config = ClientConfig {
        ca: Some(ca.clone()),
        ..ClientConfig::new(https.clone())
    };
    exercise_every_rpc(client::connect(&config).await.unwrap()).await;

    // A plaintext client gets nowhere; neither does TLS without the CA.
    let mut plain = PodServiceClient::connect(server.url()).await.unwrap();
    assert!(plain.list_pods(list_request("", 0)).await.is_err());
    let message = client::connect(&ClientConfig::new(https))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("--ca"), "{message}");
}

/// Reads a stream to its end and returns the status it ended with.
async fn end_status<T>(stream: &mut tonic::Streaming<T>) -> tonic::Status {
    loop {
        match within("the end of a stream", stream.message()).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without a status"),
            Err(status) => return status,
        }
    }
}

/// Ctrl-C (SIGINT) with 100 watches, a follow and a subscribed session open, and an
/// upload half sent: the upload finishes, the streams end with UNAVAILABLE,
/// and the server exits 0 without waiting out its grace period (60 s, longer
/// than the test waits for anything).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_with_open_streams_exits_cleanly() {
    use common::process::ServerProcess;
    let data = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data.path(), "127.0.0.1:0", &["--grace", "60"]).await;
    let url = server.url();
    let mut client = PodServiceClient::connect(url.clone()).await.unwrap();
    Session::open(&mut client)
        .await
        .apply(pod("default", "web", "Running", 1))
        .await;

    let mut streams = Vec::new();
    for _ in 0..100 {
        let mut stream = client
            .watch_pods(list_request("", 0))
            .await
            .unwrap()
            .into_inner();
        within("the snapshot", stream.message())
            .await
            .unwrap()
            .unwrap();
        streams.push(stream);
    }
    let mut follow = client
        .get_logs(GetLogsRequest {
            namespace: "default".into(),
            pod: "web".into(),
            follow: true,
            tail_lines: 0,
            from_line: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut session = Session::open(&mut client).await;
    assert_eq!(
        session
            .call(sync_request::Op::Subscribe(Default::default()))
            .await
            .code,
        0
    );

    // An upload whose first chunk is in, the rest to come after Ctrl-C.
    let (chunks, outbound) = tokio::sync::mpsc::channel(4);
    let chunk = |i: u32| LogChunk {
        namespace: "default".into(),
        pod: "web".into(),
        lines: vec![format!("line {i}")],
        first_line: 0,
    };
    chunks.send(chunk(0)).await.unwrap();
    let mut uploader = client.clone();
    let upload = tokio::spawn(async move {
        uploader
            .upload_logs(tokio_stream::wrappers::ReceiverStream::new(outbound))
            .await
    });
    // The first line is in the log once the server has read the chunk.
    let mut reader = PodServiceClient::connect(url.clone()).await.unwrap();
    common::await_log_line(&mut reader, "default", "web").await;

    let pid = server.child.id().unwrap().to_string();
    let kill = tokio::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());

    for stream in &mut streams {
        let status = within("a watch to end", stream.message())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    // Whatever they still had to deliver, they end with UNAVAILABLE.
    assert_eq!(end_status(&mut follow).await.code(), Code::Unavailable);
    assert_eq!(
        end_status(&mut session.events).await.code(),
        Code::Unavailable
    );

    // The upload in flight may finish.
    chunks.send(chunk(1)).await.unwrap();
    drop(chunks);
    let summary = within("the upload", upload)
        .await
        .unwrap()
        .unwrap()
        .into_inner();
    assert_eq!((summary.chunks, summary.lines), (2, 2));

    let status = within("the server to exit", server.child.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}
