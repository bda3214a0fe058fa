//! The metadata at scale (issue 15, point 5): one bucket of SCALE_OBJECTS objects (default
//! 1,000,000; the 10 million figure is `SCALE_OBJECTS=10000000`) next to one of 10,000, in one
//! RocksDB store as on a metadata voter. Reports bytes on disk per object, the store's bytes by
//! key family, the process's resident memory, and GET (`Query::Object`) and ListObjectsV2 page
//! latencies in both buckets, interleaved, with the ratio big / small.
//!
//! How the objects are made: through the state machine's replicated apply path
//! (`StateMachine::apply_proposal_logged`, what every voter runs for a committed entry), one
//! `Command::PutObject` per object exactly as the gateway proposes it for a 1 MiB PUT from the
//! AWS CLI (5+4, one stripe of 9 shard records, Content-Type, CRC64NVME), with proposal times 1 ms
//! apart so that the proposal ids age out of the dedup window as they do in a live cluster. No
//! Raft log, network or fsync: those cost time per object, not space or memory at rest.
//! SCALE_KEY_BYTES pads every key to that length (default: `dir-NN/object-NNNNNNNNN`, 24 bytes),
//! with `x` (which compression all but erases), or with letters that differ from key to key
//! (`SCALE_KEY_FILL=random`: the store's worst case, as for long keys that share little).
//! Then the snapshot a voter would build of that state (`ignifuge_raft::snapshot_file::write`:
//! every pair, LZ4, fsynced) and its install on an empty store (`install`, as a lagging replica
//! does), each with its time, CPU and the process's peak memory during it, the time of the state
//! digest every replica computes for `admin digest --agree`, and a check that the installed
//! state's digest is the source's (`SCALE_SNAPSHOT=0` skips this part).
//! Run: `cargo bench -p ignifuge-benches --bench scale`. Prints tables and one JSON line.

use ignifuge_kv::{KvStore, RocksKv, WriteBatch};
mod common;

use ignifuge_meta::{
    Answer, BucketRecord, BucketRef, Command, ListRequest, Proposal, Query, StateMachine, TenantRecord, WriteCondition,
};
use ignifuge_types::{BlobId, BucketIncarnation, BucketName, ObjectKey, ProposalId, TenantId};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SMALL_OBJECTS: usize = 10_000;
const SAMPLES: usize = 2_000;
const LIST_ROUNDS: usize = 30;
const EPOCH_MS: i64 = 1_790_000_000_000;

/// How keys are padded: to this many bytes, with `x` or with letters that differ per key.
#[derive(Clone, Copy)]
struct Padding {
    to: usize,
    random: bool,
}

fn key(i: usize, pad: Padding) -> String {
    let mut k = format!("dir-{:02}/object-{:09}", i % 100, i);
    let mut state = i as u64 ^ 0x9E37_79B9_7F4A_7C15;
    while k.len() < pad.to {
        if pad.random {
            // splitmix64: a letter per step, a different sequence per key.
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            k.push((b'a' + ((z ^ (z >> 31)) % 26) as u8) as char);
        } else {
            k.push('x');
        }
    }
    k
}

fn put(bucket: &str, key: String, i: usize, now_ms: i64) -> Command {
    let blob = BlobId::new(format!("{:032x}", ((bucket.len() as u128) << 100) + i as u128));
    Command::PutObject {
        bucket: BucketRef {
            name: BucketName::new(bucket),
            tenant: TenantId::new("t"),
            incarnation: BucketIncarnation::new(bucket),
        },
        record: common::object_record(&key, i, now_ms, common::one_stripe(blob, i, now_ms), 1 << 20),
        condition: WriteCondition::default(),
        leader_ms: None,
    }
}

/// Applies `command` as a committed log entry at `now_ms`.
fn apply(machine: &StateMachine, id: u128, now_ms: i64, command: Command) {
    let proposal =
        Proposal { id: ProposalId::new(format!("{id:032x}")), issued_ms: now_ms, aged_by_entries: true, command };
    // The proposal's id is its log position here (one proposal per entry, from 1).
    machine.apply_proposal_logged(proposal, id as u64 + 1, WriteBatch::new()).expect("store").expect("command");
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Resets the process's peak resident memory (`VmHWM`) to its current size; false where the
/// kernel refuses (the peak is then the process's since it started).
fn reset_peak_memory() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").map_err(|e| eprintln!("VmHWM not reset: {e}")).is_ok()
}

/// CPU seconds (user + system) used by the process so far, every thread included.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// What one snapshot step cost: wall and CPU seconds, resident memory before and at its peak.
struct Step {
    secs: f64,
    cpu_secs: f64,
    rss_before_mib: u64,
    peak_mib: u64,
}

fn measured<T>(run: impl FnOnce() -> T) -> (T, Step) {
    let _ = reset_peak_memory();
    let rss_before_mib = status_kib("VmRSS:") / 1024;
    let (cpu, t) = (cpu_secs(), Instant::now());
    let out = run();
    let step = Step {
        secs: t.elapsed().as_secs_f64(),
        cpu_secs: cpu_secs() - cpu,
        rss_before_mib,
        peak_mib: status_kib("VmHWM:") / 1024,
    };
    (out, step)
}

/// Builds a snapshot of `kv` as a voter does, installs it on an empty store as a lagging replica
/// does, checks the installed state is the same, and prints what each step cost.
fn snapshot_round_trip(kv: &dyn KvStore, base: &std::path::Path, objects: u64) -> String {
    use ignifuge_raft::snapshot_file;
    let files = tempfile::tempdir_in(base).expect("tempdir");
    let path = files.path().join("snapshot");
    let (written, build) = measured(|| {
        let view = kv.snapshot().expect("a view of the store");
        snapshot_file::write(view.as_ref(), &path).expect("snapshot write")
    });
    let file_bytes = std::fs::metadata(&path).expect("snapshot file").len();
    let id = format!("bench-{}", &written.file_hash.to_hex()[..16]);
    let target_dir = tempfile::tempdir_in(base).expect("tempdir");
    let target = RocksKv::open(target_dir.path()).expect("rocksdb");
    let (installed, install) =
        measured(|| snapshot_file::install(&target, &path, &id, WriteBatch::new()).expect("snapshot install"));
    assert_eq!(installed, written.state_bytes, "the install read every pair written");
    let digest = |kv: &dyn KvStore| snapshot_file::digest(kv.snapshot().expect("view").as_ref()).expect("digest");
    // What every replica hashes for `admin digest` and `admin digest --agree`.
    let (source_digest, hash) = measured(|| digest(kv));
    assert_eq!(digest(&target), source_digest, "the installed state is the source's");
    drop(target);
    let installed_disk = dir_bytes(target_dir.path());
    println!();
    println!(
        "snapshot of {objects} objects: {} bytes of state, a file of {file_bytes} bytes ({:.1} per object); the installed store {installed_disk} bytes on disk",
        written.state_bytes,
        file_bytes as f64 / objects as f64
    );
    println!();
    println!("| step | seconds | CPU seconds | resident memory before | peak during |");
    println!("|---|---|---|---|---|");
    for (name, step) in [
        ("build (write the file)", &build),
        ("install on an empty store", &install),
        ("state digest (what `admin digest --agree` hashes on each replica)", &hash),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} | {} MiB | {} MiB |",
            step.secs, step.cpu_secs, step.rss_before_mib, step.peak_mib
        );
    }
    format!(
        r#","snapshot":{{"state_bytes":{},"file_bytes":{file_bytes},"build_secs":{:.1},"build_peak_mib":{},"install_secs":{:.1},"install_peak_mib":{},"digest_secs":{:.1},"digest_cpu_secs":{:.1}}}"#,
        written.state_bytes, build.secs, build.peak_mib, install.secs, install.peak_mib, hash.secs, hash.cpu_secs
    )
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// Keys and bytes (key + value) of the store by family: the first segment, and the second for
/// catalog keys (`c/bucket`, ...).
fn families(kv: &dyn KvStore) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut start = Vec::new();
    loop {
        let page = kv.scan(&start, None, 10_000).expect("scan");
        let Some((last, _)) = page.last() else { break };
        start = last.clone();
        start.push(0);
        for (k, v) in &page {
            let text = String::from_utf8_lossy(k);
            let mut parts = text.splitn(3, '/');
            let first = parts.next().unwrap_or("");
            let family = if first == "c" { format!("c/{}", parts.next().unwrap_or("")) } else { first.to_string() };
            let entry = out.entry(family).or_default();
            entry.0 += 1;
            entry.1 += (k.len() + v.len()) as u64;
        }
    }
    out
}

fn percentile(xs: &mut [Duration], p: usize) -> f64 {
    xs.sort();
    xs[(xs.len() * p / 100).min(xs.len() - 1)].as_secs_f64() * 1e6
}

fn get(machine: &StateMachine, bucket: &str, key: String) -> Duration {
    let t = Instant::now();
    let answer = machine
        .query(Query::Object {
            tenant: Some(TenantId::new("t")),
            bucket: BucketName::new(bucket),
            key: ObjectKey::new(key),
            stripes: 16,
        })
        .expect("object");
    let elapsed = t.elapsed();
    assert!(matches!(answer, Answer::Object(_)), "unexpected answer");
    elapsed
}

fn list(machine: &StateMachine, bucket: &str, request: ListRequest) -> Duration {
    let t = Instant::now();
    let answer = machine
        .query(Query::ListObjects { bucket: BucketName::new(bucket), incarnation: None, request })
        .expect("list");
    let elapsed = t.elapsed();
    let Answer::Objects(page) = answer else { panic!("unexpected answer") };
    assert!(page.objects.len() + page.common_prefixes.len() > 0, "an empty page");
    elapsed
}

fn main() {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<usize>().ok());
    let big = var("SCALE_OBJECTS").unwrap_or(1_000_000);
    let pad = Padding {
        to: var("SCALE_KEY_BYTES").unwrap_or(0),
        random: std::env::var("SCALE_KEY_FILL").is_ok_and(|f| f == "random"),
    };
    let base = std::path::PathBuf::from(std::env::var("SCALE_DIR").unwrap_or_else(|_| "/var/tmp".into()));
    let dir = tempfile::tempdir_in(&base).expect("tempdir");
    let kv: Arc<dyn KvStore> = Arc::new(RocksKv::open(dir.path()).expect("rocksdb"));
    let machine = StateMachine::new(kv.clone());
    let rss_empty = status_kib("VmRSS:");
    let mut id: u128 = 1;
    let mut now = EPOCH_MS;
    let mut next = |now: &mut i64| {
        id += 1;
        *now += 1;
        (id, *now)
    };
    let (i, t) = next(&mut now);
    apply(
        &machine,
        i,
        t,
        Command::CreateTenant(TenantRecord { id: TenantId::new("t"), created_ms: t, public_access_block: None }),
    );
    for bucket in ["small", "big"] {
        let (i, t) = next(&mut now);
        let record = BucketRecord::new(
            BucketName::new(bucket),
            TenantId::new("t"),
            "us-east-1".into(),
            t,
            BucketIncarnation::new(bucket),
        );
        apply(&machine, i, t, Command::CreateBucket(record));
    }
    let started = Instant::now();
    for (bucket, count) in [("small", SMALL_OBJECTS), ("big", big)] {
        for n in 0..count {
            let (i, t) = next(&mut now);
            apply(&machine, i, t, put(bucket, key(n, pad), n, t));
            if n > 0 && n % 1_000_000 == 0 {
                eprintln!("{bucket}: {n} objects, {:.0} s", started.elapsed().as_secs_f64());
            }
        }
    }
    let fill_secs = started.elapsed().as_secs_f64();
    let objects = (SMALL_OBJECTS + big) as u64;
    let rss_filled = status_kib("VmRSS:");

    // Latencies, interleaved between the buckets, random keys.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let (mut small_gets, mut big_gets) = (Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        small_gets.push(get(&machine, "small", key(random(SMALL_OBJECTS), pad)));
        big_gets.push(get(&machine, "big", key(random(big), pad)));
    }
    let (mut small_first, mut big_first, mut small_middle, mut big_middle) = (vec![], vec![], vec![], vec![]);
    let first = || ListRequest { max_keys: 1000, ..Default::default() };
    // Keys sort by directory first: the middle of the bucket is in dir-50, at its middle object.
    let middle = |n: usize| ListRequest {
        start_after: Some(key(n / 2 / 100 * 100 + 50, pad)),
        max_keys: 1000,
        ..Default::default()
    };
    for _ in 0..LIST_ROUNDS {
        small_first.push(list(&machine, "small", first()));
        big_first.push(list(&machine, "big", first()));
        small_middle.push(list(&machine, "small", middle(SMALL_OBJECTS)));
        big_middle.push(list(&machine, "big", middle(big)));
    }
    let rss_after = status_kib("VmRSS:");
    let hwm = status_kib("VmHWM:");

    let families = families(kv.as_ref());
    let snapshot = if std::env::var("SCALE_SNAPSHOT").is_ok_and(|v| v == "0") {
        String::new()
    } else {
        snapshot_round_trip(kv.as_ref(), &base, (SMALL_OBJECTS + big) as u64)
    };
    drop(machine);
    drop(kv);
    let disk = dir_bytes(dir.path());

    println!("filled {objects} objects (keys of {} bytes) in {fill_secs:.0} s", key(0, pad).len());
    println!();
    println!("| key family | keys | bytes (key + value) | per object |");
    println!("|---|---|---|---|");
    for (family, (keys, bytes)) in &families {
        println!("| `{family}` | {keys} | {bytes} | {:.1} |", *bytes as f64 / objects as f64);
    }
    let logical: u64 = families.values().map(|(_, b)| b).sum();
    println!("| all | | {logical} | {:.1} |", logical as f64 / objects as f64);
    println!();
    println!(
        "on disk (RocksDB files, LZ4, as compaction left them): {disk} bytes, {:.1} per object",
        disk as f64 / objects as f64
    );
    println!(
        "resident memory: {} MiB empty, {} MiB filled, {} MiB after the reads, peak {} MiB",
        rss_empty / 1024,
        rss_filled / 1024,
        rss_after / 1024,
        hwm / 1024
    );
    println!();
    println!("| operation | {SMALL_OBJECTS} objects (us) | {big} objects (us) | ratio |");
    println!("|---|---|---|---|");
    let mut json = Vec::new();
    for (name, small, big_xs, p) in [
        ("GET record, p50", &mut small_gets.clone(), &mut big_gets.clone(), 50),
        ("GET record, p99", &mut small_gets, &mut big_gets, 99),
        ("list first 1000, p50", &mut small_first, &mut big_first, 50),
        ("list 1000 from the middle, p50", &mut small_middle, &mut big_middle, 50),
    ] {
        let (s, b) = (percentile(small, p), percentile(big_xs, p));
        println!("| {name} | {s:.0} | {b:.0} | {:.2}x |", b / s);
        json.push(format!(r#"{{"case":"{name}","small_us":{s:.0},"big_us":{b:.0}}}"#));
    }
    println!(
        r#"{{"bench":"scale","objects":{objects},"key_bytes":{},"key_fill":"{}","disk_bytes_per_object":{:.1},"logical_bytes_per_object":{:.1},"rss_mib":{},"cases":[{}]{snapshot}}}"#,
        key(0, pad).len(),
        if pad.random { "random" } else { "x" },
        disk as f64 / objects as f64,
        logical as f64 / objects as f64,
        rss_after / 1024,
        json.join(",")
    );
}
