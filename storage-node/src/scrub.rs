//! The scrubber: re-reads every shard on a schedule and checks its BLAKE3 hash, rate-limited so
//! that client traffic keeps the disk. A shard that fails is quarantined by the store; it then
//! disappears from the node's inventory and the repair service rebuilds it from the other shards
//! of its stripe. A mismatch is therefore always a repair, never a silent loss.

use crate::shard_store::{ShardStore, StoreError};
use ignifuge_rpc::{ScrubStatus, SetAsideReexamined};
use ignifuge_types::BlobId;
use ignifuge_types::time::now_ms;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Time between the starts of two passes.
pub const SCRUB_INTERVAL_MS_DEFAULT: u64 = 24 * 60 * 60 * 1000;
/// Blobs listed per page of a pass.
const SCRUB_PAGE_BLOBS: usize = 1024;
/// Read bandwidth a pass may use.
pub const SCRUB_BYTES_PER_SEC_DEFAULT: u64 = 64 * 1024 * 1024;

/// The scrubber's schedule and bandwidth.
#[derive(Clone, Copy, Debug)]
pub struct ScrubConfig {
    /// `SCRUB_INTERVAL_MS_DEFAULT`.
    pub interval: Duration,
    /// `SCRUB_BYTES_PER_SEC_DEFAULT`.
    pub bytes_per_sec: u64,
}

impl Default for ScrubConfig {
    fn default() -> Self {
        Self { interval: Duration::from_millis(SCRUB_INTERVAL_MS_DEFAULT), bytes_per_sec: SCRUB_BYTES_PER_SEC_DEFAULT }
    }
}

/// What survives a restart (`scrub-state.json`): the end of the last complete pass, and how far
/// the pass under way has gone, so that a node restarted more often than a pass lasts (a 16 TB
/// node at 64 MiB/s needs about 70 hours) still completes passes. Written whole, synced, at the
/// end of every page of blobs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ScrubState {
    last_complete_ms: Option<i64>,
    #[serde(default)]
    pass: Option<PassProgress>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PassProgress {
    started_ms: i64,
    /// The last blob whose shards were all checked, if any.
    after: Option<BlobId>,
}

impl ScrubState {
    /// Earlier versions stored the end of the last complete pass alone, as a number.
    fn load(path: &Path) -> Self {
        let Ok(bytes) = std::fs::read(path) else { return Self::default() };
        serde_json::from_slice::<ScrubState>(&bytes)
            .unwrap_or_else(|_| ScrubState { last_complete_ms: serde_json::from_slice::<i64>(&bytes).ok(), pass: None })
    }

    /// Replaces the file whole and durably (a crash leaves the old state or the new one).
    fn save(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write as _;
        let tmp = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
    }
}

pub struct Scrubber {
    store: Arc<ShardStore>,
    /// Set while a re-examination of the set-aside copies runs (one at a time: a pass's and the
    /// repair service's requests never pile reads of failing sectors on each other).
    reexamining: Arc<std::sync::atomic::AtomicBool>,
    status: Mutex<ScrubStatus>,
    /// Where the pass under way resumes after a restart (None: no pass under way).
    resume: Mutex<Option<PassProgress>>,
    state_file: PathBuf,
    interval: Duration,
    bytes_per_sec: u64,
}

impl Scrubber {
    /// The end of the last complete pass and the progress of the pass under way survive restarts.
    pub fn new(store: Arc<ShardStore>, config: ScrubConfig) -> Self {
        let state_file = store.root().join("scrub-state.json");
        let state = ScrubState::load(&state_file);
        let status = ScrubStatus {
            last_complete_ms: state.last_complete_ms,
            pass_started_ms: state.pass.as_ref().map(|p| p.started_ms),
            node_started_ms: now_ms(),
            ..Default::default()
        };
        Self {
            store,
            reexamining: Default::default(),
            status: Mutex::new(status),
            resume: Mutex::new(state.pass),
            state_file,
            interval: config.interval,
            bytes_per_sec: config.bytes_per_sec.max(1),
        }
    }

    pub fn status(&self) -> ScrubStatus {
        let mut status = self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        status.corrupt_found = self.store.quarantined();
        status.unreadable_found = self.store.unreadable();
        status.set_aside_restored = self.store.set_aside_restored();
        status.last_corrupt_ms = self.store.last_quarantine_ms();
        status
    }

    /// Runs passes forever: the next one starts `interval` after the last complete one, and a
    /// pass a restart interrupted goes on at once.
    pub async fn run(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.next_pass_in().max(Duration::from_millis(100))).await;
            match self.clone().pass().await {
                Ok((shards, corrupt)) => tracing::info!(shards, corrupt, "scrub pass complete"),
                Err(e) => {
                    // The next pass starts over rather than where this one stopped: an error
                    // that stays (a blob directory that cannot be listed) would otherwise end
                    // every pass at the same place, and the blobs before it would never be read
                    // again.
                    let last = self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner).last_complete_ms;
                    self.save(last, None);
                    tracing::error!(error = %e, "scrub pass failed; a new one starts after the interval");
                    tokio::time::sleep(self.interval).await;
                }
            }
        }
    }

    /// When the next pass is due.
    fn next_pass_in(&self) -> Duration {
        if self.resume.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some() {
            return Duration::ZERO;
        }
        match self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner).last_complete_ms {
            Some(ms) => Duration::from_millis((ms + self.interval.as_millis() as i64 - now_ms()).max(0) as u64),
            None => self.interval,
        }
    }

    /// Records how far the pass under way has gone (`ScrubState`). A state that cannot be written
    /// costs only the progress a restart would keep.
    fn save(&self, last_complete_ms: Option<i64>, pass: Option<PassProgress>) {
        *self.resume.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = pass.clone();
        if let Err(e) = (ScrubState { last_complete_ms, pass }).save(&self.state_file) {
            tracing::warn!(error = %e, file = %self.state_file.display(), "could not record the scrub's progress");
        }
    }

    /// Re-examines the node's set-aside copies (`ShardStore::reexamine_set_aside`): after each
    /// pass, and when the repair service asks (a stripe it found unreadable may need one).
    /// One at a time: asked while one runs, it answers nothing done. The flag is cleared by the
    /// work itself, which runs on even if the asker stops waiting.
    pub async fn reexamine_set_aside(&self) -> Result<SetAsideReexamined, StoreError> {
        use std::sync::atomic::Ordering;
        if self.reexamining.swap(true, Ordering::AcqRel) {
            return Ok(SetAsideReexamined::default());
        }
        let (store, running) = (self.store.clone(), self.reexamining.clone());
        let done = tokio::task::spawn_blocking(move || {
            // Cleared however the work ends, a panic included.
            struct Clear(Arc<std::sync::atomic::AtomicBool>);
            impl Drop for Clear {
                fn drop(&mut self) {
                    self.0.store(false, std::sync::atomic::Ordering::Release);
                }
            }
            let _clear = Clear(running);
            store.reexamine_set_aside()
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
        if done != SetAsideReexamined::default() {
            tracing::info!(
                restored = done.restored,
                dropped = done.dropped,
                kept = done.kept,
                "set-aside copies re-examined"
            );
        }
        Ok(done)
    }

    /// One pass over every shard, or the rest of the pass a restart interrupted. Returns the
    /// shards checked and the corrupt ones found (by this process).
    pub async fn pass(self: Arc<Self>) -> Result<(u64, u64), StoreError> {
        let resumed = self.resume.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let (started, mut after) = match resumed {
            Some(progress) => (progress.started_ms, progress.after),
            None => (now_ms(), None),
        };
        let last_complete = {
            let mut status = self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            status.pass_started_ms = Some(started);
            status.last_complete_ms
        };
        self.save(last_complete, Some(PassProgress { started_ms: started, after: after.clone() }));
        let clock = Instant::now();
        let quarantined_before = self.store.quarantined();
        let (mut checked, mut bytes) = (0u64, 0u64);
        // Page by page through the blobs, so memory does not grow with the number of shards.
        loop {
            let store = self.store.clone();
            let cursor = after.clone();
            let (shards, last, complete) = tokio::task::spawn_blocking(move || {
                let (blobs, complete) = store.list_blobs(cursor.as_ref(), SCRUB_PAGE_BLOBS)?;
                let mut shards = Vec::new();
                for held in &blobs {
                    shards.extend(store.shards_of(&held.blob)?.into_iter().map(|s| s.id));
                }
                Ok::<_, StoreError>((shards, blobs.last().map(|b| b.blob.clone()), complete))
            })
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
            for id in shards {
                let store = self.store.clone();
                let read = tokio::task::spawn_blocking(move || store.scrub_one(&id))
                    .await
                    .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
                checked += 1;
                bytes += read.unwrap_or(0) as u64;
                {
                    let mut status = self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    status.shards_checked += 1;
                    status.bytes_checked += read.unwrap_or(0) as u64;
                }
                // Rate limit: never ahead of bytes_per_sec since the pass started.
                let allowed = Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
                if let Some(wait) = allowed.checked_sub(clock.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            if complete || last.is_none() {
                break;
            }
            after = last;
            self.save(last_complete, Some(PassProgress { started_ms: started, after: after.clone() }));
        }
        let corrupt = self.store.quarantined() - quarantined_before;
        if let Err(e) = self.reexamine_set_aside().await {
            tracing::warn!(error = %e, "could not re-examine the set-aside copies");
        }
        let finished = now_ms();
        {
            let mut status = self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            status.last_complete_ms = Some(finished);
            status.pass_started_ms = None;
        }
        self.save(Some(finished), None);
        Ok((checked, corrupt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_kv::MemoryKv;
    use ignifuge_types::{BlobId, ShardId, ShardIndex, StripeIndex};

    #[tokio::test]
    async fn a_pass_reads_every_shard_quarantines_the_corrupt_one_and_remembers_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ShardStore::open(dir.path(), Arc::new(MemoryKv::default())).unwrap());
        for shard in 0..4u32 {
            let data = vec![shard as u8; 1000];
            let id = ShardId { blob: BlobId::new("beef"), stripe: StripeIndex(0), shard: ShardIndex(shard) };
            store.put(&id, &data, &blake3::hash(&data)).unwrap();
        }
        let path = dir.path().join("shards/be/beef/0.2");
        let mut raw = std::fs::read(&path).unwrap();
        raw[500] ^= 0xff;
        std::fs::write(&path, raw).unwrap();

        let scrubber = Arc::new(Scrubber::new(store.clone(), ScrubConfig::default()));
        assert_eq!(scrubber.status().last_complete_ms, None);
        assert_eq!(scrubber.clone().pass().await.unwrap(), (4, 1));
        let status = scrubber.status();
        assert!(status.last_complete_ms.is_some());
        assert_eq!((status.shards_checked, status.bytes_checked, status.corrupt_found), (4, 3000, 1));
        assert_eq!(store.shards_of(&BlobId::new("beef")).unwrap().len(), 3);
        // The end of the pass survives a restart.
        assert_eq!(Scrubber::new(store, ScrubConfig::default()).status().last_complete_ms, status.last_complete_ms);
    }

    /// A pass a restart interrupted goes on at once, from the blob after the last one it
    /// finished (what was checked before is not read again), and its end is recorded with the
    /// start of the whole pass. A state file of an earlier version (a number) still reads.
    #[tokio::test]
    async fn a_pass_interrupted_by_a_restart_goes_on_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ShardStore::open(dir.path(), Arc::new(MemoryKv::default())).unwrap());
        for blob in ["aa01", "bb02", "cc03"] {
            let data = vec![7u8; 1000];
            let id = ShardId { blob: BlobId::new(blob), stripe: StripeIndex(0), shard: ShardIndex(0) };
            store.put(&id, &data, &blake3::hash(&data)).unwrap();
        }
        let state_file = dir.path().join("scrub-state.json");
        let last_ms = now_ms() - 60_000;
        std::fs::write(&state_file, last_ms.to_string()).unwrap();
        let scrubber = Scrubber::new(store.clone(), ScrubConfig::default());
        assert_eq!(scrubber.status().last_complete_ms, Some(last_ms), "the earlier format");
        assert!(scrubber.next_pass_in() > Duration::ZERO, "nothing under way: the interval after the last pass");

        // Interrupted after "aa01": the pass began an hour ago.
        let started_ms = now_ms() - 3_600_000;
        let interrupted = ScrubState {
            last_complete_ms: Some(last_ms),
            pass: Some(PassProgress { started_ms, after: Some(BlobId::new("aa01")) }),
        };
        interrupted.save(&state_file).unwrap();
        let scrubber = Arc::new(Scrubber::new(store.clone(), ScrubConfig::default()));
        assert_eq!(scrubber.status().pass_started_ms, Some(started_ms));
        assert_eq!(scrubber.next_pass_in(), Duration::ZERO, "goes on at once");
        assert_eq!(scrubber.clone().pass().await.unwrap(), (2, 0), "bb02 and cc03 only");
        let done = ScrubState::load(&state_file);
        assert_eq!(done.pass, None);
        assert!(done.last_complete_ms.unwrap() >= started_ms + 3_600_000);
        assert!(scrubber.next_pass_in() > Duration::ZERO);
        // The next pass is a whole one.
        assert_eq!(scrubber.clone().pass().await.unwrap(), (3, 0));
    }

    /// A shard whose file cannot be read does not end the pass: the pass goes on to the shards
    /// after it, completes, and the shard is set aside (left out of the inventory).
    #[tokio::test]
    async fn an_unreadable_shard_does_not_stop_the_pass() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ShardStore::open(dir.path(), Arc::new(MemoryKv::default())).unwrap());
        for blob in ["aa01", "bb02"] {
            for shard in 0..2u32 {
                let data = vec![shard as u8; 1000];
                let id = ShardId { blob: BlobId::new(blob), stripe: StripeIndex(0), shard: ShardIndex(shard) };
                store.put(&id, &data, &blake3::hash(&data)).unwrap();
            }
        }
        // The first blob's first shard: a read error (a directory where its file was).
        let path = dir.path().join("shards/aa/aa01/0.0");
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let scrubber = Arc::new(Scrubber::new(store.clone(), ScrubConfig::default()));
        assert_eq!(scrubber.clone().pass().await.unwrap(), (4, 0));
        let status = scrubber.status();
        assert!(status.last_complete_ms.is_some());
        assert_eq!((status.bytes_checked, status.unreadable_found, status.corrupt_found), (3000, 1, 0));
        assert!(status.last_corrupt_ms.is_some(), "the durability view must see that a shard was set aside");
        assert_eq!(store.shards_of(&BlobId::new("bb02")).unwrap().len(), 2);
    }
}
