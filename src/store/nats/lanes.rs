//! The writers of each pod on this server: a lock each, so that they take
//! turns, and the pod's newest message as the last of them saw it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The newest message of a pod's subject as this server last saw it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tip {
    /// Its sequence (0: the subject is empty).
    pub seq: u64,
    /// The number the next line gets.
    pub next_line: u64,
    /// The cost of every line so far.
    pub offset: u64,
    /// The cost of the lines before the oldest retained message.
    pub retained_from: u64,
}

/// The writers of each pod: a lock, and the tip it last wrote (`None`:
/// read it from JetStream first).
#[derive(Default)]
pub(super) struct Lanes {
    lanes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Tip>>>>>,
}

/// Lanes kept before the idle ones are let go.
const KEPT_LANES: usize = 4_096;

impl Lanes {
    pub fn lane(&self, subject: &str) -> Arc<tokio::sync::Mutex<Option<Tip>>> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        if lanes.len() >= KEPT_LANES && !lanes.contains_key(subject) {
            // An idle lane only caches its tip, which JetStream has too.
            lanes.retain(|_, lane| Arc::strong_count(lane) > 1);
        }
        Arc::clone(lanes.entry(subject.to_owned()).or_default())
    }

    /// Lets go of a deleted pod's lane.
    pub fn forget(&self, subject: &str) {
        self.lanes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(subject);
    }
}
