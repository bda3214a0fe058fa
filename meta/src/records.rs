//! Records stored in the metadata and carried in commands.

pub use ignifuge_access::{Acl, ObjectOwnership, PublicAccessBlock};
use ignifuge_types::WebDomain;
use ignifuge_types::{
    AccessKeyId, BlobId, BucketIncarnation, BucketName, LayoutVersion, NodeId, ObjectKey, ProposalId, TenantId,
    UploadId, UserId, VersionId,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The cluster layout (datacenters, nodes, their addresses and weights, the metadata's voters and
/// learners, the storage class and its pinned geometry), replicated like everything else so that
/// every gateway places shards against the same, versioned description. The document's schema
/// belongs to the layer that reads it (`ignifuge_rpc::ClusterConfig`, TOML); the state machine
/// only orders and versions it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutRecord {
    pub version: LayoutVersion,
    pub document: String,
    pub updated_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub id: TenantId,
    pub created_ms: i64,
    /// The tenant-wide Block Public Access settings (AWS's account-level ones), set by an
    /// operator; they apply to every bucket of the tenant on top of the bucket's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access_block: Option<PublicAccessBlock>,
}

/// An access key. The secret is sealed (encrypted with a key derived from the cluster secret):
/// the metadata, its snapshots and its disks never hold it in clear text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    pub access_key_id: AccessKeyId,
    pub tenant: TenantId,
    pub user: UserId,
    pub sealed_secret: String,
    pub created_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    pub name: BucketName,
    pub tenant: TenantId,
    pub region: String,
    pub created_ms: i64,
    /// This life of the name (records made before incarnations existed read as "").
    #[serde(default = "no_incarnation", skip_serializing_if = "is_no_incarnation")]
    pub incarnation: BucketIncarnation,
    /// Bucket tags (PutBucketTagging); None when no tag set was ever put or it was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    /// Cross-origin rules (PutBucketCors); None when none were ever put or they were deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsConfiguration>,
    /// Versioning state (PutBucketVersioning); None while it was never set. A bucket never goes
    /// back to None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<VersioningStatus>,
    /// The bucket policy (PutBucketPolicy), as the client sent it; validated before it is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Static website hosting (PutBucketWebsite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<WebsiteConfiguration>,
    /// The bucket's Block Public Access settings. New buckets get every setting on, as on AWS;
    /// None (deleted, or a bucket made before they existed) blocks nothing of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access_block: Option<PublicAccessBlock>,
    /// Object Ownership; None reads as BucketOwnerEnforced (ACLs disabled), AWS's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership: Option<ObjectOwnership>,
    /// The bucket ACL; None is the owner's FULL_CONTROL alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Acl>,
}

impl BucketRecord {
    /// A new bucket as AWS makes one: Block Public Access on, ACLs disabled.
    pub fn new(
        name: BucketName,
        tenant: TenantId,
        region: String,
        created_ms: i64,
        incarnation: BucketIncarnation,
    ) -> Self {
        BucketRecord {
            name,
            tenant,
            region,
            created_ms,
            incarnation,
            tags: None,
            cors: None,
            versioning: None,
            policy: None,
            website: None,
            public_access_block: Some(PublicAccessBlock::ALL),
            ownership: Some(ObjectOwnership::BucketOwnerEnforced),
            acl: None,
        }
    }

    /// The bucket as a write names it: checked atomically by the state machine.
    pub fn reference(&self) -> BucketRef {
        BucketRef { name: self.name.clone(), tenant: self.tenant.clone(), incarnation: self.incarnation.clone() }
    }
}

fn no_incarnation() -> BucketIncarnation {
    BucketIncarnation::new("")
}

fn is_no_incarnation(i: &BucketIncarnation) -> bool {
    i.0.is_empty()
}

/// The bucket a write was authorized against: its name, the tenant that owns it and its
/// incarnation. The state machine refuses the write (NoSuchBucket) unless the bucket of that
/// name is still this one, so a write can never land in another tenant's bucket, nor in a bucket
/// deleted and created again while its body streamed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRef {
    pub name: BucketName,
    pub tenant: TenantId,
    pub incarnation: BucketIncarnation,
}

/// One of a bucket's access or website settings: Some replaces it, None deletes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BucketSetting {
    Policy(Option<String>),
    Website(Option<WebsiteConfiguration>),
    PublicAccessBlock(Option<PublicAccessBlock>),
    Ownership(Option<ObjectOwnership>),
    Acl(Option<Acl>),
}

/// A bucket's versioning state, once set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersioningStatus {
    /// Every write gets a new version id; deletes without a version id add a delete marker.
    Enabled,
    /// Writes replace the key's "null" version; deletes without a version id add a null delete
    /// marker. Versions written while Enabled are kept.
    Suspended,
}

/// A bucket's static website configuration (PutBucketWebsite), validated by the gateway.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebsiteConfiguration {
    /// IndexDocument Suffix: appended to requests for `/` and for keys ending in `/`.
    pub index_suffix: Option<String>,
    /// ErrorDocument Key: served for 4xx errors.
    pub error_key: Option<String>,
    /// RedirectAllRequestsTo: every request goes to this host (the other fields are then absent).
    pub redirect_all: Option<WebsiteRedirectAll>,
    /// RoutingRules in order: the first whose condition matches applies.
    pub routing_rules: Vec<RoutingRule>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebsiteRedirectAll {
    pub host_name: String,
    /// "http" or "https"; None keeps the request's.
    pub protocol: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRule {
    pub key_prefix_equals: Option<String>,
    /// An HTTP status code, as text (AWS's schema).
    pub http_error_code_returned_equals: Option<String>,
    pub redirect: RoutingRedirect,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRedirect {
    pub host_name: Option<String>,
    pub protocol: Option<String>,
    pub replace_key_prefix_with: Option<String>,
    pub replace_key_with: Option<String>,
    /// 3xx status, as text; None is 301.
    pub http_redirect_code: Option<String>,
}

/// A custom domain a tenant attached to one of its buckets for website hosting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRecord {
    pub domain: WebDomain,
    /// The bucket it serves, as it was when attached: a bucket deleted (or re-made) since no
    /// longer answers to the domain, and another tenant may then take the domain.
    pub bucket: BucketRef,
}

/// A tag set, in the order the client gave it.
pub type Tags = Vec<(String, String)>;

/// A bucket's CORS configuration: rules in the client's order (the first that matches wins).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsConfiguration {
    pub rules: Vec<CorsRule>,
}

/// One CORSRule, values as the client gave them (origins and methods compare case-sensitively,
/// header names case-insensitively).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<i32>,
}

/// Standard headers stored with an object and returned on GET and HEAD.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    /// `x-amz-meta-*` without the prefix, lower-cased names.
    pub user_metadata: BTreeMap<String, String>,
    /// x-amz-website-redirect-location: the website endpoint answers 301 to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website_redirect_location: Option<String>,
}

/// Client checksums (base64, as on the wire) verified at upload and returned on request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    /// FULL_OBJECT or COMPOSITE, when a checksum is present.
    pub checksum_type: Option<String>,
}

impl Checksums {
    pub fn is_empty(&self) -> bool {
        self.crc32.is_none()
            && self.crc32c.is_none()
            && self.crc64nvme.is_none()
            && self.sha1.is_none()
            && self.sha256.is_none()
    }
}

/// One shard of a stripe: where it was acknowledged and its BLAKE3 hash (hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    pub node: NodeId,
    pub blake3: String,
}

/// One stripe: `data_len` bytes of the blob, coded into k+m shards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripeRecord {
    pub data_len: u64,
    pub shards: Vec<ShardRecord>,
    /// Durability debt: written during an outage with less than the class's full budget (shards
    /// doubled up on live nodes); the repair service must re-spread it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub debt: bool,
}

/// A blob erasure-coded into `stripe_count` stripes of `data_shards` x `shard_size_bytes` (the
/// last one shorter).
///
/// The metadata keeps a blob's stripe records apart from the record that references it (one key
/// per stripe, `keys::stripe`), so that an object of any size has a record of bounded size (a
/// 5 TiB object has a million stripes, about 1 GB of stripe records). `stripes` holds the stripes
/// `first_stripe..first_stripe + stripes.len()` that came with it: all of them in a command that
/// writes the blob and in maintenance scans, a bounded number in a read's answer, none in a stored
/// record (`StripedBlob::is_complete`, `Query::Stripes` fetches the rest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripedBlob {
    pub blob: BlobId,
    pub data_shards: u32,
    pub parity_shards: u32,
    pub shard_size_bytes: u32,
    pub stripe_count: u32,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub first_stripe: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stripes: Vec<StripeRecord>,
    /// When its gateway started writing it (the gateway's clock). The command that first
    /// references the blob is refused if the leader stamps it more than `BLOB_COMMIT_WINDOW_MS`
    /// later: no commit can name a blob long after its write began, which is what lets the
    /// orphan sweep's tombstones expire (`RECLAIMED_KEPT_MS`).
    #[serde(default)]
    pub born_ms: i64,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

impl StripedBlob {
    /// A whole blob: every one of `stripes` held, from the first, each of `data_shards` +
    /// `parity_shards` shards of up to `shard_size_bytes`, written at `born_ms`.
    pub fn whole(
        blob: BlobId,
        (data_shards, parity_shards): (u32, u32),
        shard_size_bytes: u32,
        stripes: Vec<StripeRecord>,
        born_ms: i64,
    ) -> Self {
        let stripe_count = u32::try_from(stripes.len()).expect("a blob has fewer than 2^32 stripes");
        Self { blob, data_shards, parity_shards, shard_size_bytes, stripe_count, first_stripe: 0, stripes, born_ms }
    }

    /// Bytes of data in a full stripe.
    pub fn stripe_bytes(&self) -> u64 {
        u64::from(self.data_shards) * u64::from(self.shard_size_bytes)
    }

    /// Stripe `index` of the blob, if it is among the stripes held.
    pub fn stripe(&self, index: u32) -> Option<&StripeRecord> {
        self.stripes.get(index.checked_sub(self.first_stripe)? as usize)
    }

    /// Whether every stripe of the blob is held.
    pub fn is_complete(&self) -> bool {
        self.first_stripe == 0 && self.stripes.len() == self.stripe_count as usize
    }

    /// The same blob holding `stripes`, stripes `first..` of it.
    pub fn with_stripes(&self, first: u32, stripes: Vec<StripeRecord>) -> Self {
        Self { first_stripe: first, stripes, ..self.clone() }
    }
}

/// Where a blob's bytes live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataLocation {
    /// Small blobs live in the metadata itself, replicated with it.
    Inline(#[serde(with = "b64")] Vec<u8>),
    Striped(StripedBlob),
    /// Bytes of a pack: a one-stripe blob holding several small objects side by side, written in
    /// one erasure-coded stripe and committed by one `Command::PutPacked`.
    Packed(PackedSlice),
}

impl DataLocation {
    /// The blob holding the bytes (a packed object's: its pack); None inline.
    pub fn blob(&self) -> Option<&BlobId> {
        match self {
            DataLocation::Inline(_) => None,
            DataLocation::Striped(striped) => Some(&striped.blob),
            DataLocation::Packed(slice) => Some(&slice.pack.blob),
        }
    }
}

/// Where a packed object's bytes lie: `size` bytes (its part's) from `offset` of the pack's
/// data. `slot` is the object's place in the command that packed it: the state machine keeps
/// one key per slot still referenced (`keys::pack_member`), and the pack becomes garbage once
/// none is left.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedSlice {
    /// The pack's geometry; its stripe records live at the pack's own keys, as any blob's, and
    /// come with a read's answer (`stripes` is empty in stored records).
    pub pack: StripedBlob,
    pub offset: u64,
    pub slot: u32,
}

/// A pack records, in the state, what its garbage record will need: its geometry. Kept at
/// `keys::pack(blob)` while any slot of it is referenced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackRecord {
    pub pack: StripedBlob,
    /// Objects the pack was written with (slots `0..objects`).
    pub objects: u32,
}

/// What a pack's member key (`keys::pack_member`) holds: the version whose record references
/// the slot, so that packs can be compacted without a scan of every record. Members written
/// before data format 9 hold an empty value, which does not decode as one: their packs are never
/// compacted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackMember {
    pub bucket: BucketName,
    pub key: ObjectKey,
    pub version: VersionId,
    /// The object's size: what the slot holds of the pack's bytes.
    pub size: u64,
}

/// How much of a pack is still referenced (`Query::PackUsage`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackUsage {
    /// The pack's geometry (without stripes).
    pub pack: StripedBlob,
    /// Bytes of the pack's data (the objects side by side, before padding).
    pub data_len: u64,
    /// Objects it was written with, and those still referenced.
    pub objects: u32,
    pub live_objects: u32,
    /// Bytes of the live objects, and the largest of them.
    pub live_bytes: u64,
    pub largest_live: u64,
    /// False when a member holds no `PackMember` (written before data format 9).
    pub compactable: bool,
}

/// A page of `Query::PackUsage`, in pack id order; `next` resumes after the last pack examined
/// (None at the end).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackUsagePage {
    pub packs: Vec<PackUsage>,
    pub next: Option<BlobId>,
}

/// A live object of a pack, as its record names it now (`Query::PackMembers`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivePackMember {
    pub bucket: BucketName,
    pub key: ObjectKey,
    pub version: VersionId,
    /// The record's one part: its slice of the pack, size and MD5.
    pub part: PartData,
}

/// One object a `Command::RepackObjects` moves: the version whose record must still name
/// `from`, and where its bytes lie in the new pack (its slot there is its index in the command).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackMove {
    pub bucket: BucketName,
    pub key: ObjectKey,
    pub version: VersionId,
    pub from: PackedSlice,
    pub offset: u64,
}

/// One object of a `Command::PutPacked`: what a `Command::PutObject` carries; the record's one
/// part is a `DataLocation::Packed` slice of the command's pack, whose `slot` is its index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedPut {
    pub bucket: BucketRef,
    pub record: ObjectRecord,
    pub condition: WriteCondition,
}

/// The bytes of one part (a single-part object has exactly one).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartData {
    pub part_number: u32,
    pub size: u64,
    /// Hex MD5 of the part's bytes (no quotes).
    pub etag: String,
    pub checksums: Checksums,
    pub location: DataLocation,
    pub last_modified_ms: i64,
    /// When the UploadPart that wrote it began (the gateway's clock, before the body). Of two
    /// uploads of one part number the one that began later is the part, whichever commits last:
    /// judged by `began` when both have one, by these (gateway clocks) only for parts written
    /// before `began` was recorded.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub started_ms: i64,
    /// When the UploadPart began, in the metadata's own order (`StartTicket`): gateway clocks
    /// may differ by minutes, which made an acknowledged part that began later look earlier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub began: Option<StartTicket>,
}

impl PartData {
    /// Whether this part began after `other` (both uploads of one part number).
    pub fn began_after(&self, other: &PartData) -> bool {
        match (&self.began, &other.began) {
            (Some(mine), Some(theirs)) => mine > theirs,
            // A start time of 0 is unknown (a gateway from before start times): commit order.
            _ => other.started_ms != 0 && self.started_ms > other.started_ms,
        }
    }
}

/// When a request began, in the order the metadata serves reads: the leader's applied log
/// index when it answered the request's first read, then its clock (never the same value twice
/// in a process, and never going back). A read answered after another has an equal or higher
/// index; equal indexes were answered by one leader (a new leader answers nothing before it has
/// applied an entry of its own term, past every index the old one answered), whose stamps are
/// ordered by its clock. So of two tickets the greater began later, whatever the gateways'
/// clocks say. Stamped by the metadata service that answers (`StartClock`), never by the state
/// machine, which answers the same on every replica.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StartTicket {
    pub applied_index: u64,
    pub leader_ms: i64,
}

/// Stamps `StartTicket`s: one per metadata service process.
#[derive(Debug, Default)]
pub struct StartClock {
    last_ms: std::sync::atomic::AtomicI64,
}

impl StartClock {
    /// A ticket at `applied_index`, its clock past every one this process stamped before.
    pub fn stamp(&self, applied_index: u64) -> StartTicket {
        use std::sync::atomic::Ordering::SeqCst;
        let now = ignifuge_types::time::now_ms();
        let previous = self
            .last_ms
            .fetch_update(SeqCst, SeqCst, |last| Some(now.max(last.saturating_add(1))))
            .expect("the update always succeeds");
        StartTicket { applied_index, leader_ms: now.max(previous.saturating_add(1)) }
    }
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

/// The version id of writes in unversioned and versioning-suspended buckets.
pub const NULL_VERSION: &str = "null";

/// One version of an object (the current one under `o/`, older ones under `v/`), or a delete marker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub key: ObjectKey,
    pub version: VersionId,
    pub size: u64,
    /// The ETag without quotes: hex MD5, or hex MD5-of-MD5s plus "-N" for multipart.
    pub etag: String,
    pub last_modified_ms: i64,
    pub headers: ObjectHeaders,
    pub checksums: Checksums,
    /// Parts in order; one for objects written by PutObject or CopyObject.
    pub parts: Vec<PartData>,
    /// True when written by CompleteMultipartUpload (ETag and checksums follow the multipart rules).
    pub multipart: bool,
    /// Object tags (x-amz-tagging, PutObjectTagging).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Tags,
    /// A delete marker: no data, no parts. As the current version, GET and HEAD answer 404 and
    /// listings skip it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_marker: bool,
    /// The version id is a real one (written while versioning was Enabled). False: this is the
    /// key's null version, whatever `version` holds (records written before versioning existed
    /// carry a random id there); the state machine reads it as "null".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub versioned: bool,
    /// Position in its key's chain of versions, assigned by the state machine in apply order.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sequence: u64,
    /// Only under `o/`: this current version was promoted when the newer one was deleted
    /// permanently; its full record (with its parts) stays under `v/` and this is its summary,
    /// without parts, so that a blob never moves back from `v/` to `o/`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub promoted: bool,
    /// The object ACL, when one was given (ACLs enabled on the bucket); None is the bucket
    /// owner's FULL_CONTROL alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Acl>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ObjectRecord {
    /// A version made of one part (a PutObject, a copy): its size, ETag, checksums and date are
    /// the part's; no headers, tags or ACL.
    pub fn single_part(key: ObjectKey, version: VersionId, part: PartData) -> Self {
        ObjectRecord {
            key,
            version,
            size: part.size,
            etag: part.etag.clone(),
            last_modified_ms: part.last_modified_ms,
            headers: ObjectHeaders::default(),
            checksums: part.checksums.clone(),
            parts: vec![part],
            multipart: false,
            tags: Vec::new(),
            delete_marker: false,
            versioned: false,
            sequence: 0,
            promoted: false,
            acl: None,
        }
    }

    /// A delete marker written at `now_ms`; its version id is set when it is applied. Its ETag is
    /// empty, as no object's is (an MD5): object listings read a record no further than its date
    /// when its ETag is not empty (`list::decode_listed`), and `delete_marker` is stored after it.
    pub fn delete_marker(key: ObjectKey, nonce: VersionId, now_ms: i64) -> Self {
        ObjectRecord {
            key,
            version: nonce,
            size: 0,
            etag: String::new(),
            last_modified_ms: now_ms,
            headers: ObjectHeaders::default(),
            checksums: Checksums::default(),
            parts: Vec::new(),
            multipart: false,
            tags: Vec::new(),
            delete_marker: true,
            versioned: false,
            sequence: 0,
            promoted: false,
            acl: None,
        }
    }

    /// Whether this is the null version (unversioned or suspended write).
    pub fn is_null_version(&self) -> bool {
        !self.versioned
    }
}

/// A multipart upload in progress. Its parts are stored apart, one record each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub upload_id: UploadId,
    pub bucket: BucketName,
    pub key: ObjectKey,
    pub initiated_ms: i64,
    pub headers: ObjectHeaders,
    /// The checksum algorithm announced at creation (CRC32, CRC32C, CRC64NVME, SHA1, SHA256).
    pub checksum_algorithm: Option<String>,
    pub checksum_type: Option<String>,
    /// Tags given at creation (x-amz-tagging), applied to the completed object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Tags,
    /// The ACL given at creation (ACLs enabled), applied to the completed object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Acl>,
}

/// A blob no committed record references any more; the garbage collector reclaims its shards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GarbageRecord {
    pub location: DataLocation,
    pub since_ms: i64,
    /// When a read of the blob in progress last held it (`Command::HoldGarbage`, by the metadata
    /// leader's clock): the collector leaves it alone while this is within the grace, as it does
    /// while `since_ms` is. None (and absent from the stored bytes) until a read holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_ms: Option<i64>,
}

impl GarbageRecord {
    pub fn new(location: DataLocation, since_ms: i64) -> Self {
        Self { location, since_ms, held_ms: None }
    }

    /// Whether the collector may reclaim it: garbage since before `older_than_ms`, and held by
    /// no read since then.
    pub fn collectable(&self, older_than_ms: i64) -> bool {
        self.since_ms < older_than_ms && self.held_ms.is_none_or(|held| held < older_than_ms)
    }
}

/// A page of the garbage scan (`Query::Garbage`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GarbagePage {
    /// Garbage past the age asked for, with every stripe (the collector finds its shards).
    pub garbage: Vec<(BlobId, GarbageRecord)>,
    /// Where the next page starts (after this blob); None once the scan reached the end.
    pub next: Option<BlobId>,
}

/// One key of a `Command::DeleteObjects`: what a `Command::DeleteObject` names besides its bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectDeletion {
    pub key: ObjectKey,
    pub condition: WriteCondition,
    pub version: Option<VersionId>,
    pub marker_nonce: Option<VersionId>,
}

/// What one deletion did: the version removed or the delete marker added (None in an
/// unversioned bucket), and whether it is a delete marker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub version: Option<VersionId>,
    pub delete_marker: bool,
}

/// Preconditions of a write, checked atomically with it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteCondition {
    /// `If-None-Match: *`: the key must not exist.
    pub if_none_match_any: bool,
    /// `If-Match: etag`: the current object must have this ETag (no quotes).
    pub if_match: Option<String>,
}

impl WriteCondition {
    /// Whether the request has any precondition.
    pub fn is_some(&self) -> bool {
        self.if_none_match_any || self.if_match.is_some()
    }

    /// Checks the precondition against the key's current version (a delete marker counts as no
    /// object): 412 PreconditionFailed, or NoSuchKey for If-Match on no object. The state machine runs it atomically with the write; a gateway may run it early
    /// to refuse before reading a body.
    pub fn check(&self, current: Option<&ObjectRecord>) -> Result<(), crate::MetaError> {
        let current = current.filter(|c| !c.delete_marker);
        if self.if_none_match_any && current.is_some() {
            return Err(crate::MetaError::PreconditionFailed);
        }
        if let Some(expected) = &self.if_match {
            // AWS: If-Match on a key with no current version (or a delete marker as current) is
            // 404 NoSuchKey, a current version with another ETag 412 PreconditionFailed.
            let Some(object) = current else { return Err(crate::MetaError::NoSuchKey) };
            let expected = expected.trim().trim_matches('"');
            if expected != "*" && object.etag != expected {
                return Err(crate::MetaError::PreconditionFailed);
            }
        }
        Ok(())
    }
}

/// A part chosen in CompleteMultipartUpload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedPart {
    pub part_number: u32,
    /// ETag as the client sent it; quotes are ignored.
    pub etag: String,
}

/// A multipart upload's completion, kept for `COMPLETED_UPLOAD_KEPT_MS` after it: a client that
/// retries CompleteMultipartUpload because the answer was lost (what every SDK does after a
/// timeout) gets the same answer, 200 with the same ETag and version, and no second version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedUploadRecord {
    /// The parts the completion named (numbers and ETags, quotes stripped).
    pub parts: Vec<CompletedPart>,
    /// The version it made, without its part list (which can be large).
    pub object: ObjectRecord,
}

impl CompletedUploadRecord {
    /// Whether a completion of `key` naming `parts` (ETag quotes ignored) is this one again.
    pub fn is_repeated_by(&self, key: &ObjectKey, parts: &[CompletedPart]) -> bool {
        self.object.key == *key
            && self.parts.len() == parts.len()
            && self.parts.iter().zip(parts).all(|(done, asked)| {
                done.part_number == asked.part_number && done.etag == crate::machine::strip_quotes(&asked.etag)
            })
    }
}

/// Durability of one tenant's objects, as recorded at write time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantDurability {
    pub tenant: TenantId,
    /// Objects and bytes stored inline in the metadata (its replication budget applies).
    pub inline_objects: u64,
    pub inline_bytes: u64,
    /// Erasure-coded objects and bytes whose every stripe met the full budget when written.
    pub full_budget_objects: u64,
    pub full_budget_bytes: u64,
    /// Erasure-coded objects with at least one stripe written under the outage policy (debt).
    pub debt_objects: u64,
    pub debt_bytes: u64,
    pub debt_stripes: u64,
    /// Object records that do not decode (nor the stripe records they name): counted in none of
    /// the above.
    #[serde(default)]
    pub unreadable_objects: u64,
}

impl TenantDurability {
    pub fn empty(tenant: TenantId) -> Self {
        Self {
            tenant,
            inline_objects: 0,
            inline_bytes: 0,
            full_budget_objects: 0,
            full_budget_bytes: 0,
            debt_objects: 0,
            debt_bytes: 0,
            debt_stripes: 0,
            unreadable_objects: 0,
        }
    }
}

/// Every change to the metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    CreateTenant(TenantRecord),
    CreateAccessKey(AccessKeyRecord),
    /// Revokes an access key: requests signed with it, presigned URLs included, are refused
    /// (InvalidAccessKeyId) once each gateway's cache of it runs out (`KEY_CACHE_TTL_MS`).
    /// NoSuchAccessKey for a key the metadata does not hold. Since data format 12.
    DeleteAccessKey(AccessKeyId),
    CreateBucket(BucketRecord),
    /// Deletes an empty bucket, if it is still the one the request was authorized against.
    DeleteBucket {
        bucket: BucketRef,
    },
    PutObject {
        bucket: BucketRef,
        record: ObjectRecord,
        condition: WriteCondition,
        /// The metadata leader's time as it appended the entry (`Command::stamp_leader_time`):
        /// dates the garbage of what this replaces. None in entries logged before the stamp
        /// existed, which date it by the new version's last-modified time, as they always did.
        #[serde(default)]
        leader_ms: Option<i64>,
    },
    /// Several PutObjects whose bodies were written together in one pack (`pack`, one stripe,
    /// all its stripe records): each is checked and installed as `PutObject` would, refused or
    /// done on its own, in one proposal. The pack is admitted (its blob known, its stripes
    /// stored) if any object is installed; else it stays unreferenced and its writer gives it
    /// up. At most `PACK_OBJECTS_MAX` objects; no key of a bucket appears twice.
    PutPacked {
        pack: StripedBlob,
        objects: Vec<PackedPut>,
        /// Whether the member keys record their object's version (`PackMember`, data format
        /// 9). Entries logged by a format-8 gateway decode as false and write empty members, as
        /// format 8 did, so every replica holds the same state whichever side of an upgrade it
        /// applied them on.
        #[serde(default)]
        member_versions: bool,
        /// The metadata leader's time as it appended the entry (`Command::stamp_leader_time`):
        /// dates the garbage of what this replaces. None in entries logged before the stamp
        /// existed, which date it by the new version's last-modified time, as they always did.
        #[serde(default)]
        leader_ms: Option<i64>,
    },
    /// Compaction: the objects of `moves`, read from other packs, were written together in
    /// `pack` (one stripe, all its stripe records). Each version whose record still names its
    /// `from` slice is re-pointed to its place in `pack` (nothing else of the record changes),
    /// its old slot freed and its new one recorded; a move whose record changed meanwhile is
    /// skipped. The pack is admitted if any object moved; an old pack left with no member
    /// becomes garbage in the same batch. At most `PACK_OBJECTS_MAX` moves; no version twice.
    RepackObjects {
        pack: StripedBlob,
        moves: Vec<PackMove>,
    },
    /// Without `version`: removes the current version (unversioned bucket) or adds a delete
    /// marker (versioned bucket). With `version`: removes that version permanently.
    DeleteObject {
        bucket: BucketRef,
        key: ObjectKey,
        condition: WriteCondition,
        now_ms: i64,
        #[serde(default)]
        version: Option<VersionId>,
        /// Randomness from the gateway for a new delete marker's version id.
        #[serde(default)]
        marker_nonce: Option<VersionId>,
    },
    /// DeleteObjects: up to `DELETE_OBJECTS_MAX_KEYS` keys of one bucket, each deleted as
    /// `DeleteObject` deletes it and refused or done on its own, in one proposal (one Raft commit
    /// and one fsync for the batch instead of one per key). No key appears twice.
    DeleteObjects {
        bucket: BucketRef,
        deletions: Vec<ObjectDeletion>,
        now_ms: i64,
    },
    /// Starts a multipart upload in `bucket` (`upload.bucket` must name it).
    CreateUpload {
        bucket: BucketRef,
        upload: UploadRecord,
    },
    PutUploadPart {
        bucket: BucketRef,
        upload_id: UploadId,
        part: PartData,
        /// The metadata leader's time as it appended the entry (`Command::stamp_leader_time`):
        /// dates the garbage of what this replaces. None in entries logged before the stamp
        /// existed, which date it by the new version's last-modified time, as they always did.
        #[serde(default)]
        leader_ms: Option<i64>,
    },
    /// Turns an upload into the object's current version. `record.parts` is ignored and rebuilt
    /// from the stored parts named in `parts`, which must match them exactly.
    CompleteUpload {
        bucket: BucketRef,
        upload_id: UploadId,
        parts: Vec<CompletedPart>,
        record: ObjectRecord,
        condition: WriteCondition,
        /// The metadata leader's time as it appended the entry (`Command::stamp_leader_time`):
        /// dates the garbage of what this replaces. None in entries logged before the stamp
        /// existed, which date it by the new version's last-modified time, as they always did.
        #[serde(default)]
        leader_ms: Option<i64>,
    },
    AbortUpload {
        bucket: BucketRef,
        upload_id: UploadId,
        now_ms: i64,
    },
    /// Replaces the tags of the current version of a key, or of `version` (an empty set deletes
    /// them).
    SetObjectTags {
        bucket: BucketRef,
        key: ObjectKey,
        tags: Tags,
        #[serde(default)]
        version: Option<VersionId>,
    },
    /// Replaces (Some) or deletes (None) a bucket's tag set.
    SetBucketTags {
        bucket: BucketRef,
        tags: Option<Tags>,
    },
    /// The garbage collector reclaimed these blobs' shards.
    ForgetGarbage {
        blobs: Vec<BlobId>,
    },
    /// The repair service rebuilt or moved some shards of a stripe.
    ReplaceShards(crate::ShardReplacement),
    /// Takes or renews lease `name` for `holder` until `now_ms + duration_ms`; refused while
    /// another holder's lease runs. Made with [`Command::take_lease`].
    TakeLease {
        name: String,
        holder: String,
        now_ms: i64,
        duration_ms: i64,
        /// Counts the lease's tenures (`LeaseRecord::epoch`) and answers `Outcome::Lease`; false
        /// only in entries from before data format 14, applied as they were (no epoch, `Done`),
        /// so that every replica holds the same record whichever version applied the entry.
        #[serde(default)]
        tenures: bool,
    },
    /// The report of a complete repair round, for `ignifuge admin durability`.
    RecordRepairReport(Box<crate::RepairReport>),
    /// Replaces (Some) or deletes (None) a bucket's CORS configuration.
    SetBucketCors {
        bucket: BucketRef,
        cors: Option<CorsConfiguration>,
    },
    /// An operator declares a node out (dead for good: rebuild its shards now, without waiting
    /// for the down-out interval), or takes the declaration back.
    SetNodeOut {
        node: ignifuge_types::NodeId,
        out: bool,
        now_ms: i64,
    },
    /// Replaces or deletes one of a bucket's access or website settings.
    SetBucketSetting {
        bucket: BucketRef,
        setting: BucketSetting,
    },
    /// Replaces the ACL of the current version of a key, or of `version`.
    SetObjectAcl {
        bucket: BucketRef,
        key: ObjectKey,
        version: Option<VersionId>,
        acl: Acl,
    },
    /// Sets (Some) or clears (None) a tenant's Block Public Access settings.
    SetTenantPublicAccessBlock {
        tenant: TenantId,
        block: Option<PublicAccessBlock>,
    },
    /// Attaches a website domain to a bucket of `tenant` (Some) or detaches it (None). Refused
    /// (DomainInUse) while the domain serves a live bucket of another tenant.
    SetDomain {
        domain: WebDomain,
        tenant: TenantId,
        bucket: Option<BucketRef>,
    },
    /// Enables or suspends versioning of a bucket.
    SetBucketVersioning {
        bucket: BucketRef,
        status: VersioningStatus,
    },
    /// Settles a proposal whose outcome its caller does not know (it timed out): if it was
    /// applied, its outcome is returned; otherwise it is recorded as abandoned, so that it is
    /// never applied later (`MetaError::Abandoned`). Either way the caller then knows.
    Abandon {
        proposal: ProposalId,
    },
    /// Writes in progress (blobs whose shards are being written, or whose commit's outcome is
    /// not known yet) renewed at `now_ms`, so that the orphan sweep leaves their shards alone.
    RenewIntents {
        blobs: Vec<BlobId>,
        now_ms: i64,
    },
    /// Blobs that reads in progress are reading, held at `now_ms`: each that is garbage by now
    /// (its object replaced or deleted after the read began) gets `GarbageRecord::held_ms`, and
    /// the collector leaves its shards until a grace after the last hold. Others are passed
    /// over: nothing is written for a blob still referenced. Since data format 13.
    HoldGarbage {
        blobs: Vec<BlobId>,
        now_ms: i64,
    },
    /// The orphan sweep found shards of these blobs that no record references. Each blob that
    /// the metadata does not know (never committed, or forgotten after garbage collection) and
    /// that has no intent renewed after `now_ms - grace_ms` is fenced: a tombstone is written,
    /// and no later command can make it referenced (`BlobReclaimed`). The outcome lists the
    /// fenced blobs, the only ones whose shards may be deleted.
    ReclaimOrphans {
        blobs: Vec<BlobId>,
        now_ms: i64,
        grace_ms: i64,
    },
    /// Installs a new cluster layout, a compare-and-swap on the current version (None: no layout
    /// yet). The new layout gets the next version; refused with `Superseded` if another change
    /// got there first.
    SetLayout {
        expected: Option<LayoutVersion>,
        document: String,
        now_ms: i64,
    },
}

impl Command {
    /// Takes or renews lease `name` for `holder` for `duration_ms` from `now_ms` (the leader's
    /// time replaces it: `stamp_leader_time`).
    pub fn take_lease(name: impl Into<String>, holder: impl Into<String>, now_ms: i64, duration_ms: i64) -> Self {
        Command::TakeLease { name: name.into(), holder: holder.into(), now_ms, duration_ms, tenures: true }
    }

    /// Sets the command's own clock readings to `leader_ms`, the metadata leader's time as it
    /// appends the entry (`Proposal::issued_ms`). The proposer's clock may be minutes off the
    /// leader's and the other gateways' (within the skew the cluster accepts): a lease judged by
    /// it overlapped another's; garbage dated by it (of a delete, an abort, an overwrite) lost
    /// the grace that reads in flight rely on; an intent renewed by a gateway behind the
    /// sweeper's looked stale and its write was fenced. The value is written into the entry, so
    /// every replica applies the same state, whichever binary applies an entry written before
    /// this stamp existed.
    pub fn stamp_leader_time(&mut self, leader_ms: i64) {
        match self {
            Command::TakeLease { now_ms, .. }
            | Command::DeleteObject { now_ms, .. }
            | Command::DeleteObjects { now_ms, .. }
            | Command::AbortUpload { now_ms, .. }
            | Command::RenewIntents { now_ms, .. }
            | Command::HoldGarbage { now_ms, .. }
            | Command::ReclaimOrphans { now_ms, .. } => *now_ms = leader_ms,
            Command::PutObject { leader_ms: stamp, .. }
            | Command::PutPacked { leader_ms: stamp, .. }
            | Command::PutUploadPart { leader_ms: stamp, .. }
            | Command::CompleteUpload { leader_ms: stamp, .. } => *stamp = Some(leader_ms),
            _ => {}
        }
    }
}

/// A command as proposed to a replicated log. The id makes retries idempotent: a proposal whose
/// id was already applied (the caller timed out and sent it again, perhaps to a new leader) gets
/// the first application's outcome back and changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Random, 128 bits, hex; chosen once per client call and kept across its retries.
    pub id: ProposalId,
    /// Set by the leader that appends it (its clock, not the caller's); the state machine's
    /// clock for forgetting old ids never goes back (`keys::CLOCK`).
    pub issued_ms: i64,
    /// Set by the leader that appends it (data format 11): its id is remembered for
    /// `PROPOSALS_REMEMBERED_MIN_ENTRIES` log entries as well as by the clock. Entries appended
    /// before (false) are aged by the clock alone, as the version that appended them applied
    /// them, so that every replica applies an entry alike whichever version applies it.
    #[serde(default)]
    pub aged_by_entries: bool,
    pub command: Command,
}

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Done,
    /// The object version now current (PutObject, CompleteUpload), without its parts.
    Object(Box<ObjectRecord>),
    /// DeleteObject: the version removed or the delete marker added (None in an unversioned
    /// bucket), and whether it is a delete marker.
    DeletedVersion {
        version: Option<VersionId>,
        delete_marker: bool,
    },
    /// DeleteObjects: each deletion's outcome, in the command's order.
    Deletions(Vec<Result<Deleted, crate::MetaError>>),
    /// PutPacked: each object's outcome (the version now current, without its parts), in the
    /// command's order.
    Packed(Vec<Result<Box<ObjectRecord>, crate::MetaError>>),
    /// RepackObjects: whether each move was made, in the command's order.
    Repacked(Vec<bool>),
    /// SetLayout: the version installed.
    Layout(LayoutVersion),
    /// ReclaimOrphans: the blobs fenced, whose shards may be deleted.
    Reclaimable(Vec<BlobId>),
    /// TakeLease: the tenure the holder now holds the lease in (`LeaseRecord::epoch`).
    Lease {
        epoch: u64,
    },
}

/// Every read of the metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    AccessKey(AccessKeyId),
    Tenant(TenantId),
    Bucket(BucketName),
    ListBuckets(TenantId),
    /// The current version of a key. With `tenant`, the bucket must belong to it (one round trip
    /// for the ownership check and the read).
    Object {
        tenant: Option<TenantId>,
        bucket: BucketName,
        key: ObjectKey,
        /// At most this many stripe records come with the record's parts, in part order (capped
        /// at `ANSWER_STRIPES_MAX`); a reader fetches the others with `Query::Stripes`.
        stripes: u32,
    },
    ListObjects {
        bucket: BucketName,
        /// With it, the bucket must be this life of the name (NoSuchBucket otherwise): a listing
        /// never shows the objects of a bucket deleted and made again since the reader's view.
        #[serde(default)]
        incarnation: Option<BucketIncarnation>,
        request: crate::ListRequest,
    },
    Upload {
        bucket: BucketName,
        upload_id: UploadId,
    },
    /// An upload in progress, for an UploadPart that begins now: answered with a `StartTicket`
    /// (`Answer::UploadForPart`).
    UploadForPart {
        bucket: BucketName,
        upload_id: UploadId,
    },
    /// How an upload that no longer exists was completed, if it was, recently.
    CompletedUpload {
        bucket: BucketName,
        upload_id: UploadId,
    },
    /// The latest upload of each part number of an upload in progress.
    ListParts {
        bucket: BucketName,
        upload_id: UploadId,
    },
    /// The parts a CompleteMultipartUpload names, validated as the completion validates them
    /// (order, existence, ETag, sizes), so that the gateway computes the ETag and checksums from
    /// the parts the commit will choose.
    ChosenParts {
        bucket: BucketName,
        upload_id: UploadId,
        parts: Vec<CompletedPart>,
    },
    /// Durability of every committed object, per tenant: what a full scan of the object index
    /// finds (cost proportional to the number of objects; for operators, not the data path).
    DurabilityReport,
    /// A page of ListMultipartUploads.
    ListUploads {
        bucket: BucketName,
        /// As in `Query::ListObjects`.
        #[serde(default)]
        incarnation: Option<BucketIncarnation>,
        request: crate::UploadListRequest,
    },
    /// Garbage blobs recorded before `older_than_ms`, in blob id order after `after`, at most
    /// `limit` (and at most `GARBAGE_SCAN_MAX` records looked at: a page may be empty and not
    /// the last).
    Garbage {
        older_than_ms: i64,
        limit: usize,
        #[serde(default)]
        after: Option<BlobId>,
    },
    /// A page of the scan of every blob (upload parts, objects, garbage), at most `limit`
    /// records (capped at `BLOB_SCAN_PAGE_MAX`).
    Blobs {
        cursor: crate::BlobCursor,
        limit: usize,
    },
    /// How much of each pack is still referenced: packs after `after` in id order, at most
    /// `limit` (capped at `PACK_USAGE_PAGE_MAX`).
    PackUsage {
        after: Option<BlobId>,
        limit: usize,
    },
    /// The live objects of a pack as their records name them now (empty for a pack no longer
    /// held, or one whose members predate data format 9).
    PackMembers {
        pack: BlobId,
    },
    /// The last repair round's report, if any.
    RepairReport,
    /// Nodes an operator declared out, with when.
    NodesOut,
    /// A version of a key (the current one when `version` is None), delete markers included, with
    /// its bucket's versioning state. With `tenant`, the bucket must belong to it.
    ObjectVersion {
        tenant: Option<TenantId>,
        /// With it, the bucket must be this life of the name (NoSuchBucket otherwise).
        #[serde(default)]
        incarnation: Option<BucketIncarnation>,
        bucket: BucketName,
        key: ObjectKey,
        version: Option<VersionId>,
        /// As in `Query::Object`.
        stripes: u32,
    },
    /// Stripes `first..` of a striped blob, at most `limit` (capped at `ANSWER_STRIPES_MAX`);
    /// fewer only at the blob's end. Refused (Superseded) for a blob the metadata does not hold.
    Stripes {
        blob: BlobId,
        first: u32,
        limit: u32,
    },
    /// A page of ListObjectVersions.
    ListVersions {
        bucket: BucketName,
        /// As in `Query::ListObjects`.
        #[serde(default)]
        incarnation: Option<BucketIncarnation>,
        request: crate::VersionListRequest,
    },
    /// The current cluster layout.
    Layout,
    /// The bucket a website domain serves, if it is attached to a live bucket.
    Domain(WebDomain),
    /// The domains attached to a tenant's buckets.
    Domains(TenantId),
    /// A record as stored, and whether it reads as the scans read it (`ignifuge admin record`).
    Record {
        key: String,
    },
}

/// A record as stored (`Query::Record`), for an operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordView {
    pub key: String,
    /// The bytes under the key, if any.
    pub value: Option<Vec<u8>>,
    /// Why `value` does not read as the background scans and the apply path read a record of
    /// its kind (its own bytes, the stripe records of the blobs it names, or its bucket's
    /// record), if it does not.
    pub problem: Option<String>,
    /// Whether its kind is one those readers check.
    pub checked: bool,
}

/// The answer to a query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    AccessKey(AccessKeyRecord),
    Tenant(TenantRecord),
    Bucket(BucketRecord),
    Buckets(Vec<BucketRecord>),
    Object(Box<ObjectRecord>),
    Objects(crate::ListPage),
    Upload(UploadRecord),
    /// The state machine answers with a default `began`; the metadata service that serves the
    /// query stamps it (`StartClock`).
    UploadForPart {
        upload: UploadRecord,
        began: StartTicket,
    },
    CompletedUpload(Option<CompletedUploadRecord>),
    Parts(Vec<PartData>),
    Garbage(GarbagePage),
    Uploads(crate::UploadPage),
    Durability(Vec<TenantDurability>),
    Blobs(crate::BlobPage),
    RepairReport(Option<Box<crate::RepairReport>>),
    NodesOut(Vec<(ignifuge_types::NodeId, i64)>),
    ObjectVersion {
        record: Box<ObjectRecord>,
        versioning: Option<VersioningStatus>,
    },
    Versions(crate::VersionPage),
    /// The current cluster layout, None before the first SetLayout.
    Layout(Option<LayoutRecord>),
    Stripes(Vec<StripeRecord>),
    Domain(Option<DomainRecord>),
    Domains(Vec<DomainRecord>),
    PackUsage(PackUsagePage),
    PackMembers(Vec<LivePackMember>),
    Record(RecordView),
}

/// Bytes as base64 text in a human-readable encoding (JSON: stored records, log entries), raw in
/// a binary one (the metadata's MessagePack answers, `ignifuge_rpc::encoding`).
mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
        } else {
            s.serialize_bytes(bytes)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
        } else {
            d.deserialize_byte_buf(Raw)
        }
    }

    struct Raw;

    impl serde::de::Visitor<'_> for Raw {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }

        fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(bytes)
        }
    }
}
