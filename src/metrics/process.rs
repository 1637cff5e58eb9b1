//! The process figures every Prometheus client library exports, with their
//! standard names (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`, `process_max_fds`, `process_start_time_seconds`),
//! read from `/proc/self` at each scrape. On a system without `/proc` they
//! are left out rather than made up.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Reads the process figures at each scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// The kernel reports CPU times in `/proc` in USER_HZ ticks, 100 a second
/// on every architecture Linux runs on (`man 5 proc`).
const TICKS: f64 = 100.0;

/// What `/proc/self` says, and when the system booted.
struct Stat {
    cpu_seconds: f64,
    resident_bytes: f64,
    start_seconds: f64,
}

fn stat() -> Option<Stat> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command, which may hold spaces: utime, the
    // 14th field of the line, is the 12th of these.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let number = |i: usize| fields.get(i)?.parse::<f64>().ok();
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
    let resident_kb = std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|line| {
            let kb = line.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?;
            kb.trim().parse::<f64>().ok()
        })?;
    Some(Stat {
        cpu_seconds: (number(11)? + number(12)?) / TICKS,
        resident_bytes: resident_kb * 1024.0,
        start_seconds: boot + number(19)? / TICKS,
    })
}

fn open_fds() -> Option<i64> {
    let fds = std::fs::read_dir("/proc/self/fd").ok()?;
    // Less the one read_dir holds open.
    Some(fds.count() as i64 - 1)
}

fn max_fds() -> Option<i64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(stat) = stat() {
            let help = "Total user and system CPU time spent in seconds.";
            one(
                &mut encoder,
                "process_cpu_seconds",
                help,
                ConstCounter::new(stat.cpu_seconds),
            )?;
            let help = "Resident memory size in bytes.";
            let resident = ConstGauge::new(stat.resident_bytes);
            one(
                &mut encoder,
                "process_resident_memory_bytes",
                help,
                resident,
            )?;
            let help = "Start time of the process since unix epoch in seconds.";
            let start = ConstGauge::new(stat.start_seconds);
            one(&mut encoder, "process_start_time_seconds", help, start)?;
        }
        if let Some(open) = open_fds() {
            let help = "Number of open file descriptors.";
            one(
                &mut encoder,
                "process_open_fds",
                help,
                ConstGauge::new(open),
            )?;
        }
        if let Some(max) = max_fds() {
            let help = "Maximum number of open file descriptors.";
            one(&mut encoder, "process_max_fds", help, ConstGauge::new(max))?;
        }
        Ok(())
    }
}

/// Encodes one unlabelled metric with its descriptor.
fn one(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}
