//! Records of the cluster's own maintenance: the blob scan the repair service walks, the lease
//! that elects one repair worker, and the report it leaves for operators.

use crate::records::{ShardRecord, StripedBlob};
use ignifuge_types::{BlobId, BucketName, NodeId, ObjectKey, TenantId, UploadId, VersionId};
use serde::{Deserialize, Serialize};

/// The record that references a blob.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BlobOwner {
    /// Part `part_number` of the current version of an object.
    Object { bucket: BucketName, key: ObjectKey, part_number: u32 },
    /// A part of a multipart upload in progress.
    UploadPart { bucket: BucketName, upload_id: UploadId, part_number: u32 },
    /// A blob no record references any more, waiting for the garbage collector.
    Garbage,
    /// Part `part_number` of a non-current version of an object (or of a current one that was
    /// promoted, whose full record stays with the non-current versions).
    Version { bucket: BucketName, key: ObjectKey, version: VersionId, part_number: u32 },
    /// A pack (`PackRecord`): the objects packed in it are `Object`s and `Version`s whose
    /// `BlobRef::in_pack` is set.
    Pack,
}

/// One blob found by a scan: who references it, whose it is, and where its shards are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    pub owner: BlobOwner,
    /// None for garbage.
    pub tenant: Option<TenantId>,
    pub blob: BlobId,
    pub size: u64,
    /// None for inline blobs (their bytes live in the metadata).
    pub striped: Option<StripedBlob>,
    /// The blob is the pack holding this object's bytes among others': it counts for the
    /// object's margin, and is repaired, swept of strays and reported once, as `BlobOwner::Pack`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_pack: bool,
}

/// Where a blob scan stopped. Scans visit upload parts, then current object versions, then
/// non-current versions, then packs, then garbage: a blob only ever moves in that direction (a
/// completed upload's parts become an object's parts, a version replaced in a versioned bucket
/// moves to the non-current range, a replaced or deleted version's parts become garbage; a
/// non-current version promoted to current stays where it is; a pack is under `n/` from its
/// `PutPacked` until it becomes garbage), so a scan sees every blob that stays referenced while
/// it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobCursor {
    pub phase: u8,
    /// The last store key returned in this phase.
    pub after: Option<Vec<u8>>,
    /// A record whose blobs were only partly returned (an object with many parts): its store key
    /// (the next one after `after`) and the last part number returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<(Vec<u8>, u32)>,
}

/// A page of a blob scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobPage {
    pub blobs: Vec<BlobRef>,
    /// Where to continue; None when the scan is complete.
    pub next: Option<BlobCursor>,
    /// Records of this page that could not be read (garbage aside: it needs no survey):
    /// skipped, so that one bad record (a bug, damage the store's checksums missed) does not
    /// stop every scan after it, and reported. A pack whose own record is unreadable is still
    /// returned, from its members' records, and reported as well. (A client that does not know
    /// this field would drop it and judge the round clean: versions of a cluster never mix.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<UnreadableRecord>,
}

/// A record a blob scan could not read: the record itself does not decode, or the stripe records
/// of a blob it names do not. Its blobs are not returned: whoever scans must neither repair nor
/// count them as surveyed (the orphan fence still spares their shards: every admitted blob keeps
/// its mark until it is collected).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadableRecord {
    /// The record's store key.
    pub key: String,
    /// The blob, when the record could be read that far.
    pub blob: Option<BlobId>,
    pub why: String,
}

/// A lease held by one worker (for example the repair service of one gateway) until `until_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub holder: String,
    pub until_ms: i64,
    /// Counts the lease's tenures: a take by another holder than the last starts the next (its
    /// holder's renewals keep it, even after the lease ran out with nobody taking it). A worker
    /// names the tenure its work began in ([`LeaseFence`]), and the metadata refuses that work
    /// once another tenure began. None in records written by takes from before data format 14
    /// (`Command::TakeLease::tenures`), which are applied as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

/// The tenure of a lease a worker's command was prepared in: applied only while lease `name` is
/// still in that tenure, `holder`'s (`LeaseRecord::epoch`). A worker stalled past its lease (a
/// paused VM, a process stopped for an hour) cannot then commit what it prepared before, once
/// another worker has taken the lease and judged the cluster without it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseFence {
    pub name: String,
    pub holder: String,
    pub epoch: u64,
}

/// A replacement of some of a stripe's shards, applied only if the stripe still has exactly
/// the shards the repairer read (compare-and-swap), so a repair never undoes a concurrent change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardReplacement {
    pub owner: BlobOwner,
    pub blob: BlobId,
    pub stripe: u32,
    pub expected: Vec<ShardRecord>,
    pub replacement: Vec<ShardRecord>,
    /// Whether the stripe is still below its class's full budget after the replacement.
    pub debt: bool,
    /// The repair lease's tenure the repair was surveyed in: refused (`Superseded`) once another
    /// began. Another worker's survey may meanwhile have listed the rebuilt copies as strays,
    /// not named by the metadata, and its sweep would delete them after this commit named them;
    /// that worker's take comes before this commit in the log, so the tenure alone tells. (Not
    /// the lease's end by the clock: it adds nothing against another worker, and would refuse a
    /// round that outlived its lease with nobody taking it.) None only in entries from before
    /// data format 14, applied without the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseFence>,
}

/// Objects and bytes at one remaining margin.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarginCount {
    /// "full" (meets the class's budget), "spare-N" (below budget, N more shard losses
    /// tolerated; spare-0 is one failure from loss), "unreadable" (fewer than k shards found),
    /// or "inline" (held in the replicated metadata).
    pub margin: String,
    pub objects: u64,
    pub bytes: u64,
}

/// Margins of one tenant's objects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantMargins {
    pub tenant: TenantId,
    pub margins: Vec<MarginCount>,
    /// Objects and stripes recorded as durability debt (written or repaired below budget).
    pub debt_objects: u64,
    pub debt_stripes: u64,
}

/// What the last complete repair round found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairReport {
    pub holder: String,
    /// The storage class the data path writes, with its budget, e.g. "default (1 datacenter + 1 node)".
    pub class: String,
    pub started_ms: i64,
    pub finished_ms: i64,
    /// Nodes unreachable during the round (from its start, or from a page whose inventory they
    /// did not answer).
    pub nodes_down: Vec<NodeId>,
    /// Of those, the ones not live from the round's start: every stripe was surveyed with their
    /// shards counted lost or waited for (a node may leave the layout only once a clean round
    /// counted it so).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes_down_all_round: Vec<NodeId>,
    pub tenants: Vec<TenantMargins>,
    /// Stripes found below their full budget (missing, corrupt or doubled-up shards).
    pub stripes_below_budget: u64,
    pub bytes_below_budget: u64,
    /// Of those, stripes not repaired yet because their missing shards are on nodes down for
    /// less than the down-out interval (they may come back).
    pub stripes_waiting: u64,
    /// Stripes with fewer than k shards found (not reconstructible now).
    pub stripes_unreadable: u64,
    pub stripes_repaired: u64,
    pub bytes_repaired: u64,
    /// Shard bytes written by repairs per second of repair work, this round.
    pub repair_bytes_per_sec: u64,
    /// Estimated seconds until every stripe is back to its full budget at that rate.
    pub eta_secs: Option<u64>,
    /// Stray shards (crashed writes, superseded copies) reclaimed this round.
    pub orphan_shards_reclaimed: u64,
    /// Metadata records the scan could not read (`UnreadableRecord`, counted once per record):
    /// their blobs were neither surveyed nor repaired (but for a pack whose members name it).
    /// Not 0: the margins above may leave blobs out, so no node may be drained.
    #[serde(default)]
    pub records_unreadable: u64,
    /// The first `UNREADABLE_NAMED_MAX` of them in the scan's order, for the operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable_keys: Vec<String>,
    /// The last comparison of every metadata replica's state at one log index, made by this
    /// round or carried over from the report before (rounds make one when it is due:
    /// `ignifuge_services::repair::RepairConfig::metadata_check_interval`). None in reports of
    /// versions that made none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_check: Option<MetadataCheck>,
    /// The repair lease's tenure the round ran in: the report is recorded only if no other tenure
    /// began since (another holder took the lease), whether or not the lease ran out by the clock
    /// (a round stalled past its lease must not record its older report over a newer round's:
    /// `ignifuge admin` drains nodes on the last report). None in reports recorded before data
    /// format 15, which were not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseFence>,
}

/// A comparison of every metadata replica's state right after one log index
/// (`ignifuge_services::agreement`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataCheck {
    pub started_ms: i64,
    pub finished_ms: i64,
    /// The log index compared at; None when the check could not choose one (`error`).
    pub index: Option<u64>,
    /// Replicas asked (voters and learners).
    pub members: u32,
    /// Replicas whose state differs from the one most replicas hold (each, when no state is held
    /// by more replicas than every other).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diverged: Vec<NodeId>,
    /// Replicas that gave no digest: unreachable, not at the index in time, or past it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<NodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When a check last compared every replica and found them alike: this one's end if it did,
    /// else the one before's (carried over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_agreed_ms: Option<i64>,
}

impl MetadataCheck {
    /// Every replica compared, and all held the same state.
    pub fn agreed(&self) -> bool {
        self.error.is_none() && self.diverged.is_empty() && self.unknown.is_empty()
    }

    /// Whether the replicas that differ may be rebuilt from the others: the state they differ
    /// from is held by a majority of all the replicas asked (never on a tie, nor on the word of a
    /// few while the rest gave no digest).
    pub fn rebuild_advised(&self) -> bool {
        let answered = (self.members as usize).saturating_sub(self.unknown.len());
        let holding_the_most = answered.saturating_sub(self.diverged.len());
        2 * holding_the_most > self.members as usize
    }
}

/// Unreadable records a repair report names (it counts them all).
pub const UNREADABLE_NAMED_MAX: usize = 16;
