//! Any bytes as any request message (and as a `grpc-timeout` header):
//! decoding and validation never panic, and whatever validation accepts is
//! a well-formed key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pod_service::contract::{GetLogsRequest, ListPodsRequest, LogChunk, SyncRequest, sync_request};
use pod_service::domain;
use pod_service::server::validate;
use prost::Message;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(header) = std::str::from_utf8(bytes) {
        let _ = pod_service::server::parse_timeout(header);
    }
    if let Ok(request) = SyncRequest::decode(bytes) {
        match request.op {
            Some(sync_request::Op::Apply(pod)) => {
                if let Ok(apply) = validate::apply(pod) {
                    assert!(domain::dns_label("namespace", &apply.key.namespace).is_ok());
                    assert!(domain::dns_label("name", &apply.key.name).is_ok());
                }
            }
            Some(sync_request::Op::Delete(pod)) => {
                if let Ok(key) = validate::delete(&pod) {
                    assert!(domain::dns_label("name", &key.name).is_ok());
                }
            }
            Some(sync_request::Op::Subscribe(subscribe)) => {
                let _ = validate::namespace_filter("subscribe.namespace", &subscribe.namespace);
            }
            None => {}
        }
    }
    if let Ok(request) = ListPodsRequest::decode(bytes)
        && let Ok(Some(namespace)) = validate::namespace_filter("namespace", &request.namespace)
    {
        assert!(domain::dns_label("namespace", &namespace).is_ok());
    }
    if let Ok(chunk) = LogChunk::decode(bytes) {
        let _ = validate::pod_key("", &chunk.namespace, "pod", &chunk.pod);
        if let Ok(bytes) = validate::log_lines(&chunk.lines, 1024) {
            assert!(chunk.lines.iter().all(|line| line.len() <= 1024));
            assert_eq!(
                bytes,
                chunk.lines.iter().map(|l| l.len() as u64).sum::<u64>()
            );
        }
    }
    if let Ok(request) = GetLogsRequest::decode(bytes) {
        let _ = validate::pod_key("", &request.namespace, "pod", &request.pod);
    }
});
