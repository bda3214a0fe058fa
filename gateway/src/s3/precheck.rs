//! Checks made on a request before s3s sees it, for what s3s 0.14 would accept and AWS refuses:
//!
//! - a presigned URL valid for more than seven days (`X-Amz-Expires` above 604800): AWS answers
//!   400 AuthorizationQueryParametersError, and a URL that lives forever is a key that cannot be
//!   revoked short of deleting the access key;
//! - Signature Version 2 (header `Authorization: AWS ...` or a presigned URL with `Signature`
//!   and `AWSAccessKeyId`): AWS has not accepted it in any region opened since 2014 and answers
//!   400 InvalidRequest there; it is an HMAC-SHA1 over fewer fields than SigV4 signs. No client
//!   the project tests needs it, so it is not offered at all.

use s3s::{S3Error, S3ErrorCode};

/// AWS's limit on a presigned URL's lifetime.
pub const PRESIGNED_EXPIRES_MAX_SECS: u64 = 7 * 24 * 60 * 60;

/// The error AWS would answer before looking any further, if any.
pub(super) fn refusal<B>(request: &http::Request<B>) -> Option<S3Error> {
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
        refusal(&request(uri, authorization)).map(|e| {
            assert_eq!(e.status_code(), Some(http::StatusCode::BAD_REQUEST));
            e.code().as_str().to_string()
        })
    }

    #[test]
    fn presigned_urls_live_at_most_seven_days() {
        let url =
            |expires: &str| format!("/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires={expires}&X-Amz-Signature=00");
        assert_eq!(code(&url("604800"), None), None);
        assert_eq!(code(&url("3600"), None), None);
        assert_eq!(code(&url("604801"), None).as_deref(), Some("AuthorizationQueryParametersError"));
        assert_eq!(code(&url("-1"), None).as_deref(), Some("AuthorizationQueryParametersError"));
        assert_eq!(code(&url("soon"), None).as_deref(), Some("AuthorizationQueryParametersError"));
        // Not presigned: an X-Amz-Expires parameter means nothing.
        assert_eq!(code("/b/k?X-Amz-Expires=99999999", None), None);
    }

    #[test]
    fn signature_version_2_is_refused_in_headers_and_urls() {
        assert_eq!(code("/b/k", Some("AWS AKIA:c2lnbmF0dXJl")).as_deref(), Some("InvalidRequest"));
        assert_eq!(code("/b/k?AWSAccessKeyId=AKIA&Expires=1&Signature=x", None).as_deref(), Some("InvalidRequest"));
        assert_eq!(code("/b/k", Some("AWS4-HMAC-SHA256 Credential=AKIA/20261203/us-east-1/s3/aws4_request")), None);
        assert_eq!(code("/b/k", None), None);
    }
}
