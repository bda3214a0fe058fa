//! PutBucketVersioning, GetBucketVersioning, ListObjectVersions. Version ids on reads, writes and
//! deletes live with their operations (objects, multipart, tagging); the rules are in
//! `ignifuge_meta` (`StateMachine::install`).

use super::IgnifugeS3;
use super::list::{Encoder, max_keys};
use super::objects::parse_version_id;
use super::{etag, timestamp};
use crate::error::GatewayError;
use ignifuge_meta::{Command, VersionListRequest, VersioningStatus};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

pub async fn put_bucket_versioning(
    s3: &IgnifugeS3,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    let input = req.input;
    let configuration = input.versioning_configuration;
    match configuration.mfa_delete.as_ref().map(|m| m.as_str()) {
        None | Some(MFADelete::DISABLED) => {}
        Some(MFADelete::ENABLED) => {
            return Err(s3s::s3_error!(NotImplemented, "MFA delete is not supported by this store"));
        }
        Some(_) => return Err(GatewayError::MalformedXml.into()),
    }
    let status = match configuration.status.as_ref().map(|s| s.as_str()) {
        Some(BucketVersioningStatus::ENABLED) => VersioningStatus::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => VersioningStatus::Suspended,
        _ => return Err(GatewayError::MalformedXml.into()),
    };
    let command = Command::SetBucketVersioning { bucket: bucket.reference(), status };
    s3.gateway.metadata.apply(command).await.map_err(GatewayError::Meta)?;
    Ok(S3Response::new(PutBucketVersioningOutput {}))
}

pub async fn get_bucket_versioning(
    _s3: &IgnifugeS3,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    // Never set: an empty <VersioningConfiguration/>, as AWS answers.
    let status = bucket.versioning.map(|status| {
        BucketVersioningStatus::from_static(match status {
            VersioningStatus::Enabled => BucketVersioningStatus::ENABLED,
            VersioningStatus::Suspended => BucketVersioningStatus::SUSPENDED,
        })
    });
    Ok(S3Response::new(GetBucketVersioningOutput { status, mfa_delete: None }))
}

pub async fn list_object_versions(
    s3: &IgnifugeS3,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    let mut input = req.input;
    // AWS: an empty delimiter is no delimiter, and is not echoed.
    input.delimiter = input.delimiter.filter(|d| !d.is_empty());
    let encoder = Encoder::new(input.encoding_type.as_ref())?;
    let max = max_keys(input.max_keys)?;
    let key_marker = input.key_marker.clone().filter(|m| !m.is_empty());
    let version_id_marker = input.version_id_marker.as_deref().filter(|m| !m.is_empty());
    if version_id_marker.is_some() && key_marker.is_none() {
        return Err(s3s::s3_error!(InvalidArgument, "A version-id marker cannot be specified without a key marker."));
    }
    let request = VersionListRequest {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        key_marker,
        version_id_marker: parse_version_id(version_id_marker)?,
        max_keys: max,
    };
    let page = s3.in_bucket(&bucket, s3.gateway.metadata.list_versions(bucket.reference(), request).await)?;
    let owner = Owner { display_name: Some(bucket.tenant.0.clone()), id: Some(bucket.tenant.0.clone()) };
    let mut versions = Vec::new();
    let mut delete_markers = Vec::new();
    for entry in page.versions {
        let object = entry.object;
        let key = Some(encoder.apply(object.key.0));
        let last_modified = Some(timestamp(object.last_modified_ms));
        let (is_latest, version_id, owner) = (Some(entry.is_latest), Some(entry.version.0), Some(owner.clone()));
        if entry.delete_marker {
            delete_markers.push(DeleteMarkerEntry { is_latest, key, last_modified, owner, version_id });
        } else {
            versions.push(ObjectVersion {
                e_tag: Some(etag(&object.etag)),
                is_latest,
                key,
                last_modified,
                owner,
                size: Some(object.size as i64),
                storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
                version_id,
                ..Default::default()
            });
        }
    }
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(bucket.name.0),
        prefix: Some(encoder.apply(input.prefix.unwrap_or_default())),
        delimiter: encoder.opt(input.delimiter),
        key_marker: Some(encoder.apply(input.key_marker.unwrap_or_default())),
        version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
        max_keys: Some(max as i32),
        is_truncated: Some(page.is_truncated),
        next_key_marker: encoder.opt(page.next_key_marker),
        next_version_id_marker: page.next_version_id_marker.map(|v| v.0),
        common_prefixes: Some(
            page.common_prefixes.into_iter().map(|p| CommonPrefix { prefix: Some(encoder.apply(p)) }).collect(),
        ),
        versions: Some(versions),
        delete_markers: Some(delete_markers),
        encoding_type: input.encoding_type,
        request_charged: None,
    }))
}
