//! `ListPodsResponse` by hand, because the generated one costs too much.
//!
//! [`ListPodsResponse`] is the contract's message (fields 1 to 3, exactly as
//! prost would generate them; `build.rs` points the stubs at this type), plus an
//! optional *pre-encoded* body. The server encodes the pods of a namespace
//! once per store version and shares those bytes with every `ListPods` call
//! that reads the same version, instead of cloning and encoding the pods per
//! call (the profile that led to it is in BENCHMARKS.md). Clients
//! decode it like any other message; `encoded` is never set by decoding.

use bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType, message, skip_field, string, uint64};
use prost::{DecodeError, Message};

use super::messages::Pod;

/// The answer to `ListPods`: the pods, sorted by namespace then name, and
/// the store version they were read at; for a paged list, one page.
#[derive(Clone, Default)]
pub struct ListPodsResponse {
    /// The pods (empty when the response is pre-encoded).
    pub pods: Vec<Pod>,
    /// the store version this list reflects (on every page: the first page's)
    pub resource_version: u64,
    /// send it back for the next page; empty on the last page
    pub continue_token: String,
    /// If set, the encoding of exactly `pods`, `resource_version` and
    /// `continue_token`, sent as is.
    pub encoded: Option<Bytes>,
}

impl ListPodsResponse {
    /// A response whose body is encoded once, to be sent many times.
    /// (`resource_version` stays readable; `pods` is only in the bytes.)
    pub fn encoded(pods: Vec<Pod>, resource_version: u64) -> Self {
        let mut response = ListPodsResponse {
            pods,
            resource_version,
            ..ListPodsResponse::default()
        };
        let bytes = Bytes::from(response.encode_to_vec());
        response.pods = Vec::new();
        response.encoded = Some(bytes);
        response
    }
}

impl Message for ListPodsResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if let Some(encoded) = &self.encoded {
            buf.put_slice(encoded);
            return;
        }
        for pod in &self.pods {
            message::encode(1, pod, buf);
        }
        if self.resource_version != 0 {
            uint64::encode(2, &self.resource_version, buf);
        }
        if !self.continue_token.is_empty() {
            string::encode(3, &self.continue_token, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => message::merge_repeated(wire_type, &mut self.pods, buf, ctx),
            2 => uint64::merge(wire_type, &mut self.resource_version, buf, ctx),
            3 => string::merge(wire_type, &mut self.continue_token, buf, ctx),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        if let Some(encoded) = &self.encoded {
            return encoded.len();
        }
        message::encoded_len_repeated(1, &self.pods)
            + if self.resource_version != 0 {
                uint64::encoded_len(2, &self.resource_version)
            } else {
                0
            }
            + if self.continue_token.is_empty() {
                0
            } else {
                string::encoded_len(3, &self.continue_token)
            }
    }

    fn clear(&mut self) {
        *self = ListPodsResponse::default();
    }
}

/// Equal when they carry the same pods and version, however encoded.
impl PartialEq for ListPodsResponse {
    fn eq(&self, other: &Self) -> bool {
        let decoded = |r: &Self| match &r.encoded {
            Some(bytes) => ListPodsResponse::decode(bytes.clone()).unwrap_or_default(),
            None => r.clone(),
        };
        let (a, b) = (decoded(self), decoded(other));
        a.pods == b.pods
            && a.resource_version == b.resource_version
            && a.continue_token == b.continue_token
    }
}

impl std::fmt::Debug for ListPodsResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListPodsResponse")
            .field("pods", &self.pods)
            .field("resource_version", &self.resource_version)
            .field("continue_token", &self.continue_token)
            .field("encoded", &self.encoded.as_ref().map(Bytes::len))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_encoded_bytes_equal_the_plain_encoding() {
        let pods = vec![
            Pod {
                name: "web".into(),
                namespace: "default".into(),
                status: "Running".into(),
                replicas: 2,
                resource_version: 7,
                deleted: false,
                bookmark: false,
            };
            3
        ];
        let plain = ListPodsResponse {
            pods: pods.clone(),
            resource_version: 9,
            ..ListPodsResponse::default()
        };
        let cached = ListPodsResponse::encoded(pods, 9);
        assert_eq!(cached.encode_to_vec(), plain.encode_to_vec());
        assert_eq!(cached.encoded_len(), plain.encoded_len());
        let decoded = ListPodsResponse::decode(cached.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.pods, plain.pods);
        assert_eq!(decoded.resource_version, 9);
        assert!(decoded.encoded.is_none());
        assert_eq!(cached, plain);
    }
}
