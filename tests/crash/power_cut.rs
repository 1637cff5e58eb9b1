//! Power cuts: the crash rounds of `crash.rs` with the server's data
//! directory on `common::power_fs`, a FUSE layer that keeps written data in
//! memory until it is fsynced and drops it when the power is cut. SIGKILL
//! leaves the OS's page cache alone, so a missing fsync passes those
//! rounds; here what was acknowledged must have been synced.
//!
//! A round ends with the cut first (unsynced data gone, EIO from then on,
//! so no ack can rest on a write made after it), then SIGKILL, then the
//! unmount; the next server starts on a new mount of the same backing
//! directory. The layer itself is checked first: it must really lose what
//! was not synced, or the rounds would prove nothing.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{Machine, crash_rounds};
use crate::common::power_fs::{Figures, PowerFs};
use crate::common::process::ServerProcess;
use crate::common::{eventually, within};

/// `len` bytes of a pattern that differs with `seed`.
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

#[test]
fn the_layer_loses_what_was_not_synced() {
    let backing = tempfile::tempdir().unwrap();
    let mountpoint = tempfile::tempdir().unwrap();
    let power = PowerFs::mount(backing.path(), mountpoint.path());
    let dir = power.path().join("dir");
    fs::create_dir(&dir).unwrap();

    // A: written, never synced.
    let a = bytes(10_000, 1);
    File::create(dir.join("a")).unwrap().write_all(&a).unwrap();
    // B: written and synced.
    let b = bytes(20_000, 2);
    let mut file = File::create(dir.join("b")).unwrap();
    file.write_all(&b).unwrap();
    file.sync_all().unwrap();
    drop(file);
    // C: a synced prefix, then (unsynced) a change inside it and an append.
    let c = bytes(6_000, 3);
    let mut file = File::create(dir.join("c")).unwrap();
    file.write_all(&c).unwrap();
    file.sync_data().unwrap();
    file.write_all_at(&[0xFF; 100], 100).unwrap();
    let appended = bytes(7_000, 4);
    file.write_all(&appended).unwrap();
    drop(file);
    // D: synced, then truncated (a size change waits for an fsync too).
    let d = bytes(9_000, 5);
    let mut file = File::create(dir.join("d")).unwrap();
    file.write_all(&d).unwrap();
    file.sync_all().unwrap();
    file.set_len(10).unwrap();
    drop(file);

    // Before the cut the layer serves everything, synced or not.
    let mut c_now = c.clone();
    c_now[100..200].fill(0xFF);
    c_now.extend_from_slice(&appended);
    assert_eq!(fs::read(dir.join("a")).unwrap(), a);
    assert_eq!(fs::read(dir.join("b")).unwrap(), b);
    assert_eq!(fs::read(dir.join("c")).unwrap(), c_now);
    assert_eq!(fs::read(dir.join("d")).unwrap(), &d[..10]);
    assert_eq!(fs::metadata(dir.join("c")).unwrap().len(), 13_000);
    // ... and the backing files hold only what was synced.
    let on_disk = backing.path().join("dir");
    assert_eq!(fs::read(on_disk.join("a")).unwrap(), b"");
    assert_eq!(fs::read(on_disk.join("c")).unwrap(), c);

    let held = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join("b"))
        .unwrap();
    let figures = power.cut();
    assert_eq!(figures.dropped_files, 3, "a, c and d had unsynced changes");
    // a: 3 pages; c: 4 (the changed one and the appended ones); d: none,
    // only its size.
    assert_eq!(figures.dropped_pages, 7, "{figures:?}");
    // After the cut nothing works, so nothing can be made durable.
    let eio = |result: std::io::Result<()>| {
        assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::EIO));
    };
    eio(held.read_at(&mut [0; 10], 0).map(drop));
    eio(held.write_all_at(b"late", 0));
    eio(held.sync_all());
    drop(held);
    power.unmount();

    let power = PowerFs::mount(backing.path(), mountpoint.path());
    let dir = power.path().join("dir");
    assert_eq!(fs::read(dir.join("a")).unwrap(), b"", "a exists, empty");
    assert_eq!(fs::read(dir.join("b")).unwrap(), b, "b is intact");
    assert_eq!(
        fs::read(dir.join("c")).unwrap(),
        c,
        "c is its synced prefix"
    );
    assert_eq!(fs::read(dir.join("d")).unwrap(), d, "d was never truncated");
    power.unmount();
}

/// A second `pod-server` on the same data directory on the layer is
/// refused: redb's locks (flock and byte ranges) work on the mount, which
/// leaves them to the kernel.
#[tokio::test]
async fn a_second_server_on_the_layer_is_refused() {
    let machine = PowerCuts::new();
    let data = machine.data_dir();
    let first = ServerProcess::start(&data, "127.0.0.1:0", &[]).await;
    let second = tokio::process::Command::new(env!("CARGO_BIN_EXE_pod-server"))
        .args(["--addr", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output();
    let output = within("the second server", second).await.unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("in use by another running pod-server"),
        "{stderr}"
    );
    first.kill().await;
}

/// The machine of the power-cut rounds: the data directory on a layer over
/// a backing directory, mounted again after each cut.
struct PowerCuts {
    /// Kept (not deleted) if the test fails, for inspection.
    backing: Option<TempDir>,
    mountpoint: TempDir,
    power: Option<PowerFs>,
    /// Each cut's figures, in order.
    cuts: Vec<Figures>,
    /// How long each cut, kill, unmount and remount took.
    downtime: Vec<Duration>,
}

impl PowerCuts {
    fn new() -> Self {
        let backing = tempfile::tempdir().unwrap();
        let mountpoint = tempfile::tempdir().unwrap();
        let power = PowerFs::mount(backing.path(), mountpoint.path());
        PowerCuts {
            backing: Some(backing),
            mountpoint,
            power: Some(power),
            cuts: Vec::new(),
            downtime: Vec::new(),
        }
    }

    fn backing(&self) -> &Path {
        self.backing.as_ref().expect("kept until dropped").path()
    }
}

impl Machine for PowerCuts {
    fn data_dir(&self) -> PathBuf {
        self.mountpoint.path().join("data")
    }

    /// Even cuts fall wherever the work is; odd ones on a write, a
    /// different one each time, so that some data is on its way.
    async fn crash(&mut self, server: ServerProcess) {
        let started = Instant::now();
        let power = self.power.take().expect("mounted");
        let n = self.cuts.len() as u64;
        if n.is_multiple_of(2) {
            power.cut();
        } else {
            power.cut_at_write(n * 7 % 23);
            eventually(|| power.is_cut(), "the power cut on a write").await;
        }
        server.kill().await;
        self.cuts.push(power.figures());
        power.unmount();
        self.power = Some(PowerFs::mount(self.backing(), self.mountpoint.path()));
        self.downtime.push(started.elapsed());
    }
}

impl Drop for PowerCuts {
    fn drop(&mut self) {
        drop(self.power.take());
        if std::thread::panicking()
            && let Some(backing) = self.backing.take()
        {
            eprintln!(
                "power-cut rounds failed: the data directory is kept in {:?}",
                backing.keep().join("data")
            );
        }
    }
}

async fn power_cut_rounds(rounds: usize) {
    let started = Instant::now();
    let mut machine = PowerCuts::new();
    let cycles = crash_rounds(rounds, &mut machine).await;
    machine.power.take().expect("mounted").unmount();
    let dropping = machine.cuts.iter().filter(|f| f.dropped_pages > 0).count();
    let dropped: u64 = machine.cuts.iter().map(|f| f.dropped_pages).sum();
    let synced: u64 = machine.cuts.iter().map(|f| f.synced_bytes).sum();
    let syncs: u64 = machine.cuts.iter().map(|f| f.syncs).sum();
    let mean = |d: &[Duration]| d.iter().sum::<Duration>() / d.len().max(1) as u32;
    eprintln!(
        "{} power cuts: {dropping} dropped unsynced data, {dropped} pages ({} KiB) in all; \
         {syncs} fsyncs applied {} KiB; per cut: {:?}; \
         cycle (cut, kill, unmount, remount, restart, check) {:?} on average, \
         of which cut to remount {:?}; {:?} in all",
        machine.cuts.len(),
        dropped * 4,
        synced / 1024,
        machine
            .cuts
            .iter()
            .map(|f| f.dropped_pages)
            .collect::<Vec<_>>(),
        mean(&cycles),
        mean(&machine.downtime),
        started.elapsed(),
    );
    assert!(
        dropping > 0,
        "no cut dropped unsynced data: the rounds exercised no loss"
    );
    assert!(syncs > 0, "the server synced its writes through the layer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_power_cuts() {
    power_cut_rounds(4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 40 power-cut rounds; run with --ignored"]
async fn acknowledged_writes_survive_many_power_cuts() {
    power_cut_rounds(40).await;
}
