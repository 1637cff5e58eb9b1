//! The durable store: the watch cache in memory, and every write committed to a
//! `redb` database in the data directory before it is published or
//! acknowledged.
//!
//! All writes go through one committer thread ([`committer`]). It takes
//! whatever operations are waiting (up to a bound), plans them into one
//! batch, writes the batch in one `redb` transaction, commits it (with an
//! fsync when any op in it must be durable), and only then publishes the
//! batch and answers each op. So concurrent writers share commits (the
//! figures are in BENCHMARKS.md), and nothing is visible or acknowledged
//! before it is on disk.
//!
//! Log chunks are committed without an fsync (they are visible to readers
//! at once); an upload is acknowledged after a
//! [`Registry::sync`](crate::store::Registry::sync), whose fsync makes every
//! earlier commit durable too. A crash loses at most the lines of
//! unacknowledged uploads, and never tears or reorders a line: a chunk is
//! one record in one transaction.
//!
//! What is synced when, and why no acknowledged byte waits on an unsynced
//! one (the data directory's entries included), is set out in
//! [`data_dir`].
//!
//! If a commit fails, the store refuses all later writes (reads go on) until
//! the server is restarted, which reloads the last durable state.
//!
//! On disk (`<data-dir>/pods.redb`; the tables are in [`schema`]):
//!
//! | table     | key                      | value                                  |
//! |-----------|--------------------------|----------------------------------------|
//! | `meta`    | `"schema"`, `"version"`  | `u64`                                  |
//! | `pods`    | `(namespace, name)`      | a `Pod`, protobuf-encoded ([`records`]) |
//! | `history` | version                  | the changed `Pod` or tombstone         |
//! | `logs`    | `(namespace, name, before)`| a `LogChunk` of the pod's lines after its first `before` |

mod committer;
mod data_dir;
mod error;
mod load;
pub mod records;
mod schema;
mod store;

pub use error::{Corruption, DataDirError, Incompatibility, RecordError};
pub use schema::DATABASE_FILE;
pub(super) use store::DurableStore;
