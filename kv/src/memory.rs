use crate::{Durability, KvError, KvOp, KvPair, KvSnapshot, KvStore, WriteBatch};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::RwLock;

/// In-memory engine: a `BTreeMap` behind a lock. For unit tests and simulations only.
#[derive(Default)]
pub struct MemoryKv {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl KvStore for MemoryKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.map.read().expect("kv lock poisoned").get(key).cloned())
    }

    fn write(&self, batch: WriteBatch, _durability: Durability) -> Result<(), KvError> {
        let mut map = self.map.write().expect("kv lock poisoned");
        for op in batch.ops {
            match op {
                KvOp::Put(k, v) => {
                    map.insert(k, v);
                }
                KvOp::Delete(k) => {
                    map.remove(&k);
                }
            }
        }
        Ok(())
    }

    fn scan_bytes(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        bytes_max: usize,
    ) -> Result<Vec<KvPair>, KvError> {
        Ok(scan_map(&self.map.read().expect("kv lock poisoned"), start, end, limit, bytes_max, &|v: &[u8]| v.len()))
    }

    fn scan_heads(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        bytes_max: usize,
        keep: &dyn Fn(&[u8]) -> usize,
    ) -> Result<Vec<KvPair>, KvError> {
        Ok(scan_map(&self.map.read().expect("kv lock poisoned"), start, end, limit, bytes_max, keep))
    }

    fn last(&self, start: &[u8], end: &[u8]) -> Result<Option<KvPair>, KvError> {
        if end <= start {
            return Ok(None);
        }
        let map = self.map.read().expect("kv lock poisoned");
        Ok(map
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .next_back()
            .map(|(k, v)| (k.clone(), v.clone())))
    }

    fn snapshot(&self) -> Result<Box<dyn KvSnapshot>, KvError> {
        Ok(Box::new(MemorySnapshot(self.map.read().expect("kv lock poisoned").clone())))
    }
}

fn scan_map(
    map: &BTreeMap<Vec<u8>, Vec<u8>>,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
    bytes_max: usize,
    keep: &dyn Fn(&[u8]) -> usize,
) -> Vec<KvPair> {
    let upper = match end {
        Some(e) => Bound::Excluded(e.to_vec()),
        None => Bound::Unbounded,
    };
    if end.is_some_and(|end| end <= start) {
        return Vec::new(); // an empty range, as RocksDB reads it (`BTreeMap::range` would panic)
    }
    let mut bytes = 0usize;
    map.range((Bound::Included(start.to_vec()), upper))
        .take(limit)
        .map(|(k, v)| (k, &v[..keep(v).min(v.len())]))
        .take_while(|(k, v)| {
            let more = bytes < bytes_max || bytes == 0;
            bytes = bytes.saturating_add(k.len() + v.len()).max(1);
            more
        })
        .map(|(k, v)| (k.clone(), v.to_vec()))
        .collect()
}

/// A copy of the map (tests and simulations only hold small states).
struct MemorySnapshot(BTreeMap<Vec<u8>, Vec<u8>>);

impl KvSnapshot for MemorySnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.0.get(key).cloned())
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<KvPair>, KvError> {
        Ok(scan_map(&self.0, start, end, limit, usize::MAX, &|v: &[u8]| v.len()))
    }
}
