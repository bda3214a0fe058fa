//! Access control end to end: bucket policies, ACLs, Object Ownership and Block Public Access,
//! as AWS's S3 user guide describes them ("Bucket policies", "Access control list (ACL)
//! overview", "Controlling ownership of objects", "Blocking public access"), through the one
//! authorizer, with signed requests of several tenants' keys and unsigned (anonymous) ones.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketCannedAcl, ObjectCannedAcl, ObjectOwnership, OwnershipControls, OwnershipControlsRule,
    PublicAccessBlockConfiguration,
};
use common::*;
use md5::Digest as _;
use std::time::SystemTime;

/// Who sends a request in the matrix.
#[derive(Clone, Copy, Debug)]
enum Who {
    /// The key that made the bucket.
    Owner,
    /// Another key of the owner's tenant.
    SameTenant,
    /// A key of another tenant.
    OtherTenant,
    /// No signature at all.
    Anonymous,
}

const WHO: [Who; 4] = [Who::Owner, Who::SameTenant, Who::OtherTenant, Who::Anonymous];

/// The bucket settings of the matrix, each on a bucket of its own.
const SETTINGS: [&str; 5] = ["none", "allow", "deny", "acl", "bpa"];

/// One S3 operation as a raw request: method, path and query after `/<bucket>`, headers, body.
struct Operation {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
}

const TAGGING: &str = "<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>";

/// The operations of the matrix and, for each setting (in `SETTINGS` order), what AWS's
/// evaluation gives for owner, same-tenant key, other tenant's key, anonymous: A allowed, D
/// denied (403 AccessDenied). An allowed request may still fail for another reason (a
/// GetBucketPolicy of a bucket without one is 404): only 403 AccessDenied counts as denied.
///
/// Settings:
/// - none:  a new bucket (Block Public Access on, ACLs disabled), no policy.
/// - allow: BPA removed, policy Allow Principal "*" Action "s3:*" on the bucket and its objects.
/// - deny:  policy Deny Principal "*" s3:GetObject, s3:PutObjectTagging, s3:ListBucket: an
///          explicit deny binds the owner too, except that the owner may always manage the policy.
/// - acl:   Object Ownership ObjectWriter (ACLs enabled), BPA removed, bucket ACL public-read
///          (READ: list) and the object public-read (READ: get); nothing else is granted.
/// - bpa:   as allow, then Block Public Access turned back on: RestrictPublicBuckets confines
///          the public policy to the owner's tenant.
/// The bucket owner's tenant only, unless a policy allows more (the "allow" setting).
const OWNER_OR_POLICY: [&str; 5] = ["AADD", "AAAA", "AADD", "AADD", "AADD"];
/// Get/Put/DeleteBucketPolicy: the owner's tenant only, whatever the policy says.
const POLICY_OWNER: [&str; 5] = ["AADD", "AADD", "AADD", "AADD", "AADD"];
/// s3:ListBucket: denied by the "deny" policy, granted by the public-read bucket ACL.
const LIST: [&str; 5] = ["AADD", "AAAA", "DDDD", "AAAA", "AADD"];
/// s3:GetObject: denied by the "deny" policy, granted by the public-read object ACL.
const GET: [&str; 5] = ["AADD", "AAAA", "DDDD", "AAAA", "AADD"];
/// Denied to everyone by the "deny" policy, owner-only elsewhere unless the policy allows.
const DENIED_BY_POLICY: [&str; 5] = ["AADD", "AAAA", "DDDD", "AADD", "AADD"];

macro_rules! op {
    ($name:literal, $method:literal, $path:literal) => {
        Operation { name: $name, method: $method, path: $path, headers: &[], body: "" }
    };
    ($name:literal, $method:literal, $path:literal, body $body:expr) => {
        Operation { name: $name, method: $method, path: $path, headers: &[], body: $body }
    };
    ($name:literal, $method:literal, $path:literal, headers $headers:expr) => {
        Operation { name: $name, method: $method, path: $path, headers: $headers, body: "" }
    };
}

/// Every operation the gateway implements and, for each setting (in `SETTINGS` order), what
/// AWS's evaluation gives for owner, same-tenant key, other tenant's key, anonymous: A allowed,
/// D denied (403 AccessDenied; for DeleteObjects, an AccessDenied entry per key). An allowed
/// request may still fail for another reason: requests that would change what later rows see
/// carry a body that fails validation once authorized (a malformed policy, ACL, configuration:
/// 400), multipart requests name an upload that does not exist (404), DeleteBucket meets a
/// bucket that is not empty (409). Rows run in order, principals anonymous first, so the few
/// deletions at the end cannot open what a later check expects closed.
///
/// Settings:
/// - none:  a new bucket (Block Public Access on, ACLs disabled), no policy.
/// - allow: BPA removed, policy Allow Principal "*" Action "s3:*" on the bucket and its objects.
/// - deny:  policy Deny Principal "*" s3:GetObject, s3:PutObjectTagging, s3:ListBucket: an
///          explicit deny binds the owner too, except that the owner may always manage the policy.
/// - acl:   Object Ownership ObjectWriter (ACLs enabled), BPA removed, bucket ACL public-read
///          (READ: ListBucket, ListBucketVersions, ListBucketMultipartUploads) and the object
///          public-read (READ: GetObject); nothing else is granted.
/// - bpa:   as allow, then Block Public Access turned back on: RestrictPublicBuckets confines
///          the public policy to the owner's tenant.
const MATRIX: &[(Operation, [&str; 5])] = &[
    (op!("ListObjectsV2", "GET", "?list-type=2"), LIST),
    (op!("ListObjects", "GET", ""), LIST),
    (op!("HeadBucket", "HEAD", ""), LIST),
    (op!("ListObjectVersions", "GET", "?versions"), ["AADD", "AAAA", "AADD", "AAAA", "AADD"]),
    (op!("ListMultipartUploads", "GET", "?uploads"), ["AADD", "AAAA", "AADD", "AAAA", "AADD"]),
    (op!("GetBucketLocation", "GET", "?location"), OWNER_OR_POLICY),
    (op!("GetObject", "GET", "/obj"), GET),
    (op!("HeadObject", "HEAD", "/obj"), GET),
    (
        op!("GetObjectAttributes", "GET", "/obj?attributes", headers & [("x-amz-object-attributes", "ETag")]),
        OWNER_OR_POLICY,
    ),
    (op!("PutObject", "PUT", "/new", body "x"), OWNER_OR_POLICY),
    (op!("CopyObject", "PUT", "/copy", headers & [("x-amz-copy-source", "SELF/obj")]), DENIED_BY_POLICY),
    (op!("DeleteObject", "DELETE", "/scratch"), OWNER_OR_POLICY),
    (op!("DeleteObjects", "POST", "?delete", body DELETE_SCRATCH), OWNER_OR_POLICY),
    (op!("GetObjectTagging", "GET", "/obj?tagging"), OWNER_OR_POLICY),
    (op!("PutObjectTagging", "PUT", "/obj?tagging", body TAGGING), DENIED_BY_POLICY),
    (op!("DeleteObjectTagging", "DELETE", "/obj?tagging"), OWNER_OR_POLICY),
    (op!("CreateMultipartUpload", "POST", "/mp?uploads"), OWNER_OR_POLICY),
    (op!("UploadPart", "PUT", "/mp?partNumber=1&uploadId=0123456789abcdef0123456789abcdef", body "x"), OWNER_OR_POLICY),
    (
        Operation {
            name: "UploadPartCopy",
            method: "PUT",
            path: "/mp?partNumber=1&uploadId=0123456789abcdef0123456789abcdef",
            headers: &[("x-amz-copy-source", "SELF/obj")],
            body: "",
        },
        OWNER_OR_POLICY,
    ),
    (op!("ListParts", "GET", "/mp?uploadId=0123456789abcdef0123456789abcdef"), OWNER_OR_POLICY),
    (
        op!("CompleteMultipartUpload", "POST", "/mp?uploadId=0123456789abcdef0123456789abcdef", body COMPLETE),
        OWNER_OR_POLICY,
    ),
    (op!("AbortMultipartUpload", "DELETE", "/mp?uploadId=0123456789abcdef0123456789abcdef"), OWNER_OR_POLICY),
    (op!("GetBucketTagging", "GET", "?tagging"), OWNER_OR_POLICY),
    (op!("PutBucketTagging", "PUT", "?tagging", body TAGGING), OWNER_OR_POLICY),
    (op!("DeleteBucketTagging", "DELETE", "?tagging"), OWNER_OR_POLICY),
    (op!("GetBucketCors", "GET", "?cors"), OWNER_OR_POLICY),
    (op!("PutBucketCors", "PUT", "?cors", body MALFORMED), OWNER_OR_POLICY),
    (op!("DeleteBucketCors", "DELETE", "?cors"), OWNER_OR_POLICY),
    (op!("GetBucketVersioning", "GET", "?versioning"), OWNER_OR_POLICY),
    (op!("PutBucketVersioning", "PUT", "?versioning", body MALFORMED), OWNER_OR_POLICY),
    (op!("GetBucketPolicy", "GET", "?policy"), POLICY_OWNER),
    (op!("PutBucketPolicy", "PUT", "?policy", body "not a policy"), POLICY_OWNER),
    (op!("GetBucketPolicyStatus", "GET", "?policyStatus"), OWNER_OR_POLICY),
    (op!("GetPublicAccessBlock", "GET", "?publicAccessBlock"), OWNER_OR_POLICY),
    (op!("PutPublicAccessBlock", "PUT", "?publicAccessBlock", body MALFORMED), OWNER_OR_POLICY),
    (op!("GetBucketWebsite", "GET", "?website"), OWNER_OR_POLICY),
    (op!("PutBucketWebsite", "PUT", "?website", body MALFORMED), OWNER_OR_POLICY),
    (op!("DeleteBucketWebsite", "DELETE", "?website"), OWNER_OR_POLICY),
    (op!("GetBucketOwnershipControls", "GET", "?ownershipControls"), OWNER_OR_POLICY),
    (op!("PutBucketOwnershipControls", "PUT", "?ownershipControls", body MALFORMED), OWNER_OR_POLICY),
    (op!("GetBucketAcl", "GET", "?acl"), OWNER_OR_POLICY),
    (op!("PutBucketAcl", "PUT", "?acl", body MALFORMED), OWNER_OR_POLICY),
    (op!("GetObjectAcl", "GET", "/obj?acl"), OWNER_OR_POLICY),
    (op!("PutObjectAcl", "PUT", "/obj?acl", body MALFORMED), OWNER_OR_POLICY),
    (op!("DeleteBucket", "DELETE", ""), OWNER_OR_POLICY),
    // Last: these change what the rows above would see.
    (op!("DeleteBucketOwnershipControls", "DELETE", "?ownershipControls"), OWNER_OR_POLICY),
    (op!("DeletePublicAccessBlock", "DELETE", "?publicAccessBlock"), OWNER_OR_POLICY),
    (op!("DeleteBucketPolicy", "DELETE", "?policy"), POLICY_OWNER),
];

const MALFORMED: &str = "<Malformed";
const DELETE_SCRATCH: &str = "<Delete><Object><Key>scratch</Key></Object></Delete>";
const COMPLETE: &str =
    "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"0\"</ETag></Part></CompleteMultipartUpload>";

fn public_policy(bucket: &str, effect: &str, actions: &[&str]) -> String {
    let actions: Vec<String> = actions.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Matrix","Effect":"{effect}","Principal":"*","Action":[{}],"Resource":["arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"]}}]}}"#,
        actions.join(",")
    )
}

async fn put_obj(client: &aws_sdk_s3::Client, bucket: &str, key: &str, acl: Option<ObjectCannedAcl>) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .set_acl(acl)
        .body(ByteStream::from_static(b"object body"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutObject {bucket}/{key}: {e:?}"));
}

async fn remove_public_access_block(client: &aws_sdk_s3::Client, bucket: &str) {
    client.delete_public_access_block().bucket(bucket).send().await.expect("DeletePublicAccessBlock");
}

/// Makes the bucket of one setting, with `obj` in it.
async fn set_up(client: &aws_sdk_s3::Client, setting: &str, bucket: &str) {
    let mut create = client.create_bucket().bucket(bucket);
    if setting == "acl" {
        create = create.object_ownership(ObjectOwnership::ObjectWriter);
    }
    create.send().await.unwrap_or_else(|e| panic!("CreateBucket {bucket}: {e:?}"));
    match setting {
        "none" => put_obj(client, bucket, "obj", None).await,
        "allow" | "bpa" => {
            put_obj(client, bucket, "obj", None).await;
            remove_public_access_block(client, bucket).await;
            let policy = public_policy(bucket, "Allow", &["s3:*"]);
            client.put_bucket_policy().bucket(bucket).policy(policy).send().await.expect("PutBucketPolicy");
            if setting == "bpa" {
                let all = PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build();
                client
                    .put_public_access_block()
                    .bucket(bucket)
                    .public_access_block_configuration(all)
                    .send()
                    .await
                    .expect("PutPublicAccessBlock");
            }
        }
        "deny" => {
            put_obj(client, bucket, "obj", None).await;
            let policy = public_policy(bucket, "Deny", &["s3:GetObject", "s3:PutObjectTagging", "s3:ListBucket"]);
            client.put_bucket_policy().bucket(bucket).policy(policy).send().await.expect("PutBucketPolicy");
        }
        "acl" => {
            remove_public_access_block(client, bucket).await;
            client.put_bucket_acl().bucket(bucket).acl(BucketCannedAcl::PublicRead).send().await.expect("PutBucketAcl");
            put_obj(client, bucket, "obj", Some(ObjectCannedAcl::PublicRead)).await;
        }
        other => panic!("unknown setting {other}"),
    }
}

/// Sends one operation as `who`; true when it was denied (403 AccessDenied).
async fn denied(cluster: &Cluster, keys: &[Keys; 3], who: Who, bucket: &str, operation: &Operation) -> bool {
    let url = cluster.url(&format!("/{bucket}{}", operation.path));
    let copy_source = format!("/{bucket}/obj");
    let headers: Vec<(&str, &str)> = operation
        .headers
        .iter()
        .map(|(name, value)| (*name, if *value == "SELF/obj" { copy_source.as_str() } else { *value }))
        .collect();
    let body = operation.body.as_bytes();
    let md5 = aws_smithy_types::base64::encode(md5::Md5::digest(body));
    let mut headers = headers;
    if operation.name == "DeleteObjects" {
        headers.push(("content-md5", md5.as_str()));
    }
    let signed: Vec<(String, String)> = match who {
        Who::Anonymous => headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        _ => {
            let key = &keys[who as usize];
            cluster.sign(key, SystemTime::now(), operation.method, &url, &headers, Payload::Bytes(body))
        }
    };
    let response = raw_request(authority_of(&url), operation.method, path_and_query_of(&url), &signed, body)
        .await
        .unwrap_or_else(|e| panic!("{} as {who:?}: {e:#}", operation.name));
    if response.status == 403 {
        // A HEAD has no body to name the code; every other 403 must be AccessDenied.
        let text = response.body_text();
        assert!(
            operation.method == "HEAD" || text.contains("<Code>AccessDenied</Code>"),
            "{} as {who:?} on {bucket}: 403 that is not AccessDenied: {text}",
            operation.name
        );
        return true;
    }
    if operation.name == "DeleteObjects" && response.status == 200 {
        // Keys are authorized one by one: a denied key is an entry of the answer.
        return response.body_text().contains("<Code>AccessDenied</Code>");
    }
    assert!(
        response.status < 500,
        "{} as {who:?} on {bucket}: server error {}: {}",
        operation.name,
        response.status,
        response.body_text()
    );
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn the_authorization_matrix_matches_aws_evaluation() {
    let cluster = Cluster::start().await;
    let owner = cluster.s3_client();
    let keys = [cluster.keys(), cluster.create_key("default"), cluster.create_tenant("other")];
    for setting in SETTINGS {
        set_up(&owner, setting, &format!("matrix-{setting}")).await;
    }
    let mut wrong = Vec::new();
    for (operation, expected) in MATRIX {
        for (s, setting) in SETTINGS.iter().enumerate() {
            let bucket = format!("matrix-{setting}");
            for (w, who) in WHO.iter().enumerate().rev() {
                let want_denied = expected[s].as_bytes()[w] == b'D';
                let was_denied = denied(&cluster, &keys, *who, &bucket, operation).await;
                if want_denied != was_denied {
                    wrong.push(format!(
                        "{} on {setting} as {who:?}: expected {}, got {}",
                        operation.name,
                        if want_denied { "denied" } else { "allowed" },
                        if was_denied { "denied" } else { "allowed" }
                    ));
                }
            }
        }
    }
    // Requests that name no existing bucket: ListBuckets and CreateBucket need a key.
    let addr = cluster.gateway_addr();
    for (method, path) in [("GET", "/"), ("PUT", "/anonymous-bucket")] {
        let response = raw_request(&addr, method, path, &[], b"").await.unwrap();
        if response.status != 403 {
            wrong.push(format!("anonymous {method} {path}: expected denied, got {}", response.status));
        }
    }
    assert!(wrong.is_empty(), "{} outcomes differ from AWS's evaluation:\n{}", wrong.len(), wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_naming_another_tenant_shares_the_bucket_with_it_alone() {
    let cluster = Cluster::start().await;
    let owner = cluster.s3_client();
    let partner = cluster.create_tenant("partner");
    let stranger = cluster.create_tenant("stranger");
    let partner_client = cluster.client_for_keys(&partner);
    let stranger_client = cluster.client_for_keys(&stranger);
    owner.create_bucket().bucket("shared").send().await.expect("CreateBucket");
    put_obj(&owner, "shared", "report.csv", None).await;
    for principal in [
        r#"{"AWS":"partner"}"#.to_string(),
        r#"{"AWS":"arn:aws:iam::partner:root"}"#.to_string(),
        format!(r#"{{"AWS":"arn:aws:iam::partner:key/{}"}}"#, partner.access_key),
    ] {
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{principal},"Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::shared/*"}}]}}"#
        );
        // Naming a tenant is not public: Block Public Access (on by default) lets it in.
        owner.put_bucket_policy().bucket("shared").policy(&policy).send().await.expect("PutBucketPolicy");
        let status = owner.get_bucket_policy_status().bucket("shared").send().await.expect("GetBucketPolicyStatus");
        assert_eq!(status.policy_status().and_then(|s| s.is_public()), Some(false), "{policy}");
        let body = partner_client.get_object().bucket("shared").key("report.csv").send().await;
        let body = body.unwrap_or_else(|e| panic!("partner reads with {principal}: {e:?}"));
        assert_eq!(body.body.collect().await.unwrap().into_bytes().as_ref(), b"object body");
        partner_client
            .put_object()
            .bucket("shared")
            .key("from-partner")
            .body(ByteStream::from_static(b"hello"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("partner writes with {principal}: {e:?}"));
        // Tags on the write need s3:PutObjectTagging as well, as on AWS: the policy grants
        // s3:PutObject only (tags chosen by the writer could meet ExistingObjectTag conditions).
        let tagged = partner_client
            .put_object()
            .bucket("shared")
            .key("tagged-by-partner")
            .tagging("class=public")
            .body(ByteStream::from_static(b"hello"))
            .send()
            .await;
        assert_eq!(error_code(&tagged), Some("AccessDenied".into()), "{principal}");
        // Not listed in the policy: listing and deleting stay the owner's.
        let list = partner_client.list_objects_v2().bucket("shared").send().await;
        assert_eq!(error_code(&list), Some("AccessDenied".into()));
        let stranger_read = stranger_client.get_object().bucket("shared").key("report.csv").send().await;
        assert_eq!(error_code(&stranger_read), Some("AccessDenied".into()), "{principal}");
    }
    // What the partner wrote belongs to the bucket's owner (BucketOwnerEnforced).
    let head = owner.get_object().bucket("shared").key("from-partner").send().await.expect("owner reads");
    assert_eq!(head.body.collect().await.unwrap().into_bytes().as_ref(), b"hello");
    // The partner cannot see the bucket among its own.
    let listed = partner_client.list_buckets().send().await.expect("ListBuckets");
    assert!(listed.buckets().iter().all(|b| b.name() != Some("shared")));
    // A request naming the account it expects to own the bucket is refused when another owns
    // it (x-amz-expected-bucket-owner), before anything is stored; the owner's id is the one
    // listings give.
    let owner_id =
        owner.list_buckets().send().await.expect("ListBuckets").owner().and_then(|o| o.id()).unwrap().to_string();
    let put = |expected: &str| {
        partner_client
            .put_object()
            .bucket("shared")
            .key("expected")
            .expected_bucket_owner(expected)
            .body(ByteStream::from_static(b"meant for partner's own bucket"))
            .send()
    };
    assert_eq!(error_code(&put("partner").await), Some("AccessDenied".into()));
    let absent = owner.head_object().bucket("shared").key("expected").send().await;
    assert!(absent.is_err(), "a refused PUT stored nothing");
    put(&owner_id).await.expect("PUT expecting the right owner");
    let read =
        partner_client.get_object().bucket("shared").key("report.csv").expected_bucket_owner("partner").send().await;
    assert_eq!(error_code(&read), Some("AccessDenied".into()));
    // A copy's source bucket alike (x-amz-source-expected-bucket-owner).
    partner_client.create_bucket().bucket("partner-own").send().await.expect("CreateBucket");
    let copy = |expected: &str| {
        partner_client
            .copy_object()
            .bucket("partner-own")
            .key("copied")
            .copy_source("shared/report.csv")
            .expected_source_bucket_owner(expected)
            .expected_bucket_owner("partner")
            .send()
    };
    assert_eq!(error_code(&copy("partner").await), Some("AccessDenied".into()));
    let absent = partner_client.head_object().bucket("partner-own").key("copied").send().await;
    assert!(absent.is_err(), "a refused copy stored nothing");
    copy(&owner_id).await.expect("copy expecting the right owners");
    // Named in the query (a presigned copy): checked as the header is, and each of the two.
    let cluster = &cluster;
    let copy_by_query = move |query: String, headers: Vec<(&'static str, String)>| {
        let url = cluster.url(&format!("/shared/copied-by-query?{query}"));
        async move {
            let mut all = vec![("x-amz-copy-source", "shared/report.csv".to_string())];
            all.extend(headers);
            let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
            cluster.signed_request("PUT", &url, &all, b"").await
        }
    };
    let named = |owner: &str| format!("x-amz-source-expected-bucket-owner={owner}");
    let refused = copy_by_query(named("partner"), vec![]).await;
    assert_eq!((refused.status, refused.error_code().as_deref()), (403, Some("AccessDenied")), "{}", refused.summary());
    let header_right_query_wrong =
        copy_by_query(named("partner"), vec![("x-amz-source-expected-bucket-owner", owner_id.clone())]).await;
    assert_eq!(header_right_query_wrong.status, 403, "{}", header_right_query_wrong.summary());
    let absent = owner.head_object().bucket("shared").key("copied-by-query").send().await;
    assert!(absent.is_err(), "a refused copy stored nothing");
    let copied = copy_by_query(named(&owner_id), vec![]).await;
    assert_eq!(copied.status, 200, "{}", copied.summary());
    // UploadPartCopy's source alike.
    let upload = partner_client.create_multipart_upload().bucket("partner-own").key("assembled").send().await;
    let upload_id = upload.expect("CreateMultipartUpload").upload_id().unwrap().to_string();
    let part_copy = |expected: &str| {
        partner_client
            .upload_part_copy()
            .bucket("partner-own")
            .key("assembled")
            .upload_id(&upload_id)
            .part_number(1)
            .copy_source("shared/report.csv")
            .expected_source_bucket_owner(expected)
            .send()
    };
    assert_eq!(error_code(&part_copy("partner").await), Some("AccessDenied".into()));
    let parts = partner_client.list_parts().bucket("partner-own").key("assembled").upload_id(&upload_id).send().await;
    assert!(parts.expect("ListParts").parts().is_empty(), "a refused part copy stored nothing");
    part_copy(&owner_id).await.expect("UploadPartCopy expecting the right owner");
    let copied = partner_client.get_object().bucket("partner-own").key("copied").send().await.expect("GetObject");
    assert_eq!(copied.body.collect().await.unwrap().into_bytes().as_ref(), b"object body");
}

fn error_code<T, E: aws_sdk_s3::error::ProvideErrorMetadata>(result: &Result<T, E>) -> Option<String> {
    result.as_ref().err().and_then(|e| e.code().map(str::to_string))
}

fn error_message<T, E: aws_sdk_s3::error::ProvideErrorMetadata>(result: &Result<T, E>) -> String {
    result.as_ref().err().and_then(|e| e.message().map(str::to_string)).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_are_validated_and_block_public_access_guards_them() {
    let cluster = Cluster::start().await;
    let owner = cluster.s3_client();
    owner.create_bucket().bucket("guarded").send().await.expect("CreateBucket");
    // New buckets: every Block Public Access setting on, ACLs disabled, no policy.
    let block = owner.get_public_access_block().bucket("guarded").send().await.expect("GetPublicAccessBlock");
    let block = block.public_access_block_configuration().expect("configuration");
    assert_eq!(
        (
            block.block_public_acls(),
            block.ignore_public_acls(),
            block.block_public_policy(),
            block.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    let ownership = owner.get_bucket_ownership_controls().bucket("guarded").send().await.expect("ownership");
    let rule = &ownership.ownership_controls().expect("controls").rules()[0];
    assert_eq!(rule.object_ownership(), &ObjectOwnership::BucketOwnerEnforced);
    let missing = owner.get_bucket_policy().bucket("guarded").send().await;
    assert_eq!(error_code(&missing), Some("NoSuchBucketPolicy".into()));

    for (policy, reason) in [
        ("not json", "valid JSON"),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::guarded/*"}]}"#,
            "Principal",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:Fly","Resource":"arn:aws:s3:::guarded/*"}]}"#,
            "invalid action",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::elsewhere/*"}]}"#,
            "invalid resource",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::guarded/*","Condition":{"StringSmells":{"aws:Referer":"x"}}}]}"#,
            "Condition",
        ),
        // A tenant or a key that does not exist (a grant to whoever is made with that name later).
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"nobody-yet"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::guarded/*"}]}"#,
            "Invalid principal in policy",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::default:key/IGNNOSUCHKEY"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::guarded/*"}]}"#,
            "Invalid principal in policy",
        ),
    ] {
        let result = owner.put_bucket_policy().bucket("guarded").policy(policy).send().await;
        assert_eq!(error_code(&result), Some("MalformedPolicy".into()), "{policy}");
        assert!(error_message(&result).contains(reason), "{policy}: {}", error_message(&result));
    }
    // A public policy is refused while BlockPublicPolicy is on, and accepted once it is off.
    let public = public_policy("guarded", "Allow", &["s3:GetObject"]);
    let refused = owner.put_bucket_policy().bucket("guarded").policy(&public).send().await;
    assert_eq!(error_code(&refused), Some("AccessDenied".into()));
    remove_public_access_block(&owner, "guarded").await;
    let none = owner.get_public_access_block().bucket("guarded").send().await;
    assert_eq!(error_code(&none), Some("NoSuchPublicAccessBlockConfiguration".into()));
    owner.put_bucket_policy().bucket("guarded").policy(&public).send().await.expect("public policy");
    let status = owner.get_bucket_policy_status().bucket("guarded").send().await.expect("status");
    assert_eq!(status.policy_status().and_then(|s| s.is_public()), Some(true));
    let stored = owner.get_bucket_policy().bucket("guarded").send().await.expect("GetBucketPolicy");
    assert_eq!(stored.policy(), Some(public.as_str()));
    put_obj(&owner, "guarded", "page.html", None).await;
    // Anyone, unsigned: curl reads it; nobody may write or list.
    let anonymous = raw_request(&cluster.gateway_addr(), "GET", "/guarded/page.html", &[], b"").await.unwrap();
    assert_eq!((anonymous.status, anonymous.body_text().as_str()), (200, "object body"));
    // As AWS: response-* overrides are for signed requests only (an unsigned link must not make
    // a public object render as another type); the owner's signed request may use them.
    for method in ["GET", "HEAD"] {
        let path = "/guarded/page.html?response-content-type=text%2Fhtml";
        let overridden = raw_request(&cluster.gateway_addr(), method, path, &[], b"").await.unwrap();
        assert_eq!(overridden.status, 400, "anonymous {method} with an override: {}", overridden.body_text());
        if method == "GET" {
            assert!(overridden.body_text().contains("<Code>InvalidRequest</Code>"), "{}", overridden.body_text());
        }
    }
    let signed = owner.get_object().bucket("guarded").key("page.html").response_content_type("text/plain").send();
    assert_eq!(signed.await.expect("a signed override").content_type(), Some("text/plain"));
    let head = owner
        .head_object()
        .bucket("guarded")
        .key("page.html")
        .response_content_type("text/plain")
        .response_cache_control("no-store")
        .response_content_disposition("attachment; filename=\"page.txt\"")
        .response_content_language("fr")
        .response_content_encoding("identity")
        .response_expires(aws_sdk_s3::primitives::DateTime::from_secs(1_900_000_000))
        .send()
        .await
        .expect("a signed HEAD with overrides");
    assert_eq!(
        (head.content_type(), head.cache_control(), head.content_disposition()),
        (Some("text/plain"), Some("no-store"), Some("attachment; filename=\"page.txt\""))
    );
    assert_eq!((head.content_language(), head.content_encoding()), (Some("fr"), Some("identity")));
    assert_eq!(head.expires_string(), Some("Sun, 17 Mar 2030 17:46:40 GMT"));
    let plain = owner.head_object().bucket("guarded").key("page.html").send().await.expect("HEAD");
    assert_ne!(plain.content_type(), Some("text/plain"), "an override lasts one request");
    let write = raw_request(&cluster.gateway_addr(), "PUT", "/guarded/evil", &[], b"x").await.unwrap();
    assert_eq!(write.status, 403);
    // Existence is disclosed only to those who may list: a missing key is 403 to anyone here.
    let missing = raw_request(&cluster.gateway_addr(), "GET", "/guarded/nothing-here", &[], b"").await.unwrap();
    assert_eq!(missing.status, 403, "{}", missing.body_text());
    let owner_missing = owner.get_object().bucket("guarded").key("nothing-here").send().await;
    assert_eq!(error_code(&owner_missing), Some("NoSuchKey".into()));
    // RestrictPublicBuckets turned on: the public policy no longer opens the bucket.
    let restrict = PublicAccessBlockConfiguration::builder().restrict_public_buckets(true).build();
    owner
        .put_public_access_block()
        .bucket("guarded")
        .public_access_block_configuration(restrict)
        .send()
        .await
        .expect("PutPublicAccessBlock");
    let blocked = raw_request(&cluster.gateway_addr(), "GET", "/guarded/page.html", &[], b"").await.unwrap();
    assert_eq!(blocked.status, 403);
    // The tenant-wide setting applies to every bucket of the tenant, on top of the bucket's.
    owner.delete_public_access_block().bucket("guarded").send().await.expect("DeletePublicAccessBlock");
    let open = raw_request(&cluster.gateway_addr(), "GET", "/guarded/page.html", &[], b"").await.unwrap();
    assert_eq!(open.status, 200);
    cluster.admin(&["tenant", "public-access-block", "default", "restrict-public-buckets"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let tenant_blocked = raw_request(&cluster.gateway_addr(), "GET", "/guarded/page.html", &[], b"").await.unwrap();
        if tenant_blocked.status == 403 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the tenant's setting never applied");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The owner is never locked out of its policy, even by a Deny of everything.
    cluster.admin(&["tenant", "public-access-block", "default", "off"]);
    let deny_all = public_policy("guarded", "Deny", &["s3:*"]);
    owner.put_bucket_policy().bucket("guarded").policy(&deny_all).send().await.expect("deny everything");
    let read = owner.get_object().bucket("guarded").key("page.html").send().await;
    assert_eq!(error_code(&read), Some("AccessDenied".into()));
    owner.delete_bucket_policy().bucket("guarded").send().await.expect("the owner can still delete the policy");
    owner.get_object().bucket("guarded").key("page.html").send().await.expect("readable again");
}

#[tokio::test(flavor = "multi_thread")]
async fn conditions_test_the_request_as_aws_does() {
    let cluster = Cluster::start().await;
    let owner = cluster.s3_client();
    owner.create_bucket().bucket("cond").send().await.expect("CreateBucket");
    remove_public_access_block(&owner, "cond").await;
    put_obj(&owner, "cond", "public/a.txt", None).await;
    put_obj(&owner, "cond", "private/b.txt", None).await;
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"FromLoopback","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::cond/public/*",
         "Condition":{"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}},
        {"Sid":"FromElsewhere","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::cond/private/*",
         "Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},
        {"Sid":"ListPublicOnly","Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::cond",
         "Condition":{"StringLike":{"s3:prefix":"public/*"},"NumericLessThanEquals":{"s3:max-keys":"100"}}},
        {"Sid":"NoBots","Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::cond/*",
         "Condition":{"StringLike":{"aws:UserAgent":"*evilbot*"}}},
        {"Sid":"PrefixIsForListings","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::cond/private/*",
         "Condition":{"StringLike":{"s3:prefix":"public/*"}}}
    ]}"#;
    owner.put_bucket_policy().bucket("cond").policy(policy).send().await.expect("PutBucketPolicy");
    let addr = cluster.gateway_addr();
    let get = |path: &'static str, headers: Vec<(String, String)>| {
        let addr = addr.clone();
        async move { raw_request(&addr, "GET", path, &headers, b"").await.unwrap().status }
    };
    assert_eq!(get("/cond/public/a.txt", vec![]).await, 200, "aws:SourceIp 127.0.0.0/8 matches loopback");
    assert_eq!(get("/cond/private/b.txt", vec![]).await, 403, "aws:SourceIp 10.0.0.0/8 does not");
    let bot = vec![("User-Agent".to_string(), "evilbot/1.0".to_string())];
    assert_eq!(get("/cond/public/a.txt", bot).await, 403, "an explicit Deny on aws:UserAgent wins");
    assert_eq!(get("/cond?list-type=2&prefix=public/&max-keys=10", vec![]).await, 200);
    assert_eq!(get("/cond?list-type=2&prefix=private/", vec![]).await, 403, "s3:prefix outside public/");
    assert_eq!(get("/cond?list-type=2&prefix=public/&max-keys=1000", vec![]).await, 403, "s3:max-keys above 100");
    assert_eq!(get("/cond?list-type=2", vec![]).await, 403, "no prefix: the StringLike has no value to match");
    // s3:prefix is a key of listings only: a ?prefix= on a GetObject does not satisfy it.
    assert_eq!(get("/cond/private/b.txt?prefix=public/x", vec![]).await, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn existing_object_tags_guard_writes_to_an_object_as_well_as_reads() {
    let cluster = Cluster::start().await;
    let owner = cluster.s3_client();
    let editor_keys = cluster.create_tenant("editor");
    let editor = cluster.client_for_keys(&editor_keys);
    owner.create_bucket().bucket("tagged").send().await.expect("CreateBucket");
    for (key, tagging) in [("locked.txt", "locked=true"), ("open.txt", "locked=false")] {
        owner
            .put_object()
            .bucket("tagged")
            .key(key)
            .tagging(tagging)
            .body(ByteStream::from_static(b"v1"))
            .send()
            .await
            .expect("PutObject");
    }
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"Edit","Effect":"Allow","Principal":{"AWS":"editor"},"Action":["s3:GetObjectTagging","s3:PutObjectTagging","s3:DeleteObjectTagging"],"Resource":"arn:aws:s3:::tagged/*"},
        {"Sid":"Locked","Effect":"Deny","Principal":{"AWS":"editor"},"Action":["s3:PutObjectTagging","s3:DeleteObjectTagging"],"Resource":"arn:aws:s3:::tagged/*",
         "Condition":{"StringEquals":{"s3:ExistingObjectTag/locked":"true"}}}
    ]}"#;
    owner.put_bucket_policy().bucket("tagged").policy(policy).send().await.expect("PutBucketPolicy");
    let unlock = aws_sdk_s3::types::Tagging::builder()
        .tag_set(aws_sdk_s3::types::Tag::builder().key("locked").value("false").build().unwrap())
        .build()
        .unwrap();
    let stripped = editor.put_object_tagging().bucket("tagged").key("locked.txt").tagging(unlock.clone()).send().await;
    assert_eq!(error_code(&stripped), Some("AccessDenied".into()), "the Deny reads the object's existing tags");
    let deleted = editor.delete_object_tagging().bucket("tagged").key("locked.txt").send().await;
    assert_eq!(error_code(&deleted), Some("AccessDenied".into()));
    editor.put_object_tagging().bucket("tagged").key("open.txt").tagging(unlock).send().await.expect("open object");
    let tags = owner.get_object_tagging().bucket("tagged").key("locked.txt").send().await.expect("tags");
    assert_eq!(tags.tag_set()[0].value(), "true", "the locked object kept its tag");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_made_again_is_never_read_under_its_predecessors_policy() {
    let cluster = Cluster::start().await;
    let through_dc2 = cluster.s3_client_at(1);
    let addr = cluster.gateway_addr();
    let anonymous_get = || {
        let addr = addr.clone();
        async move { raw_request(&addr, "GET", "/reborn/doc.txt", &[], b"").await.unwrap().status }
    };
    through_dc2.create_bucket().bucket("reborn").send().await.expect("CreateBucket");
    remove_public_access_block(&through_dc2, "reborn").await;
    let public = public_policy("reborn", "Allow", &["s3:GetObject"]);
    through_dc2.put_bucket_policy().bucket("reborn").policy(public).send().await.expect("PutBucketPolicy");
    put_obj(&through_dc2, "reborn", "doc.txt", None).await;
    // The dc1 gateway caches the public bucket's view.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while anonymous_get().await != 200 {
        assert!(std::time::Instant::now() < deadline, "never public");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Within that view's life, the bucket is deleted and made again, private, through dc2.
    through_dc2.delete_object().bucket("reborn").key("doc.txt").send().await.expect("DeleteObject");
    through_dc2.delete_bucket().bucket("reborn").send().await.expect("DeleteBucket");
    through_dc2.create_bucket().bucket("reborn").send().await.expect("CreateBucket again");
    put_obj(&through_dc2, "reborn", "doc.txt", None).await;
    // The old view must not open the new bucket: its reads name the old incarnation.
    for _ in 0..5 {
        let status = anonymous_get().await;
        assert_ne!(status, 200, "the private bucket's object was served under the old bucket's policy");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acls_follow_object_ownership_and_block_public_access() {
    let cluster = Cluster::start().await;
    let owner = cluster.s3_client();
    owner.create_bucket().bucket("enforced").send().await.expect("CreateBucket");
    // ACLs disabled (the default): reading an ACL shows the owner's full control; setting a
    // public one is refused; bucket-owner-full-control is accepted.
    let acl = owner.get_bucket_acl().bucket("enforced").send().await.expect("GetBucketAcl");
    assert_eq!(acl.grants().len(), 1);
    assert_eq!(acl.grants()[0].permission().map(|p| p.as_str()), Some("FULL_CONTROL"));
    let refused = owner.put_bucket_acl().bucket("enforced").acl(BucketCannedAcl::PublicRead).send().await;
    assert_eq!(error_code(&refused), Some("AccessControlListNotSupported".into()));
    let refused = owner
        .put_object()
        .bucket("enforced")
        .key("k")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(error_code(&refused), Some("AccessControlListNotSupported".into()));
    put_obj(&owner, "enforced", "k", Some(ObjectCannedAcl::BucketOwnerFullControl)).await;
    let refused = owner.create_bucket().bucket("enforced-public").acl(BucketCannedAcl::PublicRead).send().await;
    assert_eq!(error_code(&refused), Some("InvalidBucketAclWithObjectOwnership".into()));

    // ACLs enabled: a public-read object is blocked while BlockPublicAcls is on, then served.
    owner
        .create_bucket()
        .bucket("writer")
        .object_ownership(ObjectOwnership::BucketOwnerPreferred)
        .send()
        .await
        .expect("CreateBucket with ACLs");
    let blocked = owner
        .put_object()
        .bucket("writer")
        .key("pub.txt")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(error_code(&blocked), Some("AccessDenied".into()));
    remove_public_access_block(&owner, "writer").await;
    put_obj(&owner, "writer", "pub.txt", Some(ObjectCannedAcl::PublicRead)).await;
    put_obj(&owner, "writer", "private.txt", None).await;
    let addr = cluster.gateway_addr();
    assert_eq!(raw_request(&addr, "GET", "/writer/pub.txt", &[], b"").await.unwrap().status, 200);
    assert_eq!(raw_request(&addr, "GET", "/writer/private.txt", &[], b"").await.unwrap().status, 403);
    let grants = owner.get_object_acl().bucket("writer").key("pub.txt").send().await.expect("GetObjectAcl");
    assert!(grants.grants().iter().any(|g| {
        g.grantee().and_then(|g| g.uri()) == Some("http://acs.amazonaws.com/groups/global/AllUsers")
            && g.permission().map(|p| p.as_str()) == Some("READ")
    }));
    // PutObjectAcl makes the private object public; IgnorePublicAcls then hides both again.
    owner
        .put_object_acl()
        .bucket("writer")
        .key("private.txt")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .expect("PutObjectAcl");
    assert_eq!(raw_request(&addr, "GET", "/writer/private.txt", &[], b"").await.unwrap().status, 200);
    let ignore = PublicAccessBlockConfiguration::builder().ignore_public_acls(true).build();
    owner
        .put_public_access_block()
        .bucket("writer")
        .public_access_block_configuration(ignore)
        .send()
        .await
        .expect("PutPublicAccessBlock");
    assert_eq!(raw_request(&addr, "GET", "/writer/pub.txt", &[], b"").await.unwrap().status, 403);
    // ACLs cannot be disabled while the bucket ACL grants others; once it is private they can.
    owner.delete_public_access_block().bucket("writer").send().await.expect("DeletePublicAccessBlock");
    owner.put_bucket_acl().bucket("writer").acl(BucketCannedAcl::PublicRead).send().await.expect("PutBucketAcl");
    let enforce = OwnershipControls::builder()
        .rules(OwnershipControlsRule::builder().object_ownership(ObjectOwnership::BucketOwnerEnforced).build().unwrap())
        .build()
        .unwrap();
    let refused =
        owner.put_bucket_ownership_controls().bucket("writer").ownership_controls(enforce.clone()).send().await;
    assert_eq!(error_code(&refused), Some("InvalidBucketAclWithObjectOwnership".into()));
    owner.put_bucket_acl().bucket("writer").acl(BucketCannedAcl::Private).send().await.expect("private again");
    owner.put_bucket_ownership_controls().bucket("writer").ownership_controls(enforce).send().await.expect("enforce");
    // With ACLs disabled the objects' public-read grants no longer count.
    assert_eq!(raw_request(&addr, "GET", "/writer/pub.txt", &[], b"").await.unwrap().status, 403);
}

/// A policy revoked while the gateway's answer is lost (the fault point drops it after the
/// commit; the gateway settles the proposal): the revocation holds on the gateway that made it at
/// once, and on the others once their cached view expires (`ACCESS_CACHE_TTL_MS`, 1 s).
#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_whose_answer_was_lost_still_closes_the_bucket_everywhere() {
    let (cluster, rules) = Cluster::start_with_rules(&[]).await;
    let owner = cluster.s3_client_no_retry_at(0);
    owner.create_bucket().bucket("revoked").send().await.expect("CreateBucket");
    remove_public_access_block(&owner, "revoked").await;
    let public = public_policy("revoked", "Allow", &["s3:GetObject"]);
    owner.put_bucket_policy().bucket("revoked").policy(public).send().await.expect("PutBucketPolicy");
    put_obj(&owner, "revoked", "doc.txt", None).await;
    let gateways: Vec<String> = (0..3).map(|i| authority_of(&cluster.gateways[i]).to_string()).collect();
    let anonymous_get = |gateway: usize| {
        let addr = gateways[gateway].clone();
        async move { raw_request(&addr, "GET", "/revoked/doc.txt", &[], b"").await.unwrap().status }
    };
    for gateway in 0..3 {
        assert_eq!(anonymous_get(gateway).await, 200, "public through gateway {gateway}");
    }
    let dc1 = cluster.process("gateway-dc1").listen.clone();
    rules.set(&format!("fail {dc1} gateway.meta.answer-lost\n"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let revoked = owner.delete_bucket_policy().bucket("revoked").send().await;
    rules.clear();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Settled into its real outcome (applied), or answered 503: either way the policy is gone.
    if let Err(e) = &revoked {
        assert_eq!(aws_sdk_s3::error::ProvideErrorMetadata::code(e), Some("ServiceUnavailable"), "{e:?}");
    }
    let log = std::fs::read_to_string(cluster.data_dir.join("logs/gateway-dc1.log")).unwrap_or_default();
    assert!(log.contains("settled a metadata command"), "the answer was lost and settled");
    let stored = owner.get_bucket_policy().bucket("revoked").send().await;
    assert_eq!(error_code(&stored), Some("NoSuchBucketPolicy".into()), "the revocation committed");
    assert_eq!(anonymous_get(0).await, 403, "the gateway that revoked it dropped its view");
    for gateway in 1..3 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while anonymous_get(gateway).await != 403 {
            assert!(std::time::Instant::now() < deadline, "gateway {gateway} still serves under the revoked policy");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
