//! Compaction of packs (`services/src/compact.rs`): packs whose objects were mostly deleted, or
//! written small under low load, are rewritten together as one pack and the records re-pointed
//! with one conditional command; the old packs are collected like any replaced blob. End to end
//! through real processes: every live object (current and non-current versions) reads back with
//! its bytes, ETag and date, deleted ones stay deleted, and the old packs' shards leave the
//! disks. The faults that would lose data here: the repack's commit answered as lost or as
//! refused while it went through, and a crash between the new pack's write and its commit.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;

const KIB: usize = 1024;

/// An object version that must outlive compaction as it was.
struct Live {
    bucket: &'static str,
    key: String,
    version: Option<String>,
    data: Vec<u8>,
    etag: String,
    last_modified: aws_smithy_types::DateTime,
}

/// The environment of a cluster whose compactor runs every half second on packs over
/// `MIN_AGE_MS` old, collecting garbage `GC_GRACE_MS` after it is made (a GET that read a record
/// just before its pack was compacted still finishes).
const COMPACTING: [(&str, &str); 4] = [
    ("IGNIFUGE_GC_GRACE_MS", "2000"),
    ("IGNIFUGE_GC_INTERVAL_MS", "300"),
    ("IGNIFUGE_COMPACT_INTERVAL_MS", "500"),
    ("IGNIFUGE_COMPACT_MIN_AGE_MS", "25000"),
];
const GC_GRACE_MS: u64 = 2000;
/// No pack is compacted before `fill_and_thin` is done (checked): the packs it leaves are each
/// small (<= 64 KiB) or mostly deleted, so every one of them is to be compacted.
const MIN_AGE_MS: u64 = 25000;

async fn put_version(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8]) -> Option<String> {
    let put = s3.put_object().bucket(bucket).key(key).body(data.to_vec().into()).send().await;
    ok(put, "PutObject of a small object").version_id
}

/// Fills two buckets with small objects put at once (so they share packs), then deletes most of
/// one: 40 objects of 4-6 KiB in `thin`, 30 of them deleted; 8 keys with two versions each in
/// the versioned `kept`. Returns the versions left, as HEAD saw them, the keys deleted, and the
/// packs on disk once the packs of deleted objects only are collected.
async fn fill_and_thin(cluster: &Cluster, test: &str) -> (Vec<Live>, Vec<String>, BTreeSet<String>) {
    let s3 = cluster.s3_client();
    let mut rng = TestRng::new(test);
    create_bucket(&s3, "thin").await;
    create_bucket(&s3, "kept").await;
    ok(
        s3.put_bucket_versioning()
            .bucket("kept")
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await,
        "PutBucketVersioning",
    );
    let started = Instant::now();
    // Three rounds, each all at once: the 40 objects of `thin`, then each version of `kept` (so
    // that a key's two versions come in order, and no pack mixes the buckets).
    let mut written: Vec<(&'static str, String, Vec<u8>)> =
        (0..40).map(|i| ("thin", format!("t/{i:02}"), rng.bytes(4 * KIB + 37 * i))).collect();
    for round in 0..2 {
        written.extend((0..8).map(|i| ("kept", format!("k/{i}"), rng.bytes(5 * KIB + 101 * i + round))));
    }
    let mut versions = Vec::new();
    for batch in [&written[..40], &written[40..48], &written[48..]] {
        let mut puts = tokio::task::JoinSet::new();
        for (index, (bucket, key, data)) in batch.iter().enumerate() {
            let (s3, bucket, key, data) = (s3.clone(), *bucket, key.clone(), data.clone());
            puts.spawn(async move { (index, put_version(&s3, bucket, &key, &data).await) });
        }
        let mut done = puts.join_all().await;
        done.sort_by_key(|(index, _)| *index);
        versions.extend(done.into_iter().map(|(_, version)| version));
    }
    let deleted: Vec<String> = (0..40).filter(|i| i % 4 != 0).map(|i| format!("t/{i:02}")).collect();
    for key in &deleted {
        ok(s3.delete_object().bucket("thin").key(key).send().await, "DeleteObject");
    }
    let mut live = Vec::new();
    for ((bucket, key, data), version) in written.into_iter().zip(versions) {
        if deleted.contains(&key) {
            continue;
        }
        let head = ok(s3.head_object().bucket(bucket).key(&key).set_version_id(version.clone()).send().await, "HEAD");
        let etag = head.e_tag.expect("ETag");
        assert_eq!(etag, etag_of(&data), "{key}");
        let last_modified = head.last_modified.expect("Last-Modified");
        live.push(Live { bucket, key, version, data, etag, last_modified });
    }
    assert_eq!(live.len(), 10 + 16);
    // Packs that held only deleted objects are collected after the grace: the packs left are
    // those on disk once that has passed and the set holds still.
    tokio::time::sleep(Duration::from_millis(GC_GRACE_MS + 500)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut old, mut same) = (cluster.blob_dirs(), 0);
    while same < 2 {
        assert!(Instant::now() < deadline, "the packs on disk never held still: {old:?}");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let now = cluster.blob_dirs();
        same = if now == old { same + 1 } else { 0 };
        old = now;
    }
    assert!(
        started.elapsed() < Duration::from_millis(MIN_AGE_MS - 3000),
        "filling took {:?}: packs may have been compacted before the deletes",
        started.elapsed()
    );
    (live, deleted, old)
}

/// Every live version reads back whole through `gateway`, with its ETag and date, and every
/// deleted key is gone.
async fn assert_all_read_back(cluster: &Cluster, gateway: usize, live: &[Live], deleted: &[String], when: &str) {
    let s3 = cluster.s3_client_at(gateway);
    for object in live {
        let got = s3.get_object().bucket(object.bucket).key(&object.key).set_version_id(object.version.clone());
        let got = ok(got.send().await, &format!("GET {} {when}", object.key));
        assert_eq!(got.e_tag.as_deref(), Some(object.etag.as_str()), "ETag of {} {when}", object.key);
        assert_eq!(got.last_modified, Some(object.last_modified), "Last-Modified of {} {when}", object.key);
        let body = got.body.collect().await.expect("body").into_bytes();
        assert_bytes_eq(&body, &object.data, &format!("{} {when}", object.key));
    }
    for key in deleted {
        assert_status(s3.get_object().bucket("thin").key(key).send().await, 404, &format!("deleted {key} {when}"));
    }
}

/// Waits until none of `old` packs is on any disk any more (compacted, then collected), reading
/// everything back meanwhile. Returns the blobs on disk then.
async fn wait_for_old_packs_to_go(
    cluster: &Cluster,
    old: &BTreeSet<String>,
    live: &[Live],
    deleted: &[String],
) -> BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = cluster.blob_dirs();
        if now.is_disjoint(old) {
            return now;
        }
        assert!(Instant::now() < deadline, "old packs still on disk after 90 s: {:?}\n{}", now, cluster.log_tails(20));
        assert_all_read_back(cluster, 0, live, deleted, "while packs are compacted").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every gateway's log, one after the other.
fn gateway_log(cluster: &Cluster) -> String {
    let logs = std::fs::read_dir(cluster.data_dir.join("logs")).expect("the logs directory");
    logs.filter_map(|entry| {
        let path = entry.ok()?.path();
        let name = path.file_name()?.to_str()?.to_string();
        name.starts_with("gateway").then(|| std::fs::read_to_string(&path).unwrap_or_default())
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn packs_left_mostly_deleted_or_small_are_merged_and_every_version_reads_back_as_it_was() {
    let cluster = Cluster::start_with_env(&COMPACTING).await;
    let (live, deleted, old) = fill_and_thin(&cluster, "packs_left_mostly_deleted_are_merged").await;
    assert!(old.len() >= 2, "the objects were written in several packs: {old:?}");
    wait_for_old_packs_to_go(&cluster, &old, &live, &deleted).await;
    // 26 objects of 4-6 KiB: whichever packs they were compacted into as theirs came of age, a
    // small pack left alone in its lane joins the other, so they end in one pack.
    let deadline = Instant::now() + Duration::from_secs(60);
    let now = loop {
        let now = cluster.blob_dirs();
        if now.len() == 1 {
            break now;
        }
        assert!(Instant::now() < deadline, "the live objects of {} packs not in one: {now:?}", old.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for gateway in 0..cluster.gateways.len() {
        assert_all_read_back(&cluster, gateway, &live, &deleted, "after compaction").await;
    }
    assert!(gateway_log(&cluster).contains("packs compacted"), "the compactor said what it did");
    // Once it is old enough to be compacted, and a few rounds more: left alone.
    tokio::time::sleep(Duration::from_millis(MIN_AGE_MS + 3000)).await;
    assert_eq!(cluster.blob_dirs(), now, "a compacted pack, neither small nor sparse, is left alone");
    // The new pack is freed like any other once its objects go.
    let s3 = cluster.s3_client();
    for object in &live {
        let delete = s3.delete_object().bucket(object.bucket).key(&object.key).set_version_id(object.version.clone());
        ok(delete.send().await, "DeleteObject of a compacted object");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cluster.blob_dirs().is_empty() {
        assert!(Instant::now() < deadline, "the compacted pack left after its objects: {:?}", cluster.blob_dirs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The repack's commit goes through but its answer is lost (`services.compact.answer-lost`): the
/// compactor gives nothing up; the orphan sweep, hunting every second with no grace, must not
/// take the new pack the records now name.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_lost_after_a_repacks_commit_loses_no_data() {
    a_repack_answered_wrongly_loses_no_data(
        "an_answer_lost_after_a_repacks_commit",
        "services.compact.answer-lost=error@1",
    )
    .await;
}

/// The repack's commit goes through but is answered as refused (`services.compact.answer-wrong`):
/// the compactor gives the new pack up through the fence, which must refuse it since records
/// name it.
#[tokio::test(flavor = "multi_thread")]
async fn a_repack_wrongly_answered_as_refused_loses_no_data() {
    a_repack_answered_wrongly_loses_no_data(
        "a_repack_wrongly_answered_as_refused",
        "services.compact.answer-wrong=error@1",
    )
    .await;
}

async fn a_repack_answered_wrongly_loses_no_data(test: &str, fault: &str) {
    let mut env = COMPACTING.to_vec();
    env.extend([
        ("IGNIFUGE_FAULTS", fault),
        ("IGNIFUGE_REPAIR_INTERVAL_MS", "1000"),
        ("IGNIFUGE_ORPHAN_GRACE_MS", "1"),
    ]);
    let cluster = Cluster::start_with_env(&env).await;
    let (live, deleted, old) = fill_and_thin(&cluster, test).await;
    let now = wait_for_old_packs_to_go(&cluster, &old, &live, &deleted).await;
    assert!(!now.is_empty());
    // Several orphan sweeps later, every version still reads back, from every gateway.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for gateway in 0..cluster.gateways.len() {
        assert_all_read_back(&cluster, gateway, &live, &deleted, "after the faulty commit and orphan sweeps").await;
    }
    let said = if fault.contains("answer-lost") { "repack commit outcome unknown" } else { "repack refused" };
    assert!(gateway_log(&cluster).contains(said), "the fault fired: no {said:?} in the gateways' logs");
}

/// The gateway compacting crashes (exit 137, as after kill -9) after the new pack is written and
/// before its commit: the records still name the old packs, which must stay whole; restarted,
/// the cluster compacts them after all.
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_a_repacks_write_and_its_commit_loses_no_data() {
    let mut env = COMPACTING.to_vec();
    env.push(("IGNIFUGE_ORPHAN_GRACE_MS", "1"));
    let (mut cluster, rules) = Cluster::start_with_rules(&env).await;
    let gateways: Vec<String> =
        cluster.processes.iter().filter(|p| p.role == "gateway").map(|p| p.node_id.clone()).collect();
    let listen: Vec<String> = gateways.iter().map(|id| cluster.process(id).listen.clone()).collect();
    let (live, deleted, old) = fill_and_thin(&cluster, "a_crash_between_a_repacks_write_and_its_commit").await;
    // Before the first pack is old enough to be compacted (`fill_and_thin` checked the time).
    rules.set(&format!("crash {} services.compact.before-commit\n", listen.join(",")));
    let deadline = Instant::now() + Duration::from_secs(60);
    let crashed = loop {
        if let Some(crashed) = gateways.iter().find(|id| !pid_alive(cluster.process(id).pid)) {
            break crashed.clone();
        }
        assert!(Instant::now() < deadline, "no gateway crashed before a repack's commit\n{}", cluster.log_tails(10));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    rules.clear();
    println!("{crashed} crashed before a repack's commit");
    // The records still name the old packs: all on disk, everything reads back.
    assert!(old.is_subset(&cluster.blob_dirs()), "no old pack went before a commit");
    let crashed_index = cluster.gateway_index(&cluster.process(&crashed).datacenter);
    let reader = (crashed_index + 1) % cluster.gateways.len();
    assert_all_read_back(&cluster, reader, &live, &deleted, "after the crash").await;
    cluster.revive(Duration::from_secs(60));
    wait_for_old_packs_to_go(&cluster, &old, &live, &deleted).await;
    for gateway in 0..cluster.gateways.len() {
        assert_all_read_back(&cluster, gateway, &live, &deleted, "compacted after the crash").await;
    }
}

/// With a datacenter down a new pack can only be written with durability debt (its shards
/// doubled up on the live nodes): the compactor must not move objects out of packs at their full
/// budget into it. It writes, sees the debt, discards the pack and commits nothing; once the
/// datacenter is back, it compacts with no debt.
#[tokio::test(flavor = "multi_thread")]
async fn packs_are_not_compacted_into_a_pack_written_with_durability_debt() {
    let mut cluster = Cluster::start_with_env(&COMPACTING).await;
    let (live, deleted, old) = fill_and_thin(&cluster, "packs_are_not_compacted_into_a_pack_with_debt").await;
    cluster.kill_processes(&["dc3-n1", "dc3-n2", "dc3-n3"]);
    // Two rounds that wrote a pack, found it with debt and discarded it.
    let discarded = "its new pack was written with durability debt";
    let deadline = Instant::now() + Duration::from_secs(90);
    while gateway_log(&cluster).matches(discarded).count() < 2 {
        assert!(Instant::now() < deadline, "the compactor did not try twice\n{}", cluster.log_tails(10));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(!gateway_log(&cluster).contains("packs compacted"), "nothing is committed while the pack has debt");
    let report = cluster.durability();
    assert_eq!(report["debt_stripes"], 0, "no stripe with debt was committed: {report:#}");
    assert_all_read_back(&cluster, 0, &live, &deleted, "with a datacenter down").await;
    cluster.revive(Duration::from_secs(60));
    wait_for_old_packs_to_go(&cluster, &old, &live, &deleted).await;
    let report = cluster.durability();
    assert_eq!(report["debt_stripes"], 0, "compacted with the datacenter back: no debt: {report:#}");
    for gateway in 0..cluster.gateways.len() {
        assert_all_read_back(&cluster, gateway, &live, &deleted, "compacted once the datacenter was back").await;
    }
}
