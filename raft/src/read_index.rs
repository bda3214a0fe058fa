//! Linearizable reads confirmed in batches.
//!
//! A read-index round (openraft's `ensure_linearizable`: the leader's commit index, confirmed by
//! a heartbeat quorum, then the state machine applied up to it) sends one message to every
//! voter. Done per query, the followers' share of a small GET was about two fifths of the whole
//! cluster's CPU (docs/benchmarks.md, "Where a 64 MiB PUT's and a 4 KiB GET's CPU go"). Here the
//! queries that arrive while a round runs wait for the next one, and that one round answers them
//! all. It is still linearizable: a round begins after every query it answers arrived, so its
//! read index is at least the commit index each of them would have got alone, and leadership is
//! confirmed after that.

use crate::Raft;
use openraft::error::{CheckIsLeaderError, RaftError};
use std::sync::Mutex;
use tokio::sync::oneshot;

type Confirmed = Result<(), RaftError<crate::RaftNodeId, CheckIsLeaderError<crate::RaftNodeId, openraft::BasicNode>>>;

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

impl ReadBatcher {
    /// Returns once this replica, as leader, may answer a query that arrived now, linearizably.
    pub async fn confirm(self: &std::sync::Arc<Self>, raft: &Raft) -> Confirmed {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut batch = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            batch.waiting.push(tx);
            !std::mem::replace(&mut batch.running, true)
        };
        if start {
            tokio::spawn(self.clone().rounds(raft.clone()));
        }
        match rx.await {
            Ok(confirmed) => confirmed,
            // The round's task ended without answering (the runtime is shutting down).
            Err(_) => raft.ensure_linearizable().await.map(|_| ()),
        }
    }

    /// Runs rounds until no query waits: each takes every query that arrived before it began.
    async fn rounds(self: std::sync::Arc<Self>, raft: Raft) {
        loop {
            let waiting = {
                let mut batch = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if batch.waiting.is_empty() {
                    batch.running = false;
                    return;
                }
                std::mem::take(&mut batch.waiting)
            };
            let confirmed = raft.ensure_linearizable().await.map(|_| ());
            for waiter in waiting {
                let _ = waiter.send(confirmed.clone());
            }
        }
    }
}
