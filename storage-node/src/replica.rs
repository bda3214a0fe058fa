//! The metadata replica a node keeps, started again in place when its Raft stops.
//!
//! openraft stops a replica for good when its store fails a write: a metadata disk that filled
//! for a moment left its voter stopped until the whole node was restarted by hand, though the
//! disk had room again minutes later, and the metadata one voter short of its budget meanwhile.
//! Restarting the process would take the node's shards offline with it (a node down, for every
//! stripe it holds); so the node goes on serving its shards and starts the replica again on the
//! same store, as a restart would: once the old one's tasks have let go of the state, and once
//! the store takes a synced write again (`ignifuge_kv::RocksKv` opens its RocksDB again after a
//! failed write, which RocksDB needs before it takes another). A replica stopped otherwise (a
//! panic in openraft) is left stopped, for an operator to look at.

use ignifuge_kv::{Durability, KvStore, WriteBatch};
use ignifuge_raft::{RaftMetadata, RaftNodeId, RaftTuning};
use ignifuge_rpc::NodeClient;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// The first wait before a stopped replica is started again, doubled at each failed attempt up
/// to `RESTART_WAIT_MAX`; back to this once a replica ran that long.
const RESTART_WAIT_MIN: Duration = Duration::from_secs(1);
const RESTART_WAIT_MAX: Duration = Duration::from_secs(30);
/// How long a stopped replica's tasks are waited for at a time (a snapshot build under way
/// holds the state machine until it ends).
const RELEASE_WAIT: Duration = Duration::from_secs(30);
/// Written and deleted in one synced batch to find out whether the store takes writes: nothing
/// is left under it.
const PROBE_KEY: &[u8] = b"~writable";

/// What a replica is started from, and again after it stopped.
#[derive(Clone)]
pub struct ReplicaStart {
    pub id: RaftNodeId,
    pub kv: Arc<dyn KvStore>,
    pub snapshot_dir: PathBuf,
    /// Raft traffic's own connection pool, so heartbeats never wait behind shards.
    pub client: NodeClient,
    pub tuning: RaftTuning,
    /// Where this node listens (the membership keeper's own address).
    pub address: String,
}

impl ReplicaStart {
    async fn launch(&self) -> Result<Arc<RaftMetadata>, String> {
        let replica =
            RaftMetadata::start(self.id, self.kv.clone(), self.snapshot_dir.clone(), self.client.clone(), self.tuning)
                .await?;
        tokio::spawn(replica.clone().keep_membership(self.address.clone()));
        Ok(replica)
    }

    fn takes_writes(&self) -> Result<(), String> {
        let mut batch = WriteBatch::new();
        batch.put(PROBE_KEY, Vec::new());
        batch.delete(PROBE_KEY);
        self.kv.write(batch, Durability::Synced).map_err(|e| e.to_string())
    }
}

/// The node's metadata replica: the one running now (`current`), started again whenever it stops.
pub struct MetadataReplica {
    current: RwLock<Arc<RaftMetadata>>,
    start: ReplicaStart,
}

impl MetadataReplica {
    pub async fn start(start: ReplicaStart) -> Result<Arc<Self>, String> {
        let replica = start.launch().await?;
        let keeper = Arc::new(Self { current: RwLock::new(replica), start });
        tokio::spawn(keeper.clone().keep_running());
        Ok(keeper)
    }

    /// The replica running now (a stopped one, answering errors, while it is started again).
    pub fn current(&self) -> Arc<RaftMetadata> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    async fn keep_running(self: Arc<Self>) {
        let mut wait = RESTART_WAIT_MIN;
        loop {
            let replica = self.current();
            let started = Instant::now();
            let stopped = replica.stopped().await;
            if !stopped.by_store {
                // A panic in openraft, a shutdown: not something a restart is known to cure.
                tracing::error!(error = %stopped.why, "the metadata replica stopped; it is left stopped");
                return;
            }
            if started.elapsed() >= RESTART_WAIT_MAX {
                wait = RESTART_WAIT_MIN;
            }
            tracing::error!(
                error = %stopped.why,
                "the metadata replica's store failed; the node goes on serving its shards and starts the replica again once the store takes writes"
            );
            while !replica.release(RELEASE_WAIT).await {
                tracing::warn!("the stopped metadata replica's tasks still hold its state; waiting for them");
            }
            drop(replica);
            loop {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RESTART_WAIT_MAX);
                // A synced write, and maybe the store's reopening: off the async runtime. A task
                // that panics (here or in the start) is a failed attempt, never the end of this
                // keeper.
                let start = self.start.clone();
                match tokio::task::spawn_blocking(move || start.takes_writes()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "the metadata store still refuses writes; the replica waits");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the metadata store's probe failed; the replica waits");
                        continue;
                    }
                }
                let start = self.start.clone();
                match tokio::spawn(async move { start.launch().await }).await {
                    Ok(Ok(replica)) => {
                        *self.current.write().unwrap_or_else(PoisonError::into_inner) = replica;
                        tracing::warn!("the metadata replica started again");
                        break;
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "could not start the metadata replica again"),
                    Err(e) => tracing::warn!(error = %e, "starting the metadata replica again failed"),
                }
            }
        }
    }
}
