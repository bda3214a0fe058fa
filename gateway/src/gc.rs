//! Garbage collection of blobs that no committed version references any more (replaced or
//! deleted objects, unused or aborted multipart parts). The metadata records them as garbage in
//! the same command that drops the last reference; after a grace period (so that reads that
//! started before the overwrite can finish), this task deletes their shards from every node that
//! holds one and then forgets the record. A node that cannot be reached (down, or gone from the
//! layout) does not hold the round up: the record is forgotten anyway, and the shards left on
//! that node are orphans from then on, which the repair round's orphan sweep fences in the
//! metadata and deletes once the node answers again. One gateway at a time collects (the `gc`
//! lease), so rounds never race each other.

use crate::Gateway;
use crate::error::GatewayResult;
use crate::lease::Lease;
use ignifuge_meta::{Command, DataLocation};
use ignifuge_rpc::RpcError;
use ignifuge_types::BlobId;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// How long a replaced blob stays readable before its shards are deleted.
pub const GC_GRACE_MS_DEFAULT: u64 = 5 * 60 * 1000;
/// Pause between collection rounds.
pub const GC_INTERVAL_MS_DEFAULT: u64 = 30 * 1000;
/// Blobs handled per round.
const GC_BLOBS_PER_ROUND_MAX: usize = 256;

fn env_ms(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs collection rounds forever (until the process stops), while this gateway (`holder`)
/// holds the `gc` lease. Grace and interval can be shortened for tests with IGNIFUGE_GC_GRACE_MS
/// and IGNIFUGE_GC_INTERVAL_MS.
pub async fn run(gateway: Arc<Gateway>, holder: String) {
    let grace_ms = env_ms("IGNIFUGE_GC_GRACE_MS", GC_GRACE_MS_DEFAULT);
    let interval_ms = env_ms("IGNIFUGE_GC_INTERVAL_MS", GC_INTERVAL_MS_DEFAULT);
    let mut lease = Lease::new("gc", holder, Duration::from_millis((interval_ms * 3).max(30_000)));
    loop {
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
        match lease.take(&gateway).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "could not take the garbage collection lease; retrying later");
                continue;
            }
        }
        match collect(&gateway, grace_ms, &mut lease).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(blobs = n, "garbage collected"),
            Err(e) => tracing::warn!(error = %e, "garbage collection round failed; retrying later"),
        }
    }
}

/// One round: returns how many blobs were reclaimed. Each blob's shards are deleted from all its
/// nodes at once; the lease is renewed between blobs, and a round whose lease was lost forgets
/// what it has reclaimed so far and stops.
async fn collect(gateway: &Gateway, grace_ms: u64, lease: &mut Lease) -> GatewayResult<usize> {
    let older_than_ms = ignifuge_types::time::now_ms() - grace_ms as i64;
    let garbage = gateway.metadata.garbage(older_than_ms, GC_BLOBS_PER_ROUND_MAX).await?;
    let mut reclaimed: Vec<BlobId> = Vec::new();
    for (blob, record) in garbage {
        if !lease.keep(gateway).await? {
            tracing::info!(holder = lease.holder(), "the garbage collection lease went to another gateway");
            break;
        }
        let DataLocation::Striped(striped) = &record.location else {
            reclaimed.push(blob);
            continue;
        };
        let nodes: BTreeSet<_> = striped.stripes.iter().flat_map(|s| s.shards.iter().map(|r| r.node.clone())).collect();
        let deletes = nodes.into_iter().filter_map(|node| {
            // A node gone from the layout has nothing to ask.
            let address = gateway.data.address(&node).ok()?;
            let blob = &blob;
            Some(async move {
                match gateway.data.client.delete_blob(address, blob).await {
                    Ok(()) | Err(RpcError::NotFound(_)) => {}
                    Err(e) => tracing::debug!(%blob, %node, error = %e, "shards left for the orphan sweep"),
                }
            })
        });
        futures::future::join_all(deletes).await;
        reclaimed.push(blob);
    }
    let count = reclaimed.len();
    if count > 0 {
        gateway.metadata.apply(Command::ForgetGarbage { blobs: reclaimed }).await?;
    }
    Ok(count)
}
