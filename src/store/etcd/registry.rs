//! Opening a registry: telling ours from foreign data under the prefix,
//! and loading the starting pods into a new registry exactly once, however
//! many servers start at the same moment.
//!
//! The `registry` key says where a registry is. A server that finds it
//! absent claims it with a transaction that succeeds only if no key under
//! the prefix was ever created (so foreign data is refused in the same
//! step), under a lease, loads
//! the pods in a few transactions, and then marks it ready. Every other
//! server waits for "ready". If the loader dies, its lease ends, the claim
//! disappears and the next server starts over (rewriting the same pods).

use std::time::Duration;

use tokio::time::Instant;

use super::api::etcdserverpb::{
    Compare, PutRequest, RangeRequest, RequestOp, TxnRequest, compare, request_op, response_op,
};
use super::client::Etcd;
use super::keys::{self, Keys};
use crate::domain::ApplyPod;
use crate::store::error::StoreError;

const LOADING: &[u8] = b"pod-service registry v1: loading";
const READY: &[u8] = b"pod-service registry v1: ready";
/// How long a claim lives if its server stops renewing it (by dying).
const CLAIM_SECONDS: i64 = 30;
/// Pods per transaction: etcd allows 128 operations in one by default.
const PODS_PER_TXN: usize = 100;
/// How long a server waits for another to finish loading.
const WAIT_FOR_LOADER: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// Makes sure the prefix holds a ready registry; returns the etcd cluster's
/// id and how many starting pods this server loaded (`None`: the registry
/// was there, or another server loaded it).
pub(super) async fn prepare(
    etcd: &Etcd,
    keys: &Keys,
    seed: Vec<ApplyPod>,
) -> Result<(u64, Option<usize>), StoreError> {
    let deadline = Instant::now() + WAIT_FOR_LOADER;
    loop {
        let found = etcd.range(get(keys.registry())).await?;
        let cluster = found.header.as_ref().map_or(0, |header| header.cluster_id);
        match found.kvs.first().map(|kv| kv.value.as_slice()) {
            Some(READY) => return Ok((cluster, None)),
            Some(LOADING) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
            Some(LOADING) => {
                return Err(StoreError::Unavailable(format!(
                    "another server has been loading the registry at {} for over {}s",
                    prefix(keys),
                    WAIT_FOR_LOADER.as_secs()
                )));
            }
            Some(_) => return Err(foreign(keys, &keys.registry())),
            None => match claim_and_load(etcd, keys, &seed).await? {
                Claim::Loaded(loaded) => return Ok((cluster, Some(loaded))),
                // Another server claimed it first: wait for it.
                Claim::Taken => {}
                Claim::Foreign => return Err(foreign_data(etcd, keys).await),
            },
        }
    }
}

enum Claim {
    Loaded(usize),
    Taken,
    /// The prefix holds keys, but no registry.
    Foreign,
}

/// Claims a new registry and loads `seed`.
async fn claim_and_load(etcd: &Etcd, keys: &Keys, seed: &[ApplyPod]) -> Result<Claim, StoreError> {
    let lease = etcd.grant_lease(CLAIM_SECONDS).await?;
    let (key, range_end) = keys.all();
    // One comparison over the whole prefix: it holds only if no key there
    // was ever created, so the claim and the check for foreign data are
    // one step, and exactly one server wins.
    let claim = etcd
        .txn(TxnRequest {
            compare: vec![Compare {
                result: compare::CompareResult::Equal.into(),
                target: compare::CompareTarget::Create.into(),
                key,
                target_union: Some(compare::TargetUnion::CreateRevision(0)),
                range_end,
            }],
            success: vec![put(keys.registry(), LOADING.to_vec(), lease)],
            failure: vec![RequestOp {
                request: Some(request_op::Request::RequestRange(get(keys.registry()))),
            }],
        })
        .await?;
    if !claim.succeeded {
        let registry_there = claim.responses.iter().any(|op| {
            matches!(&op.response, Some(response_op::Response::ResponseRange(range)) if !range.kvs.is_empty())
        });
        return Ok(if registry_there {
            Claim::Taken
        } else {
            Claim::Foreign
        });
    }
    let claimed_at = claim.header.map_or(0, |header| header.revision);
    // Each step holds only while the claim is still this server's.
    let still_ours = || Compare {
        result: compare::CompareResult::Equal.into(),
        target: compare::CompareTarget::Mod.into(),
        key: keys.registry(),
        target_union: Some(compare::TargetUnion::ModRevision(claimed_at)),
        range_end: Vec::new(),
    };
    for chunk in seed.chunks(PODS_PER_TXN) {
        let mut success: Vec<RequestOp> = chunk
            .iter()
            .map(|pod| {
                put(
                    keys.pod(&pod.key),
                    keys::encode(&pod.key, &pod.status, pod.replicas),
                    0,
                )
            })
            .collect();
        success.push(put(keys.revision(), Vec::new(), 0));
        let loaded = etcd
            .txn(TxnRequest {
                compare: vec![still_ours()],
                success,
                failure: Vec::new(),
            })
            .await?;
        if !loaded.succeeded {
            return Err(lost_claim(keys));
        }
    }
    let ready = etcd
        .txn(TxnRequest {
            compare: vec![still_ours()],
            success: vec![put(keys.registry(), READY.to_vec(), 0)],
            failure: Vec::new(),
        })
        .await?;
    if !ready.succeeded {
        return Err(lost_claim(keys));
    }
    Ok(Claim::Loaded(seed.len()))
}

/// The error for a prefix that holds keys but no registry, naming one.
async fn foreign_data(etcd: &Etcd, keys: &Keys) -> StoreError {
    let (key, range_end) = keys.all();
    let found = etcd
        .range(RangeRequest {
            key,
            range_end,
            limit: 1,
            keys_only: true,
            ..RangeRequest::default()
        })
        .await;
    match found {
        Ok(found) => match found.kvs.first() {
            Some(kv) => foreign(keys, &kv.key),
            None => foreign(keys, keys.prefix()),
        },
        Err(err) => err.into(),
    }
}

pub(super) fn foreign(keys: &Keys, key: &[u8]) -> StoreError {
    StoreError::Storage(format!(
        "the etcd prefix {} holds data that is not a pod registry's ({:?}); \
         choose another --etcd-prefix",
        prefix(keys),
        String::from_utf8_lossy(key)
    ))
}

fn lost_claim(keys: &Keys) -> StoreError {
    StoreError::Unavailable(format!(
        "loading the new registry at {} took longer than its {CLAIM_SECONDS}s claim; \
         start the server again",
        prefix(keys)
    ))
}

fn prefix(keys: &Keys) -> String {
    String::from_utf8_lossy(keys.prefix()).into_owned()
}

pub(super) fn get(key: Vec<u8>) -> RangeRequest {
    RangeRequest {
        key,
        ..RangeRequest::default()
    }
}

pub(super) fn put(key: Vec<u8>, value: Vec<u8>, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key,
            value,
            lease,
            ..PutRequest::default()
        })),
    }
}
