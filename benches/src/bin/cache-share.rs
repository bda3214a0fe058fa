//! The gateway's shard cache shared by tenants (`ignifuge_gateway::datapath::shard_cache`):
//! tenant B re-reads a small hot set of shards while tenant A reads through others at a multiple
//! of B's rate, in one process against the cache itself (a read is `get`, and on a miss the
//! `insert` a fetch would make). Each workload runs twice in the same process: with the two
//! tenants' entries charged to one tenant, which is the policy before shares (one second-chance
//! queue for everything: the baseline), and with each charged to its own. Prints each tenant's
//! hit ratio after a warm-up and the CPU time per read, as a markdown table.
//!
//!   cache-share [B_READS]        (default 100000 reads of B's per run)

use bytes::Bytes;
use ignifuge_gateway::datapath::shard_cache::ShardCache;
use ignifuge_types::{BlobId, ShardId, ShardIndex, StripeIndex, TenantId};
use std::time::Instant;

/// A packed 4 KiB object's shard at 5+4 in the smallest lane's packs: about 13 KiB.
const SHARD_BYTES: usize = 13 * 1024;
/// The gateway's default capacity (`SHARD_CACHE_BYTES`).
const CACHE_BYTES: usize = 64 * 1024 * 1024;

struct Workload {
    name: &'static str,
    /// Distinct shards B reads, uniformly at random.
    b_set: u64,
    /// Distinct shards A reads, in a cycle (a scan when it never comes round).
    a_set: u64,
    /// A's reads per read of B's.
    a_per_b: u64,
}

#[derive(Default)]
struct Outcome {
    b_hits: u64,
    b_reads: u64,
    a_hits: u64,
    a_reads: u64,
    nanos_per_read: f64,
}

fn shard_id(tenant: &str, n: u64) -> ShardId {
    ShardId { blob: BlobId::new(format!("{tenant}{n:012x}")), stripe: StripeIndex(0), shard: ShardIndex(0) }
}

fn run(workload: &Workload, fair: bool, b_reads: u64) -> Outcome {
    let cache = ShardCache::new(CACHE_BYTES);
    let bytes = Bytes::from(vec![7u8; SHARD_BYTES]);
    let hash = blake3::hash(&bytes);
    let (a, b) =
        if fair { (TenantId::new("a"), TenantId::new("b")) } else { (TenantId::new("one"), TenantId::new("one")) };
    let warm_up = b_reads / 4;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut a_next = 0u64;
    let mut out = Outcome::default();
    let read = |id: ShardId, owner: &TenantId| {
        let hit = cache.get(&id, &hash).is_some();
        if !hit {
            cache.insert(id, hash, &bytes, owner);
        }
        hit
    };
    let started = Instant::now();
    for step in 0..b_reads {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b_hit = read(shard_id("b", x % workload.b_set), &b);
        let mut a_hits = 0;
        for _ in 0..workload.a_per_b {
            a_hits += u64::from(read(shard_id("a", a_next % workload.a_set), &a));
            a_next += 1;
        }
        if step >= warm_up {
            out.b_reads += 1;
            out.b_hits += u64::from(b_hit);
            out.a_reads += workload.a_per_b;
            out.a_hits += a_hits;
        }
    }
    out.nanos_per_read = started.elapsed().as_nanos() as f64 / (b_reads * (1 + workload.a_per_b)) as f64;
    out
}

fn main() {
    let b_reads: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let shards_in_cache = CACHE_BYTES / (SHARD_BYTES + ignifuge_gateway::datapath::shard_cache::ENTRY_OVERHEAD_BYTES);
    println!(
        "cache {} MiB of {} KiB shards (about {shards_in_cache} entries); {b_reads} reads of B's per run, the first quarter a warm-up",
        CACHE_BYTES >> 20,
        SHARD_BYTES >> 10
    );
    println!();
    println!(
        "| workload | A's reads per B's | B hit ratio: one queue | B: shares | A hit ratio: one queue | A: shares | CPU per read, shares / one queue |"
    );
    println!("|---|---|---|---|---|---|---|");
    let workloads = [
        Workload { name: "B: 1,600 hot shards (21 MiB); A: a scan", b_set: 1_600, a_set: u64::MAX, a_per_b: 1 },
        Workload { name: "B: 1,600 hot shards (21 MiB); A: a scan", b_set: 1_600, a_set: u64::MAX, a_per_b: 4 },
        Workload { name: "B: 1,600 hot shards (21 MiB); A: a scan", b_set: 1_600, a_set: u64::MAX, a_per_b: 16 },
        Workload { name: "B: 3,200 hot shards (42 MiB); A: a scan", b_set: 3_200, a_set: u64::MAX, a_per_b: 1 },
        Workload {
            name: "B: 1,600 hot shards (21 MiB); A: a cycle of 4,600 (60 MiB)",
            b_set: 1_600,
            a_set: 4_600,
            a_per_b: 4,
        },
    ];
    for workload in &workloads {
        let one = run(workload, false, b_reads);
        let shares = run(workload, true, b_reads);
        let ratio = |hits: u64, reads: u64| hits as f64 / reads.max(1) as f64;
        println!(
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} / {:.0} ns ({:.2}x) |",
            workload.name,
            workload.a_per_b,
            ratio(one.b_hits, one.b_reads),
            ratio(shares.b_hits, shares.b_reads),
            ratio(one.a_hits, one.a_reads),
            ratio(shares.a_hits, shares.a_reads),
            shares.nanos_per_read,
            one.nanos_per_read,
            shares.nanos_per_read / one.nanos_per_read,
        );
    }
}
