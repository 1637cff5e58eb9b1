//! gRPC-Web on the gRPC port, without a browser: raw gRPC-Web requests
//! over HTTP/1.1, as a browser's `fetch` sends them. Unary calls; a watch
//! whose messages arrive one by one while the stream is open; errors in
//! the trailer frame and trailers-only; the token check; a request whose
//! connection goes away freeing its watcher.

mod common;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{Backend, TestServer, within};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use pod_service::contract::{ListPodsRequest, ListPodsResponse, POD_SERVICE, Pod, Token, bookmark};
use pod_service::sample;
use pod_service::server::ServerConfig;
use pod_service::store::StoreConfig;
use prost::Message;
use tokio::net::TcpStream;

common::on_both_stores!(
    a_unary_call_over_http1,
    a_watch_streams_each_change_as_it_happens,
    errors_come_trailers_only_or_in_the_trailer_frame,
);

const CONTENT_TYPE: &str = "application/grpc-web+proto";

/// One gRPC-Web call on a fresh HTTP/1.1 connection, as a browser makes it.
/// Returns the response head and its body, still streaming.
async fn call(
    server: &TestServer,
    method: &str,
    request: &impl Message,
    headers: &[(&str, &str)],
) -> (http::response::Parts, Incoming) {
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("an HTTP/1.1 connection");
    tokio::spawn(connection);
    let mut body = BytesMut::new();
    let message = request.encode_to_vec();
    body.put_u8(0);
    body.put_u32(message.len() as u32);
    body.put_slice(&message);
    let mut builder = http::Request::post(format!("/{POD_SERVICE}/{method}"))
        .header("host", server.addr.to_string())
        .header("content-type", CONTENT_TYPE)
        .header("x-grpc-web", "1");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(body.freeze())).unwrap();
    let response = within("the response head", sender.send_request(request))
        .await
        .expect("a response");
    response.into_parts()
}

/// One frame of a gRPC-Web response body.
#[derive(Debug)]
enum Frame {
    Message(Bytes),
    /// The trailers, as `name: value` lines.
    Trailers(String),
}

/// Reads a gRPC-Web body frame by frame, as the chunks arrive.
struct Frames {
    body: Incoming,
    buffer: BytesMut,
}

impl Frames {
    fn new(body: Incoming) -> Self {
        Frames {
            body,
            buffer: BytesMut::new(),
        }
    }

    /// The next whole frame; `None` at the end of the body.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if self.buffer.len() >= 5 {
                let len = u32::from_be_bytes(self.buffer[1..5].try_into().unwrap()) as usize;
                if self.buffer.len() >= 5 + len {
                    let flag = self.buffer.get_u8();
                    self.buffer.advance(4);
                    let payload = self.buffer.split_to(len).freeze();
                    return Some(if flag & 0x80 != 0 {
                        Frame::Trailers(String::from_utf8(payload.to_vec()).unwrap())
                    } else {
                        Frame::Message(payload)
                    });
                }
            }
            let frame = within("a chunk of the body", self.body.frame()).await?;
            if let Ok(data) = frame.expect("the body").into_data() {
                self.buffer.extend_from_slice(&data);
            }
        }
    }

    async fn message<M: Message + Default>(&mut self) -> M {
        match self.next().await {
            Some(Frame::Message(bytes)) => M::decode(bytes).expect("a message"),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    async fn trailers(&mut self) -> String {
        match self.next().await {
            Some(Frame::Trailers(trailers)) => trailers,
            other => panic!("expected the trailers, got {other:?}"),
        }
    }
}

async fn sample_server(backend: Backend, config: ServerConfig) -> TestServer {
    let server = TestServer::start_with(backend, StoreConfig::default(), config).await;
    sample::load(server.store.as_ref(), sample::sample())
        .await
        .unwrap();
    server
}

fn header<'a>(head: &'a http::response::Parts, name: &str) -> Option<&'a str> {
    head.headers.get(name).and_then(|value| value.to_str().ok())
}

async fn a_unary_call_over_http1(backend: Backend) {
    let server = sample_server(backend, ServerConfig::default()).await;
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
    let server = sample_server(backend, ServerConfig::default()).await;
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
    let mut server = sample_server(backend, ServerConfig::default()).await;
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
    let server = sample_server(Backend::Memory, config).await;
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
