//! Checks made on a request before s3s sees it, for what s3s 0.14 would accept and AWS refuses:
//!
//! - a presigned URL valid for more than seven days (`X-Amz-Expires` above 604800): AWS answers
//!   400 AuthorizationQueryParametersError, and a URL that lives forever is a key that cannot be
//!   revoked short of deleting the access key;
//! - Signature Version 2 (header `Authorization: AWS ...` or a presigned URL with `Signature`
//!   and `AWSAccessKeyId`): AWS has not accepted it in any region opened since 2014 and answers
//!   400 InvalidRequest there; it is an HMAC-SHA1 over fewer fields than SigV4 signs. No client
//!   the project tests needs it, so it is not offered at all;
//! - a bucket name that breaks AWS's naming rules: s3s refuses it with InvalidBucketName and no
//!   message (the aws CLI prints "Unknown"); this names the rule broken;
//! - an `x-amz-*` header the signature does not cover: AWS answers 403 AccessDenied ("There were
//!   headers present in the request which were not signed"). s3s checks only the headers a
//!   request says it signed, so whoever held a presigned PUT URL could add `x-amz-copy-source`
//!   and turn it into a CopyObject of anything its signer may read, or add grants, tags or a
//!   redirect (a review found it).
//!
//! Query parameters are read as s3s reads them (`serde_urlencoded`: names percent-decoded), so that
//! `X-Amz-%45xpires` is the `X-Amz-Expires` s3s will check the signature with, not a stranger.

use s3s::{S3Error, S3ErrorCode};

/// AWS's limit on a presigned URL's lifetime.
pub const PRESIGNED_EXPIRES_MAX_SECS: u64 = 7 * 24 * 60 * 60;

/// The error AWS would answer before looking any further, if any. `hosts` says which Host
/// headers name a bucket (virtual-hosted style).
pub(super) fn refusal<B>(request: &http::Request<B>, hosts: &super::Hosts) -> Option<S3Error> {
    let host = request.headers().get(http::header::HOST).and_then(|v| v.to_str().ok());
    let bucket = match host.and_then(|h| hosts.virtual_host(h)) {
        Some((_, bucket)) => Some(bucket),
        None => request
            .uri()
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .filter(|segment| !segment.is_empty())
            .map(|segment| urlencoding::decode(segment).map_or_else(|_| segment.to_string(), |d| d.into_owned())),
    };
    if let Some(rule) = bucket.as_deref().and_then(bucket_name_problem) {
        return Some(S3Error::with_message(
            S3ErrorCode::InvalidBucketName,
            format!("The specified bucket is not valid. {rule}"),
        ));
    }
    // A query s3s cannot parse is refused by s3s.
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(request.uri().query().unwrap_or("")).ok()?;
    let param = |name: &str| pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let authorization = match request.headers().get(http::header::AUTHORIZATION).map(|v| v.to_str()) {
        None => None,
        Some(Ok(text)) => Some(text),
        // Not visible ASCII: no part of SigV4. Refused, never taken as no header (s3s still reads
        // it, as UTF-8, and would check its signature).
        Some(Err(_)) => return Some(malformed_authorization()),
    };
    let sigv2 = authorization.is_some_and(|a| a.starts_with("AWS "))
        || param("Signature").is_some()
        || param("AWSAccessKeyId").is_some();
    if sigv2 {
        return Some(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
        ));
    }
    let presigned = param("X-Amz-Algorithm").is_some();
    if presigned {
        let expires = param("X-Amz-Expires");
        let valid = expires.and_then(|e| e.parse::<u64>().ok());
        let mut names: Vec<&str> =
            pairs.iter().map(|(key, _)| key.as_str()).filter(|key| key.starts_with("X-Amz-")).collect();
        names.sort_unstable();
        let repeated = names.windows(2).any(|w| w[0] == w[1]);
        let message = match (expires, valid) {
            _ if repeated => Some("Only one of each X-Amz- authentication parameter may be given"),
            (Some(_), Some(secs)) if secs > PRESIGNED_EXPIRES_MAX_SECS => {
                Some("X-Amz-Expires must be less than a week (in seconds) that is 604800")
            }
            (Some(_), None) => Some("X-Amz-Expires should be a number"),
            _ => None,
        };
        if let Some(message) = message {
            let mut error =
                S3Error::with_message(S3ErrorCode::Custom("AuthorizationQueryParametersError".into()), message);
            error.set_status_code(http::StatusCode::BAD_REQUEST);
            return Some(error);
        }
    }
    let listed = match (presigned, authorization) {
        (true, Some(_)) => {
            return Some(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string \
                 parameter or the Authorization header should be specified",
            ));
        }
        (true, None) => param("X-Amz-SignedHeaders").unwrap_or(""),
        (false, Some(header_auth)) => {
            // s3s takes the first word for the algorithm without looking at it: anything but
            // SigV4 is refused here, so that the headers it signs are the ones read below.
            let Some(components) = header_auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
                return Some(S3Error::with_message(S3ErrorCode::InvalidArgument, "Unsupported Authorization Type"));
            };
            let lists: Vec<&str> =
                components.split(',').filter_map(|c| c.trim().strip_prefix("SignedHeaders=")).collect();
            match lists[..] {
                [listed] => listed,
                _ => return Some(malformed_authorization()),
            }
        }
        // Anonymous: nothing is signed, and nothing is granted but what anyone may do.
        (false, None) => return None,
    };
    let signed: Vec<String> = listed.split(';').map(|h| h.trim().to_ascii_lowercase()).collect();
    let unsigned: Vec<&str> = request
        .headers()
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|name| name.starts_with("x-amz-") && !signed.iter().any(|s| s == name))
        .filter(|name| !unsigned_allowed(name, presigned))
        .collect();
    if !unsigned.is_empty() {
        tracing::info!(headers = ?unsigned, "refused a request with x-amz- headers it did not sign");
        return Some(S3Error::with_message(
            S3ErrorCode::AccessDenied,
            "There were headers present in the request which were not signed",
        ));
    }
    None
}

fn malformed_authorization() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::AuthorizationHeaderMalformed,
        "The authorization header is malformed; it must be AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., \
         Signature=...",
    )
}

/// The `x-amz-*` headers a request may carry without signing them. With header auth, the payload
/// hash and the date, which the string to sign covers anyway. With a presigned URL, the payload
/// hash (s3s checks the body against it), and the two that the AWS SDKs never sign into a
/// presigned URL and may still send with it: their user agent, and asking for the object's
/// checksum in the answer.
fn unsigned_allowed(name: &str, presigned: bool) -> bool {
    match name {
        "x-amz-content-sha256" => true,
        "x-amz-date" => !presigned,
        "x-amz-user-agent" | "x-amz-checksum-mode" => presigned,
        _ => false,
    }
}

/// The first of AWS's general purpose bucket naming rules that `name` breaks.
pub(super) fn bucket_name_problem(name: &str) -> Option<&'static str> {
    if !(3..=63).contains(&name.len()) {
        return Some("Bucket names must be between 3 (min) and 63 (max) characters long.");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-') {
        return Some("Bucket names can consist only of lowercase letters, numbers, periods (.), and hyphens (-).");
    }
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !edge(name.bytes().next()) || !edge(name.bytes().last()) {
        return Some("Bucket names must begin and end with a letter or number.");
    }
    if name.contains("..") {
        return Some("Bucket names must not contain two adjacent periods.");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some("Bucket names must not be formatted as an IP address (for example, 192.168.5.4).");
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return Some(match prefix {
                "xn--" => "Bucket names must not start with the prefix xn--.",
                "sthree-" => "Bucket names must not start with the prefix sthree-.",
                _ => "Bucket names must not start with the prefix amzn-s3-demo-.",
            });
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return Some(match suffix {
                "-s3alias" => "Bucket names must not end with the suffix -s3alias.",
                "--ol-s3" => "Bucket names must not end with the suffix --ol-s3.",
                ".mrap" => "Bucket names must not end with the suffix .mrap.",
                "--x-s3" => "Bucket names must not end with the suffix --x-s3.",
                _ => "Bucket names must not end with the suffix --table-s3.",
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, authorization: Option<&str>) -> http::Request<()> {
        let mut builder = http::Request::get(uri);
        if let Some(a) = authorization {
            builder = builder.header("authorization", a);
        }
        builder.body(()).unwrap()
    }

    fn code(uri: &str, authorization: Option<&str>) -> Option<String> {
        refusal(&request(uri, authorization), &super::super::Hosts { domains: Vec::new() }).map(|e| {
            assert_eq!(e.status_code(), Some(http::StatusCode::BAD_REQUEST));
            e.code().as_str().to_string()
        })
    }

    #[test]
    fn presigned_urls_live_at_most_seven_days() {
        let url = |expires: &str| {
            format!("/bkt/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires={expires}&X-Amz-Signature=00")
        };
        assert_eq!(code(&url("604800"), None), None);
        assert_eq!(code(&url("3600"), None), None);
        assert_eq!(code(&url("604801"), None).as_deref(), Some("AuthorizationQueryParametersError"));
        assert_eq!(code(&url("-1"), None).as_deref(), Some("AuthorizationQueryParametersError"));
        assert_eq!(code(&url("soon"), None).as_deref(), Some("AuthorizationQueryParametersError"));
        // Not presigned: an X-Amz-Expires parameter means nothing.
        assert_eq!(code("/bkt/k?X-Amz-Expires=99999999", None), None);
    }

    #[test]
    fn authentication_parameters_are_read_as_s3s_decodes_them() {
        // Percent-encoded names are the same parameters to s3s: the limit and the refusal hold.
        let url = "/bkt/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-%45xpires=4294967295&X-Amz-Signature=00";
        assert_eq!(code(url, None).as_deref(), Some("AuthorizationQueryParametersError"));
        let url = "/bkt/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=60&X-Amz-Expires=4294967295";
        assert_eq!(code(url, None).as_deref(), Some("AuthorizationQueryParametersError"), "repeated");
        assert_eq!(code("/bkt/k?AWS%41ccessKeyId=K&Expires=1&Signature=x", None).as_deref(), Some("InvalidRequest"));
        assert_eq!(
            code("/bkt/k?AWSAccessKeyId=K&Expires=253402300799&%53ignature=x", None).as_deref(),
            Some("InvalidRequest")
        );
    }

    fn refusal_of(uri: &str, authorization: Option<&str>, headers: &[(&str, &str)]) -> Option<S3Error> {
        let mut builder = http::Request::put(uri);
        if let Some(a) = authorization {
            builder = builder.header("authorization", a);
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        refusal(&builder.body(()).unwrap(), &super::super::Hosts { domains: Vec::new() })
    }

    fn refused_headers(uri: &str, authorization: Option<&str>, headers: &[(&str, &str)]) -> Option<String> {
        refusal_of(uri, authorization, headers).map(|e| {
            assert_eq!(e.status_code().unwrap_or(http::StatusCode::FORBIDDEN), http::StatusCode::FORBIDDEN);
            format!("{}: {}", e.code().as_str(), e.message().unwrap_or_default())
        })
    }

    #[test]
    fn x_amz_headers_the_signature_does_not_cover_are_refused() {
        let presigned =
            "/bkt/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=00";
        // A presigned PUT turned into a CopyObject, or given grants, by headers its signer never saw.
        for added in
            ["x-amz-copy-source", "x-amz-grant-read", "x-amz-tagging", "x-amz-acl", "x-amz-website-redirect-location"]
        {
            let refused = refused_headers(presigned, None, &[(added, "v")]);
            assert_eq!(
                refused.as_deref(),
                Some("AccessDenied: There were headers present in the request which were not signed"),
                "{added}"
            );
        }
        let header_auth = "AWS4-HMAC-SHA256 Credential=AKIA/20261203/us-east-1/s3/aws4_request,                            SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-a, Signature=00";
        assert!(refused_headers("/bkt/k", Some(header_auth), &[("x-amz-copy-source", "/b/k")]).is_some());
        // What is signed, and what the signature covers or the SDKs leave out of presigned URLs.
        assert_eq!(
            refused_headers(
                "/bkt/k",
                Some(header_auth),
                &[("x-amz-meta-a", "1"), ("x-amz-date", "d"), ("x-amz-content-sha256", "h")]
            ),
            None
        );
        assert_eq!(
            refused_headers(
                presigned,
                None,
                &[
                    ("x-amz-user-agent", "sdk"),
                    ("x-amz-checksum-mode", "ENABLED"),
                    ("x-amz-content-sha256", "h"),
                    ("x-amzn-trace-id", "t")
                ]
            ),
            None
        );
        assert!(
            refused_headers(presigned, None, &[("x-amz-date", "20261203T000000Z")]).is_some(),
            "presigned: dated by the URL"
        );
        // Signed names compare without regard to case; a presigned URL signing the header may carry it.
        let signing_copy =
            presigned.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=host%3Bx-amz-copy-source");
        assert_eq!(refused_headers(&signing_copy, None, &[("x-amz-copy-source", "/b/k")]), None);
        // Anonymous requests sign nothing and are granted only what anyone may do.
        assert_eq!(refused_headers("/bkt/k", None, &[("x-amz-acl", "private")]), None);
        // An Authorization header s3s would still verify but that does not say SigV4 plainly, or
        // that lists its signed headers twice, is refused rather than read as anonymous.
        let copy = [("x-amz-copy-source", "/b/k")];
        for disguised in [
            header_auth.replacen("AWS4-HMAC-SHA256", "XWS4-HMAC-SHA256", 1),
            header_auth.replacen("AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA256SignedHeaders=x-amz-copy-source;host, ", 1),
            header_auth.replacen("SignedHeaders=", "SignedHeaders=x-amz-copy-source, SignedHeaders=", 1),
        ] {
            assert!(refusal_of("/bkt/k", Some(&disguised), &copy).is_some(), "{disguised}");
        }
        let mut request = http::Request::put("/bkt/k").body(()).unwrap();
        let not_ascii = http::HeaderValue::from_bytes(format!("{header_auth}\u{e9}").as_bytes()).unwrap();
        request.headers_mut().insert("authorization", not_ascii);
        assert!(refusal(&request, &super::super::Hosts { domains: Vec::new() }).is_some(), "not ASCII");
        // Presigned and signed in a header at once: one mechanism only.
        assert!(refusal_of(presigned, Some(header_auth), &[]).is_some(), "two mechanisms");
    }

    #[test]
    fn signature_version_2_is_refused_in_headers_and_urls() {
        assert_eq!(code("/bkt/k", Some("AWS AKIA:c2lnbmF0dXJl")).as_deref(), Some("InvalidRequest"));
        assert_eq!(code("/bkt/k?AWSAccessKeyId=AKIA&Expires=1&Signature=x", None).as_deref(), Some("InvalidRequest"));
        let sigv4 = "AWS4-HMAC-SHA256 Credential=AKIA/20261203/us-east-1/s3/aws4_request, \
                     SignedHeaders=host;x-amz-date, Signature=00";
        assert_eq!(code("/bkt/k", Some(sigv4)), None);
        assert_eq!(code("/bkt/k", None), None);
    }
}

#[cfg(test)]
mod bucket_name_tests {
    use super::*;

    #[test]
    fn every_broken_rule_is_named() {
        for (name, rule) in [
            ("ab", "between 3 (min) and 63 (max)"),
            ("UpperCase", "only of lowercase letters"),
            ("under_score", "only of lowercase letters"),
            ("-dash", "begin and end with a letter or number"),
            ("dot.", "begin and end with a letter or number"),
            ("double..dot", "two adjacent periods"),
            ("192.168.5.4", "IP address"),
            ("xn--abc", "prefix xn--"),
            ("sthree-abc", "prefix sthree-"),
            ("abc-s3alias", "suffix -s3alias"),
            ("abc--ol-s3", "suffix --ol-s3"),
        ] {
            let problem = bucket_name_problem(name).unwrap_or_else(|| panic!("{name} passed"));
            assert!(problem.contains(rule), "{name}: {problem}");
        }
        for name in ["abc", "a.b-c.d1", "123", &"b".repeat(63)] {
            assert_eq!(bucket_name_problem(name), None, "{name}");
        }
    }
}
