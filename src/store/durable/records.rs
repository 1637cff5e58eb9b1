//! The encoding of what the durable store keeps on disk.
//!
//! Records are protobuf messages from the wire contract (a `Pod`, or a
//! `LogChunk` holding only its lines), so the on-disk format is documented
//! by `proto/pod.proto` and decoding is prost's. Decoding never panics: a
//! record that does not decode, or decodes to something that could never
//! have been written, is a [`RecordError`].

use prost::Message;

use super::error::RecordError;
use crate::contract::{LogChunk, Pod};
use crate::domain::{self, PodKey};

/// Encodes a pod or tombstone.
pub fn encode_pod(pod: &Pod) -> Vec<u8> {
    pod.encode_to_vec()
}

/// Decodes a stored pod and checks it is one the store could have written.
pub fn decode_pod(bytes: &[u8]) -> Result<Pod, RecordError> {
    let pod =
        Pod::decode(bytes).map_err(|error| RecordError::Undecodable { kind: "pod", error })?;
    domain::dns_label("namespace", &pod.namespace).map_err(RecordError::BadName)?;
    domain::dns_label("name", &pod.name).map_err(RecordError::BadName)?;
    if pod.resource_version == 0 || pod.replicas < 0 {
        return Err(RecordError::Impossible {
            key: PodKey::of(&pod),
            resource_version: pod.resource_version,
            replicas: pod.replicas,
        });
    }
    Ok(pod)
}

/// Encodes the lines of a log chunk.
pub fn encode_lines(lines: &[String]) -> Vec<u8> {
    LogChunk {
        namespace: String::new(),
        pod: String::new(),
        lines: lines.to_vec(),
        first_line: 0,
    }
    .encode_to_vec()
}

/// Decodes the lines of a log chunk.
pub fn decode_lines(bytes: &[u8]) -> Result<Vec<String>, RecordError> {
    LogChunk::decode(bytes)
        .map(|chunk| chunk.lines)
        .map_err(|error| RecordError::Undecodable { kind: "log", error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let pod = Pod {
            name: "web".into(),
            namespace: "default".into(),
            status: "Running".into(),
            replicas: 2,
            resource_version: 7,
            deleted: true,
            bookmark: false,
        };
        assert_eq!(decode_pod(&encode_pod(&pod)), Ok(pod));
        let lines = vec!["a".to_owned(), String::new(), "ü".to_owned()];
        assert_eq!(decode_lines(&encode_lines(&lines)), Ok(lines));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b"\xff\xff\xff"[..], b"\x0a\x05ab", b"\x12\x80"] {
            assert!(decode_pod(bytes).is_err());
        }
        assert!(decode_lines(b"\x1a\xff\xff\xff\xff\x0f").is_err());
        // Decodes, but names nothing the store could have written.
        assert!(matches!(decode_pod(&[]), Err(RecordError::BadName(_))));
    }
}
