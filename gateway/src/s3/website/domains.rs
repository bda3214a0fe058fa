//! Custom website domains through the S3 API: a tenant attaches a host name to its bucket with a
//! signed `PUT /<bucket>?website-domain=<host>`, detaches it with `DELETE`, and lists its
//! bucket's domains with `GET /<bucket>?website-domain`. S3 has no such call; it is an extension
//! in S3's style (a bucket subresource, SigV4, S3 error codes), authorized like
//! PutBucketWebsite / GetBucketWebsite through the one authorizer. A domain belongs to one tenant
//! while the bucket it serves lives (`Command::SetDomain`); `ignifuge admin domain` does the same
//! for operators.

use super::super::Hosts;
use super::super::access::{ClientAddr, RequestId, request_context};
use crate::Gateway;
use crate::authorize::Ask;
use crate::error::GatewayError;
use ignifuge_access::Requester;
use ignifuge_meta::Command;
use ignifuge_types::WebDomain;
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result};
use std::sync::Arc;

/// The query parameter that names the call.
pub const DOMAIN_PARAMETER: &str = "website-domain";
/// Longest host name (RFC 1035).
const DOMAIN_MAX_CHARS: usize = 253;

pub(in crate::s3) struct DomainRoute {
    pub gateway: Arc<Gateway>,
    pub hosts: Hosts,
}

fn parameter(uri: &http::Uri) -> Option<String> {
    super::super::access::query_pairs(uri).into_iter().find(|(k, _)| k == DOMAIN_PARAMETER).map(|(_, v)| v)
}

/// A host name: labels of letters, digits and hyphens, at least two of them, the last not all
/// digits (an IP address is no domain).
fn check_domain(domain: &str) -> Result<(), GatewayError> {
    let labels: Vec<&str> = domain.split('.').collect();
    let valid = domain.len() <= DOMAIN_MAX_CHARS
        && labels.len() >= 2
        && labels.last().is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if valid {
        Ok(())
    } else {
        Err(GatewayError::InvalidArgument(format!(
            "{domain:?} is not a host name (lower-case labels, at least one dot)"
        )))
    }
}

impl DomainRoute {
    /// The bucket a request names: virtual-hosted style, else the first path segment.
    fn bucket_of(&self, req: &S3Request<Body>) -> Option<String> {
        let host = req.headers.get(http::header::HOST).and_then(|v| v.to_str().ok());
        if let Some(bucket) = host.and_then(|h| self.hosts.bucket_of(h)) {
            return Some(bucket);
        }
        let first = req.uri.path().trim_start_matches('/').split('/').next().unwrap_or_default();
        (!first.is_empty()).then(|| first.to_string())
    }
}

#[async_trait::async_trait]
impl S3Route for DomainRoute {
    fn is_match(&self, method: &http::Method, uri: &http::Uri, _: &http::HeaderMap, _: &mut http::Extensions) -> bool {
        let verb = matches!(*method, http::Method::GET | http::Method::PUT | http::Method::DELETE);
        verb && parameter(uri).is_some()
    }

    /// Authorization is `call`'s, through the authorizer (anonymous callers included).
    async fn check_access(&self, _req: &mut S3Request<Body>) -> S3Result<()> {
        Ok(())
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let gateway = &self.gateway;
        let requester = match &req.credentials {
            Some(credentials) => {
                let principal = gateway.keys.principal(&credentials.access_key).await?;
                Requester::Key {
                    tenant: principal.tenant.clone(),
                    user: principal.user.clone(),
                    access_key: principal.access_key.clone(),
                }
            }
            None => Requester::Anonymous,
        };
        let bucket = self.bucket_of(&req).ok_or_else(|| {
            GatewayError::InvalidRequest(format!("?{DOMAIN_PARAMETER} is a bucket subresource: name the bucket"))
        })?;
        let view = gateway.access.view(gateway.metadata.as_ref(), &bucket, true).await?;
        crate::s3::access::check_expected_bucket_owner(&view, &req.headers, &req.uri)?;
        let client = req.extensions.get::<ClientAddr>().map(|c| c.0);
        let request_id = req.extensions.get::<RequestId>().map_or_else(|| Arc::from(""), |r| r.0.clone());
        let reads = req.method == http::Method::GET;
        let action = if reads { "s3:GetBucketWebsite" } else { "s3:PutBucketWebsite" };
        let context = request_context(&req.headers, &req.uri, client, action);
        gateway.authorize(&requester, &view, Ask { action, key: None, object_acl: None }, &context, &request_id)?;
        let tenant = view.record.tenant.clone();
        if reads {
            let mut body = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<WebsiteDomains>");
            for record in gateway.metadata.domains(tenant).await.map_err(GatewayError::Meta)? {
                if record.bucket.name == view.record.name {
                    body.push_str(&format!("<Domain>{}</Domain>", record.domain));
                }
            }
            body.push_str("</WebsiteDomains>");
            let mut response = S3Response::new(Body::from(body));
            response.headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
            return Ok(response);
        }
        let domain = parameter(&req.uri).unwrap_or_default().to_ascii_lowercase();
        check_domain(&domain)?;
        let domain = WebDomain::new(domain);
        let attach = req.method == http::Method::PUT;
        if !attach {
            // Only a domain of this bucket is detached through it.
            let current = gateway.metadata.domain(domain.clone()).await.map_err(GatewayError::Meta)?;
            if current.is_none_or(|record| record.bucket.name != view.record.name) {
                let mut error = s3s::S3Error::with_message(
                    s3s::S3ErrorCode::Custom("NoSuchWebsiteDomain".into()),
                    "The domain is not attached to this bucket",
                );
                error.set_status_code(http::StatusCode::NOT_FOUND);
                return Err(error);
            }
        }
        let command = Command::SetDomain { domain, tenant, bucket: attach.then(|| view.record.reference()) };
        gateway.metadata.apply(command).await.map_err(GatewayError::Meta)?;
        let status = if attach { http::StatusCode::OK } else { http::StatusCode::NO_CONTENT };
        Ok(S3Response::with_status(Body::empty(), status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_host_names() {
        for good in ["docs.example.com", "a-b.c1.example", "x.y"] {
            assert!(check_domain(good).is_ok(), "{good}");
        }
        for bad in
            ["localhost", "Upper.example", "-a.example", "a..example", "a_b.example", "a.example/", "", "10.0.0.5"]
        {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
    }
}
