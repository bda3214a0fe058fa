//! Shards on local disk.
//!
//! Layout: `<root>/shards/<first two hex digits of blob>/<blob>/<stripe>.<shard>`. Each file is
//! the 32-byte BLAKE3 hash of the shard followed by the shard's bytes, so the store can verify
//! (and scrub) a shard with nothing but the file, and the index can be rebuilt from the files.
//! Writes go to a temporary file (parity shards of 128 KiB or more with O_DIRECT, straight from
//! the buffer the network filled: `shard_buffer.rs`) and are renamed into place, then made
//! durable (file, rename and new directories) before `put_buffer` returns: by one `syncfs`
//! shared with every concurrent writer (`group_sync.rs`), or by `fdatasync` of the file and
//! `fsync` of its directories. A crash leaves either no shard or a whole one.

use bytes::Bytes;
use ignifuge_kv::{Durability, KvStore, WriteBatch, prefix_end};
use ignifuge_rpc::{HeldBlob, HeldShard, SetAsideReexamined, ShardCheck};
use ignifuge_types::time::now_ms;
use ignifuge_types::{BlobId, ShardId, ShardIndex, StripeIndex};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::group_sync::{GroupSync, SyncMode};
use crate::shard_buffer::{AroundCache, Caching, HASH_BYTES, ShardBuffer, write_new_file};

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
    #[error("the shard file was written again since it was surveyed")]
    Changed,
    /// Reading the shard's file failed (EIO, a bad sector): the shard is set aside like a corrupt one.
    #[error("shard file unreadable: {0}")]
    Unreadable(io::Error),
    #[error("disk error: {0}")]
    Io(#[from] io::Error),
    #[error("index error: {0}")]
    Index(#[from] ignifuge_kv::KvError),
}

pub struct ShardStore {
    root: PathBuf,
    index: Arc<dyn KvStore>,
    /// Some: shard writes share `syncfs` rounds (`SyncMode::Group`); None: each syncs its own.
    group_sync: Option<GroupSync>,
    /// Corrupt shards moved to quarantine since the process started.
    quarantined: std::sync::atomic::AtomicU64,
    /// Shards whose file could not be read since the process started.
    unreadable: std::sync::atomic::AtomicU64,
    /// Whether the index may hold `u/` marks: false on nearly every node, which then never
    /// reads the index for them on a write or an inventory.
    may_have_marks: std::sync::atomic::AtomicBool,
    /// Shards set aside when the disk refused both their move to quarantine and their mark: left
    /// out of the inventory for the life of the process (a restart reads them again, and sets
    /// them aside again if they still fail). Empty on nearly every node.
    /// Each with the generation of its entry (a re-examination removes only the entry it saw).
    unrecorded: std::sync::Mutex<Unrecorded>,
    /// Set-aside copies back in service since the process started (`reexamine_set_aside`).
    restored_total: std::sync::atomic::AtomicU64,
    /// Shards renamed into place by a write that has not yet synced and indexed them: such a
    /// copy may still be taken back, so it makes no set-aside copy redundant.
    /// (How many writes of each id are at that point: a retried write may overlap the first.)
    placing: std::sync::Mutex<std::collections::HashMap<ShardId, usize>>,
    /// When the last shard was set aside, corrupt or unreadable (ms since the epoch; 0: never).
    last_quarantine_ms: std::sync::atomic::AtomicI64,
    /// Held while a shard file is renamed into place and while a conditional delete checks and
    /// removes one, so a delete can never remove a copy written after it checked.
    replace: std::sync::Mutex<()>,
    /// Whether large parity shards are written with O_DIRECT (`shard_buffer.rs`); turned off
    /// for good the first time the filesystem refuses it.
    direct_writes: std::sync::atomic::AtomicBool,
    /// Which large shards go around the page cache: parity only, or all.
    around_cache: AroundCache,
    /// Blobs of which the quarantine may hold a copy: those found there at start, and every one
    /// moved there since (never forgotten in the process: an over-approximation, which keeps an
    /// empty blob directory, is the safe side). None when the quarantine could not be listed at
    /// start: any blob may have a copy there. Changed under `replace`, as the quarantine is.
    quarantined_blobs: std::sync::Mutex<Option<std::collections::HashSet<BlobId>>>,
}

/// Empty blob directories an inventory page removes at most (`ShardStore::list_blobs`); those
/// past it are listed as they are, and removed by a later page.
const EMPTY_DIRS_REMOVED_PER_PAGE: usize = 256;

/// Age past which a temporary file in a blob directory is taken for one a crash left
/// (`ShardStore::reclaim_temporaries`).
pub const TEMPORARY_ABANDONED_MS: i64 = 60 * 60 * 1000;

/// What a blob's directory holds (`ShardStore::blob_files`).
#[derive(Default)]
struct BlobFiles {
    /// Finished shard files, by shard id, each with whether it is marked unreadable.
    shards: Vec<(HeldShard, bool)>,
    /// Temporary files: path, modification time and age (ms).
    temporaries: Vec<(PathBuf, i64, i64)>,
}

fn index_key(id: &ShardId) -> Vec<u8> {
    format!("s/{}/{}.{}", id.blob, id.stripe, id.shard).into_bytes()
}

fn blob_index_prefix(blob: &BlobId) -> Vec<u8> {
    format!("s/{blob}/").into_bytes()
}

/// Marks a shard whose file could not be read nor moved to quarantine: the inventory leaves it
/// out (so repair rebuilds it elsewhere) until the shard is written again.
fn unreadable_key(id: &ShardId) -> Vec<u8> {
    format!("u/{}/{}.{}", id.blob, id.stripe, id.shard).into_bytes()
}

fn unreadable_prefix(blob: &BlobId) -> Vec<u8> {
    format!("u/{blob}/").into_bytes()
}

fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Makes a file's removal from blob directory `dir` durable. The directory may be gone already
/// (another removal emptied it and removed it, `ShardStore::remove_blob_dir_if_empty`, which
/// does not sync): then its parent is synced, which makes the directory's removal durable, and
/// with it the file's on a journalled filesystem. Were a crash to bring a removed copy back, it
/// would be a stray (the same bytes, never rewritten under its id), which the repair's sweep
/// removes again.
fn sync_removal(dir: &Path) -> io::Result<()> {
    let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    match sync_dir(dir) {
        Err(e) if gone(&e) => match sync_dir(dir.parent().expect("blob dirs have a parent")) {
            Err(e) if gone(&e) => Ok(()),
            other => other,
        },
        other => other,
    }
}

/// Creates a file in blob directory `dir` with `create`, making the directory first. An empty
/// blob directory may be removed by another thread between the two
/// (`ShardStore::remove_blob_dir_if_empty`): the directory is made again and the file created
/// again, a few times at most. (Once the file exists the directory is not empty, and stays.)
fn in_blob_dir<T>(dir: &Path, mut create: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    const ATTEMPTS: usize = 4;
    for _ in 1..ATTEMPTS {
        fs::create_dir_all(dir)?;
        match create() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            other => return other,
        }
    }
    fs::create_dir_all(dir)?;
    create()
}

/// What `ShardStore::delete_blobs` did.
#[derive(Debug, Default)]
pub struct DeletedBlobs {
    /// Blobs that had a directory here and have none now.
    pub deleted: usize,
    /// Blobs that could not be removed, with why.
    pub failed: Vec<(BlobId, StoreError)>,
}

impl ShardStore {
    pub fn open(root: &Path, index: Arc<dyn KvStore>) -> Result<Self, StoreError> {
        Self::open_with(root, index, SyncMode::Group)
    }

    pub fn open_with(root: &Path, index: Arc<dyn KvStore>, mode: SyncMode) -> Result<Self, StoreError> {
        fs::create_dir_all(root.join("shards"))?;
        let group_sync = match mode.for_this_kernel() {
            SyncMode::Group => Some(GroupSync::new(&root.join("shards"))?),
            SyncMode::PerFile => None,
        };
        let marked = !index.scan(b"u/", prefix_end(b"u/").as_deref(), 1)?.is_empty();
        let quarantined_blobs = match sorted_names(&root.join("quarantine")) {
            Ok(names) => Some(names.iter().filter_map(|n| parse_quarantine_name(n)).map(|id| id.blob).collect()),
            Err(e) => {
                tracing::warn!(error = %e, "could not list the quarantine; empty blob directories are kept");
                None
            }
        };
        Ok(Self {
            root: root.to_path_buf(),
            index,
            group_sync,
            quarantined: Default::default(),
            unreadable: Default::default(),
            may_have_marks: std::sync::atomic::AtomicBool::new(marked),
            last_quarantine_ms: Default::default(),
            unrecorded: Default::default(),
            restored_total: Default::default(),
            placing: Default::default(),
            replace: Default::default(),
            direct_writes: std::sync::atomic::AtomicBool::new(true),
            around_cache: AroundCache::default(),
            quarantined_blobs: std::sync::Mutex::new(quarantined_blobs),
        })
    }

    /// The store, writing `around` large shards around the page cache (default: parity only).
    pub fn with_around_cache(mut self, around: AroundCache) -> Self {
        self.around_cache = around;
        self
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

    /// Stores a shard durably, through the page cache, after checking it against `hash`.
    /// Idempotent. (A copy of `data` is made: the server receives shards into a `ShardBuffer`
    /// and calls `put_buffer`.)
    pub fn put(&self, id: &ShardId, data: &[u8], hash: &blake3::Hash) -> Result<(), StoreError> {
        let buffer = ShardBuffer::from_slice(data).map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, e))?;
        self.put_buffer(id, buffer, hash, Caching::Cached)
    }

    /// Stores the shard in `buffer` durably after checking it against `hash`, kept as `caching`
    /// says (or around the page cache whatever it says, with `AroundCache::All`). Idempotent.
    pub fn put_buffer(
        &self,
        id: &ShardId,
        buffer: ShardBuffer,
        hash: &blake3::Hash,
        caching: Caching,
    ) -> Result<(), StoreError> {
        if blake3::hash(buffer.data()) != *hash {
            return Err(StoreError::HashMismatch);
        }
        let shard = buffer.seal(hash);
        // Before anything is written: a failed round from here on may have been handed our error.
        let start = self.group_sync.as_ref().map(GroupSync::begin);
        let path = self.shard_path(id)?;
        let dir = path.parent().expect("shard paths have a parent");
        let prefix_dir = dir.parent().expect("blob dirs have a parent");
        if ignifuge_faults::hit("node.shard.write-error").is_some() {
            return Err(StoreError::Io(io::Error::other("fault point: the disk failed the write")));
        }
        let tmp = dir.join(format!(".{}.{}.tmp{}", id.stripe, id.shard, rand_suffix()));
        let written =
            in_blob_dir(dir, || write_new_file(&tmp, &shard, self.around_cache.caching(caching), &self.direct_writes))
                .and_then(|file| if self.group_sync.is_none() { file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp); // a part of a shard, never renamed into place
            return Err(e.into());
        }
        // Which file is put in place (rename keeps its inode and time): the one to take back if it
        // cannot be made durable, unless it replaced a copy (a retried write: that copy may have
        // been durable, and the same bytes are there either way).
        let mut placed = fs::metadata(&tmp).ok().map(|m| file_identity(&m));
        let (_placing, replaced_records) = {
            let _replace = self.replace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if fs::symlink_metadata(&path).is_ok() {
                placed = None;
            }
            // What set aside the copy this one replaces, if anything: let go of once this one is
            // durable. A record written after the rename is of this copy, and stays.
            let records = match self.set_aside_records(id) {
                Ok(records) => records,
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(e);
                }
            };
            if let Err(e) = fs::rename(&tmp, &path) {
                let _ = fs::remove_file(&tmp); // never in place: nothing to keep
                return Err(e.into());
            }
            (Placing::enter(&self.placing, id), records)
        };
        if ignifuge_faults::hit("node.shard.before-sync").is_some() {
            return Err(StoreError::Io(io::Error::other("fault point: the shard was not synced")));
        }
        let synced = match (&self.group_sync, start) {
            (Some(group), Some(start)) => group.sync(start),
            // Per-file syncing syncs the blob and prefix directories too, whoever created them: a
            // writer that found them made by another may not wait for that one's sync.
            _ => sync_dir(dir)
                .and_then(|()| sync_dir(prefix_dir))
                .and_then(|()| sync_dir(prefix_dir.parent().expect("prefix dirs have a parent"))),
        };
        let synced = synced.and_then(|()| match ignifuge_faults::hit("node.shard.sync-error") {
            Some(_) => Err(io::Error::other("fault point: the disk failed the sync")),
            None => Ok(()),
        });
        if let Err(e) = synced {
            // Not durable, so not kept under its name: the inventory would list it and the survey
            // count a copy a power cut may empty. Taken back only if it is still the file put
            // there (never a copy written since).
            let _replace = self.replace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if placed.is_some() && fs::metadata(&path).ok().map(|m| file_identity(&m)) == placed {
                if let Err(removed) = fs::remove_file(&path) {
                    tracing::error!(shard = %id, error = %removed, "could not take back a shard that failed its sync");
                }
            }
            return Err(e.into());
        }
        let clears_mark = replaced_records.mark.is_some();
        if let Err(e) = self.index_placed(id, hash, shard.len(), replaced_records) {
            // Durable all the same, and read from its file, not from the index (a listing of the
            // index is for status only): refusing would make the writer place it elsewhere and
            // leave this copy to the orphan sweep, on a disk likely short of room. Unless it
            // replaced a copy set aside whose mark was to go with this entry: that mark still
            // hides this copy, which must not be counted.
            if clears_mark {
                return Err(e);
            }
            tracing::warn!(shard = %id, error = %e, "a durable shard's index entry was not written");
        }
        if ignifuge_faults::hit("node.shard.after-sync").is_some() {
            return Err(StoreError::Io(io::Error::other("fault point: the shard's answer was lost")));
        }
        Ok(())
    }

    /// The records that set `id`'s copy in place aside where it lies, if any (nearly every node
    /// has none, and reads nothing for them). Called under the replace lock.
    fn set_aside_records(&self, id: &ShardId) -> Result<SetAsideRecords, StoreError> {
        let unrecorded = {
            let unrecorded = self.unrecorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if unrecorded.shards.is_empty() { None } else { unrecorded.shards.get(id).copied() }
        };
        let mark = if self.may_have_marks() { self.index.get(&unreadable_key(id))? } else { None };
        Ok(SetAsideRecords { mark, unrecorded })
    }

    /// Writes the index entry of a copy of `id` (`hash`, `len` bytes) made durable, and lets go
    /// of the records that set aside the copy it replaced (`replaced`, as they stood when it was
    /// renamed into place) so that the inventory lists the new one: each only if it is still
    /// the same record, under the replace lock. A read of the new copy that failed since its
    /// rename may have set it aside anew, with a record of its own, and that must stand. (The
    /// index is rebuildable from the files, so it need not be synced on every shard; a mark is
    /// not, so its removal is: a crash must not hide the new copy again.)
    fn index_placed(
        &self,
        id: &ShardId,
        hash: &blake3::Hash,
        len: usize,
        replaced: SetAsideRecords,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        batch.put(index_key(id), format!("{}:{}", hash.to_hex(), len));
        if replaced.mark.is_none() && replaced.unrecorded.is_none() {
            self.index.write(batch, Durability::Buffered)?;
            return Ok(());
        }
        let _replace = self.replace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(generation) = replaced.unrecorded {
            let mut unrecorded = self.unrecorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if unrecorded.shards.get(id) == Some(&generation) {
                unrecorded.shards.remove(id);
            }
        }
        let unmarked = match &replaced.mark {
            Some(seen) => self.index.get(&unreadable_key(id))?.as_deref() == Some(&seen[..]),
            None => false,
        };
        if unmarked {
            batch.delete(unreadable_key(id));
        }
        self.index.write(batch, if unmarked { Durability::Synced } else { Durability::Buffered })?;
        Ok(())
    }

    /// Reads a shard and checks it against the hash stored with it. A shard that fails the check
    /// is quarantined at once, so that the inventory stops listing it and the repair service
    /// rebuilds it.
    /// A shard whose file cannot be read (an I/O error) is set aside the same way: its bytes are
    /// no use to anyone, and only leaving the inventory gets it rebuilt. Either is read once more
    /// first: a transient error (a bus reset, a controller timeout) must not cost a good copy,
    /// which could be a stripe's last spare.
    pub fn get(&self, id: &ShardId) -> Result<(Bytes, blake3::Hash), StoreError> {
        self.read(id, ShardCheck::ByNode)
    }

    /// Reads a shard as `get` does, checking its bytes against the hash stored with it only if
    /// `check` is `ShardCheck::ByNode` (`ByReader`: the reader hashes them against the
    /// metadata's hash, and asks again `ByNode` if they differ). I/O errors, and files no shard
    /// can be, are handled as `get` handles them either way.
    pub fn read(&self, id: &ShardId, check: ShardCheck) -> Result<(Bytes, blake3::Hash), StoreError> {
        // Which file is read (its identity, from the open descriptor): a repair may put a new copy
        // in place meanwhile, never to be set aside for the old one's failure.
        let mut read = None;
        let mut result = self.read_file(id, &mut read, check);
        if matches!(result, Err(StoreError::Corrupt | StoreError::Unreadable(_))) {
            let first = read;
            result = self.read_file(id, &mut read, check);
            if result.is_ok() && read == first {
                tracing::warn!(shard = %id, "a shard read failed once, then read whole");
            }
        }
        let kind = match &result {
            Err(StoreError::Corrupt) => SetAside::Corrupt,
            Err(StoreError::Unreadable(e)) => {
                tracing::error!(shard = %id, error = %e, "a shard file could not be read twice; setting it aside");
                SetAside::Unreadable
            }
            _ => return result,
        };
        if let Err(e) = self.set_aside(id, read, kind) {
            tracing::error!(shard = %id, error = %e, "could not set a shard aside");
        }
        result
    }

    /// Moves a corrupt or unreadable shard to quarantine, or, if the disk refuses even that,
    /// records it as unreadable in the index so that the inventory stops listing it either way.
    /// Under the lock that puts new copies in place, and only if the file is still the one that
    /// failed (`read`): a new copy a repair put there meanwhile is kept.
    fn set_aside(&self, id: &ShardId, read: Option<(u64, i128)>, kind: SetAside) -> Result<(), StoreError> {
        let _replace = self.replace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = self.shard_path(id).ok().and_then(|p| fs::metadata(p).ok()).map(|m| file_identity(&m));
        if read.is_some() && now.is_some() && now != read {
            tracing::info!(shard = %id, "a new copy replaced the failed shard meanwhile; keeping it");
            return Ok(());
        }
        let moved = match self.move_to_quarantine(id) {
            Ok(moved) => moved,
            Err(e) => {
                tracing::error!(shard = %id, error = %e, "could not move a shard to quarantine; marking it unreadable");
                self.may_have_marks.store(true, std::sync::atomic::Ordering::Release);
                let mut batch = WriteBatch::new();
                // Never the same value twice: a write lets go of a mark only if it is the one it
                // saw when its copy replaced the marked one (`index_placed`).
                batch.put(unreadable_key(id), format!("{}.{}", now_ms(), rand_suffix()));
                if let Err(e) = self.index.write(batch, Durability::Synced) {
                    // Nothing on disk says so: left out of the inventory in memory instead.
                    let mut unrecorded = self.unrecorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    unrecorded.generation += 1;
                    let generation = unrecorded.generation;
                    unrecorded.shards.insert(id.clone(), generation);
                    tracing::error!(shard = %id, error = %e, "could not mark a shard unreadable either; left out until restart");
                    return Err(e.into());
                }
                true
            }
        };
        if moved {
            let counter = match kind {
                SetAside::Corrupt => &self.quarantined,
                SetAside::Unreadable => &self.unreadable,
            };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.last_quarantine_ms.store(now_ms().max(1), std::sync::atomic::Ordering::Relaxed);
            if kind == SetAside::Corrupt {
                tracing::warn!(shard = %id, "quarantined a corrupt shard");
            }
        }
        Ok(())
    }

    /// Whether `id` was set aside with nothing on disk to say so (`unrecorded`).
    fn is_unrecorded(&self, id: &ShardId) -> bool {
        let unrecorded = self.unrecorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        !unrecorded.shards.is_empty() && unrecorded.shards.contains_key(id)
    }

    fn may_have_marks(&self) -> bool {
        self.may_have_marks.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Shards whose file could not be read since the process started.
    pub fn unreadable(&self) -> u64 {
        self.unreadable.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One open, one fstat (for `identity` and the size) and one read of the file; the data is
    /// handed on as a slice of the buffer read, never copied. Reading shards is most of what a
    /// node does for a GET, and a path lookup or a copy per shard showed in its profile
    /// (docs/benchmarks.md, "Where a 1 MiB GET's CPU goes").
    fn read_file(
        &self,
        id: &ShardId,
        identity: &mut Option<(u64, i128)>,
        check: ShardCheck,
    ) -> Result<(Bytes, blake3::Hash), StoreError> {
        read_shard_file(&self.shard_path(id)?, identity, check)
    }

    /// Gives set-aside copies that read whole again back to service (run after each scrub pass):
    /// a copy set aside for two failed reads may have met a transient fault (a controller reset,
    /// a cable), and it may be the copy a stripe needs most. Each file under `quarantine/` is read
    /// and checked against its own hash; one that passes is renamed back into place if its blob
    /// is still held here and no good copy is there (none, or one that does not read whole or
    /// was set aside where it lies): the inventory lists it again, and a stripe repaired
    /// elsewhere meanwhile finds it a stray. A set-aside copy is removed once a good copy is in
    /// place again (a repair's) or the blob is surely gone; until then one that still fails
    /// stays, for an operator, and is read again at each re-examination. Shards marked
    /// unreadable in the index (their move failed), or only in memory (so was their mark), whose
    /// file reads whole lose the mark. A shard id is never written with other bytes (every
    /// write, pack and compaction takes a new blob id; a repair writes the bytes the record's
    /// hash names), so a copy that matches its own hash is that shard.
    pub fn reexamine_set_aside(&self) -> Result<SetAsideReexamined, StoreError> {
        let mut done = SetAsideReexamined::default();
        let dir = self.root.join("quarantine");
        // A quarantine that cannot be listed (or a copy that cannot be moved) does not keep the
        // marks below from being looked at.
        let names = sorted_names(&dir).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not list the quarantine");
            Vec::new()
        });
        for name in names {
            let Some(id) = parse_quarantine_name(&name) else { continue };
            if let Err(e) = self.reexamine_quarantined(&dir, &name, &id, &mut done) {
                tracing::warn!(shard = %id, error = %e, "could not re-examine a set-aside copy");
                done.kept += 1;
            }
        }
        // Copies set aside where they lie (marked in the index, or only in memory): each loses
        // its record only if it reads whole, is still the file read, and its record is still
        // the one seen before the read (a read that failed meanwhile may have set it aside anew).
        let unrecorded: Vec<(ShardId, u64)> = {
            let unrecorded = self.unrecorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            unrecorded.shards.iter().map(|(id, generation)| (id.clone(), *generation)).collect()
        };
        for (id, generation) in unrecorded {
            let forget = |this: &Self| {
                let mut unrecorded = this.unrecorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let same = unrecorded.shards.get(&id) == Some(&generation);
                if same {
                    unrecorded.shards.remove(&id);
                }
                Ok(same)
            };
            // Its file gone (the blob deleted, or a write that took it back): nothing to keep out.
            let gone = self
                .shard_path(&id)
                .map(|p| matches!(fs::symlink_metadata(p), Err(e) if e.kind() == io::ErrorKind::NotFound));
            let cleared = match gone {
                Ok(true) => self.unless_present(&id, forget).map(|forgot| (forgot, false)),
                Ok(false) => self.unless_changed(&id, forget).map(|cleared| (cleared, cleared)),
                Err(e) => Err(e),
            };
            match cleared {
                Ok((_, true)) => {
                    done.restored += 1;
                    tracing::warn!(shard = %id, "a shard set aside in memory reads whole again; listed again");
                }
                Ok((true, false)) => done.dropped += 1,
                Ok((false, _)) => done.kept += 1,
                Err(e) => {
                    tracing::warn!(shard = %id, error = %e, "could not re-examine a shard set aside in memory");
                    done.kept += 1;
                }
            }
        }
        // Errors are counted per mark: on a failing disk the index may fail some and not others.
        let marks = if self.may_have_marks() {
            self.index.scan(b"u/", prefix_end(b"u/").as_deref(), usize::MAX).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not list the shards marked unreadable");
                Vec::new()
            })
        } else {
            Vec::new()
        };
        for (key, seen) in marks {
            let Some(id) = parse_unreadable_key(&key) else { continue };
            // The place of the copy in place made durable before its mark can go (a restore whose
            // rename did not sync must not lose its mark here: a crash would bring back the copy
            // the mark was for, unmarked). Outside the lock every write takes, as the restore's
            // own sync: a slow sync on a failing disk must not stall every write; the check under
            // the lock still refuses a copy that changed since.
            if let Err(e) = self.blob_dir(&id.blob).and_then(|dir| Ok(sync_dir(&dir)?)) {
                tracing::warn!(shard = %id, error = %e, "a marked shard's directory did not sync: its mark is kept");
                done.kept += 1;
                continue;
            }
            let cleared = self.unless_changed(&id, |store| {
                if store.index.get(&key)?.as_deref() != Some(&seen[..]) {
                    return Ok(false);
                }
                let mut batch = WriteBatch::new();
                batch.delete(key.clone());
                store.index.write(batch, Durability::Synced)?;
                Ok(true)
            });
            match cleared {
                Ok(true) => {
                    done.restored += 1;
                    tracing::warn!(shard = %id, "a shard marked unreadable reads whole again; unmarked it");
                }
                Ok(false) => done.kept += 1,
                Err(e) => {
                    tracing::warn!(shard = %id, error = %e, "could not re-examine a shard marked unreadable");
                    done.kept += 1;
                }
            }
        }
        self.restored_total.fetch_add(done.restored, std::sync::atomic::Ordering::Relaxed);
        Ok(done)
    }

    /// Runs `clear` under the lock that puts copies in place, provided `id` still has no file.
    fn unless_present(
        &self,
        id: &ShardId,
        clear: impl FnOnce(&Self) -> Result<bool, StoreError>,
    ) -> Result<bool, StoreError> {
        let path = self.shard_path(id)?;
        let _replace = self.replace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => clear(self),
            _ => Ok(false),
        }
    }

    /// Set-aside copies restored by re-examinations since the process started.
    pub fn set_aside_restored(&self) -> u64 {
        self.restored_total.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reads `id`'s file in place; if it reads whole, runs `clear` under the lock that puts
    /// copies in place, provided the path still names the file read. Returns what `clear` did
    /// (false: the file failed, or changed meanwhile).
    fn unless_changed(
        &self,
        id: &ShardId,
        clear: impl FnOnce(&Self) -> Result<bool, StoreError>,
    ) -> Result<bool, StoreError> {
        let path = self.shard_path(id)?;
        let mut read = None;
        if read_file_verified(&path, &mut read).is_err() {
            return Ok(false);
        }
        let _replace = self.replace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if fs::symlink_metadata(&path).ok().map(|m| file_identity(&m)) != read {
            return Ok(false);
        }
        clear(self)
    }

    /// Whether `id`'s copy in place was set aside there (marked in the index, or in memory).
    fn set_aside_in_place(&self, id: &ShardId) -> Result<bool, StoreError> {
        Ok(self.is_unrecorded(id) || (self.may_have_marks() && self.index.get(&unreadable_key(id))?.is_some()))
    }

    /// One file of the quarantine (`reexamine_set_aside`). Only a blob directory surely absent
    /// means the blob is gone, and only a copy in place that is listed and reads whole makes the
    /// set-aside one redundant: on the failing disks this runs on, an I/O error proves nothing.
    fn reexamine_quarantined(
        &self,
        dir: &Path,
        name: &str,
        id: &ShardId,
        done: &mut SetAsideReexamined,
    ) -> Result<(), StoreError> {
        let path = dir.join(name);
        let blob_dir = self.blob_dir(&id.blob)?;
        let target = self.shard_path(id)?;
        match fs::metadata(&blob_dir) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                remove_file_or_dir(&path)?;
                done.dropped += 1;
                tracing::info!(shard = %id, "dropped a set-aside copy: its blob is gone from this node");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        // What is in place now, and whether it is a good copy.
        let judged = match fs::symlink_metadata(&target) {
            Ok(metadata) => Some((file_identity(&metadata), metadata.is_file())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let in_place_good = match judged {
            Some((identity, true)) if !self.set_aside_in_place(id)? => {
                let mut read = None;
                read_file_verified(&target, &mut read).is_ok() && read == Some(identity)
            }
            _ => false,
        };
        let verified = if in_place_good { None } else { Some(read_file_verified(&path, &mut None)) };
        let restored = {
            let _replace = self.replace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if fs::symlink_metadata(&target).ok().map(|m| file_identity(&m)) != judged.map(|(identity, _)| identity) {
                done.kept += 1; // changed meanwhile: judged again next time
                return Ok(());
            }
            let placing = self.placing.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(id);
            match verified {
                // Still listed, and durable: not a write's copy that may yet fail its sync and be
                // taken back (it must not have cost this one).
                None if !placing && !self.set_aside_in_place(id)? => {
                    remove_file_or_dir(&path)?;
                    done.dropped += 1;
                    tracing::info!(shard = %id, "dropped a set-aside copy: a good copy is in place again");
                    return Ok(());
                }
                Some(Ok((data, hash))) => {
                    // In place of nothing, or of a copy that does not read whole or was set aside
                    // there (a directory in the way fails the rename: kept, for an operator).
                    let mark = self.set_aside_records(id)?.mark;
                    fs::rename(&path, &target)?;
                    // (A crash here, before the rename is synced and indexed: the e2e test
                    // `faults::a_node_killed_while_putting_set_aside_copies_back_loses_none`.)
                    ignifuge_faults::hit("node.shard.restore-after-rename");
                    done.restored += 1;
                    self.unrecorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).shards.remove(id);
                    tracing::warn!(shard = %id, "a set-aside copy reads whole again; restored it");
                    (data.len(), hash, SetAsideRecords { mark, unrecorded: None })
                }
                _ => {
                    done.kept += 1;
                    return Ok(());
                }
            }
        };
        // The rename made durable (outside the lock: a slow sync on a failing disk must not
        // stall every write) before the mark of the copy it replaced goes (`index_placed`: only
        // if it is still that mark, not one a failed read of the restored copy wrote since): a
        // crash in between must not bring the replaced copy back unmarked. (The copy was durable
        // where it lay; a crash before the sync leaves it there, to be re-examined again.)
        if let Err(e) = sync_dir(&blob_dir).and_then(|()| sync_dir(dir)) {
            // The mark stays: the rename may not survive a crash, and the copy it replaced must
            // not come back unmarked (the copy in place is then out of service a little longer,
            // never counted when it may not be there: the next re-examination judges it again).
            tracing::warn!(shard = %id, error = %e, "a restored copy's directories did not sync: its mark is kept");
            return Ok(());
        }
        let (len, hash, replaced) = restored;
        if let Err(e) = self.index_placed(id, &hash, len, replaced) {
            // In place all the same; a mark left is cleared by the next re-examination.
            tracing::warn!(shard = %id, error = %e, "a restored copy's index entry was not written");
        }
        Ok(())
    }
}

/// A shard id in `ShardStore::placing` for as long as this lives (every way `put_buffer` ends).
struct Placing<'a> {
    writes: &'a std::sync::Mutex<std::collections::HashMap<ShardId, usize>>,
    id: ShardId,
}

impl<'a> Placing<'a> {
    fn enter(writes: &'a std::sync::Mutex<std::collections::HashMap<ShardId, usize>>, id: &ShardId) -> Self {
        *writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(id.clone()).or_default() += 1;
        Self { writes, id: id.clone() }
    }
}

impl Drop for Placing<'_> {
    fn drop(&mut self) {
        let mut writes = self.writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = writes.get_mut(&self.id) {
            *count -= 1;
            if *count == 0 {
                writes.remove(&self.id);
            }
        }
    }
}

/// What set a shard's copy in place aside where it lies: its unreadable mark (the value) and its
/// entry in memory (the generation), as one write saw them (`ShardStore::set_aside_records`).
struct SetAsideRecords {
    mark: Option<Vec<u8>>,
    unrecorded: Option<u64>,
}

/// Shards set aside with nothing on disk to say so (`ShardStore::unrecorded`).
#[derive(Default)]
struct Unrecorded {
    shards: std::collections::HashMap<ShardId, u64>,
    generation: u64,
}

fn remove_file_or_dir(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::IsADirectory => fs::remove_dir_all(path),
        other => other,
    }
}

/// A quarantined file's name: `<blob>.<stripe>.<shard>.<suffix>` (`move_to_quarantine`).
fn parse_quarantine_name(name: &str) -> Option<ShardId> {
    let mut parts = name.splitn(4, '.');
    let blob = BlobId::new(parts.next()?);
    let stripe = StripeIndex(parts.next()?.parse().ok()?);
    let shard = ShardIndex(parts.next()?.parse().ok()?);
    parts.next()?;
    blob.is_well_formed().then_some(ShardId { blob, stripe, shard })
}

/// An unreadable mark's key, `u/<blob>/<stripe>.<shard>` (`unreadable_key`).
fn parse_unreadable_key(key: &[u8]) -> Option<ShardId> {
    let key = std::str::from_utf8(key).ok()?.strip_prefix("u/")?;
    let (blob, file) = key.split_once('/')?;
    let (stripe, shard) = parse_shard_file_name(file)?;
    let blob = BlobId::new(blob);
    blob.is_well_formed().then_some(ShardId { blob, stripe, shard })
}

/// Reads a shard file (`hash || bytes`) and checks the bytes against the hash: one open, one
/// fstat (for `identity`, which file was read, and the size) and one read.
fn read_file_verified(path: &Path, identity: &mut Option<(u64, i128)>) -> Result<(Bytes, blake3::Hash), StoreError> {
    read_shard_file(path, identity, ShardCheck::ByNode)
}

fn read_shard_file(
    path: &Path,
    identity: &mut Option<(u64, i128)>,
    check: ShardCheck,
) -> Result<(Bytes, blake3::Hash), StoreError> {
    let classify = |e: io::Error| match e.kind() {
        io::ErrorKind::NotFound => StoreError::NotFound,
        // The medium failed (or the shard's path is not a file): the copy is lost. Anything
        // else (out of descriptors or memory, permissions) says nothing about the copy.
        _ if is_media_error(&e) => StoreError::Unreadable(e),
        _ => e.into(),
    };
    let mut file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) => {
            // Which file failed, if the path still names one (a repair may put a new copy
            // in place meanwhile: `set_aside` must not set that one aside).
            *identity = fs::metadata(path).ok().map(|m| file_identity(&m));
            return Err(classify(e));
        }
    };
    let metadata = file.metadata().map_err(classify)?;
    *identity = Some(file_identity(&metadata));
    if ignifuge_faults::hit("node.shard.read-error").is_some() {
        return Err(StoreError::Unreadable(io::Error::other("injected read error (node.shard.read-error)")));
    }
    // A size no shard can have (a damaged inode, a sparse file) is a corrupt copy, never an
    // allocation that could abort the node.
    if metadata.len() > (ignifuge_rpc::SHARD_MAX_BYTES + HASH_BYTES) as u64 {
        return Err(StoreError::Corrupt);
    }
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(metadata.len() as usize).map_err(|e| StoreError::Io(io::Error::other(e.to_string())))?;
    io::Read::read_to_end(&mut file, &mut bytes).map_err(classify)?;
    if bytes.len() < HASH_BYTES {
        return Err(StoreError::Corrupt);
    }
    let mut stored = [0u8; HASH_BYTES];
    stored.copy_from_slice(&bytes[..HASH_BYTES]);
    let stored = blake3::Hash::from_bytes(stored);
    let data = Bytes::from(bytes).slice(HASH_BYTES..);
    if check == ShardCheck::ByNode && blake3::hash(&data) != stored {
        return Err(StoreError::Corrupt);
    }
    Ok((data, stored))
}

impl ShardStore {
    /// Removes every shard of a blob (a failed write's discard, the orphan sweep).
    pub fn delete_blob(&self, blob: &BlobId) -> Result<(), StoreError> {
        let deleted = self.delete_blobs(std::slice::from_ref(blob))?;
        match deleted.failed.into_iter().next() {
            Some((_, error)) => Err(error),
            None => Ok(()),
        }
    }

    /// Removes every shard of each blob (garbage collection, a batch at a time). A blob that
    /// cannot be removed (a disk error) does not stop the others; it is reported in `failed`.
    /// The removals are made durable together: one fsync per parent directory for one or two of
    /// them, else one group sync (a `syncfs` shared with the writes waiting at the same time),
    /// never one sync per blob; the index entries of what was removed go even if that sync
    /// fails (the error is returned after).
    pub fn delete_blobs(&self, blobs: &[BlobId]) -> Result<DeletedBlobs, StoreError> {
        let dirs = blobs.iter().map(|blob| self.blob_dir(blob)).collect::<Result<Vec<_>, _>>()?;
        let start = self.group_sync.as_ref().map(GroupSync::begin);
        let mut parents = std::collections::BTreeSet::new();
        let mut deleted = DeletedBlobs::default();
        let mut batch = WriteBatch::new();
        for (blob, dir) in blobs.iter().zip(&dirs) {
            match fs::remove_dir_all(dir) {
                Ok(()) => {
                    deleted.deleted += 1;
                    parents.insert(dir.parent().expect("blob dirs have a parent").to_path_buf());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    deleted.failed.push((blob.clone(), e.into()));
                    continue;
                }
            }
            for prefix in [blob_index_prefix(blob), unreadable_prefix(blob)] {
                let end = prefix_end(&prefix);
                for (key, _) in self.index.scan(&prefix, end.as_deref(), usize::MAX)? {
                    batch.delete(key);
                }
            }
        }
        let synced = match (&self.group_sync, start) {
            _ if parents.is_empty() => Ok(()),
            (Some(group), Some(start)) if parents.len() > 2 => group.sync(start),
            _ => parents.iter().try_for_each(|parent| sync_dir(parent)),
        };
        self.index.write(batch, Durability::Buffered)?;
        synced?;
        Ok(deleted)
    }

    /// Moves a shard's file under `quarantine/` and drops its index entry; false if there was no file.
    fn move_to_quarantine(&self, id: &ShardId) -> Result<bool, StoreError> {
        let path = self.shard_path(id)?;
        let dir = self.root.join("quarantine");
        if !dir.exists() {
            fs::create_dir_all(&dir)?;
            sync_dir(&self.root)?; // the directory itself, before a copy is moved into it
        }
        let target = dir.join(format!("{}.{}.{}.{}", id.blob, id.stripe, id.shard, rand_suffix()));
        if let Some(blobs) = self.quarantined_blobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_mut() {
            blobs.insert(id.blob.clone());
        }
        let moved = match fs::rename(&path, &target) {
            Ok(()) => {
                // Both ends of the move: a journaled filesystem commits a rename whole with either
                // directory, others may not, and the copy in quarantine is the one its
                // re-examination may find good again (a transient error).
                sync_dir(path.parent().expect("shard paths have a parent"))?;
                sync_dir(&dir)?;
                tracing::warn!(shard = %id, to = %target.display(), "moved a shard to quarantine");
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e.into()),
        };
        let mut batch = WriteBatch::new();
        batch.delete(index_key(id));
        self.index.write(batch, Durability::Buffered)?;
        Ok(moved)
    }

    /// Corrupt shards quarantined since the process started.
    pub fn quarantined(&self) -> u64 {
        self.quarantined.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// When the last corrupt shard was quarantined (ms since the epoch), if ever.
    pub fn last_quarantine_ms(&self) -> Option<i64> {
        Some(self.last_quarantine_ms.load(std::sync::atomic::Ordering::Relaxed)).filter(|ms| *ms > 0)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes one shard (a copy the metadata no longer places here), and the blob's directory
    /// if that leaves it empty. Idempotent.
    pub fn delete_shard(&self, id: &ShardId) -> Result<(), StoreError> {
        let path = self.shard_path(id)?;
        match fs::remove_file(&path) {
            Ok(()) => sync_removal(path.parent().expect("shard paths have a parent"))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let mut batch = WriteBatch::new();
        batch.delete(index_key(id));
        self.index.write(batch, Durability::Buffered)?;
        self.remove_blob_dir_if_empty(&id.blob);
        Ok(())
    }

    /// Removes `blob`'s directory if it is empty and the quarantine may hold no copy of the
    /// blob (re-examination takes a missing blob directory to mean the blob is gone from this
    /// node, and drops its set-aside copies: `reexamine_quarantined`); true if there is no
    /// directory now. Moving shards away (repair, a layout change) otherwise leaves one empty
    /// directory per blob, which every inventory and scrub lists. Under the lock that puts
    /// copies in place and moves them to quarantine; a write that made the directory and lost it
    /// before its file was created makes it again (`in_blob_dir`). Not made durable: an empty
    /// directory that comes back after a crash is removed again.
    pub fn remove_blob_dir_if_empty(&self, blob: &BlobId) -> bool {
        let Ok(dir) = self.blob_dir(blob) else { return false };
        let _replace = self.replace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let quarantined = self.quarantined_blobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if quarantined.as_ref().is_none_or(|blobs| blobs.contains(blob)) {
            return false;
        }
        drop(quarantined);
        match fs::remove_dir(&dir) {
            Ok(()) => true,
            Err(e) => e.kind() == io::ErrorKind::NotFound, // not empty, or the disk refused
        }
    }

    /// Removes one shard only if its file is the copy last modified at `modified_ms`; a copy
    /// written since (a repair put the shard back here) is kept: `StoreError::Changed`. The
    /// blob's directory goes too if that leaves it empty (`remove_blob_dir_if_empty`).
    pub fn delete_shard_if_modified_at(&self, id: &ShardId, modified_ms: i64) -> Result<(), StoreError> {
        let path = self.shard_path(id)?;
        {
            let _replace = self.replace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match fs::metadata(&path) {
                Ok(m) if self::modified_ms(&m) != modified_ms => return Err(StoreError::Changed),
                Ok(_) => fs::remove_file(&path)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        sync_removal(path.parent().expect("shard paths have a parent"))?;
        let mut batch = WriteBatch::new();
        batch.delete(index_key(id));
        self.index.write(batch, Durability::Buffered)?;
        self.remove_blob_dir_if_empty(&id.blob);
        Ok(())
    }

    /// The shard files of `blob` on disk (the files, not the index, are the truth), but those
    /// marked unreadable: no copy anyone may count on.
    pub fn shards_of(&self, blob: &BlobId) -> Result<Vec<HeldShard>, StoreError> {
        Ok(self.files_of(blob)?.into_iter().filter(|(_, marked)| !marked).map(|(shard, _)| shard).collect())
    }

    /// Every finished shard file of `blob`, each with whether it is marked unreadable.
    fn files_of(&self, blob: &BlobId) -> Result<Vec<(HeldShard, bool)>, StoreError> {
        Ok(self.blob_files(blob)?.shards)
    }

    /// What `blob`'s directory holds: finished shard files, each with whether it is marked
    /// unreadable, and temporary files (of writes in progress, or left by a crash before their
    /// rename), each with its path and age.
    fn blob_files(&self, blob: &BlobId) -> Result<BlobFiles, StoreError> {
        let dir = self.blob_dir(blob)?;
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BlobFiles::default()),
            Err(e) => return Err(e.into()),
        };
        let unreadable: std::collections::BTreeSet<Vec<u8>> = if self.may_have_marks() {
            let prefix = unreadable_prefix(blob);
            self.index.scan(&prefix, prefix_end(&prefix).as_deref(), usize::MAX)?.into_iter().map(|(k, _)| k).collect()
        } else {
            Default::default()
        };
        let mut files = BlobFiles::default();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let metadata = match entry.metadata() {
                Ok(metadata) => metadata,
                // A temporary file renamed or removed since the listing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let modified_ms = modified_ms(&metadata);
            let age_ms = now_ms().saturating_sub(modified_ms).max(0);
            let Some((stripe, shard)) = parse_shard_file_name(&name.to_string_lossy()) else {
                files.temporaries.push((entry.path(), modified_ms, age_ms));
                continue;
            };
            let id = ShardId { blob: blob.clone(), stripe, shard };
            let marked = unreadable.contains(&unreadable_key(&id)) || self.is_unrecorded(&id);
            files.shards.push((HeldShard { id, modified_ms, age_ms }, marked));
        }
        files.shards.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        Ok(files)
    }

    /// Up to `limit` blobs held here with an id greater than `after`, in id order, each with the
    /// newest modification time of its files. The bool is true when the listing is complete.
    pub fn list_blobs(&self, after: Option<&BlobId>, limit: usize) -> Result<(Vec<HeldBlob>, bool), StoreError> {
        let mut out = Vec::new();
        let mut removed = 0;
        let after = after.map(|b| b.0.as_str()).unwrap_or("");
        for fan_out in sorted_names(&self.root.join("shards"))? {
            // `after` comes from the network: compared by bytes, never sliced inside a character.
            let after_fan_out = &after.as_bytes()[..2.min(after.len())];
            if fan_out.len() != 2 || (!after.is_empty() && fan_out.as_bytes() < after_fan_out) {
                continue;
            }
            for name in sorted_names(&self.root.join("shards").join(&fan_out))? {
                if name.as_str() <= after {
                    continue;
                }
                let blob = BlobId::new(name);
                if !blob.is_well_formed() {
                    continue;
                }
                if out.len() == limit {
                    return Ok((out, false));
                }
                // Marked files count for the blob's age: a blob whose every shard failed a read is
                // as old as its files, so the orphan sweep can still judge it.
                let files = self.blob_files(&blob)?;
                self.reclaim_temporaries(&blob, &files.temporaries);
                // A directory left empty (by a node from before empty ones were removed, or by
                // a shard moved to quarantine, whose blob it still stands for) is no blob held;
                // a page removes a bounded number, each under the lock every write takes.
                if files.shards.is_empty()
                    && files.temporaries.is_empty()
                    && removed < EMPTY_DIRS_REMOVED_PER_PAGE
                    && self.remove_blob_dir_if_empty(&blob)
                {
                    removed += 1;
                    continue;
                }
                // Temporary files count too: a directory whose only file is one a crash left
                // before its rename ages, and the orphan sweep removes it once the blob is
                // nobody's (one mid-write is young, so its blob is).
                let times = files.shards.iter().map(|(s, _)| (s.modified_ms, s.age_ms));
                let times =
                    times.chain(files.temporaries.iter().map(|&(_, modified_ms, age_ms)| (modified_ms, age_ms)));
                let (newest_ms, age_ms) = times
                    .fold(None, |acc: Option<(i64, i64)>, (m, a)| {
                        Some(acc.map_or((m, a), |(n, g)| (n.max(m), g.min(a))))
                    })
                    .unwrap_or((0, 0));
                out.push(HeldBlob { blob, newest_ms, age_ms });
            }
        }
        Ok((out, true))
    }

    /// Removes the temporary files of `blob` older than `TEMPORARY_ABANDONED_MS`: no write takes
    /// that long (a shard is at most a few MiB, its RPC times out in seconds), so such a file was
    /// left by a process killed before its rename and will never be renamed. One still written
    /// by a hung writer fails that writer's rename, which then acknowledges nothing.
    fn reclaim_temporaries(&self, blob: &BlobId, temporaries: &[(PathBuf, i64, i64)]) {
        for (path, _, age_ms) in temporaries.iter().filter(|(_, _, age_ms)| *age_ms > TEMPORARY_ABANDONED_MS) {
            match fs::remove_file(path) {
                Ok(()) => {
                    tracing::info!(%blob, file = %path.display(), age_ms, "removed a temporary file a crash left")
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(%blob, file = %path.display(), error = %e, "could not remove an abandoned temporary file")
                }
            }
        }
    }

    /// Re-reads one shard and checks its BLAKE3 hash; a corrupt shard is quarantined. Returns
    /// the bytes read, or None when the shard was corrupt (or vanished meanwhile).
    pub fn scrub_one(&self, id: &ShardId) -> Result<Option<usize>, StoreError> {
        match self.get(id) {
            Ok((data, _)) => Ok(Some(data.len())),
            Err(StoreError::Corrupt | StoreError::NotFound | StoreError::Unreadable(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Number of shards in the index (for status and tests).
    pub fn indexed_shards(&self) -> Result<usize, StoreError> {
        Ok(self.index.scan(b"s/", prefix_end(b"s/").as_deref(), usize::MAX)?.len())
    }
}

/// Errors that mean the bytes on the medium cannot be had: EIO (a bad sector, a failing disk),
/// ENODATA, EBADMSG and EUCLEAN (file system corruption detected), EISDIR (the shard's path is
/// not a file any more).
fn is_media_error(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EIO | libc::ENODATA | libc::EBADMSG | libc::EUCLEAN | libc::EISDIR))
}

/// Why a shard is set aside (`ShardStore::set_aside`): which counter it adds to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SetAside {
    Corrupt,
    Unreadable,
}

/// Which file a path names now: inode and modification time.
fn file_identity(metadata: &fs::Metadata) -> (u64, i128) {
    use std::os::unix::fs::MetadataExt as _;
    (metadata.ino(), i128::from(metadata.mtime()) * 1_000_000_000 + i128::from(metadata.mtime_nsec()))
}

fn parse_shard_file_name(name: &str) -> Option<(StripeIndex, ShardIndex)> {
    let (stripe, shard) = name.split_once('.')?;
    Some((StripeIndex(stripe.parse().ok()?), ShardIndex(shard.parse().ok()?)))
}

fn modified_ms(metadata: &fs::Metadata) -> i64 {
    metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn sorted_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut names = Vec::new();
    for entry in entries {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
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

    /// Stores shards 0..`count` of stripe 0 of `blob`, each `len` bytes of its own index.
    fn put_shards(store: &ShardStore, blob: &str, count: u32, len: usize) {
        for shard in 0..count {
            let data = vec![shard as u8; len];
            store.put(&id(blob, shard), &data, &blake3::hash(&data)).unwrap();
        }
    }

    /// Makes shard `shard` of stripe 0 of `blob` unreadable: a directory where its file was (a
    /// read fails with an I/O error). Returns its path.
    fn make_unreadable(root: &Path, blob: &str, shard: u32) -> PathBuf {
        let path = root.join(format!("shards/{}/{blob}/0.{shard}", &blob[..2]));
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        path
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
        fs::write(&path, raw.clone()).unwrap();
        // Read for a reader that checks the bytes itself: sent as read, nothing set aside (the
        // reader asks again, `ShardCheck::ByNode`, when they fail its check).
        let (sent, stored) = store.read(&id("ab12", 3), ShardCheck::ByReader).unwrap();
        assert_eq!((&sent[..], stored), (&raw[HASH_BYTES..], hash));
        assert_ne!(blake3::hash(&sent), hash);
        assert_eq!(store.quarantined(), 0);
        assert!(path.exists());
        assert!(matches!(store.get(&id("ab12", 3)), Err(StoreError::Corrupt)));
        assert_eq!(store.quarantined(), 1, "checked here, the bad copy is set aside");
        assert!(!path.exists());
        assert_eq!(store.indexed_shards().unwrap(), 0, "and no longer listed");

        // A file that says it is larger than any shard (a sparse file, a damaged inode) is a
        // corrupt copy, set aside, never an allocation of its size.
        store.put(&id("ab12", 4), &data, &hash).unwrap();
        let path = dir.path().join("shards/ab/ab12/0.4");
        fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(1 << 40).unwrap();
        assert!(matches!(store.get(&id("ab12", 4)), Err(StoreError::Corrupt)));
        assert!(!path.exists(), "the oversized copy was quarantined");
    }

    /// A read for a reader that checks the bytes itself still fails, and sets the copy aside, on
    /// what only the node can see: an I/O error, or a file too short to be a shard.
    #[test]
    fn a_read_checked_by_its_reader_still_sets_aside_unreadable_and_truncated_copies() {
        let (dir, store) = store();
        put_shards(&store, "ab14", 2, 100);
        make_unreadable(dir.path(), "ab14", 0);
        assert!(matches!(store.read(&id("ab14", 0), ShardCheck::ByReader), Err(StoreError::Unreadable(_))));
        assert_eq!(store.unreadable(), 1);
        let truncated = dir.path().join("shards/ab/ab14/0.1");
        fs::write(&truncated, [0u8; HASH_BYTES - 1]).unwrap();
        assert!(matches!(store.read(&id("ab14", 1), ShardCheck::ByReader), Err(StoreError::Corrupt)));
        assert_eq!(store.quarantined(), 1);
        assert!(store.shards_of(&BlobId::new("ab14")).unwrap().is_empty(), "neither is listed");
    }

    #[test]
    fn a_durable_shard_whose_index_entry_fails_is_stored_all_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let index = Arc::new(FailingIndex::default());
        let store = ShardStore::open(dir.path(), index.clone()).unwrap();
        index.failing.store(true, std::sync::atomic::Ordering::Relaxed);
        let data = b"shard bytes".repeat(100);
        let hash = blake3::hash(&data);
        store.put(&id("ab16", 2), &data, &hash).unwrap();
        assert_eq!(store.get(&id("ab16", 2)).unwrap().0, data);
        assert_eq!(store.indexed_shards().unwrap(), 0, "no index entry");
        let (listed, _) = store.list_blobs(None, 10).unwrap();
        assert_eq!(listed.iter().map(|b| b.blob.0.as_str()).collect::<Vec<_>>(), ["ab16"], "in the inventory");
    }

    #[test]
    fn a_write_whose_rename_fails_leaves_no_temporary_file() {
        let (dir, store) = store();
        // A non-empty directory where the shard goes: the rename into place fails.
        let in_the_way = dir.path().join("shards/ab/ab14/0.3");
        fs::create_dir_all(in_the_way.join("x")).unwrap();
        let data = b"shard bytes".repeat(100);
        assert!(store.put(&id("ab14", 3), &data, &blake3::hash(&data)).is_err());
        let left: Vec<_> = fs::read_dir(dir.path().join("shards/ab/ab14"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["0.3"], "only the directory in the way");
    }

    #[test]
    fn a_blob_listing_after_any_id_a_peer_sends_answers_without_panicking() {
        let (_dir, store) = store();
        let data = b"shard bytes".repeat(10);
        store.put(&id("ab15", 0), &data, &blake3::hash(&data)).unwrap();
        // Not a well-formed blob id: compared by bytes, never sliced inside a character.
        for after in ["aé", "é", "a", "ab15", "zz"] {
            let (listed, _) = store.list_blobs(Some(&BlobId::new(after)), 10).unwrap();
            let expected: &[&str] = if after < "ab15" { &["ab15"] } else { &[] };
            assert_eq!(listed.iter().map(|b| b.blob.0.as_str()).collect::<Vec<_>>(), expected, "after {after:?}");
        }
    }

    #[test]
    fn both_sync_modes_store_whole_shards_in_new_and_existing_directories() {
        for mode in [SyncMode::Group, SyncMode::PerFile] {
            let dir = tempfile::tempdir().unwrap();
            let store = ShardStore::open_with(dir.path(), Arc::new(MemoryKv::default()), mode).unwrap();
            for (blob, shard) in [("cd01", 0), ("cd01", 1), ("cd02", 0), ("ef03", 5)] {
                let data = format!("{blob}/{shard}").repeat(50).into_bytes();
                store.put(&id(blob, shard), &data, &blake3::hash(&data)).unwrap();
                assert_eq!(store.get(&id(blob, shard)).unwrap().0, data, "{mode:?}");
            }
            assert_eq!(store.indexed_shards().unwrap(), 4, "{mode:?}");
            // No temporary file is left behind.
            let leftovers = fs::read_dir(dir.path().join("shards/cd/cd01")).unwrap().count();
            assert_eq!(leftovers, 2, "{mode:?}");
            // Large shards, data through the page cache and parity around it, read back whole
            // and are checked on read like any other.
            for (shard, caching) in [(0, Caching::Cached), (7, Caching::Bypassed), (8, Caching::Bypassed)] {
                let data: Vec<u8> = (0..300_017u32).map(|i| (i * 13 + shard) as u8).collect();
                let buffer = ShardBuffer::from_slice(&data).unwrap();
                store.put_buffer(&id("ab77", shard), buffer, &blake3::hash(&data), caching).unwrap();
                assert_eq!(store.get(&id("ab77", shard)).unwrap().0, data, "{mode:?} {caching:?}");
                let path = dir.path().join(format!("shards/ab/ab77/0.{shard}"));
                assert_eq!(fs::metadata(&path).unwrap().len(), (HASH_BYTES + data.len()) as u64);
            }
            let path = dir.path().join("shards/ab/ab77/0.8");
            let mut raw = fs::read(&path).unwrap();
            raw[HASH_BYTES + 299_000] ^= 1;
            fs::write(&path, raw).unwrap();
            assert!(matches!(store.get(&id("ab77", 8)), Err(StoreError::Corrupt)), "{mode:?}");
            let wrong = ShardBuffer::from_slice(b"not the hash's bytes").unwrap();
            assert!(matches!(
                store.put_buffer(&id("ab77", 9), wrong, &blake3::hash(b"other"), Caching::Bypassed),
                Err(StoreError::HashMismatch)
            ));
        }
    }

    /// Pages of `path` that the page cache holds (`mincore`; mapping a file faults nothing in).
    fn resident_pages(path: &Path) -> usize {
        use std::os::fd::AsRawFd as _;
        let file = File::open(path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        // SAFETY: a read-only shared mapping of a file this test owns, never dereferenced, and
        // unmapped before return; `resident` has a byte per page of it.
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
            let addr = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0);
            assert_ne!(addr, libc::MAP_FAILED);
            let mut resident = vec![0u8; len.div_ceil(page)];
            assert_eq!(libc::mincore(addr, len, resident.as_mut_ptr()), 0);
            libc::munmap(addr, len);
            resident.iter().filter(|b| **b & 1 == 1).count()
        }
    }

    /// Parity shards of 128 KiB or more are kept out of the page cache and data shards in it;
    /// with `AroundCache::All`, data shards too (all but the last partial page of each, written
    /// through the cache).
    #[test]
    fn large_shards_go_around_the_page_cache_as_the_node_is_set() {
        let dir = tempfile::tempdir().unwrap();
        // A filesystem that refuses direct I/O (shard_buffer's tests cover the fallback), or keeps
        // every page in memory whatever the write (tmpfs takes O_DIRECT since Linux 6.6), cannot
        // tell the two apart.
        let probe = dir.path().join("probe");
        let direct_leaves_no_page = crate::shard_buffer::open_direct(&probe)
            .and_then(|mut file| {
                use std::io::Write as _;
                let buffer = ShardBuffer::from_slice(&[0u8; 8192 - HASH_BYTES]).expect("a small buffer");
                file.write_all(buffer.seal(&blake3::hash(b"")).file())
            })
            .is_ok_and(|()| resident_pages(&probe) == 0);
        if !direct_leaves_no_page {
            eprintln!("skipped: direct writes leave their pages cached on {} (or are refused)", dir.path().display());
            return;
        }
        let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i * 7) as u8).collect();
        let pages = (HASH_BYTES + data.len()).div_ceil(4096);
        for (around, caching, cached) in [
            (AroundCache::Parity, Caching::Cached, true),
            (AroundCache::Parity, Caching::Bypassed, false),
            (AroundCache::All, Caching::Cached, false),
            (AroundCache::All, Caching::Bypassed, false),
        ] {
            let root = dir.path().join(format!("{around:?}-{caching:?}"));
            let store = ShardStore::open_with(&root, Arc::new(MemoryKv::default()), SyncMode::Group)
                .unwrap()
                .with_around_cache(around);
            let buffer = ShardBuffer::from_slice(&data).unwrap();
            store.put_buffer(&id("ab01", 0), buffer, &blake3::hash(&data), caching).unwrap();
            let resident = resident_pages(&root.join("shards/ab/ab01/0.0"));
            if cached {
                assert!(resident >= pages - 1, "{around:?} {caching:?}: {resident} of {pages} pages cached");
            } else {
                assert!(resident <= 1, "{around:?} {caching:?}: {resident} of {pages} pages cached");
            }
            assert_eq!(store.get(&id("ab01", 0)).unwrap().0, data, "read back whole");
        }
        assert_eq!("all".parse(), Ok(AroundCache::All));
        assert_eq!("parity".parse(), Ok(AroundCache::Parity));
        assert!("data".parse::<AroundCache>().is_err());
    }

    /// A shard whose file cannot be read (here: a directory where the file was, so read fails
    /// with an I/O error, and a file where the quarantine directory goes, so the move fails too)
    /// leaves the inventory, so repair rebuilds it; writing it again brings it back.
    #[test]
    fn an_unreadable_shard_leaves_the_inventory_until_it_is_written_again() {
        let (dir, store) = store();
        put_shards(&store, "ab12", 3, 100);
        let path = make_unreadable(dir.path(), "ab12", 1);
        fs::write(dir.path().join("quarantine"), b"not a directory").unwrap();
        assert!(matches!(store.get(&id("ab12", 1)), Err(StoreError::Unreadable(_))));
        assert_eq!(store.unreadable(), 1);
        assert_eq!(store.quarantined(), 0, "not counted as corrupt");
        assert!(store.last_quarantine_ms().is_some());
        let held: Vec<u32> = store.shards_of(&BlobId::new("ab12")).unwrap().iter().map(|h| h.id.shard.0).collect();
        assert_eq!(held, vec![0, 2], "the unreadable shard is still listed");
        // A restart on the same index still leaves it out.
        let reopened = ShardStore::open(dir.path(), store.index.clone()).unwrap();
        assert_eq!(reopened.shards_of(&BlobId::new("ab12")).unwrap().len(), 2, "listed again after a restart");
        drop(reopened);
        // The scrubber's read of it neither fails nor counts it.
        assert_eq!(store.scrub_one(&id("ab12", 1)).unwrap(), None);
        // Repair writes it again (the bad file replaced): listed again.
        fs::remove_dir(&path).unwrap();
        let data = vec![1u8; 100];
        store.put(&id("ab12", 1), &data, &blake3::hash(&data)).unwrap();
        assert_eq!(store.shards_of(&BlobId::new("ab12")).unwrap().len(), 3);
        assert_eq!(store.get(&id("ab12", 1)).unwrap().0, data);
    }

    /// A write lets go of the mark of the copy it replaced, never of one a failed read of its own
    /// copy wrote after the rename (the steps of `put_buffer` taken one at a time, with a read
    /// failing between the rename and the index entry).
    #[test]
    fn a_write_lets_go_of_the_mark_of_the_copy_it_replaced_and_of_no_later_one() {
        let (dir, store) = store();
        let data = vec![3u8; 100];
        let shard = id("ab13", 0);
        store.put(&shard, &data, &blake3::hash(&data)).unwrap();
        let path = dir.path().join("shards/ab/ab13/0.0");
        let good = fs::read(&path).unwrap();
        fs::write(dir.path().join("quarantine"), b"not a directory").unwrap();
        let fail_reads = |fail: bool| {
            let _ = fs::remove_file(&path);
            let _ = fs::remove_dir(&path);
            if fail { fs::create_dir(&path).unwrap() } else { fs::write(&path, &good).unwrap() }
        };
        let listed = |store: &ShardStore| store.shards_of(&BlobId::new("ab13")).unwrap().len();
        let hash = blake3::hash(&data);
        fail_reads(true);
        assert!(matches!(store.get(&shard), Err(StoreError::Unreadable(_))));
        assert_eq!(listed(&store), 0, "marked where it lies");

        // A repair's copy is renamed over the marked one, then fails its reads and is marked
        // anew before the write lets go of the first mark: the second mark stands.
        let replaced = store.set_aside_records(&shard).unwrap();
        assert!(replaced.mark.is_some());
        fail_reads(false);
        fail_reads(true);
        assert!(matches!(store.get(&shard), Err(StoreError::Unreadable(_))));
        store.index_placed(&shard, &hash, data.len(), replaced).unwrap();
        assert_eq!(listed(&store), 0, "a copy that failed its reads after its write was listed again");

        // A good copy replaces that one: its mark goes, and the copy is listed.
        let replaced = store.set_aside_records(&shard).unwrap();
        fail_reads(false);
        store.index_placed(&shard, &hash, data.len(), replaced).unwrap();
        assert_eq!(listed(&store), 1);
        assert_eq!(store.get(&shard).unwrap().0, data);
    }

    /// A blob whose every shard is marked unreadable lists no shard, but is as old as its files:
    /// the orphan sweep must be able to judge it (it used to look brand new forever).
    #[test]
    fn a_blob_whose_shards_are_all_marked_is_as_old_as_its_files() {
        let (dir, store) = store();
        let data = vec![7u8; 100];
        store.put(&id("cd34", 0), &data, &blake3::hash(&data)).unwrap();
        let path = dir.path().join("shards/cd/cd34/0.0");
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        fs::write(dir.path().join("quarantine"), b"not a directory").unwrap();
        assert!(matches!(store.get(&id("cd34", 0)), Err(StoreError::Unreadable(_))));
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        File::open(&path).unwrap().set_modified(hour_ago).unwrap();
        assert!(store.shards_of(&BlobId::new("cd34")).unwrap().is_empty(), "no copy to count on");
        let (blobs, complete) = store.list_blobs(None, 10).unwrap();
        assert!(complete);
        assert_eq!(blobs.len(), 1);
        assert!(blobs[0].age_ms >= 3_590_000, "as old as its file, not {} ms", blobs[0].age_ms);
    }

    /// Temporary files a crash left before their rename: one alone in its blob directory ages
    /// the blob (so the orphan sweep can judge it; it used to look brand new for ever), and one
    /// older than `TEMPORARY_ABANDONED_MS` is removed by the listing, while a young one (a write
    /// in progress) and the finished shards stay.
    #[test]
    fn temporary_files_a_crash_left_age_their_blob_and_are_removed_once_abandoned() {
        let (dir, store) = store();
        let aged = |path: &Path, secs: u64| {
            fs::write(path, b"half a shard").unwrap();
            let then = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
            File::options().write(true).open(path).unwrap().set_modified(then).unwrap();
        };
        fs::create_dir_all(dir.path().join("shards/ee/ee01")).unwrap();
        let lone = dir.path().join("shards/ee/ee01/.0.3.tmpAAAA");
        aged(&lone, 30 * 60);
        let data = vec![9u8; 100];
        store.put(&id("ee02", 1), &data, &blake3::hash(&data)).unwrap();
        let abandoned = dir.path().join("shards/ee/ee02/.0.4.tmpBBBB");
        aged(&abandoned, 2 * 3600);
        let writing = dir.path().join("shards/ee/ee02/.0.5.tmpCCCC");
        aged(&writing, 1);

        let (blobs, complete) = store.list_blobs(None, 10).unwrap();
        assert!(complete);
        let listed: Vec<(&str, i64)> = blobs.iter().map(|b| (b.blob.0.as_str(), b.age_ms)).collect();
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(listed[0].0 == "ee01" && listed[0].1 >= 1_790_000, "as old as its temporary file: {listed:?}");
        assert!(listed[1].0 == "ee02" && listed[1].1 < 60_000, "as young as its newest file: {listed:?}");
        assert!(lone.exists(), "not abandoned yet: the orphan sweep judges its blob");
        assert!(!abandoned.exists(), "a temporary file past the limit is removed");
        assert!(writing.exists(), "a write in progress keeps its file");
        assert_eq!(store.get(&id("ee02", 1)).unwrap().0, data);
        assert_eq!(store.shards_of(&BlobId::new("ee02")).unwrap().len(), 1);
    }

    /// Set-aside copies re-examined: one that reads whole again goes back in place (listed,
    /// indexed, readable); one that still fails stays; one whose shard has a copy in place again
    /// (a repair's), or whose blob is gone, is removed.
    #[test]
    fn a_set_aside_copy_that_reads_whole_again_is_restored_and_one_made_redundant_is_dropped() {
        let (dir, store) = store();
        let quarantine = dir.path().join("quarantine");
        let only_entry = || {
            let entries: Vec<_> = fs::read_dir(&quarantine).unwrap().map(|e| e.unwrap().path()).collect();
            assert_eq!(entries.len(), 1, "{entries:?}");
            entries[0].clone()
        };
        let (a, b, c) = (vec![1u8; 300], vec![2u8; 300], vec![3u8; 300]);
        store.put(&id("ee03", 2), &a, &blake3::hash(&a)).unwrap();
        store.put(&id("ee03", 3), &b, &blake3::hash(&b)).unwrap();
        store.put(&id("ee04", 1), &c, &blake3::hash(&c)).unwrap();

        // Unreadable (its path is a directory now): set aside, and still failing when re-examined.
        let path = dir.path().join("shards/ee/ee03/0.2");
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(matches!(store.get(&id("ee03", 2)), Err(StoreError::Unreadable(_))));
        assert_eq!(store.shards_of(&BlobId::new("ee03")).unwrap().len(), 1);
        assert_eq!(store.reexamine_set_aside().unwrap(), SetAsideReexamined { restored: 0, dropped: 0, kept: 1 });
        // The medium recovers: the copy reads whole, and is back in service.
        let set_aside = only_entry();
        fs::remove_dir(&set_aside).unwrap();
        fs::write(&set_aside, [blake3::hash(&a).as_bytes().as_slice(), &a].concat()).unwrap();
        assert_eq!(store.reexamine_set_aside().unwrap(), SetAsideReexamined { restored: 1, dropped: 0, kept: 0 });
        assert_eq!(store.get(&id("ee03", 2)).unwrap().0, a);
        assert_eq!(store.shards_of(&BlobId::new("ee03")).unwrap().len(), 2);
        assert_eq!(store.indexed_shards().unwrap(), 3);
        assert_eq!(fs::read_dir(&quarantine).unwrap().count(), 0);

        // Corrupt, then a repair writes the shard again: the set-aside copy is dropped.
        let path = dir.path().join("shards/ee/ee03/0.3");
        let mut raw = fs::read(&path).unwrap();
        raw[HASH_BYTES + 1] ^= 1;
        fs::write(&path, raw).unwrap();
        assert!(matches!(store.get(&id("ee03", 3)), Err(StoreError::Corrupt)));
        only_entry();
        store.put(&id("ee03", 3), &b, &blake3::hash(&b)).unwrap();
        assert_eq!(store.reexamine_set_aside().unwrap(), SetAsideReexamined { restored: 0, dropped: 1, kept: 0 });
        assert_eq!(store.get(&id("ee03", 3)).unwrap().0, b);

        // Set aside, then its blob deleted: dropped, nothing recreated.
        let path = dir.path().join("shards/ee/ee04/0.1");
        let mut raw = fs::read(&path).unwrap();
        raw[HASH_BYTES] ^= 1;
        fs::write(&path, raw).unwrap();
        assert!(matches!(store.get(&id("ee04", 1)), Err(StoreError::Corrupt)));
        store.delete_blob(&BlobId::new("ee04")).unwrap();
        assert_eq!(store.reexamine_set_aside().unwrap(), SetAsideReexamined { restored: 0, dropped: 1, kept: 0 });
        assert!(!dir.path().join("shards/ee/ee04").exists());
        assert_eq!(fs::read_dir(&quarantine).unwrap().count(), 0);

        // A good set-aside copy, and in place a copy that went bad unnoticed: the good one
        // replaces it (a copy in place counts only if it reads whole).
        let good = fs::read(dir.path().join("shards/ee/ee03/0.3")).unwrap();
        fs::write(quarantine.join("ee03.0.3.x1"), &good).unwrap();
        let mut bad = good.clone();
        bad[HASH_BYTES + 7] ^= 1;
        fs::write(dir.path().join("shards/ee/ee03/0.3"), &bad).unwrap();
        assert_eq!(store.reexamine_set_aside().unwrap(), SetAsideReexamined { restored: 1, dropped: 0, kept: 0 });
        assert_eq!(store.get(&id("ee03", 3)).unwrap().0, b);
        assert_eq!(fs::read_dir(&quarantine).unwrap().count(), 0);

        // A copy in place that a write has not yet synced (it may take it back) makes no
        // set-aside copy redundant; once the write is done, it does.
        fs::write(quarantine.join("ee03.0.3.x2"), &good).unwrap();
        let writing = Placing::enter(&store.placing, &id("ee03", 3));
        assert_eq!(store.reexamine_set_aside().unwrap(), SetAsideReexamined { restored: 0, dropped: 0, kept: 1 });
        drop(writing);
        assert_eq!(store.reexamine_set_aside().unwrap(), SetAsideReexamined { restored: 0, dropped: 1, kept: 0 });
    }

    /// An index whose writes fail while `failing` is set (a disk remounted read-only).
    #[derive(Default)]
    struct FailingIndex {
        inner: MemoryKv,
        failing: std::sync::atomic::AtomicBool,
    }

    impl KvStore for FailingIndex {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ignifuge_kv::KvError> {
            self.inner.get(key)
        }
        fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), ignifuge_kv::KvError> {
            if self.failing.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(ignifuge_kv::KvError::Engine("read-only file system".into()));
            }
            self.inner.write(batch, durability)
        }
        fn scan_bytes(
            &self,
            start: &[u8],
            end: Option<&[u8]>,
            limit: usize,
            bytes_max: usize,
        ) -> Result<Vec<ignifuge_kv::KvPair>, ignifuge_kv::KvError> {
            self.inner.scan_bytes(start, end, limit, bytes_max)
        }
        fn scan_visit(
            &self,
            start: &[u8],
            end: Option<&[u8]>,
            limit: usize,
            bytes_max: usize,
            visit: &mut dyn FnMut(&[u8], &[u8]) -> Option<usize>,
        ) -> Result<(), ignifuge_kv::KvError> {
            self.inner.scan_visit(start, end, limit, bytes_max, visit)
        }
        fn last(&self, start: &[u8], end: &[u8]) -> Result<Option<ignifuge_kv::KvPair>, ignifuge_kv::KvError> {
            self.inner.last(start, end)
        }
        fn snapshot(&self) -> Result<Box<dyn ignifuge_kv::KvSnapshot>, ignifuge_kv::KvError> {
            self.inner.snapshot()
        }
    }

    /// A shard that fails its reads on a disk that refuses both its move to quarantine and its
    /// unreadable mark (read-only after an error) still leaves the inventory, in memory; it is
    /// listed again once it reads whole, or once written again.
    #[test]
    fn a_shard_set_aside_with_neither_its_move_nor_its_mark_written_leaves_the_inventory() {
        let dir = tempfile::tempdir().unwrap();
        let index = Arc::new(FailingIndex::default());
        let store = ShardStore::open(dir.path(), index.clone()).unwrap();
        let data = vec![4u8; 200];
        store.put(&id("ee05", 0), &data, &blake3::hash(&data)).unwrap();
        store.put(&id("ee05", 1), &data, &blake3::hash(&data)).unwrap();
        fs::write(dir.path().join("quarantine"), b"not a directory").unwrap();
        index.failing.store(true, std::sync::atomic::Ordering::Relaxed);
        let path = dir.path().join("shards/ee/ee05/0.0");
        let good = fs::read(&path).unwrap();
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(matches!(store.get(&id("ee05", 0)), Err(StoreError::Unreadable(_))));
        let listed = |store: &ShardStore| -> Vec<u32> {
            store.shards_of(&BlobId::new("ee05")).unwrap().iter().map(|s| s.id.shard.0).collect()
        };
        assert_eq!(listed(&store), [1], "the failed copy is not counted");
        // Still failing when re-examined: still out.
        assert_eq!(store.reexamine_set_aside().unwrap().kept, 1);
        assert_eq!(listed(&store), [1]);
        // It reads whole again: listed again.
        fs::remove_dir(&path).unwrap();
        fs::write(&path, &good).unwrap();
        assert_eq!(store.reexamine_set_aside().unwrap().restored, 1);
        assert_eq!(listed(&store), [0, 1]);
        // Set aside again, then written again (a repair): listed.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(matches!(store.get(&id("ee05", 0)), Err(StoreError::Unreadable(_))));
        assert_eq!(listed(&store), [1]);
        fs::remove_dir(&path).unwrap();
        index.failing.store(false, std::sync::atomic::Ordering::Relaxed);
        store.put(&id("ee05", 0), &data, &blake3::hash(&data)).unwrap();
        assert_eq!(listed(&store), [0, 1]);

        // Set aside in memory, then its blob deleted: the record goes with it.
        index.failing.store(true, std::sync::atomic::Ordering::Relaxed);
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(matches!(store.get(&id("ee05", 0)), Err(StoreError::Unreadable(_))));
        index.failing.store(false, std::sync::atomic::Ordering::Relaxed);
        store.delete_blob(&BlobId::new("ee05")).unwrap();
        assert_eq!(store.reexamine_set_aside().unwrap(), SetAsideReexamined { restored: 0, dropped: 1, kept: 0 });
        assert_eq!(store.reexamine_set_aside().unwrap(), SetAsideReexamined::default(), "nothing left to look at");
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
    fn a_corrupt_shard_is_quarantined_on_read_and_leaves_the_inventory() {
        let (dir, store) = store();
        let data = b"abc".repeat(50);
        store.put(&id("ab12", 2), &data, &blake3::hash(&data)).unwrap();
        assert_eq!(store.shards_of(&BlobId::new("ab12")).unwrap().len(), 1);
        let path = dir.path().join("shards/ab/ab12/0.2");
        let mut raw = fs::read(&path).unwrap();
        raw[HASH_BYTES] ^= 1;
        fs::write(&path, raw).unwrap();
        assert_eq!(store.scrub_one(&id("ab12", 2)).unwrap(), None);
        assert!(store.shards_of(&BlobId::new("ab12")).unwrap().is_empty());
        assert_eq!(fs::read_dir(dir.path().join("quarantine")).unwrap().count(), 1);
        assert_eq!(store.indexed_shards().unwrap(), 0);
    }

    #[test]
    fn blobs_are_listed_in_id_order_in_pages() {
        let (_dir, store) = store();
        let names = ["ff01", "0a00", "ab12", "ab03", "10ee"];
        for name in names {
            let data = name.as_bytes().to_vec();
            store.put(&id(name, 1), &data, &blake3::hash(&data)).unwrap();
            store.put(&id(name, 4), &data, &blake3::hash(&data)).unwrap();
        }
        let (first, complete) = store.list_blobs(None, 2).unwrap();
        assert!(!complete);
        let listed: Vec<_> = first.iter().map(|b| b.blob.0.clone()).collect();
        assert_eq!(listed, ["0a00", "10ee"]);
        let (rest, complete) = store.list_blobs(Some(&first[1].blob), 10).unwrap();
        assert!(complete);
        let listed: Vec<_> = rest.iter().map(|b| b.blob.0.clone()).collect();
        assert_eq!(listed, ["ab03", "ab12", "ff01"]);
        assert!(rest.iter().all(|b| b.newest_ms > 0));
        let shards: usize = rest.iter().chain(&first).map(|b| store.shards_of(&b.blob).unwrap().len()).sum();
        assert_eq!(shards, 10);
        store.delete_shard(&id("ab12", 4)).unwrap();
        store.delete_shard(&id("ab12", 4)).unwrap();
        let left: Vec<u32> = store.shards_of(&BlobId::new("ab12")).unwrap().iter().map(|s| s.id.shard.0).collect();
        assert_eq!(left, [1]);
    }

    /// Shards moved away leave no empty blob directory behind, unless the quarantine holds a
    /// copy of the blob (whose re-examination would take the missing directory for the blob
    /// gone, and drop it); an inventory removes the empty ones such a node already has.
    #[test]
    fn a_blob_directory_goes_with_its_last_shard_but_not_while_the_quarantine_holds_one() {
        let (dir, store) = store();
        let put = |blob: &str, shard: u32| {
            let data = vec![shard as u8; 100];
            store.put(&id(blob, shard), &data, &blake3::hash(&data)).unwrap();
        };
        put("ab12", 1);
        put("ab12", 2);
        let blob_dir = dir.path().join("shards/ab/ab12");
        store.delete_shard(&id("ab12", 1)).unwrap();
        assert!(blob_dir.exists(), "a shard is left");
        let modified_ms = store.shards_of(&BlobId::new("ab12")).unwrap()[0].modified_ms;
        store.delete_shard_if_modified_at(&id("ab12", 2), modified_ms).unwrap();
        assert!(!blob_dir.exists(), "the last shard took the directory with it");
        put("ab12", 3);
        assert_eq!(store.get(&id("ab12", 3)).unwrap().0, vec![3u8; 100], "written again into a new directory");

        // One shard quarantined, the other moved away: the directory stays, and the set-aside
        // copy is kept by re-examination (still unreadable: nothing better in place).
        put("cd34", 1);
        put("cd34", 2);
        let path = dir.path().join("shards/cd/cd34/0.1");
        let mut raw = fs::read(&path).unwrap();
        raw[HASH_BYTES] ^= 1;
        fs::write(&path, raw).unwrap();
        assert_eq!(store.scrub_one(&id("cd34", 1)).unwrap(), None);
        store.delete_shard(&id("cd34", 2)).unwrap();
        assert!(dir.path().join("shards/cd/cd34").exists(), "the quarantine holds a copy of the blob");
        assert!(store.list_blobs(None, 10).unwrap().0.iter().any(|b| b.blob.0 == "cd34"));
        store.reexamine_set_aside().unwrap();
        assert_eq!(fs::read_dir(dir.path().join("quarantine")).unwrap().count(), 1, "the set-aside copy is kept");
        // A removal whose directory another removal took away meanwhile is done.
        sync_removal(&dir.path().join("shards/cd/cd99")).unwrap();
        // A store opened again knows what its quarantine holds.
        drop(store);
        let store = ShardStore::open(dir.path(), Arc::new(MemoryKv::default())).unwrap();
        store.list_blobs(None, 10).unwrap();
        assert!(dir.path().join("shards/cd/cd34").exists(), "the quarantine, listed at start, holds a copy");

        // Empty directories a node already has are removed by the inventory, not listed.
        fs::create_dir_all(dir.path().join("shards/ef/ef56")).unwrap();
        let listed: Vec<String> = store.list_blobs(None, 10).unwrap().0.into_iter().map(|b| b.blob.0).collect();
        assert_eq!(listed, ["ab12", "cd34"]);
        assert!(!dir.path().join("shards/ef/ef56").exists());
    }

    /// A write whose blob directory is removed (emptied by another thread) between its creation
    /// and the write's file makes it again.
    #[test]
    fn a_write_makes_its_blob_directory_again_if_it_is_removed_under_it() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ab/ab12");
        let mut removals = 0;
        let file = in_blob_dir(&dir, || {
            if removals < 2 {
                removals += 1;
                fs::remove_dir(&dir).unwrap();
            }
            File::create(dir.join(".0.1.tmp"))
        });
        assert!(file.is_ok() && dir.join(".0.1.tmp").exists(), "{file:?}");
        assert_eq!(removals, 2);
        // Removed every time: the error is returned, never a file elsewhere.
        let always = in_blob_dir(&dir.with_file_name("ab13"), || {
            fs::remove_dir(root.path().join("ab/ab13")).unwrap();
            File::create(root.path().join("ab/ab13/.0.1.tmp"))
        });
        assert_eq!(always.unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn deleting_a_blob_removes_all_its_shards() {
        let (_dir, store) = store();
        put_shards(&store, "cd34", 3, 10);
        store.delete_blob(&BlobId::new("cd34")).unwrap();
        assert_eq!(store.indexed_shards().unwrap(), 0);
        assert!(matches!(store.get(&id("cd34", 1)), Err(StoreError::NotFound)));
    }

    #[test]
    fn a_batch_delete_removes_the_named_blobs_only_in_both_sync_modes() {
        for mode in [SyncMode::Group, SyncMode::PerFile] {
            let dir = tempfile::tempdir().unwrap();
            let store = ShardStore::open_with(dir.path(), Arc::new(MemoryKv::default()), mode).unwrap();
            // Blobs under different parent directories (their first two hex digits), so the
            // group sync is the one used in group mode.
            let names = ["aa01", "bb02", "cc03", "dd04", "ee05"];
            for name in names {
                put_shards(&store, name, 2, 10);
            }
            let doomed: Vec<BlobId> = ["aa01", "bb02", "cc03", "dd04", "ff99"].into_iter().map(BlobId::new).collect();
            let deleted = store.delete_blobs(&doomed).unwrap();
            assert_eq!((deleted.deleted, deleted.failed.len()), (4, 0), "{mode:?}: ff99 never existed");
            for name in &names[..4] {
                assert!(matches!(store.get(&id(name, 0)), Err(StoreError::NotFound)), "{mode:?} {name}");
            }
            assert!(store.get(&id("ee05", 1)).is_ok(), "{mode:?}: a blob not named is kept");
            assert_eq!(store.indexed_shards().unwrap(), 2, "{mode:?}");
            assert_eq!(store.delete_blobs(&doomed).unwrap().deleted, 0, "{mode:?}: deleting again is harmless");
            assert!(matches!(store.delete_blobs(&[BlobId::new("../x")]), Err(StoreError::BadId)), "{mode:?}");
        }
    }

    #[test]
    fn a_blob_that_cannot_be_removed_does_not_stop_the_others() {
        let (dir, store) = store();
        for name in ["aa01", "cc03"] {
            let data = vec![7u8; 10];
            store.put(&id(name, 0), &data, &blake3::hash(&data)).unwrap();
        }
        // What should be a blob's directory is a file: removing it fails (ENOTDIR), as a disk
        // error would.
        std::fs::create_dir_all(dir.path().join("shards/bb")).unwrap();
        std::fs::write(dir.path().join("shards/bb/bb02"), b"not a directory").unwrap();
        let doomed: Vec<BlobId> = ["aa01", "bb02", "cc03"].into_iter().map(BlobId::new).collect();
        let deleted = store.delete_blobs(&doomed).unwrap();
        assert_eq!(deleted.deleted, 2);
        assert_eq!(deleted.failed.iter().map(|(b, _)| b.0.as_str()).collect::<Vec<_>>(), ["bb02"]);
        assert!(matches!(store.get(&id("cc03", 0)), Err(StoreError::NotFound)), "the blob after the failure went too");
        assert_eq!(store.indexed_shards().unwrap(), 0);
        assert!(store.delete_blob(&BlobId::new("bb02")).is_err(), "a single delete reports the failure");
    }
}
