//! The etcd transactions of a pod's writes: an apply that holds only at
//! the expected version, a delete that holds only if the pod exists, and
//! both rewriting the registry's `revision` key in the same revision, so
//! that a quorum read of it gives the newest change (see [`fresh`](super::fresh)).

use std::sync::Arc;

use super::api::etcdserverpb::{
    Compare, DeleteRangeRequest, RequestOp, ResponseHeader, TxnRequest, compare, request_op,
    response_op,
};
use super::keys;
use super::registry;
use super::shared::Shared;
use crate::contract::Pod;
use crate::domain::{ApplyPod, PodKey, tombstone};
use crate::store::error::StoreError;

impl Shared {
    pub(super) async fn apply(&self, apply: ApplyPod) -> Result<Arc<Pod>, StoreError> {
        let key = self.keys.pod(&apply.key);
        let compare = apply
            .expected_version
            .map(|expected| Compare {
                result: compare::CompareResult::Equal.into(),
                target: compare::CompareTarget::Mod.into(),
                key: key.clone(),
                target_union: Some(compare::TargetUnion::ModRevision(
                    i64::try_from(expected).unwrap_or(i64::MAX),
                )),
                range_end: Vec::new(),
            })
            .into_iter()
            .collect();
        let value = keys::encode(&apply.key, &apply.status, apply.replicas);
        let done = self
            .etcd
            .txn(TxnRequest {
                compare,
                success: vec![
                    registry::put(key.clone(), value, 0),
                    registry::put(self.keys.revision(), Vec::new(), 0),
                ],
                failure: vec![RequestOp {
                    request: Some(request_op::Request::RequestRange(registry::get(key))),
                }],
            })
            .await?;
        if !done.succeeded {
            let current = done.responses.first().and_then(|op| match &op.response {
                Some(response_op::Response::ResponseRange(range)) => {
                    range.kvs.first().map(|kv| kv.mod_revision as u64)
                }
                _ => None,
            });
            return Err(StoreError::Conflict {
                expected: apply.expected_version.unwrap_or_default(),
                key: apply.key,
                current,
            });
        }
        let version = revision_of(done.header.as_ref())?;
        Ok(Arc::new(apply.stored_at(version)))
    }

    pub(super) async fn delete(&self, pod: PodKey) -> Result<Arc<Pod>, StoreError> {
        let key = self.keys.pod(&pod);
        let done = self
            .etcd
            .txn(TxnRequest {
                compare: vec![Compare {
                    result: compare::CompareResult::Greater.into(),
                    target: compare::CompareTarget::Create.into(),
                    key: key.clone(),
                    target_union: Some(compare::TargetUnion::CreateRevision(0)),
                    range_end: Vec::new(),
                }],
                success: vec![
                    RequestOp {
                        request: Some(request_op::Request::RequestDeleteRange(
                            DeleteRangeRequest {
                                key,
                                prev_kv: true,
                                ..DeleteRangeRequest::default()
                            },
                        )),
                    },
                    registry::put(self.keys.revision(), Vec::new(), 0),
                ],
                failure: Vec::new(),
            })
            .await?;
        if !done.succeeded {
            return Err(StoreError::NotFound(pod));
        }
        let version = revision_of(done.header.as_ref())?;
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
        Ok(Arc::new(tombstone(&before, version)))
    }
}

/// The revision a response was given at.
pub(super) fn revision_of(header: Option<&ResponseHeader>) -> Result<u64, StoreError> {
    header
        .and_then(|header| u64::try_from(header.revision).ok())
        .filter(|revision| *revision > 0)
        .ok_or_else(|| StoreError::Storage("etcd answered without a revision".into()))
}
