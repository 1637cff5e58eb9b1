//! A Kubernetes-like pod service that shows the four gRPC call patterns.
//!
//! | RPC          | pattern          | binary        |
//! |--------------|------------------|---------------|
//! | `ListPods`   | unary            | `list-pods`   |
//! | `WatchPods`  | server streaming | `watch-pods`  |
//! | `GetLogs`    | server streaming | `pod-logs`    |
//! | `UploadLogs` | client streaming | `upload-logs` |
//! | `SyncPods`   | bidirectional    | `sync-pods`   |
//!
//! The crate, from the wire inwards:
//!
//! - [`contract`]: the wire types and stubs of `proto/pod.proto`, and the
//!   conventions clients and server share (trailer keys, the token, defaults);
//! - [`domain`]: a pod's key, a validated write, the naming rule;
//! - [`store`]: the [`Registry`](store::Registry) the server talks to: its
//!   watch cache (lists, watches, the freshness rule) over two narrow
//!   backends, [`PodBackend`](store::PodBackend) for the pods' writes (in
//!   memory, redb, or etcd shared by replicas) and
//!   [`LogBackend`](store::LogBackend) for the logs (in memory, redb, or
//!   NATS JetStream); a new backend plugs in as one more implementation
//!   and one more [`Storage`](store::Storage);
//! - [`server`]: the PodService's handlers, the layers every call passes,
//!   and the wiring that serves them;
//! - [`metrics`]: what the server and the stores count, for Prometheus;
//! - [`client`]: the clients' logic (resumable watch, upload, sync session);
//! - [`cli`]: what the binaries share as command-line programs;
//! - [`sample`]: the pods a new registry starts with.
//!
//! Dependencies point one way: binaries → cli → client → contract, and
//! server → store (registry → backends) → domain → contract; the server
//! and the stores count into [`metrics`], which depends on neither. The client
//! never uses the server or the store, nor the server the client.
//!
//! The data path: a request arrives at the server, is validated once at its
//! edge, applied once to the registry's pod backend, and the registry's
//! watch cache publishes each change to every watcher from one place.

#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod contract;
pub mod domain;
pub mod metrics;
pub mod sample;
pub mod server;
pub mod store;
