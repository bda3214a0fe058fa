//! Object operations end to end: PutObject, GetObject (ranges, conditions), HeadObject,
//! DeleteObject(s), CopyObject, system and user metadata, checksums, virtual-hosted style.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_s3::primitives::{ByteStream, DateTime, DateTimeFormat};
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, Delete, MetadataDirective, ObjectIdentifier};
use common::*;

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread")]
async fn put_get_head_of_every_size_from_every_gateway() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("put_get_head_of_every_size_from_every_gateway");
    let (s3, status) = cluster.s3_client_with_status();
    create_bucket(&s3, "sizes").await;

    // Empty, tiny, around 1 KiB (inline) and 4 KiB, around 64 KiB, one partial stripe, two
    // stripes.
    let sizes = [0, 1, 1000, 4095, 4096, 4097, 64 * 1024, 64 * 1024 + 1, MIB + 3, 5 * MIB + 17];
    let mut objects = Vec::new();
    for size in sizes {
        let key = format!("object-{size}");
        let data = rng.bytes(size);
        status.reset();
        let etag = put_object(&s3, "sizes", &key, &data).await;
        assert_eq!(status.last(), Some(200), "PutObject {key} status");
        assert_eq!(etag, etag_of(&data), "PutObject ETag of {key}");
        objects.push((key, data));
    }
    // Up to 1 KiB inline in the metadata (IGNIFUGE_INLINE_MAX_BYTES), above it erasure-coded:
    // packed with others up to 1 MiB (IGNIFUGE_PACK_MAX_BYTES), striped on their own beyond.
    let report = cluster.durability();
    assert_eq!(report["tenants"][0]["inline_objects"], 3, "0, 1 and 1000 bytes: {report}");
    assert_eq!(report["tenants"][0]["inline_bytes"], 1 + 1000, "{report}");
    assert_eq!(report["tenants"][0]["full_budget_objects"], 7, "the seven larger ones: {report}");

    for (index, gateway) in cluster.gateways.iter().enumerate() {
        let client = cluster.s3_client_at(index);
        for (key, data) in &objects {
            let context = format!("{key} via {gateway}");
            let got = ok(client.get_object().bucket("sizes").key(key).send().await, &format!("GetObject {context}"));
            assert_eq!(got.e_tag(), Some(etag_of(data).as_str()), "GET ETag {context}");
            assert_eq!(got.content_length(), Some(data.len() as i64), "GET Content-Length {context}");
            assert!(got.last_modified().is_some(), "GET Last-Modified {context}");
            let body = got.body.collect().await.expect("body").into_bytes();
            assert_bytes_eq(&body, data, &format!("GET {context}"));

            let head = ok(client.head_object().bucket("sizes").key(key).send().await, &format!("HeadObject {context}"));
            assert_eq!(head.e_tag(), Some(etag_of(data).as_str()), "HEAD ETag {context}");
            assert_eq!(head.content_length(), Some(data.len() as i64), "HEAD Content-Length {context}");
            let modified = head.last_modified().expect("HEAD Last-Modified");
            let age = DateTime::from(std::time::SystemTime::now()).secs() - modified.secs();
            assert!((-120..600).contains(&age), "Last-Modified of {context} is {age} s ago");
        }
    }

    // Overwrite: the new bytes and ETag win everywhere, including a size class change.
    let replacement = rng.bytes(3 * MIB + 1);
    put_object(&s3, "sizes", "object-1000", &replacement).await;
    for index in 0..cluster.gateways.len() {
        let client = cluster.s3_client_at(index);
        assert_bytes_eq(&get_object(&client, "sizes", "object-1000").await, &replacement, "overwritten object");
    }
    let small = rng.bytes(10);
    put_object(&cluster.s3_client_at(2), "sizes", "object-5242897", &small).await;
    assert_bytes_eq(
        &get_object(&s3, "sizes", "object-5242897").await,
        &small,
        "large object overwritten by a small one",
    );

    assert_s3_error(
        s3.get_object().bucket("sizes").key("missing").send().await,
        404,
        &["NoSuchKey"],
        "GetObject of a missing key",
    );
    assert_status(s3.head_object().bucket("sizes").key("missing").send().await, 404, "HeadObject of a missing key");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_with_special_characters_round_trip() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "keys").await;

    let keys = [
        "simple",
        "dir/sub/file.txt",
        "with space",
        "plus+sign",
        "percent%41literal",
        "unicode-ключ-鍵-ü",
        "question?mark",
        "hash#tag",
        "amp&equals=semi;colon",
        "tilde~star*paren()",
        "quote'double\"",
        "xml<>&",
        "trailing/",
        "a//double-slash",
        "/leading-slash",
        "comma,colon:at@dollar$",
    ];
    for (index, key) in keys.iter().enumerate() {
        put_object(&s3, "keys", key, format!("body of {index}").as_bytes()).await;
    }
    for (index, key) in keys.iter().enumerate() {
        assert_eq!(get_object(&s3, "keys", key).await, format!("body of {index}").as_bytes(), "GET of key {key:?}");
    }
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(list_all_keys(&s3, "keys").await, expected, "ListObjectsV2 keys");
}

#[tokio::test(flavor = "multi_thread")]
async fn system_and_user_metadata_are_stored_and_returned() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("system_and_user_metadata_are_stored_and_returned");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "meta").await;
    let expires = DateTime::from_secs(1_893_553_445); // 2030-01-02T03:04:05Z
    let data = rng.bytes(200 * 1024);

    ok(
        s3.put_object()
            .bucket("meta")
            .key("report.bin")
            .body(ByteStream::from(data.clone()))
            .content_type("application/x-ignifuge-test")
            .content_encoding("gzip")
            .content_disposition("attachment; filename=\"report.bin\"")
            .cache_control("max-age=3600, must-revalidate")
            .expires(expires)
            .metadata("color", "blue")
            .metadata("Mixed-Case", "Value With Spaces")
            .metadata("empty", "")
            .send()
            .await,
        "PutObject with metadata",
    );

    let expected_metadata: HashMap<String, String> =
        [("color", "blue"), ("mixed-case", "Value With Spaces"), ("empty", "")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();

    for (index, gateway) in cluster.gateways.iter().enumerate() {
        let client = cluster.s3_client_at(index);
        let head = ok(client.head_object().bucket("meta").key("report.bin").send().await, "HeadObject");
        let get = ok(client.get_object().bucket("meta").key("report.bin").send().await, "GetObject");
        macro_rules! check_headers {
            ($out:expr, $what:expr) => {{
                let context = format!("{} via {gateway}", $what);
                assert_eq!($out.content_type(), Some("application/x-ignifuge-test"), "Content-Type {context}");
                assert_eq!($out.content_encoding(), Some("gzip"), "Content-Encoding {context}");
                assert_eq!(
                    $out.content_disposition(),
                    Some("attachment; filename=\"report.bin\""),
                    "Content-Disposition {context}"
                );
                assert_eq!($out.cache_control(), Some("max-age=3600, must-revalidate"), "Cache-Control {context}");
                let expires_header = $out.expires_string().unwrap_or_else(|| panic!("no Expires {context}"));
                let parsed = DateTime::from_str(expires_header, DateTimeFormat::HttpDate)
                    .unwrap_or_else(|e| panic!("Expires {expires_header:?} is no HTTP date ({e}) {context}"));
                assert_eq!(parsed.secs(), expires.secs(), "Expires {context}");
                let metadata: HashMap<String, String> = $out.metadata().cloned().unwrap_or_default();
                assert_eq!(metadata, expected_metadata, "user metadata {context}");
                assert_eq!($out.e_tag(), Some(etag_of(&data).as_str()), "ETag {context}");
            }};
        }
        check_headers!(head, "HEAD");
        check_headers!(get, "GET");
        let body = get.body.collect().await.expect("body").into_bytes();
        assert_bytes_eq(&body, &data, "GET body of an object with Content-Encoding: gzip");
    }

    // Overwriting without metadata drops the old metadata.
    put_object(&s3, "meta", "report.bin", b"plain").await;
    let head = ok(s3.head_object().bucket("meta").key("report.bin").send().await, "HeadObject after overwrite");
    assert!(
        head.metadata().is_none_or(|m| m.is_empty()),
        "metadata after an overwrite without metadata: {:?}",
        head.metadata()
    );
    assert_eq!(head.content_disposition(), None, "Content-Disposition after overwrite");
    assert_eq!(head.cache_control(), None, "Cache-Control after overwrite");
    // The SDK sends application/octet-stream by default; a PUT with no Content-Type at all (curl
    // --upload-file, a hand-made request) is served as binary/octet-stream, as AWS does.
    let url = format!("{}/meta/untyped.bin", cluster.endpoint);
    let put = cluster.signed_request("PUT", &url, &[], b"no type").await;
    assert_eq!(put.status, 200, "PUT without Content-Type: {}", put.body_text());
    let head = ok(s3.head_object().bucket("meta").key("untyped.bin").send().await, "HeadObject of an untyped PUT");
    assert_eq!(head.content_type(), Some("binary/octet-stream"), "Content-Type of a PUT without one");
}

/// A streaming (file) body makes the SDK send aws-chunked, so `Content-Encoding: gzip` goes out
/// together with `Content-Encoding: aws-chunked` (two header lines); only gzip is stored.
#[tokio::test(flavor = "multi_thread")]
async fn streaming_upload_keeps_the_users_content_encoding() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("streaming_upload_keeps_the_users_content_encoding");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "meta").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("streamed.bin");
    let streamed_md5 = rng.write_file(&path, 300 * 1024);
    ok(
        s3.put_object()
            .bucket("meta")
            .key("streamed.bin")
            .body(ByteStream::from_path(&path).await.expect("file body"))
            .content_encoding("gzip")
            .content_type("text/plain")
            .metadata("origin", "file")
            .send()
            .await,
        "streaming PutObject with Content-Encoding",
    );
    let head = ok(s3.head_object().bucket("meta").key("streamed.bin").send().await, "HeadObject streamed");
    assert_eq!(head.content_encoding(), Some("gzip"), "aws-chunked is not stored as an encoding");
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.content_length(), Some(300 * 1024));
    assert_eq!(head.metadata().and_then(|m| m.get("origin")).map(String::as_str), Some("file"));
    assert_eq!(head.e_tag(), Some(format!("\"{streamed_md5}\"").as_str()), "ETag of a streamed upload");
    let body = get_object(&s3, "meta", "streamed.bin").await;
    assert_eq!(md5_hex(&body), streamed_md5, "bytes of a streamed upload");
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_get_and_head() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "cond").await;
    let data = b"conditional body".to_vec();
    let etag = put_object(&s3, "cond", "obj", &data).await;
    let head = ok(s3.head_object().bucket("cond").key("obj").send().await, "HeadObject");
    let last_modified = *head.last_modified().expect("Last-Modified");
    let an_hour_before = DateTime::from_secs(last_modified.secs() - 3600);
    let other_etag = "\"0123456789abcdef0123456789abcdef\"";

    // If-Match
    let got = ok(
        s3.get_object().bucket("cond").key("obj").if_match(&etag).send().await,
        "GET If-Match with the current ETag",
    );
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), &data[..]);
    assert_s3_error(
        s3.get_object().bucket("cond").key("obj").if_match(other_etag).send().await,
        412,
        &["PreconditionFailed"],
        "GET If-Match with another ETag",
    );
    assert_status(
        s3.head_object().bucket("cond").key("obj").if_match(other_etag).send().await,
        412,
        "HEAD If-Match with another ETag",
    );
    // If-Match compares strongly: the current ETag marked weak matches nothing, on a read or a
    // write (it matched, as the ETag without its W/).
    let weak = format!("W/{etag}");
    assert_s3_error(
        s3.get_object().bucket("cond").key("obj").if_match(&weak).send().await,
        412,
        &["PreconditionFailed"],
        "GET If-Match with the current ETag marked weak",
    );
    assert_s3_error(
        s3.put_object().bucket("cond").key("obj").if_match(&weak).body(ByteStream::from_static(b"x")).send().await,
        412,
        &["PreconditionFailed"],
        "PUT If-Match with the current ETag marked weak",
    );
    // If-None-Match compares weakly: the current ETag marked weak is a 304.
    assert_status(
        s3.get_object().bucket("cond").key("obj").if_none_match(&weak).send().await,
        304,
        "GET If-None-Match with the current ETag marked weak",
    );

    // If-None-Match
    assert_status(
        s3.get_object().bucket("cond").key("obj").if_none_match(&etag).send().await,
        304,
        "GET If-None-Match with the current ETag",
    );
    assert_status(
        s3.head_object().bucket("cond").key("obj").if_none_match(&etag).send().await,
        304,
        "HEAD If-None-Match with the current ETag",
    );
    ok(
        s3.get_object().bucket("cond").key("obj").if_none_match(other_etag).send().await,
        "GET If-None-Match with another ETag",
    );

    // If-Modified-Since: the browser-cache round trip (send back Last-Modified) gives 304.
    assert_status(
        s3.get_object().bucket("cond").key("obj").if_modified_since(last_modified).send().await,
        304,
        "GET If-Modified-Since = Last-Modified",
    );
    assert_status(
        s3.head_object().bucket("cond").key("obj").if_modified_since(last_modified).send().await,
        304,
        "HEAD If-Modified-Since = Last-Modified",
    );
    ok(
        s3.get_object().bucket("cond").key("obj").if_modified_since(an_hour_before).send().await,
        "GET If-Modified-Since an hour before the upload",
    );

    // If-Unmodified-Since
    ok(
        s3.get_object().bucket("cond").key("obj").if_unmodified_since(last_modified).send().await,
        "GET If-Unmodified-Since = Last-Modified",
    );
    assert_s3_error(
        s3.get_object().bucket("cond").key("obj").if_unmodified_since(an_hour_before).send().await,
        412,
        &["PreconditionFailed"],
        "GET If-Unmodified-Since an hour before the upload",
    );

    // Combinations as AWS documents them: If-Match true + If-Unmodified-Since false -> 200;
    // If-None-Match false + If-Modified-Since true -> 304.
    ok(
        s3.get_object().bucket("cond").key("obj").if_match(&etag).if_unmodified_since(an_hour_before).send().await,
        "GET If-Match (true) + If-Unmodified-Since (false)",
    );
    assert_status(
        s3.get_object().bucket("cond").key("obj").if_none_match(&etag).if_modified_since(an_hour_before).send().await,
        304,
        "GET If-None-Match (false) + If-Modified-Since (true)",
    );

    // AWS sends the object's validators with a 304 and a 412 of a GET or HEAD.
    let http_date = last_modified.fmt(aws_smithy_types::date_time::Format::HttpDate).expect("an HTTP date");
    let expected = (Some(etag.clone()), Some(http_date));
    assert_eq!(
        validators(s3.get_object().bucket("cond").key("obj").if_none_match(&etag).send().await),
        (Some(304), expected.0.clone(), expected.1.clone()),
        "ETag and Last-Modified of a 304 GET"
    );
    assert_eq!(
        validators(s3.head_object().bucket("cond").key("obj").if_modified_since(last_modified).send().await),
        (Some(304), expected.0.clone(), expected.1.clone()),
        "ETag and Last-Modified of a 304 HEAD"
    );
    assert_eq!(
        validators(s3.get_object().bucket("cond").key("obj").if_match(other_etag).send().await),
        (Some(412), expected.0.clone(), expected.1.clone()),
        "ETag and Last-Modified of a 412 GET"
    );

    // After an overwrite the old ETag no longer matches.
    let new_etag = put_object(&s3, "cond", "obj", b"second version").await;
    assert_ne!(new_etag, etag);
    assert_s3_error(
        s3.get_object().bucket("cond").key("obj").if_match(&etag).send().await,
        412,
        &["PreconditionFailed"],
        "GET If-Match with the ETag of the previous version",
    );
    ok(
        s3.get_object().bucket("cond").key("obj").if_none_match(&etag).send().await,
        "GET If-None-Match with the ETag of the previous version",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn range_requests() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("range_requests");
    let (s3, status) = cluster.s3_client_with_status();
    create_bucket(&s3, "ranges").await;
    // Two stripes (5 MiB of data each) of 1 MiB shards: ranges cross shard and stripe borders.
    let size = 6 * MIB + 5;
    let data = rng.bytes(size);
    put_object(&s3, "ranges", "big", &data).await;
    let small = rng.bytes(1000);
    put_object(&s3, "ranges", "small", &small).await;

    let cases: Vec<(&str, String, usize, usize)> = vec![
        ("big", "bytes=0-0".into(), 0, 0),
        ("big", "bytes=0-99".into(), 0, 99),
        ("big", "bytes=100-".into(), 100, size - 1),
        ("big", "bytes=-500".into(), size - 500, size - 1),
        ("big", format!("bytes={}-{}", MIB - 10, MIB + 9), MIB - 10, MIB + 9),
        ("big", format!("bytes={}-{}", 5 * MIB - 10, 5 * MIB + 9), 5 * MIB - 10, 5 * MIB + 9),
        ("big", format!("bytes={}-{}", 3 * MIB, 3 * MIB + 2 * MIB - 1), 3 * MIB, 5 * MIB - 1),
        ("big", format!("bytes={}-{}", size - 10, size + 100), size - 10, size - 1),
        ("big", format!("bytes=-{}", size + 1000), 0, size - 1),
        ("big", format!("bytes={}-", size - 1), size - 1, size - 1),
        ("small", "bytes=10-19".into(), 10, 19),
        ("small", "bytes=-1".into(), 999, 999),
        ("small", "bytes=990-5000".into(), 990, 999),
    ];
    for (gateway_index, (key, range, first, last)) in cases.into_iter().enumerate().map(|(i, c)| (i % 3, c)) {
        let object: &[u8] = if key == "big" { &data } else { &small };
        let context = format!("GET {key} Range: {range}");
        let client = if gateway_index == 0 { s3.clone() } else { cluster.s3_client_at(gateway_index) };
        status.reset();
        let got = ok(client.get_object().bucket("ranges").key(key).range(&range).send().await, &context);
        if gateway_index == 0 {
            assert_eq!(status.last(), Some(206), "{context}: status");
        }
        assert_eq!(
            got.content_range(),
            Some(format!("bytes {first}-{last}/{}", object.len()).as_str()),
            "{context}: Content-Range"
        );
        assert_eq!(got.content_length(), Some((last - first + 1) as i64), "{context}: Content-Length");
        let body = got.body.collect().await.expect("body").into_bytes();
        assert_bytes_eq(&body, &object[first..=last], &context);
    }

    for range in [format!("bytes={size}-"), format!("bytes={}-{}", size + 5, size + 10)] {
        assert_s3_error(
            s3.get_object().bucket("ranges").key("big").range(&range).send().await,
            416,
            &["InvalidRange"],
            &format!("GET Range: {range} past the end"),
        );
    }
    assert_s3_error(
        s3.get_object().bucket("ranges").key("small").range("bytes=1000-1001").send().await,
        416,
        &["InvalidRange"],
        "GET Range starting at the size of a small object",
    );
    // An empty object: a range from a byte is unsatisfiable; a suffix is the whole, empty,
    // object, 200 (it answered 206 with "bytes 0-0/0", which names a byte it does not have).
    put_object(&s3, "ranges", "empty", b"").await;
    for range in ["bytes=0-", "bytes=0-0"] {
        assert_s3_error(
            s3.get_object().bucket("ranges").key("empty").range(range).send().await,
            416,
            &["InvalidRange"],
            &format!("GET Range: {range} of an empty object"),
        );
    }
    status.reset();
    let got = ok(s3.get_object().bucket("ranges").key("empty").range("bytes=-5").send().await, "suffix of empty");
    assert_eq!((status.last(), got.content_length(), got.content_range()), (Some(200), Some(0), None));
    assert!(got.body.collect().await.expect("body").into_bytes().is_empty());

    // HEAD with a Range answers as GET would, without the body: 206, the range's length and
    // Content-Range (it answered 200 with the range's length: a client sizing a download from
    // HEAD took the range for the object).
    status.reset();
    let head = ok(s3.head_object().bucket("ranges").key("big").range("bytes=100-199").send().await, "HEAD Range");
    assert_eq!(status.last(), Some(206), "HEAD Range: status");
    assert_eq!(head.content_length(), Some(100));
    assert_eq!(head.content_range(), Some(format!("bytes 100-199/{size}").as_str()));
    status.reset();
    let whole = ok(s3.head_object().bucket("ranges").key("big").send().await, "HEAD");
    assert_eq!((status.last(), whole.content_length(), whole.content_range()), (Some(200), Some(size as i64), None));
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_object_and_delete_objects() {
    let cluster = Cluster::start().await;
    let (s3, status) = cluster.s3_client_with_status();
    create_bucket(&s3, "del").await;
    let keys = ["a", "b", "c", "d", "e", "x&y<z>.txt", "keep"];
    for key in keys {
        put_object(&s3, "del", key, format!("data {key}").as_bytes()).await;
    }

    status.reset();
    ok(s3.delete_object().bucket("del").key("a").send().await, "DeleteObject a");
    assert_eq!(status.last(), Some(204), "DeleteObject status");
    assert_s3_error(s3.get_object().bucket("del").key("a").send().await, 404, &["NoSuchKey"], "GET of a deleted key");
    for index in 1..cluster.gateways.len() {
        assert_status(
            cluster.s3_client_at(index).head_object().bucket("del").key("a").send().await,
            404,
            &format!("HEAD of a deleted key via gateway {index}"),
        );
    }
    for missing in ["a", "never-existed"] {
        status.reset();
        ok(
            s3.delete_object().bucket("del").key(missing).send().await,
            &format!("DeleteObject of missing key {missing}"),
        );
        assert_eq!(status.last(), Some(204), "DeleteObject of a missing key: status");
    }
    assert_s3_error(
        s3.delete_object().bucket("no-such-bucket").key("a").send().await,
        404,
        &["NoSuchBucket"],
        "DeleteObject in a missing bucket",
    );

    let ids = |keys: &[&str]| -> Vec<ObjectIdentifier> {
        keys.iter().map(|k| ObjectIdentifier::builder().key(*k).build().expect("identifier")).collect()
    };

    // Verbose: every key is reported deleted, missing ones and a key named twice included; a
    // key whose ETag condition fails is an Errors entry and stays (AWS: each key on its own).
    let mut objects = ids(&["b", "c", "x&y<z>.txt", "missing-key", "b"]);
    objects.push(ObjectIdentifier::builder().key("keep").e_tag("\"not-its-etag\"").build().expect("identifier"));
    let verbose = ok(
        s3.delete_objects()
            .bucket("del")
            .delete(Delete::builder().set_objects(Some(objects)).build().expect("delete"))
            .send()
            .await,
        "DeleteObjects verbose",
    );
    let mut deleted: Vec<&str> = verbose.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort();
    assert_eq!(deleted, vec!["b", "b", "c", "missing-key", "x&y<z>.txt"], "verbose Deleted");
    let errors: Vec<(Option<&str>, Option<&str>)> = verbose.errors().iter().map(|e| (e.key(), e.code())).collect();
    assert_eq!(errors, [(Some("keep"), Some("PreconditionFailed"))], "verbose Errors");

    // Quiet: nothing reported on success.
    let quiet = ok(
        s3.delete_objects()
            .bucket("del")
            .delete(Delete::builder().set_objects(Some(ids(&["d", "e"]))).quiet(true).build().expect("delete"))
            .send()
            .await,
        "DeleteObjects quiet",
    );
    assert!(quiet.deleted().is_empty(), "quiet Deleted: {:?}", quiet.deleted());
    assert!(quiet.errors().is_empty(), "quiet Errors: {:?}", quiet.errors());

    for index in 0..cluster.gateways.len() {
        assert_eq!(
            list_all_keys(&cluster.s3_client_at(index), "del").await,
            vec!["keep"],
            "keys left after the deletes, via gateway {index}"
        );
    }
    for key in ["b", "c", "d", "e", "x&y<z>.txt"] {
        assert_s3_error(
            s3.get_object().bucket("del").key(key).send().await,
            404,
            &["NoSuchKey"],
            &format!("GET of {key} deleted by DeleteObjects"),
        );
    }
    assert_eq!(get_object(&s3, "del", "keep").await, b"data keep");
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_object_within_and_across_buckets() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("copy_object_within_and_across_buckets");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "src-bucket").await;
    create_bucket(&s3, "dst-bucket").await;
    let data = rng.bytes(2 * MIB + 300);
    let source_key = "src dir/original ü.bin";
    ok(
        s3.put_object()
            .bucket("src-bucket")
            .key(source_key)
            .body(ByteStream::from(data.clone()))
            .content_type("application/x-original")
            .cache_control("no-cache")
            .metadata("origin", "source")
            .metadata("version", "1")
            .send()
            .await,
        "PutObject source",
    );
    let copy_source = format!("src-bucket/{}", percent_encode(source_key, true));

    // Same bucket, default directive COPY: bytes, ETag and metadata carried over.
    let copied = ok(
        s3.copy_object().bucket("src-bucket").key("copy-same-bucket").copy_source(&copy_source).send().await,
        "CopyObject within the bucket",
    );
    let result = copied.copy_object_result().expect("CopyObjectResult");
    assert_eq!(result.e_tag(), Some(etag_of(&data).as_str()), "CopyObjectResult ETag");
    assert!(result.last_modified().is_some(), "CopyObjectResult LastModified");
    let head = ok(s3.head_object().bucket("src-bucket").key("copy-same-bucket").send().await, "HEAD copy");
    assert_eq!(head.content_type(), Some("application/x-original"));
    assert_eq!(head.cache_control(), Some("no-cache"));
    assert_eq!(head.e_tag(), Some(etag_of(&data).as_str()));
    let metadata = head.metadata().cloned().unwrap_or_default();
    assert_eq!(metadata.get("origin").map(String::as_str), Some("source"));
    assert_eq!(metadata.get("version").map(String::as_str), Some("1"));
    assert_bytes_eq(&get_object(&s3, "src-bucket", "copy-same-bucket").await, &data, "copy within the bucket");

    // Across buckets, REPLACE: new metadata only.
    ok(
        s3.copy_object()
            .bucket("dst-bucket")
            .key("nested/copy-replaced")
            .copy_source(&copy_source)
            .metadata_directive(MetadataDirective::Replace)
            .content_type("text/x-replaced")
            .metadata("replaced", "yes")
            .send()
            .await,
        "CopyObject across buckets with REPLACE",
    );
    let head = ok(s3.head_object().bucket("dst-bucket").key("nested/copy-replaced").send().await, "HEAD replaced copy");
    assert_eq!(head.content_type(), Some("text/x-replaced"));
    let metadata = head.metadata().cloned().unwrap_or_default();
    assert_eq!(
        metadata,
        [("replaced".to_owned(), "yes".to_owned())].into_iter().collect::<HashMap<_, _>>(),
        "metadata after REPLACE"
    );
    assert_bytes_eq(
        &get_object(&cluster.s3_client_at(1), "dst-bucket", "nested/copy-replaced").await,
        &data,
        "copy across buckets via dc2",
    );

    // Copy onto itself with REPLACE updates the metadata and keeps the bytes.
    ok(
        s3.copy_object()
            .bucket("src-bucket")
            .key(source_key)
            .copy_source(&copy_source)
            .metadata_directive(MetadataDirective::Replace)
            .content_type("application/x-original")
            .metadata("version", "2")
            .send()
            .await,
        "CopyObject onto itself with REPLACE",
    );
    let head = ok(s3.head_object().bucket("src-bucket").key(source_key).send().await, "HEAD after self copy");
    assert_eq!(head.metadata().and_then(|m| m.get("version")).map(String::as_str), Some("2"));
    assert_eq!(head.metadata().and_then(|m| m.get("origin")), None);
    assert_bytes_eq(&get_object(&s3, "src-bucket", source_key).await, &data, "self copy");

    // Copies are independent of the source afterwards.
    let new_source = rng.bytes(1000);
    put_object(&s3, "src-bucket", source_key, &new_source).await;
    assert_bytes_eq(
        &get_object(&s3, "src-bucket", "copy-same-bucket").await,
        &data,
        "copy after the source was overwritten",
    );
    ok(s3.delete_object().bucket("src-bucket").key(source_key).send().await, "DeleteObject source");
    assert_bytes_eq(
        &get_object(&s3, "dst-bucket", "nested/copy-replaced").await,
        &data,
        "copy after the source was deleted",
    );

    // Small objects copy too.
    put_object(&s3, "src-bucket", "tiny", b"tiny").await;
    ok(
        s3.copy_object().bucket("dst-bucket").key("tiny-copy").copy_source("src-bucket/tiny").send().await,
        "CopyObject of a small object",
    );
    assert_eq!(get_object(&s3, "dst-bucket", "tiny-copy").await, b"tiny");

    assert_s3_error(
        s3.copy_object().bucket("dst-bucket").key("x").copy_source("src-bucket/missing").send().await,
        404,
        &["NoSuchKey"],
        "CopyObject from a missing key",
    );
    assert_s3_error(
        s3.copy_object().bucket("dst-bucket").key("x").copy_source("no-such-bucket/k").send().await,
        404,
        &["NoSuchBucket"],
        "CopyObject from a missing bucket",
    );
    assert_s3_error(
        s3.copy_object().bucket("no-such-bucket").key("x").copy_source("src-bucket/tiny").send().await,
        404,
        &["NoSuchBucket"],
        "CopyObject into a missing bucket",
    );
}

fn algorithm(name: &str) -> ChecksumAlgorithm {
    match name {
        "crc32" => ChecksumAlgorithm::Crc32,
        "crc32c" => ChecksumAlgorithm::Crc32C,
        "crc64nvme" => ChecksumAlgorithm::Crc64Nvme,
        "sha1" => ChecksumAlgorithm::Sha1,
        "sha256" => ChecksumAlgorithm::Sha256,
        other => panic!("unknown algorithm {other}"),
    }
}

macro_rules! checksum_field {
    ($out:expr, $name:expr) => {
        match $name {
            "crc32" => $out.checksum_crc32(),
            "crc32c" => $out.checksum_crc32_c(),
            "crc64nvme" => $out.checksum_crc64_nvme(),
            "sha1" => $out.checksum_sha1(),
            "sha256" => $out.checksum_sha256(),
            other => panic!("unknown algorithm {other}"),
        }
    };
}

const ALGORITHMS: [&str; 5] = ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"];

#[tokio::test(flavor = "multi_thread")]
async fn checksums_are_verified_stored_and_returned() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("checksums_are_verified_stored_and_returned");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "sums").await;

    // In-memory bodies: the SDK sends x-amz-checksum-<algorithm> as a header.
    for (index, name) in ALGORITHMS.iter().enumerate() {
        let key = format!("header-{name}");
        let data = rng.bytes(100_000 + index);
        let expected = checksum_base64(name, &data);
        let put = ok(
            s3.put_object()
                .bucket("sums")
                .key(&key)
                .body(ByteStream::from(data.clone()))
                .checksum_algorithm(algorithm(name))
                .send()
                .await,
            &format!("PutObject with {name}"),
        );
        assert_eq!(checksum_field!(put, *name), Some(expected.as_str()), "PutObject {name} echo");

        let get = ok(
            s3.get_object().bucket("sums").key(&key).checksum_mode(ChecksumMode::Enabled).send().await,
            &format!("GetObject {key} with checksum mode"),
        );
        assert_eq!(checksum_field!(get, *name), Some(expected.as_str()), "GetObject {name}");
        let body = get.body.collect().await.expect("body (validated by the SDK)").into_bytes();
        assert_bytes_eq(&body, &data, &key);

        let head = ok(
            s3.head_object().bucket("sums").key(&key).checksum_mode(ChecksumMode::Enabled).send().await,
            &format!("HeadObject {key} with checksum mode"),
        );
        assert_eq!(checksum_field!(head, *name), Some(expected.as_str()), "HeadObject {name}");
    }

    // The SDK default (when_supported) on an in-memory PutObject: CRC32.
    let data = rng.bytes(70_000);
    put_object(&s3, "sums", "default", &data).await;
    let get = ok(
        s3.get_object().bucket("sums").key("default").checksum_mode(ChecksumMode::Enabled).send().await,
        "GetObject default checksum",
    );
    assert_eq!(get.checksum_crc32(), Some(checksum_base64("crc32", &data).as_str()), "default CRC32");
    assert_bytes_eq(&get.body.collect().await.expect("body").into_bytes(), &data, "default");

    // Streaming bodies over plain HTTP: the SDK sends signed aws-chunked with the checksum in a
    // trailer (default CRC32, and an explicit SHA256).
    let dir = tempfile::tempdir().expect("tempdir");
    for (key, name, explicit) in [("stream-default", "crc32", false), ("stream-sha256", "sha256", true)] {
        let path = dir.path().join(key);
        let md5 = rng.write_file(&path, 3 * MIB + 7);
        let file_bytes = std::fs::read(&path).expect("read back");
        let expected = checksum_base64(name, &file_bytes);
        let mut request =
            s3.put_object().bucket("sums").key(key).body(ByteStream::from_path(&path).await.expect("file body"));
        if explicit {
            request = request.checksum_algorithm(algorithm(name));
        }
        let put = ok(request.send().await, &format!("streaming PutObject {key}"));
        assert_eq!(put.e_tag(), Some(format!("\"{md5}\"").as_str()), "ETag of {key}");
        let get = ok(
            s3.get_object().bucket("sums").key(key).checksum_mode(ChecksumMode::Enabled).send().await,
            &format!("GetObject {key}"),
        );
        assert_eq!(checksum_field!(get, name), Some(expected.as_str()), "trailer checksum of {key}");
        let body = get.body.collect().await.expect("body").into_bytes();
        assert_bytes_eq(&body, &file_bytes, key);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_checksums_are_rejected_and_nothing_is_stored() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("wrong_checksums_are_rejected_and_nothing_is_stored");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "bad-sums").await;
    let original = rng.bytes(100_000);
    put_object(&s3, "bad-sums", "existing", &original).await;

    let data = rng.bytes(150_000);
    let other = rng.bytes(150_000);
    for key in ["fresh", "existing"] {
        for name in ALGORITHMS {
            let wrong = checksum_base64(name, &other);
            let request = s3.put_object().bucket("bad-sums").key(key).body(ByteStream::from(data.clone()));
            let request = match name {
                "crc32" => request.checksum_crc32(wrong),
                "crc32c" => request.checksum_crc32_c(wrong),
                "crc64nvme" => request.checksum_crc64_nvme(wrong),
                "sha1" => request.checksum_sha1(wrong),
                "sha256" => request.checksum_sha256(wrong),
                _ => unreachable!(),
            };
            assert_s3_error(
                request.send().await,
                400,
                &["BadDigest", "InvalidRequest"],
                &format!("PutObject {key} with a wrong x-amz-checksum-{name}"),
            );
        }
        assert_s3_error(
            s3.put_object()
                .bucket("bad-sums")
                .key(key)
                .body(ByteStream::from(data.clone()))
                .content_md5(md5_base64(&other))
                .send()
                .await,
            400,
            &["BadDigest"],
            &format!("PutObject {key} with a wrong Content-MD5"),
        );
    }

    assert_status(
        s3.head_object().bucket("bad-sums").key("fresh").send().await,
        404,
        "no object after rejected uploads",
    );
    assert_bytes_eq(
        &get_object(&s3, "bad-sums", "existing").await,
        &original,
        "a rejected overwrite leaves the previous version",
    );
    assert_eq!(list_all_keys(&s3, "bad-sums").await, vec!["existing"]);

    // The right Content-MD5 is accepted.
    ok(
        s3.put_object()
            .bucket("bad-sums")
            .key("fresh")
            .body(ByteStream::from(data.clone()))
            .content_md5(md5_base64(&data))
            .send()
            .await,
        "PutObject with the right Content-MD5",
    );
    assert_bytes_eq(&get_object(&s3, "bad-sums", "fresh").await, &data, "fresh");
}

#[tokio::test(flavor = "multi_thread")]
async fn virtual_hosted_style_requests() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "vhost-bucket").await;
    put_object(&s3, "vhost-bucket", "dir/obj.txt", b"hello from a virtual host").await;
    let port = cluster.base_port;
    let gateway = cluster.gateway_addr();

    // The SDK presigns a virtual-hosted-style URL for endpoint http://localhost:PORT.
    let vhost_config = cluster
        .s3_config(&format!("http://localhost:{port}"), &cluster.access_key, &cluster.secret_key)
        .force_path_style(false)
        .build();
    let vhost_client = aws_sdk_s3::Client::from_conf(vhost_config);
    let presigned = vhost_client
        .get_object()
        .bucket("vhost-bucket")
        .key("dir/obj.txt")
        .presigned(presign_config(Duration::from_secs(300)))
        .await
        .expect("presign");
    assert!(
        presigned.uri().starts_with(&format!("http://vhost-bucket.localhost:{port}/dir/obj.txt")),
        "the SDK made no virtual-hosted URL: {}",
        presigned.uri()
    );
    let response = send_presigned_to(&presigned, Some(&gateway), b"").await;
    assert_eq!(response.status, 200, "presigned virtual-hosted GET: {}", response.summary());
    assert_eq!(response.body, b"hello from a virtual host");

    // Header-signed PUT, GET and ListObjectsV2 with Host: BUCKET.localhost:PORT.
    let keys = cluster.keys();
    let put_url = format!("http://vhost-bucket.localhost:{port}/vh%20put.txt");
    let body = b"put through a virtual host";
    let headers = cluster.sign(&keys, std::time::SystemTime::now(), "PUT", &put_url, &[], Payload::Bytes(body));
    let response = raw_request(&gateway, "PUT", "/vh%20put.txt", &headers, body).await.expect("PUT");
    assert_eq!(response.status, 200, "virtual-hosted PUT: {}", response.summary());
    assert_eq!(get_object(&s3, "vhost-bucket", "vh put.txt").await, body);

    let list_url = format!("http://vhost-bucket.localhost:{port}/?list-type=2&prefix=");
    let headers = cluster.sign(&keys, std::time::SystemTime::now(), "GET", &list_url, &[], Payload::Bytes(b""));
    let response = raw_request(&gateway, "GET", "/?list-type=2&prefix=", &headers, b"").await.expect("LIST");
    assert_eq!(response.status, 200, "virtual-hosted ListObjectsV2: {}", response.summary());
    let text = response.body_text();
    assert!(
        text.contains("<Key>dir/obj.txt</Key>") && text.contains("<Key>vh put.txt</Key>"),
        "virtual-hosted ListObjectsV2 lists both keys: {text}"
    );
    assert_eq!(xml_value(&text, "Name").as_deref(), Some("vhost-bucket"));

    // A real client, if this machine resolves *.localhost.
    use std::net::ToSocketAddrs;
    if ("vhost-bucket.localhost", port).to_socket_addrs().is_ok_and(|mut a| a.next().is_some()) {
        assert_eq!(get_object(&vhost_client, "vhost-bucket", "dir/obj.txt").await, b"hello from a virtual host");
    } else {
        println!("note: vhost-bucket.localhost does not resolve here; skipped the SDK virtual-hosted GET");
    }
}

/// Starts a conditional PutObject whose body arrives in two halves: the gateway checks the
/// precondition when the request begins, then waits for the rest of the body.
async fn start_conditional_put(
    cluster: &Cluster,
    bucket: &str,
    key: &str,
    condition: (&str, &str),
    body: &[u8],
) -> InFlightRequest {
    let url = format!("{}/{bucket}/{key}", cluster.endpoint);
    let headers =
        cluster.sign(&cluster.keys(), std::time::SystemTime::now(), "PUT", &url, &[condition], Payload::Unsigned);
    let head = build_request_head(authority_of(&url), "PUT", path_and_query_of(&url), &headers, Some(body.len()));
    let in_flight = InFlightRequest::start(authority_of(&url), &head, &body[..body.len() / 2])
        .await
        .unwrap_or_else(|e| panic!("starting PUT {url}: {e:#}"));
    // Long enough for the gateway to have read the headers and checked the precondition.
    tokio::time::sleep(Duration::from_millis(500)).await;
    in_flight
}

fn assert_conflict(answer: RawResponse) {
    assert_eq!(
        (answer.status, answer.error_code().as_deref()),
        (409, Some("ConditionalRequestConflict")),
        "{}",
        answer.summary()
    );
}

/// AWS: a conditional write whose precondition held when it began, but which another write or
/// delete of the key overtook before it completed, gets 409 ConditionalRequestConflict (retry);
/// a precondition already false when the request begins gets 412 PreconditionFailed.
#[tokio::test(flavor = "multi_thread")]
async fn a_conditional_put_overtaken_by_another_write_gets_409() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("a_conditional_put_overtaken_by_another_write_gets_409");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "race").await;

    // If-None-Match: * overtaken by an unconditional create of the same key.
    let body = rng.bytes(4000);
    let slow = start_conditional_put(&cluster, "race", "created", ("if-none-match", "*"), &body).await;
    let winner = rng.bytes(100);
    put_object(&s3, "race", "created", &winner).await;
    assert_conflict(slow.finish(&body[body.len() / 2..]).await.expect("slow PUT"));
    assert_eq!(get_object(&s3, "race", "created").await, winner, "the conflicting write changed nothing");
    // The same request now: the precondition is false from the start.
    assert_s3_error(
        s3.put_object()
            .bucket("race")
            .key("created")
            .if_none_match("*")
            .body(ByteStream::from(body.clone()))
            .send()
            .await,
        412,
        &["PreconditionFailed"],
        "PutObject If-None-Match: * on an existing key",
    );

    // If-Match overtaken by a delete (the case AWS documents), with a striped body.
    let etag = put_object(&s3, "race", "updated", &rng.bytes(2000)).await;
    let body = rng.bytes(6 * MIB);
    let slow = start_conditional_put(&cluster, "race", "updated", ("if-match", &etag), &body).await;
    ok(s3.delete_object().bucket("race").key("updated").send().await, "DeleteObject");
    assert_conflict(slow.finish(&body[body.len() / 2..]).await.expect("slow PUT"));
    assert_s3_error(
        s3.head_object().bucket("race").key("updated").send().await,
        404,
        &["NotFound", "NoSuchKey"],
        "the refused write left nothing visible",
    );
    // If-Match on a key with no current version is 404 NoSuchKey from the start, as AWS answers
    // ("The specified key does not exist."), for PutObject and CompleteMultipartUpload alike.
    assert_s3_error(
        s3.put_object().bucket("race").key("updated").if_match(&etag).body(ByteStream::from_static(b"x")).send().await,
        404,
        &["NoSuchKey"],
        "PutObject If-Match on a deleted key",
    );
    let upload = ok(s3.create_multipart_upload().bucket("race").key("never").send().await, "CreateMultipartUpload");
    let upload_id = upload.upload_id().expect("upload id");
    let part = ok(
        s3.upload_part()
            .bucket("race")
            .key("never")
            .upload_id(upload_id)
            .part_number(1)
            .body(ByteStream::from_static(b"one part"))
            .send()
            .await,
        "UploadPart",
    );
    let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(aws_sdk_s3::types::CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap()).build())
        .build();
    let complete = || {
        s3.complete_multipart_upload().bucket("race").key("never").upload_id(upload_id).multipart_upload(parts.clone())
    };
    assert_s3_error(
        complete().if_match("\"0123456789abcdef0123456789abcdef\"").send().await,
        404,
        &["NoSuchKey"],
        "CompleteMultipartUpload If-Match on a missing key",
    );
    ok(complete().if_none_match("*").send().await, "the upload survives the refusal and completes");
    // Not overtaken: the same If-Match PUT succeeds.
    let etag = put_object(&s3, "race", "updated", b"again").await;
    let slow = start_conditional_put(&cluster, "race", "updated", ("if-match", &etag), &body).await;
    let answer = slow.finish(&body[body.len() / 2..]).await.expect("slow PUT");
    assert_eq!(answer.status, 200, "{}", answer.summary());
    assert_eq!(get_object(&s3, "race", "updated").await, body);
}

/// CopyObject's If-None-Match and If-Match apply to the destination key as PutObject's do
/// (API_CopyObject): a copy told not to overwrite, or to overwrite only a given version, is
/// refused with 412 and changes nothing; one whose condition holds copies.
#[tokio::test(flavor = "multi_thread")]
async fn a_conditional_copy_overwrites_only_what_its_condition_allows() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("a_conditional_copy_overwrites_only_what_its_condition_allows");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "copy-cond").await;
    let source = rng.bytes(3000);
    let striped = rng.bytes(6 * MIB);
    put_object(&s3, "copy-cond", "source", &source).await;
    put_object(&s3, "copy-cond", "striped-source", &striped).await;
    let kept = rng.bytes(2000);
    let etag = put_object(&s3, "copy-cond", "kept", &kept).await;
    let copy =
        |key: &str, from: &str| s3.copy_object().bucket("copy-cond").key(key).copy_source(format!("copy-cond/{from}"));

    assert_s3_error(
        copy("kept", "source").if_none_match("*").send().await,
        412,
        &["PreconditionFailed"],
        "CopyObject If-None-Match: * onto an existing key",
    );
    assert_s3_error(
        copy("kept", "striped-source").if_match("\"0123456789abcdef0123456789abcdef\"").send().await,
        412,
        &["PreconditionFailed"],
        "CopyObject If-Match with another ETag",
    );
    assert_s3_error(
        copy("absent", "source").if_match(&etag).send().await,
        404,
        &["NoSuchKey"],
        "CopyObject If-Match onto a missing key",
    );
    assert_eq!(get_object(&s3, "copy-cond", "kept").await, kept, "a refused copy changed the key");
    assert_s3_error(
        s3.head_object().bucket("copy-cond").key("absent").send().await,
        404,
        &["NotFound", "NoSuchKey"],
        "a refused copy left nothing visible",
    );

    ok(copy("created", "source").if_none_match("*").send().await, "CopyObject If-None-Match: * onto a new key");
    assert_eq!(get_object(&s3, "copy-cond", "created").await, source);
    ok(copy("kept", "striped-source").if_match(&etag).send().await, "CopyObject If-Match with the key's ETag");
    assert_eq!(get_object(&s3, "copy-cond", "kept").await, striped);
}

/// A write that asks for what the gateway does not do is refused, never stored without it:
/// server-side encryption (501 NotImplemented: it would be stored unencrypted), Object Lock (400
/// InvalidRequest "Bucket is missing Object Lock Configuration", as AWS answers for such a
/// bucket), a storage class AWS does not name (400 InvalidStorageClass; one it names is stored in
/// the cluster's class), a metadata directive other than COPY or REPLACE (400 InvalidArgument).
/// A copy onto itself that names a storage class is a change, as on AWS.
#[tokio::test(flavor = "multi_thread")]
async fn writes_asking_for_what_is_not_supported_are_refused_not_stored_without_it() {
    use aws_sdk_s3::types::{ObjectLockMode, ServerSideEncryption, StorageClass};
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "unsupported").await;
    let put = || s3.put_object().bucket("unsupported").key("k").body(ByteStream::from_static(b"body"));
    assert_s3_error(
        put().server_side_encryption(ServerSideEncryption::Aes256).send().await,
        501,
        &["NotImplemented"],
        "PutObject with SSE-S3",
    );
    assert_s3_error(
        put()
            .sse_customer_algorithm("AES256")
            .sse_customer_key(aws_smithy_types::base64::encode([7u8; 32]))
            .sse_customer_key_md5(md5_base64(&[7u8; 32]))
            .send()
            .await,
        501,
        &["NotImplemented"],
        "PutObject with SSE-C",
    );
    let until = aws_smithy_types::DateTime::from_secs(4_000_000_000);
    assert_s3_error(
        put().object_lock_mode(ObjectLockMode::Governance).object_lock_retain_until_date(until).send().await,
        400,
        &["InvalidRequest"],
        "PutObject under Object Lock",
    );
    assert_s3_error(
        put().storage_class(StorageClass::from("FASTEST")).send().await,
        400,
        &["InvalidStorageClass"],
        "PutObject with an unknown storage class",
    );
    assert_s3_error(
        s3.create_multipart_upload()
            .bucket("unsupported")
            .key("k")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .send()
            .await,
        501,
        &["NotImplemented"],
        "CreateMultipartUpload with SSE-KMS",
    );
    assert_s3_error(
        s3.head_object().bucket("unsupported").key("k").send().await,
        404,
        &["NotFound", "NoSuchKey"],
        "nothing stored by the refused writes",
    );

    ok(put().storage_class(StorageClass::Glacier).send().await, "PutObject with a storage class AWS names");
    assert_eq!(get_object(&s3, "unsupported", "k").await, b"body", "readable at once: stored in the cluster's class");
    let copy = || s3.copy_object().bucket("unsupported").key("k").copy_source("unsupported/k");
    assert_s3_error(
        copy().metadata_directive(MetadataDirective::from("MERGE")).send().await,
        400,
        &["InvalidArgument"],
        "CopyObject with an unknown metadata directive",
    );
    assert_s3_error(copy().send().await, 400, &["InvalidRequest"], "a copy onto itself changing nothing");
    ok(copy().storage_class(StorageClass::Standard).send().await, "a copy onto itself naming a storage class");
    // x-amz-checksum-algorithm on a copy: computed over the copy, answered and stored, as AWS.
    let copied = ok(
        s3.copy_object()
            .bucket("unsupported")
            .key("summed")
            .copy_source("unsupported/k")
            .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
            .send()
            .await,
        "CopyObject with x-amz-checksum-algorithm SHA256",
    );
    let expected = checksum_base64("sha256", b"body");
    let result = copied.copy_object_result().expect("CopyObjectResult");
    assert_eq!(result.checksum_sha256(), Some(expected.as_str()), "the asked checksum in the answer");
    let head = ok(
        s3.head_object()
            .bucket("unsupported")
            .key("summed")
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await,
        "HEAD of the copy",
    );
    assert_eq!(head.checksum_sha256(), Some(expected.as_str()), "the asked checksum stored with the copy");
    assert_s3_error(
        copy().server_side_encryption(ServerSideEncryption::Aes256).send().await,
        501,
        &["NotImplemented"],
        "CopyObject with SSE-S3",
    );
}

/// AWS refuses a PutObject over 5 GiB from its Content-Length, before the body: 400
/// EntityTooLarge, nothing stored.
#[tokio::test(flavor = "multi_thread")]
async fn a_put_announcing_more_than_5_gib_is_refused_before_its_body() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "huge").await;
    let url = format!("{}/huge/too-big", cluster.endpoint);
    let headers = cluster.sign(&cluster.keys(), std::time::SystemTime::now(), "PUT", &url, &[], Payload::Unsigned);
    let declared = 5 * 1024 * MIB + 1;
    let head = build_request_head(authority_of(&url), "PUT", path_and_query_of(&url), &headers, Some(declared));
    let started = std::time::Instant::now();
    let in_flight = InFlightRequest::start(authority_of(&url), &head, &[7u8; 4096]).await.expect("starting the PUT");
    // No more body: the answer must come from the announced length alone.
    let answer = in_flight.finish(&[]).await.expect("an answer before the body");
    assert_eq!((answer.status, answer.error_code().as_deref()), (400, Some("EntityTooLarge")), "{}", answer.summary());
    println!("refused after {} ms", started.elapsed().as_millis());
    assert_s3_error(
        s3.head_object().bucket("huge").key("too-big").send().await,
        404,
        &["NotFound", "NoSuchKey"],
        "nothing was stored",
    );
}

/// Status, ETag and Last-Modified of a failed (304, 412) SDK call's raw response.
fn validators<T, E>(
    result: Result<T, aws_sdk_s3::error::SdkError<E>>,
) -> (Option<u16>, Option<String>, Option<String>) {
    let Err(error) = result else { panic!("expected a 304 or 412, got a success") };
    let response = error.raw_response().expect("a raw response");
    let header = |name: &str| response.headers().get(name).map(str::to_string);
    (Some(response.status().as_u16()), header("etag"), header("last-modified"))
}

/// Small AWS fidelity points, each as AWS answers it: a partNumber past an object's parts is 416
/// InvalidPartNumber ("The requested partnumber is not satisfiable", the answer AWS and the
/// emulators modelled on it give), one outside 1-10000 is 400 InvalidArgument; HEAD of a tagged
/// object carries x-amz-tagging-count as GET does (GetObject/HeadObject response headers); an
/// empty delimiter is no delimiter and is not echoed (ListObjectsV2: Delimiter is returned only
/// when given).
#[tokio::test(flavor = "multi_thread")]
async fn part_numbers_tag_counts_and_empty_delimiters_answer_as_aws() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "fidelity").await;
    s3.put_object()
        .bucket("fidelity")
        .key("dir/tagged")
        .tagging("a=1&b=2")
        .body(ByteStream::from_static(b"twelve bytes"))
        .send()
        .await
        .expect("PutObject");
    // A single-part object has one part: partNumber 1 is all of it.
    let whole = s3.get_object().bucket("fidelity").key("dir/tagged").part_number(1).send().await.expect("part 1");
    assert_eq!(whole.content_length(), Some(12));
    let past = s3.get_object().bucket("fidelity").key("dir/tagged").part_number(2).send().await;
    let info = error_info(&past.expect_err("part 2 of a one-part object"));
    assert_eq!((info.status, info.code.as_deref()), (Some(416), Some("InvalidPartNumber")), "{}", info.description);
    let out_of_range = s3.get_object().bucket("fidelity").key("dir/tagged").part_number(10_001).send().await;
    let info = error_info(&out_of_range.expect_err("part 10001"));
    assert_eq!((info.status, info.code.as_deref()), (Some(400), Some("InvalidArgument")), "{}", info.description);
    let head = cluster.signed_request("HEAD", &cluster.url("/fidelity/dir/tagged"), &[], b"").await;
    assert_eq!((head.status, head.header("x-amz-tagging-count")), (200, Some("2")));
    let get = cluster.signed_request("GET", &cluster.url("/fidelity/dir/tagged"), &[], b"").await;
    assert_eq!(get.header("x-amz-tagging-count"), Some("2"));
    for path in ["/fidelity?list-type=2&delimiter=", "/fidelity?delimiter=", "/fidelity?versions&delimiter="] {
        let listed = cluster.signed_request("GET", &cluster.url(path), &[], b"").await;
        assert_eq!(listed.status, 200, "{path}: {}", listed.body_text());
        let body = listed.body_text();
        assert!(!body.contains("<Delimiter>"), "{path} echoed an empty delimiter: {body}");
        assert!(body.contains("<Key>dir/tagged</Key>"), "{path}: no delimiter, so the key is listed whole: {body}");
    }
}

/// Runs tests/clients/post_form.py against a new cluster's bucket `bucket` with `extra`
/// arguments; it exits non-zero at the first check that fails.
async fn post_form(bucket: &str, extra: &[&std::ffi::OsStr]) {
    let cluster = Cluster::start().await;
    create_bucket(&cluster.s3_client(), bucket).await;
    let scratch = tempfile::tempdir().expect("scratch dir");
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/post_form.py");
    let mut command = cli::aws_command(&cluster, "python3", scratch.path());
    command.arg(script).arg(&cluster.endpoint).arg(bucket).args(extra);
    let out = cli::run_ok(&mut command, cli::CLI_TIMEOUT);
    assert!(out.contains("post_form: all checks passed"), "{out}");
}

/// PostObject as boto3's generate_presigned_post makes forms (tests/clients/post_form.py): the
/// answers a form asks for (201 with PostResponse, 204, 303 to success_action_redirect), the
/// key from `${filename}`, metadata, type and tags from fields, content-length-range, checksum
/// fields, the policy's refusals in AWS's words (condition failed, extra field, expired, bad
/// signature, not a policy document, no key, no file, fields over 20 KB, a field twice),
/// anonymous forms through the bucket policy, and a client that dies mid-file: nothing of a
/// refused or cut form is stored.
#[tokio::test(flavor = "multi_thread")]
async fn form_uploads_as_boto3_makes_them() {
    post_form("forms", &[]).await;
}

/// A real browser (headless Chromium) submits an HTML form made of boto3's fields: the file
/// the user chose is stored under `browser/${filename}` and the browser follows the redirect.
#[tokio::test(flavor = "multi_thread")]
async fn form_upload_from_a_browser() {
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("post-form-browser");
    std::fs::create_dir_all(&artifacts).unwrap();
    post_form("browser-forms", &["--browser".as_ref(), artifacts.as_os_str()]).await;
}
