//! Request and answer bodies of the node maintenance API (inventory, orphan listing, scrub),
//! used by the repair service and the admin CLI.

use ignifuge_types::{BlobId, ShardId};
use serde::{Deserialize, Serialize};

/// `POST /v1/inventory`: which shards of these blobs does the node hold?
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryRequest {
    pub blobs: Vec<BlobId>,
}

/// A shard file a node holds, as found on disk (not from its index).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldShard {
    pub id: ShardId,
    /// Last modification of the file (ms since the epoch, the node's clock): names this copy
    /// of the shard in a conditional delete (`NodeClient::delete_stray_shard`).
    pub modified_ms: i64,
    /// How long ago that was, by the node's own clock (no clock comparison across hosts).
    #[serde(default)]
    pub age_ms: i64,
}

/// `POST /v1/set-aside/reexamine`, and the re-examination after each scrub pass: what became of
/// the shard copies a node had set aside (quarantined or marked unreadable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAsideReexamined {
    /// Copies that read whole again, back in service (listed by the inventory again).
    pub restored: u64,
    /// Copies removed: another copy was in place again, or the blob was no longer held there.
    pub dropped: u64,
    /// Copies that still fail (left in quarantine, or marked).
    pub kept: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryAnswer {
    pub shards: Vec<HeldShard>,
}

/// `POST /v1/blobs`: the blobs a node holds, in blob-id order, after `after`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobListRequest {
    pub after: Option<BlobId>,
    pub limit: usize,
}

/// A blob directory on a node and the newest modification among its shard files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldBlob {
    pub blob: BlobId,
    pub newest_ms: i64,
    /// Age of the newest file, by the node's own clock.
    #[serde(default)]
    pub age_ms: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobListAnswer {
    pub blobs: Vec<HeldBlob>,
    /// True when the listing reached the end.
    pub complete: bool,
}

/// Blobs one `POST /v1/blobs/delete` may name.
pub const BLOBS_PER_DELETE_MAX: usize = 256;

/// `POST /v1/blobs/delete`: every shard of each blob goes (garbage collection), at most
/// `BLOBS_PER_DELETE_MAX` blobs. One request and one sync per batch instead of per blob.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobDeleteRequest {
    pub blobs: Vec<BlobId>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobDeleteAnswer {
    /// Blobs that had shards here and have none now (the others were already gone).
    pub deleted: usize,
    /// Blobs whose shards could not all be removed (a disk error): the orphan sweep retries.
    #[serde(default)]
    pub failed: Vec<BlobId>,
}

/// `POST /v1/scrub/status`: the node's scrubber.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubStatus {
    /// End of the last pass that read every shard (ms since the epoch), if any.
    pub last_complete_ms: Option<i64>,
    /// Start of the pass in progress, if one is running.
    pub pass_started_ms: Option<i64>,
    /// Since the node started.
    pub shards_checked: u64,
    pub bytes_checked: u64,
    /// Shards that failed their BLAKE3 check and were quarantined (by the scrubber or a read).
    pub corrupt_found: u64,
    /// When the last shard was set aside (corrupt or unreadable), if any since the node started.
    pub last_corrupt_ms: Option<i64>,
    /// Shards whose file could not be read (an I/O error) and were set aside like corrupt ones.
    #[serde(default)]
    pub unreadable_found: u64,
    /// Set-aside copies given back to service since the node started: they read whole again
    /// when re-examined after a scrub pass (`ShardStore::reexamine_set_aside`).
    #[serde(default)]
    pub set_aside_restored: u64,
    /// When the node process started: a report surveyed before it cannot vouch for its disk
    /// (it may have come back empty).
    #[serde(default)]
    pub node_started_ms: i64,
}
