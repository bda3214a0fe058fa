//! The S3 API's door to the authorizer (`crate::authorize`): s3s calls `AccessHook::check` for
//! every request once its signature is verified (or found absent) and before its body is read,
//! so a denied PUT costs no upload. The hook names the IAM action of the operation, gathers the
//! request context the policy language can test, authorizes, and leaves the outcome
//! (`Authorized`) in the request's extensions for the handler: the bucket's view, the requester
//! and the context, for the checks only the handler can make (each key of a DeleteObjects, the
//! source of a copy, a read whose outcome depends on the object itself).

use crate::Gateway;
use crate::authorize::{Ask, BucketView};
use crate::error::{GatewayError, GatewayResult};
use ignifuge_access::{RequestContext, Requester};
use ignifuge_types::time::now_ms;
use s3s::S3Result;
use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;
use std::net::SocketAddr;
use std::sync::Arc;

/// The client's address, put in each request's extensions by the server loop.
#[derive(Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The request id, put in each request's extensions by the server loop and returned to the
/// client as x-amz-request-id.
#[derive(Clone)]
pub struct RequestId(pub Arc<str>);

/// The outcome of the hook, for the handler.
#[derive(Clone)]
pub struct Authorized {
    pub requester: Requester,
    /// None for requests that name no bucket (ListBuckets) or make one (CreateBucket).
    pub view: Option<Arc<BucketView>>,
    pub action: &'static str,
    pub context: Arc<RequestContext>,
    pub request_id: Arc<str>,
    /// The decision waits for the object's record (its ACL or tags can change it).
    pub deferred: bool,
}

impl Authorized {
    pub fn view(&self) -> GatewayResult<&Arc<BucketView>> {
        self.view.as_ref().ok_or_else(|| GatewayError::Internal("no bucket was authorized".into()))
    }

    /// Authorizes another action of the same request (a copy's source, a key of a batch).
    pub fn also(&self, gateway: &Gateway, view: &BucketView, ask: Ask<'_>) -> GatewayResult<()> {
        gateway.authorize(&self.requester, view, ask, &self.context, &self.request_id)
    }
}

/// The IAM action an S3 operation needs (AWS's "Actions, resources, and condition keys for
/// Amazon S3"); `versioned`: the request names a version id.
pub fn action_of(operation: &str, versioned: bool) -> Option<&'static str> {
    Some(match operation {
        "ListBuckets" => "s3:ListAllMyBuckets",
        "CreateBucket" => "s3:CreateBucket",
        "DeleteBucket" => "s3:DeleteBucket",
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => "s3:ListBucket",
        "GetBucketLocation" => "s3:GetBucketLocation",
        "ListObjectVersions" => "s3:ListBucketVersions",
        "ListMultipartUploads" => "s3:ListBucketMultipartUploads",
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => "s3:PutObject",
        "GetObject" | "HeadObject" if versioned => "s3:GetObjectVersion",
        "GetObject" | "HeadObject" => "s3:GetObject",
        "GetObjectAttributes" if versioned => "s3:GetObjectVersionAttributes",
        "GetObjectAttributes" => "s3:GetObjectAttributes",
        "DeleteObject" if versioned => "s3:DeleteObjectVersion",
        "DeleteObject" | "DeleteObjects" => "s3:DeleteObject",
        "AbortMultipartUpload" => "s3:AbortMultipartUpload",
        "ListParts" => "s3:ListMultipartUploadParts",
        "PutObjectTagging" if versioned => "s3:PutObjectVersionTagging",
        "PutObjectTagging" => "s3:PutObjectTagging",
        "GetObjectTagging" if versioned => "s3:GetObjectVersionTagging",
        "GetObjectTagging" => "s3:GetObjectTagging",
        "DeleteObjectTagging" if versioned => "s3:DeleteObjectVersionTagging",
        "DeleteObjectTagging" => "s3:DeleteObjectTagging",
        "PutBucketTagging" | "DeleteBucketTagging" => "s3:PutBucketTagging",
        "GetBucketTagging" => "s3:GetBucketTagging",
        "PutBucketCors" | "DeleteBucketCors" => "s3:PutBucketCORS",
        "GetBucketCors" => "s3:GetBucketCORS",
        "PutBucketVersioning" => "s3:PutBucketVersioning",
        "GetBucketVersioning" => "s3:GetBucketVersioning",
        "PutBucketPolicy" => "s3:PutBucketPolicy",
        "GetBucketPolicy" => "s3:GetBucketPolicy",
        "DeleteBucketPolicy" => "s3:DeleteBucketPolicy",
        "GetBucketPolicyStatus" => "s3:GetBucketPolicyStatus",
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => "s3:PutBucketPublicAccessBlock",
        "GetPublicAccessBlock" => "s3:GetBucketPublicAccessBlock",
        "PutBucketWebsite" => "s3:PutBucketWebsite",
        "GetBucketWebsite" => "s3:GetBucketWebsite",
        "DeleteBucketWebsite" => "s3:DeleteBucketWebsite",
        "PutBucketOwnershipControls" | "DeleteBucketOwnershipControls" => "s3:PutBucketOwnershipControls",
        "GetBucketOwnershipControls" => "s3:GetBucketOwnershipControls",
        "GetBucketAcl" => "s3:GetBucketAcl",
        "PutBucketAcl" => "s3:PutBucketAcl",
        "GetObjectAcl" if versioned => "s3:GetObjectVersionAcl",
        "GetObjectAcl" => "s3:GetObjectAcl",
        "PutObjectAcl" if versioned => "s3:PutObjectVersionAcl",
        "PutObjectAcl" => "s3:PutObjectAcl",
        _ => return None,
    })
}

/// Operations that read an object.
fn reads_object(operation: &str) -> bool {
    matches!(operation, "GetObject" | "HeadObject" | "GetObjectAttributes" | "GetObjectTagging" | "GetObjectAcl")
}

/// Operations whose decision can depend on the object's own state (its ACL, or its tags through
/// `s3:ExistingObjectTag/*`): when the bucket's settings make that state matter
/// (`BucketView::depends_on_object`), they are authorized once the record is read (`deferred`).
fn decided_on_the_object(operation: &str) -> bool {
    reads_object(operation) || matches!(operation, "PutObjectAcl" | "PutObjectTagging" | "DeleteObjectTagging")
}

/// Operations whose bucket view may come from the cache: the object read that follows names the
/// view's owner and incarnation to the metadata, which refuses it unless the bucket is still that
/// one.
/// Everything else reads the bucket fresh, as its handler uses the record.
fn cached_view_is_enough(operation: &str) -> bool {
    reads_object(operation)
}

/// Refuses the request if x-amz-expected-bucket-owner names another owner than `view`'s
/// (`BucketView::check_expected_owner`, each value `expected_owners` finds).
pub fn check_expected_bucket_owner(view: &BucketView, headers: &http::HeaderMap, uri: &http::Uri) -> GatewayResult<()> {
    for owner in expected_owners("x-amz-expected-bucket-owner", headers, uri) {
        view.check_expected_owner(Some(&owner))?;
    }
    Ok(())
}

/// Every owner a request names under `name` (x-amz-expected-bucket-owner, or for a copy's source
/// x-amz-source-expected-bucket-owner): in its headers and in its query (where the JS, Ruby and
/// PHP presigners put it in a presigned URL; lower case, as AWS reads it). Each is to be checked,
/// so that a header added to a presigned URL, which its signature does not cover, cannot
/// override the owner the URL's signer named. A value that is not text names no tenant.
pub fn expected_owners(name: &str, headers: &http::HeaderMap, uri: &http::Uri) -> Vec<String> {
    let mut owners: Vec<String> =
        headers.get_all(name).iter().map(|v| v.to_str().unwrap_or("\u{fffd}").to_string()).collect();
    // Most requests carry no such parameter: their query is not decoded again for it.
    if uri.query().is_some_and(|query| query.contains(name)) {
        owners.extend(query_pairs(uri).into_iter().filter(|(n, _)| n == name).map(|(_, value)| value));
    }
    owners
}

/// The query parameters of a URI, decoded.
pub fn query_pairs(uri: &http::Uri) -> Vec<(String, String)> {
    let decode = |s: &str| urlencoding::decode(&s.replace('+', " ")).map_or_else(|_| s.to_string(), |d| d.into_owned());
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// What the policy language can test about a request for `action`: the global keys, and the S3
/// keys AWS defines for that action (S3's "Actions, resources, and condition keys"), so that, say,
/// a `?prefix=` on a GetObject cannot satisfy a condition written for listings.
pub fn request_context(
    headers: &http::HeaderMap,
    uri: &http::Uri,
    client: Option<SocketAddr>,
    action: &str,
) -> RequestContext {
    let lists = matches!(action, "s3:ListBucket" | "s3:ListBucketVersions");
    let puts = action == "s3:PutObject";
    let sets_acl = matches!(
        action,
        "s3:PutObject" | "s3:PutObjectAcl" | "s3:PutObjectVersionAcl" | "s3:PutBucketAcl" | "s3:CreateBucket"
    );
    let tags = matches!(action, "s3:PutObject" | "s3:PutObjectTagging");
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut context = RequestContext {
        source_ip: client.map(|a| a.ip()),
        // The gateway serves plain HTTP today; TLS is terminated in front of it or not at all.
        secure_transport: false,
        referer: header("referer"),
        user_agent: header("user-agent"),
        current_time_ms: now_ms(),
        values: Default::default(),
    };
    for (key, value) in query_pairs(uri) {
        let name = match key.as_str() {
            "prefix" if lists => "s3:prefix",
            "max-keys" if lists => "s3:max-keys",
            "delimiter" if lists => "s3:delimiter",
            "versionId" if action.contains("Version") => "s3:VersionId",
            _ => continue,
        };
        context.values.insert(name.to_string(), vec![value]);
    }
    for (name, defined) in [
        ("x-amz-acl", sets_acl),
        ("x-amz-copy-source", puts),
        ("x-amz-metadata-directive", puts),
        ("x-amz-server-side-encryption", puts),
    ] {
        if defined && let Some(value) = header(name) {
            context.values.insert(format!("s3:{name}"), vec![value]);
        }
    }
    if tags && let Some(tagging) = header("x-amz-tagging") {
        let mut keys = Vec::new();
        for pair in tagging.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = urlencoding::decode(key).map_or_else(|_| key.to_string(), |d| d.into_owned());
            let value = urlencoding::decode(value).map_or_else(|_| value.to_string(), |d| d.into_owned());
            context.values.insert(format!("s3:RequestObjectTag/{key}"), vec![value]);
            keys.push(key);
        }
        context.values.insert("s3:RequestObjectTagKeys".into(), keys);
    }
    context
}

pub struct AccessHook {
    pub gateway: Arc<Gateway>,
}

#[async_trait::async_trait]
impl S3Access for AccessHook {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let operation = cx.s3_op().name().to_string();
        let requester = match cx.credentials() {
            Some(credentials) => {
                let principal = self.gateway.keys.principal(&credentials.access_key).await?;
                Requester::Key {
                    tenant: principal.tenant.clone(),
                    user: principal.user.clone(),
                    access_key: principal.access_key.clone(),
                }
            }
            None => Requester::Anonymous,
        };
        let client = cx.extensions_mut().get::<ClientAddr>().map(|c| c.0);
        let request_id = cx.extensions_mut().get::<RequestId>().map_or_else(|| Arc::from(""), |r| r.0.clone());
        let versioned = query_pairs(cx.uri()).iter().any(|(name, _)| name == "versionId");
        let Some(action) = action_of(&operation, versioned) else {
            // Not an operation the gateway implements: s3s answers NotImplemented, to anyone
            // who signs; nobody else learns which ones exist.
            if matches!(requester, Requester::Anonymous) {
                return Err(GatewayError::AccessDenied.into());
            }
            return Ok(());
        };
        // AWS: "Request specific response headers cannot be used for anonymous GET requests."
        // (An unsigned link to a public object must not make it render as, say, HTML.)
        if matches!(requester, Requester::Anonymous)
            && matches!(operation.as_str(), "GetObject" | "HeadObject")
            && query_pairs(cx.uri()).iter().any(|(name, _)| name.starts_with("response-"))
        {
            return Err(GatewayError::InvalidRequest(
                "Request specific response headers cannot be used for anonymous GET requests.".into(),
            )
            .into());
        }
        let context = Arc::new(request_context(cx.headers(), cx.uri(), client, action));
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => (None, None),
            S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
            S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
        };
        // A key no PUT could have made names nothing; refused before it reaches policy matching.
        if key.as_ref().is_some_and(|k| k.len() > super::OBJECT_KEY_MAX_BYTES) {
            return Err(GatewayError::KeyTooLong.into());
        }
        let mut authorized = Authorized { requester, view: None, action, context, request_id, deferred: false };
        match bucket {
            // Buckets are listed and made by a tenant's keys only; what they reach is the
            // tenant's own (the handlers scope them).
            None => {
                if matches!(authorized.requester, Requester::Anonymous) {
                    return Err(GatewayError::AccessDenied.into());
                }
            }
            Some(_) if operation == "CreateBucket" => {
                if matches!(authorized.requester, Requester::Anonymous) {
                    return Err(GatewayError::AccessDenied.into());
                }
            }
            Some(bucket) => {
                let fresh = !cached_view_is_enough(&operation);
                let view = self.gateway.access.view(self.gateway.metadata.as_ref(), &bucket, fresh).await?;
                check_expected_bucket_owner(&view, cx.headers(), cx.uri())?;
                if decided_on_the_object(&operation) && view.depends_on_object() {
                    authorized.deferred = true;
                    authorized.view = Some(view.clone());
                    if !reads_object(&operation)
                        && let Some(key) = &key
                    {
                        // A write to an object whose ACL or tags decide: its record is read and
                        // the request authorized with it now, before the body is read.
                        let version = query_pairs(cx.uri()).into_iter().find(|(k, _)| k == "versionId").map(|(_, v)| v);
                        let s3 = super::IgnifugeS3 { gateway: self.gateway.clone() };
                        s3.get_record(&authorized, key, version.as_deref(), 0).await?;
                        authorized.deferred = false;
                    }
                } else if operation != "DeleteObjects" {
                    // DeleteObjects is authorized key by key, by its handler.
                    let ask = Ask { action, key: key.as_deref(), object_acl: None };
                    self.gateway.authorize(
                        &authorized.requester,
                        &view,
                        ask,
                        &authorized.context,
                        &authorized.request_id,
                    )?;
                }
                // Tags given with a write need their own permission too, as on AWS (a writer
                // granted only s3:PutObject could otherwise tag its object to meet another
                // statement's s3:ExistingObjectTag condition).
                let header = |name: &str| cx.headers().get(name).and_then(|v| v.to_str().ok());
                let replaces_tags = match operation.as_str() {
                    "PutObject" | "CreateMultipartUpload" => true,
                    // A copy takes the source's tags unless it says REPLACE (the header is then
                    // ignored).
                    "CopyObject" => {
                        header("x-amz-tagging-directive").is_some_and(|d| d.eq_ignore_ascii_case("REPLACE"))
                    }
                    _ => false,
                };
                if replaces_tags && header("x-amz-tagging").is_some_and(|v| !v.is_empty()) {
                    let action = "s3:PutObjectTagging";
                    let context = request_context(cx.headers(), cx.uri(), client, action);
                    let ask = Ask { action, key: key.as_deref(), object_acl: None };
                    self.gateway.authorize(&authorized.requester, &view, ask, &context, &authorized.request_id)?;
                }
                authorized.view = Some(view);
            }
        }
        cx.extensions_mut().insert(authorized);
        Ok(())
    }
}
