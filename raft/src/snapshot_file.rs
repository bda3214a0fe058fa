//! Snapshot files: the metadata state at one applied position, written from one consistent view
//! of the store and read back in bounded pieces, so neither building, sending nor installing a
//! snapshot ever holds the whole state in memory.
//!
//! Format: a sequence of (u32 BE key length, key, u32 BE value length, value), keys ascending,
//! every key of the state except the replication layer's own (`r/`). Binary, because the values
//! are already serialised records.

use ignifuge_kv::{Durability, KvError, KvSnapshot, KvStore, WriteBatch, prefix_end};
use ignifuge_meta::keys::REPLICATION_PREFIX;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// Keys read from the store per page while writing a snapshot or clearing the state.
const PAGE_KEYS: usize = 1024;
/// Bytes of pairs written to the store per batch while installing a snapshot.
const INSTALL_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The state's key ranges: everything before and after `r/`.
fn state_ranges() -> [(Vec<u8>, Option<Vec<u8>>); 2] {
    let after = prefix_end(REPLICATION_PREFIX).expect("the prefix is not all 0xff");
    [(Vec::new(), Some(REPLICATION_PREFIX.to_vec())), (after, None)]
}

/// Calls `each` for every state pair of `view`, a page at a time.
fn for_each_state_pair(
    view: &dyn KvSnapshot,
    mut each: impl FnMut(&[u8], &[u8]) -> io::Result<()>,
) -> Result<(), KvError> {
    for (start, end) in state_ranges() {
        let mut from = start;
        loop {
            let page = view.scan(&from, end.as_deref(), PAGE_KEYS)?;
            for (k, v) in &page {
                each(k, v).map_err(|e| KvError::Engine(format!("writing a snapshot: {e}")))?;
            }
            match page.last() {
                Some((last, _)) if page.len() == PAGE_KEYS => {
                    from = last.clone();
                    from.push(0);
                }
                _ => break,
            }
        }
    }
    Ok(())
}

/// Writes the state of `view` to `path` (fsynced) and returns its size and BLAKE3 hash.
pub fn write(view: &dyn KvSnapshot, path: &Path) -> Result<(u64, blake3::Hash), KvError> {
    let io = |e: io::Error| KvError::Engine(format!("snapshot file {}: {e}", path.display()));
    let file = File::create(path).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    for_each_state_pair(view, |k, v| {
        for item in [k, v] {
            let len = (item.len() as u32).to_be_bytes();
            out.write_all(&len)?;
            out.write_all(item)?;
            hasher.update(&len);
            hasher.update(item);
            size += 4 + item.len() as u64;
        }
        Ok(())
    })?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok((size, hasher.finalize()))
}

/// The BLAKE3 of the state of `view`, as `write` would hash it (replicas compare digests).
pub fn digest(view: &dyn KvSnapshot) -> Result<blake3::Hash, KvError> {
    let mut hasher = blake3::Hasher::new();
    for_each_state_pair(view, |k, v| {
        for item in [k, v] {
            hasher.update(&(item.len() as u32).to_be_bytes());
            hasher.update(item);
        }
        Ok(())
    })?;
    Ok(hasher.finalize())
}

/// The BLAKE3 of a snapshot file's contents (as `write` returns it).
pub fn hash_file(path: &Path) -> io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    let mut input = BufReader::with_capacity(1 << 20, File::open(path)?);
    io::copy(&mut input, &mut hasher)?;
    Ok(hasher.finalize())
}

fn read_item(input: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    let mut filled = 0;
    while filled < 4 {
        match input.read(&mut len[filled..])? {
            0 if filled == 0 => return Ok(None),
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated inside a length")),
            n => filled += n,
        }
    }
    let mut item = vec![0u8; u32::from_be_bytes(len) as usize];
    input.read_exact(&mut item)?;
    Ok(Some(item))
}

/// Replaces the state in `kv` with the snapshot in `path`, in bounded batches. Not atomic by
/// itself: the caller marks the install in progress first and clears the mark in `last`, the
/// final batch, so a crash in between is finished by installing the same file again.
pub fn install(kv: &dyn KvStore, path: &Path, last: WriteBatch) -> Result<(), KvError> {
    let io = |e: io::Error| KvError::Engine(format!("snapshot file {}: {e}", path.display()));
    // Clear the old state.
    for (start, end) in state_ranges() {
        loop {
            let page = kv.scan(&start, end.as_deref(), PAGE_KEYS)?;
            if page.is_empty() {
                break;
            }
            let mut batch = WriteBatch::new();
            for (k, _) in page {
                batch.delete(k);
            }
            kv.write(batch, Durability::Buffered)?;
        }
    }
    let mut input = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
    let mut batch = WriteBatch::new();
    let mut batch_bytes = 0;
    while let Some(key) = read_item(&mut input).map_err(io)? {
        let value = read_item(&mut input)
            .map_err(io)?
            .ok_or_else(|| KvError::Engine(format!("snapshot file {}: truncated", path.display())))?;
        if key.starts_with(REPLICATION_PREFIX) {
            return Err(KvError::Engine("a snapshot may not hold replication keys".into()));
        }
        batch_bytes += key.len() + value.len();
        batch.put(key, value);
        if batch_bytes >= INSTALL_BATCH_BYTES {
            kv.write(std::mem::take(&mut batch), Durability::Buffered)?;
            batch_bytes = 0;
        }
    }
    // The old state is gone and the new one is in but for its last batch: a crash here is
    // finished from the file at the next start (`INSTALLING_KEY`).
    if ignifuge_faults::hit("raft.snapshot.install").is_some() {
        return Err(KvError::Engine("fault point: the snapshot install stopped before its last batch".into()));
    }
    batch.ops.extend(last.ops);
    kv.write(batch, Durability::Synced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_kv::MemoryKv;

    fn put(kv: &MemoryKv, pairs: &[(&str, &str)]) {
        let mut batch = WriteBatch::new();
        for (k, v) in pairs {
            batch.put(k.as_bytes().to_vec(), v.as_bytes().to_vec());
        }
        kv.write(batch, Durability::Synced).unwrap();
    }

    #[test]
    fn a_snapshot_round_trips_the_state_and_leaves_replication_keys_alone() {
        let dir = tempfile::tempdir().unwrap();
        let source = MemoryKv::default();
        let many: Vec<(String, String)> = (0..3000).map(|i| (format!("o/b/{i:05}"), format!("v{i}"))).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        put(&source, &many);
        put(&source, &[("c/tenant/t", "{}"), ("r/log/1", "entry"), ("z", "last")]);
        let view = source.snapshot().unwrap();
        put(&source, &[("o/b/late", "not in the snapshot")]);
        let path = dir.path().join("snap");
        let (_, hash) = write(view.as_ref(), &path).unwrap();
        assert_eq!(hash, digest(view.as_ref()).unwrap());

        let target = MemoryKv::default();
        put(&target, &[("o/stale", "gone after install"), ("r/vote", "kept")]);
        let mut last = WriteBatch::new();
        last.put(b"r/applied".to_vec(), b"7".to_vec());
        install(&target, &path, last).unwrap();
        assert_eq!(target.get(b"o/stale").unwrap(), None);
        assert_eq!(target.get(b"o/b/late").unwrap(), None);
        assert_eq!(target.get(b"o/b/02999").unwrap(), Some(b"v2999".to_vec()));
        assert_eq!(target.get(b"z").unwrap(), Some(b"last".to_vec()));
        assert_eq!(target.get(b"r/vote").unwrap(), Some(b"kept".to_vec()));
        assert_eq!(target.get(b"r/log/1").unwrap(), None, "the source's log is not state");
        assert_eq!(target.get(b"r/applied").unwrap(), Some(b"7".to_vec()));
        assert_eq!(digest(target.snapshot().unwrap().as_ref()).unwrap(), hash);
    }

    #[test]
    fn a_truncated_snapshot_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let source = MemoryKv::default();
        put(&source, &[("a", "1"), ("b", "2")]);
        let path = dir.path().join("snap");
        write(source.snapshot().unwrap().as_ref(), &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(install(&MemoryKv::default(), &path, WriteBatch::new()).is_err());
        // Cut inside the second pair's length prefix (the first pair is 4+1+4+1 bytes).
        std::fs::write(&path, &bytes[..12]).unwrap();
        assert!(install(&MemoryKv::default(), &path, WriteBatch::new()).is_err(), "a cut length is not a clean end");
    }
}
