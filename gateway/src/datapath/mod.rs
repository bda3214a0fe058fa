//! The erasure-coded data path: blobs in (striped, encoded, hashed, placed, fsynced on the
//! nodes) and byte ranges out (fetched, verified, reconstructed when shards are missing).

mod buffers;
mod intents;
pub mod layout;
mod read;
pub mod shard_cache;
mod write;

pub use intents::{INTENT_RENEW_INTERVAL_MS, Intents, ReadHold, WriteIntent};
pub use layout::Layout;
pub use read::ByteRangeStream;
pub use write::{WriteRequest, WrittenBlob};

use crate::error::GatewayResult;
use ignifuge_placement::{Geometry, Slot};
use ignifuge_rpc::{ClusterConfig, NodeClient};
use ignifuge_types::{BlobId, NodeId, StripeIndex};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Bytes per shard of a full stripe. 1 MiB keeps per-shard overheads (one RPC, one fsync, one
/// 32-byte hash) small against the data while bounding memory per stripe to (k+m) MiB.
pub const SHARD_SIZE_BYTES: usize = 1024 * 1024;
/// Blobs up to `DataPathTuning::inline_max_bytes` (by default this) are stored inline in the
/// metadata, replicated with it on every voter, rather than erasure-coded. Up to 1 KiB inline
/// PUTs are as fast as packed ones with the same tail and inline GETs 1.8x faster (no shard
/// read); from 2 KiB the inline PUT's p99 grows (45 against 32 ms at 2 KiB, 103-116 against
/// 26-34 ms at 4 KiB) and every byte costs about 20x on disk against a pack's few
/// (docs/benchmarks.md "Small objects packed together"). Bodies above it are packed
/// (`PACK_MAX_BYTES`) or striped.
pub const INLINE_MAX_BYTES: usize = 1024;
/// The largest inline blob a setting may ask for (it travels in one Raft entry).
pub const INLINE_LIMIT_BYTES: usize = 64 * 1024;
/// PutObject bodies announced up to `DataPathTuning::pack_max_bytes` (by default this), and over
/// the inline limit, are packed with others into one stripe (`crate::pack`). Packed against
/// striped alone, 16 in flight: 64 KiB PUTs 596-733 against 215-226 ops/s (p99 33-40 against
/// 125-134 ms), GETs 1.4x; 256 KiB PUTs 2.6-3.1x, GETs the same; 1 MiB PUTs 151-168 against
/// 111-130 ops/s, GETs the same (docs/benchmarks.md "Small objects packed together").
pub const PACK_MAX_BYTES: usize = 1024 * 1024;
/// The largest packable body a setting may ask for: a pack is one stripe, of at least 1 MiB.
pub const PACK_LIMIT_BYTES: usize = SHARD_SIZE_BYTES;
/// Stripes of one request being encoded or written at once (memory per request is bounded by
/// this times the stripe size, plus the one being filled).
pub const STRIPES_IN_FLIGHT_MAX: usize = 2;
/// Stripes being filled, encoded or written at once in the whole gateway (invariant 3: a global
/// bound on bytes in flight). Each costs k+m shards of at most 1 MiB: 48 x 9 MiB = 432 MiB at 5+4,
/// plus at most `buffers::BUFFERS_KEPT_MAX_BYTES` of buffers kept between stripes. A stripe's
/// buffers are free once its last shard request has ended; a request abandoned while its node had
/// stopped reading its body holds them until the client closes that connection, 10 s after its
/// writes last waited for room (`ignifuge_rpc::NodeClient`'s write-stall clock): a frozen node can
/// exceed this bound by such bodies, for that long.
/// Uploads beyond it wait for a stripe to be freed (back-pressure on the client's TCP window).
pub const GATEWAY_STRIPES_IN_FLIGHT_MAX: usize = 48;
/// Stripes being read for GETs at once in the whole gateway, from their first shard request until
/// the client has taken their last byte: the global bound on a gateway's read buffers. Each holds
/// at most k+m shards of 1 MiB (9 x 64 MiB = 576 MiB at 5+4; k of them in the common case).
/// Reads beyond it wait for a stripe to be taken (budget a GET holds goes back as its client takes
/// the bytes, whatever its next stripe waits for: it never waits on more budget);
/// a client that stops taking its answer is disconnected after `ANSWER_STALL_MAX_MS`, which frees
/// what it held. A copy holds read budget while its write waits for a stripe buffer; the stripe
/// fill deadline (`STRIPE_FILL_MAX_MS`) breaks any wait between the two budgets.
pub const GATEWAY_READ_STRIPES_IN_FLIGHT_MAX: usize = 64;
/// A client that takes less than `ignifuge_rpc::UNSENT_BYTES_MAX` (128 KiB) of an answer in this
/// long is disconnected.
pub const ANSWER_STALL_MAX_MS: u64 = ignifuge_rpc::WRITE_STALL_TIMEOUT_MS;
/// A stripe buffer being filled for longer than this while other uploads wait for one gets its
/// upload cut (400 RequestTimeout): a client trickling bytes cannot hold one of the gateway's
/// stripe buffers while others wait. Alone, a slow upload goes on at any pace (about 170 KiB/s
/// fills a 5 MiB stripe in time).
pub const STRIPE_FILL_MAX_MS: u64 = 30_000;
/// A request body that sends nothing for this long is cut (400 RequestTimeout, as AWS answers
/// an idle upload), so a stalled client holds no stripe buffer and no intent for long.
pub const BODY_IDLE_TIMEOUT_MS: u64 = 20_000;
/// Retries of one shard write before it counts as not acknowledged.
pub const SHARD_WRITE_ATTEMPTS: usize = 2;
/// A shard read that has not answered after this long is hedged: one more shard is requested
/// (parity first) for each data shard still outstanding. Loopback and same-region shard reads take
/// a few milliseconds; this only fires for hung, overloaded or far nodes.
pub const HEDGE_AFTER_MS: u64 = 250;
/// A node that could not be reached is skipped for this long before it is tried again, so an
/// outage costs one failed connection per node and period, not one per shard.
pub const NODE_DOWN_BACKOFF_MS: u64 = 3_000;

/// The data path's limits, from `GatewayConfig`: production uses the defaults; tests shrink
/// them to reach a limit with small objects and few requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataPathTuning {
    /// Stripe records that come with an object's record when it is read (at most
    /// `ignifuge_meta::ANSWER_STRIPES_MAX`); the read path fetches the others as it reaches them.
    pub read_stripes: u32,
    /// `GATEWAY_STRIPES_IN_FLIGHT_MAX`.
    pub stripes_in_flight_max: usize,
    /// `STRIPE_FILL_MAX_MS`.
    pub stripe_fill_max_ms: u64,
    /// `GATEWAY_READ_STRIPES_IN_FLIGHT_MAX`.
    pub read_stripes_in_flight_max: usize,
    /// `ANSWER_STALL_MAX_MS`.
    pub answer_stall_max_ms: u64,
    /// `INTENT_RENEW_INTERVAL_MS`: must stay well under the repair service's orphan grace and the
    /// garbage grace (it renews the holds of reads too).
    pub intent_renew_ms: u64,
    /// Blobs up to this many bytes are stored inline (`INLINE_MAX_BYTES`, at most
    /// `INLINE_LIMIT_BYTES`); 0 stripes every blob but an empty one.
    pub inline_max_bytes: usize,
    /// PutObject bodies announced up to this many bytes (and over `inline_max_bytes`) are
    /// packed (`PACK_MAX_BYTES`, at most `PACK_LIMIT_BYTES`); 0 packs none.
    pub pack_max_bytes: usize,
    /// `crate::pack::PACK_BUDGET_BYTES`: bodies to pack held in memory at once (at least
    /// `pack_max_bytes`).
    pub pack_budget_bytes: usize,
    /// `shard_cache::SHARD_CACHE_BYTES`: bytes of small shards kept for the GETs that read them
    /// again; 0 keeps none.
    pub shard_cache_bytes: usize,
}

impl Default for DataPathTuning {
    fn default() -> Self {
        Self {
            read_stripes: ignifuge_meta::ANSWER_STRIPES_MAX as u32,
            stripes_in_flight_max: GATEWAY_STRIPES_IN_FLIGHT_MAX,
            stripe_fill_max_ms: STRIPE_FILL_MAX_MS,
            read_stripes_in_flight_max: GATEWAY_READ_STRIPES_IN_FLIGHT_MAX,
            answer_stall_max_ms: ANSWER_STALL_MAX_MS,
            intent_renew_ms: INTENT_RENEW_INTERVAL_MS,
            inline_max_bytes: INLINE_MAX_BYTES,
            pack_max_bytes: PACK_MAX_BYTES,
            pack_budget_bytes: crate::pack::PACK_BUDGET_BYTES,
            shard_cache_bytes: shard_cache::SHARD_CACHE_BYTES,
        }
    }
}

/// Shared state of the data path.
pub struct DataPath {
    pub client: NodeClient,
    /// The cluster layout in use; replaced when the stored layout changes (`layout::refresh`).
    /// Every stripe is cut, placed and checked against one snapshot of it.
    layout: std::sync::RwLock<Arc<Layout>>,
    /// Permits for stripe buffers, shared by every upload of the gateway.
    pub(crate) stripe_permits: Arc<tokio::sync::Semaphore>,
    /// The read budget (`GATEWAY_READ_STRIPES_IN_FLIGHT_MAX`): one permit per stripe being read.
    pub(crate) read_permits: Arc<tokio::sync::Semaphore>,
    /// Bytes of bodies waiting to be packed (`crate::pack::PACK_BUDGET_BYTES`).
    pub(crate) pack_budget: Arc<tokio::sync::Semaphore>,
    /// Uploads waiting for pack budget now.
    pub(crate) pack_waiters: std::sync::atomic::AtomicUsize,
    /// Uploads waiting for a stripe permit now.
    pub(crate) stripe_waiters: std::sync::atomic::AtomicUsize,
    pub tuning: DataPathTuning,
    /// Nodes recently found unreachable, and until when to skip them.
    down_until: std::sync::Mutex<HashMap<NodeId, std::time::Instant>>,
    /// Blobs being written (and not yet committed), renewed in the metadata for the orphan sweep.
    pub intents: Arc<Intents>,
    /// Small shards GETs have read, for the GETs that read them again.
    pub(crate) shard_cache: Arc<shard_cache::ShardCache>,
    /// Stripe and parity buffers kept for the next stripes.
    pub(crate) buffers: Arc<buffers::BufferPool>,
}

impl DataPath {
    /// A data path over the layout of a process's file, until the stored one is loaded (it writes
    /// nothing until the metadata has vouched for a layout: `placing_layout`).
    pub fn new(cluster: &ClusterConfig, client: NodeClient, tuning: DataPathTuning) -> GatewayResult<Self> {
        let layout = Layout::new(cluster.clone(), None, false)?;
        Ok(Self {
            client,
            layout: std::sync::RwLock::new(Arc::new(layout)),
            down_until: std::sync::Mutex::new(HashMap::new()),
            stripe_permits: Arc::new(tokio::sync::Semaphore::new(tuning.stripes_in_flight_max)),
            stripe_waiters: std::sync::atomic::AtomicUsize::new(0),
            pack_budget: Arc::new(tokio::sync::Semaphore::new(tuning.pack_budget_bytes)),
            pack_waiters: std::sync::atomic::AtomicUsize::new(0),
            read_permits: Arc::new(tokio::sync::Semaphore::new(tuning.read_stripes_in_flight_max)),
            tuning,
            intents: Arc::new(Intents::default()),
            shard_cache: Arc::new(shard_cache::ShardCache::new(tuning.shard_cache_bytes)),
            buffers: Arc::new(buffers::BufferPool::default()),
        })
    }

    /// Gives back the stripe buffers left unused, so that a gateway gone idle does not keep
    /// what its last burst of writes held (`buffers::BUFFER_IDLE_MAX_MS`).
    pub async fn trim_buffers_forever(self: Arc<Self>) {
        let mut every = tokio::time::interval(std::time::Duration::from_millis(buffers::BUFFER_IDLE_MAX_MS));
        loop {
            every.tick().await;
            self.buffers.trim();
        }
    }

    /// The layout in use now.
    pub fn layout(&self) -> Arc<Layout> {
        self.layout.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub(crate) fn install_layout(&self, layout: Layout) {
        *self.layout.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(layout);
    }

    pub fn geometry(&self) -> Geometry {
        self.layout().geometry
    }

    pub fn address(&self, node: &NodeId) -> GatewayResult<SocketAddr> {
        self.layout().address(node)
    }

    /// The node health map. Never poisoned for good: it only holds instants, valid whatever a
    /// panicking holder was doing, and one panic must not fail every later write (found by
    /// filling a disk: a panic while logging poisoned it and every PUT answered 500 after).
    fn health(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, std::time::Instant>> {
        self.down_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the node was found unreachable within the last `NODE_DOWN_BACKOFF_MS`.
    pub(crate) fn is_down(&self, node: &NodeId) -> bool {
        self.health().get(node).is_some_and(|until| std::time::Instant::now() < *until)
    }

    /// Records the outcome of a call to a node: unreachable marks it down for a while.
    pub(crate) fn observe(&self, node: &NodeId, result: Result<(), &ignifuge_rpc::RpcError>) {
        use ignifuge_rpc::RpcError;
        let newly_down = match result {
            Err(RpcError::Unreachable(..) | RpcError::Timeout(_)) => {
                let until = std::time::Instant::now() + std::time::Duration::from_millis(NODE_DOWN_BACKOFF_MS);
                self.health().insert(node.clone(), until).is_none()
            }
            _ => {
                self.health().remove(node);
                false
            }
        };
        // Logged after the lock is released.
        if newly_down {
            tracing::warn!(%node, backoff_ms = NODE_DOWN_BACKOFF_MS, "node unreachable; skipping it for a while");
        }
    }

    pub fn slots(&self, layout: &Layout, blob: &BlobId, stripe: StripeIndex) -> GatewayResult<Vec<Slot>> {
        let key = format!("{blob}/{stripe}");
        Ok(ignifuge_placement::select_slots(&layout.topology, layout.geometry, key.as_bytes())?)
    }

    /// Best-effort removal of a blob's shards from every node (after a failed write).
    pub fn discard(self: &Arc<Self>, blob: BlobId) {
        let this = self.clone();
        tokio::spawn(async move {
            for address in this.layout().addresses() {
                if let Err(e) = this.client.delete_blob(*address, &blob).await {
                    tracing::debug!(%blob, error = %e, "could not discard shards; garbage collection will");
                }
            }
        });
    }
}

/// A spawned task that is aborted when this handle is dropped (its reader gone), and awaited as
/// its `JoinHandle` is.
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// A fresh random blob id (128 bits, hex): shard names never derive from client input.
pub fn new_blob_id() -> BlobId {
    BlobId::new(ignifuge_types::random_id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_rpc::{InternodeAuth, RpcError};

    fn data_path() -> Arc<DataPath> {
        let cluster = ClusterConfig::three_by_three(|i| SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)));
        let client = NodeClient::new(Arc::new(InternodeAuth::new(&[7u8; 32])));
        Arc::new(DataPath::new(&cluster, client, DataPathTuning::default()).unwrap())
    }

    /// A GET's shard comes from the cache only when the cached copy is of the hash the record
    /// names; the repair service's reads never come from it.
    #[tokio::test]
    async fn a_get_reads_a_small_shard_from_the_cache_only_for_the_records_hash() {
        use ignifuge_meta::{ShardRecord, StripeRecord, StripedBlob};
        let data = data_path(); // nothing listens at its nodes' addresses
        let bytes = bytes::Bytes::from(vec![5u8; 100]);
        let hash = blake3::hash(&bytes);
        let blob_named = |hash: blake3::Hash| {
            let shards = (0..9)
                .map(|i| ShardRecord {
                    node: NodeId::new(format!("dc{}-n{}", i / 3 + 1, i % 3 + 1)),
                    blake3: hash.to_hex().to_string(),
                })
                .collect();
            StripedBlob::whole(
                BlobId::new("ab"),
                (5, 4),
                1 << 20,
                vec![StripeRecord { data_len: 500, shards, debt: false }],
                0,
            )
        };
        let blob = blob_named(hash);
        let tenant = ignifuge_types::TenantId::new("t");
        assert_eq!(data.read_shard(&blob, 0, 0, &tenant).await, None, "not cached, and its node is not there");
        let id = ignifuge_types::ShardId {
            blob: BlobId::new("ab"),
            stripe: StripeIndex(0),
            shard: ignifuge_types::ShardIndex(0),
        };
        data.shard_cache.insert(id, hash, &bytes, &tenant);
        assert_eq!(data.read_shard(&blob, 0, 0, &tenant).await, Some(bytes.clone()), "from the cache");
        assert_eq!(data.shard_cache.hits_and_misses(), (1, 1));
        let other = blob_named(blake3::hash(b"another shard 0"));
        assert_eq!(
            data.read_shard(&other, 0, 0, &tenant).await,
            None,
            "the record names another hash: fetched, not cached"
        );
        assert_eq!(data.fetch_shard(&blob, 0, 0).await, None, "repair's reads go to the node");
        assert_eq!(data.shard_cache.hits_and_misses(), (1, 2), "fetch_shard never asks the cache");
        assert_eq!(data.read_shard(&blob, 0, 1, &tenant).await, None, "another shard of the stripe");
        // A stripe whose shards are too large to keep: the cache is not asked, even for an id
        // it holds.
        let mut large = blob.clone();
        large.stripes[0].data_len = 5 << 20;
        let before = data.shard_cache.hits_and_misses();
        assert_eq!(data.read_shard(&large, 0, 0, &tenant).await, None, "fetched, not from the cache");
        assert_eq!(data.shard_cache.hits_and_misses(), before, "a shard too large to keep never asks the cache");

        // Whole reads: a GET's takes the cached shard; a background service's goes to the node
        // (none here: the read fails) and never asks the cache.
        let metadata: Arc<dyn ignifuge_meta::Metadata> =
            Arc::new(ignifuge_meta::LocalMetadata::new(Arc::new(ignifuge_kv::MemoryKv::default())));
        let part = ignifuge_meta::PartData {
            part_number: 1,
            size: 500,
            etag: String::new(),
            checksums: Default::default(),
            location: ignifuge_meta::DataLocation::Striped(blob.clone()),
            last_modified_ms: 0,
            started_ms: 0,
            began: None,
        };
        let read = |stream: ByteRangeStream| async move {
            use futures::StreamExt as _;
            let mut stream = std::pin::pin!(stream);
            let mut out = Vec::new();
            while let Some(piece) = stream.next().await {
                out.extend_from_slice(&piece.ok()?);
            }
            Some(out)
        };
        let before = data.shard_cache.hits_and_misses();
        let got = read(data.read_range(vec![part.clone()], 0..100, metadata.clone(), tenant.clone())).await;
        assert_eq!(got, Some(bytes.to_vec()), "a GET's read: from the cache");
        assert_eq!(data.shard_cache.hits_and_misses(), (before.0 + 1, before.1));
        let got = read(data.read_range_from_nodes(vec![part], 0..100, metadata)).await;
        assert_eq!(got, None, "a service's read: from the nodes only");
        assert_eq!(data.shard_cache.hits_and_misses(), (before.0 + 1, before.1), "the cache never asked");
    }

    /// Found by filling a disk: a panic while the health map was held poisoned it, and every
    /// later PUT answered 500 until the gateway restarted.
    #[test]
    fn a_panic_while_the_health_map_is_held_does_not_break_later_writes() {
        let data = data_path();
        let node = NodeId::new("dc1-n1");
        let poisoner = data.clone();
        let _ = std::thread::spawn(move || {
            let _held = poisoner.down_until.lock().unwrap();
            panic!("a logging failure, say");
        })
        .join();
        assert!(data.down_until.is_poisoned());
        assert!(!data.is_down(&node));
        data.observe(&node, Err(&RpcError::Timeout("dc1-n1".into())));
        assert!(data.is_down(&node));
        data.observe(&node, Ok(()));
        assert!(!data.is_down(&node));
    }
}
