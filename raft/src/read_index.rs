//! Linearizable reads confirmed in batches.
//!
//! A read-index round (openraft's `get_read_log_id`: the leader's commit index, confirmed by a
//! heartbeat quorum) sends one message to every voter. Done per query, the followers' share of a
//! small GET was about two fifths of the whole cluster's CPU (docs/benchmarks.md, "Where a 64 MiB
//! PUT's and a 4 KiB GET's CPU go"). Here the queries that arrive while a round runs wait for the
//! next one, and that one round answers them all. It is still linearizable: a round begins after
//! every query it answers arrived, so its read index is at least the commit index each of them
//! would have got alone, and leadership is confirmed after that; each query then waits, on its
//! own and for at most `APPLY_WAIT_MS`, until the state machine has applied that far.
//!
//! A round is bounded (`ROUND_TIMEOUT_MS`): one that cannot finish (a new leader whose first entry
//! never commits) answers its queries Unavailable, so later ones do not queue behind it; the
//! gateway retries elsewhere. A round's task that ends without answering (a panic, a runtime
//! shutting down) drops every sender it holds, and those queries confirm on their own.

use crate::Raft;
use openraft::error::{CheckIsLeaderError, RaftError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;

/// Longest a read-index round may take (heartbeat RPCs time out after 250 ms).
const ROUND_TIMEOUT_MS: u64 = 2_000;
/// Longest a query waits for the state machine to apply up to its read index.
pub const APPLY_WAIT_MS: u64 = 3_000;

/// Why a query could not be confirmed.
#[derive(Debug, Clone)]
pub enum NotConfirmed {
    Raft(Box<RaftError<crate::RaftNodeId, CheckIsLeaderError<crate::RaftNodeId, openraft::BasicNode>>>),
    TimedOut,
}

/// The read index a query may be answered at, once applied.
type Confirmed = Result<Option<u64>, NotConfirmed>;

#[derive(Default)]
pub struct ReadBatcher {
    state: Mutex<Batch>,
}

#[derive(Default)]
struct Batch {
    /// A round is running (or about to): new queries join `waiting`.
    running: bool,
    /// Queries that arrived since the running round began.
    waiting: Vec<oneshot::Sender<Confirmed>>,
}

/// Ends the rounds however the task ends: the queries still waiting are released (their senders
/// dropped: they confirm on their own) and the next query starts a new task.
struct Stopped {
    batcher: Arc<ReadBatcher>,
    /// False once the rounds ended normally (nothing was waiting, under the lock).
    armed: bool,
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if self.armed {
            let mut batch = self.batcher.state.lock().unwrap_or_else(PoisonError::into_inner);
            batch.running = false;
            batch.waiting.clear();
        }
    }
}

impl ReadBatcher {
    /// The read index at which this replica, as leader, may answer a query that arrived now.
    pub async fn confirm(self: &Arc<Self>, raft: &Raft) -> Confirmed {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut batch = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            batch.waiting.push(tx);
            !std::mem::replace(&mut batch.running, true)
        };
        if start {
            tokio::spawn(self.clone().rounds(raft.clone()));
        }
        match rx.await {
            Ok(confirmed) => confirmed,
            // The rounds' task ended without answering: confirm alone.
            Err(_) => round(raft).await,
        }
    }

    /// Runs rounds until no query waits: each takes every query that arrived before it began.
    async fn rounds(self: Arc<Self>, raft: Raft) {
        let mut stopped = Stopped { batcher: self.clone(), armed: true };
        loop {
            let waiting = {
                let mut batch = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                if batch.waiting.is_empty() {
                    batch.running = false;
                    stopped.armed = false;
                    return;
                }
                std::mem::take(&mut batch.waiting)
            };
            let confirmed = round(&raft).await;
            for waiter in waiting {
                let _ = waiter.send(confirmed.clone());
            }
        }
    }
}

/// One read-index round, bounded.
async fn round(raft: &Raft) -> Confirmed {
    match tokio::time::timeout(Duration::from_millis(ROUND_TIMEOUT_MS), raft.get_read_log_id()).await {
        Ok(Ok((read, _applied))) => Ok(read.map(|l| l.index)),
        Ok(Err(e)) => Err(NotConfirmed::Raft(Box::new(e))),
        Err(_) => Err(NotConfirmed::TimedOut),
    }
}
