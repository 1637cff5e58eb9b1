//! The embedded backends' input: writes planned against the cache into a
//! [`Batch`], made durable by the backend, then published in one step.
//!
//! The embedded stores give versions themselves, one after another, so a
//! batch numbers its changes from the published version on, and sees its
//! own earlier ops: a delete after an apply in the same batch finds the pod.

use std::collections::HashMap;
use std::sync::Arc;

use super::state::WatchCache;
use crate::contract::Pod;
use crate::domain::{ApplyPod, PodKey, tombstone};
use crate::store::error::StoreError;

/// Operations planned against the published state, to be published together.
#[derive(Default)]
pub(crate) struct Batch {
    /// The version the batch has reached.
    version: u64,
    /// The state of each pod the batch touched (`None`: deleted).
    touched: HashMap<PodKey, Option<Arc<Pod>>>,
    steps: Vec<Step>,
}

/// One planned operation.
pub(crate) enum Step {
    /// A pod (or tombstone) with its new version.
    Change(Arc<Pod>),
    /// Lines for the log of an existing pod.
    Append(PodKey, Vec<String>),
}

impl Batch {
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl WatchCache {
    /// An empty batch that continues from the published version.
    pub fn batch(&self) -> Batch {
        Batch {
            version: self.version(),
            ..Batch::default()
        }
    }

    /// Plans a create or update; returns the pod as it will be stored.
    pub fn plan_apply(&self, batch: &mut Batch, apply: ApplyPod) -> Result<Arc<Pod>, StoreError> {
        let current = self
            .current(batch, &apply.key)
            .map(|pod| pod.resource_version);
        if let Some(expected) = apply.expected_version
            && current != Some(expected)
        {
            return Err(StoreError::Conflict {
                key: apply.key,
                expected,
                current,
            });
        }
        batch.version += 1;
        let key = apply.key.clone();
        let pod = Arc::new(apply.stored_at(batch.version));
        batch.touched.insert(key, Some(Arc::clone(&pod)));
        batch.steps.push(Step::Change(Arc::clone(&pod)));
        Ok(pod)
    }

    /// Plans a delete; returns the tombstone.
    pub fn plan_delete(&self, batch: &mut Batch, key: PodKey) -> Result<Arc<Pod>, StoreError> {
        let pod = self
            .current(batch, &key)
            .ok_or_else(|| StoreError::NotFound(key.clone()))?;
        batch.version += 1;
        let tombstone = Arc::new(tombstone(&pod, batch.version));
        batch.touched.insert(key, None);
        batch.steps.push(Step::Change(Arc::clone(&tombstone)));
        Ok(tombstone)
    }

    /// Plans an append to an existing pod's log.
    pub fn plan_append(
        &self,
        batch: &mut Batch,
        key: PodKey,
        lines: Vec<String>,
    ) -> Result<(), StoreError> {
        if self.current(batch, &key).is_none() {
            return Err(StoreError::NotFound(key));
        }
        batch.steps.push(Step::Append(key, lines));
        Ok(())
    }

    /// Makes a batch visible: to readers, to the history and to watchers.
    pub fn publish_batch(&self, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        let mut state = self.write();
        let before = state.version;
        for step in batch.steps {
            match step {
                Step::Change(change) => self.publish_change(&mut state, change),
                Step::Append(key, lines) => {
                    if let Some(entry) = state.pods.get(&key) {
                        entry.log.append(lines);
                    }
                }
            }
        }
        if state.version != before {
            self.versions.send_replace(state.version);
        }
    }

    /// A pod as the batch sees it: its own changes first, then the published state.
    fn current(&self, batch: &Batch, key: &PodKey) -> Option<Arc<Pod>> {
        match batch.touched.get(key) {
            Some(touched) => touched.clone(),
            None => self
                .read()
                .pods
                .get(key)
                .map(|entry| Arc::clone(&entry.pod)),
        }
    }
}
