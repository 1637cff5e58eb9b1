//! The server: the PodService's handlers, the layers every call passes, and
//! the wiring that serves them on a listener until shutdown.
//!
//! A call arrives at [`serve`]'s listener, on a connection whose small
//! frames are held for one yield, so that those other streams queue
//! meanwhile leave with them in one write (`batched_writes`), and passes,
//! in order:
//!
//! 0. the dashboard (`dashboard`), which serves the browser page at `/`,
//!    refuses cross-origin requests, preflights and, on loopback, foreign
//!    hosts; then `tonic-web`, which turns a browser's gRPC-Web call into
//!    plain gRPC, so that everything after it sees one kind of call;
//! 1. the call counter (`call_metrics`), which counts every call of every
//!    service for the `grpc_server_*` metrics, up to its end;
//! 2. the panic guard (`panic_guard`), which answers a panicking handler
//!    `INTERNAL` and, through `oversize`, gives oversized messages
//!    `RESOURCE_EXHAUSTED`;
//! 3. authentication (`access`): who a PodService call comes from (a client
//!    certificate, a token), or `UNAUTHENTICATED`;
//! 4. the service: `service` (and `sync_session` for `SyncPods`), which
//!    validates the request once (`validate`), checks it against the
//!    policies once (`access`), calls the store once, and
//!    answers refusals with the codes chosen in `status`; its response
//!    streams end at their client's deadline (`deadline`) and log one line
//!    per call (`call_log`).
//!
//! Beside it run the standard health service (`health`) and reflection;
//! `metrics_endpoint` serves `GET /metrics` on a listener of its own;
//! `signals` holds the shutdown token and the Ctrl-C/SIGTERM handlers.
//! [`InProcessServer`] runs all of it in this process on a free port.

pub mod access;
mod batched_writes;
mod bookmarks;
mod call_log;
mod call_metrics;
pub mod certs;
mod continue_token;
pub mod dashboard;
mod deadline;
mod health;
mod in_process;
mod list_cache;
mod metrics_endpoint;
mod oversize;
mod panic_guard;
mod serve;
mod service;
mod signals;
mod status;
mod sync_session;
pub mod validate;

pub use deadline::parse_timeout;
pub use in_process::InProcessServer;
pub use metrics_endpoint::serve_metrics;
pub use serve::{ServeError, ServerConfig, exposure_warnings, new_metrics, serve};
pub use signals::{Shutdown, signals};
