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
use crate::error::{GatewayError, GatewayResult};
use ignifuge_meta::{Answer, Command, DataLocation, MetaError, Query};
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
    loop {
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
        let lease = Command::TakeLease {
            name: "gc".into(),
            holder: holder.clone(),
            now_ms: crate::s3::now_ms(),
            duration_ms: (interval_ms as i64 * 3).max(30_000),
        };
        match gateway.metadata.apply(lease).await {
            Ok(_) => {}
            Err(MetaError::LeaseHeld { .. }) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "could not take the garbage collection lease; retrying later");
                continue;
            }
        }
        match collect(&gateway, grace_ms).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(blobs = n, "garbage collected"),
            Err(e) => tracing::warn!(error = %e, "garbage collection round failed; retrying later"),
        }
    }
}

/// One round: returns how many blobs were reclaimed.
pub async fn collect(gateway: &Gateway, grace_ms: u64) -> GatewayResult<usize> {
    let older_than_ms = crate::s3::now_ms() - grace_ms as i64;
    let query = Query::Garbage { older_than_ms, limit: GC_BLOBS_PER_ROUND_MAX };
    let garbage = match gateway.metadata.query(query).await? {
        Answer::Garbage(g) => g,
        _ => return Err(GatewayError::Internal("unexpected answer to a garbage query".into())),
    };
    let mut reclaimed: Vec<BlobId> = Vec::new();
    for (blob, record) in garbage {
        let DataLocation::Striped(striped) = &record.location else {
            reclaimed.push(blob);
            continue;
        };
        let nodes: BTreeSet<_> = striped.stripes.iter().flat_map(|s| s.shards.iter().map(|r| r.node.clone())).collect();
        for node in nodes {
            let deleted = match gateway.data.address(&node) {
                Ok(address) => gateway.data.client.delete_blob(address, &blob).await,
                Err(_) => continue, // gone from the layout: nothing to ask
            };
            match deleted {
                Ok(()) | Err(RpcError::NotFound(_)) => {}
                Err(e) => tracing::debug!(%blob, %node, error = %e, "shards left for the orphan sweep"),
            }
        }
        reclaimed.push(blob);
    }
    let count = reclaimed.len();
    if count > 0 {
        gateway.metadata.apply(Command::ForgetGarbage { blobs: reclaimed }).await?;
    }
    Ok(count)
}
