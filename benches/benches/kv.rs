//! What `RocksKv` adds to RocksDB on every operation: a read lock on its slot and a clone of the
//! `Arc` of its DB (it may open the DB again after a failed write), and the `KvStore` trait's
//! dynamic call. Two stores with the same options and the same 200,000 records of ~900 bytes (a
//! packed 4 KiB object's record), one behind `RocksKv`, one a bare `rocksdb::DB`, measured in the
//! same run, interleaved: point reads of random keys and scans of 1000 pairs lent in place (as a
//! listing page reads them).
//! Run: `cargo bench -p ignifuge-benches --bench kv`. Prints a table and one JSON line.

use ignifuge_kv::{Durability, KvStore, RocksKv, WriteBatch};
use std::time::{Duration, Instant};

const KEYS: usize = 200_000;
const VALUE_BYTES: usize = 900;
const GETS_PER_ROUND: usize = 20_000;
const SCANS_PER_ROUND: usize = 20;
const SCAN_PAIRS: usize = 1000;
const ROUNDS: usize = 15;

fn key(i: usize) -> Vec<u8> {
    format!("o/bucket/dir-{:02}/object-{:09}", i % 100, i).into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    let mut v = format!("{{\"key\":\"object-{i:09}\",\"size\":4096,\"etag\":\"{i:032x}\"").into_bytes();
    v.resize(VALUE_BYTES, b' ');
    v
}

/// The options `RocksKv` opens its stores with (kv/src/rocks.rs `open_db`).
fn bare(path: &std::path::Path) -> rocksdb::DB {
    let mut options = rocksdb::Options::default();
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options.create_if_missing(true);
    options.increase_parallelism(2);
    options.set_max_background_jobs(2);
    rocksdb::DB::open(&options, path).expect("rocksdb")
}

/// A cheap deterministic sequence of key indexes (the same for both stores).
fn indexes(seed: u64, n: usize) -> Vec<usize> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % KEYS as u64) as usize
        })
        .collect()
}

fn per_op(elapsed: Duration, ops: usize) -> f64 {
    elapsed.as_secs_f64() * 1e9 / ops as f64
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let dirs = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let kv: Box<dyn KvStore> = Box::new(RocksKv::open(dirs.0.path()).expect("rocksdb"));
    let db = bare(dirs.1.path());
    let t = Instant::now();
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(10_000) {
        let mut batch = WriteBatch::new();
        let mut raw = rocksdb::WriteBatch::default();
        for &i in chunk {
            batch.put(key(i), value(i));
            raw.put(key(i), value(i));
        }
        kv.write(batch, Durability::Buffered).unwrap();
        db.write(raw).unwrap();
    }
    eprintln!("filled 2 x {KEYS} records in {:.1} s", t.elapsed().as_secs_f64());

    let (mut gets, mut scans) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    let mut found = (0usize, 0usize);
    for round in 0..ROUNDS + 2 {
        let picks = indexes(round as u64 + 7, GETS_PER_ROUND);
        let starts: Vec<Vec<u8>> = indexes(round as u64 + 1000, SCANS_PER_ROUND).into_iter().map(key).collect();
        // Which store goes first alternates by round.
        let order = if round % 2 == 0 { [true, false] } else { [false, true] };
        for wrapped in order {
            let t = Instant::now();
            for &i in &picks {
                let got = if wrapped { kv.get(&key(i)).unwrap() } else { db.get(key(i)).unwrap() };
                if wrapped { found.0 += got.is_some() as usize } else { found.1 += got.is_some() as usize }
            }
            let get_ns = per_op(t.elapsed(), picks.len());
            let t = Instant::now();
            let mut pairs = 0usize;
            for start in &starts {
                if wrapped {
                    kv.scan_visit(start, None, SCAN_PAIRS, usize::MAX, &mut |_, v| {
                        pairs += 1;
                        Some(v.len())
                    })
                    .unwrap();
                } else {
                    let mut iter = db.raw_iterator();
                    iter.seek(start);
                    let mut n = 0;
                    while n < SCAN_PAIRS {
                        let (Some(_), Some(v)) = (iter.key(), iter.value()) else { break };
                        std::hint::black_box(v.len());
                        pairs += 1;
                        n += 1;
                        iter.next();
                    }
                }
            }
            let scan_ns = per_op(t.elapsed(), starts.len());
            assert!(pairs > 0);
            if round >= 2 {
                // The first two rounds warm the block cache and the page cache.
                if wrapped {
                    gets.0.push(get_ns);
                    scans.0.push(scan_ns);
                } else {
                    gets.1.push(get_ns);
                    scans.1.push(scan_ns);
                }
            }
        }
    }
    assert_eq!(found.0, found.1, "both stores hold the same records");
    let (g_kv, g_raw) = (median(gets.0), median(gets.1));
    let (s_kv, s_raw) = (median(scans.0), median(scans.1));
    println!("| operation | bare rocksdb::DB (median) | RocksKv (median) | ratio |");
    println!("|---|---|---|---|");
    println!("| point read of a random key | {g_raw:.0} ns | {g_kv:.0} ns | {:.3}x |", g_kv / g_raw);
    println!(
        "| scan of {SCAN_PAIRS} pairs lent in place | {:.1} us | {:.1} us | {:.3}x |",
        s_raw / 1e3,
        s_kv / 1e3,
        s_kv / s_raw
    );
    println!(
        r#"{{"bench":"kv","keys":{KEYS},"get_ns":{{"bare":{g_raw:.0},"rockskv":{g_kv:.0}}},"scan_us":{{"bare":{:.1},"rockskv":{:.1}}}}}"#,
        s_raw / 1e3,
        s_kv / 1e3
    );
}
