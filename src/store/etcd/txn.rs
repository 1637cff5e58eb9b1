//! The etcd transactions of a pod's writes, as kube-apiserver's
//! `GuaranteedUpdate` writes: every write holds only if the pod is still
//! as this server last saw it, and both kinds rewrite the registry's
//! `revision` key in the same revision, so that a quorum read of it gives
//! the newest change (see [`fresh`](super::fresh)).
//!
//! **Why every write compares.** A transaction etcd did not confirm (its
//! member froze, the call timed out) is reported as unconfirmed, yet it
//! may still sit in that member's socket and commit much later. Because
//! it compares the pod's `mod_revision` as it was when it was sent, it
//! commits only if nothing wrote the pod since: any later acknowledged
//! write to the pod, from any session on any server, changed that
//! revision, and so makes it fail. An unconfirmed write therefore takes
//! effect before the next acknowledged write to its pod, or never.
//!
//! What the server saw may be stale (another server wrote the pod a
//! moment ago). A compare that fails is a definite "not committed", and
//! the `Else` branch returns the pod as it is, so the write tries again
//! against that, at once, as `GuaranteedUpdate` does. A conditional apply
//! (an expected version) compares that version instead and does not try
//! again: a conflict is its answer.
//!
//! **The one gap** is a pod that is absent, created and deleted again
//! while a write that found it absent hangs: its `mod_revision` is 0 again
//! (etcd keeps nothing for a deleted key), so that stale write can still
//! commit. kube-apiserver's creates share it.

use std::sync::Arc;

use super::api::etcdserverpb::{
    Compare, DeleteRangeRequest, RequestOp, ResponseHeader, TxnRequest, TxnResponse, compare,
    request_op, response_op,
};
use super::keys::{self, Keys};
use super::pod_turns::Known;
use super::registry;
use super::shared::Shared;
use crate::contract::Pod;
use crate::domain::{ApplyPod, PodKey, tombstone};
use crate::store::error::StoreError;

/// How many times a write tries again after its pod changed under it
/// before it gives up (it did not happen): only a pod written this often
/// by others at once gets there.
const ATTEMPTS: usize = 64;

impl Shared {
    /// Applies a pod. `known` is what this server's previous write of the
    /// pod learned (see [`pod_turns`](super::pod_turns)); it is updated.
    pub(super) async fn apply(
        &self,
        apply: ApplyPod,
        known: &mut Option<Known>,
    ) -> Result<Arc<Pod>, StoreError> {
        let key = self.keys.pod(&apply.key);
        let value = keys::encode(&apply.key, &apply.status, apply.replicas);
        let mut seen = match apply.expected_version {
            Some(expected) => expected,
            None => self.last_seen(&apply.key, *known),
        };
        for _ in 0..ATTEMPTS {
            let done = self
                .etcd
                .txn(apply_txn(&self.keys, &key, value.clone(), seen))
                .await?;
            let at = revision_of(done.header.as_ref())?;
            if done.succeeded {
                *known = Some(Known {
                    at,
                    mod_revision: at,
                });
                return Ok(Arc::new(apply.stored_at(at)));
            }
            let current = current_version(&done);
            *known = Some(Known {
                at,
                mod_revision: current.unwrap_or(0),
            });
            match apply.expected_version {
                Some(expected) => {
                    return Err(StoreError::Conflict {
                        expected,
                        key: apply.key,
                        current,
                    });
                }
                None => seen = current.unwrap_or(0),
            }
        }
        Err(too_busy(&apply.key))
    }

    /// Deletes a pod; `known` as for [`apply`](Self::apply).
    pub(super) async fn delete(
        &self,
        pod: PodKey,
        known: &mut Option<Known>,
    ) -> Result<Arc<Pod>, StoreError> {
        let key = self.keys.pod(&pod);
        let mut seen = self.last_seen(&pod, *known);
        for _ in 0..ATTEMPTS {
            // Absent as far as this server knows: etcd confirms it (or
            // returns the pod someone created meanwhile) without deleting.
            let success = if seen == 0 {
                Vec::new()
            } else {
                vec![
                    RequestOp {
                        request: Some(request_op::Request::RequestDeleteRange(
                            DeleteRangeRequest {
                                key: key.clone(),
                                prev_kv: true,
                                ..DeleteRangeRequest::default()
                            },
                        )),
                    },
                    registry::put(self.keys.revision(), Vec::new(), 0),
                ]
            };
            let done = self
                .etcd
                .txn(TxnRequest {
                    compare: vec![unchanged_since(&key, seen)],
                    success,
                    failure: vec![get(&key)],
                })
                .await?;
            let at = revision_of(done.header.as_ref())?;
            if !done.succeeded {
                seen = current_version(&done).unwrap_or(0);
                *known = Some(Known {
                    at,
                    mod_revision: seen,
                });
                continue;
            }
            *known = Some(Known {
                at,
                mod_revision: 0,
            });
            if seen == 0 {
                return Err(StoreError::NotFound(pod));
            }
            let version = at;
            let before = done
                .responses
                .first()
                .and_then(|op| match &op.response {
                    Some(response_op::Response::ResponseDeleteRange(deleted)) => {
                        deleted.prev_kvs.first()
                    }
                    _ => None,
                })
                .and_then(|kv| keys::decode(&pod, &kv.value, kv.mod_revision))
                .ok_or_else(|| registry::foreign(&self.keys, &self.keys.pod(&pod)))?;
            return Ok(Arc::new(tombstone(&before, version)));
        }
        Err(too_busy(&pod))
    }

    /// The pod's `mod_revision` as this server last saw it: from the
    /// cache, unless the previous write of the pod learned of a newer
    /// revision than the cache has reached.
    fn last_seen(&self, pod: &PodKey, known: Option<Known>) -> u64 {
        match known {
            Some(known) if self.cache.version() < known.at => known.mod_revision,
            _ => self.cache.pod_version(pod).unwrap_or(0),
        }
    }
}

/// The transaction of an apply: the pod's new value, if it is still at
/// `seen`, with the registry's `revision` key; else the pod as it is.
pub(super) fn apply_txn(keys: &Keys, key: &[u8], value: Vec<u8>, seen: u64) -> TxnRequest {
    TxnRequest {
        compare: vec![unchanged_since(key, seen)],
        success: vec![
            registry::put(key.to_vec(), value, 0),
            registry::put(keys.revision(), Vec::new(), 0),
        ],
        failure: vec![get(key)],
    }
}

/// Holds while the pod's last change is at `version` (0: it does not
/// exist, which etcd compares as a `mod_revision` of 0).
fn unchanged_since(key: &[u8], version: u64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal.into(),
        target: compare::CompareTarget::Mod.into(),
        key: key.to_vec(),
        target_union: Some(compare::TargetUnion::ModRevision(
            i64::try_from(version).unwrap_or(i64::MAX),
        )),
        range_end: Vec::new(),
    }
}

fn get(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(registry::get(
            key.to_vec(),
        ))),
    }
}

/// The version of the pod a failed transaction's `Else` branch read:
/// `None` when it does not exist.
fn current_version(done: &TxnResponse) -> Option<u64> {
    done.responses.first().and_then(|op| match &op.response {
        Some(response_op::Response::ResponseRange(range)) => range
            .kvs
            .first()
            .and_then(|kv| u64::try_from(kv.mod_revision).ok()),
        _ => None,
    })
}

fn too_busy(pod: &PodKey) -> StoreError {
    StoreError::Unavailable(format!(
        "pod {pod} changed {ATTEMPTS} times while this write tried to apply over it; \
         it did not happen: try again"
    ))
}

/// The revision a response was given at.
pub(super) fn revision_of(header: Option<&ResponseHeader>) -> Result<u64, StoreError> {
    header
        .and_then(|header| u64::try_from(header.revision).ok())
        .filter(|revision| *revision > 0)
        .ok_or_else(|| StoreError::Storage("etcd answered without a revision".into()))
}
