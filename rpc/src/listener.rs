//! Accepting connections without falling over: the one accept loop of every server (gateway
//! and storage node). An accept error (EMFILE when the process is out of file descriptors,
//! ECONNABORTED, ...) is logged and retried after a pause instead of ending the server, and at
//! most a bounded number of connections is open at once: past it, new connections wait in the
//! kernel's backlog until one closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
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
