//! The cluster layout lives in the replicated metadata (issue 4): the metadata group's voters and
//! learners follow it, and every gateway places shards with it.
//!
//! - `a_lost_voter_is_replaced_by_a_new_node_through_the_layout`: every node votes (3 per
//!   datacenter); after a voter dies, `admin layout apply` names a new, empty node instead, the
//!   group adds it as a learner, promotes it by joint consensus once it has caught up, and the
//!   metadata then survives a whole datacenter plus one more voter (which, with the lost voter
//!   still a member, would have left no majority).
//! - `gateways_follow_a_node_to_its_new_address`: a storage node moves to another port; once the
//!   layout says so, every gateway writes its shards there, with no gateway restart.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const BOUND: Duration = Duration::from_secs(60);

/// `admin layout show` without its comment line: a TOML document `layout apply` accepts.
fn stored_layout(cluster: &Cluster) -> (u64, String) {
    let shown = cluster.admin(&["layout", "show", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&shown).expect("layout show --json");
    let version = doc["version"].as_u64().unwrap_or_else(|| panic!("no stored layout version in {shown}"));
    let text = cluster.admin(&["layout", "show"]);
    let toml: String = text.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect();
    (version, toml)
}

fn apply_layout(cluster: &Cluster, toml: &str) -> String {
    let path = cluster.data_dir.join(format!("layout-{}.toml", std::process::id()));
    std::fs::write(&path, toml).unwrap();
    cluster.admin(&["layout", "apply", path.to_str().unwrap()])
}

/// Polls `admin status --json` until `done` holds for one snapshot.
fn wait_for_status(cluster: &Cluster, what: &str, done: impl Fn(&MetaStatus) -> bool) -> MetaStatus {
    let deadline = Instant::now() + BOUND;
    loop {
        let status = cluster.meta_status();
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: not within {BOUND:?}; last status:\n{}", status.raw);
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn roles(status: &MetaStatus) -> (Vec<String>, Vec<String>) {
    let names = |it: &mut dyn Iterator<Item = &MemberStatus>| {
        let mut v: Vec<String> = it.map(|m| m.node.clone()).collect();
        v.sort();
        v
    };
    (names(&mut status.voters()), names(&mut status.learners()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_voter_is_replaced_by_a_new_node_through_the_layout() {
    const BUCKET: &str = "replaced-voter";
    const LOST: &str = "dc1-n1";
    const NEW: &str = "dc1-n4";
    let _serial = SERIAL.lock().await;
    let mut rng = TestRng::new("a_lost_voter_is_replaced_by_a_new_node_through_the_layout");
    let cluster = Cluster::start().await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, BUCKET).await;
    // Inline in the metadata (up to IGNIFUGE_INLINE_MAX_BYTES, 1 KiB): the test loses five storage
    // nodes in all, beyond what erasure-coded objects survive without a repair in between.
    let objects: Vec<(String, Vec<u8>)> = (0..30).map(|i| (format!("before/{i:02}"), rng.bytes(900 + i))).collect();
    for (key, data) in &objects {
        put_object(&s3, BUCKET, key, data).await;
    }

    // Every node is a voter, 3 per datacenter, each with the whole log applied.
    let status = wait_for_status(&cluster, "every member applied the leader's log", |s| {
        s.leader.is_some() && s.members.iter().all(|m| m.reachable && m.lag == Some(0))
    });
    let (voters, learners) = roles(&status);
    assert_eq!(voters, node_ids(), "{}", status.raw);
    assert!(learners.is_empty(), "{}", status.raw);

    // dc1-n1 dies for good; a new node, started empty, takes its vote.
    let lost_id = status.member(LOST).status.as_ref().expect("dc1-n1 status").id;
    cluster.kill_node(LOST);
    let (version, toml) = stored_layout(&cluster);
    let mut layout = ignifuge_rpc::ClusterConfig::parse(&toml).expect("stored layout");
    layout.nodes.push(ignifuge_rpc::NodeEndpoint {
        id: ignifuge_types::NodeId::new(NEW),
        datacenter: ignifuge_types::DatacenterId::new("dc1"),
        address: format!("127.0.0.1:{}", cluster.base_port + 41).parse().unwrap(),
        capacity_weight: 1,
    });
    for voter in layout.metadata_voters.iter_mut().filter(|v| v.0 == LOST) {
        *voter = ignifuge_types::NodeId::new(NEW);
    }
    let replaced = layout.to_toml();
    let config = cluster.data_dir.join("replaced-voter.toml");
    std::fs::write(&config, &replaced).unwrap();
    let _node = start_node(
        &config,
        &cluster.data_dir.join("cluster.secret"),
        NEW,
        &cluster.data_dir.join(NEW),
        &cluster.data_dir.join("logs/new-voter.log"),
    );
    let started = Instant::now();
    let applied = apply_layout(&cluster, &replaced);
    assert!(applied.contains(&format!("version {}", version + 1)), "{applied}");
    let mut expected: Vec<String> = node_ids().into_iter().filter(|n| n != LOST).chain([NEW.to_string()]).collect();
    expected.sort();
    let status = wait_for_status(&cluster, "dc1-n4 promoted and dc1-n1 removed", |s| {
        roles(s).0 == expected
            && s.leader.is_some()
            && s.voters()
                .filter(|v| v.node != NEW)
                .all(|v| v.status.as_ref().is_some_and(|st| st.voters.len() == 9 && !st.voters.contains(&lost_id)))
    });
    println!("voter replaced {:.1} s after `layout apply`: {}", started.elapsed().as_secs_f64(), status.summary());
    let new_status = status.member(NEW).status.clone().expect("the new voter's status");
    assert!(!new_status.unproven, "the new voter was promoted before it caught up: {}", status.raw);

    // Now a datacenter plus one more voter can be lost: 5 of the 9 voters are left, a quorum.
    // (With dc1-n1 still a member they would be 4: no majority, no metadata.)
    cluster.kill_processes(&["dc2-n1", "dc2-n2", "dc2-n3", "dc3-n1"]);
    let dc3 = cluster.s3_client_at(cluster.gateway_index("dc3"));
    let written = Instant::now();
    let after = rng.bytes(1000); // inline in the metadata, under IGNIFUGE_INLINE_MAX_BYTES
    put_object(&dc3, BUCKET, "after/one", &after).await;
    println!("first write after losing dc2 and dc3-n1: {:.1} s", written.elapsed().as_secs_f64());
    assert_eq!(get_object(&dc3, BUCKET, "after/one").await, after);
    for (key, data) in &objects {
        assert_eq!(&get_object(&dc3, BUCKET, key).await, data, "{key}");
    }
    let listed = list_all_keys(&dc3, BUCKET).await;
    assert_eq!(listed.len(), objects.len() + 1);
}

/// A storage node process started by the test itself (not by `ignifuge dev`); killed on drop.
struct ExtraNode(Child);

impl Drop for ExtraNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_node(config: &Path, secret: &Path, node_id: &str, data_dir: &Path, log: &Path) -> ExtraNode {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ignifuge"))
        .arg("node")
        .arg("--config")
        .arg(config)
        .arg("--secret-file")
        .arg(secret)
        .args(["--node-id", node_id, "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting a storage node");
    ExtraNode(child)
}

#[tokio::test(flavor = "multi_thread")]
async fn gateways_follow_a_node_to_its_new_address() {
    const BUCKET: &str = "moved-node";
    let _serial = SERIAL.lock().await;
    let mut rng = TestRng::new("gateways_follow_a_node_to_its_new_address");
    let cluster = Cluster::start_with_env(&[("IGNIFUGE_REPAIR_INTERVAL_MS", "3600000")]).await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, BUCKET).await;

    // The node that moves is the metadata leader (a voter like every node). Restarted at once,
    // openraft 0.9 resumes its leadership before any follower times out; it must then list
    // itself at its new address, or every follower would send clients (this test's `layout
    // apply` among them) to its old one, and the layout could never be changed.
    let leader = cluster.wait_for_leader(BOUND).leader.clone().expect("a leader");
    let moving: &str = &leader;
    let old_address = cluster.process(moving).listen.clone();
    let new_address = format!("127.0.0.1:{}", cluster.base_port + 40);
    let (_, toml) = stored_layout(&cluster);
    let moved = toml.replacen(&format!("address = \"{old_address}\""), &format!("address = \"{new_address}\""), 1);
    assert_ne!(moved, toml, "{moving}'s address {old_address} is not in the layout:\n{toml}");

    // The node stops and comes back on the new port with its disk; its own file says where.
    cluster.kill_node(moving);
    let config = cluster.data_dir.join("moved-node.toml");
    std::fs::write(&config, &moved).unwrap();
    let data_dir = cluster.process(moving).data_dir.clone().unwrap();
    let _node = start_node(
        &config,
        &cluster.data_dir.join("cluster.secret"),
        moving,
        &data_dir,
        &cluster.data_dir.join("logs/moved-node.log"),
    );
    apply_layout(&cluster, &moved);

    // Every gateway, without a restart, writes to the moved node once the layout says so (at
    // most one refresh, 5 s, later): each 5+4 stripe on 3x3 puts a shard on every node, so a
    // write from a gateway that still used the old port would be placed elsewhere and recorded
    // as durability debt. (The repair service, which could pay debt meanwhile, is off.)
    let deadline = Instant::now() + BOUND;
    for dc in ["dc1", "dc2", "dc3"] {
        let client = cluster.s3_client_at(cluster.gateway_index(dc));
        let data = rng.bytes(6 * 1024 * 1024); // two stripes of 5 MiB
        for attempt in 1.. {
            let (debt_before, files_before) = (debt_stripes(&cluster), cluster.shard_files(moving).len());
            let key = format!("{dc}/{attempt}");
            put_object(&client, BUCKET, &key, &data).await;
            let (debt_after, files_after) = (debt_stripes(&cluster), cluster.shard_files(moving).len());
            if debt_after == debt_before && files_after >= files_before + 2 {
                assert_eq!(get_object(&client, BUCKET, &key).await, data);
                println!("{dc}'s gateway wrote to {moving} at {new_address} after {attempt} attempt(s)");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{dc}'s gateway never wrote to {moving} at {new_address} (debt {debt_before} -> {debt_after}, \
                 files {files_before} -> {files_after})"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

fn debt_stripes(cluster: &Cluster) -> u64 {
    let report = cluster.durability();
    report["debt_stripes"].as_u64().unwrap_or_else(|| panic!("no debt_stripes in {report}"))
}

/// Runs `ignifuge admin layout apply` with `toml`; the exit status and everything it printed.
fn try_apply_layout(cluster: &Cluster, toml: &str) -> (bool, String) {
    let path = cluster.data_dir.join(format!("layout-try-{}.toml", std::process::id()));
    std::fs::write(&path, toml).unwrap();
    let output = run_with_timeout(
        Command::new(BIN).args(["admin", "--data-dir"]).arg(&cluster.data_dir).args(["layout", "apply"]).arg(&path),
        Duration::from_secs(60),
    );
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Replacing a node by a new one under another id: the new node joins the layout, the old one is
/// declared out, and it may leave the layout only once a repair round that began after that found
/// every stripe at full budget; then the cluster reports HEALTHY without it.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_leaves_the_layout_only_once_drained() {
    const OLD: &str = "dc2-n3";
    const NEW: &str = "dc2-n4";
    let _serial = SERIAL.lock().await;
    let mut rng = TestRng::new("a_node_leaves_the_layout_only_once_drained");
    let cluster = Cluster::start_with_env(&[("IGNIFUGE_REPAIR_INTERVAL_MS", "1000")]).await;
    let s3 = cluster.s3_client();
    create_bucket(&s3, "drain").await;
    let data = rng.bytes(12 * 1024 * 1024);
    put_object(&s3, "drain", "object", &data).await;

    // A fourth node in dc2, started by the test, then added to the layout.
    let (_, toml) = stored_layout(&cluster);
    let mut layout = ignifuge_rpc::ClusterConfig::parse(&toml).expect("stored layout");
    layout.nodes.push(ignifuge_rpc::NodeEndpoint {
        id: ignifuge_types::NodeId::new(NEW),
        datacenter: ignifuge_types::DatacenterId::new("dc2"),
        address: format!("127.0.0.1:{}", cluster.base_port + 41).parse().unwrap(),
        capacity_weight: 1,
    });
    // The old node is a metadata voter too: its vote moves to the new node with it.
    for voter in layout.metadata_voters.iter_mut().filter(|v| v.0 == OLD) {
        *voter = ignifuge_types::NodeId::new(NEW);
    }
    let with_new = layout.to_toml();
    let config = cluster.data_dir.join("with-new-node.toml");
    std::fs::write(&config, &with_new).unwrap();
    let new_dir = cluster.data_dir.join(NEW);
    let _node = start_node(
        &config,
        &cluster.data_dir.join("cluster.secret"),
        NEW,
        &new_dir,
        &cluster.data_dir.join("logs/new-node.log"),
    );
    apply_layout(&cluster, &with_new);

    // Declared out while it still runs: repair rounds survey it like any other node (its shards
    // present, every stripe at full budget), which is no drain: it may not leave the layout.
    let declared_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    cluster.admin(&["node", "out", OLD]);
    layout.nodes.retain(|n| n.id.0 != OLD);
    let without_old = layout.to_toml();
    let deadline = Instant::now() + BOUND;
    loop {
        let report = cluster.durability();
        let round_started = report["repair"]["started_ms"].as_i64().unwrap_or(0);
        if round_started > declared_ms + 1000 && report["repair"]["stripes_below_budget"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no clean round after the declaration: {report:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let (accepted, said) = try_apply_layout(&cluster, &without_old);
    assert!(!accepted, "a running node declared out left the layout: {said}");
    assert!(said.contains(OLD), "{said}");

    // The old node dies (still declared out); it may not leave the layout yet.
    cluster.kill_node(OLD);
    let (accepted, said) = try_apply_layout(&cluster, &without_old);
    assert!(!accepted, "a node no repair round has drained left the layout: {said}");
    assert!(said.contains(OLD) && said.contains("node out"), "{said}");

    // Once repair has rebuilt its shards elsewhere, it may.
    let deadline = Instant::now() + BOUND;
    loop {
        let (accepted, said) = try_apply_layout(&cluster, &without_old);
        if accepted {
            break;
        }
        assert!(Instant::now() < deadline, "{OLD} never became removable: {said}\n{}", cluster.durability());
        std::thread::sleep(Duration::from_millis(500));
    }
    let (_, stored) = stored_layout(&cluster);
    assert!(!stored.contains(OLD) && stored.contains(NEW), "{stored}");
    assert_eq!(get_object(&s3, "drain", "object").await, data);
    let report = cluster.wait_until_healthy(BOUND);
    println!("healthy without {OLD}: {report}");
}

/// A gateway that starts while the metadata cannot tell it the stored layout (here: its layout
/// queries fail) serves reads with its own file's addresses but writes nothing with that file:
/// once a cluster is initialised only the stored layout says where shards go (the file may name
/// a node since removed or moved, or another geometry). Its PUTs get 503 SlowDown, which clients
/// retry, until the layout is read; then they succeed.
#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_writes_nothing_until_it_has_read_the_stored_layout() {
    const BUCKET: &str = "unknown-layout";
    let _serial = SERIAL.lock().await;
    let mut rng = TestRng::new("a_gateway_writes_nothing_until_it_has_read_the_stored_layout");
    // Repair rounds every second: the restarted gateway would run one within the test's window.
    let (mut cluster, rules) = Cluster::start_with_rules(&[("IGNIFUGE_REPAIR_INTERVAL_MS", "1000")]).await;
    let index = cluster.gateway_index("dc1");
    let s3 = cluster.s3_client_at(index);
    create_bucket(&s3, BUCKET).await;
    let before = rng.bytes(6 * 1024 * 1024);
    put_object(&s3, BUCKET, "before", &before).await;

    let gateway =
        cluster.processes.iter().find(|p| p.role == "gateway" && p.datacenter == "dc1").expect("dc1's gateway").clone();
    rules.set(&format!("fail {} gateway.layout-query-error\n", gateway.listen));
    std::thread::sleep(Duration::from_millis(4 * ignifuge_faults::RULES_REREAD_MS));
    let log_path = cluster.data_dir.join("logs/gateway-dc1.log");
    let logged_before = std::fs::metadata(&log_path).map(|m| m.len() as usize).unwrap_or(0);
    cluster.kill_node(&gateway.node_id);
    cluster.revive(BOUND);

    // Striped (6 MiB) and packed (64 KiB) bodies alike are refused, again and again, while the
    // layout stays unknown; the object written before reads back meanwhile.
    let no_retry = cluster.s3_client_no_retry_at(index);
    let refused_until = Instant::now() + Duration::from_secs(3);
    let mut refusals = 0;
    while Instant::now() < refused_until {
        for (key, size) in [("striped", 6 * 1024 * 1024), ("packed", 64 * 1024)] {
            let body = aws_sdk_s3::primitives::ByteStream::from(rng.bytes(size));
            let put = no_retry.put_object().bucket(BUCKET).key(key).body(body).send().await;
            assert_s3_error(put, 503, &["SlowDown"], "a PUT through a gateway that has not read the layout");
            refusals += 1;
        }
        assert_bytes_eq(&get_object(&no_retry, BUCKET, "before").await, &before, "a GET meanwhile");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for key in ["striped", "packed"] {
        let head = no_retry.head_object().bucket(BUCKET).key(key).send().await;
        assert_status(head, 404, "a refused PUT left nothing visible");
    }
    println!("{refusals} PUTs refused while the layout was unknown");
    // Nor did its background services judge the cluster by its file.
    let log = std::fs::read(&log_path).expect("dc1's gateway log");
    let since_restart = String::from_utf8_lossy(&log[logged_before.min(log.len())..]);
    assert!(
        since_restart.contains("this round waits for it"),
        "the restarted gateway ran background rounds without the stored layout (or never tried)"
    );

    // The metadata answers again: the gateway reads the layout within a retry, and writes.
    rules.clear();
    let data = rng.bytes(6 * 1024 * 1024);
    let deadline = Instant::now() + BOUND;
    loop {
        let body = aws_sdk_s3::primitives::ByteStream::from(data.clone());
        match no_retry.put_object().bucket(BUCKET).key("after").body(body).send().await {
            Ok(_) => break,
            Err(e) => {
                let info = error_info(&e);
                assert_eq!(info.status, Some(503), "only SlowDown while the layout is read: {info:?}");
                assert!(Instant::now() < deadline, "the gateway never wrote after the layout could be read: {info:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert_bytes_eq(&get_object(&s3, BUCKET, "after").await, &data, "written once the layout was read");
}
