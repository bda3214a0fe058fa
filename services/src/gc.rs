//! Garbage collection of blobs that no committed version references any more (replaced or
//! deleted objects, unused or aborted multipart parts). The metadata records them as garbage in
//! the same command that drops the last reference; after a grace period (so that reads that
//! started before the overwrite can finish), this task deletes their shards from every node that
//! holds one, a batch of up to 256 blobs per request and node, and then forgets the records. A node that cannot be reached (down, or gone from the
//! layout) does not hold the round up: the record is forgotten anyway, and the shards left on
//! that node are orphans from then on, which the repair round's orphan sweep fences in the
//! metadata and deletes once the node answers again. One process at a time collects (the `gc`
//! lease), so rounds never race each other. A round goes on until no garbage past its grace is
//! left, a batch at a time, resting after each so that it is busy at most
//! `GcConfig::busy_share` of the time (`pace`): a mass delete is reclaimed steadily without
//! taking the nodes' disks from clients.

use crate::Services;
use crate::error::ServiceResult;
use crate::lease::Lease;
use crate::pace::DutyCycle;
use ignifuge_meta::{Command, DataLocation};
use ignifuge_rpc::BLOBS_PER_DELETE_MAX;
use ignifuge_types::{BlobId, NodeId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// How long a replaced blob stays readable before its shards are deleted.
pub const GC_GRACE_MS_DEFAULT: u64 = 5 * 60 * 1000;
/// Pause between collection rounds.
pub const GC_INTERVAL_MS_DEFAULT: u64 = 30 * 1000;
/// Share of the time a round may be busy (the rest it waits): clients keep three quarters of
/// what garbage collection would take from the nodes at full speed.
pub const GC_BUSY_SHARE_DEFAULT: f64 = 0.25;
/// Garbage records fetched at once; a round fetches as many batches as there is garbage.
const GC_BLOBS_PER_BATCH_MAX: usize = 256;

#[derive(Clone, Debug)]
pub struct GcConfig {
    /// `GC_GRACE_MS_DEFAULT`.
    pub grace: Duration,
    /// `GC_INTERVAL_MS_DEFAULT`.
    pub interval: Duration,
    /// `GC_BUSY_SHARE_DEFAULT`.
    pub busy_share: f64,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_millis(GC_GRACE_MS_DEFAULT),
            interval: Duration::from_millis(GC_INTERVAL_MS_DEFAULT),
            busy_share: GC_BUSY_SHARE_DEFAULT,
        }
    }
}

/// Runs collection rounds forever (until the process stops), while this process holds the `gc`
/// lease.
pub async fn run(services: Arc<Services>, config: GcConfig) {
    let lease_duration = (config.interval * 3).max(Duration::from_secs(30));
    let mut lease = Lease::new("gc", services.holder.clone(), lease_duration);
    let cycle = DutyCycle::new(config.busy_share);
    loop {
        tokio::time::sleep(config.interval).await;
        match lease.take(services.metadata.as_ref()).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "could not take the garbage collection lease; retrying later");
                continue;
            }
        }
        match collect(&services, config.grace, cycle, &mut lease).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(blobs = n, "garbage collected"),
            Err(e) => tracing::warn!(error = %e, "garbage collection round failed; retrying later"),
        }
    }
}

/// One round: returns how many blobs were reclaimed. A batch of garbage at a time: each node is
/// asked once (`delete_blobs`, one sync on the node) for every blob of the batch it holds shards
/// of, all nodes at once, then the batch is forgotten. The lease is renewed between batches; a
/// round whose lease was lost stops.
async fn collect(services: &Services, grace: Duration, cycle: DutyCycle, lease: &mut Lease) -> ServiceResult<usize> {
    let mut total = 0;
    loop {
        let older_than_ms = ignifuge_types::time::now_ms() - grace.as_millis() as i64;
        let garbage = services.metadata.garbage(older_than_ms, GC_BLOBS_PER_BATCH_MAX).await?;
        if garbage.is_empty() {
            return Ok(total);
        }
        if !lease.keep(services.metadata.as_ref()).await? {
            tracing::info!(holder = lease.holder(), "the garbage collection lease went to another worker");
            return Ok(total);
        }
        let step = cycle.step();
        let mut by_node: BTreeMap<NodeId, Vec<BlobId>> = BTreeMap::new();
        for (blob, record) in &garbage {
            if let DataLocation::Striped(striped) = &record.location {
                let nodes: BTreeSet<&NodeId> =
                    striped.stripes.iter().flat_map(|s| s.shards.iter().map(|r| &r.node)).collect();
                for node in nodes {
                    by_node.entry(node.clone()).or_default().push(blob.clone());
                }
            }
        }
        let deletes = by_node.into_iter().filter_map(|(node, blobs)| {
            // A node gone from the layout has nothing to ask.
            let address = services.data.address(&node).ok()?;
            Some(async move {
                for chunk in blobs.chunks(BLOBS_PER_DELETE_MAX) {
                    if let Err(e) = services.data.client.delete_blobs(address, chunk).await {
                        // Unreachable, refused, or an answer that never came: whatever the node
                        // did, the blobs are unreferenced, so what it kept the orphan sweep takes.
                        tracing::debug!(%node, blobs = chunk.len(), error = %e, "shards left for the orphan sweep");
                        return;
                    }
                }
            })
        });
        futures::future::join_all(deletes).await;
        let blobs: Vec<BlobId> = garbage.into_iter().map(|(blob, _)| blob).collect();
        total += blobs.len();
        services.metadata.apply(Command::ForgetGarbage { blobs }).await?;
        step.rest().await;
    }
}
