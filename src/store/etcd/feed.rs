//! The one etcd watch of a server: it feeds every change under the
//! registry's prefix into the server's watch cache, which serves all of the
//! server's watchers (as kube-apiserver's watch cache does), so etcd
//! carries one watch per server however many clients watch.
//!
//! The feed asks for each change's previous value (a delete's tombstone is
//! the pod as it was), resumes after its last applied revision on another
//! member when a stream breaks, and guards against etcd 3.4's known watch
//! bugs: an event at or below the last applied revision is dropped, and a
//! revision that goes backwards starts the cache over from a fresh list.
//! When etcd has compacted past where the feed would resume, the cache
//! starts over from the pods at the compacted revision. Everything it
//! learns reaches the cache as one [`Observed`] at a time.

use std::sync::Arc;
use std::time::Duration;

use super::api::etcdserverpb::{RangeRequest, WatchCreateRequest, WatchRequest, watch_request};
use super::api::mvccpb::{Event, event::EventType};
use super::client::ReadError;
use super::keys::{self, Kind};
use super::shared::Shared;
use crate::contract::Pod;
use crate::domain::tombstone;
use crate::metrics::FeedRestart;
use crate::store::cache::Observed;
use crate::store::error::StoreError;

/// Waits between attempts when no member takes the watch.
const RETRY: Duration = Duration::from_millis(200);

/// Why a watch stream ended.
enum End {
    /// The stream broke; resume after the last applied revision.
    Broken(String),
    /// etcd compacted past the resume point; start over at this revision.
    Compacted(i64),
    /// The stream cannot be trusted; start over from the current pods.
    Reset(String),
}

/// Follows the prefix until the store closes.
pub(super) async fn follow(inner: Arc<Shared>) {
    let mut member = None;
    loop {
        let from = inner.cache.version() + 1;
        let create = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key: inner.keys.prefix().to_vec(),
                    range_end: inner.keys.all().1,
                    start_revision: i64::try_from(from).unwrap_or(i64::MAX),
                    prev_kv: true,
                    ..WatchCreateRequest::default()
                },
            )),
        };
        let end = match inner.etcd.watch(create, member).await {
            // The request side stays open while `_requests` lives.
            Ok((stream, _requests, index)) => {
                member = Some(index);
                run(&inner, stream).await
            }
            Err(err) => End::Broken(err.to_string()),
        };
        let metrics = &inner.cache.config().metrics;
        match end {
            End::Broken(why) => {
                metrics.feed_restarted(FeedRestart::Broken);
                tracing::warn!(
                    member = member.map(|m| inner.etcd.url(m)),
                    "the etcd watch broke ({why}); resuming after revision {}",
                    inner.cache.version()
                );
                tokio::time::sleep(RETRY).await;
            }
            End::Compacted(revision) => {
                metrics.feed_restarted(FeedRestart::Compacted);
                if let Err(err) = start_over(&inner, revision).await {
                    tracing::warn!(%err, "cannot start over from etcd");
                    tokio::time::sleep(RETRY).await;
                }
            }
            End::Reset(why) => {
                metrics.feed_restarted(FeedRestart::StartOver);
                tracing::warn!("the etcd watch went wrong ({why}); listing again");
                if let Err(err) = start_over(&inner, 0).await {
                    tracing::warn!(%err, "cannot start over from etcd");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }
}

async fn run(
    inner: &Shared,
    mut stream: tonic::Streaming<super::api::etcdserverpb::WatchResponse>,
) -> End {
    // The newest revision a response of this stream was at: one that
    // answers from before it has gone back in time.
    let mut newest = 0;
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            () = inner.feed_behind.notified() => {
                return End::Broken("it fell behind etcd".into());
            }
        };
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => return End::Broken("the member ended the stream".into()),
            Err(status) => return End::Broken(status.message().to_owned()),
        };
        if response.canceled {
            if response.compact_revision > 0 {
                return End::Compacted(response.compact_revision);
            }
            return End::Broken(format!("cancelled: {}", response.cancel_reason));
        }
        let applied = inner.cache.version();
        let revision = response
            .header
            .as_ref()
            .map_or(newest, |header| header.revision);
        if revision < newest {
            return End::Reset(format!(
                "the member answered at revision {revision} after revision {newest}"
            ));
        }
        newest = revision;
        let mut changes = Vec::with_capacity(response.events.len());
        let mut compacted = None;
        for event in response.events {
            match change(inner, event, applied) {
                Ok(Seen::Pod(pod)) => changes.push(Arc::new(pod)),
                Ok(Seen::Compacted(revision)) => compacted = Some(revision),
                Ok(Seen::Nothing) => {}
                Err(end) => return end,
            }
        }
        if !changes.is_empty() {
            inner.cache.observe(Observed::Changes(changes));
        }
        if let Some(revision) = compacted {
            inner.cache.observe(Observed::Compacted(revision));
        }
    }
}

enum Seen {
    Pod(Pod),
    /// The registry compacted etcd at this revision.
    Compacted(u64),
    Nothing,
}

fn change(inner: &Shared, event: Event, applied: u64) -> Result<Seen, End> {
    let Some(kv) = event.kv else {
        return Ok(Seen::Nothing);
    };
    let version = u64::try_from(kv.mod_revision).unwrap_or(0);
    let kind = inner.keys.kind(&kv.key);
    if let Kind::Compacted = kind {
        // Not a change of the cache (nor counted by its version), and
        // harmless twice: taken whatever its revision.
        return Ok(std::str::from_utf8(&kv.value)
            .ok()
            .and_then(|value| value.parse().ok())
            .map_or(Seen::Nothing, Seen::Compacted));
    }
    if version <= applied {
        // Delivered twice (etcd#15271, #17529): applied already.
        return Ok(Seen::Nothing);
    }
    let key = match kind {
        Kind::Pod(key) => key,
        Kind::Compacted => return Ok(Seen::Nothing),
        Kind::Revision | Kind::Registry => return Ok(Seen::Nothing),
        Kind::Foreign => {
            tracing::warn!(key = %String::from_utf8_lossy(&kv.key), "ignoring a foreign key under the prefix");
            return Ok(Seen::Nothing);
        }
    };
    let pod = if event.r#type == EventType::Delete as i32 {
        let Some(before) = event
            .prev_kv
            .and_then(|prev| keys::decode(&key, &prev.value, prev.mod_revision))
        else {
            return Err(End::Reset(format!(
                "the delete of {key} came without the pod"
            )));
        };
        tombstone(&before, version)
    } else {
        match keys::decode(&key, &kv.value, kv.mod_revision) {
            Some(pod) => pod,
            None => {
                tracing::warn!(%key, "ignoring a value that is not a pod");
                return Ok(Seen::Nothing);
            }
        }
    };
    Ok(Seen::Pod(pod))
}

/// Brings the cache to where etcd can be followed from, before the server
/// serves: when etcd has compacted past the cache's version (a new
/// server's cache is at 0, and a long-running cluster has always been
/// compacted, by this registry or another), the cache starts over from the
/// pods at the compacted revision now, while no watcher exists to be ended
/// by it, rather than once the feed's watch is refused after serving began.
pub(super) async fn establish(inner: &Shared) -> Result<(), StoreError> {
    let from = inner.cache.version() + 1;
    if let Some(compacted) = compacted_past(inner, from).await? {
        start_over(inner, compacted).await?;
    }
    Ok(())
}

/// etcd's compacted revision if it is past `from`, found by ranges at
/// revisions (etcd 3.4 tells its compacted revision only to a watch that
/// it cancels, and does so asynchronously): a range at a revision fails
/// exactly when that revision is older than the compacted one, so a binary
/// search between `from` and the current revision finds it in a few dozen
/// small reads.
async fn compacted_past(inner: &Shared, from: u64) -> Result<Option<i64>, ReadError> {
    let at = |revision: i64| RangeRequest {
        keys_only: true,
        limit: 1,
        revision,
        ..super::registry::get(inner.keys.revision())
    };
    let from = i64::try_from(from).unwrap_or(i64::MAX);
    let now = inner.etcd.range(at(0)).await?;
    let now = now.header.as_ref().map_or(0, |header| header.revision);
    if from > now {
        return Ok(None);
    }
    match inner.etcd.range(at(from)).await {
        Ok(_) => return Ok(None),
        Err(ReadError::Compacted) => {}
        Err(err) => return Err(err),
    }
    // The oldest readable revision lies in (compacted, readable].
    let (mut compacted, mut readable) = (from, now);
    while readable - compacted > 1 {
        let middle = compacted + (readable - compacted) / 2;
        match inner.etcd.range(at(middle)).await {
            Ok(_) => readable = middle,
            Err(ReadError::Compacted) => compacted = middle,
            Err(err) => return Err(err),
        }
    }
    Ok(Some(readable))
}

/// Replaces the cache with the pods as they are at `revision` (0: now).
pub(super) async fn start_over(inner: &Shared, revision: i64) -> Result<(), StoreError> {
    let (pods, at) = match load(inner, revision).await {
        Err(ReadError::Compacted) if revision > 0 => load(inner, 0).await?,
        loaded => loaded?,
    };
    tracing::info!(
        pods = pods.len(),
        revision = at,
        "the cache starts over from etcd"
    );
    inner
        .cache
        .observe(Observed::StartOver { pods, version: at });
    Ok(())
}

/// Every pod under the prefix at `revision` (0: now), each with the
/// revision that created it, and that revision.
async fn load(inner: &Shared, revision: i64) -> Result<(Vec<(Pod, u64)>, u64), ReadError> {
    let (mut key, range_end) = inner.keys.pods(None);
    let mut pods = Vec::new();
    let mut at = revision;
    loop {
        let page = inner
            .etcd
            .range(RangeRequest {
                key,
                range_end: range_end.clone(),
                limit: 1_000,
                revision: at,
                ..RangeRequest::default()
            })
            .await?;
        if at == 0 {
            at = page.header.as_ref().map_or(0, |header| header.revision);
        }
        for kv in &page.kvs {
            let Kind::Pod(pod_key) = inner.keys.kind(&kv.key) else {
                return Err(ReadError::Failed(super::registry::foreign(
                    &inner.keys,
                    &kv.key,
                )));
            };
            let pod = keys::decode(&pod_key, &kv.value, kv.mod_revision)
                .ok_or_else(|| ReadError::Failed(super::registry::foreign(&inner.keys, &kv.key)))?;
            pods.push((pod, u64::try_from(kv.create_revision).unwrap_or(0)));
        }
        match page.kvs.last() {
            Some(last) if page.more => {
                key = last.key.clone();
                key.push(0);
            }
            _ => break,
        }
    }
    Ok((pods, u64::try_from(at).unwrap_or(0)))
}
