//! The domain's own values, shared by the server's edge and the store: a
//! pod's identity, which pods a list or watch selects, a validated write,
//! and the naming rule that every stored name obeys.
//!
//! The server's validation builds these from wire messages; the store only
//! ever receives them, and checks its own records against the same rule.

use std::fmt;

use crate::contract::Pod;

/// A pod's identity: its namespace and name. Orders by namespace, then name,
/// which is the order `ListPods` returns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodKey {
    /// A DNS-1123 label.
    pub namespace: String,
    /// A DNS-1123 label.
    pub name: String,
}

impl PodKey {
    /// The key of `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        PodKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a pod.
    pub fn of(pod: &Pod) -> Self {
        PodKey::new(pod.namespace.clone(), pod.name.clone())
    }
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Which pods a list or a watch selects: every pod, the pods of one
/// namespace, or one pod by name (Kubernetes' `fieldSelector=metadata.name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodSelector {
    /// Every pod of every namespace.
    All,
    /// The pods of one namespace.
    Namespace(String),
    /// The pod of this key, while it exists, and every change to it.
    Pod(PodKey),
}

impl PodSelector {
    /// The pods of `namespace`, or every pod for `None`.
    pub fn namespace(namespace: Option<String>) -> Self {
        namespace.map_or(PodSelector::All, PodSelector::Namespace)
    }

    /// The one namespace the selected pods are in; `None` for every
    /// namespace.
    pub fn namespace_limit(&self) -> Option<&str> {
        match self {
            PodSelector::All => None,
            PodSelector::Namespace(namespace) => Some(namespace),
            PodSelector::Pod(key) => Some(&key.namespace),
        }
    }

    /// Whether `pod` (or a change to it) is selected. Called for every
    /// change and every watcher, so it costs one comparison per field it
    /// selects by, as the namespace filter it replaces did.
    #[inline]
    pub fn matches(&self, pod: &Pod) -> bool {
        match self {
            PodSelector::All => true,
            PodSelector::Namespace(namespace) => pod.namespace == *namespace,
            PodSelector::Pod(key) => pod.name == key.name && pod.namespace == key.namespace,
        }
    }
}

/// A create-or-update that passed validation: the only form in which a
/// write reaches the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyPod {
    /// The pod to create or replace.
    pub key: PodKey,
    /// Its status, e.g. `Running`.
    pub status: String,
    /// Its replica count, at least 0.
    pub replicas: i32,
    /// Optimistic concurrency: apply only if the pod is still at this version.
    pub expected_version: Option<u64>,
}

impl ApplyPod {
    /// The pod this write stores, at the version the store gave it.
    pub fn stored_at(self, version: u64) -> Pod {
        Pod {
            name: self.key.name,
            namespace: self.key.namespace,
            status: self.status,
            replicas: self.replicas,
            resource_version: version,
            deleted: false,
            bookmark: false,
        }
    }
}

/// The tombstone of a pod deleted at `version`: the pod as it was, marked
/// deleted, so that a watcher learns what went.
pub fn tombstone(pod: &Pod, version: u64) -> Pod {
    Pod {
        resource_version: version,
        deleted: true,
        ..pod.clone()
    }
}

/// A field that broke a rule; the server answers it with `INVALID_ARGUMENT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The field, as a path into the request (`apply.name`, `lines[3]`).
    pub field: String,
    /// The rule it broke, with the rejected value described.
    pub rule: String,
}

impl Invalid {
    /// `field` broke `rule`.
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Invalid {
            field: field.into(),
            rule: rule.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.rule)
    }
}

impl std::error::Error for Invalid {}

/// Longest accepted DNS-1123 label, in bytes.
const MAX_LABEL_BYTES: usize = 63;

/// Checks that `value` is a DNS-1123 label, as Kubernetes requires of
/// namespace and pod names.
pub fn dns_label(field: &str, value: &str) -> Result<(), Invalid> {
    let rule = "must be a DNS-1123 label: 1 to 63 lowercase letters, digits or '-', \
                starting and ending with a letter or digit";
    let bytes = value.as_bytes();
    let well_formed = !bytes.is_empty()
        && bytes.len() <= MAX_LABEL_BYTES
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-');
    if well_formed {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("{} ({})", rule, describe(value)),
        ))
    }
}

/// Quotes a rejected value for an error message, shortened and escaped so that
/// a hostile value cannot flood or garble the message.
pub(crate) fn describe(value: &str) -> String {
    const SHOWN: usize = 40;
    if value.is_empty() {
        return "got an empty string".to_owned();
    }
    let shown: String = value.chars().take(SHOWN).collect();
    let more = if value.chars().count() > SHOWN {
        "..."
    } else {
        ""
    };
    format!("got {:?}{more}, {} bytes", shown, value.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for good in ["a", "web-1", "0abc", &"x".repeat(63)] {
            assert_eq!(dns_label("name", good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Web",
            "a_b",
            "a.b",
            "a/b",
            "a\0b",
            "ѕtaging", // Cyrillic look-alike
            &"x".repeat(64),
        ] {
            let err = dns_label("name", bad).unwrap_err();
            assert_eq!(err.field, "name");
            assert!(err.rule.contains("DNS-1123"), "{bad}: {err}");
        }
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let err = dns_label("name", &"X".repeat(10_000)).unwrap_err();
        assert!(err.to_string().len() < 300, "{err}");
    }
}
