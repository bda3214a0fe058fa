//! The metadata replicated by Raft, end to end (issues 4, 12): every node a voter, 3 per datacenter,
//! gateways that
//! follow the leader. A burning leader datacenter loses no acknowledged write and the survivors
//! take writes again within seconds; conditional writes (If-None-Match: *, If-Match) stay
//! linearizable across the three gateways; a minority of voters never accepts a write.
//!
//! Every object here is small (up to 4 KiB) and its clusters keep objects up to 4 KiB inline in
//! the metadata (`INLINE_SMALL`: the default inlines up to 1 KiB and packs the rest), so these
//! tests exercise the metadata alone.
//!
//! The tests of this file run one at a time (`SERIAL`): each kills and restarts processes and
//! measures failover times, which several clusters sharing two cores at once would distort.

mod common;

/// Objects up to 4 KiB inline in the metadata, as every object of these tests.
const INLINE_SMALL: (&str, &str) = ("IGNIFUGE_INLINE_MAX_BYTES", "4096");

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use common::*;
use tokio::task::JoinSet;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const DATACENTERS: [&str; 3] = ["dc1", "dc2", "dc3"];
/// Bound on waiting for a metadata leader, for a write to go through again, for voters to
/// catch up, and for restarted processes to come back.
const RECOVERY_BOUND: Duration = Duration::from_secs(30);
/// Bound on one S3 request the test expects an answer to (the gateway itself gives up on the
/// metadata after 15 s, plus one internode timeout of 10 s).
const REQUEST_BOUND: Duration = Duration::from_secs(90);

/// Runs `task(item)` for every item, at most `concurrency` at a time; a panic in a task is
/// re-raised here with its own message.
async fn for_each_concurrent<T, F, Fut>(concurrency: usize, items: Vec<T>, task: F)
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut running = JoinSet::new();
    for item in items {
        if running.len() >= concurrency {
            join_one(&mut running).await;
        }
        running.spawn(task(item));
    }
    while !running.is_empty() {
        join_one(&mut running).await;
    }
}

async fn join_one<T: 'static>(running: &mut JoinSet<T>) -> T {
    match running.join_next().await.expect("a task is running") {
        Ok(value) => value,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => panic!("task failed: {error}"),
    }
}

/// `count` objects of 1-4 KiB of random bytes, named `prefix` + a zero-padded number.
fn small_objects(rng: &mut TestRng, prefix: &str, count: usize) -> Vec<(String, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let len = 1024 + (rng.next_u64() % (3 * 1024 + 1)) as usize;
            (format!("{prefix}{i:04}"), rng.bytes(len))
        })
        .collect()
}

/// Pairs every object with a client, round-robin.
fn spread(clients: &[aws_sdk_s3::Client], objects: &[(String, Vec<u8>)]) -> Vec<(aws_sdk_s3::Client, String, Vec<u8>)> {
    objects
        .iter()
        .enumerate()
        .map(|(i, (key, data))| (clients[i % clients.len()].clone(), key.clone(), data.clone()))
        .collect()
}

/// PUTs every object, `concurrency` at a time, spread round-robin over `clients`; checks each ETag.
async fn put_all(clients: &[aws_sdk_s3::Client], bucket: &str, objects: &[(String, Vec<u8>)], concurrency: usize) {
    let items = spread(clients, objects);
    let bucket = bucket.to_owned();
    for_each_concurrent(concurrency, items, |(client, key, data)| {
        let bucket = bucket.clone();
        async move {
            let etag = put_object(&client, &bucket, &key, &data).await;
            assert_eq!(etag, etag_of(&data), "ETag of PutObject {bucket}/{key}");
        }
    })
    .await;
}

/// GETs every object, `concurrency` at a time, spread round-robin over `clients`, and compares
/// the bytes and ETag with what was written.
async fn get_all(
    clients: &[aws_sdk_s3::Client],
    bucket: &str,
    objects: &[(String, Vec<u8>)],
    concurrency: usize,
    context: &str,
) {
    let items = spread(clients, objects);
    let bucket = bucket.to_owned();
    let context = context.to_owned();
    for_each_concurrent(concurrency, items, |(client, key, data)| {
        let bucket = bucket.clone();
        let context = context.clone();
        async move {
            let output = ok(
                client.get_object().bucket(&bucket).key(&key).send().await,
                &format!("{context}: GetObject {bucket}/{key}"),
            );
            assert_eq!(output.e_tag(), Some(etag_of(&data).as_str()), "{context}: ETag of {bucket}/{key}");
            let body = output.body.collect().await.expect("GetObject body").into_bytes();
            assert_bytes_eq(&body, &data, &format!("{context}: GetObject {bucket}/{key}"));
        }
    })
    .await;
}

/// Every key under `prefix`, through ListObjectsV2 pages of at most `page_size` keys; checks
/// that the pages are in order, never overlap and respect MaxKeys. Returns (keys, pages).
async fn list_paginated(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    page_size: i32,
    context: &str,
) -> (Vec<String>, usize) {
    let mut keys: Vec<String> = Vec::new();
    let mut token: Option<String> = None;
    for page_number in 1..=1000 {
        let page = ok(
            client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .max_keys(page_size)
                .set_continuation_token(token.clone())
                .send()
                .await,
            &format!("{context}: ListObjectsV2 {bucket} prefix {prefix} page {page_number}"),
        );
        let page_keys: Vec<String> = page.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
        assert!(
            page_keys.len() <= page_size as usize,
            "{context}: page {page_number} has {} keys, MaxKeys was {page_size}",
            page_keys.len()
        );
        if let Some(count) = page.key_count() {
            assert_eq!(count as usize, page_keys.len(), "{context}: KeyCount of page {page_number}");
        }
        for key in &page_keys {
            if let Some(last) = keys.last() {
                assert!(key > last, "{context}: page {page_number} lists {key:?} after {last:?}");
            }
            keys.push(key.clone());
        }
        if page.is_truncated() == Some(true) {
            token = Some(
                page.next_continuation_token()
                    .unwrap_or_else(|| panic!("{context}: truncated page {page_number} without NextContinuationToken"))
                    .to_owned(),
            );
        } else {
            return (keys, page_number);
        }
    }
    panic!("{context}: ListObjectsV2 {bucket} did not end after 1000 pages");
}

/// The leader every voter agrees on in one `admin status --json` snapshot: every voter is
/// reachable, names the same leader in the same term, and that voter is in state Leader.
/// Returns its node name and its own status.
fn agreed_leader(status: &MetaStatus) -> Option<(String, RaftStatus)> {
    let views: Vec<&RaftStatus> =
        status.voters().map(|v| v.status.as_ref().filter(|_| v.reachable)).collect::<Option<Vec<_>>>()?;
    let leader = views.first()?.leader?;
    let term = views.first()?.term;
    if !views.iter().all(|s| s.leader == Some(leader) && s.term == term) {
        return None;
    }
    let voter = status.voters().find(|v| v.status.as_ref().is_some_and(|s| s.id == leader))?;
    let own = voter.status.clone()?;
    (own.state == "Leader").then(|| (voter.node.clone(), own))
}

/// Polls `admin status --json` until every voter follows one and the same leader and has
/// applied at least what that leader has applied (in one and the same snapshot). Prints every
/// snapshot in which `admin status` named as leader a voter that the others do not follow.
fn wait_until_voters_caught_up(cluster: &Cluster, timeout: Duration) -> MetaStatus {
    let deadline = Instant::now() + timeout;
    loop {
        let status = cluster.meta_status();
        let claimants: Vec<String> = status
            .voters()
            .filter(|v| v.reachable && v.status.as_ref().is_some_and(|s| s.state == "Leader"))
            .map(|v| format!("{} (term {})", v.node, v.status.as_ref().map_or(0, |s| s.term)))
            .collect();
        if claimants.len() > 1 {
            println!("admin status: several voters claim leadership: {claimants:?}; it names {:?}", status.leader);
        }
        if let Some((leader, own)) = agreed_leader(&status) {
            assert_eq!(
                status.leader.as_deref(),
                Some(leader.as_str()),
                "admin status names another leader than the one every voter follows:\n{}",
                status.raw
            );
            let target = own.applied_index;
            if status.voters().all(|v| v.status.as_ref().and_then(|s| s.applied_index) >= target) {
                return status;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the voters did not all follow one leader and reach its applied index within {timeout:?}; last \
             status: {}\n{}",
            status.summary(),
            status.raw
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// PUTs small objects through `client` (no SDK retries) until one is acknowledged, for at most
/// `bound` from `since`. Returns the acknowledged key and the number of attempts; panics with
/// every failed answer otherwise.
async fn first_acknowledged_write(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    since: Instant,
    bound: Duration,
) -> (String, Vec<u8>, usize) {
    let mut failures: Vec<String> = Vec::new();
    for attempt in 1..=1000 {
        let remaining = bound.saturating_sub(since.elapsed());
        assert!(
            !remaining.is_zero(),
            "no write was acknowledged within {bound:?} ({} attempts): {failures:#?}",
            attempt - 1
        );
        let key = format!("{prefix}{attempt:04}");
        let data = format!("probe {attempt} of {prefix}").into_bytes();
        let started = Instant::now();
        let request = client.put_object().bucket(bucket).key(&key).body(ByteStream::from(data.clone())).send();
        match tokio::time::timeout(remaining, request).await {
            Ok(Ok(output)) => {
                assert_eq!(output.e_tag(), Some(etag_of(&data).as_str()), "ETag of PutObject {bucket}/{key}");
                return (key, data, attempt);
            }
            Ok(Err(error)) => {
                let info = error_info(&error);
                failures.push(format!(
                    "attempt {attempt} after {:?} ({:?}): HTTP {:?} {:?}",
                    since.elapsed(),
                    started.elapsed(),
                    info.status,
                    info.code
                ));
                // A refused connection answers at once; do not spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => failures.push(format!("attempt {attempt}: no answer within the remaining {remaining:?}")),
        }
    }
    panic!("no write acknowledged after 1000 attempts: {failures:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_keeps_every_acknowledged_write() {
    const BUCKET: &str = "failover";
    let _serial = SERIAL.lock().await;
    let mut rng = TestRng::new("failover_keeps_every_acknowledged_write");
    let mut cluster = Cluster::start_with_env(&[INLINE_SMALL]).await;
    let dc1 = cluster.s3_client();
    create_bucket(&dc1, BUCKET).await;

    // 500 acknowledged writes through dc1's gateway, 16 at a time.
    let objects = small_objects(&mut rng, "obj/", 500);
    put_all(std::slice::from_ref(&dc1), BUCKET, &objects, 16).await;

    // Burn the leader's datacenter: its 3 storage nodes (one of them the leader) and its gateway.
    let before = cluster.wait_for_leader(RECOVERY_BOUND);
    let leader_dc = before.leader_datacenter.clone().expect("leader datacenter");
    println!("before the failure: {}", before.summary());
    let doomed: Vec<String> =
        cluster.processes.iter().filter(|p| p.datacenter == leader_dc).map(|p| p.node_id.clone()).collect();
    assert_eq!(doomed.len(), 4, "3 nodes and a gateway in {leader_dc}: {doomed:?}");
    let survivors: Vec<usize> =
        DATACENTERS.iter().filter(|dc| **dc != leader_dc).map(|dc| cluster.gateway_index(dc)).collect();
    assert_eq!(survivors.len(), 2, "two datacenters survive {leader_dc}");
    let survivor_clients: Vec<aws_sdk_s3::Client> = survivors.iter().map(|&i| cluster.s3_client_at(i)).collect();
    let probe_client = cluster.s3_client_no_retry_at(survivors[0]);
    cluster.kill_processes(&doomed.iter().map(String::as_str).collect::<Vec<_>>());
    let killed_at = Instant::now();
    println!("kill -9 of every process of {leader_dc}: {doomed:?}");

    // Time until the first acknowledged write through a surviving gateway.
    let (probe_key, probe_data, attempts) =
        first_acknowledged_write(&probe_client, BUCKET, "probe/", killed_at, RECOVERY_BOUND).await;
    let failover = killed_at.elapsed();
    println!(
        "failover: {} ms (first write acknowledged by {} after {attempts} attempt(s))",
        failover.as_millis(),
        cluster.gateways[survivors[0]]
    );
    let after = cluster.wait_for_leader(RECOVERY_BOUND);
    println!("after the failure: {}", after.summary());
    assert_ne!(after.leader_datacenter.as_deref(), Some(leader_dc.as_str()), "the leader left the burnt datacenter");

    // Every acknowledged write is still there, byte for byte, through both surviving gateways.
    get_all(&survivor_clients, BUCKET, &objects, 16, &format!("after losing {leader_dc}")).await;
    assert_bytes_eq(
        &get_object(&survivor_clients[1], BUCKET, &probe_key).await,
        &probe_data,
        "the failover probe, through the other surviving gateway",
    );
    let (listed, pages) =
        list_paginated(&survivor_clients[0], BUCKET, "obj/", 100, &format!("after losing {leader_dc}")).await;
    let expected: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(listed, expected, "ListObjectsV2 of obj/ after losing {leader_dc}");
    assert!(pages >= 5, "500 keys in pages of 100 take at least 5 pages, got {pages}");

    // The survivors take writes.
    let new_objects = small_objects(&mut rng, "new/", 50);
    put_all(&survivor_clients, BUCKET, &new_objects, 16).await;

    // The burnt datacenter comes back and catches up.
    let revived_at = Instant::now();
    let mut revived = cluster.revive(RECOVERY_BOUND);
    revived.sort();
    let mut expected_revived = doomed.clone();
    expected_revived.sort();
    assert_eq!(revived, expected_revived, "restarted processes");
    let caught_up = wait_until_voters_caught_up(&cluster, RECOVERY_BOUND.saturating_sub(revived_at.elapsed()));
    println!(
        "every voter caught up {} ms after the restart: {}",
        revived_at.elapsed().as_millis(),
        caught_up.summary()
    );

    // The 50 objects written while it was down, through its own gateway.
    let restarted = cluster.s3_client_at(cluster.gateway_index(&leader_dc));
    get_all(std::slice::from_ref(&restarted), BUCKET, &new_objects, 8, &format!("through the restarted {leader_dc}"))
        .await;
    let (listed, _) = list_paginated(&restarted, BUCKET, "", 100, &format!("through the restarted {leader_dc}")).await;
    let expected: Vec<String> =
        objects.iter().chain(new_objects.iter()).map(|(k, _)| k.clone()).chain([probe_key]).collect();
    let listed_set: BTreeSet<&String> = listed.iter().collect();
    for key in &expected {
        assert!(listed_set.contains(key), "{key} is missing from the listing through the restarted {leader_dc}");
    }
    assert!(
        listed.iter().all(|k| k.starts_with("obj/") || k.starts_with("new/") || k.starts_with("probe/")),
        "unexpected keys listed: {listed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_creates_have_exactly_one_winner() {
    const BUCKET: &str = "races";
    const WRITERS: usize = 16;
    const KEYS: usize = 5;
    let _serial = SERIAL.lock().await;
    let mut rng = TestRng::new("conditional_creates_have_exactly_one_winner");
    let cluster = Cluster::start_with_env(&[INLINE_SMALL]).await;
    create_bucket(&cluster.s3_client(), BUCKET).await;
    let clients: Vec<aws_sdk_s3::Client> = (0..3).map(|i| cluster.s3_client_no_retry_at(i)).collect();

    for round in 0..KEYS {
        let key = format!("race/{round}");
        let bodies: Vec<Vec<u8>> = (0..WRITERS)
            .map(|writer| {
                let mut body = format!("writer {writer} of {key}\n").into_bytes();
                let len = 1024 + (rng.next_u64() % 2048) as usize;
                body.extend(rng.bytes(len));
                body
            })
            .collect();
        let start = Arc::new(tokio::sync::Barrier::new(WRITERS));
        let mut running = JoinSet::new();
        for (writer, body) in bodies.iter().enumerate() {
            let client = clients[writer % clients.len()].clone();
            let (key, body, start) = (key.clone(), body.clone(), start.clone());
            running.spawn(async move {
                start.wait().await;
                let request =
                    client.put_object().bucket(BUCKET).key(&key).if_none_match("*").body(ByteStream::from(body)).send();
                let answer = match tokio::time::timeout(REQUEST_BOUND, request).await {
                    Ok(Ok(output)) => Ok(output.e_tag().map(str::to_owned)),
                    Ok(Err(error)) => Err(error_info(&error)),
                    Err(_) => panic!("writer {writer}: PutObject {key} got no answer within {REQUEST_BOUND:?}"),
                };
                (writer, answer)
            });
        }
        let mut answers: BTreeMap<usize, Result<Option<String>, ErrorInfo>> = BTreeMap::new();
        while !running.is_empty() {
            let (writer, answer) = join_one(&mut running).await;
            answers.insert(writer, answer);
        }

        let winners: Vec<usize> = answers.iter().filter(|(_, a)| a.is_ok()).map(|(w, _)| *w).collect();
        assert_eq!(winners.len(), 1, "{key}: exactly one If-None-Match: * create succeeds; answers: {answers:#?}");
        let winner = winners[0];
        let (mut refused_412, mut refused_409) = (0, 0);
        for (writer, answer) in &answers {
            let Err(info) = answer else { continue };
            match (info.status, info.code.as_deref()) {
                (Some(412), Some("PreconditionFailed")) => refused_412 += 1,
                (Some(409), Some("ConditionalRequestConflict")) => refused_409 += 1,
                _ => panic!(
                    "{key}: writer {writer} (gateway {}) got {info:?}; a losing conditional create must get \
                     412 PreconditionFailed or 409 ConditionalRequestConflict",
                    writer % clients.len()
                ),
            }
        }
        let winner_etag = answers[&winner].as_ref().expect("winner").clone();
        assert_eq!(winner_etag.as_deref(), Some(etag_of(&bodies[winner]).as_str()), "{key}: ETag of the winner");
        for (gateway, client) in clients.iter().enumerate() {
            let output = ok(
                client.get_object().bucket(BUCKET).key(&key).send().await,
                &format!("GetObject {key} via gateway {gateway}"),
            );
            assert_eq!(output.e_tag(), winner_etag.as_deref(), "{key}: ETag stored, via gateway {gateway}");
            let stored = output.body.collect().await.expect("GetObject body").into_bytes();
            assert_bytes_eq(
                &stored,
                &bodies[winner],
                &format!("{key}: stored body (winner {winner}) via gateway {gateway}"),
            );
        }
        println!(
            "{key}: writer {winner} (gateway {}) won; {refused_412} x 412 PreconditionFailed, {refused_409} x 409 \
             ConditionalRequestConflict",
            winner % clients.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn if_match_updates_lose_nothing() {
    const BUCKET: &str = "counters";
    const KEY: &str = "counter";
    const WORKERS: usize = 8;
    const INCREMENTS: usize = 10;
    /// Reads plus writes one worker may spend on its increments.
    const ATTEMPTS_PER_WORKER: usize = 1000;
    const TIME_BOUND: Duration = Duration::from_secs(240);
    let _serial = SERIAL.lock().await;
    let cluster = Cluster::start_with_env(&[INLINE_SMALL]).await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, BUCKET).await;
    put_object(&s3, BUCKET, KEY, b"0").await;
    let clients: Vec<aws_sdk_s3::Client> = (0..3).map(|i| cluster.s3_client_no_retry_at(i)).collect();
    let deadline = Instant::now() + TIME_BOUND;
    let started = Instant::now();

    let mut running = JoinSet::new();
    for worker in 0..WORKERS {
        let client = clients[worker % clients.len()].clone();
        running.spawn(async move {
            let mut written: Vec<u64> = Vec::new();
            let (mut attempts, mut conflicts) = (0usize, 0usize);
            while written.len() < INCREMENTS {
                attempts += 1;
                assert!(
                    attempts <= ATTEMPTS_PER_WORKER && Instant::now() < deadline,
                    "worker {worker}: {} of {INCREMENTS} increments after {attempts} attempts and {:?}",
                    written.len(),
                    TIME_BOUND - deadline.saturating_duration_since(Instant::now())
                );
                let read = ok(
                    client.get_object().bucket(BUCKET).key(KEY).send().await,
                    &format!("worker {worker}: GetObject {KEY}"),
                );
                let etag = read.e_tag().unwrap_or_else(|| panic!("worker {worker}: GetObject without ETag")).to_owned();
                let body = read.body.collect().await.expect("GetObject body").into_bytes();
                let text = String::from_utf8_lossy(&body).into_owned();
                let value: u64 = text.parse().unwrap_or_else(|e| panic!("worker {worker}: counter {text:?}: {e}"));
                assert_eq!(etag, etag_of(&body), "worker {worker}: ETag of the counter {text}");
                let next = (value + 1).to_string();
                let update = client
                    .put_object()
                    .bucket(BUCKET)
                    .key(KEY)
                    .if_match(&etag)
                    .body(ByteStream::from(next.clone().into_bytes()))
                    .send();
                match tokio::time::timeout(REQUEST_BOUND, update).await {
                    Ok(Ok(output)) => {
                        assert_eq!(output.e_tag(), Some(etag_of(next.as_bytes()).as_str()), "worker {worker}: ETag");
                        written.push(value + 1);
                    }
                    Ok(Err(error)) => {
                        let info = error_info(&error);
                        match (info.status, info.code.as_deref()) {
                            (Some(412), Some("PreconditionFailed"))
                            | (Some(409), Some("ConditionalRequestConflict")) => conflicts += 1,
                            _ => panic!(
                                "worker {worker}: PutObject If-Match {etag} (counter {value} -> {next}): {info:?}"
                            ),
                        }
                    }
                    Err(_) => panic!("worker {worker}: PutObject If-Match got no answer within {REQUEST_BOUND:?}"),
                }
            }
            (worker, written, attempts, conflicts)
        });
    }
    let mut all_written: Vec<u64> = Vec::new();
    while !running.is_empty() {
        let (worker, written, attempts, conflicts) = join_one(&mut running).await;
        println!(
            "worker {worker} (gateway {}): {} increments in {attempts} attempts ({conflicts} refused), wrote {written:?}",
            worker % clients.len(),
            written.len()
        );
        all_written.extend(written);
    }
    println!("{} increments in {} ms", all_written.len(), started.elapsed().as_millis());

    // Each acknowledged increment wrote a distinct value: no two workers both "won" the same
    // version, and the counter ends at the number of acknowledged increments.
    all_written.sort_unstable();
    let total = (WORKERS * INCREMENTS) as u64;
    assert_eq!(all_written, (1..=total).collect::<Vec<u64>>(), "values written by acknowledged If-Match updates");
    for (gateway, client) in clients.iter().enumerate() {
        let value = ok(client.get_object().bucket(BUCKET).key(KEY).send().await, &format!("final GET via {gateway}"))
            .body
            .collect()
            .await
            .expect("GetObject body")
            .into_bytes();
        assert_eq!(String::from_utf8_lossy(&value), total.to_string(), "final counter via gateway {gateway}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_minority_never_accepts_writes() {
    const BUCKET: &str = "minority";
    const KEY: &str = "refused/object";
    const SLOW_KEY: &str = "refused/slow-upload";
    let _serial = SERIAL.lock().await;
    let mut rng = TestRng::new("a_minority_never_accepts_writes");
    let mut cluster = Cluster::start_with_env(&[INLINE_SMALL]).await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, BUCKET).await;
    let before_data = rng.bytes(2048);
    put_object(&s3, BUCKET, "before", &before_data).await;
    let status = cluster.wait_for_leader(RECOVERY_BOUND);
    println!("before the failure: {}", status.summary());

    // A slow upload through dc1 that the gateway has already authenticated and whose bucket it
    // has looked up while the group still had its majority; its body completes after the kill.
    let dc1_index = cluster.gateway_index("dc1");
    let slow_data = rng.bytes(3000);
    let slow_url = format!("{}/{BUCKET}/{SLOW_KEY}", cluster.gateways[dc1_index]);
    let headers = cluster.sign(&cluster.keys(), SystemTime::now(), "PUT", &slow_url, &[], Payload::Unsigned);
    let head = build_request_head(
        authority_of(&slow_url),
        "PUT",
        path_and_query_of(&slow_url),
        &headers,
        Some(slow_data.len()),
    );
    let in_flight = InFlightRequest::start(authority_of(&slow_url), &head, &slow_data[..1000])
        .await
        .unwrap_or_else(|e| panic!("starting PUT {slow_url}: {e:#}"));
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 4 of the 9 voters are left, one short of a quorum: dc1 keeps all its processes, dc3 one
    // node, and dc2 and dc3 their gateways.
    const KILLED: [&str; 5] = ["dc2-n1", "dc2-n2", "dc2-n3", "dc3-n1", "dc3-n2"];
    cluster.kill_processes(&KILLED);
    // For its lease's length after the last appends a majority accepted, the leader still
    // answers reads (rightly: no other leader can exist yet), so a PUT's precheck would pass and
    // its entry reach the leader's log, uncommitted, as the slow PUT's does. Past it, a PUT is
    // refused before anything reaches a log.
    tokio::time::sleep(Duration::from_millis(ignifuge_raft::lease::LEASE_READ_MS + 500)).await;
    let dc1 = cluster.s3_client_no_retry_at(dc1_index);
    let data = rng.bytes(1500);
    let started = Instant::now();
    let new_put = async {
        let request = dc1.put_object().bucket(BUCKET).key(KEY).body(ByteStream::from(data.clone())).send();
        let answer = tokio::time::timeout(REQUEST_BOUND, request)
            .await
            .unwrap_or_else(|_| panic!("PutObject with 4 of 9 voters got no answer within {REQUEST_BOUND:?}"));
        (answer, started.elapsed())
    };
    let slow_put = async {
        let answer = in_flight.finish(&slow_data[1000..]).await.unwrap_or_else(|e| panic!("PUT {slow_url}: {e:#}"));
        (answer, started.elapsed())
    };
    let ((answer, new_elapsed), (slow_answer, slow_elapsed)) = tokio::join!(new_put, slow_put);
    let info = assert_status(answer, 503, "PutObject through dc1 with 4 of 9 voters alive");
    assert!(
        matches!(info.code.as_deref(), Some("ServiceUnavailable" | "SlowDown")),
        "PutObject with 4 of 9 voters: expected 503 ServiceUnavailable, got {info:?}"
    );
    println!("PutObject with 4 of 9 voters: HTTP 503 {:?} after {} ms", info.code, new_elapsed.as_millis());
    println!(
        "PUT started before the kill, body completed after it: HTTP {} {:?} after {} ms",
        slow_answer.status,
        slow_answer.error_code(),
        slow_elapsed.as_millis()
    );
    assert!(
        slow_answer.status == 503
            && matches!(slow_answer.error_code().as_deref(), Some("ServiceUnavailable" | "SlowDown")),
        "a PUT whose body completes while only 4 of 9 voters are alive: expected 503 ServiceUnavailable, got {}",
        slow_answer.summary()
    );
    let during = cluster.meta_status();
    println!("during the failure, after the refused PUTs: {}", during.summary());
    let last_log = |s: &MetaStatus| s.member("dc1-n1").status.as_ref().and_then(|s| s.last_log_index);
    println!(
        "dc1-n1 log: last index {:?} before the kill, {:?} after the refused PUTs",
        last_log(&status),
        last_log(&during)
    );

    // Bring the five voters back; writes go through again.
    let revived_at = Instant::now();
    let mut revived = cluster.revive(RECOVERY_BOUND);
    revived.sort();
    assert_eq!(revived, KILLED.map(String::from).to_vec(), "restarted processes");
    let (_, _, attempts) = first_acknowledged_write(&dc1, BUCKET, "after/", revived_at, RECOVERY_BOUND).await;
    println!(
        "writes acknowledged again {} ms after the restart ({attempts} attempt(s)): {}",
        revived_at.elapsed().as_millis(),
        cluster.meta_status().summary()
    );

    // A write acknowledged after the restart means every entry before it is decided. The PUT
    // refused before it reached the log never surfaces. The slow PUT reached the leader's log
    // before the majority was lost: a 503 means "not acknowledged", and, as in any consensus
    // system, such an entry may still commit once the majority is back. What must hold is that
    // every gateway then agrees, and that the object is whole (never partial), exactly once.
    let mut slow_views = Vec::new();
    for gateway in 0..cluster.gateways.len() {
        let client = cluster.s3_client_at(gateway);
        assert_status(
            client.head_object().bucket(BUCKET).key(KEY).send().await,
            404,
            &format!("HeadObject {KEY} (refused with 503 before reaching the log) via gateway {gateway}"),
        );
        assert_s3_error(
            client.get_object().bucket(BUCKET).key(KEY).send().await,
            404,
            &["NoSuchKey"],
            &format!("GetObject {KEY} (refused with 503) via gateway {gateway}"),
        );
        let slow = match client.get_object().bucket(BUCKET).key(SLOW_KEY).send().await {
            Ok(output) => Some(output.body.collect().await.expect("body").into_bytes().to_vec()),
            Err(_) => None,
        };
        if let Some(bytes) = &slow {
            assert_bytes_eq(
                bytes,
                &slow_data,
                &format!("the slow PUT, committed after the restart, via gateway {gateway}"),
            );
        }
        slow_views.push(slow.is_some());
        let (listed, _) = list_paginated(&client, BUCKET, "refused/", 100, "after the restart").await;
        let expected: Vec<String> = if slow_views[gateway] { vec![SLOW_KEY.to_string()] } else { Vec::new() };
        assert_eq!(listed, expected, "listing of refused/ via gateway {gateway}");
    }
    assert!(slow_views.iter().all(|v| *v == slow_views[0]), "gateways disagree about the slow PUT: {slow_views:?}");
    println!("the slow PUT {} after the majority returned", if slow_views[0] { "committed" } else { "did not commit" });
    assert_bytes_eq(&get_object(&s3, BUCKET, "before").await, &before_data, "the object written before the failure");
    let caught_up = wait_until_voters_caught_up(&cluster, RECOVERY_BOUND);
    println!("every voter caught up: {}", caught_up.summary());
    // Still absent once every voter has applied everything.
    assert_s3_error(
        s3.get_object().bucket(BUCKET).key(KEY).send().await,
        404,
        &["NoSuchKey"],
        &format!("GetObject {KEY} (refused with 503) once every voter caught up"),
    );
}

/// The leader's lease (`raft/src/lease.rs`). In a healthy cluster the leader answers reads from
/// its lease, with no round to the followers. Cut off from every other voter, it keeps believing
/// it leads (it hears of no newer term) and keeps being asked, here directly over the internode
/// API, every 50 ms: it may answer from its lease for `LEASE_READ_MS` after the last append a
/// majority accepted, never later, while the others elect a leader and take a new write. A lease
/// even a few hundred milliseconds longer than that is caught.
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_cut_off_from_the_other_voters_answers_no_read_once_its_lease_is_over() {
    const BUCKET: &str = "lease";
    const KEY: &str = "the-key";
    const OLD: &[u8] = b"written before the leader was cut off";
    const NEW: &[u8] = b"written through the new leader";
    /// The links file is re-read every 50 ms, so an append may still get through that long after
    /// the rule is written; plus scheduling slack.
    const SLACK: Duration = Duration::from_millis(300);
    let _serial = SERIAL.lock().await;
    let (cluster, rules) = Cluster::start_with_rules(&[INLINE_SMALL]).await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, BUCKET).await;
    put_object(&s3, BUCKET, KEY, OLD).await;
    let status = wait_until_voters_caught_up(&cluster, RECOVERY_BOUND);
    let (leader, own) = agreed_leader(&status).expect("an agreed leader");

    // Healthy: reads come from the lease.
    for gateway in 0..cluster.gateways.len() {
        let client = cluster.s3_client_at(gateway);
        for _ in 0..10 {
            assert_bytes_eq(&get_object(&client, BUCKET, KEY).await, OLD, "GET in a healthy cluster");
        }
    }
    let healthy = cluster.meta_status();
    let leader_now = healthy.member(&leader).status.clone().expect("the leader's status");
    assert_eq!(leader_now.term, own.term, "the leader changed during the healthy reads: {}", healthy.summary());
    assert!(
        leader_now.reads_by_lease >= own.reads_by_lease + 30,
        "30 GETs in a healthy cluster: the leader answered {} queries from its lease and {} after a read-index \
         round",
        leader_now.reads_by_lease - own.reads_by_lease,
        leader_now.reads_confirmed - own.reads_confirmed
    );

    // The leader cut off from the other storage nodes (gateways and this test still reach it).
    let others: Vec<String> =
        cluster.storage_nodes().iter().filter(|p| p.node_id != leader).map(|p| p.listen.clone()).collect();
    rules.set(&format!("cut {} | {}\n", cluster.process(&leader).listen, others.join(",")));
    let cut_at = Instant::now();

    // Asked directly every 50 ms for 6 s, each query on its own: when it was sent, and whether
    // the old leader answered it.
    let secret = std::fs::read_to_string(cluster.data_dir.join("cluster.secret")).expect("the cluster secret");
    let auth = ignifuge_rpc::InternodeAuth::new(&hex::decode(secret.trim()).expect("hex secret"));
    let internode = ignifuge_rpc::NodeClient::new(Arc::new(auth));
    let address: std::net::SocketAddr = cluster.process(&leader).listen.parse().expect("the leader's address");
    let mut asked = JoinSet::new();
    while cut_at.elapsed() < Duration::from_secs(6) {
        let (internode, sent) = (internode.clone(), cut_at.elapsed());
        asked.spawn(async move {
            let query = ignifuge_meta::Query::Bucket(ignifuge_types::BucketName::new(BUCKET));
            let answer = internode
                .post_json::<_, Result<ignifuge_meta::Answer, ignifuge_meta::MetaError>>(
                    address,
                    ignifuge_rpc::paths::META_QUERY,
                    &query,
                )
                .await;
            (sent, answer.map(|a| a.is_ok()))
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Meanwhile the others elect a leader once their promise to the old one has run out.
    let deadline = Instant::now() + RECOVERY_BOUND;
    let new_leader = loop {
        let status = cluster.meta_status();
        let elected = status
            .voters()
            .find(|v| v.node != leader && v.status.as_ref().is_some_and(|s| s.state == "Leader" && s.term > own.term));
        if let Some(elected) = elected {
            assert_eq!(
                status.member(&leader).status.as_ref().map(|s| s.state.as_str()),
                Some("Leader"),
                "the old leader, cut off, heard of no newer term"
            );
            break elected.node.clone();
        }
        assert!(Instant::now() < deadline, "no new leader within {RECOVERY_BOUND:?}: {}", status.summary());
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("{new_leader} elected {} ms after {leader} was cut off", cut_at.elapsed().as_millis());
    let writer = cluster.s3_client_no_retry_at(cluster.gateway_index("dc1"));
    first_acknowledged_write(&writer, BUCKET, "during/", Instant::now(), RECOVERY_BOUND).await;
    put_object(&cluster.s3_client(), BUCKET, KEY, NEW).await;

    let mut answered_last = None;
    let mut refused = 0;
    while let Some(result) = asked.join_next().await {
        let (sent, answer) = result.expect("a query task");
        match answer {
            Ok(true) => answered_last = answered_last.max(Some(sent)),
            Ok(false) => panic!("the old leader answered a bucket query with an error"),
            // Refused once its read-index round found no quorum; or no answer in time (not counted).
            Err(ignifuge_rpc::RpcError::Status { status: 503, .. }) => {
                if sent > Duration::from_millis(ignifuge_raft::lease::LEASE_READ_MS) + SLACK {
                    refused += 1;
                }
            }
            Err(ignifuge_rpc::RpcError::Timeout(_)) => {}
            Err(e) => panic!("the old leader's answer to a query sent {sent:?} after the cut: {e}"),
        }
    }
    println!("the old leader answered queries sent up to {answered_last:?} after the cut; {refused} refused later");
    assert!(
        answered_last.is_none_or(|last| last <= Duration::from_millis(ignifuge_raft::lease::LEASE_READ_MS) + SLACK),
        "the old leader answered a query sent {answered_last:?} after it was cut off from the other voters (its \
         lease is {} ms)",
        ignifuge_raft::lease::LEASE_READ_MS
    );
    assert!(refused > 10, "only {refused} queries reached the old leader once its lease was over");

    // Healed: every gateway reads the new value.
    rules.clear();
    wait_until_voters_caught_up(&cluster, RECOVERY_BOUND);
    for gateway in 0..cluster.gateways.len() {
        assert_bytes_eq(&get_object(&cluster.s3_client_at(gateway), BUCKET, KEY).await, NEW, "GET after healing");
    }
}
