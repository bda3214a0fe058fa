//! PostObject: browser form uploads (`POST` of `multipart/form-data` to a bucket's URL).
//!
//! Served here rather than by s3s: s3s 0.14 reads the whole file into memory before any
//! authorization. Here the fields before the file are read (at most 20 KB, AWS's limit), then
//! the policy's signature, expiry and conditions are checked and the request is authorized as a
//! PutObject of the form's key, all before a byte of the file is read; the file then streams into
//! PutObject's write path (`objects::put`), counted against the policy's content-length-range as
//! it passes. A file out of range, a body cut short or a broken boundary fails the write before
//! the commit, so nothing becomes visible.
//!
//! What AWS's "Creating an HTML form (using AWS Signature Version 4)" and "POST Object" pages
//! say, followed here: field names are case-insensitive; `file` is the last field used (fields
//! after it are ignored); `${filename}` in the key is the file's name; every field but
//! `x-amz-signature`, `file`, `policy` and `x-ignore-*` must be named by a policy condition; a
//! signed form must carry a policy; `tagging` is a `<Tagging>` XML document;
//! `success_action_redirect` (or `redirect`) answers 303 to that URL with `bucket`, `key` and
//! `etag` added, else `success_action_status` 200, 201 (with a `<PostResponse>` document) or
//! 204 (the default).

use super::IgnifugeS3;
use super::access::{Authorized, ClientAddr, RequestId, check_expected_bucket_owner, request_context};
use crate::authorize::Ask;
use crate::error::{GatewayError, GatewayResult};
use bytes::Bytes;
use hmac::{KeyInit, Mac};
use ignifuge_access::Requester;
use s3s::dto::*;
use s3s::post_policy::{PostPolicy, PostPolicyCondition};
use std::sync::Arc;

/// AWS: "The form data and boundaries (excluding the contents of the file) cannot exceed 20KB."
pub const FORM_FIELDS_MAX_BYTES: usize = 20 * 1024;
/// How long the fields before the file may take to arrive.
const FORM_FIELDS_TIMEOUT_MS: u64 = 20_000;
/// Fields no policy condition needs to name.
const EXEMPT_FIELDS: [&str; 3] = ["x-amz-signature", "file", "policy"];

/// Where a form upload goes: the bucket, and whether the client named it in the Host header.
pub(super) struct FormTarget {
    pub bucket: String,
    pub virtual_host: bool,
}

/// Whether a request's body is a form (`multipart/form-data`).
pub(super) fn is_form(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// Whether `request` is a form upload (a POST of `multipart/form-data`), and if so where to: a
/// bucket's URL (`/bucket` path style, `/` virtual-hosted style; any query is ignored, as s3s
/// routes every form POST to a bucket to PostObject), or anywhere else, which is refused before
/// a byte of the body is read (s3s would read the whole file into memory first).
pub(super) fn form_target<B>(request: &http::Request<B>, hosts: &super::Hosts) -> Option<GatewayResult<FormTarget>> {
    if request.method() != http::Method::POST || !is_form(request.headers()) {
        return None;
    }
    let path = request.uri().path();
    let host = request.headers().get(http::header::HOST).and_then(|v| v.to_str().ok());
    let not_a_bucket = || GatewayError::MethodNotAllowed;
    if let Some(bucket) = host.and_then(|h| hosts.bucket_of(h)) {
        return Some(if path == "/" || path.is_empty() {
            Ok(FormTarget { bucket, virtual_host: true })
        } else {
            Err(not_a_bucket())
        });
    }
    let bucket = path.strip_prefix('/').unwrap_or(path);
    let bucket = bucket.strip_suffix('/').unwrap_or(bucket);
    Some(if bucket.is_empty() || bucket.contains('/') {
        Err(not_a_bucket())
    } else {
        let bucket = urlencoding::decode(bucket).map_or_else(|_| bucket.to_string(), |d| d.into_owned());
        Ok(FormTarget { bucket, virtual_host: false })
    })
}

/// The fields before the file, names lowercased, in the order sent; and the file, unread.
struct Form {
    fields: Vec<(String, String)>,
    file: Option<multer::Field<'static>>,
    file_name: Option<String>,
}

impl Form {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// A field the form must have (before the file), or AWS's error for its absence.
    fn required(&self, name: &str) -> GatewayResult<&str> {
        self.field(name).ok_or_else(|| {
            GatewayError::InvalidArgument(format!(
                "Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the \
                 fields."
            ))
        })
    }
}

/// The body bound that broke while the fields were read (see `FieldsBound`).
#[derive(Debug, thiserror::Error)]
#[error("the form's fields exceed 20 KB")]
struct FieldsTooLarge;

fn malformed(e: multer::Error) -> GatewayError {
    if let multer::Error::StreamReadFailed(source) = &e
        && source.is::<FieldsTooLarge>()
    {
        return GatewayError::PostFieldsTooLarge;
    }
    GatewayError::MalformedPost(e.to_string())
}

/// Slices of at most this many bytes are handed to the form parser until the file begins, so
/// that it never holds more than this past the fields.
const FIELDS_SLICE_BYTES: usize = 8 * 1024;

/// The request body as the form parser reads it, one piece per poll.
///
/// multer 3.1 reads its stream for as long as it is ready, copying everything into one buffer
/// before it parses: from a fast client it would buffer far more than the fields, the file
/// itself. So every piece yielded is followed by one `Pending` (with an immediate wake-up):
/// multer takes one piece at a time, and holds at most one past what it has parsed.
///
/// Until the file part begins (`file_begun`), pieces are slices of at most
/// `FIELDS_SLICE_BYTES` and every byte counts (part headers and boundaries included, as AWS
/// counts them): past `FORM_FIELDS_MAX_BYTES`, plus the one slice the parser may hold ahead,
/// the body fails. This bounds the parser's memory and the work of re-scanning its buffer,
/// whatever the shape of the fields (many tiny parts, huge part headers).
struct FieldsBound {
    inner: s3s::Body,
    pending: Bytes,
    passed: usize,
    file_begun: Arc<std::sync::atomic::AtomicBool>,
    /// A piece went out at the last poll: this one answers Pending.
    yielded: bool,
}

impl futures::Stream for FieldsBound {
    type Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        if std::mem::take(&mut this.yielded) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        loop {
            if this.pending.is_empty() {
                match std::task::ready!(std::pin::Pin::new(&mut this.inner).poll_next(cx)) {
                    Some(Ok(chunk)) => this.pending = chunk,
                    other => return Poll::Ready(other),
                }
                continue;
            }
            let piece = if this.file_begun.load(std::sync::atomic::Ordering::Acquire) {
                std::mem::take(&mut this.pending)
            } else {
                let slice = this.pending.split_to(this.pending.len().min(FIELDS_SLICE_BYTES));
                this.passed += slice.len();
                if this.passed > FORM_FIELDS_MAX_BYTES + FIELDS_SLICE_BYTES {
                    return Poll::Ready(Some(Err(Box::new(FieldsTooLarge))));
                }
                slice
            };
            this.yielded = true;
            return Poll::Ready(Some(Ok(piece)));
        }
    }
}

/// Reads the fields up to the file (bounded in bytes and time), leaving the file unread. A
/// field sent twice is refused: the policy would test one value and the write could use another.
async fn read_form(request: http::Request<s3s::Body>) -> GatewayResult<Form> {
    let content_type = request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let boundary = multer::parse_boundary(content_type).map_err(malformed)?;
    let file_begun = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let body = FieldsBound {
        inner: request.into_body(),
        pending: Bytes::new(),
        passed: 0,
        file_begun: file_begun.clone(),
        yielded: false,
    };
    let mut multipart = multer::Multipart::new(body, boundary);
    let mut form = Form { fields: Vec::new(), file: None, file_name: None };
    let mut size = 0usize;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(FORM_FIELDS_TIMEOUT_MS);
    loop {
        let next = tokio::time::timeout_at(deadline, multipart.next_field())
            .await
            .map_err(|_| GatewayError::RequestTimeout)?
            .map_err(malformed)?;
        let Some(mut field) = next else { break };
        let name = field.name().unwrap_or_default().to_ascii_lowercase();
        if name == "file" {
            file_begun.store(true, std::sync::atomic::Ordering::Release);
            form.file_name = field.file_name().map(str::to_string);
            form.file = Some(field);
            break;
        }
        size += name.len();
        let mut value = Vec::new();
        while let Some(chunk) = tokio::time::timeout_at(deadline, field.chunk())
            .await
            .map_err(|_| GatewayError::RequestTimeout)?
            .map_err(malformed)?
        {
            size += chunk.len();
            if size > FORM_FIELDS_MAX_BYTES {
                return Err(GatewayError::PostFieldsTooLarge);
            }
            value.extend_from_slice(&chunk);
        }
        let value =
            String::from_utf8(value).map_err(|_| GatewayError::MalformedPost(format!("field {name} is not UTF-8")))?;
        if form.field(&name).is_some() {
            return Err(GatewayError::InvalidArgument(format!("The form field {name} appears more than once.")));
        }
        form.fields.push((name, value));
    }
    Ok(form)
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// SigV4 of a form: HMAC-SHA256 of the base64 policy with the signing key of the credential's
/// scope (date, region, service).
pub(super) fn policy_signature(secret: &str, date: &str, region: &str, service: &str, policy: &str) -> String {
    let mut key = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    hex::encode(hmac_sha256(&key, policy.as_bytes()))
}

/// Equal in constant time (for signatures).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who sent the form: the key whose signature it carries, or nobody.
async fn requester(s3: &IgnifugeS3, form: &Form) -> GatewayResult<Requester> {
    if form.field("signature").is_some() && form.field("awsaccesskeyid").is_some() {
        return Err(GatewayError::InvalidRequest(
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.".into(),
        ));
    }
    let Some(signature) = form.field("x-amz-signature") else {
        // A policy or credential without a signature is a form signed wrong, not an anonymous one.
        if let Some(name) = ["policy", "x-amz-credential"].into_iter().find(|n| form.field(n).is_some()) {
            return Err(GatewayError::InvalidArgument(format!(
                "Bucket POST with a {name} field must contain a field named 'x-amz-signature'."
            )));
        }
        return Ok(Requester::Anonymous);
    };
    let policy = form.required("policy")?;
    let algorithm = form.required("x-amz-algorithm")?;
    if algorithm != "AWS4-HMAC-SHA256" {
        return Err(GatewayError::InvalidArgument(format!(
            "The algorithm {algorithm} is not supported: use AWS4-HMAC-SHA256."
        )));
    }
    let amz_date = form.required("x-amz-date")?;
    let credential = form.required("x-amz-credential")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, "s3", "aws4_request"] = scope[..] else {
        return Err(GatewayError::InvalidArgument(format!(
            "Invalid credential: {credential}; it should be ACCESS_KEY/YYYYMMDD/REGION/s3/aws4_request"
        )));
    };
    // x-amz-date is the signing time (ISO 8601 basic, UTC), on the credential's date.
    let well_formed = amz_date.len() == 16
        && amz_date.as_bytes()[8] == b'T'
        && amz_date.ends_with('Z')
        && amz_date.bytes().enumerate().all(|(i, b)| matches!(i, 8 | 15) || b.is_ascii_digit());
    if !well_formed || !amz_date.starts_with(date) {
        return Err(GatewayError::InvalidArgument(format!(
            "x-amz-date {amz_date} is not a time of the credential's date {date} (YYYYMMDD'T'HHMMSS'Z')"
        )));
    }
    let service = "s3";
    let principal = s3.gateway.keys.principal(access_key).await?;
    if !same(&policy_signature(principal.secret(), date, region, service, policy), signature) {
        return Err(GatewayError::SignatureDoesNotMatch);
    }
    Ok(Requester::Key {
        tenant: principal.tenant.clone(),
        user: principal.user.clone(),
        access_key: principal.access_key.clone(),
    })
}

/// The value a condition on `field` tests: the bucket the URL names for `bucket`, the key with
/// `${filename}` replaced, the form's field otherwise.
fn tested_value<'a>(form: &'a Form, field: &str, bucket: &'a str, key: &'a str) -> Option<&'a str> {
    match field {
        "bucket" => Some(bucket),
        "key" => Some(key),
        _ => form.field(field),
    }
}

fn condition_text(condition: &PostPolicyCondition) -> String {
    match condition {
        PostPolicyCondition::Eq { field, value } => format!("[\"eq\", \"${field}\", \"{value}\"]"),
        PostPolicyCondition::StartsWith { field, prefix } => format!("[\"starts-with\", \"${field}\", \"{prefix}\"]"),
        PostPolicyCondition::ContentLengthRange { min, max } => format!("[\"content-length-range\", {min}, {max}]"),
    }
}

/// Checks the policy against the form: expiry, every eq / starts-with condition, and that every
/// field is named by one. Returns the file's allowed size range.
fn check_policy(policy: &str, form: &Form, bucket: &str, key: &str, now_ms: i64) -> GatewayResult<(u64, u64)> {
    let policy = PostPolicy::from_base64(policy)
        .map_err(|e| GatewayError::InvalidPolicyDocument(format!("Invalid Policy: {e}")))?;
    let expiration = time::OffsetDateTime::from(policy.expiration.clone());
    if expiration.unix_timestamp_nanos() / 1_000_000 <= i128::from(now_ms) {
        return Err(GatewayError::PolicyRefused("Policy expired.".into()));
    }
    let mut range = (0, u64::MAX);
    let mut named = std::collections::HashSet::new();
    for condition in &policy.conditions {
        let holds = match condition {
            PostPolicyCondition::Eq { field, value } => {
                named.insert(field.as_str());
                tested_value(form, field, bucket, key) == Some(value.as_str())
            }
            PostPolicyCondition::StartsWith { field, prefix } => {
                named.insert(field.as_str());
                // AWS: for Content-Type, a comma-separated list of types each starts with it.
                let value = tested_value(form, field, bucket, key);
                match value {
                    Some(v) if field == "content-type" => v.split(',').all(|t| t.trim().starts_with(prefix.as_str())),
                    Some(v) => v.starts_with(prefix.as_str()),
                    None => false,
                }
            }
            PostPolicyCondition::ContentLengthRange { min, max } => {
                range = (range.0.max(*min), range.1.min(*max));
                true
            }
        };
        if !holds {
            return Err(GatewayError::PolicyRefused(format!("Policy Condition failed: {}", condition_text(condition))));
        }
    }
    for (name, _) in &form.fields {
        let exempt = EXEMPT_FIELDS.contains(&name.as_str()) || name.starts_with("x-ignore-");
        if !exempt && !named.contains(name.as_str()) {
            return Err(GatewayError::PolicyRefused(format!("Extra input fields: {name}")));
        }
    }
    Ok(range)
}

/// The file's bytes, failing the write when they leave `min..=max`.
fn bounded_file(field: multer::Field<'static>, min: u64, max: u64) -> super::objects::BodyStream {
    Box::pin(futures::stream::unfold(Some((field, 0u64)), move |state| async move {
        let (mut field, read) = state?;
        match field.chunk().await {
            Ok(Some(bytes)) => {
                let read = read + bytes.len() as u64;
                if read > max {
                    return Some((Err(GatewayError::EntityTooLarge), None));
                }
                Some((Ok::<Bytes, GatewayError>(bytes), Some((field, read))))
            }
            Ok(None) if read < min => Some((Err(GatewayError::EntityTooSmall), None)),
            Ok(None) => None,
            Err(e) => Some((Err(malformed(e)), None)),
        }
    }))
}

/// The form's fields that a PutObject carries as headers and `put` checks: server-side
/// encryption, Object Lock, storage class.
fn write_fields(form: &Form) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for (name, value) in &form.fields {
        let name = name.to_ascii_lowercase();
        let asked = name.starts_with("x-amz-server-side-encryption")
            || name.starts_with("x-amz-object-lock-")
            || name == "x-amz-storage-class";
        if asked
            && let (Ok(name), Ok(value)) =
                (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(value))
        {
            headers.insert(name, value);
        }
    }
    headers
}

/// A PutObject request made of the form's fields.
fn put_input(form: &Form, bucket: String, key: String) -> GatewayResult<PutObjectInput> {
    let text = |name: &str| form.field(name).map(str::to_string);
    let metadata: Metadata = form
        .fields
        .iter()
        .filter_map(|(name, value)| Some((name.strip_prefix("x-amz-meta-")?.to_string(), value.clone())))
        .filter(|(name, _)| !name.is_empty())
        .collect();
    let tagging = form.field("tagging").map(super::tagging::xml_as_header).transpose()?;
    Ok(PutObjectInput {
        bucket,
        key,
        acl: text("acl").map(ObjectCannedACL::from),
        cache_control: text("cache-control"),
        content_disposition: text("content-disposition"),
        content_encoding: text("content-encoding"),
        content_language: text("content-language"),
        // Without a Content-Type field the object is binary/octet-stream (`object_headers`), never
        // the file part's own type: that is not a field, so no policy condition could constrain
        // it (text/html on a website bucket).
        content_type: text("content-type"),
        content_md5: text("content-md5"),
        expires: super::parse_expires(&text("expires")),
        metadata: (!metadata.is_empty()).then_some(metadata),
        tagging,
        website_redirect_location: text("x-amz-website-redirect-location"),
        checksum_algorithm: text("x-amz-checksum-algorithm").map(ChecksumAlgorithm::from),
        checksum_crc32: text("x-amz-checksum-crc32"),
        checksum_crc32c: text("x-amz-checksum-crc32c"),
        checksum_crc64nvme: text("x-amz-checksum-crc64nvme"),
        checksum_sha1: text("x-amz-checksum-sha1"),
        checksum_sha256: text("x-amz-checksum-sha256"),
        ..Default::default()
    })
}

/// The headers the policy language sees for the form's PutObject: Referer and User-Agent from
/// the request, and the form's fields that stand for headers (`acl` as x-amz-acl, `tagging` as
/// x-amz-tagging). Nothing else of the request's own headers: the write ignores them, so a
/// condition must not be met by them.
fn context_headers(request: &http::HeaderMap, input: &PutObjectInput, form: &Form) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for name in [http::header::REFERER, http::header::USER_AGENT] {
        if let Some(value) = request.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    let mut set = |name: &'static str, value: Option<&str>| {
        if let Some(value) = value.and_then(|v| http::HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    };
    set("x-amz-acl", form.field("acl"));
    set("x-amz-tagging", input.tagging.as_deref());
    set("x-amz-server-side-encryption", form.field("x-amz-server-side-encryption"));
    headers
}

/// Serves a form upload to `bucket`.
pub(super) async fn post_object(
    s3: &IgnifugeS3,
    request: http::Request<s3s::Body>,
    target: FormTarget,
) -> Result<s3s::HttpResponse, s3s::S3Error> {
    let FormTarget { bucket, virtual_host } = target;
    let headers = request.headers().clone();
    let uri = request.uri().clone();
    let client = request.extensions().get::<ClientAddr>().map(|c| c.0);
    let request_id = request.extensions().get::<RequestId>().map_or_else(|| Arc::from(""), |r| r.0.clone());
    let mut form = read_form(request).await?;
    let Some(file) = form.file.take() else {
        return Err(GatewayError::InvalidArgument("POST requires exactly one file upload per request.".into()).into());
    };
    let requester = requester(s3, &form).await?;
    let key = form.required("key")?;
    // Browsers send a file's name; some, a path: the name is what follows the last separator.
    let file_name = form.file_name.as_deref().unwrap_or_default();
    let file_name = file_name.rsplit(['/', '\\']).next().unwrap_or_default();
    let key = key.replace("${filename}", file_name);
    super::check_key(&key)?;
    // The fields that ask a write for encryption, Object Lock or a storage class, as headers:
    // refused as a PutObject's would be (`objects::refuse_unsupported_write_headers`, in `put`),
    // never stored without what they ask.
    let write_fields = write_fields(&form);
    super::objects::refuse_unsupported_write_headers(&write_fields)?;
    let (min, max) = match form.field("policy") {
        Some(policy) => check_policy(policy, &form, &bucket, &key, ignifuge_types::time::now_ms())?,
        None => (0, u64::MAX),
    };
    let max = max.min(super::PUT_OBJECT_MAX_BYTES);
    let input = put_input(&form, bucket.clone(), key.clone())?;
    let action = "s3:PutObject";
    let context = Arc::new(request_context(&context_headers(&headers, &input, &form), &uri, client, action));
    let view = s3.gateway.access.view(s3.gateway.metadata.as_ref(), &bucket, true).await?;
    check_expected_bucket_owner(&view, &headers, &uri)?;
    let ask = Ask { action, key: Some(&key), object_acl: None };
    s3.gateway.authorize(&requester, &view, ask, &context, &request_id)?;
    // Tags need their own permission, as a PutObject's do (`access::AccessHook`).
    if input.tagging.as_deref().is_some_and(|t| !t.is_empty()) {
        let action = "s3:PutObjectTagging";
        let context = request_context(&context_headers(&headers, &input, &form), &uri, client, action);
        let ask = Ask { action, key: Some(&key), object_acl: None };
        s3.gateway.authorize(&requester, &view, ask, &context, &request_id)?;
    }
    let authorized = Authorized { requester, view: Some(view), action, context, request_id, deferred: false };
    let body = bounded_file(file, min, max);
    let stored = super::objects::put(s3, &authorized, &write_fields, input, body, Vec::new).await?;
    let etag = stored.output.e_tag.as_ref().map(|e| e.value().to_string()).unwrap_or_default();
    let location = object_url(&headers, &bucket, &key, virtual_host);
    let mut response = answer(&form, &location, &bucket, &key, &etag)?;
    let set = |response: &mut s3s::HttpResponse, name: &'static str, value: &str| {
        if let Ok(value) = http::HeaderValue::from_str(value) {
            response.headers_mut().insert(name, value);
        }
    };
    set(&mut response, "etag", &format!("\"{etag}\""));
    if let Some(version) = &stored.output.version_id {
        set(&mut response, "x-amz-version-id", version);
    }
    Ok(response)
}

/// The object's URL as the client addressed the bucket (path or virtual-hosted style). The
/// gateway speaks plain HTTP; TLS, where there is any, ends in front of it.
fn object_url(headers: &http::HeaderMap, bucket: &str, key: &str, virtual_host: bool) -> String {
    let host = headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let key = urlencoding::encode(key).replace("%2F", "/");
    if virtual_host { format!("http://{host}/{key}") } else { format!("http://{host}/{bucket}/{key}") }
}

/// The success answer the form asks for.
fn answer(form: &Form, location: &str, bucket: &str, key: &str, etag: &str) -> GatewayResult<s3s::HttpResponse> {
    let redirect = form.field("success_action_redirect").or_else(|| form.field("redirect"));
    // AWS: a redirect that is not a valid URL is ignored (the status field answers).
    if let Some(target) =
        redirect.filter(|r| (r.starts_with("http://") || r.starts_with("https://")) && !r.chars().any(char::is_control))
    {
        let separator = if target.contains('?') { '&' } else { '?' };
        let query = format!(
            "bucket={}&key={}&etag={}",
            urlencoding::encode(bucket),
            urlencoding::encode(key),
            urlencoding::encode(&format!("\"{etag}\""))
        );
        let mut response = s3s::HttpResponse::new(s3s::Body::empty());
        *response.status_mut() = http::StatusCode::SEE_OTHER;
        let value = http::HeaderValue::from_str(&format!("{target}{separator}{query}"))
            .map_err(|_| GatewayError::InvalidArgument("success_action_redirect is not a valid URL".into()))?;
        response.headers_mut().insert(http::header::LOCATION, value);
        return Ok(response);
    }
    let (status, body) = match form.field("success_action_status") {
        Some("200") => (http::StatusCode::OK, String::new()),
        Some("201") => (
            http::StatusCode::CREATED,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket>\
                 <Key>{}</Key><ETag>&quot;{}&quot;</ETag></PostResponse>",
                super::escape_markup(location),
                super::escape_markup(bucket),
                super::escape_markup(key),
                super::escape_markup(etag)
            ),
        ),
        _ => (http::StatusCode::NO_CONTENT, String::new()),
    };
    let length = body.len();
    let mut response = s3s::HttpResponse::new(s3s::Body::from(body));
    *response.status_mut() = status;
    if status == http::StatusCode::CREATED {
        response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
        response.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(length));
    }
    if let Ok(value) = http::HeaderValue::from_str(location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> Form {
        Form {
            fields: fields.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            file: None,
            file_name: None,
        }
    }

    fn policy(expiration: &str, conditions: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(format!("{{\"expiration\": \"{expiration}\", \"conditions\": [{conditions}]}}"))
    }

    const FUTURE: &str = "2099-01-01T00:00:00.000Z";

    #[test]
    fn a_policy_names_every_field_and_each_condition_must_hold() {
        let p = policy(
            FUTURE,
            r#"{"bucket": "bkt"}, ["starts-with", "$key", "uploads/"], {"acl": "private"},
               ["content-length-range", 1, 100]"#,
        );
        let f = form(&[("key", "uploads/${filename}"), ("acl", "private"), ("policy", &p), ("x-ignore-me", "1")]);
        assert_eq!(check_policy(&p, &f, "bkt", "uploads/a.txt", 0).unwrap(), (1, 100));
        let refused = |f: &Form, bucket: &str, key: &str| match check_policy(&p, f, bucket, key, 0) {
            Err(GatewayError::PolicyRefused(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(refused(&f, "other", "uploads/a"), r#"Policy Condition failed: ["eq", "$bucket", "bkt"]"#);
        assert_eq!(
            refused(&f, "bkt", "elsewhere/a"),
            r#"Policy Condition failed: ["starts-with", "$key", "uploads/"]"#
        );
        let extra = form(&[("key", "uploads/a"), ("acl", "private"), ("x-amz-meta-color", "red")]);
        assert_eq!(refused(&extra, "bkt", "uploads/a"), "Extra input fields: x-amz-meta-color");
        let wrong_acl = form(&[("key", "uploads/a"), ("acl", "public-read")]);
        assert!(refused(&wrong_acl, "bkt", "uploads/a").contains("$acl"));
    }

    #[test]
    fn an_expired_or_unreadable_policy_is_refused() {
        let p = policy("2020-01-01T00:00:00.000Z", r#"{"bucket": "bkt"}"#);
        let f = form(&[]);
        assert!(
            matches!(check_policy(&p, &f, "bkt", "k", ignifuge_types::time::now_ms()), Err(GatewayError::PolicyRefused(m)) if m == "Policy expired.")
        );
        assert!(matches!(check_policy("not base64!", &f, "bkt", "k", 0), Err(GatewayError::InvalidPolicyDocument(_))));
    }

    #[test]
    fn the_policy_signature_is_sigv4s() {
        // The expected value is Python's hmac over the same scope (AWS's SigV4 signing-key
        // derivation written independently): `AWS4`+secret, date, region, service, aws4_request.
        let policy = "eyJleHBpcmF0aW9uIjoiMjA5OS0wMS0wMVQwMDowMDowMFoiLCJjb25kaXRpb25zIjpbXX0=";
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert_eq!(
            policy_signature(secret, "20151229", "us-east-1", "s3", policy),
            "60aede75af4090afb62049767ab5e0b7bd9d819a24e051949ff65d61ab2fb2d4"
        );
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }

    #[test]
    fn form_posts_go_to_a_bucket_or_are_refused_unread() {
        let hosts = super::super::Hosts { domains: vec!["s3.test".into()] };
        let post = |uri: &str, host: &str, content_type: &str| {
            http::Request::post(uri).header("host", host).header("content-type", content_type).body(()).unwrap()
        };
        let target =
            |uri: &str, host: &str| match form_target(&post(uri, host, "multipart/form-data; boundary=x"), &hosts) {
                Some(Ok(t)) => Some((t.bucket, t.virtual_host)),
                Some(Err(GatewayError::MethodNotAllowed)) => None,
                Some(Err(e)) => panic!("{e}"),
                None => panic!("{uri} is a form POST"),
            };
        assert_eq!(target("/bkt", "127.0.0.1"), Some(("bkt".into(), false)));
        assert_eq!(target("/bkt/", "127.0.0.1"), Some(("bkt".into(), false)));
        assert_eq!(target("/bkt?x=1", "127.0.0.1"), Some(("bkt".into(), false)));
        assert_eq!(target("/", "bkt.s3.test:9000"), Some(("bkt".into(), true)));
        // Elsewhere: refused before s3s could read the file into memory.
        assert_eq!(target("/bkt/key", "127.0.0.1"), None);
        assert_eq!(target("/", "127.0.0.1"), None);
        assert_eq!(target("/key", "bkt.s3.test"), None);
        assert!(form_target(&post("/bkt", "127.0.0.1", "application/xml"), &hosts).is_none());
    }

    fn body_of(chunks: Vec<Bytes>) -> s3s::Body {
        let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        s3s::Body::http_body_unsync(http_body_util::StreamBody::new(futures::StreamExt::map(stream, |c| {
            c.map(http_body::Frame::data)
        })))
    }

    fn form_request(chunks: Vec<Bytes>) -> http::Request<s3s::Body> {
        http::Request::post("/bkt")
            .header("content-type", "multipart/form-data; boundary=XX")
            .body(body_of(chunks))
            .unwrap()
    }

    fn part(name: &str, value: &str) -> String {
        format!("--XX\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
    }

    #[tokio::test]
    async fn the_fields_are_bounded_whatever_their_shape() {
        // Many nameless parts: each adds nothing to a count of names and values, but every byte
        // before the file counts.
        let many: String = (0..4000).map(|_| part("", "")).collect();
        let request = form_request(vec![Bytes::from(many)]);
        assert!(matches!(read_form(request).await, Err(GatewayError::PostFieldsTooLarge)));
        // One huge part header.
        let header = format!(
            "--XX\r\nContent-Disposition: form-data; name=\"a\"\r\nX-Pad: {}\r\n\r\nv\r\n",
            "p".repeat(64 * 1024)
        );
        let request = form_request(vec![Bytes::from(header)]);
        assert!(matches!(read_form(request).await, Err(GatewayError::PostFieldsTooLarge)));
        // A field sent twice.
        let twice = format!("{}{}--XX--\r\n", part("x-amz-meta-a", "1"), part("X-Amz-Meta-A", "2"));
        let request = form_request(vec![Bytes::from(twice)]);
        assert!(
            matches!(read_form(request).await, Err(GatewayError::InvalidArgument(m)) if m.contains("more than once"))
        );
        // Fields and a large file in one chunk: the file is not counted against the fields.
        let mut whole = format!(
            "{}--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n\r\n",
            part("key", "k")
        );
        whole.push_str(&"f".repeat(512 * 1024));
        whole.push_str("\r\n--XX--\r\n");
        let mut form = read_form(form_request(vec![Bytes::from(whole)])).await.expect("a form with a 512 KiB file");
        assert_eq!(form.field("key"), Some("k"));
        assert_eq!(form.file_name.as_deref(), Some("f.bin"));
        let mut file = form.file.take().unwrap();
        let mut read = 0;
        while let Some(chunk) = file.chunk().await.unwrap() {
            read += chunk.len();
        }
        assert_eq!(read, 512 * 1024);
    }
}
