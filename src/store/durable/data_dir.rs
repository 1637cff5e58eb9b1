//! The data directory on disk, and the store's answer to "what is synced,
//! when, and why is that enough?": nothing acknowledged may depend on a
//! byte the disk has not been told to keep, or a power cut can take it.
//!
//! | what                                   | made durable                                                | why that is enough |
//! |----------------------------------------|-------------------------------------------------------------|--------------------|
//! | the data directory, and every missing parent `open` creates | each new directory's parent is fsynced right after the `mkdir`, before anything is put in it | a directory's entry lives in its parent, and is on disk only once the parent is synced |
//! | a new database, and its layout version (`meta`'s `"schema"`) | made as `pods.redb.new`, its layout committed with an fsync, then renamed to `pods.redb` and the data directory fsynced, before the store answers anything | after a cut the file is either absent or a database of ours with its layout; without the directory's fsync, a cut could take the whole file with every write acknowledged in it |
//! | pod changes (with the `history` rows and their trimming, and `meta`'s `"version"`) | their batch's transaction, committed with `Durability::Immediate` before it is published or acknowledged | redb writes the batch's pages and then its commit slot, and fdatasyncs once; after a cut, recovery checks the newest slot's checksums and falls back to the commit before it when its pages did not all arrive |
//! | log chunks (and the retention that drops old ones) | their transactions are committed with `Durability::None`; the upload's final [`Registry::sync`](crate::store::Registry::sync) commits a durable transaction, and only then is the upload acknowledged | a durable commit makes every earlier commit durable with it; a chunk is one record of one transaction, and a chunk dropped for retention is dropped in the transaction of the newer chunk that made room for it |
//!
//! And the rest of what is on disk:
//! - **no lock file**: redb locks a byte range of the database file itself,
//!   and the lock dies with the process;
//! - **one rename only**, of a new database (above). A `pods.redb.new`
//!   left by a cut during the very first start is taken up or made again
//!   by the next start: nothing was ever acknowledged from it;
//! - **no size sync**: redb grows the file with `set_len` before writing
//!   into it, and fdatasync also syncs the size the data needs to be read
//!   back (POSIX: the metadata "needed for subsequent data retrieval").
//!
//! `src/store/power_cut` cuts the power at every point of a run of the
//! store, over a disk that keeps written and synced bytes apart, and checks
//! the table above; `tests/crash.rs` cuts it under the real `pod-server`.

use std::fs::File;
use std::io;
use std::path::Path;

use redb::Database;

use super::error::DataDirError;
use super::schema::{self, DATABASE_FILE, Fault, Schema};

/// The name of a database being created, until it holds its layout.
const NEW_DATABASE_FILE: &str = "pods.redb.new";

/// Creates `dir` and any missing parents, syncing each new directory's
/// entry into its parent.
pub(super) fn create(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut next = Some(dir);
    while let Some(path) = next.filter(|path| !path.as_os_str().is_empty() && !path.exists()) {
        missing.push(path);
        next = path.parent();
    }
    for path in missing.into_iter().rev() {
        match std::fs::create_dir(path) {
            // Another process made it first: its entry may not be synced yet.
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
            Err(err) => return Err(err),
        }
        if let Some(parent) = path.parent() {
            sync(if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            })?;
        }
    }
    if dir.is_dir() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "it is not a directory",
        ))
    }
}

/// Makes a new database in `dir`, under a temporary name until its
/// layout is synced, then renamed into place and the rename synced: so the
/// database file is, after any power cut, either absent or a database of
/// ours. Without the rename, a cut during the very first start could leave
/// a file redb cannot read, refused as corrupt.
pub(super) fn create_database(dir: &Path) -> Result<Database, DataDirError> {
    let new = dir.join(NEW_DATABASE_FILE);
    let create = || Database::create(&new).map_err(|err| DataDirError::opening(dir, err));
    let db = match create() {
        Ok(db) => db,
        Err(err @ DataDirError::Locked(_)) => return Err(err),
        // What a power cut left of an earlier creation: nothing was ever
        // acknowledged from it.
        Err(_) => {
            std::fs::remove_file(&new).map_err(|err| DataDirError::Io(dir.into(), err))?;
            create()?
        }
    };
    // Current: an earlier creation got this far before the power went.
    if schema::check(&db).map_err(|fault| fault.of(dir))? == Schema::New {
        schema::initialise(&db).map_err(|c| Fault::from(c).of(dir))?;
    }
    let io = |err| DataDirError::Io(dir.into(), err);
    std::fs::rename(&new, dir.join(DATABASE_FILE)).map_err(io)?;
    sync(dir).map_err(io)?;
    Ok(db)
}

/// Makes the entries of directory `dir` durable.
pub(super) fn sync(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_every_missing_parent() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b/c");
        create(&dir).unwrap();
        assert!(dir.is_dir());
        // Again, over what exists.
        create(&dir).unwrap();
    }

    #[test]
    fn a_new_database_appears_only_with_its_layout() {
        let dir = tempfile::tempdir().unwrap();
        let db = create_database(dir.path()).unwrap();
        assert!(!dir.path().join(NEW_DATABASE_FILE).exists());
        assert_eq!(schema::check(&db).ok(), Some(Schema::Current));
        drop(db);
        let db = redb::ReadOnlyDatabase::open(dir.path().join(DATABASE_FILE)).unwrap();
        assert_eq!(schema::check(&db).ok(), Some(Schema::Current));
    }

    #[test]
    fn what_a_cut_left_of_a_creation_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join(NEW_DATABASE_FILE);
        // Size set, data never written back: zeros, no redb header.
        std::fs::write(&new, vec![0; 8192]).unwrap();
        let db = create_database(dir.path()).unwrap();
        assert_eq!(schema::check(&db).ok(), Some(Schema::Current));
        assert!(!new.exists());
    }

    #[test]
    fn a_creation_in_progress_elsewhere_is_not_disturbed() {
        let dir = tempfile::tempdir().unwrap();
        let other = Database::create(dir.path().join(NEW_DATABASE_FILE)).unwrap();
        assert!(matches!(
            create_database(dir.path()),
            Err(DataDirError::Locked(_))
        ));
        drop(other);
    }

    #[test]
    fn refuses_a_file_in_the_way() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(create(&file).is_err());
        assert!(create(&file.join("below")).is_err());
    }
}
