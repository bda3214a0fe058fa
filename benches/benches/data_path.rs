//! The PUT pipeline per byte against the sum of its parts (the floor), and Reed-Solomon encode
//! and reconstruct per geometry. Run: `cargo bench -p ignifuge-benches --bench data_path`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ignifuge_gateway::checksums::{Algorithm, BodyHasher};
use ignifuge_gateway::codec::{ErasureCodec, ReedSolomonCodec};
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
    codec.encode(&refs, parity).unwrap();
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
    group.bench_function("whole", |b| {
        b.iter(|| {
            let mut hasher = BodyHasher::new(&[Algorithm::Crc64Nvme]);
            hasher.update(&body);
            stripe.clear();
            stripe.extend_from_slice(&body);
            encode(&codec, &stripe, SHARD_BYTES, &mut parity);
            for shard in stripe.chunks(SHARD_BYTES).chain(parity.iter().map(|p| p.as_slice())) {
                black_box(blake3::hash(shard));
            }
            black_box(hasher.finalize());
        })
    });
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

criterion_group!(benches, reed_solomon, put_pipeline);
criterion_main!(benches);
