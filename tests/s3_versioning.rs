//! Bucket versioning end to end: Put/GetBucketVersioning, version ids on PUT, CopyObject and
//! CompleteMultipartUpload, GET/HEAD/DELETE by versionId, delete markers, null versions in
//! suspended buckets, ListObjectVersions with its markers, DeleteObjects with VersionId, copy
//! sources with ?versionId=, tagging of one version, and DeleteBucket of a bucket with versions.

mod common;

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Delete, MfaDelete, ObjectIdentifier, Tag, Tagging,
    VersioningConfiguration,
};
use common::*;

type Client = aws_sdk_s3::Client;

/// A header of the raw response behind a failed SDK call.
fn error_header<T, E>(result: &Result<T, SdkError<E>>, name: &str) -> Option<String> {
    match result {
        Ok(_) => None,
        Err(error) => error.raw_response()?.headers().get(name).map(str::to_owned),
    }
}

async fn set_versioning(s3: &Client, bucket: &str, status: BucketVersioningStatus) {
    let configuration = VersioningConfiguration::builder().status(status).build();
    ok(
        s3.put_bucket_versioning().bucket(bucket).versioning_configuration(configuration).send().await,
        "PutBucketVersioning",
    );
}

/// PutObject; returns the x-amz-version-id answered.
async fn put_version(s3: &Client, bucket: &str, key: &str, data: &[u8]) -> Option<String> {
    let output = ok(
        s3.put_object().bucket(bucket).key(key).body(ByteStream::from(data.to_vec())).send().await,
        &format!("PutObject {key}"),
    );
    output.version_id().map(str::to_owned)
}

async fn get_version(s3: &Client, bucket: &str, key: &str, version: &str) -> Vec<u8> {
    let output = ok(
        s3.get_object().bucket(bucket).key(key).version_id(version).send().await,
        &format!("GetObject {key}?versionId={version}"),
    );
    assert_eq!(output.version_id(), Some(version), "x-amz-version-id of GET {key}?versionId={version}");
    output.body.collect().await.expect("body").into_bytes().to_vec()
}

/// Every (key, version id, is latest, is delete marker) of a bucket, in AWS's order, read with
/// pages of `max_keys` that follow NextKeyMarker / NextVersionIdMarker.
async fn all_versions(s3: &Client, bucket: &str, max_keys: i32) -> Vec<(String, String, bool, bool)> {
    let mut out = Vec::new();
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    for _ in 0..1000 {
        let page = ok(
            s3.list_object_versions()
                .bucket(bucket)
                .max_keys(max_keys)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await,
            "ListObjectVersions",
        );
        assert!(page.versions().len() + page.delete_markers().len() <= max_keys as usize, "page size");
        let mut entries: Vec<(String, String, bool, bool)> = page
            .versions()
            .iter()
            .map(|v| (v.key().unwrap().to_owned(), v.version_id().unwrap().to_owned(), v.is_latest().unwrap(), false))
            .chain(page.delete_markers().iter().map(|m| {
                (m.key().unwrap().to_owned(), m.version_id().unwrap().to_owned(), m.is_latest().unwrap(), true)
            }))
            .collect();
        // The SDK hands versions and markers as two lists; AWS's order is key, then newest first.
        // Within a page each list is in that order; merge them back by their position in the key.
        entries.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)));
        out.extend(entries);
        if page.is_truncated() != Some(true) {
            return out;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
        assert!(key_marker.is_some(), "a truncated page names NextKeyMarker");
    }
    panic!("ListObjectVersions did not end");
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_delete_markers_and_version_ids_follow_aws() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    let b = "versions";
    create_bucket(&s3, b).await;

    // Never versioned: an empty configuration, no version ids.
    let got = ok(s3.get_bucket_versioning().bucket(b).send().await, "GetBucketVersioning");
    assert_eq!((got.status(), got.mfa_delete()), (None, None));
    let raw = cluster.signed_request("GET", &cluster.url(&format!("/{b}?versioning")), &[], b"").await;
    assert_eq!(raw.status, 200, "{}", raw.summary());
    assert!(raw.body_text().contains("VersioningConfiguration") && !raw.body_text().contains("<Status>"));
    assert_eq!(put_version(&s3, b, "k", b"null data").await, None, "no version id before versioning");

    // Validation: MFA delete is not supported; a status must be Enabled or Suspended.
    let mfa = VersioningConfiguration::builder()
        .status(BucketVersioningStatus::Enabled)
        .mfa_delete(MfaDelete::Enabled)
        .build();
    assert_s3_error(
        s3.put_bucket_versioning().bucket(b).versioning_configuration(mfa).mfa("123 456").send().await,
        501,
        &["NotImplemented"],
        "MFA delete",
    );
    let bogus = VersioningConfiguration::builder().status(BucketVersioningStatus::from("Bogus")).build();
    assert_s3_error(
        s3.put_bucket_versioning().bucket(b).versioning_configuration(bogus).send().await,
        400,
        &["MalformedXML"],
        "unknown status",
    );

    set_versioning(&s3, b, BucketVersioningStatus::Enabled).await;
    let got = ok(s3.get_bucket_versioning().bucket(b).send().await, "GetBucketVersioning");
    assert_eq!(got.status(), Some(&BucketVersioningStatus::Enabled));
    let v1 = put_version(&s3, b, "k", b"first").await.expect("a version id");
    let v2 = put_version(&s3, b, "k", b"second").await.expect("a version id");
    assert_ne!(v1, v2);
    assert!(v1.len() >= 16 && v1.bytes().all(|c| c.is_ascii_alphanumeric()), "URL-safe id: {v1}");

    // Reads by version id, and of the current version.
    assert_eq!(get_version(&s3, b, "k", &v1).await, b"first");
    assert_eq!(get_version(&s3, b, "k", "null").await, b"null data", "the version from before versioning");
    let current = ok(s3.get_object().bucket(b).key("k").send().await, "GET current");
    assert_eq!(current.version_id(), Some(v2.as_str()));
    assert_eq!(current.body.collect().await.unwrap().into_bytes().as_ref(), b"second");
    let head = ok(s3.head_object().bucket(b).key("k").version_id(&v1).send().await, "HEAD v1");
    assert_eq!((head.version_id(), head.content_length()), (Some(v1.as_str()), Some(5)));
    assert_s3_error(
        s3.get_object().bucket(b).key("k").version_id("not a version!").send().await,
        400,
        &["InvalidArgument"],
        "malformed version id",
    );
    let unknown = "00000000000000ff0123456789abcdef";
    assert_s3_error(
        s3.get_object().bucket(b).key("k").version_id(unknown).send().await,
        404,
        &["NoSuchVersion"],
        "unknown version id",
    );

    // Conditional writes apply to the current version.
    assert_s3_error(
        s3.put_object().bucket(b).key("k").if_none_match("*").body(ByteStream::from_static(b"x")).send().await,
        412,
        &["PreconditionFailed"],
        "If-None-Match: * over a current version",
    );
    assert_s3_error(
        s3.put_object().bucket(b).key("k").if_match(etag_of(b"first")).body(ByteStream::from_static(b"x")).send().await,
        412,
        &["PreconditionFailed"],
        "If-Match with an old version's ETag",
    );

    // DELETE without a version id adds a delete marker.
    let deleted = ok(s3.delete_object().bucket(b).key("k").send().await, "DeleteObject");
    assert_eq!(deleted.delete_marker(), Some(true));
    let marker = deleted.version_id().expect("the marker's version id").to_owned();
    let get = s3.get_object().bucket(b).key("k").send().await;
    assert_eq!(error_header(&get, "x-amz-delete-marker").as_deref(), Some("true"));
    assert_eq!(error_header(&get, "x-amz-version-id").as_deref(), Some(marker.as_str()));
    assert_s3_error(get, 404, &["NoSuchKey"], "GET of a deleted key");
    let head = s3.head_object().bucket(b).key("k").send().await;
    assert_eq!(error_header(&head, "x-amz-delete-marker").as_deref(), Some("true"));
    assert_status(head, 404, "HEAD of a deleted key");
    let get = s3.get_object().bucket(b).key("k").version_id(&marker).send().await;
    assert_eq!(error_header(&get, "x-amz-delete-marker").as_deref(), Some("true"));
    assert_s3_error(get, 405, &["MethodNotAllowed"], "GET of a delete marker by version id");
    assert!(list_all_keys(&s3, b).await.is_empty(), "ListObjectsV2 hides a deleted key");
    let listed = ok(s3.list_objects().bucket(b).send().await, "ListObjects");
    assert!(listed.contents().is_empty(), "ListObjects hides a deleted key");
    assert_eq!(
        all_versions(&s3, b, 1000).await,
        [
            ("k".to_string(), marker.clone(), true, true),
            ("k".to_string(), v2.clone(), false, false),
            ("k".to_string(), v1.clone(), false, false),
            ("k".to_string(), "null".to_string(), false, false),
        ]
    );
    ok(
        s3.put_object().bucket(b).key("k2").if_none_match("*").body(ByteStream::from_static(b"x")).send().await,
        "If-None-Match: * on a new key",
    );

    // Copy sources by version id: an old version, the null version, never a delete marker.
    let copied = ok(
        s3.copy_object().bucket(b).key("copy").copy_source(format!("{b}/k?versionId={v1}")).send().await,
        "CopyObject of v1",
    );
    assert_eq!(copied.copy_source_version_id(), Some(v1.as_str()));
    assert!(copied.version_id().is_some(), "the copy is a new version");
    assert_eq!(get_object(&s3, b, "copy").await, b"first");
    assert_s3_error(
        s3.copy_object().bucket(b).key("copy").copy_source(format!("{b}/k?versionId={marker}")).send().await,
        400,
        &["InvalidRequest"],
        "copy of a delete marker",
    );
    assert_s3_error(
        s3.copy_object().bucket(b).key("copy").copy_source(format!("{b}/k")).send().await,
        404,
        &["NoSuchKey"],
        "copy of a deleted key",
    );

    // Removing the marker (by version id) brings v2 back.
    let undeleted = ok(s3.delete_object().bucket(b).key("k").version_id(&marker).send().await, "delete the marker");
    assert_eq!((undeleted.delete_marker(), undeleted.version_id()), (Some(true), Some(marker.as_str())));
    assert_eq!(get_object(&s3, b, "k").await, b"second");
    // Restoring the null version by copying it onto its own key (no REPLACE needed).
    let restored = ok(
        s3.copy_object().bucket(b).key("k").copy_source(format!("{b}/k?versionId=null")).send().await,
        "CopyObject of the null version onto its key",
    );
    let v3 = restored.version_id().expect("a new version").to_owned();
    assert_eq!(restored.copy_source_version_id(), Some("null"));
    assert_eq!(get_object(&s3, b, "k").await, b"null data");

    // DELETE with a version id removes that version for good; the next one becomes current.
    let removed = ok(s3.delete_object().bucket(b).key("k").version_id(&v3).send().await, "delete v3");
    assert_eq!((removed.delete_marker(), removed.version_id()), (None, Some(v3.as_str())));
    assert_eq!(get_object(&s3, b, "k").await, b"second");
    assert_s3_error(
        s3.get_object().bucket(b).key("k").version_id(&v3).send().await,
        404,
        &["NoSuchVersion"],
        "a removed version",
    );
    ok(s3.delete_object().bucket(b).key("k").version_id(&v3).send().await, "deleting it again succeeds");

    // Tags of one version.
    let tags = Tagging::builder().tag_set(Tag::builder().key("era").value("first").build().unwrap()).build().unwrap();
    ok(s3.put_object_tagging().bucket(b).key("k").version_id(&v1).tagging(tags).send().await, "tag v1");
    let got = ok(s3.get_object_tagging().bucket(b).key("k").version_id(&v1).send().await, "tags of v1");
    assert_eq!((got.tag_set().len(), got.version_id()), (1, Some(v1.as_str())));
    let got = ok(s3.get_object_tagging().bucket(b).key("k").send().await, "tags of the current version");
    assert!(got.tag_set().is_empty());
    // Without versionId the current version is tagged, and its id answered (x-amz-version-id).
    let current = ok(s3.head_object().bucket(b).key("k").send().await, "HEAD").version_id().unwrap().to_string();
    let tags = Tagging::builder().tag_set(Tag::builder().key("era").value("now").build().unwrap()).build().unwrap();
    let put = ok(s3.put_object_tagging().bucket(b).key("k").tagging(tags).send().await, "tag the current version");
    assert_eq!(put.version_id(), Some(current.as_str()));
    let got = ok(s3.get_object_tagging().bucket(b).key("k").version_id(&v1).send().await, "tags of v1 again");
    assert_eq!(got.tag_set()[0].value(), "first", "tagging the current version left v1's tags alone");

    // CompleteMultipartUpload answers the new version's id.
    let upload = ok(s3.create_multipart_upload().bucket(b).key("k").send().await, "CreateMultipartUpload");
    let upload_id = upload.upload_id().unwrap();
    let part = ok(
        s3.upload_part()
            .bucket(b)
            .key("k")
            .upload_id(upload_id)
            .part_number(1)
            .body(ByteStream::from_static(b"multipart"))
            .send()
            .await,
        "UploadPart",
    );
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap()).build())
        .build();
    let completed = ok(
        s3.complete_multipart_upload().bucket(b).key("k").upload_id(upload_id).multipart_upload(parts).send().await,
        "CompleteMultipartUpload",
    );
    let v4 = completed.version_id().expect("a version id").to_owned();
    assert_eq!(get_version(&s3, b, "k", &v4).await, b"multipart");

    // DeleteObjects: one version by id, one key without (a marker), a version that does not exist.
    let identifier = |key: &str, version: Option<&str>| {
        ObjectIdentifier::builder().key(key).set_version_id(version.map(str::to_owned)).build().unwrap()
    };
    let delete = Delete::builder()
        .objects(identifier("k", Some(&v1)))
        .objects(identifier("copy", None))
        .objects(identifier("k", Some(unknown)))
        .build()
        .unwrap();
    let result = ok(s3.delete_objects().bucket(b).delete(delete).send().await, "DeleteObjects");
    assert!(result.errors().is_empty(), "{:?}", result.errors());
    let by_key = |key: &str, version: Option<&str>| {
        result.deleted().iter().find(|d| d.key() == Some(key) && d.version_id() == version).cloned()
    };
    let v1_deleted = by_key("k", Some(&v1)).expect("v1 reported");
    assert_eq!(v1_deleted.delete_marker(), None);
    let copy_deleted = by_key("copy", None).expect("copy reported");
    assert_eq!(copy_deleted.delete_marker(), Some(true));
    assert!(copy_deleted.delete_marker_version_id().is_some());
    assert!(by_key("k", Some(unknown)).is_some(), "a missing version counts as deleted");
    assert_s3_error(
        s3.get_object().bucket(b).key("k").version_id(&v1).send().await,
        404,
        &["NoSuchVersion"],
        "v1 after DeleteObjects",
    );

    // A key named twice in one DeleteObjects is deleted twice, in order: two delete markers.
    put_object(&s3, b, "dup", b"once").await;
    let twice = Delete::builder().objects(identifier("dup", None)).objects(identifier("dup", None)).build().unwrap();
    let result = ok(s3.delete_objects().bucket(b).delete(twice).send().await, "DeleteObjects of a key twice");
    let markers: Vec<&str> = result.deleted().iter().filter_map(|d| d.delete_marker_version_id()).collect();
    assert_eq!(markers.len(), 2, "{:?}", result.deleted());
    assert_ne!(markers[0], markers[1], "two markers");
    let dup: Vec<(String, String, bool, bool)> =
        all_versions(&s3, b, 1000).await.into_iter().filter(|v| v.0 == "dup").collect();
    assert_eq!(dup.len(), 3, "one version and two markers: {dup:?}");
    assert!(dup[0].2 && dup[0].1 == markers[1], "the second marker is the latest: {dup:?}");

    // A bucket with versions or delete markers is not empty; removing every version empties it.
    assert_s3_error(s3.delete_bucket().bucket(b).send().await, 409, &["BucketNotEmpty"], "DeleteBucket");
    let remaining = all_versions(&s3, b, 1000).await;
    assert_eq!(remaining.iter().filter(|v| v.2).count(), 4, "one latest per key: {remaining:?}");
    for (key, version, _, _) in &remaining {
        ok(s3.delete_object().bucket(b).key(key).version_id(version).send().await, "delete a version");
    }
    ok(s3.delete_bucket().bucket(b).send().await, "DeleteBucket once every version is gone");
}

#[tokio::test(flavor = "multi_thread")]
async fn suspended_buckets_write_and_delete_the_null_version() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    let b = "suspended";
    create_bucket(&s3, b).await;
    set_versioning(&s3, b, BucketVersioningStatus::Enabled).await;
    let v1 = put_version(&s3, b, "k", b"kept").await.expect("a version id");
    set_versioning(&s3, b, BucketVersioningStatus::Suspended).await;
    let got = ok(s3.get_bucket_versioning().bucket(b).send().await, "GetBucketVersioning");
    assert_eq!(got.status(), Some(&BucketVersioningStatus::Suspended));

    // Writes replace the null version and keep v1.
    assert_eq!(put_version(&s3, b, "k", b"null one").await.as_deref(), Some("null"));
    assert_eq!(put_version(&s3, b, "k", b"null two").await.as_deref(), Some("null"));
    let versions = all_versions(&s3, b, 1000).await;
    let ids: Vec<&str> = versions.iter().map(|v| v.1.as_str()).collect();
    assert_eq!(ids, ["null", v1.as_str()]);
    assert_eq!(get_version(&s3, b, "k", "null").await, b"null two");
    assert_eq!(get_object(&s3, b, "k").await, b"null two");

    // A delete replaces the null version with a null delete marker.
    let deleted = ok(s3.delete_object().bucket(b).key("k").send().await, "DeleteObject");
    assert_eq!((deleted.delete_marker(), deleted.version_id()), (Some(true), Some("null")));
    assert_eq!(
        all_versions(&s3, b, 1000).await,
        [("k".to_string(), "null".to_string(), true, true), ("k".to_string(), v1.clone(), false, false),]
    );
    assert_s3_error(
        s3.get_object().bucket(b).key("k").version_id("null").send().await,
        405,
        &["MethodNotAllowed"],
        "GET of the null delete marker",
    );
    assert_eq!(get_version(&s3, b, "k", &v1).await, b"kept");
    assert_s3_error(s3.get_object().bucket(b).key("k").send().await, 404, &["NoSuchKey"], "deleted key");
}

#[tokio::test(flavor = "multi_thread")]
async fn version_listing_paginates_with_key_and_version_markers() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    let b = "listing";
    create_bucket(&s3, b).await;
    put_version(&s3, b, "c", b"null").await;
    set_versioning(&s3, b, BucketVersioningStatus::Enabled).await;
    for (key, data) in [("a", "a1"), ("b/x", "x1"), ("a", "a2"), ("b/y", "y1"), ("a", "a3"), ("b/x", "x2")] {
        put_version(&s3, b, key, data.as_bytes()).await;
    }
    put_version(&s3, b, "c", b"c1").await;
    ok(s3.delete_object().bucket(b).key("b/x").send().await, "delete b/x");

    let all = all_versions(&s3, b, 1000).await;
    let shape: Vec<(&str, bool, bool)> = all.iter().map(|v| (v.0.as_str(), v.2, v.3)).collect();
    assert_eq!(
        shape,
        [
            ("a", true, false),
            ("a", false, false),
            ("a", false, false),
            ("b/x", true, true),
            ("b/x", false, false),
            ("b/x", false, false),
            ("b/y", true, false),
            ("c", true, false),
            ("c", false, false),
        ]
    );
    assert_eq!(all[8].1, "null");
    for max_keys in [1, 2, 4] {
        assert_eq!(all_versions(&s3, b, max_keys).await, all, "pages of {max_keys}");
    }

    // Prefix and delimiter.
    let page = ok(s3.list_object_versions().bucket(b).delimiter("/").send().await, "with a delimiter");
    let prefixes: Vec<&str> = page.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, ["b/"]);
    assert_eq!(page.versions().len(), 5);
    let page = ok(s3.list_object_versions().bucket(b).prefix("b/").send().await, "with a prefix");
    assert_eq!((page.versions().len(), page.delete_markers().len()), (3, 1));
    let page = ok(s3.list_object_versions().bucket(b).delimiter("/").max_keys(4).send().await, "truncated at b/");
    assert_eq!((page.is_truncated(), page.next_key_marker()), (Some(true), Some("b/")));
    let page =
        ok(s3.list_object_versions().bucket(b).delimiter("/").key_marker("b/").send().await, "after the common prefix");
    assert!(page.common_prefixes().is_empty());
    assert!(page.versions().iter().all(|v| v.key() == Some("c")));

    // Markers: after a key, and after one version of it.
    let page = ok(s3.list_object_versions().bucket(b).key_marker("a").send().await, "key-marker a");
    assert_eq!(page.delete_markers()[0].key(), Some("b/x"));
    assert!(page.versions().iter().all(|v| v.key() != Some("a")));
    let page = ok(
        s3.list_object_versions().bucket(b).key_marker("a").version_id_marker(&all[0].1).send().await,
        "after a's latest version",
    );
    let keys: Vec<(&str, &str)> =
        page.versions().iter().take(2).map(|v| (v.key().unwrap(), v.version_id().unwrap())).collect();
    assert_eq!(keys, [("a", all[1].1.as_str()), ("a", all[2].1.as_str())]);
    assert_s3_error(
        s3.list_object_versions().bucket(b).version_id_marker(&all[0].1).send().await,
        400,
        &["InvalidArgument"],
        "version-id-marker without key-marker",
    );

    // ListObjectsV2 lists the current versions only, and never a deleted key.
    assert_eq!(list_all_keys(&s3, b).await, ["a", "b/y", "c"]);
}
