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
//! The data path: a request arrives in [`service`], is checked once by
//! [`validate`], applied once to the [`store`], which publishes each change
//! to every [`watch`]er from one place. Uploaded lines live in per-pod
//! [`logs`]. [`server`] wires it to a listener, with the standard
//! [`health`] service, reflection, TLS, [`auth`], and a [`guard`] on every answer
//! (contained panics, the status of oversized messages: [`limits`]); [`shutdown`] stops it
//! and [`telemetry`] logs each call; [`deadline`] ends
//! streams whose client's deadline passed. [`pb`] holds the generated wire types,
//! [`wire`] the one written by hand for speed.
//! The binaries are thin: their logic lives in [`client`] (and, for
//! `pod-bench`, in [`bench`]).

pub mod auth;
pub mod bench;
pub mod client;
pub mod deadline;
pub mod guard;
pub mod health;
pub mod limits;
pub mod logs;
pub mod pb;
pub mod sample;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod validate;
pub mod watch;
pub mod wire;
