//! `upload-logs`: the client-streaming pattern.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use pod_service::client::{self, PodArgs, ServerArgs, upload};

/// Stream log lines to a pod (UploadLogs) and print the server's summary.
///
/// Reads the FILEs in order, or stdin when none is given, line by line, and
/// sends them in chunks; it never holds a whole file in memory. Lines that
/// are not valid UTF-8 are sent with U+FFFD in place of the bad bytes.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    target: PodArgs,
    /// Files to upload (default: stdin).
    files: Vec<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    client::exit(run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut client = client::connect(&args.server).await?;
    let report = upload::upload(
        &mut client,
        &args.target.namespace,
        &args.target.pod,
        &args.files,
    )
    .await?;
    if report.lossy_lines > 0 {
        eprintln!(
            "note: {} lines were not valid UTF-8; their bad bytes were sent as U+FFFD",
            report.lossy_lines
        );
    }
    client::print(&format!(
        "{}\n",
        upload::describe(&report, &args.target.namespace, &args.target.pod)
    ))?;
    Ok(())
}
