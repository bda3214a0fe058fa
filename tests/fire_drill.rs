//! The site-fire drill (issue 5), end to end on real processes: a datacenter burns (kill -9 of
//! every process, data directories deleted) under a read/write workload, then a node more;
//! nothing acknowledged is lost, reads and writes resume after a short failover window, the
//! datacenter comes back as empty nodes and the repair service restores every stripe to its full
//! budget by itself. Also: bit rot found by the scrubber and repaired, and the reclaiming of
//! shards no metadata references (crashed writes, stray copies).

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

/// Repair rounds every second; a node unreachable for 3 s is out (its shards are rebuilt).
const FAST_REPAIR: [(&str, &str); 3] = [
    ("IGNIFUGE_REPAIR_INTERVAL_MS", "1000"),
    ("IGNIFUGE_REPAIR_DOWN_OUT_MS", "3000"),
    ("IGNIFUGE_ORPHAN_GRACE_MS", "30000"),
];

/// Objects of mixed sizes: inline (a few bytes), one partial stripe, several stripes, and a
/// multipart object.
async fn write_corpus(s3: &aws_sdk_s3::Client, bucket: &str, rng: &mut TestRng) -> Vec<(String, Vec<u8>)> {
    let mut corpus = Vec::new();
    for (i, size) in [5, 1000, 64 * 1024 + 1, 300_000, 3 * MIB, 11 * MIB + 7, 24 * MIB].into_iter().enumerate() {
        let key = format!("corpus/{i}-{size}");
        let data = rng.bytes(size);
        put_object(s3, bucket, &key, &data).await;
        corpus.push((key, data));
    }
    let key = "corpus/multipart".to_string();
    let upload = ok(s3.create_multipart_upload().bucket(bucket).key(&key).send().await, "create upload");
    let id = upload.upload_id().expect("upload id").to_string();
    let mut data = Vec::new();
    let mut parts = Vec::new();
    for (number, size) in [(1, 5 * MIB), (2, 5 * MIB), (3, 2 * MIB + 3)] {
        let part = rng.bytes(size);
        let sent = s3
            .upload_part()
            .bucket(bucket)
            .key(&key)
            .upload_id(&id)
            .part_number(number)
            .body(ByteStream::from(part.clone()))
            .send()
            .await;
        let etag = ok(sent, "upload part").e_tag().expect("part etag").to_string();
        parts.push(CompletedPart::builder().part_number(number).e_tag(etag).build());
        data.extend_from_slice(&part);
    }
    let done = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
    ok(
        s3.complete_multipart_upload().bucket(bucket).key(&key).upload_id(&id).multipart_upload(done).send().await,
        "complete upload",
    );
    corpus.push((key, data));
    corpus
}

async fn verify(s3: &aws_sdk_s3::Client, bucket: &str, objects: &[(String, Vec<u8>)], context: &str) {
    for (key, data) in objects {
        assert_bytes_eq(&get_object(s3, bucket, key).await, data, &format!("{context}: {key}"));
    }
}

/// What a bounded background workload saw.
#[derive(Default)]
struct WorkloadLog {
    /// Acknowledged writes: key and MD5 of the body.
    acked: Vec<(String, String)>,
    read_errors: Vec<(Instant, String)>,
    write_errors: Vec<(Instant, String)>,
    reads: usize,
    /// Start and duration of every operation that took longer than a second.
    slow: Vec<(Instant, Duration)>,
}

/// PUTs small objects and GETs earlier ones until stopped, at most `OPS_MAX` operations or
/// `DURATION_MAX`, through one gateway with SDK retries off (so every failure is seen).
fn start_workload(
    client: aws_sdk_s3::Client,
    bucket: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<WorkloadLog> {
    const OPS_MAX: usize = 3000;
    const DURATION_MAX: Duration = Duration::from_secs(600);
    tokio::spawn(async move {
        let mut rng = TestRng::new("fire drill workload");
        let mut log = WorkloadLog::default();
        let started = Instant::now();
        for i in 0..OPS_MAX {
            if stop.load(Ordering::Relaxed) || started.elapsed() > DURATION_MAX {
                break;
            }
            let size = 4096 + (rng.next_u64() % (150 * 1024)) as usize;
            let data = rng.bytes(size);
            let key = format!("workload/{i}");
            let put_started = Instant::now();
            let put = client.put_object().bucket(bucket).key(&key).body(ByteStream::from(data.clone())).send().await;
            if put_started.elapsed() > Duration::from_secs(1) {
                log.slow.push((put_started, put_started.elapsed()));
            }
            match put {
                Ok(_) => log.acked.push((key, md5_hex(&data))),
                Err(e) => log.write_errors.push((Instant::now(), format!("{:?}", error_info(&e)))),
            }
            if let Some((key, md5)) = log.acked.get((rng.next_u64() as usize) % log.acked.len().max(1)).cloned() {
                log.reads += 1;
                let get_started = Instant::now();
                let got = match client.get_object().bucket(bucket).key(&key).send().await {
                    Ok(out) => out.body.collect().await.map(|b| b.into_bytes().to_vec()).map_err(|e| e.to_string()),
                    Err(e) => Err(format!("{:?}", error_info(&e))),
                };
                if get_started.elapsed() > Duration::from_secs(1) {
                    log.slow.push((get_started, get_started.elapsed()));
                }
                match got {
                    Ok(bytes) if md5_hex(&bytes) == md5 => {}
                    Ok(_) => panic!("workload read of {key} returned other bytes"),
                    Err(e) => log.read_errors.push((Instant::now(), format!("{key}: {e}"))),
                }
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        log
    })
}

fn last_after(errors: &[(Instant, String)], fire: Instant) -> Option<Duration> {
    errors.iter().filter(|(t, _)| *t >= fire).map(|(t, _)| *t - fire).max()
}

#[tokio::test(flavor = "multi_thread")]
async fn fire_drill() {
    let mut cluster = Cluster::start_with_env(&FAST_REPAIR).await;
    let mut rng = TestRng::new("fire_drill");
    // Burn the metadata leader's datacenter: the hardest case.
    let status = cluster.wait_for_leader(Duration::from_secs(30));
    let burned = status.leader_datacenter.clone().expect("leader datacenter");
    let survivors: Vec<String> =
        ["dc1", "dc2", "dc3"].iter().filter(|dc| **dc != burned).map(|s| s.to_string()).collect();
    let s3 = cluster.s3_client_at(cluster.gateway_index(&survivors[0]));
    let s3_other = cluster.s3_client_at(cluster.gateway_index(&survivors[1]));
    create_bucket(&s3, "drill").await;
    let corpus = write_corpus(&s3, "drill", &mut rng).await;
    cluster.wait_until_healthy(Duration::from_secs(60));

    let stop = Arc::new(AtomicBool::new(false));
    let workload =
        start_workload(cluster.s3_client_no_retry_at(cluster.gateway_index(&survivors[1])), "drill", stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The fire: kill -9 of every process of the datacenter, its disks gone.
    let fire = Instant::now();
    let out = cluster.cli("drill", &["fire", "--datacenter", &burned]);
    println!("{out}");
    for n in 1..=3 {
        let dir = cluster.process(&format!("{burned}-n{n}")).data_dir.clone().expect("node data dir");
        assert!(!dir.exists(), "{} still exists after the fire", dir.display());
    }
    cluster.wait_for_leader(Duration::from_secs(30));
    verify(&s3, "drill", &corpus, "after the fire").await;
    verify(&s3_other, "drill", &corpus, "after the fire, other gateway").await;

    // One more node in another datacenter (budget: 1 datacenter + 1 node), a metadata voter
    // like every node: 5 of the 9 voters are left, a quorum.
    let extra = format!("{}-n2", survivors[1]);
    cluster.kill_node(&extra);
    verify(&s3, "drill", &corpus, &format!("after the fire and the loss of {extra}")).await;

    // Writes follow the outage policy (degrade, down to any 2 nodes): accepted, with debt.
    let during = rng.bytes(10 * MIB);
    put_object(&s3, "drill", "during-the-fire", &during).await;
    let report = cluster.durability();
    assert_eq!(report["healthy"], false, "{report:#}");
    println!("durability during the outage: {:#}", report["problems"]);

    // The datacenter comes back as empty nodes (and the extra node with its disk).
    let out = cluster.cli("drill", &["replace", "--datacenter", &burned]);
    println!("{out}");
    cluster.reload_processes();
    // Empty nodes answering again must not make the cluster look healthy before a survey.
    let report = cluster.durability();
    assert_eq!(report["healthy"], false, "healthy right after empty nodes replaced burned ones: {report:#}");
    let repair_started = Instant::now();
    let report = cluster.wait_until_healthy(Duration::from_secs(240));
    println!(
        "full protection {:.1} s after the replacement; last round: {:#}",
        repair_started.elapsed().as_secs_f64(),
        report["repair"]
    );
    assert_eq!(report["debt_stripes"], 0, "{report:#}");
    assert_eq!(report["repair"]["stripes_below_budget"], 0, "{report:#}");
    for n in 1..=3 {
        let node = format!("{burned}-n{n}");
        assert!(!cluster.shard_files(&node).is_empty(), "{node} was refilled by the repair service");
    }
    for index in 0..cluster.gateways.len() {
        let client = cluster.s3_client_at(index);
        verify(&client, "drill", &corpus, &format!("after the repair, gateway {index}")).await;
        assert_bytes_eq(&get_object(&client, "drill", "during-the-fire").await, &during, "written during the fire");
    }

    stop.store(true, Ordering::Relaxed);
    let log = workload.await.expect("workload task");
    let read_window = last_after(&log.read_errors, fire);
    let write_window = last_after(&log.write_errors, fire);
    // Operations stalled by the failover (the gateways retry the metadata until a new leader is
    // elected, so clients see latency rather than errors).
    let stalled: Vec<(f64, f64)> =
        log.slow.iter().map(|(t, d)| (t.saturating_duration_since(fire).as_secs_f64(), d.as_secs_f64())).collect();
    println!("operations over 1 s (seconds after the fire, duration): {stalled:?}");
    println!(
        "workload: {} writes acknowledged, {} write errors, {} reads, {} read errors; last read error {:?} and last \
         write error {:?} after the fire",
        log.acked.len(),
        log.write_errors.len(),
        log.reads,
        log.read_errors.len(),
        read_window,
        write_window
    );
    assert!(log.read_errors.iter().all(|(t, _)| *t >= fire), "read errors before the fire: {:?}", log.read_errors);
    assert!(log.write_errors.iter().all(|(t, _)| *t >= fire), "write errors before the fire: {:?}", log.write_errors);
    // The failover window: the metadata elects a new leader (heartbeat 250 ms, election 1-2 s).
    const WINDOW_MAX: Duration = Duration::from_secs(20);
    assert!(
        read_window.is_none_or(|w| w < WINDOW_MAX),
        "reads failed {read_window:?} after the fire: {:?}",
        log.read_errors
    );
    assert!(
        write_window.is_none_or(|w| w < WINDOW_MAX),
        "writes failed {write_window:?} after the fire: {:?}",
        log.write_errors
    );
    assert!(log.acked.len() > 20, "the workload made progress: {} writes", log.acked.len());
    // Every acknowledged write survived.
    for (key, md5) in &log.acked {
        let bytes = get_object(&s3, "drill", key).await;
        assert_eq!(md5_hex(&bytes), *md5, "acknowledged write {key}");
    }
}

/// The whole budget at once, held: a datacenter burns (the metadata leader's), then the node
/// that became the leader dies too (a storage node and a metadata voter), and with repair held
/// off every object acknowledged before, and every write of a workload that ran through the
/// failures, reads back byte for byte while they are all still down.
#[tokio::test(flavor = "multi_thread")]
async fn a_datacenter_and_the_next_leader_down_lose_nothing_without_repair() {
    let cluster = Cluster::start_with_env(&[("IGNIFUGE_REPAIR_INTERVAL_MS", "3600000")]).await;
    let mut rng = TestRng::new("a_datacenter_and_the_next_leader_down_lose_nothing_without_repair");
    let status = cluster.wait_for_leader(Duration::from_secs(30));
    let burned = status.leader_datacenter.clone().expect("leader datacenter");
    let survivors: Vec<String> =
        ["dc1", "dc2", "dc3"].iter().filter(|dc| **dc != burned).map(|s| s.to_string()).collect();
    let s3 = cluster.s3_client_at(cluster.gateway_index(&survivors[0]));
    create_bucket(&s3, "held").await;
    let corpus = write_corpus(&s3, "held", &mut rng).await;
    let stop = Arc::new(AtomicBool::new(false));
    let workload =
        start_workload(cluster.s3_client_no_retry_at(cluster.gateway_index(&survivors[1])), "held", stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!("{}", cluster.cli("drill", &["fire", "--datacenter", &burned]));
    let after_fire = cluster.wait_for_leader(Duration::from_secs(30));
    let next_leader = after_fire.leader.clone().expect("a leader after the fire");
    assert!(!next_leader.starts_with(&burned), "{next_leader} leads although {burned} burned");
    cluster.kill_node(&next_leader);
    let status = cluster.wait_for_leader(Duration::from_secs(30));
    println!("{burned} burned and {next_leader} killed: {}", status.summary());
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let log = workload.await.expect("workload task");
    println!(
        "workload: {} writes acknowledged, {} write errors, {} read errors",
        log.acked.len(),
        log.write_errors.len(),
        log.read_errors.len()
    );
    assert!(log.acked.len() > 20, "the workload made progress: {} writes", log.acked.len());

    // Repair is held off (its first round is an hour away): every read below decodes around the
    // lost shards, and the outage is reported.
    let report = cluster.durability();
    assert_ne!(report["healthy"], true, "{report:#}");
    for client in [s3.clone(), cluster.s3_client_at(cluster.gateway_index(&survivors[1]))] {
        verify(&client, "held", &corpus, "with a datacenter and a voter down").await;
        for (key, md5) in &log.acked {
            assert_eq!(md5_hex(&get_object(&client, "held", key).await), *md5, "acknowledged write {key}");
        }
    }
}

/// True when a shard file (32-byte BLAKE3 hash, then the bytes) is intact.
fn shard_file_intact(path: &std::path::Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else { return false };
    bytes.len() >= 32 && blake3::hash(&bytes[32..]).as_bytes() == &bytes[..32]
}

#[tokio::test(flavor = "multi_thread")]
async fn scrub_finds_bit_rot_and_repair_rewrites_it() {
    let mut env = FAST_REPAIR.to_vec();
    env.push(("IGNIFUGE_SCRUB_INTERVAL_MS", "1500"));
    let cluster = Cluster::start_with_env(&env).await;
    let mut rng = TestRng::new("scrub_finds_bit_rot_and_repair_rewrites_it");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "rot").await;
    let mut objects = Vec::new();
    for i in 0..3 {
        let data = rng.bytes(6 * MIB + i);
        put_object(&s3, "rot", &format!("object-{i}"), &data).await;
        objects.push((format!("object-{i}"), data));
    }
    cluster.wait_until_healthy(Duration::from_secs(60));

    // Bit rot on two nodes of two datacenters: at most 2 of the 9 shards of any stripe.
    let mut rotten = Vec::new();
    for node in ["dc1-n2", "dc3-n3"] {
        for file in cluster.shard_files(node) {
            flip_bytes_in_middle(&file, 16);
            rotten.push(file);
        }
    }
    assert!(rotten.len() >= 6, "the objects have shards on both nodes: {rotten:?}");
    assert!(rotten.iter().all(|f| !shard_file_intact(f)));
    verify(&s3, "rot", &objects, "GET over rotten shards").await;

    // The scrubber quarantines what the reads did not touch; the repair service rewrites it all.
    let deadline = Instant::now() + Duration::from_secs(120);
    let report = loop {
        let report = cluster.durability();
        let found: u64 = report["scrub"]
            .as_array()
            .expect("scrub list")
            .iter()
            .map(|n| n["status"]["corrupt_found"].as_u64().unwrap_or(0))
            .sum();
        if found as usize >= rotten.len() && report["healthy"] == true {
            break report;
        }
        assert!(Instant::now() < deadline, "bit rot not repaired in time: {report:#}\n{}", cluster.log_tails(10));
        std::thread::sleep(Duration::from_millis(500));
    };
    println!("after the repair: {:#}", report["repair"]);
    for file in &rotten {
        assert!(shard_file_intact(file), "{} was rewritten intact by the repair service", file.display());
    }
    verify(&s3, "rot", &objects, "GET after the repair").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shards_no_metadata_references_are_reclaimed_after_the_grace_period() {
    let cluster = Cluster::start_with_env(&FAST_REPAIR).await;
    let mut rng = TestRng::new("shards_no_metadata_references_are_reclaimed_after_the_grace_period");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "orphans").await;
    let data = rng.bytes(6 * MIB);
    put_object(&s3, "orphans", "kept", &data).await;
    cluster.wait_until_healthy(Duration::from_secs(60));

    let backdate = |path: &std::path::Path| {
        let status = std::process::Command::new("touch").arg("-d").arg("2 hours ago").arg(path).status().unwrap();
        assert!(status.success());
    };
    let write_shard = |dir: std::path::PathBuf, name: &str, bytes: &[u8]| {
        std::fs::create_dir_all(&dir).unwrap();
        let mut file = blake3::hash(bytes).as_bytes().to_vec();
        file.extend_from_slice(bytes);
        let path = dir.join(name);
        std::fs::write(&path, file).unwrap();
        path
    };
    // What a gateway that crashed mid-PUT leaves: shards of a blob no metadata names.
    let shards = cluster.shards_dir("dc2-n1");
    let crashed = write_shard(shards.join("ab").join("ab00c0ffee"), "0.1", &rng.bytes(1000));
    backdate(&crashed);
    backdate(crashed.parent().unwrap());
    // A write still in progress (recent files) must be left alone.
    let fresh = write_shard(shards.join("ab").join("ab00beef"), "0.2", &rng.bytes(1000));
    // A stray copy of a live blob's shard on a node the metadata does not name for it.
    let source = cluster.shard_files("dc1-n1").into_iter().next().expect("dc1-n1 holds a shard");
    let relative = source.strip_prefix(cluster.shards_dir("dc1-n1")).unwrap().to_path_buf();
    let holders: Vec<String> =
        ["dc1-n1", "dc1-n2", "dc1-n3", "dc2-n1", "dc2-n2", "dc2-n3", "dc3-n1", "dc3-n2", "dc3-n3"]
            .iter()
            .map(|n| n.to_string())
            .collect();
    let stray_node = holders
        .iter()
        .find(|n| !cluster.shards_dir(n).join(&relative).exists())
        .expect("some node does not hold that shard");
    let stray = cluster.shards_dir(stray_node).join(&relative);
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::copy(&source, &stray).unwrap();
    backdate(&stray);

    let deadline = Instant::now() + Duration::from_secs(60);
    while crashed.exists() || stray.exists() {
        assert!(
            Instant::now() < deadline,
            "not reclaimed: crashed write {} / stray copy {}\n{}",
            crashed.exists(),
            stray.exists(),
            cluster.log_tails(10)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(fresh.exists(), "a recent unreferenced shard (a write in progress) was deleted");
    assert!(source.exists(), "the referenced copy was kept");
    assert_bytes_eq(&get_object(&s3, "orphans", "kept").await, &data, "the object after the sweep");
}

/// A node that died for good is rebuilt at once when an operator declares it out, rather than
/// after the down-out interval (10 min by default, kept here).
#[tokio::test(flavor = "multi_thread")]
async fn a_node_declared_out_is_rebuilt_without_waiting_for_the_down_out_interval() {
    let cluster = Cluster::start_with_env(&[("IGNIFUGE_REPAIR_INTERVAL_MS", "1000")]).await;
    let mut rng = TestRng::new("a_node_declared_out_is_rebuilt_without_waiting_for_the_down_out_interval");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "out").await;
    let data = rng.bytes(12 * MIB);
    put_object(&s3, "out", "object", &data).await;
    cluster.wait_until_healthy(Duration::from_secs(60));
    let others: Vec<String> = ["dc1-n1", "dc1-n2", "dc1-n3", "dc2-n1", "dc2-n2", "dc3-n1", "dc3-n2", "dc3-n3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let files_before: usize = others.iter().map(|n| cluster.shard_files(n).len()).sum();

    cluster.kill_node("dc2-n3");
    // Down, not out: its shards are waited for.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let report = cluster.durability();
        if report["repair"]["stripes_waiting"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the lost node's stripes are not reported waiting: {report:#}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = cluster.admin(&["node", "out", "dc2-n3"]);
    assert!(out.contains("declared out"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let report = cluster.durability();
        let repair = &report["repair"];
        let files_now: usize = others.iter().map(|n| cluster.shard_files(n).len()).sum();
        if repair["stripes_waiting"] == 0 && files_now >= files_before + 3 {
            // 3 stripes lost one shard each; each was rebuilt on another node.
            assert_eq!(repair["stripes_unreadable"], 0, "{report:#}");
            break;
        }
        assert!(Instant::now() < deadline, "shards of the node declared out not rebuilt: {report:#}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_bytes_eq(&get_object(&s3, "out", "object").await, &data, "after the rebuild");
    // Not healthy while the node is gone, but nothing is waiting on it any more.
    assert_eq!(cluster.durability()["healthy"], false);
}
