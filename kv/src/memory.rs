use crate::{Durability, KvError, KvOp, KvPair, KvStore, WriteBatch};
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
        let map = self.map.read().expect("kv lock poisoned");
        let upper = match end {
            Some(e) => Bound::Excluded(e.to_vec()),
            None => Bound::Unbounded,
        };
        Ok(map
            .range((Bound::Included(start.to_vec()), upper))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn last(&self, start: &[u8], end: &[u8]) -> Result<Option<KvPair>, KvError> {
        let map = self.map.read().expect("kv lock poisoned");
        Ok(map
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            .next_back()
            .map(|(k, v)| (k.clone(), v.clone())))
    }
}
