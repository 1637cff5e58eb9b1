//! One run of the durable store's real write paths over a journalling
//! [`Disk`]: sync sessions applying and deleting their pods with writes in
//! flight (so that they share group commits), and uploads appending
//! chunks and then syncing, as `UploadLogs` does. Every acknowledgement is
//! recorded with the number of disk calls made before it was seen.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::join_all;

use super::disk::{Disk, DiskOp};
use crate::contract::Pod;
use crate::domain::{ApplyPod, PodKey};
use crate::store::config::StoreConfig;
use crate::store::durable::DurableStore;
use crate::store::order::WriteOrder;
use crate::store::registry::Registry;

pub const NAMESPACE: &str = "power";
/// A short history, so that runs trim it.
pub const HISTORY: usize = 12;
/// A small log limit, so that uploads drop old chunks.
pub const LOG_BYTES_PER_POD: usize = 3 << 10;
/// How many writes a session keeps in flight.
const SESSION_WINDOW: usize = 4;

/// The store's limits in every run and every reopening.
pub fn config() -> StoreConfig {
    StoreConfig {
        history: HISTORY,
        log_bytes_per_pod: LOG_BYTES_PER_POD,
        ..StoreConfig::default()
    }
}

/// The size of a run.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub sessions: usize,
    pub writes_per_session: usize,
    pub uploaders: usize,
    pub uploads_each: usize,
    pub chunks_per_upload: usize,
    pub lines_per_chunk: usize,
}

/// What a run did, and what it was told.
#[derive(Debug, Default)]
pub struct Run {
    pub journal: Vec<DiskOp>,
    /// Every change the store made, by version: in a run every write
    /// completes, so these are all of them.
    pub changes: BTreeMap<u64, Arc<Pod>>,
    /// Each acknowledged pod write: the disk calls made before it was
    /// seen, and its version.
    pub pod_acks: Vec<(usize, u64)>,
    /// Each acknowledged upload: the disk calls made before it was seen,
    /// the pod, and the number of its last line.
    pub upload_acks: Vec<(usize, PodKey, u64)>,
    /// Every line appended to each uploading pod, line `n` at `n - 1`.
    pub lines: HashMap<PodKey, Vec<String>>,
}

type Record = Arc<Mutex<Run>>;

fn record(run: &Record) -> std::sync::MutexGuard<'_, Run> {
    run.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `workload` on a new store over a new disk, then closes the store.
pub async fn run(workload: Workload) -> Run {
    let disk = Disk::default();
    let (store, cache) =
        DurableStore::open_on(disk.clone(), || disk.name(), config()).expect("a new store opens");
    let store = Arc::new(store);
    let registry = Arc::new(Registry::new(cache, store.clone(), store));
    let recorded = Record::default();

    // The uploading pods first, so that every upload has its pod.
    let uploading: Vec<PodKey> = (0..workload.uploaders)
        .map(|u| PodKey::new(NAMESPACE, format!("up-{u}")))
        .collect();
    for key in &uploading {
        let pod = registry
            .apply(apply(key, "Running", 1))
            .await
            .expect("apply");
        acked(&recorded, &disk, pod);
    }

    let sessions = (0..workload.sessions)
        .map(|s| session(&registry, &disk, &recorded, s, workload.writes_per_session));
    let uploads = uploading
        .iter()
        .map(|key| uploader(&registry, &disk, &recorded, key, workload));
    futures::join!(join_all(sessions), join_all(uploads));

    registry.close().await.expect("the store closes");
    let mut run = std::mem::take(&mut *record(&recorded));
    run.journal = disk.journal();
    let versions: Vec<u64> = run.changes.keys().copied().collect();
    assert!(
        versions.iter().copied().eq(1..=versions.len() as u64),
        "a run's versions are consecutive"
    );
    run
}

/// One session's writes, `SESSION_WINDOW` in flight: applies of its
/// three pods, and now and then a delete of one that exists.
async fn session(registry: &Registry, disk: &Disk, recorded: &Record, id: usize, writes: usize) {
    let mut order = WriteOrder::default();
    let mut exists = [false; 3];
    let mut written = 0;
    while written < writes {
        let mut window = Vec::new();
        for _ in 0..SESSION_WINDOW.min(writes - written) {
            let slot = written % 3;
            let key = PodKey::new(NAMESPACE, format!("s{id}-{slot}"));
            let pending = if exists[slot] && written % 5 == 4 {
                exists[slot] = false;
                registry.delete_in(&mut order, key)
            } else {
                exists[slot] = true;
                let replicas = i32::try_from(written).unwrap_or(i32::MAX);
                registry.apply_in(&mut order, apply(&key, "Running", replicas))
            };
            window.push(pending);
            written += 1;
        }
        for pending in window {
            let pod = pending.await.expect("a write in a run succeeds");
            acked(recorded, disk, pod);
        }
    }
}

/// One pod's uploads, one after another: chunks appended, then a sync,
/// then the acknowledgement.
async fn uploader(
    registry: &Registry,
    disk: &Disk,
    recorded: &Record,
    key: &PodKey,
    workload: Workload,
) {
    for upload in 0..workload.uploads_each {
        for chunk in 0..workload.chunks_per_upload {
            let lines: Vec<String> = (0..workload.lines_per_chunk)
                .map(|line| {
                    format!(
                        "{} upload {upload} chunk {chunk} line {line} of a run cut short",
                        key.name
                    )
                })
                .collect();
            record(recorded)
                .lines
                .entry(key.clone())
                .or_default()
                .extend(lines.iter().cloned());
            let fresh = registry.fresh(0).await.expect("fresh");
            fresh
                .append_log(key.clone(), lines)
                .await
                .expect("an append in a run succeeds");
        }
        registry.sync().await.expect("a sync in a run succeeds");
        let calls = disk.calls();
        let mut run = record(recorded);
        let last_line = run.lines[key].len() as u64;
        run.upload_acks.push((calls, key.clone(), last_line));
    }
}

fn acked(recorded: &Record, disk: &Disk, pod: Arc<Pod>) {
    let calls = disk.calls();
    let mut run = record(recorded);
    run.pod_acks.push((calls, pod.resource_version));
    run.changes.insert(pod.resource_version, pod);
}

pub fn apply(key: &PodKey, status: &str, replicas: i32) -> ApplyPod {
    ApplyPod {
        key: key.clone(),
        status: status.into(),
        replicas,
        expected_version: None,
    }
}
