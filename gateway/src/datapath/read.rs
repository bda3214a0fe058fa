//! Reading a byte range of a list of parts. Each stripe overlapping the range is fetched (only
//! the data shards that hold requested bytes when they are all healthy), checked against the
//! BLAKE3 hashes in the metadata, and rebuilt from parity when shards are missing or corrupt.
//! Stripes are fetched ahead of the client by `STRIPES_IN_FLIGHT_MAX`; the first bytes go out
//! before the rest of the object is read. Stripe records that did not come with the object's
//! record (an object of more than `ANSWER_STRIPES_MAX` stripes, up to a million at 5 TiB) are
//! fetched from the metadata a window at a time, as the read reaches them: memory stays bounded
//! whatever the object's size.

use super::{AbortOnDrop, DataPath, HEDGE_AFTER_MS, ReadHold, STRIPES_IN_FLIGHT_MAX};
use crate::error::{GatewayError, GatewayResult};
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{FutureExt as _, Stream, StreamExt, future};
use ignifuge_meta::{ANSWER_STRIPES_MAX, DataLocation, Metadata, PartData, ShardRecord, StripeRecord, StripedBlob};
use ignifuge_types::{ShardId, ShardIndex, StripeIndex, TenantId};
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::OwnedSemaphorePermit;

/// The body of a GET: pieces of the object in order, produced by a background task.
pub struct ByteRangeStream {
    rx: tokio::sync::mpsc::Receiver<GatewayResult<Budgeted>>,
    /// The read budget of the stripe whose bytes were yielded last: given back once the client
    /// has taken them all (it asks for more: the next piece is of another stripe, none is ready
    /// yet, or the stream ends or is dropped).
    held: Option<Arc<OwnedSemaphorePermit>>,
}

/// Bytes of a stripe, with the read budget the stripe holds until its last byte is taken.
struct Budgeted {
    bytes: Bytes,
    budget: Option<Arc<OwnedSemaphorePermit>>,
}

impl Stream for ByteRangeStream {
    type Item = GatewayResult<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(piece))) => {
                self.held = piece.budget;
                Poll::Ready(Some(Ok(piece.bytes)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => {
                self.held = None;
                Poll::Ready(None)
            }
            // Asked for more and none is ready: the client has taken every byte yielded, so the
            // stripe they came from holds nothing. Keeping its budget while the next stripe
            // waits for one would let GETs deadlock on each other.
            Poll::Pending => {
                self.held = None;
                Poll::Pending
            }
        }
    }
}

/// Where a read takes its shards from.
#[derive(Clone, Debug)]
enum Shards {
    /// The shard cache when it holds them (small shards fetched are kept, charged to this
    /// tenant: the owner of the bucket read): GETs.
    CacheFirst(TenantId),
    /// Their nodes, always: background services.
    Nodes,
}

/// Whether a shard read asks a node marked down (`NODE_DOWN_BACKOFF_MS`): a read skips it,
/// unless the stripe cannot be read without it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DownNodes {
    Skip,
    Ask,
}

/// One piece of work: bytes `range` of stripe `stripe` of a striped blob (which holds that
/// stripe's record), or of an inline blob.
enum Piece {
    Inline(Bytes),
    Stripe { blob: Arc<StripedBlob>, stripe: u32, range: Range<usize> },
}

/// A piece about to be read: bytes at hand, or a stripe with the read budget it holds.
enum Fetch {
    Ready(Bytes),
    Stripe { blob: Arc<StripedBlob>, stripe: u32, range: Range<usize>, budget: OwnedSemaphorePermit },
}

/// The outcome of a part of a read that ran in a task of its own; a panic there goes on here.
fn joined<T>(joined: Result<GatewayResult<T>, tokio::task::JoinError>) -> GatewayResult<T> {
    match joined {
        Ok(outcome) => outcome,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(GatewayError::Internal(format!("a read's task: {e}"))),
    }
}

/// The bytes `from..to` of one part.
struct Segment {
    location: DataLocation,
    from: usize,
    to: usize,
}

impl DataPath {
    /// Streams bytes `range` of the concatenation of `parts`. The range must lie within it.
    /// `metadata` answers for stripe records that the parts do not hold. Small shards read are
    /// kept in the shard cache, charged to `owner` (the tenant owning the bucket read).
    pub fn read_range(
        self: &Arc<Self>,
        parts: Vec<PartData>,
        range: Range<u64>,
        metadata: Arc<dyn Metadata>,
        owner: TenantId,
    ) -> ByteRangeStream {
        self.read_range_from(parts, range, metadata, Shards::CacheFirst(owner))
    }

    /// `read_range` for a background service: every shard from its node, none kept in the shard
    /// cache (the compactor reads packs about to be freed, which would push out what GETs read).
    pub fn read_range_from_nodes(
        self: &Arc<Self>,
        parts: Vec<PartData>,
        range: Range<u64>,
        metadata: Arc<dyn Metadata>,
    ) -> ByteRangeStream {
        self.read_range_from(parts, range, metadata, Shards::Nodes)
    }

    fn read_range_from(
        self: &Arc<Self>,
        parts: Vec<PartData>,
        range: Range<u64>,
        metadata: Arc<dyn Metadata>,
        source: Shards,
    ) -> ByteRangeStream {
        let (tx, rx) = tokio::sync::mpsc::channel(STRIPES_IN_FLIGHT_MAX * 8);
        let segments = plan(parts, range);
        // Until the read ends, its striped blobs are held: if the object is replaced or deleted
        // while it streams, the collector leaves them past its grace (`intents`). A packed
        // object is one small slice, read as soon as it is asked for, and its pack is not held:
        // holding it measured 1.06x the server CPU of a 4 KiB GET (docs/benchmarks.md).
        let holds: Vec<ReadHold> = segments
            .iter()
            .filter_map(|s| match &s.location {
                DataLocation::Striped(striped) => Some(self.intents.hold_read(striped.blob.clone())),
                DataLocation::Packed(_) | DataLocation::Inline(_) => None,
            })
            .collect();
        let pieces = pieces(segments, metadata.clone());
        let this = self.clone();
        tokio::spawn(async move {
            let _holds = holds;
            let permits = this.read_permits.clone();
            let mut fetched = std::pin::pin!(
                pieces
                    // The read budget, taken in the stripes' order, each held from its first
                    // shard request until the client took its last byte (`ByteRangeStream::held`).
                    // Not by the stripe reads themselves: a stripe read ahead could take it first
                    // and keep it in its bytes, which wait for the stripe before it, itself waiting
                    // for budget (with one permit, or as many GETs starting at once, every GET of
                    // the gateway would hang).
                    .then(move |piece| {
                        let permits = permits.clone();
                        async move {
                            match piece? {
                                Piece::Stripe { blob, stripe, range } => {
                                    let budget = permits
                                        .acquire_owned()
                                        .await
                                        .map_err(|_| GatewayError::Internal("the read budget was closed".into()))?;
                                    Ok(Fetch::Stripe { blob, stripe, range, budget })
                                }
                                Piece::Inline(bytes) => Ok(Fetch::Ready(bytes)),
                            }
                        }
                    })
                    .map(|fetch| {
                        let (blob, stripe, range, budget) = match fetch {
                            Ok(Fetch::Stripe { blob, stripe, range, budget }) => (blob, stripe, range, budget),
                            Ok(Fetch::Ready(bytes)) => return future::ready(Ok((vec![bytes], None))).left_future(),
                            Err(e) => return future::ready(Err(e)).left_future(),
                        };
                        let (this, source, metadata) = (this.clone(), source.clone(), metadata.clone());
                        // A task of its own, so that a stripe read ahead goes on while this task
                        // waits for the client to take the stripes before it: left unpolled
                        // meanwhile, its shard requests ran out their time all the same, and a
                        // client taking less than a stripe per 10 s (a 64 MiB GET at 400 KB/s)
                        // had its GET fail mid-stream. Aborted when the read is dropped.
                        let read = tokio::spawn(async move {
                            let bytes = match this.read_stripe(&blob, stripe, range.clone(), &source).await {
                                // The budget stays held while the metadata is asked: given back
                                // meanwhile, the stripe read ahead of this one could take it and
                                // keep it in its bytes, which wait for this stripe's.
                                Err(e @ GatewayError::Unreadable { .. }) => {
                                    match refreshed(&blob, stripe, metadata.as_ref()).await {
                                        Some(fresh) => this.read_stripe(&fresh, stripe, range, &source).await?,
                                        None => return Err(e),
                                    }
                                }
                                read => read?,
                            };
                            Ok((bytes, Some(Arc::new(budget))))
                        });
                        AbortOnDrop(read).map(joined).right_future()
                    })
                    .buffered(STRIPES_IN_FLIGHT_MAX)
            );
            loop {
                // A client gone is noticed while the next stripe is read or waits for budget, not
                // only at the next send: returning aborts the reads under way and leaves the queue
                // for budget (else a GET nobody waits for would still take its turn and read a
                // stripe for nobody).
                let result = tokio::select! {
                    biased;
                    () = tx.closed() => return,
                    next = fetched.next() => match next {
                        Some(result) => result,
                        None => return,
                    },
                };
                match result {
                    Ok((pieces, budget)) => {
                        for bytes in pieces {
                            if tx.send(Ok(Budgeted { bytes, budget: budget.clone() })).await.is_err() {
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
        ByteRangeStream { rx, held: None }
    }

    /// Returns the requested bytes of one stripe as zero-copy slices of its shards.
    async fn read_stripe(
        self: &Arc<Self>,
        blob: &StripedBlob,
        stripe: u32,
        range: Range<usize>,
        source: &Shards,
    ) -> GatewayResult<Vec<Bytes>> {
        let record = blob
            .stripe(stripe)
            .ok_or_else(|| GatewayError::Internal(format!("stripe {stripe} missing from metadata")))?;
        let k = blob.data_shards as usize;
        let total = k + blob.parity_shards as usize;
        if record.shards.len() != total {
            return Err(GatewayError::Internal("stripe record has the wrong number of shards".into()));
        }
        let shard_len = (record.data_len as usize).div_ceil(k).max(1);
        let needed = range.start / shard_len..range.end.div_ceil(shard_len);
        let mut shards = self.gather(blob, stripe, needed.clone(), source).await?;
        if needed.clone().any(|i| shards[i].is_none()) {
            self.decode(blob, stripe, &mut shards).await?;
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

    /// Fetches the `needed` data shards, hedging: when one fails, spares (parity first) are
    /// requested so that with the shards already in they make k (a missing shard means decoding,
    /// which takes any k: a read of a few bytes needs one data shard, and one spare for it would
    /// leave the stripe undecodable). One that has not answered after `HEDGE_AFTER_MS` gets one
    /// spare in its place (enough when the whole stripe is read; when every read is merely slow,
    /// a load spike, a read of one shard does not become k reads), after twice that enough spares
    /// to make k, then one more every `HEDGE_AFTER_MS` while the read is not done (a spare may
    /// hang too): a dead, hung or slow node costs about twice that delay, never a timeout.
    /// Returns when every needed shard is in, or when any k shards are (the caller decodes), or
    /// when no request is left.
    async fn gather(
        self: &Arc<Self>,
        blob: &StripedBlob,
        stripe: u32,
        needed: Range<usize>,
        source: &Shards,
    ) -> GatewayResult<Vec<Option<Bytes>>> {
        let k = blob.data_shards as usize;
        let total = k + blob.parity_shards as usize;
        let mut shards: Vec<Option<Bytes>> = vec![None; total];
        // Spare shards in the order they are tried: parity, then data shards outside the range.
        let mut spares = (k..total).chain((0..k).filter(|i| !needed.contains(i)));
        let mut pending = FuturesUnordered::new();
        // Shards whose node was marked down when they were asked for: not asked at all (only the
        // shard cache was), asked in the end if the stripe cannot be read without them. Whether
        // a node is down is decided once per request, here.
        let mut skipped = Vec::new();
        let fetch = |i: usize, down: DownNodes| async move {
            let node_down = || blob.stripe(stripe).and_then(|r| r.shards.get(i)).is_some_and(|r| self.is_down(&r.node));
            let skip = down == DownNodes::Skip && node_down();
            let shard = match (source, skip) {
                (Shards::CacheFirst(_), true) => self.cached_shard(blob, stripe, i),
                (Shards::Nodes, true) => None,
                (Shards::CacheFirst(owner), false) => self.read_shard(blob, stripe, i, owner).await,
                (Shards::Nodes, false) => self.fetch_shard_asking(blob, stripe, i, DownNodes::Ask).await,
            };
            (i, shard, skip)
        };
        for i in needed.clone() {
            pending.push(fetch(i, DownNodes::Skip));
        }
        let mut asked_down = false;
        let mut requested_spares = 0usize;
        let hedge_after = std::time::Duration::from_millis(HEDGE_AFTER_MS);
        let hedge = tokio::time::sleep(hedge_after);
        tokio::pin!(hedge);
        let mut hedges = 0u32;
        loop {
            let have = shards.iter().filter(|s| s.is_some()).count();
            if needed.clone().all(|i| shards[i].is_some()) || (requested_spares > 0 && have >= k) {
                return Ok(shards);
            }
            tokio::select! {
                done = pending.next() => match done {
                    Some((i, Some(bytes), _)) => shards[i] = Some(bytes),
                    Some((i, None, skip)) => {
                        if skip {
                            skipped.push(i);
                        }
                        // Failed (missing, unreachable, corrupt): the stripe must now be decoded,
                        // which takes any k shards, so ask for enough spares to make k (a range
                        // inside one data shard asked for one shard only).
                        let have = shards.iter().filter(|s| s.is_some()).count();
                        let mut replaced = false;
                        while !replaced || have + pending.len() < k {
                            let Some(spare) = spares.next() else { break };
                            requested_spares += 1;
                            pending.push(fetch(spare, DownNodes::Skip));
                            replaced = true;
                        }
                    }
                    None => {
                        // Every request is answered and too few shards are in. Those of nodes
                        // marked down were never asked: the mark lasts `NODE_DOWN_BACKOFF_MS`
                        // after one failed call, and a node back from a restart or a blip may
                        // hold the last shards a degraded stripe has (a datacenter and a node
                        // out leave exactly k). Ask them, once, before giving up, if with them
                        // the stripe can be read (an unreadable stripe does not wait for nodes
                        // that may time out again).
                        let have = shards.iter().filter(|s| s.is_some()).count();
                        if asked_down || skipped.is_empty() || have + skipped.len() < k {
                            return Err(GatewayError::Unreadable { blob: blob.blob.to_string(), stripe });
                        }
                        asked_down = true;
                        tracing::info!(blob = %blob.blob, stripe, nodes_marked_down = skipped.len(), "too few shards without the nodes marked down: asking them");
                        requested_spares = requested_spares.max(1);
                        for i in skipped.drain(..) {
                            pending.push(fetch(i, DownNodes::Ask));
                        }
                    }
                },
                () = &mut hedge => {
                    let outstanding = needed.clone().filter(|i| shards[*i].is_none()).count();
                    let more = match hedges {
                        0 => outstanding,
                        // Enough to decode with the shards in hand, without those still awaited.
                        1 => k.saturating_sub(have).max(1),
                        _ => 1,
                    };
                    hedges += 1;
                    let before = requested_spares;
                    for spare in spares.by_ref().take(if outstanding > 0 { more } else { 0 }) {
                        requested_spares += 1;
                        pending.push(fetch(spare, DownNodes::Skip));
                    }
                    if requested_spares > before {
                        tracing::debug!(blob = %blob.blob, stripe, outstanding, more, "slow shard reads hedged");
                    }
                    hedge.as_mut().reset(tokio::time::Instant::now() + hedge_after);
                }
            }
        }
    }

    /// Rebuilds the missing data shards of `stripe` from any k present ones, with the blob's own
    /// geometry (`codec_of`), and checks each rebuilt shard against the BLAKE3 hash its record
    /// names, as the shards read were: a GET never streams bytes other than those written.
    async fn decode(&self, blob: &StripedBlob, stripe: u32, shards: &mut [Option<Bytes>]) -> GatewayResult<()> {
        let k = blob.data_shards as usize;
        if shards[..k].iter().all(|s| s.is_some()) {
            return Ok(());
        }
        let record = blob
            .stripe(stripe)
            .ok_or_else(|| GatewayError::Internal(format!("stripe {stripe} missing from metadata")))?;
        let mut owned: Vec<Option<Vec<u8>>> = shards.iter().map(|s| s.as_ref().map(|b| b.to_vec())).collect();
        let codec = crate::codec::codec_of(&self.layout().codec, k, blob.parity_shards as usize)?;
        let rebuilt = tokio::task::spawn_blocking(move || codec.reconstruct_data(&mut owned).map(|()| owned))
            .await
            .map_err(|e| GatewayError::Internal(format!("reconstruction task: {e}")))??;
        for (i, (slot, shard)) in shards.iter_mut().zip(rebuilt).take(k).enumerate() {
            if slot.is_none() {
                let shard = shard.map(Bytes::from);
                let expected = record.shards.get(i).and_then(|s| blake3::Hash::from_hex(&s.blake3).ok());
                if shard.as_ref().map(|b| blake3::hash(b)) != expected {
                    tracing::error!(blob = %blob.blob, stripe, shard = i, "rebuilt shard does not match its hash");
                    return Err(GatewayError::Unreadable { blob: blob.blob.to_string(), stripe });
                }
                *slot = shard;
            }
        }
        Ok(())
    }

    /// The shard from the shard cache only, when it holds it with the hash the record names (a
    /// GET's read of a shard whose node is marked down).
    fn cached_shard(&self, blob: &StripedBlob, stripe: u32, index: usize) -> Option<Bytes> {
        let record = blob.stripe(stripe)?.shards.get(index)?;
        let expected = blake3::Hash::from_hex(&record.blake3).ok()?;
        let id = ShardId { blob: blob.blob.clone(), stripe: StripeIndex(stripe), shard: ShardIndex(index as u32) };
        self.shard_cache.get(&id, &expected)
    }

    /// One shard for a GET: from the shard cache when it holds it with the hash the metadata
    /// names, else from the fetch of it under way, else fetched (and kept, if small, charged to
    /// `owner`). A shard too large to be kept never asks the cache. Its node is asked even if
    /// marked down: `gather` decides that before (`cached_shard`).
    pub(super) async fn read_shard(
        self: &Arc<Self>,
        blob: &StripedBlob,
        stripe: u32,
        index: usize,
        owner: &TenantId,
    ) -> Option<Bytes> {
        let stripe_record = blob.stripe(stripe)?;
        let shard_len = (stripe_record.data_len as usize).div_ceil((blob.data_shards as usize).max(1));
        if shard_len > super::shard_cache::SHARD_CACHE_ENTRY_MAX_BYTES {
            return self.fetch_shard_asking(blob, stripe, index, DownNodes::Ask).await;
        }
        let record = stripe_record.shards.get(index)?.clone();
        let id = ShardId { blob: blob.blob.clone(), stripe: StripeIndex(stripe), shard: ShardIndex(index as u32) };
        let Ok(expected) = blake3::Hash::from_hex(&record.blake3) else {
            return self.fetch_recorded(&id, &record, DownNodes::Ask).await; // which logs the malformed hash
        };
        let node = record.node.clone();
        let (this, fetched_id) = (self.clone(), id.clone());
        let fetch = async move { this.fetch_recorded(&fetched_id, &record, DownNodes::Ask).await };
        self.shard_cache.get_or_fetch(id, expected, node, owner, fetch).await
    }

    /// Fetches and verifies one shard; None when it is missing, unreachable or corrupt. Never
    /// from the shard cache (the repair service reads through here).
    /// A node marked down is not asked (the repair service's next round reads the stripe again).
    pub async fn fetch_shard(&self, blob: &StripedBlob, stripe: u32, index: usize) -> Option<Bytes> {
        self.fetch_shard_asking(blob, stripe, index, DownNodes::Skip).await
    }

    async fn fetch_shard_asking(
        &self,
        blob: &StripedBlob,
        stripe: u32,
        index: usize,
        down: DownNodes,
    ) -> Option<Bytes> {
        let record = blob.stripe(stripe)?.shards.get(index)?;
        let id = ShardId { blob: blob.blob.clone(), stripe: StripeIndex(stripe), shard: ShardIndex(index as u32) };
        self.fetch_recorded(&id, record, down).await
    }

    /// Fetches shard `id` from the node its record names and verifies it against the record's
    /// hash; None when it is missing, unreachable or corrupt, or (`DownNodes::Skip`) its node is
    /// marked down.
    async fn fetch_recorded(&self, id: &ShardId, record: &ShardRecord, down: DownNodes) -> Option<Bytes> {
        let Ok(expected) = blake3::Hash::from_hex(&record.blake3) else {
            tracing::error!(shard = %id, "metadata holds a malformed shard hash");
            return None;
        };
        let address = self.address(&record.node).ok()?;
        if down == DownNodes::Skip && self.is_down(&record.node) {
            return None;
        }
        let result = self.client.get_shard(address, id, &expected).await;
        self.observe(&record.node, result.as_ref().map(|_| ()));
        match result {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                // A corrupt shard was set aside by its node when the client asked it to check the
                // copy (`NodeClient::get_shard`); the repair service rebuilds it.
                tracing::warn!(shard = %id, node = %record.node, error = %e, "shard unavailable, reading around it");
                None
            }
        }
    }
}

/// The parts a byte range of a part list touches, each with the bytes of it wanted.
fn plan(parts: Vec<PartData>, range: Range<u64>) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut part_start = 0u64;
    for part in parts {
        let part_end = part_start + part.size;
        let from = range.start.max(part_start);
        let to = range.end.min(part_end);
        if from < to {
            let (from, to) = ((from - part_start) as usize, (to - part_start) as usize);
            segments.push(Segment { location: part.location, from, to });
        }
        part_start = part_end;
    }
    segments
}

/// The pieces of `segments`, in order: inline slices and per-stripe ranges. Stripe records a
/// segment's blob does not hold are fetched from `metadata`, `ANSWER_STRIPES_MAX` at a time,
/// only when the stream reaches them.
fn pieces(
    segments: Vec<Segment>,
    metadata: Arc<dyn Metadata>,
) -> impl Stream<Item = GatewayResult<Piece>> + Send + 'static {
    futures::stream::iter(segments)
        .flat_map(|segment| {
            let windows: Vec<Window> = match segment.location {
                DataLocation::Inline(bytes) => {
                    vec![Window::Ready(Piece::Inline(Bytes::from(bytes).slice(segment.from..segment.to)))]
                }
                DataLocation::Striped(blob) => stripe_windows(blob, segment.from..segment.to),
                // A slice of a pack: the same bytes of the pack's data, past its offset.
                DataLocation::Packed(slice) => {
                    let offset = slice.offset as usize;
                    stripe_windows(slice.pack, offset + segment.from..offset + segment.to)
                }
            };
            futures::stream::iter(windows)
        })
        .then(move |window| {
            let metadata = metadata.clone();
            async move {
                match window {
                    Window::Ready(piece) => Ok(vec![piece]),
                    Window::Stripes { blob, stripes, bytes } if holds_window(&blob, &stripes) => {
                        Ok(stripe_pieces(&blob, stripes, bytes))
                    }
                    Window::Stripes { blob, stripes, bytes } => {
                        // A task of its own: reached while the read waits for a slow client to take
                        // the stripes before, its metadata request would otherwise wait unpolled
                        // while its time ran out (as the stripes read ahead did).
                        let asked = stripes.clone();
                        let load = tokio::spawn(async move { load_window(blob, asked, metadata.as_ref()).await });
                        let blob = joined(AbortOnDrop(load).await)?;
                        Ok(stripe_pieces(&blob, stripes, bytes))
                    }
                }
            }
        })
        .flat_map(|result: GatewayResult<Vec<Piece>>| match result {
            Ok(pieces) => futures::stream::iter(pieces.into_iter().map(Ok).collect::<Vec<_>>()),
            Err(e) => futures::stream::iter(vec![Err(e)]),
        })
}

/// The windows of stripes holding bytes `bytes` of a striped blob.
fn stripe_windows(blob: StripedBlob, bytes: Range<usize>) -> Vec<Window> {
    let stripe_bytes = blob.stripe_bytes() as usize;
    let stripes = (bytes.start / stripe_bytes) as u32..bytes.end.div_ceil(stripe_bytes) as u32;
    let blob = Arc::new(blob);
    let mut windows = Vec::new();
    let mut first = stripes.start;
    while first < stripes.end {
        let end = (first + ANSWER_STRIPES_MAX as u32).min(stripes.end);
        windows.push(Window::Stripes { blob: blob.clone(), stripes: first..end, bytes: bytes.clone() });
        first = end;
    }
    windows
}

/// Pause between two tries of a stripe window's records.
const WINDOW_RETRY_PAUSE_MS: u64 = 200;

/// A run of a part's stripes, or a piece ready as it is.
enum Window {
    Ready(Piece),
    Stripes { blob: Arc<StripedBlob>, stripes: Range<u32>, bytes: Range<usize> },
}

/// Whether `blob` holds the records of `stripes` (as the object's answer holds the first ones).
fn holds_window(blob: &StripedBlob, stripes: &Range<u32>) -> bool {
    blob.stripe(stripes.start).is_some() && blob.stripe(stripes.end - 1).is_some()
}

/// `blob` with the records of `stripes`, which it does not hold, fetched from the metadata.
async fn load_window(
    blob: Arc<StripedBlob>,
    stripes: Range<u32>,
    metadata: &dyn Metadata,
) -> GatewayResult<Arc<StripedBlob>> {
    // Mid-stream, a failure cannot become a 503 that the client retries: the answer has begun.
    // A metadata that cannot answer now (an election, a leadership check that timed out) is
    // asked again until the failover deadline.
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_millis(ignifuge_rpc::META_FAILOVER_DEADLINE_MS);
    let records = loop {
        match metadata.stripes(blob.blob.clone(), stripes.start, stripes.len() as u32).await {
            Err(e) if !e.is_known_refusal() && std::time::Instant::now() < deadline => {
                tracing::debug!(blob = %blob.blob, error = %e, "stripe records not available yet, asking again");
                tokio::time::sleep(std::time::Duration::from_millis(WINDOW_RETRY_PAUSE_MS)).await;
            }
            answer => break answer?,
        }
    };
    if records.len() != stripes.len() {
        return Err(GatewayError::Internal(format!(
            "blob {}: {} stripe records from {}, {} expected",
            blob.blob,
            records.len(),
            stripes.start,
            stripes.len()
        )));
    }
    Ok(Arc::new(blob.with_stripes(stripes.start, records)))
}

/// `blob` holding the current record of `stripe`, when it is not the one held: a read holds the
/// records it began with (those of the object's answer, or of a window), and a repair that
/// committed since may have moved the stripe's shards. Reads go around moved shards as around
/// missing ones, so only a stripe that lost more than its parity to moves (a datacenter replaced
/// and another node repaired during one long GET) needs this: asked only once such a stripe was
/// found unreadable. None when the record is unchanged, or cannot be read (the metadata retries
/// through a failover first), or is not of the same stripe (another length or shard count: never
/// from a repair, which moves shards and keeps their hashes).
async fn refreshed(blob: &Arc<StripedBlob>, stripe: u32, metadata: &dyn Metadata) -> Option<Arc<StripedBlob>> {
    let held = blob.stripe(stripe)?;
    let records = match metadata.stripes(blob.blob.clone(), stripe, 1).await {
        Ok(records) => records,
        Err(e) => {
            tracing::warn!(blob = %blob.blob, stripe, error = %e, "unreadable stripe: its current record could not be read");
            return None;
        }
    };
    let Ok([current]) = <[StripeRecord; 1]>::try_from(records) else {
        tracing::warn!(blob = %blob.blob, stripe, "unreadable stripe: the metadata holds no record of it now");
        return None;
    };
    if current == *held {
        return None;
    }
    if current.data_len != held.data_len || current.shards.len() != held.shards.len() {
        tracing::error!(blob = %blob.blob, stripe, "unreadable stripe: its current record is not of the stripe read");
        return None;
    }
    tracing::info!(blob = %blob.blob, stripe, "unreadable stripe whose shards moved since the read began: read again from its current record");
    Some(Arc::new(blob.with_stripes(stripe, vec![current])))
}

/// The per-stripe ranges of bytes `bytes` of a blob, for its stripes `stripes`.
fn stripe_pieces(blob: &Arc<StripedBlob>, stripes: Range<u32>, bytes: Range<usize>) -> Vec<Piece> {
    let stripe_bytes = blob.stripe_bytes() as usize;
    stripes
        .map(|stripe| {
            let base = stripe as usize * stripe_bytes;
            let range = bytes.start.max(base) - base..bytes.end.min(base + stripe_bytes) - base;
            Piece::Stripe { blob: blob.clone(), stripe, range }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_meta::{Answer, Checksums, Command, MetaError, Outcome, Query, StripeRecord};
    use ignifuge_types::BlobId;
    use std::sync::Mutex;
    use std::time::Duration;

    #[tokio::test]
    async fn a_stripes_read_budget_goes_back_once_the_client_asks_for_more() {
        let budget = Arc::new(tokio::sync::Semaphore::new(2));
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut stream = ByteRangeStream { rx, held: None };
        let permit = Arc::new(budget.clone().try_acquire_owned().unwrap());
        for piece in [&b"ab"[..], b"cd"] {
            tx.send(Ok(Budgeted { bytes: Bytes::from_static(piece), budget: Some(permit.clone()) })).await.unwrap();
        }
        drop(permit);
        assert_eq!(stream.next().await.unwrap().unwrap(), "ab");
        assert_eq!(stream.next().await.unwrap().unwrap(), "cd");
        assert_eq!(budget.available_permits(), 1, "held while the client may still be taking the bytes");
        // The client asks for more and nothing is ready: the stripe holds nothing any more.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), stream.next()).await;
        assert!(waited.is_err(), "nothing was ready");
        assert_eq!(budget.available_permits(), 2, "given back while the next stripe is awaited");
        drop(tx);
        assert!(stream.next().await.is_none());
    }

    /// A blob of `count` stripes of 8 bytes (2 x 4) whose stripe records live in the metadata;
    /// record `i` is marked by `data_len == i`.
    struct Stripes {
        count: u32,
        asked: Mutex<Vec<(u32, u32)>>,
    }

    #[async_trait::async_trait]
    impl Metadata for Stripes {
        async fn apply(&self, _: Command) -> Result<Outcome, MetaError> {
            unreachable!("reads never write")
        }
        async fn query(&self, query: Query) -> Result<Answer, MetaError> {
            let Query::Stripes { first, limit, .. } = query else { unreachable!("{query:?}") };
            self.asked.lock().unwrap().push((first, limit));
            let end = first.saturating_add(limit).min(self.count);
            Ok(Answer::Stripes((first..end).map(marked).collect()))
        }
    }

    fn marked(i: u32) -> StripeRecord {
        StripeRecord { data_len: u64::from(i), shards: vec![], debt: false }
    }

    /// A part of `size` bytes holding its first `held` stripe records.
    fn striped_part(size: u64, held: u32) -> PartData {
        let count = size.div_ceil(8) as u32;
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
                stripe_count: count,
                first_stripe: 0,
                stripes: (0..held.min(count)).map(marked).collect(),
                born_ms: 0,
            }),
            last_modified_ms: 0,
            started_ms: 0,
            began: None,
        }
    }

    /// The pieces of `range`, described, and the stripe queries they took.
    fn read(parts: Vec<PartData>, range: Range<u64>) -> (Vec<String>, Vec<(u32, u32)>) {
        let count = parts
            .iter()
            .map(|p| match &p.location {
                DataLocation::Striped(b) => b.stripe_count,
                DataLocation::Packed(slice) => slice.pack.stripe_count,
                DataLocation::Inline(_) => 0,
            })
            .max()
            .unwrap_or(0);
        let metadata = Arc::new(Stripes { count, asked: Mutex::new(Vec::new()) });
        let pieces = pieces(plan(parts, range), metadata.clone());
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let pieces: Vec<Piece> = runtime.block_on(pieces.collect::<Vec<_>>()).into_iter().map(Result::unwrap).collect();
        let described = pieces
            .iter()
            .map(|p| match p {
                Piece::Inline(b) => format!("inline {}", b.len()),
                Piece::Stripe { blob, stripe, range } => {
                    assert_eq!(blob.stripe(*stripe).unwrap().data_len, u64::from(*stripe), "the stripe's own record");
                    format!("stripe {stripe} {}..{}", range.start, range.end)
                }
            })
            .collect();
        let asked = metadata.asked.lock().unwrap().clone();
        (described, asked)
    }

    #[test]
    fn a_range_touches_only_the_stripes_it_needs() {
        let inline = PartData { location: DataLocation::Inline(vec![7; 5]), size: 5, ..striped_part(0, 0) };
        let parts = vec![inline, striped_part(20, 3)];
        let (pieces, asked) = read(parts.clone(), 0..25);
        assert_eq!(pieces, ["inline 5", "stripe 0 0..8", "stripe 1 0..8", "stripe 2 0..4"]);
        assert!(asked.is_empty(), "stripes that came with the record are not asked for");
        assert_eq!(read(parts.clone(), 3..14).0, ["inline 2", "stripe 0 0..8", "stripe 1 0..1"]);
        assert_eq!(read(parts, 22..24).0, ["stripe 2 1..3"]);
    }

    /// A metadata holding the current record of one stripe (`None`: it cannot answer now), and
    /// counting the queries for it.
    struct CurrentRecord {
        current: Option<StripeRecord>,
        asked: Mutex<u32>,
    }

    #[async_trait::async_trait]
    impl Metadata for CurrentRecord {
        async fn apply(&self, _: Command) -> Result<Outcome, MetaError> {
            unreachable!("reads never write")
        }
        async fn query(&self, query: Query) -> Result<Answer, MetaError> {
            let Query::Stripes { first: 0, limit: 1, .. } = query else { unreachable!("{query:?}") };
            *self.asked.lock().unwrap() += 1;
            self.current.clone().map(|r| Answer::Stripes(vec![r])).ok_or(MetaError::Unavailable("an election".into()))
        }
    }

    /// A node of this test: serves the shards given (200 with their bytes), 404 for any other.
    async fn node_serving(shards: Vec<(ShardId, Bytes)>) -> std::net::SocketAddr {
        node_serving_after(shards.into_iter().map(|(id, bytes)| (id, bytes, Duration::ZERO)).collect()).await
    }

    /// A node of this test: serves the shards given, each after its delay, 404 for any other.
    async fn node_serving_after(shards: Vec<(ShardId, Bytes, Duration)>) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let shards: Arc<std::collections::HashMap<String, (Bytes, Duration)>> = Arc::new(
            shards.into_iter().map(|(id, bytes, after)| (ignifuge_rpc::paths::shard(&id), (bytes, after))).collect(),
        );
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let shards = shards.clone();
                let serve = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let (status, body, after) = match shards.get(request.uri().path()) {
                        Some((bytes, after)) => (200, bytes.clone(), *after),
                        None => (404, Bytes::new(), Duration::ZERO),
                    };
                    async move {
                        tokio::time::sleep(after).await;
                        http::Response::builder().status(status).body(http_body_util::Full::new(body))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(socket);
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, serve));
            }
        });
        address
    }

    /// A read holds the stripe records it began with; a repair that moved more of a stripe's
    /// shards than its parity meanwhile (here both data shards of stripe 0 of a 2+1 blob, from
    /// nodes 0 and 1, which are gone, to nodes 3 and 4) leaves the stripe unreadable from them.
    /// The read then takes the stripe's current record and reads it whole; it does not when the
    /// record is unchanged, cannot be read now, or is of another length (the stripe fails as it
    /// did). The gateway's read budget here is one permit, held by stripe 0 while it is asked
    /// about again (stripe 1 asks for it only then): the read must neither hang nor keep a permit.
    #[tokio::test]
    async fn a_stripe_whose_shards_moved_since_the_read_began_is_read_from_its_current_record() {
        use ignifuge_rpc::{ClusterConfig, InternodeAuth, NodeClient};
        let data = Bytes::from_static(b"abcdefghijklmnop");
        let id = |stripe: u32, shard: u32| ShardId {
            blob: BlobId::new("cd"),
            stripe: StripeIndex(stripe),
            shard: ShardIndex(shard),
        };
        let half = |stripe: usize, shard: usize| data.slice(stripe * 8 + shard * 4..stripe * 8 + shard * 4 + 4);
        let node3 = node_serving(vec![(id(0, 0), half(0, 0)), (id(1, 0), half(1, 0))]).await;
        let node4 = node_serving(vec![(id(0, 1), half(0, 1)), (id(1, 1), half(1, 1))]).await;
        // Nodes 0, 1 and 2 refuse connections (nothing listens at port 1).
        let cluster = ClusterConfig::three_by_three(|i| match i {
            3 => node3,
            4 => node4,
            _ => std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
        });
        // A data path per read: none finds the shards in the shard cache of another, or its
        // nodes marked down by another.
        let data_path = || {
            let client = NodeClient::new(Arc::new(InternodeAuth::new(&[7u8; 32])));
            let tuning = super::super::DataPathTuning { read_stripes_in_flight_max: 1, ..Default::default() };
            Arc::new(DataPath::new(&cluster, client, tuning).unwrap())
        };
        let on = |node: usize, bytes: &[u8]| ShardRecord {
            node: ignifuge_types::NodeId::new(format!("dc{}-n{}", node / 3 + 1, node % 3 + 1)),
            blake3: blake3::hash(bytes).to_hex().to_string(),
        };
        let parity = on(2, b"parity");
        let record = |stripe: usize, nodes: [usize; 2]| StripeRecord {
            data_len: 8,
            shards: vec![on(nodes[0], &half(stripe, 0)), on(nodes[1], &half(stripe, 1)), parity.clone()],
            debt: false,
        };
        let held = StripedBlob::whole(BlobId::new("cd"), (2, 1), 4, vec![record(0, [0, 1]), record(1, [3, 4])], 0);
        let part = PartData { location: DataLocation::Striped(held), size: 16, ..striped_part(0, 0) };
        let get = |current: Option<StripeRecord>| {
            let metadata = Arc::new(CurrentRecord { current, asked: Mutex::new(0) });
            let path = data_path();
            let stream = path.read_range(vec![part.clone()], 0..16, metadata.clone(), TenantId::new("t"));
            async move {
                let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.collect::<Vec<_>>())
                    .await
                    .expect("the read hung");
                let read: Result<Vec<Bytes>, GatewayError> = read.into_iter().collect();
                let asked = *metadata.asked.lock().unwrap();
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                while path.read_permits.available_permits() < 1 && std::time::Instant::now() < deadline {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                assert_eq!(path.read_permits.available_permits(), 1, "the read budget is whole again");
                (read.map(|pieces| pieces.concat()), asked)
            }
        };
        let (read, asked) = get(Some(record(0, [3, 4]))).await;
        assert_eq!(read.expect("read from the current record"), &data[..]);
        assert_eq!(asked, 1, "the current record asked for once, when the stripe was found unreadable");
        let mut resized = record(0, [3, 4]);
        resized.data_len = 6;
        let cases =
            [(Some(record(0, [0, 1])), "unchanged"), (None, "not readable now"), (Some(resized), "another length")];
        for (current, case) in cases {
            let (read, asked) = get(current).await;
            assert!(matches!(read, Err(GatewayError::Unreadable { stripe: 0, .. })), "{case}: {read:?}");
            assert_eq!(asked, 1, "{case}: asked once, not again");
        }
    }

    /// A metadata that cannot answer now (an election).
    struct Unanswering;

    #[async_trait::async_trait]
    impl Metadata for Unanswering {
        async fn apply(&self, _: Command) -> Result<Outcome, MetaError> {
            unreachable!("reads never write")
        }
        async fn query(&self, _: Query) -> Result<Answer, MetaError> {
            Err(MetaError::Unavailable("an election".into()))
        }
    }

    /// A 2+1 object of `stripes` stripes with shards of `shard` bytes, its data shards served by
    /// nodes 3 and 4 (each answered after `late(stripe)`), its parity on node 2, which refuses
    /// connections (nothing listens at port 1): the cluster, the part and its bytes.
    async fn served_object(
        stripes: u32,
        shard: usize,
        late: impl Fn(u32) -> Duration,
    ) -> (ignifuge_rpc::ClusterConfig, PartData, Vec<u8>) {
        let id = |stripe: u32, shard: u32| ShardId {
            blob: BlobId::new("ef"),
            stripe: StripeIndex(stripe),
            shard: ShardIndex(shard),
        };
        let bytes_of = |stripe: u32, index: u32| {
            Bytes::from((0..shard as u32).map(|i| (i * 7 + stripe * 13 + index) as u8).collect::<Vec<u8>>())
        };
        let serving = |index: u32| (0..stripes).map(|s| (id(s, index), bytes_of(s, index), late(s))).collect();
        let (node3, node4) = (node_serving_after(serving(0)).await, node_serving_after(serving(1)).await);
        let cluster = ignifuge_rpc::ClusterConfig::three_by_three(|i| match i {
            3 => node3,
            4 => node4,
            _ => std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
        });
        let on = |node: usize, bytes: &[u8]| ShardRecord {
            node: ignifuge_types::NodeId::new(format!("dc{}-n{}", node / 3 + 1, node % 3 + 1)),
            blake3: blake3::hash(bytes).to_hex().to_string(),
        };
        let record = |s: u32| StripeRecord {
            data_len: 2 * shard as u64,
            shards: vec![on(3, &bytes_of(s, 0)), on(4, &bytes_of(s, 1)), on(2, b"parity")],
            debt: false,
        };
        let blob = StripedBlob::whole(BlobId::new("ef"), (2, 1), shard as u32, (0..stripes).map(record).collect(), 0);
        let size = u64::from(stripes) * 2 * shard as u64;
        let part = PartData { location: DataLocation::Striped(blob), size, ..striped_part(0, 0) };
        let data = (0..stripes).flat_map(|s| [bytes_of(s, 0), bytes_of(s, 1)]).collect::<Vec<_>>().concat();
        (cluster, part, data)
    }

    /// A data path over `cluster` with a read budget of `permits` stripes.
    fn data_path_over(cluster: &ignifuge_rpc::ClusterConfig, permits: usize) -> Arc<DataPath> {
        use ignifuge_rpc::{InternodeAuth, NodeClient};
        let client = NodeClient::new(Arc::new(InternodeAuth::new(&[7u8; 32])));
        let tuning = super::super::DataPathTuning { read_stripes_in_flight_max: permits, ..Default::default() };
        Arc::new(DataPath::new(cluster, client, tuning).unwrap())
    }

    /// A client that takes nothing for longer than a shard request is given still gets every
    /// byte. The read fills its channel (16 pieces: stripes 0 to 7 of a 2+1 blob) and waits for
    /// room to send stripe 8 while stripe 9 is read ahead, its shards answered 200 ms late; the
    /// client then waits 11 s more. The stripe read ahead is read in a task of its own: left
    /// unpolled while the read waited, its shard requests ran out their time all the same, and
    /// (its parity unreachable here) the read failed at stripe 9, as a 64 MiB GET read at
    /// 400 KB/s by curl failed mid-stream.
    #[tokio::test]
    async fn a_stripe_read_ahead_goes_on_while_the_client_takes_nothing() {
        let late = |stripe: u32| if stripe == 9 { Duration::from_millis(200) } else { Duration::ZERO };
        let (cluster, part, data) = served_object(12, 256 * 1024, late).await;
        let path = data_path_over(&cluster, super::super::GATEWAY_READ_STRIPES_IN_FLIGHT_MAX);
        let size = part.size;
        let stream = path.read_range(vec![part], 0..size, Arc::new(Unanswering), TenantId::new("t"));
        tokio::time::sleep(Duration::from_millis(ignifuge_rpc::SHARD_RPC_TIMEOUT_MS + 1_000)).await;
        let read =
            tokio::time::timeout(Duration::from_secs(30), stream.collect::<Vec<_>>()).await.expect("the read hung");
        let read: Vec<Bytes> = read.into_iter().collect::<Result<_, _>>().expect("the whole object read");
        assert!(read.concat() == data, "the object read back whole");
    }

    /// With a read budget of one stripe, GETs of several stripes on a runtime of several threads
    /// read whole, one after another and eight at once: the budget is taken in the stripes'
    /// order. (Taken by each stripe's own task, the stripe read ahead could be first: tokio runs
    /// the task spawned last first, and it would keep the one permit in its bytes while the stripe
    /// before waited for it, for ever.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stripes_take_the_read_budget_in_their_order() {
        let (cluster, part, data) = served_object(4, 1024, |_| Duration::ZERO).await;
        let (path, data) = (data_path_over(&cluster, 1), &data);
        let get = || {
            let stream = path.read_range(vec![part.clone()], 0..part.size, Arc::new(Unanswering), TenantId::new("t"));
            async move {
                let read = tokio::time::timeout(Duration::from_secs(10), stream.collect::<Vec<_>>()).await;
                let read: Vec<Bytes> = read.expect("the read hung").into_iter().collect::<Result<_, _>>().unwrap();
                assert!(read.concat() == *data, "read whole");
            }
        };
        for _ in 0..20 {
            get().await;
        }
        futures::future::join_all((0..8).map(|_| get())).await;
    }

    #[test]
    fn stripes_beyond_the_answer_are_fetched_a_window_at_a_time_when_reached() {
        // 3000 stripes, the first 1024 held (as a read's answer holds them).
        let part = striped_part(3000 * 8, ANSWER_STRIPES_MAX as u32);
        let (pieces, asked) = read(vec![part.clone()], 1000 * 8 + 3..2100 * 8 + 1);
        assert_eq!(pieces.len(), 1101);
        assert_eq!(pieces[0], "stripe 1000 3..8");
        assert_eq!(pieces[1100], "stripe 2100 0..1");
        assert_eq!(asked, [(1000, 1024), (2024, 77)], "each window once, from where the read is");
        let (_, asked) = read(vec![part.clone()], 0..8 * 1024);
        assert!(asked.is_empty(), "the held stripes are enough");
        let (pieces, asked) = read(vec![part], 2999 * 8..3000 * 8);
        assert_eq!(
            (pieces.as_slice(), asked.as_slice()),
            (["stripe 2999 0..8".to_string()].as_slice(), [(2999, 1)].as_slice())
        );
    }
}
