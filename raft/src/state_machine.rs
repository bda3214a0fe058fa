//! The metadata state machine as Raft's state machine, and its snapshots.

use crate::TypeConfig;
use crate::log_store::{get_json, read_error, to_json, write_error};
use ignifuge_kv::{KvPair, KvStore, WriteBatch};
use ignifuge_meta::{Outcome, StateMachine};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{BasicNode, Entry, EntryPayload, LogId, OptionalSend, StorageError, StoredMembership};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::sync::Arc;

const APPLIED_KEY: &[u8] = b"r/applied";
const MEMBERSHIP_KEY: &[u8] = b"r/membership";
const SNAPSHOT_KEY: &[u8] = b"r/snapshot";

type Membership = StoredMembership<u64, BasicNode>;

#[derive(Serialize, Deserialize)]
struct SnapshotData {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

/// Applies committed entries to the metadata state machine; builds and installs snapshots.
#[derive(Clone)]
pub struct SmStore {
    machine: Arc<StateMachine>,
    kv: Arc<dyn KvStore>,
}

impl SmStore {
    pub fn new(machine: Arc<StateMachine>, kv: Arc<dyn KvStore>) -> Result<Self, StorageError<u64>> {
        Ok(Self { machine, kv })
    }

    fn position(log_id: &LogId<u64>, membership: Option<&Membership>) -> WriteBatch {
        let mut batch = WriteBatch::new();
        batch.put(APPLIED_KEY.to_vec(), to_json(&Some(*log_id)));
        if let Some(m) = membership {
            batch.put(MEMBERSHIP_KEY.to_vec(), to_json(m));
        }
        batch
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SmStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        // Reads of the state and of the applied position are not one atomic view, but openraft
        // never applies entries while it builds a snapshot of the same state machine.
        let last_log_id: Option<LogId<u64>> = get_json::<Option<LogId<u64>>>(self.kv.as_ref(), APPLIED_KEY)?.flatten();
        let membership: Membership = get_json(self.kv.as_ref(), MEMBERSHIP_KEY)?.unwrap_or_default();
        let pairs: Vec<KvPair> = self.machine.state_pairs().map_err(read_error)?;
        let data = to_json(&SnapshotData { pairs });
        let snapshot_id = match last_log_id {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, data.len()),
            None => format!("empty-{}", data.len()),
        };
        let meta = SnapshotMeta { last_log_id, last_membership: membership, snapshot_id };
        let stored = StoredSnapshot { meta: meta.clone(), data: data.clone() };
        let mut batch = WriteBatch::new();
        batch.put(SNAPSHOT_KEY.to_vec(), to_json(&stored));
        self.kv.write(batch, ignifuge_kv::Durability::Synced).map_err(write_error)?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for SmStore {
    type SnapshotBuilder = SmStore;

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
                EntryPayload::Normal(command) => {
                    let outcome =
                        self.machine.apply_logged(command, Self::position(&log_id, None)).map_err(write_error)?;
                    results.push(outcome);
                }
            }
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let bytes = snapshot.into_inner();
        let data: SnapshotData = serde_json::from_slice(&bytes).map_err(read_error)?;
        let mut extra = WriteBatch::new();
        extra.put(APPLIED_KEY.to_vec(), to_json(&meta.last_log_id));
        extra.put(MEMBERSHIP_KEY.to_vec(), to_json(&meta.last_membership));
        extra.put(SNAPSHOT_KEY.to_vec(), to_json(&StoredSnapshot { meta: meta.clone(), data: bytes }));
        self.machine.replace_state(data.pairs, extra).map_err(write_error)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let stored: Option<StoredSnapshot> = get_json(self.kv.as_ref(), SNAPSHOT_KEY)?;
        Ok(stored.map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}
