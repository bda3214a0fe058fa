//! The Raft log, vote and commit position in the node's ordered store, under `r/`.

use crate::TypeConfig;
use ignifuge_kv::{Durability, KvStore, WriteBatch, prefix_end};
use ignifuge_meta::stored;
use ignifuge_meta::{Command, PartData, Proposal};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, EntryPayload, LogId, OptionalSend, StorageError, StorageIOError, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

const LOG_PREFIX: &[u8] = b"r/log/";
const VOTE_KEY: &[u8] = b"r/vote";
const COMMITTED_KEY: &[u8] = b"r/committed";
const PURGED_KEY: &[u8] = b"r/purged";
/// How often a purge waiting for the state machine looks again.
const PURGE_WAIT_POLL_MS: u64 = 20;

fn log_key(index: u64) -> Vec<u8> {
    let mut key = LOG_PREFIX.to_vec();
    key.extend_from_slice(&index.to_be_bytes());
    key
}

fn log_end() -> Vec<u8> {
    prefix_end(LOG_PREFIX).expect("the log prefix is not all 0xff")
}

pub(crate) fn read_error(e: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::read(&std::io::Error::other(e.to_string())).into()
}

pub(crate) fn write_error(e: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::write(&std::io::Error::other(e.to_string())).into()
}

pub(crate) fn get_json<T: DeserializeOwned>(kv: &dyn KvStore, key: &[u8]) -> Result<Option<T>, StorageError<u64>> {
    match kv.get(key).map_err(read_error)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(read_error),
    }
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("raft records always serialise")
}

/// The inline bodies of a PutObject's entry (none in other entries).
fn entry_parts(entry: &Entry<TypeConfig>) -> Option<&Vec<PartData>> {
    match &entry.payload {
        EntryPayload::Normal(Proposal { command: Command::PutObject { record, .. }, .. }) => Some(&record.parts),
        _ => None,
    }
}

fn entry_parts_mut(entry: &mut Entry<TypeConfig>) -> Option<&mut Vec<PartData>> {
    match &mut entry.payload {
        EntryPayload::Normal(Proposal { command: Command::PutObject { record, .. }, .. }) => Some(&mut record.parts),
        _ => None,
    }
}

/// A log entry as stored: JSON, with a PutObject's inline bodies raw after it, as object records
/// are stored (`ignifuge_meta::stored`; base64 inside the JSON cost every voter a third more).
fn encode_entry(entry: &Entry<TypeConfig>) -> Vec<u8> {
    stored::encode_with_bodies(entry, entry_parts, entry_parts_mut)
}

/// A stored log entry (either encoding: entries written before carry their bodies in the JSON).
fn decode_entry(value: &[u8]) -> Result<Entry<TypeConfig>, StorageError<u64>> {
    stored::decode_with_bodies(value, entry_parts_mut).map_err(read_error)
}

/// The log store. Every append, vote and truncation is fsynced before it is acknowledged.
#[derive(Clone)]
pub struct LogStore {
    kv: Arc<dyn KvStore>,
    /// Told how many bytes each append wrote (`pacing`).
    pacing: Arc<crate::pacing::SnapshotPacing>,
}

impl LogStore {
    pub fn new(kv: Arc<dyn KvStore>, pacing: Arc<crate::pacing::SnapshotPacing>) -> Self {
        Self { kv, pacing }
    }

    /// Bytes of log kept in the store (entries not yet purged), read a page at a time.
    pub fn stored_bytes(&self) -> Result<u64, StorageError<u64>> {
        const PAGE_ENTRIES: usize = 1024;
        const PAGE_BYTES: usize = 16 << 20;
        let end = log_end();
        let mut start = LOG_PREFIX.to_vec();
        let mut total = 0u64;
        loop {
            let page = self.kv.scan_bytes(&start, Some(&end), PAGE_ENTRIES, PAGE_BYTES).map_err(read_error)?;
            let Some((last, _)) = page.last() else { return Ok(total) };
            total += page.iter().map(|(_, value)| value.len() as u64).sum::<u64>();
            start = last.clone();
            start.push(0);
        }
    }

    fn put_synced(&self, key: &[u8], value: Vec<u8>) -> Result<(), StorageError<u64>> {
        let mut batch = WriteBatch::new();
        batch.put(key.to_vec(), value);
        self.kv.write(batch, Durability::Synced).map_err(write_error)
    }

    fn delete_range(&self, start: Vec<u8>, end: Vec<u8>, extra: WriteBatch) -> Result<(), StorageError<u64>> {
        let mut batch = WriteBatch::new();
        for (key, _) in self.kv.scan(&start, Some(&end), usize::MAX).map_err(read_error)? {
            batch.delete(key);
        }
        batch.ops.extend(extra.ops);
        self.kv.write(batch, Durability::Synced).map_err(write_error)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(x) => log_key(x.saturating_add(1)),
            Bound::Excluded(x) => log_key(*x),
            Bound::Unbounded => log_end(),
        };
        self.kv
            .scan(&log_key(start), Some(&end), usize::MAX)
            .map_err(read_error)?
            .into_iter()
            .map(|(_, v)| decode_entry(&v))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let last_purged_log_id: Option<LogId<u64>> = get_json(self.kv.as_ref(), PURGED_KEY)?;
        let last = self.kv.last(LOG_PREFIX, &log_end()).map_err(read_error)?;
        let last_log_id = match last {
            Some((_, v)) => {
                let entry = decode_entry(&v)?;
                Some(entry.log_id)
            }
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        self.put_synced(VOTE_KEY, to_json(vote))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        get_json(self.kv.as_ref(), VOTE_KEY)
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), StorageError<u64>> {
        // Only a hint for a faster restart (openraft re-learns the commit index from the leader):
        // not worth an fsync per commit.
        let mut batch = WriteBatch::new();
        batch.put(COMMITTED_KEY.to_vec(), to_json(&committed));
        self.kv.write(batch, Durability::Buffered).map_err(write_error)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(get_json::<Option<LogId<u64>>>(self.kv.as_ref(), COMMITTED_KEY)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::new();
        let mut bytes = 0;
        for entry in entries {
            let value = encode_entry(&entry);
            bytes += value.len() as u64;
            batch.put(log_key(entry.log_id.index), value);
        }
        // One fsync for the whole batch: openraft hands over every entry proposed meanwhile.
        if ignifuge_faults::hit("raft.log.before-sync").is_some() {
            let error = std::io::Error::other("fault point: the log batch was not written");
            callback.log_io_completed(Err(std::io::Error::other(error.to_string())));
            return Err(write_error(error));
        }
        let result = self.kv.write(batch, Durability::Synced);
        if result.is_ok() && ignifuge_faults::hit("raft.log.after-sync").is_some() {
            // Durable, never acknowledged: a crash here (the `crash` rule) is what this is for.
            let error = std::io::Error::other("fault point: the log batch's acknowledgement was lost");
            callback.log_io_completed(Err(std::io::Error::other(error.to_string())));
            return Err(write_error(error));
        }
        if result.is_ok() {
            self.pacing.appended(bytes);
        }
        let io_result = result.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(io_result);
        result.map_err(write_error)
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.delete_range(log_key(log_id.index), log_end(), WriteBatch::new())
    }

    /// Purges the log up to `log_id`, but never past what the state machine has applied: when a
    /// follower installs a snapshot, openraft asks for the purge as soon as it queues the
    /// install, and a crash between a purge and the install's end would leave a replica whose
    /// state is behind a log it no longer has. Waiting here (the install runs in the state
    /// machine's own task) keeps the entries until the state covers them.
    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        loop {
            let applied =
                get_json::<Option<LogId<u64>>>(self.kv.as_ref(), crate::state_machine::APPLIED_KEY)?.flatten();
            if applied.is_some_and(|a| a.index >= log_id.index) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(PURGE_WAIT_POLL_MS)).await;
        }
        let mut extra = WriteBatch::new();
        extra.put(PURGED_KEY.to_vec(), to_json(&log_id));
        self.delete_range(log_key(0), log_key(log_id.index.saturating_add(1)), extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_meta::{BucketRef, Checksums, DataLocation, ObjectRecord, WriteCondition};
    use ignifuge_types::{BucketIncarnation, BucketName, ObjectKey, ProposalId, TenantId, VersionId};
    use openraft::CommittedLeaderId;

    fn put_entry(body: &[u8]) -> Entry<TypeConfig> {
        let part = PartData {
            part_number: 1,
            size: body.len() as u64,
            etag: "e".into(),
            checksums: Checksums::default(),
            location: DataLocation::Inline(body.to_vec()),
            last_modified_ms: 1,
            started_ms: 0,
            began: None,
        };
        let mut record = ObjectRecord::delete_marker(ObjectKey::new("k"), VersionId::new("v"), 1);
        (record.delete_marker, record.size, record.parts) = (false, body.len() as u64, vec![part]);
        let bucket = BucketRef {
            name: BucketName::new("b"),
            tenant: TenantId::new("t"),
            incarnation: BucketIncarnation::new("i"),
        };
        let command = Command::PutObject { bucket, record, condition: WriteCondition::default(), leader_ms: None };
        let proposal = Proposal { id: ProposalId::new("p"), issued_ms: 1, aged_by_entries: true, command };
        Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), 7), payload: EntryPayload::Normal(proposal) }
    }

    #[test]
    fn a_put_entry_keeps_its_body_raw_and_entries_written_before_still_read() {
        let body: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        let entry = put_entry(&body);
        let stored = encode_entry(&entry);
        let json = serde_json::to_vec(&entry).unwrap();
        assert!(stored.len() + 1000 < json.len(), "raw: {} bytes against {} as JSON", stored.len(), json.len());
        assert!(stored.ends_with(&body));
        assert_eq!(decode_entry(&stored).unwrap(), entry);
        assert_eq!(decode_entry(&json).unwrap(), entry, "an entry stored before, base64 in the JSON");
        let blank: Entry<TypeConfig> = Entry { log_id: entry.log_id, payload: EntryPayload::Blank };
        assert_eq!(encode_entry(&blank), serde_json::to_vec(&blank).unwrap());
        assert!(decode_entry(&stored[..stored.len() - 1]).is_err(), "a cut body is refused");
    }
}
