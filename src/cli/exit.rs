//! How a binary ends and writes: one line on error, never a panic or a
//! debug dump, and output that appears as it is printed.

use std::process::ExitCode;

/// Writes to stdout and flushes, so streamed output appears as it arrives.
pub fn print(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Ends a binary: prints an error as one line on stderr and picks the exit
/// code. A closed stdout (e.g. piped into `head`) is a normal way to stop.
pub fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let line = crate::client::one_line(&err);
            let words: Vec<&str> = line.split_whitespace().collect();
            eprintln!("error: {}", words.join(" "));
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|err| err.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
