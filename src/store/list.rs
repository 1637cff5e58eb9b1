//! What a list returns: the pods and the version they reflect, a page of
//! them, and where a paged list goes on. Shared by the registry, its cache
//! and the backends that serve pages themselves.

use std::sync::Arc;

use crate::contract::Pod;
use crate::domain::PodKey;

/// The current pods matching a filter and the version they were read at.
#[derive(Debug, Clone)]
pub struct PodList {
    /// Sorted by namespace, then name.
    pub pods: Vec<Arc<Pod>>,
    /// The version the list reflects.
    pub version: u64,
}

/// Where a paged list goes on: the version all its pages are consistent
/// at, and the last pod it has given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPosition {
    /// Which history `version` belongs to: a store whose versions restart
    /// (one in memory, restarted) must not continue a list of another life.
    pub history: u64,
    /// The version of the list's first page.
    pub version: u64,
    /// The last pod of the page before.
    pub after: PodKey,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct PodPage {
    /// Sorted by namespace, then name.
    pub pods: Vec<Arc<Pod>>,
    /// The version every page of the list reflects: the first page's.
    pub version: u64,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<ListPosition>,
}
