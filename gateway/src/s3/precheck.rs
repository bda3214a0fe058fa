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
//!   message (the aws CLI prints "Unknown"); this names the rule broken.

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
    let query = request.uri().query().unwrap_or("");
    let param = |name: &str| {
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    };
    let authorization = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let sigv2 = authorization.is_some_and(|a| a.starts_with("AWS "))
        || (param("Signature").is_some() && param("AWSAccessKeyId").is_some());
    if sigv2 {
        return Some(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
        ));
    }
    if param("X-Amz-Algorithm").is_some() {
        let expires = param("X-Amz-Expires");
        let valid = expires.and_then(|e| e.parse::<u64>().ok());
        let message = match (expires, valid) {
            (Some(_), Some(secs)) if secs > PRESIGNED_EXPIRES_MAX_SECS => {
                "X-Amz-Expires must be less than a week (in seconds) that is 604800"
            }
            (Some(_), None) => "X-Amz-Expires should be a number",
            _ => return None,
        };
        let mut error = S3Error::with_message(S3ErrorCode::Custom("AuthorizationQueryParametersError".into()), message);
        error.set_status_code(http::StatusCode::BAD_REQUEST);
        return Some(error);
    }
    None
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
    fn signature_version_2_is_refused_in_headers_and_urls() {
        assert_eq!(code("/bkt/k", Some("AWS AKIA:c2lnbmF0dXJl")).as_deref(), Some("InvalidRequest"));
        assert_eq!(code("/bkt/k?AWSAccessKeyId=AKIA&Expires=1&Signature=x", None).as_deref(), Some("InvalidRequest"));
        assert_eq!(code("/bkt/k", Some("AWS4-HMAC-SHA256 Credential=AKIA/20261203/us-east-1/s3/aws4_request")), None);
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
