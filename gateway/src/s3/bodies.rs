//! Request bodies bounded before s3s reads them.
//!
//! - aws-chunked uploads (`x-amz-content-sha256: STREAMING-...`): s3s 0.14 buffers each whole
//!   chunk before it checks the chunk's signature, and a chunk's size is whatever its header
//!   says (up to 4 GiB). [`ChunkBound`] reads the framing as the bytes pass: a chunk larger than
//!   `AWS_CHUNK_MAX_BYTES` (or a size of more than 8 hex digits, which s3s would read
//!   differently) fails the body, and the bytes of every chunk being buffered come from one
//!   budget per gateway (`CHUNK_BUFFERS_BUDGET_BYTES`), taken before the chunk's first data byte
//!   passes and given back only when s3s asks for bytes past the chunk's end, that is once it
//!   has handed the whole chunk on. SDKs send 64 KiB chunks. A chunk that waits for budget, or
//!   that never completes, is cut by the upload's idle timeout (20 s, 400 RequestTimeout).
//! - configuration bodies with an AWS size limit (PutBucketCors: 64 KiB) are read here, at most
//!   one byte past the limit, and refused on the bytes actually read, whatever Content-Length
//!   said or did not say.
//! - DeleteObjects bodies are read here too (at most `DELETE_OBJECTS_BODY_MAX_BYTES`) and checked
//!   against the Content-MD5 or x-amz-checksum-* header AWS requires of them: the verdict
//!   ([`DeleteBodyDigest`]) travels with the request and the handler answers it once the
//!   request is authorized. A body that is not the one the client sent must delete nothing.

use crate::error::GatewayError;
use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest aws-chunked chunk accepted (AWS's SDKs send 64 KiB; some clients up to a few MiB).
pub const AWS_CHUNK_MAX_BYTES: u32 = 16 * 1024 * 1024;
/// Bytes of aws-chunked chunks that a gateway's requests may have in s3s's buffers at once.
pub const CHUNK_BUFFERS_BUDGET_BYTES: u32 = 256 * 1024 * 1024;
/// A chunk header line (hex size, chunk signature) is never longer than this.
const CHUNK_HEADER_MAX_BYTES: usize = 1024;
/// What a chunk too large says; `objects::body_stream` recognises it through s3s's error.
pub const CHUNK_TOO_LARGE: &str = "aws-chunked chunk larger than";
/// A bounded configuration body must arrive within this long.
const CONFIGURATION_BODY_TIMEOUT_MS: u64 = 20_000;
/// The most bytes of a DeleteObjects body read: 1000 keys of up to 1 KiB, XML-escaped, with
/// their version ids and ETags.
pub const DELETE_OBJECTS_BODY_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// Budget held by a request's buffered body for as long as the request lives.
#[derive(Clone)]
struct HeldBudget(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// Whether a DeleteObjects body matched the digest its headers announce.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum DeleteBodyDigest {
    Matched,
    /// Neither Content-MD5 nor an x-amz-checksum-* header.
    Missing,
    /// Content-MD5 that is not an MD5 (400 InvalidDigest).
    Invalid(String),
    /// A digest that does not match the body (400 BadDigest).
    Mismatch(String),
}

impl DeleteBodyDigest {
    fn of(headers: &http::HeaderMap, body: &[u8]) -> Self {
        use crate::checksums::{Algorithm, BodyHasher, Expected};
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut expected = Expected { content_md5: text("content-md5"), ..Default::default() };
        for a in [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme, Algorithm::Sha1, Algorithm::Sha256] {
            if let Some(value) = text(a.header()) {
                expected.checksums.push((a, value));
            }
        }
        if expected.content_md5.is_none() && expected.checksums.is_empty() {
            return Self::Missing;
        }
        let mut hasher = BodyHasher::new(&expected.algorithms());
        hasher.update(body);
        match expected.verify(&hasher.finalize(), &[]) {
            Ok(()) => Self::Matched,
            Err(GatewayError::InvalidDigest(m)) => Self::Invalid(m),
            Err(e) => Self::Mismatch(e.to_string()),
        }
    }

    /// The answer to a DeleteObjects request whose body this was.
    pub(super) fn check(&self) -> Result<(), GatewayError> {
        match self {
            Self::Matched => Ok(()),
            Self::Missing => {
                Err(GatewayError::InvalidRequest("Missing required header for this request: Content-MD5".into()))
            }
            Self::Invalid(m) => Err(GatewayError::InvalidDigest(m.clone())),
            Self::Mismatch(m) => Err(GatewayError::BadDigest(m.clone())),
        }
    }
}

/// Reads a whole body of at most `limit` bytes, refused on the bytes actually read.
async fn read_bounded(body: hyper::body::Incoming, limit: u64) -> Result<Bytes, GatewayError> {
    let read = tokio::time::timeout(
        std::time::Duration::from_millis(CONFIGURATION_BODY_TIMEOUT_MS),
        http_body_util::Limited::new(body, limit as usize + 1).collect(),
    )
    .await
    .map_err(|_| GatewayError::RequestTimeout)?;
    let bytes = match read {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(GatewayError::MessageTooLong(limit)),
        Err(e) => return Err(GatewayError::BodyRead(e.to_string())),
    };
    if bytes.len() as u64 > limit {
        return Err(GatewayError::MessageTooLong(limit));
    }
    Ok(bytes)
}

/// The budget of chunk buffers, one per gateway.
#[derive(Clone)]
pub struct ChunkBudget(Arc<Semaphore>);

impl Default for ChunkBudget {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(CHUNK_BUFFERS_BUDGET_BYTES as usize)))
    }
}

/// The request with its body bounded as this module says, ready for s3s.
pub(super) async fn bound(
    request: http::Request<hyper::body::Incoming>,
    budget: &ChunkBudget,
) -> Result<http::Request<s3s::Body>, GatewayError> {
    let (mut parts, body) = request.into_parts();
    if let Some(limit) = configuration_limit(&parts) {
        let bytes = read_bounded(body, limit).await?;
        return Ok(http::Request::from_parts(parts, s3s::Body::from(bytes)));
    }
    let streaming = parts
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("STREAMING-"));
    // (An aws-chunked DeleteObjects, which no SDK sends, is left to s3s: its framing would be
    // hashed with the XML. A form POST is PostObject, whatever its query.)
    if !streaming && is_delete_objects(&parts) && !super::post::is_form(&parts.headers) {
        // Read before the request is authenticated: its bytes come from the gateway's budget
        // of buffered bodies (what its Content-Length says, at most the limit), held until the
        // request is answered, so that unauthenticated requests cannot fill the memory.
        let declared = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
        let limit = declared.unwrap_or(DELETE_OBJECTS_BODY_MAX_BYTES).min(DELETE_OBJECTS_BODY_MAX_BYTES);
        let wait = std::time::Duration::from_millis(CONFIGURATION_BODY_TIMEOUT_MS);
        let permit = tokio::time::timeout(wait, budget.0.clone().acquire_many_owned(limit as u32 + 1))
            .await
            .map_err(|_| GatewayError::DurabilityNotMet("the gateway is reading too many request bodies".into()))?
            .map_err(|e| GatewayError::Internal(format!("body budget: {e}")))?;
        let bytes = read_bounded(body, limit).await?;
        parts.extensions.insert(DeleteBodyDigest::of(&parts.headers, &bytes));
        parts.extensions.insert(HeldBudget(Arc::new(permit)));
        return Ok(http::Request::from_parts(parts, s3s::Body::from(bytes)));
    }
    let body = if streaming {
        s3s::Body::http_body_unsync(ChunkBound::new(body, budget.clone(), AWS_CHUNK_MAX_BYTES))
    } else {
        s3s::Body::from(body)
    };
    Ok(http::Request::from_parts(parts, body))
}

fn is_delete_objects(parts: &http::request::Parts) -> bool {
    let query = parts.uri.query().unwrap_or("");
    parts.method == http::Method::POST && query.split('&').any(|pair| pair.split('=').next() == Some("delete"))
}

/// The size limit AWS puts on this request's body, for the configuration requests that have one.
fn configuration_limit(parts: &http::request::Parts) -> Option<u64> {
    let query = parts.uri.query().unwrap_or("");
    let has = |name: &str| query.split('&').any(|pair| pair.split('=').next() == Some(name));
    (parts.method == http::Method::PUT && has("cors")).then_some(super::cors::CORS_CONFIGURATION_MAX_BYTES)
}

/// The error of a body whose framing breaks the bounds.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FramingError(String);

/// Where the framing reader is in an aws-chunked body.
#[derive(Debug, PartialEq)]
enum Framing {
    /// Reading a chunk header line, up to its `\n`.
    Header,
    /// Passing a chunk's data and its closing `\r\n`.
    Data { remaining: u64 },
    /// After the final (empty) chunk: trailers, bounded by s3s.
    Trailers,
}

type Acquiring = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, tokio::sync::AcquireError>> + Send>>;

/// An aws-chunked body that fails on a chunk larger than `max` and holds budget for the chunk
/// being buffered downstream (see the module's comment).
pub struct ChunkBound<B> {
    inner: B,
    budget: ChunkBudget,
    max: u32,
    framing: Framing,
    header: Vec<u8>,
    /// Budget for the chunk passing now.
    held: Option<OwnedSemaphorePermit>,
    /// The chunk passing has passed whole: its budget goes back at the next poll (s3s polls
    /// again only once it has handed the chunk on).
    release_next: bool,
    /// Budget being waited for, before `pending` (which starts with the chunk's data) may pass.
    acquiring: Option<Acquiring>,
    pending: Option<Bytes>,
}

impl<B> ChunkBound<B> {
    pub fn new(inner: B, budget: ChunkBudget, max: u32) -> Self {
        Self {
            inner,
            budget,
            max,
            framing: Framing::Header,
            header: Vec::new(),
            held: None,
            release_next: false,
            acquiring: None,
            pending: None,
        }
    }

    /// Reads the framing of `bytes` up to the first event: the bytes that may pass now, the rest
    /// (not read yet), and what happened at the split.
    fn scan(&mut self, mut bytes: Bytes) -> Result<(Bytes, Bytes, Event), FramingError> {
        let mut at = 0;
        while at < bytes.len() {
            match &mut self.framing {
                Framing::Trailers => break,
                Framing::Data { remaining } => {
                    let passed = (*remaining).min((bytes.len() - at) as u64);
                    *remaining -= passed;
                    at += passed as usize;
                    if *remaining == 0 {
                        self.framing = Framing::Header;
                        let rest = bytes.split_off(at);
                        return Ok((bytes, rest, Event::ChunkEnded));
                    }
                }
                Framing::Header => {
                    let line_end = bytes[at..].iter().position(|&b| b == b'\n');
                    let taken = line_end.map_or(bytes.len() - at, |end| end + 1);
                    if self.header.len() + taken > CHUNK_HEADER_MAX_BYTES {
                        return Err(FramingError("an aws-chunked chunk header longer than 1024 bytes".into()));
                    }
                    self.header.extend_from_slice(&bytes[at..at + taken]);
                    at += taken;
                    if line_end.is_none() {
                        continue;
                    }
                    let size = chunk_size(&self.header)?;
                    self.header.clear();
                    if size == 0 {
                        self.framing = Framing::Trailers;
                        continue;
                    }
                    if size > self.max {
                        return Err(FramingError(format!(
                            "{CHUNK_TOO_LARGE} {} bytes: this chunk has {size}",
                            self.max
                        )));
                    }
                    self.framing = Framing::Data { remaining: u64::from(size) + 2 };
                    let rest = bytes.split_off(at);
                    return Ok((bytes, rest, Event::ChunkStarts(size)));
                }
            }
        }
        let rest = bytes.split_off(bytes.len());
        Ok((bytes, rest, Event::None))
    }
}

/// What the framing reader met where it stopped.
#[derive(Debug, PartialEq)]
enum Event {
    None,
    /// A chunk's data and closing CRLF have passed.
    ChunkEnded,
    /// A chunk of this size starts right after the bytes passed.
    ChunkStarts(u32),
}

/// The size announced by a chunk header line (`<hex>[;chunk-signature=...]\r\n`): 1 to 8 hex
/// digits, as s3s reads it (it parses at most 8 and ignores any more, so a longer size would
/// make the two readers disagree on where chunks end).
fn chunk_size(line: &[u8]) -> Result<u32, FramingError> {
    let end = line.iter().position(|&b| b == b';' || b == b'\r' || b == b'\n').unwrap_or(line.len());
    let digits = &line[..end];
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(FramingError("an aws-chunked chunk header without a size of 1 to 8 hexadecimal digits".into()));
    }
    let hex = std::str::from_utf8(digits).expect("ASCII hex digits");
    Ok(u32::from_str_radix(hex, 16).expect("at most 8 hex digits fit in a u32"))
}

impl<B> HttpBody for ChunkBound<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.release_next {
            this.held = None;
            this.release_next = false;
        }
        loop {
            if let Some(acquiring) = this.acquiring.as_mut() {
                let permit = ready!(acquiring.as_mut().poll(cx)).map_err(|e| Box::new(e) as Self::Error)?;
                this.held = Some(permit);
                this.acquiring = None;
            }
            let bytes = match this.pending.take() {
                Some(bytes) => bytes,
                None => match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                    None => return Poll::Ready(None),
                    Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => data,
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    },
                },
            };
            let (passing, rest, event) = this.scan(bytes).map_err(|e| Box::new(e) as Self::Error)?;
            if rest.has_remaining() {
                this.pending = Some(rest);
            }
            match event {
                Event::None => {}
                Event::ChunkEnded => this.release_next = true,
                Event::ChunkStarts(size) => match this.budget.0.clone().try_acquire_many_owned(size) {
                    Ok(permit) => this.held = Some(permit),
                    Err(_) => this.acquiring = Some(Box::pin(this.budget.0.clone().acquire_many_owned(size))),
                },
            }
            if passing.has_remaining() {
                return Poll::Ready(Some(Ok(Frame::data(passing))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none() && self.acquiring.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn body_of(
        pieces: Vec<&'static [u8]>,
    ) -> StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>> {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> =
            pieces.into_iter().map(|p| Ok(Frame::data(Bytes::from_static(p)))).collect();
        StreamBody::new(futures::stream::iter(frames))
    }

    async fn read(
        body: ChunkBound<impl HttpBody<Data = Bytes, Error = std::io::Error> + Unpin>,
    ) -> Result<Vec<u8>, String> {
        body.collect().await.map(|c| c.to_bytes().to_vec()).map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn chunks_pass_unchanged_however_the_bytes_are_cut() {
        let whole: &'static [u8] =
            b"5;chunk-signature=ab\r\nhello\r\n3;chunk-signature=cd\r\nabc\r\n0;chunk-signature=ef\r\n\r\n";
        let budget = ChunkBudget::default();
        assert_eq!(read(ChunkBound::new(body_of(vec![whole]), budget.clone(), 16)).await.unwrap(), whole);
        // Every split point, including inside headers and inside the closing CRLF.
        for cut in 1..whole.len() {
            let (a, b) = whole.split_at(cut);
            let got = read(ChunkBound::new(body_of(vec![a, b]), budget.clone(), 16)).await.unwrap();
            assert_eq!(got, whole, "cut at {cut}");
        }
    }

    #[tokio::test]
    async fn a_chunk_larger_than_the_bound_fails_the_body_before_its_data_passes() {
        let body = body_of(vec![b"11;chunk-signature=ab\r\n", b"0123456789abcdefg\r\n0\r\n\r\n"]);
        let error = read(ChunkBound::new(body, ChunkBudget::default(), 16)).await.unwrap_err();
        assert!(error.contains(CHUNK_TOO_LARGE), "{error}");
        let unsigned = body_of(vec![b"ffffffff\r\n"]);
        assert!(read(ChunkBound::new(unsigned, ChunkBudget::default(), 16)).await.is_err());
        let endless = body_of(vec![&[b'1'; 2000]]);
        assert!(read(ChunkBound::new(endless, ChunkBudget::default(), 16)).await.unwrap_err().contains("1024"));
        let garbage = body_of(vec![b"zz;chunk-signature=ab\r\n"]);
        assert!(read(ChunkBound::new(garbage, ChunkBudget::default(), 16)).await.unwrap_err().contains("hexadecimal"));
        // s3s reads only 8 digits: "0000000100" would be 1 byte to it and 256 to us.
        let long = body_of(vec![b"0000000100\r\n"]);
        assert!(read(ChunkBound::new(long, ChunkBudget::default(), 1024)).await.unwrap_err().contains("1 to 8"));
    }

    #[tokio::test]
    async fn a_chunks_budget_is_held_until_bytes_past_its_end_are_asked_for() {
        let budget = ChunkBudget(Arc::new(Semaphore::new(8)));
        let whole: &'static [u8] = b"5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n";
        let mut body = ChunkBound::new(body_of(vec![whole]), budget.clone(), 8);
        let mut next = async || body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(next().await, "5\r\n");
        assert_eq!(budget.0.available_permits(), 3, "the first chunk's 5 bytes are taken before its data passes");
        assert_eq!(next().await, "hello\r\n");
        assert_eq!(budget.0.available_permits(), 3, "still held: s3s has not handed the chunk on yet");
        assert_eq!(next().await, "3\r\n");
        assert_eq!(
            budget.0.available_permits(),
            5,
            "asked for more: the first chunk's budget is back, the second's taken"
        );
        assert_eq!(next().await, "abc\r\n");
        assert_eq!(next().await, "0\r\n\r\n");
        assert_eq!(budget.0.available_permits(), 8);
    }

    #[tokio::test]
    async fn a_chunk_waits_for_budget_held_by_another_request() {
        let budget = ChunkBudget(Arc::new(Semaphore::new(8)));
        let held = budget.0.clone().try_acquire_many_owned(8).unwrap();
        let body = ChunkBound::new(body_of(vec![b"5\r\nhello\r\n0\r\n\r\n"]), budget.clone(), 8);
        let reading = tokio::spawn(read(body));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!reading.is_finished(), "the chunk must wait for the budget");
        drop(held);
        assert_eq!(reading.await.unwrap().unwrap(), b"5\r\nhello\r\n0\r\n\r\n");
    }
}
