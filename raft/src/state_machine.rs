//! The metadata state machine as Raft's state machine, and its snapshots.
//!
//! A snapshot is built from one consistent view of the store, taken between two applies (in
//! `get_snapshot_builder`, which openraft calls in its state-machine task), so its applied
//! position and its contents are the same instant, although openraft keeps applying entries
//! while the file is written. Files live under the replica's `snapshots/` directory, named by
//! snapshot id, and are sent and received in chunks; an install replaces the state in bounded
//! batches under an "installing" mark that a restart finishes (`SmStore::new`).

use crate::TypeConfig;
use crate::digest_at::DigestMarks;
use crate::log_store::{get_json, read_error, to_json, write_error};
use crate::snapshot_file;
use ignifuge_kv::{KvSnapshot, KvStore, WriteBatch};
use ignifuge_meta::{Outcome, StateMachine};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{BasicNode, Entry, EntryPayload, LogId, OptionalSend, StorageError, StoredMembership};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::fs::File;

pub(crate) const APPLIED_KEY: &[u8] = b"r/applied";
const MEMBERSHIP_KEY: &[u8] = b"r/membership";
const SNAPSHOT_META_KEY: &[u8] = b"r/snapshot-meta";
/// Where snapshots were kept before they became files; removed when found.
const LEGACY_SNAPSHOT_DATA_KEY: &[u8] = b"r/snapshot-data";
/// The meta of a snapshot whose install began and has not finished.
const INSTALLING_KEY: &[u8] = b"r/installing";
/// The current snapshot's id and its bytes of state before compression (`StateBytes`): what
/// paces the next snapshot, kept so that a restart need not read the file through.
const SNAPSHOT_STATE_BYTES_KEY: &[u8] = b"r/snapshot-state-bytes";

#[derive(serde::Serialize, serde::Deserialize)]
struct StateBytes {
    snapshot_id: String,
    bytes: u64,
}

type Membership = StoredMembership<u64, BasicNode>;
type Meta = SnapshotMeta<u64, BasicNode>;

fn snapshot_path(dir: &Path, meta: &Meta) -> PathBuf {
    dir.join(format!("{}.snap", meta.snapshot_id))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Applies committed entries to the metadata state machine; builds and installs snapshots.
#[derive(Clone)]
pub struct SmStore {
    machine: Arc<StateMachine>,
    kv: Arc<dyn KvStore>,
    dir: PathBuf,
    /// Serialises "make this file the current snapshot" between a build and an install (held
    /// through the whole install).
    current: Arc<Mutex<()>>,
    /// The file a snapshot is being received into (openraft receives one at a time).
    receiving: Arc<Mutex<Option<PathBuf>>>,
    /// Told the size of each snapshot made current (`pacing`).
    pacing: Arc<crate::pacing::SnapshotPacing>,
    /// Indexes whose state must be hashed once applied (`digest_at`).
    marks: Arc<DigestMarks>,
}

impl SmStore {
    /// Opens the state machine; finishes a snapshot install that a crash interrupted.
    pub fn new(
        machine: Arc<StateMachine>,
        kv: Arc<dyn KvStore>,
        dir: PathBuf,
        pacing: Arc<crate::pacing::SnapshotPacing>,
    ) -> Result<Self, StorageError<u64>> {
        std::fs::create_dir_all(&dir).map_err(write_error)?;
        for entry in std::fs::read_dir(&dir).map_err(read_error)? {
            let path = entry.map_err(read_error)?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                let _ = std::fs::remove_file(path);
            }
        }
        if kv.get(LEGACY_SNAPSHOT_DATA_KEY).map_err(read_error)?.is_some() {
            let mut batch = WriteBatch::new();
            batch.delete(LEGACY_SNAPSHOT_DATA_KEY.to_vec());
            batch.delete(SNAPSHOT_META_KEY.to_vec());
            kv.write(batch, ignifuge_kv::Durability::Synced).map_err(write_error)?;
        }
        if let Some(meta) = get_json::<Meta>(kv.as_ref(), INSTALLING_KEY)? {
            tracing::warn!(snapshot = %meta.snapshot_id, "finishing a snapshot install that was interrupted");
            let path = snapshot_path(&dir, &meta);
            let bytes = snapshot_file::install(kv.as_ref(), &path, &meta.snapshot_id, Self::installed(&meta))
                .map_err(write_error)?;
            Self::record_state_bytes(kv.as_ref(), &meta, bytes);
        }
        let applied = get_json::<Option<LogId<u64>>>(kv.as_ref(), APPLIED_KEY)?.flatten().map(|l| l.index);
        let marks = Arc::new(DigestMarks::new(applied));
        let store =
            Self { machine, kv, dir, current: Default::default(), receiving: Default::default(), pacing, marks };
        // The current snapshot, kept from an earlier run, paces the next one: by its state's
        // size, else (a crash between an install and that record, or a file written before
        // sizes were kept) by the file's, which is no larger and can only make the next one sooner.
        if let Some(meta) = get_json::<Meta>(store.kv.as_ref(), SNAPSHOT_META_KEY)? {
            match get_json::<StateBytes>(store.kv.as_ref(), SNAPSHOT_STATE_BYTES_KEY)? {
                Some(known) if known.snapshot_id == meta.snapshot_id => store.pacing.snapshot_made(known.bytes),
                _ => {
                    if let Ok(file) = std::fs::metadata(snapshot_path(&store.dir, &meta)) {
                        store.pacing.snapshot_made(file.len());
                    }
                }
            }
        }
        Ok(store)
    }

    /// The marks of the indexes to hash once applied, shared with the replica's requests.
    pub fn digest_marks(&self) -> Arc<DigestMarks> {
        self.marks.clone()
    }

    /// Entry `index` is applied: if it was asked for, hashes the state as it is now (a view taken
    /// before the next apply), off the apply path.
    fn mark_applied(&self, index: u64) {
        if !self.marks.applied(index) {
            return;
        }
        let marks = self.marks.clone();
        match self.kv.snapshot() {
            Ok(view) => {
                tokio::task::spawn_blocking(move || {
                    marks.hash(index, || {
                        snapshot_file::digest(view.as_ref()).map(|h| h.to_hex().to_string()).map_err(|e| e.to_string())
                    })
                });
            }
            Err(e) => marks.finished(index, Err(e.to_string())),
        }
    }

    /// Keeps the size of the snapshot just installed (not synced, and a failure only logged: a
    /// lost record only paces the next snapshot by the file's size; the install is done).
    fn record_state_bytes(kv: &dyn KvStore, meta: &Meta, bytes: u64) {
        let mut batch = WriteBatch::new();
        batch.put(
            SNAPSHOT_STATE_BYTES_KEY.to_vec(),
            to_json(&StateBytes { snapshot_id: meta.snapshot_id.clone(), bytes }),
        );
        if let Err(e) = kv.write(batch, ignifuge_kv::Durability::Buffered) {
            tracing::warn!(snapshot = %meta.snapshot_id, "recording the installed snapshot's size: {e}");
        }
    }

    fn position(log_id: &LogId<u64>, membership: Option<&Membership>) -> WriteBatch {
        let mut batch = WriteBatch::new();
        batch.put(APPLIED_KEY.to_vec(), to_json(&Some(*log_id)));
        if let Some(m) = membership {
            batch.put(MEMBERSHIP_KEY.to_vec(), to_json(m));
        }
        batch
    }

    /// The last batch of an install: the snapshot's position, and the install mark cleared.
    fn installed(meta: &Meta) -> WriteBatch {
        let mut batch = WriteBatch::new();
        batch.put(APPLIED_KEY.to_vec(), to_json(&meta.last_log_id));
        batch.put(MEMBERSHIP_KEY.to_vec(), to_json(&meta.last_membership));
        batch.put(SNAPSHOT_META_KEY.to_vec(), to_json(meta));
        batch.delete(INSTALLING_KEY.to_vec());
        batch
    }

    /// Makes the file at `path` (fsynced, `state_bytes` of state) the current snapshot with
    /// `meta`, unless a newer one already is; returns the file that is current afterwards, with
    /// its meta.
    fn make_current(&self, path: &Path, meta: Meta, state_bytes: u64) -> Result<(PathBuf, Meta), StorageError<u64>> {
        let _one = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let existing: Option<Meta> = get_json(self.kv.as_ref(), SNAPSHOT_META_KEY)?;
        if let Some(existing) = existing.filter(|e| e.last_log_id > meta.last_log_id) {
            let _ = std::fs::remove_file(path);
            return Ok((snapshot_path(&self.dir, &existing), existing));
        }
        let target = snapshot_path(&self.dir, &meta);
        std::fs::rename(path, &target).map_err(write_error)?;
        self.pacing.snapshot_made(state_bytes);
        sync_dir(&self.dir).map_err(write_error)?;
        let mut batch = WriteBatch::new();
        batch.put(SNAPSHOT_META_KEY.to_vec(), to_json(&meta));
        batch.put(
            SNAPSHOT_STATE_BYTES_KEY.to_vec(),
            to_json(&StateBytes { snapshot_id: meta.snapshot_id.clone(), bytes: state_bytes }),
        );
        self.kv.write(batch, ignifuge_kv::Durability::Synced).map_err(write_error)?;
        self.remove_other_snapshots(&target);
        Ok((target, meta))
    }

    /// Older snapshot files are no longer served; an open handle (a transfer) keeps reading.
    fn remove_other_snapshots(&self, current: &Path) {
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let other = entry.path();
            if other != current && other.extension().is_some_and(|e| e == "snap") {
                let _ = std::fs::remove_file(other);
            }
        }
    }

    fn temporary(&self, what: &str) -> PathBuf {
        self.dir.join(format!("{what}-{:016x}.tmp", rand_u64()))
    }
}

/// Makes `received` hold the snapshot in `snapshot`, synced. openraft hands back the file
/// `begin_receiving_snapshot` gave it, written; a caller may instead hand over another file
/// holding a whole snapshot (openraft's storage suite passes the leader's own), whose contents
/// are then copied from its start.
fn into_received(mut snapshot: std::fs::File, received: &Path) -> std::io::Result<()> {
    use std::io::Seek as _;
    use std::os::unix::fs::MetadataExt as _;
    let (given, ours) = (snapshot.metadata()?, std::fs::metadata(received)?);
    if (given.dev(), given.ino()) == (ours.dev(), ours.ino()) {
        return snapshot.sync_all();
    }
    snapshot.seek(std::io::SeekFrom::Start(0))?;
    let mut copy = std::fs::File::create(received)?;
    std::io::copy(&mut snapshot, &mut copy)?;
    copy.sync_all()
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

/// The last log index whose entry `kv`'s state has applied (a snapshot installed counts as its
/// last entry): read from the store, not from openraft's metrics, which count entries accepted
/// whose write may then have failed. Applied entries are committed ones.
pub(crate) fn stored_applied_index(kv: &dyn KvStore) -> Result<Option<u64>, StorageError<u64>> {
    Ok(get_json::<Option<LogId<u64>>>(kv, APPLIED_KEY)?.flatten().map(|l| l.index))
}

/// Builds one snapshot from the view taken when openraft asked for the builder.
pub struct SnapshotBuilder {
    store: SmStore,
    view: Result<Arc<dyn KvSnapshot>, String>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let view = self.view.clone().map_err(read_error)?;
        let read = |key: &[u8]| -> Result<Option<Vec<u8>>, StorageError<u64>> { view.get(key).map_err(read_error) };
        let parse = |bytes: Option<Vec<u8>>| serde_json::from_slice::<Option<LogId<u64>>>(&bytes?).ok().flatten();
        let last_log_id = parse(read(APPLIED_KEY)?);
        let last_membership: Membership = match read(MEMBERSHIP_KEY)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(read_error)?,
            None => Membership::default(),
        };
        // Writing the whole state is long: off the async runtime, so heartbeats keep flowing.
        // How often it happens is `pacing`'s: in proportion to the state's size.
        let path = self.store.temporary("build");
        let (written_view, written_path) = (view.clone(), path.clone());
        let written = tokio::task::spawn_blocking(move || snapshot_file::write(written_view.as_ref(), &written_path))
            .await
            .map_err(read_error)?
            .map_err(read_error)?;
        if ignifuge_faults::hit("raft.snapshot.build").is_some() {
            let _ = std::fs::remove_file(&path);
            return Err(read_error("fault point: the snapshot build failed"));
        }
        let position = last_log_id.map_or("empty".to_string(), |l| format!("{}-{}", l.leader_id.term, l.index));
        let snapshot_id = format!("{position}-{}", &written.file_hash.to_hex()[..16]);
        let meta = Meta { last_log_id, last_membership, snapshot_id };
        let store = self.store.clone();
        let (current, meta) = tokio::task::spawn_blocking(move || store.make_current(&path, meta, written.state_bytes))
            .await
            .map_err(write_error)??;
        let file = File::open(&current).await.map_err(read_error)?;
        Ok(Snapshot { meta, snapshot: Box::new(file) })
    }
}

impl RaftStateMachine<TypeConfig> for SmStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId<u64>>, Membership), StorageError<u64>> {
        let applied = get_json::<Option<LogId<u64>>>(self.kv.as_ref(), APPLIED_KEY)?.flatten();
        let membership = get_json(self.kv.as_ref(), MEMBERSHIP_KEY)?.unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<crate::CommandResult>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut results = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            match entry.payload {
                EntryPayload::Blank => {
                    self.machine.apply_logged_batch(Self::position(&log_id, None)).map_err(write_error)?;
                    results.push(Ok(Outcome::Done));
                }
                EntryPayload::Membership(m) => {
                    let stored = StoredMembership::new(Some(log_id), m);
                    self.machine.apply_logged_batch(Self::position(&log_id, Some(&stored))).map_err(write_error)?;
                    results.push(Ok(Outcome::Done));
                }
                EntryPayload::Normal(proposal) => {
                    let outcome = self
                        .machine
                        .apply_proposal_logged(proposal, log_id.index, Self::position(&log_id, None))
                        .map_err(write_error)?;
                    results.push(outcome);
                }
            }
            self.mark_applied(log_id.index);
        }
        Ok(results)
    }

    /// Called by openraft's state-machine task between two applies: the view taken here is the
    /// state at exactly the applied position it holds.
    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let view = self.kv.snapshot().map(Arc::from).map_err(|e| e.to_string());
        SnapshotBuilder { store: self.clone(), view }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<File>, StorageError<u64>> {
        let path = self.temporary("receive");
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(write_error)?;
        let previous = self.receiving.lock().unwrap_or_else(PoisonError::into_inner).replace(path);
        if let Some(previous) = previous {
            let _ = std::fs::remove_file(previous); // an abandoned transfer
        }
        Ok(Box::new(file))
    }

    async fn install_snapshot(&mut self, meta: &Meta, snapshot: Box<File>) -> Result<(), StorageError<u64>> {
        let snapshot = snapshot.into_std().await;
        let received = self
            .receiving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| write_error("no snapshot was being received"))?;
        let store = self.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || {
            into_received(snapshot, &received).map_err(write_error)?;
            // The id ends with the BLAKE3 of the contents: a damaged or mixed-up file is refused
            // before anything of the state is touched.
            if !snapshot_file::file_matches(&received, &meta.snapshot_id).map_err(read_error)? {
                let _ = std::fs::remove_file(&received);
                return Err(read_error(format!("snapshot {} does not match its contents", meta.snapshot_id)));
            }
            // A build finishing meanwhile (openraft runs builds in a task of their own) must not
            // make its older file current and delete this one between the rename and the mark:
            // the install, or its restart, would then have no file.
            let _one = store.current.lock().unwrap_or_else(PoisonError::into_inner);
            let path = snapshot_path(&store.dir, &meta);
            std::fs::rename(&received, &path).map_err(write_error)?;
            sync_dir(&store.dir).map_err(write_error)?;
            // The snapshot becomes current and the install is marked in one synced batch, so a
            // crash in the middle is finished from this file at the next start.
            let mut mark = WriteBatch::new();
            mark.put(SNAPSHOT_META_KEY.to_vec(), to_json(&meta));
            mark.put(INSTALLING_KEY.to_vec(), to_json(&meta));
            store.kv.write(mark, ignifuge_kv::Durability::Synced).map_err(write_error)?;
            let bytes = snapshot_file::install(store.kv.as_ref(), &path, &meta.snapshot_id, Self::installed(&meta))
                .map_err(write_error)?;
            store.pacing.snapshot_made(bytes);
            store.marks.installed(meta.last_log_id.map_or(0, |l| l.index));
            Self::record_state_bytes(store.kv.as_ref(), &meta, bytes);
            store.remove_other_snapshots(&path);
            Ok(())
        })
        .await
        .map_err(write_error)?
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let Some(meta) = get_json::<Meta>(self.kv.as_ref(), SNAPSHOT_META_KEY)? else {
            return Ok(None);
        };
        match File::open(snapshot_path(&self.dir, &meta)).await {
            Ok(file) => Ok(Some(Snapshot { meta, snapshot: Box::new(file) })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(read_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest_at::DigestAt;
    use ignifuge_kv::MemoryKv;
    use ignifuge_meta::{Command, Proposal, TenantRecord};
    use ignifuge_types::{ProposalId, TenantId};
    use openraft::CommittedLeaderId;
    use tokio::io::AsyncReadExt as _;

    fn entry(index: u64, tenant: &str) -> Entry<TypeConfig> {
        let command =
            Command::CreateTenant(TenantRecord { id: TenantId::new(tenant), created_ms: 0, public_access_block: None });
        let proposal =
            Proposal { id: ProposalId::new(format!("p{index}")), issued_ms: 0, aged_by_entries: true, command };
        Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload: EntryPayload::Normal(proposal) }
    }

    /// What a replica stopped by its store has applied for good is read from the store: none
    /// before any entry, the last entry applied after, a snapshot's last entry once installed.
    #[tokio::test]
    async fn the_applied_index_is_read_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::default());
        let mut sm =
            SmStore::new(Arc::new(StateMachine::new(kv.clone())), kv.clone(), dir.path().join("a"), Default::default())
                .unwrap();
        assert_eq!(stored_applied_index(kv.as_ref()).unwrap(), None);
        sm.apply(vec![entry(1, "one"), entry(2, "two")]).await.unwrap();
        assert_eq!(stored_applied_index(kv.as_ref()).unwrap(), Some(2));
        let mut snapshot = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
        let other: Arc<dyn KvStore> = Arc::new(MemoryKv::default());
        let mut installed = SmStore::new(
            Arc::new(StateMachine::new(other.clone())),
            other.clone(),
            dir.path().join("b"),
            Default::default(),
        )
        .unwrap();
        let mut data = installed.begin_receiving_snapshot().await.unwrap();
        tokio::io::copy(&mut snapshot.snapshot, &mut data).await.unwrap();
        tokio::io::AsyncWriteExt::flush(&mut data).await.unwrap();
        installed.install_snapshot(&snapshot.meta, data).await.unwrap();
        assert_eq!(stored_applied_index(other.as_ref()).unwrap(), Some(2), "a snapshot's last entry once installed");
    }

    /// A digest asked for at index 2 is of the state right after entry 2, although entries 1
    /// to 3 are applied in one call (openraft batches them): the view is taken between two.
    #[tokio::test]
    async fn the_state_hashed_at_an_index_is_the_state_right_after_it_in_a_batch_of_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = |name: &str| {
            let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::default());
            let sm = SmStore::new(
                Arc::new(StateMachine::new(kv.clone())),
                kv.clone(),
                dir.path().join(name),
                Default::default(),
            )
            .unwrap();
            (kv, sm)
        };
        let (_, mut sm) = store("a");
        let marks = sm.digest_marks();
        assert_eq!(marks.ask(2), DigestAt::Waiting);
        sm.apply(vec![entry(1, "one"), entry(2, "two"), entry(3, "three")]).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let digest = loop {
            match marks.ask(2) {
                DigestAt::Done { digest } => break digest,
                DigestAt::Computing => assert!(std::time::Instant::now() < deadline, "never hashed"),
                other => panic!("{other:?}"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        let hex = |kv: &Arc<dyn KvStore>| {
            snapshot_file::digest(kv.snapshot().unwrap().as_ref()).unwrap().to_hex().to_string()
        };
        let (two_kv, mut two) = store("b");
        two.apply(vec![entry(1, "one"), entry(2, "two")]).await.unwrap();
        assert_eq!(digest, hex(&two_kv), "the state after entry 2");
        two.apply(vec![entry(3, "three")]).await.unwrap();
        assert_ne!(digest, hex(&two_kv), "not the state after entry 3");
    }

    /// Defect 2 of issue 12: openraft applies entries while a snapshot is being built; the
    /// snapshot must still be the state at the position it names, no more and no less.
    #[tokio::test]
    async fn a_snapshot_is_the_state_at_its_position_although_entries_apply_while_it_builds() {
        let dir = tempfile::tempdir().unwrap();
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::default());
        let machine = Arc::new(StateMachine::new(kv.clone()));
        let mut sm = SmStore::new(machine, kv.clone(), dir.path().join("snapshots"), Default::default()).unwrap();
        sm.apply(vec![entry(1, "before")]).await.unwrap();
        let mut builder = sm.get_snapshot_builder().await;
        sm.apply(vec![entry(2, "after")]).await.unwrap();
        let mut snapshot = builder.build_snapshot().await.unwrap();
        assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(1));
        let mut bytes = Vec::new();
        snapshot.snapshot.read_to_end(&mut bytes).await.unwrap();

        // Installed on another replica, it gives the same state and position; a crash during
        // the install (the mark left set) is finished when the replica opens again.
        let other_kv: Arc<dyn KvStore> = Arc::new(MemoryKv::default());
        let other_dir = dir.path().join("other");
        let mut other = SmStore::new(
            Arc::new(StateMachine::new(other_kv.clone())),
            other_kv.clone(),
            other_dir.clone(),
            Default::default(),
        )
        .unwrap();
        let mut receiving = other.begin_receiving_snapshot().await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut *receiving, &bytes).await.unwrap();
        other.install_snapshot(&snapshot.meta, receiving).await.unwrap();
        let (applied, _) = other.applied_state().await.unwrap();
        assert_eq!(applied.map(|l| l.index), Some(1));
        assert!(other_kv.get(b"c/tenant/before").unwrap().is_some());
        assert!(
            other_kv.get(b"c/tenant/after").unwrap().is_none(),
            "an entry applied after the view leaked into the snapshot"
        );
        let mut mark = WriteBatch::new();
        mark.put(INSTALLING_KEY.to_vec(), to_json(&snapshot.meta));
        mark.put(b"c/tenant/torn".to_vec(), b"{}".to_vec());
        other_kv.write(mark, ignifuge_kv::Durability::Synced).unwrap();
        SmStore::new(Arc::new(StateMachine::new(other_kv.clone())), other_kv.clone(), other_dir, Default::default())
            .unwrap();
        assert!(other_kv.get(b"c/tenant/torn").unwrap().is_none(), "the interrupted install was redone");
        assert!(other_kv.get(INSTALLING_KEY).unwrap().is_none());
        let current = other.get_current_snapshot().await.unwrap().expect("the installed snapshot is current");
        assert_eq!(current.meta.snapshot_id, snapshot.meta.snapshot_id);
    }
}
