//! The metadata's internode contract, in one place: the client every process uses to reach it
//! (`RemoteMetadata`, behind the typed `ignifuge_meta::Metadata` trait), the paths it calls
//! (`paths::META_APPLY`, `paths::META_QUERY`) and what a voter that cannot serve answers
//! (`Redirect`, the body of its 421 or 503).
//!
//! The metadata, reached over the internode API on its Raft voters. The client follows the
//! leader itself: a follower answers 421 naming the leader, an unreachable voter or one without
//! quorum makes it try the next, until `META_FAILOVER_DEADLINE_MS` has passed. S3 clients never
//! see a "not leader" error, only 503 when no majority can be reached in time. A 503 after a
//! command was sent means "not acknowledged", not "not done": the proposal may still commit once
//! a majority is back (as with any consensus system); retries of one call carry one proposal id
//! and so apply at most once. A command whose outcome stays unknown past the deadline is then
//! settled (`Command::Abandon`): the metadata answers its outcome if it was applied, or fences
//! it off for good, so the caller learns "done" or "not done" whenever a majority answers within
//! `META_SETTLE_DEADLINE_MS` more.

use crate::{NodeClient, RpcError, paths};
use ignifuge_meta::{Answer, Command, MetaError, Metadata, Outcome, Proposal, Query};
use ignifuge_types::ProposalId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a metadata call keeps looking for a leader (an election takes 1-2 s, plus detection).
pub const META_FAILOVER_DEADLINE_MS: u64 = 15_000;
/// How long settling an unknown outcome may take on top of that.
pub const META_SETTLE_DEADLINE_MS: u64 = 5_000;
/// Pause before trying again when no voter could serve.
const META_RETRY_PAUSE_MS: u64 = 100;

pub struct RemoteMetadata {
    client: NodeClient,
    /// The voters to try: from the process's file at start, then from the stored layout, plus any
    /// leader a voter names (a voter promoted since the list was made).
    voters: std::sync::RwLock<Vec<SocketAddr>>,
    /// Index into `voters` of the last known leader.
    leader: AtomicUsize,
}

/// Why a voter could not serve a metadata request itself (the body of its answer).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, thiserror::Error)]
pub enum Redirect {
    /// Not the leader; `leader` is the leader's internode address when known (421).
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<String> },
    /// No quorum, or the voter is not ready (503).
    #[error("metadata unavailable: {0}")]
    Unavailable(String),
}

impl RemoteMetadata {
    pub fn new(client: NodeClient, voters: Vec<SocketAddr>) -> Self {
        assert!(!voters.is_empty(), "the metadata needs at least one voter");
        Self { client, voters: std::sync::RwLock::new(voters), leader: AtomicUsize::new(0) }
    }

    fn voters(&self) -> std::sync::RwLockReadGuard<'_, Vec<SocketAddr>> {
        self.voters.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the voters to try (a new layout); the leader is found again by redirects.
    pub fn set_voters(&self, voters: Vec<SocketAddr>) {
        if voters.is_empty() {
            return;
        }
        let mut current = self.voters.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *current != voters {
            *current = voters;
            self.leader.store(0, Ordering::Relaxed);
        }
    }

    /// Where a 421 says the leader is: its index in `voters`, added if it is new.
    fn follow(&self, leader: SocketAddr) -> usize {
        if let Some(i) = self.voters().iter().position(|v| *v == leader) {
            return i;
        }
        let mut voters = self.voters.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        voters.iter().position(|v| *v == leader).unwrap_or_else(|| {
            voters.push(leader);
            voters.len() - 1
        })
    }

    async fn call<Q: Serialize, A: DeserializeOwned>(
        &self,
        path: &str,
        request: &Q,
        deadline_ms: u64,
    ) -> Result<A, MetaError> {
        let deadline = Instant::now() + Duration::from_millis(deadline_ms);
        let mut last_error: String;
        let mut tries_since_pause = 0;
        loop {
            let (index, address, voter_count) = {
                let voters = self.voters();
                let index = self.leader.load(Ordering::Relaxed) % voters.len();
                (index, voters[index], voters.len())
            };
            match self.client.post_json::<Q, Result<A, MetaError>>(address, path, request).await {
                Ok(answer) => return answer,
                Err(RpcError::Status { status: 421, message, .. }) => {
                    let leader = match serde_json::from_str::<Redirect>(&message) {
                        Ok(Redirect::NotLeader { leader }) => leader.and_then(|l| l.parse::<SocketAddr>().ok()),
                        _ => None,
                    };
                    match leader {
                        Some(leader) => self.leader.store(self.follow(leader), Ordering::Relaxed),
                        None => self.next_voter(index, voter_count),
                    }
                    last_error = format!("{address} is not the leader");
                }
                Err(e) => {
                    last_error = e.to_string();
                    self.next_voter(index, voter_count);
                }
            }
            if Instant::now() > deadline {
                return Err(MetaError::Unavailable(last_error));
            }
            tries_since_pause += 1;
            if tries_since_pause >= voter_count {
                tries_since_pause = 0;
                tokio::time::sleep(Duration::from_millis(META_RETRY_PAUSE_MS)).await;
            }
        }
    }

    /// Turns the unknown outcome of proposal `id` into a known one if a majority answers in
    /// time: its outcome if it was applied, `Abandoned` if it never will be; else unknown still.
    async fn settle(&self, id: ProposalId, why: String) -> Result<Outcome, MetaError> {
        let settle = Proposal {
            id: new_proposal_id(),
            issued_ms: ignifuge_types::time::now_ms(),
            aged_by_entries: true,
            command: Command::Abandon { proposal: id },
        };
        match self.call::<_, Outcome>(paths::META_APPLY, &settle, META_SETTLE_DEADLINE_MS).await {
            Err(MetaError::Unavailable(_)) => Err(MetaError::Unavailable(why)),
            settled => settled,
        }
    }

    fn next_voter(&self, failed: usize, voter_count: usize) {
        let _ = self.leader.compare_exchange(failed, (failed + 1) % voter_count, Ordering::Relaxed, Ordering::Relaxed);
    }
}

fn new_proposal_id() -> ProposalId {
    ProposalId::new(ignifuge_types::random_id())
}

#[async_trait::async_trait]
impl Metadata for RemoteMetadata {
    async fn apply(&self, command: Command) -> Result<Outcome, MetaError> {
        // One id for the whole call: a retry after a timeout or a leader change re-sends the same
        // proposal, which the state machine applies at most once.
        let id = new_proposal_id();
        let proposal =
            Proposal { id: id.clone(), issued_ms: ignifuge_types::time::now_ms(), aged_by_entries: true, command };
        let mut answer = self.call(paths::META_APPLY, &proposal, META_FAILOVER_DEADLINE_MS).await;
        if answer.is_ok() && ignifuge_faults::hit("gateway.meta.answer-lost").is_some() {
            // Applied, but the answer never arrived before the deadline.
            answer = Err(MetaError::Unavailable("fault point: the metadata's answer was lost".into()));
        }
        match answer {
            Err(MetaError::Unavailable(why)) => {
                let settled = self.settle(id, why).await;
                tracing::info!(
                    known = settled.as_ref().map_or_else(|e| e.is_known_refusal(), |_| true),
                    "settled a metadata command whose answer was lost"
                );
                settled
            }
            answer => answer,
        }
    }

    async fn query(&self, query: Query) -> Result<Answer, MetaError> {
        self.call(paths::META_QUERY, &query, META_FAILOVER_DEADLINE_MS).await
    }
}
