use crate::{Durability, KvError, KvOp, KvPair, KvSnapshot, KvStore, WriteBatch};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// At most one attempt to open a store again (after a failed write) in this long.
const REOPEN_INTERVAL: Duration = Duration::from_secs(1);
/// Free space a store is opened again with, beyond its write-ahead log: opening replays the log
/// into a table file and writes a new manifest, so a store opened on a disk still full would
/// fail to open and serve no reads either.
const REOPEN_SPARE_BYTES: u64 = 16 * 1024 * 1024;

/// RocksDB engine. Writes marked `Synced` sync the WAL before returning.
///
/// Once a write has failed (a full disk, an I/O error), RocksDB refuses every later write until
/// the store is opened again, as a restart of the process would: a node whose disk filled for a
/// moment could then never write again, though its disk has room. So after a failed write the
/// next write first opens the store again (`recover`), once nothing else holds it (an open
/// snapshot, a scan under way) and its file system has room for the reopening; meanwhile reads
/// go on from the store as it is. What a reopened store holds is what a restarted process would
/// find: every write that returned Ok, and perhaps the failed one (whose caller had its error).
/// Should the reopening itself fail, the store is opened read-only until the next attempt (read-only
/// needs no room, so it is tried whenever the store is not open at all).
pub struct RocksKv {
    path: PathBuf,
    /// None only while a reopening after a failed write could open the store neither for
    /// writing nor read-only (every operation then fails). Read-only while only that worked.
    db: RwLock<Option<Arc<rocksdb::DB>>>,
    /// A write failed and the store has not been opened again since.
    failed: AtomicBool,
    /// When it was last tried, and why it is needed.
    recovery: Mutex<Recovery>,
}

#[derive(Default)]
struct Recovery {
    last_attempt: Option<Instant>,
    cause: String,
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
        Ok(Self {
            path: path.to_path_buf(),
            db: RwLock::new(Some(Arc::new(open_db(path, create)?))),
            failed: AtomicBool::new(false),
            recovery: Mutex::new(Recovery::default()),
        })
    }

    fn db(&self) -> Result<Arc<rocksdb::DB>, KvError> {
        if let Some(db) = self.db.read().unwrap_or_else(PoisonError::into_inner).as_ref() {
            return Ok(db.clone());
        }
        self.recover();
        let cause = self.recovery.lock().unwrap_or_else(PoisonError::into_inner).cause.clone();
        self.db.read().unwrap_or_else(PoisonError::into_inner).clone().ok_or_else(|| {
            KvError::Engine(format!("the store at {} could not be opened again: {cause}", self.path.display()))
        })
    }

    /// After a failed write: opens the store again, if the last attempt is over `REOPEN_INTERVAL`
    /// old, its file system has room (`room_to_reopen`), and nothing else holds it. Should the
    /// opening fail (the disk filled again meanwhile), the store is opened read-only, which writes
    /// nothing, so that reads go on; the next write tries again.
    fn recover(&self) {
        if !self.failed.load(Ordering::Acquire) {
            return;
        }
        // What happened, logged once both locks are released (a log write can fail, on a full
        // disk above all, and must not poison them).
        let outcome = {
            let mut recovery = self.recovery.lock().unwrap_or_else(PoisonError::into_inner);
            if !self.failed.load(Ordering::Acquire)
                || recovery.last_attempt.is_some_and(|at| at.elapsed() < REOPEN_INTERVAL)
            {
                return;
            }
            recovery.last_attempt = Some(Instant::now());
            let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
            if !room_to_reopen(&self.path) {
                if slot.is_none() {
                    // Reads at least: a read-only store writes nothing, so it needs no room.
                    *slot = rocksdb::DB::open_for_read_only(&options(), &self.path, false).ok().map(Arc::new);
                }
                return;
            }
            if slot.as_ref().is_some_and(|db| Arc::strong_count(db) > 1) {
                return; // a snapshot or an operation under way holds it: next time
            }
            // Closed before it is opened again: RocksDB locks its directory.
            *slot = None;
            match open_db(&self.path, false) {
                Ok(db) => {
                    *slot = Some(Arc::new(db));
                    self.failed.store(false, Ordering::Release);
                    Ok(recovery.cause.clone())
                }
                Err(e) => {
                    recovery.cause = e.to_string();
                    *slot = rocksdb::DB::open_for_read_only(&options(), &self.path, false).ok().map(Arc::new);
                    Err((e, slot.is_some()))
                }
            }
        };
        match outcome {
            Ok(after) => {
                tracing::warn!(store = %self.path.display(), %after, "store opened again after a failed write")
            }
            Err((error, read_only)) => tracing::error!(
                store = %self.path.display(), %error, read_only,
                "could not open the store again after a failed write"
            ),
        }
    }

    /// Marks the store to be opened again; the first failure is kept as the cause (later writes
    /// fail with RocksDB's background error, or as writes to a read-only store).
    fn write_failed(&self, error: &rocksdb::Error) {
        let mut recovery = self.recovery.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.failed.swap(true, Ordering::AcqRel) {
            recovery.last_attempt = None;
            recovery.cause = error.to_string();
        }
    }

    /// One of RocksDB's integer properties (`rocksdb.estimate-table-readers-mem`, ...), if it has it.
    pub fn int_property(&self, name: &str) -> Result<Option<u64>, KvError> {
        self.db()?.property_int_value(name).map_err(engine)
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
        self.db()?.ingest_external_file_opts(&options, files.to_vec()).map_err(engine)
    }
}

fn open_db(path: &Path, create: bool) -> Result<rocksdb::DB, KvError> {
    let mut options = options();
    options.create_if_missing(create);
    // Small daemons share 2 cores with the data path: keep background work modest.
    options.increase_parallelism(2);
    options.set_max_background_jobs(2);
    rocksdb::DB::open(&options, path).map_err(engine)
}

/// Whether the file system of the store at `path` has room to open it again: its write-ahead
/// log files (`*.log`, replayed into a table file on opening) and `REOPEN_SPARE_BYTES` more.
fn room_to_reopen(path: &Path) -> bool {
    let wal_bytes: u64 = std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    available_bytes(path).is_some_and(|free| free >= wal_bytes + REOPEN_SPARE_BYTES)
}

/// Bytes an unprivileged writer may still use on the file system of `path`.
fn available_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a statvfs to fill.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// What every store and table file is written with.
fn options() -> rocksdb::Options {
    let mut options = rocksdb::Options::default();
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options
}

impl KvStore for RocksKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.db()?.get(key).map_err(engine)
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), KvError> {
        self.recover();
        let mut rb = rocksdb::WriteBatch::default();
        for op in batch.ops {
            match op {
                KvOp::Put(k, v) => rb.put(k, v),
                KvOp::Delete(k) => rb.delete(k),
            }
        }
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(durability == Durability::Synced);
        self.db()?.write_opt(rb, &options).map_err(|e| {
            self.write_failed(&e);
            engine(e)
        })
    }

    fn scan_bytes(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        bytes_max: usize,
    ) -> Result<Vec<KvPair>, KvError> {
        collect(
            self.db()?.iterator_opt(rocksdb::IteratorMode::From(start, rocksdb::Direction::Forward), bounded(end)),
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
        let db = self.db()?;
        let mut iter = db.raw_iterator_opt(bounded(end));
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
        match self.db()?.iterator_opt(rocksdb::IteratorMode::End, read).next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item.map_err(engine)?;
                Ok(Some((k.into_vec(), v.into_vec())))
            }
        }
    }

    fn snapshot(&self) -> Result<Box<dyn KvSnapshot>, KvError> {
        let db = self.db()?;
        let snapshot = db.snapshot();
        // SAFETY: the snapshot borrows the DB; `RocksSnapshot` owns an `Arc` of that same DB and
        // declares `snapshot` before `_db`, so the snapshot is released before the last
        // reference to the DB can be dropped. The 'static lifetime never escapes the struct.
        let snapshot: rocksdb::Snapshot<'static> = unsafe { std::mem::transmute(snapshot) };
        Ok(Box::new(RocksSnapshot { snapshot, _db: db }))
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

    /// A file system of its own, small enough to fill (a tmpfs the test mounts: the tests run as
    /// root, as the e2e tests' network namespaces need), unmounted when dropped.
    struct SmallDisk {
        dir: tempfile::TempDir,
    }

    impl SmallDisk {
        fn new(bytes: u64) -> Self {
            Self::with_options(&format!("size={bytes}"))
        }

        fn with_options(options: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let status = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", options, "tmpfs"])
                .arg(dir.path())
                .status()
                .expect("running mount");
            assert!(status.success(), "mounting a tmpfs (the tests run as root)");
            Self { dir }
        }

        fn path(&self) -> &Path {
            self.dir.path()
        }

        /// Fills what is left with one file, and returns its path.
        fn fill(&self) -> PathBuf {
            use std::io::Write;
            let path = self.path().join("filler");
            let mut file = std::fs::File::create(&path).unwrap();
            for size in [1 << 20, 4096, 1] {
                while file.write_all(&vec![7u8; size]).is_ok() {}
            }
            path
        }
    }

    impl Drop for SmallDisk {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }

    fn put(kv: &RocksKv, key: &str) -> Result<(), KvError> {
        kv.write(WriteBatch { ops: vec![KvOp::Put(key.as_bytes().to_vec(), vec![1u8; 1000])] }, Durability::Synced)
    }

    /// RocksDB refuses every write after one failed (a full disk here) until it is opened again:
    /// the store opens it again on the next write once its disk has room and nothing holds it,
    /// and reads go on meanwhile.
    #[test]
    fn a_store_whose_disk_filled_takes_writes_again_once_it_has_room() {
        let disk = SmallDisk::new(48 << 20);
        let kv = RocksKv::open(&disk.path().join("db")).unwrap();
        put(&kv, "before").unwrap();
        let filler = disk.fill();
        let refused = (0..10_000).map(|i| put(&kv, &format!("full-{i}"))).find_map(Result::err);
        assert!(refused.is_some(), "a full disk took every write");
        assert!(put(&kv, "still-full").is_err(), "no room to open it again");
        assert!(kv.get(b"before").unwrap().is_some(), "reads go on while the disk is full");

        std::fs::remove_file(&filler).unwrap();
        let held = kv.snapshot().unwrap();
        std::thread::sleep(REOPEN_INTERVAL);
        assert!(put(&kv, "held").is_err(), "a snapshot holds the store: not opened again under it");
        assert!(held.get(b"before").unwrap().is_some());
        drop(held);
        std::thread::sleep(REOPEN_INTERVAL);
        put(&kv, "after").expect("opened again once it had room and nothing held it");
        assert!(kv.get(b"before").unwrap().is_some());
        assert!(kv.get(b"after").unwrap().is_some());
        assert!(kv.get(b"held").unwrap().is_none(), "a refused write is not there");
    }

    /// Should the reopening fail where its disk has room (here: no inode left for the files a
    /// writable opening creates, while bytes are free), the store is opened read-only: reads go
    /// on, writes are refused as writes to a read-only store, and a later write opens it again.
    #[test]
    fn a_store_that_cannot_be_opened_again_for_writing_is_read_only_until_it_can() {
        let disk = SmallDisk::with_options("size=48m,nr_inodes=200");
        let kv = RocksKv::open(&disk.path().join("db")).unwrap();
        put(&kv, "before").unwrap();
        let filler = disk.fill();
        let refused = (0..10_000).map(|i| put(&kv, &format!("full-{i}"))).find_map(Result::err);
        assert!(refused.is_some(), "a full disk took every write");
        // Every inode taken, then the bytes freed: room by the byte count, none for a new file.
        let inodes = disk.path().join("inodes");
        std::fs::create_dir(&inodes).unwrap();
        let mut taken = 0;
        let mut take_all = || {
            while std::fs::File::create(inodes.join(format!("{taken}"))).is_ok() {
                taken += 1;
            }
        };
        take_all();
        std::fs::remove_file(&filler).unwrap();
        take_all();
        assert!(room_to_reopen(&disk.path().join("db")), "bytes are free");

        std::thread::sleep(REOPEN_INTERVAL);
        let refused = put(&kv, "no-inode").unwrap_err().to_string();
        assert!(refused.contains("read only"), "the writable opening failed, the read-only one did not: {refused}");
        assert!(kv.get(b"before").unwrap().is_some(), "reads go on from the read-only store");
        assert!(kv.scan(b"", None, 10).unwrap().iter().any(|(k, _)| k == b"before"));
        std::thread::sleep(REOPEN_INTERVAL);
        assert!(put(&kv, "still-no-inode").unwrap_err().to_string().contains("read only"));

        std::fs::remove_dir_all(&inodes).unwrap();
        std::thread::sleep(REOPEN_INTERVAL);
        put(&kv, "after").expect("opened for writing again once it could be");
        assert!(kv.get(b"before").unwrap().is_some());
        assert!(kv.get(b"after").unwrap().is_some());
        assert!(kv.get(b"no-inode").unwrap().is_none(), "a refused write is not there");
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
