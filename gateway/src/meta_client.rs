//! The metadata, reached over the internode API on its Raft voters. The client follows the
//! leader itself: a follower answers 421 naming the leader, an unreachable voter or one without
//! quorum makes it try the next, until `META_FAILOVER_DEADLINE_MS` has passed. S3 clients never
//! see a "not leader" error, only 503 when no majority can be reached in time. A 503 after a
//! command was sent means "not acknowledged", not "not done": the proposal may still commit once
//! a majority is back (as with any consensus system); retries of one call carry one proposal id
//! and so apply at most once.

use ignifuge_meta::{Answer, Command, MetaError, Metadata, Outcome, Proposal, Query};
use ignifuge_rpc::{NodeClient, RpcError, paths};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a metadata call keeps looking for a leader (an election takes 1-2 s, plus detection).
pub const META_FAILOVER_DEADLINE_MS: u64 = 15_000;
/// Pause before trying again when no voter could serve.
const META_RETRY_PAUSE_MS: u64 = 100;

pub struct RemoteMetadata {
    client: NodeClient,
    voters: Vec<SocketAddr>,
    /// Index into `voters` of the last known leader.
    leader: AtomicUsize,
}

#[derive(serde::Deserialize)]
enum Redirect {
    NotLeader { leader: Option<String> },
    Unavailable(#[allow(dead_code)] String),
}

impl RemoteMetadata {
    pub fn new(client: NodeClient, voters: Vec<SocketAddr>) -> Self {
        assert!(!voters.is_empty(), "the metadata needs at least one voter");
        Self { client, voters, leader: AtomicUsize::new(0) }
    }

    async fn call<Q: Serialize, A: DeserializeOwned>(&self, path: &str, request: &Q) -> Result<A, MetaError> {
        let deadline = Instant::now() + Duration::from_millis(META_FAILOVER_DEADLINE_MS);
        let mut last_error: String;
        let mut tries_since_pause = 0;
        loop {
            let index = self.leader.load(Ordering::Relaxed) % self.voters.len();
            let address = self.voters[index];
            match self.client.post_json::<Q, Result<A, MetaError>>(address, path, request).await {
                Ok(answer) => return answer,
                Err(RpcError::Status { status: 421, message, .. }) => {
                    let leader = match serde_json::from_str::<Redirect>(&message) {
                        Ok(Redirect::NotLeader { leader }) => leader.and_then(|l| l.parse::<SocketAddr>().ok()),
                        _ => None,
                    };
                    match leader.and_then(|l| self.voters.iter().position(|v| *v == l)) {
                        Some(i) => self.leader.store(i, Ordering::Relaxed),
                        None => self.next_voter(index),
                    }
                    last_error = format!("{address} is not the leader");
                }
                Err(e) => {
                    last_error = e.to_string();
                    self.next_voter(index);
                }
            }
            if Instant::now() > deadline {
                return Err(MetaError::Unavailable(last_error));
            }
            tries_since_pause += 1;
            if tries_since_pause >= self.voters.len() {
                tries_since_pause = 0;
                tokio::time::sleep(Duration::from_millis(META_RETRY_PAUSE_MS)).await;
            }
        }
    }

    fn next_voter(&self, failed: usize) {
        let _ = self.leader.compare_exchange(
            failed,
            (failed + 1) % self.voters.len(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

#[async_trait::async_trait]
impl Metadata for RemoteMetadata {
    async fn apply(&self, command: Command) -> Result<Outcome, MetaError> {
        // One id for the whole call: a retry after a timeout or a leader change re-sends the same
        // proposal, which the state machine applies at most once.
        let proposal =
            Proposal { id: hex::encode(rand::random::<[u8; 16]>()), issued_ms: crate::s3::now_ms(), command };
        self.call(paths::META_APPLY, &proposal).await
    }

    async fn query(&self, query: Query) -> Result<Answer, MetaError> {
        self.call(paths::META_QUERY, &query).await
    }
}
