//! Batched writes: a connection's frames leave in as few system calls as the
//! load allows.
//!
//! hyper's HTTP/2 connection task writes and flushes whatever frames are
//! ready each time it runs. When many streams of one connection become ready
//! one after the other (64 sync sessions acknowledging their ops, 250
//! watchers sent the same change), it runs between them and sends each frame
//! alone: a `writev` per message, which on loopback also pays the receiver's
//! TCP processing. grpc-go's writer yields the processor once before it
//! flushes a small batch, so that frames about to be queued join it; this
//! does the same below hyper. Writes are copied into a buffer, and a flush
//! of less than [`BATCH_BYTES`] first lets the scheduler run the tasks that
//! are already woken (one yield), then writes everything they added in one
//! call.
//!
//! A yield costs one more poll of the connection task and no wait when
//! nothing else is ready. A flush of control frames alone (window updates,
//! pings, settings) goes out without it: a client uploading may be waiting
//! for its window. The buffer is only held while it has bytes, so an idle
//! connection (a quiet watch) holds none.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// A flush of at least this many bytes goes out at once, without a yield;
/// a write this large, with nothing buffered, goes straight through.
pub const BATCH_BYTES: usize = 16 * 1024;

/// An I/O stream whose writes are batched; see the module docs.
pub struct BatchedWrites<IO> {
    io: IO,
    pending: BytesMut,
    // The flush of what is pending has yielded once already.
    yielded: bool,
}

impl<IO> BatchedWrites<IO> {
    /// Batches the writes to `io`.
    pub fn new(io: IO) -> Self {
        BatchedWrites {
            io,
            pending: BytesMut::new(),
            yielded: false,
        }
    }
}

impl<IO: AsyncWrite + Unpin> BatchedWrites<IO> {
    /// Writes out everything pending.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, &self.pending))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.advance(written);
        }
        // Let go of the memory: a connection that is quiet holds none.
        self.pending = BytesMut::new();
        self.yielded = false;
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for BatchedWrites<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let len: usize = bufs.iter().map(|buf| buf.len()).sum();
        if this.pending.is_empty() && len >= BATCH_BYTES {
            return Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        }
        if this.pending.len() >= BATCH_BYTES {
            ready!(this.poll_drain(cx))?;
        }
        for buf in bufs {
            this.pending.extend_from_slice(buf);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pending.is_empty()
            && this.pending.len() < BATCH_BYTES
            && !this.yielded
            && !only_control_frames(&this.pending)
        {
            // Woken at once, so polled again after the tasks ahead of it.
            this.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// Whether `bytes` are whole HTTP/2 SETTINGS, PING and WINDOW_UPDATE frames
/// and nothing else. Those go out without the yield: there is nothing to
/// gather them with, and the peer may be waiting for them (an upload for
/// its window). Written frames begin where a drained buffer began, so the
/// frame headers are found by walking; a buffer that does not walk out
/// whole (a drain can stop mid-frame) only loses the shortcut.
fn only_control_frames(mut bytes: &[u8]) -> bool {
    const HEADER: usize = 9;
    const SETTINGS: u8 = 0x4;
    const PING: u8 = 0x6;
    const WINDOW_UPDATE: u8 = 0x8;
    while bytes.len() >= HEADER {
        let length =
            usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        if !matches!(bytes[3], SETTINGS | PING | WINDOW_UPDATE) || bytes.len() < HEADER + length {
            return false;
        }
        bytes = &bytes[HEADER + length..];
    }
    bytes.is_empty()
}

impl<IO: AsyncRead + Unpin> AsyncRead for BatchedWrites<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<IO: Connected> Connected for BatchedWrites<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::future::Future;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_writes_wait_for_the_flush_then_leave_together() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut batched = BatchedWrites::new(near);
        batched.write_all(b"one ").await.unwrap();
        batched.write_all(b"two").await.unwrap();
        let mut got = [0u8; 7];
        assert!(
            far.read(&mut got).now_or_never().is_none(),
            "nothing is written before the flush"
        );
        batched.flush().await.unwrap();
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"one two");
        assert_eq!(batched.pending.capacity(), 0, "a drained buffer is let go");
    }

    #[tokio::test]
    async fn window_updates_leave_at_once() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut batched = BatchedWrites::new(near);
        // A connection's and a stream's WINDOW_UPDATE, 13 bytes each.
        let update = |stream: u8| [0, 0, 4, 0x8, 0, 0, 0, 0, stream, 0, 1, 0, 0];
        let updates = [update(0), update(1)].concat();
        batched.write_all(&updates).await.unwrap();
        let flushed = std::pin::pin!(batched.flush())
            .poll(&mut Context::from_waker(std::task::Waker::noop()));
        assert!(
            flushed.is_ready(),
            "control frames are flushed without a yield"
        );
        let mut got = [0u8; 26];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(got.as_slice(), updates.as_slice());

        // A DATA frame (type 0) among them is gathered as before.
        let data = [0, 0, 1, 0x0, 0, 0, 0, 0, 1, b'x'];
        batched
            .write_all(&[update(0).as_slice(), &data].concat())
            .await
            .unwrap();
        let flushed = std::pin::pin!(batched.flush())
            .poll(&mut Context::from_waker(std::task::Waker::noop()));
        assert!(flushed.is_pending(), "a flush with data yields once first");
    }

    #[tokio::test]
    async fn large_writes_and_shutdown_lose_nothing() {
        let (near, mut far) = tokio::io::duplex(4 << 10);
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            far.read_to_end(&mut all).await.unwrap();
            all
        });
        let mut batched = BatchedWrites::new(near);
        let mut sent = Vec::new();
        for i in 0..200u32 {
            let chunk = vec![(i % 251) as u8; (i as usize * 397) % (3 * BATCH_BYTES)];
            batched.write_all(&chunk).await.unwrap();
            sent.extend_from_slice(&chunk);
            if i % 7 == 0 {
                batched.flush().await.unwrap();
            }
        }
        batched.shutdown().await.unwrap();
        assert_eq!(reader.await.unwrap(), sent);
    }
}
