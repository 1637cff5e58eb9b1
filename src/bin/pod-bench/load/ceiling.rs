//! etcd's own write ceiling, with no server in between: callers sending
//! the transaction of a pod apply straight to etcd, one at a time each.
//! A replica's SyncPods ops/s is set beside it (BENCHMARKS.md).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use pod_service::store::{BackendTls, ETCD_TLS_FLAGS, TlsFiles, WriteCeiling, write_ceiling};

use super::Latency;
use crate::report::{Figure, Row};

/// The flags of the `etcd-ceiling` load.
#[derive(clap::Args)]
pub struct CeilingArgs {
    /// The etcd cluster's client URLs, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    etcd_endpoints: Vec<String>,
    /// Caller counts to measure, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub callers: Vec<usize>,
    /// Length of each run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// For https:// endpoints: the CA of etcd's certificates (else the
    /// system's CAs), as pod-server's flag.
    #[arg(long, value_name = "FILE")]
    etcd_cafile: Option<PathBuf>,
    /// For https:// endpoints: a client certificate, as pod-server's flag.
    #[arg(long, value_name = "FILE", requires = "etcd_keyfile")]
    etcd_certfile: Option<PathBuf>,
    /// The key of --etcd-certfile.
    #[arg(long, value_name = "FILE", requires = "etcd_certfile")]
    etcd_keyfile: Option<PathBuf>,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct CeilingFigures {
    pub callers: usize,
    pub txns: usize,
    pub elapsed: Duration,
    pub latency: Latency,
}

impl Row for CeilingFigures {
    const LOAD: &'static str = "etcd-ceiling";

    fn figures(&self) -> Vec<Figure> {
        let Latency { p50, p99, max } = self.latency;
        vec![
            Figure::count(self.callers).named("callers"),
            Figure::count(self.txns).named("txns"),
            Figure::real(self.txns as f64 / self.elapsed.as_secs_f64(), 0)
                .json("txns_per_second")
                .table("txns/s"),
            Figure::millis(p50).json("p50_ms").table("p50"),
            Figure::millis(p99).json("p99_ms").table("p99"),
            Figure::millis(max).json("max_ms").table("max"),
        ]
    }
}

/// Run `run` of the load, with `callers` callers.
pub async fn ceiling(
    args: &CeilingArgs,
    run: usize,
    callers: usize,
) -> anyhow::Result<CeilingFigures> {
    let seconds = Duration::try_from_secs_f64(args.seconds).context("invalid --seconds")?;
    let prefix = format!("/pod-bench-ceiling/{}-{run}/", std::process::id());
    let tls = match (&args.etcd_cafile, &args.etcd_certfile) {
        (None, None) => None,
        _ => Some(
            BackendTls::load(TlsFiles {
                ca: args.etcd_cafile.as_deref(),
                cert: args.etcd_certfile.as_deref(),
                key: args.etcd_keyfile.as_deref(),
                flags: ETCD_TLS_FLAGS,
            })
            .map_err(anyhow::Error::msg)?,
        ),
    };
    let WriteCeiling { elapsed, latencies } = write_ceiling(
        &args.etcd_endpoints,
        tls.as_ref(),
        &prefix,
        callers,
        seconds,
    )
    .await?;
    Ok(CeilingFigures {
        callers,
        txns: latencies.len(),
        elapsed,
        latency: Latency::of(latencies),
    })
}
