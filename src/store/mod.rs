//! The pod store: one [`Registry`] the server talks to, over narrow
//! backends, the way kube-apiserver's watch cache sits over its storage.
//!
//! ```text
//!              server (handlers)
//!                     │  reads, writes, watches, logs
//!                  Registry ───────── watch cache (pods, history, watchers)
//!                 │        │                  ▲
//!       PodBackend          LogBackend        │ batches it committed,
//!   memory · redb · etcd    memory · redb ·   │ or what it observed
//!                           NATS JetStream    │ (one enum, from etcd)
//! ```
//!
//! - [`Registry`] (`registry`) owns the watch cache (`cache`) and
//!   everything every backend shares: lists and paged lists, watches and
//!   the watcher count, the current version, the freshness rule inside
//!   every read ([`Fresh`]), and closing. A [`Storage`] names the backends
//!   and [`Registry::open`] opens them, with the starting pods.
//! - A [`PodBackend`] (`backend`) makes pod writes durable and puts them
//!   in the cache: in memory (`memory`), committed to redb in a data
//!   directory (`durable`, the default), or as etcd transactions shared by
//!   several servers (`etcd`), whose feed tells the cache what happened
//!   through one input, `cache::Observed`.
//! - A [`LogBackend`] keeps log lines: in each pod's [`PodLog`] in memory
//!   ([`MemoryLogs`]), as redb chunks (the durable store), or on NATS
//!   JetStream, shared (`nats`).
//! - A [`WriteOrder`] (`order`) is what the contract orders: one
//!   session's writes. Writes of different orders may run at once.
//! - [`Watcher`]s and [`PodLog`]s are the consumer side: one per watch and
//!   one per life of a pod.
//!
//! A new backend is one more implementation of one of the two traits, and
//! one more [`Storage`] variant; the server does not change.
//!
//! Versions strictly increase, but need not be consecutive (etcd's
//! revisions also count writes to other keys).

mod backend;
mod cache;
mod config;
mod durable;
mod error;
mod etcd;
mod list;
mod memory;
mod nats;
mod order;
mod pod_log;
#[cfg(test)]
mod power_cut;
mod registry;
mod storage;
mod tls;
mod watcher;

pub use backend::{LogBackend, MemoryLogs, Pending, PodBackend};
pub use config::StoreConfig;
pub use durable::{Corruption, DATABASE_FILE, DataDirError, Incompatibility, RecordError, records};
pub use error::StoreError;
pub use etcd::{ETCD_TLS_FLAGS, EtcdConfig, WriteCeiling, write_ceiling};
pub use list::{ListPosition, PodList, PodPage};
pub use nats::{NATS_TLS_FLAGS, NatsAuth, NatsConfig, NatsError};
pub use order::WriteOrder;
pub use pod_log::{LogBatch, LogLines, LogSlice, LogStart, PodLog, line_cost};
pub use registry::{Fresh, Opened, Registry};
pub use storage::{OpenError, Storage};
pub use tls::{BackendTls, TlsFiles};
pub use watcher::{WatchEnd, Watcher};
