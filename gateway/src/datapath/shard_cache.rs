//! Small shards a gateway has read, kept in memory for the reads that want them again. A shard
//! never changes once written (blob ids are never reused); an entry is served only for the hash
//! the metadata names now, and its bytes are hashed again on every hit (a few microseconds for
//! at most 64 KiB), so a bit flipped in the gateway's memory is caught as a node's disk would be:
//! the entry is dropped and the shard fetched. The metadata is read first on every GET, so a
//! deleted or replaced object is never served from here. Bounded in bytes (each entry charged
//! its shard plus `ENTRY_OVERHEAD_BYTES`); the oldest entry not read since it was last passed
//! over is evicted first (second chance).
//!
//! Reads of a small shard under way are shared (`get_or_fetch`): a GET that misses while another
//! fetch of the same shard, for the same hash, is under way waits for that one instead of asking
//! the node again. Neighbouring objects of a pack share its shards, so GETs of keys written
//! together, arriving together, would otherwise each fetch the same shard while it is not yet
//! kept. If the read leading a flight is dropped (its client went away), those waiting fetch the
//! shard themselves.
//!
//! Why: a packed 4 KiB object's GET is two internode round trips (its record, then a shard), an
//! inline one's one; on a busy host the hops' wake-ups are its cost (docs/benchmarks.md, "Where a
//! packed 4 KiB GET's CPU goes"). Only small shards are kept: a large object's shards would push
//! out thousands of small ones, and its GET is bandwidth, not hops.

use bytes::Bytes;
use futures::FutureExt as _;
use futures::future::Shared;
use ignifuge_types::ShardId;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::oneshot;

/// Shards larger than this are never cached (a 4 KiB object's shard in a pack of the smallest
/// lane is at most 52 KiB at 5+4).
pub const SHARD_CACHE_ENTRY_MAX_BYTES: usize = 64 * 1024;
/// Bytes of small shards a gateway keeps by default.
pub const SHARD_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// What an entry costs beyond its shard's bytes (its id twice, the map's slot, the `Bytes`):
/// charged against the capacity, so tiny shards cannot make the cache several times its size.
pub const ENTRY_OVERHEAD_BYTES: usize = 256;

struct Entry {
    hash: blake3::Hash,
    bytes: Bytes,
    /// Read since it was inserted or last passed over by the eviction.
    referenced: bool,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<ShardId, Entry>,
    /// Insertion order (an id whose entry was dropped or replaced may linger: skipped).
    order: VecDeque<ShardId>,
    bytes: usize,
}

/// A fetch of a shard under way, as those waiting for it see it: its outcome once it ends, or
/// `Canceled` if it was dropped first.
type Flight = Shared<oneshot::Receiver<Option<Bytes>>>;

pub struct ShardCache {
    capacity: usize,
    inner: Mutex<Inner>,
    flights: Mutex<HashMap<(ShardId, blake3::Hash), Flight>>,
    hits: AtomicU64,
    misses: AtomicU64,
    joined: AtomicU64,
}

/// Ends a flight when its leading read ends, whether it finished or was dropped.
struct Leading<'a> {
    flights: &'a Mutex<HashMap<(ShardId, blake3::Hash), Flight>>,
    key: Option<(ShardId, blake3::Hash)>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.flights.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&key);
        }
    }
}

impl ShardCache {
    /// A cache of at most `capacity` bytes of shards (0: none kept).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
            flights: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            joined: AtomicU64::new(0),
        }
    }

    /// The shard with the hash `expected`: from the cache if it holds it intact, else the outcome
    /// of the fetch of it under way, else of `fetch` (kept if small enough). `fetch` must check
    /// the bytes against `expected`, as a node read does.
    pub async fn get_or_fetch(
        &self,
        id: ShardId,
        expected: blake3::Hash,
        fetch: impl Future<Output = Option<Bytes>>,
    ) -> Option<Bytes> {
        if let Some(hit) = self.get(&id, &expected) {
            return Some(hit);
        }
        let key = (id, expected);
        let (flight, lead) = {
            let mut flights = self.flights.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match flights.get(&key) {
                Some(flight) => (Some(flight.clone()), None),
                None => {
                    let (tx, rx) = oneshot::channel();
                    flights.insert(key.clone(), rx.shared());
                    (None, Some(tx))
                }
            }
        };
        if let Some(flight) = flight {
            self.joined.fetch_add(1, Ordering::Relaxed);
            if let Ok(outcome) = flight.await {
                return outcome;
            }
            // The leading read was dropped before it ended: fetch it here.
            let fetched = fetch.await;
            if let Some(bytes) = &fetched {
                self.insert(key.0, key.1, bytes);
            }
            return fetched;
        }
        let leading = Leading { flights: &self.flights, key: Some(key.clone()) };
        let fetched = fetch.await;
        if let Some(bytes) = &fetched {
            self.insert(key.0, key.1, bytes);
        }
        // Kept before the flight ends: a read arriving after it finds the cache.
        drop(leading);
        if let Some(tx) = lead {
            let _ = tx.send(fetched.clone());
        }
        fetched
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Entries are immutable bytes: valid whatever a panicking holder was doing.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The shard, if cached with the hash `expected` and its bytes still hash to it.
    pub fn get(&self, id: &ShardId, expected: &blake3::Hash) -> Option<Bytes> {
        if self.capacity == 0 {
            return None;
        }
        let cached = {
            let mut inner = self.lock();
            match inner.entries.get_mut(id) {
                Some(entry) if entry.hash == *expected => {
                    entry.referenced = true;
                    Some(entry.bytes.clone())
                }
                _ => None,
            }
        };
        // Hashed outside the lock.
        let hit = cached.filter(|bytes| {
            let intact = blake3::hash(bytes) == *expected;
            if !intact {
                tracing::error!(shard = %id, "a cached shard no longer matches its hash (gateway memory); dropped");
                self.remove(id);
            }
            intact
        });
        let counter = if hit.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    fn remove(&self, id: &ShardId) {
        let mut inner = self.lock();
        if let Some(gone) = inner.entries.remove(id) {
            inner.bytes -= gone.bytes.len() + ENTRY_OVERHEAD_BYTES;
        }
    }

    /// Keeps a shard checked against `hash`, if it is small enough; evicts to make room. An entry
    /// of the same id with another hash is replaced.
    pub fn insert(&self, id: ShardId, hash: blake3::Hash, bytes: &Bytes) {
        let cost = bytes.len() + ENTRY_OVERHEAD_BYTES;
        if bytes.len() > SHARD_CACHE_ENTRY_MAX_BYTES || cost > self.capacity {
            return;
        }
        if self.lock().entries.get(&id).is_some_and(|entry| entry.hash == hash) {
            return; // another read of the same shard got here first
        }
        // Its own allocation, made outside the lock: a slice would hold the whole buffer it came from.
        let bytes = Bytes::copy_from_slice(bytes);
        let mut inner = self.lock();
        if let Some(old) = inner.entries.remove(&id) {
            inner.bytes -= old.bytes.len() + ENTRY_OVERHEAD_BYTES;
        }
        while inner.bytes + cost > self.capacity {
            let Some(oldest) = inner.order.pop_front() else { break };
            let Some(entry) = inner.entries.get_mut(&oldest) else { continue };
            if entry.referenced {
                entry.referenced = false;
                inner.order.push_back(oldest);
            } else if let Some(gone) = inner.entries.remove(&oldest) {
                inner.bytes -= gone.bytes.len() + ENTRY_OVERHEAD_BYTES;
            }
        }
        inner.bytes += cost;
        inner.order.push_back(id.clone());
        inner.entries.insert(id, Entry { hash, bytes, referenced: false });
    }

    /// Bytes charged for the shards held now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Reads served from the cache, and reads that were not, since the process started.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    /// Reads that missed and waited for a fetch of the same shard under way, since the process
    /// started.
    pub fn joined(&self) -> u64 {
        self.joined.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_types::{BlobId, ShardIndex, StripeIndex};

    fn id(n: u32) -> ShardId {
        ShardId { blob: BlobId::new("ab"), stripe: StripeIndex(0), shard: ShardIndex(n) }
    }

    fn shard(n: u8, len: usize) -> (Bytes, blake3::Hash) {
        let bytes = Bytes::from(vec![n; len]);
        let hash = blake3::hash(&bytes);
        (bytes, hash)
    }

    #[test]
    fn a_shard_is_served_only_for_the_hash_it_was_checked_against_and_only_intact() {
        let cache = ShardCache::new(1 << 20);
        let (bytes, hash) = shard(1, 100);
        cache.insert(id(0), hash, &bytes);
        assert_eq!(cache.get(&id(0), &hash), Some(bytes.clone()));
        assert_eq!(cache.get(&id(0), &blake3::hash(b"another shard")), None, "another hash: not this shard");
        assert_eq!(cache.get(&id(1), &hash), None);
        assert_eq!(cache.hits_and_misses(), (1, 2));
        let (large, large_hash) = shard(2, SHARD_CACHE_ENTRY_MAX_BYTES + 1);
        cache.insert(id(2), large_hash, &large);
        assert_eq!(cache.get(&id(2), &large_hash), None, "large shards are not kept");
        // Bytes that no longer hash to their entry's hash (memory gone bad): dropped, not served.
        let (other, _) = shard(3, 100);
        cache.insert(id(3), hash, &other);
        assert_eq!(cache.get(&id(3), &hash), None, "bytes not matching the hash are never served");
        assert_eq!(cache.bytes(), 100 + ENTRY_OVERHEAD_BYTES, "the bad entry is gone");
        // The same id under another hash replaces the entry.
        let (newer, newer_hash) = shard(4, 50);
        cache.insert(id(0), newer_hash, &newer);
        assert_eq!(cache.get(&id(0), &newer_hash), Some(newer));
        assert_eq!(cache.bytes(), 50 + ENTRY_OVERHEAD_BYTES);
        let none = ShardCache::new(0);
        none.insert(id(0), hash, &bytes);
        assert_eq!((none.get(&id(0), &hash), none.bytes()), (None, 0), "capacity 0 keeps nothing");
    }

    #[test]
    fn the_cache_stays_within_its_bytes_and_keeps_what_is_read() {
        const COST: usize = 100 + ENTRY_OVERHEAD_BYTES;
        let cache = ShardCache::new(10 * COST);
        let shards: Vec<_> = (0..20u8).map(|n| shard(n, 100)).collect();
        for (n, (bytes, hash)) in shards.iter().enumerate().take(10) {
            cache.insert(id(n as u32), *hash, bytes);
        }
        assert_eq!(cache.bytes(), 10 * COST);
        // Shard 0 read again: the next insertion passes it over and evicts shard 1.
        assert!(cache.get(&id(0), &shards[0].1).is_some());
        cache.insert(id(10), shards[10].1, &shards[10].0);
        assert_eq!(cache.bytes(), 10 * COST, "never over its capacity");
        assert!(cache.get(&id(0), &shards[0].1).is_some(), "read since: kept");
        assert!(cache.get(&id(1), &shards[1].1).is_none(), "the oldest not read: evicted");
        for (n, (bytes, hash)) in shards.iter().enumerate().skip(11) {
            cache.insert(id(n as u32), *hash, bytes);
            assert!(cache.bytes() <= 10 * COST);
        }
        assert!(cache.get(&id(19), &shards[19].1).is_some(), "the newest is kept");
    }

    /// Reads of one shard arriving while it is being fetched wait for that fetch; a read of
    /// another hash or shard does not; once the fetch ends the shard is kept; a dropped leading
    /// read leaves those waiting to fetch it themselves.
    #[tokio::test]
    async fn reads_of_a_shard_under_way_share_its_fetch() {
        use std::sync::atomic::AtomicUsize;
        let cache = ShardCache::new(1 << 20);
        let (bytes, hash) = shard(7, 100);
        let fetches = AtomicUsize::new(0);
        let (release, released) = tokio::sync::watch::channel(false);
        let fetch_of = |bytes: Bytes| {
            let mut released = released.clone();
            let fetches = &fetches;
            async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                let _ = released.wait_for(|go| *go).await;
                Some(bytes)
            }
        };
        let fetch = || fetch_of(bytes.clone());
        let reads = futures::future::join_all((0..8).map(|_| cache.get_or_fetch(id(0), hash, fetch())));
        let x = Bytes::from_static(b"x");
        let other_hash = cache.get_or_fetch(id(0), blake3::hash(&x), fetch_of(x.clone()));
        let other_shard = cache.get_or_fetch(id(1), hash, fetch());
        let releasing = async {
            tokio::task::yield_now().await;
            release.send(true).unwrap();
        };
        let (reads, other_hash, other_shard, ()) = tokio::join!(reads, other_hash, other_shard, releasing);
        assert!(reads.iter().all(|read| read.as_ref() == Some(&bytes)), "every read has the shard");
        assert_eq!((other_hash, other_shard), (Some(x), Some(bytes.clone())));
        assert_eq!(fetches.load(Ordering::SeqCst), 3, "one fetch for the eight reads of the shard, one per other");
        assert_eq!(cache.joined(), 7);
        assert!(cache.flights.lock().unwrap().is_empty(), "no flight left once they end");
        // (The other hash's shard replaced the entry of id 0: one id, one hash, in a cluster.)
        assert_eq!(cache.get_or_fetch(id(1), hash, fetch()).await, Some(bytes.clone()), "kept");
        assert_eq!(fetches.load(Ordering::SeqCst), 3, "from the cache");

        // The leading read dropped while another waits: the one waiting fetches it itself.
        let cache = ShardCache::new(0);
        let (stalled_tx, stalled_rx) = tokio::sync::watch::channel(false);
        let stalled = async move {
            let mut stalled = stalled_rx;
            let _ = stalled.wait_for(|go| *go).await;
            None
        };
        let mut leading = Box::pin(cache.get_or_fetch(id(2), hash, stalled));
        assert!(futures::poll!(leading.as_mut()).is_pending(), "the leading read is fetching");
        let mut waiting = Box::pin(cache.get_or_fetch(id(2), hash, async { Some(Bytes::from_static(b"own")) }));
        assert!(futures::poll!(waiting.as_mut()).is_pending(), "waits for the leading read");
        assert_eq!(cache.joined(), 1);
        drop(leading);
        assert_eq!(waiting.await, Some(Bytes::from_static(b"own")), "fetched by the read that waited");
        assert!(cache.flights.lock().unwrap().is_empty());
        drop(stalled_tx);
    }
}
