//! The pod store: what the service reads and writes, behind one trait, and
//! the consumer side of its changes (watchers and per-pod logs).
//!
//! [`PodStore`] is the whole interface the service uses. It has two
//! implementations, both *embedded* (in this process):
//!
//! - [`MemoryStore`]: volatile, for tests and demos (`pod-server --in-memory`);
//! - [`DurableStore`]: the default, in a data directory, on `redb`; every
//!   acknowledged write is on disk before the acknowledgement leaves.
//!
//! Both keep the current pods, the change history and the log lines in the
//! same in-memory index, which is also the one place changes are published
//! to [`Watcher`]s, so the service does not know which store it runs on. A
//! backend shared by several servers (etcd, say) would be a third
//! implementation of the trait. The trait promises only what such a store
//! can keep too: versions strictly increase, but need not be consecutive.

mod config;
mod durable;
mod error;
mod etcd;
mod index;
mod memory;
mod pod_log;
mod pod_store;
mod watcher;

pub use config::StoreConfig;
pub use durable::{
    Corruption, DATABASE_FILE, DurableStore, Incompatibility, OpenError, RecordError, records,
};
pub use error::StoreError;
pub use etcd::{EtcdConfig, EtcdStore};
pub use memory::MemoryStore;
pub use pod_log::{LogBatch, PodLog, line_cost};
pub use pod_store::{ListPosition, Pending, PodList, PodPage, PodStore};
pub use watcher::{WatchEnd, Watcher};
