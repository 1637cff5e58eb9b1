//! The clients' logic, for the binaries and for anyone embedding a client:
//! connecting (to one server, or moving between replicas), paged lists, the
//! resumable watch, the resumable log read, log upload and the sync session
//! (the three long-running ones resume a broken stream alike: `resume`).
//!
//! It needs nothing of the server: only the [contract](crate::contract).
//! Each binary in `src/bin/` parses its arguments (with [`crate::cli`]) and
//! calls one of these.

mod cache;
mod connect;
mod list;
mod logs;
mod resume;
mod retry;
mod servers;
pub mod sync;
mod tls;
pub mod upload;
mod watch;

pub use cache::{EventKind, PodEvent};
pub use connect::{
    Auth, CallFailed, Client, ClientConfig, DEFAULT_TIMEOUT, connect, connect_lazy, one_line,
    status_error, with_deadline,
};
pub use list::{DEFAULT_PAGE_SIZE, Pages, list_all, read_pod};
pub use logs::{LogRead, LogUpdate};
pub use servers::Servers;
pub use tls::ClientIdentity;
pub use watch::{PodWatch, WatchUpdate};
