//! A FUSE file system that models a power cut, for the crash tests: a
//! process killed with SIGKILL loses nothing the kernel's page cache holds,
//! so a missing fsync passes those; on this layer it does not.
//!
//! [`PowerFs::mount`] mounts a pass-through of a backing directory in which
//! written file data (and size changes) stays in the layer's memory until
//! the file is fsynced; [`PowerFs::cut`] drops all of it at once and fails
//! every later operation with EIO, as a machine losing power would lose its
//! page cache. The backing directory then holds exactly what was synced:
//! mount it again for the machine's next life. Names (create, unlink,
//! rename, mkdir) reach the backing directory at once, so a missing
//! directory fsync is not shown (see `shared/toolchain.md`).
//!
//! Mounting needs `/dev/fuse` and runs as root (as CI does) or through
//! Debian's `fusermount3`, which unmounting uses too.

mod layer;
mod nodes;
mod overlay;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};

use fuser::{BackgroundSession, Config, MountOption};

pub use nodes::Figures;
use nodes::State;

/// A mounted layer; unmounted when dropped (also when a test panics).
pub struct PowerFs {
    state: Arc<Mutex<State>>,
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
    fusermount: PathBuf,
}

impl PowerFs {
    /// Mounts the layer over `backing` at `mountpoint` (an empty directory)
    /// and returns once it serves.
    pub fn mount(backing: &Path, mountpoint: &Path) -> PowerFs {
        let fusermount = super::tools::require("fusermount3", "fuse3");
        let state = Arc::new(Mutex::new(State::new(backing.to_owned())));
        let layer = layer::Layer {
            state: Arc::clone(&state),
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("powerfs".into()),
            MountOption::Subtype("powerfs".into()),
        ];
        let session = fuser::spawn_mount(layer, mountpoint, &config)
            .unwrap_or_else(|err| panic!("mount the power-cut layer at {mountpoint:?}: {err}"));
        PowerFs {
            state,
            session: Some(session),
            mountpoint: mountpoint.to_owned(),
            fusermount,
        }
    }

    /// Where the layer is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The power cut: at once (under the layer's lock, so between two
    /// operations) drops every unsynced change and makes every later
    /// operation fail with EIO. Returns the mount's figures.
    pub fn cut(&self) -> Figures {
        let mut state = self.lock();
        state.cut();
        state.figures
    }

    /// Arms a cut that falls on the `writes`-th write from now (0: the
    /// next one): that write reaches the layer's memory, then the power
    /// fails (the write fails with EIO), so the cut drops at least it.
    pub fn cut_at_write(&self, writes: u64) {
        let mut state = self.lock();
        if !state.cut {
            state.cut_at_write = Some(writes);
        }
    }

    /// Whether the power is cut.
    pub fn is_cut(&self) -> bool {
        self.lock().cut
    }

    /// What the fsyncs applied so far, and what the cut dropped.
    pub fn figures(&self) -> Figures {
        self.lock().figures
    }

    /// Unmounts the layer; nothing may hold a file on it open (kill the
    /// processes using it first).
    pub fn unmount(mut self) {
        let session = self.session.take().expect("mounted");
        let status = Command::new(&self.fusermount)
            .arg("-u")
            .arg(&self.mountpoint)
            .status()
            .expect("run fusermount3");
        assert!(
            status.success(),
            "fusermount3 -u {:?}: {status}",
            self.mountpoint
        );
        // The session's thread ends as the kernel closes the connection.
        session.join().expect("the layer's session");
    }
}

impl Drop for PowerFs {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        self.lock().cut();
        let unmount = |lazy: bool| {
            let mut command = Command::new(&self.fusermount);
            command.arg("-u").arg("-q");
            if lazy {
                command.arg("-z");
            }
            command
                .arg(&self.mountpoint)
                .status()
                .is_ok_and(|status| status.success())
        };
        if unmount(false) {
            let _ = session.join();
        } else {
            // Still in use (a server killed on drop may not have exited
            // yet): detach it now; the kernel ends the session when the
            // last file closes, and the layer answers EIO until then.
            unmount(true);
            drop(session);
        }
    }
}
