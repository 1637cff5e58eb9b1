//! The status of a request message over the size limit, for every call.
//!
//! tonic refuses a message larger than `max_decoding_message_size` with
//! `OUT_OF_RANGE`, but gRPC's specification and its other implementations
//! use `RESOURCE_EXHAUSTED`, and clients retry or report on that code.
//! [`oversized_is_exhausted`], applied to every answer by the
//! [panic guard](super::panic_guard), rewrites tonic's status wherever it
//! appears: in the headers of a refused unary call (a "trailers-only"
//! response, before any handler ran) and in the trailers of a stream whose
//! handler passed the decoding error on. Our own `OUT_OF_RANGE`s (a watch
//! from a version no longer retained) carry other messages and pass as they
//! are.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::Frame;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use tonic::body::Body;
use tonic::codegen::http::{self, HeaderMap, HeaderValue};

use crate::contract::POD_SERVICE;

/// How tonic's decoder words the start of its message for an oversized request.
const TONIC_OVERSIZED: &str = "Error, decoded message length too large: ";
const OUT_OF_RANGE: &str = "11";
const RESOURCE_EXHAUSTED: &str = "8";
/// The PodService methods whose requests are streams of messages (a unit
/// test checks this against the compiled descriptor).
const STREAMED_REQUESTS: [&str; 2] = ["UploadLogs", "SyncPods"];

/// Whether a call's request is a stream of messages: only such a call can
/// meet an oversized message after it answered.
pub(super) fn streams_its_request(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|path| path.split_once('/'))
        .is_some_and(|(service, method)| {
            service == POD_SERVICE && STREAMED_REQUESTS.contains(&method)
        })
}

/// `response` with tonic's status for an oversized message rewritten, in
/// its headers and, for a call that [`streams_its_request`], in its
/// trailers. (The other calls' bodies pass untouched: wrapping a body costs
/// a dynamic call per streamed message.)
pub(super) fn oversized_is_exhausted(
    response: http::Response<Body>,
    streamed_request: bool,
) -> http::Response<Body> {
    let (mut parts, body) = response.into_parts();
    rewrite(&mut parts.headers);
    let body = if streamed_request {
        Body::new(RewriteTrailers(body))
    } else {
        body
    };
    http::Response::from_parts(parts, body)
}

/// A response body whose trailers pass through [`rewrite`].
struct RewriteTrailers(Body);

impl http_body::Body for RewriteTrailers {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.0).poll_frame(cx));
        Poll::Ready(frame.map(|frame| {
            frame.map(|frame| match frame.into_trailers() {
                Ok(mut trailers) => {
                    rewrite(&mut trailers);
                    Frame::trailers(trailers)
                }
                Err(data) => data,
            })
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.size_hint()
    }
}

/// Turns tonic's `OUT_OF_RANGE` for an oversized message into
/// `RESOURCE_EXHAUSTED` with a message that names what was too large.
fn rewrite(headers: &mut HeaderMap) {
    if headers.get("grpc-status").map(HeaderValue::as_bytes) != Some(OUT_OF_RANGE.as_bytes()) {
        return;
    }
    // A handler may have put the decoder's message in context ("chunk 3: ...").
    let Some(message) = headers
        .get("grpc-message")
        .and_then(|message| message.to_str().ok())
        .map(percent_decode)
        .filter(|message| message.contains(TONIC_OVERSIZED))
    else {
        return;
    };
    let message = message.replace(TONIC_OVERSIZED, "request message too large: ");
    headers.insert("grpc-status", HeaderValue::from_static(RESOURCE_EXHAUSTED));
    if let Ok(value) = HeaderValue::from_str(&percent_encode(&message)) {
        headers.insert("grpc-message", value);
    }
}

/// `grpc-message` is percent-encoded: every byte outside printable ASCII,
/// and `%` itself (gRPC over HTTP/2, "Responses").
const GRPC_MESSAGE: &AsciiSet = &CONTROLS.add(b'%');

fn percent_decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

fn percent_encode(text: &str) -> String {
    utf8_percent_encode(text, GRPC_MESSAGE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(status: &str, message: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_str(status).unwrap());
        headers.insert(
            "grpc-message",
            HeaderValue::from_str(&percent_encode(message)).unwrap(),
        );
        headers
    }

    #[test]
    fn oversized_becomes_resource_exhausted() {
        let mut oversized = headers(
            "11",
            "Error, decoded message length too large: found 5000000 bytes, the limit is: 4194304 bytes",
        );
        rewrite(&mut oversized);
        assert_eq!(oversized["grpc-status"], "8");
        assert_eq!(
            percent_decode(oversized["grpc-message"].to_str().unwrap()),
            "request message too large: found 5000000 bytes, the limit is: 4194304 bytes"
        );
    }

    #[test]
    fn context_around_the_message_is_kept() {
        let mut oversized = headers(
            "11",
            "chunk 2: Error, decoded message length too large: found 9 bytes, the limit is: 8 bytes; 5 lines stored",
        );
        rewrite(&mut oversized);
        assert_eq!(oversized["grpc-status"], "8");
        assert_eq!(
            percent_decode(oversized["grpc-message"].to_str().unwrap()),
            "chunk 2: request message too large: found 9 bytes, the limit is: 8 bytes; 5 lines stored"
        );
    }

    #[test]
    fn other_statuses_pass_unchanged() {
        for (status, message) in [
            ("11", "resource_version 3 is no longer retained"),
            (
                "3",
                "Error, decoded message length too large: found 1 bytes",
            ),
            ("0", ""),
        ] {
            let mut unchanged = headers(status, message);
            rewrite(&mut unchanged);
            assert_eq!(unchanged, headers(status, message));
        }
    }

    #[test]
    fn the_streamed_requests_are_those_of_the_descriptor() {
        use prost::Message;
        let descriptors =
            prost_types::FileDescriptorSet::decode(crate::contract::FILE_DESCRIPTOR_SET).unwrap();
        let mut streamed = Vec::new();
        for file in &descriptors.file {
            for service in &file.service {
                if format!("{}.{}", file.package(), service.name()) != POD_SERVICE {
                    continue;
                }
                for method in &service.method {
                    let path = format!("/{POD_SERVICE}/{}", method.name());
                    assert_eq!(
                        streams_its_request(&path),
                        method.client_streaming(),
                        "{path}"
                    );
                    if method.client_streaming() {
                        streamed.push(method.name().to_owned());
                    }
                }
            }
        }
        assert_eq!(streamed.len(), STREAMED_REQUESTS.len(), "{streamed:?}");
    }

    #[test]
    fn percent_encoding_round_trips() {
        let text = "naïve 100% ✓";
        assert_eq!(percent_decode(&percent_encode(text)), text);
    }
}
