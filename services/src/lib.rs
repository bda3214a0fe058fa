//! Background services of the cluster: garbage collection of replaced and deleted blobs
//! ([`gc`]), repair with the orphan sweep and the comparison of the metadata replicas
//! ([`repair`], [`agreement`]), and compaction of packs of small objects ([`compact`]).
//! Lifecycle rules will run here too.
//!
//! Owns: the services' schedules, their leases in the metadata (one gateway process at a time
//! works for each service), and their bounded shares of the cluster ([`pace`]).
//! Depends on: the metadata client, the gateway's data path (shard reads, writes and deletes
//! against the storage nodes), and the metadata replicas' digest-at contract (`ignifuge-raft`).
//! Must never depend on: the storage node crate, or the gateway's S3 front end (a service
//! answers no client).
//! Invariants: a service never lowers a stripe's margin (shards are added before the metadata
//! names them and removed only after it no longer does); it deletes nothing whose fate it does
//! not know (garbage is recorded by the command that dropped its last reference, orphans are
//! fenced in the metadata before their shards go); and it works at most its configured share
//! of the time, so clients keep the rest.

pub mod agreement;
pub mod compact;
pub mod error;
pub mod gc;
mod lease;
pub mod pace;
pub mod repair;
#[cfg(test)]
mod testkit;

use ignifuge_gateway::datapath::DataPath;
use ignifuge_meta::Metadata;
use std::sync::Arc;

pub use compact::CompactConfig;
pub use error::{ServiceError, ServiceResult};
pub use gc::GcConfig;
pub use repair::RepairConfig;

/// Every service's settings (the process reads them once, with the rest of its configuration).
#[derive(Clone, Debug, Default)]
pub struct ServicesConfig {
    pub gc: GcConfig,
    pub repair: RepairConfig,
    pub compact: CompactConfig,
}

/// What the services work with: the replicated metadata, the data path to the storage nodes,
/// and who this worker is when it holds a service's lease.
pub struct Services {
    pub metadata: Arc<dyn Metadata>,
    pub data: Arc<DataPath>,
    /// Unique across hosts and restarts (a lease held by a previous run of the same process
    /// must not be taken for this one's).
    pub holder: String,
}

impl Services {
    /// Whether the layout the data path uses is one the metadata vouched for. Until it is, no
    /// round runs: the process's own file may be stale, and repair would judge every stripe's
    /// margin, GC and compaction address nodes, by a topology that is no longer the cluster's.
    pub fn layout_known(&self) -> bool {
        let known = self.data.layout().confirmed;
        if !known {
            tracing::info!("the cluster layout has not been read from the metadata yet; this round waits for it");
        }
        known
    }

    /// Starts every service, each its own task, restarted if it panics (a panic is a bug, but one
    /// in the survey must not stop garbage collection, nor either stop for good while the
    /// gateway goes on serving).
    pub fn spawn(self: Arc<Self>, config: ServicesConfig) {
        let (gc_config, repair_config, compact_config) = (config.gc, config.repair, config.compact);
        let services = self.clone();
        supervise("garbage collection", move || gc::run(services.clone(), gc_config.clone()));
        let services = self.clone();
        supervise("compaction", move || compact::run(services.clone(), compact_config.clone()));
        supervise("repair", move || repair::run(self.clone(), repair_config.clone()));
    }
}

/// Deletes every shard of `blobs` on one node, `BLOBS_PER_DELETE_MAX` per request (one request
/// per blob for a node of the previous version, which lacks the batch route). Returns the blobs
/// surely gone from the node; whatever else it still holds, the orphan sweep takes later.
pub(crate) async fn delete_blobs_on(
    data: &DataPath,
    node: &ignifuge_types::NodeId,
    address: std::net::SocketAddr,
    blobs: &[ignifuge_types::BlobId],
) -> Vec<ignifuge_types::BlobId> {
    use ignifuge_rpc::RpcError;
    let mut gone = Vec::with_capacity(blobs.len());
    for chunk in blobs.chunks(ignifuge_rpc::BLOBS_PER_DELETE_MAX) {
        match data.client.delete_blobs(address, chunk).await {
            Ok(answer) => {
                if !answer.failed.is_empty() {
                    tracing::debug!(%node, failed = answer.failed.len(), "shards left for the orphan sweep");
                }
                gone.extend(chunk.iter().filter(|b| !answer.failed.contains(b)).cloned());
            }
            Err(RpcError::NotFound(_)) => {
                for blob in chunk {
                    match data.client.delete_blob(address, blob).await {
                        Ok(()) | Err(RpcError::NotFound(_)) => gone.push(blob.clone()),
                        Err(e) => tracing::debug!(%blob, %node, error = %e, "shards left for the orphan sweep"),
                    }
                }
            }
            Err(e) => tracing::debug!(%node, blobs = chunk.len(), error = %e, "shards left for the orphan sweep"),
        }
    }
    gone
}

/// Pause before a service that panicked is started again.
const RESTART_AFTER_PANIC: std::time::Duration = std::time::Duration::from_secs(10);

fn supervise<F, Fut>(name: &'static str, start: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match tokio::spawn(start()).await {
                Err(e) if e.is_panic() => {
                    tracing::error!(service = name, error = %e, "background service panicked; restarting it");
                    tokio::time::sleep(RESTART_AFTER_PANIC).await;
                }
                // Ended (it runs forever) or cancelled at shutdown.
                _ => return,
            }
        }
    });
}
