//! The client side of `SyncPods`: the `sync-pods` command language
//! ([`parse`]) and the session that runs it ([`run_session`]).

mod commands;
mod lines;
mod session;
mod stream;

pub use commands::{Command, HELP, PodEdit, parse};
pub use session::{Mode, Notice, SessionReport, run_session};
