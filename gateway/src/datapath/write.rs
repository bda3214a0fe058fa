//! Writing a blob: the body is read as a stream; MD5 and the client's checksums run on their own
//! thread; each full stripe is encoded and BLAKE3-hashed off the runtime and its shards are sent
//! in parallel to the slots the placement engine picked; at most `STRIPES_IN_FLIGHT_MAX` stripes
//! are in flight. The blob is returned only when every stripe's acknowledged shards pass the
//! survivability check; the caller then commits it to the metadata.

use super::buffers::BufferPool;
use super::{
    BODY_IDLE_TIMEOUT_MS, DataPath, Layout, SHARD_SIZE_BYTES, SHARD_WRITE_ATTEMPTS, STRIPES_IN_FLIGHT_MAX, WriteIntent,
    new_blob_id,
};
use crate::checksums::{BodyDigests, BodyHasher, Expected};
use crate::error::{GatewayError, GatewayResult};
use bytes::Bytes;
use futures::stream::FuturesOrdered;
use futures::{Stream, StreamExt};
use ignifuge_meta::{DataLocation, ShardRecord, StripeRecord, StripedBlob};
use ignifuge_placement::{Geometry, Slot};
use ignifuge_rpc::ShardRole;
use ignifuge_types::{BlobId, DiskIndex, NodeId, ShardId, ShardIndex, StripeIndex};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Chunks queued to the hashing thread before the reader waits for it.
const HASH_QUEUE_CHUNKS: usize = 64;

/// What the client said about the body.
pub struct WriteRequest {
    pub expected: Expected,
    /// Content-Length (or x-amz-decoded-content-length) when announced.
    pub declared_length: Option<u64>,
    /// Largest body accepted.
    pub max_length: u64,
    /// Whether the body may go to a pack (`crate::pack`): a PutObject's. A body announced at
    /// most `DataPathTuning::pack_max_bytes` is then read into memory whole.
    pub packable: bool,
}

/// A blob durably written but not yet committed to the metadata.
pub struct WrittenBlob {
    pub size: u64,
    pub digests: BodyDigests,
    pub location: DataLocation,
    /// For a striped blob: keep a clone until the commit has answered, so that the orphan sweep
    /// spares its shards meanwhile. None for an inline blob, which has no shards.
    pub intent: Option<Arc<WriteIntent>>,
    /// For a body to be packed (its location is inline until the packer places it): its share
    /// of the gateway's pack budget, to hold until its pack has been written.
    pub pack_budget: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// How often a stripe buffer held past its fill deadline looks for uploads waiting for one.
const FILL_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Counts an upload among those waiting for a stripe permit, until dropped (also when the
/// request is abandoned while it waits).
pub(crate) struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    pub(crate) fn enter(waiters: &'a AtomicUsize) -> Self {
        waiters.fetch_add(1, Ordering::Relaxed);
        Self(waiters)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The result of a spawned stripe write.
fn joined(done: Result<GatewayResult<StripeRecord>, tokio::task::JoinError>) -> GatewayResult<StripeRecord> {
    done.map_err(|e| GatewayError::Internal(format!("stripe writer: {e}")))?
}

impl DataPath {
    /// Writes a body as a new blob. `trailers` is called once the body has been read whole and
    /// returns the trailing headers (aws-chunked), if any.
    pub async fn write_blob<S, E>(
        self: &Arc<Self>,
        mut body: S,
        request: WriteRequest,
        trailers: impl FnOnce() -> Vec<(String, String)>,
    ) -> GatewayResult<WrittenBlob>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: Into<GatewayError>,
    {
        // Before the first byte: a commit past the window from here is refused (`born_ms`).
        let born_ms = ignifuge_types::time::now_ms();
        // A body announced too large is refused before any byte of it is read, as AWS does.
        if request.declared_length.is_some_and(|declared| declared > request.max_length) {
            return Err(GatewayError::EntityTooLarge);
        }
        // Nor is a body read while this gateway may not place it (`write_stripe` checks again for
        // each stripe).
        self.placing_layout()?;
        // A body to pack is read whole into memory, within the gateway's pack budget.
        let pack_length = request.declared_length.filter(|&declared| {
            request.packable
                && declared > self.tuning.inline_max_bytes as u64
                && declared <= self.tuning.pack_max_bytes as u64
        });
        let pack_budget = match pack_length {
            Some(length) => {
                let waiting = Waiting::enter(&self.pack_waiters);
                let budget = self.pack_budget.clone().acquire_many_owned(length.max(1) as u32).await;
                drop(waiting);
                Some(budget.map_err(|_| GatewayError::Internal("the pack budget was closed".into()))?)
            }
            None => None,
        };
        // When the pack budget was taken: a body holding it past the fill deadline while others
        // wait for some is cut, as a stripe buffer's is.
        let pack_since = Instant::now();
        let in_memory_max = pack_length.map_or(self.tuning.inline_max_bytes, |length| length as usize);
        let blob = new_blob_id();
        // Registered when the first stripe starts: only striped blobs have shards to spare.
        let mut intent: Option<Arc<WriteIntent>> = None;
        let (hash_tx, mut hash_rx) = tokio::sync::mpsc::channel::<Bytes>(HASH_QUEUE_CHUNKS);
        let algorithms = request.expected.algorithms();
        let hasher = tokio::task::spawn_blocking(move || {
            let mut hasher = BodyHasher::new(&algorithms);
            while let Some(chunk) = hash_rx.blocking_recv() {
                hasher.update(&chunk);
            }
            hasher.finalize()
        });

        let geometry = self.layout().geometry;
        let stripe_bytes = geometry.data_shards as usize * SHARD_SIZE_BYTES;
        // A body to pack is held whole: room for exactly its announced length, not a doubling.
        let mut buffer: Vec<u8> = Vec::with_capacity(pack_length.unwrap_or(0) as usize);
        let mut striped = false;
        let mut total: u64 = 0;
        let mut next_stripe = 0u32;
        let mut in_flight = FuturesOrdered::new();
        let mut tasks: Vec<tokio::task::AbortHandle> = Vec::new();
        let mut stripes: Vec<StripeRecord> = Vec::new();
        let mut permit: Option<tokio::sync::OwnedSemaphorePermit> = None;
        // When the permit held was taken.
        let mut permit_since = Instant::now();

        let streamed: GatewayResult<()> = async {
            let idle = Duration::from_millis(BODY_IDLE_TIMEOUT_MS);
            let fill_max = Duration::from_millis(self.tuning.stripe_fill_max_ms);
            let mut last_chunk = Instant::now();
            loop {
                // A stripe buffer held past its fill deadline is given up when others wait for
                // one; the deadline is checked while waiting for the client, and after each chunk.
                let holds_late =
                    |since: Instant| since.elapsed() >= fill_max && self.stripe_waiters.load(Ordering::Relaxed) > 0;
                if permit.is_some() && holds_late(permit_since) {
                    tracing::info!(blob = %blob, "a slow upload held a stripe buffer others wait for: cut");
                    return Err(GatewayError::RequestTimeout);
                }
                let packing = pack_budget.is_some() && !striped;
                if packing && pack_since.elapsed() >= fill_max && self.pack_waiters.load(Ordering::Relaxed) > 0 {
                    tracing::info!("a slow upload held pack budget others wait for: cut");
                    return Err(GatewayError::RequestTimeout);
                }
                let mut wait = idle.saturating_sub(last_chunk.elapsed());
                if permit.is_some() {
                    let until_deadline = fill_max.saturating_sub(permit_since.elapsed());
                    wait = wait.min(until_deadline.max(FILL_CHECK_INTERVAL));
                }
                if packing {
                    let until_deadline = fill_max.saturating_sub(pack_since.elapsed());
                    wait = wait.min(until_deadline.max(FILL_CHECK_INTERVAL));
                }
                let chunk = match tokio::time::timeout(wait, body.next()).await {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => break,
                    Err(_) if last_chunk.elapsed() >= idle => return Err(GatewayError::RequestTimeout),
                    Err(_) => continue,
                };
                let chunk = chunk.map_err(Into::into)?;
                total += chunk.len() as u64;
                if total > request.max_length {
                    return Err(GatewayError::EntityTooLarge);
                }
                let mut rest: &[u8] = &chunk;
                while !rest.is_empty() {
                    if !striped && buffer.len() + rest.len() <= in_memory_max {
                        buffer.extend_from_slice(rest);
                        break;
                    }
                    striped = true;
                    if intent.is_none() {
                        intent = Some(self.intents.begin(blob.clone()));
                    }
                    if permit.is_none() {
                        // The gateway-wide bound on stripes in memory: wait for one to be freed.
                        let waiting = Waiting::enter(&self.stripe_waiters);
                        let acquired = self.stripe_permits.clone().acquire_owned().await;
                        drop(waiting);
                        permit = Some(acquired.expect("never closed"));
                        permit_since = Instant::now();
                        // A kept buffer (`buffers`) when there is one: refilled from its
                        // start, never zeroed.
                        let mut stripe = self.buffers.take(stripe_bytes);
                        stripe.clear();
                        stripe.extend_from_slice(&buffer);
                        buffer = stripe;
                    }
                    let take = rest.len().min(stripe_bytes - buffer.len());
                    buffer.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if buffer.len() == stripe_bytes {
                        let full = std::mem::take(&mut buffer);
                        let held = permit.take().expect("a full stripe holds a permit");
                        while in_flight.len() >= STRIPES_IN_FLIGHT_MAX {
                            stripes.push(joined(in_flight.next().await.expect("in flight"))?);
                        }
                        // Spawned, so the stripe is encoded and written while the body keeps
                        // arriving, and its permit is released even if this request stalls.
                        let full = StripeData::Kept(full);
                        let task = tokio::spawn(self.clone().write_stripe(
                            blob.clone(),
                            geometry,
                            StripeIndex(next_stripe),
                            full,
                            held,
                        ));
                        tasks.push(task.abort_handle());
                        in_flight.push_back(task);
                        next_stripe += 1;
                    }
                }
                if hash_tx.send(chunk).await.is_err() {
                    return Err(GatewayError::Internal("hashing thread stopped".into()));
                }
                // The client is idle from here, not from the chunk's arrival: waiting for a
                // stripe buffer, for stripes in flight or for the hashing thread is the gateway's
                // time, and must not time out a client that is ready to send.
                last_chunk = Instant::now();
            }
            match request.declared_length {
                Some(declared) if declared > total => return Err(GatewayError::IncompleteBody),
                Some(declared) if declared < total => {
                    return Err(GatewayError::InvalidRequest("body longer than its Content-Length".into()));
                }
                _ => {}
            }
            if striped && !buffer.is_empty() {
                let last = StripeData::Kept(std::mem::take(&mut buffer));
                let held = permit.take().expect("a partial stripe holds a permit");
                let task = tokio::spawn(self.clone().write_stripe(
                    blob.clone(),
                    geometry,
                    StripeIndex(next_stripe),
                    last,
                    held,
                ));
                tasks.push(task.abort_handle());
                in_flight.push_back(task);
            }
            while let Some(done) = in_flight.next().await {
                stripes.push(joined(done)?);
            }
            Ok(())
        }
        .await;
        if streamed.is_err() {
            for task in &tasks {
                task.abort();
            }
        }
        drop(hash_tx);
        let digests = hasher.await.map_err(|e| GatewayError::Internal(format!("hashing thread: {e}")));

        let verified = streamed.and_then(|()| {
            let digests = digests?;
            request.expected.verify(&digests, &trailers())?;
            Ok(digests)
        });
        let digests = match verified {
            Ok(d) => d,
            Err(e) => {
                if striped {
                    self.discard(blob);
                }
                return Err(e);
            }
        };
        let location = if striped {
            DataLocation::Striped(StripedBlob::whole(
                blob,
                (geometry.data_shards, geometry.parity_shards),
                SHARD_SIZE_BYTES as u32,
                stripes,
                born_ms,
            ))
        } else {
            DataLocation::Inline(buffer)
        };
        let pack_budget = if striped { None } else { pack_budget };
        Ok(WrittenBlob { size: total, digests, location, intent, pack_budget })
    }

    /// Bytes of data one stripe holds (k shards of `SHARD_SIZE_BYTES`).
    pub fn stripe_data_bytes(&self) -> usize {
        self.geometry().data_shards as usize * SHARD_SIZE_BYTES
    }

    /// An empty buffer for `bytes` of bodies to pack, with room for the padding `write_stripe`
    /// adds to make k equal shards (no reallocation).
    pub fn pack_buffer(&self, bytes: usize) -> Vec<u8> {
        // The geometry is pinned for a cluster's life; read as `write_blob` reads it.
        let k = self.geometry().data_shards.max(1) as usize;
        Vec::with_capacity(bytes.div_ceil(k).max(1) * k)
    }

    /// Writes `data` (bodies side by side) as one pack: stripe 0 of the new blob `blob`, waiting
    /// for a stripe buffer as an upload does (counted among the waiters, so that a buffer held
    /// past its fill deadline by a trickling upload is cut for the pack too). Returns the pack
    /// with its stripe record; on failure whatever shards were written are discarded. The
    /// caller holds the blob's intent until its commit has answered.
    pub async fn write_pack(self: &Arc<Self>, blob: BlobId, born_ms: i64, data: Vec<u8>) -> GatewayResult<StripedBlob> {
        let geometry = self.geometry();
        let written = async {
            let waiting = Waiting::enter(&self.stripe_waiters);
            let permit = self.stripe_permits.clone().acquire_owned().await.expect("never closed");
            drop(waiting);
            self.clone().write_stripe(blob.clone(), geometry, StripeIndex(0), StripeData::Owned(data), permit).await
        }
        .await;
        match written {
            Ok(stripe) => Ok(StripedBlob::whole(
                blob,
                (geometry.data_shards, geometry.parity_shards),
                SHARD_SIZE_BYTES as u32,
                vec![stripe],
                born_ms,
            )),
            Err(e) => {
                self.discard(blob);
                Err(e)
            }
        }
    }

    /// Encodes one stripe of a blob written `geometry` (the record will say so), sends its
    /// shards, and proves the acknowledged set meets the budget. Refused while the metadata has
    /// not vouched for the layout in use (`placing_layout`), and when that layout now codes
    /// another geometry (a gateway that started with its own file and has since loaded the
    /// stored layout): every stripe of a blob is coded as its record says.
    pub(crate) async fn write_stripe(
        self: Arc<Self>,
        blob: BlobId,
        geometry: Geometry,
        index: StripeIndex,
        data: StripeData,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> GatewayResult<StripeRecord> {
        let layout = self.placing_layout()?;
        if layout.geometry != geometry {
            return Err(GatewayError::DurabilityNotMet(format!(
                "the cluster layout changed from {}+{} to {}+{} during the write of blob {blob}",
                geometry.data_shards,
                geometry.parity_shards,
                layout.geometry.data_shards,
                layout.geometry.parity_shards
            )));
        }
        let k = layout.geometry.data_shards as usize;
        let data_len = data.len();
        let codec = layout.codec.clone();
        let buffers = self.buffers.clone();
        // The encoder holds the permit while it holds the stripe's buffers: a write abandoned
        // meanwhile (its upload failed) does not free the permit before the memory.
        let (encoded, _permit) =
            tokio::task::spawn_blocking(move || (encode_shards(&buffers, codec.as_ref(), data), permit))
                .await
                .map_err(|e| GatewayError::Internal(format!("encoder task: {e}")))?;
        let (shards, hashes) = encoded?;

        let slots = self.slots(&layout, &blob, index.clone())?;
        let puts =
            slots.iter().enumerate().map(|(i, slot)| self.put_shard(&blob, &index, i, k, slot, &shards, &hashes));
        let mut placed: Vec<Option<Slot>> = futures::future::join_all(puts).await;
        let acknowledged: Vec<Slot> = placed.iter().flatten().cloned().collect();
        let report =
            ignifuge_placement::check_survivability(&layout.topology, layout.geometry, &acknowledged, layout.budget);
        let mut debt = false;
        if !report.meets_budget {
            let Some(minimum) = layout.degraded_minimum else {
                return Err(GatewayError::DurabilityNotMet(report.explanation));
            };
            // Outage policy "degrade": put the missing shards on live nodes (doubling up), and
            // accept the stripe if it still meets the class's declared minimum, as recorded debt.
            let failed: Vec<&Slot> =
                slots.iter().zip(&placed).filter(|(_, p)| p.is_none()).map(|(slot, _)| slot).collect();
            let failed_nodes: Vec<NodeId> = failed.iter().map(|s| s.node.clone()).collect();
            for i in 0..placed.len() {
                if placed[i].is_some() {
                    continue;
                }
                for candidate in self.spare_candidates(&layout, &placed, &failed_nodes, &slots[i].datacenter) {
                    if let Some(slot) = self.put_shard(&blob, &index, i, k, &candidate, &shards, &hashes).await {
                        placed[i] = Some(slot);
                        break;
                    }
                }
            }
            let acknowledged: Vec<Slot> = placed.iter().flatten().cloned().collect();
            let degraded =
                ignifuge_placement::check_survivability(&layout.topology, layout.geometry, &acknowledged, minimum);
            if !degraded.meets_budget || placed.iter().any(|p| p.is_none()) {
                return Err(GatewayError::DurabilityNotMet(format!(
                    "{}; even the outage minimum is not met: {}",
                    report.explanation, degraded.explanation
                )));
            }
            tracing::warn!(%blob, stripe = %index, survives = %degraded.survives, "stripe written with durability debt");
            debt = true;
        }
        Ok(StripeRecord {
            data_len: data_len as u64,
            // A shard that failed where the acknowledged ones already meet the budget (a pinned
            // geometry with spare parity) is recorded at its slot: missing there, the repair
            // service puts it back.
            shards: placed
                .into_iter()
                .zip(&slots)
                .zip(hashes)
                .map(|((placed, slot), hash)| ShardRecord {
                    node: placed.map_or_else(|| slot.node.clone(), |p| p.node),
                    blake3: hash.to_hex().to_string(),
                })
                .collect(),
            debt,
        })
    }

    /// Sends shard `i` of a stripe of `data_shards` data shards to `slot`, retrying; the slot on
    /// success.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_shard(
        &self,
        blob: &BlobId,
        stripe: &StripeIndex,
        i: usize,
        data_shards: usize,
        slot: &Slot,
        shards: &[Bytes],
        hashes: &[blake3::Hash],
    ) -> Option<Slot> {
        let id = ShardId { blob: blob.clone(), stripe: stripe.clone(), shard: ShardIndex(i as u32) };
        let address = self.address(&slot.node).ok()?;
        for attempt in 1..=SHARD_WRITE_ATTEMPTS {
            if self.is_down(&slot.node) {
                return None;
            }
            let role = ShardRole::of(i, data_shards);
            let result = self.client.put_shard(address, &id, shards[i].clone(), &hashes[i], role).await;
            self.observe(&slot.node, result.as_ref().map(|_| ()));
            match result {
                Ok(()) => return Some(slot.clone()),
                Err(e) => tracing::debug!(shard = %id, node = %slot.node, attempt, error = %e, "shard write failed"),
            }
        }
        None
    }

    /// Live-looking nodes for a displaced shard: not among the nodes that just failed, those
    /// holding the fewest shards of this stripe first, then those of the shard's own datacenter
    /// `home` (a datacenter's loss then still costs only its own share of the stripe; one more
    /// shard elsewhere would make that datacenter plus any node too many), then the topology's order.
    fn spare_candidates(
        &self,
        layout: &Layout,
        placed: &[Option<Slot>],
        failed: &[NodeId],
        home: &ignifuge_types::DatacenterId,
    ) -> Vec<Slot> {
        let mut candidates: Vec<(usize, Slot)> = Vec::new();
        for datacenter in &layout.topology.datacenters {
            for node in &datacenter.nodes {
                if failed.contains(&node.id) || self.is_down(&node.id) {
                    continue;
                }
                let load = placed.iter().flatten().filter(|s| s.node == node.id).count();
                let slot = Slot { datacenter: datacenter.id.clone(), node: node.id.clone(), disk: DiskIndex(0) };
                candidates.push((load, slot));
            }
        }
        candidates.sort_by_key(|(load, slot)| (*load, slot.datacenter != *home));
        candidates.into_iter().map(|(_, slot)| slot).collect()
    }
}

/// A stripe's data, in a buffer of the gateway's kept buffers (`DataPath::buffers`), which goes
/// back to them once the stripe's shards are sent, or in a buffer of its own (a pack's, sized for
/// its pack), freed then.
pub(crate) enum StripeData {
    Kept(Vec<u8>),
    Owned(Vec<u8>),
}

impl StripeData {
    fn len(&self) -> usize {
        match self {
            StripeData::Kept(data) | StripeData::Owned(data) => data.len(),
        }
    }
}

/// Pads `data` to k equal shards, encodes the parity into kept buffers and hashes every shard:
/// the k+m shards, data first, and their BLAKE3 hashes. Kept buffers are written over as they
/// are: the padding is written after the bytes just filled, and the encoder overwrites every
/// parity byte (`ErasureCodec::encode`).
fn encode_shards(
    buffers: &Arc<BufferPool>,
    codec: &dyn crate::codec::ErasureCodec,
    data: StripeData,
) -> GatewayResult<(Vec<Bytes>, Vec<blake3::Hash>)> {
    let (k, m) = (codec.data_shards(), codec.parity_shards());
    let (mut data, kept) = match data {
        StripeData::Kept(data) => (data, true),
        StripeData::Owned(data) => (data, false),
    };
    let shard_len = data.len().div_ceil(k).max(1);
    data.resize(shard_len * k, 0);
    let mut parity: Vec<Vec<u8>> = (0..m)
        .map(|_| {
            // Every shard is at most SHARD_SIZE_BYTES; one size of parity buffer serves them all.
            let mut buffer = buffers.take(SHARD_SIZE_BYTES.max(shard_len));
            buffer.resize(shard_len, 0);
            buffer
        })
        .collect();
    let hashes = crate::codec::encode_stripe(codec, &data, shard_len, &mut parity)?;
    let data = if kept { buffers.bytes(data) } else { Bytes::from(data) };
    let shards = (0..k)
        .map(|i| data.slice(i * shard_len..(i + 1) * shard_len))
        .chain(parity.into_iter().map(|buffer| buffers.bytes(buffer)))
        .collect();
    Ok((shards, hashes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::ReedSolomonCodec;

    /// The shards and hashes of `body` encoded into fresh, zeroed buffers.
    fn fresh(codec: &ReedSolomonCodec, body: &[u8]) -> (Vec<Vec<u8>>, Vec<blake3::Hash>) {
        let (shards, hashes) =
            encode_shards(&Arc::new(BufferPool::default()), codec, StripeData::Owned(body.to_vec())).expect("encodes");
        (shards.iter().map(|s| s.to_vec()).collect(), hashes)
    }

    #[test]
    fn kept_buffers_full_of_old_bytes_encode_as_fresh_ones_and_are_kept_again() {
        let codec = ReedSolomonCodec::new(5, 4).unwrap();
        let stripe_bytes = 5 * SHARD_SIZE_BYTES;
        let pool = Arc::new(BufferPool::default());
        // Buffers left by earlier stripes, full of other bytes.
        pool.keep(vec![0xAA; stripe_bytes]);
        for _ in 0..4 {
            pool.keep(vec![0x55; SHARD_SIZE_BYTES]);
        }
        // A full stripe, then a short last stripe (padding and shards shorter than the buffers).
        for body_len in [stripe_bytes, 3 * SHARD_SIZE_BYTES / 2 + 7] {
            let body: Vec<u8> = (0..body_len).map(|i| (i * 31 % 251) as u8).collect();
            let mut data = pool.take(stripe_bytes);
            let address = data.as_ptr();
            assert_eq!(data.capacity(), stripe_bytes, "the kept stripe buffer is lent");
            data.clear();
            data.extend_from_slice(&body);
            let (shards, hashes) = encode_shards(&pool, &codec, StripeData::Kept(data)).unwrap();
            assert_eq!(pool.kept_bytes(), 0, "every kept buffer is in use");
            let (expected_shards, expected_hashes) = fresh(&codec, &body);
            assert_eq!(hashes, expected_hashes, "a kept buffer's old bytes reached a hash ({body_len} bytes)");
            let got: Vec<Vec<u8>> = shards.iter().map(|s| s.to_vec()).collect();
            assert!(got == expected_shards, "a kept buffer's old bytes reached a shard ({body_len} bytes)");
            assert_eq!(shards[0].as_ptr(), address, "the data shards are slices of the kept buffer");
            drop(shards);
            assert_eq!(pool.kept_bytes(), stripe_bytes + 4 * SHARD_SIZE_BYTES, "the buffers are kept again");
        }
    }

    #[test]
    fn a_pack_buffer_is_not_kept() {
        let codec = ReedSolomonCodec::new(5, 4).unwrap();
        let pool = Arc::new(BufferPool::default());
        let (shards, _) = encode_shards(&pool, &codec, StripeData::Owned(vec![1u8; 300 * 1024])).unwrap();
        drop(shards);
        assert_eq!(pool.kept_bytes(), 4 * SHARD_SIZE_BYTES, "only the parity buffers are kept");
    }
}
