//! Authentication and bad input end to end: wrong secrets, unknown keys, anonymous requests,
//! tampered signatures, presigned URLs (valid, tampered, expired), clock skew, malformed XML,
//! invalid bucket names, overlong keys, truncated bodies, payload hash and trailer checksum
//! mismatches. Whatever is refused must leave nothing visible.

mod common;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_async::time::StaticTimeSource;
use common::*;

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_and_tampered_requests_are_refused() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "auth").await;
    put_object(&s3, "auth", "existing", b"secret data").await;

    let mut wrong_secret = cluster.secret_key.clone();
    let last = wrong_secret.pop().expect("non-empty secret");
    wrong_secret.push(if last == 'A' { 'B' } else { 'A' });
    let bad = cluster.client_for(&cluster.access_key, &wrong_secret);
    assert_s3_error(bad.list_buckets().send().await, 403, &["SignatureDoesNotMatch"], "ListBuckets, wrong secret");
    assert_s3_error(
        bad.get_object().bucket("auth").key("existing").send().await,
        403,
        &["SignatureDoesNotMatch"],
        "GetObject, wrong secret",
    );
    assert_s3_error(
        bad.put_object().bucket("auth").key("written").body(ByteStream::from_static(b"x")).send().await,
        403,
        &["SignatureDoesNotMatch"],
        "PutObject, wrong secret",
    );
    assert_s3_error(
        bad.delete_object().bucket("auth").key("existing").send().await,
        403,
        &["SignatureDoesNotMatch"],
        "DeleteObject, wrong secret",
    );

    let unknown = cluster.client_for("AKIAUNKNOWNUNKNOWN00", &cluster.secret_key);
    assert_s3_error(unknown.list_buckets().send().await, 403, &["InvalidAccessKeyId"], "ListBuckets, unknown key");
    assert_s3_error(
        unknown.put_object().bucket("auth").key("written").body(ByteStream::from_static(b"x")).send().await,
        403,
        &["InvalidAccessKeyId"],
        "PutObject, unknown key",
    );
    assert_s3_error(
        unknown.create_bucket().bucket("unknown-keys-bucket").send().await,
        403,
        &["InvalidAccessKeyId"],
        "CreateBucket, unknown key",
    );

    // Anonymous requests.
    let gateway = cluster.gateway_addr();
    for (method, path) in [
        ("GET", "/auth/existing"),
        ("GET", "/"),
        ("GET", "/auth"),
        ("PUT", "/auth/anonymous"),
        ("DELETE", "/auth/existing"),
    ] {
        let response = raw_request(&gateway, method, path, &[], if method == "PUT" { b"anon" } else { b"" })
            .await
            .expect("anonymous request");
        assert_eq!(response.status, 403, "anonymous {method} {path}: {}", response.summary());
        assert_eq!(response.error_code().as_deref(), Some("AccessDenied"), "anonymous {method} {path}");
    }

    // A signed header changed after signing.
    let keys = cluster.keys();
    let url = cluster.url("/auth/tampered");
    let body = b"tampered body";
    let mut headers =
        cluster.sign(&keys, SystemTime::now(), "PUT", &url, &[("x-amz-meta-a", "1")], Payload::Bytes(body));
    for (name, value) in headers.iter_mut() {
        if name == "x-amz-meta-a" {
            *value = "2".to_owned();
        }
    }
    let response = raw_request(&gateway, "PUT", "/auth/tampered", &headers, body).await.expect("PUT");
    assert_eq!(response.status, 403, "tampered header: {}", response.summary());
    assert_eq!(response.error_code().as_deref(), Some("SignatureDoesNotMatch"));
    // Every error names what was wrong, in AWS's words (s3s sends this one without a message).
    assert!(
        response.body_text().contains(
            "<Message>The request signature we calculated does not match the signature you provided. Check your key \
             and signing method.</Message>"
        ),
        "{}",
        response.body_text()
    );

    // A correctly signed raw request works (the raw client and signer are sound).
    let signed_body = b"the body that was signed";
    let url = cluster.url("/auth/raw-ok");
    let headers = cluster.sign(&keys, SystemTime::now(), "PUT", &url, &[], Payload::Bytes(signed_body));
    let response = raw_request(&gateway, "PUT", "/auth/raw-ok", &headers, signed_body).await.expect("PUT");
    assert_eq!(response.status, 200, "signed raw PUT: {}", response.summary());

    let mut keys_left = list_all_keys(&s3, "auth").await;
    keys_left.sort();
    assert_eq!(keys_left, vec!["existing", "raw-ok"], "refused writes left nothing");
    assert_eq!(get_object(&s3, "auth", "existing").await, b"secret data");
    let listed = ok(s3.list_buckets().send().await, "ListBuckets");
    assert_eq!(listed.buckets().len(), 1, "refused CreateBucket left nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn body_not_matching_the_signed_payload_hash_is_refused() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "auth").await;
    put_object(&s3, "auth", "swapped", b"previous version").await;
    let keys = cluster.keys();
    let gateway = cluster.gateway_addr();

    let signed_body = b"the body that was signed";
    let sent_body = b"the body that was SENT!!";
    let url = cluster.url("/auth/swapped");
    let headers = cluster.sign(&keys, SystemTime::now(), "PUT", &url, &[], Payload::Bytes(signed_body));
    let response = raw_request(&gateway, "PUT", "/auth/swapped", &headers, sent_body).await.expect("PUT");
    assert_eq!(response.status, 400, "body not matching x-amz-content-sha256: {}", response.summary());
    assert_eq!(
        get_object(&s3, "auth", "swapped").await,
        b"previous version",
        "a body not matching its signed hash replaced the object"
    );
    assert!(
        matches!(response.error_code().as_deref(), Some("XAmzContentSHA256Mismatch") | Some("BadDigest")),
        "code for a body not matching x-amz-content-sha256 (AWS: XAmzContentSHA256Mismatch): {}",
        response.summary()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn presigned_urls() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "pre").await;
    put_object(&s3, "pre", "doc.txt", b"presigned content").await;
    put_object(&s3, "pre", "other.txt", b"other content").await;

    // Valid GET, on the dc1 gateway and on the dc3 gateway.
    let get = s3
        .get_object()
        .bucket("pre")
        .key("doc.txt")
        .presigned(presign_config(Duration::from_secs(600)))
        .await
        .expect("presign");
    let response = send_presigned(&get, b"").await;
    assert_eq!(response.status, 200, "presigned GET: {}", response.summary());
    assert_eq!(response.body, b"presigned content");
    assert_eq!(response.header("etag"), Some(etag_of(b"presigned content").as_str()));
    let dc3 = cluster.s3_client_at(2);
    let get_dc3 = dc3
        .get_object()
        .bucket("pre")
        .key("doc.txt")
        .presigned(presign_config(Duration::from_secs(600)))
        .await
        .expect("presign");
    let response = send_presigned(&get_dc3, b"").await;
    assert_eq!(response.status, 200, "presigned GET via dc3: {}", response.summary());
    assert_eq!(response.body, b"presigned content");

    // Valid PUT.
    let body = b"uploaded through a presigned URL";
    let put = s3
        .put_object()
        .bucket("pre")
        .key("uploaded.txt")
        .presigned(presign_config(Duration::from_secs(600)))
        .await
        .expect("presign");
    let response = send_presigned(&put, body).await;
    assert_eq!(response.status, 200, "presigned PUT: {}", response.summary());
    assert_eq!(response.header("etag"), Some(etag_of(body).as_str()));
    assert_eq!(get_object(&s3, "pre", "uploaded.txt").await, body);

    // Headers its signer never saw do not turn a presigned PUT into a copy of what the signer may
    // read (x-amz-copy-source makes a PUT a CopyObject), nor give it grants.
    put_object(&s3, "pre", "private.txt", b"not for the URL's holder").await;
    let drop = s3
        .put_object()
        .bucket("pre")
        .key("drop.txt")
        .presigned(presign_config(Duration::from_secs(600)))
        .await
        .expect("presign");
    for (name, value) in [("x-amz-copy-source", "/pre/private.txt"), ("x-amz-grant-read", "id=\"other\"")] {
        let mut headers: Vec<(String, String)> = drop.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        headers.push(("host".to_owned(), authority_of(drop.uri()).to_owned()));
        headers.push((name.to_owned(), value.to_owned()));
        let response = raw_request(&cluster.gateway_addr(), "PUT", path_and_query_of(drop.uri()), &headers, b"")
            .await
            .expect("PUT");
        assert_eq!(response.status, 403, "{name} unsigned: {}", response.summary());
        assert_eq!(response.error_code().as_deref(), Some("AccessDenied"));
        assert!(response.body_text().contains("were not signed"), "{}", response.body_text());
    }
    assert_status(s3.head_object().bucket("pre").key("drop.txt").send().await, 404, "nothing copied nor stored");

    // Tampered: another signature, another key, another method.
    let uri = get.uri().to_owned();
    let signature_at = uri.find("X-Amz-Signature=").expect("signature in the URL") + "X-Amz-Signature=".len();
    let mut tampered = uri.clone();
    let replaced = if &uri[signature_at..signature_at + 1] == "0" { "1" } else { "0" };
    tampered.replace_range(signature_at..signature_at + 1, replaced);
    let gateway = cluster.gateway_addr();
    let response = raw_request(&gateway, "GET", path_and_query_of(&tampered), &[], b"").await.expect("GET");
    assert_eq!(response.status, 403, "tampered signature: {}", response.summary());
    assert_eq!(response.error_code().as_deref(), Some("SignatureDoesNotMatch"));
    // Every error names what was wrong, in AWS's words (s3s sends this one without a message).
    assert!(
        response.body_text().contains(
            "<Message>The request signature we calculated does not match the signature you provided. Check your key \
             and signing method.</Message>"
        ),
        "{}",
        response.body_text()
    );

    let other_key = uri.replacen("/pre/doc.txt", "/pre/other.txt", 1);
    let response = raw_request(&gateway, "GET", path_and_query_of(&other_key), &[], b"").await.expect("GET");
    assert_eq!(response.status, 403, "presigned URL used for another key: {}", response.summary());
    assert_eq!(response.error_code().as_deref(), Some("SignatureDoesNotMatch"));
    // Every error names what was wrong, in AWS's words (s3s sends this one without a message).
    assert!(
        response.body_text().contains(
            "<Message>The request signature we calculated does not match the signature you provided. Check your key \
             and signing method.</Message>"
        ),
        "{}",
        response.body_text()
    );

    let response = raw_request(&gateway, "PUT", path_and_query_of(&uri), &[], b"overwrite").await.expect("PUT");
    assert_eq!(response.status, 403, "presigned GET URL used to PUT: {}", response.summary());
    assert_eq!(get_object(&s3, "pre", "doc.txt").await, b"presigned content");

    // Expired.
    let short = presign_config(Duration::from_secs(1));
    let expired_get = s3.get_object().bucket("pre").key("doc.txt").presigned(short.clone()).await.expect("presign");
    let expired_put = s3.put_object().bucket("pre").key("late.txt").presigned(short).await.expect("presign");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let response = send_presigned(&expired_get, b"").await;
    assert_eq!(response.status, 403, "expired presigned GET: {}", response.summary());
    assert_eq!(response.error_code().as_deref(), Some("AccessDenied"), "expired presigned GET");
    let response = send_presigned(&expired_put, b"too late").await;
    assert_eq!(response.status, 403, "expired presigned PUT: {}", response.summary());
    assert_eq!(response.error_code().as_deref(), Some("AccessDenied"), "expired presigned PUT");
    assert_status(s3.head_object().bucket("pre").key("late.txt").send().await, 404, "expired PUT stored nothing");

    // AWS: a presigned URL lives at most 7 days (X-Amz-Expires <= 604800), checked before the
    // signature. The SDK refuses to make such a URL, so a valid one is stretched.
    let valid = s3
        .get_object()
        .bucket("pre")
        .key("doc.txt")
        .presigned(presign_config(Duration::from_secs(604800)))
        .await
        .expect("presign");
    let uri = valid.uri().to_string();
    assert!(uri.contains("X-Amz-Expires=604800"), "{uri}");
    assert_eq!(send_presigned(&valid, b"").await.status, 200, "a URL valid for exactly 7 days");
    let stretched = uri.replace("X-Amz-Expires=604800", "X-Amz-Expires=604801");
    let response = raw_request(&gateway, "GET", path_and_query_of(&stretched), &[], b"").await.expect("GET");
    assert_eq!(response.status, 400, "presigned URL valid for more than 7 days: {}", response.summary());
    assert_eq!(response.error_code().as_deref(), Some("AuthorizationQueryParametersError"), "{}", response.summary());
    assert!(String::from_utf8_lossy(&response.body).contains("604800"), "{}", response.summary());

    // Signature Version 2 is not accepted, in a header or in a URL (AWS's answer in every region
    // opened since 2014).
    let v2_header = [("authorization".to_string(), format!("AWS {}:c2lnbmF0dXJl", cluster.keys().access_key))];
    let response = raw_request(&gateway, "GET", "/pre/doc.txt", &v2_header, b"").await.expect("GET");
    assert_eq!(response.status, 400, "SigV2 header: {}", response.summary());
    assert_eq!(response.error_code().as_deref(), Some("InvalidRequest"), "{}", response.summary());
    let v2_url = format!("/pre/doc.txt?AWSAccessKeyId={}&Expires=4102444800&Signature=c2ln", cluster.keys().access_key);
    let response = raw_request(&gateway, "GET", &v2_url, &[], b"").await.expect("GET");
    assert_eq!(response.status, 400, "SigV2 presigned URL: {}", response.summary());
    assert_eq!(response.error_code().as_deref(), Some("InvalidRequest"), "{}", response.summary());
}

fn skewed_client(cluster: &Cluster, offset_secs: i64) -> aws_sdk_s3::Client {
    let now = SystemTime::now();
    let time = if offset_secs < 0 {
        now - Duration::from_secs(offset_secs.unsigned_abs())
    } else {
        now + Duration::from_secs(offset_secs as u64)
    };
    let config = cluster
        .s3_config(&cluster.endpoint, &cluster.access_key, &cluster.secret_key)
        .time_source(StaticTimeSource::new(time))
        // The SDK would otherwise learn the skew from the error and retry with corrected time.
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

#[tokio::test(flavor = "multi_thread")]
async fn clock_skew_beyond_15_minutes_is_refused() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "skew").await;

    // A fresh client per request: the SDK learns the skew from an error response's Date header
    // and corrects later requests of the same client.
    for offset in [-20 * 60, 20 * 60] {
        assert_s3_error(
            skewed_client(&cluster, offset).list_buckets().send().await,
            403,
            &["RequestTimeTooSkewed"],
            &format!("ListBuckets signed {offset} s off"),
        );
        assert_s3_error(
            skewed_client(&cluster, offset)
                .put_object()
                .bucket("skew")
                .key("skewed")
                .body(ByteStream::from_static(b"x"))
                .send()
                .await,
            403,
            &["RequestTimeTooSkewed"],
            &format!("PutObject signed {offset} s off"),
        );
    }
    assert_status(s3.head_object().bucket("skew").key("skewed").send().await, 404, "skewed PUT stored nothing");

    // Raw, signed 20 minutes in the past.
    let url = cluster.url("/skew/raw");
    let headers = cluster.sign(
        &cluster.keys(),
        SystemTime::now() - Duration::from_secs(20 * 60),
        "PUT",
        &url,
        &[],
        Payload::Bytes(b"raw"),
    );
    let response = raw_request(&cluster.gateway_addr(), "PUT", "/skew/raw", &headers, b"raw").await.expect("PUT");
    assert_eq!(response.status, 403, "raw skewed PUT: {}", response.summary());
    assert_eq!(response.error_code().as_deref(), Some("RequestTimeTooSkewed"));

    // Within the window is fine.
    let slightly = skewed_client(&cluster, -5 * 60);
    put_object(&slightly, "skew", "slightly", b"five minutes off").await;
    assert_eq!(get_object(&s3, "skew", "slightly").await, b"five minutes off");
    assert_eq!(list_all_keys(&s3, "skew").await, vec!["slightly"]);
}

/// AWS: "The Content-MD5 or x-amz-sdk-checksum-algorithm header is required for all
/// Multi-Object Delete requests", and a body that does not match it deletes nothing (a body
/// changed on the way must not name other keys). Without one: 400 InvalidRequest; one that does
/// not match: 400 BadDigest; Content-MD5 that is no MD5: 400 InvalidDigest; a matching
/// Content-MD5 or x-amz-checksum-crc32 (what current SDKs send): the keys are deleted.
#[tokio::test(flavor = "multi_thread")]
async fn delete_objects_requires_and_checks_a_digest_of_its_body() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "digest").await;
    for key in ["a", "b", "c"] {
        put_object(&s3, "digest", key, key.as_bytes()).await;
    }
    let body = |key: &str| format!("<Delete><Object><Key>{key}</Key></Object></Delete>").into_bytes();
    let url = cluster.url("/digest?delete");
    let (a, b) = (body("a"), body("b"));
    let (md5_of_b, crc_of_b) = (md5_base64(&b), checksum_base64("crc32", &b));
    let refusals: [(&[(&str, &str)], u16, &str); 4] = [
        (&[], 400, "InvalidRequest"),
        (&[("content-md5", md5_of_b.as_str())], 400, "BadDigest"),
        (&[("x-amz-checksum-crc32", crc_of_b.as_str())], 400, "BadDigest"),
        (&[("content-md5", "bm90IGFuIG1kNQ==")], 400, "InvalidDigest"),
    ];
    for (headers, status, code) in refusals {
        let response = cluster.signed_request("POST", &url, headers, &a).await;
        assert_eq!(
            (response.status, response.error_code().as_deref()),
            (status, Some(code)),
            "{headers:?}: {}",
            response.summary()
        );
    }
    assert_eq!(list_all_keys(&s3, "digest").await, ["a", "b", "c"], "a refused DeleteObjects deleted nothing");
    let md5 = md5_base64(&a);
    let response = cluster.signed_request("POST", &url, &[("content-md5", md5.as_str())], &a).await;
    assert_eq!(response.status, 200, "{}", response.summary());
    let response = cluster.signed_request("POST", &url, &[("x-amz-checksum-crc32", crc_of_b.as_str())], &b).await;
    assert_eq!(response.status, 200, "{}", response.summary());
    assert_eq!(list_all_keys(&s3, "digest").await, ["c"]);
}

/// A PutObject whose Content-MD5 is not base64 of 16 bytes is refused (400 InvalidDigest) before
/// its body is read, as AWS refuses it: here the body announces 1 GiB and sends 4 KiB, and the
/// answer comes at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_content_md5_is_refused_before_the_body_is_read() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "md5").await;
    let path = "/md5/big";
    let content_length = (1u64 << 30).to_string();
    let headers = cluster.sign(
        &cluster.keys(),
        SystemTime::now(),
        "PUT",
        &cluster.url(path),
        &[("content-length", content_length.as_str()), ("content-md5", "bm90IGFuIG1kNQ==")],
        Payload::Unsigned,
    );
    let started = std::time::Instant::now();
    let response = raw_request(&cluster.gateway_addr(), "PUT", path, &headers, &[7u8; 4096]).await.expect("PUT");
    assert_eq!(
        (response.status, response.error_code().as_deref()),
        (400, Some("InvalidDigest")),
        "{}",
        response.summary()
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "refused without waiting for the body");
    assert_status(s3.head_object().bucket("md5").key("big").send().await, 404, "nothing stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_xml_is_refused() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "xml").await;
    put_object(&s3, "xml", "a", b"a").await;
    put_object(&s3, "xml", "b", b"b").await;

    for body in [
        &b"<Delete><Object><Key>a</Key></Object>"[..],
        &b"this is not xml at all"[..],
        &b"<Delete><Object><Key>a</Key></Object></Delete"[..],
    ] {
        let md5 = md5_base64(body);
        let response =
            cluster.signed_request("POST", &cluster.url("/xml?delete"), &[("content-md5", md5.as_str())], body).await;
        assert_eq!(
            (response.status, response.error_code().as_deref()),
            (400, Some("MalformedXML")),
            "DeleteObjects with body {:?}: {}",
            String::from_utf8_lossy(body),
            response.summary()
        );
    }
    let mut keys = list_all_keys(&s3, "xml").await;
    keys.sort();
    assert_eq!(keys, vec!["a", "b"], "malformed DeleteObjects deleted nothing");

    let created = ok(s3.create_multipart_upload().bucket("xml").key("mp").send().await, "CreateMultipartUpload");
    let upload_id = created.upload_id().expect("UploadId").to_owned();
    let part = ok(
        s3.upload_part()
            .bucket("xml")
            .key("mp")
            .upload_id(&upload_id)
            .part_number(1)
            .body(ByteStream::from_static(b"only part"))
            .send()
            .await,
        "UploadPart",
    );
    let etag = part.e_tag().expect("ETag").to_owned();
    let url = cluster.url(&format!("/xml/mp?uploadId={}", percent_encode(&upload_id, false)));
    for body in [
        format!("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag>"),
        "{\"parts\": [1]}".to_owned(),
        format!("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></Complete"),
    ] {
        let response = cluster.signed_request("POST", &url, &[], body.as_bytes()).await;
        assert_eq!(
            (response.status, response.error_code().as_deref()),
            (400, Some("MalformedXML")),
            "CompleteMultipartUpload with body {body:?}: {}",
            response.summary()
        );
    }
    assert_status(s3.head_object().bucket("xml").key("mp").send().await, 404, "no object after malformed completes");

    // The upload is still there and completes with well-formed XML.
    let body = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    );
    let response = cluster.signed_request("POST", &url, &[], body.as_bytes()).await;
    assert_eq!(response.status, 200, "well-formed raw CompleteMultipartUpload: {}", response.summary());
    assert_eq!(get_object(&s3, "xml", "mp").await, b"only part");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_bucket_names_and_overlong_keys() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();

    let too_long = "a".repeat(64);
    let invalid = [
        "ab",
        too_long.as_str(),
        "UpperCase",
        "under_score",
        "-startdash",
        "enddash-",
        ".startdot",
        "enddot.",
        "192.168.5.4",
        "double..dot",
        "spa%20ce",
        "ex%21clamation",
    ];
    for name in invalid {
        let response = cluster.signed_request("PUT", &cluster.url(&format!("/{name}")), &[], b"").await;
        assert_eq!(
            (response.status, response.error_code().as_deref()),
            (400, Some("InvalidBucketName")),
            "CreateBucket {name:?}: {}",
            response.summary()
        );
        // The message names the rule broken (the aws CLI showed "Unknown" for an empty one).
        let body = String::from_utf8_lossy(&response.body);
        assert!(body.contains("<Message>The specified bucket is not valid. Bucket names"), "{name:?}: {body}");
    }
    let listed = ok(s3.list_buckets().send().await, "ListBuckets");
    assert!(listed.buckets().is_empty(), "invalid names created buckets: {:?}", listed.buckets());

    let longest = "b".repeat(63);
    for name in ["abc", longest.as_str(), "a.b-c.d1", "123"] {
        let response = cluster.signed_request("PUT", &cluster.url(&format!("/{name}")), &[], b"").await;
        assert_eq!(response.status, 200, "CreateBucket of valid name {name:?}: {}", response.summary());
    }
    ok(s3.head_bucket().bucket(longest.as_str()).send().await, "HeadBucket of a 63-character name");

    // Keys: 1024 bytes of UTF-8 is the limit, counted in bytes.
    let ascii_1024 = "k".repeat(1024);
    let utf8_1024 = "é".repeat(512);
    for key in [&ascii_1024, &utf8_1024] {
        put_object(&s3, "abc", key, b"longest key").await;
        assert_eq!(get_object(&s3, "abc", key).await, b"longest key");
    }
    let ascii_1025 = "k".repeat(1025);
    let utf8_1026 = "é".repeat(513);
    for key in [&ascii_1025, &utf8_1026] {
        assert_s3_error(
            s3.put_object().bucket("abc").key(key).body(ByteStream::from_static(b"x")).send().await,
            400,
            &["KeyTooLongError"],
            &format!("PutObject with a {}-byte key", key.len()),
        );
        assert_s3_error(
            s3.create_multipart_upload().bucket("abc").key(key).send().await,
            400,
            &["KeyTooLongError"],
            &format!("CreateMultipartUpload with a {}-byte key", key.len()),
        );
        assert_s3_error(
            s3.copy_object()
                .bucket("abc")
                .key(key)
                .copy_source(format!("abc/{}", percent_encode(&ascii_1024, true)))
                .send()
                .await,
            400,
            &["KeyTooLongError"],
            &format!("CopyObject to a {}-byte key", key.len()),
        );
        // A delete names keys by the same rules (nothing a PUT could not have made).
        assert_s3_error(
            s3.delete_object().bucket("abc").key(key).send().await,
            400,
            &["KeyTooLongError"],
            &format!("DeleteObject of a {}-byte key", key.len()),
        );
    }
    let deleted = ok(
        s3.delete_objects()
            .bucket("abc")
            .delete(
                aws_sdk_s3::types::Delete::builder()
                    .objects(aws_sdk_s3::types::ObjectIdentifier::builder().key(&ascii_1025).build().unwrap())
                    .build()
                    .unwrap(),
            )
            .send()
            .await,
        "DeleteObjects with an overlong key",
    );
    let refused: Vec<_> = deleted.errors().iter().map(|e| (e.key().unwrap_or_default(), e.code())).collect();
    assert_eq!(refused, vec![(ascii_1025.as_str(), Some("KeyTooLongError"))], "per-key error of DeleteObjects");
    let mut keys = list_all_keys(&s3, "abc").await;
    keys.sort();
    let mut expected = vec![ascii_1024.clone(), utf8_1024.clone()];
    expected.sort();
    assert_eq!(keys, expected, "overlong keys stored nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_bodies_store_nothing() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("truncated_bodies_store_nothing");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "cut").await;
    let original = rng.bytes(2 * MIB);
    put_object(&s3, "cut", "victim", &original).await;
    let gateway = cluster.gateway_addr();

    // Presigned PUTs (UNSIGNED-PAYLOAD): Content-Length promises more than is sent.
    for (key, promised, sent) in [("small", 100usize, 50usize), ("large", 3 * MIB, MIB + 17), ("victim", 2 * MIB, MIB)]
    {
        let presigned = s3
            .put_object()
            .bucket("cut")
            .key(key)
            .presigned(presign_config(Duration::from_secs(600)))
            .await
            .expect("presign");
        let mut headers: Vec<(String, String)> =
            presigned.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        headers.push(("Content-Length".to_owned(), promised.to_string()));
        let head = build_request_head(&gateway, "PUT", path_and_query_of(presigned.uri()), &headers, None);
        let body = rng.bytes(sent);
        let response = send_truncated(&gateway, &head, &body).await;
        if let Some(response) = &response {
            assert!(response.status >= 400, "truncated presigned PUT of {key} answered {}", response.summary());
        }
    }

    // Header-signed PUT whose payload hash covers the whole promised body.
    let full = rng.bytes(200_000);
    let url = cluster.url("/cut/signed");
    let mut headers = cluster.sign(&cluster.keys(), SystemTime::now(), "PUT", &url, &[], Payload::Bytes(&full));
    headers.push(("Content-Length".to_owned(), full.len().to_string()));
    let head = build_request_head(&gateway, "PUT", "/cut/signed", &headers, None);
    if let Some(response) = send_truncated(&gateway, &head, &full[..100_000]).await {
        assert!(response.status >= 400, "truncated signed PUT answered {}", response.summary());
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    for key in ["small", "large", "signed"] {
        assert_status(
            s3.head_object().bucket("cut").key(key).send().await,
            404,
            &format!("HEAD {key} after a truncated upload"),
        );
    }
    assert_bytes_eq(&get_object(&s3, "cut", "victim").await, &original, "object overwritten by a truncated upload");
    assert_eq!(list_all_keys(&s3, "cut").await, vec!["victim"]);

    // The gateway still serves complete uploads.
    put_object(&s3, "cut", "small", b"complete").await;
    assert_eq!(get_object(&s3, "cut", "small").await, b"complete");
}

/// aws-chunked body with a trailing checksum: `size;\r\ndata\r\n ... 0\r\ntrailer\r\n\r\n`
/// (`0\r\n\r\n` at the end when `trailer_value` is None: no trailer).
fn aws_chunked(data: &[u8], chunk_size: usize, trailer_name: &str, trailer_value: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(chunk_size) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    match trailer_value {
        Some(value) => out.extend_from_slice(format!("0\r\n{trailer_name}:{value}\r\n\r\n").as_bytes()),
        None => out.extend_from_slice(b"0\r\n\r\n"),
    }
    out
}

async fn put_with_trailer(cluster: &Cluster, key: &str, data: &[u8], checksum: &str) -> RawResponse {
    put_announcing_a_trailer(cluster, key, data, Some(checksum)).await
}

/// An aws-chunked PUT whose x-amz-trailer announces a CRC32, sent with `checksum` as that trailer
/// (or none).
async fn put_announcing_a_trailer(cluster: &Cluster, key: &str, data: &[u8], checksum: Option<&str>) -> RawResponse {
    let body = aws_chunked(data, 64 * 1024, "x-amz-checksum-crc32", checksum);
    put_aws_chunked_announcing_crc32(cluster, key, data.len(), &body).await
}

/// An aws-chunked PUT of `body` (`decoded` bytes of data) whose x-amz-trailer announces a CRC32.
async fn put_aws_chunked_announcing_crc32(cluster: &Cluster, key: &str, decoded: usize, body: &[u8]) -> RawResponse {
    let path = format!("/trailer/{key}");
    let url = cluster.url(&path);
    let decoded_length = decoded.to_string();
    let content_length = body.len().to_string();
    let headers = cluster.sign(
        &cluster.keys(),
        SystemTime::now(),
        "PUT",
        &url,
        &[
            ("content-encoding", "aws-chunked"),
            ("content-length", content_length.as_str()),
            ("x-amz-decoded-content-length", decoded_length.as_str()),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
            ("x-amz-sdk-checksum-algorithm", "CRC32"),
        ],
        Payload::UnsignedTrailer,
    );
    raw_request(&cluster.gateway_addr(), "PUT", &path, &headers, body).await.expect("aws-chunked PUT")
}

/// A PUT whose body is signed chunk by chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD: minio-go, the
/// Java SDK and others over plain HTTP), `tamper` applied to the body after signing.
async fn put_chunk_signed(cluster: &Cluster, key: &str, data: &[u8], tamper: impl FnOnce(&mut Vec<u8>)) -> RawResponse {
    const CHUNK: usize = 64 * 1024;
    let path = format!("/signed/{key}");
    let url = cluster.url(&path);
    let decoded_length = data.len().to_string();
    let content_length = aws_chunked_signed_len(data.len(), CHUNK).to_string();
    let (keys, time) = (cluster.keys(), SystemTime::now());
    let headers = cluster.sign(
        &keys,
        time,
        "PUT",
        &url,
        &[
            ("content-encoding", "aws-chunked"),
            ("content-length", content_length.as_str()),
            ("x-amz-decoded-content-length", decoded_length.as_str()),
        ],
        Payload::StreamingSigned,
    );
    let mut body = aws_chunked_signed(&cluster.region, &keys, time, &headers, data, CHUNK);
    assert_eq!(body.len().to_string(), content_length);
    tamper(&mut body);
    raw_request(&cluster.gateway_addr(), "PUT", &path, &headers, &body).await.expect("chunk-signed PUT")
}

/// Chunk-signed uploads: stored byte for byte when every chunk's signature holds; a chunk whose
/// bytes were changed in flight, or whose signature is not the one chained from the request's,
/// is 403 SignatureDoesNotMatch and changes nothing (the object it would replace stays).
#[tokio::test(flavor = "multi_thread")]
async fn a_chunk_signed_upload_is_stored_and_a_tampered_chunk_is_refused() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "signed").await;
    let data = TestRng::new("a_chunk_signed_upload").bytes(200_000);
    let response = put_chunk_signed(&cluster, "good", &data, |_| {}).await;
    assert_eq!(response.status, 200, "chunk-signed PUT: {}", response.summary());
    assert_bytes_eq(&get_object(&s3, "signed", "good").await, &data, "chunk-signed upload");

    put_object(&s3, "signed", "victim", b"the original").await;
    // A byte of the third chunk's data changed (its header is ~85 bytes, each chunk 64 KiB).
    let in_third_chunk = 2 * (64 * 1024 + 90) + 1000;
    let flip = |body: &mut Vec<u8>| body[in_third_chunk] ^= 0x01;
    // The second chunk's signature replaced by the first's (a replay within the stream).
    let replay = |body: &mut Vec<u8>| {
        let signature_at = |from: usize| {
            from + body[from..].windows(16).position(|w| w == b"chunk-signature=").expect("a chunk header") + 16
        };
        let first = signature_at(0);
        let second = signature_at(first);
        let copied = body[first..first + 64].to_vec();
        body[second..second + 64].copy_from_slice(&copied);
    };
    for (what, tamper) in [
        ("a changed byte", Box::new(flip) as Box<dyn FnOnce(&mut Vec<u8>)>),
        ("a replayed signature", Box::new(replay)),
    ] {
        let response = put_chunk_signed(&cluster, "victim", &data, tamper).await;
        assert_eq!(response.status, 403, "{what}: {}", response.summary());
        assert!(response.summary().contains("SignatureDoesNotMatch"), "{what}: {}", response.summary());
        assert_eq!(get_object(&s3, "signed", "victim").await, b"the original", "{what}: nothing replaced");
    }
    assert_eq!(list_all_keys(&s3, "signed").await, vec!["good", "victim"]);
}

/// s3s buffers a whole aws-chunked chunk before it checks the chunk's signature; the gateway
/// refuses a chunk announced larger than 16 MiB before any of it is buffered, and a well-framed
/// body of ordinary chunks still goes through.
#[tokio::test(flavor = "multi_thread")]
async fn an_aws_chunked_chunk_beyond_the_bound_is_refused_before_it_is_buffered() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "trailer").await;
    // A header announcing a 1 GiB chunk, then a few bytes of it: the answer comes at once.
    let mut body = format!("{:x}\r\n", 1u64 << 30).into_bytes();
    body.extend_from_slice(&[7u8; 4096]);
    let path = "/trailer/huge";
    let decoded_length = (1u64 << 30).to_string();
    let content_length = body.len().to_string();
    let headers = cluster.sign(
        &cluster.keys(),
        SystemTime::now(),
        "PUT",
        &cluster.url(path),
        &[
            ("content-encoding", "aws-chunked"),
            ("content-length", content_length.as_str()),
            ("x-amz-decoded-content-length", decoded_length.as_str()),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ],
        Payload::UnsignedTrailer,
    );
    let started = std::time::Instant::now();
    let response = raw_request(&cluster.gateway_addr(), "PUT", path, &headers, &body).await.expect("aws-chunked PUT");
    assert_eq!(response.status, 400, "a 1 GiB chunk: {}", response.summary());
    assert_eq!(response.error_code().as_deref(), Some("InvalidRequest"), "{}", response.summary());
    assert!(response.summary().contains("aws-chunked chunk larger than"), "{}", response.summary());
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "refused without waiting for the chunk");
    assert_status(s3.head_object().bucket("trailer").key("huge").send().await, 404, "a refused chunk stores nothing");
    let data = TestRng::new("an_aws_chunked_chunk_beyond_the_bound").bytes(300_000);
    let response = put_with_trailer(&cluster, "fine", &data, &checksum_base64("crc32", &data)).await;
    assert_eq!(response.status, 200, "64 KiB chunks: {}", response.summary());
    assert_bytes_eq(&get_object(&s3, "trailer", "fine").await, &data, "an upload of ordinary chunks");
}

#[tokio::test(flavor = "multi_thread")]
async fn trailing_checksum_mismatch_is_refused() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("trailing_checksum_mismatch_is_refused");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "trailer").await;
    let data = rng.bytes(200_000);

    let response = put_with_trailer(&cluster, "good", &data, &checksum_base64("crc32", &data)).await;
    assert_eq!(response.status, 200, "aws-chunked PUT with the right trailer: {}", response.summary());
    assert_bytes_eq(&get_object(&s3, "trailer", "good").await, &data, "aws-chunked upload");

    let wrong = checksum_base64("crc32", b"something else");
    for key in ["bad", "good"] {
        let response = put_with_trailer(&cluster, key, &rng.bytes(200_000), &wrong).await;
        assert_eq!(response.status, 400, "aws-chunked PUT {key} with a wrong trailer: {}", response.summary());
        assert!(
            matches!(response.error_code().as_deref(), Some("BadDigest") | Some("InvalidRequest")),
            "code for a wrong trailing checksum: {}",
            response.summary()
        );
    }
    assert_status(s3.head_object().bucket("trailer").key("bad").send().await, 404, "wrong trailer stored nothing");
    assert_bytes_eq(&get_object(&s3, "trailer", "good").await, &data, "a refused overwrite keeps the old version");

    // The trailer announced never comes: refused, not stored unchecked.
    for key in ["untrailed", "good"] {
        let response = put_announcing_a_trailer(&cluster, key, &rng.bytes(200_000), None).await;
        assert_eq!(response.status, 400, "aws-chunked PUT {key} without its trailer: {}", response.summary());
        assert_eq!(response.error_code().as_deref(), Some("InvalidRequest"), "{}", response.summary());
    }
    assert_status(s3.head_object().bucket("trailer").key("untrailed").send().await, 404, "nothing stored");
    assert_bytes_eq(&get_object(&s3, "trailer", "good").await, &data, "the old version stays");

    // A checksum trailer x-amz-trailer did not announce (besides the one it did): 400, never a
    // 500 for a checksum the gateway was not asked to compute.
    let other = rng.bytes(200_000);
    let mut body = aws_chunked(&other, 64 * 1024, "x-amz-checksum-crc32", Some(&checksum_base64("crc32", &other)));
    body.truncate(body.len() - 2);
    body.extend_from_slice(format!("x-amz-checksum-sha256:{}\r\n\r\n", checksum_base64("sha256", &other)).as_bytes());
    let response = put_aws_chunked_announcing_crc32(&cluster, "unannounced", other.len(), &body).await;
    assert_eq!(response.status, 400, "an unannounced trailer: {}", response.summary());
    assert_status(s3.head_object().bucket("trailer").key("unannounced").send().await, 404, "nothing stored");
}
