//! Shutdown: one cancellation token for the whole server.
//!
//! `pod-server` cancels it on Ctrl-C or SIGTERM; tests cancel it directly.
//! The listener stops accepting, and every endless stream (watch, follow,
//! sync) sees the token and ends with `UNAVAILABLE`, which clients treat as
//! "reconnect and resume".

use std::future::Future;

pub use tokio_util::sync::CancellationToken as Shutdown;

/// Installs the Ctrl-C (SIGINT) and SIGTERM handlers now, and returns a
/// future that resolves on the first of them. Installing them before the
/// server says it is listening means that a signal sent as soon as it is
/// ready is never lost nor left to kill the process.
pub fn signals() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}
