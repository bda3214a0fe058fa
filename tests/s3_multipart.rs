//! Multipart uploads end to end: CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
//! AbortMultipartUpload, the multipart ETag, and AWS's part rules.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use common::*;

const MIB: usize = 1 << 20;

async fn create_upload(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let created = ok(
        s3.create_multipart_upload().bucket(bucket).key(key).send().await,
        &format!("CreateMultipartUpload {bucket}/{key}"),
    );
    assert_eq!(created.bucket(), Some(bucket));
    assert_eq!(created.key(), Some(key));
    created.upload_id().expect("UploadId").to_owned()
}

async fn upload_part(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    part_number: i32,
    data: &[u8],
) -> String {
    let output = ok(
        s3.upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .body(ByteStream::from(data.to_vec()))
            .send()
            .await,
        &format!("UploadPart {part_number} of {bucket}/{key}"),
    );
    let etag = output.e_tag().expect("part ETag").to_owned();
    assert_eq!(etag, etag_of(data), "ETag of part {part_number} is the md5 of its bytes");
    etag
}

fn completed(parts: &[(i32, &str)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(number, etag)| CompletedPart::builder().part_number(*number).e_tag(*etag).build())
                .collect(),
        ))
        .build()
}

#[tokio::test(flavor = "multi_thread")]
async fn multipart_upload_across_gateways() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("multipart_upload_across_gateways");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "multipart").await;
    put_object(&s3, "multipart", "big object", b"previous version").await;

    let part1 = rng.bytes(5 * MIB);
    let part2 = rng.bytes(5 * MIB + 1);
    let part3 = rng.bytes(MIB + 123);
    let upload_id = create_upload(&s3, "multipart", "big object").await;

    // Parts arrive out of order, concurrently, through different gateways; part 2 is streamed
    // from a file (aws-chunked with a trailing checksum).
    let dir = tempfile::tempdir().expect("tempdir");
    let part2_path = dir.path().join("part2");
    std::fs::write(&part2_path, &part2).expect("write part 2");
    let dc2 = cluster.s3_client_at(1);
    let dc3 = cluster.s3_client_at(2);
    let (etag3, etag1, etag2) = tokio::join!(
        upload_part(&dc3, "multipart", "big object", &upload_id, 3, &part3),
        upload_part(&s3, "multipart", "big object", &upload_id, 1, &part1),
        async {
            let output = ok(
                dc2.upload_part()
                    .bucket("multipart")
                    .key("big object")
                    .upload_id(&upload_id)
                    .part_number(2)
                    .body(ByteStream::from_path(&part2_path).await.expect("file body"))
                    .send()
                    .await,
                "streamed UploadPart 2",
            );
            output.e_tag().expect("ETag").to_owned()
        }
    );
    assert_eq!(etag2, etag_of(&part2), "ETag of the streamed part");

    // Not visible before completion: the previous version is.
    assert_eq!(get_object(&s3, "multipart", "big object").await, b"previous version");

    let done = ok(
        s3.complete_multipart_upload()
            .bucket("multipart")
            .key("big object")
            .upload_id(&upload_id)
            .multipart_upload(completed(&[(1, &etag1), (2, &etag2), (3, &etag3)]))
            .send()
            .await,
        "CompleteMultipartUpload",
    );
    let expected_etag = multipart_etag(&[&part1, &part2, &part3]);
    assert_eq!(done.e_tag(), Some(expected_etag.as_str()), "multipart ETag");
    assert_eq!(done.bucket(), Some("multipart"));
    assert_eq!(done.key(), Some("big object"));

    let whole: Vec<u8> = [&part1[..], &part2[..], &part3[..]].concat();
    for index in 0..cluster.gateways.len() {
        let client = cluster.s3_client_at(index);
        let head = ok(client.head_object().bucket("multipart").key("big object").send().await, "HEAD");
        assert_eq!(head.content_length(), Some(whole.len() as i64));
        assert_eq!(head.e_tag(), Some(expected_etag.as_str()));
        assert_bytes_eq(
            &get_object(&client, "multipart", "big object").await,
            &whole,
            &format!("completed multipart object via gateway {index}"),
        );
    }

    // Ranges across part boundaries.
    for (first, last) in [(5 * MIB - 100, 5 * MIB + 99), (10 * MIB - 3, 10 * MIB + 5), (0, whole.len() - 1)] {
        let got = ok(
            s3.get_object().bucket("multipart").key("big object").range(format!("bytes={first}-{last}")).send().await,
            "range GET of a multipart object",
        );
        assert_eq!(got.content_range(), Some(format!("bytes {first}-{last}/{}", whole.len()).as_str()));
        let body = got.body.collect().await.expect("body").into_bytes();
        assert_bytes_eq(&body, &whole[first..=last], "range of a multipart object");
    }

    let listed = ok(s3.list_objects_v2().bucket("multipart").send().await, "ListObjectsV2");
    let object = listed.contents().iter().find(|o| o.key() == Some("big object")).expect("listed");
    assert_eq!(object.size(), Some(whole.len() as i64));
    assert_eq!(object.e_tag(), Some(expected_etag.as_str()));

    // The upload is gone once completed.
    assert_s3_error(
        s3.upload_part()
            .bucket("multipart")
            .key("big object")
            .upload_id(&upload_id)
            .part_number(4)
            .body(ByteStream::from(vec![1u8; 10]))
            .send()
            .await,
        404,
        &["NoSuchUpload"],
        "UploadPart after completion",
    );

    // A single small part is a valid upload: ETag "-1".
    let only = rng.bytes(100);
    let upload_id = create_upload(&s3, "multipart", "one-part").await;
    let etag = upload_part(&s3, "multipart", "one-part", &upload_id, 1, &only).await;
    let done = ok(
        s3.complete_multipart_upload()
            .bucket("multipart")
            .key("one-part")
            .upload_id(&upload_id)
            .multipart_upload(completed(&[(1, &etag)]))
            .send()
            .await,
        "CompleteMultipartUpload with one part",
    );
    assert_eq!(done.e_tag(), Some(multipart_etag(&[&only]).as_str()));
    assert_eq!(get_object(&s3, "multipart", "one-part").await, only);
}

#[tokio::test(flavor = "multi_thread")]
async fn abort_multipart_upload() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("abort_multipart_upload");
    let (s3, status) = cluster.s3_client_with_status();
    create_bucket(&s3, "abort").await;
    let upload_id = create_upload(&s3, "abort", "never").await;
    let part = rng.bytes(5 * MIB);
    let etag = upload_part(&s3, "abort", "never", &upload_id, 1, &part).await;

    status.reset();
    ok(
        s3.abort_multipart_upload().bucket("abort").key("never").upload_id(&upload_id).send().await,
        "AbortMultipartUpload",
    );
    assert_eq!(status.last(), Some(204), "AbortMultipartUpload status");

    assert_s3_error(
        s3.upload_part()
            .bucket("abort")
            .key("never")
            .upload_id(&upload_id)
            .part_number(2)
            .body(ByteStream::from(vec![0u8; 10]))
            .send()
            .await,
        404,
        &["NoSuchUpload"],
        "UploadPart after abort",
    );
    assert_s3_error(
        s3.complete_multipart_upload()
            .bucket("abort")
            .key("never")
            .upload_id(&upload_id)
            .multipart_upload(completed(&[(1, &etag)]))
            .send()
            .await,
        404,
        &["NoSuchUpload"],
        "CompleteMultipartUpload after abort",
    );
    assert_status(s3.head_object().bucket("abort").key("never").send().await, 404, "HEAD of an aborted upload's key");
    assert!(list_all_keys(&s3, "abort").await.is_empty());
    assert_s3_error(
        s3.abort_multipart_upload().bucket("abort").key("never").upload_id("no-such-upload-id").send().await,
        404,
        &["NoSuchUpload"],
        "AbortMultipartUpload of an unknown upload",
    );
    // The bucket can be deleted: an aborted upload leaves nothing behind.
    ok(s3.delete_bucket().bucket("abort").send().await, "DeleteBucket after abort");
}

#[tokio::test(flavor = "multi_thread")]
async fn part_rules() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("part_rules");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "rules").await;
    let key = "ruled";
    let upload_id = create_upload(&s3, "rules", key).await;

    let first_try = rng.bytes(5 * MIB);
    let part1 = rng.bytes(5 * MIB);
    let part2 = rng.bytes(MIB);
    let part3 = rng.bytes(2 * MIB + 5);
    let stale_etag = upload_part(&s3, "rules", key, &upload_id, 1, &first_try).await;
    // Uploading a part number again replaces it.
    let etag1 = upload_part(&s3, "rules", key, &upload_id, 1, &part1).await;
    let etag2 = upload_part(&s3, "rules", key, &upload_id, 2, &part2).await;
    let etag3 = upload_part(&s3, "rules", key, &upload_id, 3, &part3).await;

    for bad_number in [0, 10001] {
        assert_s3_error(
            s3.upload_part()
                .bucket("rules")
                .key(key)
                .upload_id(&upload_id)
                .part_number(bad_number)
                .body(ByteStream::from(vec![0u8; 10]))
                .send()
                .await,
            400,
            &["InvalidArgument"],
            &format!("UploadPart number {bad_number}"),
        );
    }

    let complete = |parts: Vec<(i32, String)>| {
        let s3 = s3.clone();
        let upload_id = upload_id.clone();
        async move {
            let parts: Vec<(i32, &str)> = parts.iter().map(|(n, e)| (*n, e.as_str())).collect();
            s3.complete_multipart_upload()
                .bucket("rules")
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(completed(&parts))
                .send()
                .await
        }
    };

    assert_s3_error(
        complete(vec![(1, stale_etag.clone()), (3, etag3.clone())]).await,
        400,
        &["InvalidPart"],
        "Complete with the ETag of a replaced part",
    );
    assert_s3_error(
        complete(vec![(1, etag1.clone()), (4, etag3.clone())]).await,
        400,
        &["InvalidPart"],
        "Complete with a part that was never uploaded",
    );
    assert_s3_error(
        complete(vec![(3, etag3.clone()), (1, etag1.clone())]).await,
        400,
        &["InvalidPartOrder"],
        "Complete with parts out of order",
    );
    assert_s3_error(
        complete(vec![(2, etag2.clone()), (3, etag3.clone())]).await,
        400,
        &["EntityTooSmall"],
        "Complete with a 1 MiB part that is not the last",
    );
    assert_s3_error(
        s3.complete_multipart_upload()
            .bucket("rules")
            .key(key)
            .upload_id("no-such-upload-id")
            .multipart_upload(completed(&[(1, &etag1)]))
            .send()
            .await,
        404,
        &["NoSuchUpload"],
        "Complete of an unknown upload",
    );
    assert_status(
        s3.head_object().bucket("rules").key(key).send().await,
        404,
        "nothing visible after failed completions",
    );

    // The upload survives failed completions; a subset of its parts makes the object.
    let done = ok(complete(vec![(1, etag1.clone()), (3, etag3.clone())]).await, "Complete with parts 1 and 3");
    assert_eq!(done.e_tag(), Some(multipart_etag(&[&part1, &part3]).as_str()));
    let whole: Vec<u8> = [&part1[..], &part3[..]].concat();
    assert_bytes_eq(&get_object(&s3, "rules", key).await, &whole, "object of parts 1 and 3");
    let head = ok(s3.head_object().bucket("rules").key(key).send().await, "HEAD");
    assert_eq!(head.content_length(), Some(whole.len() as i64));

    // An UploadPart that stalls mid-body while its retry (other bytes) goes through and commits:
    // the first attempt then completes and commits last. The upload that began last is the part
    // (AWS: a new upload of a part number overwrites the previous one), so ListParts and the
    // completion see the retry, and the first attempt's ETag names nothing.
    let upload_id = create_upload(&s3, "rules", "retried").await;
    let url = format!("{}/rules/retried?partNumber=1&uploadId={upload_id}", cluster.endpoint);
    let headers = cluster.sign(&cluster.keys(), std::time::SystemTime::now(), "PUT", &url, &[], Payload::Unsigned);
    let head = build_request_head(authority_of(&url), "PUT", path_and_query_of(&url), &headers, Some(first_try.len()));
    let half = first_try.len() / 2;
    let stalled = InFlightRequest::start(authority_of(&url), &head, &first_try[..half]).await.expect("first attempt");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let retry = rng.bytes(5 * MIB);
    let retry_etag = upload_part(&s3, "rules", "retried", &upload_id, 1, &retry).await;
    let first = stalled.finish(&first_try[half..]).await.expect("the first attempt's answer");
    assert_eq!(first.status, 200, "{}", first.summary());
    let first_etag = first.header("etag").expect("ETag").to_string();
    assert_ne!(retry_etag, first_etag);
    let listed = ok(
        s3.list_parts().bucket("rules").key("retried").upload_id(&upload_id).send().await,
        "ListParts after the first attempt committed last",
    );
    let listed: Vec<(Option<i32>, Option<&str>)> =
        listed.parts().iter().map(|p| (p.part_number(), p.e_tag())).collect();
    assert_eq!(listed, [(Some(1), Some(retry_etag.as_str()))], "the upload that began last is the part");
    let complete_retried = |etag: String| {
        let s3 = s3.clone();
        let upload_id = upload_id.clone();
        async move {
            s3.complete_multipart_upload()
                .bucket("rules")
                .key("retried")
                .upload_id(&upload_id)
                .multipart_upload(completed(&[(1, &etag)]))
                .send()
                .await
        }
    };
    assert_s3_error(complete_retried(first_etag).await, 400, &["InvalidPart"], "the overwritten first attempt");
    let done = ok(complete_retried(retry_etag).await, "Complete with the retry's ETag");
    assert_eq!(done.e_tag(), Some(multipart_etag(&[&retry]).as_str()));
    assert_bytes_eq(&get_object(&s3, "rules", "retried").await, &retry, "the retry's bytes");
}

/// UploadPartCopy: parts copied from ranges of existing objects (of two buckets), mixed with an
/// uploaded part; ranges past the source's end are refused.
#[tokio::test(flavor = "multi_thread")]
async fn upload_part_copy_assembles_ranges_of_other_objects() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    let mut rng = TestRng::new("upload_part_copy_assembles_ranges_of_other_objects");
    create_bucket(&s3, "copy-source").await;
    create_bucket(&s3, "copy-target").await;
    let source = rng.bytes(12 * MIB);
    put_object(&s3, "copy-source", "src", &source).await;
    let tail = rng.bytes(MIB);
    let upload_id = create_upload(&s3, "copy-target", "assembled").await;
    let mut parts = Vec::new();
    for (number, range) in [(1, 0..6 * MIB), (2, 6 * MIB..12 * MIB)] {
        let copied = ok(
            s3.upload_part_copy()
                .bucket("copy-target")
                .key("assembled")
                .upload_id(&upload_id)
                .part_number(number)
                .copy_source("copy-source/src")
                .copy_source_range(format!("bytes={}-{}", range.start, range.end - 1))
                .send()
                .await,
            &format!("UploadPartCopy part {number}"),
        );
        let etag = copied.copy_part_result().and_then(|r| r.e_tag()).expect("ETag").to_owned();
        assert_eq!(etag, etag_of(&source[range]), "ETag of copied part {number}");
        parts.push(CompletedPart::builder().part_number(number).e_tag(etag).build());
    }
    let etag = upload_part(&s3, "copy-target", "assembled", &upload_id, 3, &tail).await;
    parts.push(CompletedPart::builder().part_number(3).e_tag(etag).build());
    let past_end = s3
        .upload_part_copy()
        .bucket("copy-target")
        .key("assembled")
        .upload_id(&upload_id)
        .part_number(4)
        .copy_source("copy-source/src")
        .copy_source_range(format!("bytes=0-{}", 12 * MIB))
        .send()
        .await;
    let info = error_info(&past_end.expect_err("a copy range past the source's end is refused"));
    assert_eq!(info.status, Some(400), "a copy range past the source's end: {}", info.description);
    assert_eq!(info.code.as_deref(), Some("InvalidArgument"), "{info:?}");
    ok(
        s3.complete_multipart_upload()
            .bucket("copy-target")
            .key("assembled")
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await,
        "CompleteMultipartUpload",
    );
    let mut expected = source.clone();
    expected.extend_from_slice(&tail);
    assert_bytes_eq(&get_object(&s3, "copy-target", "assembled").await, &expected, "the assembled object");
}

/// ListMultipartUploads: AWS's order (key, then initiation), prefix, delimiter, pagination with
/// key and upload-id markers; aborted and completed uploads disappear.
#[tokio::test(flavor = "multi_thread")]
async fn list_multipart_uploads_pages_in_aws_order() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "uploads").await;
    let mut created = Vec::new();
    for key in ["c", "a/1", "b", "a/2", "b"] {
        created.push((key.to_string(), create_upload(&s3, "uploads", key).await));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mut expected = created.clone();
    expected.sort_by(|x, y| x.0.cmp(&y.0)); // stable: the two "b" uploads stay in creation order

    let all = ok(s3.list_multipart_uploads().bucket("uploads").send().await, "ListMultipartUploads");
    let listed: Vec<(String, String)> = all
        .uploads()
        .iter()
        .map(|u| (u.key().unwrap_or_default().into(), u.upload_id().unwrap_or_default().into()))
        .collect();
    assert_eq!(listed, expected, "every upload, by key then initiation");
    assert_eq!(all.is_truncated(), Some(false));

    let grouped = ok(s3.list_multipart_uploads().bucket("uploads").delimiter("/").send().await, "with delimiter");
    let prefixes: Vec<&str> = grouped.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, vec!["a/"]);
    let keys: Vec<&str> = grouped.uploads().iter().filter_map(|u| u.key()).collect();
    assert_eq!(keys, vec!["b", "b", "c"]);

    let only_b = ok(s3.list_multipart_uploads().bucket("uploads").prefix("b").send().await, "with prefix");
    assert_eq!(only_b.uploads().len(), 2);

    let mut paged = Vec::new();
    let (mut key_marker, mut upload_marker) = (None::<String>, None::<String>);
    for _ in 0..10 {
        let page = ok(
            s3.list_multipart_uploads()
                .bucket("uploads")
                .max_uploads(2)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(upload_marker.clone())
                .send()
                .await,
            "a page of uploads",
        );
        assert!(page.uploads().len() <= 2);
        paged.extend(
            page.uploads()
                .iter()
                .map(|u| (u.key().unwrap_or_default().to_string(), u.upload_id().unwrap_or_default().to_string())),
        );
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_string);
        upload_marker = page.next_upload_id_marker().map(str::to_string);
    }
    assert_eq!(paged, expected, "pages of 2 concatenate to the whole list");

    let (key, id) = &created[0];
    ok(s3.abort_multipart_upload().bucket("uploads").key(key).upload_id(id).send().await, "Abort");
    let after = ok(s3.list_multipart_uploads().bucket("uploads").send().await, "after abort");
    assert_eq!(after.uploads().len(), 4);
    assert!(after.uploads().iter().all(|u| u.upload_id() != Some(id.as_str())), "the aborted upload is gone");

    // A page that ended on an upload aborted before the next page: the next page still lists the
    // later uploads of its key (it went on after the key's last upload before).
    let first = ok(s3.list_multipart_uploads().bucket("uploads").max_uploads(3).send().await, "a page of three");
    let ended_on = first.uploads().last().and_then(|u| u.upload_id()).unwrap_or_default().to_string();
    assert_eq!((first.next_key_marker(), Some(ended_on.as_str())), (Some("b"), first.next_upload_id_marker()));
    ok(s3.abort_multipart_upload().bucket("uploads").key("b").upload_id(&ended_on).send().await, "Abort");
    let next = ok(
        s3.list_multipart_uploads().bucket("uploads").key_marker("b").upload_id_marker(&ended_on).send().await,
        "the page after",
    );
    let rest: Vec<(&str, &str)> =
        next.uploads().iter().map(|u| (u.key().unwrap_or_default(), u.upload_id().unwrap_or_default())).collect();
    assert_eq!(rest, vec![("b", expected[3].1.as_str())], "the other upload of b");
}

/// GetObjectAttributes: ETag, size, storage class, the object checksum, and the parts of a
/// multipart object with their sizes and checksums, paginated.
#[tokio::test(flavor = "multi_thread")]
async fn get_object_attributes_reports_parts_and_checksums() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ObjectAttributes};
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    let mut rng = TestRng::new("get_object_attributes_reports_parts_and_checksums");
    create_bucket(&s3, "attributes").await;
    let created = ok(
        s3.create_multipart_upload()
            .bucket("attributes")
            .key("mpu")
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await,
        "CreateMultipartUpload",
    );
    let upload_id = created.upload_id().expect("upload id").to_string();
    let sizes = [5 * MIB, 1234];
    let mut parts = Vec::new();
    let mut part_sums = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let number = i as i32 + 1;
        let out = ok(
            s3.upload_part()
                .bucket("attributes")
                .key("mpu")
                .upload_id(&upload_id)
                .part_number(number)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .body(ByteStream::from(rng.bytes(*size)))
                .send()
                .await,
            "UploadPart",
        );
        let sum = out.checksum_crc32().expect("part CRC32").to_string();
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(out.e_tag().expect("etag"))
                .checksum_crc32(sum.clone())
                .build(),
        );
        part_sums.push(sum);
    }
    let done = ok(
        s3.complete_multipart_upload()
            .bucket("attributes")
            .key("mpu")
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await,
        "CompleteMultipartUpload",
    );
    let attributes = ok(
        s3.get_object_attributes()
            .bucket("attributes")
            .key("mpu")
            .object_attributes(ObjectAttributes::Etag)
            .object_attributes(ObjectAttributes::ObjectSize)
            .object_attributes(ObjectAttributes::ObjectParts)
            .object_attributes(ObjectAttributes::Checksum)
            .object_attributes(ObjectAttributes::StorageClass)
            .max_parts(1)
            .send()
            .await,
        "GetObjectAttributes",
    );
    assert_eq!(attributes.object_size(), Some((5 * MIB + 1234) as i64));
    assert_eq!(
        attributes.e_tag().map(|e| e.trim_matches('"').to_string()),
        done.e_tag().map(|e| e.trim_matches('"').to_string())
    );
    let checksum = attributes.checksum().expect("checksum");
    assert_eq!(checksum.checksum_crc32(), done.checksum_crc32(), "the composite CRC32");
    let object_parts = attributes.object_parts().expect("parts");
    assert_eq!(object_parts.total_parts_count(), Some(2));
    assert_eq!(object_parts.is_truncated(), Some(true), "max-parts 1 of 2");
    let first = &object_parts.parts()[0];
    assert_eq!((first.part_number(), first.size()), (Some(1), Some((5 * MIB) as i64)));
    assert_eq!(first.checksum_crc32(), Some(part_sums[0].as_str()));
}

/// ListParts pages by part-number-marker / max-parts, in part order, with each part's size and
/// ETag; an unknown upload is NoSuchUpload.
#[tokio::test(flavor = "multi_thread")]
async fn list_parts_pages_in_part_order() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("list_parts_pages_in_part_order");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "parts").await;
    let upload = create_upload(&s3, "parts", "object").await;
    let mut expected = Vec::new();
    // Uploaded out of order; part 4 is replaced by a second upload.
    for (number, size) in [(3, 1000), (1, 2000), (5, 70_000), (4, 10), (2, 300), (4, 4000)] {
        let data = rng.bytes(size);
        let etag = upload_part(&s3, "parts", "object", &upload, number, &data).await;
        expected.retain(|(n, _, _)| *n != number);
        expected.push((number, etag, size as i64));
    }
    expected.sort();

    let mut listed = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut request = s3.list_parts().bucket("parts").key("object").upload_id(&upload).max_parts(2);
        if let Some(m) = &marker {
            request = request.part_number_marker(m);
        }
        let page = ok(request.send().await, "ListParts");
        pages += 1;
        assert_eq!(page.max_parts(), Some(2));
        assert!(page.parts().len() <= 2);
        for part in page.parts() {
            listed.push((
                part.part_number().expect("PartNumber"),
                part.e_tag().expect("ETag").to_string(),
                part.size().expect("Size"),
            ));
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        marker = Some(page.next_part_number_marker().expect("NextPartNumberMarker when truncated").to_string());
        assert!(pages < 10, "ListParts does not end");
    }
    assert_eq!(listed, expected, "every part once, in order, the last upload of part 4 winning");
    assert_eq!(pages, 3, "5 parts by 2");

    let missing = s3.list_parts().bucket("parts").key("object").upload_id("no-such-upload").send().await;
    assert_s3_error(missing, 404, &["NoSuchUpload"], "ListParts of an unknown upload");
}

/// AWS: CompleteMultipartUpload repeated on an upload that already completed answers 200 with the
/// same ETag, location and version. Every SDK retries a completion whose answer timed out; a
/// NoSuchUpload then made the client report failure for an object that exists. The retry must
/// never make a second version, and another part list is still refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_completion_retried_after_it_succeeded_answers_the_same() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("a_completion_retried_after_it_succeeded_answers_the_same");
    let s3 = cluster.s3_client();
    for (bucket, versioned) in [("retried", false), ("retried-versioned", true)] {
        create_bucket(&s3, bucket).await;
        if versioned {
            let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build();
            ok(
                s3.put_bucket_versioning().bucket(bucket).versioning_configuration(enabled).send().await,
                "PutBucketVersioning",
            );
        }
        let id = create_upload(&s3, bucket, "object").await;
        let (first, second) = (rng.bytes(5 * MIB), rng.bytes(1000));
        let etag1 = upload_part(&s3, bucket, "object", &id, 1, &first).await;
        let etag2 = upload_part(&s3, bucket, "object", &id, 2, &second).await;
        let parts = [(1, etag1.as_str()), (2, etag2.as_str())];
        let complete = |parts: CompletedMultipartUpload| {
            s3.complete_multipart_upload().bucket(bucket).key("object").upload_id(&id).multipart_upload(parts).send()
        };
        let done = ok(complete(completed(&parts)).await, "CompleteMultipartUpload");
        // The same request again, through another gateway too: the same answer.
        for client in [&s3, &cluster.s3_client_at(2)] {
            let again = ok(
                client
                    .complete_multipart_upload()
                    .bucket(bucket)
                    .key("object")
                    .upload_id(&id)
                    .multipart_upload(completed(&parts))
                    .send()
                    .await,
                "CompleteMultipartUpload retried",
            );
            assert_eq!(again.e_tag(), done.e_tag(), "{bucket}: ETag of the retry");
            assert_eq!(again.version_id(), done.version_id(), "{bucket}: version of the retry");
            assert_eq!(again.location(), done.location(), "{bucket}: location of the retry");
            assert_eq!(again.key(), Some("object"));
        }
        assert_eq!(done.version_id().is_some(), versioned, "{bucket}: a version id only where versioning is on");
        // Another part list is not the completion that happened.
        assert_s3_error(complete(completed(&parts[..1])).await, 404, &["NoSuchUpload"], "another part list");
        let versions = ok(s3.list_object_versions().bucket(bucket).send().await, "ListObjectVersions");
        assert_eq!(versions.versions().len(), 1, "{bucket}: one version, whatever the retries");
        let mut whole = first.clone();
        whole.extend_from_slice(&second);
        assert_bytes_eq(&get_object(&s3, bucket, "object").await, &whole, bucket);
    }
}

/// A retried completion that finds the upload, then sees the first completion commit before it
/// reads the parts (the first one's proposal was still in flight when the SDK retried) answers
/// 200 with the first one's ETag, as a retry after it does, not NoSuchUpload. Here the retry is
/// held between its checks and its reading of the parts (`gateway.complete.before-parts`, first
/// hit) while the other completion commits.
#[tokio::test(flavor = "multi_thread")]
async fn a_completion_retried_while_the_first_commits_answers_the_same() {
    let cluster = Cluster::start_with_env(&[("IGNIFUGE_FAULTS", "gateway.complete.before-parts=sleep:4000@1")]).await;
    let mut rng = TestRng::new("a_completion_retried_while_the_first_commits_answers_the_same");
    let s3 = cluster.s3_client_no_retry_at(0);
    create_bucket(&s3, "overlap").await;
    // Versioned: a completion applied twice would leave two versions.
    let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    ok(
        s3.put_bucket_versioning().bucket("overlap").versioning_configuration(enabled).send().await,
        "PutBucketVersioning",
    );
    let id = create_upload(&s3, "overlap", "object").await;
    let (first, second) = (rng.bytes(5 * MIB), rng.bytes(1000));
    let etag1 = upload_part(&s3, "overlap", "object", &id, 1, &first).await;
    let etag2 = upload_part(&s3, "overlap", "object", &id, 2, &second).await;
    let parts = [(1, etag1.as_str()), (2, etag2.as_str())];
    let complete = |parts: CompletedMultipartUpload| {
        s3.complete_multipart_upload().bucket("overlap").key("object").upload_id(&id).multipart_upload(parts).send()
    };
    let held = complete(completed(&parts));
    let other = async {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        complete(completed(&parts)).await
    };
    let started = std::time::Instant::now();
    let (held, other) = tokio::join!(held, other);
    assert!(started.elapsed() >= std::time::Duration::from_secs(4), "the fault point did not hold the first request");
    let other = ok(other, "CompleteMultipartUpload while another is held");
    let held = ok(held, "CompleteMultipartUpload that saw the other commit");
    assert_eq!(held.e_tag(), other.e_tag(), "ETag of the overlapping completion");
    assert_eq!(held.version_id(), other.version_id(), "the same version, not a second one");
    assert_eq!(held.location(), other.location());
    let versions = ok(s3.list_object_versions().bucket("overlap").send().await, "ListObjectVersions");
    assert_eq!(versions.versions().len(), 1, "one version, whatever the overlap");
    let mut whole = first.clone();
    whole.extend_from_slice(&second);
    assert_bytes_eq(&get_object(&s3, "overlap", "object").await, &whole, "overlap");
}

/// Objects whose stripe records do not all come with their record (over 1024 stripes, 5 GiB, in
/// production; here the gateways bring one stripe with a record) are read by fetching the
/// rest from the metadata as the read reaches them: whole, by range, by part, copied, degraded.
#[tokio::test(flavor = "multi_thread")]
async fn objects_read_stripe_records_by_window_beyond_the_records_answer() {
    let cluster = Cluster::start_with_env(&[("IGNIFUGE_GATEWAY_READ_STRIPES", "1")]).await;
    let s3 = cluster.s3_client();
    let mut rng = TestRng::new("objects_read_stripe_records_by_window_beyond_the_records_answer");
    create_bucket(&s3, "windows").await;
    // Three stripes in one PUT; a multipart object of parts of two, three and one stripes.
    let single = rng.bytes(12 * MIB + 7);
    put_object(&s3, "windows", "single", &single).await;
    let parts = [rng.bytes(6 * MIB), rng.bytes(11 * MIB), rng.bytes(MIB + 5)];
    let upload_id = create_upload(&s3, "windows", "multi").await;
    let mut etags = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        etags.push(upload_part(&s3, "windows", "multi", &upload_id, i as i32 + 1, part).await);
    }
    ok(
        s3.complete_multipart_upload()
            .bucket("windows")
            .key("multi")
            .upload_id(&upload_id)
            .multipart_upload(completed(&[(1, &etags[0]), (2, &etags[1]), (3, &etags[2])]))
            .send()
            .await,
        "CompleteMultipartUpload",
    );
    let multi = parts.concat();

    let check = |label: &'static str| {
        let s3 = s3.clone();
        let (single, multi, parts) = (single.clone(), multi.clone(), parts.clone());
        async move {
            assert_bytes_eq(&get_object(&s3, "windows", "single").await, &single, &format!("{label}: single"));
            assert_bytes_eq(&get_object(&s3, "windows", "multi").await, &multi, &format!("{label}: multi"));
            // Ranges that start and end inside later stripes and parts.
            for (key, data, range) in [
                ("single", &single, 11 * MIB..12 * MIB + 7),
                ("multi", &multi, 5 * MIB + 3..16 * MIB + 9),
                ("multi", &multi, 17 * MIB..18 * MIB + 5),
            ] {
                let got = ok(
                    s3.get_object()
                        .bucket("windows")
                        .key(key)
                        .range(format!("bytes={}-{}", range.start, range.end - 1))
                        .send()
                        .await,
                    &format!("{label}: ranged GET of {key}"),
                );
                let body = got.body.collect().await.expect("body").into_bytes();
                assert_bytes_eq(&body, &data[range.clone()], &format!("{label}: {key} bytes {range:?}"));
            }
            let got = ok(
                s3.get_object().bucket("windows").key("multi").part_number(2).send().await,
                &format!("{label}: GET part 2"),
            );
            let body = got.body.collect().await.expect("body").into_bytes();
            assert_bytes_eq(&body, &parts[1], &format!("{label}: part 2"));
        }
    };
    check("healthy").await;

    // Copies read the source the same way.
    ok(
        s3.copy_object().bucket("windows").key("copy").copy_source("windows/multi").send().await,
        "CopyObject of a windowed object",
    );
    assert_bytes_eq(&get_object(&s3, "windows", "copy").await, &multi, "the copy");
    let upload_id = create_upload(&s3, "windows", "assembled").await;
    let copied = ok(
        s3.upload_part_copy()
            .bucket("windows")
            .key("assembled")
            .upload_id(&upload_id)
            .part_number(1)
            .copy_source("windows/multi")
            .copy_source_range(format!("bytes={}-{}", 6 * MIB, 17 * MIB - 1))
            .send()
            .await,
        "UploadPartCopy of a range of a windowed object",
    );
    let etag = copied.copy_part_result().and_then(|r| r.e_tag()).expect("ETag").to_owned();
    assert_eq!(etag, etag_of(&multi[6 * MIB..17 * MIB]));

    // Degraded: stripes fetched by window are rebuilt around a dead node like any other.
    cluster.kill_node("dc1-n1");
    check("one node down").await;
}

/// AWS's checksum rules for multipart uploads (user guide, "Checking object integrity": part-level
/// checksums): a part of an upload created with an algorithm carries that algorithm ("Checksum
/// Type mismatch occurred" otherwise); a COMPOSITE upload's completion lists every part's
/// checksum, and a listed checksum that is not the part's is InvalidPart; the object's checksum
/// is the checksum of the part checksums with "-N" (COMPOSITE) or the whole object's CRC
/// (FULL_OBJECT), with its type.
#[tokio::test(flavor = "multi_thread")]
async fn part_checksums_follow_the_uploads_algorithm() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType};
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    let mut rng = TestRng::new("part_checksums_follow_the_uploads_algorithm");
    create_bucket(&s3, "sums").await;
    let created = ok(
        s3.create_multipart_upload()
            .bucket("sums")
            .key("sha")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await,
        "CreateMultipartUpload SHA256",
    );
    assert_eq!(created.checksum_type(), Some(&ChecksumType::Composite), "SHA256 uploads default to COMPOSITE");
    let upload_id = created.upload_id().expect("upload id").to_string();
    let bodies = [rng.bytes(5 * MIB), rng.bytes(1000)];
    let send_part = |number: i32, algorithm: ChecksumAlgorithm| {
        s3.upload_part()
            .bucket("sums")
            .key("sha")
            .upload_id(&upload_id)
            .part_number(number)
            .checksum_algorithm(algorithm)
            .body(ByteStream::from(bodies[number as usize - 1].clone()))
            .send()
    };
    let refused = assert_s3_error(
        send_part(1, ChecksumAlgorithm::Crc32).await,
        400,
        &["InvalidRequest"],
        "UploadPart with CRC32 into a SHA256 upload",
    );
    assert!(refused.description.contains("Checksum Type mismatch"), "{refused:?}");
    // A COMPOSITE upload's part must carry the checksum (AWS computes none for it).
    let url = format!("{}/sums/sha?partNumber=1&uploadId={upload_id}", cluster.endpoint);
    let bare = cluster.signed_request("PUT", &url, &[], b"no checksum at all").await;
    assert_eq!((bare.status, bare.error_code().as_deref()), (400, Some("InvalidRequest")), "{}", bare.summary());
    assert!(bare.body_text().contains("actual checksum Type: null"), "{}", bare.summary());
    // Checksum types AWS refuses at creation.
    assert_s3_error(
        s3.create_multipart_upload().bucket("sums").key("x").checksum_type(ChecksumType::Composite).send().await,
        400,
        &["InvalidRequest"],
        "x-amz-checksum-type without an algorithm",
    );
    assert_s3_error(
        s3.create_multipart_upload()
            .bucket("sums")
            .key("x")
            .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
            .checksum_type(ChecksumType::Composite)
            .send()
            .await,
        400,
        &["InvalidRequest"],
        "CRC64NVME is FULL_OBJECT only",
    );
    let mut listed = Vec::new();
    for number in [1, 2] {
        let out = ok(send_part(number, ChecksumAlgorithm::Sha256).await, "UploadPart SHA256");
        listed.push((
            number,
            out.e_tag().expect("etag").to_string(),
            out.checksum_sha256().expect("sha256").to_string(),
        ));
    }
    let complete = |parts: Vec<CompletedPart>| {
        s3.complete_multipart_upload()
            .bucket("sums")
            .key("sha")
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
    };
    let part = |n: i32, etag: &str, sha: Option<&str>| {
        CompletedPart::builder().part_number(n).e_tag(etag).set_checksum_sha256(sha.map(str::to_string)).build()
    };
    let refused = assert_s3_error(
        complete(listed.iter().map(|(n, e, _)| part(*n, e, None)).collect()).await,
        400,
        &["InvalidRequest"],
        "a COMPOSITE completion without the part checksums",
    );
    assert!(refused.description.contains("must include the checksum for each part"), "{refused:?}");
    assert_s3_error(
        complete(vec![part(1, &listed[0].1, Some(&listed[1].2)), part(2, &listed[1].1, Some(&listed[1].2))]).await,
        400,
        &["InvalidPart"],
        "a completion listing another part's checksum",
    );
    let done = ok(
        complete(listed.iter().map(|(n, e, sha)| part(*n, e, Some(sha))).collect()).await,
        "the completion with every part's checksum",
    );
    assert_eq!(done.checksum_type(), Some(&ChecksumType::Composite));
    let expected = {
        let raw_sha256 = |data: &[u8]| {
            let algorithm: aws_smithy_checksums::ChecksumAlgorithm = "sha256".parse().expect("sha256");
            let mut checksum = algorithm.into_impl();
            checksum.update(data);
            checksum.finalize().to_vec()
        };
        let joined: Vec<u8> = bodies.iter().flat_map(|body| raw_sha256(body)).collect();
        format!("{}-2", checksum_base64("sha256", &joined))
    };
    assert_eq!(done.checksum_sha256(), Some(expected.as_str()), "the checksum of the part checksums, -N");
    assert_bytes_eq(&get_object(&s3, "sums", "sha").await, &bodies.concat(), "the object");

    // FULL_OBJECT CRC32: the parts' CRCs need not be listed; the object's CRC is the whole body's.
    let created = ok(
        s3.create_multipart_upload()
            .bucket("sums")
            .key("crc")
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .checksum_type(ChecksumType::FullObject)
            .send()
            .await,
        "CreateMultipartUpload CRC32 FULL_OBJECT",
    );
    let upload_id = created.upload_id().expect("upload id").to_string();
    let mut parts = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let out = ok(
            s3.upload_part()
                .bucket("sums")
                .key("crc")
                .upload_id(&upload_id)
                .part_number(i as i32 + 1)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .body(ByteStream::from(body.clone()))
                .send()
                .await,
            "UploadPart CRC32",
        );
        parts.push(CompletedPart::builder().part_number(i as i32 + 1).e_tag(out.e_tag().expect("etag")).build());
    }
    let expected = checksum_base64("crc32", &bodies.concat());
    let total = bodies.iter().map(Vec::len).sum::<usize>() as i64;
    let complete = || {
        s3.complete_multipart_upload()
            .bucket("sums")
            .key("crc")
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts.clone())).build())
    };
    // The whole object's checksum and size, stated by the client, must be what was uploaded.
    assert_s3_error(
        complete().checksum_crc32(checksum_base64("crc32", b"other bytes")).send().await,
        400,
        &["BadDigest"],
        "a completion stating another full-object CRC32",
    );
    assert_s3_error(
        complete().mpu_object_size(total + 1).send().await,
        400,
        &["InvalidRequest"],
        "a completion stating another object size",
    );
    let done = ok(
        complete().checksum_crc32(expected.clone()).mpu_object_size(total).send().await,
        "a FULL_OBJECT completion without part checksums, stating the object's CRC32 and size",
    );
    assert_eq!(done.checksum_type(), Some(&ChecksumType::FullObject));
    assert_eq!(done.checksum_crc32(), Some(expected.as_str()), "the CRC32 of the whole object");
}
