//! gRPC-Web on the gRPC port, without a browser: raw gRPC-Web requests
//! over HTTP/1.1, as a browser's `fetch` sends them. Unary calls; a watch
//! whose messages arrive one by one while the stream is open; errors in
//! the trailer frame and trailers-only; the token check; a request whose
//! connection goes away freeing its watcher; `SyncPods` with its ops in one
//! request body, which is how the dashboard writes. Also the page itself:
//! its files and headers, the refusal of foreign hosts, other origins and
//! preflights, and its protobuf codec against the compiled contract.

mod common;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{Backend, TestServer, within};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use pod_service::contract::{
    ListPodsRequest, ListPodsResponse, POD_SERVICE, Pod, PodRef, SyncEvent, SyncRequest, Token,
    bookmark, sync_event, sync_request,
};
use pod_service::sample;
use pod_service::server::ServerConfig;
use prost::Message;
use tokio::net::TcpStream;

common::on_every_store!(
    a_unary_call_over_http1,
    a_watch_streams_each_change_as_it_happens,
    errors_come_trailers_only_or_in_the_trailer_frame,
    a_sync_body_is_a_session_of_its_ops,
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
    call_with_body(server, method, framed(&[request as &dyn Encode]), headers).await
}

/// A call whose request body is `body`: framed messages, then the end of
/// the body, which is the client's half-close.
async fn call_with_body(
    server: &TestServer,
    method: &str,
    body: Bytes,
    headers: &[(&str, &str)],
) -> (http::response::Parts, Incoming) {
    let builder = http::Request::post(format!("/{POD_SERVICE}/{method}"))
        .header("content-type", CONTENT_TYPE)
        .header("x-grpc-web", "1");
    send(
        server,
        with_headers(server, builder, headers)
            .body(Full::new(body))
            .unwrap(),
    )
    .await
}

/// Messages as a gRPC-Web request body: a frame each.
fn framed(messages: &[&dyn Encode]) -> Bytes {
    let mut body = BytesMut::new();
    for message in messages {
        let message = message.encoded();
        body.put_u8(0);
        body.put_u32(message.len() as u32);
        body.put_slice(&message);
    }
    body.freeze()
}

/// `Message::encode_to_vec` for a list of messages of different types.
trait Encode {
    fn encoded(&self) -> Vec<u8>;
}

impl<M: Message> Encode for M {
    fn encoded(&self) -> Vec<u8> {
        self.encode_to_vec()
    }
}

/// Adds `headers`, and the `Host` a browser sends unless they name one.
fn with_headers(
    server: &TestServer,
    mut builder: http::request::Builder,
    headers: &[(&str, &str)],
) -> http::request::Builder {
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        builder = builder.header("host", server.addr.to_string());
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
}

/// Sends one request on a fresh HTTP/1.1 connection.
async fn send(
    server: &TestServer,
    request: http::Request<Full<Bytes>>,
) -> (http::response::Parts, Incoming) {
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("an HTTP/1.1 connection");
    tokio::spawn(connection);
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

fn header<'a>(head: &'a http::response::Parts, name: &str) -> Option<&'a str> {
    head.headers.get(name).and_then(|value| value.to_str().ok())
}

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
        .list(Some("dev"))
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

/// A plain `GET` request on a fresh HTTP/1.1 connection.
async fn get(
    server: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
) -> (http::response::Parts, Bytes) {
    let request = with_headers(server, http::Request::get(path), headers);
    let (head, body) = send(server, request.body(Full::new(Bytes::new())).unwrap()).await;
    (head, body.collect().await.expect("the body").to_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_with_its_security_headers() {
    let server = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let (head, page) = get(&server, "/?namespace=dev&pod=scratchpad", &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        header(&head, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        header(&head, "content-security-policy"),
        Some(pod_service::server::dashboard::CONTENT_SECURITY_POLICY)
    );
    assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&head, "x-frame-options"), Some("DENY"));
    assert!(
        head.headers
            .keys()
            .all(|name| !name.as_str().starts_with("access-control-"))
    );
    // Every file the page names, and every module its scripts import, is
    // served, with a type the CSP and `nosniff` accept; none comes from
    // elsewhere.
    let page = String::from_utf8(page.to_vec()).unwrap();
    let mut names: Vec<String> = page
        .split(['"', '\''])
        .filter(|part| part.starts_with('/') && part.contains('.'))
        .map(str::to_owned)
        .collect();
    assert!(
        names.iter().any(|name| name == "/app.js") && names.iter().any(|name| name == "/style.css"),
        "{names:?}"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page loads only its own files"
    );
    let mut served = std::collections::BTreeSet::new();
    while let Some(name) = names.pop() {
        if !served.insert(name.clone()) {
            continue;
        }
        let (head, body) = get(&server, &name, &[]).await;
        assert_eq!(head.status, 200, "{name}");
        assert!(!body.is_empty(), "{name}");
        let expected = match name.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected file type {other:?} in {name}"),
        };
        assert_eq!(header(&head, "content-type"), Some(expected), "{name}");
        if expected.starts_with("text/javascript") {
            names.extend(imports(&String::from_utf8_lossy(&body)));
        }
    }
    assert!(
        served.contains("/grpc-web.js") && served.contains("/protobuf.js"),
        "the modules app.js imports, directly or not: {served:?}"
    );
    let (head, body) = get(&server, "/etc/passwd", &[]).await;
    assert_eq!(head.status, 404);
    assert_eq!(body, "not found: the dashboard is at /");
}

/// The modules a script imports (`import ... from "./NAME.js"`), as paths
/// of the page: every one is beside it, at the root.
fn imports(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|line| line.trim().strip_prefix("import "))
        .map(|import| {
            let (_, from) = import
                .rsplit_once(" from ")
                .unwrap_or_else(|| panic!("an import the test cannot read: {import}"));
            let name = from.trim_end_matches(';').trim_matches('"');
            let name = name
                .strip_prefix("./")
                .unwrap_or_else(|| panic!("a module from elsewhere than beside the page: {name}"));
            format!("/{name}")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_hosts_other_origins_and_preflights_are_refused() {
    let server = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let port = server.addr.port();
    let list = ListPodsRequest::default();
    // DNS rebinding: a site that points its name at 127.0.0.1.
    let rebound = format!("pods.evil.example:{port}");
    let (head, body) = get(&server, "/", &[("host", &rebound)]).await;
    assert_eq!(head.status, 403);
    assert!(
        String::from_utf8_lossy(&body).contains("loopback"),
        "{body:?}"
    );
    let (head, _) = call(&server, "ListPods", &list, &[("host", &rebound)]).await;
    assert_eq!(
        head.status, 403,
        "the API is refused too, not just the page"
    );
    // Loopback names are this machine's, whichever is used.
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let (head, _) = call(&server, "ListPods", &list, &[("host", &host)]).await;
        assert_eq!(
            (head.status.as_u16(), header(&head, "grpc-status")),
            (200, None),
            "{host}"
        );
    }
    // Another site's page calling the API.
    let (head, _) = call(
        &server,
        "ListPods",
        &list,
        &[("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(head.status, 403);
    let own = format!("http://{}", server.addr);
    let (head, _) = call(&server, "ListPods", &list, &[("origin", &own)]).await;
    assert_eq!(
        (head.status.as_u16(), header(&head, "grpc-status")),
        (200, None)
    );
    // A CORS preflight: refused, and with no CORS headers.
    let preflight = http::Request::options(format!("/{POD_SERVICE}/SyncPods"))
        .header("host", server.addr.to_string())
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-grpc-web")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (head, _) = send(&server, preflight).await;
    assert_eq!(head.status, 403);
    assert!(
        head.headers
            .keys()
            .all(|name| !name.as_str().starts_with("access-control-"))
    );
    // Nothing reached the store.
    assert_eq!(server.store.version(), sample::SAMPLE_PODS.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_dashboard_turns_the_page_off_and_keeps_grpc_web() {
    let config = ServerConfig {
        dashboard: false,
        ..ServerConfig::default()
    };
    let server = TestServer::with_sample(Backend::Memory, config).await;
    let (head, body) = get(&server, "/", &[]).await;
    assert_eq!(head.status, 404);
    assert!(
        String::from_utf8_lossy(&body).contains("--no-dashboard"),
        "{body:?}"
    );
    let (head, body) = call(&server, "ListPods", &ListPodsRequest::default(), &[]).await;
    assert_eq!(head.status, 200);
    let list: ListPodsResponse = Frames::new(body).message().await;
    assert_eq!(list.pods.len(), sample::SAMPLE_PODS.len());
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
