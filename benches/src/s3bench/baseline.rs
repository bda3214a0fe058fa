//! The raw loopback HTTP round trip: a minimal hyper server on 127.0.0.1 that answers every
//! request with the same body, and a hyper client that GETs it. Measured in the same run as
//! the S3 workloads, it is the floor every small-object rate is compared to: same machine,
//! same load, same loopback, no S3, no signing, no storage.

use super::errors::OpError;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The server stops accepting after this many connections; the client pools one per worker.
const SERVER_CONNECTIONS_MAX: u64 = 65_536;

/// Starts the server on an ephemeral port of 127.0.0.1. Abort the handle to stop it.
pub async fn start_server(body: Bytes) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let address = listener.local_addr()?;
    let task = tokio::spawn(async move {
        for _ in 0..SERVER_CONNECTIONS_MAX {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            // As the S3 gateway does: small answers must not wait for Nagle.
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request: Request<Incoming>| {
                    let body = body.clone();
                    async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok((address, task))
}

pub struct BaselineClient {
    client: Client<HttpConnector, Empty<Bytes>>,
    target: Uri,
    /// Sent as the Host header instead of the target's authority (a website endpoint picks the
    /// bucket by it).
    host: Option<String>,
}

impl BaselineClient {
    pub fn new(target: Uri, host: Option<String>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Self { client, target, host }
    }

    /// One GET, the whole body read and dropped; returns the body's length.
    pub async fn get(&self) -> Result<u64, OpError> {
        let mut request = Request::get(self.target.clone());
        if let Some(host) = &self.host {
            request = request.header(hyper::header::HOST, host);
        }
        let request =
            request.body(Empty::new()).map_err(|e| OpError::new("request", format!("GET {}: {e}", self.target)))?;
        let response = self.client.request(request).await.map_err(|e| {
            let kind = if e.is_connect() { "transport:connect" } else { "transport:other" };
            OpError::new(kind, format!("GET {}: {e:?}", self.target))
        })?;
        let status = response.status();
        let mut body = response.into_body();
        let mut received = 0u64;
        // Bounded by the body, which the server sends whole.
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| OpError::new("transport:body", format!("GET body: {e}")))?;
            if let Some(data) = frame.data_ref() {
                received += data.len() as u64;
            }
        }
        if !status.is_success() {
            return Err(OpError::new(format!("HTTP {}", status.as_u16()), format!("GET {}: {status}", self.target)));
        }
        Ok(received)
    }
}
