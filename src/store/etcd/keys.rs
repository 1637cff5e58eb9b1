//! Where a registry keeps what in etcd, and how a pod is stored there.
//!
//! Under the registry's prefix `P`:
//!
//! - `P` + `pods/` + namespace + `,` + name: one pod, its value the
//!   protobuf `Pod` without its version (the key's `mod_revision` is it);
//! - `P` + `revision`: rewritten by every change of a pod, in the same
//!   transaction, so its `mod_revision` is the registry's newest change
//!   (what a consistent read waits for, see the `fresh` module);
//! - `P` + `registry`: marks a registry as loaded (see `registry.rs`);
//! - `P` + `compacted`: the revision this registry last compacted etcd at.
//!
//! Keys sort as bytes. `,` (0x2C) sorts below every character a DNS-1123
//! label may hold (`-`, 0x2D, is the lowest), so the pods' key order is
//! namespace, then name, as the lists promise. With `/` as the separator,
//! `a-b/x` would sort before `a/x`.

use prost::Message;

use crate::contract::Pod;
use crate::domain::PodKey;

/// What separates a pod's namespace from its name in its key.
const SEPARATOR: u8 = b',';

/// The keys of one registry.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: Vec<u8>,
}

/// What a key under the prefix is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Pod(PodKey),
    Revision,
    Registry,
    Compacted,
    /// Not something a registry writes.
    Foreign,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.as_bytes().to_vec(),
        }
    }

    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Everything under the prefix, as a range `[start, end)`.
    pub fn all(&self) -> (Vec<u8>, Vec<u8>) {
        (self.prefix.clone(), range_end(&self.prefix))
    }

    pub fn pod(&self, key: &PodKey) -> Vec<u8> {
        let mut bytes = self.pods_of(Some(&key.namespace));
        bytes.extend_from_slice(key.name.as_bytes());
        bytes
    }

    /// The pods of one namespace (or all), as a range `[start, end)`.
    pub fn pods(&self, namespace: Option<&str>) -> (Vec<u8>, Vec<u8>) {
        let start = self.pods_of(namespace);
        let end = range_end(&start);
        (start, end)
    }

    /// The first key after `key`'s, for a page that goes on after it.
    pub fn after(&self, key: &PodKey) -> Vec<u8> {
        let mut bytes = self.pod(key);
        bytes.push(0);
        bytes
    }

    pub fn revision(&self) -> Vec<u8> {
        self.with(b"revision")
    }

    pub fn registry(&self) -> Vec<u8> {
        self.with(b"registry")
    }

    pub fn compacted(&self) -> Vec<u8> {
        self.with(b"compacted")
    }

    pub fn kind(&self, key: &[u8]) -> Kind {
        let Some(rest) = key.strip_prefix(self.prefix.as_slice()) else {
            return Kind::Foreign;
        };
        match rest {
            b"revision" => Kind::Revision,
            b"registry" => Kind::Registry,
            b"compacted" => Kind::Compacted,
            _ => rest
                .strip_prefix(b"pods/")
                .and_then(|pod| {
                    let at = pod.iter().position(|b| *b == SEPARATOR)?;
                    let namespace = std::str::from_utf8(&pod[..at]).ok()?;
                    let name = std::str::from_utf8(&pod[at + 1..]).ok()?;
                    Some(Kind::Pod(PodKey::new(namespace, name)))
                })
                .unwrap_or(Kind::Foreign),
        }
    }

    fn pods_of(&self, namespace: Option<&str>) -> Vec<u8> {
        let mut bytes = self.with(b"pods/");
        if let Some(namespace) = namespace {
            bytes.extend_from_slice(namespace.as_bytes());
            bytes.push(SEPARATOR);
        }
        bytes
    }

    fn with(&self, suffix: &[u8]) -> Vec<u8> {
        let mut bytes = self.prefix.clone();
        bytes.extend_from_slice(suffix);
        bytes
    }
}

/// The end of the range of every key that starts with `prefix`.
fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): to the end of the keyspace.
    vec![0]
}

/// A pod's stored value: the pod without its version or flags.
pub(super) fn encode(key: &PodKey, status: &str, replicas: i32) -> Vec<u8> {
    Pod {
        name: key.name.clone(),
        namespace: key.namespace.clone(),
        status: status.to_owned(),
        replicas,
        ..Pod::default()
    }
    .encode_to_vec()
}

/// The pod stored under `key` with `value`, at `version`; `None` when the
/// value is not a pod of this key (foreign data).
pub(super) fn decode(key: &PodKey, value: &[u8], version: i64) -> Option<Pod> {
    let pod = Pod::decode(value).ok()?;
    let version = u64::try_from(version).ok().filter(|v| *v > 0)?;
    let ours = pod.namespace == key.namespace && pod.name == key.name;
    (ours && !pod.deleted && !pod.bookmark).then_some(Pod {
        resource_version: version,
        ..pod
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_sort_by_namespace_then_name() {
        let keys = Keys::new("/p/");
        let mut pods = [
            PodKey::new("a-b", "x"),
            PodKey::new("a", "y"),
            PodKey::new("a", "x-1"),
            PodKey::new("a", "x"),
            PodKey::new("ab", "a"),
            PodKey::new("a0", "a"),
        ];
        let mut by_bytes: Vec<_> = pods.iter().map(|key| keys.pod(key)).collect();
        by_bytes.sort();
        pods.sort();
        let expected: Vec<_> = pods.iter().map(|key| keys.pod(key)).collect();
        assert_eq!(by_bytes, expected);
    }

    #[test]
    fn a_namespace_range_holds_only_its_pods() {
        let keys = Keys::new("/p/");
        let (start, end) = keys.pods(Some("a"));
        for (key, inside) in [
            (PodKey::new("a", "x"), true),
            (PodKey::new("a-b", "x"), false),
            (PodKey::new("ab", "x"), false),
        ] {
            let bytes = keys.pod(&key);
            assert_eq!(bytes >= start && bytes < end, inside, "{key}");
        }
    }

    #[test]
    fn keys_are_recognised() {
        let keys = Keys::new("/p/");
        let pod = PodKey::new("dev", "web-1");
        assert_eq!(keys.kind(&keys.pod(&pod)), Kind::Pod(pod));
        assert_eq!(keys.kind(&keys.revision()), Kind::Revision);
        assert_eq!(keys.kind(&keys.registry()), Kind::Registry);
        assert_eq!(keys.kind(b"/p/other"), Kind::Foreign);
        assert_eq!(keys.kind(b"/q/registry"), Kind::Foreign);
    }

    #[test]
    fn values_round_trip_and_foreign_ones_are_refused() {
        let key = PodKey::new("dev", "web-1");
        let value = encode(&key, "Running", 3);
        let pod = decode(&key, &value, 7).expect("a pod");
        assert_eq!(
            (pod.status.as_str(), pod.replicas, pod.resource_version),
            ("Running", 3, 7)
        );
        assert!(decode(&PodKey::new("dev", "other"), &value, 7).is_none());
        assert!(decode(&key, b"\xff\xff not protobuf", 7).is_none());
    }
}
