use crate::auth::{BODY_HASH_HEADER, FORMAT_HEADER, InternodeAuth};
use crate::listener::StallGuard;
use crate::{
    META_BODY_MAX_BYTES, RpcError, SHARD_HASH_HEADER, SHARD_MAX_BYTES, ShardCheck, ShardRole, encoding, paths,
};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use ignifuge_meta::DATA_FORMAT;
use ignifuge_types::{BlobId, ShardId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

/// Timeout of one shard transfer (1 MiB at a pessimistic 10 MB/s, plus margin).
pub const SHARD_RPC_TIMEOUT_MS: u64 = 10_000;
/// Timeout of one metadata call.
pub const META_RPC_TIMEOUT_MS: u64 = 10_000;
/// A batch delete removes up to `BLOBS_PER_DELETE_MAX` blob directories and syncs once: longer
/// than one call, and a node that takes longer is left alone (its deletes go on; the caller
/// does not pile another batch on a node that has not answered).
pub const BLOBS_DELETE_TIMEOUT_MS: u64 = 60_000;
/// Largest read buffer of one internode connection: a shard and its response head.
const HTTP1_READ_BUFFER_MAX_BYTES: usize = 2 * 1024 * 1024;
/// Idle pooled connections kept per node.
const POOL_IDLE_PER_HOST_MAX: usize = 32;
/// A connection whose write to its node has waited this long for room in the socket is closed
/// (no `TCP_NOTSENT_LOWAT` here, unlike the servers' guard: room comes when about a third of the
/// send buffer has drained). A request abandoned at its timeout does not end its connection's
/// task: hyper keeps sending its body, and a node that stopped reading (frozen, hung) would hold
/// the connection, and every byte of the body not yet in the socket, for as long as it stays so
/// (measured: `an_abandoned_request_frees_its_body_when_the_node_stopped_reading`). The gateway
/// lends its stripe buffers to shard requests and counts them free once the requests end, so its
/// memory bound needs them freed. No request through this client with a body runs longer than
/// this (`SHARD_RPC_TIMEOUT_MS`, `META_RPC_TIMEOUT_MS`) except batch deletes
/// (`BLOBS_DELETE_TIMEOUT_MS`), whose body of at most 256 blob ids a node reads at once; and a
/// socket's clock starts only when its send buffer is full: a request that would have finished in
/// its time is never cut by it.
pub const CONNECTION_WRITE_STALL_MS: u64 = 10_000;
const _: () = assert!(
    CONNECTION_WRITE_STALL_MS >= SHARD_RPC_TIMEOUT_MS && CONNECTION_WRITE_STALL_MS >= META_RPC_TIMEOUT_MS,
    "a connection must not be cut while a request with a body may still be running on it"
);

/// Connects to nodes as `HttpConnector` does, each connection behind a `StallGuard`.
#[derive(Clone)]
struct GuardedConnector {
    inner: HttpConnector,
    write_stall: Duration,
}

type Connecting = Pin<Box<dyn Future<Output = Result<TokioIo<StallGuard<TcpStream>>, BoxError>> + Send>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<http::Uri> for GuardedConnector {
    type Response = TokioIo<StallGuard<TcpStream>>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let write_stall = self.write_stall;
        Box::pin(async move {
            let stream = connecting.await?.into_inner();
            Ok(TokioIo::new(StallGuard::with_timeout(stream, write_stall)))
        })
    }
}

impl Connection for StallGuard<TcpStream> {
    fn connected(&self) -> Connected {
        self.get_ref().connected()
    }
}

/// HTTP/1.1 client for the internode API, with pooled TCP_NODELAY connections, each closed when
/// its node stops taking what is written to it (`CONNECTION_WRITE_STALL_MS`).
#[derive(Clone)]
pub struct NodeClient {
    http: Client<GuardedConnector, Full<Bytes>>,
    auth: Arc<InternodeAuth>,
    /// Re-checks of shards that failed their check here, running in tasks of their own
    /// (`get_shard`): at most `RECHECKS_DETACHED_MAX` at once.
    rechecks: Arc<tokio::sync::Semaphore>,
}

/// Re-checks of shards (`NodeClient::get_shard`) that go on in tasks of their own, at once, per
/// client: each holds a connection's read buffer and a shard (a few MiB at most) for up to
/// `SHARD_RPC_TIMEOUT_MS` after the read that asked for it may have been dropped, outside the
/// gateway's read budget. Beyond them a re-check runs within its read (dropped with it: the
/// copy then waits for the next read of it, or the scrub).
pub const RECHECKS_DETACHED_MAX: usize = 8;

impl NodeClient {
    pub fn new(auth: Arc<InternodeAuth>) -> Self {
        Self::with_write_stall(auth, Duration::from_millis(CONNECTION_WRITE_STALL_MS))
    }

    fn with_write_stall(auth: Arc<InternodeAuth>, write_stall: Duration) -> Self {
        let mut inner = HttpConnector::new();
        // Nagle plus delayed ACKs would add ~40 ms to every small request.
        inner.set_nodelay(true);
        inner.set_connect_timeout(Some(Duration::from_secs(2)));
        let connector = GuardedConnector { inner, write_stall };
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST_MAX)
            .pool_idle_timeout(Duration::from_secs(30))
            // Let hyper's adaptive read buffer grow past its 400 KiB default to a whole shard, so
            // a 1 MiB shard arrives in fewer, larger frames: joining them copies less.
            .http1_max_buf_size(HTTP1_READ_BUFFER_MAX_BYTES)
            .build(connector);
        Self { http, auth, rechecks: Arc::new(tokio::sync::Semaphore::new(RECHECKS_DETACHED_MAX)) }
    }

    async fn send(
        &self,
        method: Method,
        address: SocketAddr,
        path: &str,
        body: Bytes,
        extra_headers: &[(&'static str, &str)],
        body_hash_hex: &str,
        timeout_ms: u64,
        response_limit: usize,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), RpcError> {
        let signed = self.auth.signed_headers(method.as_str(), path, body_hash_hex);
        let mut builder = Request::builder().method(method).uri(format!("http://{address}{path}"));
        for (name, value) in signed {
            builder = builder.header(name, value);
        }
        for (name, value) in extra_headers {
            builder = builder.header(*name, *value);
        }
        let request =
            builder.body(Full::new(body)).map_err(|e| RpcError::BadResponse(address.to_string(), e.to_string()))?;
        let node = address.to_string();
        let exchange = async {
            // Tests cut and slow links between chosen processes (`ignifuge_faults::link`).
            match ignifuge_faults::link(&node) {
                Some(ignifuge_faults::Action::Drop) => std::future::pending::<()>().await,
                Some(ignifuge_faults::Action::Sleep(ms)) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Some(ignifuge_faults::Action::Error) => {
                    return Err(RpcError::Unreachable(node.clone(), "link refused by a fault rule".into()));
                }
                None => {}
            }
            let response =
                self.http.request(request).await.map_err(|e| RpcError::Unreachable(node.clone(), e.to_string()))?;
            let (parts, body) = response.into_parts();
            let bytes = Limited::new(body, response_limit)
                .collect()
                .await
                .map_err(|e| RpcError::Unreachable(node.clone(), e.to_string()))?
                .to_bytes();
            Ok((parts.status, parts.headers, bytes))
        };
        tokio::time::timeout(Duration::from_millis(timeout_ms), exchange)
            .await
            .map_err(|_| RpcError::Timeout(node.clone()))?
    }

    fn check_status(node: SocketAddr, status: StatusCode, body: &Bytes) -> Result<(), RpcError> {
        match status {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err(RpcError::NotFound(node.to_string())),
            StatusCode::CONFLICT => Err(RpcError::Corrupt(node.to_string())),
            s => Err(RpcError::Status {
                node: node.to_string(),
                status: s.as_u16(),
                message: String::from_utf8_lossy(body).into_owned(),
            }),
        }
    }

    /// Stores a shard; returns once the node has fsynced it. `role` tells the node how to keep it.
    pub async fn put_shard(
        &self,
        node: SocketAddr,
        id: &ShardId,
        data: Bytes,
        hash: &blake3::Hash,
        role: ShardRole,
    ) -> Result<(), RpcError> {
        let hex = hash.to_hex().to_string();
        let path = paths::shard_put(id, role);
        let (status, _, body) = self
            .send(Method::PUT, node, &path, data, &[(SHARD_HASH_HEADER, &hex)], &hex, SHARD_RPC_TIMEOUT_MS, 64 * 1024)
            .await?;
        Self::check_status(node, status, &body)
    }

    /// Fetches a shard and checks it against the hash recorded in the metadata. Asked to be
    /// checked here (`ShardCheck::ByReader`): the node sends the bytes as read, and they are
    /// hashed with BLAKE3 once they have arrived. If they are not the shard the metadata names,
    /// its node is asked again to check its copy itself (`ShardCheck::ByNode`), in a task of its
    /// own that goes on if this read is dropped meanwhile (a hedged read that no longer needs the
    /// shard, a client gone; at most `RECHECKS_DETACHED_MAX` such tasks at once, else within the
    /// read): a copy that fails there is set aside by the node (its inventory
    /// stops listing it, and the repair service rebuilds it) and the read fails; one that passes
    /// came through whole the second time (a transfer or memory fault), is hashed here again, and
    /// is used. A 409 is the node's own finding (a file too short or too long for a shard, or an
    /// older node's check failed): the copy is already set aside, and it is not asked again. A node
    /// from before the reader's check ignores the query and checks every read itself; its bytes
    /// are hashed here all the same.
    pub async fn get_shard(&self, node: SocketAddr, id: &ShardId, expected: &blake3::Hash) -> Result<Bytes, RpcError> {
        let body = self.request_shard(node, id, ShardCheck::ByReader).await?;
        if blake3::hash(&body) == *expected {
            return Ok(body);
        }
        drop(body);
        tracing::warn!(shard = %id, %node, "a shard read failed its BLAKE3 check here; asking its node to check its copy");
        let (client, id, expected) = (self.clone(), id.clone(), *expected);
        let recheck = async move {
            let body = client.request_shard(node, &id, ShardCheck::ByNode).await?;
            if blake3::hash(&body) != expected {
                return Err(RpcError::Corrupt(node.to_string()));
            }
            Ok(body)
        };
        let Ok(permit) = self.rechecks.clone().try_acquire_owned() else {
            return recheck.await;
        };
        match tokio::spawn(async move {
            let _permit = permit;
            recheck.await
        })
        .await
        {
            Ok(read) => read,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled here (the runtime shutting down), not by the node: the copy as read
            // was not the shard.
            Err(_) => Err(RpcError::Corrupt(node.to_string())),
        }
    }

    async fn request_shard(&self, node: SocketAddr, id: &ShardId, check: ShardCheck) -> Result<Bytes, RpcError> {
        let path = paths::shard_get(id, check);
        let (status, _, body) =
            self.send(Method::GET, node, &path, Bytes::new(), &[], "", SHARD_RPC_TIMEOUT_MS, SHARD_MAX_BYTES).await?;
        Self::check_status(node, status, &body)?;
        Ok(body)
    }

    /// Deletes every shard of a blob held by the node.
    pub async fn delete_blob(&self, node: SocketAddr, blob: &BlobId) -> Result<(), RpcError> {
        let (status, _, body) = self
            .send(Method::DELETE, node, &paths::blob(blob), Bytes::new(), &[], "", SHARD_RPC_TIMEOUT_MS, 64 * 1024)
            .await?;
        Self::check_status(node, status, &body)
    }

    /// Deletes every shard of each of `blobs` (at most `BLOBS_PER_DELETE_MAX`): what was
    /// deleted, and which blobs the node could not delete (left for the orphan sweep).
    pub async fn delete_blobs(&self, node: SocketAddr, blobs: &[BlobId]) -> Result<crate::BlobDeleteAnswer, RpcError> {
        let request = crate::BlobDeleteRequest { blobs: blobs.to_vec() };
        self.post_json_within(node, paths::BLOBS_DELETE, &request, BLOBS_DELETE_TIMEOUT_MS).await
    }

    /// Deletes one shard only if its file is still the copy surveyed (last modified at
    /// `modified_ms` by the node's clock): a copy written since, by a repair that put the shard
    /// back on this node, is kept (the node answers 412).
    pub async fn delete_stray_shard(&self, node: SocketAddr, id: &ShardId, modified_ms: i64) -> Result<(), RpcError> {
        let path = format!("{}?{}={modified_ms}", paths::shard(id), paths::IF_MODIFIED_MS_QUERY);
        let (status, _, body) =
            self.send(Method::DELETE, node, &path, Bytes::new(), &[], "", SHARD_RPC_TIMEOUT_MS, 64 * 1024).await?;
        Self::check_status(node, status, &body)
    }

    /// POSTs a JSON request and decodes the answer: JSON, or MessagePack from a node that writes
    /// it (the metadata's answers; `encoding`).
    pub async fn post_json<Q: Serialize, A: DeserializeOwned>(
        &self,
        node: SocketAddr,
        path: &str,
        request: &Q,
    ) -> Result<A, RpcError> {
        self.post_json_within(node, path, request, META_RPC_TIMEOUT_MS).await
    }

    async fn post_json_within<Q: Serialize, A: DeserializeOwned>(
        &self,
        node: SocketAddr,
        path: &str,
        request: &Q,
        timeout_ms: u64,
    ) -> Result<A, RpcError> {
        let body = Bytes::from(serde_json::to_vec(request).expect("requests always serialise"));
        let hash = blake3::hash(&body).to_hex().to_string();
        let (status, headers, answer) = self
            .send(
                Method::POST,
                node,
                path,
                body,
                &[(BODY_HASH_HEADER, &hash), ("accept", encoding::ANSWER_MSGPACK)],
                &hash,
                timeout_ms,
                META_BODY_MAX_BYTES,
            )
            .await?;
        Self::check_status(node, status, &answer)?;
        let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        encoding::decode_answer(content_type, &answer).map_err(|e| RpcError::BadResponse(node.to_string(), e))
    }

    /// Whether the node answers its health check, as a node of this version's data format (one
    /// of another format, which refuses every other request of this process, is not healthy to
    /// it: `FORMAT_HEADER` on the answer).
    pub async fn health(&self, node: SocketAddr) -> bool {
        matches!(self.health_format(node).await, Ok(Some(format)) if format == DATA_FORMAT)
    }

    /// The data format a node's health answer names: None if it names none (a build from before
    /// nodes named theirs); an error if it does not answer, or not with a success.
    pub async fn health_format(&self, node: SocketAddr) -> Result<Option<String>, RpcError> {
        let (status, headers, body) =
            self.send(Method::GET, node, paths::HEALTH, Bytes::new(), &[], "", 2_000, 1024).await?;
        Self::check_status(node, status, &body)?;
        Ok(headers.get(FORMAT_HEADER).map(|format| String::from_utf8_lossy(format.as_bytes()).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SHARD_CRC_HEADER;

    /// A body's bytes, telling when the last reference to them is dropped.
    struct Tracked(Vec<u8>, std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl AsRef<[u8]> for Tracked {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.1.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// A request abandoned at its timeout while its body is still being sent to a node that
    /// stopped reading (stalled, frozen): the connection is closed and the body's bytes are
    /// freed then, not held by the connection until the node reads again. The gateway lends
    /// its stripe buffers to shard requests this way and counts them free once the requests
    /// end (its stripe-memory bound).
    #[tokio::test]
    async fn an_abandoned_request_frees_its_body_when_the_node_stopped_reading() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        // Accepts and holds every connection, reading nothing.
        let held = tokio::spawn(async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                sockets.push(socket);
            }
        });
        let client = NodeClient::with_write_stall(Arc::new(InternodeAuth::new(b"test secret")), Duration::from_secs(1));
        let freed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Far more than the sockets' buffers can take: the rest stays with the connection.
        let body = Bytes::from_owner(Tracked(vec![7u8; 64 * 1024 * 1024], freed.clone()));
        let answer = client.send(Method::PUT, address, "/v1/shards/x", body, &[], "", 300, 1024).await;
        assert!(matches!(answer, Err(RpcError::Timeout(_))), "{answer:?}");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !freed.load(std::sync::atomic::Ordering::SeqCst) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            freed.load(std::sync::atomic::Ordering::SeqCst),
            "the abandoned request's body is still held 5 s after its timeout"
        );
        held.abort();
    }

    /// A request abandoned at its timeout while waiting for an answer that never comes (the
    /// node read it and hung): its connection is closed, not left open for ever. This is
    /// hyper's own behaviour (it closes a connection whose answer nobody waits for), not the
    /// stall guard's: kept as a check that no connection leaks per abandoned request.
    #[tokio::test]
    async fn an_abandoned_request_closes_its_connection_when_the_node_never_answers() {
        use tokio::io::AsyncReadExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        // Reads every byte of the one connection, answers nothing, and tells when it closes.
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut sink = vec![0u8; 64 * 1024];
            while socket.read(&mut sink).await.unwrap_or(0) > 0 {}
        });
        let client = NodeClient::new(Arc::new(InternodeAuth::new(b"test secret")));
        let answer =
            client.send(Method::PUT, address, "/v1/shards/x", Bytes::from(vec![7u8; 4096]), &[], "", 300, 1024).await;
        assert!(matches!(answer, Err(RpcError::Timeout(_))), "{answer:?}");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the abandoned request's connection is still open 5 s after its timeout")
            .unwrap();
    }

    /// A node's health answer counts only if it names this version's data format: a node of
    /// another format, or of a version from before nodes named theirs, refuses every other
    /// request of this process.
    #[tokio::test]
    async fn a_node_of_another_data_format_is_not_healthy() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let client = NodeClient::new(Arc::new(InternodeAuth::new(b"test secret")));
        let other = (DATA_FORMAT.parse::<u32>().unwrap() - 1).to_string();
        for (format, healthy) in [(Some(DATA_FORMAT.to_string()), true), (Some(other), false), (None, false)] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let header = format.as_ref().map(|f| format!("{FORMAT_HEADER}: {f}\r\n")).unwrap_or_default();
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    let mut head = vec![0u8; 4096];
                    let _ = socket.read(&mut head).await;
                    let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n{header}\r\nok");
                    let _ = socket.write_all(answer.as_bytes()).await;
                }
            });
            assert_eq!(client.health(address).await, healthy, "format {format:?}");
            assert_eq!(client.health_format(address).await.unwrap(), format, "the format its answer names");
        }
    }

    /// A node of this test: answers each shard GET with `answer(query)` (status, body, CRC
    /// header or not), and records the query of each.
    async fn shard_node(
        answer: impl Fn(Option<&str>) -> (u16, Vec<u8>, bool, u64) + Send + Sync + 'static,
    ) -> (SocketAddr, Arc<std::sync::Mutex<Vec<Option<String>>>>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (answer, log) = (Arc::new(answer), asked.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (answer, log) = (answer.clone(), log.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    loop {
                        head.clear();
                        while !head.ends_with(b"\r\n\r\n") {
                            if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                                return;
                            }
                            head.push(byte[0]);
                        }
                        let line = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
                        let target = line.split(' ').nth(1).unwrap_or("").to_string();
                        let query = target.split_once('?').map(|(_, q)| q.to_string());
                        log.lock().unwrap().push(query.clone());
                        let (status, body, with_crc, delay_ms) = answer(query.as_deref());
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                        let mut response = format!(
                            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n{SHARD_HASH_HEADER}: {}\r\n",
                            body.len(),
                            blake3::hash(b"the shard").to_hex()
                        );
                        if with_crc {
                            response += &format!("{SHARD_CRC_HEADER}: {:016x}\r\n", crate::transfer_checksum(&body));
                        }
                        response += "\r\n";
                        let written = async {
                            socket.write_all(response.as_bytes()).await?;
                            socket.write_all(&body).await?;
                            socket.flush().await
                        };
                        if written.await.is_ok() {
                            log.lock().unwrap().push(Some(format!("answered {}", query.as_deref().unwrap_or("-"))));
                        }
                    }
                });
            }
        });
        (address, asked)
    }

    /// A node of this test holding a 12 MiB shard (larger than the sockets hold, so an answer is
    /// written whole only if its reader takes it) that it sends changed when asked to let the
    /// reader check it, and whole, `delay_ms` late, when asked to check it itself. Returns the
    /// shard's hash.
    async fn slow_to_recheck(delay_ms: u64) -> (SocketAddr, Arc<std::sync::Mutex<Vec<Option<String>>>>, blake3::Hash) {
        let big: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let hash = blake3::hash(&big);
        let mut bad = big.clone();
        bad[5] ^= 1;
        let (node, asked) =
            shard_node(
                move |q| {
                    if q.is_some() { (200, bad.clone(), false, 0) } else { (200, big.clone(), true, delay_ms) }
                },
            )
            .await;
        (node, asked, hash)
    }

    /// A shard read is checked where it arrives; when that check fails, the node is asked to
    /// check its copy itself (which sets a bad one aside and answers 409), even if the read is
    /// dropped meanwhile, and a copy it finds whole is hashed again and used.
    #[tokio::test]
    async fn a_shard_that_fails_its_check_here_is_checked_again_by_its_node() {
        let shard = b"the shard".to_vec();
        let expected = blake3::hash(&shard);
        let id = ignifuge_types::ShardId {
            blob: ignifuge_types::BlobId::new("ab12"),
            stripe: ignifuge_types::StripeIndex(0),
            shard: ignifuge_types::ShardIndex(1),
        };
        let client = NodeClient::new(Arc::new(InternodeAuth::new(b"test secret")));
        let reader = Some(paths::CHECK_BY_READER_QUERY.to_string());
        let mut flipped = shard.clone();
        flipped[3] ^= 1;
        // The requests' queries, and (`answered`) the answers written whole.
        let asks = |asked: &Arc<std::sync::Mutex<Vec<Option<String>>>>| -> Vec<Option<String>> {
            asked
                .lock()
                .unwrap()
                .iter()
                .filter(|q| !q.as_deref().is_some_and(|q| q.starts_with("answered")))
                .cloned()
                .collect()
        };
        let answered = |asked: &Arc<std::sync::Mutex<Vec<Option<String>>>>| -> Vec<String> {
            asked.lock().unwrap().iter().flatten().filter(|q| q.starts_with("answered")).cloned().collect()
        };

        // Whole as read: one request, checked here, no CRC asked of the node.
        let good = shard.clone();
        let (node, asked) = shard_node(move |_| (200, good.clone(), false, 0)).await;
        assert_eq!(client.get_shard(node, &id, &expected).await.unwrap(), shard);
        assert_eq!(asks(&asked), vec![reader.clone()]);

        // Changed on the way the first time (the node's copy is whole): asked again, checked there
        // and here.
        let (good, bad) = (shard.clone(), flipped.clone());
        let (node, asked) =
            shard_node(move |q| if q.is_some() { (200, bad.clone(), false, 0) } else { (200, good.clone(), true, 0) })
                .await;
        assert_eq!(client.get_shard(node, &id, &expected).await.unwrap(), shard);
        assert_eq!(asks(&asked), vec![reader.clone(), None]);

        // The node's copy is bad: its own check fails (409, set aside there), and so does the read.
        let bad = flipped.clone();
        let (node, asked) =
            shard_node(move |q| if q.is_some() { (200, bad.clone(), false, 0) } else { (409, Vec::new(), false, 0) })
                .await;
        let read = client.get_shard(node, &id, &expected).await;
        assert!(matches!(read, Err(RpcError::Corrupt(_))), "{read:?}");
        assert_eq!(asks(&asked), vec![reader.clone(), None]);

        // A second answer whose CRC and stored hash say whole, but whose bytes are not: hashed
        // here, refused.
        let bad = flipped.clone();
        let (node, asked) = shard_node(move |_| (200, bad.clone(), true, 0)).await;
        let read = client.get_shard(node, &id, &expected).await;
        assert!(matches!(read, Err(RpcError::Corrupt(_))), "{read:?}");
        assert_eq!(asks(&asked), vec![reader.clone(), None]);

        // The read dropped while the node checks its copy: the check is still asked for, and its
        // whole answer read (larger than the sockets hold: a request dropped with the read would
        // close its connection and leave the answer unwritten).
        let (node, asked, big_hash) = slow_to_recheck(300).await;
        let read = tokio::spawn({
            let (client, id) = (client.clone(), id.clone());
            async move { client.get_shard(node, &id, &big_hash).await }
        });
        // Dropped once the node has the second request, while it takes 300 ms to answer.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while asks(&asked).len() < 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        read.abort();
        assert!(read.await.is_err_and(|e| e.is_cancelled()), "the read was dropped before the node's answer");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while answered(&asked).len() < 2 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(asks(&asked), vec![reader.clone(), None], "the node's check was asked for all the same");
        assert_eq!(answered(&asked), vec!["answered check=reader", "answered -"], "and its answer taken whole");

        // At most `RECHECKS_DETACHED_MAX` re-checks go on without their reads: one more read,
        // dropped while its node answers, drops its re-check with it.
        let (node, asked, big_hash) = slow_to_recheck(500).await;
        let bounded = NodeClient::new(Arc::new(InternodeAuth::new(b"test secret")));
        let reads: Vec<_> = (0..=RECHECKS_DETACHED_MAX)
            .map(|_| {
                let (client, id) = (bounded.clone(), id.clone());
                tokio::spawn(async move { client.get_shard(node, &id, &big_hash).await })
            })
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while asks(&asked).iter().filter(|q| q.is_none()).count() <= RECHECKS_DETACHED_MAX
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for read in &reads {
            read.abort();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while answered(&asked).len() < 2 * RECHECKS_DETACHED_MAX + 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        let whole = answered(&asked).iter().filter(|a| *a == "answered -").count();
        assert_eq!(whole, RECHECKS_DETACHED_MAX, "only the detached re-checks took their answers whole");

        // The node found the copy bad on the first read (409: too short or too long for a
        // shard, or an older node's check): set aside already, not asked again.
        let (node, asked) = shard_node(|_| (409, Vec::new(), false, 0)).await;
        assert!(matches!(client.get_shard(node, &id, &expected).await, Err(RpcError::Corrupt(_))));
        assert_eq!(asks(&asked), vec![reader.clone()]);

        // Other failures are not asked again: the read fails as it did.
        let (node, asked) = shard_node(|_| (404, Vec::new(), false, 0)).await;
        assert!(matches!(client.get_shard(node, &id, &expected).await, Err(RpcError::NotFound(_))));
        assert_eq!(asks(&asked), vec![reader.clone()]);

        // A node from before the reader's check ignores the query and checks itself (with a CRC);
        // its bytes are hashed here all the same.
        let good = shard.clone();
        let (node, asked) = shard_node(move |_| (200, good.clone(), true, 0)).await;
        assert_eq!(client.get_shard(node, &id, &expected).await.unwrap(), shard);
        assert_eq!(asks(&asked).len(), 1);
    }
}
