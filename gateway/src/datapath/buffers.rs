//! Stripe and parity buffers kept for the next stripe instead of handed back to the allocator.
//!
//! A 64 MiB PUT fills a 5 MiB data buffer and four 1 MiB parity buffers per stripe. Allocated
//! fresh each time, about a third of their pages faulted in again (31,500 page faults a second
//! in a gateway writing 213 MiB/s), and the first parity buffer, zeroed lazily and read by the
//! copies `vec![v; m]` made of it, faulted twice, the second time flushing the other core's TLB:
//! 13 % of the gateway's CPU in a 64 MiB PUT went to page faults (docs/benchmarks.md, "Stripe
//! buffers kept for reuse"). A kept buffer is written over as it is, never zeroed first: the
//! data buffer is cleared and refilled, a parity buffer is entirely overwritten by the encoder.
//!
//! Only buffers taken from the pool go back to it (a pack's buffer, sized for its pack, does
//! not: `write::StripeData`), and a buffer is lent only for its own size, so no stripe holds
//! more than its k + m shards' worth. Bounded (`BUFFERS_KEPT_MAX_BYTES`) and idle-trimmed
//! (`BUFFER_IDLE_MAX_MS`): a gateway gives back what its last writes left once they stop.

use bytes::Bytes;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

/// Bytes of buffers kept at most: seven stripes of 5+4 (1 MiB shards). A buffer is kept between
/// the end of one stripe and the start of the next, so a few stripes' worth is what reuse needs.
/// Kept buffers are not in use: at most this is added to the gateway's bound on stripes in
/// memory (`GATEWAY_STRIPES_IN_FLIGHT_MAX`), when the stripes in flight are at that bound.
pub const BUFFERS_KEPT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// A buffer unused this long is given back to the allocator: when a buffer is next kept or
/// taken, or by the gateway's trim task, which runs this often (so 10-20 s after its last use).
pub const BUFFER_IDLE_MAX_MS: u64 = 10_000;

/// Buffers kept for reuse, most recently returned last.
#[derive(Default)]
pub struct BufferPool {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    buffers: Vec<(Vec<u8>, Instant)>,
    bytes: usize,
}

impl Kept {
    /// Gives back to the allocator the buffers unused for `BUFFER_IDLE_MAX_MS` (the oldest are
    /// first).
    fn trim(&mut self, now: Instant) {
        let idle_max = Duration::from_millis(BUFFER_IDLE_MAX_MS);
        let stale = self.buffers.iter().take_while(|(_, kept_at)| now.duration_since(*kept_at) >= idle_max).count();
        for (buffer, _) in self.buffers.drain(..stale) {
            self.bytes -= buffer.capacity();
        }
    }
}

impl BufferPool {
    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        // Only buffers and counts: valid whatever a panicking holder was doing.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A buffer of exactly `capacity` bytes of room (the stripe's or a shard's size: no larger,
    /// so that the bound on stripes in memory holds), holding whatever bytes it held before:
    /// callers `clear` or `resize` it. A new one when none of that size is kept.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let mut kept = self.kept();
        kept.trim(Instant::now());
        let fits = kept.buffers.iter().rposition(|(b, _)| b.capacity() == capacity);
        match fits {
            Some(i) => {
                let (buffer, _) = kept.buffers.remove(i);
                kept.bytes -= buffer.capacity();
                buffer
            }
            None => {
                drop(kept);
                Vec::with_capacity(capacity)
            }
        }
    }

    /// Keeps `buffer` for a later `take`, unless that would keep more than
    /// `BUFFERS_KEPT_MAX_BYTES`.
    pub fn keep(&self, buffer: Vec<u8>) {
        let mut kept = self.kept();
        kept.trim(Instant::now());
        if buffer.capacity() == 0 || kept.bytes + buffer.capacity() > BUFFERS_KEPT_MAX_BYTES {
            return;
        }
        kept.bytes += buffer.capacity();
        kept.buffers.push((buffer, Instant::now()));
    }

    /// Gives back the buffers unused for `BUFFER_IDLE_MAX_MS` (for a gateway gone idle).
    pub fn trim(&self) {
        self.kept().trim(Instant::now());
    }

    /// Bytes of buffers kept now.
    #[cfg(test)]
    pub fn kept_bytes(&self) -> usize {
        self.kept().bytes
    }

    /// `buffer`'s bytes as `Bytes`, the buffer kept for reuse once the last slice of them is
    /// dropped (once every request sending a shard cut from it has ended).
    pub fn bytes(self: &Arc<Self>, buffer: Vec<u8>) -> Bytes {
        Bytes::from_owner(Returned { buffer, pool: Arc::downgrade(self) })
    }
}

/// A buffer lent out as `Bytes`, kept by its pool when dropped.
struct Returned {
    buffer: Vec<u8>,
    pool: Weak<BufferPool>,
}

impl AsRef<[u8]> for Returned {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Returned {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.keep(std::mem::take(&mut self.buffer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_lent_as_bytes_is_taken_again_once_its_last_slice_is_dropped() {
        let pool = Arc::new(BufferPool::default());
        let mut buffer = pool.take(1 << 20);
        buffer.extend_from_slice(&[7u8; 1 << 20]);
        let address = buffer.as_ptr();
        let bytes = pool.bytes(buffer);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(pool.kept_bytes(), 0, "kept while a slice of it is alive");
        assert_eq!(&slice[..], &[7u8; 10]);
        drop(slice);
        assert_eq!(pool.kept_bytes(), 1 << 20);
        let again = pool.take(1 << 20);
        assert_eq!(again.as_ptr(), address, "the same allocation is lent again");
        assert_eq!(again.len(), 1 << 20, "its bytes are left for the caller to clear or overwrite");
        assert_eq!(pool.kept_bytes(), 0);
    }

    #[test]
    fn a_buffer_is_lent_only_for_its_own_size() {
        let pool = BufferPool::default();
        pool.keep(Vec::with_capacity(5 << 20));
        pool.keep(Vec::with_capacity(1 << 20));
        assert_eq!(pool.take(4 << 20).capacity(), 4 << 20, "a 5 MiB buffer lent for 4 MiB");
        assert_eq!(pool.take(6 << 20).capacity(), 6 << 20);
        assert_eq!(pool.kept_bytes(), 6 << 20, "a buffer of another size was taken");
        assert_eq!(pool.take(5 << 20).capacity(), 5 << 20);
        assert_eq!(pool.take(1 << 20).capacity(), 1 << 20);
        assert_eq!(pool.kept_bytes(), 0);
    }

    #[test]
    fn the_pool_keeps_at_most_its_bound_and_gives_back_idle_buffers() {
        let pool = BufferPool::default();
        let size = 8 << 20;
        for _ in 0..(BUFFERS_KEPT_MAX_BYTES / size + 3) {
            pool.keep(Vec::with_capacity(size));
        }
        assert_eq!(pool.kept_bytes(), BUFFERS_KEPT_MAX_BYTES);
        let mut kept = pool.kept();
        let later = Instant::now() + Duration::from_millis(BUFFER_IDLE_MAX_MS);
        kept.trim(later);
        assert_eq!(kept.bytes, 0);
        assert!(kept.buffers.is_empty());
    }

    #[test]
    fn only_the_buffers_idle_long_enough_are_given_back() {
        let pool = BufferPool::default();
        pool.keep(Vec::with_capacity(1 << 20));
        let young = Vec::with_capacity(2 << 20);
        let mut kept = pool.kept();
        // The first kept buffer has been idle the whole time; the second is kept just now.
        let first_kept_at = kept.buffers[0].1;
        kept.bytes += young.capacity();
        kept.buffers.push((young, first_kept_at + Duration::from_millis(BUFFER_IDLE_MAX_MS / 2)));
        kept.trim(first_kept_at + Duration::from_millis(BUFFER_IDLE_MAX_MS));
        assert_eq!(kept.bytes, 2 << 20, "the idle buffer was kept, or the young one given back");
        assert_eq!(kept.buffers.len(), 1);
        assert_eq!(kept.buffers[0].0.capacity(), 2 << 20);
    }

    #[test]
    fn bytes_outliving_their_pool_stay_readable() {
        let pool = Arc::new(BufferPool::default());
        let bytes = pool.bytes(vec![1u8; 4096]);
        drop(pool);
        assert_eq!(&bytes[..3], &[1, 1, 1]);
        drop(bytes); // and the buffer goes to the allocator: no pool to keep it
    }
}
