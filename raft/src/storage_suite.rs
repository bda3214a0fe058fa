//! openraft's own conformance suite for storage (`openraft::testing::Suite`) run against the log
//! store and the state machine over an in-memory store: appends, reads, truncations, votes,
//! committed positions, applies, initial state, snapshot building, transfer and install. Every
//! test of the suite but those that purge (the purges themselves, `append_to_log`,
//! `get_initial_state_log_ids`, `get_initial_state_re_apply_committed`, `get_log_id`,
//! `get_log_state`, `last_id_in_log`, `try_get_log_entry`): `LogStore::purge` waits until the
//! state machine has applied up to the purged entry (see its comment), which those tests, purging
//! with nothing applied, never let happen (they hang); `purges_wait_for_the_state_machine` covers
//! purging instead.

use crate::TypeConfig;
use crate::log_store::LogStore;
use crate::pacing::SnapshotPacing;
use crate::state_machine::SmStore;
use ignifuge_kv::{KvStore, MemoryKv};
use ignifuge_meta::StateMachine;
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use std::sync::Arc;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, SmStore, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, SmStore), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::default());
        let pacing = Arc::new(SnapshotPacing::default());
        let log = LogStore::new(kv.clone(), pacing.clone());
        let sm = SmStore::new(Arc::new(StateMachine::new(kv.clone())), kv, dir.path().join("snapshots"), pacing)?;
        Ok((dir, log, sm))
    }
}

type Tests = Suite<TypeConfig, LogStore, SmStore, Builder, tempfile::TempDir>;

/// Runs each named test of the suite on a store of its own.
macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                let (_dir, log, sm) = Builder.build().await.unwrap();
                Tests::$test(log, sm).await.unwrap();
            }
        )*
    };
}

suite!(
    last_membership_in_log_initial,
    last_membership_in_log,
    last_membership_in_log_multi_step,
    get_membership_initial,
    get_membership_from_log_and_empty_sm,
    get_membership_from_empty_log_and_sm,
    get_membership_from_log_le_sm_last_applied,
    get_membership_from_log_gt_sm_last_applied_1,
    get_membership_from_log_gt_sm_last_applied_2,
    get_initial_state_without_init,
    get_initial_state_membership_from_log_and_sm,
    get_initial_state_with_state,
    get_initial_state_last_log_gt_sm,
    get_initial_state_last_log_lt_sm,
    save_vote,
    get_log_entries,
    limited_get_log_entries,
    initial_logs,
    last_applied_state,
    delete_logs_since_11,
    delete_logs_since_0,
    snapshot_meta,
    apply_single,
    apply_multiple,
);

#[tokio::test]
async fn a_snapshot_transfers_and_installs_as_openraft_sends_it() {
    Tests::transfer_snapshot(&Builder).await.unwrap();
}

/// A purge returns once the state machine has applied up to the entry it purges, and not before
/// (a crash between a purge and a snapshot install must not leave a state behind a log that is
/// gone); the entries after it stay.
#[tokio::test]
async fn purges_wait_for_the_state_machine() {
    use openraft::storage::{RaftLogReader, RaftLogStorage, RaftStateMachine};
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
    let log_id = |index| LogId::new(CommittedLeaderId::new(1, 1), index);
    let (_dir, mut log, mut sm) = Builder.build().await.unwrap();
    Tests::feed_10_logs_vote_self(&mut log).await.unwrap();
    let blanks = |range: std::ops::RangeInclusive<u64>| {
        range.map(|i| Entry::<TypeConfig> { log_id: log_id(i), payload: EntryPayload::Blank }).collect::<Vec<_>>()
    };
    sm.apply(blanks(1..=5)).await.unwrap();
    log.purge(log_id(5)).await.unwrap();
    let left = log.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(left.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), (6..=10).collect::<Vec<_>>());
    assert_eq!(log.get_log_state().await.unwrap().last_purged_log_id, Some(log_id(5)));

    let mut waiting = log.clone();
    let purge = tokio::spawn(async move { waiting.purge(log_id(8)).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!purge.is_finished(), "purged entries the state machine has not applied");
    assert_eq!(log.try_get_log_entries(0..100).await.unwrap().len(), 5);
    sm.apply(blanks(6..=8)).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), purge).await.unwrap().unwrap().unwrap();
    let left = log.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(left.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), vec![9, 10]);
}
