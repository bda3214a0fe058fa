//! The key layout in the ordered store.
//!
//! Catalog keys start with `c/`; everything of one bucket starts with a per-bucket prefix
//! (`o/<bucket>/`, `v/<bucket>/`, `u/<bucket>/`, `p/<bucket>/`) so that the object index can later
//! be split into several Raft groups by bucket (each group owns whole bucket prefixes) without
//! changing the API. Bucket names never contain '/', so a bucket's range never overlaps another's.
//!
//! Versions. `o/<bucket>/<key>` holds the *current* version of every key (a delete marker too, when
//! the latest version is one; listings skip it), so ListObjects(V2) scans exactly what it did before
//! versioning existed. Non-current versions live apart, in
//! `v/<bucket>/<key>\0<16 hex digits of u64::MAX - sequence>`: a key's versions are contiguous and
//! sort newest first (the sequence is assigned by the state machine, in apply order, so clock skew
//! between gateways cannot reorder them), keys sort in key order (`\0` sorts below every other
//! byte; keys never contain NUL), and a ListObjectVersions page merges the two ranges key by key.
//! A version id carries its sequence in its first 16 hex digits, so a read by version id is one
//! point read. A blob only ever moves forward: `p/` (upload part) -> `o/` (current) -> `v/`
//! (non-current) -> `g/` (garbage). When the latest version is deleted permanently the next one
//! becomes current without moving: `o/` then holds a summary (`ObjectRecord::promoted`, no parts)
//! and the full record stays in `v/`.

/// Keys under this prefix belong to the replication layer (Raft log, vote, applied position);
/// they are not part of the state and not in snapshots.
pub const REPLICATION_PREFIX: &[u8] = b"r/";

use ignifuge_types::{AccessKeyId, BlobId, BucketName, ObjectKey, ProposalId, TenantId, UploadId, WebDomain};

pub fn tenant(id: &TenantId) -> Vec<u8> {
    format!("c/tenant/{id}").into_bytes()
}
pub fn access_key(id: &AccessKeyId) -> Vec<u8> {
    format!("c/key/{id}").into_bytes()
}
pub const BUCKETS_PREFIX: &[u8] = b"c/bucket/";

pub fn bucket(name: &BucketName) -> Vec<u8> {
    format!("c/bucket/{name}").into_bytes()
}
pub fn tenant_buckets_prefix(tenant: &TenantId) -> Vec<u8> {
    format!("c/tenant-bucket/{tenant}/").into_bytes()
}
pub fn tenant_bucket(tenant: &TenantId, name: &BucketName) -> Vec<u8> {
    let mut k = tenant_buckets_prefix(tenant);
    k.extend_from_slice(name.0.as_bytes());
    k
}
pub fn domain(domain: &WebDomain) -> Vec<u8> {
    format!("c/domain/{domain}").into_bytes()
}
pub fn tenant_domains_prefix(tenant: &TenantId) -> Vec<u8> {
    format!("c/tenant-domain/{tenant}/").into_bytes()
}
pub fn tenant_domain(tenant: &TenantId, domain: &WebDomain) -> Vec<u8> {
    let mut k = tenant_domains_prefix(tenant);
    k.extend_from_slice(domain.0.as_bytes());
    k
}
pub fn objects_prefix(bucket: &BucketName) -> Vec<u8> {
    format!("o/{bucket}/").into_bytes()
}
pub fn object(bucket: &BucketName, key: &ObjectKey) -> Vec<u8> {
    let mut k = objects_prefix(bucket);
    k.extend_from_slice(key.0.as_bytes());
    k
}
pub fn versions_prefix(bucket: &BucketName) -> Vec<u8> {
    format!("v/{bucket}/").into_bytes()
}
/// Every non-current version of one key, newest first.
pub fn version_chain(bucket: &BucketName, key: &ObjectKey) -> Vec<u8> {
    let mut k = versions_prefix(bucket);
    k.extend_from_slice(key.0.as_bytes());
    k.push(0);
    k
}
/// The non-current version of `key` with sequence number `sequence`.
pub fn version(bucket: &BucketName, key: &ObjectKey, sequence: u64) -> Vec<u8> {
    let mut k = version_chain(bucket, key);
    k.extend_from_slice(format!("{:016x}", u64::MAX - sequence).as_bytes());
    k
}
pub fn uploads_prefix(bucket: &BucketName) -> Vec<u8> {
    format!("u/{bucket}/").into_bytes()
}
pub fn upload(bucket: &BucketName, id: &UploadId) -> Vec<u8> {
    format!("u/{bucket}/{id}").into_bytes()
}
pub fn parts_prefix(bucket: &BucketName, id: &UploadId) -> Vec<u8> {
    format!("p/{bucket}/{id}/").into_bytes()
}
pub fn part(bucket: &BucketName, id: &UploadId, part_number: u32) -> Vec<u8> {
    // Zero-padded so that byte order is part-number order.
    format!("p/{bucket}/{id}/{part_number:05}").into_bytes()
}
pub const OBJECTS_PREFIX: &[u8] = b"o/";
pub const PARTS_PREFIX: &[u8] = b"p/";
pub const VERSIONS_PREFIX: &[u8] = b"v/";
pub const GARBAGE_PREFIX: &[u8] = b"g/";

pub fn lease(name: &str) -> Vec<u8> {
    format!("c/lease/{name}").into_bytes()
}

pub const REPAIR_REPORT: &[u8] = b"c/repair-report";

/// The cluster layout (one record; its history is the Raft log).
pub const LAYOUT: &[u8] = b"c/layout";

pub const NODES_OUT_PREFIX: &[u8] = b"c/node-out/";

pub fn node_out(node: &ignifuge_types::NodeId) -> Vec<u8> {
    let mut k = NODES_OUT_PREFIX.to_vec();
    k.extend_from_slice(node.0.as_bytes());
    k
}

pub fn garbage(blob: &BlobId) -> Vec<u8> {
    let mut k = GARBAGE_PREFIX.to_vec();
    k.extend_from_slice(blob.0.as_bytes());
    k
}

/// Blobs the metadata knows: referenced by a record, or garbage not yet collected. Written by
/// the command that first references a striped blob, deleted when the garbage collector forgets
/// it. The orphan sweep may only fence a blob that is not here.
pub const KNOWN_BLOBS_PREFIX: &[u8] = b"b/";
pub fn known_blob(blob: &BlobId) -> Vec<u8> {
    let mut k = KNOWN_BLOBS_PREFIX.to_vec();
    k.extend_from_slice(blob.0.as_bytes());
    k
}

/// Packs (`PackRecord`): `n/<pack>`, while any of its slots is referenced.
pub const PACKS_PREFIX: &[u8] = b"n/";
pub fn pack(blob: &BlobId) -> Vec<u8> {
    let mut k = PACKS_PREFIX.to_vec();
    k.extend_from_slice(blob.0.as_bytes());
    k
}
/// A slot of a pack that a record references: `m/<pack>/<8 hex digits of the slot>`. Written
/// by the `PutPacked` that installs the object, deleted with the reference (the version replaced
/// or deleted): a pack with none left is garbage, in the same batch (`settle_packs`).
pub fn pack_members_prefix(blob: &BlobId) -> Vec<u8> {
    format!("m/{blob}/").into_bytes()
}
pub fn pack_member(blob: &BlobId, slot: u32) -> Vec<u8> {
    let mut k = pack_members_prefix(blob);
    k.extend_from_slice(format!("{slot:08x}").as_bytes());
    k
}
/// The pack of a member key (`pack_member`), or None for any other key.
pub fn pack_of_member(key: &[u8]) -> Option<BlobId> {
    let rest = key.strip_prefix(b"m/")?;
    let pack = rest.get(..rest.len().checked_sub(9)?)?;
    (rest[pack.len()] == b'/').then(|| BlobId::new(String::from_utf8_lossy(pack).into_owned()))
}
/// A striped blob's stripe records, one key per stripe: `s/<blob>/<8 hex digits of the stripe>`
/// (`StripedBlob` says why they live apart from the records that reference the blob). Written by
/// the command that first references the blob, changed by repairs, deleted with `b/<blob>`.
pub fn stripes_prefix(blob: &BlobId) -> Vec<u8> {
    format!("s/{blob}/").into_bytes()
}
pub fn stripe(blob: &BlobId, index: u32) -> Vec<u8> {
    let mut k = stripes_prefix(blob);
    k.extend_from_slice(format!("{index:08x}").as_bytes());
    k
}

/// Blobs fenced by the orphan sweep: never referenced again. Kept `RECLAIMED_KEPT_MS` of leader
/// time (aged by `y/`), after which no commit can name the blob any more (its commit window).
pub fn reclaimed_blob(blob: &BlobId) -> Vec<u8> {
    format!("k/{blob}").into_bytes()
}

pub const RECLAIMED_AGE_PREFIX: &[u8] = b"y/";

/// Age index of fenced blobs' tombstones: `y/<ms>/<blob>`, so old ones are forgotten in order.
pub fn reclaimed_age(fenced_ms: i64, blob: &BlobId) -> Vec<u8> {
    format!("y/{:020}/{blob}", fenced_ms.max(0)).into_bytes()
}

/// Writes in progress: a blob whose shards are being written, renewed by its gateway.
pub const INTENTS_PREFIX: &[u8] = b"i/";

/// Where the sweep of abandoned intents goes on (`StateMachine::apply_proposal_logged`).
pub const INTENT_SWEEP_CURSOR: &[u8] = b"c/intent-sweep";
/// The state machine's clock when that sweep last reached the end of the intents: it starts
/// again from the first one a while later (`INTENT_SWEEP_REST_MS`), not at the next proposal.
pub const INTENT_SWEEP_RESTED: &[u8] = b"c/intent-sweep-rested";
/// The first proposal age key not yet forgotten: proposal ids are forgotten in age order, and a
/// scan from the start of `e/` would step over the tombstones of every id forgotten so far.
pub const PROPOSAL_AGE_CURSOR: &[u8] = b"c/proposal-age-cursor";
pub fn intent(blob: &BlobId) -> Vec<u8> {
    let mut k = INTENTS_PREFIX.to_vec();
    k.extend_from_slice(blob.0.as_bytes());
    k
}

/// The state machine's clock for forgetting proposal ids: the largest leader time applied.
pub const CLOCK: &[u8] = b"c/clock";

/// Recorded outcomes of applied proposals, by id.
pub const PROPOSALS_PREFIX: &[u8] = b"d/";
/// Outcome of an applied proposal, by id (idempotent retries).
pub fn proposal(id: &ProposalId) -> Vec<u8> {
    format!("d/{id}").into_bytes()
}

pub const PROPOSAL_AGE_PREFIX: &[u8] = b"e/";

/// A completed multipart upload's answer, for retries (`CompletedUploadRecord`).
pub fn completed_upload(bucket: &BucketName, id: &UploadId) -> Vec<u8> {
    format!("w/{bucket}/{id}").into_bytes()
}

pub const COMPLETED_UPLOAD_AGE_PREFIX: &[u8] = b"x/";

/// Age index of completed uploads' answers: `x/<ms>/<bucket>/<id>`, so old ones are forgotten
/// in order.
pub fn completed_upload_age(completed_ms: i64, bucket: &BucketName, id: &UploadId) -> Vec<u8> {
    format!("x/{:020}/{bucket}/{id}", completed_ms.max(0)).into_bytes()
}

/// Age index of applied proposals, so that old ids can be forgotten in order.
pub fn proposal_age(issued_ms: i64, id: &ProposalId) -> Vec<u8> {
    format!("e/{:020}/{id}", issued_ms.max(0)).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_key_names_its_pack_and_no_other_key_does() {
        let blob = BlobId::new("0f1e2d");
        assert_eq!(pack_of_member(&pack_member(&blob, 7)), Some(blob.clone()));
        for other in [pack(&blob), garbage(&blob), b"m/".to_vec(), b"m/12345678".to_vec(), b"m/ab-12345678".to_vec()] {
            assert_eq!(pack_of_member(&other), None, "{}", String::from_utf8_lossy(&other));
        }
    }
}
