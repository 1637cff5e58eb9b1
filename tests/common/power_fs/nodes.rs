//! The layer's state behind its one lock: the inodes it handed to the
//! kernel (each a path under the backing directory), the open files, the
//! unsynced overlays, whether the power is cut, and the figures. The FUSE
//! operations (`super::layer`) and the power cut (`super::PowerFs`) both
//! work on it under that lock, so a cut falls between two operations.

use std::collections::HashMap;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};

use super::overlay::Overlay;

/// One inode the kernel knows.
pub struct Node {
    /// Relative to the backing directory; `None` once unlinked.
    pub path: Option<PathBuf>,
    /// The backing file, read-write, while the node is open or dirty.
    pub file: Option<File>,
    /// Open handles.
    pub open: u32,
    /// Unsynced changes; `None` when the backing file is all there is.
    pub overlay: Option<Overlay>,
}

/// What the power cuts of one mount dropped, and what its fsyncs applied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    /// Fsyncs (and fdatasyncs) that applied something to the backing files.
    pub syncs: u64,
    /// Bytes those fsyncs wrote to the backing files.
    pub synced_bytes: u64,
    /// Dirty pages dropped by the cut (4 KiB each).
    pub dropped_pages: u64,
    /// Files whose unsynced changes the cut dropped (data or size).
    pub dropped_files: u64,
}

pub struct State {
    pub backing: PathBuf,
    /// Set by the power cut: every operation fails with EIO from then on.
    pub cut: bool,
    /// A cut armed to fall on a later write: the number of writes to let
    /// through first.
    pub cut_at_write: Option<u64>,
    pub nodes: HashMap<u64, Node>,
    pub by_path: HashMap<PathBuf, u64>,
    next_ino: u64,
    /// Open file handles: handle to inode.
    pub handles: HashMap<u64, u64>,
    next_handle: u64,
    pub figures: Figures,
}

impl State {
    pub fn new(backing: PathBuf) -> Self {
        let root = Node {
            path: Some(PathBuf::new()),
            file: None,
            open: 0,
            overlay: None,
        };
        State {
            backing,
            cut: false,
            cut_at_write: None,
            nodes: HashMap::from([(INodeNo::ROOT.0, root)]),
            by_path: HashMap::from([(PathBuf::new(), INodeNo::ROOT.0)]),
            next_ino: INodeNo::ROOT.0 + 1,
            handles: HashMap::new(),
            next_handle: 1,
            figures: Figures::default(),
        }
    }

    /// The power cut: drops every unsynced change; from now on every
    /// operation fails.
    pub fn cut(&mut self) {
        self.cut = true;
        self.cut_at_write = None;
        for node in self.nodes.values_mut() {
            if let Some(overlay) = node.overlay.take() {
                let backing_len = node
                    .file
                    .as_ref()
                    .and_then(|file| file.metadata().ok())
                    .map_or(0, |meta| meta.len());
                if overlay.is_dirty(backing_len) {
                    self.figures.dropped_pages += overlay.dirty_pages();
                    self.figures.dropped_files += 1;
                }
            }
            node.file = None;
        }
    }

    /// The inode of `path`, made if the kernel did not know it yet.
    pub fn ino_of(&mut self, path: PathBuf) -> u64 {
        if let Some(&ino) = self.by_path.get(&path) {
            return ino;
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.by_path.insert(path.clone(), ino);
        let node = Node {
            path: Some(path),
            file: None,
            open: 0,
            overlay: None,
        };
        self.nodes.insert(ino, node);
        ino
    }

    /// The relative path of a live inode.
    pub fn path(&self, ino: u64) -> io::Result<PathBuf> {
        self.nodes
            .get(&ino)
            .and_then(|node| node.path.clone())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
    }

    /// The backing path of `name` in directory `parent`.
    pub fn child(&self, parent: u64, name: &std::ffi::OsStr) -> io::Result<PathBuf> {
        Ok(self.path(parent)?.join(name))
    }

    pub fn full(&self, path: &Path) -> PathBuf {
        self.backing.join(path)
    }

    /// The node's backing file, opened read-write if it is not open.
    pub fn file(&mut self, ino: u64) -> io::Result<&File> {
        let backing = self.backing.clone();
        let node = self
            .nodes
            .get_mut(&ino)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        if node.file.is_none() {
            let path = node
                .path
                .as_ref()
                .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
            // Never O_TRUNC or O_APPEND: the kernel sends truncation as a
            // size change and appends at an offset, both for the overlay.
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(backing.join(path))?;
            node.file = Some(file);
        }
        Ok(node.file.as_ref().expect("opened above"))
    }

    /// The node's overlay (clean if it had none), with its backing file.
    pub fn overlay(&mut self, ino: u64) -> io::Result<(&mut Overlay, &File)> {
        self.file(ino)?;
        let node = self.nodes.get_mut(&ino).expect("file() found it");
        let file = node.file.as_ref().expect("file() opened it");
        if node.overlay.is_none() {
            node.overlay = Some(Overlay::new(file.metadata()?.len()));
        }
        Ok((node.overlay.as_mut().expect("made above"), file))
    }

    /// Up to `len` bytes of the file from `offset`, as the layer shows it.
    pub fn read(&mut self, ino: u64, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        self.file(ino)?;
        let node = &self.nodes[&ino];
        let file = node.file.as_ref().expect("file() opened it");
        match &node.overlay {
            Some(overlay) => overlay.read(file, offset, len),
            None => Overlay::new(file.metadata()?.len()).read(file, offset, len),
        }
    }

    /// Applies the node's unsynced changes to its backing file and syncs it.
    pub fn sync(&mut self, ino: u64, datasync: bool) -> io::Result<()> {
        let node = self
            .nodes
            .get_mut(&ino)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        let (Some(overlay), Some(file)) = (&node.overlay, &node.file) else {
            return Ok(());
        };
        let written = overlay.apply(file)?;
        if datasync {
            file.sync_data()?;
        } else {
            file.sync_all()?;
        }
        node.overlay = None;
        self.figures.syncs += 1;
        self.figures.synced_bytes += written;
        if node.open == 0 {
            node.file = None;
        }
        Ok(())
    }

    /// A handle for an open of `ino`.
    pub fn open_handle(&mut self, ino: u64) -> io::Result<u64> {
        self.file(ino)?;
        self.nodes.get_mut(&ino).expect("file() found it").open += 1;
        let handle = self.next_handle;
        self.next_handle += 1;
        self.handles.insert(handle, ino);
        Ok(handle)
    }

    pub fn release(&mut self, handle: u64) {
        let Some(ino) = self.handles.remove(&handle) else {
            return;
        };
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.open = node.open.saturating_sub(1);
            // Closing is not durability: the overlay stays, and with it
            // the file, until an fsync or the cut.
            if node.open == 0 && node.overlay.is_none() {
                node.file = None;
            }
        }
    }

    /// The path is gone from the backing directory (unlinked or replaced).
    pub fn forget_path(&mut self, path: &Path) {
        if let Some(ino) = self.by_path.remove(path)
            && let Some(node) = self.nodes.get_mut(&ino)
        {
            node.path = None;
            if node.open == 0 {
                node.overlay = None;
                node.file = None;
            }
        }
    }

    /// `from` was renamed to `to`: the node and, for a directory, all below it.
    pub fn renamed(&mut self, from: &Path, to: &Path) {
        self.forget_path(to);
        let moved: Vec<PathBuf> = self
            .by_path
            .keys()
            .filter(|path| path.starts_with(from))
            .cloned()
            .collect();
        for old in moved {
            let new = to.join(old.strip_prefix(from).expect("filtered"));
            let ino = self.by_path.remove(&old).expect("listed");
            self.by_path.insert(new.clone(), ino);
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.path = Some(new);
            }
        }
    }

    /// The attributes of `ino` as the layer shows them.
    pub fn attr(&mut self, ino: u64) -> io::Result<FileAttr> {
        let node = self
            .nodes
            .get(&ino)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        let meta = match (&node.file, &node.path) {
            (Some(file), _) => file.metadata()?,
            (None, Some(path)) => std::fs::symlink_metadata(self.backing.join(path))?,
            (None, None) => return Err(io::Error::from_raw_os_error(libc::ENOENT)),
        };
        let size = node.overlay.as_ref().map(Overlay::size);
        Ok(to_attr(ino, &meta, size))
    }
}

fn to_attr(ino: u64, meta: &Metadata, size: Option<u64>) -> FileAttr {
    let time = |secs: i64, nanos: i64| {
        UNIX_EPOCH + Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32)
    };
    let kind = FileType::from_std(meta.file_type()).unwrap_or(FileType::RegularFile);
    let size = size.unwrap_or(meta.len());
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: time(meta.atime(), meta.atime_nsec()),
        mtime: time(meta.mtime(), meta.mtime_nsec()),
        ctime: time(meta.ctime(), meta.ctime_nsec()),
        crtime: time(meta.ctime(), meta.ctime_nsec()),
        kind,
        perm: (meta.mode() & 0o7777) as u16,
        nlink: meta.nlink() as u32,
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: meta.rdev() as u32,
        blksize: 4096,
        flags: 0,
    }
}
