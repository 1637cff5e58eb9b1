//! etcd's own write ceiling for the store's transaction shape, measured
//! without a server in between: what `pod-bench etcd-ceiling` reports, so
//! that a replica's write rate can be set beside what etcd itself takes on
//! the same machine.
//!
//! Each caller sends the very transaction a pod apply sends
//! ([`apply_txn`]: compare the pod's `mod_revision`, put the pod and the
//! registry's `revision` key, else read the pod), one at a time, over pods
//! of its own, so every compare holds; callers run side by side over this
//! crate's etcd client, as a replica's sessions do. The keys live under a
//! prefix of the run's own, deleted afterwards.

use std::time::{Duration, Instant};

use futures::future::try_join_all;

use super::api::etcdserverpb::{DeleteRangeRequest, RequestOp, TxnRequest, request_op};
use super::client::Etcd;
use super::keys::{self, Keys};
use super::txn::{apply_txn, revision_of};
use crate::domain::PodKey;
use crate::store::error::StoreError;
use crate::store::tls::BackendTls;

/// Pods each caller cycles through.
const PODS_PER_CALLER: usize = 10;

/// What a run measured.
#[derive(Debug, Clone)]
pub struct WriteCeiling {
    /// How long the callers sent transactions.
    pub elapsed: Duration,
    /// Each committed transaction's round trip, in no particular order.
    pub latencies: Vec<Duration>,
}

/// Runs `callers` callers against `endpoints` (over `tls` if they are
/// `https://`) for `duration`, under keys
/// starting with `prefix` (which must hold nothing else: it is deleted
/// afterwards).
pub async fn write_ceiling(
    endpoints: &[String],
    tls: Option<&BackendTls>,
    prefix: &str,
    callers: usize,
    duration: Duration,
) -> Result<WriteCeiling, StoreError> {
    if prefix.is_empty() {
        return Err(StoreError::Storage("the prefix must not be empty".into()));
    }
    let etcd = Etcd::new(endpoints, tls).map_err(StoreError::Storage)?;
    let keys = Keys::new(prefix);
    let started = Instant::now();
    let until = started + duration;
    let runs = (0..callers).map(|caller| call(&etcd, &keys, caller, until));
    let measured = try_join_all(runs).await;
    let elapsed = started.elapsed();
    let (all, range_end) = keys.all();
    let cleared = etcd
        .txn(TxnRequest {
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestDeleteRange(
                    DeleteRangeRequest {
                        key: all,
                        range_end,
                        ..DeleteRangeRequest::default()
                    },
                )),
            }],
            ..TxnRequest::default()
        })
        .await;
    let latencies = measured?.concat();
    cleared?;
    Ok(WriteCeiling { elapsed, latencies })
}

/// One caller: applies its pods in turn until `until`.
async fn call(
    etcd: &Etcd,
    keys: &Keys,
    caller: usize,
    until: Instant,
) -> Result<Vec<Duration>, StoreError> {
    let pods: Vec<PodKey> = (0..PODS_PER_CALLER)
        .map(|i| PodKey::new("ceiling", format!("caller-{caller}-pod-{i}")))
        .collect();
    let mut versions = vec![0; pods.len()];
    let mut latencies = Vec::new();
    for round in 0.. {
        let sent = Instant::now();
        if sent >= until {
            break;
        }
        let i = round % pods.len();
        let value = keys::encode(&pods[i], "Running", i32::try_from(round).unwrap_or(0));
        let done = etcd
            .txn(apply_txn(keys, &keys.pod(&pods[i]), value, versions[i]))
            .await?;
        if !done.succeeded {
            return Err(StoreError::Storage(format!(
                "pod {} changed under its only writer: is the prefix shared?",
                pods[i]
            )));
        }
        versions[i] = revision_of(done.header.as_ref())?;
        latencies.push(sent.elapsed());
    }
    Ok(latencies)
}
