//! `upload-logs`: the client-streaming pattern.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use pod_service::cli::{self, PodArgs, ServerArgs};
use pod_service::client::{self, upload};

/// Stream log lines to a pod (UploadLogs) and print the server's summary.
///
/// Reads the FILEs in order, or stdin when none is given, line by line, and
/// sends them in chunks; it never holds a whole file in memory. Lines that
/// are not valid UTF-8 are sent with U+FFFD in place of the bad bytes. On a
/// terminal a progress bar shows bytes read and lines/s.
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
    cli::exit(run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut client = client::connect(&args.server.client_config()?).await?;
    let (inputs, total) = upload::open_inputs(&args.files).await?;
    let progress = std::io::stderr().is_terminal().then(|| progress_bar(total));
    let (namespace, pod) = (&args.target.namespace, &args.target.pod);
    let report = upload::upload(
        &mut client,
        namespace,
        pod,
        inputs,
        progress.clone().map(show),
    )
    .await;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let report = report?;
    if report.lossy_lines > 0 {
        eprintln!(
            "note: {} lines were not valid UTF-8; their bad bytes were sent as U+FFFD",
            report.lossy_lines
        );
    }
    cli::print(&format!("{}\n", upload::describe(&report, namespace, pod)))?;
    Ok(())
}

/// Advances `bar` by the bytes read and shows the lines and their rate.
fn show(bar: ProgressBar) -> upload::OnProgress {
    Box::new(move |progress: upload::Progress| {
        bar.inc(progress.bytes_read);
        let rate = progress.lines as f64 / progress.elapsed.as_secs_f64().max(1e-3);
        bar.set_message(format!("{} lines, {rate:.0} lines/s", progress.lines));
    })
}

/// Bytes of bytes and lines/s on a terminal; a spinner when the size is
/// unknown (stdin).
fn progress_bar(total: Option<u64>) -> ProgressBar {
    match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    }
}
