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

// The field numbers of `ListPodsResponse` in `proto/pod.proto`; a test reads
// them back from the compiled descriptor, with each field's type.
const PODS: u32 = 1;
const RESOURCE_VERSION: u32 = 2;
const CONTINUE_TOKEN: u32 = 3;

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
            message::encode(PODS, pod, buf);
        }
        if self.resource_version != 0 {
            uint64::encode(RESOURCE_VERSION, &self.resource_version, buf);
        }
        if !self.continue_token.is_empty() {
            string::encode(CONTINUE_TOKEN, &self.continue_token, buf);
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
            PODS => message::merge_repeated(wire_type, &mut self.pods, buf, ctx),
            RESOURCE_VERSION => uint64::merge(wire_type, &mut self.resource_version, buf, ctx),
            CONTINUE_TOKEN => string::merge(wire_type, &mut self.continue_token, buf, ctx),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        if let Some(encoded) = &self.encoded {
            return encoded.len();
        }
        message::encoded_len_repeated(PODS, &self.pods)
            + if self.resource_version != 0 {
                uint64::encoded_len(RESOURCE_VERSION, &self.resource_version)
            } else {
                0
            }
            + if self.continue_token.is_empty() {
                0
            } else {
                string::encoded_len(CONTINUE_TOKEN, &self.continue_token)
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
    use prost::encoding::{decode_key, decode_varint};
    use prost_types::field_descriptor_proto::{Label, Type};
    use prost_types::{DescriptorProto, FileDescriptorSet};
    use std::collections::BTreeMap;

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

    /// The compiled `proto/pod.proto`, as `contract::FILE_DESCRIPTOR_SET`
    /// holds it (included again: a child module does not use its parent's
    /// items, see scripts/check-modules.py).
    const DESCRIPTORS: &[u8] = tonic::include_file_descriptor_set!("pod_descriptor");

    /// The contract's message `infra.{name}`.
    fn contract_message(name: &str) -> DescriptorProto {
        let descriptors = FileDescriptorSet::decode(DESCRIPTORS).unwrap();
        descriptors
            .file
            .into_iter()
            .filter(|file| file.package() == "infra")
            .flat_map(|file| file.message_type)
            .find(|message| message.name() == name)
            .unwrap_or_else(|| panic!("the contract has no infra.{name}"))
    }

    #[test]
    fn the_hand_written_fields_are_the_contracts() {
        let contract: BTreeMap<_, _> = contract_message("ListPodsResponse")
            .field
            .iter()
            .map(|field| {
                let number = u32::try_from(field.number()).unwrap();
                let kind = (field.label(), field.r#type(), field.type_name().to_owned());
                assert!(!field.proto3_optional(), "{} has presence", field.name());
                assert!(
                    field.oneof_index.is_none(),
                    "{} is in a oneof",
                    field.name()
                );
                (field.name().to_owned(), (number, kind))
            })
            .collect();
        // What `encode_raw` and `merge_field` write and read: `message`,
        // `uint64` and `string` of prost's encoding, under these numbers.
        let hand: BTreeMap<_, _> = [
            ("pods", PODS, Label::Repeated, Type::Message, ".infra.Pod"),
            (
                "resource_version",
                RESOURCE_VERSION,
                Label::Optional,
                Type::Uint64,
                "",
            ),
            (
                "continue_token",
                CONTINUE_TOKEN,
                Label::Optional,
                Type::String,
                "",
            ),
        ]
        .into_iter()
        .map(|(name, number, label, kind, message)| {
            (name.to_owned(), (number, (label, kind, message.to_owned())))
        })
        .collect();
        assert_eq!(hand, contract);
    }

    /// A field's values as the contract types them.
    #[derive(Debug, PartialEq)]
    enum Value {
        Pod(Pod),
        Uint64(u64),
        String(String),
    }

    /// Reads `bytes` as the descriptor's `ListPodsResponse`, without the
    /// hand-written decoder: each field by the number, wire type and type the
    /// descriptor gives it, keyed by its name. Pods are read with the
    /// generated `Pod` (prost's, from the same descriptor).
    fn read_by_contract(mut bytes: &[u8]) -> BTreeMap<String, Vec<Value>> {
        let message = contract_message("ListPodsResponse");
        let mut fields: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        while !bytes.is_empty() {
            let (number, wire_type) = decode_key(&mut bytes).unwrap();
            let field = message
                .field
                .iter()
                .find(|field| u32::try_from(field.number()) == Ok(number))
                .unwrap_or_else(|| panic!("field {number} is not in the contract"));
            let value = match (field.r#type(), wire_type) {
                (Type::Message, WireType::LengthDelimited) => {
                    assert_eq!(field.type_name(), ".infra.Pod");
                    Value::Pod(Pod::decode(length_delimited(&mut bytes)).unwrap())
                }
                (Type::Uint64, WireType::Varint) => {
                    Value::Uint64(decode_varint(&mut bytes).unwrap())
                }
                (Type::String, WireType::LengthDelimited) => {
                    Value::String(String::from_utf8(length_delimited(&mut bytes).to_vec()).unwrap())
                }
                (kind, wire_type) => {
                    panic!(
                        "{} is {kind:?} in the contract, sent as {wire_type:?}",
                        field.name()
                    )
                }
            };
            fields
                .entry(field.name().to_owned())
                .or_default()
                .push(value);
        }
        fields
    }

    /// The bytes of a length-delimited value, taken off the front of `bytes`.
    fn length_delimited<'a>(bytes: &mut &'a [u8]) -> &'a [u8] {
        let length = usize::try_from(decode_varint(bytes).unwrap()).unwrap();
        let (value, rest) = bytes.split_at(length);
        *bytes = rest;
        value
    }

    /// What the contract's reader must find in `response`: its fields by
    /// name, those at their default left out (proto3 sends no default).
    fn by_name(response: &ListPodsResponse) -> BTreeMap<String, Vec<Value>> {
        let mut fields = BTreeMap::new();
        let pods: Vec<_> = response.pods.iter().cloned().map(Value::Pod).collect();
        if !pods.is_empty() {
            fields.insert("pods".to_owned(), pods);
        }
        if response.resource_version != 0 {
            let version = vec![Value::Uint64(response.resource_version)];
            fields.insert("resource_version".to_owned(), version);
        }
        if !response.continue_token.is_empty() {
            let token = vec![Value::String(response.continue_token.clone())];
            fields.insert("continue_token".to_owned(), token);
        }
        fields
    }

    #[test]
    fn the_hand_encoding_reads_back_by_the_contract() {
        let pod = |name: &str, namespace: &str, version: u64| Pod {
            name: name.into(),
            namespace: namespace.into(),
            status: "Running".into(),
            replicas: 2,
            resource_version: version,
            deleted: false,
            bookmark: false,
        };
        let unusual = Pod {
            status: "Wartend: Ünïcødé, 名前, 🚀".into(),
            replicas: -1,
            deleted: true,
            ..pod("ναός-1", "名前空間", u64::MAX)
        };
        let many: Vec<_> = (0..1_000)
            .map(|i| pod(&format!("web-{i}"), "default", i))
            .collect();
        // Each response, and whether to send it pre-encoded.
        let responses = [
            (ListPodsResponse::default(), false),
            (ListPodsResponse::default(), true),
            (
                ListPodsResponse {
                    pods: vec![Pod::default()],
                    ..ListPodsResponse::default()
                },
                false,
            ),
            (
                ListPodsResponse {
                    pods: vec![pod("web", "default", 7), unusual.clone()],
                    resource_version: 9,
                    ..ListPodsResponse::default()
                },
                false,
            ),
            (
                ListPodsResponse {
                    pods: vec![unusual],
                    resource_version: u64::MAX,
                    continue_token: "ünïcødé-続き-🚀".into(),
                    ..ListPodsResponse::default()
                },
                false,
            ),
            (
                ListPodsResponse {
                    pods: many.clone(),
                    resource_version: 1 << 63,
                    continue_token: "c".repeat(300),
                    ..ListPodsResponse::default()
                },
                false,
            ),
            (
                ListPodsResponse {
                    pods: many,
                    resource_version: u64::MAX - 1,
                    ..ListPodsResponse::default()
                },
                true,
            ),
            (
                ListPodsResponse {
                    resource_version: 1,
                    continue_token: "the last page can be empty".into(),
                    ..ListPodsResponse::default()
                },
                false,
            ),
        ];
        for (response, pre_encoded) in responses {
            let expected = by_name(&response);
            let sent = if pre_encoded {
                ListPodsResponse::encoded(response.pods.clone(), response.resource_version)
            } else {
                response.clone()
            };
            let bytes = sent.encode_to_vec();
            assert_eq!(sent.encoded_len(), bytes.len(), "{response:?}");
            assert_eq!(read_by_contract(&bytes), expected, "{response:?}");
            assert_eq!(
                ListPodsResponse::decode(bytes.as_slice()).unwrap(),
                response
            );
        }
    }
}
