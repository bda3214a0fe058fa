//! Cross-origin resource sharing: Put/Get/DeleteBucketCors, the unauthenticated OPTIONS
//! preflight, and the `Access-Control-*` headers of actual requests that carry an `Origin`.
//!
//! s3s has no OPTIONS route, so [`CorsLayer`] sits in front of it in the hyper service: it
//! answers every OPTIONS itself from the bucket's stored configuration, and for other requests
//! with an `Origin` it reads the configuration while s3s handles the request, then adds the
//! headers of the first matching rule. Nothing is cached: each lookup is a linearizable metadata
//! read, so a PutBucketCors through any gateway applies to the next request everywhere.

use super::{Hosts, IgnifugeS3};
use crate::Gateway;
use crate::error::{GatewayError, GatewayResult};
use ignifuge_meta::{BucketRecord, Command, CorsConfiguration, CorsRule, MetaError};
use ignifuge_types::BucketName;
use s3s::dto::*;
use s3s::{HttpError, HttpResponse, S3Request, S3Response, S3Result};
use std::sync::Arc;

/// AWS's limits on a CORS configuration.
pub const CORS_RULES_MAX: usize = 100;
pub const CORS_RULE_ID_MAX_CHARS: usize = 255;
/// Largest PutBucketCors body accepted; it also bounds the configuration kept in the bucket record.
pub const CORS_CONFIGURATION_MAX_BYTES: u64 = 64 * 1024;
/// The methods a rule may allow, as AWS spells them (the comparison is case-sensitive).
pub const CORS_METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

const NOT_ENABLED: &str = "CORSResponse: CORS is not enabled for this bucket.";
const BUCKET_NOT_FOUND: &str = "CORSResponse: Bucket not found";
// AWS's message, spelling included.
const NOT_ALLOWED: &str = "CORSResponse: This CORS request is not allowed. This is usually because the evalution of \
                           Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers \
                           are not whitelisted by the resource's CORS spec.";
const NO_ORIGIN: &str = "Insufficient information. Origin request header needed.";
/// What every CORS answer varies on, as AWS sends it.
const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";

fn wildcards(value: &str) -> usize {
    value.matches('*').count()
}

/// Checks a configuration against AWS's rules, in AWS's order: per rule, methods, then
/// origins, then allowed headers, then exposed headers.
fn validate(configuration: &CorsConfiguration) -> GatewayResult<()> {
    if configuration.rules.len() > CORS_RULES_MAX {
        return Err(GatewayError::MalformedXml);
    }
    for rule in &configuration.rules {
        if rule.id.as_ref().is_some_and(|id| id.chars().count() > CORS_RULE_ID_MAX_CHARS)
            || rule.max_age_seconds.is_some_and(|seconds| seconds < 0)
        {
            return Err(GatewayError::MalformedXml);
        }
    }
    for rule in &configuration.rules {
        if let Some(method) = rule.allowed_methods.iter().find(|m| !CORS_METHODS.contains(&m.as_str())) {
            return Err(GatewayError::InvalidRequest(format!(
                "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
            )));
        }
        if let Some(origin) = rule.allowed_origins.iter().find(|o| wildcards(o) > 1) {
            return Err(GatewayError::InvalidRequest(format!(
                "AllowedOrigin \"{origin}\" can not have more than one wildcard."
            )));
        }
        if let Some(header) = rule.allowed_headers.iter().find(|h| wildcards(h) > 1) {
            return Err(GatewayError::InvalidRequest(format!(
                "AllowedHeader \"{header}\" can not have more than one wildcard."
            )));
        }
        if let Some(header) = rule.expose_headers.iter().find(|h| h.contains('*')) {
            return Err(GatewayError::InvalidRequest(format!(
                "ExposeHeader \"{header}\" contains wildcard. We currently do not support wildcard for ExposeHeader."
            )));
        }
    }
    Ok(())
}

fn from_dto(configuration: CORSConfiguration) -> CorsConfiguration {
    let rules = configuration
        .cors_rules
        .into_iter()
        .map(|rule| CorsRule {
            id: rule.id,
            allowed_origins: rule.allowed_origins,
            allowed_methods: rule.allowed_methods,
            allowed_headers: rule.allowed_headers.unwrap_or_default(),
            expose_headers: rule.expose_headers.unwrap_or_default(),
            max_age_seconds: rule.max_age_seconds,
        })
        .collect();
    CorsConfiguration { rules }
}

fn to_dto(configuration: CorsConfiguration) -> CORSRules {
    let list = |values: Vec<String>| (!values.is_empty()).then_some(values);
    configuration
        .rules
        .into_iter()
        .map(|rule| CORSRule {
            id: rule.id,
            allowed_origins: rule.allowed_origins,
            allowed_methods: rule.allowed_methods,
            allowed_headers: list(rule.allowed_headers),
            expose_headers: list(rule.expose_headers),
            max_age_seconds: rule.max_age_seconds,
        })
        .collect()
}

async fn set_cors(s3: &IgnifugeS3, bucket: &BucketRecord, cors: Option<CorsConfiguration>) -> S3Result<()> {
    let command = Command::SetBucketCors { bucket: bucket.reference(), cors };
    let outcome = s3.gateway.metadata.apply(command).await;
    // The website endpoint applies the rules from the cached view.
    s3.changed(bucket);
    outcome.map_err(GatewayError::Meta)?;
    Ok(())
}

pub async fn put_bucket_cors(
    s3: &IgnifugeS3,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    // The body's size was checked on the bytes read, before s3s parsed it (`bodies::bound`).
    let bucket = IgnifugeS3::bucket(&req)?;
    let configuration = from_dto(req.input.cors_configuration);
    validate(&configuration)?;
    set_cors(s3, &bucket, Some(configuration)).await?;
    Ok(S3Response::new(PutBucketCorsOutput {}))
}

pub async fn get_bucket_cors(
    _s3: &IgnifugeS3,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    match bucket.cors {
        Some(configuration) => Ok(S3Response::new(GetBucketCorsOutput { cors_rules: Some(to_dto(configuration)) })),
        None => Err(s3s::s3_error!(NoSuchCORSConfiguration, "The CORS configuration does not exist")),
    }
}

pub async fn delete_bucket_cors(
    s3: &IgnifugeS3,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    set_cors(s3, &bucket, None).await?;
    Ok(S3Response::new(DeleteBucketCorsOutput {}))
}

// ------------------------------------------------------------------------------------ matching

/// `pattern` with at most one `*` (any run of characters, possibly empty) against `text`.
fn wildcard_matches(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let equal = |a: &str, b: &str| if ignore_case { a.eq_ignore_ascii_case(b) } else { a == b };
    match pattern.split_once('*') {
        None => equal(pattern, text),
        Some((prefix, suffix)) => {
            text.len() >= prefix.len() + suffix.len()
                && text.get(..prefix.len()).is_some_and(|start| equal(start, prefix))
                && text.get(text.len() - suffix.len()..).is_some_and(|end| equal(end, suffix))
        }
    }
}

/// The names in an `Access-Control-Request-Headers` value, trimmed and lower-cased.
fn requested_headers(value: &str) -> Vec<String> {
    value.split(',').map(|name| name.trim().to_ascii_lowercase()).filter(|name| !name.is_empty()).collect()
}

/// What a matching rule answers.
#[derive(Debug, PartialEq, Eq)]
struct Allowed<'a> {
    rule: &'a CorsRule,
    /// `*` when the rule allows every origin, else the request's origin.
    allow_origin: String,
}

/// The first rule that allows `origin` to use `method` with every header in `headers`
/// (origins and methods case-sensitive, header names not).
fn first_match<'a>(
    configuration: &'a CorsConfiguration,
    origin: &str,
    method: &str,
    headers: &[String],
) -> Option<Allowed<'a>> {
    let rule = configuration.rules.iter().find(|rule| {
        rule.allowed_methods.iter().any(|m| m == method)
            && rule.allowed_origins.iter().any(|pattern| wildcard_matches(pattern, origin, false))
            && headers
                .iter()
                .all(|header| rule.allowed_headers.iter().any(|pattern| wildcard_matches(pattern, header, true)))
    })?;
    let any_origin = rule.allowed_origins.iter().any(|o| o == "*");
    Some(Allowed { rule, allow_origin: if any_origin { "*".into() } else { origin.into() } })
}

/// The response headers of a match, in AWS's order. `requested` is the preflight's
/// Access-Control-Request-Headers (none on actual requests).
fn response_headers(allowed: &Allowed<'_>, requested: &[String]) -> Vec<(&'static str, String)> {
    let rule = allowed.rule;
    let mut out = vec![
        ("access-control-allow-origin", allowed.allow_origin.clone()),
        ("access-control-allow-methods", rule.allowed_methods.join(", ")),
    ];
    if !requested.is_empty() {
        out.push(("access-control-allow-headers", requested.join(", ")));
    }
    if !rule.expose_headers.is_empty() {
        out.push(("access-control-expose-headers", rule.expose_headers.join(", ")));
    }
    if let Some(seconds) = rule.max_age_seconds {
        out.push(("access-control-max-age", seconds.to_string()));
    }
    if allowed.allow_origin != "*" {
        out.push(("access-control-allow-credentials", "true".into()));
    }
    out.push(("vary", VARY.into()));
    out
}

fn set_headers(target: &mut http::HeaderMap, headers: Vec<(&'static str, String)>) {
    for (name, value) in headers {
        // A configured value that cannot be a header value (a control character) is left out.
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            target.insert(name, value);
        }
    }
}

// ------------------------------------------------------------------------------------ the layer

/// Answers preflights and decorates actual cross-origin requests, in front of s3s.
#[derive(Clone)]
pub(super) struct CorsLayer {
    gateway: Arc<Gateway>,
    hosts: Hosts,
}

/// A header map holding only an Origin (the request itself has gone to s3s).
fn origin_only(origin: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_str(origin) {
        headers.insert(http::header::ORIGIN, value);
    }
    headers
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl CorsLayer {
    pub(super) fn new(gateway: Arc<Gateway>, hosts: Hosts) -> Self {
        Self { gateway, hosts }
    }

    /// The bucket a request addresses, virtual-hosted style first, then path style, as s3s
    /// routes it.
    fn bucket_of<B>(&self, request: &http::Request<B>) -> Option<String> {
        let host = header(request.headers(), "host").or_else(|| request.uri().authority().map(|a| a.as_str()));
        if let Some(bucket) = host.and_then(|h| self.hosts.bucket_of(h)) {
            return Some(bucket);
        }
        let first = request.uri().path().trim_start_matches('/').split('/').next().unwrap_or_default();
        (!first.is_empty()).then(|| first.to_string())
    }

    /// The bucket's CORS configuration; `Ok(None)` when it has none.
    async fn configuration(&self, bucket: &str) -> GatewayResult<Option<CorsConfiguration>> {
        match self.gateway.metadata.bucket(BucketName::new(bucket)).await {
            Ok(record) => Ok(record.cors),
            Err(MetaError::NoSuchBucket) => Err(GatewayError::CorsForbidden(BUCKET_NOT_FOUND.into())),
            Err(e) => Err(GatewayError::Meta(e)),
        }
    }

    /// Serves one request: OPTIONS here, everything else by `service` (s3s, or PostObject), with CORS headers
    /// added when the request has an Origin that a rule of the bucket allows for its method.
    pub(super) async fn call<F, Fut>(
        &self,
        request: http::Request<s3s::Body>,
        service: F,
    ) -> Result<HttpResponse, HttpError>
    where
        F: FnOnce(http::Request<s3s::Body>) -> Fut,
        Fut: std::future::Future<Output = Result<HttpResponse, HttpError>>,
    {
        if request.method() == http::Method::OPTIONS {
            let response = match self.preflight(&request).await {
                Ok(headers) => {
                    let mut response = HttpResponse::new(s3s::Body::empty());
                    set_headers(response.headers_mut(), headers);
                    response
                }
                Err(e) => s3s::S3Error::from(e).to_http_response().map_err(|e| HttpError::new(Box::new(e)))?,
            };
            return Ok(response);
        }
        let origin = header(request.headers(), "origin").filter(|o| !o.is_empty()).map(str::to_string);
        let (Some(origin), Some(bucket)) = (origin, self.bucket_of(&request)) else {
            return service(request).await;
        };
        let method = request.method().as_str().to_string();
        let (response, configuration) = tokio::join!(service(request), self.configuration(&bucket));
        let mut response = response?;
        if let Ok(configuration) = configuration {
            decorate(response.headers_mut(), &origin_only(&origin), &method, configuration.as_ref());
        }
        Ok(response)
    }

    /// The headers of an allowed preflight, or the error AWS answers.
    async fn preflight<B>(&self, request: &http::Request<B>) -> GatewayResult<Vec<(&'static str, String)>> {
        check_preflight(request.headers())?;
        let bucket = self.bucket_of(request).ok_or(GatewayError::CorsForbidden(BUCKET_NOT_FOUND.into()))?;
        let configuration = self.configuration(&bucket).await?;
        preflight_answer(request.headers(), configuration.as_ref())
    }
}

/// The preflight's own errors (no Origin, a method CORS does not know), before any bucket is
/// looked at.
fn check_preflight(headers: &http::HeaderMap) -> GatewayResult<(&str, &str)> {
    let origin =
        header(headers, "origin").filter(|o| !o.is_empty()).ok_or(GatewayError::BadRequest(NO_ORIGIN.into()))?;
    match header(headers, "access-control-request-method") {
        Some(method) if CORS_METHODS.contains(&method) => Ok((origin, method)),
        other => {
            let shown = other.unwrap_or("null");
            Err(GatewayError::BadRequest(format!("Invalid Access-Control-Request-Method: {shown}")))
        }
    }
}

/// The answer to a preflight for a bucket with `configuration` (None: CORS not enabled).
pub(super) fn preflight_answer(
    headers: &http::HeaderMap,
    configuration: Option<&CorsConfiguration>,
) -> GatewayResult<Vec<(&'static str, String)>> {
    let (origin, method) = check_preflight(headers)?;
    let requested = header(headers, "access-control-request-headers").map(requested_headers).unwrap_or_default();
    let configuration = configuration.ok_or(GatewayError::CorsForbidden(NOT_ENABLED.into()))?;
    let allowed = first_match(configuration, origin, method, &requested)
        .ok_or(GatewayError::CorsForbidden(NOT_ALLOWED.into()))?;
    Ok(response_headers(&allowed, &requested))
}

/// Adds the CORS headers an actual request with an Origin earns from `configuration`.
pub(super) fn decorate(
    response: &mut http::HeaderMap,
    request: &http::HeaderMap,
    method: &str,
    configuration: Option<&CorsConfiguration>,
) {
    let origin = header(request, "origin").filter(|o| !o.is_empty());
    if let (Some(origin), Some(configuration)) = (origin, configuration)
        && let Some(allowed) = first_match(configuration, origin, method, &[])
    {
        set_headers(response, response_headers(&allowed, &[]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        let strings = |values: &[&str]| values.iter().map(|v| v.to_string()).collect();
        CorsRule {
            id: None,
            allowed_origins: strings(origins),
            allowed_methods: strings(methods),
            allowed_headers: strings(headers),
            expose_headers: Vec::new(),
            max_age_seconds: None,
        }
    }

    fn allows(rule: CorsRule, origin: &str, method: &str, headers: &[&str]) -> bool {
        let configuration = CorsConfiguration { rules: vec![rule] };
        let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
        first_match(&configuration, origin, method, &headers).is_some()
    }

    #[test]
    fn origins_match_exactly_or_around_one_wildcard_and_keep_their_case() {
        let cases = [
            ("*", "https://example.com", true),
            ("https://example.com", "https://example.com", true),
            ("https://example.com", "http://example.com", false),
            ("https://example.com", "https://example.com:8443", false),
            ("https://example.com", "https://EXAMPLE.com", false),
            ("http://*.example.com", "http://www.example.com", true),
            ("http://*.example.com", "http://a.b.example.com", true),
            ("http://*.example.com", "http://example.com", false),
            ("http://*.example.com", "https://www.example.com", false),
            ("http://*.example.com", "http://www.example.com.evil", false),
            ("https://example.com:*", "https://example.com:8443", true),
            ("https://example.com:*", "https://example.com", false),
            ("http*://example.com", "https://example.com", true),
            ("a*a", "a", false),
            ("a*a", "aa", true),
        ];
        for (pattern, origin, expected) in cases {
            assert_eq!(allows(rule(&[pattern], &["GET"], &[]), origin, "GET", &[]), expected, "{pattern} vs {origin}");
        }
    }

    #[test]
    fn methods_are_compared_exactly() {
        let get_put = rule(&["*"], &["GET", "PUT"], &[]);
        assert!(allows(get_put.clone(), "https://a.test", "PUT", &[]));
        assert!(!allows(get_put.clone(), "https://a.test", "DELETE", &[]));
        assert!(!allows(get_put.clone(), "https://a.test", "HEAD", &[]), "HEAD is not implied by GET");
        assert!(!allows(get_put, "https://a.test", "get", &[]));
    }

    #[test]
    fn every_requested_header_must_match_an_allowed_header_in_any_case() {
        let amz = rule(&["*"], &["PUT"], &["Content-Type", "x-amz-*"]);
        assert!(allows(amz.clone(), "https://a.test", "PUT", &[]));
        assert!(allows(amz.clone(), "https://a.test", "PUT", &["content-type"]));
        assert!(allows(amz.clone(), "https://a.test", "PUT", &["x-amz-date", "x-amz-content-sha256", "content-type"]));
        assert!(allows(amz.clone(), "https://a.test", "PUT", &["X-AMZ-DATE"]));
        assert!(!allows(amz.clone(), "https://a.test", "PUT", &["x-amz-date", "authorization"]));
        assert!(!allows(amz.clone(), "https://a.test", "PUT", &["x-amzn-trace-id"]));
        assert!(!allows(rule(&["*"], &["PUT"], &[]), "https://a.test", "PUT", &["content-type"]), "no AllowedHeader");
        assert!(allows(rule(&["*"], &["PUT"], &["*"]), "https://a.test", "PUT", &["authorization", "x-anything"]));
        assert!(allows(rule(&["*"], &["PUT"], &["*-type"]), "https://a.test", "PUT", &["content-type"]));
        assert_eq!(requested_headers(" Content-Type,X-Amz-Date , ,"), vec!["content-type", "x-amz-date"]);
    }

    #[test]
    fn the_first_matching_rule_answers_and_a_literal_star_answers_star() {
        let mut exact = rule(&["https://app.test"], &["GET", "PUT"], &[]);
        exact.expose_headers = vec!["ETag".into(), "x-amz-request-id".into()];
        exact.max_age_seconds = Some(3000);
        let public = rule(&["*"], &["GET", "HEAD"], &[]);
        let configuration = CorsConfiguration { rules: vec![exact, public] };

        let allowed = first_match(&configuration, "https://app.test", "PUT", &[]).expect("exact rule");
        let requested = vec!["content-type".to_string()];
        assert_eq!(
            response_headers(&allowed, &requested),
            vec![
                ("access-control-allow-origin", "https://app.test".to_string()),
                ("access-control-allow-methods", "GET, PUT".to_string()),
                ("access-control-allow-headers", "content-type".to_string()),
                ("access-control-expose-headers", "ETag, x-amz-request-id".to_string()),
                ("access-control-max-age", "3000".to_string()),
                ("access-control-allow-credentials", "true".to_string()),
                ("vary", VARY.to_string()),
            ]
        );
        let allowed = first_match(&configuration, "https://app.test", "HEAD", &[]).expect("public rule");
        assert_eq!(
            response_headers(&allowed, &[]),
            vec![
                ("access-control-allow-origin", "*".to_string()),
                ("access-control-allow-methods", "GET, HEAD".to_string()),
                ("vary", VARY.to_string()),
            ]
        );
        assert!(first_match(&configuration, "https://other.test", "PUT", &[]).is_none());
    }

    #[test]
    fn configurations_are_checked_as_aws_does() {
        let ok = CorsConfiguration { rules: vec![rule(&["http://*.example.com"], &["GET"], &["x-amz-*"])] };
        assert!(validate(&ok).is_ok());
        let invalid = |rule: CorsRule| match validate(&CorsConfiguration { rules: vec![rule] }) {
            Err(GatewayError::InvalidRequest(message)) => message,
            other => panic!("expected InvalidRequest, got {other:?}"),
        };
        assert_eq!(
            invalid(rule(&["*"], &["GET", "PATCH"], &[])),
            "Found unsupported HTTP method in CORS config. Unsupported method is PATCH"
        );
        assert_eq!(
            invalid(rule(&["http://*.*"], &["GET"], &[])),
            "AllowedOrigin \"http://*.*\" can not have more than one wildcard."
        );
        assert_eq!(
            invalid(rule(&["*"], &["GET"], &["x-*-*"])),
            "AllowedHeader \"x-*-*\" can not have more than one wildcard."
        );
        let mut exposing = rule(&["*"], &["GET"], &[]);
        exposing.expose_headers = vec!["x-amz-*".into()];
        assert!(invalid(exposing).starts_with("ExposeHeader \"x-amz-*\" contains wildcard."));
        let many = CorsConfiguration { rules: vec![rule(&["*"], &["GET"], &[]); CORS_RULES_MAX + 1] };
        assert!(matches!(validate(&many), Err(GatewayError::MalformedXml)));
        let mut negative = rule(&["*"], &["GET"], &[]);
        negative.max_age_seconds = Some(-1);
        assert!(matches!(validate(&CorsConfiguration { rules: vec![negative] }), Err(GatewayError::MalformedXml)));
    }
}
