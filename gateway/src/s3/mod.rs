//! The s3s adapter: the only module that sees s3s types. It turns S3 inputs into calls on the
//! metadata and the data path, one submodule per operation family, handlers named after the
//! S3 operations.

pub(crate) mod access;
mod acl;
mod bodies;
mod buckets;
mod cors;
mod list;
mod multipart;
mod objects;
mod policy;
mod post;
mod precheck;
mod tagging;
mod versioning;
pub(crate) mod website;

use crate::Gateway;
use crate::error::{GatewayError, GatewayResult};
use crate::principal::Principal;
use ignifuge_meta::{BucketRecord, MetaError, ObjectHeaders};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::*;
use s3s::host::{S3Host, VirtualHost};
use s3s::service::S3ServiceBuilder;
use s3s::{S3, S3Error, S3Request, S3Response, S3Result};
use std::sync::Arc;

/// Longest object key, in bytes, as on AWS.
pub const OBJECT_KEY_MAX_BYTES: usize = 1024;
/// Largest total size of user metadata (names and values), as on AWS.
pub const USER_METADATA_MAX_BYTES: usize = 2048;
/// Longest x-amz-website-redirect-location, as on AWS.
pub const WEBSITE_REDIRECT_MAX_BYTES: usize = 2048;
/// Client connections a gateway serves at once; more wait in the kernel's backlog.
pub const GATEWAY_CONNECTIONS_MAX: usize = 8192;
/// Largest object accepted by a single PUT, as on AWS.
pub const PUT_OBJECT_MAX_BYTES: u64 = 5 * 1024 * 1024 * 1024;

#[derive(Clone)]
pub struct IgnifugeS3 {
    gateway: Arc<Gateway>,
}

pub(crate) fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from(ignifuge_types::time::system_time(ms))
}

/// Seconds since the epoch of a timestamp (HTTP dates have whole seconds).
pub(crate) fn unix_seconds(ts: &Timestamp) -> i64 {
    time::OffsetDateTime::from(ts.clone()).unix_timestamp()
}

/// `text` made safe inside XML or HTML text and attribute values.
pub(crate) fn escape_markup(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub(crate) fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_string())
}

impl IgnifugeS3 {
    /// The principal of a signed request; anonymous requests are denied.
    async fn principal<T>(&self, req: &S3Request<T>) -> S3Result<Arc<Principal>> {
        let credentials = req.credentials.as_ref().ok_or(GatewayError::AccessDenied)?;
        Ok(self.gateway.keys.principal(&credentials.access_key).await?)
    }

    /// What the access hook decided about the request.
    fn authorized<T>(req: &S3Request<T>) -> S3Result<&access::Authorized> {
        Ok(req
            .extensions
            .get::<access::Authorized>()
            .ok_or_else(|| GatewayError::Internal("request reached a handler unauthorized".into()))?)
    }

    /// The bucket the request names, as read (fresh) when the request was authorized.
    fn bucket<T>(req: &S3Request<T>) -> S3Result<BucketRecord> {
        Ok(Self::authorized(req)?.view()?.record.clone())
    }

    /// The answer of a metadata read that named the bucket's owner and incarnation: NoSuchBucket
    /// (deleted, or deleted and made again, since the view was cached) drops the view, so that
    /// the next request reads the bucket afresh.
    fn in_bucket<T>(&self, bucket: &BucketRecord, answer: Result<T, MetaError>) -> S3Result<T> {
        if matches!(answer, Err(MetaError::NoSuchBucket)) {
            self.gateway.access.forget(&bucket.name);
        }
        Ok(answer.map_err(GatewayError::Meta)?)
    }

    /// Forgets this gateway's cached view of a bucket whose settings it just changed.
    fn changed(&self, bucket: &BucketRecord) {
        self.gateway.access.forget(&bucket.name);
    }
}

fn check_key(key: &str) -> GatewayResult<()> {
    if key.len() > OBJECT_KEY_MAX_BYTES {
        return Err(GatewayError::KeyTooLong);
    }
    if key.is_empty() {
        return Err(GatewayError::InvalidArgument("object keys must not be empty".into()));
    }
    // NUL separates a key from its version sequence in the metadata's version index (and XML 1.0
    // cannot carry it in a listing anyway).
    if key.contains('\0') {
        return Err(GatewayError::InvalidArgument("object keys must not contain NUL".into()));
    }
    Ok(())
}

/// What an object written without a Content-Type is served as, as on AWS.
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// AWS: a website redirect is a path of this site or an absolute http(s) URL, at most 2 KB.
pub(super) fn check_website_redirect(location: Option<&str>) -> GatewayResult<()> {
    match location {
        Some(location)
            if location.len() > WEBSITE_REDIRECT_MAX_BYTES
                || !(location.starts_with('/')
                    || location.starts_with("http://")
                    || location.starts_with("https://")) =>
        {
            Err(GatewayError::InvalidRedirectLocation)
        }
        _ => Ok(()),
    }
}

/// The standard headers of a PUT, CopyObject (REPLACE) or CreateMultipartUpload.
#[allow(clippy::too_many_arguments)]
fn object_headers(
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<Timestamp>,
    metadata: Option<Metadata>,
    website_redirect_location: Option<String>,
) -> GatewayResult<ObjectHeaders> {
    let user_metadata: std::collections::BTreeMap<String, String> =
        metadata.unwrap_or_default().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    let size: usize = user_metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > USER_METADATA_MAX_BYTES {
        return Err(GatewayError::MetadataTooLarge);
    }
    check_website_redirect(website_redirect_location.as_deref())?;
    let expires = expires.and_then(|ts| {
        let mut out = Vec::new();
        ts.format(TimestampFormat::HttpDate, &mut out).ok()?;
        String::from_utf8(out).ok()
    });
    Ok(ObjectHeaders {
        // AWS stores binary/octet-stream for an object written without a Content-Type (PUT,
        // POST, a copy that replaces the metadata, a multipart upload).
        content_type: Some(content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into())),
        content_encoding,
        content_disposition,
        content_language,
        cache_control,
        expires,
        user_metadata,
        website_redirect_location,
    })
}

fn parse_expires(value: &Option<String>) -> Option<Timestamp> {
    value.as_deref().and_then(|v| Timestamp::parse(TimestampFormat::HttpDate, v).ok())
}

/// Authenticates SigV4 requests against the sealed secrets in the metadata.
struct KeyAuth {
    gateway: Arc<Gateway>,
}

#[async_trait::async_trait]
impl S3Auth for KeyAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.gateway.keys.principal(access_key).await {
            Ok(p) => Ok(SecretKey::from(p.secret().to_string())),
            Err(GatewayError::Meta(ignifuge_meta::MetaError::NoSuchAccessKey)) => Err(s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS access key Id you provided does not exist in our records."
            )),
            Err(e) => Err(e.into()),
        }
    }
}

/// Path-style for IP addresses and bare domains; virtual-hosted-style for `bucket.<domain>`.
#[derive(Clone)]
struct Hosts {
    domains: Vec<String>,
}

impl Hosts {
    /// The domain and bucket of a virtual-hosted-style Host header.
    fn virtual_host<'a>(&'a self, host: &'a str) -> Option<(&'a str, String)> {
        let name = host.rsplit_once(':').map_or(host, |(h, port)| if port.parse::<u16>().is_ok() { h } else { host });
        self.domains.iter().find_map(|domain| {
            let bucket = name.strip_suffix(domain.as_str())?.strip_suffix('.')?;
            (!bucket.is_empty()).then(|| (domain.as_str(), bucket.to_ascii_lowercase()))
        })
    }

    fn bucket_of(&self, host: &str) -> Option<String> {
        self.virtual_host(host).map(|(_, bucket)| bucket)
    }
}

impl S3Host for Hosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match self.virtual_host(host) {
            Some((domain, bucket)) => VirtualHost::new(domain).with_bucket(bucket),
            None => VirtualHost::new(host),
        })
    }
}

/// Joins repeated Content-Encoding lines into one comma-separated value. The Rust SDK sends
/// `Content-Encoding: gzip` and `Content-Encoding: aws-chunked` as two lines, which s3s refuses as
/// a duplicate; SigV4 canonicalises repeated headers by joining their values with commas, so the
/// joined value signs identically.
fn merge_repeated_headers(headers: &mut http::HeaderMap) {
    let name = http::header::CONTENT_ENCODING;
    if headers.get_all(&name).iter().count() > 1 {
        let joined: Vec<String> =
            headers.get_all(&name).iter().filter_map(|v| v.to_str().ok().map(|v| v.trim().to_string())).collect();
        if let Ok(value) = http::HeaderValue::from_str(&joined.join(",")) {
            headers.insert(name, value);
        }
    }
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
    domains: Vec<String>,
) -> std::io::Result<()> {
    let hosts = Hosts { domains };
    let cors = cors::CorsLayer::new(gateway.clone(), hosts.clone());
    let prechecked = Arc::new(hosts.clone());
    let budget = bodies::ChunkBudget::default();
    let stall_ms = gateway.data.tuning.answer_stall_max_ms;
    let mut builder = S3ServiceBuilder::new(IgnifugeS3 { gateway: gateway.clone() });
    builder.set_auth(KeyAuth { gateway: gateway.clone() });
    builder.set_access(access::AccessHook { gateway: gateway.clone() });
    builder.set_route(website::domains::DomainRoute { gateway: gateway.clone(), hosts: hosts.clone() });
    builder.set_host(hosts);
    let service = builder.build();
    serve_http(listener, stall_ms, move |mut request, peer| {
        merge_repeated_headers(request.headers_mut());
        let request_id: Arc<str> = Arc::from(&ignifuge_types::random_id()[..16]);
        request.extensions_mut().insert(access::ClientAddr(peer));
        request.extensions_mut().insert(access::RequestId(request_id.clone()));
        let (service, cors, hosts, budget) = (service.clone(), cors.clone(), prechecked.clone(), budget.clone());
        let s3 = IgnifugeS3 { gateway: gateway.clone() };
        async move {
            // GetObjectAttributes (`?attributes`): its answer's ETag is unquoted on the way out.
            let attributes = request
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "attributes" || p.starts_with("attributes=")));
            // For a 416's body (`complete_error_message`).
            let range = request.headers().get(http::header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let head = request.method() == http::Method::HEAD;
            // A request that came with a body may be refused before all of it was read: its
            // answer says the connection closes (then lingers: `LingeringClose`), so the client
            // sends nothing more on it. (HTTP/1 only: HTTP/2 has no such header, and its streams
            // end on their own.)
            let headers = request.headers();
            let has_body = request.version() < http::Version::HTTP_2
                && (headers.contains_key(http::header::TRANSFER_ENCODING)
                    || headers
                        .get(http::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|length| length.trim() != "0"));
            let refused = |e: S3Error| e.to_http_response().map_err(|e| s3s::HttpError::new(Box::new(e)));
            let answer = if let Some(e) = precheck::refusal(&request, &hosts) {
                refused(e)
            } else {
                match post::form_target(&request, &hosts) {
                    Some(Err(e)) => refused(e.into()),
                    form => match bodies::bound(request, &budget).await {
                        Err(e) => refused(e.into()),
                        Ok(request) => {
                            cors.call(request, |request| async move {
                                match form {
                                    // PostObject is served here, not by s3s (see `post`).
                                    Some(Ok(target)) => match post::post_object(&s3, request, target).await {
                                        Ok(response) => Ok(response),
                                        Err(e) => refused(e),
                                    },
                                    _ => service.call(request).await,
                                }
                            })
                            .await
                        }
                    },
                }
            };
            answer.map(|mut response| {
                complete_error_message(&mut response, &request_id, range.as_deref());
                if has_body && response.status().as_u16() >= 400 {
                    response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
                }
                if attributes {
                    unquote_attributes_etag(&mut response);
                }
                // A HEAD of a range or a part is partial content, as its GET is: s3s answers 200
                // for every HEAD, and a client sizing a download from it took the range's length
                // for the object's.
                if head
                    && response.status() == http::StatusCode::OK
                    && response.headers().contains_key(http::header::CONTENT_RANGE)
                {
                    *response.status_mut() = http::StatusCode::PARTIAL_CONTENT;
                }
                if let Ok(value) = http::HeaderValue::from_str(&request_id) {
                    response.headers_mut().insert("x-amz-request-id", value);
                }
                response
            })
        }
    })
    .await
}

/// AWS's message for an error code that s3s answers without one (its signature checks, routing):
/// every error a client sees says what was wrong.
fn default_message(code: &str) -> &'static str {
    match code {
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. Check your key and \
             signing method."
        }
        "AccessDenied" => "Access Denied",
        "InvalidAccessKeyId" => "The AWS access key Id you provided does not exist in our records.",
        "MissingContentLength" => "You must provide the Content-Length HTTP header.",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "MalformedXML" => "The XML you provided was not well-formed or did not validate against our published schema",
        "InvalidArgument" => "Invalid Argument",
        "InvalidRequest" => "Invalid Request",
        "NotImplemented" => "A header or query you provided implies functionality that is not implemented.",
        _ => "The request could not be served as sent.",
    }
}

/// Completes an XML error body as AWS's are: a `<Message>` where s3s gave none, a 416's
/// `<RangeRequested>` (the request's Range header) and `<ActualObjectSize>` (from the
/// Content-Range `bytes */<size>` the gateway answered), and the `<RequestId>` (also in
/// x-amz-request-id) that support asks for.
fn complete_error_message(response: &mut s3s::HttpResponse, request_id: &str, range: Option<&str>) {
    if response.status().as_u16() < 400 {
        return;
    }
    let Some(bytes) = response.body().bytes() else { return };
    let Ok(text) = std::str::from_utf8(&bytes) else { return };
    if !text.contains("<Error>") {
        return;
    }
    let mut completed = text.to_string();
    if !completed.contains("<Message>")
        && let Some((before, after)) = completed.split_once("</Code>")
    {
        let code = before.rsplit_once("<Code>").map_or("", |(_, code)| code);
        completed = format!("{before}</Code><Message>{}</Message>{after}", default_message(code));
    }
    let size =
        response.headers().get(http::header::CONTENT_RANGE).and_then(|v| v.to_str().ok()?.strip_prefix("bytes */"));
    if let (Some(range), Some(size)) = (range, size)
        && completed.contains("<Code>InvalidRange</Code>")
        && size.bytes().all(|b| b.is_ascii_digit())
        && let Some((before, after)) = completed.rsplit_once("</Error>")
    {
        let range = escape_markup(range);
        completed = format!(
            "{before}<RangeRequested>{range}</RangeRequested><ActualObjectSize>{size}</ActualObjectSize></Error>{after}"
        );
    }
    if !completed.contains("<RequestId>")
        && let Some((before, after)) = completed.rsplit_once("</Error>")
    {
        // Request ids are made of hex digits and dashes: nothing to escape.
        completed = format!("{before}<RequestId>{request_id}</RequestId></Error>{after}");
    }
    replace_body(response, completed);
}

/// A buffered body replaced, with its Content-Length.
fn replace_body(response: &mut s3s::HttpResponse, body: String) {
    if let Ok(length) = http::HeaderValue::from_str(&body.len().to_string()) {
        response.headers_mut().insert(http::header::CONTENT_LENGTH, length);
    }
    *response.body_mut() = s3s::Body::from(body);
}

/// AWS's GetObjectAttributes answers the ETag without quotes (every other answer quotes it);
/// s3s's XML writer always quotes, so the quotes are taken off that one element here.
fn unquote_attributes_etag(response: &mut s3s::HttpResponse) {
    if response.status() != http::StatusCode::OK {
        return;
    }
    let Some(bytes) = response.body().bytes() else { return };
    let Ok(text) = std::str::from_utf8(&bytes) else { return };
    if !text.contains("<GetObjectAttributesResponse") {
        return;
    }
    // The ETag is the answer's only element of that name (parts carry none).
    let Some((before, rest)) = text.split_once("<ETag>\"") else { return };
    let Some((value, after)) = rest.split_once("\"</ETag>") else { return };
    let unquoted = format!("{before}<ETag>{value}</ETag>{after}");
    replace_body(response, unquoted);
}

/// Accepts connections on `listener` (at most `GATEWAY_CONNECTIONS_MAX` at once) and serves each
/// over HTTP/1.1 or HTTP/2 with `handle`, given each request and its client's address. A client
/// that stops reading an answer for `stall_ms` is dropped; one still sending a body the answer
/// refused gets the answer before the connection closes (`LingeringClose`).
pub(crate) async fn serve_http<F, Fut>(
    listener: tokio::net::TcpListener,
    stall_ms: u64,
    handle: F,
) -> std::io::Result<()>
where
    F: Fn(http::Request<hyper::body::Incoming>, std::net::SocketAddr) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<s3s::HttpResponse, s3s::HttpError>> + Send + 'static,
{
    let listener = ignifuge_rpc::BoundedListener::new(listener, GATEWAY_CONNECTIONS_MAX);
    let mut http = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    http.http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(std::time::Duration::from_millis(ignifuge_rpc::HEADER_READ_TIMEOUT_MS));
    let http = Arc::new(http);
    loop {
        let (stream, peer, open) = listener.accept().await;
        let http = http.clone();
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| handle(request, peer));
            let stall = std::time::Duration::from_millis(stall_ms);
            let guarded = ignifuge_rpc::stall_guarded(stream, stall);
            let io = hyper_util::rt::TokioIo::new(ignifuge_rpc::LingeringClose::new(guarded));
            let connection = http.serve_connection(io, service).await;
            if let Err(e) = connection {
                tracing::debug!(%peer, error = %e, "client connection ended with an error");
            }
            drop(open);
        });
    }
}

macro_rules! delegate {
    ($($op:ident: $input:ident => $output:ident in $module:ident;)*) => {
        #[async_trait::async_trait]
        impl S3 for IgnifugeS3 {
            $(
                async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    $module::$op(self, req).await
                }
            )*
        }
    };
}

delegate! {
    list_buckets: ListBucketsInput => ListBucketsOutput in buckets;
    create_bucket: CreateBucketInput => CreateBucketOutput in buckets;
    head_bucket: HeadBucketInput => HeadBucketOutput in buckets;
    delete_bucket: DeleteBucketInput => DeleteBucketOutput in buckets;
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput in buckets;
    put_object: PutObjectInput => PutObjectOutput in objects;
    get_object: GetObjectInput => GetObjectOutput in objects;
    head_object: HeadObjectInput => HeadObjectOutput in objects;
    delete_object: DeleteObjectInput => DeleteObjectOutput in objects;
    delete_objects: DeleteObjectsInput => DeleteObjectsOutput in objects;
    copy_object: CopyObjectInput => CopyObjectOutput in objects;
    get_object_attributes: GetObjectAttributesInput => GetObjectAttributesOutput in objects;
    list_objects: ListObjectsInput => ListObjectsOutput in list;
    list_objects_v2: ListObjectsV2Input => ListObjectsV2Output in list;
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput in multipart;
    upload_part: UploadPartInput => UploadPartOutput in multipart;
    complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput in multipart;
    abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput in multipart;
    list_parts: ListPartsInput => ListPartsOutput in multipart;
    list_multipart_uploads: ListMultipartUploadsInput => ListMultipartUploadsOutput in multipart;
    upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput in multipart;
    put_object_tagging: PutObjectTaggingInput => PutObjectTaggingOutput in tagging;
    get_object_tagging: GetObjectTaggingInput => GetObjectTaggingOutput in tagging;
    delete_object_tagging: DeleteObjectTaggingInput => DeleteObjectTaggingOutput in tagging;
    put_bucket_tagging: PutBucketTaggingInput => PutBucketTaggingOutput in tagging;
    get_bucket_tagging: GetBucketTaggingInput => GetBucketTaggingOutput in tagging;
    delete_bucket_tagging: DeleteBucketTaggingInput => DeleteBucketTaggingOutput in tagging;
    put_bucket_cors: PutBucketCorsInput => PutBucketCorsOutput in cors;
    get_bucket_cors: GetBucketCorsInput => GetBucketCorsOutput in cors;
    delete_bucket_cors: DeleteBucketCorsInput => DeleteBucketCorsOutput in cors;
    put_bucket_versioning: PutBucketVersioningInput => PutBucketVersioningOutput in versioning;
    get_bucket_versioning: GetBucketVersioningInput => GetBucketVersioningOutput in versioning;
    list_object_versions: ListObjectVersionsInput => ListObjectVersionsOutput in versioning;
    put_bucket_policy: PutBucketPolicyInput => PutBucketPolicyOutput in policy;
    get_bucket_policy: GetBucketPolicyInput => GetBucketPolicyOutput in policy;
    delete_bucket_policy: DeleteBucketPolicyInput => DeleteBucketPolicyOutput in policy;
    get_bucket_policy_status: GetBucketPolicyStatusInput => GetBucketPolicyStatusOutput in policy;
    put_public_access_block: PutPublicAccessBlockInput => PutPublicAccessBlockOutput in policy;
    get_public_access_block: GetPublicAccessBlockInput => GetPublicAccessBlockOutput in policy;
    delete_public_access_block: DeletePublicAccessBlockInput => DeletePublicAccessBlockOutput in policy;
    put_bucket_website: PutBucketWebsiteInput => PutBucketWebsiteOutput in website;
    get_bucket_website: GetBucketWebsiteInput => GetBucketWebsiteOutput in website;
    delete_bucket_website: DeleteBucketWebsiteInput => DeleteBucketWebsiteOutput in website;
    get_bucket_acl: GetBucketAclInput => GetBucketAclOutput in acl;
    put_bucket_acl: PutBucketAclInput => PutBucketAclOutput in acl;
    get_object_acl: GetObjectAclInput => GetObjectAclOutput in acl;
    put_object_acl: PutObjectAclInput => PutObjectAclOutput in acl;
    put_bucket_ownership_controls: PutBucketOwnershipControlsInput => PutBucketOwnershipControlsOutput in acl;
    get_bucket_ownership_controls: GetBucketOwnershipControlsInput => GetBucketOwnershipControlsOutput in acl;
    delete_bucket_ownership_controls: DeleteBucketOwnershipControlsInput => DeleteBucketOwnershipControlsOutput in acl;
}
