//! Small objects packed together (`gateway/src/pack.rs`): PutObjects of bodies over the inline
//! limit and up to IGNIFUGE_PACK_MAX_BYTES (1 MiB) that arrive together are written as one
//! erasure-coded stripe and committed by one proposal. End to end: they share shard files, read
//! back whole and by range from every gateway, with nodes down, and a pack's shards are deleted
//! only once no version references any object of it.

mod common;

use std::time::{Duration, Instant};

use common::*;

const KIB: usize = 1024;

/// PUTs `objects` all at once through `client`; every one must be acknowledged.
async fn put_all(client: &aws_sdk_s3::Client, bucket: &str, objects: &[(String, Vec<u8>)]) {
    let mut puts = tokio::task::JoinSet::new();
    for (index, (key, data)) in objects.iter().enumerate() {
        let client = client.clone();
        let (bucket, key, data) = (bucket.to_string(), key.clone(), data.clone());
        puts.spawn(async move { (index, put_object(&client, &bucket, &key, &data).await) });
    }
    while let Some(done) = puts.join_next().await {
        let (index, etag) = done.expect("a PUT task");
        let (key, data) = &objects[index];
        assert_eq!(etag, etag_of(data), "ETag of {key}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn small_objects_put_together_share_packs_read_back_and_are_collected_with_their_last_object() {
    let mut cluster =
        Cluster::start_with_env(&[("IGNIFUGE_GC_GRACE_MS", "0"), ("IGNIFUGE_GC_INTERVAL_MS", "300")]).await;
    let mut rng = TestRng::new("small_objects_put_together_share_packs");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "packed").await;
    // 48 objects from just over the inline limit to the pack limit, all in flight at once.
    let sizes = [KIB + 1, 5 * KIB, 16 * KIB + 3, 64 * KIB, 200 * KIB + 7, 1024 * KIB];
    let objects: Vec<(String, Vec<u8>)> =
        (0..48).map(|i| (format!("small/{i:02}"), rng.bytes(sizes[i % sizes.len()]))).collect();
    put_all(&s3, "packed", &objects).await;
    let packs = cluster.blob_dirs();
    assert!(
        !packs.is_empty() && packs.len() < objects.len(),
        "48 small objects put at once were written in {} blobs: some must share a pack",
        packs.len()
    );
    let report = cluster.durability();
    assert_eq!(report["tenants"][0]["full_budget_objects"], 48, "packed objects are erasure-coded: {report}");
    assert_eq!(report["tenants"][0]["inline_objects"], 0, "{report}");

    // Whole and by range, through every gateway.
    for index in 0..cluster.gateways.len() {
        let client = cluster.s3_client_at(index);
        for (key, data) in &objects {
            assert_bytes_eq(&get_object(&client, "packed", key).await, data, &format!("{key} via gateway {index}"));
        }
        let (key, data) = &objects[4];
        let ranged = ok(
            client.get_object().bucket("packed").key(key).range("bytes=1000-70000").send().await,
            "a ranged GET of a packed object",
        );
        let body = ranged.body.collect().await.expect("body").into_bytes();
        assert_bytes_eq(&body, &data[1000..=70000], "bytes 1000-70000 of a packed object");
    }

    // Degraded: two nodes of one datacenter and one of another down; every object still reads.
    cluster.kill_processes(&["dc1-n1", "dc1-n2", "dc2-n1"]);
    for (key, data) in &objects {
        assert_bytes_eq(&get_object(&s3, "packed", key).await, data, &format!("{key} with three nodes down"));
    }
    // Back, so that the collector reaches every copy.
    cluster.revive(Duration::from_secs(60));

    // Delete all objects but one: the pack still holding it keeps its shards, every other pack
    // is collected (the state machine turns a pack with no referenced slot into garbage); once
    // the last object goes too, its pack follows.
    let keep = &objects[0];
    for (key, _) in &objects[1..] {
        ok(s3.delete_object().bucket("packed").key(key).send().await, "DeleteObject of a packed object");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.blob_dirs().len() > 1 {
        assert!(Instant::now() < deadline, "packs left 30 s after their objects went: {:?}", cluster.blob_dirs());
        assert_bytes_eq(&get_object(&s3, "packed", &keep.0).await, &keep.1, "the object left in its pack");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Settled: the pack of the object left stays, whole.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cluster.blob_dirs().len(), 1, "the pack of the object left");
    assert_bytes_eq(&get_object(&s3, "packed", &keep.0).await, &keep.1, "the object left in its pack");
    ok(s3.delete_object().bucket("packed").key(&keep.0).send().await, "DeleteObject of the last one");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cluster.blob_dirs().is_empty() {
        assert!(
            Instant::now() < deadline,
            "pack shards left 30 s after their last object went: {:?}",
            cluster.blob_dirs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The gateways' cache of small shards (`gateway/src/datapath/shard_cache.rs`, off in the other
/// tests): a gateway serves again the shards it read, even once every node has lost them, while
/// another gateway, which never read them, cannot; the metadata is read first, so an object
/// replaced or deleted since is never served from the cache.
#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_serves_small_shards_it_read_again_but_never_a_replaced_or_deleted_object() {
    let cluster = Cluster::start_with_env(&[("IGNIFUGE_GATEWAY_SHARD_CACHE_BYTES", "67108864")]).await;
    let mut rng = TestRng::new("a_gateway_serves_small_shards_it_read_again");
    let (reader, other) = (cluster.s3_client_at(0), cluster.s3_client_at(1));
    create_bucket(&reader, "cached").await;
    let objects: Vec<(String, Vec<u8>)> = (0..16).map(|i| (format!("k{i:02}"), rng.bytes(5 * KIB + i))).collect();
    put_all(&reader, "cached", &objects).await;
    for (key, data) in &objects {
        assert_bytes_eq(&get_object(&reader, "cached", key).await, data, &format!("{key}, first read"));
    }
    // Every shard file of every node gone: only a gateway that read the shards still has them.
    let mut removed = 0;
    for node in cluster.storage_nodes() {
        for file in cluster.shard_files(&node.node_id) {
            std::fs::remove_file(&file).expect("remove a shard file");
            removed += 1;
        }
    }
    assert!(removed >= 9, "the packs' shard files: {removed}");
    for (key, data) in &objects {
        assert_bytes_eq(&get_object(&reader, "cached", key).await, data, &format!("{key} from the cache"));
    }
    let (key, _) = &objects[3];
    let unreadable = match other.get_object().bucket("cached").key(key).send().await {
        Err(_) => true,
        Ok(output) => output.body.collect().await.is_err(),
    };
    assert!(unreadable, "a gateway that never read {key} must find its shards gone");

    // Replaced and deleted: the record says so before any shard is read.
    let replacement = rng.bytes(7 * KIB);
    put_object(&reader, "cached", &objects[0].0, &replacement).await;
    assert_bytes_eq(&get_object(&reader, "cached", &objects[0].0).await, &replacement, "the replacement");
    ok(reader.delete_object().bucket("cached").key(&objects[1].0).send().await, "DeleteObject");
    let gone = reader.get_object().bucket("cached").key(&objects[1].0).send().await;
    let code = gone.err().and_then(|e| e.into_service_error().meta().code().map(str::to_string));
    assert_eq!(code.as_deref(), Some("NoSuchKey"), "a deleted object is not served from the cache");
}
