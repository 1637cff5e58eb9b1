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
//! disappears, and the next server finds only a registry's own keys under
//! the prefix: it claims the registry key alone, deletes the unfinished
//! load's pods in the same transaction, and loads again.

use std::time::Duration;

use tokio::time::Instant;

use super::api::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, compare,
    request_op, response_op,
};
use super::client::Etcd;
use super::keys::{self, Keys, Kind};
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
            None => match claim_and_load(etcd, keys, &seed, Start::New).await? {
                Claim::Loaded(loaded) => return Ok((cluster, Some(loaded))),
                // Another server claimed it first: wait for it.
                Claim::Taken => {}
                Claim::Foreign => match first_foreign_key(etcd, keys).await? {
                    Some(key) => return Err(foreign(keys, &key)),
                    // Only a registry's own keys, and no registry: a loader
                    // died before it was done (its claim expired). Start over.
                    None => {
                        if let Claim::Loaded(loaded) =
                            claim_and_load(etcd, keys, &seed, Start::Over).await?
                        {
                            return Ok((cluster, Some(loaded)));
                        }
                    }
                },
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

/// Whether a claim is for an empty prefix, or for the remains of a load
/// that did not finish.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    New,
    Over,
}

/// Claims a new registry and loads `seed`.
async fn claim_and_load(
    etcd: &Etcd,
    keys: &Keys,
    seed: &[ApplyPod],
    start: Start,
) -> Result<Claim, StoreError> {
    let lease = etcd.grant_lease(CLAIM_SECONDS).await?;
    // A new registry: one comparison over the whole prefix, which holds
    // only if no key exists there, so the claim and the check for foreign
    // data are one step and exactly one server wins. Starting over: the
    // registry key alone, and the unfinished load's pods go first.
    let (key, range_end) = match start {
        Start::New => keys.all(),
        Start::Over => (keys.registry(), Vec::new()),
    };
    let mut success = Vec::new();
    if start == Start::Over {
        let (key, range_end) = keys.pods(None);
        success.push(RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key,
                    range_end,
                    ..DeleteRangeRequest::default()
                },
            )),
        });
    }
    success.push(put(keys.registry(), LOADING.to_vec(), lease));
    let claim = etcd
        .txn(TxnRequest {
            compare: vec![Compare {
                result: compare::CompareResult::Equal.into(),
                target: compare::CompareTarget::Create.into(),
                key,
                target_union: Some(compare::TargetUnion::CreateRevision(0)),
                range_end,
            }],
            success,
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

/// The first key under the prefix that is not one a registry writes.
async fn first_foreign_key(etcd: &Etcd, keys: &Keys) -> Result<Option<Vec<u8>>, StoreError> {
    let (mut key, range_end) = keys.all();
    loop {
        let page = etcd
            .range(RangeRequest {
                key,
                range_end: range_end.clone(),
                limit: 1_000,
                keys_only: true,
                ..RangeRequest::default()
            })
            .await?;
        if let Some(kv) = page
            .kvs
            .iter()
            .find(|kv| keys.kind(&kv.key) == Kind::Foreign)
        {
            return Ok(Some(kv.key.clone()));
        }
        match page.kvs.last() {
            Some(last) if page.more => {
                key = last.key.clone();
                key.push(0);
            }
            _ => return Ok(None),
        }
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
