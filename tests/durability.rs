//! Durability end to end: the dev cluster's process contract, shard placement on disk (5 data +
//! 4 parity, 3 shards per datacenter on distinct nodes), reads through killed nodes and corrupted
//! shard files, up to the 4 losses per stripe that 5+4 must survive.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;

const MIB: usize = 1 << 20;
/// Two full stripes of 5 x 1 MiB data shards.
const OBJECT_SIZE: usize = 10 * MIB;
const DATACENTERS: [&str; 3] = ["dc1", "dc2", "dc3"];

#[tokio::test(flavor = "multi_thread")]
async fn dev_cluster_contract() {
    let mut cluster = Cluster::start().await;
    let port = cluster.base_port;

    // stdout: the five exports, in this order, ready to eval.
    let names: Vec<&str> = cluster.exports.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        vec!["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"],
        "exported variables"
    );
    assert_eq!(cluster.endpoint, format!("http://127.0.0.1:{port}"));
    assert_eq!(cluster.region, "us-east-1");
    assert_eq!(cluster.exports[4].1, "us-east-1", "AWS_DEFAULT_REGION");
    assert!(!cluster.access_key.is_empty() && !cluster.secret_key.is_empty());

    // cluster.json
    let file = cluster.cluster_file.clone();
    assert_eq!(file.endpoint, cluster.endpoint, "cluster.json endpoint");
    assert_eq!(file.region, "us-east-1", "cluster.json region");
    let mut gateways: Vec<&ProcessInfo> = file.processes.iter().filter(|p| p.role == "gateway").collect();
    gateways.sort_by(|a, b| a.datacenter.cmp(&b.datacenter));
    assert_eq!(gateways.len(), 3, "gateways in cluster.json: {:?}", file.processes);
    for (index, gateway) in gateways.iter().enumerate() {
        let dc = DATACENTERS[index];
        assert_eq!(gateway.datacenter, dc);
        assert_eq!(gateway.node_id, format!("gateway-{dc}"));
        assert_eq!(gateway.listen, format!("127.0.0.1:{}", port + index as u16), "listen of gateway-{dc}");
        assert!(gateway.data_dir.is_none(), "a gateway has no data_dir");
        assert!(pid_alive(gateway.pid), "gateway-{dc} (pid {}) is running", gateway.pid);
    }
    assert_eq!(cluster.gateways, (0..3).map(|i| format!("http://127.0.0.1:{}", port + i)).collect::<Vec<_>>());

    let nodes: Vec<&ProcessInfo> = file.processes.iter().filter(|p| p.role == "node").collect();
    let mut ids: Vec<String> = nodes.iter().map(|p| p.node_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, node_ids(), "storage node ids");
    assert_eq!(file.processes.len(), 12, "9 nodes + 3 gateways: {:?}", file.processes);
    let mut listens = HashSet::new();
    let mut pids = HashSet::new();
    let data_dir = std::fs::canonicalize(&cluster.data_dir).expect("canonical data dir");
    for node in &nodes {
        assert_eq!(node.datacenter, node.node_id[..3], "datacenter of {}", node.node_id);
        let listen_port: u16 = node
            .listen
            .strip_prefix("127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("listen of {}: {}", node.node_id, node.listen));
        assert!(
            (port + 10..port + 100).contains(&listen_port),
            "{} listens on {listen_port}, outside PORT+10..",
            node.node_id
        );
        assert!(listens.insert(listen_port), "two nodes on port {listen_port}");
        let node_dir = node.data_dir.as_ref().unwrap_or_else(|| panic!("{} has no data_dir", node.node_id));
        assert!(node_dir.is_absolute(), "data_dir of {} is absolute: {}", node.node_id, node_dir.display());
        assert!(node_dir.is_dir(), "data_dir of {} exists", node.node_id);
        assert!(
            std::fs::canonicalize(node_dir).expect("canonical").starts_with(&data_dir),
            "data_dir of {} is under --data-dir",
            node.node_id
        );
        assert!(pid_alive(node.pid), "{} (pid {}) is running", node.node_id, node.pid);
        assert!(pids.insert(node.pid), "two processes with pid {}", node.pid);
        // Each node is a real listener.
        std::net::TcpStream::connect(&node.listen)
            .unwrap_or_else(|e| panic!("connect {} ({}): {e}", node.node_id, node.listen));
    }

    // Every gateway serves S3 with the printed credentials.
    for index in 0..3 {
        ok(cluster.s3_client_at(index).list_buckets().send().await, &format!("ListBuckets via gateway {index}"));
    }

    // SIGTERM stops the whole cluster.
    let all_pids: Vec<i32> = file.processes.iter().map(|p| p.pid).collect();
    let status = cluster.terminate();
    assert!(status.is_some(), "`ignifuge dev` did not exit within 10 s of SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive: Vec<i32> = all_pids.iter().copied().filter(|p| pid_alive(*p)).collect();
        if alive.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "processes still running after `ignifuge dev` exited: {alive:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Shard files per node, as (node id -> files).
fn shard_census(cluster: &Cluster) -> BTreeMap<String, Vec<PathBuf>> {
    node_ids()
        .into_iter()
        .map(|id| {
            let files = cluster.shard_files(&id);
            (id, files)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn shards_spread_evenly_over_datacenters_and_nodes() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("shards_spread_evenly_over_datacenters_and_nodes");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "spread").await;
    let before = shard_census(&cluster);
    let baseline: usize = before.values().map(Vec::len).sum();

    let key = "spread-test-object-7f3a";
    let data = rng.bytes(OBJECT_SIZE);
    put_object(&s3, "spread", key, &data).await;

    // Wait (briefly) for the census to settle at 18 new files.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let census = shard_census(&cluster);
        let total: usize = census.values().map(Vec::len).sum();
        if total - baseline >= 18 || Instant::now() > deadline {
            break census;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let new_files: BTreeMap<String, Vec<PathBuf>> = after
        .iter()
        .map(|(id, files)| {
            let old: HashSet<&PathBuf> = before[id].iter().collect();
            (id.clone(), files.iter().filter(|f| !old.contains(f)).cloned().collect())
        })
        .collect();
    let counts: BTreeMap<&str, usize> = new_files.iter().map(|(id, f)| (id.as_str(), f.len())).collect();
    println!("new shard files per node: {counts:?} (baseline {baseline})");

    let per_dc: Vec<usize> =
        DATACENTERS.iter().map(|dc| counts.iter().filter(|(id, _)| id.starts_with(dc)).map(|(_, n)| n).sum()).collect();
    assert_eq!(per_dc[0], per_dc[1], "each datacenter holds a third: {counts:?}");
    assert_eq!(per_dc[1], per_dc[2], "each datacenter holds a third: {counts:?}");
    for (id, count) in &counts {
        assert!(*count >= 1, "{id} holds no shard of the object: {counts:?}");
    }
    // 2 stripes x (5 + 4) shards, one per node per stripe.
    assert_eq!(per_dc.iter().sum::<usize>(), 18, "shard files of a 10 MiB object: {counts:?}");
    for (id, count) in &counts {
        assert_eq!(*count, 2, "{id} holds one shard of each stripe: {counts:?}");
    }

    // 9/5 of the object on disk, not replicas; names never carry the key.
    let bytes: u64 = new_files.values().flatten().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
    let expected = (OBJECT_SIZE as u64) * 9 / 5;
    assert!(
        bytes >= expected && bytes <= expected + expected / 10,
        "shard bytes on disk {bytes}, expected about {expected} (5+4 erasure coding)"
    );
    for file in new_files.values().flatten() {
        let path = file.to_string_lossy();
        assert!(!path.contains("spread-test-object"), "a shard file is named after the key: {path}");
    }

    assert_bytes_eq(&get_object(&s3, "spread", key).await, &data, "object after the census");
}

/// Both objects, byte for byte, through every gateway, plus HEAD and the listing.
async fn check_all(cluster: &Cluster, data: &[u8], small: &[u8], context: &str) {
    for index in 0..cluster.gateways.len() {
        let client = cluster.s3_client_at(index);
        assert_bytes_eq(
            &get_object(&client, "durable", "big").await,
            data,
            &format!("{context}: big object via gateway {index}"),
        );
        assert_bytes_eq(
            &get_object(&client, "durable", "small").await,
            small,
            &format!("{context}: small object via gateway {index}"),
        );
        let head = ok(
            client.head_object().bucket("durable").key("big").send().await,
            &format!("{context}: HEAD via gateway {index}"),
        );
        assert_eq!(head.e_tag(), Some(etag_of(data).as_str()), "{context}: ETag");
    }
    let mut keys = list_all_keys(&cluster.s3_client(), "durable").await;
    keys.sort();
    assert_eq!(keys, vec!["big", "small"], "{context}: listing");
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_survive_killed_nodes_and_corrupt_shards() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("reads_survive_killed_nodes_and_corrupt_shards");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "durable").await;
    let data = rng.bytes(OBJECT_SIZE);
    let small = rng.bytes(1000);
    put_object(&s3, "durable", "big", &data).await;
    put_object(&s3, "durable", "small", &small).await;

    cluster.kill_node("dc2-n2");
    check_all(&cluster, &data, &small, "after kill -9 of dc2-n2").await;

    cluster.kill_node("dc3-n1");
    check_all(&cluster, &data, &small, "after kill -9 of dc2-n2 and dc3-n1").await;

    // Two more losses per stripe: every shard file of two more nodes is corrupted.
    for node in ["dc1-n3", "dc2-n1"] {
        let files = cluster.shard_files(node);
        assert!(!files.is_empty(), "{node} has shard files");
        for file in files {
            flip_bytes_in_middle(&file, 64);
        }
    }
    check_all(&cluster, &data, &small, "after 2 killed nodes and 2 nodes with corrupt shards").await;
}

/// dc1-n1 is the first node of the first datacenter: the natural home of anything a design
/// keeps in one place (the dev cluster's metadata, for one). Losing it must not lose reads.
#[tokio::test(flavor = "multi_thread")]
async fn reads_survive_killing_the_first_node() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("reads_survive_killing_the_first_node");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "durable").await;
    let data = rng.bytes(OBJECT_SIZE);
    let small = rng.bytes(1000);
    put_object(&s3, "durable", "big", &data).await;
    put_object(&s3, "durable", "small", &small).await;

    cluster.kill_node("dc1-n1");
    check_all(&cluster, &data, &small, "after kill -9 of dc1-n1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_survive_corrupt_shard_files() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("reads_survive_corrupt_shard_files");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "bitrot").await;
    let data = rng.bytes(OBJECT_SIZE);
    put_object(&s3, "bitrot", "object", &data).await;

    let originals: Vec<(PathBuf, Vec<u8>)> = node_ids()
        .iter()
        .flat_map(|id| cluster.shard_files(id))
        .map(|path| {
            let bytes = std::fs::read(&path).expect("read shard");
            (path, bytes)
        })
        .collect();
    // Puts every shard back as written (reads quarantine the corrupt ones they meet; the repair
    // service, tested in fire_drill.rs, would rebuild them, here the test does).
    let restore = || {
        for (path, bytes) in &originals {
            std::fs::write(path, bytes).expect("restore shard");
        }
    };

    // One shard file, bytes flipped in the middle.
    let files = cluster.shard_files("dc2-n1");
    assert!(!files.is_empty(), "dc2-n1 has shard files");
    let victim = &files[(rng.next_u64() as usize) % files.len()];
    println!("corrupting {}", victim.display());
    flip_bytes_in_middle(victim, 64);
    assert_bytes_eq(&get_object(&s3, "bitrot", "object").await, &data, "GET after one corrupt shard");
    assert_bytes_eq(
        &get_object(&cluster.s3_client_at(1), "bitrot", "object").await,
        &data,
        "GET via dc2 after one corrupt shard",
    );
    restore();

    // Rounds of 4 corrupt nodes (4 of 9 shards of every stripe), restored after each round;
    // together the rounds corrupt every node, so every data shard is corrupted in some round.
    let rounds = [
        ["dc1-n1", "dc2-n1", "dc3-n1", "dc1-n2"],
        ["dc2-n2", "dc3-n2", "dc1-n3", "dc2-n3"],
        ["dc3-n3", "dc1-n1", "dc2-n2", "dc3-n1"],
    ];
    for (round, nodes) in rounds.iter().enumerate() {
        for node in nodes {
            for file in cluster.shard_files(node) {
                flip_bytes_in_middle(&file, 64);
            }
        }
        let client = cluster.s3_client_at(round % cluster.gateways.len());
        assert_bytes_eq(
            &get_object(&client, "bitrot", "object").await,
            &data,
            &format!("GET with every shard of {nodes:?} corrupt"),
        );
        restore();
    }
    assert_bytes_eq(&get_object(&s3, "bitrot", "object").await, &data, "GET after the rounds");
}

/// With a whole datacenter down, a large PUT is still accepted under the outage policy
/// ("degrade": the class's declared minimum, any 2 nodes): its shards go to the live nodes, the
/// object reads back identical, and it survives the loss of 2 more nodes' shards.
#[tokio::test(flavor = "multi_thread")]
async fn writes_go_on_with_a_datacenter_down() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("writes_go_on_with_a_datacenter_down");
    let s3 = cluster.s3_client_at(1);
    create_bucket(&s3, "outage").await;
    put_object(&s3, "outage", "before-the-fire", &rng.bytes(OBJECT_SIZE)).await;
    // Healthy once a repair round has surveyed the stripes.
    cluster.wait_until_healthy(Duration::from_secs(60));
    cluster.kill_processes(&["dc1-n1", "dc1-n2", "dc1-n3", "gateway-dc1"]);
    let data = rng.bytes(OBJECT_SIZE);
    put_object(&s3, "outage", "during-the-fire", &data).await;
    // The debt is visible: both stripes of the object written during the outage.
    let report = cluster.durability();
    assert_eq!(report["healthy"], false, "{report}");
    assert_eq!(report["debt_stripes"], 2, "{report}");
    assert_eq!(report["tenants"][0]["debt_objects"], 1, "{report}");
    assert_eq!(report["tenants"][0]["full_budget_objects"], 1, "{report}");
    assert_bytes_eq(&get_object(&s3, "outage", "during-the-fire").await, &data, "written during the outage");
    let live: usize = ["dc2", "dc3"]
        .iter()
        .flat_map(|dc| (1..=3).map(move |n| format!("{dc}-n{n}")))
        .map(|node| cluster.shard_files(&node).len())
        .sum();
    // The object written before the fire keeps its 2 x 6 shards in dc2 and dc3; the one written
    // during it has all 2 x 9 of its shards there.
    assert_eq!(live, 12 + 18, "all 2 stripes x 9 shards of the outage write are on the 6 live nodes");
    // Any 2 more storage nodes: one in each live datacenter. dc2-n2 dies (with its metadata
    // vote: 5 of the 9 voters are left, still a quorum); dc3-n3 loses its disk's shards but keeps
    // answering. Killing it as well would take the metadata below its quorum: the metadata's
    // budget is a datacenter plus one node, the class's (see ARCHITECTURE.md), while the shards
    // of an outage write keep the outage policy's margin of 2 more nodes.
    cluster.kill_processes(&["dc2-n2"]);
    for file in cluster.shard_files("dc3-n3") {
        std::fs::remove_file(&file).unwrap_or_else(|e| panic!("removing {}: {e}", file.display()));
    }
    assert_bytes_eq(
        &get_object(&cluster.s3_client_at(2), "outage", "during-the-fire").await,
        &data,
        "read after 2 more nodes' shards were lost",
    );
}

/// Replaced and deleted objects' shards are reclaimed after the grace period, and only theirs.
#[tokio::test(flavor = "multi_thread")]
async fn garbage_shards_are_reclaimed() {
    let cluster = Cluster::start_with_env(&[("IGNIFUGE_GC_GRACE_MS", "0"), ("IGNIFUGE_GC_INTERVAL_MS", "300")]).await;
    let mut rng = TestRng::new("garbage_shards_are_reclaimed");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "gcbucket").await;
    let count = |cluster: &Cluster| node_ids().iter().map(|n| cluster.shard_files(n).len()).sum::<usize>();
    let first = rng.bytes(OBJECT_SIZE);
    put_object(&s3, "gcbucket", "replaced", &first).await;
    put_object(&s3, "gcbucket", "deleted", &rng.bytes(OBJECT_SIZE)).await;
    assert_eq!(count(&cluster), 36, "2 objects x 2 stripes x 9 shards");
    let second = rng.bytes(OBJECT_SIZE);
    put_object(&s3, "gcbucket", "replaced", &second).await;
    ok(s3.delete_object().bucket("gcbucket").key("deleted").send().await, "DeleteObject");
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&cluster) != 18 {
        assert!(Instant::now() < deadline, "shards left after 30 s: {} (expected 18)", count(&cluster));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_bytes_eq(&get_object(&s3, "gcbucket", "replaced").await, &second, "the live version survives collection");
}

/// A GET that outlasts the garbage grace (a slow client reading a large object) streams to its
/// end although the object was deleted meanwhile: the blob it reads is held while it streams
/// (`Command::HoldGarbage`), and collected a grace after the read ended. Before, the collector
/// deleted the shards a grace after the delete and the GET failed mid-stream.
#[tokio::test(flavor = "multi_thread")]
async fn a_read_that_outlasts_the_garbage_grace_keeps_its_blob() {
    let cluster = Cluster::start_with_env(&[
        ("IGNIFUGE_GC_GRACE_MS", "2000"),
        ("IGNIFUGE_GC_INTERVAL_MS", "300"),
        ("IGNIFUGE_INTENT_RENEW_MS", "300"),
    ])
    .await;
    let mut rng = TestRng::new("a_read_that_outlasts_the_garbage_grace_keeps_its_blob");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "held").await;
    let count = |cluster: &Cluster| node_ids().iter().map(|n| cluster.shard_files(n).len()).sum::<usize>();
    // 26 stripes: far more than a GET reads ahead of its client and the socket buffers hold
    // (about 26 MiB in the gateway's channel and fetches, a few MiB in each socket).
    let data = rng.bytes(128 * MIB);
    put_object(&s3, "held", "big", &data).await;
    let stored = count(&cluster);
    assert_eq!(stored, 26 * 9, "26 stripes x 9 shards");
    let got = ok(s3.get_object().bucket("held").key("big").send().await, "GET");
    let mut body = got.body;
    let mut read = Vec::new();
    while read.len() < MIB {
        read.extend_from_slice(&body.next().await.expect("more body").expect("body bytes"));
    }
    ok(s3.delete_object().bucket("held").key("big").send().await, "DELETE while the GET streams");
    // Four graces and many collection rounds, well within the 30 s a stalled client is given.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(count(&cluster), stored, "shards of the blob a GET streams were collected");
    while let Some(chunk) = body.next().await {
        read.extend_from_slice(&chunk.expect("the GET streams to its end"));
    }
    assert_bytes_eq(&read, &data, "a GET that outlasted the garbage grace");
    // Read to its end, the blob is held no more: collected a grace later.
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&cluster) != 0 {
        assert!(Instant::now() < deadline, "shards left 30 s after the read ended: {}", count(&cluster));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A client that pauses a large GET for longer than a shard request is given
/// (`SHARD_RPC_TIMEOUT_MS`, 10 s: here 18 s), but within the 30 s a stalled client is, gets the
/// object whole. Every
/// request from the reading gateway to the nodes is answered 300 ms late here, so that the stripe
/// it reads ahead is still under way when the paused client leaves it no room. That stripe is read
/// in a task of its own: before, it waited with its shard requests half answered while the GET
/// waited for the client, the requests ran out their time all the same, and the GET failed
/// mid-stream ("not enough healthy shards"; a 64 MiB GET read at 400 KB/s by curl did too).
#[tokio::test(flavor = "multi_thread")]
async fn a_client_pausing_longer_than_a_shard_request_gets_a_large_object_whole() {
    let (cluster, rules) = Cluster::start_with_rules(&[]).await;
    let mut rng = TestRng::new("a_client_pausing_longer_than_a_shard_request_gets_a_large_object_whole");
    let s3 = cluster.s3_client_at(0);
    create_bucket(&s3, "paused").await;
    let data = rng.bytes(64 * MIB);
    put_object(&s3, "paused", "big", &data).await;
    let gateway = cluster.gateways[0].trim_start_matches("http://");
    let nodes: Vec<String> = node_ids().iter().map(|n| cluster.process(n).listen.clone()).collect();
    rules.set(&format!("slow {gateway} > {} 300\n", nodes.join(",")));
    tokio::time::sleep(Duration::from_millis(200)).await; // re-read within 50 ms
    let pause = Duration::from_millis(ignifuge_rpc::SHARD_RPC_TIMEOUT_MS + 8_000);
    let got = ok(s3.get_object().bucket("paused").key("big").send().await, "GET");
    let mut body = got.body;
    let mut read = Vec::new();
    let mut pauses = [MIB, 24 * MIB].into_iter().peekable();
    while let Some(chunk) = body.next().await {
        read.extend_from_slice(&chunk.expect("the GET streams to its end"));
        if pauses.next_if(|at| read.len() >= *at).is_some() {
            tokio::time::sleep(pause).await;
        }
    }
    rules.clear();
    assert_bytes_eq(&read, &data, "a GET whose client paused twice");
}

/// A gateway killed (-9) while a GET it serves holds a deleted object's blob renews the hold no
/// more: another gateway's collector takes the blob a grace after the last hold (once it has the
/// `gc` lease, which the killed gateway may have held), rather than leaving it pinned for the day
/// a hold may count (`GARBAGE_HOLD_MAX_MS`).
#[tokio::test(flavor = "multi_thread")]
async fn a_hold_of_a_gateway_killed_mid_read_runs_out_a_grace_later() {
    let cluster = Cluster::start_with_env(&[
        ("IGNIFUGE_GC_GRACE_MS", "2000"),
        ("IGNIFUGE_GC_INTERVAL_MS", "300"),
        ("IGNIFUGE_INTENT_RENEW_MS", "300"),
        // A stalled client is not cut for ten minutes: only the kill can end the hold.
        ("IGNIFUGE_GATEWAY_ANSWER_STALL_MS", "600000"),
    ])
    .await;
    let mut rng = TestRng::new("a_hold_of_a_gateway_killed_mid_read_runs_out_a_grace_later");
    let reader = cluster.s3_client_at(cluster.gateway_index("dc1"));
    let other = cluster.s3_client_at(cluster.gateway_index("dc2"));
    create_bucket(&other, "held").await;
    let count = |cluster: &Cluster| node_ids().iter().map(|n| cluster.shard_files(n).len()).sum::<usize>();
    // As large as the test above's, so that the GET is still streaming when its gateway dies.
    let data = rng.bytes(128 * MIB);
    put_object(&other, "held", "big", &data).await;
    let stored = count(&cluster);
    assert_eq!(stored, 26 * 9, "26 stripes x 9 shards");
    let got = ok(reader.get_object().bucket("held").key("big").send().await, "GET");
    let mut body = got.body;
    let mut read = 0;
    while read < MIB {
        read += body.next().await.expect("more body").expect("body bytes").len();
    }
    ok(other.delete_object().bucket("held").key("big").send().await, "DELETE while the GET streams");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(count(&cluster), stored, "collected while the reading gateway lives and holds it");
    let gateway = cluster
        .processes
        .iter()
        .find(|p| p.role == "gateway" && p.datacenter == "dc1")
        .expect("the dc1 gateway")
        .node_id
        .clone();
    cluster.kill_node(&gateway);
    drop(body);
    let killed = Instant::now();
    // The grace after the last hold, and the gc lease's 30 s if the killed gateway held it.
    while count(&cluster) != 0 {
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "shards left 60 s after the reader died: {}",
            count(&cluster)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Storage nodes refuse internode requests that are not signed with the cluster secret, or are
/// signed by a process of another data format (426, naming it) or by a version from before
/// requests carried their format: reading or writing a shard, deleting a blob, and reading or
/// changing the metadata.
#[tokio::test(flavor = "multi_thread")]
async fn internode_requests_must_be_authenticated() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "internode").await;
    put_object(&s3, "internode", "secret", &vec![7u8; OBJECT_SIZE]).await;
    let node = cluster.processes.iter().find(|p| p.node_id == "dc1-n1").expect("dc1-n1").listen.clone();
    let shard = cluster.shard_files("dc1-n1").into_iter().next().expect("dc1-n1 holds a shard");
    let blob = shard.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).expect("blob dir").to_string();
    let forged =
        vec![("x-ignifuge-time".to_string(), "1".to_string()), ("x-ignifuge-auth".to_string(), "00".repeat(32))];
    let secret = std::fs::read_to_string(cluster.data_dir.join("cluster.secret")).expect("the cluster secret");
    let secret = hex::decode(secret.trim()).expect("hex secret");
    let other_format = (ignifuge_meta::DATA_FORMAT.parse::<u32>().expect("a number") - 1).to_string();
    for (method, path, body) in [
        ("GET", format!("/v1/shards/{blob}/0/0"), Vec::new()),
        ("PUT", format!("/v1/shards/{blob}/0/0"), vec![1u8; 16]),
        ("DELETE", format!("/v1/shards/{blob}"), Vec::new()),
        ("DELETE", format!("/v1/shards/{blob}/0/0"), Vec::new()),
        ("POST", "/v1/inventory".to_string(), format!(r#"{{"blobs":["{blob}"]}}"#).into_bytes()),
        ("POST", "/v1/blobs".to_string(), br#"{"after":null,"limit":10}"#.to_vec()),
        ("POST", "/v1/blobs/delete".to_string(), format!(r#"{{"blobs":["{blob}"]}}"#).into_bytes()),
        ("POST", "/v1/scrub/status".to_string(), b"null".to_vec()),
        ("POST", "/v1/meta/query".to_string(), br#"{"ListBuckets":"default"}"#.to_vec()),
        ("POST", "/v1/meta/apply".to_string(), b"{}".to_vec()),
        ("POST", "/v1/raft/vote".to_string(), b"{}".to_vec()),
    ] {
        for headers in [Vec::new(), forged.clone()] {
            let answer = raw_request(&node, method, &path, &headers, &body).await.expect("the node answers");
            assert_eq!(answer.status, 403, "{method} {path} with headers {headers:?}: {}", answer.summary());
        }
        // Signed with the cluster's key by a process of another data format (one version left
        // running from before an upgrade, or started ahead of the others): refused, and told so.
        // Signed as the versions before formats were signed (no format in the MAC, no header):
        // not authenticated. `body_hash` as the node reads it: the body's for POSTs; for shard
        // PUTs the shard hash header, absent here, so "".
        let body_hash = if method == "POST" { blake3::hash(&body).to_hex().to_string() } else { String::new() };
        let mut other = hand_signed(&secret, Some(&other_format), method, &path, &body_hash);
        let mut unformatted = hand_signed(&secret, None, method, &path, &body_hash);
        if method == "POST" {
            for headers in [&mut other, &mut unformatted] {
                headers.push((ignifuge_rpc::BODY_HASH_HEADER.to_string(), body_hash.clone()));
            }
        }
        let answer = raw_request(&node, method, &path, &other, &body).await.expect("the node answers");
        assert_eq!(answer.status, 426, "{method} {path} from format {other_format}: {}", answer.summary());
        assert!(answer.body_text().contains(&format!("format {other_format}")), "{}", answer.summary());
        let required = format!("ignifuge-internode-format/{}", ignifuge_meta::DATA_FORMAT);
        assert_eq!(answer.header("upgrade"), Some(required.as_str()), "a 426 names the format required");
        let answer = raw_request(&node, method, &path, &unformatted, &body).await.expect("the node answers");
        assert_eq!(answer.status, 403, "{method} {path} signed without a format: {}", answer.summary());
    }
    // The node's health check is the one open route; it names the node's data format.
    let health = raw_request(&node, "GET", "/v1/health", &[], b"").await.expect("health");
    assert_eq!(health.status, 200);
    assert_eq!(health.header(ignifuge_rpc::FORMAT_HEADER), Some(ignifuge_meta::DATA_FORMAT));
    assert_bytes_eq(&get_object(&s3, "internode", "secret").await, &vec![7u8; OBJECT_SIZE], "nothing was deleted");

    // Signed, a metadata query is answered by the leader (the others redirect): in MessagePack
    // when the request asks for it, as every process's client does (`ignifuge_rpc::encoding`),
    // in JSON otherwise.
    use ignifuge_rpc::encoding::{ANSWER_JSON, ANSWER_MSGPACK, decode_answer};
    let auth = ignifuge_rpc::InternodeAuth::new(&secret);
    let query = serde_json::to_vec(&ignifuge_meta::Query::Bucket(ignifuge_types::BucketName::new("internode")))
        .expect("a query serialises");
    let hash = blake3::hash(&query).to_hex().to_string();
    let path = ignifuge_rpc::paths::META_QUERY;
    for accept in [None, Some(ANSWER_MSGPACK)] {
        let deadline = Instant::now() + Duration::from_secs(30);
        let answer = 'asked: loop {
            for node in cluster.storage_nodes() {
                let mut headers = signed(&auth, "POST", path, &hash);
                headers.push((ignifuge_rpc::BODY_HASH_HEADER.to_string(), hash.clone()));
                headers.extend(accept.map(|a| ("Accept".to_string(), a.to_string())));
                let answer = raw_request(&node.listen, "POST", path, &headers, &query).await.expect("the node answers");
                if answer.status == 200 {
                    break 'asked answer;
                }
                assert!(matches!(answer.status, 421 | 503), "{}: {}", node.node_id, answer.summary());
            }
            assert!(Instant::now() < deadline, "no voter answered as the leader");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let content_type = answer.header("content-type");
        assert_eq!(content_type, Some(accept.unwrap_or(ANSWER_JSON)));
        let decoded: Result<ignifuge_meta::Answer, ignifuge_meta::MetaError> =
            decode_answer(content_type, &answer.body).expect("the answer decodes as its type says");
        assert!(format!("{decoded:?}").contains("internode"), "{decoded:?}");
        if accept.is_some() {
            assert!(serde_json::from_slice::<serde_json::Value>(&answer.body).is_err(), "not JSON");
        }
    }
}

/// The headers of an internode request signed by this version (`InternodeAuth`).
fn signed(auth: &ignifuge_rpc::InternodeAuth, method: &str, path: &str, body_hash: &str) -> Vec<(String, String)> {
    auth.signed_headers(method, path, body_hash).into_iter().map(|(name, value)| (name.to_string(), value)).collect()
}

/// The headers of an internode request signed by hand as a process of data format `format`
/// would sign it, or (`None`) as the versions before formats were signed: a keyed BLAKE3 MAC
/// over the parts below, the key derived from the cluster secret.
fn hand_signed(
    secret: &[u8],
    format: Option<&str>,
    method: &str,
    path: &str,
    body_hash: &str,
) -> Vec<(String, String)> {
    let key = blake3::derive_key("ignifuge 2026 internode request mac v1", secret);
    let time = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_millis())
        .to_string();
    let mut mac = blake3::Hasher::new_keyed(&key);
    if let Some(format) = format {
        mac.update(format.as_bytes()).update(b"\n");
    }
    for part in [method, "\n", path, "\n", &time, "\n", body_hash] {
        mac.update(part.as_bytes());
    }
    let mut headers = vec![
        (ignifuge_rpc::TIME_HEADER.to_string(), time),
        (ignifuge_rpc::AUTH_HEADER.to_string(), mac.finalize().to_hex().to_string()),
    ];
    headers.extend(format.map(|f| (ignifuge_rpc::FORMAT_HEADER.to_string(), f.to_string())));
    headers
}

/// A shard read asked to be checked by its reader (`ShardCheck::ByReader`, as the gateways ask)
/// is sent as read, with no CRC; one the node checks carries the CRC. A data shard corrupted on
/// disk goes to such a reader as it is (the node does not hash it), so the gateway's own check
/// fails, it asks the node to check the copy, and the node sets it aside: the GET still reads the
/// object whole, around it, and the copy leaves the node's inventory so repair rebuilds it.
#[tokio::test(flavor = "multi_thread")]
async fn a_shard_corrupted_on_disk_is_caught_by_its_reader_and_set_aside_by_its_node() {
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "bitrot").await;
    let data = TestRng::new("a_shard_corrupted_on_disk_is_caught_by_its_reader").bytes(OBJECT_SIZE);
    put_object(&s3, "bitrot", "object", &data).await;
    let secret = std::fs::read_to_string(cluster.data_dir.join("cluster.secret")).expect("the cluster secret");
    let auth = ignifuge_rpc::InternodeAuth::new(&hex::decode(secret.trim()).expect("hex secret"));
    // A data shard (5+4: shards 0 to 4), which a whole GET reads (1 MiB shards: never cached).
    let (holder, file) = node_ids()
        .into_iter()
        .flat_map(|n| cluster.shard_files(&n).into_iter().map(move |f| (n.clone(), f)))
        .find(|(_, f)| {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.split_once('.').and_then(|(_, shard)| shard.parse::<u32>().ok()).is_some_and(|shard| shard < 5)
        })
        .expect("a data shard file");
    let blob = file.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).expect("blob dir").to_string();
    let (stripe, index) =
        file.file_name().and_then(|n| n.to_str()).and_then(|n| n.split_once('.')).expect("stripe.shard");
    let listen = cluster.processes.iter().find(|p| p.node_id == holder).expect("holder").listen.clone();
    let id = ignifuge_types::ShardId {
        blob: ignifuge_types::BlobId::new(&blob),
        stripe: ignifuge_types::StripeIndex(stripe.parse().expect("stripe")),
        shard: ignifuge_types::ShardIndex(index.parse().expect("shard")),
    };
    let read_shard = |check: ignifuge_rpc::ShardCheck| {
        let path = ignifuge_rpc::paths::shard_get(&id, check);
        let headers = signed(&auth, "GET", &path, "");
        let listen = listen.clone();
        async move { raw_request(&listen, "GET", &path, &headers, b"").await.expect("the node answers") }
    };
    let written = std::fs::read(&file).expect("the shard file");
    let by_node = read_shard(ignifuge_rpc::ShardCheck::ByNode).await;
    assert_eq!(by_node.status, 200, "{}", by_node.summary());
    assert!(by_node.header(ignifuge_rpc::SHARD_CRC_HEADER).is_some(), "checked by the node: a CRC");
    assert_eq!(by_node.body, written[32..]);
    flip_bytes_in_middle(&file, 64);
    let by_reader = read_shard(ignifuge_rpc::ShardCheck::ByReader).await;
    assert_eq!(by_reader.status, 200, "{}", by_reader.summary());
    assert!(by_reader.header(ignifuge_rpc::SHARD_CRC_HEADER).is_none(), "checked by the reader: no CRC");
    assert_eq!(by_reader.body, std::fs::read(&file).expect("the shard file")[32..], "sent as read");
    assert_ne!(by_reader.body, written[32..]);
    assert!(file.exists(), "not checked, not set aside");

    assert_bytes_eq(&get_object(&s3, "bitrot", "object").await, &data, "read around the corrupt shard");
    // Set aside by the node's own check, which the gateway asks for in a task of its own (a
    // hedged read may have been done without the shard before that check answered).
    let deadline = Instant::now() + Duration::from_secs(10);
    while file.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!file.exists(), "the gateway's failed check had the node check the copy and set it aside");
    assert_eq!(read_shard(ignifuge_rpc::ShardCheck::ByReader).await.status, 404, "no longer served");
    assert_bytes_eq(&get_object(&cluster.s3_client_at(1), "bitrot", "object").await, &data, "read again, via dc2");
}

/// A hung node (SIGSTOP: it accepts connections and never answers) must not stall reads: the
/// gateway hedges slow shard reads with parity instead of waiting for the 10 s shard timeout.
#[tokio::test(flavor = "multi_thread")]
async fn reads_do_not_wait_for_a_hung_node() {
    let cluster = Cluster::start().await;
    let mut rng = TestRng::new("reads_do_not_wait_for_a_hung_node");
    let s3 = cluster.s3_client();
    create_bucket(&s3, "hung").await;
    let data = rng.bytes(OBJECT_SIZE);
    put_object(&s3, "hung", "object", &data).await;
    // Hang a node that holds a data shard (every node holds one shard of each stripe: file
    // `<stripe>.<shard>`, data shards 0-4) and is not the metadata leader (a hung leader stalls
    // every request until an election, by design).
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).leader.clone();
    let data_shard_of = |node: &str| {
        cluster.shard_files(node).iter().find_map(|file| {
            let name = file.file_name()?.to_str()?;
            let (stripe, shard) = name.split_once('.')?;
            let (stripe, shard) = (stripe.parse::<usize>().ok()?, shard.parse::<usize>().ok()?);
            (shard < 5).then_some((stripe, shard))
        })
    };
    let (hung, (stripe, shard)) = node_ids()
        .into_iter()
        .filter(|n| Some(n) != leader.as_ref())
        .find_map(|n| data_shard_of(&n).map(|at| (n, at)))
        .expect("a node that is not the leader and holds a data shard");
    let pid = cluster.process(&hung).pid;
    // SAFETY: signals to a child of our `ignifuge dev`.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let mut slowest = Duration::ZERO;
    for round in 0..3 {
        let started = Instant::now();
        assert_bytes_eq(&get_object(&s3, "hung", "object").await, &data, &format!("GET {round} with {hung} hung"));
        slowest = slowest.max(started.elapsed());
    }
    // A few bytes of the hung node's data shard: one shard needed, so the stripe must be decoded
    // from k others (one spare for it, as the hedge asked before, waited for the timeout).
    let first = stripe * 5 * MIB + shard * MIB + 1000;
    for round in 0..3 {
        let started = Instant::now();
        let got = ok(
            s3.get_object().bucket("hung").key("object").range(format!("bytes={first}-{}", first + 99)).send().await,
            "GET a range of the hung node's shard",
        );
        let body = got.body.collect().await.expect("body").into_bytes();
        assert_bytes_eq(&body, &data[first..first + 100], &format!("range {round} with {hung} hung"));
        slowest = slowest.max(started.elapsed());
    }
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    println!("slowest GET of a 10 MiB object or of a range with a hung node: {slowest:?}");
    // A functional bound, not a benchmark: without hedging each stripe waits for the 10 s timeout.
    assert!(slowest < Duration::from_secs(5), "a GET waited {slowest:?} for a hung node");
}

/// A node marked down (one call to it failed: for `NODE_DOWN_BACKOFF_MS` reads go around it) is
/// still asked when a stripe cannot be read without it. With a datacenter out a stripe has
/// exactly k shards left, and a node back from a blip would otherwise fail every read of it for
/// seconds. Here four nodes lose their shard files (they keep answering, and the metadata keeps
/// every vote), and the link from the gateway to a fifth is cut until a read has timed out on it.
/// (Stopping the fifth node instead made it call an election when it came back, which outlasted
/// the mark.)
#[tokio::test(flavor = "multi_thread")]
async fn a_degraded_stripe_reads_from_a_node_lately_marked_down() {
    let (cluster, rules) = Cluster::start_with_rules(&[]).await;
    let mut rng = TestRng::new("a_degraded_stripe_reads_from_a_node_lately_marked_down");
    let s3 = cluster.s3_client_no_retry_at(0);
    create_bucket(&s3, "marked").await;
    let data = rng.bytes(OBJECT_SIZE);
    put_object(&s3, "marked", "object", &data).await;
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).leader.clone();
    let nodes: Vec<String> = node_ids().into_iter().filter(|n| Some(n) != leader.as_ref()).collect();
    let cut_off = &nodes[0];
    for node in &nodes[1..5] {
        let files = cluster.shard_files(node);
        assert_eq!(files.len(), 2, "{node} holds one shard of each of the 2 stripes");
        for file in files {
            std::fs::remove_file(&file).unwrap_or_else(|e| panic!("removing {}: {e}", file.display()));
        }
    }
    // Cut from every gateway (where the services run too: a repair could otherwise rebuild the
    // lost shards from the five), not from the other nodes (its metadata vote stays).
    let gateways: Vec<&str> = cluster.gateways.iter().map(|g| g.trim_start_matches("http://")).collect();
    rules.set(&format!("cut {} | {}\n", gateways.join(","), cluster.process(cut_off).listen));
    tokio::time::sleep(Duration::from_millis(200)).await; // re-read within 50 ms
    // Four shards of each stripe answer and one never does: the read fails once the call to it
    // times out, which marks it down.
    let started = Instant::now();
    let read = async {
        let got = s3.get_object().bucket("marked").key("object").send().await.ok()?;
        got.body.collect().await.ok().map(|b| b.into_bytes())
    };
    assert!(read.await.is_none(), "a GET with 4 shards of 5 needed read nothing");
    let failed = Instant::now();
    println!("the GET failed after {:?}", failed - started);
    rules.clear();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // At once, within the mark: the node marked down holds the fifth shard.
    let got = ok(s3.get_object().bucket("marked").key("object").send().await, "GET right after the link healed");
    let body = got.body.collect().await.expect("body read in full").into_bytes();
    assert_bytes_eq(&body, &data, "read from k shards, one of a node marked down");
    let since = failed.elapsed();
    println!("read back {since:?} after the first GET failed");
    assert!(since < Duration::from_millis(2_500), "the read came after the mark ran out: it proves nothing");
}
