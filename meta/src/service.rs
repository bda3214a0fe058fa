//! The interface the gateway calls, and its single-node implementation.

use crate::MetaError;
use crate::machine::StateMachine;
use crate::records::*;
use crate::{
    BlobCursor, BlobPage, ListPage, ListRequest, RepairReport, UploadListRequest, UploadPage, VersionListRequest,
    VersionPage,
};
use ignifuge_types::{
    AccessKeyId, BlobId, BucketName, LayoutVersion, NodeId, ObjectKey, TenantId, UploadId, VersionId, WebDomain,
};
use std::sync::{Arc, Mutex};

/// Replicated-metadata interface. Implementations: [`LocalMetadata`] (one process, for tests and
/// the baseline of the metadata bench) and `ignifuge_rpc::RemoteMetadata`, the leader-following
/// client of the Raft voters (`ignifuge-raft` behind the internode API). Either way: commands are
/// applied atomically in one total order, and queries observe every command whose `apply`
/// returned.
///
/// `apply` and `query` are the wire contract; callers use the typed methods below, one per query
/// and one per command whose outcome they read, so that no caller matches an `Answer` or an
/// `Outcome` it did not ask for. An answer of another kind (a voter of another version) is
/// `MetaError::Unexpected`.
#[async_trait::async_trait]
pub trait Metadata: Send + Sync + 'static {
    async fn apply(&self, command: Command) -> Result<Outcome, MetaError>;
    async fn query(&self, query: Query) -> Result<Answer, MetaError>;

    async fn access_key(&self, id: AccessKeyId) -> Result<AccessKeyRecord, MetaError> {
        match self.query(Query::AccessKey(id)).await? {
            Answer::AccessKey(record) => Ok(record),
            other => Err(unexpected("AccessKey", &other)),
        }
    }

    async fn tenant(&self, id: TenantId) -> Result<TenantRecord, MetaError> {
        match self.query(Query::Tenant(id)).await? {
            Answer::Tenant(record) => Ok(record),
            other => Err(unexpected("Tenant", &other)),
        }
    }

    async fn bucket(&self, name: BucketName) -> Result<BucketRecord, MetaError> {
        match self.query(Query::Bucket(name)).await? {
            Answer::Bucket(record) => Ok(record),
            other => Err(unexpected("Bucket", &other)),
        }
    }

    /// `Query::Domain`.
    async fn domain(&self, domain: WebDomain) -> Result<Option<DomainRecord>, MetaError> {
        match self.query(Query::Domain(domain)).await? {
            Answer::Domain(record) => Ok(record),
            other => Err(unexpected("Domain", &other)),
        }
    }

    /// `Query::Domains`.
    async fn domains(&self, tenant: TenantId) -> Result<Vec<DomainRecord>, MetaError> {
        match self.query(Query::Domains(tenant)).await? {
            Answer::Domains(records) => Ok(records),
            other => Err(unexpected("Domains", &other)),
        }
    }

    async fn list_buckets(&self, tenant: TenantId) -> Result<Vec<BucketRecord>, MetaError> {
        match self.query(Query::ListBuckets(tenant)).await? {
            Answer::Buckets(records) => Ok(records),
            other => Err(unexpected("ListBuckets", &other)),
        }
    }

    /// `Query::Object`.
    async fn object(
        &self,
        tenant: Option<TenantId>,
        bucket: BucketName,
        key: ObjectKey,
        stripes: u32,
    ) -> Result<ObjectRecord, MetaError> {
        match self.query(Query::Object { tenant, bucket, key, stripes }).await? {
            Answer::Object(record) => Ok(*record),
            other => Err(unexpected("Object", &other)),
        }
    }

    /// `Query::ObjectVersion` in the bucket a reader was authorized against (name, owner and
    /// incarnation: NoSuchBucket if the bucket of that name is no longer that one): the record
    /// and its bucket's versioning state.
    async fn object_version(
        &self,
        bucket: BucketRef,
        key: ObjectKey,
        version: Option<VersionId>,
        stripes: u32,
    ) -> Result<(ObjectRecord, Option<VersioningStatus>), MetaError> {
        let BucketRef { name, tenant, incarnation } = bucket;
        let query = Query::ObjectVersion {
            tenant: Some(tenant),
            incarnation: Some(incarnation),
            bucket: name,
            key,
            version,
            stripes,
        };
        match self.query(query).await? {
            Answer::ObjectVersion { record, versioning } => Ok((*record, versioning)),
            other => Err(unexpected("ObjectVersion", &other)),
        }
    }

    /// A page of ListObjects in the bucket the reader was authorized against (NoSuchBucket if
    /// the bucket of that name is no longer that one), as the two below.
    async fn list_objects(&self, bucket: BucketRef, request: ListRequest) -> Result<ListPage, MetaError> {
        let query = Query::ListObjects { bucket: bucket.name, incarnation: Some(bucket.incarnation), request };
        match self.query(query).await? {
            Answer::Objects(page) => Ok(page),
            other => Err(unexpected("ListObjects", &other)),
        }
    }

    async fn list_versions(&self, bucket: BucketRef, request: VersionListRequest) -> Result<VersionPage, MetaError> {
        let query = Query::ListVersions { bucket: bucket.name, incarnation: Some(bucket.incarnation), request };
        match self.query(query).await? {
            Answer::Versions(page) => Ok(page),
            other => Err(unexpected("ListVersions", &other)),
        }
    }

    async fn upload(&self, bucket: BucketName, upload_id: UploadId) -> Result<UploadRecord, MetaError> {
        match self.query(Query::Upload { bucket, upload_id }).await? {
            Answer::Upload(record) => Ok(record),
            other => Err(unexpected("Upload", &other)),
        }
    }

    /// An upload in progress, and when an UploadPart that begins now began (`StartTicket`).
    async fn upload_for_part(
        &self,
        bucket: BucketName,
        upload_id: UploadId,
    ) -> Result<(UploadRecord, StartTicket), MetaError> {
        match self.query(Query::UploadForPart { bucket, upload_id }).await? {
            Answer::UploadForPart { upload, began } => Ok((upload, began)),
            other => Err(unexpected("UploadForPart", &other)),
        }
    }

    async fn completed_upload(
        &self,
        bucket: BucketName,
        upload_id: UploadId,
    ) -> Result<Option<CompletedUploadRecord>, MetaError> {
        match self.query(Query::CompletedUpload { bucket, upload_id }).await? {
            Answer::CompletedUpload(record) => Ok(record),
            other => Err(unexpected("CompletedUpload", &other)),
        }
    }

    async fn list_parts(&self, bucket: BucketName, upload_id: UploadId) -> Result<Vec<PartData>, MetaError> {
        match self.query(Query::ListParts { bucket, upload_id }).await? {
            Answer::Parts(parts) => Ok(parts),
            other => Err(unexpected("ListParts", &other)),
        }
    }

    async fn chosen_parts(
        &self,
        bucket: BucketName,
        upload_id: UploadId,
        parts: Vec<CompletedPart>,
    ) -> Result<Vec<PartData>, MetaError> {
        match self.query(Query::ChosenParts { bucket, upload_id, parts }).await? {
            Answer::Parts(parts) => Ok(parts),
            other => Err(unexpected("ChosenParts", &other)),
        }
    }

    async fn list_uploads(&self, bucket: BucketRef, request: UploadListRequest) -> Result<UploadPage, MetaError> {
        let query = Query::ListUploads { bucket: bucket.name, incarnation: Some(bucket.incarnation), request };
        match self.query(query).await? {
            Answer::Uploads(uploads) => Ok(uploads),
            other => Err(unexpected("ListUploads", &other)),
        }
    }

    async fn durability_report(&self) -> Result<Vec<TenantDurability>, MetaError> {
        match self.query(Query::DurabilityReport).await? {
            Answer::Durability(report) => Ok(report),
            other => Err(unexpected("DurabilityReport", &other)),
        }
    }

    async fn garbage(&self, older_than_ms: i64, after: Option<BlobId>, limit: usize) -> Result<GarbagePage, MetaError> {
        match self.query(Query::Garbage { older_than_ms, limit, after }).await? {
            Answer::Garbage(page) => Ok(page),
            other => Err(unexpected("Garbage", &other)),
        }
    }

    async fn blobs(&self, cursor: BlobCursor, limit: usize) -> Result<BlobPage, MetaError> {
        match self.query(Query::Blobs { cursor, limit }).await? {
            Answer::Blobs(page) => Ok(page),
            other => Err(unexpected("Blobs", &other)),
        }
    }

    async fn repair_report(&self) -> Result<Option<RepairReport>, MetaError> {
        match self.query(Query::RepairReport).await? {
            Answer::RepairReport(report) => Ok(report.map(|r| *r)),
            other => Err(unexpected("RepairReport", &other)),
        }
    }

    async fn nodes_out(&self) -> Result<Vec<(NodeId, i64)>, MetaError> {
        match self.query(Query::NodesOut).await? {
            Answer::NodesOut(nodes) => Ok(nodes),
            other => Err(unexpected("NodesOut", &other)),
        }
    }

    async fn stripes(&self, blob: BlobId, first: u32, limit: u32) -> Result<Vec<StripeRecord>, MetaError> {
        match self.query(Query::Stripes { blob, first, limit }).await? {
            Answer::Stripes(stripes) => Ok(stripes),
            other => Err(unexpected("Stripes", &other)),
        }
    }

    async fn pack_usage(&self, after: Option<BlobId>, limit: usize) -> Result<PackUsagePage, MetaError> {
        match self.query(Query::PackUsage { after, limit }).await? {
            Answer::PackUsage(page) => Ok(page),
            other => Err(unexpected("PackUsage", &other)),
        }
    }

    async fn pack_members(&self, pack: BlobId) -> Result<Vec<LivePackMember>, MetaError> {
        match self.query(Query::PackMembers { pack }).await? {
            Answer::PackMembers(members) => Ok(members),
            other => Err(unexpected("PackMembers", &other)),
        }
    }

    /// A record as stored, for an operator (`Query::Record`).
    async fn record(&self, key: String) -> Result<RecordView, MetaError> {
        match self.query(Query::Record { key }).await? {
            Answer::Record(view) => Ok(view),
            other => Err(unexpected("Record", &other)),
        }
    }

    async fn layout(&self) -> Result<Option<LayoutRecord>, MetaError> {
        match self.query(Query::Layout).await? {
            Answer::Layout(layout) => Ok(layout),
            other => Err(unexpected("Layout", &other)),
        }
    }

    /// A command whose outcome is the object version it made current (PutObject, CopyObject's
    /// write, CompleteUpload, SetObjectTags).
    async fn apply_object(&self, command: Command) -> Result<ObjectRecord, MetaError> {
        self.apply(command).await?.into_object()
    }

    /// DeleteObject: the version removed or the delete marker added, and whether it is a marker.
    async fn apply_delete(&self, command: Command) -> Result<(Option<VersionId>, bool), MetaError> {
        match self.apply(command).await? {
            Outcome::DeletedVersion { version, delete_marker } => Ok((version, delete_marker)),
            other => Err(unexpected("DeleteObject", &other)),
        }
    }

    /// `Command::DeleteObjects`: each deletion's outcome, in order.
    async fn apply_deletes(&self, command: Command) -> Result<Vec<Result<Deleted, MetaError>>, MetaError> {
        match self.apply(command).await? {
            Outcome::Deletions(outcomes) => Ok(outcomes),
            other => Err(unexpected("DeleteObjects", &other)),
        }
    }

    /// `Command::ReclaimOrphans`: the blobs fenced, whose shards may be deleted.
    async fn reclaim_orphans(&self, blobs: Vec<BlobId>, now_ms: i64, grace_ms: i64) -> Result<Vec<BlobId>, MetaError> {
        match self.apply(Command::ReclaimOrphans { blobs, now_ms, grace_ms }).await? {
            Outcome::Reclaimable(fenced) => Ok(fenced),
            other => Err(unexpected("ReclaimOrphans", &other)),
        }
    }

    /// `Command::SetLayout`: the version installed.
    async fn set_layout(
        &self,
        expected: Option<LayoutVersion>,
        document: String,
        now_ms: i64,
    ) -> Result<LayoutVersion, MetaError> {
        match self.apply(Command::SetLayout { expected, document, now_ms }).await? {
            Outcome::Layout(version) => Ok(version),
            other => Err(unexpected("SetLayout", &other)),
        }
    }
}

impl Outcome {
    /// The object version a write made current.
    pub fn into_object(self) -> Result<ObjectRecord, MetaError> {
        match self {
            Outcome::Object(record) => Ok(*record),
            other => Err(unexpected("an object write", &other)),
        }
    }
}

/// An answer or outcome of another kind than the request's.
fn unexpected(asked: &str, got: &impl std::fmt::Debug) -> MetaError {
    let got = format!("{got:?}");
    let kind = got.split(['(', ' ', '{']).next().unwrap_or_default();
    MetaError::Unexpected(format!("{asked} was answered with {kind}"))
}

/// The state machine applied in-process, one writer at a time.
pub struct LocalMetadata {
    machine: StateMachine,
    writer: Mutex<()>,
    /// Commands applied, standing for the log index in `StartTicket`s.
    applied: std::sync::atomic::AtomicU64,
    start_clock: StartClock,
}

impl LocalMetadata {
    pub fn new(kv: Arc<dyn ignifuge_kv::KvStore>) -> Self {
        Self {
            machine: StateMachine::new(kv),
            writer: Mutex::new(()),
            applied: Default::default(),
            start_clock: StartClock::default(),
        }
    }

    /// Applies a command synchronously (call from a blocking context: it fsyncs).
    pub fn apply_blocking(&self, command: Command) -> Result<Outcome, MetaError> {
        let _one_writer = self.writer.lock().expect("metadata writer lock poisoned");
        let outcome = self.machine.apply(command);
        self.applied.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        outcome
    }

    pub fn query_blocking(&self, query: Query) -> Result<Answer, MetaError> {
        let mut answer = self.machine.query(query);
        if let Ok(Answer::UploadForPart { began, .. }) = &mut answer {
            *began = self.start_clock.stamp(self.applied.load(std::sync::atomic::Ordering::SeqCst));
        }
        answer
    }
}

#[async_trait::async_trait]
impl Metadata for LocalMetadata {
    async fn apply(&self, command: Command) -> Result<Outcome, MetaError> {
        self.apply_blocking(command)
    }

    async fn query(&self, query: Query) -> Result<Answer, MetaError> {
        self.query_blocking(query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A metadata that answers every query with a tenant and every command with `Done`.
    struct Confused;

    #[async_trait::async_trait]
    impl Metadata for Confused {
        async fn apply(&self, _command: Command) -> Result<Outcome, MetaError> {
            Ok(Outcome::Done)
        }
        async fn query(&self, _query: Query) -> Result<Answer, MetaError> {
            Ok(Answer::Tenant(TenantRecord { id: TenantId::new("t"), created_ms: 0, public_access_block: None }))
        }
    }

    #[tokio::test]
    async fn typed_calls_turn_an_answer_of_another_kind_into_an_error_that_is_not_a_refusal() {
        let tenant = Confused.tenant(TenantId::new("t")).await.expect("the answer asked for");
        assert_eq!(tenant.id, TenantId::new("t"));
        let wrong = Confused.bucket(BucketName::new("b")).await.unwrap_err();
        assert_eq!(wrong, MetaError::Unexpected("Bucket was answered with Tenant".into()));
        assert!(!wrong.is_known_refusal(), "an unexpected answer says nothing of what was applied");
        let outcome = Confused.reclaim_orphans(vec![BlobId::new("b")], 0, 0).await.unwrap_err();
        assert_eq!(outcome, MetaError::Unexpected("ReclaimOrphans was answered with Done".into()));
    }
}
