//! What a server process uses, read from `/proc` (Linux): its resident
//! memory and CPU time, and what idle streams held open cost it.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;

use crate::report::Figure;

/// Resident memory of a process, in bytes (Linux: `VmRSS` in `/proc/PID/status`).
pub fn resident_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read the status of process {pid}"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .with_context(|| format!("no VmRSS for process {pid}"))?;
    Ok(kib * 1024)
}

/// CPU time a process has used, user and system (Linux: fields 14 and 15
/// of `/proc/PID/stat`, in clock ticks of 1/100 s, `USER_HZ` on Linux).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read the stat of process {pid}"))?;
    // The command name (field 2) may hold spaces: count from after it.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok((user + system) as f64 / 100.0),
        _ => anyhow::bail!("no CPU times for process {pid}"),
    }
}

/// What `count` idle streams cost a server: its memory before and after
/// they opened, and its CPU time while they were held open.
#[derive(Debug, Clone)]
pub struct IdleCost {
    pub count: usize,
    pub rss_before: u64,
    pub rss_after: u64,
    pub held_seconds: f64,
    pub server_cpu_seconds: f64,
}

impl IdleCost {
    /// Reads the memory of process `pid`, opens `count` streams with
    /// `open`, reads it again, then holds them open for `hold` seconds and
    /// reads the CPU time the process spent meanwhile.
    pub async fn measure<T>(
        pid: u32,
        count: usize,
        hold: f64,
        open: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<Self> {
        let hold_for = Duration::try_from_secs_f64(hold).context("invalid --hold")?;
        let rss_before = resident_bytes(pid)?;
        let streams = open.await?;
        let rss_after = resident_bytes(pid)?;
        let cpu_before = cpu_seconds(pid)?;
        tokio::time::sleep(hold_for).await;
        let server_cpu_seconds = cpu_seconds(pid)? - cpu_before;
        drop(streams);
        Ok(IdleCost {
            count,
            rss_before,
            rss_after,
            held_seconds: hold,
            server_cpu_seconds,
        })
    }

    /// Its figures, the memory per stream under `per_stream`, e.g.
    /// `bytes_per_watcher`, shown as `column`.
    pub fn figures(&self, per_stream: &'static str, column: &'static str) -> Vec<Figure> {
        let per = self.rss_after.saturating_sub(self.rss_before) as f64 / self.count.max(1) as f64;
        vec![
            Figure::count(self.rss_before)
                .json("rss_before")
                .table("rss before"),
            Figure::count(self.rss_after)
                .json("rss_after")
                .table("rss after"),
            Figure::real(per, 0).json(per_stream).table(column),
            Figure::seconds(self.held_seconds)
                .json("held_seconds")
                .table("held s"),
            Figure::real(self.server_cpu_seconds, 2)
                .json("server_cpu_seconds")
                .table("cpu s"),
        ]
    }
}
