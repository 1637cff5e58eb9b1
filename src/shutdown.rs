//! Shutdown: one cancellation token for the whole server.
//!
//! `pod-server` cancels it on Ctrl-C or SIGTERM; tests cancel it directly.
//! The listener stops accepting, and every endless stream (watch, follow,
//! sync) sees the token and ends with `UNAVAILABLE`, which clients treat as
//! "reconnect and resume".

pub use tokio_util::sync::CancellationToken as Shutdown;

/// Resolves on the first Ctrl-C (SIGINT) or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // Without a handler there is nothing to wait for: never resolve
            // rather than shut down at once.
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
