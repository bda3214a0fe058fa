use crate::auth::{AUTH_HEADER, BODY_HASH_HEADER, InternodeAuth, TIME_HEADER};
use crate::{META_BODY_MAX_BYTES, RpcError, SHARD_CRC_HEADER, SHARD_HASH_HEADER, SHARD_MAX_BYTES, ShardRole, paths};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ignifuge_types::{BlobId, ShardId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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

/// Whether a shard read is the shard the metadata names, unchanged (see `NodeClient::get_shard`).
fn shard_intact(headers: &http::HeaderMap, body: &[u8], expected: &blake3::Hash) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let stored = header(SHARD_HASH_HEADER).and_then(|h| blake3::Hash::from_hex(h).ok());
    let crc = header(SHARD_CRC_HEADER).and_then(|c| u64::from_str_radix(c, 16).ok());
    match (stored, crc) {
        (Some(stored), Some(crc)) => stored == *expected && crate::transfer_checksum(body) == crc,
        _ => blake3::hash(body) == *expected,
    }
}

/// HTTP/1.1 client for the internode API, with pooled TCP_NODELAY connections.
#[derive(Clone)]
pub struct NodeClient {
    http: Client<HttpConnector, Full<Bytes>>,
    auth: Arc<InternodeAuth>,
}

impl NodeClient {
    pub fn new(auth: Arc<InternodeAuth>) -> Self {
        let mut connector = HttpConnector::new();
        // Nagle plus delayed ACKs would add ~40 ms to every small request.
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST_MAX)
            .pool_idle_timeout(Duration::from_secs(30))
            // Let hyper's adaptive read buffer grow past its 400 KiB default to a whole shard, so
            // a 1 MiB shard arrives in fewer, larger frames: joining them copies less.
            .http1_max_buf_size(HTTP1_READ_BUFFER_MAX_BYTES)
            .build(connector);
        Self { http, auth }
    }

    async fn send(
        &self,
        method: Method,
        address: SocketAddr,
        path: &str,
        body: Bytes,
        extra_header: Option<(&'static str, String)>,
        body_hash_hex: &str,
        timeout_ms: u64,
        response_limit: usize,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), RpcError> {
        let (time, mac) = self.auth.sign(method.as_str(), path, body_hash_hex);
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("http://{address}{path}"))
            .header(TIME_HEADER, time)
            .header(AUTH_HEADER, mac);
        if let Some((name, value)) = extra_header {
            builder = builder.header(name, value);
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
            .send(
                Method::PUT,
                node,
                &path,
                data,
                Some((SHARD_HASH_HEADER, hex.clone())),
                &hex,
                SHARD_RPC_TIMEOUT_MS,
                64 * 1024,
            )
            .await?;
        Self::check_status(node, status, &body)
    }

    /// Fetches a shard and checks it against the hash recorded in the metadata. The node checked
    /// the bytes against the BLAKE3 hash in the shard's file and sends that hash and a CRC64NVME of
    /// the bytes: the hash must be the metadata's (the node read the right shard) and the CRC must
    /// match what arrived (nothing changed in transit). A response without them is hashed here.
    pub async fn get_shard(&self, node: SocketAddr, id: &ShardId, expected: &blake3::Hash) -> Result<Bytes, RpcError> {
        let (status, headers, body) = self
            .send(Method::GET, node, &paths::shard(id), Bytes::new(), None, "", SHARD_RPC_TIMEOUT_MS, SHARD_MAX_BYTES)
            .await?;
        Self::check_status(node, status, &body)?;
        if !shard_intact(&headers, &body, expected) {
            return Err(RpcError::Corrupt(node.to_string()));
        }
        Ok(body)
    }

    /// Deletes every shard of a blob held by the node.
    pub async fn delete_blob(&self, node: SocketAddr, blob: &BlobId) -> Result<(), RpcError> {
        let (status, _, body) = self
            .send(Method::DELETE, node, &paths::blob(blob), Bytes::new(), None, "", SHARD_RPC_TIMEOUT_MS, 64 * 1024)
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
            self.send(Method::DELETE, node, &path, Bytes::new(), None, "", SHARD_RPC_TIMEOUT_MS, 64 * 1024).await?;
        Self::check_status(node, status, &body)
    }

    /// POSTs a JSON request and decodes the JSON answer.
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
        let (status, _, answer) = self
            .send(
                Method::POST,
                node,
                path,
                body,
                Some((BODY_HASH_HEADER, hash.clone())),
                &hash,
                timeout_ms,
                META_BODY_MAX_BYTES,
            )
            .await?;
        Self::check_status(node, status, &answer)?;
        serde_json::from_slice(&answer).map_err(|e| RpcError::BadResponse(node.to_string(), e.to_string()))
    }

    /// Whether the node answers its health check.
    pub async fn health(&self, node: SocketAddr) -> bool {
        matches!(
            self.send(Method::GET, node, paths::HEALTH, Bytes::new(), None, "", 2_000, 1024).await,
            Ok((status, _, _)) if status.is_success()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(hash: &blake3::Hash, crc: Option<u64>) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(SHARD_HASH_HEADER, hash.to_hex().as_str().parse().unwrap());
        if let Some(crc) = crc {
            headers.insert(SHARD_CRC_HEADER, format!("{crc:016x}").parse().unwrap());
        }
        headers
    }

    #[test]
    fn a_shard_read_must_be_the_named_shard_and_arrive_unchanged() {
        let body = b"the bytes of one shard".repeat(100);
        let hash = blake3::hash(&body);
        let crc = crate::transfer_checksum(&body);
        assert!(shard_intact(&headers(&hash, Some(crc)), &body, &hash));
        // Another shard, internally consistent on its node: its stored hash is not the metadata's.
        let other = blake3::hash(b"another shard");
        assert!(!shard_intact(&headers(&other, Some(crc)), &body, &hash));
        // Changed in transit.
        let mut flipped = body.clone();
        flipped[777] ^= 1;
        assert!(!shard_intact(&headers(&hash, Some(crc)), &flipped, &hash));
        // Without the CRC (an older node) the bytes are hashed here, both ways.
        assert!(shard_intact(&headers(&hash, None), &body, &hash));
        assert!(!shard_intact(&headers(&hash, None), &flipped, &hash));
        assert!(!shard_intact(&http::HeaderMap::new(), &flipped, &hash));
    }
}
