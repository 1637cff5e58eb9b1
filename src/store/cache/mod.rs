//! The watch cache: the current pods, the registry-wide version, the
//! bounded change history, each pod's life (its [`PodLog`]), and the
//! broadcast channel that publishes changes to watchers. The
//! [`Registry`](super::Registry) owns one and serves every read from it, as
//! kube-apiserver's `Cacher` serves reads over its storage.
//!
//! It has one writer at a time and two kinds of input, one per kind of
//! backend:
//!
//! - an embedded backend *plans* its writes against the cache ([`plan`]):
//!   each op of a [`Batch`] sees the ops planned before it, the backend
//!   makes the batch durable, and then publishes it;
//! - a cluster backend follows changes made elsewhere and tells the cache
//!   what it saw through one enum ([`Observed`]): changes, progress, a
//!   compaction, or a start-over.
//!
//! Publishing takes the write lock once and, for each change in order,
//! updates the pods, records the change in the history and sends it to
//! watchers. So readers and watchers only ever see durable changes, the
//! history and the channel carry changes in strictly increasing version
//! order, and a watcher that registers under the same lock (see
//! [`WatchCache::watch`](state::WatchCache::watch)) sees exactly the changes after the version it
//! registered at.
//!
//! Stored pods are immutable `Arc<Pod>`s shared by the map, the history and
//! every watcher, so a change is allocated once however many watch it.
//! Each change in the history also keeps the pod as it was just before, so
//! the history doubles as an undo log, from which a paged list is served
//! at its first page's version ([`pages`]).

mod observe;
mod pages;
mod plan;
mod recent;
mod state;

pub(super) use observe::Observed;
pub(super) use plan::{Batch, Step};
pub(super) use state::{Restored, WatchCache};

#[cfg(test)]
mod tests;
