//! CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload, ListParts.

use super::objects::{CopyConditions, body_stream, expected_checksums, stored_content_encoding, trailers};
use super::{IgnifugeS3, PUT_OBJECT_MAX_BYTES, check_key, etag, object_headers, timestamp};
use crate::checksums::{Algorithm, base64};
use crate::datapath::WriteRequest;
use crate::error::{GatewayError, GatewayResult};
use base64::Engine as _;
use ignifuge_meta::{
    BucketRecord, Checksums, Command, CompletedPart as MetaCompletedPart, DataLocation, MULTIPART_MAX_PARTS, MetaError,
    ObjectHeaders, ObjectRecord, PartData, StartTicket, UploadListRequest, UploadRecord,
};
use ignifuge_types::time::now_ms;
use ignifuge_types::{BucketName, ObjectKey, UploadId, VersionId};
use md5::Digest as _;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

impl IgnifugeS3 {
    async fn upload(&self, bucket: &BucketName, upload_id: &str, key: &str) -> S3Result<UploadRecord> {
        let upload =
            self.gateway.metadata.upload(bucket.clone(), UploadId::new(upload_id)).await.map_err(GatewayError::Meta)?;
        if upload.key.0 != key {
            return Err(GatewayError::Meta(MetaError::NoSuchUpload).into());
        }
        Ok(upload)
    }

    /// `upload`, for an UploadPart that begins now: with its `StartTicket`, which orders it
    /// against other uploads of its part number whatever the gateways' clocks.
    async fn upload_for_part(
        &self,
        bucket: &BucketName,
        upload_id: &str,
        key: &str,
    ) -> S3Result<(UploadRecord, StartTicket)> {
        let (upload, began) = self
            .gateway
            .metadata
            .upload_for_part(bucket.clone(), UploadId::new(upload_id))
            .await
            .map_err(GatewayError::Meta)?;
        if upload.key.0 != key {
            return Err(GatewayError::Meta(MetaError::NoSuchUpload).into());
        }
        Ok((upload, began))
    }

    async fn parts(&self, bucket: &BucketName, upload_id: &str) -> S3Result<Vec<PartData>> {
        Ok(self
            .gateway
            .metadata
            .list_parts(bucket.clone(), UploadId::new(upload_id))
            .await
            .map_err(GatewayError::Meta)?)
    }
}

pub async fn create_multipart_upload(
    s3: &IgnifugeS3,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let authorized = IgnifugeS3::authorized(&req)?;
    let view = authorized.view()?.clone();
    let bucket = view.record.clone();
    let requester = authorized.requester.clone();
    let input = req.input;
    check_key(&input.key)?;
    super::objects::refuse_unsupported_write_headers(&req.headers)?;
    let acl = super::acl::object_acl(
        &view,
        &requester,
        super::acl::AclRequest::headers(
            input.acl.map(|a| a.as_str().to_string()),
            input.grant_full_control,
            input.grant_read,
            input.grant_read_acp,
            None,
            input.grant_write_acp,
        ),
    )?;
    let headers: ObjectHeaders = object_headers(
        input.content_type,
        stored_content_encoding(input.content_encoding),
        input.content_disposition,
        input.content_language,
        input.cache_control,
        input.expires,
        input.metadata,
        input.website_redirect_location,
    )?;
    let algorithm = input.checksum_algorithm.as_ref().map(|a| Algorithm::parse(a.as_str())).transpose()?;
    let checksum_type = match (&input.checksum_type, algorithm) {
        (Some(_), None) => {
            return Err(s3s::s3_error!(
                InvalidRequest,
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
            ));
        }
        (Some(t), Some(_)) => match t.as_str() {
            ChecksumType::COMPOSITE | ChecksumType::FULL_OBJECT => Some(t.as_str().to_string()),
            other => {
                return Err(s3s::s3_error!(
                    InvalidRequest,
                    "Value for x-amz-checksum-type header is invalid: {other} (COMPOSITE or FULL_OBJECT)"
                ));
            }
        },
        (None, Some(Algorithm::Crc64Nvme)) => Some(ChecksumType::FULL_OBJECT.to_string()),
        (None, Some(_)) => Some(ChecksumType::COMPOSITE.to_string()),
        (None, None) => None,
    };
    match (checksum_type.as_deref(), algorithm) {
        (Some(ChecksumType::FULL_OBJECT), Some(a @ (Algorithm::Sha1 | Algorithm::Sha256))) => {
            return Err(s3s::s3_error!(
                InvalidRequest,
                "The FULL_OBJECT checksum type cannot be used with the {} checksum algorithm.",
                a.name().to_lowercase()
            ));
        }
        (Some(ChecksumType::COMPOSITE), Some(Algorithm::Crc64Nvme)) => {
            return Err(s3s::s3_error!(
                InvalidRequest,
                "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm."
            ));
        }
        _ => {}
    }
    let initiated_ms = now_ms();
    let upload_id = ignifuge_meta::new_upload_id(initiated_ms);
    let record = UploadRecord {
        upload_id: upload_id.clone(),
        bucket: bucket.name.clone(),
        key: ObjectKey::new(input.key.clone()),
        initiated_ms,
        headers,
        checksum_algorithm: algorithm.map(|a| a.name().to_string()),
        checksum_type: checksum_type.clone(),
        tags: super::tagging::parse_header(input.tagging.as_deref())?,
        acl,
    };
    let command = Command::CreateUpload { bucket: bucket.reference(), upload: record };
    s3.gateway.metadata.apply(command).await.map_err(GatewayError::Meta)?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(bucket.name.0),
        key: Some(input.key),
        upload_id: Some(upload_id.0),
        checksum_algorithm: input.checksum_algorithm,
        checksum_type: checksum_type.map(ChecksumType::from),
        ..Default::default()
    }))
}

pub async fn upload_part(s3: &IgnifugeS3, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
    let started_ms = now_ms();
    let bucket = IgnifugeS3::bucket(&req)?;
    let input = req.input;
    let part_number = part_number(input.part_number)?;
    let (upload, began) = s3.upload_for_part(&bucket.name, &input.upload_id, &input.key).await?;
    let mut expected = expected_checksums(
        &req.headers,
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
    if let Some(declared) = upload_algorithm(&upload)? {
        let composite = upload.checksum_type.as_deref() == Some(ChecksumType::COMPOSITE);
        part_checksum_agrees(declared, composite, &req.headers, &expected, input.checksum_algorithm.as_ref())?;
        // Every part carries the upload's algorithm, sent or not, so the completion can combine it.
        expected.computed.push(declared);
    }
    let request = WriteRequest {
        expected,
        declared_length: input.content_length.map(|l| l.max(0) as u64),
        max_length: PUT_OBJECT_MAX_BYTES,
        packable: false,
    };
    let written = s3.gateway.data.write_blob(body_stream(input.body), request, trailers(req.trailing_headers)).await?;
    let _intent = written.intent.clone(); // until the commit has answered
    let now = now_ms();
    let part = part_of(part_number, written, started_ms, began, now);
    let output = UploadPartOutput {
        e_tag: Some(etag(&part.etag)),
        checksum_crc32: part.checksums.crc32.clone(),
        checksum_crc32c: part.checksums.crc32c.clone(),
        checksum_sha1: part.checksums.sha1.clone(),
        checksum_sha256: part.checksums.sha256.clone(),
        checksum_crc64nvme: part.checksums.crc64nvme.clone(),
        ..Default::default()
    };
    let location = part.location.clone();
    let command = Command::PutUploadPart {
        bucket: bucket.reference(),
        upload_id: UploadId::new(input.upload_id),
        part,
        leader_ms: None,
    };
    s3.commit(command, &[&location]).await?;
    Ok(S3Response::new(output))
}

/// Parses `x-amz-copy-source-range: bytes=first-last` against the source's size.
fn copy_source_range(value: Option<&str>, size: u64) -> GatewayResult<std::ops::Range<u64>> {
    let Some(value) = value else { return Ok(0..size) };
    let invalid = || {
        GatewayError::InvalidArgument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy".into(),
        )
    };
    let (first, last) = value.strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(invalid)?;
    let first: u64 = first.trim().parse().map_err(|_| invalid())?;
    let last: u64 = last.trim().parse().map_err(|_| invalid())?;
    if first > last {
        return Err(invalid());
    }
    if last >= size {
        // What AWS answers (400, not GetObject's 416).
        return Err(GatewayError::InvalidArgument(format!(
            "Range specified is not valid for source object of size: {size}"
        )));
    }
    Ok(first..last + 1)
}

pub async fn upload_part_copy(
    s3: &IgnifugeS3,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let started_ms = now_ms();
    let bucket = IgnifugeS3::bucket(&req)?;
    let authorized = IgnifugeS3::authorized(&req)?.clone();
    let input = req.input;
    let part_number = part_number(input.part_number)?;
    let (upload, began) = s3.upload_for_part(&bucket.name, &input.upload_id, &input.key).await?;
    let conditions = CopyConditions {
        if_match: input.copy_source_if_match.as_ref(),
        if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
        if_none_match: input.copy_source_if_none_match.as_ref(),
        if_modified_since: input.copy_source_if_modified_since.as_ref(),
        expected_owners: super::access::expected_owners(super::objects::SOURCE_EXPECTED_OWNER, &req.headers, &req.uri),
    };
    let (_, _, source) = s3.copy_source(&authorized, &input.copy_source, conditions).await?;
    let copy_source_version_id = source.version_id();
    let (source_owner, source) = (source.owner, source.record);
    let range = copy_source_range(input.copy_source_range.as_deref(), source.size)?;
    let mut computed = vec![Algorithm::Crc64Nvme];
    if let Some(a) = &upload.checksum_algorithm {
        computed.push(Algorithm::parse(a)?);
    }
    let length = range.end - range.start;
    let body = s3.gateway.data.read_range(source.parts.clone(), range, s3.gateway.metadata.clone(), source_owner);
    let request = WriteRequest {
        expected: crate::checksums::Expected { computed, ..Default::default() },
        declared_length: Some(length),
        max_length: PUT_OBJECT_MAX_BYTES,
        packable: false,
    };
    let written = s3.gateway.data.write_blob(body, request, Vec::new).await?;
    let _intent = written.intent.clone(); // until the commit has answered
    let now = now_ms();
    let part = part_of(part_number, written, started_ms, began, now);
    let result = CopyPartResult {
        e_tag: Some(etag(&part.etag)),
        last_modified: Some(timestamp(now)),
        checksum_crc32: part.checksums.crc32.clone(),
        checksum_crc32c: part.checksums.crc32c.clone(),
        checksum_crc64nvme: part.checksums.crc64nvme.clone(),
        checksum_sha1: part.checksums.sha1.clone(),
        checksum_sha256: part.checksums.sha256.clone(),
    };
    let location = part.location.clone();
    let command = Command::PutUploadPart {
        bucket: bucket.reference(),
        upload_id: UploadId::new(input.upload_id),
        part,
        leader_ms: None,
    };
    s3.commit(command, &[&location]).await?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(result),
        copy_source_version_id,
        ..Default::default()
    }))
}

/// A part number as AWS accepts it: 1 to 10,000.
fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MULTIPART_MAX_PARTS).contains(n))
        .ok_or_else(|| s3s::s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"))
}

/// A freshly written part's record.
fn part_of(
    part_number: u32,
    written: crate::datapath::WrittenBlob,
    started_ms: i64,
    began: StartTicket,
    now: i64,
) -> PartData {
    PartData {
        started_ms,
        began: Some(began),
        part_number,
        size: written.size,
        etag: hex::encode(written.digests.md5),
        checksums: written.digests.checksums,
        location: written.location,
        last_modified_ms: now,
    }
}

/// The checksum algorithm an upload was created with, if any.
fn upload_algorithm(upload: &UploadRecord) -> GatewayResult<Option<Algorithm>> {
    upload.checksum_algorithm.as_deref().map(Algorithm::parse).transpose()
}

/// AWS: a part of an upload created with a checksum algorithm may only carry that algorithm's
/// checksum, and a part of a COMPOSITE upload must carry it (400 InvalidRequest "Checksum Type
/// mismatch occurred, ..." otherwise; a FULL_OBJECT upload computes a missing one).
fn part_checksum_agrees(
    declared: Algorithm,
    composite: bool,
    headers: &http::HeaderMap,
    expected: &crate::checksums::Expected,
    sdk_algorithm: Option<&ChecksumAlgorithm>,
) -> GatewayResult<()> {
    // What the request itself names: checksum headers, trailers, x-amz-sdk-checksum-algorithm
    // (not `expected.computed`, which also holds the store's own CRC64NVME).
    let trailers = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let sent = expected
        .checksums
        .iter()
        .map(|(a, _)| *a)
        .chain(trailers.split(',').filter_map(|name| Algorithm::from_header(name.trim())))
        .chain(sdk_algorithm.and_then(|a| Algorithm::parse(a.as_str()).ok()));
    let mismatch = |actual: &str| {
        GatewayError::InvalidRequest(format!(
            "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {actual}",
            declared.name().to_lowercase()
        ))
    };
    let mut named = false;
    for algorithm in sent {
        if algorithm != declared {
            return Err(mismatch(&algorithm.name().to_lowercase()));
        }
        named = true;
    }
    if composite && !named {
        return Err(mismatch("null"));
    }
    Ok(())
}

/// S3's five checksum fields (CRC32, CRC32C, CRC64NVME, SHA1, SHA256, in that order, as every
/// s3s input names them), each with its algorithm.
fn by_algorithm(fields: [&Option<String>; 5]) -> [(Algorithm, &Option<String>); 5] {
    let [crc32, crc32c, crc64nvme, sha1, sha256] = fields;
    [
        (Algorithm::Crc32, crc32),
        (Algorithm::Crc32c, crc32c),
        (Algorithm::Crc64Nvme, crc64nvme),
        (Algorithm::Sha1, sha1),
        (Algorithm::Sha256, sha256),
    ]
}

/// AWS's rules for the part checksums a CompleteMultipartUpload lists: a listed checksum must be
/// the part's (400 InvalidPart otherwise), and an upload created with a COMPOSITE checksum must
/// list its algorithm's checksum for every part (400 InvalidRequest).
fn check_listed_checksums(upload: &UploadRecord, listed: &[CompletedPart], parts: &[&PartData]) -> GatewayResult<()> {
    let declared = upload_algorithm(upload)?;
    let composite = upload.checksum_type.as_deref() == Some(ChecksumType::COMPOSITE);
    for (asked, part) in listed.iter().zip(parts) {
        let given = by_algorithm([
            &asked.checksum_crc32,
            &asked.checksum_crc32c,
            &asked.checksum_crc64nvme,
            &asked.checksum_sha1,
            &asked.checksum_sha256,
        ]);
        for (algorithm, value) in &given {
            let Some(value) = value else { continue };
            match algorithm.get(&part.checksums) {
                Some(stored) if stored == value => {}
                Some(_) => {
                    return Err(GatewayError::Meta(MetaError::InvalidPart(format!(
                        "the {} checksum listed for part {} is not the part's",
                        algorithm.name(),
                        part.part_number
                    ))));
                }
                None if declared.is_some_and(|d| d != *algorithm) => {
                    return Err(GatewayError::InvalidRequest(format!(
                        "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                        declared.map_or("", Algorithm::name).to_lowercase(),
                        algorithm.name().to_lowercase()
                    )));
                }
                None => {}
            }
        }
        if let Some(declared) = declared.filter(|_| composite)
            && !given.iter().any(|(a, v)| *a == declared && v.is_some())
        {
            return Err(GatewayError::InvalidRequest(format!(
                "The upload was created using a {} checksum. The complete request must include the checksum for each \
                 part. It was missing for part {} in the request.",
                declared.name().to_lowercase(),
                part.part_number
            )));
        }
    }
    Ok(())
}

/// Largest object, as on AWS: 10,000 parts of up to 5 GiB could make almost ten times as much.
pub const OBJECT_MAX_BYTES: u64 = 5 * 1024 * 1024 * 1024 * 1024;

/// The size of the object the parts make, refused above `OBJECT_MAX_BYTES` (EntityTooLarge, the
/// upload stays). The commit takes the parts with the ETags listed, so the same sizes.
fn object_size(parts: &[&PartData]) -> GatewayResult<u64> {
    let total: u64 = parts.iter().map(|p| p.size).sum();
    if total > OBJECT_MAX_BYTES {
        return Err(GatewayError::EntityTooLarge);
    }
    Ok(total)
}

/// AWS's multipart ETag: hex MD5 of the concatenated binary part MD5s, then "-N".
fn multipart_etag(parts: &[&PartData]) -> GatewayResult<String> {
    let mut md5 = md5::Md5::new();
    for part in parts {
        let digest =
            hex::decode(&part.etag).map_err(|_| GatewayError::Internal("stored part ETag is not hex".into()))?;
        md5.update(&digest);
    }
    Ok(format!("{}-{}", hex::encode(md5.finalize()), parts.len()))
}

fn decode(value: &str) -> GatewayResult<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|_| GatewayError::Internal("stored checksum is not base64".into()))
}

/// The object checksum of a completed upload: a CRC of the whole object combined from the part
/// CRCs (FULL_OBJECT), or a checksum of the part checksums plus "-N" (COMPOSITE).
fn multipart_checksums(algorithm: Algorithm, checksum_type: &str, parts: &[&PartData]) -> GatewayResult<Checksums> {
    let mut out = Checksums { checksum_type: Some(checksum_type.to_string()), ..Default::default() };
    let values: Vec<Vec<u8>> = parts
        .iter()
        .map(|p| {
            algorithm
                .get(&p.checksums)
                .ok_or_else(|| {
                    GatewayError::InvalidRequest(format!("part {} has no {} checksum", p.part_number, algorithm.name()))
                })
                .and_then(|v| decode(v))
        })
        .collect::<GatewayResult<_>>()?;
    if checksum_type == ChecksumType::FULL_OBJECT {
        use crc_fast::CrcAlgorithm as C;
        let crc = match algorithm {
            Algorithm::Crc32 => C::Crc32IsoHdlc,
            Algorithm::Crc32c => C::Crc32Iscsi,
            Algorithm::Crc64Nvme => C::Crc64Nvme,
            _ => {
                return Err(GatewayError::InvalidRequest("FULL_OBJECT needs a CRC algorithm".into()));
            }
        };
        let mut combined: Option<u64> = None;
        for (value, part) in values.iter().zip(parts) {
            let mut be = [0u8; 8];
            be[8 - value.len()..].copy_from_slice(value);
            let crc_value = u64::from_be_bytes(be);
            combined = Some(match combined {
                None => crc_value,
                Some(acc) => crc_fast::checksum_combine(crc, acc, crc_value, part.size),
            });
        }
        let bytes = combined.unwrap_or(0).to_be_bytes();
        let width = values.first().map_or(8, |v| v.len());
        algorithm.set(&mut out, base64(&bytes[8 - width..]));
    } else {
        let mut hasher = crate::checksums::BodyHasher::new(&[algorithm]);
        for v in &values {
            hasher.update(v);
        }
        let digest = hasher.finalize();
        let value = algorithm.get(&digest.checksums).cloned().unwrap_or_default();
        algorithm.set(&mut out, format!("{value}-{}", parts.len()));
    }
    Ok(out)
}

pub async fn complete_multipart_upload(
    s3: &IgnifugeS3,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    let input = req.input;
    let requested = input
        .multipart_upload
        .and_then(|m| m.parts)
        .ok_or_else(|| s3s::s3_error!(MalformedXML, "the CompleteMultipartUpload body lists no parts"))?;
    // Refused before anything is proposed: a list longer than AWS allows, or out of order
    // (duplicates included), would otherwise cost a metadata round to be refused there.
    if requested.len() > MULTIPART_MAX_PARTS as usize {
        return Err(s3s::s3_error!(
            InvalidPart,
            "A multipart upload has at most {} parts; this list names {}",
            MULTIPART_MAX_PARTS,
            requested.len()
        ));
    }
    let mut chosen = Vec::with_capacity(requested.len());
    for part in &requested {
        let number = part
            .part_number
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| s3s::s3_error!(InvalidPart, "a part has no valid part number"))?;
        let tag = part.e_tag.as_ref().map(|e| e.value().to_string()).unwrap_or_default();
        chosen.push(MetaCompletedPart { part_number: number, etag: tag });
    }
    if chosen.windows(2).any(|w| w[0].part_number >= w[1].part_number) {
        return Err(GatewayError::Meta(MetaError::InvalidPartOrder).into());
    }
    // Completed already, and this is a retry (the first answer was lost: every SDK retries after
    // a timeout): AWS answers 200 with the same ETag and version again. The first completion may
    // commit while this one is being checked (its proposal still in flight when the retry came),
    // so each check below that finds the upload gone, or the key written, asks again.
    let repeated = async |refused: s3s::S3Error| -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let done = s3
            .gateway
            .metadata
            .completed_upload(bucket.name.clone(), UploadId::new(&input.upload_id))
            .await
            .map_err(GatewayError::Meta)?;
        let key = ObjectKey::new(input.key.clone());
        match done.filter(|done| done.is_repeated_by(&key, &chosen)) {
            Some(done) => Ok(S3Response::new(completed_output(&bucket, &done.object))),
            None => Err(refused),
        }
    };
    let completed_meanwhile =
        |e: &s3s::S3Error| matches!(e.code(), s3s::S3ErrorCode::NoSuchUpload | s3s::S3ErrorCode::PreconditionFailed);
    let upload = match s3.upload(&bucket.name, &input.upload_id, &input.key).await {
        Ok(upload) => upload,
        Err(missing) if missing.code() == &s3s::S3ErrorCode::NoSuchUpload => return repeated(missing).await,
        Err(e) => return Err(e),
    };
    let condition = super::objects::write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    if let Err(refused) = s3.precheck(&bucket, &upload.key, &condition).await {
        let refused: s3s::S3Error = refused.into();
        return if completed_meanwhile(&refused) { repeated(refused).await } else { Err(refused) };
    }
    // Tests stall a completion here, found and checked, while another one commits.
    if let Some(ignifuge_faults::Action::Sleep(ms)) = ignifuge_faults::hit("gateway.complete.before-parts") {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    // The parts named, as the completion will validate them (again, atomically, when it commits):
    // the ETag and checksums are computed from them. A part number uploaded more than once is
    // the upload with the listed ETag, whichever committed last.
    let selected = match s3
        .gateway
        .metadata
        .chosen_parts(bucket.name.clone(), UploadId::new(&input.upload_id), chosen.clone())
        .await
    {
        Ok(selected) => selected,
        Err(e) => {
            let refused: s3s::S3Error = GatewayError::Meta(e).into();
            return if completed_meanwhile(&refused) { repeated(refused).await } else { Err(refused) };
        }
    };
    let selected: Vec<&PartData> = selected.iter().collect();
    check_listed_checksums(&upload, &requested, &selected)?;
    let etag_value = multipart_etag(&selected)?;
    let checksums = match (&upload.checksum_algorithm, &upload.checksum_type) {
        (Some(a), Some(t)) => multipart_checksums(Algorithm::parse(a)?, t, &selected)?,
        _ => multipart_checksums(Algorithm::Crc64Nvme, ChecksumType::FULL_OBJECT, &selected)?,
    };
    // What the client says the whole object is (boto3 sends these with a full-object checksum):
    // a disagreement refuses the completion, and the upload stays, as on AWS.
    let total = object_size(&selected)?;
    if let Some(size) = input.mpu_object_size
        && u64::try_from(size).ok() != Some(total)
    {
        return Err(s3s::s3_error!(
            InvalidRequest,
            "The provided 'x-amz-mp-object-size' header value {size} does not match what was computed: {total}"
        ));
    }
    let stated = by_algorithm([
        &input.checksum_crc32,
        &input.checksum_crc32c,
        &input.checksum_crc64nvme,
        &input.checksum_sha1,
        &input.checksum_sha256,
    ]);
    for (algorithm, given) in stated {
        if let (Some(given), Some(computed)) = (given, algorithm.get(&checksums))
            && given != computed
        {
            return Err(s3s::s3_error!(
                BadDigest,
                "The {} you specified did not match the calculated checksum.",
                algorithm.header()
            ));
        }
    }
    let now = now_ms();
    let record = ObjectRecord {
        key: upload.key.clone(),
        version: VersionId::new(ignifuge_types::random_id()),
        size: 0,
        etag: etag_value.clone(),
        last_modified_ms: now,
        headers: upload.headers.clone(),
        checksums: checksums.clone(),
        parts: Vec::new(),
        multipart: true,
        tags: Vec::new(), // the metadata applies the upload's tags
        delete_marker: false,
        versioned: false,
        sequence: 0,
        promoted: false,
        acl: None,
    };
    let command = Command::CompleteUpload {
        bucket: bucket.reference(),
        upload_id: UploadId::new(input.upload_id),
        parts: chosen,
        record,
        condition,
        leader_ms: None,
    };
    let record = s3.gateway.metadata.apply_object(command).await.map_err(super::objects::conflict_after_precheck)?;
    Ok(S3Response::new(completed_output(&bucket, &record)))
}

/// The answer to a completion, from the version it made (the first time or on a retry).
fn completed_output(bucket: &BucketRecord, record: &ObjectRecord) -> CompleteMultipartUploadOutput {
    let checksums = &record.checksums;
    CompleteMultipartUploadOutput {
        version_id: super::objects::version_header(record, bucket.versioning.is_some()),
        bucket: Some(bucket.name.0.clone()),
        key: Some(record.key.0.clone()),
        e_tag: Some(etag(&record.etag)),
        location: Some(format!("/{}/{}", bucket.name.0, record.key.0)),
        checksum_crc32: checksums.crc32.clone(),
        checksum_crc32c: checksums.crc32c.clone(),
        checksum_crc64nvme: checksums.crc64nvme.clone(),
        checksum_sha1: checksums.sha1.clone(),
        checksum_sha256: checksums.sha256.clone(),
        checksum_type: checksums.checksum_type.clone().map(ChecksumType::from),
        ..Default::default()
    }
}

pub async fn abort_multipart_upload(
    s3: &IgnifugeS3,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    let input = req.input;
    s3.upload(&bucket.name, &input.upload_id, &input.key).await?;
    let parts = s3.parts(&bucket.name, &input.upload_id).await?;
    let command = Command::AbortUpload {
        bucket: bucket.reference(),
        upload_id: UploadId::new(input.upload_id),
        now_ms: now_ms(),
    };
    s3.gateway.metadata.apply(command).await.map_err(GatewayError::Meta)?;
    // The parts are garbage now; reclaim their shards right away rather than wait for the collector.
    for part in parts {
        if let DataLocation::Striped(blob) = part.location {
            s3.gateway.data.discard(blob.blob);
        }
    }
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

/// Most uploads returned by one ListMultipartUploads page, as on AWS.
const LIST_UPLOADS_MAX: usize = 1000;

pub async fn list_multipart_uploads(
    s3: &IgnifugeS3,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    let mut input = req.input;
    // AWS: an empty delimiter is no delimiter, and is not echoed.
    input.delimiter = input.delimiter.filter(|d| !d.is_empty());
    let max = input.max_uploads.map_or(LIST_UPLOADS_MAX, |m| (m.max(0) as usize).min(LIST_UPLOADS_MAX));
    // The metadata orders by key then initiation and pages (`ignifuge_meta::UploadListRequest`).
    let request = UploadListRequest {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        key_marker: input.key_marker.clone().filter(|m| !m.is_empty()),
        upload_id_marker: input.upload_id_marker.clone().filter(|m| !m.is_empty()).map(UploadId::new),
        max_uploads: max,
    };
    let page = s3.in_bucket(&bucket, s3.gateway.metadata.list_uploads(bucket.reference(), request).await)?;
    let owner = Owner { display_name: Some(bucket.tenant.0.clone()), id: Some(bucket.tenant.0.clone()) };
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(bucket.name.0),
        prefix: input.prefix,
        delimiter: input.delimiter,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        max_uploads: Some(max as i32),
        is_truncated: Some(page.is_truncated),
        next_key_marker: page.next_key_marker,
        next_upload_id_marker: page.next_upload_id_marker.map(|id| id.0),
        common_prefixes: Some(page.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(p) }).collect()),
        uploads: Some(
            page.uploads
                .into_iter()
                .map(|u| MultipartUpload {
                    key: Some(u.key.0),
                    upload_id: Some(u.upload_id.0),
                    initiated: Some(timestamp(u.initiated_ms)),
                    initiator: Some(Initiator { display_name: owner.display_name.clone(), id: owner.id.clone() }),
                    owner: Some(owner.clone()),
                    storage_class: Some(StorageClass::from(StorageClass::STANDARD.to_string())),
                    checksum_algorithm: u.checksum_algorithm.map(ChecksumAlgorithm::from),
                    checksum_type: u.checksum_type.map(ChecksumType::from),
                })
                .collect(),
        ),
        encoding_type: None,
        request_charged: None,
    }))
}

/// Most parts returned by one ListParts page, as on AWS.
const LIST_PARTS_MAX: usize = 1000;

pub async fn list_parts(s3: &IgnifugeS3, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    let input = req.input;
    let upload = s3.upload(&bucket.name, &input.upload_id, &input.key).await?;
    let marker = input.part_number_marker.and_then(|m| u32::try_from(m).ok()).unwrap_or(0);
    let max = input.max_parts.map_or(LIST_PARTS_MAX, |m| (m.max(0) as usize).min(LIST_PARTS_MAX));
    let all: Vec<PartData> =
        s3.parts(&bucket.name, &input.upload_id).await?.into_iter().filter(|p| p.part_number > marker).collect();
    let truncated = all.len() > max;
    let page: Vec<PartData> = all.into_iter().take(max).collect();
    let next = page.last().map(|p| p.part_number as i32);
    let owner = Owner { display_name: Some(bucket.tenant.0.clone()), id: Some(bucket.tenant.0.clone()) };
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(bucket.name.0),
        key: Some(upload.key.0),
        upload_id: Some(input.upload_id),
        max_parts: Some(max as i32),
        is_truncated: Some(truncated),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: next,
        checksum_algorithm: upload.checksum_algorithm.map(ChecksumAlgorithm::from),
        checksum_type: upload.checksum_type.map(ChecksumType::from),
        owner: Some(owner.clone()),
        initiator: Some(Initiator { display_name: owner.display_name, id: owner.id }),
        parts: Some(
            page.into_iter()
                .map(|p| Part {
                    part_number: Some(p.part_number as i32),
                    size: Some(p.size as i64),
                    e_tag: Some(etag(&p.etag)),
                    last_modified: Some(timestamp(p.last_modified_ms)),
                    checksum_crc32: p.checksums.crc32,
                    checksum_crc32c: p.checksums.crc32c,
                    checksum_crc64nvme: p.checksums.crc64nvme,
                    checksum_sha1: p.checksums.sha1,
                    checksum_sha256: p.checksums.sha256,
                })
                .collect(),
        ),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::{OBJECT_MAX_BYTES, copy_source_range, object_size};
    use crate::error::GatewayError;
    use ignifuge_meta::{Checksums, DataLocation, PartData};

    #[test]
    fn a_completion_makes_at_most_five_tebibytes() {
        let part = |part_number: u32, size: u64| PartData {
            part_number,
            size,
            etag: "00".repeat(16),
            checksums: Checksums::default(),
            location: DataLocation::Inline(Vec::new()),
            last_modified_ms: 0,
            started_ms: 0,
            began: None,
        };
        let five_gib = 5 * 1024 * 1024 * 1024;
        let mut parts: Vec<PartData> = (1..=1024).map(|n| part(n, five_gib)).collect();
        assert_eq!(object_size(&parts.iter().collect::<Vec<_>>()).unwrap(), OBJECT_MAX_BYTES);
        parts.push(part(1025, 1));
        assert!(matches!(object_size(&parts.iter().collect::<Vec<_>>()), Err(GatewayError::EntityTooLarge)));
    }

    #[test]
    fn copy_source_ranges_follow_aws() {
        assert_eq!(copy_source_range(None, 10).unwrap(), 0..10);
        assert_eq!(copy_source_range(Some("bytes=2-5"), 10).unwrap(), 2..6);
        assert!(matches!(copy_source_range(Some("bytes=5-2"), 10), Err(GatewayError::InvalidArgument(_))));
        assert!(matches!(copy_source_range(Some("2-5"), 10), Err(GatewayError::InvalidArgument(_))));
        assert!(matches!(
            copy_source_range(Some("bytes=2-10"), 10),
            Err(GatewayError::InvalidArgument(m)) if m == "Range specified is not valid for source object of size: 10"
        ));
    }
}
