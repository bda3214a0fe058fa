//! The website endpoint: serves buckets as static websites on a port of its own, as AWS's
//! `s3-website` endpoints do. The Host header names the bucket: `<bucket>.<web root domain>`, a
//! custom domain a tenant attached to its bucket (`Command::SetDomain`), or a bucket named like
//! the host (AWS's rule for custom domains). Requests are anonymous: only what the authorizer
//! lets anyone read (`s3:GetObject` for `Requester::Anonymous`, through the bucket policy or
//! ACLs, under Block Public Access) is served; everything else is 403, as on AWS.
//!
//! Behaviour follows the S3 user guide's "Hosting a static website": the index document for `/`
//! and every `dir/`; a 302 from `dir` to `dir/` when `dir/<index>` exists; the error document
//! with the error's status; RoutingRules (before the read for prefix conditions, after it for
//! error-code conditions); RedirectAllRequestsTo; an object's x-amz-website-redirect-location
//! as a 301; GET and HEAD only (405 otherwise), OPTIONS for CORS preflights; Range,
//! conditional requests (304 and 412 with validators), and the object's stored headers.

use super::super::cors;
use super::super::objects::{check_read_conditions, content_range, satisfiable};
use crate::Gateway;
use crate::authorize::{Ask, BucketView};
use crate::error::GatewayError;
use ignifuge_access::{RequestContext, Requester};
use ignifuge_meta::{MetaError, ObjectRecord, RoutingRule, WebsiteConfiguration};
use ignifuge_types::{BucketName, ObjectKey, WebDomain};
use s3s::dto::{ETagCondition, Range, StreamingBlob, Timestamp, TimestampFormat};
use s3s::{Body, HttpResponse};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a custom domain's bucket is remembered (the same bound as access settings).
const DOMAIN_CACHE_TTL_MS: u64 = crate::authorize::ACCESS_CACHE_TTL_MS;
const DOMAIN_CACHE_ENTRIES_MAX: usize = 10_000;

/// Serves websites; one per gateway.
pub struct WebsiteEndpoint {
    gateway: Arc<Gateway>,
    /// Root domains: `<bucket>.<domain>` names a bucket.
    domains: Vec<String>,
    aliases: Mutex<HashMap<String, (Instant, Option<BucketName>)>>,
}

/// Why a request found no object to serve.
enum Failure {
    Status { status: http::StatusCode, code: &'static str, message: &'static str },
    Unavailable,
}

const NO_SUCH_KEY: Failure = Failure::Status {
    status: http::StatusCode::NOT_FOUND,
    code: "NoSuchKey",
    message: "The specified key does not exist.",
};
const NO_SUCH_BUCKET: Failure = Failure::Status {
    status: http::StatusCode::NOT_FOUND,
    code: "NoSuchBucket",
    message: "The specified bucket does not exist",
};
const ACCESS_DENIED: Failure =
    Failure::Status { status: http::StatusCode::FORBIDDEN, code: "AccessDenied", message: "Access Denied" };

/// What reading one key for a website request found.
enum Fetched {
    Found(Box<ObjectRecord>),
    Failed(Failure),
}

fn header<'a, B>(request: &'a http::Request<B>, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// AWS's HTML error page.
fn error_page(
    status: http::StatusCode,
    code: &str,
    message: &str,
    key: Option<&str>,
    request_id: &str,
    error_document_failed: bool,
) -> String {
    let title = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
    let mut page = format!("<html>\n<head><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n<ul>\n");
    page.push_str(&format!(
        "<li>Code: {}</li>\n<li>Message: {}</li>\n",
        crate::s3::escape_markup(code),
        crate::s3::escape_markup(message)
    ));
    if let Some(key) = key {
        page.push_str(&format!("<li>Key: {}</li>\n", crate::s3::escape_markup(key)));
    }
    page.push_str(&format!("<li>RequestId: {request_id}</li>\n</ul>\n"));
    if error_document_failed {
        page.push_str(
            "<h3>An Error Occurred While Attempting to Retrieve a Custom Error Document</h3>\n<ul>\n\
             <li>Code: AccessDenied</li>\n<li>Message: Access Denied</li>\n</ul>\n",
        );
    }
    page.push_str("<hr/>\n</body>\n</html>\n");
    page
}

fn response(status: http::StatusCode, body: Body) -> HttpResponse {
    let mut response = HttpResponse::new(body);
    *response.status_mut() = status;
    response
}

fn page_response(status: http::StatusCode, page: String, head: bool) -> HttpResponse {
    let length = page.len();
    let mut response = response(status, if head { Body::empty() } else { Body::from(page) });
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(length));
    response
}

fn redirect(status: http::StatusCode, location: &str) -> HttpResponse {
    let mut response = response(status, Body::empty());
    if let Ok(value) = http::HeaderValue::from_str(location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    response.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(0));
    response
}

/// A key as it goes into a Location: each path segment percent-encoded.
fn encode_key(key: &str) -> String {
    key.split('/').map(|segment| urlencoding::encode(segment).into_owned()).collect::<Vec<_>>().join("/")
}

/// Where a routing rule sends a request for `key` (the key as requested, before the index
/// document is appended) that arrived with Host `host`.
fn rule_location(rule: &RoutingRule, key: &str, host: &str) -> (http::StatusCode, String) {
    let r = &rule.redirect;
    let protocol = r.protocol.as_deref().unwrap_or("http");
    let host = r.host_name.as_deref().unwrap_or(host);
    let target = match (&r.replace_key_with, &r.replace_key_prefix_with) {
        (Some(whole), _) => whole.clone(),
        (None, Some(prefix)) => {
            let matched = rule.key_prefix_equals.as_deref().unwrap_or("");
            format!("{prefix}{}", key.strip_prefix(matched).unwrap_or(key))
        }
        (None, None) => key.to_string(),
    };
    let status = r
        .http_redirect_code
        .as_deref()
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(|c| http::StatusCode::from_u16(c).ok())
        .unwrap_or(http::StatusCode::MOVED_PERMANENTLY);
    (status, format!("{protocol}://{host}/{}", encode_key(&target)))
}

/// The first rule that applies to `key` before it is read (no error-code condition), or after
/// an error with `status` (its error code equals it).
fn matching_rule<'a>(
    config: &'a WebsiteConfiguration,
    key: &str,
    status: Option<http::StatusCode>,
) -> Option<&'a RoutingRule> {
    config.routing_rules.iter().find(|rule| {
        let prefix = rule.key_prefix_equals.as_deref().is_none_or(|p| key.starts_with(p));
        let code = match (&rule.http_error_code_returned_equals, status) {
            (None, None) => true,
            (Some(code), Some(status)) => code.parse::<u16>().ok() == Some(status.as_u16()),
            _ => false,
        };
        prefix && code
    })
}

impl WebsiteEndpoint {
    pub fn new(gateway: Arc<Gateway>, domains: Vec<String>) -> Self {
        Self { gateway, domains, aliases: Mutex::new(HashMap::new()) }
    }

    /// The bucket a Host names: `<bucket>.<root domain>`; else the bucket a tenant attached the
    /// host to as a domain; else a bucket named like the host (AWS's rule for custom domains).
    /// Whichever came first keeps the host: a domain cannot be attached while another tenant's
    /// bucket has its name (`Command::SetDomain`), and a bucket made with the name of another
    /// tenant's domain afterwards does not take it (it did, when the named bucket was looked up
    /// first). The answer for a host is remembered for `DOMAIN_CACHE_TTL_MS`, found or not, so
    /// random hosts cost two metadata reads a second each at most.
    async fn bucket_of(&self, host: &str) -> Result<Option<BucketName>, GatewayError> {
        for domain in &self.domains {
            if host == domain {
                return Ok(None);
            }
            if let Some(bucket) = host.strip_suffix(domain.as_str()).and_then(|b| b.strip_suffix('.'))
                && !bucket.is_empty()
            {
                return Ok(Some(BucketName::new(bucket)));
            }
        }
        if let Some((at, bucket)) = self.aliases.lock().unwrap_or_else(PoisonError::into_inner).get(host)
            && at.elapsed() < Duration::from_millis(DOMAIN_CACHE_TTL_MS)
        {
            return Ok(bucket.clone());
        }
        let bucket = match self.gateway.metadata.domain(WebDomain::new(host)).await? {
            Some(record) => Some(record.bucket.name),
            None => match self.gateway.access.view(self.gateway.metadata.as_ref(), host, false).await {
                Ok(_) => Some(BucketName::new(host)),
                Err(GatewayError::Meta(MetaError::NoSuchBucket)) => None,
                Err(e) => return Err(e),
            },
        };
        let mut aliases = self.aliases.lock().unwrap_or_else(PoisonError::into_inner);
        if aliases.len() >= DOMAIN_CACHE_ENTRIES_MAX {
            aliases.clear();
        }
        aliases.insert(host.to_string(), (Instant::now(), bucket.clone()));
        Ok(bucket)
    }

    /// Answers one request; every answer carries x-amz-request-id.
    pub async fn call<B>(&self, request: http::Request<B>, peer: SocketAddr) -> HttpResponse {
        let request_id = ignifuge_types::random_id()[..16].to_string();
        let mut response = self.answer(&request, peer, &request_id).await;
        if let Ok(value) = http::HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-amz-request-id", value);
        }
        response
    }

    async fn answer<B>(&self, request: &http::Request<B>, peer: SocketAddr, request_id: &str) -> HttpResponse {
        let head = request.method() == http::Method::HEAD;
        let page = |status: http::StatusCode, code: &str, message: &str| {
            page_response(status, error_page(status, code, message, None, request_id, false), head)
        };
        let Some(host) = header(request, "host").map(|h| h.to_ascii_lowercase()) else {
            return page(http::StatusCode::BAD_REQUEST, "InvalidRequest", "A Host header is required.");
        };
        let name =
            host.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok()).map_or(host.as_str(), |(h, _)| h);
        let bucket = match self.bucket_of(name).await {
            Ok(Some(bucket)) => bucket,
            Ok(None) => {
                return page(http::StatusCode::NOT_FOUND, "NoSuchBucket", "The specified bucket does not exist");
            }
            Err(e) => return self.unavailable(e, request_id, head),
        };
        let view = match self.gateway.access.view(self.gateway.metadata.as_ref(), &bucket.0, false).await {
            Ok(view) => view,
            Err(GatewayError::Meta(MetaError::NoSuchBucket)) => {
                return page(http::StatusCode::NOT_FOUND, "NoSuchBucket", "The specified bucket does not exist");
            }
            Err(e) => return self.unavailable(e, request_id, head),
        };
        let method = request.method().clone();
        if method == http::Method::OPTIONS {
            return match cors::preflight_answer(request.headers(), view.record.cors.as_ref()) {
                Ok(headers) => {
                    let mut response = response(http::StatusCode::OK, Body::empty());
                    for (name, value) in headers {
                        if let Ok(value) = http::HeaderValue::from_str(&value) {
                            response.headers_mut().insert(name, value);
                        }
                    }
                    response
                }
                Err(e) => {
                    let error = s3s::S3Error::from(e);
                    let status = error.status_code().unwrap_or(http::StatusCode::FORBIDDEN);
                    page(status, error.code().as_str(), error.message().unwrap_or(""))
                }
            };
        }
        let mut response = if method != http::Method::GET && method != http::Method::HEAD {
            let mut response = page(
                http::StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
            );
            response.headers_mut().insert(http::header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
            response
        } else {
            match &view.record.website {
                None => page(
                    http::StatusCode::NOT_FOUND,
                    "NoSuchWebsiteConfiguration",
                    "The specified bucket does not have a website configuration",
                ),
                Some(config) => self.serve_site(request, peer, request_id, &host, &view, config).await,
            }
        };
        cors::decorate(response.headers_mut(), request.headers(), method.as_str(), view.record.cors.as_ref());
        response
    }

    fn unavailable(&self, error: GatewayError, request_id: &str, head: bool) -> HttpResponse {
        tracing::warn!(request_id, error = %error, "website request failed on the server side");
        let status = http::StatusCode::SERVICE_UNAVAILABLE;
        page_response(status, error_page(status, "ServiceUnavailable", "Please retry.", None, request_id, false), head)
    }

    async fn serve_site<B>(
        &self,
        request: &http::Request<B>,
        peer: SocketAddr,
        request_id: &str,
        host: &str,
        view: &BucketView,
        config: &WebsiteConfiguration,
    ) -> HttpResponse {
        let head = request.method() == http::Method::HEAD;
        if let Some(all) = &config.redirect_all {
            let protocol = all.protocol.as_deref().unwrap_or("http");
            let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
            return redirect(http::StatusCode::MOVED_PERMANENTLY, &format!("{protocol}://{}{path}", all.host_name));
        }
        let raw = request.uri().path().trim_start_matches('/');
        let requested = urlencoding::decode(raw).map_or_else(|_| raw.to_string(), |k| k.into_owned());
        if let Some(rule) = matching_rule(config, &requested, None) {
            let (status, location) = rule_location(rule, &requested, host);
            return redirect(status, &location);
        }
        let suffix = config.index_suffix.as_deref().unwrap_or("index.html");
        let key = if requested.is_empty() || requested.ends_with('/') {
            format!("{requested}{suffix}")
        } else {
            requested.clone()
        };
        let context = crate::s3::access::request_context(request.headers(), request.uri(), Some(peer), "s3:GetObject");
        let failure = match self.fetch(view, &key, &context, request_id).await {
            Fetched::Found(record) => return self.serve_object(request, view, &record, http::StatusCode::OK, true),
            Fetched::Failed(failure @ Failure::Status { .. }) if !requested.is_empty() && !requested.ends_with('/') => {
                // `dir` without its slash: AWS answers 302 to `dir/` when `dir/<index>` exists
                // (and may be read).
                let index = format!("{requested}/{suffix}");
                match self.fetch(view, &index, &context, request_id).await {
                    Fetched::Found(_) => {
                        return redirect(http::StatusCode::FOUND, &format!("/{}/", encode_key(&requested)));
                    }
                    _ => failure,
                }
            }
            Fetched::Failed(failure) => failure,
        };
        let (status, code, message) = match failure {
            Failure::Status { status, code, message } => (status, code, message),
            Failure::Unavailable => {
                return self.unavailable(GatewayError::Internal("metadata".into()), request_id, head);
            }
        };
        if let Some(rule) = matching_rule(config, &requested, Some(status)) {
            let (status, location) = rule_location(rule, &requested, host);
            return redirect(status, &location);
        }
        let Some(error_key) = &config.error_key else {
            return page_response(status, error_page(status, code, message, Some(&key), request_id, false), head);
        };
        match self.fetch(view, error_key, &context, request_id).await {
            Fetched::Found(document) => self.serve_object(request, view, &document, status, false),
            Fetched::Failed(_) => {
                page_response(status, error_page(status, code, message, Some(&key), request_id, true), head)
            }
        }
    }

    /// Reads `key` for an anonymous reader: Found only if it exists and anyone may read it.
    async fn fetch(&self, view: &BucketView, key: &str, context: &RequestContext, request_id: &str) -> Fetched {
        let anyone = Requester::Anonymous;
        let deferred = view.depends_on_object();
        let ask = |acl| Ask { action: "s3:GetObject", key: Some(key), object_acl: acl };
        if !deferred && self.gateway.authorize(&anyone, view, ask(None), context, request_id).is_err() {
            return Fetched::Failed(ACCESS_DENIED);
        }
        let bucket = &view.record;
        let read = self
            .gateway
            .metadata
            .object_version(bucket.reference(), ObjectKey::new(key), None, self.gateway.read_stripes)
            .await;
        let missing = |gateway: &Gateway| {
            // As on AWS: a missing key is 404 only where anyone may list the bucket.
            let may_list = gateway.decide(&anyone, view, "s3:ListBucket", None, None, context).allowed;
            Fetched::Failed(if may_list { NO_SUCH_KEY } else { ACCESS_DENIED })
        };
        match read {
            Ok((record, _)) => {
                if deferred {
                    let mut context = context.clone();
                    for (name, value) in &record.tags {
                        context.values.insert(format!("s3:ExistingObjectTag/{name}"), vec![value.clone()]);
                    }
                    if self.gateway.authorize(&anyone, view, ask(record.acl.as_ref()), &context, request_id).is_err() {
                        return Fetched::Failed(ACCESS_DENIED);
                    }
                }
                if record.delete_marker { missing(&self.gateway) } else { Fetched::Found(Box::new(record)) }
            }
            Err(MetaError::NoSuchKey | MetaError::NoSuchVersion) => {
                if deferred && self.gateway.authorize(&anyone, view, ask(None), context, request_id).is_err() {
                    return Fetched::Failed(ACCESS_DENIED);
                }
                missing(&self.gateway)
            }
            Err(MetaError::NoSuchBucket) => {
                // The bucket changed since its view was cached: read it afresh next time.
                self.gateway.access.forget(&bucket.name);
                Fetched::Failed(NO_SUCH_BUCKET)
            }
            Err(e) => {
                tracing::warn!(request_id, error = %e, key, "website read failed");
                Fetched::Failed(Failure::Unavailable)
            }
        }
    }

    /// An object as a website answer: its redirect, or its bytes with its stored headers.
    /// `conditional`: Range and conditional headers apply (not to an error document).
    fn serve_object<B>(
        &self,
        request: &http::Request<B>,
        view: &BucketView,
        record: &ObjectRecord,
        status: http::StatusCode,
        conditional: bool,
    ) -> HttpResponse {
        let head = request.method() == http::Method::HEAD;
        if let Some(location) = &record.headers.website_redirect_location {
            return redirect(http::StatusCode::MOVED_PERMANENTLY, location);
        }
        let mut selected = None;
        if conditional {
            let etag = |name| header(request, name).and_then(|v| ETagCondition::parse_http_header(v.as_bytes()).ok());
            let date = |name| header(request, name).and_then(|v| Timestamp::parse(TimestampFormat::HttpDate, v).ok());
            let checked = check_read_conditions(
                record,
                etag("if-match").as_ref(),
                date("if-unmodified-since").as_ref(),
                etag("if-none-match").as_ref(),
                date("if-modified-since").as_ref(),
            );
            if let Err(e) = checked {
                let status = match e {
                    GatewayError::NotModified => http::StatusCode::NOT_MODIFIED,
                    _ => http::StatusCode::PRECONDITION_FAILED,
                };
                let mut response = response(status, Body::empty());
                self.validators(response.headers_mut(), record);
                return response;
            }
            if let Some(range) = header(request, "range") {
                match Range::parse(range).ok().map(|r| satisfiable(&r, record.size)) {
                    Some(Ok(r)) => selected = r,
                    Some(Err(())) => {
                        let mut response = response(http::StatusCode::RANGE_NOT_SATISFIABLE, Body::empty());
                        if let Ok(v) = http::HeaderValue::from_str(&format!("bytes */{}", record.size)) {
                            response.headers_mut().insert(http::header::CONTENT_RANGE, v);
                        }
                        return response;
                    }
                    // An unparsable Range is ignored, as HTTP says.
                    None => {}
                }
            }
        }
        let range = selected.clone().unwrap_or(0..record.size);
        let body = if head {
            Body::empty()
        } else {
            let (parts, metadata, owner) =
                (record.parts.clone(), self.gateway.metadata.clone(), view.record.tenant.clone());
            let stream = self.gateway.data.read_range(parts, range.clone(), metadata, owner);
            Body::from(StreamingBlob::wrap(stream))
        };
        let status = if selected.is_some() { http::StatusCode::PARTIAL_CONTENT } else { status };
        let mut response = response(status, body);
        let headers = response.headers_mut();
        self.validators(headers, record);
        headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(range.end - range.start));
        headers.insert(http::header::ACCEPT_RANGES, http::HeaderValue::from_static("bytes"));
        if let Some(r) = &selected
            && let Ok(v) = http::HeaderValue::from_str(&content_range(r, record.size))
        {
            headers.insert(http::header::CONTENT_RANGE, v);
        }
        let stored = &record.headers;
        let content_type = stored.content_type.as_deref().unwrap_or("binary/octet-stream");
        for (name, value) in [
            (http::header::CONTENT_TYPE, Some(content_type)),
            (http::header::CONTENT_ENCODING, stored.content_encoding.as_deref()),
            (http::header::CACHE_CONTROL, stored.cache_control.as_deref()),
            (http::header::CONTENT_DISPOSITION, stored.content_disposition.as_deref()),
            (http::header::CONTENT_LANGUAGE, stored.content_language.as_deref()),
            (http::header::EXPIRES, stored.expires.as_deref()),
        ] {
            if let Some(value) = value.and_then(|v| http::HeaderValue::from_str(v).ok()) {
                headers.insert(name, value);
            }
        }
        for (name, value) in &stored.user_metadata {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                headers.insert(name, value);
            }
        }
        response
    }

    fn validators(&self, headers: &mut http::HeaderMap, record: &ObjectRecord) {
        if let Ok(value) = http::HeaderValue::from_str(&format!("\"{}\"", record.etag)) {
            headers.insert(http::header::ETAG, value);
        }
        let mut date = Vec::new();
        if super::super::timestamp(record.last_modified_ms).format(TimestampFormat::HttpDate, &mut date).is_ok()
            && let Ok(value) = http::HeaderValue::from_bytes(&date)
        {
            headers.insert(http::header::LAST_MODIFIED, value);
        }
    }
}

/// Serves the website endpoint on `listener` until it fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
    domains: Vec<String>,
) -> std::io::Result<()> {
    let stall_ms = gateway.data.tuning.answer_stall_max_ms;
    let endpoint = Arc::new(WebsiteEndpoint::new(gateway, domains));
    super::super::serve_http(listener, stall_ms, move |request, peer| {
        let endpoint = endpoint.clone();
        async move { Ok(endpoint.call(request, peer).await) }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_meta::RoutingRedirect;

    fn rule(prefix: Option<&str>, code: Option<&str>, redirect: RoutingRedirect) -> RoutingRule {
        RoutingRule {
            key_prefix_equals: prefix.map(str::to_string),
            http_error_code_returned_equals: code.map(str::to_string),
            redirect,
        }
    }

    #[test]
    fn routing_rules_rewrite_keys_hosts_and_codes_as_aws_documents() {
        let prefix = rule(
            Some("docs/"),
            None,
            RoutingRedirect { replace_key_prefix_with: Some("documents/".into()), ..Default::default() },
        );
        assert_eq!(
            rule_location(&prefix, "docs/a b.html", "site.example:8080"),
            (http::StatusCode::MOVED_PERMANENTLY, "http://site.example:8080/documents/a%20b.html".into())
        );
        let whole = rule(
            None,
            Some("404"),
            RoutingRedirect {
                host_name: Some("other.example".into()),
                protocol: Some("https".into()),
                replace_key_with: Some("report-404".into()),
                http_redirect_code: Some("302".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            rule_location(&whole, "missing", "site.example"),
            (http::StatusCode::FOUND, "https://other.example/report-404".into())
        );
        let config = WebsiteConfiguration {
            index_suffix: Some("index.html".into()),
            routing_rules: vec![whole.clone(), prefix.clone()],
            ..Default::default()
        };
        // Before the read only rules without an error code apply; after it, the error code must match.
        assert_eq!(matching_rule(&config, "docs/x", None), Some(&prefix));
        assert_eq!(matching_rule(&config, "other", None), None);
        assert_eq!(matching_rule(&config, "other", Some(http::StatusCode::NOT_FOUND)), Some(&whole));
        assert_eq!(matching_rule(&config, "other", Some(http::StatusCode::FORBIDDEN)), None);
    }

    #[test]
    fn error_pages_are_html_that_names_the_error_and_escapes_the_key() {
        let page = error_page(
            http::StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
            Some("<x>"),
            "R1",
            true,
        );
        assert!(page.contains("<title>404 Not Found</title>"));
        assert!(page.contains("<li>Code: NoSuchKey</li>"));
        assert!(page.contains("<li>Key: &lt;x&gt;</li>"));
        assert!(page.contains("Custom Error Document"));
    }
}
