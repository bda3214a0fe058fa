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

    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<KvPair>, KvError> {
        Ok(scan_map(&self.map.read().expect("kv lock poisoned"), start, end, limit))
    }

    fn last(&self, start: &[u8], end: &[u8]) -> Result<Option<KvPair>, KvError> {
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

fn scan_map(map: &BTreeMap<Vec<u8>, Vec<u8>>, start: &[u8], end: Option<&[u8]>, limit: usize) -> Vec<KvPair> {
    let upper = match end {
        Some(e) => Bound::Excluded(e.to_vec()),
        None => Bound::Unbounded,
    };
    map.range((Bound::Included(start.to_vec()), upper)).take(limit).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A copy of the map (tests and simulations only hold small states).
struct MemorySnapshot(BTreeMap<Vec<u8>, Vec<u8>>);

impl KvSnapshot for MemorySnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.0.get(key).cloned())
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<KvPair>, KvError> {
        Ok(scan_map(&self.0, start, end, limit))
    }
}
