//! The metadata state machine as Raft's state machine, and its snapshots.

use crate::TypeConfig;
use crate::log_store::{get_json, read_error, to_json, write_error};
use ignifuge_kv::{KvPair, KvStore, WriteBatch};
use ignifuge_meta::{Outcome, StateMachine};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{BasicNode, Entry, EntryPayload, LogId, OptionalSend, StorageError, StoredMembership};
use std::io::Cursor;
use std::sync::Arc;

const APPLIED_KEY: &[u8] = b"r/applied";
const MEMBERSHIP_KEY: &[u8] = b"r/membership";
const SNAPSHOT_META_KEY: &[u8] = b"r/snapshot-meta";
const SNAPSHOT_DATA_KEY: &[u8] = b"r/snapshot-data";

type Membership = StoredMembership<u64, BasicNode>;

/// Snapshot bytes: a sequence of (u32 BE key length, key, u32 BE value length, value). Binary,
/// because the values are already serialised records (JSON of JSON would double their size).
fn encode_pairs(pairs: &[KvPair]) -> Vec<u8> {
    let size: usize = pairs.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(size);
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v);
    }
    out
}

fn decode_pairs(mut bytes: &[u8]) -> Result<Vec<KvPair>, String> {
    fn take<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], String> {
        if bytes.len() < 4 {
            return Err("truncated snapshot".into());
        }
        let len = u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
        if bytes.len() < 4 + len {
            return Err("truncated snapshot".into());
        }
        let item = &bytes[4..4 + len];
        *bytes = &bytes[4 + len..];
        Ok(item)
    }
    let mut pairs = Vec::new();
    while !bytes.is_empty() {
        let key = take(&mut bytes)?.to_vec();
        let value = take(&mut bytes)?.to_vec();
        pairs.push((key, value));
    }
    Ok(pairs)
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
        // Serialising the whole state is long: off the async runtime, so heartbeats keep flowing.
        let machine = self.machine.clone();
        let data = tokio::task::spawn_blocking(move || machine.state_pairs().map(|p| encode_pairs(&p)))
            .await
            .map_err(read_error)?
            .map_err(read_error)?;
        let snapshot_id = match last_log_id {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, data.len()),
            None => format!("empty-{}", data.len()),
        };
        let meta = SnapshotMeta { last_log_id, last_membership: membership, snapshot_id };
        let mut batch = WriteBatch::new();
        batch.put(SNAPSHOT_META_KEY.to_vec(), to_json(&meta));
        batch.put(SNAPSHOT_DATA_KEY.to_vec(), data.clone());
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
                EntryPayload::Normal(proposal) => {
                    let outcome = self
                        .machine
                        .apply_proposal_logged(proposal, Self::position(&log_id, None))
                        .map_err(write_error)?;
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
        let pairs = decode_pairs(&bytes).map_err(read_error)?;
        let mut extra = WriteBatch::new();
        extra.put(APPLIED_KEY.to_vec(), to_json(&meta.last_log_id));
        extra.put(MEMBERSHIP_KEY.to_vec(), to_json(&meta.last_membership));
        extra.put(SNAPSHOT_META_KEY.to_vec(), to_json(meta));
        extra.put(SNAPSHOT_DATA_KEY.to_vec(), bytes);
        let machine = self.machine.clone();
        tokio::task::spawn_blocking(move || machine.replace_state(pairs, extra))
            .await
            .map_err(write_error)?
            .map_err(write_error)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let Some(meta) = get_json::<SnapshotMeta<u64, BasicNode>>(self.kv.as_ref(), SNAPSHOT_META_KEY)? else {
            return Ok(None);
        };
        let data = self.kv.get(SNAPSHOT_DATA_KEY).map_err(read_error)?.unwrap_or_default();
        Ok(Some(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_encoding_round_trips_and_rejects_truncation() {
        let pairs = vec![(b"o/b/k".to_vec(), b"{}".to_vec()), (Vec::new(), vec![0, 1, 2]), (b"c".to_vec(), Vec::new())];
        let bytes = encode_pairs(&pairs);
        assert_eq!(decode_pairs(&bytes).unwrap(), pairs);
        assert!(decode_pairs(&bytes[..bytes.len() - 1]).is_err());
    }
}
