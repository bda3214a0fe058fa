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
        Ok(scan_map(&self.map.read().expect("kv lock poisoned"), start, end, limit, bytes_max))
    }

    fn scan_visit(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        bytes_max: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Option<usize>,
    ) -> Result<(), KvError> {
        visit_map(&self.map.read().expect("kv lock poisoned"), start, end, limit, bytes_max, visit);
        Ok(())
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
) -> Vec<KvPair> {
    let mut out = Vec::new();
    visit_map(map, start, end, limit, bytes_max, &mut |key, value| {
        out.push((key.to_vec(), value.to_vec()));
        Some(value.len())
    });
    out
}

/// `KvStore::scan_visit` over `map`.
fn visit_map(
    map: &BTreeMap<Vec<u8>, Vec<u8>>,
    start: &[u8],
    end: Option<&[u8]>,
    limit: usize,
    bytes_max: usize,
    visit: &mut dyn FnMut(&[u8], &[u8]) -> Option<usize>,
) {
    if end.is_some_and(|end| end <= start) {
        return; // an empty range, as RocksDB reads it (`BTreeMap::range` would panic)
    }
    let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
    let (mut pairs, mut bytes) = (0usize, 0usize);
    for (key, value) in map.range::<[u8], _>((Bound::Included(start), upper)) {
        if pairs == limit || (bytes >= bytes_max && pairs > 0) {
            break;
        }
        let Some(taken) = visit(key, value) else { break };
        bytes = bytes.saturating_add(key.len() + taken.min(value.len()));
        pairs += 1;
    }
}

/// A copy of the map (tests and simulations only hold small states).
struct MemorySnapshot(BTreeMap<Vec<u8>, Vec<u8>>);

impl KvSnapshot for MemorySnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.0.get(key).cloned())
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<KvPair>, KvError> {
        Ok(scan_map(&self.0, start, end, limit, usize::MAX))
    }
}
