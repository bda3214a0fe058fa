//! Tenant isolation end to end: a tenant made with `ignifuge admin tenant create` can do nothing
//! to another tenant's buckets and objects, cannot see them listed, and cannot take their names.

mod common;

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use common::*;

const DENIED: &[&str] = &["AccessDenied"];

#[tokio::test(flavor = "multi_thread")]
async fn another_tenant_is_denied_everything() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("another_tenant_is_denied_everything");
    let a = cluster.s3_client();
    create_bucket(&a, "alpha-data").await;
    let object = rng.bytes(300 * 1024);
    let small = b"small object of A".to_vec();
    let object_etag = put_object(&a, "alpha-data", "reports/q1.bin", &object).await;
    put_object(&a, "alpha-data", "small.txt", &small).await;
    let a_upload =
        ok(a.create_multipart_upload().bucket("alpha-data").key("in-progress").send().await, "A CreateMultipartUpload")
            .upload_id()
            .expect("UploadId")
            .to_owned();
    let a_part = rng.bytes(1000);
    let a_part_etag = ok(
        a.upload_part()
            .bucket("alpha-data")
            .key("in-progress")
            .upload_id(&a_upload)
            .part_number(1)
            .body(ByteStream::from(a_part.clone()))
            .send()
            .await,
        "A UploadPart",
    )
    .e_tag()
    .expect("ETag")
    .to_owned();

    let b_keys = cluster.create_tenant("tenant-b");
    assert_ne!(b_keys.access_key, cluster.access_key, "a new tenant gets a new key");
    let b = cluster.client_for_keys(&b_keys);

    // B starts with nothing and sees nothing of A.
    let listed = ok(b.list_buckets().send().await, "B ListBuckets");
    assert!(listed.buckets().is_empty(), "B sees buckets: {:?}", listed.buckets());
    create_bucket(&b, "beta-data").await;
    put_object(&b, "beta-data", "own.txt", b"B's own object").await;
    let listed = ok(b.list_buckets().send().await, "B ListBuckets");
    let names: Vec<&str> = listed.buckets().iter().filter_map(|x| x.name()).collect();
    assert_eq!(names, vec!["beta-data"], "B lists only its own bucket");
    let listed = ok(a.list_buckets().send().await, "A ListBuckets");
    let names: Vec<&str> = listed.buckets().iter().filter_map(|x| x.name()).collect();
    assert_eq!(names, vec!["alpha-data"], "A lists only its own bucket");

    // Bucket names are global.
    assert_s3_error(
        b.create_bucket().bucket("alpha-data").send().await,
        409,
        &["BucketAlreadyExists"],
        "B CreateBucket with A's bucket name",
    );
    assert_s3_error(
        a.create_bucket().bucket("beta-data").send().await,
        409,
        &["BucketAlreadyExists"],
        "A CreateBucket with B's bucket name",
    );
    // Its own: 200 OK in us-east-1, AWS's legacy answer (another tenant's: 409 above).
    ok(b.create_bucket().bucket("beta-data").send().await, "B CreateBucket of its own bucket");

    // Every bucket and object operation of B on A's bucket.
    assert_status(b.head_bucket().bucket("alpha-data").send().await, 403, "B HeadBucket");
    assert_s3_error(b.get_bucket_location().bucket("alpha-data").send().await, 403, DENIED, "B GetBucketLocation");
    assert_s3_error(b.list_objects_v2().bucket("alpha-data").send().await, 403, DENIED, "B ListObjectsV2");
    assert_s3_error(b.list_objects().bucket("alpha-data").send().await, 403, DENIED, "B ListObjects");
    assert_s3_error(b.delete_bucket().bucket("alpha-data").send().await, 403, DENIED, "B DeleteBucket");
    for key in ["reports/q1.bin", "small.txt", "does-not-exist"] {
        assert_s3_error(
            b.get_object().bucket("alpha-data").key(key).send().await,
            403,
            DENIED,
            &format!("B GetObject {key}"),
        );
        assert_s3_error(
            b.get_object().bucket("alpha-data").key(key).range("bytes=0-9").send().await,
            403,
            DENIED,
            &format!("B ranged GetObject {key}"),
        );
        assert_status(b.head_object().bucket("alpha-data").key(key).send().await, 403, &format!("B HeadObject {key}"));
        assert_s3_error(
            b.put_object().bucket("alpha-data").key(key).body(ByteStream::from_static(b"B was here")).send().await,
            403,
            DENIED,
            &format!("B PutObject {key}"),
        );
        assert_s3_error(
            b.delete_object().bucket("alpha-data").key(key).send().await,
            403,
            DENIED,
            &format!("B DeleteObject {key}"),
        );
    }

    // DeleteObjects: refused whole (403) or key by key (every key an AccessDenied error).
    let delete = Delete::builder()
        .set_objects(Some(
            ["reports/q1.bin", "small.txt"]
                .iter()
                .map(|k| ObjectIdentifier::builder().key(*k).build().expect("identifier"))
                .collect(),
        ))
        .build()
        .expect("delete");
    match b.delete_objects().bucket("alpha-data").delete(delete).send().await {
        Ok(output) => {
            assert!(output.deleted().is_empty(), "B DeleteObjects deleted {:?}", output.deleted());
            assert_eq!(output.errors().len(), 2, "B DeleteObjects errors: {:?}", output.errors());
            for error in output.errors() {
                assert_eq!(error.code(), Some("AccessDenied"), "B DeleteObjects per-key error {error:?}");
            }
        }
        Err(error) => {
            let info = expect_err::<(), _>(Err(error), "B DeleteObjects");
            assert_eq!(
                (info.status, info.code.as_deref()),
                (Some(403), Some("AccessDenied")),
                "B DeleteObjects: {info:?}"
            );
        }
    }

    // CopyObject in both directions.
    assert_s3_error(
        b.copy_object().bucket("beta-data").key("stolen").copy_source("alpha-data/reports/q1.bin").send().await,
        403,
        DENIED,
        "B copies A's object into its own bucket",
    );
    assert_s3_error(
        b.copy_object().bucket("alpha-data").key("planted").copy_source("beta-data/own.txt").send().await,
        403,
        DENIED,
        "B copies its object into A's bucket",
    );
    assert_s3_error(
        b.copy_object().bucket("alpha-data").key("small.txt").copy_source("alpha-data/reports/q1.bin").send().await,
        403,
        DENIED,
        "B copies within A's bucket",
    );

    // Multipart, on a new upload and on A's upload.
    assert_s3_error(
        b.create_multipart_upload().bucket("alpha-data").key("b-upload").send().await,
        403,
        DENIED,
        "B CreateMultipartUpload",
    );
    assert_s3_error(
        b.upload_part()
            .bucket("alpha-data")
            .key("in-progress")
            .upload_id(&a_upload)
            .part_number(2)
            .body(ByteStream::from_static(b"B's part"))
            .send()
            .await,
        403,
        DENIED,
        "B UploadPart into A's upload",
    );
    let b_part_list = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(&a_part_etag).build())
        .build();
    assert_s3_error(
        b.complete_multipart_upload()
            .bucket("alpha-data")
            .key("in-progress")
            .upload_id(&a_upload)
            .multipart_upload(b_part_list.clone())
            .send()
            .await,
        403,
        DENIED,
        "B CompleteMultipartUpload of A's upload",
    );
    assert_s3_error(
        b.abort_multipart_upload().bucket("alpha-data").key("in-progress").upload_id(&a_upload).send().await,
        403,
        DENIED,
        "B AbortMultipartUpload of A's upload",
    );

    // Presigned by B: still B, still denied.
    let presigned = b
        .get_object()
        .bucket("alpha-data")
        .key("small.txt")
        .presigned(presign_config(std::time::Duration::from_secs(300)))
        .await
        .expect("presign");
    let response = send_presigned(&presigned, b"").await;
    assert_eq!(response.status, 403, "B's presigned GET of A's object: {}", response.summary());
    assert_eq!(response.error_code().as_deref(), Some("AccessDenied"));

    // A's world is unchanged.
    let mut keys = list_all_keys(&a, "alpha-data").await;
    keys.sort();
    assert_eq!(keys, vec!["reports/q1.bin", "small.txt"], "A's keys after B's attempts");
    assert_bytes_eq(&get_object(&a, "alpha-data", "reports/q1.bin").await, &object, "A's object");
    let head = ok(a.head_object().bucket("alpha-data").key("reports/q1.bin").send().await, "A HEAD");
    assert_eq!(head.e_tag(), Some(object_etag.as_str()));
    assert_eq!(get_object(&a, "alpha-data", "small.txt").await, small);
    assert_eq!(list_all_keys(&b, "beta-data").await, vec!["own.txt"], "B's bucket after the attempts");
    let done = ok(
        a.complete_multipart_upload()
            .bucket("alpha-data")
            .key("in-progress")
            .upload_id(&a_upload)
            .multipart_upload(b_part_list)
            .send()
            .await,
        "A completes its own upload",
    );
    assert_eq!(done.e_tag(), Some(multipart_etag(&[&a_part]).as_str()));
    assert_eq!(get_object(&a, "alpha-data", "in-progress").await, a_part);

    // And the other way round: A has no access to B's bucket either.
    assert_s3_error(a.get_object().bucket("beta-data").key("own.txt").send().await, 403, DENIED, "A GetObject of B's");
    assert_s3_error(a.list_objects_v2().bucket("beta-data").send().await, 403, DENIED, "A ListObjectsV2 of B's");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_of_one_tenant_share_its_buckets() {
    let cluster = Cluster::start().await;
    let b1_keys = cluster.create_tenant("tenant-b");
    let c_keys = cluster.create_tenant("tenant-c");
    let b2_keys = cluster.create_key("tenant-b");
    assert_ne!(b1_keys.access_key, b2_keys.access_key, "key create makes a new key");
    assert_ne!(b1_keys.access_key, c_keys.access_key);
    let b1 = cluster.client_for_keys(&b1_keys);
    let b2 = cluster.client_for_keys(&b2_keys);
    let c = cluster.client_for_keys(&c_keys);

    create_bucket(&b1, "b-shared").await;
    put_object(&b1, "b-shared", "from-key-1", b"one").await;
    // The second key of B is B: same buckets, same objects, same ownership.
    let names: Vec<String> = ok(b2.list_buckets().send().await, "B2 ListBuckets")
        .buckets()
        .iter()
        .filter_map(|x| x.name().map(str::to_owned))
        .collect();
    assert_eq!(names, vec!["b-shared"]);
    assert_eq!(get_object(&b2, "b-shared", "from-key-1").await, b"one");
    put_object(&b2, "b-shared", "from-key-2", b"two").await;
    assert_eq!(get_object(&b1, "b-shared", "from-key-2").await, b"two");
    ok(b2.create_bucket().bucket("b-shared").send().await, "B's second key re-creating B's bucket (us-east-1: 200)");

    // C is another tenant; same object keys in its own bucket are independent.
    assert!(ok(c.list_buckets().send().await, "C ListBuckets").buckets().is_empty());
    assert_s3_error(
        c.get_object().bucket("b-shared").key("from-key-1").send().await,
        403,
        DENIED,
        "C GetObject of B's",
    );
    assert_s3_error(
        c.create_bucket().bucket("b-shared").send().await,
        409,
        &["BucketAlreadyExists"],
        "C CreateBucket with B's name",
    );
    create_bucket(&c, "c-own").await;
    put_object(&c, "c-own", "from-key-1", b"C's").await;
    assert_eq!(get_object(&c, "c-own", "from-key-1").await, b"C's");
    assert_eq!(get_object(&b1, "b-shared", "from-key-1").await, b"one");
    assert_s3_error(b1.get_object().bucket("c-own").key("from-key-1").send().await, 403, DENIED, "B GetObject of C's");

    // The cluster's own tenant sees none of them.
    let own: Vec<String> = ok(cluster.s3_client().list_buckets().send().await, "ListBuckets")
        .buckets()
        .iter()
        .filter_map(|x| x.name().map(str::to_owned))
        .collect();
    assert!(own.is_empty(), "the dev tenant sees other tenants' buckets: {own:?}");

    // Concurrent CreateBucket of one name by two tenants: exactly one owns it.
    let (from_b, from_c) =
        tokio::join!(b1.create_bucket().bucket("contested").send(), c.create_bucket().bucket("contested").send());
    let outcomes = [from_b.is_ok(), from_c.is_ok()];
    assert_eq!(outcomes.iter().filter(|x| **x).count(), 1, "exactly one tenant creates the bucket: {outcomes:?}");
    let (winner, loser, loser_result) =
        if outcomes[0] { (&b1, &c, from_c.map(|_| ())) } else { (&c, &b1, from_b.map(|_| ())) };
    assert_s3_error(loser_result, 409, &["BucketAlreadyExists"], "the losing concurrent CreateBucket");
    put_object(winner, "contested", "k", b"winner").await;
    assert_s3_error(loser.get_object().bucket("contested").key("k").send().await, 403, DENIED, "the loser reading");
}

/// A revoked key (`ignifuge admin key delete`) is refused by every gateway within the key cache's
/// life (10 s), presigned URLs made with it included; the tenant's other keys and data stay.
#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_key_is_refused_by_every_gateway() {
    let cluster = Cluster::start().await;
    let revoked = cluster.create_tenant("leaky");
    let kept = cluster.create_key("leaky");
    let client = cluster.client_for_keys(&revoked);
    create_bucket(&client, "leaky-data").await;
    put_object(&client, "leaky-data", "doc", b"still here").await;
    let presigned = client
        .get_object()
        .bucket("leaky-data")
        .key("doc")
        .presigned(presign_config(std::time::Duration::from_secs(600)))
        .await
        .expect("presign");
    assert_eq!(send_presigned(&presigned, b"").await.status, 200);
    // Every gateway has the key in its cache before it is revoked.
    let at = |index: usize| {
        aws_sdk_s3::Client::from_conf(
            cluster.s3_config(&cluster.gateways[index], &revoked.access_key, &revoked.secret_key).build(),
        )
    };
    for index in 0..cluster.gateways.len() {
        ok(at(index).list_buckets().send().await, "ListBuckets before");
    }
    let said = cluster.admin(&["key", "delete", &revoked.access_key]);
    assert!(said.contains("revoked"), "{said}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for index in 0..cluster.gateways.len() {
        loop {
            match at(index).list_buckets().send().await {
                Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(403) => {
                    assert_eq!(e.code(), Some("InvalidAccessKeyId"), "gateway {index}");
                    break;
                }
                other => {
                    assert!(std::time::Instant::now() < deadline, "gateway {index} still serves the key: {other:?}");
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            }
        }
    }
    let refused = send_presigned(&presigned, b"").await;
    assert_eq!(refused.status, 403, "a presigned URL of the revoked key: {}", refused.summary());
    assert_eq!(refused.error_code().as_deref(), Some("InvalidAccessKeyId"));
    // The tenant's other key, and its data, stay.
    assert_eq!(get_object(&cluster.client_for_keys(&kept), "leaky-data", "doc").await, b"still here");
    let again = cluster.admin_output(&["key", "delete", &revoked.access_key]);
    assert!(!again.status.success(), "revoking an unknown key succeeded");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("no access key"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
