//! Rebuilding one stripe: fetch the present shards (each checked against its BLAKE3 hash in the
//! metadata), reconstruct the missing ones from any k, write every planned shard to its target
//! (fsynced by the node before it answers), and return the stripe's new shard list. Nothing is
//! deleted here: old copies go only after the metadata names the new ones.

use super::survey::{NodeState, ShardState, StripeSurvey, plan_targets, slot_of};
use crate::error::{ServiceError, ServiceResult};
use bytes::Bytes;
use ignifuge_gateway::datapath::DataPath;
use ignifuge_meta::{ShardRecord, StripedBlob};
use ignifuge_types::{NodeId, ShardId, ShardIndex, StripeIndex};
use std::sync::Arc;

/// The outcome of rebuilding a stripe, to commit with a compare-and-swap.
pub(crate) struct Rebuilt {
    pub replacement: Vec<ShardRecord>,
    /// Still below the class's full budget (for example while a datacenter is out).
    pub debt: bool,
    pub bytes_written: u64,
    /// Copies to delete once the replacement is committed: (node, shard) of moved shards.
    pub superseded: Vec<(NodeId, ShardId)>,
}

/// Rebuilds stripe `stripe` of `blob` as `survey` found it. None when no shard can be placed
/// anywhere better. `io` counts the shard bytes it reads and writes, whatever it returns (the
/// repair rate limit charges a failed rebuild for them).
pub(crate) async fn rebuild_stripe(
    data: &Arc<DataPath>,
    blob: &StripedBlob,
    stripe: u32,
    survey: &StripeSurvey,
    node_state: impl Fn(&NodeId) -> NodeState,
    io: &mut u64,
) -> ServiceResult<Option<Rebuilt>> {
    let layout = data.layout();
    let record = blob
        .stripe(stripe)
        .ok_or_else(|| ServiceError::Internal(format!("stripe {stripe} of blob {} not loaded", blob.blob)))?;
    let k = blob.data_shards as usize;
    let n = k + blob.parity_shards as usize;
    if record.shards.len() != n || n != layout.geometry.total_shards() as usize {
        return Err(ServiceError::Internal(format!(
            "blob {} was written with {}+{}, the data path now uses {}+{}: not repaired",
            blob.blob, blob.data_shards, blob.parity_shards, layout.geometry.data_shards, layout.geometry.parity_shards
        )));
    }
    let ideal = data.slots(&layout, &blob.blob, StripeIndex(stripe))?;
    let targets = plan_targets(&layout.topology, &ideal, record, survey, &node_state);
    if targets.iter().all(Option::is_none) {
        return Ok(None);
    }
    let hashes: Vec<blake3::Hash> = record
        .shards
        .iter()
        .map(|s| blake3::Hash::from_hex(&s.blake3))
        .collect::<Result<_, _>>()
        .map_err(|e| ServiceError::Internal(format!("malformed shard hash in the metadata: {e}")))?;

    // Sources: the present shards being moved, then other present shards up to k (more only
    // if some of those fail to read).
    let present: Vec<usize> = (0..n).filter(|&i| survey.states[i] == ShardState::Present).collect();
    let (mut first, mut rest): (Vec<usize>, Vec<usize>) = present.iter().partition(|&&i| targets[i].is_some());
    let missing_targets = (0..n).any(|i| targets[i].is_some() && survey.states[i] != ShardState::Present);
    if missing_targets {
        let more = k.saturating_sub(first.len()).min(rest.len());
        first.extend(rest.drain(..more));
    }
    let mut shards: Vec<Option<Bytes>> = vec![None; n];
    for batch in [first, rest] {
        let have = shards.iter().filter(|s| s.is_some()).count();
        let complete = (0..n).all(|i| targets[i].is_none() || shards[i].is_some());
        if complete || (have >= k && !batch.iter().any(|&i| targets[i].is_some())) {
            break;
        }
        let fetched = futures::future::join_all(batch.iter().map(|&i| data.fetch_shard(blob, stripe, i))).await;
        for (i, bytes) in batch.into_iter().zip(fetched) {
            *io += bytes.as_ref().map_or(0, |b| b.len() as u64);
            shards[i] = bytes;
        }
    }
    let needs_decode = (0..n).any(|i| targets[i].is_some() && shards[i].is_none());
    if needs_decode {
        if shards.iter().filter(|s| s.is_some()).count() < k {
            return Err(ServiceError::Unreadable { blob: blob.blob.clone(), stripe });
        }
        let mut owned: Vec<Option<Vec<u8>>> = shards.iter().map(|s| s.as_ref().map(|b| b.to_vec())).collect();
        let codec = ignifuge_gateway::codec::codec_of(&layout.codec, k, n - k)?;
        let rebuilt = tokio::task::spawn_blocking(move || codec.reconstruct(&mut owned).map(|()| owned))
            .await
            .map_err(|e| ServiceError::Internal(format!("reconstruction task: {e}")))??;
        for (slot, bytes) in shards.iter_mut().zip(rebuilt) {
            if slot.is_none() {
                *slot = bytes.map(Bytes::from);
            }
        }
    }
    let shards: Vec<Bytes> = shards.into_iter().map(Option::unwrap_or_default).collect();

    let mut replacement = record.shards.clone();
    let mut superseded = Vec::new();
    let mut bytes_written = 0u64;
    let writes = targets.iter().enumerate().filter_map(|(i, t)| t.as_ref().map(|node| (i, node))).map(|(i, node)| {
        let slot = slot_of(&layout.topology, node);
        let (shards, hashes) = (&shards, &hashes);
        async move {
            let slot = slot?;
            if blake3::hash(&shards[i]) != hashes[i] {
                // The codec rebuilt something else than was written: never store it.
                tracing::error!(blob = %blob.blob, stripe, shard = i, "rebuilt shard does not match its hash");
                return None;
            }
            data.put_shard(&blob.blob, &StripeIndex(stripe), i, k, &slot, shards, hashes).await.map(|s| (i, s.node))
        }
    });
    for (i, node) in futures::future::join_all(writes).await.into_iter().flatten() {
        bytes_written += shards[i].len() as u64;
        *io += shards[i].len() as u64;
        let old = std::mem::replace(&mut replacement[i].node, node.clone());
        if survey.states[i] == ShardState::Present && old != node {
            let id = ShardId { blob: blob.blob.clone(), stripe: StripeIndex(stripe), shard: ShardIndex(i as u32) };
            superseded.push((old, id));
        }
    }
    if bytes_written == 0 {
        return Err(ServiceError::Internal(format!("no rebuilt shard of {}/{stripe} could be written", blob.blob)));
    }
    let slots: Vec<_> = replacement.iter().filter_map(|s| slot_of(&layout.topology, &s.node)).collect();
    let debt =
        !ignifuge_placement::check_survivability(&layout.topology, layout.geometry, &slots, layout.budget).meets_budget;
    Ok(Some(Rebuilt { replacement, debt, bytes_written, superseded }))
}
