//! Metadata commit latency and small-object commit rate: three Raft voters (one process, real
//! RocksDB stores, the real internode HTTP transport on 127.0.0.1) against the single-node
//! state machine they replaced (`LocalMetadata` over RocksDB), measured in the same run.
//! Run: `cargo bench -p ignifuge-benches --bench metadata`. Prints a table and one JSON line.

mod common;

use ignifuge_kv::{KvStore, RocksKv};
use ignifuge_meta::{
    BucketRecord, BucketRef, Command, DataLocation, LocalMetadata, Metadata, TenantRecord, WriteCondition,
};
use ignifuge_raft::RaftMetadata;
use ignifuge_rpc::{InternodeAuth, NodeClient};
use ignifuge_storage_node::{NodeServer, ShardStore};
use ignifuge_types::{BucketIncarnation, BucketName, TenantId};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Commands per sequential latency run, and per concurrent rate run.
const SEQUENTIAL_COMMANDS: usize = 300;
const CONCURRENT_COMMANDS: usize = 3_000;
const CONCURRENCY: usize = 32;

fn object(i: usize) -> Command {
    let body = vec![(i % 251) as u8; 4096];
    Command::PutObject {
        bucket: BucketRef {
            name: BucketName::new("bench"),
            tenant: TenantId::new("t"),
            incarnation: BucketIncarnation::new("bench"),
        },
        record: common::object_record(&format!("key-{i:08}"), i, 0, DataLocation::Inline(body), 4096),
        condition: WriteCondition::default(),
        leader_ms: None,
    }
}

fn setup_commands() -> Vec<Command> {
    vec![
        Command::CreateTenant(TenantRecord { id: TenantId::new("t"), created_ms: 0, public_access_block: None }),
        Command::CreateBucket(BucketRecord::new(
            BucketName::new("bench"),
            TenantId::new("t"),
            "us-east-1".into(),
            0,
            BucketIncarnation::new("bench"),
        )),
    ]
}

struct Measured {
    p50_us: f64,
    p99_us: f64,
    rate_per_s: f64,
}

async fn measure(metadata: Arc<dyn Metadata>, offset: usize) -> Measured {
    let mut latencies = Vec::with_capacity(SEQUENTIAL_COMMANDS);
    for i in 0..SEQUENTIAL_COMMANDS {
        let t = Instant::now();
        metadata.apply(object(offset + i)).await.expect("commit");
        latencies.push(t.elapsed());
    }
    latencies.sort();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let metadata = metadata.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = worker;
            while i < CONCURRENT_COMMANDS {
                metadata.apply(object(offset + SEQUENTIAL_COMMANDS + i)).await.expect("commit");
                i += CONCURRENCY;
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    let elapsed = start.elapsed();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    Measured {
        p50_us: us(latencies[latencies.len() / 2]),
        p99_us: us(latencies[latencies.len() * 99 / 100]),
        rate_per_s: CONCURRENT_COMMANDS as f64 / elapsed.as_secs_f64(),
    }
}

/// The voters of a Raft group in this process, each with its own RocksDB and internode server on
/// 127.0.0.1. Proposals and queries go to whichever voter leads now: the first leader of a fresh
/// group can lose an election soon after, as on any cluster.
struct RaftAdapter(Vec<Arc<RaftMetadata>>);

/// Attempts of one proposal or query while leadership moves (50 ms apart: 10 s).
const LEADER_ATTEMPTS: usize = 200;

impl RaftAdapter {
    async fn leader(&self) -> Arc<RaftMetadata> {
        for _ in 0..LEADER_ATTEMPTS {
            if let Some(l) = self.0.iter().find(|r| r.status().leader == Some(r.status().id)) {
                return l.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no leader within 10 s");
    }
}

#[async_trait::async_trait]
impl Metadata for RaftAdapter {
    async fn apply(&self, command: Command) -> Result<ignifuge_meta::Outcome, ignifuge_meta::MetaError> {
        // One id for every attempt: a proposal applied by a leader that then lost leadership is
        // answered from its recorded outcome, never applied twice.
        let id = ignifuge_types::ProposalId::new(format!("{:032x}", rand::random::<u128>()));
        for _ in 0..LEADER_ATTEMPTS {
            let proposal = ignifuge_meta::Proposal {
                id: id.clone(),
                issued_ms: 0,
                aged_by_entries: true,
                command: command.clone(),
            };
            match self.leader().await.apply(proposal).await {
                Ok(outcome) => return outcome,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        panic!("no leader took the proposal within 10 s");
    }
    async fn query(&self, query: ignifuge_meta::Query) -> Result<ignifuge_meta::Answer, ignifuge_meta::MetaError> {
        for _ in 0..LEADER_ATTEMPTS {
            match self.leader().await.query(query.clone()).await {
                Ok(answer) => return answer,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        panic!("no leader answered the query within 10 s");
    }
}

/// A Raft group of `voters` replicas in this process, initialised, with the setup commands
/// applied; returns its leader.
async fn raft_group(dir: &std::path::Path, name: &str, voters: u64, secret: &[u8]) -> Arc<dyn Metadata> {
    let mut members = BTreeMap::new();
    let mut replicas = Vec::new();
    for id in 1..=voters {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let kv: Arc<dyn KvStore> = Arc::new(RocksKv::open(&dir.join(format!("{name}-raft{id}"))).expect("rocksdb"));
        let start = ignifuge_storage_node::ReplicaStart {
            id,
            kv,
            snapshot_dir: dir.join(format!("{name}-snapshots{id}")),
            client: NodeClient::new(Arc::new(InternodeAuth::new(secret))),
            tuning: Default::default(),
            address: address.to_string(),
        };
        let keeper = ignifuge_storage_node::MetadataReplica::start(start).await.expect("raft");
        let replica = keeper.current();
        let index: Arc<dyn KvStore> = Arc::new(ignifuge_kv::MemoryKv::default());
        let store = Arc::new(ShardStore::open(&dir.join(format!("{name}-shards{id}")), index).expect("store"));
        let scrubber = Arc::new(ignifuge_storage_node::Scrubber::new(store.clone(), Default::default()));
        let server = Arc::new(NodeServer { store, scrubber, metadata: Some(keeper), auth: InternodeAuth::new(secret) });
        tokio::spawn(ignifuge_storage_node::serve(listener, server));
        members.insert(id, address.to_string());
        replicas.push(replica);
    }
    // Every voter starts with the group's first membership (as `ignifuge dev` does): a replica
    // that starts empty does not vote until it has caught up with a confirmed leader.
    for replica in &replicas {
        replica.initialize(&members).await.expect("initialize");
    }
    let raft: Arc<dyn Metadata> = Arc::new(RaftAdapter(replicas));
    for c in setup_commands() {
        raft.apply(c).await.expect("setup");
    }
    raft
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = [7u8; 32];

        // Baseline: the single-node state machine, fsync per command.
        let kv: Arc<dyn KvStore> = Arc::new(RocksKv::open(&dir.path().join("single")).expect("rocksdb"));
        let single = Arc::new(LocalMetadata::new(kv));
        for c in setup_commands() {
            single.apply(c).await.expect("setup");
        }
        let baseline = measure(single, 0).await;

        // Three voters (one per datacenter, the current design) and nine (three per datacenter,
        // the alternative that would give the metadata the data's budget) over loopback HTTP.
        let replicated = measure(raft_group(dir.path(), "three", 3, &secret).await, 1_000_000).await;
        let nine = measure(raft_group(dir.path(), "nine", 9, &secret).await, 2_000_000).await;
        // Six (two per datacenter, quorum 4): the smallest group whose every committed entry is
        // on a surviving voter after a datacenter plus one more node are lost (4 + 3 > 6).
        let six = measure(raft_group(dir.path(), "six", 6, &secret).await, 3_000_000).await;

        println!("{:<34} {:>12} {:>12} {:>14}", "metadata", "p50 commit", "p99 commit", "commits/s @32");
        for (name, m) in [
            ("single node (LocalMetadata, RocksDB)", &baseline),
            ("raft, 3 voters, loopback HTTP", &replicated),
            ("raft, 6 voters, loopback HTTP", &six),
            ("raft, 9 voters, loopback HTTP", &nine),
        ] {
            println!("{name:<34} {:>10.0}us {:>10.0}us {:>14.0}", m.p50_us, m.p99_us, m.rate_per_s);
        }
        println!(
            "ratio raft/single: p50 latency {:.2}x, rate {:.2}x; 9 voters / 3 voters: p50 latency {:.2}x, rate {:.2}x",
            replicated.p50_us / baseline.p50_us,
            replicated.rate_per_s / baseline.rate_per_s,
            nine.p50_us / replicated.p50_us,
            nine.rate_per_s / replicated.rate_per_s
        );
        println!(
            "6 voters / 3 voters: p50 latency {:.2}x, rate {:.2}x",
            six.p50_us / replicated.p50_us,
            six.rate_per_s / replicated.rate_per_s
        );
        println!(
            "{}",
            serde_json::json!({
                "bench": "metadata",
                "single": {"p50_us": baseline.p50_us, "p99_us": baseline.p99_us, "rate_per_s": baseline.rate_per_s},
                "raft3": {"p50_us": replicated.p50_us, "p99_us": replicated.p99_us, "rate_per_s": replicated.rate_per_s},
                "raft6": {"p50_us": six.p50_us, "p99_us": six.p99_us, "rate_per_s": six.rate_per_s},
                "raft9": {"p50_us": nine.p50_us, "p99_us": nine.p99_us, "rate_per_s": nine.rate_per_s},
                "latency_ratio": replicated.p50_us / baseline.p50_us,
                "rate_ratio": replicated.rate_per_s / baseline.rate_per_s,
            })
        );
    });
}
