//! ListObjectsV2 page cost against bucket size: a page of 1000 keys from a bucket of 10 thousand
//! and from a bucket of 1 million keys, both in one RocksDB store (as on a metadata voter),
//! measured in the same run, interleaved. Budget (issue 7): within 1.2x. Then a first page of
//! ListObjectVersions against ListObjectsV2's on the small bucket, interleaved; then that page's
//! answer written and read back in JSON and in MessagePack (the leader to the gateway).
//! Run: `cargo bench -p ignifuge-benches --bench listing`. Prints a table and one JSON line.
//! `LISTING_BIG_KEYS` overrides the size of the big bucket (default 1,000,000).

mod common;

use ignifuge_kv::{Durability, KvStore, RocksKv, WriteBatch};
use ignifuge_meta::{
    Answer, BucketRecord, ListRequest, ObjectRecord, Query, StateMachine, TenantRecord, VersionListRequest, keys,
};
use ignifuge_rpc::encoding;
use ignifuge_types::{BlobId, BucketName, ObjectKey, TenantId};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SMALL_KEYS: usize = 10_000;
const PAGE: usize = 1000;
const ROUNDS: usize = 60;

/// An object as a 5+4 striped PUT of one stripe records it, its stripe in the record (~1 KB of
/// JSON; the state machine keeps stripes under keys of their own, which a listing never reads).
fn record(key: &str, i: usize) -> ObjectRecord {
    let location = common::one_stripe(BlobId::new(format!("{i:032x}")), i, 0);
    common::object_record(key, i, 1_790_000_000_000 + i as i64, location, 1 << 20)
}

/// Keys spread over 100 "directories", as real buckets are.
fn key(i: usize) -> String {
    format!("dir-{:02}/object-{:09}", i % 100, i)
}

fn fill(kv: &dyn KvStore, bucket: &str, count: usize) {
    let name = BucketName::new(bucket);
    let mut batch = WriteBatch::new();
    for i in 0..count {
        let k = key(i);
        batch.put(keys::object(&name, &ObjectKey::new(k.clone())), serde_json::to_vec(&record(&k, i)).unwrap());
        if batch.ops.len() == 10_000 {
            kv.write(std::mem::take(&mut batch), Durability::Buffered).unwrap();
        }
    }
    kv.write(batch, Durability::Buffered).unwrap();
}

fn page(machine: &StateMachine, bucket: &str, request: ListRequest) -> Duration {
    let t = Instant::now();
    let answer =
        machine.query(Query::ListObjects { bucket: BucketName::new(bucket), incarnation: None, request }).unwrap();
    let elapsed = t.elapsed();
    let Answer::Objects(page) = answer else { panic!("unexpected answer") };
    assert!(page.objects.len() + page.common_prefixes.len() > 0, "an empty page");
    elapsed
}

/// A page of ListObjectVersions (every version of the keys it covers).
fn version_page(machine: &StateMachine, bucket: &str, request: VersionListRequest) -> Duration {
    let t = Instant::now();
    let answer =
        machine.query(Query::ListVersions { bucket: BucketName::new(bucket), incarnation: None, request }).unwrap();
    let elapsed = t.elapsed();
    let Answer::Versions(page) = answer else { panic!("unexpected answer") };
    assert_eq!(page.versions.len(), PAGE, "a short page");
    elapsed
}

fn median(mut xs: Vec<Duration>) -> f64 {
    xs.sort();
    xs[xs.len() / 2].as_secs_f64() * 1e6
}

fn main() {
    let big_keys: usize = std::env::var("LISTING_BIG_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let kv: Arc<dyn KvStore> = Arc::new(RocksKv::open(dir.path()).expect("rocksdb"));
    let machine = StateMachine::new(kv.clone());
    machine
        .apply(ignifuge_meta::Command::CreateTenant(TenantRecord {
            id: TenantId::new("t"),
            created_ms: 0,
            public_access_block: None,
        }))
        .unwrap();
    for bucket in ["small", "big"] {
        machine
            .apply(ignifuge_meta::Command::CreateBucket(BucketRecord::new(
                BucketName::new(bucket),
                TenantId::new("t"),
                "us-east-1".into(),
                0,
                ignifuge_types::BucketIncarnation::new("bench"),
            )))
            .unwrap();
    }
    let t = Instant::now();
    fill(kv.as_ref(), "small", SMALL_KEYS);
    fill(kv.as_ref(), "big", big_keys);
    eprintln!("filled {SMALL_KEYS} + {big_keys} keys in {:.1} s", t.elapsed().as_secs_f64());

    type Case = (&'static str, fn(usize) -> ListRequest);
    let cases: [Case; 4] = [
        ("first page", |_| ListRequest { max_keys: PAGE, ..Default::default() }),
        ("page from the middle (start-after)", |n| ListRequest {
            start_after: Some(key(n / 2)),
            max_keys: PAGE,
            ..Default::default()
        }),
        ("delimiter / (100 common prefixes)", |_| ListRequest {
            delimiter: Some("/".into()),
            max_keys: PAGE,
            ..Default::default()
        }),
        ("prefix dir-42/ and delimiter / (100 keys)", |_| ListRequest {
            prefix: "dir-42/".into(),
            delimiter: Some("/".into()),
            max_keys: 100,
            ..Default::default()
        }),
    ];
    println!("| case | {SMALL_KEYS} keys (median us) | {big_keys} keys (median us) | ratio |");
    println!("|---|---|---|---|");
    let mut json = Vec::new();
    for (name, request) in cases {
        let (mut small, mut big) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            page(&machine, "small", request(SMALL_KEYS));
            page(&machine, "big", request(big_keys));
        }
        for _ in 0..ROUNDS {
            small.push(page(&machine, "small", request(SMALL_KEYS)));
            big.push(page(&machine, "big", request(big_keys)));
        }
        let (s, b) = (median(small), median(big));
        println!("| {name} | {s:.0} | {b:.0} | {:.2}x |", b / s);
        json.push(format!(r#"{{"case":"{name}","small_us":{s:.0},"big_us":{b:.0},"ratio":{:.3}}}"#, b / s));
    }
    // A version listing reads more of each record (its version, sequence and flags follow the
    // part list), so its page is timed against the object listing's first page, interleaved.
    let (mut objects, mut versions) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS + 3 {
        let o = page(&machine, "small", ListRequest { max_keys: PAGE, ..Default::default() });
        let v = version_page(&machine, "small", VersionListRequest { max_keys: PAGE, ..Default::default() });
        if round >= 3 {
            objects.push(o);
            versions.push(v);
        }
    }
    let (o, v) = (median(objects), median(versions));
    println!();
    println!(
        "| first page of {PAGE}, {SMALL_KEYS} keys | ListObjectsV2 (median us) | ListObjectVersions (median us) | ratio |"
    );
    println!("|---|---|---|---|");
    println!("| one version per key | {o:.0} | {v:.0} | {:.2}x |", v / o);

    // The first page's answer as the leader sends it to the gateway: written and read back in
    // JSON and in MessagePack (`ignifuge_rpc::encoding`), interleaved.
    let answer: Result<Answer, ignifuge_meta::MetaError> = Ok(machine
        .query(Query::ListObjects {
            bucket: BucketName::new("small"),
            incarnation: None,
            request: ListRequest { max_keys: PAGE, ..Default::default() },
        })
        .unwrap());
    let (mut in_json, mut in_msgpack, mut sizes) = (Vec::new(), Vec::new(), [0, 0]);
    for round in 0..ROUNDS + 3 {
        for (i, accept) in [None, Some(encoding::ANSWER_MSGPACK)].into_iter().enumerate() {
            let t = Instant::now();
            let encoded = encoding::encode_answer(&answer, accept).unwrap();
            let back: Result<Answer, ignifuge_meta::MetaError> =
                encoding::decode_answer(Some(encoded.content_type), &encoded.body).unwrap();
            let elapsed = t.elapsed();
            assert!(matches!(back, Ok(Answer::Objects(ref p)) if p.objects.len() == PAGE));
            sizes[i] = encoded.body.len();
            if round >= 3 {
                [&mut in_json, &mut in_msgpack][i].push(elapsed);
            }
        }
    }
    let (j, m) = (median(in_json), median(in_msgpack));
    println!();
    println!(
        "| a page's answer, written and read back | JSON (median us; bytes) | MessagePack (median us; bytes) | ratio |"
    );
    println!("|---|---|---|---|");
    println!("| {PAGE} keys | {j:.0}; {} | {m:.0}; {} | {:.2}x |", sizes[0], sizes[1], m / j);
    println!(
        r#"{{"bench":"listing","small_keys":{SMALL_KEYS},"big_keys":{big_keys},"cases":[{}],"versions":{{"objects_us":{o:.0},"versions_us":{v:.0},"ratio":{:.3}}},"answer":{{"json_us":{j:.0},"msgpack_us":{m:.0},"ratio":{:.3}}}}}"#,
        json.join(","),
        v / o,
        m / j
    );
}
