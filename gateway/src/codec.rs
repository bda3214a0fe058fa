//! The erasure codec, behind a small trait so other coders (ISA-L compatible ones) can be
//! benchmarked against it.

use crate::error::GatewayError;
use reed_solomon_erasure::galois_8::ReedSolomon;

pub trait ErasureCodec: Send + Sync + 'static {
    fn data_shards(&self) -> usize;
    fn parity_shards(&self) -> usize;
    /// Fills `parity` (m buffers of the data shards' length) from `data` (k equal-length shards).
    fn encode(&self, data: &[&[u8]], parity: &mut [Vec<u8>]) -> Result<(), GatewayError>;
    /// Rebuilds the missing data shards in place; needs at least k present shards.
    fn reconstruct_data(&self, shards: &mut [Option<Vec<u8>>]) -> Result<(), GatewayError>;
    /// Rebuilds every missing shard, data and parity, in place (repair); needs at least k.
    fn reconstruct(&self, shards: &mut [Option<Vec<u8>>]) -> Result<(), GatewayError>;
}

/// Reed-Solomon over GF(2^8), SIMD-accelerated (reed-solomon-erasure with `simd-accel`).
pub struct ReedSolomonCodec {
    inner: ReedSolomon,
}

impl ReedSolomonCodec {
    pub fn new(data_shards: usize, parity_shards: usize) -> Result<Self, GatewayError> {
        let inner = ReedSolomon::new(data_shards, parity_shards)
            .map_err(|e| GatewayError::Internal(format!("codec {data_shards}+{parity_shards}: {e:?}")))?;
        Ok(Self { inner })
    }
}

impl ErasureCodec for ReedSolomonCodec {
    fn data_shards(&self) -> usize {
        self.inner.data_shard_count()
    }

    fn parity_shards(&self) -> usize {
        self.inner.parity_shard_count()
    }

    fn encode(&self, data: &[&[u8]], parity: &mut [Vec<u8>]) -> Result<(), GatewayError> {
        self.inner.encode_sep(data, parity).map_err(|e| GatewayError::Internal(format!("encode: {e:?}")))
    }

    fn reconstruct_data(&self, shards: &mut [Option<Vec<u8>>]) -> Result<(), GatewayError> {
        self.inner.reconstruct_data(shards).map_err(|e| GatewayError::Internal(format!("reconstruct: {e:?}")))
    }

    fn reconstruct(&self, shards: &mut [Option<Vec<u8>>]) -> Result<(), GatewayError> {
        self.inner.reconstruct(shards).map_err(|e| GatewayError::Internal(format!("reconstruct: {e:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Any k of the k+m shards rebuild the data, for the geometries the placement engine derives.
        #[test]
        fn any_k_shards_rebuild_the_data(
            geometry in prop_oneof![Just((5usize, 4usize)), Just((6, 3)), Just((9, 6)), Just((8, 4))],
            shard_len in 1usize..300,
            seed in any::<u64>(),
            lost_seed in any::<u64>(),
        ) {
            let (k, m) = geometry;
            let codec = ReedSolomonCodec::new(k, m).unwrap();
            let data: Vec<Vec<u8>> = (0..k)
                .map(|i| (0..shard_len).map(|j| (seed.wrapping_mul(31).wrapping_add((i * 977 + j) as u64) % 251) as u8).collect())
                .collect();
            let refs: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
            let mut parity = vec![vec![0u8; shard_len]; m];
            codec.encode(&refs, &mut parity).unwrap();
            let original: Vec<Vec<u8>> = data.iter().cloned().chain(parity).collect();
            let mut shards: Vec<Option<Vec<u8>>> = original.iter().cloned().map(Some).collect();
            // Lose m shards chosen by the seed.
            let mut order: Vec<usize> = (0..k + m).collect();
            let mut s = lost_seed;
            for i in (1..order.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (s >> 33) as usize % (i + 1));
            }
            for &lost in &order[..m] {
                shards[lost] = None;
            }
            let mut all = shards.clone();
            codec.reconstruct_data(&mut shards).unwrap();
            for i in 0..k {
                prop_assert_eq!(shards[i].as_ref().unwrap(), &data[i]);
            }
            // Repair rebuilds parity too.
            codec.reconstruct(&mut all).unwrap();
            for i in 0..k + m {
                prop_assert_eq!(all[i].as_ref().unwrap(), &original[i]);
            }
        }
    }

    #[test]
    fn fewer_than_k_shards_cannot_rebuild() {
        let codec = ReedSolomonCodec::new(5, 4).unwrap();
        let mut shards: Vec<Option<Vec<u8>>> = vec![None; 9];
        for shard in shards.iter_mut().take(4) {
            *shard = Some(vec![1; 8]);
        }
        assert!(codec.reconstruct_data(&mut shards).is_err());
    }
}
