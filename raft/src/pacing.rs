//! When a replica builds a snapshot of the metadata.
//!
//! A snapshot writes the whole state; building one every fixed number of entries (openraft's
//! `LogsSinceLast`) costs work proportional to the state per that many entries, so the cost of
//! each write grows with the state: at 20,000 small objects every voter spent ~6 s of every
//! ~15 s writing snapshots, and clients' PUTs fell to a fifth of their rate meanwhile
//! (docs/benchmarks.md, "Background work and client latency"). Here a snapshot is due when at
//! least `snapshot_entries` entries were applied since the last one *and* the log has grown, since
//! the last snapshot was made, by the last snapshot's size (its state before compression) times this replica's `spread` (between
//! 1 and 2). So the bytes written for snapshots stay within about twice those written to the log
//! (a snapshot of a growing state holds what the log added to it), whatever the state's size,
//! and the log behind the last snapshot holds at most about twice that snapshot's size (plus the
//! `snapshot_entries` floor and the entries openraft keeps behind a snapshot). `spread` differs
//! between replicas so that voters sharing a machine (the dev cluster) do not all write their
//! snapshots at the same moment. Each replica paces itself on what it appended; at start it
//! counts the log it kept (`LogStore::stored_bytes`), so restarts do not reset the count.

use crate::Raft;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often the pacer looks.
const PACER_PERIOD_MS: u64 = 500;

pub struct SnapshotPacing {
    /// How many times the last snapshot's size the log must grow by, in thousandths (1000-1999).
    spread_milli: u64,
    /// Bytes appended to the log since this replica started, plus those it kept from before.
    log_bytes: AtomicU64,
    /// Bytes of state in the current snapshot (built or installed), before compression.
    snapshot_bytes: AtomicU64,
    /// `log_bytes` when the current snapshot was made.
    at_last_snapshot: AtomicU64,
}

impl Default for SnapshotPacing {
    fn default() -> Self {
        Self::new(0)
    }
}

impl SnapshotPacing {
    /// `seed` (the replica's id) picks the spread.
    pub fn new(seed: u64) -> Self {
        Self {
            spread_milli: 1000 + seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 1000,
            log_bytes: AtomicU64::new(0),
            snapshot_bytes: AtomicU64::new(0),
            at_last_snapshot: AtomicU64::new(0),
        }
    }

    pub fn appended(&self, bytes: u64) {
        self.log_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A snapshot of `bytes` of state became current (built here or installed from the leader).
    pub fn snapshot_made(&self, bytes: u64) {
        self.snapshot_bytes.store(bytes, Ordering::Relaxed);
        self.at_last_snapshot.store(self.log_bytes.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Whether a snapshot is due, `entries_since` entries after the last one.
    pub fn due(&self, entries_since: u64, snapshot_entries: u64) -> bool {
        let grown =
            self.log_bytes.load(Ordering::Relaxed).saturating_sub(self.at_last_snapshot.load(Ordering::Relaxed));
        let needed = self.snapshot_bytes.load(Ordering::Relaxed).saturating_mul(self.spread_milli) / 1000;
        entries_since >= snapshot_entries && grown >= needed
    }
}

/// Asks openraft for a snapshot whenever one is due, until the replica shuts down.
pub async fn run(raft: Raft, pacing: Arc<SnapshotPacing>, snapshot_entries: u64) {
    loop {
        tokio::time::sleep(Duration::from_millis(PACER_PERIOD_MS)).await;
        let (applied, snapshot, running) = {
            let metrics = raft.metrics();
            let m = metrics.borrow();
            (m.last_applied.map_or(0, |l| l.index), m.snapshot.map_or(0, |l| l.index), m.running_state.is_ok())
        };
        if !running {
            return;
        }
        // While a build runs, openraft ignores the request: the count restarts only when a
        // snapshot is made (`snapshot_made`).
        if pacing.due(applied.saturating_sub(snapshot), snapshot_entries) {
            if raft.trigger().snapshot().await.is_err() {
                return; // shut down
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_spread_their_snapshots() {
        let spreads: std::collections::BTreeSet<u64> =
            (1..10u64).map(|id| SnapshotPacing::new(id).spread_milli).collect();
        assert!(spreads.len() >= 8, "{spreads:?}");
        assert!(spreads.iter().all(|s| (1000..2000).contains(s)));
    }

    #[test]
    fn a_snapshot_is_due_after_enough_entries_and_as_many_log_bytes_as_it_holds() {
        let pacing = SnapshotPacing::default();
        // No snapshot yet: entries decide.
        assert!(!pacing.due(4_999, 5_000));
        assert!(pacing.due(5_000, 5_000));
        pacing.snapshot_made(100 << 20);
        // A large state: 5,000 entries are not enough until the log has grown by 100 MiB.
        pacing.appended(60 << 20);
        assert!(!pacing.due(20_000, 5_000));
        pacing.appended(40 << 20);
        assert!(pacing.due(20_000, 5_000));
        // Asked for, not yet made: still due (openraft may have ignored the request).
        assert!(pacing.due(20_000, 5_000));
        // A small state: entries decide again, counting from when it was made.
        pacing.snapshot_made(1 << 10);
        assert!(!pacing.due(20_000, 5_000), "the bytes count again from the snapshot made");
        pacing.appended(2 << 10);
        assert!(!pacing.due(10, 5_000));
        assert!(pacing.due(5_000, 5_000));
    }
}
