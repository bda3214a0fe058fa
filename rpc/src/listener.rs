//! Accepting connections without falling over: the one accept loop of every server (gateway
//! and storage node). An accept error (EMFILE when the process is out of file descriptors,
//! ECONNABORTED, ...) is logged and retried after a pause instead of ending the server, and at
//! most a bounded number of connections is open at once: past it, new connections wait in the
//! kernel's backlog until one closes. The gateway disconnects a client that stops reading its
//! answer (`StallGuard`), so a stalled reader holds neither its connection nor its buffers for
//! long.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Pause after a failed accept (out of descriptors: give closing connections time to free some).
const ACCEPT_ERROR_PAUSE_MS: u64 = 100;
/// How long a client may take to send a request's headers (slowloris bound), on every server.
pub const HEADER_READ_TIMEOUT_MS: u64 = 10_000;

/// A listener with a cap on open connections.
pub struct BoundedListener {
    listener: TcpListener,
    permits: Arc<Semaphore>,
}

impl BoundedListener {
    pub fn new(listener: TcpListener, connections_max: usize) -> Self {
        Self { listener, permits: Arc::new(Semaphore::new(connections_max)) }
    }

    /// The next connection (TCP_NODELAY set), with the permit that counts it as open: keep the
    /// permit for as long as the connection is served.
    pub async fn accept(&self) -> (TcpStream, SocketAddr, OwnedSemaphorePermit) {
        let permit = self.permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    return (stream, peer, permit);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)).await;
                }
            }
        }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A client that accepts no byte of its answer for this long is disconnected.
pub const WRITE_STALL_TIMEOUT_MS: u64 = 30_000;
/// Unsent bytes a guarded socket may hold before it stops being writable (`TCP_NOTSENT_LOWAT`).
/// Without it Linux reports a socket writable only once a third of a send buffer of up to 4 MiB
/// has drained, so a client reading slowly but steadily (below ~45 KB/s) would look stalled;
/// with it, a writable event comes every 128 KiB taken (about 4.4 KB/s over the 30 s).
pub const UNSENT_BYTES_MAX: u32 = 128 * 1024;

/// Wraps a client connection in a `StallGuard` after capping its unsent bytes, so that the
/// guard's clock measures what the client takes.
pub fn stall_guarded(stream: TcpStream, timeout: Duration) -> StallGuard<TcpStream> {
    use std::os::fd::AsRawFd as _;
    let lowat: libc::c_int = UNSENT_BYTES_MAX as libc::c_int;
    // SAFETY: setsockopt on a socket this process owns, with a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&lowat as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "TCP_NOTSENT_LOWAT not set");
    }
    StallGuard::with_timeout(stream, timeout)
}

/// A connection whose writes fail once the peer has accepted nothing for its timeout
/// (`WRITE_STALL_TIMEOUT_MS` for a server's clients; its receive window stays closed): the
/// connection is then dropped with everything its unsent message held. Servers guard their
/// clients' connections with it (`stall_guarded`), `NodeClient` its connections to nodes. Reads
/// are left alone (headers and bodies have their own timeouts).
pub struct StallGuard<T> {
    inner: T,
    stalled_since: Option<Pin<Box<tokio::time::Sleep>>>,
    timeout: Duration,
}

impl<T> StallGuard<T> {
    pub fn new(inner: T) -> Self {
        Self::with_timeout(inner, Duration::from_millis(WRITE_STALL_TIMEOUT_MS))
    }

    pub fn with_timeout(inner: T, timeout: Duration) -> Self {
        Self { inner, stalled_since: None, timeout }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Pending from the peer: starts (or checks) the stall clock. Progress: stops it.
    fn watch<R>(&mut self, cx: &mut Context<'_>, polled: Poll<std::io::Result<R>>) -> Poll<std::io::Result<R>> {
        match polled {
            Poll::Pending => {
                let timeout = self.timeout;
                let stall = self.stalled_since.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match stall.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the peer accepted nothing written to it for too long",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
            ready => {
                self.stalled_since = None;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// How long a closing client connection keeps reading what its client still sends
/// (`LingeringClose`).
pub const LINGER_MS: u64 = 2_000;
/// How much of it, at most.
pub const LINGER_BYTES_MAX: usize = 16 * 1024 * 1024;

/// A client connection that, when the server closes it, first ends its own side (FIN, after the
/// answer) and then reads and discards what the client still sends, for at most `LINGER_MS` and
/// `LINGER_BYTES_MAX`, before the socket is closed (nginx's lingering close). A socket closed
/// with unread bytes makes the kernel send a reset, which can reach the client before it has
/// read the answer: a client still sending a body the server refused without reading it (403
/// before the upload, 503 SlowDown, a malformed checksum header) saw a broken pipe instead of
/// the answer, and did not learn why.
pub struct LingeringClose<T> {
    inner: T,
    linger: Option<Linger>,
}

struct Linger {
    deadline: Pin<Box<tokio::time::Sleep>>,
    discarded: usize,
    write_shut: bool,
}

impl<T> LingeringClose<T> {
    pub fn new(inner: T) -> Self {
        Self { inner, linger: None }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for LingeringClose<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for LingeringClose<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let linger = this.linger.get_or_insert_with(|| Linger {
            deadline: Box::pin(tokio::time::sleep(Duration::from_millis(LINGER_MS))),
            discarded: 0,
            write_shut: false,
        });
        if !linger.write_shut {
            std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            linger.write_shut = true;
        }
        let mut scratch = [0u8; 16 * 1024];
        loop {
            if linger.discarded >= LINGER_BYTES_MAX || linger.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                // The client closed (or reset) its side: nothing left to protect.
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => linger.discarded += buf.filled().len(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers before reading a request's body, then closes: what the client,
    /// still sending an 8 MiB body, gets (whether its body was taken, and the answer it read).
    async fn refused_while_sending(lingering: bool) -> (std::io::Result<()>, std::io::Result<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut conn = LingeringClose::new(stream);
            let mut head = [0u8; 1024];
            let _ = conn.read(&mut head).await.unwrap();
            conn.write_all(b"refused").await.unwrap();
            if lingering {
                conn.shutdown().await.unwrap();
            }
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        let sent = client.write_all(&vec![7u8; 8 << 20]).await;
        let mut answer = Vec::new();
        let read = client.read_to_end(&mut answer).await.map(|_| answer);
        server.await.unwrap();
        (sent, read)
    }

    /// With a lingering close the client sends its whole body and reads the answer; closed
    /// plainly, with the body unread, the socket resets and the client's writes fail.
    #[tokio::test]
    async fn a_client_still_sending_a_refused_body_reads_the_answer() {
        let (sent, read) = refused_while_sending(true).await;
        sent.expect("the whole body is taken");
        assert_eq!(read.expect("the answer is read"), b"refused");
        let (sent, read) = refused_while_sending(false).await;
        assert!(sent.is_err() || read.is_err(), "a plain close with unread bytes resets the connection");
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_is_cut_and_one_that_reads_is_not() {
        // A pipe with a 64 KiB buffer stands for the peer's receive window.
        let (near, mut far) = tokio::io::duplex(64 * 1024);
        // A timeout ten times the reader's pace, so a loaded host cannot make the slow reader
        // look stalled.
        let mut guarded = StallGuard::with_timeout(near, Duration::from_millis(2000));
        let reader = tokio::spawn(async move {
            let mut sink = vec![0u8; 1 << 20];
            let mut total = 0;
            while total < 4 << 20 {
                total += far.read(&mut sink).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await; // slow, never stalled
            }
            far
        });
        let chunk = vec![7u8; 256 * 1024];
        for _ in 0..16 {
            guarded.write_all(&chunk).await.expect("a slow reader is not cut");
        }
        let _far = reader.await.unwrap(); // kept open, never read again
        let started = std::time::Instant::now();
        let error = guarded.write_all(&vec![7u8; 1 << 20]).await.expect_err("a stalled reader is cut");
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(2000));
    }
}
