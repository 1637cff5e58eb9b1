//! Sample data, so that a fresh server has something to show: the starting
//! pods a new registry is given (see [`Registry::open`](crate::store::Registry::open)).
//!
//! [`SAMPLE_PODS`] is the documented default set (see the README);
//! [`numbered`] builds the same synthetic set as the Go peer's `-pods N`, for
//! like-for-like benchmarks.

use crate::domain::{ApplyPod, PodKey};

/// `(namespace, name, status, replicas)` of the pods a new server starts with.
pub const SAMPLE_PODS: &[(&str, &str, &str, i32)] = &[
    ("default", "hello-world", "Running", 1),
    ("dev", "scratchpad", "CrashLoopBackOff", 1),
    ("production", "api", "Running", 3),
    ("production", "postgres", "Running", 1),
    ("production", "web", "Running", 4),
    ("staging", "api", "Pending", 1),
    ("staging", "web", "Running", 2),
];

/// The namespaces of the numbered set, in round-robin order.
/// The namespaces of [`numbered`] pods, in turn.
pub const NUMBERED_NAMESPACES: [&str; 3] = ["production", "staging", "dev"];

/// The sample set as validated applies.
pub fn sample() -> impl Iterator<Item = ApplyPod> {
    SAMPLE_PODS
        .iter()
        .map(|&(namespace, name, status, replicas)| ApplyPod {
            key: PodKey::new(namespace, name),
            status: status.to_owned(),
            replicas,
            expected_version: None,
        })
}

/// `pod-0` .. `pod-{n-1}`, round-robin over production, staging and dev,
/// status `Running`, replicas 1..=3: the Go peer's `-pods N`.
pub fn numbered(n: usize) -> impl Iterator<Item = ApplyPod> {
    (0..n).map(|i| ApplyPod {
        key: PodKey::new(
            NUMBERED_NAMESPACES[i % NUMBERED_NAMESPACES.len()],
            format!("pod-{i}"),
        ),
        status: "Running".to_owned(),
        replicas: (i % 3) as i32 + 1,
        expected_version: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::validate;

    #[test]
    fn sample_pods_pass_validation() {
        for apply in sample().chain(numbered(10)) {
            let pod = crate::contract::Pod {
                name: apply.key.name.clone(),
                namespace: apply.key.namespace.clone(),
                status: apply.status.clone(),
                replicas: apply.replicas,
                ..Default::default()
            };
            assert_eq!(validate::apply(pod), Ok(apply));
        }
    }
}
