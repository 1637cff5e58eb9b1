//! A browser's side of gRPC-Web, without a browser: raw requests over
//! HTTP/1.1 on a fresh connection each, as `fetch` sends them, and a reader
//! of the framed response body. For the tests of the gRPC-Web path
//! (`tests/grpc_web.rs`) and of the page as served (`tests/grpc_web/page.rs`).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use pod_service::contract::POD_SERVICE;
use prost::Message;
use tokio::net::TcpStream;

use super::{TestServer, within};

const CONTENT_TYPE: &str = "application/grpc-web+proto";

/// One gRPC-Web call on a fresh HTTP/1.1 connection, as a browser makes it.
/// Returns the response head and its body, still streaming.
pub async fn call(
    server: &TestServer,
    method: &str,
    request: &impl Message,
    headers: &[(&str, &str)],
) -> (http::response::Parts, Incoming) {
    call_with_body(server, method, framed(&[request as &dyn Encode]), headers).await
}

/// A call whose request body is `body`: framed messages, then the end of
/// the body, which is the client's half-close.
pub async fn call_with_body(
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
pub fn framed(messages: &[&dyn Encode]) -> Bytes {
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
pub trait Encode {
    fn encoded(&self) -> Vec<u8>;
}

impl<M: Message> Encode for M {
    fn encoded(&self) -> Vec<u8> {
        self.encode_to_vec()
    }
}

/// Adds `headers`, and the `Host` a browser sends unless they name one.
pub fn with_headers(
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
pub async fn send(
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
pub enum Frame {
    Message(Bytes),
    /// The trailers, as `name: value` lines.
    Trailers(String),
}

/// Reads a gRPC-Web body frame by frame, as the chunks arrive.
pub struct Frames {
    body: Incoming,
    buffer: BytesMut,
}

impl Frames {
    pub fn new(body: Incoming) -> Self {
        Frames {
            body,
            buffer: BytesMut::new(),
        }
    }

    /// The next whole frame; `None` at the end of the body.
    pub async fn next(&mut self) -> Option<Frame> {
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

    pub async fn message<M: Message + Default>(&mut self) -> M {
        match self.next().await {
            Some(Frame::Message(bytes)) => M::decode(bytes).expect("a message"),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    pub async fn trailers(&mut self) -> String {
        match self.next().await {
            Some(Frame::Trailers(trailers)) => trailers,
            other => panic!("expected the trailers, got {other:?}"),
        }
    }
}

/// A response header, when it is text.
pub fn header<'a>(head: &'a http::response::Parts, name: &str) -> Option<&'a str> {
    head.headers.get(name).and_then(|value| value.to_str().ok())
}

/// A plain `GET` request on a fresh HTTP/1.1 connection.
pub async fn get(
    server: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
) -> (http::response::Parts, Bytes) {
    let request = with_headers(server, http::Request::get(path), headers);
    let (head, body) = send(server, request.body(Full::new(Bytes::new())).unwrap()).await;
    (head, body.collect().await.expect("the body").to_bytes())
}
