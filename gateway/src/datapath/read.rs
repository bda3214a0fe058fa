//! Reading a byte range of a list of parts. Each stripe overlapping the range is fetched (only
//! the data shards that hold requested bytes when they are all healthy), checked against the
//! BLAKE3 hashes in the metadata, and rebuilt from parity when shards are missing or corrupt.
//! Stripes are fetched ahead of the client by `STRIPES_IN_FLIGHT_MAX`; the first bytes go out
//! before the rest of the object is read.

use super::{DataPath, HEDGE_AFTER_MS, STRIPES_IN_FLIGHT_MAX};
use crate::error::{GatewayError, GatewayResult};
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};
use ignifuge_meta::{DataLocation, PartData, StripedBlob};
use ignifuge_types::{ShardId, ShardIndex, StripeIndex};
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The body of a GET: pieces of the object in order, produced by a background task.
pub struct ByteRangeStream {
    rx: tokio::sync::mpsc::Receiver<GatewayResult<Bytes>>,
}

impl Stream for ByteRangeStream {
    type Item = GatewayResult<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// One piece of work: bytes `range` of stripe `stripe` of a striped blob, or of an inline blob.
enum Piece {
    Inline(Bytes),
    Stripe { blob: Arc<StripedBlob>, stripe: u32, range: Range<usize> },
}

impl DataPath {
    /// Streams bytes `range` of the concatenation of `parts`. The range must lie within it.
    pub fn read_range(self: &Arc<Self>, parts: Vec<PartData>, range: Range<u64>) -> ByteRangeStream {
        let (tx, rx) = tokio::sync::mpsc::channel(STRIPES_IN_FLIGHT_MAX * 8);
        let pieces = plan(parts, range);
        let this = self.clone();
        tokio::spawn(async move {
            let mut fetched = futures::stream::iter(pieces)
                .map(|piece| {
                    let this = this.clone();
                    async move {
                        match piece {
                            Piece::Inline(bytes) => Ok(vec![bytes]),
                            Piece::Stripe { blob, stripe, range } => this.read_stripe(&blob, stripe, range).await,
                        }
                    }
                })
                .buffered(STRIPES_IN_FLIGHT_MAX);
            while let Some(result) = fetched.next().await {
                match result {
                    Ok(pieces) => {
                        for piece in pieces {
                            if tx.send(Ok(piece)).await.is_err() {
                                return; // the client went away
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "object read failed mid-stream");
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        ByteRangeStream { rx }
    }

    /// Returns the requested bytes of one stripe as zero-copy slices of its shards.
    async fn read_stripe(&self, blob: &StripedBlob, stripe: u32, range: Range<usize>) -> GatewayResult<Vec<Bytes>> {
        let record = blob
            .stripes
            .get(stripe as usize)
            .ok_or_else(|| GatewayError::Internal(format!("stripe {stripe} missing from metadata")))?;
        let k = blob.data_shards as usize;
        let total = k + blob.parity_shards as usize;
        if record.shards.len() != total {
            return Err(GatewayError::Internal("stripe record has the wrong number of shards".into()));
        }
        let shard_len = (record.data_len as usize).div_ceil(k).max(1);
        let needed = range.start / shard_len..range.end.div_ceil(shard_len);
        let mut shards = self.gather(blob, stripe, needed.clone()).await?;
        if needed.clone().any(|i| shards[i].is_none()) {
            self.decode(&mut shards, k).await?;
        }
        let mut out = Vec::with_capacity(needed.len());
        for i in needed {
            let shard = shards[i].as_ref().expect("needed shards are present after reconstruction");
            let start = range.start.max(i * shard_len) - i * shard_len;
            let end = range.end.min((i + 1) * shard_len) - i * shard_len;
            out.push(shard.slice(start..end));
        }
        Ok(out)
    }

    /// Fetches the `needed` data shards, hedging: when one fails, or has not answered after
    /// `HEDGE_AFTER_MS`, one more shard (parity first) is requested for each one missing, so a
    /// dead, hung or slow node costs at most that delay, never a timeout. Returns when every needed
    /// shard is in, or when any k shards are (the caller decodes), or when no request is left.
    async fn gather(&self, blob: &StripedBlob, stripe: u32, needed: Range<usize>) -> GatewayResult<Vec<Option<Bytes>>> {
        let k = blob.data_shards as usize;
        let total = k + blob.parity_shards as usize;
        let mut shards: Vec<Option<Bytes>> = vec![None; total];
        // Spare shards in the order they are tried: parity, then data shards outside the range.
        let mut spares = (k..total).chain((0..k).filter(|i| !needed.contains(i)));
        let mut pending = FuturesUnordered::new();
        let fetch = |i: usize| async move { (i, self.fetch_shard(blob, stripe, i).await) };
        for i in needed.clone() {
            pending.push(fetch(i));
        }
        let mut requested_spares = 0usize;
        let hedge = tokio::time::sleep(std::time::Duration::from_millis(HEDGE_AFTER_MS));
        tokio::pin!(hedge);
        let mut hedged = false;
        loop {
            let have = shards.iter().filter(|s| s.is_some()).count();
            if needed.clone().all(|i| shards[i].is_some()) || (requested_spares > 0 && have >= k) {
                return Ok(shards);
            }
            tokio::select! {
                done = pending.next() => match done {
                    Some((i, Some(bytes))) => shards[i] = Some(bytes),
                    Some((_, None)) => {
                        // Failed (missing, unreachable, corrupt): replace it at once.
                        if let Some(spare) = spares.next() {
                            requested_spares += 1;
                            pending.push(fetch(spare));
                        }
                    }
                    None => return Err(GatewayError::Unreadable { blob: blob.blob.to_string(), stripe }),
                },
                () = &mut hedge, if !hedged => {
                    hedged = true;
                    let outstanding = needed.clone().filter(|i| shards[*i].is_none()).count();
                    for spare in spares.by_ref().take(outstanding) {
                        requested_spares += 1;
                        pending.push(fetch(spare));
                    }
                    if outstanding > 0 {
                        tracing::debug!(blob = %blob.blob, stripe, outstanding, "slow shard reads hedged");
                    }
                }
            }
        }
    }

    /// Rebuilds the missing data shards from any k present ones.
    async fn decode(&self, shards: &mut [Option<Bytes>], k: usize) -> GatewayResult<()> {
        if shards[..k].iter().all(|s| s.is_some()) {
            return Ok(());
        }
        let mut owned: Vec<Option<Vec<u8>>> = shards.iter().map(|s| s.as_ref().map(|b| b.to_vec())).collect();
        let codec = self.layout().codec.clone();
        let rebuilt = tokio::task::spawn_blocking(move || codec.reconstruct_data(&mut owned).map(|()| owned))
            .await
            .map_err(|e| GatewayError::Internal(format!("reconstruction task: {e}")))??;
        for (slot, shard) in shards.iter_mut().zip(rebuilt).take(k) {
            if slot.is_none() {
                *slot = shard.map(Bytes::from);
            }
        }
        Ok(())
    }

    /// Fetches and verifies one shard; None when it is missing, unreachable or corrupt.
    pub(crate) async fn fetch_shard(&self, blob: &StripedBlob, stripe: u32, index: usize) -> Option<Bytes> {
        let record = &blob.stripes[stripe as usize].shards[index];
        let id = ShardId { blob: blob.blob.clone(), stripe: StripeIndex(stripe), shard: ShardIndex(index as u32) };
        let Ok(expected) = blake3::Hash::from_hex(&record.blake3) else {
            tracing::error!(shard = %id, "metadata holds a malformed shard hash");
            return None;
        };
        let address = self.address(&record.node).ok()?;
        if self.is_down(&record.node) {
            return None;
        }
        let result = self.client.get_shard(address, &id, &expected).await;
        self.observe(&record.node, result.as_ref().map(|_| ()));
        match result {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                // A corrupt shard was quarantined by its node; the repair service rebuilds it.
                tracing::warn!(shard = %id, node = %record.node, error = %e, "shard unavailable, reading around it");
                None
            }
        }
    }
}

/// Splits a byte range of a part list into inline slices and per-stripe ranges.
fn plan(parts: Vec<PartData>, range: Range<u64>) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut part_start = 0u64;
    for part in parts {
        let part_end = part_start + part.size;
        let from = range.start.max(part_start);
        let to = range.end.min(part_end);
        if from < to {
            let (from, to) = ((from - part_start) as usize, (to - part_start) as usize);
            match part.location {
                DataLocation::Inline(bytes) => pieces.push(Piece::Inline(Bytes::from(bytes).slice(from..to))),
                DataLocation::Striped(blob) => {
                    let stripe_bytes = blob.data_shards as usize * blob.shard_size_bytes as usize;
                    let blob = Arc::new(blob);
                    for stripe in from / stripe_bytes..to.div_ceil(stripe_bytes) {
                        let base = stripe * stripe_bytes;
                        let range = from.max(base) - base..to.min(base + stripe_bytes) - base;
                        pieces.push(Piece::Stripe { blob: blob.clone(), stripe: stripe as u32, range });
                    }
                }
            }
        }
        part_start = part_end;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_meta::{Checksums, StripeRecord};
    use ignifuge_types::BlobId;

    fn striped_part(size: u64) -> PartData {
        let stripe_bytes = 2 * 4u64;
        let stripes = (0..size.div_ceil(stripe_bytes))
            .map(|s| StripeRecord {
                data_len: (size - s * stripe_bytes).min(stripe_bytes),
                shards: vec![],
                debt: false,
            })
            .collect();
        PartData {
            part_number: 1,
            size,
            etag: String::new(),
            checksums: Checksums::default(),
            location: DataLocation::Striped(StripedBlob {
                blob: BlobId::new("ab"),
                data_shards: 2,
                parity_shards: 1,
                shard_size_bytes: 4,
                stripes,
            }),
            last_modified_ms: 0,
        }
    }

    fn describe(pieces: &[Piece]) -> Vec<String> {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Inline(b) => format!("inline {}", b.len()),
                Piece::Stripe { stripe, range, .. } => {
                    format!("stripe {stripe} {}..{}", range.start, range.end)
                }
            })
            .collect()
    }

    #[test]
    fn a_range_touches_only_the_stripes_it_needs() {
        let inline = PartData { location: DataLocation::Inline(vec![7; 5]), size: 5, ..striped_part(0) };
        let parts = vec![inline, striped_part(20)];
        assert_eq!(
            describe(&plan(parts.clone(), 0..25)),
            ["inline 5", "stripe 0 0..8", "stripe 1 0..8", "stripe 2 0..4"]
        );
        assert_eq!(describe(&plan(parts.clone(), 3..14)), ["inline 2", "stripe 0 0..8", "stripe 1 0..1"]);
        assert_eq!(describe(&plan(parts, 22..24)), ["stripe 2 1..3"]);
    }
}
