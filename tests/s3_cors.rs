//! CORS end to end: Put/Get/DeleteBucketCors with the SDK, AWS's validation errors, unsigned
//! OPTIONS preflights as a browser sends them, and the Access-Control-* headers of actual
//! requests with an Origin, in path style and virtual-hosted style.

mod common;

use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use common::*;
use std::time::SystemTime;

const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";
const NOT_ALLOWED: &str = "CORSResponse: This CORS request is not allowed.";

fn cors_rule(
    id: Option<&str>,
    origins: &[&str],
    methods: &[&str],
    headers: &[&str],
    expose: &[&str],
    max_age: Option<i32>,
) -> CorsRule {
    let strings = |values: &[&str]| Some(values.iter().map(|v| v.to_string()).collect::<Vec<_>>());
    CorsRule::builder()
        .set_id(id.map(str::to_string))
        .set_allowed_origins(strings(origins))
        .set_allowed_methods(strings(methods))
        .set_allowed_headers(if headers.is_empty() { None } else { strings(headers) })
        .set_expose_headers(if expose.is_empty() { None } else { strings(expose) })
        .set_max_age_seconds(max_age)
        .build()
        .expect("CORS rule")
}

/// A web app's rule first, then a public read-only rule.
fn site_rules() -> Vec<CorsRule> {
    vec![
        cors_rule(
            Some("app"),
            &["http://*.example.com"],
            &["GET", "PUT"],
            &["Content-Type", "x-amz-*"],
            &["ETag", "x-amz-request-id"],
            Some(3000),
        ),
        cors_rule(None, &["*"], &["GET"], &[], &[], None),
    ]
}

async fn put_cors(s3: &aws_sdk_s3::Client, bucket: &str, rules: Vec<CorsRule>) {
    let configuration = CorsConfiguration::builder().set_cors_rules(Some(rules)).build().expect("configuration");
    ok(s3.put_bucket_cors().bucket(bucket).cors_configuration(configuration).send().await, "PutBucketCors");
}

/// An unsigned OPTIONS to the dc1 gateway, with `Host` when given (virtual-hosted style).
async fn preflight(cluster: &Cluster, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    raw_request(&cluster.gateway_addr(), "OPTIONS", path, &headers, b"").await.expect("OPTIONS")
}

/// A header-signed request to `url` sent to the dc1 gateway (the URL's host goes in `Host`).
async fn signed(cluster: &Cluster, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> RawResponse {
    let signed = cluster.sign(&cluster.keys(), SystemTime::now(), method, url, headers, Payload::Bytes(body));
    raw_request(&cluster.gateway_addr(), method, path_and_query_of(url), &signed, body).await.expect(method)
}

/// What the "app" rule answers to http://app.example.com; Access-Control-Allow-Headers (the
/// requested headers) only on preflights.
fn app_rule_headers(allow_headers: Option<&'static str>) -> [(&'static str, Option<&'static str>); 7] {
    [
        ("access-control-allow-origin", Some("http://app.example.com")),
        ("access-control-allow-methods", Some("GET, PUT")),
        ("access-control-allow-headers", allow_headers),
        ("access-control-expose-headers", Some("ETag, x-amz-request-id")),
        ("access-control-max-age", Some("3000")),
        ("access-control-allow-credentials", Some("true")),
        ("vary", Some(VARY)),
    ]
}

#[track_caller]
fn assert_headers(response: &RawResponse, expected: &[(&str, Option<&str>)], context: &str) {
    for (name, value) in expected {
        assert_eq!(response.header(name), *value, "{context} {name}: {:?}", response.headers);
    }
}

#[track_caller]
fn assert_error(response: &RawResponse, status: u16, code: &str, message_start: &str, context: &str) {
    assert_eq!(response.status, status, "{context}: {}", response.summary());
    assert_eq!(response.error_code().as_deref(), Some(code), "{context}: {}", response.summary());
    let message = xml_value(&response.body_text(), "Message").unwrap_or_default();
    assert!(message.starts_with(message_start), "{context}: message {message:?}");
    assert!(response.header("access-control-allow-origin").is_none(), "{context}: no CORS header on a refusal");
}

#[tokio::test(flavor = "multi_thread")]
async fn bucket_cors_is_put_read_validated_and_deleted() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "cors-config").await;

    let missing = s3.get_bucket_cors().bucket("cors-config").send().await;
    assert_s3_error(missing, 404, &["NoSuchCORSConfiguration"], "GetBucketCors before any PutBucketCors");

    put_cors(&s3, "cors-config", site_rules()).await;
    let got = ok(s3.get_bucket_cors().bucket("cors-config").send().await, "GetBucketCors");
    assert_eq!(got.cors_rules(), site_rules().as_slice(), "the rules come back as they were put, in order");

    // PutBucketCors replaces the whole configuration.
    put_cors(&s3, "cors-config", vec![cors_rule(None, &["https://one.test"], &["HEAD"], &[], &[], Some(0))]).await;
    let got = ok(s3.get_bucket_cors().bucket("cors-config").send().await, "GetBucketCors after a replace");
    assert_eq!(got.cors_rules().len(), 1);
    assert_eq!(got.cors_rules()[0].allowed_methods(), ["HEAD"]);
    assert_eq!(got.cors_rules()[0].max_age_seconds(), Some(0));

    // AWS's checks: InvalidRequest for values, MalformedXML for the document's shape.
    let invalid = [
        (cors_rule(None, &["*"], &["GET", "PATCH"], &[], &[], None), "Found unsupported HTTP method"),
        (
            cors_rule(None, &["http://*.*.example.com"], &["GET"], &[], &[], None),
            "AllowedOrigin \"http://*.*.example.com\" can not",
        ),
        (
            cors_rule(None, &["*"], &["GET"], &["x-*-*"], &[], None),
            "AllowedHeader \"x-*-*\" can not have more than one wildcard.",
        ),
        (cors_rule(None, &["*"], &["GET"], &[], &["x-amz-*"], None), "ExposeHeader \"x-amz-*\" contains wildcard."),
    ];
    for (rule, message) in invalid {
        let configuration = CorsConfiguration::builder().cors_rules(rule).build().expect("configuration");
        let result = s3.put_bucket_cors().bucket("cors-config").cors_configuration(configuration).send().await;
        let info = assert_s3_error(result, 400, &["InvalidRequest"], message);
        // The SDK's description shows the message with its quotes escaped.
        let description = info.description.replace("\\\"", "\"");
        assert!(description.contains(message), "{message}: {description}");
    }
    let url = cluster.url("/cors-config?cors");
    let rule = "<CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>";
    let malformed = [
        ("no rule", "<CORSConfiguration></CORSConfiguration>".to_string()),
        ("not XML", "AllowedOrigin: *".to_string()),
        (
            "a rule without AllowedMethod",
            "<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin></CORSRule></CORSConfiguration>".to_string(),
        ),
        ("101 rules", format!("<CORSConfiguration>{}</CORSConfiguration>", rule.repeat(101))),
        (
            "a negative MaxAgeSeconds",
            "<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>\
             <MaxAgeSeconds>-1</MaxAgeSeconds></CORSRule></CORSConfiguration>"
                .to_string(),
        ),
    ];
    for (what, body) in malformed {
        let response = signed(&cluster, "PUT", &url, &[], body.as_bytes()).await;
        assert_eq!(response.status, 400, "{what}: {}", response.summary());
        assert_eq!(response.error_code().as_deref(), Some("MalformedXML"), "{what}: {}", response.summary());
    }
    let too_big = format!(
        "<CORSConfiguration><CORSRule><AllowedOrigin>{}</AllowedOrigin><AllowedMethod>GET</AllowedMethod>\
         </CORSRule></CORSConfiguration>",
        "a".repeat(64 * 1024)
    );
    let response = signed(&cluster, "PUT", &url, &[], too_big.as_bytes()).await;
    assert_eq!(response.status, 400, "a configuration over 64 KiB: {}", response.summary());
    assert_eq!(response.error_code().as_deref(), Some("MaxMessageLengthExceeded"), "{}", response.summary());
    // The limit holds on the bytes read: the same body, chunked, announces no length at all.
    let headers = [("transfer-encoding", "chunked")];
    let signed_headers =
        cluster.sign(&cluster.keys(), SystemTime::now(), "PUT", &url, &headers, Payload::Bytes(too_big.as_bytes()));
    let mut chunked = format!("{:x}\r\n", too_big.len()).into_bytes();
    chunked.extend_from_slice(too_big.as_bytes());
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let response = raw_request(&cluster.gateway_addr(), "PUT", path_and_query_of(&url), &signed_headers, &chunked)
        .await
        .expect("a chunked PutBucketCors");
    assert_eq!(response.status, 400, "a chunked configuration over 64 KiB: {}", response.summary());
    assert_eq!(response.error_code().as_deref(), Some("MaxMessageLengthExceeded"), "{}", response.summary());
    let got = ok(s3.get_bucket_cors().bucket("cors-config").send().await, "GetBucketCors after refusals");
    assert_eq!(got.cors_rules()[0].allowed_methods(), ["HEAD"], "a refused PutBucketCors changes nothing");

    // Another tenant can neither read, replace nor delete the configuration.
    let other = cluster.create_tenant("cors-other");
    let intruder = cluster.client_for_keys(&other);
    assert_status(
        intruder.get_bucket_cors().bucket("cors-config").send().await,
        403,
        "GetBucketCors by another tenant",
    );
    let configuration = CorsConfiguration::builder().set_cors_rules(Some(site_rules())).build().expect("configuration");
    let put = intruder.put_bucket_cors().bucket("cors-config").cors_configuration(configuration).send().await;
    assert_status(put, 403, "PutBucketCors by another tenant");
    assert_status(intruder.delete_bucket_cors().bucket("cors-config").send().await, 403, "DeleteBucketCors by another");

    let (s3_status, recorder) = cluster.s3_client_with_status();
    ok(s3_status.delete_bucket_cors().bucket("cors-config").send().await, "DeleteBucketCors");
    assert_eq!(recorder.last(), Some(204), "DeleteBucketCors answers 204");
    let gone = s3.get_bucket_cors().bucket("cors-config").send().await;
    assert_s3_error(gone, 404, &["NoSuchCORSConfiguration"], "GetBucketCors after DeleteBucketCors");
    ok(s3.delete_bucket_cors().bucket("cors-config").send().await, "DeleteBucketCors without a configuration");

    // Through another gateway at once: the configuration is in the replicated metadata.
    put_cors(&s3, "cors-config", site_rules()).await;
    let dc3 = cluster.s3_client_at(2);
    let got = ok(dc3.get_bucket_cors().bucket("cors-config").send().await, "GetBucketCors through dc3");
    assert_eq!(got.cors_rules(), site_rules().as_slice());
}

#[tokio::test(flavor = "multi_thread")]
async fn preflights_and_actual_requests_follow_the_first_matching_rule() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "cors-site").await;
    create_bucket(&s3, "cors-none").await;
    put_object(&s3, "cors-site", "page.html", b"<p>hello</p>").await;
    put_cors(&s3, "cors-site", site_rules()).await;
    let port = cluster.base_port;
    let vhost = format!("cors-site.localhost:{port}");

    // Allowed, path style and virtual-hosted style: the first rule, with the requested headers.
    let app_put = [
        ("Origin", "http://app.example.com"),
        ("Access-Control-Request-Method", "PUT"),
        ("Access-Control-Request-Headers", "Content-Type, X-Amz-Date,x-amz-content-sha256"),
    ];
    let path_style = preflight(&cluster, "/cors-site/upload/new.bin", &app_put).await;
    let mut with_host = app_put.to_vec();
    with_host.push(("Host", &vhost));
    let virtual_hosted = preflight(&cluster, "/upload/new.bin", &with_host).await;
    for (style, response) in [("path style", &path_style), ("virtual-hosted style", &virtual_hosted)] {
        assert_eq!(response.status, 200, "{style} preflight: {}", response.summary());
        let requested = "content-type, x-amz-date, x-amz-content-sha256";
        assert_headers(response, &app_rule_headers(Some(requested)), &format!("{style} preflight"));
    }

    // The public rule answers `*` for any origin's GET, without credentials.
    let public = preflight(
        &cluster,
        "/cors-site/page.html",
        &[("Origin", "https://elsewhere.test"), ("Access-Control-Request-Method", "GET")],
    )
    .await;
    assert_eq!(public.status, 200, "{}", public.summary());
    assert_eq!(public.header("access-control-allow-origin"), Some("*"));
    assert_eq!(public.header("access-control-allow-methods"), Some("GET"));
    assert_eq!(public.header("access-control-allow-credentials"), None);
    assert_eq!(public.header("access-control-max-age"), None);

    // Refusals: origin, method, header, no configuration, no bucket; 400 without the headers.
    let refused = [
        ("a disallowed origin", "https://elsewhere.test", "PUT", None),
        ("a disallowed method", "http://app.example.com", "DELETE", None),
        ("a disallowed header", "http://app.example.com", "PUT", Some("content-type, authorization")),
        ("a scheme the wildcard does not cover", "https://app.example.com", "PUT", None),
    ];
    for (what, origin, method, headers) in refused {
        let mut request = vec![("Origin", origin), ("Access-Control-Request-Method", method)];
        request.extend(headers.map(|h| ("Access-Control-Request-Headers", h)));
        let response = preflight(&cluster, "/cors-site/k", &request).await;
        assert_error(&response, 403, "AccessForbidden", NOT_ALLOWED, what);
    }
    let get = [("Origin", "http://app.example.com"), ("Access-Control-Request-Method", "GET")];
    let response = preflight(&cluster, "/cors-none/k", &get).await;
    assert_error(&response, 403, "AccessForbidden", "CORSResponse: CORS is not enabled for this bucket.", "no config");
    let response = preflight(&cluster, "/cors-missing/k", &get).await;
    assert_error(&response, 403, "AccessForbidden", "CORSResponse: Bucket not found", "no such bucket");
    let response = preflight(&cluster, "/cors-site/k", &[("Access-Control-Request-Method", "GET")]).await;
    assert_error(&response, 400, "BadRequest", "Insufficient information. Origin request header needed.", "no Origin");
    let response = preflight(&cluster, "/cors-site/k", &[("Origin", "http://app.example.com")]).await;
    assert_error(&response, 400, "BadRequest", "Invalid Access-Control-Request-Method: null", "no method");
    let response = preflight(
        &cluster,
        "/cors-site/k",
        &[("Origin", "http://a.example.com"), ("Access-Control-Request-Method", "PATCH")],
    )
    .await;
    assert_error(&response, 400, "BadRequest", "Invalid Access-Control-Request-Method: PATCH", "PATCH");

    // Actual requests: a signed GET with an allowed Origin gets the rule's headers, in both styles.
    let origin = [("Origin", "http://app.example.com")];
    let path_get = signed(&cluster, "GET", &cluster.url("/cors-site/page.html"), &origin, b"").await;
    let vhost_get = signed(&cluster, "GET", &format!("http://{vhost}/page.html"), &origin, b"").await;
    for (style, response) in [("path style", &path_get), ("virtual-hosted style", &vhost_get)] {
        assert_eq!(response.status, 200, "{style} GET: {}", response.summary());
        assert_eq!(response.body, b"<p>hello</p>");
        assert_headers(response, &app_rule_headers(None), &format!("{style} GET"));
    }
    // An error is readable by the page too (the browser needs the headers to show it).
    let missing = signed(&cluster, "GET", &cluster.url("/cors-site/missing"), &origin, b"").await;
    assert_eq!(missing.status, 404, "{}", missing.summary());
    assert_eq!(missing.header("access-control-allow-origin"), Some("http://app.example.com"));
    // Another origin's GET falls to the public rule; its PUT matches no rule and gets no header.
    let elsewhere = [("Origin", "https://elsewhere.test")];
    let public_get = signed(&cluster, "GET", &cluster.url("/cors-site/page.html"), &elsewhere, b"").await;
    assert_eq!(public_get.header("access-control-allow-origin"), Some("*"), "{:?}", public_get.headers);
    assert_eq!(public_get.header("access-control-allow-credentials"), None);
    let put = signed(&cluster, "PUT", &cluster.url("/cors-site/from-elsewhere"), &elsewhere, b"x").await;
    assert_eq!(put.status, 200, "the request itself is served: {}", put.summary());
    assert_eq!(put.header("access-control-allow-origin"), None, "no rule allows PUT from there");
    let plain = signed(&cluster, "GET", &cluster.url("/cors-site/page.html"), &[], b"").await;
    assert_eq!(plain.header("access-control-allow-origin"), None, "no Origin, no CORS headers");
    assert_eq!(plain.header("vary"), None);
    let none = signed(&cluster, "GET", &cluster.url("/cors-none?list-type=2"), &origin, b"").await;
    assert_eq!(none.status, 200, "{}", none.summary());
    assert_eq!(none.header("access-control-allow-origin"), None, "a bucket without configuration");

    // Deleting the configuration takes effect on the next preflight, through any gateway.
    ok(s3.delete_bucket_cors().bucket("cors-site").send().await, "DeleteBucketCors");
    let dc2 = authority_of(&cluster.gateways[1]).to_string();
    let headers: Vec<(String, String)> = app_put.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let response = raw_request(&dc2, "OPTIONS", "/cors-site/upload/new.bin", &headers, b"").await.expect("OPTIONS");
    assert_error(&response, 403, "AccessForbidden", "CORSResponse: CORS is not enabled", "after DeleteBucketCors");
}
