//! The CPU work of the PUT path for a number of 5+4 stripes, exactly as the gateway does it (body
//! hashes, copy into a reused stripe buffer, `codec::encode_stripe` into reused parity buffers, as
//! the gateway's kept buffers are, `gateway/src/datapath/buffers.rs`), in
//! a process small enough to run under valgrind for repeatable instruction and cache-miss counts
//! before and after a change:
//!
//!   valgrind --tool=callgrind stripe-profile [STRIPES]
//!   valgrind --tool=cachegrind --cache-sim=yes stripe-profile [STRIPES]

use ignifuge_gateway::checksums::{Algorithm, BodyHasher};
use ignifuge_gateway::codec::{ReedSolomonCodec, encode_stripe};
use std::hint::black_box;

const SHARD_BYTES: usize = 1024 * 1024;

fn main() {
    let stripes: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(8);
    let (k, m) = (5usize, 4usize);
    let codec = ReedSolomonCodec::new(k, m).expect("5+4 codec");
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let body: Vec<u8> = (0..k * SHARD_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut stripe = Vec::with_capacity(body.len());
    let mut parity = vec![vec![0u8; SHARD_BYTES]; m];
    for _ in 0..stripes {
        let mut hasher = BodyHasher::new(&[Algorithm::Crc64Nvme]);
        hasher.update(&body);
        stripe.clear();
        stripe.extend_from_slice(&body);
        black_box(encode_stripe(&codec, &stripe, SHARD_BYTES, &mut parity).expect("encode"));
        black_box(hasher.finalize());
    }
}
