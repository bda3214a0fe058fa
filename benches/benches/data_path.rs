//! The PUT pipeline per byte against the sum of its parts (the floor), and Reed-Solomon encode
//! and reconstruct per geometry. Run: `cargo bench -p ignifuge-benches --bench data_path`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ignifuge_gateway::checksums::{Algorithm, BodyHasher};
use ignifuge_gateway::codec::{ErasureCodec, ReedSolomonCodec, encode_stripe};
use std::hint::black_box;

const SHARD_BYTES: usize = 1024 * 1024;

fn data(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn encode(codec: &ReedSolomonCodec, stripe: &[u8], shard_len: usize, parity: &mut [Vec<u8>]) {
    let refs: Vec<&[u8]> = stripe.chunks(shard_len).collect();
    let mut parity: Vec<&mut [u8]> = parity.iter_mut().map(|p| p.as_mut_slice()).collect();
    codec.encode(&refs, &mut parity).unwrap();
}

fn reed_solomon(c: &mut Criterion) {
    let mut group = c.benchmark_group("reed_solomon");
    for (k, m) in [(6usize, 3usize), (5, 4), (9, 6), (8, 4)] {
        for shard_len in [64 * 1024, SHARD_BYTES] {
            let codec = ReedSolomonCodec::new(k, m).unwrap();
            let stripe = data(k * shard_len);
            let mut parity = vec![vec![0u8; shard_len]; m];
            group.throughput(Throughput::Bytes((k * shard_len) as u64));
            let label = format!("{k}+{m}/{}KiB", shard_len / 1024);
            group.bench_function(BenchmarkId::new("encode", &label), |b| {
                b.iter(|| encode(&codec, black_box(&stripe), shard_len, &mut parity))
            });
            encode(&codec, &stripe, shard_len, &mut parity);
            let full: Vec<Vec<u8>> = stripe.chunks(shard_len).map(|s| s.to_vec()).chain(parity.clone()).collect();
            group.bench_function(BenchmarkId::new("reconstruct_m_data_shards", &label), |b| {
                b.iter(|| {
                    let mut shards: Vec<Option<Vec<u8>>> = full.iter().cloned().map(Some).collect();
                    for lost in shards.iter_mut().take(m) {
                        *lost = None;
                    }
                    codec.reconstruct_data(&mut shards).unwrap();
                    black_box(shards);
                })
            });
        }
    }
    group.finish();
}

/// One stripe of the PUT pipeline as the gateway runs it: MD5 + CRC64NVME over the body, copy
/// into the stripe buffer, encode, BLAKE3 over every shard; and each step alone.
fn put_pipeline(c: &mut Criterion) {
    let (k, m) = (5usize, 4usize);
    let codec = ReedSolomonCodec::new(k, m).unwrap();
    let body = data(k * SHARD_BYTES);
    let mut stripe = Vec::with_capacity(body.len());
    let mut parity = vec![vec![0u8; SHARD_BYTES]; m];
    let mut group = c.benchmark_group("put_pipeline_5+4");
    group.throughput(Throughput::Bytes(body.len() as u64));
    // The whole pipeline on one thread, with the gateway's own stripe function: body hashes,
    // copy into the stripe buffer, then `encode_stripe` into parity buffers allocated per stripe
    // (as the gateway does), or reused across stripes (a pool).
    let whole = |stripe: &mut Vec<u8>, parity: Option<&mut Vec<Vec<u8>>>| {
        let mut hasher = BodyHasher::new(&[Algorithm::Crc64Nvme]);
        hasher.update(&body);
        stripe.clear();
        stripe.extend_from_slice(&body);
        let mut fresh;
        let parity = match parity {
            Some(pooled) => pooled,
            None => {
                fresh = vec![vec![0u8; SHARD_BYTES]; m];
                &mut fresh
            }
        };
        black_box(encode_stripe(&codec, stripe, SHARD_BYTES, parity).unwrap());
        black_box(hasher.finalize());
    };
    group.bench_function("whole", |b| b.iter(|| whole(&mut stripe, None)));
    group.bench_function("whole_pooled_parity", |b| b.iter(|| whole(&mut stripe, Some(&mut parity))));
    group.bench_function("part_md5", |b| {
        b.iter(|| {
            let mut h = BodyHasher::new(&[]);
            h.update(black_box(&body));
            black_box(h.finalize())
        })
    });
    group.bench_function("part_crc64nvme", |b| {
        b.iter(|| black_box(crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, black_box(&body))))
    });
    group.bench_function("part_copy_into_pooled_buffer", |b| {
        b.iter(|| {
            stripe.clear();
            stripe.extend_from_slice(black_box(&body));
        })
    });
    group.bench_function("part_encode", |b| b.iter(|| encode(&codec, black_box(&stripe), SHARD_BYTES, &mut parity)));
    group.bench_function("part_blake3_all_shards", |b| {
        b.iter(|| {
            for shard in stripe.chunks(SHARD_BYTES).chain(parity.iter().map(|p| p.as_slice())) {
                black_box(blake3::hash(shard));
            }
        })
    });
    group.finish();
}

/// BLAKE3 of a 1 MiB shard in one call, against the same bytes fed to one hasher in frames of
/// the sizes a socket read returns: incremental updates only use all SIMD lanes for long inputs,
/// which is why the gateway hashes a shard after joining its frames rather than frame by frame.
fn shard_hash(c: &mut Criterion) {
    let shard = data(SHARD_BYTES);
    let mut group = c.benchmark_group("shard_blake3_1MiB");
    group.throughput(Throughput::Bytes(SHARD_BYTES as u64));
    group.bench_function("contiguous", |b| b.iter(|| black_box(blake3::hash(black_box(&shard)))));
    for (label, sizes) in
        [("frames_8k_odd", [8191usize, 8193, 8191]), ("frames_16k_to_200k", [16_000, 65_537, 200_003])]
    {
        let (mut pieces, mut start, mut i) = (Vec::new(), 0, 0);
        while start < shard.len() {
            let end = (start + sizes[i % sizes.len()]).min(shard.len());
            pieces.push(&shard[start..end]);
            (start, i) = (end, i + 1);
        }
        group.bench_function(BenchmarkId::new("incremental", label), |b| {
            b.iter(|| {
                let mut hasher = blake3::Hasher::new();
                for piece in &pieces {
                    hasher.update(piece);
                }
                black_box(hasher.finalize())
            })
        });
    }
    group.finish();
}

/// The GET pipeline for one 5+4 stripe: the k data shards arrive, each is checked, and, with a
/// shard missing, the data is rebuilt as `datapath/read.rs::decode` does it (the present shards
/// copied into owned buffers, then `reconstruct_data`). Two checks: the transfer CRC64NVME the
/// node sent plus a 32-byte hash comparison (the gateway's from session 3 to 34, when the node
/// hashed every read), and BLAKE3 of the same shards (the gateway's before and since: the node
/// sends the bytes as read, `ignifuge_rpc::ShardCheck::ByReader`).
fn get_pipeline(c: &mut Criterion) {
    let (k, m) = (5usize, 4usize);
    let codec = ReedSolomonCodec::new(k, m).unwrap();
    let stripe = data(k * SHARD_BYTES);
    let mut parity = vec![vec![0u8; SHARD_BYTES]; m];
    encode(&codec, &stripe, SHARD_BYTES, &mut parity);
    let shards: Vec<Vec<u8>> = stripe.chunks(SHARD_BYTES).map(|s| s.to_vec()).chain(parity).collect();
    let crcs: Vec<u64> = shards.iter().map(|s| ignifuge_rpc::transfer_checksum(s)).collect();
    let mut group = c.benchmark_group("get_pipeline_5+4");
    group.throughput(Throughput::Bytes((k * SHARD_BYTES) as u64));
    group.bench_function("verify_crc", |b| {
        b.iter(|| {
            for (shard, crc) in shards.iter().zip(&crcs).take(k) {
                assert_eq!(ignifuge_rpc::transfer_checksum(black_box(shard)), *crc);
            }
        })
    });
    group.bench_function("verify_blake3", |b| {
        b.iter(|| {
            for shard in shards.iter().take(k) {
                black_box(blake3::hash(black_box(shard)));
            }
        })
    });
    group.bench_function("verify_crc_and_rebuild_one_data_shard", |b| {
        b.iter(|| {
            // Shard 0 is missing; shards 1..k and the first parity arrive and are checked.
            for i in 1..=k {
                assert_eq!(ignifuge_rpc::transfer_checksum(&shards[i]), crcs[i]);
            }
            let mut owned: Vec<Option<Vec<u8>>> =
                shards.iter().enumerate().map(|(i, s)| (1..=k).contains(&i).then(|| s.clone())).collect();
            codec.reconstruct_data(&mut owned).unwrap();
            black_box(owned);
        })
    });
    group.finish();
}

criterion_group!(benches, reed_solomon, put_pipeline, shard_hash, get_pipeline);
criterion_main!(benches);
