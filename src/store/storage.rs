//! Where a registry keeps its pods and logs, as chosen by `pod-server`'s
//! flags (or a test, or `pod-bench`), and why opening it can fail.

use std::fmt;
use std::path::PathBuf;

use super::durable::DataDirError;
use super::error::StoreError;
use super::etcd::EtcdConfig;
use super::nats::{NatsConfig, NatsError};

/// Where a registry keeps its pods and their logs.
#[derive(Debug, Clone)]
pub enum Storage {
    /// Everything in this process's memory, lost when it stops
    /// (`pod-server --in-memory`).
    InMemory,
    /// Everything in a redb database in this data directory: every
    /// acknowledged write survives a restart or a crash (the default).
    Durable(PathBuf),
    /// The pods in etcd, shared by every server of the same endpoints and
    /// prefix; the logs on NATS JetStream with `nats`, shared too, or else
    /// in each server's memory.
    Etcd {
        /// The etcd cluster and the registry's prefix in it.
        etcd: EtcdConfig,
        /// Where the logs go, if not in memory.
        nats: Option<NatsConfig>,
    },
}

/// Says where, for the server's start-up line.
impl fmt::Display for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Storage::InMemory => f.write_str("in memory"),
            Storage::Durable(dir) => write!(f, "data directory {}", dir.display()),
            Storage::Etcd { etcd, nats } => {
                write!(
                    f,
                    "etcd {} prefix {}",
                    etcd.endpoints.join(","),
                    etcd.prefix
                )?;
                match nats {
                    Some(nats) => write!(f, ", logs on NATS {}", nats.urls.join(",")),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Why a registry could not be opened: one line for the operator.
#[derive(Debug)]
pub enum OpenError {
    /// The durable store's data directory.
    DataDir(DataDirError),
    /// The pods' store (etcd), or loading the starting pods.
    Store(StoreError),
    /// NATS JetStream, for the logs.
    Nats(NatsError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::DataDir(err) => err.fmt(f),
            OpenError::Store(err) => err.fmt(f),
            OpenError::Nats(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for OpenError {}
