//! The pod store: what the service reads and writes, behind one trait, and
//! the consumer side of its changes (watchers and per-pod logs).
//!
//! [`PodStore`] is the whole interface the service uses. Two of its
//! implementations are *embedded* (in this process):
//!
//! - [`MemoryStore`]: volatile, for tests and demos (`pod-server --in-memory`);
//! - [`DurableStore`]: the default, in a data directory, on `redb`; every
//!   acknowledged write is on disk before the acknowledgement leaves.
//!
//! Both keep the current pods, the change history and the log lines in the
//! same in-memory index, which is also the one place changes are published
//! to [`Watcher`]s, so the service does not know which store it runs on.
//! Two more are shared by several servers:
//!
//! - [`EtcdStore`]: the pods in etcd, each server's index fed by one etcd
//!   watch (`pod-server --etcd-endpoints`); logs in the server's memory;
//! - [`JetStreamLogs`]: logs on NATS JetStream, around a store that keeps
//!   the pods (`--nats-url`, with the etcd store).
//!
//! The trait promises only what such stores can keep too: versions
//! strictly increase, but need not be consecutive.

mod config;
mod durable;
mod error;
mod etcd;
mod index;
mod memory;
mod nats;
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
pub use nats::{JetStreamLogs, NatsConfig, NatsError};
pub use pod_log::{LogBatch, LogLines, LogSlice, LogStart, PodLog, line_cost};
pub use pod_store::{ListPosition, Pending, PodList, PodPage, PodStore};
pub use watcher::{WatchEnd, Watcher};
