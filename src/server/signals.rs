//! Shutdown: one cancellation token for the whole server.
//!
//! `pod-server` cancels it on Ctrl-C or SIGTERM; tests cancel it directly.
//! The listener stops accepting, and every endless stream (watch, follow,
//! sync) sees the token and ends with `UNAVAILABLE`, which clients treat as
//! "reconnect and resume".
//!
//! An endless stream waits for the token with [`stopping`], not with the
//! token's own `cancelled()`: see there why.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

pub use tokio_util::sync::CancellationToken as Shutdown;
use tokio_util::sync::WaitForCancellationFutureOwned;

/// Resolves once `shutdown` is cancelled, like `shutdown.cancelled_owned()`,
/// but cheaper to poll again: a stream polls it every time it is woken for
/// something else (a change, a request), thousands of times a second for
/// every watcher, and each poll of the token's own future takes the lock
/// that every other stream's wait shares. This one registers its task's
/// waker once, and afterwards, while that task is the one polling, only
/// reads the token's flag (which cancelling sets before it wakes anyone).
pub fn stopping(shutdown: &Shutdown) -> Stopping {
    Stopping {
        shutdown: shutdown.clone(),
        wait: shutdown.clone().cancelled_owned(),
        registered: None,
    }
}

pin_project_lite::pin_project! {
    /// See [`stopping`].
    pub struct Stopping {
        shutdown: Shutdown,
        #[pin]
        wait: WaitForCancellationFutureOwned,
        // The waker the wait holds, once it holds one.
        registered: Option<Waker>,
    }
}

impl Future for Stopping {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if this.shutdown.is_cancelled() {
            return Poll::Ready(());
        }
        if this
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        let poll = this.wait.poll(cx);
        if poll.is_pending() {
            *this.registered = Some(cx.waker().clone());
        }
        poll
    }
}

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
