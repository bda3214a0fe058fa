//! Hashing for placement. Part of the on-disk contract: changing anything here moves data, and the
//! golden test in `slots.rs` fails on purpose when it does.
//!
//! Everything is integer arithmetic. The classic weighted-rendezvous score `-ln(u)/w` is computed
//! with a fixed-point log2 from a compile-time table, because `f64::ln` comes from the platform's
//! libm and is not guaranteed to round identically everywhere; two gateways that disagree on a
//! placement would look for shards in different places.
//!
//! One BLAKE3 per stripe (the stripe key is the only input that varies per call), then a cheap
//! 64-bit mixer per (stripe, node) pair, so that a stripe over 100 nodes costs 100 multiplications
//! rather than 100 BLAKE3 compressions.

/// Domain separation: placement hashes never collide with other uses of BLAKE3 in Ignifuge.
const STRIPE_DOMAIN: &[u8] = b"ignifuge placement v1\0";

/// The per-stripe randomness, derived once from the stripe key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StripeSeed {
    /// Orders the datacenters for this stripe (which shard index goes to which datacenter).
    pub datacenter_order: u64,
    /// Seeds the per-position node scores inside a datacenter.
    pub position: u64,
    /// Salts the node side of the pair hash.
    pub node: u64,
    /// Picks the disk inside a node.
    pub disk: u64,
}

impl StripeSeed {
    pub fn new(stripe_key: &[u8]) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(STRIPE_DOMAIN);
        hasher.update(stripe_key);
        let bytes = hasher.finalize();
        let bytes = bytes.as_bytes();
        let word =
            |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("a BLAKE3 digest has 32 bytes"));
        Self { datacenter_order: word(0), position: word(1), node: word(2), disk: word(3) }
    }
}

/// A stable 64-bit hash of an id (FNV-1a, then an avalanche so that `dc1-n1` and `dc1-n2` differ
/// in every bit). Not cryptographic: ids are chosen by the operator, not by clients.
#[inline]
pub(crate) fn id_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    fmix64(hash ^ bytes.len() as u64)
}

/// MurmurHash3's 64-bit finalizer: a bijection with full avalanche.
#[inline]
pub(crate) const fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// Mixes two 64-bit values into one: a folded 64x64->128 multiply (as in wyhash) then `fmix64`.
#[inline]
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let product = u128::from(a ^ 0xa076_1d64_78bd_642f) * u128::from(b ^ 0xe703_7ed1_a0b4_28db);
    fmix64((product as u64) ^ ((product >> 64) as u64))
}

/// The per-(position, node) hash, the innermost operation of placement: one folded multiply
/// (wyhash's core). Both inputs are already well mixed (a BLAKE3-derived seed through `mix`, and a
/// node hash salted by another BLAKE3 word), so the final avalanche of `mix` is not needed here;
/// the uniformity and weighting tests measure the result.
#[inline]
pub(crate) fn pair_hash(position_seed: u64, salted_node: u64) -> u64 {
    let product = u128::from(position_seed ^ 0x8ebc_6af0_9c88_c6e3) * u128::from(salted_node ^ 0x5899_65cc_7537_4cc3);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Fractional bits of the fixed-point logarithms below.
pub(crate) const LOG_FRACTION_BITS: u32 = 32;
const LOG_TABLE_BITS: u32 = 10;
const LOG_TABLE_SIZE: usize = (1 << LOG_TABLE_BITS) + 1;

/// `LOG2_TABLE[i] = log2(1 + i/1024)` in Q32, computed at compile time by repeated squaring.
static LOG2_TABLE: [u64; LOG_TABLE_SIZE] = build_log2_table();

const fn build_log2_table() -> [u64; LOG_TABLE_SIZE] {
    let mut table = [0u64; LOG_TABLE_SIZE];
    let mut i = 0;
    while i < LOG_TABLE_SIZE {
        table[i] = log2_one_plus(i as u64);
        i += 1;
    }
    table
}

/// `log2(1 + i/1024)` in Q32 for `i` in `0..=1024`, bit by bit: square `y` in [1, 2); each time it
/// reaches 2 the next bit of the logarithm is 1.
const fn log2_one_plus(i: u64) -> u64 {
    if i == 1 << LOG_TABLE_BITS {
        return 1 << LOG_FRACTION_BITS;
    }
    const ONE: u128 = 1 << 62;
    let mut y: u128 = ((1u128 << LOG_TABLE_BITS) + i as u128) << (62 - LOG_TABLE_BITS);
    let mut result: u64 = 0;
    let mut bit = 0;
    while bit < LOG_FRACTION_BITS {
        y = (y * y) >> 62;
        result <<= 1;
        if y >= 2 * ONE {
            result |= 1;
            y >>= 1;
        }
        bit += 1;
    }
    result
}

/// `log2(x)` in Q32 for `x >= 1`: exact integer part, table plus linear interpolation for the
/// fraction (absolute error below 2e-7, far below what weighting can observe).
#[inline]
fn log2_q32(x: u64) -> u64 {
    debug_assert!(x >= 1);
    let leading = x.leading_zeros();
    let integer = u64::from(63 - leading);
    let mantissa = x << leading; // top bit set: 1.xxxx in Q63
    let index = ((mantissa >> (63 - LOG_TABLE_BITS)) & ((1 << LOG_TABLE_BITS) - 1)) as usize;
    let fraction = (mantissa >> (63 - LOG_TABLE_BITS - 32)) & 0xffff_ffff;
    let low = LOG2_TABLE[index];
    let high = LOG2_TABLE[index + 1];
    let interpolated = low + (((high - low) * fraction) >> 32);
    (integer << LOG_FRACTION_BITS) + interpolated
}

/// `-log2(u)` in Q32 where `u = x / 2^64` is uniform in (0, 1). Exponentially distributed (up to
/// the factor ln 2, which cancels in comparisons): the clock of an exponential race. Always > 0.
#[inline]
pub(crate) fn neg_log2_unit_q32(x: u64) -> u64 {
    (64 << LOG_FRACTION_BITS) - log2_q32(x.max(1))
}

/// Jump consistent hash (Lamping and Veach, 2014): a bucket in `0..buckets` that changes for only
/// `1/(n+1)` of keys when a bucket is added at the end. Used to pick a disk inside a node, so that
/// adding a disk moves only the shards the new disk should take. The floating-point operations are
/// IEEE-754 basic operations (correctly rounded everywhere), so the result is portable.
#[inline]
pub(crate) fn jump_consistent_hash(mut key: u64, buckets: u32) -> u32 {
    let buckets = i64::from(buckets.max(1));
    let mut bucket: i64 = -1;
    let mut next: i64 = 0;
    while next < buckets {
        bucket = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        next = ((bucket + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    bucket as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_point_log_matches_f64_closely() {
        let mut x: u64 = 1;
        let mut worst: f64 = 0.0;
        for i in 0..200_000u64 {
            x = mix(x, i) | 1;
            let shifted = x >> (i % 64);
            let value = shifted.max(1);
            let exact = (value as f64).log2();
            let fixed = log2_q32(value) as f64 / (1u64 << 32) as f64;
            worst = worst.max((exact - fixed).abs());
        }
        assert!(worst < 2e-7, "worst absolute error {worst}");
        assert_eq!(log2_q32(1), 0);
        assert_eq!(log2_q32(1 << 40), 40 << 32);
    }

    #[test]
    fn the_race_clock_is_exponential() {
        // Mean of -ln(u) is 1: so the mean of -log2(u) is 1/ln 2.
        let samples = 200_000u64;
        let total: f64 = (0..samples).map(|i| neg_log2_unit_q32(mix(i, 7)) as f64 / (1u64 << 32) as f64).sum();
        let mean = total / samples as f64;
        assert!((mean - std::f64::consts::LOG2_E).abs() < 0.01, "mean {mean}");
        assert!(neg_log2_unit_q32(u64::MAX) > 0);
        assert_eq!(neg_log2_unit_q32(0), 64 << 32);
    }

    #[test]
    fn jump_hash_is_uniform_and_moves_little() {
        let mut counts = [0u32; 5];
        let mut moved = 0;
        let keys = 50_000u64;
        for key in 0..keys {
            let key = mix(key, 1);
            let four = jump_consistent_hash(key, 4);
            let five = jump_consistent_hash(key, 5);
            counts[five as usize] += 1;
            if four != five {
                assert_eq!(five, 4, "a key only ever moves to the new disk");
                moved += 1;
            }
        }
        let expected = keys as f64 / 5.0;
        assert!(counts.iter().all(|&c| (f64::from(c) - expected).abs() < expected * 0.05), "{counts:?}");
        let fraction = f64::from(moved) / keys as f64;
        assert!((fraction - 0.2).abs() < 0.01, "moved {fraction}");
        assert_eq!(jump_consistent_hash(12345, 1), 0);
        assert_eq!(jump_consistent_hash(12345, 0), 0);
    }

    #[test]
    fn id_hashes_of_similar_names_differ_widely() {
        let a = id_hash(b"dc1-n1");
        let b = id_hash(b"dc1-n2");
        assert!((a ^ b).count_ones() > 16);
    }
}
