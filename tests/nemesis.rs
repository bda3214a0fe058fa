//! The nemesis (issue 12's harness): concurrent S3 clients write, overwrite, conditionally
//! write, delete, complete multipart uploads, copy objects and read a few keys through every gateway while a
//! nemesis, one fault at a time, kills -9 and freezes (SIGSTOP/SIGCONT) storage nodes, the
//! metadata leader and gateways; cuts a datacenter or the leader off from everyone else while
//! they keep running (a partition that heals); slows every link into one process; shifts a
//! process's wall clock by half a minute to seven minutes, ahead or behind; and makes a node's
//! disk refuse writes (full) or fail reads.
//! The repair service sweeps orphans with a grace of two seconds meanwhile, so a clock offset
//! makes it judge other gateways' writes in progress by a clock minutes off. Every operation
//! is recorded with its invocation, completion and outcome (ok, refused, unknown); afterwards
//! each key's history must be linearizable (`common::history`), and every acknowledged version
//! must read back byte for byte (the bucket is versioned, so no acknowledged write is ever
//! overwritten out of existence).
//!
//! `IGNIFUGE_NEMESIS_SECS` sets the length of the run (45 s by default, as in CI), and
//! `IGNIFUGE_TEST_SEED` replays one (`scripts/nemesis` runs long ones). A failure prints the seed,
//! the faults injected and the history of the key that no order explains.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use common::history::{self, Kind, Op, Outcome};
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEYS: &[&str] = &["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"];
const CLIENTS: usize = 4;
/// Bound on one operation; past it the outcome is unknown.
const OP_TIMEOUT: Duration = Duration::from_secs(25);
const BUCKET: &str = "nemesis";

/// The body of value `id`: its id in hex, then bytes derived from it (so a read checks all).
fn body_of(id: u64, len: usize) -> Vec<u8> {
    let mut out = format!("{id:016x}").into_bytes();
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
    out.truncate(len.max(16));
    out
}

/// The value a body holds, if it is a well-formed body of this test.
fn value_of(body: &[u8]) -> Option<u64> {
    let id = u64::from_str_radix(std::str::from_utf8(body.get(..16)?).ok()?, 16).ok()?;
    (body_of(id, body.len()) == body).then_some(id)
}

struct Recorder {
    start: Instant,
    ops: Mutex<Vec<Op>>,
    /// (key, version id, value id, length) of every acknowledged write.
    acknowledged: Mutex<Vec<(String, String, u64, usize)>>,
    /// Answers no S3 client should ever get.
    unexpected: Mutex<Vec<String>>,
}

impl Recorder {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn record(&self, client: usize, key: &str, kind: Kind, outcome: Outcome, invoked_ns: u64) {
        if outcome == Outcome::NotSent {
            return;
        }
        let completed_ns = (outcome != Outcome::Unknown).then(|| self.now_ns());
        let op = Op { client, key: key.to_string(), kind, outcome, invoked_ns, completed_ns };
        self.ops.lock().unwrap().push(op);
    }
}

/// How an SDK error reads in the history: refused (412/409), unknown (5xx, timeouts, dropped
/// connections), or unexpected.
fn classify<E>(error: &aws_sdk_s3::error::SdkError<E>) -> Result<Outcome, String>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let info = error_info(error);
    // Refused at connect (a killed gateway): the request never left, so it had no effect.
    if info.status.is_none() && format!("{:?}", error).contains("Connection refused") {
        return Ok(Outcome::NotSent);
    }
    match info.status {
        Some(412 | 409) => Ok(Outcome::PreconditionFailed),
        Some(s) if s >= 500 => Ok(Outcome::Unknown),
        None => Ok(Outcome::Unknown),
        Some(_) => Err(format!("{info:?}")),
    }
}

async fn timed<T>(future: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout(OP_TIMEOUT, future).await.ok()
}

/// How a write of value `id` (`len` bytes) to `key` ended: acknowledged (with its version id, kept
/// for the read-back), refused, or unknown; an answer no client should get is noted as `what`.
fn write_outcome<E>(
    recorder: &Recorder,
    answer: Option<Result<Option<String>, aws_sdk_s3::error::SdkError<E>>>,
    key: &str,
    id: u64,
    len: usize,
    what: &str,
) -> Outcome
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match answer {
        Some(Ok(version)) => {
            recorder.acknowledged.lock().unwrap().push((key.to_string(), version.unwrap_or_default(), id, len));
            Outcome::Ok
        }
        Some(Err(e)) => classify(&e).unwrap_or_else(|why| {
            recorder.unexpected.lock().unwrap().push(format!("{what}: {why}"));
            Outcome::Unknown
        }),
        None => Outcome::Unknown,
    }
}

async fn put(
    recorder: &Recorder,
    client: &aws_sdk_s3::Client,
    who: usize,
    key: &str,
    id: u64,
    len: usize,
    if_none_match: bool,
) {
    let invoked = recorder.now_ns();
    let mut request = client.put_object().bucket(BUCKET).key(key).body(ByteStream::from(body_of(id, len)));
    if if_none_match {
        request = request.if_none_match("*");
    }
    let answer = timed(request.send()).await.map(|r| r.map(|out| out.version_id().map(str::to_string)));
    let outcome = write_outcome(recorder, answer, key, id, len, &format!("PUT {key}"));
    recorder.record(who, key, Kind::Put { value: id, if_none_match }, outcome, invoked);
}

async fn multipart(recorder: &Recorder, client: &aws_sdk_s3::Client, who: usize, key: &str, id: u64) {
    let len = 5 * 1024 * 1024 + 100;
    let body = body_of(id, len);
    let Some(Ok(created)) = timed(client.create_multipart_upload().bucket(BUCKET).key(key).send()).await else {
        return;
    };
    let upload_id = created.upload_id().unwrap_or_default().to_string();
    let mut parts = Vec::new();
    for (number, range) in [(1, 0..5 * 1024 * 1024), (2, 5 * 1024 * 1024..len)] {
        let sent = client
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(body[range].to_vec()))
            .send();
        let Some(Ok(part)) = timed(sent).await else { return };
        parts.push(CompletedPart::builder().part_number(number).e_tag(part.e_tag().unwrap_or_default()).build());
    }
    let invoked = recorder.now_ns();
    let complete = client
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send();
    let answer = timed(complete).await.map(|r| r.map(|out| out.version_id().map(str::to_string)));
    let outcome = write_outcome(recorder, answer, key, id, len, &format!("CompleteMultipartUpload {key}"));
    recorder.record(who, key, Kind::Put { value: id, if_none_match: false }, outcome, invoked);
}

/// CopyObject onto `key` from a fresh source written just before (outside the checked keys, never
/// changed again), so the copy writes a value of its own: in the history it is a write of `id`.
async fn copy(recorder: &Recorder, client: &aws_sdk_s3::Client, who: usize, key: &str, id: u64) {
    let len = if id % 2 == 0 { 1500 } else { 150 * 1024 };
    let source = format!("sources/{id:x}");
    let written = client.put_object().bucket(BUCKET).key(&source).body(ByteStream::from(body_of(id, len))).send();
    let Some(Ok(_)) = timed(written).await else { return };
    let invoked = recorder.now_ns();
    let copied = client.copy_object().bucket(BUCKET).key(key).copy_source(format!("{BUCKET}/{source}")).send();
    let answer = timed(copied).await.map(|r| r.map(|out| out.version_id().map(str::to_string)));
    let outcome = write_outcome(recorder, answer, key, id, len, &format!("CopyObject {source} -> {key}"));
    recorder.record(who, key, Kind::Put { value: id, if_none_match: false }, outcome, invoked);
}

async fn delete(recorder: &Recorder, client: &aws_sdk_s3::Client, who: usize, key: &str) {
    let invoked = recorder.now_ns();
    let outcome = match timed(client.delete_object().bucket(BUCKET).key(key).send()).await {
        Some(Ok(_)) => Outcome::Ok,
        Some(Err(e)) => classify(&e).unwrap_or_else(|what| {
            recorder.unexpected.lock().unwrap().push(format!("DELETE {key}: {what}"));
            Outcome::Unknown
        }),
        None => Outcome::Unknown,
    };
    recorder.record(who, key, Kind::Delete, outcome, invoked);
}

/// A GET; answers that carry no information (5xx, timeouts) are not recorded.
async fn get(recorder: &Recorder, client: &aws_sdk_s3::Client, who: usize, key: &str) -> bool {
    let invoked = recorder.now_ns();
    let observed = match timed(client.get_object().bucket(BUCKET).key(key).send()).await {
        Some(Ok(out)) => match timed(out.body.collect()).await {
            Some(Ok(bytes)) => {
                let bytes = bytes.into_bytes();
                match value_of(&bytes) {
                    Some(id) => Some(id),
                    None => {
                        recorder
                            .unexpected
                            .lock()
                            .unwrap()
                            .push(format!("GET {key}: {} bytes of no write", bytes.len()));
                        return false;
                    }
                }
            }
            _ => return false,
        },
        Some(Err(e)) if error_info(&e).status == Some(404) => None,
        Some(Err(e)) => {
            if let Err(what) = classify(&e) {
                recorder.unexpected.lock().unwrap().push(format!("GET {key}: {what}"));
            }
            return false;
        }
        None => return false,
    };
    recorder.record(who, key, Kind::Get { observed }, Outcome::Ok, invoked);
    true
}

async fn worker(recorder: Arc<Recorder>, clients: Vec<aws_sdk_s3::Client>, who: usize, seed: u64, until: Instant) {
    let mut rng = StdRng::seed_from_u64(seed ^ (who as u64).wrapping_mul(0x5851_F42D_4C95_7F2D));
    let mut counter = 0u64;
    while Instant::now() < until {
        let client = &clients[rng.random_range(0..clients.len())];
        let key = KEYS[rng.random_range(0..KEYS.len())];
        counter += 1;
        let id = ((who as u64 + 1) << 40) | counter;
        match rng.random_range(0..100) {
            0..30 => {
                let len = if rng.random_bool(0.5) { 1000 } else { 200 * 1024 };
                put(&recorder, client, who, key, id, len, false).await;
            }
            30..40 => put(&recorder, client, who, key, id, 2000, true).await,
            40..50 => delete(&recorder, client, who, key).await,
            50..54 => multipart(&recorder, client, who, key, id).await,
            54..60 => copy(&recorder, client, who, key, id).await,
            _ => {
                get(&recorder, client, who, key).await;
            }
        }
    }
}

/// A fault the nemesis injected, for the report.
#[derive(Debug)]
struct Fault {
    at_secs: f64,
    what: String,
}

/// The faults the nemesis chooses from, one at a time.
const FAULT_KINDS: usize = 11;

/// How a fault is injected: on a process (by node id), or as a runtime rule.
enum Inject {
    Kill(String),
    Freeze(String),
    Rule(String),
}

/// Kills, freezes, partitions, shifts the clocks of and fails the disks of processes until
/// `until`, then brings everything back. Partitions, clock offsets and disk failures are rules in
/// the runtime rules file `rules` (`ignifuge_faults`), cleared at the end of each outage.
fn nemesis(cluster: &mut Cluster, rules: &Rules, seed: u64, start: Instant, until: Instant) -> Vec<Fault> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xFA17);
    let mut faults = Vec::new();
    let nodes: Vec<String> = cluster.storage_nodes().iter().map(|n| n.node_id.clone()).collect();
    let gateways: Vec<String> =
        cluster.processes.iter().filter(|p| p.role == "gateway").map(|p| p.node_id.clone()).collect();
    let everyone: Vec<String> = nodes.iter().chain(&gateways).cloned().collect();
    let listen = |cluster: &Cluster, ids: &[&str]| -> String {
        ids.iter().map(|id| cluster.process(id).listen.clone()).collect::<Vec<_>>().join(",")
    };
    while Instant::now() + Duration::from_secs(8) < until {
        std::thread::sleep(Duration::from_millis(rng.random_range(1500..4000)));
        let leader = cluster.meta_status().leader;
        let pick = |rng: &mut StdRng, from: &[String]| from[rng.random_range(0..from.len())].clone();
        let outage = Duration::from_millis(rng.random_range(2000..5000));
        let (what, fault) = match rng.random_range(0..FAULT_KINDS) {
            0 => {
                let node = pick(&mut rng, &nodes);
                (format!("kill -9 storage node {node}"), Inject::Kill(node))
            }
            1 => match &leader {
                Some(leader) => (format!("kill -9 metadata leader {leader}"), Inject::Kill(leader.clone())),
                None => continue,
            },
            2 => {
                let gateway = pick(&mut rng, &gateways);
                (format!("kill -9 gateway {gateway}"), Inject::Kill(gateway))
            }
            3 => {
                let node = pick(&mut rng, &nodes);
                (format!("freeze storage node {node}"), Inject::Freeze(node))
            }
            4 => match &leader {
                Some(leader) => (format!("freeze metadata leader {leader}"), Inject::Freeze(leader.clone())),
                None => continue,
            },
            5 => {
                // A datacenter cut off from the other two, every process of it still running.
                let dc = format!("dc{}", rng.random_range(1..=3));
                let (inside, outside): (Vec<&ProcessInfo>, Vec<&ProcessInfo>) =
                    cluster.processes.iter().partition(|p| p.datacenter == dc);
                let side = |ps: &[&ProcessInfo]| ps.iter().map(|p| p.listen.clone()).collect::<Vec<_>>().join(",");
                (
                    format!("partition {dc} from the others"),
                    Inject::Rule(format!("cut {} | {}", side(&inside), side(&outside))),
                )
            }
            6 => match &leader {
                // The leader alone on its side: it keeps running, cut off from every other process.
                Some(leader) => {
                    let others: Vec<&str> = everyone.iter().map(String::as_str).filter(|id| id != leader).collect();
                    let rule = format!("cut {} | {}", listen(cluster, &[leader]), listen(cluster, &others));
                    (format!("partition metadata leader {leader} from everyone"), Inject::Rule(rule))
                }
                None => continue,
            },
            7 => {
                // Within the internode bound (5 min) requests still pass; beyond it the process's
                // signed requests are refused, as a clock gone badly wrong would make them.
                let target = pick(&mut rng, &everyone);
                let ms = rng.random_range(30_000..420_000i64) * if rng.random_bool(0.5) { 1 } else { -1 };
                (
                    format!("clock of {target} off by {ms} ms"),
                    Inject::Rule(format!("clock {} {ms}", listen(cluster, &[&target]))),
                )
            }
            8 => {
                let target = pick(&mut rng, &nodes);
                let rule = format!("fail {} node.shard.write-error", listen(cluster, &[&target]));
                (format!("disk of {target} refuses writes (full)"), Inject::Rule(rule))
            }
            9 => {
                // Every link into one process slow (an overloaded host, a congested rack link).
                let target = pick(&mut rng, &everyone);
                let others: Vec<&str> = everyone.iter().map(String::as_str).filter(|id| **id != target).collect();
                let ms = rng.random_range(200..3000);
                let rule = format!("slow {} > {} {ms}", listen(cluster, &others), listen(cluster, &[&target]));
                (format!("links into {target} slowed by {ms} ms"), Inject::Rule(rule))
            }
            _ => {
                let target = pick(&mut rng, &nodes);
                let rule = format!("fail {} node.shard.read-error", listen(cluster, &[&target]));
                (format!("disk of {target} fails reads"), Inject::Rule(rule))
            }
        };
        faults.push(Fault { at_secs: start.elapsed().as_secs_f64(), what: format!("{what} for {outage:?}") });
        match fault {
            Inject::Kill(target) => {
                cluster.kill_node(&target);
                std::thread::sleep(outage);
                cluster.revive(Duration::from_secs(60));
            }
            Inject::Freeze(target) => {
                cluster.signal_processes(&[target.as_str()], libc::SIGSTOP);
                std::thread::sleep(outage);
                cluster.signal_processes(&[target.as_str()], libc::SIGCONT);
            }
            Inject::Rule(rule) => {
                rules.set(&format!("{rule}\n"));
                std::thread::sleep(outage);
                rules.clear();
            }
        }
    }
    cluster.wait_for_leader(Duration::from_secs(60));
    faults
}

#[tokio::test(flavor = "multi_thread")]
async fn histories_stay_linearizable_and_acknowledged_writes_survive_a_nemesis() {
    let seconds: u64 = std::env::var("IGNIFUGE_NEMESIS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(45);
    let mut rng = TestRng::new("nemesis");
    let seed = rng.next_u64();
    let (mut cluster, rules) = Cluster::start_with_rules(&[
        ("IGNIFUGE_REPAIR_INTERVAL_MS", "2000"),
        ("IGNIFUGE_ORPHAN_GRACE_MS", "2000"),
        ("IGNIFUGE_INTENT_RENEW_MS", "500"),
    ])
    .await;
    let admin_client = cluster.s3_client();
    create_bucket(&admin_client, BUCKET).await;
    let versioning = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    ok(
        admin_client.put_bucket_versioning().bucket(BUCKET).versioning_configuration(versioning).send().await,
        "enabling versioning",
    );
    let clients: Vec<aws_sdk_s3::Client> =
        (0..cluster.gateways.len()).map(|i| cluster.s3_client_no_retry_at(i)).collect();
    let recorder = Arc::new(Recorder {
        start: Instant::now(),
        ops: Default::default(),
        acknowledged: Default::default(),
        unexpected: Default::default(),
    });
    let until = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> =
        (0..CLIENTS).map(|who| tokio::spawn(worker(recorder.clone(), clients.clone(), who, seed, until))).collect();
    let start = recorder.start;
    let (cluster_back, faults) = tokio::task::spawn_blocking(move || {
        let faults = nemesis(&mut cluster, &rules, seed, start, until);
        (cluster, faults)
    })
    .await
    .expect("the nemesis");
    let cluster = cluster_back;
    for worker in workers {
        worker.await.expect("a worker");
    }
    // Everything is back: one final read of each key, retried until it answers.
    let reader = cluster.s3_client();
    for key in KEYS {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !get(&recorder, &reader, CLIENTS, key).await {
            assert!(Instant::now() < deadline, "the final read of {key} never answered");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let ops = recorder.ops.lock().unwrap().clone();
    let count = |o: Outcome| ops.iter().filter(|op| op.outcome == o).count();
    let report = format!(
        "nemesis seed {seed}, {seconds} s: {} operations ({} ok, {} refused, {} unknown), {} faults:\n{}",
        ops.len(),
        count(Outcome::Ok),
        count(Outcome::PreconditionFailed),
        count(Outcome::Unknown),
        faults.len(),
        faults.iter().map(|f| format!("  {:>6.1} s  {}", f.at_secs, f.what)).collect::<Vec<_>>().join("\n")
    );
    println!("{report}");
    let unexpected = recorder.unexpected.lock().unwrap().clone();
    assert!(unexpected.is_empty(), "{report}\nanswers no client should get:\n{unexpected:#?}");
    let anomalies = history::check(&ops);
    assert!(
        anomalies.is_empty(),
        "{report}\n{}",
        anomalies.iter().map(|a| a.to_string()).collect::<Vec<_>>().join("\n")
    );
    // Every acknowledged write, read back by its version id.
    let acknowledged = recorder.acknowledged.lock().unwrap().clone();
    for (key, version, id, len) in &acknowledged {
        let out = ok(
            reader.get_object().bucket(BUCKET).key(key).version_id(version).send().await,
            &format!("acknowledged version {version} of {key}"),
        );
        let bytes = out.body.collect().await.expect("the body").into_bytes();
        assert_bytes_eq(&bytes, &body_of(*id, *len), &format!("acknowledged version {version} of {key}"));
    }
    println!("{} acknowledged versions read back byte for byte", acknowledged.len());
    // Every version the bucket lists, whoever wrote it and whatever its client was told (a
    // commit whose answer was lost is a version too): each reads back whole, or it is a marker.
    let mut listed = 0;
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = ok(
            reader
                .list_object_versions()
                .bucket(BUCKET)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await,
            "ListObjectVersions",
        );
        for version in page.versions() {
            let (key, id) = (version.key().unwrap_or_default(), version.version_id().unwrap_or_default());
            let out = ok(
                reader.get_object().bucket(BUCKET).key(key).version_id(id).send().await,
                &format!("listed version {id} of {key}"),
            );
            let bytes = out.body.collect().await.expect("the body").into_bytes();
            assert!(value_of(&bytes).is_some(), "listed version {id} of {key} holds {} bytes of no write", bytes.len());
            listed += 1;
        }
        if !page.is_truncated().unwrap_or(false) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
    }
    assert!(listed >= acknowledged.len(), "{listed} versions listed, {} acknowledged", acknowledged.len());
    println!("{listed} listed versions read back whole");
}

fn op(key: &str, kind: Kind, outcome: Outcome, invoked: u64, completed: Option<u64>) -> Op {
    Op { client: 0, key: key.into(), kind, outcome, invoked_ns: invoked, completed_ns: completed }
}

#[test]
fn the_checker_accepts_overlapping_writes_read_in_either_order() {
    let ops = vec![
        op("k", Kind::Put { value: 1, if_none_match: false }, Outcome::Ok, 0, Some(10)),
        op("k", Kind::Put { value: 2, if_none_match: false }, Outcome::Ok, 5, Some(15)),
        op("k", Kind::Get { observed: Some(1) }, Outcome::Ok, 16, Some(20)),
    ];
    assert!(history::check(&ops).is_empty(), "2 then 1 explains the read");
}

#[test]
fn the_checker_finds_a_stale_read_and_a_lost_write() {
    let stale = vec![
        op("k", Kind::Put { value: 1, if_none_match: false }, Outcome::Ok, 0, Some(10)),
        op("k", Kind::Put { value: 2, if_none_match: false }, Outcome::Ok, 11, Some(20)),
        op("k", Kind::Get { observed: Some(1) }, Outcome::Ok, 21, Some(30)),
    ];
    assert_eq!(history::check(&stale).len(), 1);
    let lost = vec![
        op("k", Kind::Put { value: 1, if_none_match: false }, Outcome::Ok, 0, Some(10)),
        op("k", Kind::Get { observed: None }, Outcome::Ok, 11, Some(20)),
    ];
    assert_eq!(history::check(&lost).len(), 1);
}

#[test]
fn the_checker_lets_unknown_writes_happen_late_or_never_and_checks_conditions() {
    let late = vec![
        op("k", Kind::Put { value: 7, if_none_match: false }, Outcome::Unknown, 0, None),
        op("k", Kind::Get { observed: None }, Outcome::Ok, 50, Some(60)),
        op("k", Kind::Get { observed: Some(7) }, Outcome::Ok, 70, Some(80)),
    ];
    assert!(history::check(&late).is_empty());
    let never = vec![
        op("k", Kind::Put { value: 7, if_none_match: false }, Outcome::Unknown, 0, None),
        op("k", Kind::Get { observed: None }, Outcome::Ok, 50, Some(60)),
    ];
    assert!(history::check(&never).is_empty());
    let both_created = vec![
        op("k", Kind::Put { value: 1, if_none_match: true }, Outcome::Ok, 0, Some(10)),
        op("k", Kind::Put { value: 2, if_none_match: true }, Outcome::Ok, 11, Some(20)),
    ];
    assert_eq!(history::check(&both_created).len(), 1, "two If-None-Match creations in a row");
    let refused_on_nothing = vec![
        op("k", Kind::Delete, Outcome::Ok, 0, Some(10)),
        op("k", Kind::Put { value: 3, if_none_match: true }, Outcome::PreconditionFailed, 11, Some(20)),
    ];
    assert_eq!(history::check(&refused_on_nothing).len(), 1, "a 412 with no object");
}
