//! Object and bucket tagging end to end: x-amz-tagging on PutObject, CopyObject and multipart,
//! Put/Get/DeleteObjectTagging, Put/Get/DeleteBucketTagging, AWS's limits, tenant isolation.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Tag, Tagging, TaggingDirective};
use common::*;

fn tags_of(set: &[Tag]) -> Vec<(String, String)> {
    set.iter().map(|t| (t.key().to_string(), t.value().to_string())).collect()
}

fn tagging(pairs: &[(&str, &str)]) -> Tagging {
    let set = pairs.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build().expect("tag")).collect();
    Tagging::builder().set_tag_set(Some(set)).build().expect("tagging")
}

async fn object_tags(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<(String, String)> {
    let out = ok(s3.get_object_tagging().bucket(bucket).key(key).send().await, &format!("GetObjectTagging {key}"));
    tags_of(out.tag_set())
}

#[tokio::test(flavor = "multi_thread")]
async fn object_tags_are_stored_replaced_copied_and_deleted() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "tagged").await;
    ok(
        s3.put_object()
            .bucket("tagged")
            .key("k")
            .tagging("project=fire%20drill&owner=ops")
            .body(ByteStream::from_static(b"tagged bytes"))
            .send()
            .await,
        "PutObject with x-amz-tagging",
    );
    let expected = vec![("project".to_string(), "fire drill".to_string()), ("owner".to_string(), "ops".to_string())];
    assert_eq!(object_tags(&s3, "tagged", "k").await, expected);
    let got = ok(s3.get_object().bucket("tagged").key("k").send().await, "GetObject");
    assert_eq!(got.tag_count(), Some(2), "x-amz-tagging-count");

    // CopyObject copies tags by default and replaces them with REPLACE.
    ok(s3.copy_object().bucket("tagged").key("copy").copy_source("tagged/k").send().await, "CopyObject");
    assert_eq!(object_tags(&s3, "tagged", "copy").await, expected, "tags copied with the object");
    ok(
        s3.copy_object()
            .bucket("tagged")
            .key("replaced")
            .copy_source("tagged/k")
            .tagging_directive(TaggingDirective::Replace)
            .tagging("only=this")
            .send()
            .await,
        "CopyObject REPLACE",
    );
    assert_eq!(object_tags(&s3, "tagged", "replaced").await, vec![("only".to_string(), "this".to_string())]);

    ok(
        s3.put_object_tagging().bucket("tagged").key("k").tagging(tagging(&[("a", "1")])).send().await,
        "PutObjectTagging",
    );
    assert_eq!(object_tags(&s3, "tagged", "k").await, vec![("a".to_string(), "1".to_string())]);
    ok(s3.delete_object_tagging().bucket("tagged").key("k").send().await, "DeleteObjectTagging");
    assert!(object_tags(&s3, "tagged", "k").await.is_empty());
    assert_bytes_eq(&get_object(&s3, "tagged", "k").await, b"tagged bytes", "tagging leaves the bytes alone");

    let missing = s3.get_object_tagging().bucket("tagged").key("nope").send().await;
    assert_eq!(error_info(&missing.expect_err("no such key")).status, Some(404));

    // AWS's limits: at most 10 tags, unique keys.
    let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), "v".to_string())).collect();
    let eleven: Vec<(&str, &str)> = eleven.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let too_many = s3.put_object_tagging().bucket("tagged").key("k").tagging(tagging(&eleven)).send().await;
    let info = error_info(&too_many.expect_err("11 tags are refused"));
    assert_eq!((info.status, info.code.as_deref()), (Some(400), Some("BadRequest")), "{}", info.description);
    let duplicate =
        s3.put_object().bucket("tagged").key("dup").tagging("a=1&a=2").body(ByteStream::from_static(b"x")).send().await;
    let info = error_info(&duplicate.expect_err("duplicate keys are refused"));
    assert_eq!((info.status, info.code.as_deref()), (Some(400), Some("InvalidTag")), "{}", info.description);
    let head = s3.head_object().bucket("tagged").key("dup").send().await;
    assert_eq!(error_info(&head.expect_err("nothing stored")).status, Some(404));
}

#[tokio::test(flavor = "multi_thread")]
async fn multipart_uploads_carry_their_tags() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    let mut rng = TestRng::new("multipart_uploads_carry_their_tags");
    create_bucket(&s3, "tagged-mpu").await;
    let created = ok(
        s3.create_multipart_upload().bucket("tagged-mpu").key("big").tagging("kind=multipart").send().await,
        "CreateMultipartUpload with tagging",
    );
    let upload_id = created.upload_id().expect("upload id").to_string();
    let data = rng.bytes(1 << 20);
    let part = ok(
        s3.upload_part()
            .bucket("tagged-mpu")
            .key("big")
            .upload_id(&upload_id)
            .part_number(1)
            .body(ByteStream::from(data.clone()))
            .send()
            .await,
        "UploadPart",
    );
    let parts = vec![CompletedPart::builder().part_number(1).e_tag(part.e_tag().expect("etag")).build()];
    ok(
        s3.complete_multipart_upload()
            .bucket("tagged-mpu")
            .key("big")
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await,
        "CompleteMultipartUpload",
    );
    assert_eq!(object_tags(&s3, "tagged-mpu", "big").await, vec![("kind".to_string(), "multipart".to_string())]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bucket_tags_and_tenant_isolation() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "tagged-bucket").await;
    let none = s3.get_bucket_tagging().bucket("tagged-bucket").send().await;
    let info = error_info(&none.expect_err("no tag set yet"));
    assert_eq!((info.status, info.code.as_deref()), (Some(404), Some("NoSuchTagSet")), "{}", info.description);
    ok(
        s3.put_bucket_tagging().bucket("tagged-bucket").tagging(tagging(&[("team", "storage")])).send().await,
        "PutBucketTagging",
    );
    let got = ok(s3.get_bucket_tagging().bucket("tagged-bucket").send().await, "GetBucketTagging");
    assert_eq!(tags_of(got.tag_set()), vec![("team".to_string(), "storage".to_string())]);

    put_object(&s3, "tagged-bucket", "k", b"x").await;
    let other = cluster.create_tenant("tagging-other");
    let intruder = cluster.client_for_keys(&other);
    let get = intruder.get_object_tagging().bucket("tagged-bucket").key("k").send().await;
    assert_eq!(error_info(&get.expect_err("GetObjectTagging")).status, Some(403), "GetObjectTagging by another tenant");
    let put =
        intruder.put_object_tagging().bucket("tagged-bucket").key("k").tagging(tagging(&[("x", "y")])).send().await;
    assert_eq!(error_info(&put.expect_err("PutObjectTagging")).status, Some(403), "PutObjectTagging by another tenant");
    let bucket_other = intruder.delete_bucket_tagging().bucket("tagged-bucket").send().await;
    assert_eq!(error_info(&bucket_other.expect_err("DeleteBucketTagging")).status, Some(403));

    ok(s3.delete_bucket_tagging().bucket("tagged-bucket").send().await, "DeleteBucketTagging");
    let gone = s3.get_bucket_tagging().bucket("tagged-bucket").send().await;
    assert_eq!(error_info(&gone.expect_err("deleted")).status, Some(404));
}
