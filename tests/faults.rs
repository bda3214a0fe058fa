//! The promise under faults (issue 12): each test injects the fault that broke a piece of the
//! data path before its fix, through the real binaries, and checks what a user would see.
//!
//! - an answer lost after a commit (the commit's outcome unknown to its gateway), and a commit
//!   answered as refused although it went through;
//! - a bucket deleted and created again by another tenant while a write's body streams;
//! - an upload slower than the orphan sweep's grace, and one that stalls for good;
//! - a datacenter partitioned past the down-out interval that comes back with its disks (frozen,
//!   and running behind an internode partition while both sides are written to);
//! - uploads that trickle bytes while other uploads wait for stripe buffers;
//! - a slow link between a gateway and one storage node;
//! - a gateway whose clock is minutes ahead or behind;
//! - a replica that catches up by snapshot while writes go on;
//! - a disk that fails a read (an I/O error) during a scrub pass;
//! - a disk that refuses every write (full, or read-only), and a node's disk that really fills up
//!   (a small file system of its own) and then has room again;
//! - crashes at fault points: inside snapshot build and install, around repair's commit, and
//!   before and after a shard's fsync and a metadata log batch's fsync.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;

/// GET that retries 503s (an election, a node coming back) for up to `timeout`.
async fn get_eventually(client: &aws_sdk_s3::Client, bucket: &str, key: &str, timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    loop {
        match client.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => return out.body.collect().await.expect("reading the body").into_bytes().to_vec(),
            Err(e) => {
                let info = error_info(&e);
                assert!(
                    Instant::now() < deadline && (info.status == Some(503) || info.status.is_none()),
                    "GET {bucket}/{key}: {info:?}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// A PUT of `size` bytes whose commit went through but whose client was answered 503 (fault
/// point `fault`, at the commit after `earlier` answered PUTs of the key): the PUT's body must be
/// the object, whole, right away and after the repair service has swept orphans (every second,
/// grace 1 ms).
async fn a_committed_put_answered_503_stays_whole(test: &str, fault: &str, earlier: usize, size: usize) {
    let cluster = Cluster::start_with_env(&[
        ("IGNIFUGE_FAULTS", fault),
        ("IGNIFUGE_REPAIR_INTERVAL_MS", "1000"),
        ("IGNIFUGE_ORPHAN_GRACE_MS", "1"),
    ])
    .await;
    let client = cluster.s3_client_no_retry_at(0);
    create_bucket(&client, "ledger").await;
    let mut rng = TestRng::new(test);
    for i in 0..earlier {
        put_object(&client, "ledger", "k", &rng.bytes(MIB + i)).await;
    }
    let body = rng.bytes(size);
    let answered = client.put_object().bucket("ledger").key("k").body(body.clone().into()).send().await;
    let info = expect_err(answered, "the PUT whose commit was answered 503");
    assert_eq!(info.status, Some(503), "a commit's unknown or refused outcome is a 503, never a success: {info:?}");
    // Whatever the gateway does with the blob after such an answer runs in the background: give it
    // time to do its worst, then read.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let read = get_eventually(&client, "ledger", "k", Duration::from_secs(30)).await;
    assert_bytes_eq(&read, &body, "the committed object right after the answer");
    let report = cluster.wait_until_healthy(Duration::from_secs(60));
    assert_eq!(report["repair"]["stripes_unreadable"], 0, "{report:#}");
    let read = get_eventually(&client, "ledger", "k", Duration::from_secs(30)).await;
    assert_bytes_eq(&read, &body, "the committed object after orphan sweeps");
}

/// Defect 1: a gateway that loses the answer of a commit that went through must not discard the
/// blob that the committed record now names (its second commit's outcome stays unknown), and the
/// orphan sweep must not take the committed blob for an orphan either.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_lost_after_a_commit_loses_no_data() {
    a_committed_put_answered_503_stays_whole(
        "an_answer_lost_after_a_commit_loses_no_data",
        "gateway.commit.answer-lost=error@2",
        1,
        2 * MIB + 33,
    )
    .await;
}

/// Defect 1 for a packed object (a body small enough to share a stripe with others, committed by
/// one `PutPacked`): the pack its record names must survive the gateway and the orphan sweep.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_lost_after_a_packs_commit_loses_no_data() {
    a_committed_put_answered_503_stays_whole(
        "an_answer_lost_after_a_packs_commit_loses_no_data",
        "gateway.commit.answer-lost=error@2",
        1,
        20 * 1024 + 5,
    )
    .await;
}

/// Defect 1, the other way out: the answer of an applied commit is lost on its way back (the
/// fault point drops it in the gateway's metadata client). The gateway settles the proposal
/// (`Command::Abandon`), learns that it was applied, and answers 200 as if nothing happened.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_is_settled_into_the_commits_real_outcome() {
    let cluster = Cluster::start_with_env(&[("IGNIFUGE_FAULTS", "gateway.meta.answer-lost=error@1")]).await;
    // Index 1: the dc2 gateway, whose first metadata command is this test's CreateBucket (its
    // background services only propose later: leases after a round's interval).
    let client = cluster.s3_client_no_retry_at(1);
    let created = client.create_bucket().bucket("settled").send().await;
    ok(created, "CreateBucket whose answer was lost, then settled");
    let mut rng = TestRng::new("a_lost_answer_is_settled_into_the_commits_real_outcome");
    let body = rng.bytes(MIB + 9);
    put_object(&client, "settled", "k", &body).await;
    assert_bytes_eq(&get_object(&client, "settled", "k").await, &body, "an object after the settle");
    assert!(
        std::fs::read_to_string(cluster.data_dir.join("logs/gateway-dc2.log"))
            .unwrap_or_default()
            .contains("settled a metadata command"),
        "the settle path ran"
    );
}

/// Defect 1, a wrong refusal: a commit that went through is answered as refused (`Abandoned`, as
/// when the metadata has forgotten the proposal's id by the time the gateway settles it). The
/// gateway gives the blob up only through the metadata's fence, which refuses a blob that a
/// record names: the object must stay whole, before and after the orphan sweep.
#[tokio::test(flavor = "multi_thread")]
async fn a_commit_wrongly_answered_as_refused_loses_no_data() {
    a_committed_put_answered_503_stays_whole(
        "a_commit_wrongly_answered_as_refused_loses_no_data",
        "gateway.commit.answer-wrong=error@1",
        0,
        2 * MIB + 33,
    )
    .await;
}

/// The same wrong refusal of a pack's commit: the packer gives the pack up, and the fence must
/// refuse it since a record names it.
#[tokio::test(flavor = "multi_thread")]
async fn a_packs_commit_wrongly_answered_as_refused_loses_no_data() {
    a_committed_put_answered_503_stays_whole(
        "a_packs_commit_wrongly_answered_as_refused_loses_no_data",
        "gateway.commit.answer-wrong=error@1",
        0,
        100 * 1024,
    )
    .await;
}

/// Defect 5: a write authorized against one bucket can never land in another of the same name.
/// Tenant acme starts a striped upload into its bucket; while the body streams, acme deletes the
/// (still empty) bucket and tenant rival creates one of the same name. The upload must fail and
/// rival's bucket must stay empty.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_never_lands_in_a_bucket_recreated_by_another_tenant() {
    let cluster = Cluster::start().await;
    let acme = cluster.create_tenant("acme");
    let rival = cluster.create_tenant("rival");
    let acme_client = cluster.client_for_keys(&acme);
    let rival_client = cluster.client_for_keys(&rival);
    create_bucket(&acme_client, "contested").await;
    let mut rng = TestRng::new("a_write_never_lands_in_a_bucket_recreated_by_another_tenant");
    let body = rng.bytes(6 * MIB + 5);
    let mut upload = cluster.slow_put(&acme, 0, "contested", "payload", body.len()).await;
    upload.send(&body[..3 * MIB]).await;
    ok(acme_client.delete_bucket().bucket("contested").send().await, "acme deletes its empty bucket");
    create_bucket(&rival_client, "contested").await;
    let response = upload.finish(&body[3 * MIB..]).await;
    assert!(
        response.status == 404 && response.body_text().contains("NoSuchBucket"),
        "the write must find its bucket gone: {}",
        response.summary()
    );
    assert!(list_all_keys(&rival_client, "contested").await.is_empty(), "rival's bucket stays empty");
    assert_status(
        rival_client.head_object().bucket("contested").key("payload").send().await,
        404,
        "acme's object in rival's bucket",
    );
}

/// Defect 4: the orphan sweep must not delete the shards of a write in progress, however slow
/// (intents renewed while the body streams), and a body that stalls is cut by the idle timeout
/// and its shards are reclaimed.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_upload_outlives_the_orphan_sweep_and_a_stalled_one_is_reclaimed() {
    let cluster = Cluster::start_with_env(&[
        ("IGNIFUGE_REPAIR_INTERVAL_MS", "1000"),
        ("IGNIFUGE_ORPHAN_GRACE_MS", "3000"),
        ("IGNIFUGE_INTENT_RENEW_MS", "500"),
    ])
    .await;
    let client = cluster.s3_client();
    create_bucket(&client, "slow").await;
    let keys = cluster.keys();
    let mut rng = TestRng::new("a_slow_upload_outlives_the_orphan_sweep");
    let body = rng.bytes(11 * MIB + 3);
    let mut upload = cluster.slow_put(&keys, 0, "slow", "trickle", body.len()).await;
    // A full stripe reaches the nodes first, then the body trickles for three times the grace.
    let mut sent = 5 * MIB + 1;
    upload.send(&body[..sent]).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(9) {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let next = (sent + 64 * 1024).min(body.len() - 1);
        upload.send(&body[sent..next]).await;
        sent = next;
    }
    let response = upload.finish(&body[sent..]).await;
    assert_eq!(response.status, 200, "{}", response.summary());
    let read = get_object(&client, "slow", "trickle").await;
    assert_bytes_eq(&read, &body, "a slow upload's object after several orphan sweeps");

    // A body that stops: cut by the idle timeout (AWS's RequestTimeout), its shards reclaimed.
    let census = Cluster::shard_file_count;
    let before = census(&cluster);
    let mut stalled = cluster.slow_put(&keys, 0, "slow", "stalled", 8 * MIB).await;
    stalled.send(&body[..6 * MIB]).await;
    let cut = tokio::time::timeout(Duration::from_secs(60), stalled.finish(&[])).await.expect("cut in time");
    assert!(cut.status == 400 && cut.body_text().contains("RequestTimeout"), "an idle body is cut: {}", cut.summary());
    let deadline = Instant::now() + Duration::from_secs(60);
    while census(&cluster) > before {
        assert!(
            Instant::now() < deadline,
            "the stalled upload's shards were not reclaimed: {} > {before}",
            census(&cluster)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_status(client.head_object().bucket("slow").key("stalled").send().await, 404, "the cut upload");
    assert_bytes_eq(&get_object(&client, "slow", "trickle").await, &body, "the slow upload after the sweep");
}

/// A PutObject of `body`, with how long it took from now (it may wait for a bounded resource).
async fn timed_put(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: &[u8],
) -> (Result<(), String>, Duration) {
    let started = Instant::now();
    let put = client.put_object().bucket(bucket).key(key).body(body.to_vec().into()).send().await;
    (put.map(|_| ()).map_err(|e| format!("{e:?}")), started.elapsed())
}

/// A trickling upload cut by the fill deadline: answered 400 RequestTimeout, and nothing stored.
async fn assert_cut_and_not_stored(client: &aws_sdk_s3::Client, bucket: &str, key: &str, answer: &RawResponse) {
    assert!(
        answer.status == 400 && answer.body_text().contains("RequestTimeout"),
        "trickling upload {key}: {}",
        answer.summary()
    );
    assert_status(client.head_object().bucket(bucket).key(key).send().await, 404, "a cut upload");
}

/// Bounded resources: uploads that trickle bytes (never idle, so the idle timeout never cuts
/// them) cannot hold the gateway's stripe buffers while other uploads wait for one. Here the
/// gateway has 2 stripe buffers, both taken by trickling uploads: a normal PUT waits about the
/// fill deadline (3 s here, 30 s in production), then a trickler is cut with 400 RequestTimeout
/// and the PUT completes. A trickler is cut only while another upload waits, so whether the
/// second one is cut too depends on whether the PUT ever waits for a second buffer; one that is
/// not cut stores nothing either.
#[tokio::test(flavor = "multi_thread")]
async fn trickling_uploads_cannot_hold_the_stripe_buffers_others_wait_for() {
    let cluster = Cluster::start_with_env(&[
        ("IGNIFUGE_GATEWAY_STRIPES_IN_FLIGHT", "2"),
        ("IGNIFUGE_GATEWAY_STRIPE_FILL_MS", "3000"),
    ])
    .await;
    let client = cluster.s3_client_no_retry_at(0);
    create_bucket(&client, "trickle").await;
    let keys = cluster.keys();
    let mut rng = TestRng::new("trickling_uploads_cannot_hold_the_stripe_buffers_others_wait_for");
    let slow_body = rng.bytes(8 * MIB);
    let mut tricklers = Vec::new();
    for i in 0..2 {
        let mut upload = cluster.slow_put(&keys, 0, "trickle", &format!("slow-{i}"), slow_body.len()).await;
        upload.send(&slow_body[..MIB]).await; // past the inline size: each holds a stripe buffer
        tricklers.push(upload);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let body = rng.bytes(6 * MIB);
    let put = timed_put(&client, "trickle", "normal", &body);
    let piece = &slow_body[MIB..MIB + 16];
    let trickle =
        |upload: SlowUpload| upload.trickle_until_answered(piece, Duration::from_millis(500), Duration::from_secs(45));
    let mut tricklers = tricklers.into_iter();
    let (first, second) = (tricklers.next().unwrap(), tricklers.next().unwrap());
    let ((put, elapsed), first, second) = tokio::join!(put, trickle(first), trickle(second));
    put.unwrap_or_else(|e| panic!("a PutObject waiting for a stripe buffer: {e}"));
    assert!(elapsed < Duration::from_secs(20), "the PUT waited {elapsed:?} for buffers held by trickling uploads");
    assert!(first.is_some() || second.is_some(), "no trickling upload was cut, yet the PUT got a buffer");
    for (i, answer) in [first, second].into_iter().enumerate() {
        let key = format!("slow-{i}");
        match answer {
            Some(answer) => assert_cut_and_not_stored(&client, "trickle", &key, &answer).await,
            // Still holding its buffer, no one waiting: it ends here, its body incomplete.
            None => {
                assert_status(
                    client.head_object().bucket("trickle").key(&key).send().await,
                    404,
                    "an upload never finished",
                );
            }
        }
    }
    assert_bytes_eq(&get_object(&client, "trickle", "normal").await, &body, "the PUT that waited");
}

/// The same bound for bodies to pack: they are read whole into memory within a gateway-wide
/// budget (300 KiB here, with bodies up to 256 KiB packed). A trickling upload of 256 KiB holds
/// most of it; a normal 100 KiB PUT waits about the fill deadline (3 s here), then the trickler
/// is cut with 400 RequestTimeout and the PUT completes, packed.
#[tokio::test(flavor = "multi_thread")]
async fn a_trickling_upload_cannot_hold_the_pack_budget_others_wait_for() {
    let cluster = Cluster::start_with_env(&[
        ("IGNIFUGE_PACK_MAX_BYTES", "262144"),
        ("IGNIFUGE_GATEWAY_PACK_BUDGET_BYTES", "307200"),
        ("IGNIFUGE_GATEWAY_STRIPE_FILL_MS", "3000"),
    ])
    .await;
    let client = cluster.s3_client_no_retry_at(0);
    create_bucket(&client, "trickle").await;
    let keys = cluster.keys();
    let mut rng = TestRng::new("a_trickling_upload_cannot_hold_the_pack_budget_others_wait_for");
    let slow_body = rng.bytes(256 * 1024);
    let mut upload = cluster.slow_put(&keys, 0, "trickle", "slow", slow_body.len()).await;
    upload.send(&slow_body[..1024]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let body = rng.bytes(100 * 1024);
    let put = timed_put(&client, "trickle", "normal", &body);
    let piece = &slow_body[1024..1040];
    let trickle = upload.trickle_until_answered(piece, Duration::from_millis(500), Duration::from_secs(45));
    let ((put, elapsed), cut) = tokio::join!(put, trickle);
    put.unwrap_or_else(|e| panic!("a PutObject waiting for pack budget: {e}"));
    assert!(elapsed >= Duration::from_secs(2), "the PUT did not wait for the budget ({elapsed:?}): not in force");
    assert!(elapsed < Duration::from_secs(20), "the PUT waited {elapsed:?} for budget held by a trickling upload");
    let cut = cut.expect("the trickling upload was cut");
    assert_cut_and_not_stored(&client, "trickle", "slow", &cut).await;
    assert_bytes_eq(&get_object(&client, "trickle", "normal").await, &body, "the PUT that waited");
}

/// A datacenter partitioned from the others while both sides keep running (its nodes, its
/// metadata voters, its gateway and that gateway's repair service), then healed. The majority
/// side goes on writing; the cut-off side acknowledges nothing it cannot keep; after the heal,
/// repair never lowers a stripe's margin, and every acknowledged write reads back, through every
/// gateway. The partition is real at the internode layer: requests across it get no answer until
/// their timeouts (`ignifuge_faults::link`), as when packets are dropped.
#[tokio::test(flavor = "multi_thread")]
async fn a_partitioned_datacenter_that_heals_loses_no_acknowledged_write() {
    let (cluster, rules) =
        Cluster::start_with_rules(&[("IGNIFUGE_REPAIR_INTERVAL_MS", "2500"), ("IGNIFUGE_REPAIR_DOWN_OUT_MS", "3000")])
            .await;
    let majority = cluster.s3_client_at(cluster.gateway_index("dc1"));
    let minority_index = cluster.gateway_index("dc3");
    let minority = cluster.s3_client_no_retry_at(minority_index);
    create_bucket(&majority, "split").await;
    let mut rng = TestRng::new("a_partitioned_datacenter_that_heals_loses_no_acknowledged_write");
    let mut acknowledged: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..3 {
        let data = rng.bytes(6 * MIB + i);
        put_object(&majority, "split", &format!("before-{i}"), &data).await;
        acknowledged.push((format!("before-{i}"), data));
    }

    let side = |inside: bool| {
        cluster
            .processes
            .iter()
            .filter(|p| (p.datacenter == "dc3") == inside)
            .map(|p| p.listen.clone())
            .collect::<Vec<_>>()
    };
    let rule = format!("cut {} | {}\n", side(true).join(","), side(false).join(","));
    rules.set(&rule);

    // Both sides are written to at once. The majority's writes succeed (after an election if the
    // leader was in dc3); the minority's must not be acknowledged unless they are kept.
    let during: Vec<(String, Vec<u8>)> =
        (0..3).map(|i| (format!("during-{i}"), rng.bytes(6 * MIB + 100 + i))).collect();
    let cut_off: Vec<(String, Vec<u8>)> = (0..2).map(|i| (format!("cut-off-{i}"), rng.bytes(200 * 1024 + i))).collect();
    let majority_writes = async {
        for (key, data) in &during {
            put_object(&majority, "split", key, data).await;
        }
    };
    let minority_writes = async {
        let mut answers = Vec::new();
        for (key, data) in &cut_off {
            let put = minority.put_object().bucket("split").key(key).body(data.clone().into()).send();
            answers.push(tokio::time::timeout(Duration::from_secs(60), put).await.map(|r| r.is_ok()).unwrap_or(false));
        }
        // A read on the cut-off side never answers stale or wrong bytes.
        let read = minority.get_object().bucket("split").key("during-0").send();
        let read = match tokio::time::timeout(Duration::from_secs(60), read).await {
            Ok(Ok(output)) => Some(output.body.collect().await.map(|b| b.into_bytes().to_vec()).ok()),
            _ => None,
        };
        (answers, read)
    };
    let ((), (answers, read)) = tokio::join!(majority_writes, minority_writes);
    acknowledged.extend(during.iter().cloned());
    for ((key, data), ok) in cut_off.iter().zip(&answers) {
        if *ok {
            acknowledged.push((key.clone(), data.clone()));
        }
    }
    if let Some(read) = read {
        assert_eq!(read.as_deref(), Some(&during[0].1[..]), "a read on the cut-off side answered other bytes");
    }
    // 3 voters of 9 cannot commit: nothing written on the cut-off side may have been acknowledged
    // (this also proves the partition was in force).
    assert_eq!(answers, [false, false], "writes acknowledged by a datacenter cut off from the majority");

    // Past the down-out interval the majority rebuilds dc3's shards on its own nodes.
    let stripes = 2 * (3 + during.len()) + answers.iter().filter(|ok| **ok).count();
    wait_until_rebuilt_outside(&cluster, "dc3", stripes * 9).await;

    rules.clear();
    let healed_at = now_ms();
    rounds_until_healthy(&cluster, healed_at, Duration::from_secs(150)).await;

    // The cut-off side has rejoined: it writes, and every gateway reads every acknowledged write.
    let after = rng.bytes(MIB);
    put_object(&cluster.s3_client_at(minority_index), "split", "after", &after).await;
    acknowledged.push(("after".into(), after));
    for index in 0..cluster.gateways.len() {
        let client = cluster.s3_client_at(index);
        for (key, data) in &acknowledged {
            assert_bytes_eq(&get_object(&client, "split", key).await, data, &format!("{key} via gateway {index}"));
        }
    }
}

/// A slow link (not a dead one: every request still answers, 5 s late, inside the 10 s shard
/// timeout) between a gateway and one storage node: reads hedge around it instead of waiting,
/// and writes through it are still acknowledged only once every stripe meets its budget.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_link_to_one_node_costs_reads_no_more_than_the_hedge() {
    let (cluster, rules) = Cluster::start_with_rules(&[]).await;
    let index = cluster.gateway_index("dc1");
    let s3 = cluster.s3_client_at(index);
    create_bucket(&s3, "slow-link").await;
    let mut rng = TestRng::new("a_slow_link_to_one_node_costs_reads_no_more_than_the_hedge");
    let data = rng.bytes(10 * MIB);
    put_object(&s3, "slow-link", "object", &data).await;
    // Not the metadata leader: a slow link to it slows every request, by design.
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).leader.clone();
    let slow = node_ids().into_iter().find(|n| Some(n) != leader.as_ref()).expect("a node that is not the leader");
    let gateway = cluster.gateways[index].trim_start_matches("http://").to_string();
    rules.set(&format!("slow {gateway} > {} 5000\n", cluster.process(&slow).listen));
    tokio::time::sleep(Duration::from_millis(200)).await; // re-read within 50 ms
    let mut slowest = Duration::ZERO;
    for round in 0..3 {
        let started = Instant::now();
        assert_bytes_eq(&get_object(&s3, "slow-link", "object").await, &data, &format!("GET {round}, {slow} slow"));
        slowest = slowest.max(started.elapsed());
    }
    // A functional bound, not a benchmark: without hedging each of the 2 stripes waits 5 s.
    assert!(slowest < Duration::from_secs(4), "a GET waited {slowest:?} on a slow link");
    let written = rng.bytes(6 * MIB);
    let started = Instant::now();
    put_object(&s3, "slow-link", "written", &written).await;
    // The write waits for the slow node's acknowledgement: proof that the link was slow.
    assert!(started.elapsed() >= Duration::from_secs(4), "a PUT over a 5 s link took {:?}", started.elapsed());
    rules.clear();
    for client in (0..cluster.gateways.len()).map(|i| cluster.s3_client_at(i)) {
        assert_bytes_eq(&get_object(&client, "slow-link", "written").await, &written, "written over a slow link");
    }
}

/// Clock offsets (a `clock` rule shifts one process's wall clock). A gateway whose clock is two
/// minutes ahead goes on working: internode requests carry their sender's time and are accepted
/// within 5 minutes, and nothing of an object's fate depends on a gateway's clock. One ten
/// minutes ahead is refused by every node (its write fails, 503, and lands nowhere) until its
/// clock is fixed; then it writes again, and every acknowledged object reads back everywhere.
#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_whose_clock_is_off_acknowledges_only_what_it_keeps() {
    let (cluster, rules) = Cluster::start_with_rules(&[]).await;
    let index = cluster.gateway_index("dc1");
    let skewed = cluster.s3_client_no_retry_at(index);
    let gateway = cluster.gateways[index].trim_start_matches("http://").to_string();
    create_bucket(&skewed, "skew").await;
    let mut rng = TestRng::new("a_gateway_whose_clock_is_off_acknowledges_only_what_it_keeps");
    let mut acknowledged = Vec::new();
    for (offset_ms, key) in [(120_000i64, "ahead-2-min"), (-120_000, "behind-2-min")] {
        rules.set(&format!("clock {gateway} {offset_ms}\n"));
        tokio::time::sleep(Duration::from_millis(200)).await; // re-read within 50 ms
        let data = rng.bytes(3 * MIB + 7);
        put_object(&skewed, "skew", key, &data).await;
        acknowledged.push((key, data));
    }
    rules.set(&format!("clock {gateway} 600000\n"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = skewed.put_object().bucket("skew").key("ahead-10-min").body(rng.bytes(3 * MIB).into()).send().await;
    let info = expect_err(refused, "a PUT through a gateway 10 minutes ahead");
    assert_eq!(info.status, Some(503), "{info:?}");
    rules.clear();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let data = rng.bytes(3 * MIB + 9);
    put_object(&skewed, "skew", "fixed", &data).await;
    acknowledged.push(("fixed", data));
    for client in (0..cluster.gateways.len()).map(|i| cluster.s3_client_at(i)) {
        assert_status(client.head_object().bucket("skew").key("ahead-10-min").send().await, 404, "a refused write");
        for (key, data) in &acknowledged {
            assert_bytes_eq(&get_object(&client, "skew", key).await, data, key);
        }
    }
}

/// Service leases are judged by the metadata leader's clock, not the proposer's: the gateways
/// that do not hold the repair lease have their clocks four minutes ahead (within the 5 minutes
/// of skew the cluster accepts), and still never take the lease from the one that renews it.
/// (Judged by the proposer's clock, the lease, taken for 30 s, looked expired to them at once.)
#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_whose_clock_runs_ahead_takes_no_lease_another_still_renews() {
    let (cluster, rules) = Cluster::start_with_rules(&[("IGNIFUGE_REPAIR_INTERVAL_MS", "1000")]).await;
    let holder_of = |report: &serde_json::Value| report["repair"]["holder"].as_str().map(str::to_string);
    let deadline = Instant::now() + Duration::from_secs(60);
    let holder = loop {
        if let Some(holder) = holder_of(&cluster.durability()) {
            break holder;
        }
        assert!(Instant::now() < deadline, "no repair round reported");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let holding = holder.split('#').next().expect("listen#suffix").to_string();
    let others: Vec<String> = cluster
        .processes
        .iter()
        .filter(|p| p.role == "gateway" && p.listen != holding)
        .map(|p| p.listen.clone())
        .collect();
    assert_eq!(others.len(), 2, "the holder {holder} is one of the three gateways");
    rules.set(&format!("clock {} 240000\n", others.join(",")));
    // Ten rounds of the holder, each renewing; each other gateway asks for the lease every second.
    let until = Instant::now() + Duration::from_secs(10);
    let mut rounds = std::collections::BTreeSet::new();
    while Instant::now() < until {
        let report = cluster.durability();
        assert_eq!(
            holder_of(&report).as_deref(),
            Some(holder.as_str()),
            "the lease changed hands: {:#}",
            report["repair"]
        );
        rounds.insert(report["repair"]["started_ms"].as_i64());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(rounds.len() >= 3, "the holder went on with its rounds: {rounds:?}");
    rules.clear();
}

/// Of two uploads of one part number, the one that began later is the part, whatever the
/// gateways' clocks (each within the skew the cluster accepts): a first attempt through dc1's
/// gateway, four minutes ahead, stalls mid-body; its retry (other bytes) through dc2's, four
/// minutes behind, begins later and commits; the first attempt then completes. The retry stays
/// the part: ListParts names it and the completion with its ETag makes the object. (Ordered by
/// the gateways' clocks, the first attempt looked 8 minutes later and replaced the acknowledged
/// retry.)
#[tokio::test(flavor = "multi_thread")]
async fn the_part_that_began_later_wins_whatever_the_gateway_clocks() {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let (cluster, rules) = Cluster::start_with_rules(&[]).await;
    let (ahead, behind) = (cluster.gateway_index("dc1"), cluster.gateway_index("dc2"));
    let authority = |i: usize| cluster.gateways[i].trim_start_matches("http://").to_string();
    rules.set(&format!("clock {} 240000\nclock {} -240000\n", authority(ahead), authority(behind)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s3 = cluster.s3_client_at(behind);
    create_bucket(&s3, "skewed-parts").await;
    let created =
        ok(s3.create_multipart_upload().bucket("skewed-parts").key("k").send().await, "CreateMultipartUpload");
    let upload_id = created.upload_id().expect("UploadId").to_string();
    let mut rng = TestRng::new("the_part_that_began_later_wins_whatever_the_gateway_clocks");
    let (first_try, retry) = (rng.bytes(5 * MIB), rng.bytes(5 * MIB));

    let url = format!("{}/skewed-parts/k?partNumber=1&uploadId={upload_id}", cluster.gateways[ahead]);
    let headers = cluster.sign(&cluster.keys(), std::time::SystemTime::now(), "PUT", &url, &[], Payload::Unsigned);
    let head = build_request_head(authority_of(&url), "PUT", path_and_query_of(&url), &headers, Some(first_try.len()));
    let half = first_try.len() / 2;
    let stalled = InFlightRequest::start(authority_of(&url), &head, &first_try[..half]).await.expect("first attempt");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answer = ok(
        s3.upload_part()
            .bucket("skewed-parts")
            .key("k")
            .upload_id(&upload_id)
            .part_number(1)
            .body(retry.clone().into())
            .send()
            .await,
        "the retry, through the gateway behind",
    );
    let retry_etag = answer.e_tag().expect("ETag").to_string();
    let first = stalled.finish(&first_try[half..]).await.expect("the first attempt's answer");
    assert_eq!(first.status, 200, "{}", first.summary());

    let listed = ok(
        s3.list_parts().bucket("skewed-parts").key("k").upload_id(&upload_id).send().await,
        "ListParts after the first attempt committed last",
    );
    let listed: Vec<Option<&str>> = listed.parts().iter().map(|p| p.e_tag()).collect();
    assert_eq!(listed, [Some(retry_etag.as_str())], "the acknowledged retry was replaced by the attempt before it");
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(&retry_etag).build())
        .build();
    ok(
        s3.complete_multipart_upload()
            .bucket("skewed-parts")
            .key("k")
            .upload_id(&upload_id)
            .multipart_upload(parts)
            .send()
            .await,
        "Complete with the retry's ETag",
    );
    rules.clear();
    assert_bytes_eq(&get_object(&cluster.s3_client(), "skewed-parts", "k").await, &retry, "the retry's bytes");
}

/// Waits until the storage nodes outside `datacenter` hold `shards` shard files (its shards
/// rebuilt elsewhere), counted on the disks: the durability report would wait on its nodes.
async fn wait_until_rebuilt_outside(cluster: &Cluster, datacenter: &str, shards: usize) {
    let live: Vec<String> =
        cluster.storage_nodes().iter().filter(|n| n.datacenter != datacenter).map(|n| n.node_id.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while live.iter().map(|n| cluster.shard_files(n).len()).sum::<usize>() < shards {
        assert!(
            Instant::now() < deadline,
            "{datacenter}'s shards were not rebuilt elsewhere in time\n{}",
            cluster.log_tails(10)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The repair rounds that start after `healed_at`, until the durability report is healthy.
/// Every one must find nothing unreadable, and none may find below budget a stripe that the
/// previous round repaired (repair never lowers a stripe's margin).
async fn rounds_until_healthy(cluster: &Cluster, healed_at: i64, timeout: Duration) -> Vec<Round> {
    let mut rounds: Vec<Round> = Vec::new();
    let deadline = Instant::now() + timeout;
    loop {
        let report = cluster.durability();
        if let Some(round) = last_round(&report)
            && round.started_ms > healed_at
            && rounds.last().is_none_or(|r| r.started_ms != round.started_ms)
        {
            assert_eq!(round.unreadable, 0, "{report:#}");
            if let Some(previous) = rounds.last() {
                assert!(
                    round.below + previous.repaired <= previous.below,
                    "a round found stripes below budget that the previous round had repaired: {previous:?} then {round:?}"
                );
            }
            rounds.push(round);
            if report["healthy"] == true {
                return rounds;
            }
        }
        assert!(Instant::now() < deadline, "not healthy after the heal; rounds: {rounds:?}\n{}", cluster.log_tails(10));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One repair round as the durability report shows it.
#[derive(Debug, Clone, Copy)]
struct Round {
    started_ms: i64,
    below: u64,
    unreadable: u64,
    repaired: u64,
}

fn last_round(report: &serde_json::Value) -> Option<Round> {
    let repair = report.get("repair")?;
    Some(Round {
        started_ms: repair["started_ms"].as_i64()?,
        below: repair["stripes_below_budget"].as_u64()?,
        unreadable: repair["stripes_unreadable"].as_u64()?,
        repaired: repair["stripes_repaired"].as_u64()?,
    })
}

/// Defect 3: a datacenter cut off past the down-out interval comes back with its disks (a
/// partition or power loss that heals). Its old shards are strays by then, and repair moves
/// shards back to their ideal slots there under the same names: no step may delete the copy
/// it just committed. Checked round by round: what a round repaired stays repaired.
#[tokio::test(flavor = "multi_thread")]
async fn a_healed_partition_never_lowers_a_stripes_margin() {
    let cluster = Cluster::start_with_env(&[
        ("IGNIFUGE_REPAIR_INTERVAL_MS", "2500"),
        ("IGNIFUGE_REPAIR_DOWN_OUT_MS", "3000"),
        ("IGNIFUGE_ORPHAN_GRACE_MS", "1"),
    ])
    .await;
    let client = cluster.s3_client();
    create_bucket(&client, "heal").await;
    let mut rng = TestRng::new("a_healed_partition_never_lowers_a_stripes_margin");
    let mut objects = Vec::new();
    for i in 0..6 {
        let data = rng.bytes(6 * MIB + i);
        put_object(&client, "heal", &format!("o{i}"), &data).await;
        objects.push(data);
    }
    let dc3: Vec<String> =
        cluster.storage_nodes().iter().filter(|n| n.datacenter == "dc3").map(|n| n.node_id.clone()).collect();
    let dc3: Vec<&str> = dc3.iter().map(String::as_str).collect();
    cluster.signal_processes(&dc3, libc::SIGSTOP);
    // Past the down-out interval, repair rebuilds dc3's shards on dc1 and dc2 (doubled up): every
    // stripe then has all its 9 shards there. Counted on the disks (the durability report would
    // wait on the frozen nodes).
    let stripes = objects.len() * 2;
    wait_until_rebuilt_outside(&cluster, "dc3", stripes * 9).await;
    cluster.signal_processes(&dc3, libc::SIGCONT);
    let healed_at = now_ms();
    // Every round from now on: nothing unreadable, and a stripe repaired stays repaired.
    let rounds = rounds_until_healthy(&cluster, healed_at, Duration::from_secs(120)).await;
    let repaired: u64 = rounds.iter().map(|r| r.repaired).sum();
    assert!(
        repaired <= rounds[0].below,
        "stripes were repaired more than once after the heal ({repaired} repairs for {} stripes): {rounds:?}",
        rounds[0].below
    );
    for (i, data) in objects.iter().enumerate() {
        assert_bytes_eq(&get_object(&client, "heal", &format!("o{i}")).await, data, "an object after the heal");
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Waits until all 9 replicas are at one applied index; their digests must then be one.
async fn wait_until_replicas_agree(cluster: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let all = digests(cluster);
        let indexes: BTreeSet<Option<u64>> = all.iter().map(|(_, i, _)| *i).collect();
        if all.len() == 9 && indexes.len() == 1 {
            let distinct: BTreeSet<&String> = all.iter().map(|(_, _, d)| d).collect();
            assert_eq!(distinct.len(), 1, "replicas at the same index disagree: {all:#?}");
            return;
        }
        assert!(Instant::now() < deadline, "replicas never reached one applied index: {all:#?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `admin digest --json`: (node, applied index, digest) of every reachable replica.
fn digests(cluster: &Cluster) -> Vec<(String, Option<u64>, String)> {
    let text = cluster.admin(&["digest", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    doc.as_array()
        .expect("an array")
        .iter()
        .filter(|d| d.get("digest").is_some())
        .map(|d| {
            (
                d["node"].as_str().unwrap_or_default().to_string(),
                d["applied_index"].as_u64(),
                d["digest"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// `writers` tasks, each PUTting `puts` small objects `{prefix}-{writer}-{i}` back to back, and
/// the count of PUTs answered so far.
fn spawn_writers(
    cluster: &Cluster,
    bucket: &'static str,
    prefix: &'static str,
    writers: usize,
    puts: usize,
) -> (Vec<tokio::task::JoinHandle<()>>, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handles = (0..writers)
        .map(|w| {
            let (client, done) = (cluster.s3_client(), done.clone());
            tokio::spawn(async move {
                for i in 0..puts {
                    put_object(&client, bucket, &format!("{prefix}-{w}-{i}"), format!("w{w}-{i}").as_bytes()).await;
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        })
        .collect();
    (handles, done)
}

/// `admin digest --agree --json`: (index, [(node, digest)], diverged, whether it succeeded).
fn digests_at_one_index(cluster: &Cluster) -> (u64, Vec<(String, Option<String>)>, Vec<String>, bool) {
    let output = run_with_timeout(
        std::process::Command::new(BIN)
            .args(["admin", "--data-dir"])
            .arg(&cluster.data_dir)
            .args(["digest", "--agree", "--json"]),
        Duration::from_secs(180),
    );
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let doc: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\nstderr: {}", String::from_utf8_lossy(&output.stderr)));
    let members = doc["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            let digest = m["answer"]["digest"].as_str().map(str::to_string);
            (m["node"].as_str().unwrap_or_default().to_string(), digest)
        })
        .collect();
    let diverged =
        doc["diverged"].as_array().expect("diverged").iter().map(|d| d.as_str().unwrap().to_string()).collect();
    (doc["index"].as_u64().expect("index"), members, diverged, output.status.success())
}

/// Stops `node`, rewrites in its metadata store the record of the first object (a 2-byte body)
/// as a disk could (valid, wrong: its size 2 -> 3), and starts it again; returns its data dir.
fn change_a_record_on_disk(cluster: &mut Cluster, node: &str) -> std::path::PathBuf {
    use ignifuge_kv::KvStore as _;
    cluster.kill_node(node);
    let data_dir = cluster.process(node).data_dir.clone().expect("a data dir");
    {
        // Its lock goes with the last of its threads, which can outlive the main one briefly.
        let deadline = Instant::now() + Duration::from_secs(10);
        let kv = loop {
            match ignifuge_kv::RocksKv::open(&data_dir.join("meta")) {
                Ok(kv) => break kv,
                Err(e) => assert!(Instant::now() < deadline, "the stopped replica's store: {e:?}"),
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let (key, value) = kv.scan(b"o/", None, 1).unwrap().into_iter().next().expect("an object record");
        assert!(key.starts_with(b"o/"), "{}", String::from_utf8_lossy(&key));
        let text = String::from_utf8_lossy(&value).to_string();
        assert!(text.contains("\"size\":2"), "a 2-byte object's record: {text}");
        let mut batch = ignifuge_kv::WriteBatch::new();
        batch.put(key, text.replacen("\"size\":2", "\"size\":3", 1).into_bytes());
        kv.write(batch, ignifuge_kv::Durability::Synced).unwrap();
    }
    cluster.revive(Duration::from_secs(60));
    data_dir
}

/// Stops `node`, removes its metadata (a replica that lost its disk) and starts it again: it
/// catches up from the others.
fn wipe_metadata_replica(cluster: &mut Cluster, node: &str) {
    let data_dir = cluster.process(node).data_dir.clone().expect("a data dir");
    cluster.kill_node(node);
    std::fs::remove_dir_all(data_dir.join("meta")).expect("wiping the replica's metadata");
    let _ = std::fs::remove_dir_all(data_dir.join("meta-snapshots"));
    cluster.revive(Duration::from_secs(60));
}

/// Damage RocksDB's checksums cannot see (a record rewritten whole, valid, wrong: a bug, a
/// firmware writing a good block to the wrong place) on one metadata replica is found by comparing
/// every replica's state at one log index, while clients write; the replica rebuilt from the
/// others (its metadata wiped, caught up again) agrees.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_whose_state_was_changed_on_disk_is_found_while_clients_write() {
    let mut cluster = Cluster::start().await;
    let client = cluster.s3_client();
    create_bucket(&client, "agree").await;
    for i in 0..20 {
        put_object(&client, "agree", &format!("before-{i}"), format!("v{i}").as_bytes()).await;
    }
    // Healthy, under four writers PUTting back to back: entries are applied while replicas hash,
    // and every replica hashes the same state at the same index.
    let (writers, done) = spawn_writers(&cluster, "agree", "healthy", 4, 40);
    let before = done.load(std::sync::atomic::Ordering::SeqCst);
    let (index, members, diverged, ok) = digests_at_one_index(&cluster);
    let after = done.load(std::sync::atomic::Ordering::SeqCst);
    assert!(ok && diverged.is_empty(), "healthy replicas disagree at {index}: {members:#?}");
    assert_eq!(members.iter().filter(|(_, d)| d.is_some()).count(), 9, "every replica answers: {members:#?}");
    assert!(after > before && before < 160, "no PUT was answered while the check ran ({before} -> {after})");
    for writer in writers {
        writer.await.unwrap();
    }

    // dc3-n2 stopped; one object's record rewritten in its store, as a disk could; restarted.
    change_a_record_on_disk(&mut cluster, "dc3-n2");
    let (writers, _) = spawn_writers(&cluster, "agree", "damaged", 4, 40);
    let (index, members, diverged, ok) = digests_at_one_index(&cluster);
    assert!(!ok, "the command succeeded although a replica differs: {members:#?}");
    assert_eq!(diverged, vec!["dc3-n2".to_string()], "at {index}: {members:#?}");
    for writer in writers {
        writer.await.unwrap();
    }

    // Rebuilt from the others: its metadata wiped, it catches up as a replica that lost its disk.
    wipe_metadata_replica(&mut cluster, "dc3-n2");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (index, members, diverged, ok) = digests_at_one_index(&cluster);
        assert!(diverged.is_empty(), "the rebuilt replica still differs at {index}: {members:#?}");
        if ok && members.iter().all(|(_, d)| d.is_some()) {
            break;
        }
        assert!(Instant::now() < deadline, "the rebuilt replica never answered: {members:#?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let keys = list_all_keys(&client, "agree").await;
    assert_eq!(keys.len(), 20 + 160 + 160);
}

/// The repair service compares the metadata replicas on its own (every 3 s here, daily by
/// default) and `admin durability` reports what it found: all alike; then, once a record was
/// changed on one replica's disk, that replica, by name, and the report unhealthy; then, once
/// that replica was rebuilt from the others, all alike and healthy again.
#[tokio::test(flavor = "multi_thread")]
async fn the_repair_service_finds_a_replica_that_differs_and_the_durability_report_names_it() {
    let mut cluster = Cluster::start_with_env(&[
        ("IGNIFUGE_REPAIR_INTERVAL_MS", "1000"),
        ("IGNIFUGE_METADATA_CHECK_INTERVAL_MS", "3000"),
    ])
    .await;
    let client = cluster.s3_client();
    create_bucket(&client, "checked").await;
    for i in 0..10 {
        put_object(&client, "checked", &format!("k-{i}"), format!("v{i}").as_bytes()).await;
    }
    let check_after = |cluster: &Cluster, after_ms: i64, timeout: Duration| {
        let deadline = Instant::now() + timeout;
        loop {
            let report = cluster.durability();
            let check = &report["repair"]["metadata_check"];
            if check["started_ms"].as_i64().is_some_and(|t| t > after_ms) {
                return (report.clone(), check.clone());
            }
            assert!(Instant::now() < deadline, "no metadata comparison after {after_ms}: {report:#}");
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    let (_, check) = check_after(&cluster, 0, Duration::from_secs(60));
    assert_eq!(check["members"], 9, "{check:#}");
    assert!(check.get("diverged").is_none() && check.get("unknown").is_none(), "a healthy cluster: {check:#}");
    assert!(check["last_agreed_ms"].as_i64().is_some(), "{check:#}");
    cluster.wait_until_healthy(Duration::from_secs(60));

    change_a_record_on_disk(&mut cluster, "dc3-n2");
    let mut after = now_ms();
    let deadline = Instant::now() + Duration::from_secs(120);
    let report = loop {
        let (report, check) = check_after(&cluster, after, Duration::from_secs(60));
        if check["diverged"] == serde_json::json!(["dc3-n2"]) {
            break report;
        }
        // A comparison made while dc3-n2 was still starting has no digest from it.
        assert!(check.get("diverged").is_none(), "only dc3-n2 differs: {check:#}");
        assert!(Instant::now() < deadline, "dc3-n2 never found differing: {report:#}");
        after = check["started_ms"].as_i64().expect("a start");
    };
    assert_eq!(report["healthy"], false);
    let problems = report["problems"].to_string();
    assert!(problems.contains("dc3-n2") && problems.contains("differs"), "{problems}");
    let text = cluster.admin(&["durability"]);
    assert!(text.contains("NOT HEALTHY") && text.contains("differing: dc3-n2"), "{text}");
    let gauges = cluster.admin(&["durability", "--prometheus"]);
    assert!(gauges.contains("ignifuge_metadata_replicas_differing 1"), "{gauges}");

    wipe_metadata_replica(&mut cluster, "dc3-n2");
    let mut after = now_ms();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (report, check) = check_after(&cluster, after, Duration::from_secs(60));
        if check.get("diverged").is_none() && check.get("unknown").is_none() && check.get("error").is_none() {
            assert_eq!(check["members"], 9, "{check:#}");
            break;
        }
        assert!(Instant::now() < deadline, "the rebuilt replica never found alike: {report:#}");
        after = check["started_ms"].as_i64().expect("a start");
    }
    cluster.wait_until_healthy(Duration::from_secs(60));
    assert_eq!(list_all_keys(&client, "checked").await.len(), 10);
}

/// Defect 2: a replica that catches up by snapshot while writes go on ends with exactly the
/// leader's state. dc2-n2, a voter, loses its metadata disk and comes back under a write load; the
/// log is purged behind a snapshot at 40 entries (and then as `raft/src/pacing.rs` paces them:
/// at least 40 entries apart, once the log has grown by about the small state's size), so it can
/// only catch up by installing a snapshot. Having lost
/// its log, it must not vote until it has caught up (its log says so).
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_rebuilt_from_a_snapshot_under_load_matches_the_leader() {
    let mut cluster = Cluster::start_with_env(&[("IGNIFUGE_RAFT_SNAPSHOT_ENTRIES", "40")]).await;
    let client = cluster.s3_client();
    create_bucket(&client, "snap").await;
    for i in 0..120 {
        put_object(&client, "snap", &format!("before-{i}"), format!("v{i}").as_bytes()).await;
    }
    cluster.kill_node("dc2-n2");
    let data_dir = cluster.process("dc2-n2").data_dir.clone().expect("a data dir");
    std::fs::remove_dir_all(data_dir.join("meta")).expect("wiping the voter's metadata");
    let _ = std::fs::remove_dir_all(data_dir.join("meta-snapshots"));
    let (writers, _) = spawn_writers(&cluster, "snap", "during", 4, 60);
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.revive(Duration::from_secs(60));
    for writer in writers {
        writer.await.expect("a writer");
    }
    // Once every replica is at the same applied index, every digest must be the leader's.
    wait_until_replicas_agree(&cluster).await;
    let keys = list_all_keys(&client, "snap").await;
    assert_eq!(keys.len(), 120 + 4 * 60);
    // It says so once a majority has confirmed its leader (`RaftMetadata::confirm`, a round trip
    // of its own after it holds the leader's commit): soon after the digests agree, not before.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(cluster.data_dir.join("logs/dc2-n2.log")).expect("dc2-n2's log");
        if log.contains("caught up after starting without its log") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dc2-n2 started without its log and never said it caught up (did it vote meanwhile?)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Defect 8: garbage collection goes on while a node is unreachable. The garbage record is
/// forgotten once the reachable nodes dropped their shards, and the shards left on the node
/// that was frozen become orphans that the fenced sweep deletes when it answers again.
#[tokio::test(flavor = "multi_thread")]
async fn garbage_left_on_an_unreachable_node_is_reclaimed_when_it_returns() {
    let cluster = Cluster::start_with_env(&[
        ("IGNIFUGE_GC_GRACE_MS", "0"),
        ("IGNIFUGE_GC_INTERVAL_MS", "300"),
        ("IGNIFUGE_REPAIR_INTERVAL_MS", "1000"),
        ("IGNIFUGE_ORPHAN_GRACE_MS", "1"),
    ])
    .await;
    let client = cluster.s3_client();
    create_bucket(&client, "gc-bucket").await;
    let mut rng = TestRng::new("garbage_left_on_an_unreachable_node_is_reclaimed_when_it_returns");
    put_object(&client, "gc-bucket", "k", &rng.bytes(6 * MIB)).await;
    let census = Cluster::shard_file_count;
    assert_eq!(census(&cluster), 18, "2 stripes x 9 shards");
    let frozen = "dc1-n3";
    let held_by_frozen = cluster.shard_files(frozen).len();
    cluster.signal_processes(&[frozen], libc::SIGSTOP);
    let second = rng.bytes(6 * MIB);
    put_object(&client, "gc-bucket", "k", &second).await;
    // The first version's shards go from every reachable node.
    let deadline = Instant::now() + Duration::from_secs(60);
    while census(&cluster) > 18 + held_by_frozen {
        assert!(Instant::now() < deadline, "garbage on reachable nodes not collected: {}", census(&cluster));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    cluster.signal_processes(&[frozen], libc::SIGCONT);
    let deadline = Instant::now() + Duration::from_secs(90);
    while census(&cluster) > 18 {
        assert!(Instant::now() < deadline, "shards left on {frozen} never reclaimed: {} files", census(&cluster));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_bytes_eq(&get_object(&client, "gc-bucket", "k").await, &second, "the live version");
}

/// Bounded resources: a gateway that runs out of file descriptors (EMFILE on accept) keeps
/// serving once some are free again, and a client that never finishes its request headers is
/// cut instead of holding a connection for ever (slowloris).
#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_survives_running_out_of_descriptors_and_cuts_slow_headers() {
    use std::io::{Read, Write};
    let cluster = Cluster::start().await;
    let gateway = cluster.process("gateway-dc1");
    let (pid, address) = (gateway.pid, gateway.listen.clone());
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: prlimit(2) on a child of our `ignifuge dev`, with valid pointers to local structs.
    unsafe {
        assert_eq!(libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut limit), 0);
        let low = libc::rlimit { rlim_cur: 128, rlim_max: limit.rlim_max };
        assert_eq!(
            libc::prlimit(pid, libc::RLIMIT_NOFILE, &low, std::ptr::null_mut()),
            0,
            "lowering the gateway's limit"
        );
    }
    // More connections than descriptors: accept fails with EMFILE; the rest wait in the backlog
    // (each connect bounded, a full backlog stops the flood).
    let mut flood = Vec::new();
    for _ in 0..200 {
        match tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(&address)).await {
            Ok(Ok(stream)) => flood.push(stream),
            _ => break,
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(flood.len() > 128, "only {} connections opened", flood.len());
    drop(flood);
    // SAFETY: as above.
    unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &limit, std::ptr::null_mut()) };
    assert!(pid_alive(pid), "the gateway exited when it ran out of descriptors");
    let client = cluster.s3_client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout(Duration::from_secs(5), client.list_buckets().send())
            .await
            .unwrap_or_else(|_| panic!("ListBuckets hung\n{}", cluster.log_tails(10)))
        {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "the gateway no longer serves: {:?}", error_info(&e)),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut slow = std::net::TcpStream::connect(&address).expect("connecting");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n").expect("half a request head");
    slow.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "a request head never finished holds its connection: {:?}",
        started.elapsed()
    );
}

/// A metadata record that does not decode (a bug, or damage the store's checksums missed) used
/// to end every repair round at the blob scan: nothing after it was ever surveyed or repaired,
/// and no round completed. Now the round goes on past it: it repairs the blobs scanned before the
/// record (an upload part) and after it (a pack, scanned after every object record), each of which
/// lost a shard file meanwhile, reports the record (`records_unreadable`; the durability view
/// unhealthy, so no node may be drained), and the orphan sweep (grace 1 ms) leaves the unreadable
/// record's blob alone. The fault: every object record read by the blob scan is unreadable while
/// a `fail` rule for `meta.blob-scan.object-unreadable` stands.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_the_repair_scan_cannot_read_is_reported_and_repair_goes_on() {
    use aws_sdk_s3::primitives::ByteStream;
    let (cluster, rules) =
        Cluster::start_with_rules(&[("IGNIFUGE_REPAIR_INTERVAL_MS", "1000"), ("IGNIFUGE_ORPHAN_GRACE_MS", "1")]).await;
    let client = cluster.s3_client();
    create_bucket(&client, "scan").await;
    let mut rng = TestRng::new("a_record_the_repair_scan_cannot_read_is_reported_and_repair_goes_on");
    // Each write's blob: the blob directory it adds.
    let mut known = cluster.blob_dirs();
    let mut new_blob = |cluster: &Cluster| {
        let now = cluster.blob_dirs();
        let added: Vec<String> = now.difference(&known).cloned().collect();
        known = now;
        let [blob] = added.as_slice() else { panic!("one new blob: {added:?}") };
        blob.clone()
    };
    let kept = rng.bytes(3 * MIB + 1);
    put_object(&client, "scan", "kept", &kept).await;
    let kept_blob = new_blob(&cluster);
    let small = rng.bytes(20 * 1024 + 3);
    put_object(&client, "scan", "small", &small).await;
    let pack_blob = new_blob(&cluster);
    let upload = ok(client.create_multipart_upload().bucket("scan").key("pending").send().await, "upload");
    let id = upload.upload_id().expect("upload id").to_string();
    let sent = client.upload_part().bucket("scan").key("pending").upload_id(&id).part_number(1);
    ok(sent.body(ByteStream::from(rng.bytes(2 * MIB + 5))).send().await, "UploadPart");
    let part_blob = new_blob(&cluster);
    let files_of = |blob: &str| -> Vec<std::path::PathBuf> {
        let nodes = cluster.storage_nodes();
        let files = nodes.iter().flat_map(|n| cluster.shard_files(&n.node_id));
        files.filter(|f| f.parent().and_then(|p| p.file_name()).is_some_and(|n| n == blob)).collect()
    };
    let counts = || (files_of(&kept_blob).len(), files_of(&pack_blob).len(), files_of(&part_blob).len());
    assert_eq!(counts(), (9, 9, 9));
    cluster.wait_until_healthy(Duration::from_secs(60));
    let shown = cluster.admin(&["record", "o/scan/kept"]);
    assert!(shown.contains("reads: yes"), "`admin record` of a record that reads: {shown}");

    let everyone: Vec<String> = cluster.processes.iter().map(|p| p.listen.clone()).collect();
    rules.set(&format!("fail {} meta.blob-scan.object-unreadable\n", everyone.join(",")));
    // The rules file is re-read within 50 ms; waiting out a whole round (1 s apart, milliseconds
    // long) as well means that any round that can find the shards deleted below runs faulted.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for blob in [&pack_blob, &part_blob] {
        std::fs::remove_file(files_of(blob).pop().expect("a shard file")).expect("remove a shard file");
    }
    let deleted_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let report = loop {
        let report = cluster.durability();
        let started_ms = report["repair"]["started_ms"].as_i64().unwrap_or(0);
        let unread = report["repair"]["records_unreadable"].as_u64().unwrap_or(0);
        if started_ms > deleted_ms && unread >= 1 && counts() == (9, 9, 9) {
            break report;
        }
        assert!(Instant::now() < deadline, "no round repaired past the unreadable records: {:?}\n{report:#}", counts());
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(report["repair"]["records_unreadable"], 2, "the two object records: {report:#}");
    assert_eq!(report["repair"]["unreadable_keys"], serde_json::json!(["o/scan/kept", "o/scan/small"]), "{report:#}");
    assert_eq!(report["healthy"], false, "records the round could not read: {report:#}");
    let problems = report["problems"].to_string();
    assert!(problems.contains("could not be read"), "{problems}");
    // The operator looks at one the report names: its bytes, and why it does not read.
    let shown = cluster.admin(&["record", "o/scan/kept"]);
    assert!(shown.contains("reads: no: fault point") && shown.contains("bytes"), "{shown}");
    // Rounds went on meanwhile, each sweeping orphans: the objects whose records were unreadable
    // lost no shard.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(counts(), (9, 9, 9), "no blob of an unreadable record swept as an orphan");
    assert_bytes_eq(&get_object(&client, "scan", "kept").await, &kept, "an object whose record the scan skipped");
    assert_bytes_eq(&get_object(&client, "scan", "small").await, &small, "a packed one");

    rules.clear();
    let report = cluster.wait_until_healthy(Duration::from_secs(60));
    assert_eq!(report["repair"]["records_unreadable"], 0, "{report:#}");
    assert_bytes_eq(&get_object(&client, "scan", "kept").await, &kept, "after the rule is cleared");
}

/// Defect 8: a shard whose file fails with an I/O error used to end the node's whole scrub pass
/// (so the pass never completed) and stayed counted as present. Now the pass goes on, the shard is
/// set aside like a corrupt one, the durability view reports it until a repair round has rebuilt
/// it, and every object reads back. The fault: dc2-n2's first shard read fails, and so does the
/// read again that follows a failed read (`node.shard.read-error`, hits 1 and 2, scoped to that
/// node). dc3-n1's first read fails once only (a transient error): read again, its copy stays.
#[tokio::test(flavor = "multi_thread")]
async fn a_disk_read_error_during_a_scrub_is_set_aside_and_repaired() {
    const NODE: &str = "dc2-n2";
    const TRANSIENT: &str = "dc3-n1";
    let cluster = Cluster::start_with_env(&[
        ("IGNIFUGE_FAULTS", "dc2-n2/node.shard.read-error=error@1-2,dc3-n1/node.shard.read-error=error@1"),
        ("IGNIFUGE_SCRUB_INTERVAL_MS", "1500"),
        ("IGNIFUGE_REPAIR_INTERVAL_MS", "1000"),
    ])
    .await;
    let client = cluster.s3_client();
    create_bucket(&client, "eio").await;
    let mut rng = TestRng::new("a_disk_read_error_during_a_scrub_is_set_aside_and_repaired");
    let mut objects = Vec::new();
    for i in 0..3 {
        let data = rng.bytes(6 * MIB + i);
        put_object(&client, "eio", &format!("object-{i}"), &data).await;
        objects.push((format!("object-{i}"), data));
    }
    // 3 objects x 2 stripes, one shard of each on every node (5+4 over 9 nodes). Not counted
    // here: a scrub pass may already have met the read error while the objects were written.
    let held = 3 * 2;
    let node_scrub = |report: &serde_json::Value| {
        report["scrub"].as_array().expect("scrub list").iter().find(|n| n["node"] == NODE).cloned().expect(NODE)
    };
    // The scrubber meets the error, sets the shard aside, and finishes its pass.
    let deadline = Instant::now() + Duration::from_secs(60);
    let started_ms = loop {
        let report = cluster.durability();
        let scrub = node_scrub(&report);
        let status = &scrub["status"];
        if status["unreadable_found"] == 1 && status["last_complete_ms"].as_i64() > status["last_corrupt_ms"].as_i64() {
            break status["last_corrupt_ms"].as_i64().expect("when it was set aside");
        }
        assert!(Instant::now() < deadline, "no scrub pass completed past the read error: {scrub:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // Healthy again only after a repair round that began after it; the shard is back on the node.
    let report = cluster.wait_until_healthy(Duration::from_secs(60));
    assert!(report["repair"]["started_ms"].as_i64() >= Some(started_ms), "{report:#}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.shard_files(NODE).len() != held {
        assert!(Instant::now() < deadline, "the set-aside shard was not rebuilt on {NODE}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (key, data) in &objects {
        assert_bytes_eq(&get_object(&client, "eio", key).await, data, key);
    }
    // The transient error cost no copy: dc3-n1 read its shard again and set nothing aside.
    let transient = cluster.durability();
    let transient = transient["scrub"].as_array().unwrap().iter().find(|n| n["node"] == TRANSIENT).cloned().unwrap();
    assert!(transient["status"]["last_complete_ms"].as_i64().is_some(), "{transient:#}");
    assert_eq!(transient["status"]["unreadable_found"], 0, "{transient:#}");
    assert_eq!(transient["status"]["corrupt_found"], 0, "{transient:#}");
    let log = std::fs::read_to_string(cluster.data_dir.join(format!("logs/{TRANSIENT}.log"))).unwrap();
    assert!(log.contains("read-error fires"), "dc3-n1's fault never fired: the test proves nothing");
    assert!(log.contains("a shard read failed once, then read whole"), "{TRANSIENT} did not read again");
}

/// A cluster whose scrubbers pass every 1.5 s and repair rounds run every second.
async fn set_aside_cluster() -> (Cluster, Rules) {
    Cluster::start_with_rules(&[("IGNIFUGE_SCRUB_INTERVAL_MS", "1500"), ("IGNIFUGE_REPAIR_INTERVAL_MS", "1000")]).await
}

/// What `set_aside_every_shard` left: the objects written, how many shards the node held, the
/// rules that refuse every rebuild (to keep standing), and the node's scrub status.
struct SetAside {
    objects: Vec<(String, Vec<u8>)>,
    held: usize,
    no_rebuild: String,
    status: serde_json::Value,
}

/// Writes three objects of two stripes into a new `bucket`, then fails every read of `node`'s
/// disk, with rebuilds refused (`node`'s writes and every gateway's repair commits fail), until
/// its scrubber has set every shard of `node` aside (moved and counted).
async fn set_aside_every_shard(cluster: &Cluster, rules: &Rules, node: &str, bucket: &str, seed: &str) -> SetAside {
    let client = cluster.s3_client();
    create_bucket(&client, bucket).await;
    let mut rng = TestRng::new(seed);
    let mut objects = Vec::new();
    for i in 0..3 {
        let data = rng.bytes(6 * MIB + i);
        put_object(&client, bucket, &format!("object-{i}"), &data).await;
        objects.push((format!("object-{i}"), data));
    }
    let held = cluster.shard_files(node).len();
    assert_eq!(held, 3 * 2, "one shard of each stripe on every node (5+4 over 9)");
    let listen = cluster.process(node).listen.clone();
    let gateways: Vec<String> =
        cluster.processes.iter().filter(|p| p.role == "gateway").map(|p| p.listen.clone()).collect();
    let no_rebuild =
        format!("fail {listen} node.shard.write-error\nfail {} repair.before-commit\n", gateways.join(","));
    rules.set(&format!("fail {listen} node.shard.read-error\n{no_rebuild}"));
    // Counted once moved and recorded: the file leaves first.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let report = cluster.durability();
        let scrub = report["scrub"].as_array().expect("scrub list").iter().find(|n| n["node"] == node).cloned();
        let status = scrub.expect(node)["status"].clone();
        if cluster.shard_files(node).is_empty() && status["unreadable_found"] == held {
            return SetAside { objects, held, no_rebuild, status };
        }
        assert!(Instant::now() < deadline, "{node}'s scrubber did not set its shards aside: {status:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A copy set aside after two failed reads is not lost for good: the fault may have been
/// transient (a controller reset), and it may be the copy a stripe needs most. While dc2-n2's
/// disk fails every read, its scrubber sets each of its shards aside; once reads work again, the
/// re-examination after the next pass puts every one back, with nothing rebuilt meanwhile: the
/// repair service cannot write to dc2-n2 nor commit a repair (`node.shard.write-error`,
/// `repair.before-commit`), so the copies listed again are the set-aside ones.
#[tokio::test(flavor = "multi_thread")]
async fn copies_set_aside_by_a_disk_that_failed_its_reads_return_once_they_read_whole() {
    const NODE: &str = "dc2-n2";
    let (cluster, rules) = set_aside_cluster().await;
    let client = cluster.s3_client();
    let SetAside { objects, held, no_rebuild, status } = set_aside_every_shard(
        &cluster,
        &rules,
        NODE,
        "returns",
        "copies_set_aside_by_a_disk_that_failed_its_reads_return_once_they_read_whole",
    )
    .await;
    let node_scrub = |report: &serde_json::Value| {
        report["scrub"].as_array().expect("scrub list").iter().find(|n| n["node"] == NODE).cloned().expect(NODE)
    };
    // A pass re-examines them while the disk still fails: they stay aside.
    let last_pass = status["last_complete_ms"].as_i64();
    let deadline = Instant::now() + Duration::from_secs(60);
    while node_scrub(&cluster.durability())["status"]["last_complete_ms"].as_i64() <= last_pass {
        assert!(Instant::now() < deadline, "no scrub pass completed on {NODE}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(cluster.shard_files(NODE).is_empty(), "a copy that still fails its reads came back");

    // Reads work again: the next re-examination puts every copy back.
    rules.set(&no_rebuild);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = node_scrub(&cluster.durability())["status"].clone();
        if status["set_aside_restored"] == held && cluster.shard_files(NODE).len() == held {
            break;
        }
        assert!(Instant::now() < deadline, "the set-aside copies did not return: {status:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    rules.clear();
    cluster.wait_until_healthy(Duration::from_secs(90));
    assert_eq!(cluster.shard_files(NODE).len(), held, "the returned copies are the stripes' own");
    for (key, data) in &objects {
        assert_bytes_eq(&get_object(&client, "returns", key).await, data, key);
    }
}

/// A node killed (kill -9 at a fault point) as its re-examination puts a set-aside copy back in
/// place, after the rename and before it is synced and indexed, loses no copy: restarted, it
/// finds that copy in place or still set aside, puts the others back, and every stripe is whole
/// with nothing rebuilt (rebuilds are refused throughout).
#[tokio::test(flavor = "multi_thread")]
async fn a_node_killed_while_putting_set_aside_copies_back_loses_none() {
    const NODE: &str = "dc2-n2";
    let (mut cluster, rules) = set_aside_cluster().await;
    let client = cluster.s3_client();
    let SetAside { objects, held, no_rebuild, .. } = set_aside_every_shard(
        &cluster,
        &rules,
        NODE,
        "put-back",
        "a_node_killed_while_putting_set_aside_copies_back_loses_none",
    )
    .await;
    let node = cluster.process(NODE).listen.clone();
    // Reads work again; the first copy put back kills the node after its rename.
    rules.set(&format!("crash {node} node.shard.restore-after-rename\n{no_rebuild}"));
    wait_for_crash(&cluster, &[NODE], Duration::from_secs(60)).await;
    let log = std::fs::read_to_string(cluster.data_dir.join(format!("logs/{NODE}.log"))).unwrap();
    assert!(log.contains("restore-after-rename fires"), "killed elsewhere than the crash point");
    rules.set(&no_rebuild);
    std::thread::sleep(Duration::from_millis(4 * ignifuge_faults::RULES_REREAD_MS));
    cluster.revive(Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster.shard_files(NODE).len() != held {
        assert!(
            Instant::now() < deadline,
            "the set-aside copies did not all return after the crash: {} of {held}",
            cluster.shard_files(NODE).len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    rules.clear();
    cluster.wait_until_healthy(Duration::from_secs(90));
    assert_eq!(cluster.shard_files(NODE).len(), held, "the returned copies are the stripes' own");
    for (key, data) in &objects {
        assert_bytes_eq(&get_object(&client, "put-back", key).await, data, key);
    }
}

/// A stripe left with fewer than k listed copies because its nodes set copies aside after failed
/// reads (five nodes' disks fail every read while a GET needs the stripe) is whole again once
/// the reads work: the repair round that finds it unreadable asks the live nodes to re-examine
/// their set-aside copies at once, rather than after their next scrub pass (an hour away here).
#[tokio::test(flavor = "multi_thread")]
async fn a_stripe_unreadable_for_want_of_set_aside_copies_is_whole_again_when_they_read_whole() {
    const FAILING: [&str; 5] = ["dc1-n1", "dc1-n2", "dc1-n3", "dc2-n1", "dc2-n2"];
    let (cluster, rules) = Cluster::start_with_rules(&[
        ("IGNIFUGE_SCRUB_INTERVAL_MS", "3600000"),
        ("IGNIFUGE_REPAIR_INTERVAL_MS", "1000"),
    ])
    .await;
    let client = cluster.s3_client();
    create_bucket(&client, "last-resort").await;
    let mut rng = TestRng::new("a_stripe_unreadable_for_want_of_set_aside_copies_is_whole_again_when_they_read_whole");
    let data = rng.bytes(6 * MIB);
    put_object(&client, "last-resort", "object", &data).await;
    let failing: Vec<String> = FAILING.iter().map(|n| cluster.process(n).listen.clone()).collect();
    rules.set(&format!("fail {} node.shard.read-error\n", failing.join(",")));
    std::thread::sleep(Duration::from_millis(4 * ignifuge_faults::RULES_REREAD_MS));

    // The GET cannot have its first stripe: five of its nine copies fail twice and are set aside.
    let no_retry = cluster.s3_client_no_retry_at(0);
    let got = match no_retry.get_object().bucket("last-resort").key("object").send().await {
        Ok(answer) => answer.body.collect().await.map(|b| b.into_bytes().to_vec()).ok(),
        Err(_) => None,
    };
    assert_ne!(got.as_deref(), Some(&data[..]), "a stripe with four readable copies of nine read back");
    let set_aside = |field: &str| -> u64 {
        let report = cluster.durability();
        report["scrub"].as_array().expect("scrub list").iter().map(|n| n["status"][field].as_u64().unwrap_or(0)).sum()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let report = cluster.durability();
        if set_aside("unreadable_found") >= 5 && report["repair"]["stripes_unreadable"].as_u64() >= Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "no round found the stripe unreadable: {report:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(set_aside("set_aside_restored"), 0, "nothing reads whole while the disks fail");

    // The disks read again: the next round's re-examination brings the copies back.
    rules.clear();
    cluster.wait_until_healthy(Duration::from_secs(60));
    assert!(set_aside("set_aside_restored") >= 5, "the stripe came back without its set-aside copies?");
    assert_bytes_eq(&get_object(&client, "last-resort", "object").await, &data, "after the copies returned");
}

/// A node whose disk refuses every write (full, or read-only after an error): a PUT is still
/// acknowledged only once its stripes are placed to survive, with that node's shards written to
/// other nodes of its datacenter and the stripes recorded as durability debt (the outage policy),
/// never silently short of a shard; every object reads back. The fault: `node.shard.write-error`
/// on dc2-n2 at every write.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_whose_disk_refuses_writes_costs_no_acknowledged_write() {
    a_disk_that_refuses("node.shard.write-error", "a_node_whose_disk_refuses_writes_costs_no_acknowledged_write").await;
}

/// The same with a disk that takes every write and then fails its sync (`node.shard.sync-error`,
/// after the shard's file was renamed into place): the file is taken back, so no shard whose
/// durability is unknown stays listed for the survey to count.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_whose_disk_fails_its_syncs_keeps_no_shard_and_costs_no_acknowledged_write() {
    a_disk_that_refuses(
        "node.shard.sync-error",
        "a_node_whose_disk_fails_its_syncs_keeps_no_shard_and_costs_no_acknowledged_write",
    )
    .await;
}

async fn a_disk_that_refuses(point: &str, test: &str) {
    const FULL: &str = "dc2-n2";
    let faults = format!("{FULL}/{point}=error");
    let cluster =
        Cluster::start_with_env(&[("IGNIFUGE_FAULTS", faults.as_str()), ("IGNIFUGE_REPAIR_INTERVAL_MS", "3600000")])
            .await;
    let client = cluster.s3_client();
    create_bucket(&client, "full").await;
    let mut rng = TestRng::new(test);
    let mut objects = Vec::new();
    for i in 0..3 {
        let data = rng.bytes(6 * MIB + i);
        put_object(&client, "full", &format!("object-{i}"), &data).await;
        objects.push((format!("object-{i}"), data));
    }
    assert_eq!(cluster.shard_files(FULL).len(), 0, "{FULL} refused every write");
    assert_eq!(Cluster::shard_file_count(&cluster), 3 * 2 * 9, "every shard of every stripe is somewhere else");
    let in_dc2: usize = ["dc2-n1", "dc2-n3"].iter().map(|n| cluster.shard_files(n).len()).sum();
    assert_eq!(in_dc2, 3 * 2 * 3, "dc2's three shards of each stripe stay in dc2, on its two other nodes");
    let report = cluster.durability();
    assert_eq!(report["debt_stripes"], 6, "every stripe short of its spread is recorded as debt: {report:#}");
    assert_eq!(report["healthy"], false, "{report:#}");
    for (key, data) in &objects {
        assert_bytes_eq(&get_object(&client, "full", key).await, data, key);
    }
}

/// A node whose disk fills up, for real: its data directory is a small file system of its own,
/// filled by a file as another user of the disk would. The node refuses shards, so PUTs go on
/// with its shards written elsewhere, and its metadata replica stops at its first refused write
/// (openraft stops a replica for good on a storage error, and RocksDB refuses every write after
/// one failed, until it is opened again). Once the file is gone the replica starts again by
/// itself (it used to stay stopped until the node was restarted by hand, the metadata a voter
/// short meanwhile), catches up and holds what the others hold; the node takes shards again and
/// every object reads back. `admin durability` names the stopped replica meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_whose_disk_filled_takes_shards_and_metadata_again_once_it_has_room() {
    const FULL: &str = "dc2-n2";
    // Small enough that RocksDB cannot set aside room for its write-ahead log at start (its
    // preallocation, about 70 MiB, fails and is skipped): the log's next append meets the full disk.
    let cluster = Cluster::start_with_small_disk(FULL, 40 << 20, &[("IGNIFUGE_REPAIR_INTERVAL_MS", "3600000")]).await;
    let client = cluster.s3_client();
    create_bucket(&client, "full").await;
    let mut rng = TestRng::new("a_node_whose_disk_filled_takes_shards_and_metadata_again_once_it_has_room");
    let mut objects = Vec::new();
    let data = rng.bytes(6 * MIB);
    put_object(&client, "full", "before", &data).await;
    objects.push(("before".to_string(), data));
    let shards_before = cluster.shard_files(FULL).len();
    assert!(shards_before > 0, "{FULL} holds shards of the first object");

    let filler = cluster.small_disk().fill();
    let stopped = |status: &MetaStatus| status.member(FULL).status.as_ref().is_some_and(|s| s.stopped);
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0.. {
        let (key, data) = (format!("while-full-{i}"), rng.bytes(64 * 1024 + i));
        put_object(&client, "full", &key, &data).await;
        objects.push((key, data));
        let status = cluster.meta_status();
        if stopped(&status) {
            break;
        }
        assert!(i < 300 && Instant::now() < deadline, "{FULL}'s replica took every write: {}", status.summary());
    }
    let view = cluster.durability();
    let problems = view["problems"].to_string();
    assert!(problems.contains(&format!("metadata replica(s) stopped: {FULL}")), "{view:#}");
    let data = rng.bytes(6 * MIB + 1);
    put_object(&client, "full", "striped-while-full", &data).await;
    objects.push(("striped-while-full".to_string(), data));
    // Not started again while its store still refuses writes (it tries after 1 s, 2 s, 4 s...).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let status = cluster.meta_status();
    assert!(stopped(&status), "{FULL}'s replica restarted on a full disk: {}", status.summary());

    std::fs::remove_file(&filler).expect("removing the filler");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = cluster.meta_status();
        let leader_last = status.leader_status().and_then(|s| s.last_log_index);
        let member = status.member(FULL).status.clone();
        if let (Some(member), Some(leader_last)) = (member, leader_last)
            && !member.stopped
            && member.applied_index >= Some(leader_last)
        {
            break;
        }
        assert!(Instant::now() < deadline, "{FULL}'s replica did not come back: {}", status.summary());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Its shards again: a stripe written now is whole (each of the nine nodes takes one of its
    // nine shards, file and index entry), so it adds no durability debt.
    let debt_before = cluster.durability()["debt_stripes"].as_u64();
    let data = rng.bytes(6 * MIB + 2);
    put_object(&client, "full", "after", &data).await;
    objects.push(("after".to_string(), data));
    assert!(cluster.shard_files(FULL).len() > shards_before, "{FULL} takes shards again");
    assert_eq!(cluster.durability()["debt_stripes"].as_u64(), debt_before, "the stripes after are whole");
    for (key, data) in &objects {
        assert_bytes_eq(&get_object(&client, "full", key).await, data, key);
    }
    let (index, members, diverged, agreed) = digests_at_one_index(&cluster);
    assert!(agreed && diverged.is_empty(), "replicas differ at {index}: {diverged:?} {members:?}");
    assert_eq!(members.len(), 9);
    assert!(members.iter().all(|(_, d)| d.is_some() && *d == members[0].1), "at {index}: {members:?}");
    let view = cluster.durability();
    assert!(!view["problems"].to_string().contains("stopped"), "{view:#}");
}

/// A node whose process answers but whose disk can no longer list its shards (the inventory fails
/// at every round, `node.inventory-error`) used to hold its stripes waiting for ever: now, once it
/// has failed to list for the down-out interval, its shards are rebuilt on the other nodes of its
/// datacenter, as a dead node's would be, and every object reads back.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_answers_but_cannot_list_its_shards_is_rebuilt_around() {
    const UNLISTED: &str = "dc2-n2";
    let (cluster, rules) =
        Cluster::start_with_rules(&[("IGNIFUGE_REPAIR_INTERVAL_MS", "1000"), ("IGNIFUGE_REPAIR_DOWN_OUT_MS", "8000")])
            .await;
    let client = cluster.s3_client();
    create_bucket(&client, "unlisted").await;
    let mut rng = TestRng::new("a_node_that_answers_but_cannot_list_its_shards_is_rebuilt_around");
    let mut objects = Vec::new();
    for i in 0..3 {
        let data = rng.bytes(6 * MIB + i);
        put_object(&client, "unlisted", &format!("object-{i}"), &data).await;
        objects.push((format!("object-{i}"), data));
    }
    let others = ["dc2-n1", "dc2-n3"];
    let in_others = || others.iter().map(|n| cluster.shard_files(n).len()).sum::<usize>();
    assert_eq!(in_others(), 3 * 2 * 2, "one shard of each of the 6 stripes on each of dc2's nodes");
    rules.set(&format!("fail {} node.inventory-error\n", cluster.process(UNLISTED).listen));
    // Waited for first, as a node down would be, for the down-out interval (8 s).
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(in_others(), 3 * 2 * 2, "rebuilt before the down-out interval");
    // Then dc2's third shard of every stripe rebuilt on its two other nodes, while dc2-n2 runs.
    let deadline = Instant::now() + Duration::from_secs(90);
    while in_others() < 3 * 2 * 3 {
        assert!(Instant::now() < deadline, "{UNLISTED}'s shards never rebuilt: {:#}", cluster.durability());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let health = cluster.durability();
    let node = health["scrub"].as_array().unwrap().iter().find(|n| n["node"] == UNLISTED).cloned().unwrap();
    assert_eq!(node["reachable"], true, "the node runs all along: {node:#}");
    let problems = health["problems"].to_string();
    assert!(problems.contains("could not survey") && problems.contains(UNLISTED), "{problems}");
    for (key, data) in &objects {
        assert_bytes_eq(&get_object(&client, "unlisted", key).await, data, key);
    }
}

/// Writes a `crash` rule: the processes `targets` exit (code 137) at fault point `point`.
fn crash_at(cluster: &Cluster, rules: &Rules, targets: &[&str], point: &str) {
    let listen: Vec<String> = targets.iter().map(|id| cluster.process(id).listen.clone()).collect();
    rules.set(&format!("crash {} {point}\n", listen.join(",")));
    // A process may act on the rules it read before for `RULES_REREAD_MS`: a PUT sent at once
    // could have its shards written there without the rule (the full suite saw a 6 MiB PUT
    // acknowledged with no crash).
    std::thread::sleep(Duration::from_millis(4 * ignifuge_faults::RULES_REREAD_MS));
}

/// Which of `candidates` has exited (a crash rule fired in it) within `timeout`, if one has.
async fn crashed_within(cluster: &Cluster, candidates: &[&str], timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(crashed) = candidates.iter().find(|id| !pid_alive(cluster.process(id).pid)) {
            return Some(crashed.to_string());
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until one of `candidates` has exited (a crash rule fired in it), returns which one.
async fn wait_for_crash(cluster: &Cluster, candidates: &[&str], timeout: Duration) -> String {
    crashed_within(cluster, candidates, timeout)
        .await
        .unwrap_or_else(|| panic!("none of {candidates:?} crashed in time\n{}", cluster.log_tails(10)))
}

/// Failpoints inside snapshot build and install (defect 2). dc1-n2 crashes after writing a
/// snapshot file and before it becomes current; dc2-n2, whose metadata disk was wiped, crashes
/// in the middle of installing the leader's snapshot (its old state cleared, the new one in but
/// for its last batch). Both come back while writes go on, and every replica ends with the
/// leader's state at the same applied index.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_that_crash_building_or_installing_a_snapshot_end_with_the_leaders_state() {
    let (mut cluster, rules) = Cluster::start_with_rules(&[("IGNIFUGE_RAFT_SNAPSHOT_ENTRIES", "40")]).await;
    let client = cluster.s3_client();
    create_bucket(&client, "snap-crash").await;
    let mut written = 0;
    let mut put_next = async |client: &aws_sdk_s3::Client| {
        put_object(client, "snap-crash", &format!("k{written:04}"), format!("v{written}").as_bytes()).await;
        written += 1;
    };
    for _ in 0..60 {
        put_next(&client).await;
    }
    // Build: dc1-n2 crashes at its next snapshot build, at least 40 entries later, once its log
    // has grown by about the (small) state's size (`raft/src/pacing.rs`).
    crash_at(&cluster, &rules, &["dc1-n2"], "raft.snapshot.build");
    let deadline = Instant::now() + Duration::from_secs(60);
    while pid_alive(cluster.process("dc1-n2").pid) {
        assert!(Instant::now() < deadline, "dc1-n2 never built a snapshot");
        put_next(&client).await;
    }
    rules.clear();
    cluster.revive(Duration::from_secs(60));
    // Install: dc2-n2 loses its metadata disk and comes back with the crash rule in force; the log
    // is purged, so it can only catch up by installing a snapshot.
    cluster.kill_node("dc2-n2");
    let data_dir = cluster.process("dc2-n2").data_dir.clone().expect("a data dir");
    std::fs::remove_dir_all(data_dir.join("meta")).expect("wiping the voter's metadata");
    let _ = std::fs::remove_dir_all(data_dir.join("meta-snapshots"));
    for _ in 0..50 {
        put_next(&client).await;
    }
    crash_at(&cluster, &rules, &["dc2-n2"], "raft.snapshot.install");
    // It may crash before it even answers: restarted, not waited for.
    cluster.respawn(Duration::from_secs(60));
    wait_for_crash(&cluster, &["dc2-n2"], Duration::from_secs(60)).await;
    rules.clear();
    cluster.revive(Duration::from_secs(60));
    for _ in 0..30 {
        put_next(&client).await;
    }
    wait_until_replicas_agree(&cluster).await;
    assert_eq!(list_all_keys(&client, "snap-crash").await.len(), written);
}

/// A repair round whose every rebuild fails keeps to its rate limit: each failed stripe counts
/// as the bytes it read. dc2-n2 loses its shard files and refuses every write
/// (`node.shard.write-error`), so each rebuild reads five shards and fails at its write; at
/// 1 MiB/s and 5 MiB stripes the round fails about one stripe each 5 s after its first four in
/// flight, where counting only successes let it read every stripe again each second. Once the
/// writes work the same round rebuilds them and the data is whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_repair_round_whose_rebuilds_all_fail_keeps_to_its_rate() {
    const NODE: &str = "dc2-n2";
    const WINDOW: Duration = Duration::from_secs(10);
    let (cluster, rules) = Cluster::start_with_rules(&[
        ("IGNIFUGE_REPAIR_INTERVAL_MS", "1000"),
        ("IGNIFUGE_REPAIR_BYTES_PER_SEC", "1048576"),
    ])
    .await;
    let client = cluster.s3_client();
    create_bucket(&client, "paced").await;
    let mut rng = TestRng::new("a_repair_round_whose_rebuilds_all_fail_keeps_to_its_rate");
    let mut objects = Vec::new();
    for i in 0..6 {
        let data = rng.bytes(10 * MIB);
        put_object(&client, "paced", &format!("object-{i}"), &data).await;
        objects.push((format!("object-{i}"), data));
    }
    cluster.wait_until_healthy(Duration::from_secs(60));
    let node = cluster.process(NODE).listen.clone();
    rules.set(&format!("fail {node} node.shard.write-error\n"));
    std::thread::sleep(Duration::from_millis(4 * ignifuge_faults::RULES_REREAD_MS));
    let lost = cluster.shard_files(NODE);
    assert_eq!(lost.len(), 12, "one shard of each of the twelve 5 MiB stripes (5+4 over 9)");
    for file in &lost {
        std::fs::remove_file(file).expect("removing a shard file");
    }
    // Failed rebuilds, as every process logged them.
    let failures = || {
        let mut logs = Vec::new();
        for process in &cluster.processes {
            let path = cluster.data_dir.join(format!("logs/{}.log", process.node_id));
            let text = std::fs::read_to_string(path).unwrap_or_default();
            logs.extend(text.lines().filter(|l| l.contains("stripe not repaired")).map(str::to_string));
        }
        logs.len()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while failures() == 0 {
        assert!(Instant::now() < deadline, "no rebuild failed: {}", cluster.log_tails(20));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(WINDOW).await;
    let failed = failures();
    // Four in flight, then one per 5 MiB read at 1 MiB/s: 6 in 10 s, 8 with slack. Unpaced, the
    // round fails all twelve at once and the next round (a second later) twelve again.
    assert!(failed <= 8, "{failed} failed rebuilds in {WINDOW:?} at 1 MiB/s: the failures are not paced");
    assert!(failed >= 2, "only {failed} failed rebuilds: the test proves nothing");
    eprintln!("{failed} failed rebuilds in {WINDOW:?}");
    rules.clear();
    let cleared_ms = now_ms();
    let deadline = Instant::now() + Duration::from_secs(180);
    while cluster.shard_files(NODE).len() < lost.len() {
        assert!(Instant::now() < deadline, "{NODE}'s shards were not rebuilt: {}", cluster.log_tails(20));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Healthy by a round that started once the writes worked.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let report = cluster.durability();
        if report["healthy"] == true && report["repair"]["started_ms"].as_i64() >= Some(cleared_ms) {
            break;
        }
        assert!(Instant::now() < deadline, "not healthy after the rebuild: {report:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (key, data) in &objects {
        assert_bytes_eq(&get_object(&client, "paced", key).await, data, key);
    }
}

/// Failpoints inside repair (defect 3). While dc3-n1 is frozen past the down-out interval, the
/// gateway that repairs its stripes crashes after writing a stripe's rebuilt shards but before
/// committing them, and (restarted) after committing but before deleting the old copies. Neither
/// may cost a stripe its margin: once dc3-n1 answers again, no round finds anything unreadable,
/// what a round repaired stays repaired, and every object reads back.
#[tokio::test(flavor = "multi_thread")]
async fn a_repair_that_crashes_around_its_commit_never_lowers_a_margin() {
    let (mut cluster, rules) = Cluster::start_with_rules(&[
        ("IGNIFUGE_REPAIR_INTERVAL_MS", "1500"),
        ("IGNIFUGE_REPAIR_DOWN_OUT_MS", "2000"),
        ("IGNIFUGE_ORPHAN_GRACE_MS", "1"),
    ])
    .await;
    let client = cluster.s3_client();
    create_bucket(&client, "repair-crash").await;
    let mut rng = TestRng::new("a_repair_that_crashes_around_its_commit_never_lowers_a_margin");
    let objects: Vec<Vec<u8>> = (0..4).map(|i| rng.bytes(6 * MIB + i)).collect();
    for (i, data) in objects.iter().enumerate() {
        put_object(&client, "repair-crash", &format!("o{i}"), data).await;
    }
    cluster.signal_processes(&["dc3-n1"], libc::SIGSTOP);
    let gateways: Vec<String> =
        cluster.processes.iter().filter(|p| p.role == "gateway").map(|p| p.node_id.clone()).collect();
    let gateways: Vec<&str> = gateways.iter().map(String::as_str).collect();
    for point in ["repair.before-commit", "repair.after-commit"] {
        crash_at(&cluster, &rules, &gateways, point);
        let crashed = wait_for_crash(&cluster, &gateways, Duration::from_secs(120)).await;
        rules.clear();
        println!("{crashed} crashed at {point}");
        cluster.revive(Duration::from_secs(60));
    }
    cluster.signal_processes(&["dc3-n1"], libc::SIGCONT);
    let healed_at = now_ms();
    rounds_until_healthy(&cluster, healed_at, Duration::from_secs(120)).await;
    for client in (0..cluster.gateways.len()).map(|i| cluster.s3_client_at(i)) {
        for (i, data) in objects.iter().enumerate() {
            assert_bytes_eq(&get_object(&client, "repair-crash", &format!("o{i}")).await, data, "after the crashes");
        }
    }
}

/// Failpoints around a shard's fsync. dc1-n2 crashes after writing a shard's file but before
/// syncing it; dc2-n3 crashes after syncing one but before answering. The PUTs in flight (a
/// 6 MiB object and small ones sent with it, which go to a pack) are acknowledged only once
/// enough shards are placed elsewhere; every acknowledged object reads back while the node is
/// down and after it returns, and repair brings everything to health.
#[tokio::test(flavor = "multi_thread")]
async fn nodes_that_crash_around_a_shard_fsync_lose_no_acknowledged_write() {
    let (mut cluster, rules) =
        Cluster::start_with_rules(&[("IGNIFUGE_REPAIR_INTERVAL_MS", "1500"), ("IGNIFUGE_REPAIR_DOWN_OUT_MS", "2000")])
            .await;
    let client = cluster.s3_client();
    create_bucket(&client, "fsync-crash").await;
    let mut rng = TestRng::new("nodes_that_crash_around_a_shard_fsync_lose_no_acknowledged_write");
    let mut acknowledged = Vec::new();
    for (node, point) in [("dc1-n2", "node.shard.before-sync"), ("dc2-n3", "node.shard.after-sync")] {
        crash_at(&cluster, &rules, &[node], point);
        // The rule fires at the node's first shard write. A PUT refused before it wrote any shard
        // (the metadata between leaders, as right after the cluster starts) is tried again; one
        // acknowledged must have made the node crash.
        for attempt in 0.. {
            let data = rng.bytes(6 * MIB + acknowledged.len());
            let key = format!("through-{point}-{attempt}");
            let small: Vec<(String, Vec<u8>)> =
                (0..6).map(|i| (format!("{key}-small-{i}"), rng.bytes(9 * 1024 + 100 * i))).collect();
            let small_puts = small
                .iter()
                .map(|(key, data)| client.put_object().bucket("fsync-crash").key(key).body(data.clone().into()).send());
            let big_put = client.put_object().bucket("fsync-crash").key(&key).body(data.clone().into()).send();
            let (put, small_answers) = tokio::join!(big_put, futures::future::join_all(small_puts));
            for ((key, data), answer) in small.into_iter().zip(small_answers) {
                if answer.is_ok() {
                    acknowledged.push((key, data));
                }
            }
            if put.is_ok() {
                acknowledged.push((key, data));
                wait_for_crash(&cluster, &[node], Duration::from_secs(30)).await;
                break;
            }
            if crashed_within(&cluster, &[node], Duration::from_secs(5)).await.is_some() {
                break;
            }
            assert!(attempt < 5, "{node} did not crash after {attempt} refused PUTs; the last: {put:?}");
            println!("PUT {attempt} refused before {node} wrote a shard, again: {:?}", put.map(|_| ()));
        }
        rules.clear();
        for (key, data) in &acknowledged {
            assert_bytes_eq(&get_object(&client, "fsync-crash", key).await, data, &format!("{key}, {node} down"));
        }
        cluster.revive(Duration::from_secs(60));
    }
    assert!(!acknowledged.is_empty(), "a PUT with one node crashing mid-write is acknowledged (8 of 9 nodes)");
    assert!(
        acknowledged.iter().any(|(key, _)| key.contains("-small-")),
        "small PUTs sent with a node crashing mid-write are acknowledged too (their pack on 8 of 9 nodes)"
    );
    cluster.wait_until_healthy(Duration::from_secs(120));
    for client in (0..cluster.gateways.len()).map(|i| cluster.s3_client_at(i)) {
        for (key, data) in &acknowledged {
            assert_bytes_eq(&get_object(&client, "fsync-crash", key).await, data, &format!("{key} after the crashes"));
        }
    }
}

/// Bounded read buffers: every GET's stripes come from one budget per gateway (2 stripes here),
/// held until the client has taken their bytes, and a client that stops taking its answer is
/// disconnected (after 3 s here). A reader that stalls mid-body therefore makes another GET
/// wait (the budget is in force), but only until it is cut; then that GET goes through whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_reader_that_stops_taking_its_answer_is_cut_and_frees_the_read_budget() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cluster = Cluster::start_with_env(&[
        ("IGNIFUGE_GATEWAY_READ_STRIPES_IN_FLIGHT", "2"),
        ("IGNIFUGE_GATEWAY_ANSWER_STALL_MS", "3000"),
    ])
    .await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "stall").await;
    let mut rng = TestRng::new("a_reader_that_stops_taking_its_answer_is_cut_and_frees_the_read_budget");
    let big = rng.bytes(80 * MIB);
    put_object(&s3, "stall", "big", &big).await;
    let small = rng.bytes(6 * MIB);
    put_object(&s3, "stall", "small", &small).await;
    // The stalled reader asks for the big object, reads the start of the answer, then nothing.
    let url = cluster.url("/stall/big");
    let headers = cluster.sign(&cluster.keys(), std::time::SystemTime::now(), "GET", &url, &[], Payload::Bytes(b""));
    let addr = cluster.gateway_addr();
    let mut stalled = tokio::net::TcpStream::connect(&addr).await.expect("connecting");
    let head = build_request_head(&addr, "GET", "/stall/big", &headers, None);
    stalled.write_all(head.as_bytes()).await.expect("sending the GET");
    let mut start = vec![0u8; 4096];
    let n = stalled.read(&mut start).await.expect("the answer's start");
    assert!(start[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&start[..n]));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    assert_bytes_eq(&get_object(&s3, "stall", "small").await, &small, "a GET behind a stalled reader");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1000), "the read budget was not in force: the GET took {waited:?}");
    assert!(waited < Duration::from_secs(20), "the stalled reader was not cut: the GET took {waited:?}");
    // The gateway closed the stalled connection: what is left to read ends before the body does.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stalled.read_to_end(&mut rest)).await;
    let taken = n + rest.len();
    assert!(read.is_ok() && taken < big.len(), "the stalled connection got {taken} bytes, result {read:?}");
}

/// Failpoints around the metadata log's fsync. The leader crashes right after making a batch of
/// entries durable and before acknowledging it (the entries may commit under the next leader:
/// retries must apply once); then a follower crashes before making its batch durable. Writes go
/// on through both; every acknowledged write reads back, and every replica ends with one state.
#[tokio::test(flavor = "multi_thread")]
async fn voters_that_crash_around_a_log_fsync_lose_no_acknowledged_write() {
    let (mut cluster, rules) = Cluster::start_with_rules(&[]).await;
    let client = cluster.s3_client();
    create_bucket(&client, "log-crash").await;
    let mut acknowledged = Vec::new();
    let mut attempt = 0;
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).leader.expect("a leader");
    let follower = node_ids().into_iter().find(|n| *n != leader).expect("a follower");
    for (target, point) in [(leader.as_str(), "raft.log.after-sync"), (follower.as_str(), "raft.log.before-sync")] {
        crash_at(&cluster, &rules, &[target], point);
        let deadline = Instant::now() + Duration::from_secs(60);
        while pid_alive(cluster.process(target).pid) {
            assert!(Instant::now() < deadline, "{target} never reached {point}");
            let (key, body) = (format!("k{attempt}"), format!("value {attempt}"));
            attempt += 1;
            if client
                .put_object()
                .bucket("log-crash")
                .key(&key)
                .body(body.clone().into_bytes().into())
                .send()
                .await
                .is_ok()
            {
                acknowledged.push((key, body));
            }
        }
        rules.clear();
        cluster.revive(Duration::from_secs(60));
        for i in 0..5 {
            let (key, body) = (format!("after-{point}-{i}"), format!("after {i}"));
            put_object(&client, "log-crash", &key, body.as_bytes()).await;
            acknowledged.push((key, body));
        }
    }
    for (key, body) in &acknowledged {
        assert_eq!(get_object(&client, "log-crash", key).await, body.as_bytes(), "{key}");
    }
    wait_until_replicas_agree(&cluster).await;
}
