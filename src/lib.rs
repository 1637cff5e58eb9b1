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
//! - [`store`]: the pod store behind one trait (in memory, durable, or
//!   shared: etcd for the pods, NATS JetStream for the logs), with its
//!   watchers and per-pod logs;
//! - [`server`]: the PodService's handlers, the layers every call passes,
//!   and the wiring that serves them;
//! - [`client`]: the clients' logic (resumable watch, upload, sync session);
//! - [`cli`]: what the binaries share as command-line programs;
//! - [`sample`]: the pods a new server starts with.
//!
//! Dependencies point one way: binaries → cli → client → contract, and
//! server → store → domain → contract (`sample` loads a store). The client
//! never uses the server or the store, nor the server the client.
//!
//! The data path: a request arrives at the server, is validated once at its
//! edge, applied once to the store, and the store publishes each change to
//! every watcher from one place.

#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod contract;
pub mod domain;
pub mod sample;
pub mod server;
pub mod store;
