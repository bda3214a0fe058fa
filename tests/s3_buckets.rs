//! Bucket operations end to end: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
//! GetBucketLocation, seen from every datacenter's gateway.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn bucket_lifecycle_across_gateways() {
    let cluster = Cluster::start().await;
    let (s3, status) = cluster.s3_client_with_status();

    let listed = ok(s3.list_buckets().send().await, "ListBuckets on a new cluster");
    assert!(listed.buckets().is_empty(), "a new cluster has no bucket, got {:?}", listed.buckets());

    let names = ["zeta-bucket", "alpha-bucket", "mid.bucket-1"];
    for name in names {
        status.reset();
        create_bucket(&s3, name).await;
        assert_eq!(status.last(), Some(200), "CreateBucket {name} status");
    }

    // Every gateway sees every bucket, sorted by name, with a creation date.
    let mut expected: Vec<&str> = names.to_vec();
    expected.sort();
    for (index, gateway) in cluster.gateways.iter().enumerate() {
        let client = cluster.s3_client_at(index);
        let listed = ok(client.list_buckets().send().await, &format!("ListBuckets via {gateway}"));
        let got: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
        assert_eq!(got, expected, "ListBuckets via {gateway}");
        for bucket in listed.buckets() {
            assert!(bucket.creation_date().is_some(), "bucket {:?} has no CreationDate via {gateway}", bucket.name());
        }
        for name in names {
            ok(client.head_bucket().bucket(name).send().await, &format!("HeadBucket {name} via {gateway}"));
        }
    }

    // GetBucketLocation: AWS reports us-east-1 buckets with an empty LocationConstraint.
    let location = ok(s3.get_bucket_location().bucket("alpha-bucket").send().await, "GetBucketLocation");
    let constraint = location.location_constraint().map(|c| c.as_str().to_owned()).unwrap_or_default();
    assert!(
        constraint.is_empty() || constraint == "us-east-1",
        "GetBucketLocation of a us-east-1 bucket: got {constraint:?}"
    );

    // Re-creating our own bucket: AWS's legacy answer in us-east-1 (the dev cluster's region) is
    // 200 OK, changing nothing (elsewhere 409 BucketAlreadyOwnedByYou).
    put_object(&s3, "alpha-bucket", "kept", b"kept").await;
    ok(s3.create_bucket().bucket("alpha-bucket").send().await, "CreateBucket of an existing own bucket in us-east-1");
    assert_eq!(get_object(&s3, "alpha-bucket", "kept").await, b"kept", "re-creating changed nothing");
    ok(s3.delete_object().bucket("alpha-bucket").key("kept").send().await, "DeleteObject");

    // A bucket with an object cannot be deleted.
    put_object(&s3, "alpha-bucket", "some/object", b"payload").await;
    assert_s3_error(
        s3.delete_bucket().bucket("alpha-bucket").send().await,
        409,
        &["BucketNotEmpty"],
        "DeleteBucket of a non-empty bucket",
    );
    ok(s3.head_bucket().bucket("alpha-bucket").send().await, "HeadBucket after refused DeleteBucket");
    assert_eq!(
        get_object(&s3, "alpha-bucket", "some/object").await,
        b"payload",
        "object survives a refused DeleteBucket"
    );

    // Emptied, it can; deleting through another gateway than the one that created it.
    ok(s3.delete_object().bucket("alpha-bucket").key("some/object").send().await, "DeleteObject");
    let s3_dc2 = cluster.s3_client_at(1);
    status.reset();
    ok(s3.delete_bucket().bucket("alpha-bucket").send().await, "DeleteBucket of an emptied bucket");
    assert_eq!(status.last(), Some(204), "DeleteBucket status");

    for (index, gateway) in cluster.gateways.iter().enumerate() {
        let client = cluster.s3_client_at(index);
        assert_status(
            client.head_bucket().bucket("alpha-bucket").send().await,
            404,
            &format!("HeadBucket of a deleted bucket via {gateway}"),
        );
        let listed = ok(client.list_buckets().send().await, "ListBuckets");
        let got: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
        assert_eq!(got, vec!["mid.bucket-1", "zeta-bucket"], "ListBuckets after DeleteBucket via {gateway}");
    }

    // Operations on a bucket that does not exist.
    assert_s3_error(
        s3.delete_bucket().bucket("alpha-bucket").send().await,
        404,
        &["NoSuchBucket"],
        "DeleteBucket of a deleted bucket",
    );
    assert_s3_error(
        s3.get_object().bucket("never-created").key("k").send().await,
        404,
        &["NoSuchBucket"],
        "GetObject in a missing bucket",
    );
    assert_s3_error(
        s3.put_object().bucket("never-created").key("k").body(b"x".to_vec().into()).send().await,
        404,
        &["NoSuchBucket"],
        "PutObject in a missing bucket",
    );
    assert_s3_error(
        s3.list_objects_v2().bucket("never-created").send().await,
        404,
        &["NoSuchBucket"],
        "ListObjectsV2 of a missing bucket",
    );
    assert_s3_error(
        s3.get_bucket_location().bucket("never-created").send().await,
        404,
        &["NoSuchBucket"],
        "GetBucketLocation of a missing bucket",
    );

    // The name is free again once deleted.
    create_bucket(&s3_dc2, "alpha-bucket").await;
    ok(s3.head_bucket().bucket("alpha-bucket").send().await, "HeadBucket of a re-created bucket");
    let keys = list_all_keys(&s3, "alpha-bucket").await;
    assert!(keys.is_empty(), "a re-created bucket starts empty, got {keys:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_create_bucket_of_one_tenant() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();

    // Concurrent CreateBucket of the same name through the three gateways: in us-east-1 every
    // one succeeds (AWS's legacy answer to re-creating your own bucket there), and there is one
    // bucket.
    let mut handles = Vec::new();
    for index in 0..cluster.gateways.len() {
        let client = cluster.s3_client_at(index);
        handles.push(tokio::spawn(async move {
            client.create_bucket().bucket("contended").send().await.map(|_| ()).map_err(|e| {
                use aws_sdk_s3::error::ProvideErrorMetadata;
                (e.raw_response().map(|r| r.status().as_u16()), e.code().map(str::to_owned))
            })
        }));
    }
    let mut successes = 0;
    for handle in handles {
        match handle.await.expect("task") {
            Ok(()) => successes += 1,
            Err((status, code)) => panic!("a concurrent CreateBucket of one's own bucket failed: {status:?} {code:?}"),
        }
    }
    assert_eq!(successes, cluster.gateways.len(), "every concurrent CreateBucket of one's own bucket succeeds");

    let listed = ok(s3.list_buckets().send().await, "ListBuckets");
    let got: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(got, vec!["contended"]);

    // An empty bucket round trip through another gateway.
    put_object(&cluster.s3_client_at(2), "contended", "k", b"v").await;
    assert_eq!(get_object(&s3, "contended", "k").await, b"v");
}

/// Operations the store does not implement answer 501 NotImplemented with a message naming the
/// operation, to a caller allowed to ask, and never a wrong success (AWS's error for
/// functionality that is not implemented). GetObjectTorrent included: AWS discontinued
/// BitTorrent in 2021-2022 and documents no answer for it now, so it is refused like the others
/// rather than served as the object's bytes.
#[tokio::test(flavor = "multi_thread")]
async fn operations_not_implemented_answer_501_naming_the_operation() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "unimplemented").await;
    put_object(&s3, "unimplemented", "k", b"bytes").await;
    let b = "unimplemented";
    let check = |result: ErrorInfo, operation: &str| {
        assert_eq!(result.status, Some(501), "{operation}: {result:?}");
        assert_eq!(result.code.as_deref(), Some("NotImplemented"), "{operation}: {result:?}");
        assert!(result.description.contains(operation), "{operation}: the message names it: {result:?}");
    };
    check(
        expect_err(s3.get_bucket_lifecycle_configuration().bucket(b).send().await, "lifecycle"),
        "GetBucketLifecycleConfiguration",
    );
    check(expect_err(s3.get_bucket_encryption().bucket(b).send().await, "encryption"), "GetBucketEncryption");
    check(
        expect_err(s3.get_object_lock_configuration().bucket(b).send().await, "object lock"),
        "GetObjectLockConfiguration",
    );
    check(expect_err(s3.get_bucket_replication().bucket(b).send().await, "replication"), "GetBucketReplication");
    check(expect_err(s3.get_bucket_logging().bucket(b).send().await, "logging"), "GetBucketLogging");
    check(
        expect_err(s3.get_bucket_notification_configuration().bucket(b).send().await, "notifications"),
        "GetBucketNotificationConfiguration",
    );
    check(expect_err(s3.get_object_torrent().bucket(b).key("k").send().await, "torrent"), "GetObjectTorrent");
    assert_eq!(get_object(&s3, b, "k").await, b"bytes", "the object is untouched");
}
