//! One write at a time per pod on one server. Writes to one pod cannot
//! commit together anyway: each compares the pod's `mod_revision`
//! ([`txn`](super::txn)), so of those sent at once one wins and the others
//! fail their compare and try again, which costs n² transactions for n
//! writers and can give up on a busy pod. Queued here, they go one after
//! another, each compared against what the one before it left, and only
//! writes from other servers can still make one try again.
//!
//! An entry exists while some write of the pod holds or waits for it, so
//! the map is as small as the writes in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

use crate::domain::PodKey;

/// What the last write of a pod on this server learned about it, for the
/// next one, which may run before the cache has that revision.
#[derive(Debug, Clone, Copy)]
pub(super) struct Known {
    /// etcd's revision when it was learned.
    pub at: u64,
    /// The pod's `mod_revision` then (0: absent).
    pub mod_revision: u64,
}

type Slot = Arc<tokio::sync::Mutex<Option<Known>>>;

/// The pods being written on this server.
#[derive(Default)]
pub(super) struct PodTurns {
    pods: Arc<Mutex<HashMap<PodKey, Slot>>>,
}

/// A pod's turn: held while its transaction runs; what the write learns
/// is left in [`PodTurn::known`] for the next.
pub(super) struct PodTurn {
    guard: OwnedMutexGuard<Option<Known>>,
    pod: PodKey,
    pods: Arc<Mutex<HashMap<PodKey, Slot>>>,
}

impl PodTurns {
    /// Waits until no other write of `pod` on this server is running.
    pub async fn take(&self, pod: &PodKey) -> PodTurn {
        let slot = Arc::clone(self.lock().entry(pod.clone()).or_default());
        PodTurn {
            guard: slot.lock_owned().await,
            pod: pod.clone(),
            pods: Arc::clone(&self.pods),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PodKey, Slot>> {
        self.pods.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl PodTurn {
    /// What the previous write of this pod learned, if one ran just before.
    pub fn known(&mut self) -> &mut Option<Known> {
        &mut self.guard
    }
}

impl Drop for PodTurn {
    fn drop(&mut self) {
        let mut pods = self.pods.lock().unwrap_or_else(PoisonError::into_inner);
        // Held by the map and this turn only: no write of the pod waits.
        // (A write that comes after may start before this guard is gone;
        // this one's transaction is over, so only `known` is lost.)
        if pods
            .get(&self.pod)
            .is_some_and(|slot| Arc::strong_count(slot) == 2)
        {
            pods.remove(&self.pod);
        }
    }
}
