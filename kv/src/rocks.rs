use crate::{Durability, KvError, KvOp, KvPair, KvSnapshot, KvStore, WriteBatch};
use std::path::Path;
use std::sync::Arc;

/// RocksDB engine. Writes marked `Synced` sync the WAL before returning.
pub struct RocksKv {
    db: Arc<rocksdb::DB>,
}

fn engine(e: rocksdb::Error) -> KvError {
    KvError::Engine(e.into_string())
}

impl RocksKv {
    pub fn open(path: &Path) -> Result<Self, KvError> {
        Self::open_with(path, true)
    }

    /// As `open`, for a store that must exist already (a tool working on a node's data): a
    /// path without one is an error, not a new empty store (RocksDB may still leave its lock
    /// and info log files there).
    pub fn open_existing(path: &Path) -> Result<Self, KvError> {
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, create: bool) -> Result<Self, KvError> {
        let mut options = options();
        options.create_if_missing(create);
        // Small daemons share 2 cores with the data path: keep background work modest.
        options.increase_parallelism(2);
        options.set_max_background_jobs(2);
        let db = rocksdb::DB::open(&options, path).map_err(engine)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// One of RocksDB's integer properties (`rocksdb.estimate-table-readers-mem`, ...), if it has it.
    pub fn int_property(&self, name: &str) -> Result<Option<u64>, KvError> {
        self.db.property_int_value(name).map_err(engine)
    }

    /// Bulk loading, for benchmarks that need a store of millions of keys without writing them
    /// one batch at a time: writes `pairs` (keys strictly ascending) into a table file at `path`,
    /// compressed as the store's own tables are, and returns its size in bytes.
    pub fn write_table_file(path: &Path, pairs: impl IntoIterator<Item = KvPair>) -> Result<u64, KvError> {
        let options = options();
        let mut writer = rocksdb::SstFileWriter::create(&options);
        writer.open(path).map_err(engine)?;
        for (key, value) in pairs {
            // RocksDB refuses a key that is not after the one before.
            writer.put(key, value).map_err(engine)?;
        }
        writer.finish().map_err(engine)?;
        Ok(writer.file_size())
    }

    /// Adds table files written by `write_table_file` to the store, atomically: copied in (the
    /// files stay where they are, so one set can load several stores). A key already in the
    /// store is replaced.
    pub fn ingest_table_files(&self, files: &[std::path::PathBuf]) -> Result<(), KvError> {
        let mut options = rocksdb::IngestExternalFileOptions::default();
        options.set_move_files(false);
        self.db.ingest_external_file_opts(&options, files.to_vec()).map_err(engine)
    }
}

/// What every store and table file is written with.
fn options() -> rocksdb::Options {
    let mut options = rocksdb::Options::default();
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options
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

    fn scan_bytes(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        bytes_max: usize,
    ) -> Result<Vec<KvPair>, KvError> {
        collect(
            self.db.iterator_opt(rocksdb::IteratorMode::From(start, rocksdb::Direction::Forward), bounded(end)),
            limit,
            bytes_max,
        )
    }

    fn scan_visit(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        bytes_max: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> Option<usize>,
    ) -> Result<(), KvError> {
        // The raw iterator lends each value in place; the plain one copies it whole first.
        let mut iter = self.db.raw_iterator_opt(bounded(end));
        iter.seek(start);
        let (mut pairs, mut bytes) = (0usize, 0usize);
        while pairs < limit && !(bytes >= bytes_max && pairs > 0) {
            let (Some(key), Some(value)) = (iter.key(), iter.value()) else { break };
            let Some(taken) = visit(key, value) else { break };
            bytes = bytes.saturating_add(key.len() + taken.min(value.len()));
            pairs += 1;
            iter.next();
        }
        iter.status().map_err(engine)
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

    fn snapshot(&self) -> Result<Box<dyn KvSnapshot>, KvError> {
        let snapshot = self.db.snapshot();
        // SAFETY: the snapshot borrows the DB; `RocksSnapshot` owns an `Arc` of that same DB and
        // declares `snapshot` before `_db`, so the snapshot is released before the last
        // reference to the DB can be dropped. The 'static lifetime never escapes the struct.
        let snapshot: rocksdb::Snapshot<'static> = unsafe { std::mem::transmute(snapshot) };
        Ok(Box::new(RocksSnapshot { snapshot, _db: self.db.clone() }))
    }
}

fn bounded(end: Option<&[u8]>) -> rocksdb::ReadOptions {
    let mut read = rocksdb::ReadOptions::default();
    if let Some(end) = end {
        read.set_iterate_upper_bound(end.to_vec());
    }
    read
}

fn collect<'a, D: rocksdb::DBAccess>(
    iter: rocksdb::DBIteratorWithThreadMode<'a, D>,
    limit: usize,
    bytes_max: usize,
) -> Result<Vec<KvPair>, KvError> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for item in iter.take(limit) {
        if bytes >= bytes_max && !out.is_empty() {
            break;
        }
        let (k, v) = item.map_err(engine)?;
        bytes = bytes.saturating_add(k.len() + v.len());
        out.push((k.into_vec(), v.into_vec()));
    }
    Ok(out)
}

/// A RocksDB snapshot: reads see the DB as it was when it was taken. Field order matters (see
/// `RocksKv::snapshot`).
struct RocksSnapshot {
    snapshot: rocksdb::Snapshot<'static>,
    _db: Arc<rocksdb::DB>,
}

impl KvSnapshot for RocksSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.snapshot.get(key).map_err(engine)
    }

    fn scan(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<KvPair>, KvError> {
        let mode = rocksdb::IteratorMode::From(start, rocksdb::Direction::Forward);
        collect(self.snapshot.iterator_opt(mode, bounded(end)), limit, usize::MAX)
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
        assert_eq!(kv.get(b"b/1").unwrap(), Some(b"later".to_vec()));
    }

    #[test]
    fn table_files_load_two_stores_and_refuse_keys_out_of_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("one.sst");
        let pairs = (0..1000u32).map(|i| (format!("o/{i:05}").into_bytes(), i.to_be_bytes().to_vec()));
        assert!(RocksKv::write_table_file(&file, pairs).unwrap() > 0);
        for name in ["a", "b"] {
            let kv = RocksKv::open(&dir.path().join(name)).unwrap();
            kv.write(WriteBatch { ops: vec![KvOp::Put(b"o/00007".to_vec(), b"old".to_vec())] }, Durability::Synced)
                .unwrap();
            kv.ingest_table_files(std::slice::from_ref(&file)).unwrap();
            let all = kv.scan(b"o/", None, 2000).unwrap();
            assert_eq!(all.len(), 1000);
            assert_eq!(all[7], (b"o/00007".to_vec(), 7u32.to_be_bytes().to_vec()), "the loaded value wins");
            assert_eq!(all[999].0, b"o/00999");
        }
        assert!(file.exists(), "the file stays for the next store");
        let kv = RocksKv::open_existing(&dir.path().join("a")).unwrap();
        assert!(kv.int_property("rocksdb.estimate-table-readers-mem").unwrap().is_some());
        assert!(RocksKv::open_existing(&dir.path().join("none")).is_err(), "no store there");
        let unordered = [(b"b".to_vec(), vec![]), (b"a".to_vec(), vec![])];
        assert!(RocksKv::write_table_file(&dir.path().join("two.sst"), unordered).is_err());
    }
}
