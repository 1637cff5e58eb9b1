//! What the binaries share as command-line programs: clap's option types,
//! the printing of tables and JSON, and one-line errors with an exit code.
//! The library's core (contract, store, server, client) takes none of it.

mod args;
mod exit;
pub mod output;

pub use args::{NamespaceArgs, PodArgs, ServerArgs};
pub use exit::{exit, print};
