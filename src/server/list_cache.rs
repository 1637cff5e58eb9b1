//! The latest encoded list of each namespace filter, shared by every
//! `ListPods` that reads the same store version (see the contract's
//! hand-written `ListPodsResponse`).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::contract::ListPodsResponse;

/// The latest encoded list of each namespace filter ("" = all).
#[derive(Default)]
pub(super) struct ListCache {
    entries: Mutex<HashMap<String, ListPodsResponse>>,
}

impl ListCache {
    /// Namespace filters remembered at most; a client asking for many
    /// namespaces empties the cache rather than growing it.
    const MAX_ENTRIES: usize = 64;

    pub fn get(&self, namespace: &str, version: u64) -> Option<ListPodsResponse> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(namespace)
            .filter(|list| list.resource_version == version)
            .cloned()
    }

    pub fn put(&self, namespace: String, list: ListPodsResponse) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= Self::MAX_ENTRIES && !entries.contains_key(&namespace) {
            entries.clear();
        }
        entries.insert(namespace, list);
    }
}
