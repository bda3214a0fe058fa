//! Garbage collection of blobs that no committed version references any more (replaced or
//! deleted objects, unused or aborted multipart parts). The metadata records them as garbage in
//! the same command that drops the last reference; after a grace period (so that reads that
//! started before the overwrite can finish), this task deletes their shards from every node that
//! holds one, a batch of blobs per request and node, and then forgets the records. A node that
//! cannot be reached (down, or gone from the layout) holds a batch up for at most the batch
//! delete's timeout: the records are forgotten anyway, and the shards left on
//! that node are orphans from then on, which the repair round's orphan sweep fences in the
//! metadata and deletes once the node answers again. One process at a time collects (the `gc`
//! lease), so rounds never race each other. A round goes on while its fetches of garbage past
//! the grace come back full, a batch at a time, resting after each so that it is busy at most
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
/// Garbage records fetched at once; a round fetches again while a fetch comes back full.
const GC_BLOBS_PER_FETCH: usize = 256;
/// Shard files one batch deletes across the cluster at most (a blob of more is a batch alone):
/// a batch of 256 large objects would be hundreds of thousands of unlinks.
const GC_SHARD_FILES_PER_BATCH_MAX: u64 = 4096;

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
    let mut lease = Lease::for_rounds("gc", services.holder.clone(), config.interval);
    let cycle = DutyCycle::new(config.busy_share);
    loop {
        lease.next_round(services.metadata.as_ref(), config.interval).await;
        match collect(&services, config.grace, cycle, &mut lease).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(blobs = n, "garbage collected"),
            Err(e) => tracing::warn!(error = %e, "garbage collection round failed; retrying later"),
        }
    }
}

/// One round: returns how many blobs were reclaimed. Garbage is fetched 256 records at a time
/// and deleted in batches of at most `GC_SHARD_FILES_PER_BATCH_MAX` shard files: each node is
/// asked once per batch (`delete_blobs`, one sync on the node) for every blob of it that it
/// holds shards of, all nodes at once; then the batch is forgotten and the round rests. A fetch
/// that comes back short ends the round (what ages meanwhile waits for the next one, so a
/// steady stream of overwrites does not keep one round going in ever smaller batches). The
/// lease is renewed between batches; a round whose lease was lost stops.
async fn collect(services: &Services, grace: Duration, cycle: DutyCycle, lease: &mut Lease) -> ServiceResult<usize> {
    let mut total = 0;
    loop {
        // The fetch is the metadata leader's part of the work: timed with the first batch.
        let mut step = cycle.step();
        let older_than_ms = ignifuge_types::time::now_ms() - grace.as_millis() as i64;
        let garbage = services.metadata.garbage(older_than_ms, GC_BLOBS_PER_FETCH).await?;
        let last_fetch = garbage.len() < GC_BLOBS_PER_FETCH;
        for batch in batches(garbage) {
            if !lease.keep(services.metadata.as_ref()).await? {
                tracing::info!(holder = lease.holder(), "the garbage collection lease went to another worker");
                return Ok(total);
            }
            delete_everywhere(services, &batch).await;
            let blobs: Vec<BlobId> = batch.into_iter().map(|(blob, _)| blob).collect();
            total += blobs.len();
            services.metadata.apply(Command::ForgetGarbage { blobs }).await?;
            step.rest().await;
            step = cycle.step();
        }
        if last_fetch {
            return Ok(total);
        }
    }
}

type Garbage = Vec<(BlobId, ignifuge_meta::GarbageRecord)>;

/// Splits fetched garbage into batches of at most `GC_SHARD_FILES_PER_BATCH_MAX` shard files
/// (a blob of more is a batch of its own) and `BLOBS_PER_DELETE_MAX` blobs.
fn batches(garbage: Garbage) -> Vec<Garbage> {
    let mut out: Vec<Garbage> = Vec::new();
    let mut files = 0u64;
    for (blob, record) in garbage {
        let blob_files = match &record.location {
            DataLocation::Striped(s) => u64::from(s.stripe_count) * u64::from(s.data_shards + s.parity_shards),
            _ => 0,
        };
        let full = out.last().is_none_or(|b| {
            b.len() >= BLOBS_PER_DELETE_MAX || (files + blob_files > GC_SHARD_FILES_PER_BATCH_MAX && !b.is_empty())
        });
        if full {
            out.push(Vec::new());
            files = 0;
        }
        files += blob_files;
        out.last_mut().expect("a batch was just pushed").push((blob, record));
    }
    out
}

/// Deletes a batch's shards from every node that holds some. Whatever a node does not delete
/// (unreachable, refused, an answer that never came, a disk error) is unreferenced once the
/// batch is forgotten, so the orphan sweep takes it later.
async fn delete_everywhere(services: &Services, batch: &Garbage) {
    let mut by_node: BTreeMap<NodeId, Vec<BlobId>> = BTreeMap::new();
    for (blob, record) in batch {
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
            crate::delete_blobs_on(&services.data, &node, address, &blobs).await;
        })
    });
    futures::future::join_all(deletes).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_meta::{GarbageRecord, StripedBlob};

    fn garbage(name: &str, stripes: u32) -> (BlobId, GarbageRecord) {
        let striped = StripedBlob {
            blob: BlobId::new(name),
            data_shards: 5,
            parity_shards: 4,
            shard_size_bytes: 1 << 20,
            stripe_count: stripes,
            first_stripe: 0,
            stripes: Vec::new(),
            born_ms: 0,
        };
        (BlobId::new(name), GarbageRecord { location: DataLocation::Striped(striped), since_ms: 0 })
    }

    #[test]
    fn batches_are_bounded_by_shard_files_and_blobs() {
        // 9 files per stripe: 455 one-stripe blobs are 4095 files.
        let small: Garbage = (0..600).map(|i| garbage(&format!("{i:04x}"), 1)).collect();
        let sizes: Vec<usize> = batches(small).iter().map(Vec::len).collect();
        assert_eq!(sizes, [256, 256, 88], "at most BLOBS_PER_DELETE_MAX blobs");
        let mixed: Garbage =
            vec![garbage("aa", 400), garbage("bb", 100), garbage("cc", 1000), garbage("dd", 1), garbage("ee", 1)];
        let sizes: Vec<usize> = batches(mixed).iter().map(Vec::len).collect();
        // 3600 + 900 > 4096: bb starts a batch; cc (9000 files) is one of its own.
        assert_eq!(sizes, [1, 1, 1, 2]);
    }
}
