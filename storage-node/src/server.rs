//! The internode HTTP server: authentication, routing, and blocking disk work off the runtime.

use crate::shard_buffer::{Caching, ShardBuffer};
use crate::shard_store::{ShardStore, StoreError};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use ignifuge_meta::{DATA_FORMAT, Proposal, Query};
use ignifuge_raft::{Redirect, Voters};
use ignifuge_rpc::{
    AUTH_HEADER, BLOBS_PER_DELETE_MAX, BODY_HASH_HEADER, BlobDeleteAnswer, BlobDeleteRequest, BlobListAnswer,
    BlobListRequest, FORMAT_HEADER, InternodeAuth, InventoryAnswer, InventoryRequest, META_BODY_MAX_BYTES, Refusal,
    SHARD_CRC_HEADER, SHARD_HASH_HEADER, SHARD_MAX_BYTES, ShardCheck, TIME_HEADER, encoding, paths,
};
use ignifuge_types::{BlobId, ShardId, ShardIndex, StripeIndex};
use std::sync::Arc;
use tokio::net::TcpListener;

/// Everything a node serves.
pub struct NodeServer {
    pub store: Arc<ShardStore>,
    pub scrubber: Arc<crate::Scrubber>,
    /// Present on the nodes that keep a copy of the metadata (Raft voters and learners).
    pub metadata: Option<Arc<crate::MetadataReplica>>,
    pub auth: InternodeAuth,
}

type HttpResponse = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: impl Into<Bytes>) -> HttpResponse {
    Response::builder().status(status).body(Full::new(body.into())).expect("static response parts are valid")
}

/// When this process last logged a refusal of a request of another data format, and of one that
/// named no format (ms since the epoch): each kind at most once a minute (`log_due`).
static OTHER_FORMAT_LOGGED_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(i64::MIN);
static NO_FORMAT_LOGGED_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(i64::MIN);
/// A process of another version left running sends its heartbeats, retries and reads by the
/// hundred a second: one line a minute says it as well.
const REFUSAL_LOG_EVERY_MS: i64 = 60_000;

/// Whether a refusal of the kind `last` dates is to be logged now (at most once every
/// `REFUSAL_LOG_EVERY_MS`; at once if the clock went back).
fn log_due(last_logged_ms: &std::sync::atomic::AtomicI64) -> bool {
    use std::sync::atomic::Ordering;
    let now = ignifuge_types::time::now_ms();
    let last = last_logged_ms.load(Ordering::Relaxed);
    (now.saturating_sub(last) >= REFUSAL_LOG_EVERY_MS || now < last)
        && last_logged_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
}

/// Most blobs listed in one answer.
const BLOBS_LISTED_MAX: usize = 4096;

fn json_reply<T: serde::Serialize>(value: &T) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(json) => reply(StatusCode::OK, json),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn header<'a>(request: &'a Request<Incoming>, name: &str) -> &'a str {
    request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Internode connections a node serves at once (gateways pool theirs).
pub const NODE_CONNECTIONS_MAX: usize = 4096;

/// Accepts connections forever (accept errors are retried, see `BoundedListener`).
pub async fn serve(listener: TcpListener, server: Arc<NodeServer>) -> std::io::Result<()> {
    let listener = ignifuge_rpc::BoundedListener::new(listener, NODE_CONNECTIONS_MAX);
    loop {
        let (stream, _, open) = listener.accept().await;
        let server = server.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let server = server.clone();
                async move { Ok::<_, std::convert::Infallible>(server.handle(request).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_millis(ignifuge_rpc::HEADER_READ_TIMEOUT_MS))
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "internode connection closed");
            }
            drop(open);
        });
    }
}

/// How to keep a shard, from its PUT's query (`NodeClient::put_shard` names parity shards).
fn caching_of(query: Option<&str>) -> Caching {
    match query {
        Some(paths::PARITY_QUERY) => Caching::Bypassed,
        _ => Caching::Cached,
    }
}

/// Why a shard's body was not received.
enum Received {
    /// Malformed: more or fewer bytes than announced, or the connection failed.
    Refused(String),
    /// The allocator refused the buffer the body announced (bounded by `SHARD_MAX_BYTES`).
    NoMemory(std::collections::TryReserveError),
}

/// A shard's body, received into the buffer it will be written from (`ShardBuffer`: one copy
/// out of the network's frames, as collecting them into one buffer costs anyway). A body without
/// a Content-Length (no gateway sends one) is collected first and copied.
async fn receive_shard(request: Request<Incoming>) -> Result<ShardBuffer, Received> {
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let Some(declared) = declared else {
        let body = Limited::new(request.into_body(), SHARD_MAX_BYTES)
            .collect()
            .await
            .map_err(|e| Received::Refused(e.to_string()))?;
        return ShardBuffer::from_slice(&body.to_bytes()).map_err(Received::NoMemory);
    };
    if declared > SHARD_MAX_BYTES {
        return Err(Received::Refused(format!("{declared} bytes announced, at most {SHARD_MAX_BYTES} taken")));
    }
    let mut buffer = ShardBuffer::with_capacity(declared).map_err(Received::NoMemory)?;
    let mut body = request.into_body();
    while let Some(frame) = body.frame().await {
        if let Some(chunk) = frame.map_err(|e| Received::Refused(e.to_string()))?.data_ref() {
            buffer.extend(chunk).map_err(|_| Received::Refused(format!("more than the {declared} bytes announced")))?;
        }
    }
    if buffer.len() != declared {
        return Err(Received::Refused(format!("{} bytes of the {declared} announced", buffer.len())));
    }
    Ok(buffer)
}

fn parse_shard_id(rest: &str) -> Option<ShardId> {
    let mut parts = rest.split('/');
    let blob = BlobId::new(parts.next()?);
    let stripe = StripeIndex(parts.next()?.parse().ok()?);
    let shard = ShardIndex(parts.next()?.parse().ok()?);
    if parts.next().is_some() || !blob.is_well_formed() {
        return None;
    }
    Some(ShardId { blob, stripe, shard })
}

/// 421 (not the leader) or 503 (no quorum), with the reason as JSON for the caller to follow.
fn redirect(r: Redirect) -> HttpResponse {
    let status = match r {
        Redirect::NotLeader { .. } => StatusCode::MISDIRECTED_REQUEST,
        Redirect::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    reply(status, serde_json::to_vec(&r).unwrap_or_default())
}

fn store_error(e: StoreError) -> HttpResponse {
    match e {
        StoreError::BadId => reply(StatusCode::BAD_REQUEST, "malformed shard id"),
        StoreError::NotFound => reply(StatusCode::NOT_FOUND, "no such shard"),
        StoreError::Corrupt => {
            tracing::warn!("corrupt shard detected on read");
            reply(StatusCode::CONFLICT, "shard failed its BLAKE3 check")
        }
        StoreError::HashMismatch => reply(StatusCode::BAD_REQUEST, "body does not match its hash"),
        StoreError::Changed => reply(StatusCode::PRECONDITION_FAILED, "the shard was written again since"),
        other => {
            tracing::error!(error = %other, "shard store failure");
            reply(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
        }
    }
}

impl NodeServer {
    async fn handle(&self, request: Request<Incoming>) -> HttpResponse {
        let path = request.uri().path().to_string();
        if path == paths::HEALTH {
            // Unsigned: says which format this node is of, and nothing else (`NodeClient::health`
            // counts a node of another format as not healthy).
            let mut ok = reply(StatusCode::OK, "ok");
            ok.headers_mut().insert(FORMAT_HEADER, http::HeaderValue::from_static(DATA_FORMAT));
            return ok;
        }
        let body_hash = match (request.method(), path.as_str()) {
            (&Method::PUT, _) => header(&request, SHARD_HASH_HEADER).to_string(),
            (&Method::POST, _) => header(&request, BODY_HASH_HEADER).to_string(),
            _ => String::new(),
        };
        let path_and_query = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let format = header(&request, FORMAT_HEADER);
        match self.auth.verify(
            request.method().as_str(),
            path_and_query,
            header(&request, TIME_HEADER),
            format,
            header(&request, AUTH_HEADER),
            &body_hash,
        ) {
            Ok(()) => {}
            Err(Refusal::Unauthenticated) => {
                if format.is_empty() {
                    if log_due(&NO_FORMAT_LOGGED_MS) {
                        tracing::warn!(%path, "refused an unauthenticated internode request (it names no data format: from another cluster, or a process of a version before internode requests carried one, format 15 or older? logged at most once a minute)");
                    }
                } else {
                    tracing::warn!(%path, "refused an unauthenticated internode request");
                }
                return reply(StatusCode::FORBIDDEN, "internode authentication failed");
            }
            Err(Refusal::OtherFormat(theirs)) => {
                if log_due(&OTHER_FORMAT_LOGGED_MS) {
                    tracing::error!(%path, their_format = %theirs, our_format = DATA_FORMAT, "refused an internode request from a process of another data format (logged at most once a minute): stop every process of the cluster and start them all with one version");
                }
                let mut refused = reply(
                    StatusCode::UPGRADE_REQUIRED,
                    format!(
                        "this node runs data format {DATA_FORMAT}, the request came from a process of format {theirs}: \
                         one running cluster is one version (stop every process, start them all with one version)"
                    ),
                );
                // A 426 names the protocol required: this node's internode format.
                let required = format!("ignifuge-internode-format/{DATA_FORMAT}");
                refused.headers_mut().insert(http::header::UPGRADE, required.parse().expect("an ASCII token"));
                return refused;
            }
        }
        let method = request.method().clone();
        if let Some(rest) = path.strip_prefix("/v1/shards/") {
            return match method {
                Method::PUT => {
                    let caching = caching_of(request.uri().query());
                    self.put_shard(rest, &body_hash, caching, request).await
                }
                Method::GET => self.get_shard(rest, ShardCheck::of_query(request.uri().query())).await,
                Method::DELETE if rest.contains('/') => {
                    let query = request.uri().query().unwrap_or("");
                    self.delete_shard(rest, query).await
                }
                Method::DELETE => self.delete_blob(rest).await,
                _ => reply(StatusCode::METHOD_NOT_ALLOWED, ""),
            };
        }
        match (method, path.as_str()) {
            (Method::POST, paths::META_APPLY) => self.meta(request, &body_hash, true).await,
            (Method::POST, paths::META_QUERY) => self.meta(request, &body_hash, false).await,
            (Method::POST, p) if p.starts_with("/v1/raft/") => self.raft(p, request, &body_hash).await,
            (Method::POST, paths::INVENTORY) => self.inventory(request, &body_hash).await,
            (Method::POST, paths::BLOBS) => self.list_blobs(request, &body_hash).await,
            (Method::POST, paths::BLOBS_DELETE) => self.delete_blobs(request, &body_hash).await,
            (Method::POST, paths::SCRUB_STATUS) => json_reply(&self.scrubber.status()),
            (Method::POST, paths::SET_ASIDE_REEXAMINE) => match self.scrubber.reexamine_set_aside().await {
                Ok(done) => json_reply(&done),
                Err(e) => store_error(e),
            },
            _ => reply(StatusCode::NOT_FOUND, "no such route"),
        }
    }

    async fn put_shard(
        &self,
        rest: &str,
        hash_hex: &str,
        caching: Caching,
        request: Request<Incoming>,
    ) -> HttpResponse {
        let Some(id) = parse_shard_id(rest) else {
            return reply(StatusCode::BAD_REQUEST, "malformed shard id");
        };
        let Ok(hash) = blake3::Hash::from_hex(hash_hex) else {
            return reply(StatusCode::BAD_REQUEST, "missing or malformed shard hash");
        };
        let buffer = match receive_shard(request).await {
            Ok(buffer) => buffer,
            Err(Received::Refused(e)) => return reply(StatusCode::BAD_REQUEST, format!("shard body: {e}")),
            Err(Received::NoMemory(e)) => {
                tracing::warn!("no memory for a shard's body: {e}");
                return reply(StatusCode::SERVICE_UNAVAILABLE, "no memory for the shard's body");
            }
        };
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.put_buffer(&id, buffer, &hash, caching)).await {
            Ok(Ok(())) => reply(StatusCode::OK, ""),
            Ok(Err(e)) => store_error(e),
            Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }

    async fn get_shard(&self, rest: &str, check: ShardCheck) -> HttpResponse {
        let Some(id) = parse_shard_id(rest) else {
            return reply(StatusCode::BAD_REQUEST, "malformed shard id");
        };
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.read(&id, check)).await {
            Ok(Ok((data, hash))) => {
                // Checked here: the bytes were just checked against the hash in the shard's file,
                // and the CRC lets the reader check the transfer without hashing them again.
                // Checked by the reader: it hashes them, and needs neither.
                let crc =
                    (check == ShardCheck::ByNode).then(|| format!("{:016x}", ignifuge_rpc::transfer_checksum(&data)));
                let mut response = reply(StatusCode::OK, data);
                if let Ok(value) = http::HeaderValue::from_str(&hash.to_hex()) {
                    response.headers_mut().insert(SHARD_HASH_HEADER, value);
                }
                if let Some(Ok(value)) = crc.map(|crc| http::HeaderValue::from_str(&crc)) {
                    response.headers_mut().insert(SHARD_CRC_HEADER, value);
                }
                response
            }
            Ok(Err(e)) => store_error(e),
            Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }

    async fn delete_blob(&self, rest: &str) -> HttpResponse {
        let blob = BlobId::new(rest);
        if !blob.is_well_formed() {
            return reply(StatusCode::BAD_REQUEST, "malformed blob id");
        }
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.delete_blob(&blob)).await {
            Ok(Ok(())) => reply(StatusCode::NO_CONTENT, ""),
            Ok(Err(e)) => store_error(e),
            Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }

    /// Garbage collection's batch: every shard of each named blob.
    async fn delete_blobs(&self, request: Request<Incoming>, hash_hex: &str) -> HttpResponse {
        let asked: BlobDeleteRequest = match Self::read_json(request, hash_hex).await {
            Ok(asked) => asked,
            Err(response) => return response,
        };
        if asked.blobs.len() > BLOBS_PER_DELETE_MAX {
            return reply(StatusCode::BAD_REQUEST, format!("at most {BLOBS_PER_DELETE_MAX} blobs per delete"));
        }
        if asked.blobs.iter().any(|blob| !blob.is_well_formed()) {
            return reply(StatusCode::BAD_REQUEST, "malformed blob id");
        }
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.delete_blobs(&asked.blobs)).await {
            Ok(Ok(done)) => {
                for (blob, error) in &done.failed {
                    tracing::warn!(%blob, %error, "could not delete a blob's shards; the orphan sweep will retry");
                }
                let failed = done.failed.into_iter().map(|(blob, _)| blob).collect();
                json_reply(&BlobDeleteAnswer { deleted: done.deleted, failed })
            }
            Ok(Err(e)) => store_error(e),
            Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }

    async fn delete_shard(&self, rest: &str, query: &str) -> HttpResponse {
        let Some(id) = parse_shard_id(rest) else {
            return reply(StatusCode::BAD_REQUEST, "malformed shard id");
        };
        // Only ever conditional: a shard is deleted only if it is still the copy its caller
        // surveyed, never one written there again since.
        let value = query.strip_prefix(ignifuge_rpc::paths::IF_MODIFIED_MS_QUERY).and_then(|v| v.strip_prefix('='));
        let Some(Ok(modified_ms)) = value.map(str::parse::<i64>) else {
            return reply(StatusCode::BAD_REQUEST, "a shard delete needs a readable if-modified-ms condition");
        };
        let store = self.store.clone();
        let deleted = tokio::task::spawn_blocking(move || store.delete_shard_if_modified_at(&id, modified_ms));
        match deleted.await {
            Ok(Ok(())) => reply(StatusCode::NO_CONTENT, ""),
            Ok(Err(e)) => store_error(e),
            Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }

    /// The shard files of the named blobs (for the repair service).
    async fn inventory(&self, request: Request<Incoming>, hash_hex: &str) -> HttpResponse {
        let asked: InventoryRequest = match Self::read_json(request, hash_hex).await {
            Ok(asked) => asked,
            Err(response) => return response,
        };
        let store = self.store.clone();
        let found = tokio::task::spawn_blocking(move || {
            if ignifuge_faults::hit("node.inventory-error").is_some() {
                return Err(StoreError::Io(std::io::Error::other("fault point: the disk cannot list its shards")));
            }
            let mut shards = Vec::new();
            for blob in &asked.blobs {
                shards.extend(store.shards_of(blob)?);
            }
            Ok::<_, StoreError>(InventoryAnswer { shards })
        })
        .await;
        match found {
            Ok(Ok(answer)) => json_reply(&answer),
            Ok(Err(e)) => store_error(e),
            Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }

    /// A page of the blobs held here (for the orphan sweep).
    async fn list_blobs(&self, request: Request<Incoming>, hash_hex: &str) -> HttpResponse {
        let asked: BlobListRequest = match Self::read_json(request, hash_hex).await {
            Ok(asked) => asked,
            Err(response) => return response,
        };
        let store = self.store.clone();
        let limit = asked.limit.clamp(1, BLOBS_LISTED_MAX);
        match tokio::task::spawn_blocking(move || store.list_blobs(asked.after.as_ref(), limit)).await {
            Ok(Ok((blobs, complete))) => json_reply(&BlobListAnswer { blobs, complete }),
            Ok(Err(e)) => store_error(e),
            Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }

    async fn read_json<T: serde::de::DeserializeOwned>(
        request: Request<Incoming>,
        hash_hex: &str,
    ) -> Result<T, HttpResponse> {
        let body = Self::read_body(request, hash_hex).await?;
        serde_json::from_slice(&body).map_err(|e| reply(StatusCode::BAD_REQUEST, e.to_string()))
    }

    async fn read_body(request: Request<Incoming>, hash_hex: &str) -> Result<Bytes, HttpResponse> {
        let body = match Limited::new(request.into_body(), META_BODY_MAX_BYTES).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return Err(reply(StatusCode::BAD_REQUEST, format!("metadata body: {e}"))),
        };
        if blake3::hash(&body).to_hex().as_str() != hash_hex {
            return Err(reply(StatusCode::BAD_REQUEST, "body does not match its hash"));
        }
        Ok(body)
    }

    /// Metadata commands and queries. A follower answers 421 naming the leader, so that callers
    /// follow the leader themselves; a replica without quorum answers 503.
    async fn meta(&self, request: Request<Incoming>, hash_hex: &str, apply: bool) -> HttpResponse {
        let Some(metadata) = self.metadata.as_ref().map(|m| m.current()) else {
            return redirect(Redirect::NotLeader { leader: None });
        };
        let accept = request.headers().get(http::header::ACCEPT).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = match Self::read_body(request, hash_hex).await {
            Ok(b) => b,
            Err(response) => return response,
        };
        let answer = if apply {
            let proposal: Proposal = match serde_json::from_slice(&body) {
                Ok(p) => p,
                Err(e) => return reply(StatusCode::BAD_REQUEST, e.to_string()),
            };
            metadata.apply(proposal).await.map(|r| encoding::encode_answer(&r, accept.as_deref()))
        } else {
            let query: Query = match serde_json::from_slice(&body) {
                Ok(q) => q,
                Err(e) => return reply(StatusCode::BAD_REQUEST, e.to_string()),
            };
            metadata.query(query).await.map(|r| encoding::encode_answer(&r, accept.as_deref()))
        };
        match answer {
            Ok(Ok(encoded)) => Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, encoded.content_type)
                .body(Full::new(encoded.body.into()))
                .expect("static response parts are valid"),
            Ok(Err(e)) => reply(StatusCode::INTERNAL_SERVER_ERROR, e),
            Err(r) => redirect(r),
        }
    }

    /// The Raft transport, initialisation and status.
    async fn raft(&self, path: &str, request: Request<Incoming>, hash_hex: &str) -> HttpResponse {
        let Some(metadata) = self.metadata.as_ref().map(|m| m.current()) else {
            return reply(StatusCode::MISDIRECTED_REQUEST, "this node keeps no metadata replica");
        };
        let body = match Self::read_body(request, hash_hex).await {
            Ok(b) => b,
            Err(response) => return response,
        };
        match path {
            ignifuge_raft::paths::INITIALIZE => {
                let voters: Voters = match serde_json::from_slice(&body) {
                    Ok(v) => v,
                    Err(e) => return reply(StatusCode::BAD_REQUEST, e.to_string()),
                };
                match metadata.initialize(&voters).await {
                    Ok(()) => reply(StatusCode::OK, "{}"),
                    Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e),
                }
            }
            ignifuge_raft::paths::STATUS => match serde_json::to_vec(&metadata.status()) {
                Ok(json) => reply(StatusCode::OK, json),
                Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            },
            ignifuge_raft::paths::DIGEST => match metadata.digest().await {
                Ok(digest) => json_reply(&digest),
                Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e),
            },
            ignifuge_raft::paths::DIGEST_AT => match serde_json::from_slice::<ignifuge_raft::DigestAtRequest>(&body) {
                Ok(request) => json_reply(&metadata.digest_at(request)),
                Err(e) => reply(StatusCode::BAD_REQUEST, e.to_string()),
            },
            rpc => match metadata.handle_rpc(rpc, &body).await {
                Ok(json) => reply(StatusCode::OK, json),
                Err(e) => reply(StatusCode::BAD_REQUEST, e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_rpc::ShardRole;

    #[test]
    fn a_parity_shard_written_by_a_client_is_kept_around_the_page_cache() {
        let id = ShardId { blob: BlobId::new("ab12"), stripe: StripeIndex(3), shard: ShardIndex(7) };
        for (role, caching) in [(ShardRole::Parity, Caching::Bypassed), (ShardRole::Data, Caching::Cached)] {
            let uri: http::Uri = paths::shard_put(&id, role).parse().unwrap();
            assert_eq!(parse_shard_id(uri.path().strip_prefix("/v1/shards/").unwrap()), Some(id.clone()));
            assert_eq!(caching_of(uri.query()), caching, "{role:?}");
        }
        assert_eq!(caching_of(Some("role=other")), Caching::Cached);
    }
}
