use crate::{Durability, KvError, KvOp, KvPair, KvStore, WriteBatch};
use std::path::Path;

/// RocksDB engine. Writes marked `Synced` sync the WAL before returning.
pub struct RocksKv {
    db: rocksdb::DB,
}

fn engine(e: rocksdb::Error) -> KvError {
    KvError::Engine(e.into_string())
}

impl RocksKv {
    pub fn open(path: &Path) -> Result<Self, KvError> {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Small daemons share 2 cores with the data path: keep background work modest.
        options.increase_parallelism(2);
        options.set_max_background_jobs(2);
        let db = rocksdb::DB::open(&options, path).map_err(engine)?;
        Ok(Self { db })
    }
}

impl KvStore for RocksKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.db.get(key).map_err(engine)
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), KvError> {
        let mut rb = rocksdb::WriteBatch::default();
        for op in batch.ops {
            match op {
                KvOp::Put(k, v) => rb.put(k, v),
                KvOp::Delete(k) => rb.delete(k),
            }
        }
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(durability == Durability::Synced);
        self.db.write_opt(rb, &options).map_err(engine)
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<KvPair>, KvError> {
        let mut read = rocksdb::ReadOptions::default();
        if let Some(end) = end {
            read.set_iterate_upper_bound(end.to_vec());
        }
        let iter = self.db.iterator_opt(rocksdb::IteratorMode::From(start, rocksdb::Direction::Forward), read);
        let mut out = Vec::new();
        for item in iter.take(limit) {
            let (k, v) = item.map_err(engine)?;
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    fn last(&self, start: &[u8], end: &[u8]) -> Result<Option<KvPair>, KvError> {
        let mut read = rocksdb::ReadOptions::default();
        read.set_iterate_lower_bound(start.to_vec());
        read.set_iterate_upper_bound(end.to_vec());
        match self.db.iterator_opt(rocksdb::IteratorMode::End, read).next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item.map_err(engine)?;
                Ok(Some((k.into_vec(), v.into_vec())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocksdb_engine_meets_the_contract_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let kv = RocksKv::open(dir.path()).unwrap();
            crate::contract::check(&kv);
        }
        let kv = RocksKv::open(dir.path()).unwrap();
        assert_eq!(kv.get(b"b/1").unwrap(), Some(b"again".to_vec()));
    }
}
