//! The FUSE operations of the power-cut layer: a pass-through to the
//! backing directory in which file data and sizes reach the backing files
//! only on fsync (`super::overlay` holds them until then), while creating,
//! unlinking, renaming and directories reach it at once (so the layer
//! cannot show a missing directory fsync). Closing a file persists nothing.
//!
//! Every operation takes the state's lock and fails with EIO once the power
//! is cut. Files are opened with direct I/O, so that every read and write
//! reaches the layer rather than the kernel's page cache. Byte-range locks
//! and `flock` are left to the kernel (fuser does not ask for
//! FUSE_POSIX_LOCKS or FUSE_FLOCK_LOCKS): it locks locally, as a local file
//! system does. `fsync` must be answered: a FUSE file system answering it
//! with ENOSYS makes the kernel report every later fsync as a success.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use super::nodes::State;

/// How long the kernel may cache names and attributes: every change goes
/// through the kernel, so its caches stay right.
const TTL: Duration = Duration::from_secs(1);

pub struct Layer {
    pub state: Arc<Mutex<State>>,
}

impl Layer {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `op` on the state, unless the power is cut.
    fn with<T>(&self, op: impl FnOnce(&mut State) -> io::Result<T>) -> Result<T, Errno> {
        let mut state = self.lock();
        if state.cut {
            return Err(Errno::EIO);
        }
        op(&mut state).map_err(Errno::from)
    }

    fn entry(&self, reply: ReplyEntry, op: impl FnOnce(&mut State) -> io::Result<u64>) {
        match self.with(|state| {
            let ino = op(state)?;
            state.attr(ino)
        }) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(errno) => reply.error(errno),
        }
    }

    fn empty(&self, reply: ReplyEmpty, op: impl FnOnce(&mut State) -> io::Result<()>) {
        match self.with(op) {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(errno),
        }
    }
}

impl Filesystem for Layer {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry(reply, |state| {
            let path = state.child(parent.0, name)?;
            fs::symlink_metadata(state.full(&path))?;
            Ok(state.ino_of(path))
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.with(|state| state.attr(ino.0)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(errno) => reply.error(errno),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let attr = self.with(|state| {
            // The size is file data: it waits for an fsync. The rest is
            // metadata, which the layer does not model: applied at once.
            if let Some(size) = size {
                state.overlay(ino.0)?.0.set_size(size);
            }
            let full = state.full(&state.path(ino.0)?);
            if let Some(mode) = mode {
                fs::set_permissions(&full, fs::Permissions::from_mode(mode & 0o7777))?;
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::chown(&full, uid, gid)?;
            }
            if (atime.is_some() || mtime.is_some()) && full.is_file() {
                let time = |t: TimeOrNow| match t {
                    TimeOrNow::SpecificTime(time) => time,
                    TimeOrNow::Now => SystemTime::now(),
                };
                let mut times = fs::FileTimes::new();
                if let Some(atime) = atime {
                    times = times.set_accessed(time(atime));
                }
                if let Some(mtime) = mtime {
                    times = times.set_modified(time(mtime));
                }
                state.file(ino.0)?.set_times(times)?;
            }
            state.attr(ino.0)
        });
        match attr {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(errno) => reply.error(errno),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.entry(reply, |state| {
            let path = state.child(parent.0, name)?;
            fs::DirBuilder::new()
                .mode(mode & !umask & 0o7777)
                .create(state.full(&path))?;
            Ok(state.ino_of(path))
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |state| {
            let path = state.child(parent.0, name)?;
            fs::remove_file(state.full(&path))?;
            state.forget_path(&path);
            Ok(())
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |state| {
            let path = state.child(parent.0, name)?;
            fs::remove_dir(state.full(&path))?;
            state.forget_path(&path);
            Ok(())
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |state| {
            if !flags.is_empty() {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            let from = state.child(parent.0, name)?;
            let to = state.child(newparent.0, newname)?;
            fs::rename(state.full(&from), state.full(&to))?;
            state.renamed(&from, &to);
            Ok(())
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.with(|state| state.open_handle(ino.0)) {
            Ok(handle) => reply.opened(FileHandle(handle), FopenFlags::FOPEN_DIRECT_IO),
            Err(errno) => reply.error(errno),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let created = self.with(|state| {
            let path = state.child(parent.0, name)?;
            // The new name reaches the backing directory now, empty.
            let mut options = OpenOptions::new();
            options.read(true).write(true).mode(mode & !umask & 0o7777);
            if flags & libc::O_EXCL != 0 {
                options.create_new(true);
            } else {
                options.create(true);
            }
            let file = options.open(state.full(&path))?;
            let ino = state.ino_of(path);
            let node = state.nodes.get_mut(&ino).expect("ino_of made it");
            node.file.get_or_insert(file);
            if flags & libc::O_TRUNC != 0 {
                state.overlay(ino)?.0.set_size(0);
            }
            let handle = state.open_handle(ino)?;
            Ok((state.attr(ino)?, handle))
        });
        match created {
            Ok((attr, handle)) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(handle),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(errno) => reply.error(errno),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let data = self.with(|state| state.read(ino.0, offset, size.into()));
        match data {
            Ok(data) => reply.data(&data),
            Err(errno) => reply.error(errno),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let written = self.with(|state| {
            let (overlay, file) = state.overlay(ino.0)?;
            overlay.write(file, offset, data)?;
            match state.cut_at_write {
                // The data reached the "page cache", then the power failed.
                Some(0) => {
                    state.cut();
                    return Err(io::Error::from_raw_os_error(libc::EIO));
                }
                Some(n) => state.cut_at_write = Some(n - 1),
                None => {}
            }
            Ok(data.len() as u32)
        });
        match written {
            Ok(written) => reply.written(written),
            Err(errno) => reply.error(errno),
        }
    }

    /// Closing persists nothing.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |_| Ok(()));
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Even after the cut: the kernel needs its handles back to unmount.
        self.lock().release(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |state| state.sync(ino.0, datasync));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.with(|state| state.path(ino.0)) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(errno) => reply.error(errno),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = self.with(|state| {
            let path = state.path(ino.0)?;
            let parent = match path.parent() {
                Some(parent) => state.ino_of(parent.to_owned()),
                None => ino.0,
            };
            let mut entries = vec![
                (ino.0, FileType::Directory, ".".into()),
                (parent, FileType::Directory, "..".into()),
            ];
            let mut children: Vec<_> = fs::read_dir(state.full(&path))?
                .map(|entry| {
                    let entry = entry?;
                    let kind = FileType::from_std(entry.file_type()?);
                    Ok((entry.file_name(), kind.unwrap_or(FileType::RegularFile)))
                })
                .collect::<io::Result<_>>()?;
            children.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, kind) in children {
                entries.push((state.ino_of(path.join(&name)), kind, name));
            }
            Ok(entries)
        });
        match entries {
            Ok(entries) => {
                for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
                    if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(errno) => reply.error(errno),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Names reach the backing directory at once: nothing to apply.
        self.empty(reply, |_| Ok(()));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.with(|_| Ok(())) {
            // A roomy disk: 4 TiB, half of it free.
            Ok(()) => reply.statfs(1 << 30, 1 << 29, 1 << 29, 1 << 24, 1 << 23, 4096, 255, 4096),
            Err(errno) => reply.error(errno),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        self.empty(reply, |_| Ok(()));
    }
}
