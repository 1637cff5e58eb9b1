//! A disk for redb that journals every write, size change and sync, so
//! that a test can rebuild what the platters would hold had the power gone
//! at any point: the bytes last synced, plus whichever later writes the
//! disk happened to have written back, the last of them perhaps torn.

use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::StorageBackend;

/// The error of redb's disk calls (without its `experimental-api-5`).
type BackendIoError = std::io::Error;

/// One call the store made on its disk.
#[derive(Debug, Clone)]
pub enum DiskOp {
    Write {
        offset: u64,
        data: Vec<u8>,
    },
    SetLen(u64),
    Sync,
    /// The new database was renamed into place and the rename synced:
    /// before this, a cut leaves no database at all.
    Named,
}

/// The disk under one run of the store: cheap to clone, shared with the
/// database, and read back by the test after the run.
#[derive(Debug, Clone, Default)]
pub struct Disk(Arc<Mutex<Platter>>);

#[derive(Debug, Default)]
struct Platter {
    /// The file as the store sees it (the operating system's view).
    bytes: Vec<u8>,
    journal: Vec<DiskOp>,
}

impl Disk {
    /// A disk holding `bytes`, as found after a power cut.
    pub fn holding(bytes: Vec<u8>) -> Self {
        Disk(Arc::new(Mutex::new(Platter {
            bytes,
            journal: Vec::new(),
        })))
    }

    /// How many calls the store has made so far: an acknowledgement seen
    /// when this was `n` rests only on calls before `n`.
    pub fn calls(&self) -> usize {
        self.platter().journal.len()
    }

    /// Records that the store named its new database.
    pub fn name(&self) {
        self.platter().journal.push(DiskOp::Named);
    }

    pub fn journal(&self) -> Vec<DiskOp> {
        self.platter().journal.clone()
    }

    fn platter(&self) -> MutexGuard<'_, Platter> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StorageBackend for Disk {
    fn len(&self) -> Result<u64, BackendIoError> {
        Ok(self.platter().bytes.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendIoError> {
        let platter = self.platter();
        let range = span(offset, out.len());
        let bytes = platter
            .bytes
            .get(range)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        out.copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), BackendIoError> {
        let mut platter = self.platter();
        platter.bytes.resize(len as usize, 0);
        platter.journal.push(DiskOp::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> Result<(), BackendIoError> {
        self.platter().journal.push(DiskOp::Sync);
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendIoError> {
        let mut platter = self.platter();
        let range = span(offset, data.len());
        if platter.bytes.len() < range.end {
            platter.bytes.resize(range.end, 0);
        }
        platter.bytes[range].copy_from_slice(data);
        platter.journal.push(DiskOp::Write {
            offset,
            data: data.to_vec(),
        });
        Ok(())
    }
}

fn span(offset: u64, len: usize) -> Range<usize> {
    let start = offset as usize;
    start..start + len
}

/// What reached the platters of the calls made before a power cut.
#[derive(Debug, Clone)]
pub struct Cut {
    /// The power went after this many calls.
    pub after: usize,
    /// Of the calls since the last sync, those the disk had written back.
    pub written_back: WrittenBack,
}

#[derive(Debug, Clone)]
pub enum WrittenBack {
    /// None: only what was synced survives.
    Nothing,
    /// Every call, in order, the last one torn: a write keeps only its
    /// first `torn` bytes.
    InOrder { torn: usize },
    /// Each call by the toss of a coin (a disk may reorder writes), and
    /// the last one kept torn.
    Some { seed: u64, torn: usize },
}

/// Rebuilds the platters at cuts taken in order through a run's journal,
/// keeping what was synced so far rather than replaying it every time.
pub struct Replay<'a> {
    journal: &'a [DiskOp],
    synced: Vec<u8>,
    /// The calls `synced` holds.
    synced_upto: usize,
}

impl<'a> Replay<'a> {
    pub fn new(journal: &'a [DiskOp]) -> Self {
        Replay {
            journal,
            synced: Vec::new(),
            synced_upto: 0,
        }
    }

    /// The bytes on the disk after `cut`; no earlier cut than the last.
    pub fn image(&mut self, cut: &Cut) -> Vec<u8> {
        let done = &self.journal[..cut.after.min(self.journal.len())];
        if !done.iter().any(|op| matches!(op, DiskOp::Named)) {
            return Vec::new();
        }
        let last_sync = done
            .iter()
            .rposition(|op| matches!(op, DiskOp::Sync))
            .map_or(0, |i| i + 1);
        assert!(last_sync >= self.synced_upto, "cuts are replayed in order");
        for op in &done[self.synced_upto..last_sync] {
            apply(&mut self.synced, op, usize::MAX);
        }
        self.synced_upto = last_sync;
        let mut bytes = self.synced.clone();
        let pending = &done[last_sync..];
        let last = pending.len().saturating_sub(1);
        match cut.written_back {
            WrittenBack::Nothing => {}
            WrittenBack::InOrder { torn } => {
                for (i, op) in pending.iter().enumerate() {
                    apply(&mut bytes, op, if i == last { torn } else { usize::MAX });
                }
            }
            WrittenBack::Some { seed, torn } => {
                let mut coin = fastrand::Rng::with_seed(seed);
                for (i, op) in pending.iter().enumerate() {
                    if i == last {
                        apply(&mut bytes, op, torn);
                    } else if coin.bool() {
                        apply(&mut bytes, op, usize::MAX);
                    }
                }
            }
        }
        bytes
    }
}

/// Applies a call to the platters, a write only its first `keep` bytes.
fn apply(bytes: &mut Vec<u8>, op: &DiskOp, keep: usize) {
    match op {
        DiskOp::Write { offset, data } => {
            let data = &data[..keep.min(data.len())];
            let range = span(*offset, data.len());
            if bytes.len() < range.end {
                bytes.resize(range.end, 0);
            }
            bytes[range].copy_from_slice(data);
        }
        DiskOp::SetLen(len) => bytes.resize(*len as usize, 0),
        DiskOp::Sync | DiskOp::Named => {}
    }
}
