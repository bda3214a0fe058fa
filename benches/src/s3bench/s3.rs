//! The S3 side: one client for any endpoint (path-style, plain HTTP or whatever the URL says,
//! no TLS linked), the bucket, and one function per timed operation.
//!
//! Every operation returns the bytes it moved or an [`OpError`]; none of them panics on an
//! error response.

use super::errors::OpError;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration, Delete,
    ObjectIdentifier,
};
use bytes::Bytes;
use std::time::Duration;

const CONNECT_TIMEOUT_SECS: u64 = 10;
/// A loaded 2-core machine running a whole cluster can pause a stream for seconds; the SDK's
/// default (5 s) would turn that into errors that say nothing about the store.
const STALLED_STREAM_GRACE_SECS: u64 = 30;
/// DeleteObjects takes at most this many keys.
pub const DELETE_BATCH_KEYS_MAX: usize = 1000;
/// S3 allows at most this many parts in one upload.
pub const MULTIPART_PARTS_MAX: u64 = 10_000;

/// Whether the SDK computes request checksums and validates response checksums on every
/// operation that supports them (what current SDKs and the aws CLI do by default), or only
/// where the operation requires one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ChecksumPolicy {
    WhenSupported,
    WhenRequired,
}

impl ChecksumPolicy {
    pub fn label(self) -> &'static str {
        match self {
            Self::WhenSupported => "when-supported",
            Self::WhenRequired => "when-required",
        }
    }
}

pub struct S3Options {
    /// None: the SDK resolves AWS's own endpoint for the region.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub checksums: ChecksumPolicy,
    /// 1 = no retries, so every error response is counted instead of hidden.
    pub attempts_max: u32,
    pub operation_timeout: Duration,
}

pub fn client(options: &S3Options) -> Client {
    let (request, response) = match options.checksums {
        ChecksumPolicy::WhenSupported => {
            (RequestChecksumCalculation::WhenSupported, ResponseChecksumValidation::WhenSupported)
        }
        ChecksumPolicy::WhenRequired => {
            (RequestChecksumCalculation::WhenRequired, ResponseChecksumValidation::WhenRequired)
        }
    };
    let mut builder = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(options.region.clone()))
        .credentials_provider(Credentials::new(
            options.access_key_id.clone(),
            options.secret_access_key.clone(),
            options.session_token.clone(),
            None,
            "s3bench",
        ))
        .force_path_style(true)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(RetryConfig::standard().with_max_attempts(options.attempts_max))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(CONNECT_TIMEOUT_SECS))
                .operation_timeout(options.operation_timeout)
                .build(),
        )
        .stalled_stream_protection(
            StalledStreamProtectionConfig::enabled()
                .grace_period(Duration::from_secs(STALLED_STREAM_GRACE_SECS))
                .build(),
        )
        .request_checksum_calculation(request)
        .response_checksum_validation(response);
    if let Some(endpoint) = &options.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    Client::from_conf(builder.build())
}

/// Creates the bucket unless it exists and is ours. Returns whether it was created.
pub async fn ensure_bucket(client: &Client, bucket: &str, region: &str) -> Result<bool, OpError> {
    match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => return Ok(false),
        Err(error) => {
            let missing = error.raw_response().is_some_and(|response| response.status().as_u16() == 404);
            if !missing {
                return Err(OpError::from_sdk("HeadBucket", &error));
            }
        }
    }
    let mut create = client.create_bucket().bucket(bucket);
    // us-east-1 is the one region where a location constraint is an error.
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::from(region)).build(),
        );
    }
    match create.send().await {
        Ok(_) => Ok(true),
        Err(error) if error.code() == Some("BucketAlreadyOwnedByYou") => Ok(false),
        Err(error) => Err(OpError::from_sdk("CreateBucket", &error)),
    }
}

pub async fn put(client: &Client, bucket: &str, key: &str, payload: Bytes) -> Result<u64, OpError> {
    let bytes = payload.len() as u64;
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(payload))
        .send()
        .await
        .map_err(|e| OpError::from_sdk("PutObject", &e))?;
    Ok(bytes)
}

/// Reads the whole body and drops it; a body of another length than `expected_bytes` is an
/// error (`SizeMismatch`), and reading stops as soon as it is longer.
pub async fn get(client: &Client, bucket: &str, key: &str, expected_bytes: u64) -> Result<u64, OpError> {
    let output =
        client.get_object().bucket(bucket).key(key).send().await.map_err(|e| OpError::from_sdk("GetObject", &e))?;
    let mut body = output.body;
    let mut received = 0u64;
    // Bounded: the stream ends, fails, stalls (stalled-stream protection) or overruns.
    while let Some(chunk) =
        body.try_next().await.map_err(|e| OpError::new("transport:body", format!("GetObject body: {e}")))?
    {
        received += chunk.len() as u64;
        if received > expected_bytes {
            break;
        }
    }
    if received != expected_bytes {
        return Err(OpError::new(
            "SizeMismatch",
            format!("GetObject {key}: expected {expected_bytes} bytes, read {received}"),
        ));
    }
    Ok(received)
}

/// One ListObjectsV2 page; returns the number of keys in it.
pub async fn list_page(client: &Client, bucket: &str, prefix: &str, page_keys_max: i32) -> Result<u64, OpError> {
    let output = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .max_keys(page_keys_max)
        .send()
        .await
        .map_err(|e| OpError::from_sdk("ListObjectsV2", &e))?;
    Ok(output.contents().len() as u64)
}

/// CreateMultipartUpload, `size_bytes.div_ceil(part.len())` sequential UploadParts of `part`'s
/// bytes (the last one cut short), CompleteMultipartUpload. On failure the upload is aborted.
pub async fn multipart(
    client: &Client,
    bucket: &str,
    key: &str,
    size_bytes: u64,
    part: &Bytes,
) -> Result<u64, OpError> {
    let created = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| OpError::from_sdk("CreateMultipartUpload", &e))?;
    let Some(upload_id) = created.upload_id() else {
        return Err(OpError::new("MissingUploadId", "CreateMultipartUpload answered without an UploadId"));
    };
    let result = upload_parts_and_complete(client, bucket, key, upload_id, size_bytes, part).await;
    if result.is_err() {
        // Best effort: the error that matters is the one that stopped the upload.
        let _ = client.abort_multipart_upload().bucket(bucket).key(key).upload_id(upload_id).send().await;
    }
    result
}

async fn upload_parts_and_complete(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    size_bytes: u64,
    part: &Bytes,
) -> Result<u64, OpError> {
    let part_bytes = part.len().max(1) as u64;
    let parts = size_bytes.div_ceil(part_bytes).clamp(1, MULTIPART_PARTS_MAX);
    let mut completed = Vec::with_capacity(parts as usize);
    let mut sent = 0u64;
    for part_number in 1..=parts {
        let length = (size_bytes - sent).min(part_bytes) as usize;
        let output = client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number as i32)
            .body(ByteStream::from(part.slice(..length)))
            .send()
            .await
            .map_err(|e| OpError::from_sdk("UploadPart", &e))?;
        sent += length as u64;
        // Echo whatever checksums the part was stored with, as the SDKs' transfer managers
        // do: stores that track them need them in CompleteMultipartUpload.
        completed.push(
            CompletedPart::builder()
                .part_number(part_number as i32)
                .set_e_tag(output.e_tag().map(str::to_owned))
                .set_checksum_crc32(output.checksum_crc32().map(str::to_owned))
                .set_checksum_crc32_c(output.checksum_crc32_c().map(str::to_owned))
                .set_checksum_crc64_nvme(output.checksum_crc64_nvme().map(str::to_owned))
                .set_checksum_sha1(output.checksum_sha1().map(str::to_owned))
                .set_checksum_sha256(output.checksum_sha256().map(str::to_owned))
                .build(),
        );
    }
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .map_err(|e| OpError::from_sdk("CompleteMultipartUpload", &e))?;
    Ok(sent)
}

/// One DeleteObjects of `keys` (quiet): an error unless every key is deleted.
pub async fn delete_batch(client: &Client, bucket: &str, keys: &[String]) -> Result<u64, OpError> {
    let identifiers = keys
        .iter()
        .map(|key| ObjectIdentifier::builder().key(key).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| OpError::new("construction", e.to_string()))?;
    let delete = Delete::builder()
        .set_objects(Some(identifiers))
        .quiet(true)
        .build()
        .map_err(|e| OpError::new("construction", e.to_string()))?;
    let answer = client
        .delete_objects()
        .bucket(bucket)
        .delete(delete)
        .send()
        .await
        .map_err(|e| OpError::from_sdk("DeleteObjects", &e))?;
    match answer.errors().first() {
        None => Ok(0),
        Some(first) => Err(OpError::new(
            "DeleteObjectsKeyError",
            format!(
                "{} of {} keys refused, first: {:?} {:?}",
                answer.errors().len(),
                keys.len(),
                first.code(),
                first.message()
            ),
        )),
    }
}

/// One DeleteObject.
pub async fn delete(client: &Client, bucket: &str, key: &str) -> Result<u64, OpError> {
    client.delete_object().bucket(bucket).key(key).send().await.map_err(|e| OpError::from_sdk("DeleteObject", &e))?;
    Ok(0)
}

/// Deletes every object under `prefix`, a page at a time, at most `pages_max` pages.
/// Returns how many keys were deleted.
pub async fn delete_prefix(client: &Client, bucket: &str, prefix: &str, pages_max: u64) -> Result<u64, OpError> {
    let mut deleted = 0u64;
    for _ in 0..pages_max {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(DELETE_BATCH_KEYS_MAX as i32)
            .send()
            .await
            .map_err(|e| OpError::from_sdk("ListObjectsV2", &e))?;
        let keys: Vec<String> = page.contents().iter().filter_map(|object| object.key()).map(str::to_string).collect();
        if keys.is_empty() {
            break;
        }
        delete_batch(client, bucket, &keys).await?;
        deleted += keys.len() as u64;
    }
    Ok(deleted)
}
