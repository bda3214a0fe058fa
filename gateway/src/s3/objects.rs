//! PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects, CopyObject.

use super::access::Authorized;
use super::acl::AclRequest;
use super::{
    IgnifugeS3, PUT_OBJECT_MAX_BYTES, check_key, etag, object_headers, parse_expires, timestamp, unix_seconds,
};
use crate::authorize::{Ask, BucketView};
use crate::checksums::{Algorithm, Expected};
use crate::datapath::{WriteRequest, WrittenBlob};
use crate::error::{GatewayError, GatewayResult};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use ignifuge_meta::{
    BucketRecord, Checksums, Command, DELETE_OBJECTS_MAX_KEYS, DataLocation, MULTIPART_MAX_PARTS, MetaError,
    ObjectDeletion, ObjectHeaders, ObjectRecord, Outcome, PackedPut, PartData, Tags, WriteCondition,
    is_valid_version_id,
};
use ignifuge_types::time::now_ms;
use ignifuge_types::{ObjectKey, TenantId, VersionId};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};
use std::ops::Range as ByteRange;
use std::pin::Pin;

pub(super) type BodyStream = Pin<Box<dyn Stream<Item = GatewayResult<Bytes>> + Send>>;

/// The request body, with s3s's stream errors classified. s3s keeps its upload-stream error type
/// private, so the payload-hash and aws-chunked signature mismatches are recognised by their
/// (pinned-version) messages.
pub(super) fn body_stream(body: Option<StreamingBlob>) -> BodyStream {
    match body {
        Some(blob) => Box::pin(blob.map(|chunk| {
            chunk.map_err(|e| {
                let text = e.to_string();
                if text.contains("Sha256Mismatch") {
                    GatewayError::PayloadHashMismatch
                } else if text.contains("AwsChunkedStreamError: SignatureMismatch") {
                    // A chunk's or the trailer's signature: 403, as AWS answers it.
                    GatewayError::SignatureDoesNotMatch
                } else if text.contains(super::bodies::CHUNK_TOO_LARGE) {
                    GatewayError::InvalidRequest(format!("{text}; send smaller aws-chunked chunks"))
                } else {
                    GatewayError::BodyRead(text)
                }
            })
        })),
        None => Box::pin(futures::stream::empty()),
    }
}

/// Content-Encoding as stored: `aws-chunked` describes the upload's framing, not the object.
pub(super) fn stored_content_encoding(value: Option<String>) -> Option<String> {
    let kept: Vec<&str> = value
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

/// The checksums a client announced for a body: headers with values, and algorithms whose
/// values arrive as aws-chunked trailers. CRC64NVME is always computed, as AWS does. Refused
/// before any of the body is read, with AWS's messages: a Content-MD5 that is not base64 of 16
/// bytes, more than one x-amz-checksum-* value,
/// a value that is not base64 of its algorithm's digest, or x-amz-sdk-checksum-algorithm
/// naming another algorithm than the value sent.
pub(super) fn expected_checksums(
    headers: &http::HeaderMap,
    content_md5: Option<String>,
    given: [(Algorithm, Option<String>); 5],
    algorithm: Option<&ChecksumAlgorithm>,
) -> GatewayResult<Expected> {
    let mut expected = Expected { content_md5, ..Default::default() };
    expected.content_md5()?;
    for (a, value) in given {
        if let Some(v) = value {
            expected.checksums.push((a, v));
        }
    }
    if expected.checksums.len() > 1 {
        return Err(GatewayError::InvalidRequest(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.".into(),
        ));
    }
    if let Some((a, value)) = expected.checksums.first() {
        if !a.is_well_formed(value) {
            return Err(GatewayError::InvalidRequest(format!("Value for {} header is invalid.", a.header())));
        }
        let named = headers.get("x-amz-sdk-checksum-algorithm").map(|v| v.to_str().unwrap_or(""));
        if named.is_some_and(|named| !named.eq_ignore_ascii_case(a.name())) {
            return Err(GatewayError::InvalidRequest(
                "Value for x-amz-sdk-checksum-algorithm header is invalid.".into(),
            ));
        }
    }
    if let Some(trailer) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
        for name in trailer.split(',') {
            let name = name.trim();
            let a = Algorithm::from_header(name)
                .ok_or_else(|| GatewayError::InvalidRequest(format!("unsupported trailer {name}")))?;
            expected.computed.push(a);
            expected.trailed.push(a);
        }
    }
    if let Some(a) = algorithm {
        expected.computed.push(Algorithm::parse(a.as_str())?);
    }
    expected.computed.push(Algorithm::Crc64Nvme);
    Ok(expected)
}

pub(super) fn trailers(handle: Option<s3s::TrailingHeaders>) -> impl FnOnce() -> Vec<(String, String)> {
    move || {
        handle
            .and_then(|h| h.take())
            .map(|map| {
                map.iter().filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))).collect()
            })
            .unwrap_or_default()
    }
}

/// The error of a commit whose precondition was checked when the request began: a refusal now
/// (a changed ETag, or the key deleted meanwhile) means another operation on the key committed
/// in between, which AWS answers 409 ConditionalRequestConflict.
pub(super) fn conflict_after_precheck(e: MetaError) -> GatewayError {
    match e {
        MetaError::PreconditionFailed | MetaError::NoSuchKey => GatewayError::ConditionalRequestConflict,
        other => GatewayError::Meta(other),
    }
}

/// A write's If-Match and If-None-Match. AWS takes If-None-Match only as `*`, and not together
/// with If-Match: either is 501 NotImplemented ("A header you provided implies functionality that
/// is not implemented"), as AWS answers them, before anything is read or stored.
pub(super) fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> GatewayResult<WriteCondition> {
    let if_none_match_any = match if_none_match {
        None => false,
        Some(_) if if_match.is_some() => {
            return Err(GatewayError::NotImplemented("If-Match with If-None-Match".into()));
        }
        Some(ETagCondition::Any) => true,
        Some(ETagCondition::ETag(_)) => return Err(GatewayError::NotImplemented("If-None-Match other than *".into())),
    };
    let if_match = if_match.map(|c| match c {
        ETagCondition::Any => "*".to_string(),
        ETagCondition::ETag(e) => if_match_value(e),
    });
    Ok(WriteCondition { if_none_match_any, if_match })
}

/// The value a write's If-Match (or a DeleteObjects key's ETag) asks the metadata to find. It
/// compares strongly (RFC 9110 13.1.1): a weak tag matches no object, and `W/...` is no ETag the
/// metadata holds (an MD5 in hex, maybe with a part count).
fn if_match_value(etag: &ETag) -> String {
    match etag {
        ETag::Strong(e) => e.clone(),
        ETag::Weak(e) => format!("W/{e}"),
    }
}

/// The storage classes AWS names. Any is accepted and the object stored in the cluster's one
/// class, reported as STANDARD (its erasure coding survives a datacenter and a node, more than
/// any of these promises); another name is 400 InvalidStorageClass.
const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "GLACIER_IR",
    "SNOW",
    "EXPRESS_ONEZONE",
    "FSX_OPENZFS",
];

/// Headers of server-side encryption, of the object written or of a copy's source.
const ENCRYPTION_HEADERS: &[&str] = &[
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-context",
    "x-amz-server-side-encryption-bucket-key-enabled",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-server-side-encryption-customer-key-md5",
    "x-amz-copy-source-server-side-encryption-customer-algorithm",
    "x-amz-copy-source-server-side-encryption-customer-key",
    "x-amz-copy-source-server-side-encryption-customer-key-md5",
];

/// Headers that put an object under Object Lock.
const OBJECT_LOCK_HEADERS: &[&str] =
    &["x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date", "x-amz-object-lock-legal-hold"];

/// Refuses a write (PutObject, CopyObject, CreateMultipartUpload) whose headers ask for what
/// the gateway does not do, rather than storing the object without it: server-side encryption
/// (501 NotImplemented: the object would be stored unencrypted), Object Lock (no bucket has it:
/// 400 InvalidRequest, as AWS answers for such a bucket; a retention that would not hold), and a
/// storage class AWS does not name (400 InvalidStorageClass).
pub(super) fn refuse_unsupported_write_headers(headers: &http::HeaderMap) -> GatewayResult<()> {
    if let Some(name) = ENCRYPTION_HEADERS.iter().find(|name| headers.contains_key(**name)) {
        return Err(GatewayError::NotImplemented(format!(
            "{name} (server-side encryption is not supported yet: the object would be stored unencrypted)"
        )));
    }
    if OBJECT_LOCK_HEADERS.iter().any(|name| headers.contains_key(*name)) {
        return Err(GatewayError::InvalidRequest("Bucket is missing Object Lock Configuration".into()));
    }
    if let Some(class) = headers.get("x-amz-storage-class")
        && !class.to_str().is_ok_and(|class| STORAGE_CLASSES.contains(&class))
    {
        return Err(GatewayError::InvalidStorageClass);
    }
    Ok(())
}

/// CopyObject's If-Match and If-None-Match, on the destination key as for PutObject (s3s 0.14's
/// input has no field for them, so they are read from the request's headers). Without them a
/// conditional copy overwrote the key it was told to leave alone.
pub(super) fn destination_condition(headers: &http::HeaderMap) -> GatewayResult<WriteCondition> {
    let parse = |name: &str| {
        headers
            .get(name)
            .map(|value| {
                ETagCondition::parse_http_header(value.as_bytes())
                    .map_err(|_| GatewayError::InvalidArgument(format!("invalid header: {name}")))
            })
            .transpose()
    };
    write_condition(parse("if-match")?.as_ref(), parse("if-none-match")?.as_ref())
}

/// The owner a copy expects of its source's bucket (CopyObject, UploadPartCopy).
pub(super) const SOURCE_EXPECTED_OWNER: &str = "x-amz-source-expected-bucket-owner";

/// The x-amz-copy-source-if-* headers of CopyObject and UploadPartCopy, and the owner expected of
/// the source's bucket.
pub(super) struct CopyConditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_unmodified_since: Option<&'a Timestamp>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    /// x-amz-source-expected-bucket-owner, each value the request names (`access::expected_owners`).
    pub expected_owners: Vec<String>,
}

/// A version read for a request, and whether its bucket's versioning was ever set (then
/// responses name the version, "null" included, as AWS does).
pub(super) struct ReadVersion {
    pub record: ObjectRecord,
    pub versioned_bucket: bool,
    /// The tenant owning the bucket read: its data's small shards are kept in the shard cache
    /// as that tenant's.
    pub owner: TenantId,
}

impl ReadVersion {
    /// The x-amz-version-id of a response about this version.
    pub fn version_id(&self) -> Option<String> {
        version_header(&self.record, self.versioned_bucket)
    }
}

/// x-amz-version-id for a version: none in a bucket whose versioning was never set.
pub(super) fn version_header(record: &ObjectRecord, versioned_bucket: bool) -> Option<String> {
    (versioned_bucket || record.versioned).then(|| record.version.0.clone())
}

/// A versionId query parameter: "null" or an id this store gave (400 InvalidArgument otherwise).
pub(super) fn parse_version_id(value: Option<&str>) -> GatewayResult<Option<VersionId>> {
    match value {
        None => Ok(None),
        Some(v) if is_valid_version_id(v) => Ok(Some(VersionId::new(v))),
        Some(_) => Err(GatewayError::InvalidVersionId),
    }
}

impl IgnifugeS3 {
    /// Resolves x-amz-copy-source: the source's bucket, key and version (current, or
    /// `?versionId=`), readable by the requester and meeting the copy conditions (a failed
    /// condition is 412, never 304).
    pub(super) async fn copy_source(
        &self,
        authorized: &Authorized,
        source: &CopySource,
        conditions: CopyConditions<'_>,
    ) -> S3Result<(String, String, ReadVersion)> {
        let (bucket, key, version) = match source {
            CopySource::Bucket { bucket, key, version_id } => (bucket.to_string(), key.to_string(), version_id.clone()),
            _ => return Err(s3s::s3_error!(NotImplemented, "access point copy sources are not supported")),
        };
        let view = self.gateway.access.view(self.gateway.metadata.as_ref(), &bucket, false).await?;
        for owner in &conditions.expected_owners {
            view.check_expected_owner(Some(owner))?;
        }
        let action = if version.is_some() { "s3:GetObjectVersion" } else { "s3:GetObject" };
        let deferred = view.depends_on_object();
        if !deferred {
            authorized.also(&self.gateway, &view, Ask { action, key: Some(&key), object_acl: None })?;
        }
        let read = Read { view: &view, action, deferred, key: &key, version: version.as_deref() };
        let source = match self.read_version(authorized, read, self.gateway.read_stripes).await {
            Err(e) if e.code() == &s3s::S3ErrorCode::MethodNotAllowed => {
                return Err(s3s::s3_error!(
                    InvalidRequest,
                    "The source of a copy request may not specifically refer to a delete marker by version id."
                ));
            }
            other => other?,
        };
        check_read_conditions(
            &source.record,
            conditions.if_match,
            conditions.if_unmodified_since,
            conditions.if_none_match,
            conditions.if_modified_since,
        )
        .map_err(|e| match e {
            GatewayError::NotModified => GatewayError::PreconditionFailed,
            other => other,
        })?;
        Ok((bucket, key, source))
    }

    /// A version of the request's key (the current one without `version`) in the request's
    /// bucket, as the access hook authorized it (`read_version`).
    pub(super) async fn get_record(
        &self,
        authorized: &Authorized,
        key: &str,
        version: Option<&str>,
        stripes: u32,
    ) -> S3Result<ReadVersion> {
        let view = authorized.view()?;
        let read = Read { view, action: authorized.action, deferred: authorized.deferred, key, version };
        self.read_version(authorized, read, stripes).await
    }

    /// A version of a key, read only while the bucket still belongs to the tenant the request was
    /// authorized against (the ownership check and the read are one linearizable query). A read
    /// whose decision depends on the object (`Read::deferred`) is authorized once its record is
    /// here, with its ACL and tags. A missing key is 404 only to a requester allowed to list the
    /// bucket, 403 to others, as on AWS. A delete marker answers 404 NoSuchKey (current) or 405
    /// MethodNotAllowed (by version id). `stripes`: how many stripe records to bring with it
    /// (`Gateway::read_stripes` when its data is read, 0 when only the record is).
    async fn read_version(&self, authorized: &Authorized, read: Read<'_>, stripes: u32) -> S3Result<ReadVersion> {
        let version = parse_version_id(read.version)?;
        let by_version_id = version.is_some();
        let bucket = &read.view.record;
        let answer =
            self.gateway.metadata.object_version(bucket.reference(), ObjectKey::new(read.key), version, stripes).await;
        let (record, versioning) = match answer {
            Ok(found) => found,
            Err(MetaError::NoSuchBucket) => {
                // Deleted, or deleted and made again since the view was cached: the next request
                // reads the bucket afresh.
                self.gateway.access.forget(&bucket.name);
                return Err(GatewayError::Meta(MetaError::NoSuchBucket).into());
            }
            Err(e @ (MetaError::NoSuchKey | MetaError::NoSuchVersion)) => {
                if read.deferred {
                    let ask = Ask { action: read.action, key: Some(read.key), object_acl: None };
                    authorized.also(&self.gateway, read.view, ask)?;
                }
                let may_list = self
                    .gateway
                    .decide(&authorized.requester, read.view, "s3:ListBucket", None, None, &authorized.context)
                    .allowed;
                return Err(if may_list { GatewayError::Meta(e) } else { GatewayError::AccessDenied }.into());
            }
            Err(e) => return Err(GatewayError::Meta(e).into()),
        };
        if read.deferred {
            let mut context = (*authorized.context).clone();
            for (name, value) in &record.tags {
                context.values.insert(format!("s3:ExistingObjectTag/{name}"), vec![value.clone()]);
            }
            let ask = Ask { action: read.action, key: Some(read.key), object_acl: record.acl.as_ref() };
            self.gateway.authorize(&authorized.requester, read.view, ask, &context, &authorized.request_id)?;
        }
        if record.delete_marker {
            return Err(GatewayError::DeleteMarker { version: record.version.0, by_version_id }.into());
        }
        Ok(ReadVersion { record, versioned_bucket: versioning.is_some(), owner: bucket.tenant.clone() })
    }

    /// Checks a conditional write's precondition against the key's current version before the
    /// body is read, so a write bound to fail costs no upload (412 PreconditionFailed). The
    /// commit checks it again, atomically; if the commit refuses what this check accepted,
    /// another write or delete of the key committed during the request: see `conditional`.
    pub(super) async fn precheck(
        &self,
        bucket: &BucketRecord,
        key: &ObjectKey,
        condition: &WriteCondition,
    ) -> GatewayResult<()> {
        if !condition.is_some() {
            return Ok(());
        }
        let current = match self
            .gateway
            .metadata
            .object(Some(bucket.tenant.clone()), bucket.name.clone(), key.clone(), 0)
            .await
        {
            Ok(record) => Some(record),
            Err(MetaError::NoSuchKey) => None,
            Err(e) => return Err(e.into()),
        };
        condition.check(current.as_ref()).map_err(GatewayError::Meta)
    }

    /// Commits a new current version and returns its x-amz-version-id.
    pub(super) async fn commit_version(
        &self,
        bucket: &BucketRecord,
        command: Command,
        written: &[&DataLocation],
    ) -> S3Result<Option<String>> {
        let record = self.commit(command, written).await?.into_object().map_err(GatewayError::Meta)?;
        Ok(version_header(&record, bucket.versioning.is_some()))
    }

    /// Commits a single-part version written by `write_blob` (`pack_budget` taken from it):
    /// through the packer when its body is to be packed, else as a `Command::PutObject`. Returns
    /// its x-amz-version-id.
    pub(super) async fn commit_single(
        &self,
        bucket: &BucketRecord,
        mut record: ObjectRecord,
        condition: WriteCondition,
        pack_budget: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> S3Result<Option<String>> {
        let Some(budget) = pack_budget else {
            let location = record.parts[0].location.clone();
            let command = Command::PutObject { bucket: bucket.reference(), record, condition, leader_ms: None };
            return self.commit_version(bucket, command, &[&location]).await;
        };
        let DataLocation::Inline(body) =
            std::mem::replace(&mut record.parts[0].location, DataLocation::Inline(Vec::new()))
        else {
            return Err(GatewayError::Internal("a body to pack was not read into memory".into()).into());
        };
        let put = PackedPut { bucket: bucket.reference(), record, condition };
        let installed = self.gateway.packer.put(put, body, budget).await.map_err(|e| match e {
            GatewayError::Meta(e) => conflict_after_precheck(e),
            other => other,
        })?;
        Ok(version_header(&installed, bucket.versioning.is_some()))
    }

    /// Commits a record. A commit refused for a known reason gives its freshly written blobs up
    /// (`commit::give_up`); one whose outcome is not known (no majority before the deadline, and the
    /// proposal could not be settled either) gives up nothing: it may still commit, and the
    /// orphan sweep fences the blob in the metadata before it deletes a shard
    /// (`Command::ReclaimOrphans`). Every conditional write was prechecked (`precheck`), so a
    /// refused precondition here is a conflict.
    pub(super) async fn commit(&self, command: Command, written: &[&DataLocation]) -> S3Result<Outcome> {
        match crate::commit::answer(self.gateway.metadata.as_ref(), command).await {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                if e.is_known_refusal() {
                    let blobs = written
                        .iter()
                        .filter_map(|location| match location {
                            DataLocation::Striped(blob) => Some(blob.blob.clone()),
                            // A pack is given up by its packer, which wrote it.
                            DataLocation::Inline(_) | DataLocation::Packed(_) => None,
                        })
                        .collect();
                    crate::commit::give_up(self.gateway.metadata.clone(), self.gateway.data.clone(), blobs);
                } else {
                    tracing::warn!(error = %e, "commit outcome unknown; its shards are left to the fenced orphan sweep");
                }
                Err(conflict_after_precheck(e).into())
            }
        }
    }
}

pub async fn put_object(s3: &IgnifugeS3, mut req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
    let body = body_stream(req.input.body.take());
    let trailers = trailers(req.trailing_headers.take());
    let input = std::mem::take(&mut req.input);
    put(s3, IgnifugeS3::authorized(&req)?, &req.headers, input, body, trailers).await
}

/// Stores `body` as the new current version of `input.key`, as `authorized` allows: PutObject's
/// work, shared with PostObject (whose body is a form's file). `headers` are the request's (for
/// x-amz-trailer); `input.body` is not read.
pub(super) async fn put(
    s3: &IgnifugeS3,
    authorized: &Authorized,
    request_headers: &http::HeaderMap,
    input: PutObjectInput,
    body: BodyStream,
    trailers: impl FnOnce() -> Vec<(String, String)>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let view = authorized.view()?.clone();
    let bucket = view.record.clone();
    let requester = authorized.requester.clone();
    check_key(&input.key)?;
    refuse_unsupported_write_headers(request_headers)?;
    let acl = super::acl::object_acl(
        &view,
        &requester,
        AclRequest::headers(
            input.acl.map(|a| a.as_str().to_string()),
            input.grant_full_control,
            input.grant_read,
            input.grant_read_acp,
            None,
            input.grant_write_acp,
        ),
    )?;
    let headers = object_headers(
        input.content_type,
        stored_content_encoding(input.content_encoding),
        input.content_disposition,
        input.content_language,
        input.cache_control,
        input.expires,
        input.metadata,
        input.website_redirect_location,
    )?;
    let tags = super::tagging::parse_header(input.tagging.as_deref())?;
    let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    let key = ObjectKey::new(input.key);
    s3.precheck(&bucket, &key, &condition).await?;
    let expected = expected_checksums(
        request_headers,
        input.content_md5,
        [
            (Algorithm::Crc32, input.checksum_crc32),
            (Algorithm::Crc32c, input.checksum_crc32c),
            (Algorithm::Crc64Nvme, input.checksum_crc64nvme),
            (Algorithm::Sha1, input.checksum_sha1),
            (Algorithm::Sha256, input.checksum_sha256),
        ],
        input.checksum_algorithm.as_ref(),
    )?;
    let request = WriteRequest {
        expected,
        declared_length: input.content_length.map(|l| l.max(0) as u64),
        max_length: PUT_OBJECT_MAX_BYTES,
        packable: true,
    };
    let mut written = s3.gateway.data.write_blob(body, request, trailers).await?;
    let _intent = written.intent.clone(); // until the commit has answered
    let pack_budget = written.pack_budget.take();
    let mut record = single_part_record(key, headers, tags, written, now_ms());
    record.acl = acl;
    let output = PutObjectOutput {
        e_tag: Some(etag(&record.etag)),
        checksum_crc32: record.checksums.crc32.clone(),
        checksum_crc32c: record.checksums.crc32c.clone(),
        checksum_crc64nvme: record.checksums.crc64nvme.clone(),
        checksum_sha1: record.checksums.sha1.clone(),
        checksum_sha256: record.checksums.sha256.clone(),
        checksum_type: Some(ChecksumType::from(ChecksumType::FULL_OBJECT.to_string())),
        size: Some(record.size as i64),
        ..Default::default()
    };
    let version_id = s3.commit_single(&bucket, record, condition, pack_budget).await?;
    Ok(S3Response::new(PutObjectOutput { version_id, ..output }))
}

pub(super) fn single_part_record(
    key: ObjectKey,
    headers: ObjectHeaders,
    tags: Tags,
    written: WrittenBlob,
    now: i64,
) -> ObjectRecord {
    let mut checksums = written.digests.checksums;
    checksums.checksum_type = Some(ChecksumType::FULL_OBJECT.to_string());
    let part = PartData {
        part_number: 1,
        size: written.size,
        etag: hex::encode(written.digests.md5),
        checksums,
        location: written.location,
        last_modified_ms: now,
        started_ms: 0,
        began: None,
    };
    ObjectRecord { headers, tags, ..ObjectRecord::single_part(key, VersionId::new(ignifuge_types::random_id()), part) }
}

/// Whether `condition` names the ETag `current`: compared strongly for If-Match (a weak tag
/// never matches), weakly for If-None-Match (RFC 9110 13.1.1, 13.1.2).
fn etag_matches(condition: &ETagCondition, current: &str, strong: bool) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(ETag::Weak(_)) if strong => false,
        ETagCondition::ETag(e) => e.value() == current,
    }
}

/// RFC 9110 precedence, as S3 applies it: If-Match, else If-Unmodified-Since (412); then
/// If-None-Match, else If-Modified-Since (304 for reads).
pub(in crate::s3) fn check_read_conditions(
    record: &ObjectRecord,
    if_match: Option<&ETagCondition>,
    if_unmodified_since: Option<&Timestamp>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
) -> GatewayResult<()> {
    let modified_s = record.last_modified_ms.div_euclid(1000);
    match (if_match, if_unmodified_since) {
        (Some(c), _) if !etag_matches(c, &record.etag, true) => {
            return Err(GatewayError::PreconditionFailed);
        }
        (None, Some(t)) if modified_s > unix_seconds(t) => {
            return Err(GatewayError::PreconditionFailed);
        }
        _ => {}
    }
    match (if_none_match, if_modified_since) {
        (Some(c), _) if etag_matches(c, &record.etag, false) => return Err(GatewayError::NotModified),
        (None, Some(t)) if modified_s <= unix_seconds(t) => return Err(GatewayError::NotModified),
        _ => {}
    }
    Ok(())
}

/// A 304 or 412 of a conditional GET or HEAD carries the object's validators (ETag and
/// Last-Modified), as AWS's do: a cache revalidating with them learns what it has.
fn with_validators(error: GatewayError, record: &ObjectRecord) -> s3s::S3Error {
    let validators = matches!(error, GatewayError::NotModified | GatewayError::PreconditionFailed);
    let mut error = s3s::S3Error::from(error);
    if validators {
        let mut headers = http::HeaderMap::new();
        if let Ok(value) = http::HeaderValue::from_str(&format!("\"{}\"", record.etag)) {
            headers.insert(http::header::ETAG, value);
        }
        let mut date = Vec::new();
        if timestamp(record.last_modified_ms).format(TimestampFormat::HttpDate, &mut date).is_ok()
            && let Ok(value) = http::HeaderValue::from_bytes(&date)
        {
            headers.insert(http::header::LAST_MODIFIED, value);
        }
        error.set_headers(headers);
    }
    error
}

/// The bytes a GET or HEAD covers: a Range, a part number, or everything.
fn selected_range(
    record: &ObjectRecord,
    range: Option<&Range>,
    part_number: Option<i32>,
) -> GatewayResult<Option<ByteRange<u64>>> {
    if let Some(n) = part_number {
        if range.is_some() {
            return Err(GatewayError::InvalidRequest("Range and partNumber cannot be combined".into()));
        }
        if !(1..=MULTIPART_MAX_PARTS as i32).contains(&n) {
            return Err(GatewayError::InvalidArgument(
                "Part number must be an integer between 1 and 10000, inclusive".into(),
            ));
        }
        let n = n as usize;
        if n > record.parts.len() {
            return Err(GatewayError::InvalidPartNumber);
        }
        let start: u64 = record.parts[..n - 1].iter().map(|p| p.size).sum();
        return Ok(Some(start..start + record.parts[n - 1].size));
    }
    match range {
        None => Ok(None),
        Some(r) => satisfiable(r, record.size).map_err(|()| GatewayError::InvalidRange { size: record.size }),
    }
}

/// The bytes `range` asks of an object of `size` bytes (Err: unsatisfiable, 416). None: the
/// whole object, answered 200 as without a Range. That is a suffix of an empty object: RFC 9110
/// 14.1.1 counts it satisfiable, yet a 206 could name none of its bytes (s3s gave the empty range
/// and it answered 206 "bytes 0-0/0"); any other range of an empty object is unsatisfiable.
pub(in crate::s3) fn satisfiable(range: &Range, size: u64) -> Result<Option<ByteRange<u64>>, ()> {
    match range.check(size) {
        Ok(r) if r.is_empty() => Ok(None),
        Ok(r) => Ok(Some(r)),
        Err(_) => Err(()),
    }
}

pub(in crate::s3) fn content_range(range: &ByteRange<u64>, size: u64) -> String {
    format!("bytes {}-{}/{}", range.start, range.end.saturating_sub(1), size)
}

/// Stored checksums, returned when the client asks with x-amz-checksum-mode: ENABLED and reads
/// the whole object (a range has no stored checksum).
fn returned_checksums(record: &ObjectRecord, mode: Option<&ChecksumMode>, whole: bool) -> Checksums {
    if whole && mode.is_some_and(|m| m.as_str() == ChecksumMode::ENABLED) {
        record.checksums.clone()
    } else {
        Checksums::default()
    }
}

pub async fn get_object(s3: &IgnifugeS3, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
    let authorized = IgnifugeS3::authorized(&req)?;
    let input = &req.input;
    let read = s3.get_record(authorized, &input.key, input.version_id.as_deref(), s3.gateway.read_stripes).await?;
    let version_id = read.version_id();
    let record = read.record;
    check_read_conditions(
        &record,
        input.if_match.as_ref(),
        input.if_unmodified_since.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
    )
    .map_err(|e| with_validators(e, &record))?;
    let selected = selected_range(&record, input.range.as_ref(), input.part_number)?;
    let range = selected.clone().unwrap_or(0..record.size);
    let sums = returned_checksums(&record, input.checksum_mode.as_ref(), selected.is_none());
    let body = s3.gateway.data.read_range(record.parts.clone(), range.clone(), s3.gateway.metadata.clone(), read.owner);
    let headers = record.headers;
    let output = GetObjectOutput {
        body: Some(StreamingBlob::wrap(body)),
        content_length: Some((range.end - range.start) as i64),
        content_range: selected.as_ref().map(|r| content_range(r, record.size)),
        accept_ranges: Some("bytes".to_string()),
        e_tag: Some(etag(&record.etag)),
        last_modified: Some(timestamp(record.last_modified_ms)),
        expires: parse_expires(&headers.expires),
        content_type: headers.content_type,
        content_encoding: headers.content_encoding,
        content_disposition: headers.content_disposition,
        content_language: headers.content_language,
        cache_control: headers.cache_control,
        website_redirect_location: headers.website_redirect_location,
        metadata: (!headers.user_metadata.is_empty()).then(|| headers.user_metadata.into_iter().collect()),
        parts_count: (input.part_number.is_some() && record.multipart).then_some(record.parts.len() as i32),
        tag_count: (!record.tags.is_empty()).then_some(record.tags.len() as i32),
        checksum_type: sums.checksum_type.clone().map(ChecksumType::from),
        checksum_crc32: sums.crc32,
        checksum_crc32c: sums.crc32c,
        checksum_crc64nvme: sums.crc64nvme,
        checksum_sha1: sums.sha1,
        checksum_sha256: sums.sha256,
        version_id,
        ..Default::default()
    };
    Ok(S3Response::new(output))
}

pub async fn head_object(s3: &IgnifugeS3, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
    let authorized = IgnifugeS3::authorized(&req)?;
    let input = &req.input;
    let read = s3.get_record(authorized, &input.key, input.version_id.as_deref(), 0).await?;
    let version_id = read.version_id();
    let record = read.record;
    check_read_conditions(
        &record,
        input.if_match.as_ref(),
        input.if_unmodified_since.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
    )
    .map_err(|e| with_validators(e, &record))?;
    let selected = selected_range(&record, input.range.as_ref(), input.part_number)?;
    let range = selected.clone().unwrap_or(0..record.size);
    let sums = returned_checksums(&record, input.checksum_mode.as_ref(), selected.is_none());
    let headers = record.headers;
    // The response-* overrides of a signed request (an anonymous one was refused by the access
    // hook), as AWS applies them to HEAD too; s3s applies GetObject's itself.
    let output = HeadObjectOutput {
        content_length: Some((range.end - range.start) as i64),
        content_range: selected.as_ref().map(|r| content_range(r, record.size)),
        accept_ranges: Some("bytes".to_string()),
        e_tag: Some(etag(&record.etag)),
        last_modified: Some(timestamp(record.last_modified_ms)),
        expires: input.response_expires.clone().or_else(|| parse_expires(&headers.expires)),
        content_type: input.response_content_type.clone().or(headers.content_type),
        content_encoding: input.response_content_encoding.clone().or(headers.content_encoding),
        content_disposition: input.response_content_disposition.clone().or(headers.content_disposition),
        content_language: input.response_content_language.clone().or(headers.content_language),
        cache_control: input.response_cache_control.clone().or(headers.cache_control),
        website_redirect_location: headers.website_redirect_location,
        metadata: (!headers.user_metadata.is_empty()).then(|| headers.user_metadata.into_iter().collect()),
        parts_count: (input.part_number.is_some() && record.multipart).then_some(record.parts.len() as i32),
        checksum_type: sums.checksum_type.clone().map(ChecksumType::from),
        checksum_crc32: sums.crc32,
        checksum_crc32c: sums.crc32c,
        checksum_crc64nvme: sums.crc64nvme,
        checksum_sha1: sums.sha1,
        checksum_sha256: sums.sha256,
        version_id,
        ..Default::default()
    };
    // s3s's HeadObjectOutput has no field for it; AWS sends it on HEAD as on GET.
    // (Its Content-Range makes it a 206 on the way out, `serve`: s3s answers 200 for any HEAD.)
    let mut response = S3Response::new(output);
    if !record.tags.is_empty() {
        response.headers.insert("x-amz-tagging-count", http::HeaderValue::from(record.tags.len()));
    }
    Ok(response)
}

/// A read of one key's version, as `read_version` makes it.
pub(super) struct Read<'a> {
    view: &'a BucketView,
    action: &'a str,
    /// Authorize once the record is read (`Authorized::deferred`).
    deferred: bool,
    key: &'a str,
    version: Option<&'a str>,
}

/// What a DeleteObject did: the version removed or the marker added, and whether it is a marker.
struct Deletion {
    version_id: Option<String>,
    delete_marker: bool,
}

impl IgnifugeS3 {
    /// Deletes a key (a delete marker in a versioned bucket) or, with `version`, one version.
    async fn delete_one(
        &self,
        bucket: &BucketRecord,
        key: String,
        version: Option<&str>,
        condition: WriteCondition,
    ) -> GatewayResult<Deletion> {
        // The same rules as a PUT: a key no PUT could have made names nothing, and a NUL would
        // reach the metadata's version index.
        check_key(&key)?;
        let command = Command::DeleteObject {
            bucket: bucket.reference(),
            key: ObjectKey::new(key),
            condition,
            now_ms: now_ms(),
            version: parse_version_id(version)?,
            marker_nonce: Some(VersionId::new(ignifuge_types::random_id())),
        };
        let (version, delete_marker) = self.gateway.metadata.apply_delete(command).await?;
        Ok(Deletion { version_id: version.map(|v| v.0), delete_marker })
    }
}

pub async fn delete_object(
    s3: &IgnifugeS3,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    let input = req.input;
    let condition = write_condition(input.if_match.as_ref(), None)?;
    let deletion = s3.delete_one(&bucket, input.key, input.version_id.as_deref(), condition).await?;
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker: deletion.delete_marker.then_some(true),
        version_id: deletion.version_id,
        ..Default::default()
    }))
}

pub async fn delete_objects(
    s3: &IgnifugeS3,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let authorized = IgnifugeS3::authorized(&req)?.clone();
    // AWS requires Content-MD5 or an x-amz-checksum-* header, and checks it (`bodies::bound`).
    if let Some(digest) = req.extensions.get::<super::bodies::DeleteBodyDigest>() {
        digest.check()?;
    }
    let view = authorized.view()?.clone();
    let bucket = &view.record;
    let input = req.input;
    if input.delete.objects.len() > DELETE_OBJECTS_MAX_KEYS {
        return Err(s3s::s3_error!(MalformedXML, "at most 1000 keys can be deleted at once"));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let objects = input.delete.objects;
    // Each key's outcome, in the request's order: refused here, or by the metadata below.
    let mut outcomes: Vec<Option<GatewayResult<Deletion>>> = (0..objects.len()).map(|_| None).collect();
    // The keys allowed and well formed go to the metadata in as few proposals as the request
    // allows: one, unless a key is named more than once (its n-th mention goes in batch n, so
    // that each deletion sees the ones before it).
    let mut batches: Vec<Vec<(usize, ObjectDeletion)>> = Vec::new();
    let mut mentions: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (index, object) in objects.iter().enumerate() {
        let requested = object.version_id.as_deref();
        // Each key is authorized on its own, as on AWS: a denied key is an AccessDenied entry.
        let action = if requested.is_some() { "s3:DeleteObjectVersion" } else { "s3:DeleteObject" };
        let prepared = authorized
            .also(&s3.gateway, &view, Ask { action, key: Some(&object.key), object_acl: None })
            .and_then(|()| prepare_deletion(&object.key, requested, object.e_tag.as_ref()));
        match prepared {
            Ok(deletion) => {
                let mention = mentions.entry(object.key.as_str()).or_insert(0);
                if batches.len() <= *mention {
                    batches.push(Vec::new());
                }
                batches[*mention].push((index, deletion));
                *mention += 1;
            }
            Err(e) => outcomes[index] = Some(Err(e)),
        }
    }
    for batch in batches {
        let (indices, deletions): (Vec<usize>, Vec<ObjectDeletion>) = batch.into_iter().unzip();
        let command = Command::DeleteObjects { bucket: bucket.reference(), deletions, now_ms: now_ms() };
        let answer = s3.gateway.metadata.apply_deletes(command).await.and_then(|done| {
            if done.len() == indices.len() {
                Ok(done)
            } else {
                Err(MetaError::Unexpected(format!("{} outcomes for {} deletions", done.len(), indices.len())))
            }
        });
        match answer {
            Ok(done) => {
                for (index, outcome) in indices.into_iter().zip(done) {
                    outcomes[index] = Some(
                        outcome
                            .map(|d| Deletion { version_id: d.version.map(|v| v.0), delete_marker: d.delete_marker })
                            .map_err(GatewayError::Meta),
                    );
                }
            }
            // The whole batch failed (the bucket is gone, the metadata is unreachable, or the
            // outcome is unknown): every key of it answers that error.
            Err(e) => {
                for index in indices {
                    outcomes[index] = Some(Err(GatewayError::Meta(e.clone())));
                }
            }
        }
    }
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (object, outcome) in objects.into_iter().zip(outcomes) {
        let requested = object.version_id;
        match outcome.expect("every key has an outcome") {
            Ok(deletion) if !quiet => {
                // As AWS: a removed version is named as VersionId, a marker added as
                // DeleteMarkerVersionId (a removed marker is both).
                let marker_id = deletion.delete_marker.then(|| deletion.version_id.clone()).flatten();
                deleted.push(DeletedObject {
                    key: Some(object.key),
                    version_id: requested.and(deletion.version_id),
                    delete_marker: deletion.delete_marker.then_some(true),
                    delete_marker_version_id: marker_id,
                });
            }
            Ok(_) => {}
            Err(e) => {
                let error = s3s::S3Error::from(e);
                errors.push(Error {
                    code: Some(error.code().as_str().to_string()),
                    key: Some(object.key),
                    message: error.message().map(str::to_string),
                    version_id: requested,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() }))
}

/// One key of a DeleteObjects, checked as a DeleteObject's key and version are.
fn prepare_deletion(key: &str, version: Option<&str>, etag: Option<&ETag>) -> GatewayResult<ObjectDeletion> {
    check_key(key)?;
    Ok(ObjectDeletion {
        key: ObjectKey::new(key),
        condition: WriteCondition { if_none_match_any: false, if_match: etag.map(if_match_value) },
        version: parse_version_id(version)?,
        marker_nonce: Some(VersionId::new(ignifuge_types::random_id())),
    })
}

pub async fn copy_object(s3: &IgnifugeS3, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
    let authorized = IgnifugeS3::authorized(&req)?.clone();
    let view = authorized.view()?.clone();
    let bucket = view.record.clone();
    let input = req.input;
    check_key(&input.key)?;
    refuse_unsupported_write_headers(&req.headers)?;
    let condition = destination_condition(&req.headers)?;
    // As AWS: the copy's ACL is the request's (or the default), never the source's.
    let acl = super::acl::object_acl(
        &view,
        &authorized.requester,
        AclRequest::headers(
            input.acl.map(|a| a.as_str().to_string()),
            input.grant_full_control,
            input.grant_read,
            input.grant_read_acp,
            None,
            input.grant_write_acp,
        ),
    )?;
    let conditions = CopyConditions {
        if_match: input.copy_source_if_match.as_ref(),
        if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
        if_none_match: input.copy_source_if_none_match.as_ref(),
        if_modified_since: input.copy_source_if_modified_since.as_ref(),
        expected_owners: super::access::expected_owners(SOURCE_EXPECTED_OWNER, &req.headers, &req.uri),
    };
    let (source_bucket, source_key, source) = s3.copy_source(&authorized, &input.copy_source, conditions).await?;
    s3.precheck(&bucket, &ObjectKey::new(input.key.clone()), &condition).await?;
    let copy_source_version_id = source.version_id();
    let (source_owner, source) = (source.owner, source.record);
    if source.size > PUT_OBJECT_MAX_BYTES {
        // As AWS: larger objects are copied part by part (UploadPartCopy with ranges).
        return Err(s3s::s3_error!(
            InvalidRequest,
            "The specified copy source is larger than the maximum allowable size for a copy source: {PUT_OBJECT_MAX_BYTES}"
        ));
    }
    let replace = match input.metadata_directive.as_ref().map(|d| d.as_str()) {
        None | Some(MetadataDirective::COPY) => false,
        Some(MetadataDirective::REPLACE) => true,
        Some(_) => return Err(GatewayError::InvalidArgument("Unknown metadata directive.".into()).into()),
    };
    // Copying an older version onto its own key restores it: allowed without REPLACE, as on AWS;
    // so is a copy onto itself that names a storage class or a website redirect (AWS counts
    // either as a change).
    let copies_current = matches!(&input.copy_source, CopySource::Bucket { version_id: None, .. });
    let changes_attributes = input.storage_class.is_some() || input.website_redirect_location.is_some();
    if source_bucket == input.bucket && source_key == input.key && !replace && copies_current && !changes_attributes {
        return Err(s3s::s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    let headers = if replace {
        object_headers(
            input.content_type,
            input.content_encoding,
            input.content_disposition,
            input.content_language,
            input.cache_control,
            input.expires,
            input.metadata,
            input.website_redirect_location,
        )?
    } else {
        // As AWS: the website redirect is the object's own, never copied from the source, and
        // checked as a PutObject's is.
        super::check_website_redirect(input.website_redirect_location.as_deref())?;
        ObjectHeaders { website_redirect_location: input.website_redirect_location, ..source.headers.clone() }
    };
    // Copies re-encode the bytes into a new blob: blob ids are never shared between versions,
    // so deleting one version can never take another's data with it.
    // The source's checksums carried over (a multipart source's are of its parts), and the one
    // x-amz-checksum-algorithm asks for, as AWS computes it for the copy.
    let mut computed = vec![Algorithm::Crc64Nvme];
    for a in [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Sha1, Algorithm::Sha256] {
        if a.get(&source.checksums).is_some() && !source.multipart {
            computed.push(a);
        }
    }
    if let Some(asked) = &input.checksum_algorithm {
        let asked = Algorithm::parse(asked.as_str())?;
        if !computed.contains(&asked) {
            computed.push(asked);
        }
    }
    let body =
        s3.gateway.data.read_range(source.parts.clone(), 0..source.size, s3.gateway.metadata.clone(), source_owner);
    let request = WriteRequest {
        expected: Expected { computed, ..Default::default() },
        declared_length: Some(source.size),
        max_length: PUT_OBJECT_MAX_BYTES,
        packable: true,
    };
    let tags = match input.tagging_directive.as_ref().map(|d| d.as_str()) {
        Some("REPLACE") => super::tagging::parse_header(input.tagging.as_deref())?,
        None | Some("COPY") => source.tags.clone(),
        Some(other) => return Err(s3s::s3_error!(InvalidArgument, "Unknown tagging directive: {other}")),
    };
    let mut written = s3.gateway.data.write_blob(body, request, Vec::new).await?;
    let _intent = written.intent.clone(); // until the commit has answered
    let pack_budget = written.pack_budget.take();
    let mut record = single_part_record(ObjectKey::new(input.key), headers, tags, written, now_ms());
    record.acl = acl;
    let result = CopyObjectResult {
        e_tag: Some(etag(&record.etag)),
        last_modified: Some(timestamp(record.last_modified_ms)),
        checksum_crc32: record.checksums.crc32.clone(),
        checksum_crc32c: record.checksums.crc32c.clone(),
        checksum_crc64nvme: record.checksums.crc64nvme.clone(),
        checksum_sha1: record.checksums.sha1.clone(),
        checksum_sha256: record.checksums.sha256.clone(),
        checksum_type: Some(ChecksumType::from(ChecksumType::FULL_OBJECT.to_string())),
        ..Default::default()
    };
    let version_id = s3.commit_single(&bucket, record, condition, pack_budget).await?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(result),
        copy_source_version_id,
        version_id,
        ..Default::default()
    }))
}

/// Most parts returned by one GetObjectAttributes page, as on AWS.
const ATTRIBUTE_PARTS_MAX: usize = 1000;

pub async fn get_object_attributes(
    s3: &IgnifugeS3,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let authorized = IgnifugeS3::authorized(&req)?;
    let input = &req.input;
    let read = s3.get_record(authorized, &input.key, input.version_id.as_deref(), 0).await?;
    let version_id = read.version_id();
    let record = read.record;
    // One header may list several attributes, comma-separated (what boto3 and the aws CLI send);
    // s3s hands each header value over as one item.
    let wants = |name: &str| {
        input.object_attributes.iter().flat_map(|a| a.as_str().split(',')).any(|a| a.trim().eq_ignore_ascii_case(name))
    };
    let mut output = GetObjectAttributesOutput {
        last_modified: Some(timestamp(record.last_modified_ms)),
        version_id,
        ..Default::default()
    };
    if wants(ObjectAttributes::ETAG) {
        output.e_tag = Some(etag(&record.etag));
    }
    if wants(ObjectAttributes::OBJECT_SIZE) {
        output.object_size = Some(record.size as i64);
    }
    if wants(ObjectAttributes::STORAGE_CLASS) {
        output.storage_class = Some(StorageClass::from(StorageClass::STANDARD.to_string()));
    }
    if wants(ObjectAttributes::CHECKSUM) && !record.checksums.is_empty() {
        let sums = record.checksums.clone();
        output.checksum = Some(Checksum {
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_crc64nvme: sums.crc64nvme,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
            checksum_type: sums.checksum_type.map(ChecksumType::from),
        });
    }
    if wants(ObjectAttributes::OBJECT_PARTS) && record.multipart {
        let marker = input.part_number_marker.and_then(|m| u32::try_from(m).ok()).unwrap_or(0);
        let max = input.max_parts.map_or(ATTRIBUTE_PARTS_MAX, |m| (m.max(0) as usize).min(ATTRIBUTE_PARTS_MAX));
        let after: Vec<&PartData> = record.parts.iter().filter(|p| p.part_number > marker).collect();
        let page: Vec<&PartData> = after.iter().take(max).copied().collect();
        output.object_parts = Some(GetObjectAttributesParts {
            total_parts_count: Some(record.parts.len() as i32),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: page.last().map(|p| p.part_number as i32),
            max_parts: Some(max as i32),
            is_truncated: Some(after.len() > page.len()),
            parts: Some(
                page.into_iter()
                    .map(|p| ObjectPart {
                        part_number: Some(p.part_number as i32),
                        size: Some(p.size as i64),
                        checksum_crc32: p.checksums.crc32.clone(),
                        checksum_crc32c: p.checksums.crc32c.clone(),
                        checksum_crc64nvme: p.checksums.crc64nvme.clone(),
                        checksum_sha1: p.checksums.sha1.clone(),
                        checksum_sha256: p.checksums.sha256.clone(),
                    })
                    .collect(),
            ),
        });
    }
    Ok(S3Response::new(output))
}
