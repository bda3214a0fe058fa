//! The erasure codec, behind a small trait so other coders (ISA-L compatible ones) can be
//! benchmarked against it.

use crate::error::GatewayError;
use reed_solomon_erasure::galois_8::ReedSolomon;
use std::sync::Arc;

pub trait ErasureCodec: Send + Sync + 'static {
    fn data_shards(&self) -> usize;
    fn parity_shards(&self) -> usize;
    /// Fills `parity` (m buffers of the data shards' length) from `data` (k equal-length shards),
    /// writing every parity byte whatever the buffers held: the gateway encodes into kept
    /// buffers without zeroing them (`datapath/buffers.rs`).
    /// Reed-Solomon works byte position by byte position, so equal sub-ranges of the shards
    /// (a column block) encode to the same sub-ranges of the parity.
    fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), GatewayError>;
    /// Rebuilds the missing data shards in place; needs at least k present shards.
    fn reconstruct_data(&self, shards: &mut [Option<Vec<u8>>]) -> Result<(), GatewayError>;
    /// Rebuilds every missing shard, data and parity, in place (repair); needs at least k.
    fn reconstruct(&self, shards: &mut [Option<Vec<u8>>]) -> Result<(), GatewayError>;
}

/// Encodes a stripe and BLAKE3-hashes every shard: the CPU work of a stripe on the PUT path, one
/// function for the gateway and its benchmarks. `data` holds k shards of `shard_len` bytes back to
/// back, `parity` m buffers of `shard_len` bytes (overwritten). Returns the k+m shard hashes, data
/// shards first. (Encoding and hashing in L2-sized column blocks instead was measured and gave
/// nothing: docs/benchmarks.md.)
pub fn encode_stripe(
    codec: &dyn ErasureCodec,
    data: &[u8],
    shard_len: usize,
    parity: &mut [Vec<u8>],
) -> Result<Vec<blake3::Hash>, GatewayError> {
    let (k, m) = (codec.data_shards(), codec.parity_shards());
    if data.len() != k * shard_len || parity.len() != m || parity.iter().any(|p| p.len() != shard_len) {
        return Err(GatewayError::Internal(format!(
            "encode_stripe: {} data bytes and {} parity buffers for {k}+{m} shards of {shard_len} bytes",
            data.len(),
            parity.len()
        )));
    }
    let shards: Vec<&[u8]> = data.chunks(shard_len).collect();
    let mut parity_refs: Vec<&mut [u8]> = parity.iter_mut().map(|p| p.as_mut_slice()).collect();
    codec.encode(&shards, &mut parity_refs)?;
    Ok(shards.iter().copied().chain(parity.iter().map(|p| p.as_slice())).map(blake3::hash).collect())
}

/// The codec of a blob written `data_shards`+`parity_shards`: `current` (the layout's) when it
/// has that geometry, else one made for it. A blob is always decoded with the geometry it was
/// written with, which its record names: a stripe written while a gateway placed with another
/// layout must not be rebuilt with a matrix that is not its own (with the same shard count, that
/// would give other bytes, not an error).
pub fn codec_of(
    current: &Arc<dyn ErasureCodec>,
    data_shards: usize,
    parity_shards: usize,
) -> Result<Arc<dyn ErasureCodec>, GatewayError> {
    if (current.data_shards(), current.parity_shards()) == (data_shards, parity_shards) {
        return Ok(current.clone());
    }
    Ok(Arc::new(ReedSolomonCodec::new(data_shards, parity_shards)?))
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

    fn encode(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), GatewayError> {
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

    #[test]
    fn a_blob_is_decoded_with_its_own_geometry_whatever_the_layout_codes_now() {
        let (k, m, shard_len): (usize, usize, usize) = (6, 3, 64);
        let data: Vec<u8> = (0..k * shard_len).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let mut parity = vec![vec![0u8; shard_len]; m];
        encode_stripe(&ReedSolomonCodec::new(k, m).unwrap(), &data, shard_len, &mut parity).unwrap();
        let whole: Vec<Option<Vec<u8>>> =
            data.chunks(shard_len).map(<[u8]>::to_vec).chain(parity.iter().cloned()).map(Some).collect();
        let mut lost = whole.clone();
        lost[0] = None;
        lost[4] = None;
        // The layout now codes 5+4: the same nine shards, another matrix.
        let current: Arc<dyn ErasureCodec> = Arc::new(ReedSolomonCodec::new(5, 4).unwrap());
        let mut wrong = lost.clone();
        let decoded = current.reconstruct_data(&mut wrong);
        assert!(decoded.is_err() || wrong[..5] != whole[..5], "another matrix never gives the bytes written");
        let own = codec_of(&current, k, m).unwrap();
        assert_eq!((own.data_shards(), own.parity_shards()), (6, 3));
        own.reconstruct_data(&mut lost).unwrap();
        assert_eq!(lost[..k], whole[..k]);
        assert!(Arc::ptr_eq(&codec_of(&current, 5, 4).unwrap(), &current), "the layout's own when it fits");
    }

    #[test]
    fn a_stripe_is_encoded_and_every_shard_hashed() {
        let (k, m, shard_len) = (5, 4, 1000);
        let codec = ReedSolomonCodec::new(k, m).unwrap();
        let data: Vec<u8> = (0..k * shard_len).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let mut parity = vec![vec![0xAAu8; shard_len]; m];
        let hashes = encode_stripe(&codec, &data, shard_len, &mut parity).unwrap();
        let mut shards: Vec<Option<Vec<u8>>> =
            data.chunks(shard_len).map(|d| d.to_vec()).chain(parity.clone()).map(Some).collect();
        let expected: Vec<blake3::Hash> = shards.iter().map(|s| blake3::hash(s.as_ref().unwrap())).collect();
        assert_eq!(hashes, expected);
        // The parity is real: the data comes back from the parity shards alone plus one data shard.
        for lost in shards.iter_mut().take(m) {
            *lost = None;
        }
        codec.reconstruct_data(&mut shards).unwrap();
        assert_eq!(shards.iter().take(k).flat_map(|s| s.clone().unwrap()).collect::<Vec<u8>>(), data);
        assert!(encode_stripe(&codec, &[0u8; 10], 3, &mut vec![vec![0u8; 3]; m]).is_err(), "k x shard_len must match");
    }

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
            let mut parity_refs: Vec<&mut [u8]> = parity.iter_mut().map(|p| p.as_mut_slice()).collect();
            codec.encode(&refs, &mut parity_refs).unwrap();
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
