//! Small shards a gateway has read, kept in memory for the reads that want them again. A shard
//! never changes once written (blob ids are never reused); an entry is served only for the hash
//! the metadata names now, and its bytes are hashed again on every hit (a few microseconds for
//! at most 64 KiB), so a bit flipped in the gateway's memory is caught as a node's disk would be:
//! the entry is dropped and the shard fetched. The metadata is read first on every GET, so a
//! deleted or replaced object is never served from here. Bounded in bytes (each entry charged
//! its shard plus `ENTRY_OVERHEAD_BYTES`).
//!
//! Shared fairly between tenants: each entry is charged to the tenant whose bucket it was read
//! for, and when the cache is full the tenant holding the most bytes gives way (the inserting one,
//! if the entry would bring it to as many), its oldest entry not read since it was last passed
//! over first (second chance). One tenant reading through a large working set therefore evicts
//! its own entries once it holds more than any other tenant, never those of a tenant holding
//! less: a tenant within an even share of the capacity keeps what it reads however hard another
//! reads (max-min fairness; with one tenant, plain second chance). The price: a tenant whose hot
//! set is larger than an even share gives the excess up to another that reads, even one that
//! gains nothing from the cache (docs/benchmarks.md). A pack's shard may hold objects of several
//! tenants (packs are filled by size, from whoever writes: one queue per tenant was measured and
//! reverted, docs/benchmarks.md): it is charged to the tenant whose read brought it in, and
//! serves the others' reads as well.
//!
//! Reads of a small shard under way are shared (`get_or_fetch`): a GET that misses while a fetch
//! of the same shard, for the same hash from the same node, is under way waits for that one
//! instead of asking the node again. Neighbouring objects of a pack share its shards, so GETs of
//! keys written together, arriving together, would otherwise each fetch the same shard while it
//! is not yet kept. The fetch runs as a task of its own: no reader's pace (a slow client holding
//! its GET's stream back) or cancellation (a client gone, a hedged read no longer needed) holds
//! up or ends it for the others; the shard request's own timeout bounds it. Flights are shared
//! whatever the cache's capacity (with 0 nothing is kept, but reads under way still are).
//!
//! Why: a packed 4 KiB object's GET is two internode round trips (its record, then a shard), an
//! inline one's one; on a busy host the hops' wake-ups are its cost (docs/benchmarks.md, "Where a
//! packed 4 KiB GET's CPU goes"). Only small shards are kept: a large object's shards would push
//! out thousands of small ones, and its GET is bandwidth, not hops.

use super::AbortOnDrop;
use bytes::Bytes;
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared, WeakShared};
use ignifuge_types::{NodeId, ShardId, TenantId};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    /// The tenant it is charged to.
    owner: TenantId,
    /// Read since it was inserted or last passed over by the eviction.
    referenced: bool,
    /// Which insertion made it: names it in its tenant's queue, so that an id replaced (another
    /// hash) or gone and cached again is not also taken for the entry its older place named.
    seq: u64,
}

impl Entry {
    fn cost(&self) -> usize {
        self.bytes.len() + ENTRY_OVERHEAD_BYTES
    }
}

/// What one tenant holds.
#[derive(Default)]
struct Share {
    bytes: usize,
    /// Entries charged to it.
    entries: usize,
    /// Its entries in insertion order, each with its insertion's `seq` (one whose entry was
    /// dropped or replaced since may linger: skipped when it comes up).
    order: VecDeque<(ShardId, u64)>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<ShardId, Entry>,
    /// Only tenants holding bytes have a share.
    shares: HashMap<TenantId, Share>,
    /// The tenants holding bytes, by how many: the last gives way first.
    by_bytes: BTreeSet<(usize, TenantId)>,
    bytes: usize,
    /// The next insertion's `seq`.
    next_seq: u64,
}

impl Inner {
    /// Charges an entry of `cost` bytes more (or, negative, one less) to `owner`.
    fn charge(&mut self, owner: &TenantId, cost: isize) {
        let share = self.shares.entry(owner.clone()).or_default();
        self.by_bytes.remove(&(share.bytes, owner.clone()));
        share.entries = if cost < 0 { share.entries.saturating_sub(1) } else { share.entries + 1 };
        share.bytes = share.bytes.saturating_add_signed(cost);
        self.bytes = self.bytes.saturating_add_signed(cost);
        if share.bytes == 0 {
            self.shares.remove(owner);
        } else {
            self.by_bytes.insert((share.bytes, owner.clone()));
        }
    }

    fn insert(&mut self, id: ShardId, mut entry: Entry) {
        entry.seq = self.next_seq;
        self.next_seq += 1;
        self.charge(&entry.owner, entry.cost() as isize);
        if let Some(share) = self.shares.get_mut(&entry.owner) {
            share.order.push_back((id.clone(), entry.seq));
            // Places of entries gone otherwise than by eviction (replaced, dropped as damaged)
            // are skipped when eviction reaches them; in a cache that seldom fills they would
            // pile up, so they are swept once they are as many as the entries.
            if share.order.len() > 2 * share.entries + 16 {
                let entries = &self.entries;
                share.order.retain(|(id, seq)| entries.get(id).is_some_and(|e| e.seq == *seq) || *seq == entry.seq);
            }
        }
        if let Some(old) = self.entries.insert(id, entry) {
            self.charge(&old.owner, -(old.cost() as isize));
        }
    }

    fn remove(&mut self, id: &ShardId) {
        if let Some(gone) = self.entries.remove(id) {
            self.charge(&gone.owner, -(gone.cost() as isize));
        }
    }

    /// Makes room for an entry of `cost` bytes of `inserting`'s: evicts one entry of the tenant
    /// holding the most bytes, or `inserting`'s own if it would hold as many once the entry is
    /// in (so that a tenant at an even share keeps it whatever the entries' sizes), or passes
    /// one over (second chance); false when nothing is held.
    fn evict_step(&mut self, inserting: &TenantId, cost: usize) -> bool {
        let Some((most, largest)) = self.by_bytes.last() else { return false };
        let own = self.shares.get(inserting).map_or(0, |share| share.bytes);
        let victim = if own > 0 && own + cost >= *most { inserting.clone() } else { largest.clone() };
        let Some(share) = self.shares.get_mut(&victim) else { return false };
        let Some((oldest, seq)) = share.order.pop_front() else {
            // Bytes charged with no entry left to name them: cannot happen. Forget the share and
            // whatever entries it still owns rather than loop or hold bytes nobody is charged.
            debug_assert!(false, "a shard cache share without entries");
            tracing::error!(tenant = %victim, bytes = share.bytes, "shard cache share without entries; reset");
            let owned: Vec<ShardId> =
                self.entries.iter().filter(|(_, e)| e.owner == victim).map(|(id, _)| id.clone()).collect();
            for id in &owned {
                self.remove(id);
            }
            if let Some(share) = self.shares.remove(&victim) {
                self.by_bytes.remove(&(share.bytes, victim));
                self.bytes = self.bytes.saturating_sub(share.bytes);
            }
            return true;
        };
        match self.entries.get_mut(&oldest) {
            Some(entry) if entry.seq == seq && entry.referenced => {
                entry.referenced = false;
                share.order.push_back((oldest, seq));
            }
            Some(entry) if entry.seq == seq => self.remove(&oldest),
            _ => {} // lingering
        }
        true
    }
}

/// A fetch of a shard under way, as its readers await it: the shard, or None if the fetch failed.
type Flight = Shared<BoxFuture<'static, Option<Bytes>>>;
/// What a flight fetches: the shard, the hash its bytes must have, the node asked.
type FlightKey = (ShardId, blake3::Hash, NodeId);

/// A flight as the map holds it: weakly, so that the fetch is cancelled once no reader is left.
struct FlightEntry {
    /// Which flight of the key this is (an ended flight's task removes only its own entry).
    generation: u64,
    flight: WeakShared<BoxFuture<'static, Option<Bytes>>>,
}

pub struct ShardCache {
    capacity: usize,
    inner: Mutex<Inner>,
    flights: Mutex<HashMap<FlightKey, FlightEntry>>,
    generations: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    joined: AtomicU64,
}

/// Ends a flight when its fetch task ends, however it ends (done, cancelled, panicked).
struct EndsFlight {
    cache: Arc<ShardCache>,
    key: FlightKey,
    generation: u64,
}

impl Drop for EndsFlight {
    fn drop(&mut self) {
        let mut flights = self.cache.flights();
        if flights.get(&self.key).is_some_and(|entry| entry.generation == self.generation) {
            flights.remove(&self.key);
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
            generations: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            joined: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Entries are immutable bytes: valid whatever a panicking holder was doing.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn flights(&self) -> std::sync::MutexGuard<'_, HashMap<FlightKey, FlightEntry>> {
        self.flights.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The shard with the hash `expected`: from the cache if it holds it intact, else the outcome
    /// of the fetch of it from `node` under way, else of `fetch`, run as a task of its own (and
    /// kept if small enough). The task goes on while any read waits for it, whatever the pace
    /// of the one that started it, and is cancelled when none is left (a client gone, a hedged
    /// read no longer needed), as a fetch of its own would be. `fetch` must check the bytes
    /// against `expected`, as a node read does, and end within a bounded time. A shard kept is
    /// charged to `owner` (the tenant whose bucket the read that started the fetch was for).
    pub async fn get_or_fetch(
        self: &Arc<Self>,
        id: ShardId,
        expected: blake3::Hash,
        node: NodeId,
        owner: &TenantId,
        fetch: impl Future<Output = Option<Bytes>> + Send + 'static,
    ) -> Option<Bytes> {
        if let Some(hit) = self.get(&id, &expected) {
            return Some(hit);
        }
        let key = (id, expected, node);
        let (flight, start) = {
            let mut flights = self.flights();
            match flights.get(&key).and_then(|entry| entry.flight.upgrade()) {
                Some(flight) => {
                    self.joined.fetch_add(1, Ordering::Relaxed);
                    (flight, None)
                }
                None => {
                    let generation = self.generations.fetch_add(1, Ordering::Relaxed);
                    let (handing, handed) = oneshot::channel::<tokio::task::JoinHandle<Option<Bytes>>>();
                    let flight: Flight = async move {
                        let Ok(handle) = handed.await else { return None };
                        // Cancels the fetch when the flight is dropped: its last reader gone.
                        AbortOnDrop(handle).await.ok().flatten()
                    }
                    .boxed()
                    .shared();
                    let weak = flight.downgrade().expect("a flight not yet polled has not ended");
                    flights.insert(key.clone(), FlightEntry { generation, flight: weak });
                    (flight, Some((generation, handing)))
                }
            }
        };
        if let Some((generation, handing)) = start {
            // Spawned once the map is unlocked: a runtime shutting down drops the task at once,
            // on this thread, and its end takes the lock. The entry is in before the task exists.
            let ends = EndsFlight { cache: self.clone(), key, generation };
            let owner = owner.clone();
            let task = tokio::spawn(async move {
                let (cache, (id, hash, _)) = (&ends.cache, &ends.key);
                // A fetch that ended between this read's miss and its flight kept it.
                if let Some(kept) = cache.cached(id, hash) {
                    return Some(kept);
                }
                let fetched = fetch.await;
                if let Some(bytes) = &fetched {
                    cache.insert(id.clone(), *hash, bytes, &owner);
                }
                // `ends` is dropped after the insert: a read finding no flight finds the cache.
                fetched
            });
            if let Err(task) = handing.send(task) {
                task.abort(); // the flight was dropped meanwhile: no reader is left
            }
        }
        flight.await
    }

    /// The shard, if cached with the hash `expected` and its bytes still hash to it.
    pub fn get(&self, id: &ShardId, expected: &blake3::Hash) -> Option<Bytes> {
        if self.capacity == 0 {
            return None;
        }
        let hit = self.cached(id, expected);
        let counter = if hit.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    /// `get` without counting.
    fn cached(&self, id: &ShardId, expected: &blake3::Hash) -> Option<Bytes> {
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
        cached.filter(|bytes| {
            let intact = blake3::hash(bytes) == *expected;
            if !intact {
                tracing::error!(shard = %id, "a cached shard no longer matches its hash (gateway memory); dropped");
                self.remove(id);
            }
            intact
        })
    }

    fn remove(&self, id: &ShardId) {
        self.lock().remove(id);
    }

    /// Keeps a shard checked against `hash`, charged to `owner`, if it is small enough; evicts
    /// to make room (from the tenant holding the most). An entry of the same id with another
    /// hash is replaced.
    pub fn insert(&self, id: ShardId, hash: blake3::Hash, bytes: &Bytes, owner: &TenantId) {
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
        if inner.entries.get(&id).is_some_and(|entry| entry.hash == hash) {
            return; // another read of it got here while this one copied
        }
        inner.remove(&id);
        while inner.bytes + cost > self.capacity && inner.evict_step(owner, cost) {}
        inner.insert(id, Entry { hash, bytes, owner: owner.clone(), referenced: false, seq: 0 });
    }

    /// Bytes charged for the shards held now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Bytes charged to `tenant` now.
    pub fn bytes_of(&self, tenant: &TenantId) -> usize {
        self.lock().shares.get(tenant).map_or(0, |share| share.bytes)
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

    /// Flights under way (for tests).
    #[cfg(test)]
    fn flights_under_way(&self) -> usize {
        self.flights().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_types::{BlobId, ShardIndex, StripeIndex};

    /// The tenant of the tests that do not tell tenants apart.
    fn t() -> TenantId {
        TenantId::new("t")
    }

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
        cache.insert(id(0), hash, &bytes, &t());
        assert_eq!(cache.get(&id(0), &hash), Some(bytes.clone()));
        assert_eq!(cache.get(&id(0), &blake3::hash(b"another shard")), None, "another hash: not this shard");
        assert_eq!(cache.get(&id(1), &hash), None);
        assert_eq!(cache.hits_and_misses(), (1, 2));
        let (large, large_hash) = shard(2, SHARD_CACHE_ENTRY_MAX_BYTES + 1);
        cache.insert(id(2), large_hash, &large, &t());
        assert_eq!(cache.get(&id(2), &large_hash), None, "large shards are not kept");
        // Bytes that no longer hash to their entry's hash (memory gone bad): dropped, not served.
        let (other, _) = shard(3, 100);
        cache.insert(id(3), hash, &other, &t());
        assert_eq!(cache.get(&id(3), &hash), None, "bytes not matching the hash are never served");
        assert_eq!(cache.bytes(), 100 + ENTRY_OVERHEAD_BYTES, "the bad entry is gone");
        // The same id under another hash replaces the entry.
        let (newer, newer_hash) = shard(4, 50);
        cache.insert(id(0), newer_hash, &newer, &t());
        assert_eq!(cache.get(&id(0), &newer_hash), Some(newer));
        assert_eq!(cache.bytes(), 50 + ENTRY_OVERHEAD_BYTES);
        let none = ShardCache::new(0);
        none.insert(id(0), hash, &bytes, &t());
        assert_eq!((none.get(&id(0), &hash), none.bytes()), (None, 0), "capacity 0 keeps nothing");
    }

    #[test]
    fn the_cache_stays_within_its_bytes_and_keeps_what_is_read() {
        const COST: usize = 100 + ENTRY_OVERHEAD_BYTES;
        let cache = ShardCache::new(10 * COST);
        let shards: Vec<_> = (0..20u8).map(|n| shard(n, 100)).collect();
        for (n, (bytes, hash)) in shards.iter().enumerate().take(10) {
            cache.insert(id(n as u32), *hash, bytes, &t());
        }
        assert_eq!(cache.bytes(), 10 * COST);
        // Shard 0 read again: the next insertion passes it over and evicts shard 1.
        assert!(cache.get(&id(0), &shards[0].1).is_some());
        cache.insert(id(10), shards[10].1, &shards[10].0, &t());
        assert_eq!(cache.bytes(), 10 * COST, "never over its capacity");
        assert!(cache.get(&id(0), &shards[0].1).is_some(), "read since: kept");
        assert!(cache.get(&id(1), &shards[1].1).is_none(), "the oldest not read: evicted");
        for (n, (bytes, hash)) in shards.iter().enumerate().skip(11) {
            cache.insert(id(n as u32), *hash, bytes, &t());
            assert!(cache.bytes() <= 10 * COST);
        }
        assert!(cache.get(&id(19), &shards[19].1).is_some(), "the newest is kept");
    }

    /// An id cached again (another hash) takes its place at the back of the queue: its older
    /// place is not taken for it, so the next eviction takes the oldest other entry.
    #[test]
    fn an_entry_replaced_is_as_new_in_the_eviction_order() {
        const COST: usize = 100 + ENTRY_OVERHEAD_BYTES;
        let cache = ShardCache::new(3 * COST);
        let shards: Vec<_> = (0..5u8).map(|n| shard(n, 100)).collect();
        for n in 0..3 {
            cache.insert(id(n), shards[n as usize].1, &shards[n as usize].0, &t());
        }
        cache.insert(id(0), shards[3].1, &shards[3].0, &t()); // shard 0's id, another hash
        cache.insert(id(4), shards[4].1, &shards[4].0, &t());
        assert!(cache.get(&id(0), &shards[3].1).is_some(), "the entry just replaced was evicted first");
        assert!(cache.get(&id(1), &shards[1].1).is_none(), "the oldest was kept");
        assert_eq!(cache.lock().shares[&t()].order.len(), 3, "the queue holds each entry once");
        // In a cache that never fills, the places of replaced entries are swept, not kept.
        let roomy = ShardCache::new(1 << 20);
        for n in 0..200u8 {
            let (bytes, hash) = shard(n, 100);
            roomy.insert(id(u32::from(n % 2)), hash, &bytes, &t());
        }
        let order = roomy.lock().shares[&t()].order.len();
        assert!(order <= 2 * 2 + 17, "{order} places in the queue for 2 entries");
        assert!(roomy.get(&id(1), &shard(199, 100).1).is_some(), "the last one kept");
    }

    /// A tenant reading through many shards evicts its own once it holds the most, never the
    /// shards of a tenant holding less, read again or not; two tenants both reading hard end with
    /// even shares.
    #[test]
    fn a_tenant_reading_hard_evicts_its_own_shards_not_those_of_a_tenant_holding_less() {
        const COST: usize = 100 + ENTRY_OVERHEAD_BYTES;
        let cache = ShardCache::new(10 * COST);
        let (a, b) = (TenantId::new("a"), TenantId::new("b"));
        let shards: Vec<_> = (0..200u8).map(|n| shard(n, 100)).collect();
        for (n, (bytes, hash)) in shards.iter().enumerate().take(3) {
            cache.insert(id(n as u32), *hash, bytes, &b);
        }
        for (n, (bytes, hash)) in shards.iter().enumerate().skip(3).take(100) {
            cache.insert(id(n as u32), *hash, bytes, &a);
            assert!(cache.bytes() <= 10 * COST);
        }
        assert_eq!((cache.bytes_of(&a), cache.bytes_of(&b)), (7 * COST, 3 * COST));
        for (n, (_, hash)) in shards.iter().enumerate().take(3) {
            assert!(cache.get(&id(n as u32), hash).is_some(), "b's shard {n} kept, though older and never read");
        }
        assert!(cache.get(&id(102), &shards[102].1).is_some(), "a's newest kept");
        assert!(cache.get(&id(95), &shards[95].1).is_none(), "a's older ones gave way to a's newer");
        // b reads more: a, holding the most, gives way until the shares are even, then b its own.
        for (n, (bytes, hash)) in shards.iter().enumerate().skip(103).take(20) {
            cache.insert(id(n as u32), *hash, bytes, &b);
        }
        assert_eq!((cache.bytes_of(&a), cache.bytes_of(&b)), (5 * COST, 5 * COST));
        assert!(cache.get(&id(122), &shards[122].1).is_some(), "b's newest kept");
        // And a reading again keeps them even: its own give way.
        for (n, (bytes, hash)) in shards.iter().enumerate().skip(123).take(20) {
            cache.insert(id(n as u32), *hash, bytes, &a);
        }
        assert_eq!((cache.bytes_of(&a), cache.bytes_of(&b)), (5 * COST, 5 * COST));
        // An entry dropped or replaced is no longer charged to the tenant it was charged to.
        cache.insert(id(122), shards[0].1, &shards[0].0, &a);
        assert_eq!((cache.bytes_of(&a), cache.bytes_of(&b)), (6 * COST, 4 * COST), "b's entry replaced by a's");
        let (bad, _) = shard(250, 100);
        cache.insert(id(199), shards[1].1, &bad, &b);
        assert!(cache.get(&id(199), &shards[1].1).is_none(), "bytes not matching: dropped");
        assert_eq!((cache.bytes_of(&a), cache.bytes_of(&b), cache.bytes()), (5 * COST, 4 * COST, 9 * COST));

        // Entries of different sizes: a tenant at an even share keeps it when another's larger
        // entry would bring that other past it.
        let cache = ShardCache::new(10 * COST);
        for (n, (bytes, hash)) in shards.iter().enumerate().take(5) {
            cache.insert(id(n as u32), *hash, bytes, &b);
        }
        for (n, (bytes, hash)) in shards.iter().enumerate().skip(5).take(5) {
            cache.insert(id(n as u32), *hash, bytes, &a);
        }
        let (large, large_hash) = shard(201, 300);
        cache.insert(id(10), large_hash, &large, &a);
        assert_eq!(cache.bytes_of(&b), 5 * COST, "b, at an even share, gave nothing up");
        assert_eq!(cache.bytes_of(&a), 3 * COST + 300 + ENTRY_OVERHEAD_BYTES, "a made room from its own");
    }

    /// A fetch that counts itself in `fetches` and returns `bytes` once `released` says so.
    fn held_fetch(
        released: &tokio::sync::watch::Receiver<bool>,
        fetches: &Arc<std::sync::atomic::AtomicUsize>,
        bytes: Bytes,
    ) -> impl Future<Output = Option<Bytes>> + Send + 'static {
        let (mut released, fetches) = (released.clone(), fetches.clone());
        async move {
            fetches.fetch_add(1, Ordering::SeqCst);
            let _ = released.wait_for(|go| *go).await;
            Some(bytes)
        }
    }

    /// Reads of a shard arriving while it is being fetched wait for that fetch; a read of
    /// another hash, shard or node does not; once the fetch ends the shard is kept and no flight
    /// is left. The fetch is its own task: the read that started it going away neither ends it
    /// nor leaves the others waiting; a fetch that panics leaves no flight behind.
    #[tokio::test]
    async fn reads_of_a_shard_under_way_share_its_fetch() {
        use std::sync::atomic::AtomicUsize;
        let tenant = t();
        let cache = Arc::new(ShardCache::new(1 << 20));
        let (bytes, hash) = shard(7, 100);
        let fetches = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let fetch_of = |bytes: Bytes| held_fetch(&released, &fetches, bytes);
        let fetch = || fetch_of(bytes.clone());
        let a = || NodeId::new("a");
        let reads = futures::future::join_all((0..8).map(|_| cache.get_or_fetch(id(0), hash, a(), &tenant, fetch())));
        let x = Bytes::from_static(b"x");
        let other_hash = cache.get_or_fetch(id(9), blake3::hash(&x), a(), &tenant, fetch_of(x.clone()));
        let other_shard = cache.get_or_fetch(id(1), hash, a(), &tenant, fetch());
        // The same shard named on another node (a record newer or older than the others').
        let other_node = cache.get_or_fetch(id(0), hash, NodeId::new("b"), &tenant, fetch());
        let releasing = async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            release.send(true).unwrap();
        };
        let (reads, other_hash, other_shard, other_node, ()) =
            tokio::join!(reads, other_hash, other_shard, other_node, releasing);
        assert!(reads.iter().all(|read| read.as_ref() == Some(&bytes)), "every read has the shard");
        assert_eq!((other_hash, other_shard, other_node), (Some(x), Some(bytes.clone()), Some(bytes.clone())));
        assert_eq!(fetches.load(Ordering::SeqCst), 4, "one fetch for the eight reads of the shard, one per other");
        assert_eq!(cache.joined(), 7);
        assert_eq!(cache.flights_under_way(), 0, "no flight left once they end");
        assert_eq!(cache.get_or_fetch(id(1), hash, a(), &tenant, fetch()).await, Some(bytes.clone()), "kept");
        assert_eq!(fetches.load(Ordering::SeqCst), 4, "from the cache");

        // The read that started a fetch goes away (its client did, or it was a hedged read no
        // longer needed) while another waits: the fetch goes on, the other gets the shard.
        let cache = Arc::new(ShardCache::new(0)); // nothing kept: flights are shared all the same
        let (release, released) = tokio::sync::watch::channel(false);
        let stalled = |bytes: Bytes| held_fetch(&released, &fetches, bytes);
        let before = fetches.load(Ordering::SeqCst);
        let mut first = Box::pin(cache.get_or_fetch(id(2), hash, a(), &tenant, stalled(bytes.clone())));
        assert!(futures::poll!(first.as_mut()).is_pending(), "fetching");
        let mut second = Box::pin(cache.get_or_fetch(id(2), hash, a(), &tenant, stalled(bytes.clone())));
        assert!(futures::poll!(second.as_mut()).is_pending(), "waits for the first read's fetch");
        drop(first);
        release.send(true).unwrap();
        assert_eq!(second.await, Some(bytes.clone()));
        assert_eq!(fetches.load(Ordering::SeqCst), before + 1, "one fetch, not ended by the first read going away");
        assert_eq!(cache.flights_under_way(), 0);

        // Every read waiting for a fetch goes away: the fetch is cancelled, as each read's own
        // fetch was before flights were shared (a node that hangs is not asked ever more).
        struct Dropped(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let cancelled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (_never, never) = tokio::sync::watch::channel(false);
        let hanging = {
            let (dropped, mut never) = (Dropped(cancelled.clone()), never.clone());
            async move {
                let _dropped = dropped;
                let _ = never.wait_for(|go| *go).await;
                None
            }
        };
        let mut only = Box::pin(cache.get_or_fetch(id(4), hash, a(), &tenant, hanging));
        assert!(futures::poll!(only.as_mut()).is_pending());
        let mut also = Box::pin(cache.get_or_fetch(id(4), hash, a(), &tenant, std::future::pending()));
        assert!(futures::poll!(also.as_mut()).is_pending(), "joined");
        drop(only);
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        assert!(!cancelled.load(Ordering::SeqCst), "a read still waits: the fetch goes on");
        drop(also);
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        assert!(cancelled.load(Ordering::SeqCst), "no read left: the fetch is cancelled");
        assert_eq!(cache.flights_under_way(), 0, "and its flight is gone");

        // A fetch that panics: its readers get nothing, and the next read fetches anew.
        async fn panicking() -> Option<Bytes> {
            panic!("the fetch failed badly")
        }
        assert_eq!(cache.get_or_fetch(id(3), hash, a(), &tenant, panicking()).await, None);
        assert_eq!(cache.flights_under_way(), 0, "the flight ended with its task");
        let again = cache.get_or_fetch(id(3), hash, a(), &tenant, async { Some(Bytes::from_static(b"y")) }).await;
        assert_eq!(again, Some(Bytes::from_static(b"y")));
    }
}
