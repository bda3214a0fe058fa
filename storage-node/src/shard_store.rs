//! Shards on local disk.
//!
//! Layout: `<root>/shards/<first two hex digits of blob>/<blob>/<stripe>.<shard>`. Each file is
//! the 32-byte BLAKE3 hash of the shard followed by the shard's bytes, so the store can verify
//! (and scrub) a shard with nothing but the file, and the index can be rebuilt from the files.
//! Writes go to a temporary file, are fdatasynced, renamed into place, and the directory is
//! fsynced, so a crash leaves either no shard or a whole one.

use ignifuge_kv::{Durability, KvStore, WriteBatch, prefix_end};
use ignifuge_types::{BlobId, ShardId};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const HASH_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("malformed shard id")]
    BadId,
    #[error("shard not found")]
    NotFound,
    #[error("shard failed its BLAKE3 check")]
    Corrupt,
    #[error("shard body does not match its announced hash")]
    HashMismatch,
    #[error("disk error: {0}")]
    Io(#[from] io::Error),
    #[error("index error: {0}")]
    Index(#[from] ignifuge_kv::KvError),
}

pub struct ShardStore {
    root: PathBuf,
    index: Arc<dyn KvStore>,
}

fn index_key(id: &ShardId) -> Vec<u8> {
    format!("s/{}/{}.{}", id.blob, id.stripe, id.shard).into_bytes()
}

fn blob_index_prefix(blob: &BlobId) -> Vec<u8> {
    format!("s/{blob}/").into_bytes()
}

fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

impl ShardStore {
    pub fn open(root: &Path, index: Arc<dyn KvStore>) -> Result<Self, StoreError> {
        fs::create_dir_all(root.join("shards"))?;
        Ok(Self { root: root.to_path_buf(), index })
    }

    fn blob_dir(&self, blob: &BlobId) -> Result<PathBuf, StoreError> {
        if !blob.is_well_formed() || blob.0.len() < 2 {
            return Err(StoreError::BadId);
        }
        Ok(self.root.join("shards").join(&blob.0[..2]).join(&blob.0))
    }

    fn shard_path(&self, id: &ShardId) -> Result<PathBuf, StoreError> {
        Ok(self.blob_dir(&id.blob)?.join(format!("{}.{}", id.stripe, id.shard)))
    }

    /// Stores a shard durably after checking it against `hash`. Idempotent.
    pub fn put(&self, id: &ShardId, data: &[u8], hash: &blake3::Hash) -> Result<(), StoreError> {
        if blake3::hash(data) != *hash {
            return Err(StoreError::HashMismatch);
        }
        let path = self.shard_path(id)?;
        let dir = path.parent().expect("shard paths have a parent");
        let created = !dir.exists();
        fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{}.{}.tmp{}", id.stripe, id.shard, rand_suffix()));
        {
            let mut file = File::create(&tmp)?;
            file.write_all(hash.as_bytes())?;
            file.write_all(data)?;
            file.sync_data()?;
        }
        fs::rename(&tmp, &path)?;
        sync_dir(dir)?;
        if created {
            sync_dir(dir.parent().expect("blob dirs have a parent"))?;
        }
        let mut batch = WriteBatch::new();
        batch.put(index_key(id), format!("{}:{}", hash.to_hex(), data.len()));
        // The index is rebuildable from the files, so it need not be synced on every shard.
        self.index.write(batch, Durability::Buffered)?;
        Ok(())
    }

    /// Reads a shard and checks it against the hash stored with it.
    pub fn get(&self, id: &ShardId) -> Result<(Vec<u8>, blake3::Hash), StoreError> {
        let path = self.shard_path(id)?;
        let mut bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::NotFound),
            Err(e) => return Err(e.into()),
        };
        if bytes.len() < HASH_BYTES {
            return Err(StoreError::Corrupt);
        }
        let mut stored = [0u8; HASH_BYTES];
        stored.copy_from_slice(&bytes[..HASH_BYTES]);
        let stored = blake3::Hash::from_bytes(stored);
        let data = bytes.split_off(HASH_BYTES);
        if blake3::hash(&data) != stored {
            return Err(StoreError::Corrupt);
        }
        Ok((data, stored))
    }

    /// Removes every shard of a blob (garbage collection).
    pub fn delete_blob(&self, blob: &BlobId) -> Result<(), StoreError> {
        let dir = self.blob_dir(blob)?;
        match fs::remove_dir_all(&dir) {
            Ok(()) => sync_dir(dir.parent().expect("blob dirs have a parent"))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let prefix = blob_index_prefix(blob);
        let end = prefix_end(&prefix);
        let mut batch = WriteBatch::new();
        for (key, _) in self.index.scan(&prefix, end.as_deref(), usize::MAX)? {
            batch.delete(key);
        }
        self.index.write(batch, Durability::Buffered)?;
        Ok(())
    }

    /// Number of shards in the index (for status and tests).
    pub fn indexed_shards(&self) -> Result<usize, StoreError> {
        Ok(self.index.scan(b"s/", prefix_end(b"s/").as_deref(), usize::MAX)?.len())
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_kv::MemoryKv;
    use ignifuge_types::{ShardIndex, StripeIndex};

    fn store() -> (tempfile::TempDir, ShardStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardStore::open(dir.path(), Arc::new(MemoryKv::default())).unwrap();
        (dir, store)
    }

    fn id(blob: &str, shard: u32) -> ShardId {
        ShardId { blob: BlobId::new(blob), stripe: StripeIndex(0), shard: ShardIndex(shard) }
    }

    #[test]
    fn a_stored_shard_reads_back_and_a_flipped_byte_is_caught() {
        let (dir, store) = store();
        let data = b"shard bytes".repeat(100);
        let hash = blake3::hash(&data);
        store.put(&id("ab12", 3), &data, &hash).unwrap();
        assert_eq!(store.get(&id("ab12", 3)).unwrap().0, data);
        assert_eq!(store.indexed_shards().unwrap(), 1);

        let path = dir.path().join("shards/ab/ab12/0.3");
        let mut raw = fs::read(&path).unwrap();
        raw[HASH_BYTES + 10] ^= 0x40;
        fs::write(&path, raw).unwrap();
        assert!(matches!(store.get(&id("ab12", 3)), Err(StoreError::Corrupt)));
    }

    #[test]
    fn shards_whose_body_does_not_match_the_hash_are_refused() {
        let (_dir, store) = store();
        let hash = blake3::hash(b"one");
        assert!(matches!(store.put(&id("ab12", 0), b"two", &hash), Err(StoreError::HashMismatch)));
        assert!(matches!(store.get(&id("ab12", 0)), Err(StoreError::NotFound)));
    }

    #[test]
    fn ids_that_could_escape_the_store_are_refused() {
        let (_dir, store) = store();
        let hash = blake3::hash(b"x");
        assert!(matches!(store.put(&id("../../etc", 0), b"x", &hash), Err(StoreError::BadId)));
    }

    #[test]
    fn deleting_a_blob_removes_all_its_shards() {
        let (_dir, store) = store();
        for shard in 0..3 {
            let data = vec![shard as u8; 10];
            store.put(&id("cd34", shard), &data, &blake3::hash(&data)).unwrap();
        }
        store.delete_blob(&BlobId::new("cd34")).unwrap();
        assert_eq!(store.indexed_shards().unwrap(), 0);
        assert!(matches!(store.get(&id("cd34", 1)), Err(StoreError::NotFound)));
    }
}
