//! Ordered key-value storage behind one small trait.
//!
//! Owns: the `KvStore` trait (point reads, atomic batches, ordered range scans), an in-memory
//! engine for unit tests and simulations, and the RocksDB engine (feature `rocksdb`, linked only
//! by the daemon, the benchmarks and the end-to-end tests, so unit tests never compile RocksDB's
//! C++), with bulk loading of sorted table files for benchmarks that need millions of keys.
//! Must never depend on: any other Ignifuge crate, tokio, the network.
//! Invariants: a batch is applied all-or-nothing; `Durability::Synced` returns only after the
//! batch is on stable storage; scans return keys in ascending byte order.

mod memory;
#[cfg(feature = "rocksdb")]
mod rocks;

pub use memory::MemoryKv;
#[cfg(feature = "rocksdb")]
pub use rocks::RocksKv;

/// Errors of the key-value layer.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("storage engine error: {0}")]
    Engine(String),
}

/// Whether a write must reach stable storage before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsync (the engine's WAL sync) before returning: for anything acknowledged to a client.
    Synced,
    /// May be lost on power failure; for caches and rebuildable indexes.
    Buffered,
}

/// One mutation of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

/// A set of mutations applied atomically, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub ops: Vec<KvOp>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(KvOp::Put(key.into(), value.into()));
    }
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push(KvOp::Delete(key.into()));
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A key and its value, as returned by scans.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// A consistent, read-only view of a store at one instant: later writes are not visible in it.
pub trait KvSnapshot: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    /// As `KvStore::scan`, against the view.
    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<KvPair>, KvError>;
}

/// An ordered key-value store.
pub trait KvStore: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    /// Applies every op of the batch atomically.
    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), KvError>;
    /// Keys in `[start, end)` (no upper bound when `end` is None), ascending, at most `limit`;
    /// none when `end <= start`.
    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<KvPair>, KvError> {
        self.scan_bytes(start, end, limit, usize::MAX)
    }
    /// As `scan`, and no pair after the first `bytes_max` bytes of keys and values (at least one
    /// pair when the range has any): a scan of records of any size holds bounded memory.
    fn scan_bytes(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        bytes_max: usize,
    ) -> Result<Vec<KvPair>, KvError>;
    /// As `scan_bytes`, keeping of each value only its first `keep(value)` bytes: a caller that
    /// needs the head of large values (a listing: `ignifuge_meta`'s records hold inline bodies
    /// after their JSON) copies no more of them. `bytes_max` counts keys and the bytes kept, so a
    /// caller that counts what it got knows whether the scan stopped on the bound.
    fn scan_heads(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        bytes_max: usize,
        keep: &dyn Fn(&[u8]) -> usize,
    ) -> Result<Vec<KvPair>, KvError> {
        let mut out = Vec::new();
        self.scan_visit(start, end, limit, bytes_max, &mut |key, value| {
            let value = &value[..keep(value).min(value.len())];
            out.push((key.to_vec(), value.to_vec()));
            Some(value.len())
        })?;
        Ok(out)
    }
    /// The pairs `scan_heads` would return, each lent in place to `visit` (nothing copied: a
    /// listing decodes the fields it needs straight from the engine's buffer), which returns how
    /// many bytes of the value it took (counted with the key against `bytes_max`), or None to end
    /// the scan there (that pair not counted).
    fn scan_visit(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        bytes_max: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Option<usize>,
    ) -> Result<(), KvError>;
    /// The greatest key in `[start, end)` and its value, if any.
    fn last(&self, start: &[u8], end: &[u8]) -> Result<Option<KvPair>, KvError>;
    /// A consistent view of the whole store now (RocksDB: a snapshot, which costs no copy).
    fn snapshot(&self) -> Result<Box<dyn KvSnapshot>, KvError>;
}

/// The smallest key strictly greater than every key that starts with `prefix`, if any.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod contract {
    //! The behaviour every engine must show; run against each engine.
    use super::*;

    pub fn check(kv: &dyn KvStore) {
        let mut batch = WriteBatch::new();
        batch.put(b"b/2".to_vec(), b"two".to_vec());
        batch.put(b"b/1".to_vec(), b"one".to_vec());
        batch.put(b"a/1".to_vec(), b"other".to_vec());
        batch.put(b"c".to_vec(), b"x".to_vec());
        kv.write(batch, Durability::Synced).unwrap();
        assert_eq!(kv.get(b"b/1").unwrap(), Some(b"one".to_vec()));
        assert_eq!(kv.get(b"b/3").unwrap(), None);

        let end = prefix_end(b"b/").unwrap();
        let keys: Vec<_> = kv.scan(b"b/", Some(&end), 10).unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![b"b/1".to_vec(), b"b/2".to_vec()]);
        assert_eq!(kv.scan(b"b/", Some(&end), 1).unwrap().len(), 1);
        assert_eq!(kv.scan(b"b/2", None, 10).unwrap().len(), 2, "unbounded scan runs to the end");
        // "b/1" + "one" is 6 bytes: the scan stops once that many are read, never before one pair.
        assert_eq!(kv.scan_bytes(b"b/", Some(&end), 10, 6).unwrap().len(), 1);
        assert_eq!(kv.scan_bytes(b"b/", Some(&end), 10, 7).unwrap().len(), 2);
        assert_eq!(kv.scan_bytes(b"b/", Some(&end), 10, 0).unwrap().len(), 1, "at least one pair");
        // Heads: each value cut where `keep` says, the range, limit and order as a scan's.
        let two = |v: &[u8]| v.len().min(2);
        let heads = kv.scan_heads(b"b/", Some(&end), 10, usize::MAX, &two).unwrap();
        assert_eq!(heads, vec![(b"b/1".to_vec(), b"on".to_vec()), (b"b/2".to_vec(), b"tw".to_vec())]);
        assert_eq!(kv.scan_heads(b"b/", Some(&end), 1, usize::MAX, &two).unwrap().len(), 1);
        assert_eq!(kv.scan_heads(b"b/2", None, 10, usize::MAX, &two).unwrap().len(), 2, "to the end");
        assert_eq!(kv.scan_heads(b"b/", Some(&end), 10, 0, &two).unwrap().len(), 1, "at least one pair");
        // "b/1" + "on" is 5 bytes: the bound counts what is kept (whole values would stop at 1).
        assert_eq!(kv.scan_heads(b"b/", Some(&end), 10, 6, &two).unwrap().len(), 2);
        let whole = kv.scan_heads(b"b/", Some(&end), 10, usize::MAX, &|v: &[u8]| v.len() + 5).unwrap();
        assert_eq!(whole, kv.scan(b"b/", Some(&end), 10).unwrap(), "never past a value's end");
        // Visits: each pair lent whole, in order; the bound counts what `visit` says it took; None
        // ends the scan at that pair.
        let mut lent = Vec::new();
        kv.scan_visit(b"b/", Some(&end), 10, usize::MAX, &mut |k, v| {
            lent.push((k.to_vec(), v.to_vec()));
            Some(v.len())
        })
        .unwrap();
        assert_eq!(lent, kv.scan(b"b/", Some(&end), 10).unwrap());
        let mut visits = 0;
        // "b/1" and one byte taken is 4 bytes: the bound is reached after one pair.
        kv.scan_visit(b"b/", Some(&end), 10, 4, &mut |_, _| {
            visits += 1;
            Some(1)
        })
        .unwrap();
        assert_eq!(visits, 1);
        let mut visits = 0;
        kv.scan_visit(b"b/", Some(&end), 10, 5, &mut |_, _| {
            visits += 1;
            Some(1)
        })
        .unwrap();
        assert_eq!(visits, 2, "the bound counts what was taken, not the whole values");
        let mut visits = 0;
        kv.scan_visit(b"a/", None, 10, usize::MAX, &mut |k, _| {
            visits += 1;
            (k != b"b/1").then_some(0)
        })
        .unwrap();
        assert_eq!(visits, 2, "None ends the scan");
        let mut visits = 0;
        kv.scan_visit(b"b/", Some(b"b/"), 10, usize::MAX, &mut |_, _| {
            visits += 1;
            Some(0)
        })
        .unwrap();
        assert_eq!(visits, 0, "an empty range");

        let mut batch = WriteBatch::new();
        batch.delete(b"b/1".to_vec());
        batch.put(b"b/1".to_vec(), b"again".to_vec());
        batch.delete(b"c".to_vec());
        kv.write(batch, Durability::Buffered).unwrap();
        assert_eq!(kv.get(b"b/1").unwrap(), Some(b"again".to_vec()), "ops apply in order");
        assert_eq!(kv.get(b"c").unwrap(), None);

        let view = kv.snapshot().unwrap();
        let mut batch = WriteBatch::new();
        batch.put(b"b/1".to_vec(), b"later".to_vec());
        batch.put(b"b/9".to_vec(), b"new".to_vec());
        kv.write(batch, Durability::Buffered).unwrap();
        assert_eq!(view.get(b"b/1").unwrap(), Some(b"again".to_vec()), "a snapshot does not see later writes");
        let keys: Vec<_> = view.scan(b"b/", Some(&end), 10).unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![b"b/1".to_vec(), b"b/2".to_vec()]);
        assert_eq!(kv.get(b"b/9").unwrap(), Some(b"new".to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_carries_over_0xff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xff]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }

    #[test]
    fn memory_engine_meets_the_contract() {
        contract::check(&MemoryKv::default());
    }
}
