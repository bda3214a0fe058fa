//! The metadata state machine: the catalog (tenants, access keys, buckets) and the object index
//! (per bucket, ordered by key), changed only by [`Command`]s applied atomically and in order.
//!
//! Owns: record types, the data format (`DATA_FORMAT`), the key layout in the ordered store,
//! command validation (conditional writes, multipart completion rules, bucket emptiness), listing
//! with delimiters, and the [`Metadata`] trait that the gateway calls. The trait is shaped for Raft: every change is one
//! serialisable command whose outcome depends only on the state it is applied to, and reads are
//! answered against an applied state (linearizable when served by the leader).
//! Must never depend on: the gateway, the storage node, sockets or tokio.
//! Invariants: a command either applies whole or not at all (one `WriteBatch`); records are only
//! written through `StateMachine::apply` (one exception outside the running system: the
//! `scale-seed` benchmark tool writes object records into a stopped cluster's stores with
//! `stored::encode_record`, the same pairs into every replica); an object's data blob ids are
//! never reused.

mod format;
pub mod keys;
mod list;
mod machine;
mod maintenance;
mod records;
mod service;
pub mod stored;
mod uploads;

pub use format::DATA_FORMAT;
pub use list::{ListPage, ListRequest, ObjectSummary, VersionListRequest, VersionPage, VersionSummary};
pub use machine::{
    BLOB_COMMIT_WINDOW_MS, CLOCK_STEP_MAX_MS, COMPLETED_UPLOAD_KEPT_MS, GARBAGE_HOLD_MAX_MS, INTENT_FORGOTTEN_AFTER_MS,
    INTENT_SWEEP_REST_MS, PACK_USAGE_PAGE_MAX, PROPOSAL_DEDUP_WINDOW_MS, PROPOSALS_REMEMBERED_MIN_ENTRIES,
    RECLAIMED_KEPT_MS, StateMachine, is_valid_version_id,
};
pub use maintenance::*;
pub use records::*;
pub use service::{LocalMetadata, Metadata};
pub use uploads::{UploadListRequest, UploadPage, UploadSummary, new_upload_id};

use serde::{Deserialize, Serialize};

/// Errors of the metadata layer. Serialisable: they cross the wire from the metadata voters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MetaError {
    #[error("no such tenant")]
    NoSuchTenant,
    #[error("tenant already exists")]
    TenantAlreadyExists,
    #[error("no such access key")]
    NoSuchAccessKey,
    #[error("no such bucket")]
    NoSuchBucket,
    #[error("bucket name taken by another tenant")]
    BucketAlreadyExists,
    #[error("bucket already owned by you")]
    BucketAlreadyOwnedByYou,
    #[error("bucket not empty")]
    BucketNotEmpty,
    #[error("access denied")]
    AccessDenied,
    #[error("no such key")]
    NoSuchKey,
    #[error("no such upload")]
    NoSuchUpload,
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("part list not in ascending order")]
    InvalidPartOrder,
    #[error("part {part_number} is smaller than the minimum allowed size")]
    EntityTooSmall { part_number: u32 },
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("metadata storage error: {0}")]
    Storage(String),
    #[error("corrupt metadata record: {0}")]
    Corrupt(String),
    #[error("metadata service unavailable: {0}")]
    Unavailable(String),
    /// A compare-and-swap found the record changed since it was read.
    #[error("superseded: {0}")]
    Superseded(String),
    #[error("lease held by {holder}")]
    LeaseHeld { holder: String },
    #[error("the specified version does not exist")]
    NoSuchVersion,
    /// A write named a blob whose shards the orphan sweep reclaimed (its upload stalled past the
    /// grace period, or its first commit's outcome was unknown until then).
    #[error("blob {0} was reclaimed as an orphan")]
    BlobReclaimed(String),
    /// A proposal whose outcome was looked up after it was fenced off (`Query::Proposal`):
    /// it was not applied and never will be.
    #[error("proposal abandoned: not applied")]
    Abandoned,
    /// An answer of another kind than the request's (a voter that speaks another version).
    #[error("unexpected answer from the metadata: {0}")]
    Unexpected(String),
    /// A website domain attached to another tenant's live bucket.
    #[error("the domain is attached to another tenant's bucket")]
    DomainInUse,
    /// A command no gateway sends (a batch over its bound, a key twice in one batch): refused
    /// whole, a bug of its sender.
    #[error("invalid command: {0}")]
    InvalidCommand(String),
}

impl MetaError {
    /// Whether the error says the command was *not* applied (a deterministic refusal or a
    /// failure before it was sent), as opposed to "not known": a timeout or a lost leader after
    /// sending means it may still commit. Only a known refusal lets a caller discard what the
    /// command would have referenced.
    pub fn is_known_refusal(&self) -> bool {
        !matches!(
            self,
            MetaError::Unavailable(_) | MetaError::Storage(_) | MetaError::Corrupt(_) | MetaError::Unexpected(_)
        )
    }
}

impl From<ignifuge_kv::KvError> for MetaError {
    fn from(e: ignifuge_kv::KvError) -> Self {
        MetaError::Storage(e.to_string())
    }
}

/// Smallest size of every part but the last, as on AWS.
pub const MULTIPART_MIN_PART_SIZE_BYTES: u64 = 5 * 1024 * 1024;
/// Most parts in one multipart upload, as on AWS.
pub const MULTIPART_MAX_PARTS: u32 = 10_000;
/// Most keys one `Command::DeleteObjects` deletes (DeleteObjects' own limit, as on AWS).
pub const DELETE_OBJECTS_MAX_KEYS: usize = 1000;
/// Most objects one `Command::PutPacked` installs (its pack is one stripe, at most k x 1 MiB).
pub const PACK_OBJECTS_MAX: usize = 512;
/// Most records read by one page of a blob scan.
pub const BLOB_SCAN_PAGE_MAX: usize = 1000;
/// Stored bytes of records after which a page of a blob scan or of garbage ends (at least one
/// record is always returned): a page of very large objects' records (a 50 GiB object's stripe
/// map is about 9 MiB) must stay well inside an internode answer (`META_BODY_MAX_BYTES`, 64 MiB).
pub const SCAN_PAGE_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Most stripe records in one answer to a read (`Query::Object`, `Query::Stripes`): about 1 MiB,
/// the stripes of 5 GiB of data at 5 x 1 MiB shards.
pub const ANSWER_STRIPES_MAX: usize = 1024;
/// Most domains one `Query::Domains` answers.
pub const DOMAINS_LISTED_MAX: usize = 1000;
/// Most keys returned by one listing page, as on AWS.
pub const LIST_MAX_KEYS: usize = 1000;

#[cfg(test)]
mod tests;
