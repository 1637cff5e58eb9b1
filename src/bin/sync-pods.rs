//! `sync-pods`: the bidirectional pattern, an interactive session.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use pod_service::cli::{self, ServerArgs};
use pod_service::client::Servers;
use pod_service::client::sync::{self, Mode, Notice};
use tokio::io::BufReader;

/// Apply and delete pods over one SyncPods stream, and see live what every
/// client changes.
///
/// Commands (one per line):
///   apply [NS/]NAME [status=S] [replicas=N] [version=V]   (fields not named are kept)
///   delete [NS/]NAME
///   watch [NS] [version=V]
///   help
///   quit
///
/// Each command is sent as it is typed; its ack and the changes of other
/// clients are printed as they arrive. If the connection breaks, the session
/// reconnects and resumes its watch from the newest version it holds, its
/// last change or a bookmark (ops in
/// flight are reported as failed: they may or may not have been applied);
/// with several servers (--addr A,B), it reconnects to the next of them.
/// When stdin is not a terminal, the commands are run as a script: the
/// session ends after the last ack, and a bad line or a failed op makes the
/// exit status non-zero.
// The doc comment above is the --help text: [NS] there is usage, not a link.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(Parser)]
#[command(version, verbatim_doc_comment)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Also note each bookmark of the watch on stderr: the version a
    /// resumed watch would start from.
    #[arg(short, long)]
    verbose: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::exit(run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let servers = Servers::connect(&args.server.client_config()?).await?;
    let mode = if std::io::stdin().is_terminal() {
        eprintln!(
            "connected to {}; type 'help' for commands, 'quit' to leave",
            servers.addr().unwrap_or("the server")
        );
        Mode::Interactive
    } else {
        Mode::Script
    };
    let input = BufReader::new(tokio::io::stdin());
    let verbose = args.verbose;
    let notice = |notice: Notice| match notice {
        Notice::Note(note) => eprintln!("{note}"),
        Notice::Progressed(version) if verbose => eprintln!("bookmark: up to version {version}"),
        Notice::Progressed(_) => {}
    };
    let report = sync::run_session(servers, input, tokio::io::stdout(), mode, notice).await?;
    if mode == Mode::Script && report.failed > 0 {
        anyhow::bail!("{} of {} ops failed", report.failed, report.ops);
    }
    Ok(())
}
