//! Garbage collection of blobs that no committed version references any more (replaced or
//! deleted objects, unused or aborted multipart parts). The metadata records them as garbage in
//! the same command that drops the last reference; after a grace period (so that reads that
//! started before the overwrite can finish), this task deletes their shards from every node that
//! holds one and then forgets the record. A node that cannot be reached keeps the record for the
//! next round: nothing is forgotten before every shard is gone.
//!
//! Not covered yet (issue 5): shards of PUTs that crashed before committing, which no metadata
//! record names; reclaiming them needs each node to compare its shard index with the metadata.

use crate::Gateway;
use crate::error::{GatewayError, GatewayResult};
use ignifuge_meta::{Answer, Command, DataLocation, Query};
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

/// Runs collection rounds forever (until the process stops). Grace and interval can be shortened
/// for tests with IGNIFUGE_GC_GRACE_MS and IGNIFUGE_GC_INTERVAL_MS.
pub async fn run(gateway: Arc<Gateway>) {
    let grace_ms = env_ms("IGNIFUGE_GC_GRACE_MS", GC_GRACE_MS_DEFAULT);
    let interval_ms = env_ms("IGNIFUGE_GC_INTERVAL_MS", GC_INTERVAL_MS_DEFAULT);
    loop {
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
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
        let mut all_gone = true;
        for node in nodes {
            let address = gateway.data.address(&node)?;
            match gateway.data.client.delete_blob(address, &blob).await {
                Ok(()) | Err(RpcError::NotFound(_)) => {}
                Err(e) => {
                    tracing::debug!(%blob, %node, error = %e, "cannot reclaim shards yet");
                    all_gone = false;
                }
            }
        }
        if all_gone {
            reclaimed.push(blob);
        }
    }
    let count = reclaimed.len();
    if count > 0 {
        gateway.metadata.apply(Command::ForgetGarbage { blobs: reclaimed }).await?;
    }
    Ok(count)
}
