//! The database's layout: its tables, the layout version, and the checks
//! that tell an empty database, one of ours, and anything else apart
//! without writing a byte.

use std::path::Path;

use redb::{Database, ReadableDatabase, TableDefinition, TableHandle};

use super::error::{Corruption, DataDirError, Incompatibility};

/// The file inside the data directory.
pub const DATABASE_FILE: &str = "pods.redb";

/// The layout version this code reads and writes.
const SCHEMA_VERSION: u64 = 1;

/// `"schema"` and `"version"` (the store version), both `u64`.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// `(namespace, name)` → the current `Pod`, protobuf-encoded.
pub(super) const PODS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("pods");
/// version → the changed `Pod` or tombstone.
pub(super) const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
/// `(namespace, name, lines before)` → a `LogChunk` of the pod's lines from
/// number `lines before + 1` on (the wire numbers lines from 1; this key,
/// older than that, counts the lines before the chunk).
pub(super) const LOGS: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("logs");

/// What a database holds, once checked.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Schema {
    /// Nothing: a new database, to be initialised.
    New,
    /// A database of this layout.
    Current,
}

/// Why a database is not one to load.
pub(super) enum Fault {
    Corrupt(Corruption),
    Incompatible(Incompatibility),
}

impl Fault {
    /// The fault as the reason data directory `dir` was refused.
    pub(super) fn of(self, dir: &Path) -> DataDirError {
        match self {
            Fault::Corrupt(corruption) => DataDirError::Corrupt(dir.into(), corruption),
            Fault::Incompatible(why) => DataDirError::Incompatible(dir.into(), why),
        }
    }
}

impl<E: Into<Corruption>> From<E> for Fault {
    fn from(err: E) -> Self {
        Fault::Corrupt(err.into())
    }
}

/// Checks that a database is empty or of our layout, without writing.
pub(super) fn check(db: &impl ReadableDatabase) -> Result<Schema, Fault> {
    let tx = db.begin_read()?;
    let tables: Vec<String> = tx
        .list_tables()?
        .map(|table| table.name().to_owned())
        .collect();
    if tables.is_empty() {
        return Ok(Schema::New);
    }
    let schema = match tx.open_table(META) {
        Ok(meta) => meta.get("schema")?.map(|v| v.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(err) => return Err(err.into()),
    };
    match schema {
        Some(SCHEMA_VERSION) => Ok(Schema::Current),
        Some(found) => Err(Fault::Incompatible(Incompatibility::Schema {
            found,
            expected: SCHEMA_VERSION,
        })),
        None => Err(Fault::Corrupt(Corruption::Foreign { tables })),
    }
}

/// Records our layout in a new database.
pub(super) fn initialise(db: &Database) -> Result<(), Corruption> {
    let tx = db.begin_write()?;
    {
        let mut meta = tx.open_table(META)?;
        meta.insert("schema", SCHEMA_VERSION)?;
        meta.insert("version", 0)?;
        tx.open_table(PODS)?;
        tx.open_table(HISTORY)?;
        tx.open_table(LOGS)?;
    }
    tx.commit()?;
    Ok(())
}

/// The store version recorded in the database.
pub(super) fn stored_version(db: &impl ReadableDatabase) -> Result<u64, Corruption> {
    let tx = db.begin_read()?;
    let meta = tx.open_table(META)?;
    let version = meta.get("version")?.map(|v| v.value());
    version.ok_or(Corruption::NoVersion)
}
