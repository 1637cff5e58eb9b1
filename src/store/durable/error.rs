//! What can be wrong with a data directory, as types rather than strings:
//! a caller can tell a directory in use from a damaged one from a foreign
//! one, and each says in its message that nothing was changed.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::domain::{Invalid, PodKey};

/// Why a data directory could not be opened. Nothing was changed in it.
#[derive(Debug)]
pub enum DataDirError {
    /// Another process (a running server) has the database open.
    Locked(PathBuf),
    /// The files do not hold what this store writes.
    Corrupt(PathBuf, Corruption),
    /// The database was written by an incompatible version.
    Incompatible(PathBuf, Incompatibility),
    /// The directory or file could not be read or created.
    Io(PathBuf, std::io::Error),
}

impl fmt::Display for DataDirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataDirError::Locked(path) => write!(
                f,
                "data directory {} is in use by another running pod-server",
                path.display()
            ),
            DataDirError::Corrupt(path, corruption) => write!(
                f,
                "data directory {} is corrupt ({corruption}); it was left untouched",
                path.display()
            ),
            DataDirError::Incompatible(path, why) => write!(
                f,
                "data directory {} is from an incompatible version ({why}); it was left untouched",
                path.display()
            ),
            DataDirError::Io(path, err) => {
                write!(f, "cannot open data directory {}: {err}", path.display())
            }
        }
    }
}

impl std::error::Error for DataDirError {}

impl DataDirError {
    /// Why redb could not open the database in `dir`.
    pub(super) fn opening(dir: &Path, err: redb::DatabaseError) -> DataDirError {
        match err {
            redb::DatabaseError::DatabaseAlreadyOpen => DataDirError::Locked(dir.into()),
            redb::DatabaseError::UpgradeRequired(version) => {
                DataDirError::Incompatible(dir.into(), Incompatibility::FileFormat(version))
            }
            redb::DatabaseError::Storage(redb::StorageError::Io(err))
                if err.kind() != std::io::ErrorKind::InvalidData =>
            {
                DataDirError::Io(dir.into(), err)
            }
            other => DataDirError::Corrupt(dir.into(), Corruption::Database(other.into())),
        }
    }
}

/// How a database is from another version of this store.
#[derive(Debug)]
pub enum Incompatibility {
    /// Our layout, in a version this code does not read.
    Schema {
        /// The layout version in the file.
        found: u64,
        /// The layout version this code reads and writes.
        expected: u64,
    },
    /// redb's own file format needs an upgrade first.
    FileFormat(u8),
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Incompatibility::Schema { found, expected } => {
                write!(f, "schema version {found}, this server reads {expected}")
            }
            Incompatibility::FileFormat(version) => {
                write!(f, "redb file format {version} needs an upgrade")
            }
        }
    }
}

/// What is wrong inside a database that is not ours, or not as we wrote it.
#[derive(Debug)]
pub enum Corruption {
    /// redb could not read the file.
    Database(redb::Error),
    /// It holds tables, but no schema version: another program's database.
    Foreign {
        /// The tables it holds.
        tables: Vec<String>,
    },
    /// The meta table has no version counter.
    NoVersion,
    /// A record that does not decode, or decodes to what was never written.
    Record(RecordError),
    /// A pod record under another pod's key, a tombstone, or a pod newer
    /// than the store.
    MisplacedPod(PodKey),
    /// A history record whose version is not the one after its predecessor's.
    HistoryOutOfSequence(u64),
    /// The history does not end at the store's version.
    HistoryEnd {
        /// The version of the last history record.
        last: u64,
        /// The store's version.
        version: u64,
    },
    /// Log lines of a pod that does not exist.
    OrphanLog(PodKey),
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corruption::Database(err) => write!(f, "{err}"),
            Corruption::Foreign { tables } => write!(
                f,
                "it holds tables {tables:?} but no schema version: not a pod-server database"
            ),
            Corruption::NoVersion => f.write_str("no version counter"),
            Corruption::Record(err) => write!(f, "{err}"),
            Corruption::MisplacedPod(key) => {
                write!(f, "pod record {key} does not match its key or version")
            }
            Corruption::HistoryOutOfSequence(version) => {
                write!(f, "history record {version} is out of sequence")
            }
            Corruption::HistoryEnd { last, version } => write!(
                f,
                "the history ends at {last}, not at the store version {version}"
            ),
            Corruption::OrphanLog(key) => write!(f, "log record of {key}, which does not exist"),
        }
    }
}

impl std::error::Error for Corruption {}

impl From<RecordError> for Corruption {
    fn from(err: RecordError) -> Self {
        Corruption::Record(err)
    }
}

/// redb's errors while reading, each one way of failing to read the file.
macro_rules! database_errors {
    ($($error:ty),*) => {$(
        impl From<$error> for Corruption {
            fn from(err: $error) -> Self {
                Corruption::Database(err.into())
            }
        }
    )*};
}
database_errors!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError
);

/// A stored record that is not one the store could have written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The bytes are not a protobuf message of the record's type.
    Undecodable {
        /// What the record should hold (`pod`, `log`).
        kind: &'static str,
        /// prost's reason.
        error: prost::DecodeError,
    },
    /// It decodes, but a name breaks the naming rule.
    BadName(Invalid),
    /// It decodes, but a pod could never have had these values.
    Impossible {
        /// The pod.
        key: PodKey,
        /// Its `resource_version` (never 0 when written).
        resource_version: u64,
        /// Its replicas (never negative when written).
        replicas: i32,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Undecodable { kind, error } => {
                write!(f, "a {kind} record does not decode: {error}")
            }
            RecordError::BadName(invalid) => write!(f, "a pod record has an {invalid}"),
            RecordError::Impossible {
                key,
                resource_version,
                replicas,
            } => write!(
                f,
                "pod record {key} has resource_version {resource_version} and replicas {replicas}"
            ),
        }
    }
}

impl std::error::Error for RecordError {}
