//! A cluster backend's one input: what it saw happen in the store that
//! every server shares, as kube-rs' reflector takes one watcher event at a
//! time. The backend is the cache's only writer; the cache never asks it
//! for anything.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::state::{Entry, WatchCache};
use crate::contract::Pod;
use crate::domain::PodKey;
use crate::store::pod_log::PodLog;

/// Something that happened in a shared store.
pub(crate) enum Observed {
    /// Changes made by any server, in increasing version order, each newer
    /// than the cache's version (each carries its version).
    Changes(Vec<Arc<Pod>>),
    /// The store is at least at this version, although no change of ours
    /// carries it: a store whose versions also count writes to other data
    /// (etcd's revisions) says so after a quorum read. Later changes must
    /// be newer.
    Progress(u64),
    /// The store forgot its history up to this version (etcd compacted): a
    /// watch can no longer resume from before it, as on the store itself.
    Compacted(u64),
    /// The follower lost its place: start over from these pods at this
    /// version, with an empty history. Each pod comes with the version
    /// that created it. Every watcher of the state before ends (as
    /// [`WatchEnd::StartedOver`](crate::store::WatchEnd)) with the version
    /// to resume from, which the new history cannot continue from.
    StartOver {
        /// Every pod, with the version that created it.
        pods: Vec<(Pod, u64)>,
        /// The version the pods were read at.
        version: u64,
    },
}

impl WatchCache {
    /// Takes what a cluster backend saw.
    pub fn observe(&self, observed: Observed) {
        let mut state = self.write();
        match observed {
            Observed::Changes(changes) => self.publish(&mut state, changes),
            Observed::Progress(version) => {
                if version > state.version {
                    state.version = version;
                    self.versions.send_replace(version);
                }
            }
            Observed::Compacted(version) => {
                let cut = state
                    .history
                    .partition_point(|change| change.pod.resource_version <= version);
                state.history.drain(..cut);
                let version = version.min(state.version);
                state.continues_from = state.continues_from.max(version);
                state.undoes_from = state.undoes_from.max(version);
            }
            Observed::StartOver { pods, version } => {
                let logs: HashMap<PodKey, Arc<PodLog>> = std::mem::take(&mut state.pods)
                    .into_iter()
                    .map(|(key, entry)| (key, entry.log))
                    .collect();
                state.pods = pods
                    .into_iter()
                    .map(|(pod, created)| {
                        let key = PodKey::of(&pod);
                        // A pod that is still there, in the same life, keeps its log.
                        let log = logs
                            .get(&key)
                            .filter(|log| log.created() == created)
                            .cloned()
                            .unwrap_or_else(|| {
                                Arc::new(PodLog::new(self.config.log_bytes_per_pod, created))
                            });
                        let pod = Arc::new(pod);
                        (key, Entry { pod, log })
                    })
                    .collect();
                for (key, log) in &logs {
                    let kept = state
                        .pods
                        .get(key)
                        .is_some_and(|entry| Arc::ptr_eq(&entry.log, log));
                    if !kept {
                        log.close();
                    }
                }
                state.history.clear();
                state.version = state.version.max(version);
                state.continues_from = state.version;
                state.undoes_from = state.version;
                let _ = state.started_over.set(state.version);
                state.changes = broadcast::channel(self.config.watch_buffer.max(1)).0;
                state.started_over = Arc::default();
                self.versions.send_replace(state.version);
            }
        }
    }
}
