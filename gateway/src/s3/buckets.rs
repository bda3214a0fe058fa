//! ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation.

use super::acl::{AclRequest, new_bucket_access};
use super::{IgnifugeS3, timestamp};
use crate::error::GatewayError;
use ignifuge_meta::{BucketRecord, Command, MetaError};
use ignifuge_types::BucketName;
use ignifuge_types::time::now_ms;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

pub async fn list_buckets(
    s3: &IgnifugeS3,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let principal = s3.principal(&req).await?;
    let buckets = s3.gateway.metadata.list_buckets(principal.tenant.clone()).await.map_err(GatewayError::Meta)?;
    let prefix = req.input.prefix.clone().unwrap_or_default();
    let after = req.input.continuation_token.clone().unwrap_or_default();
    let max = req.input.max_buckets.map_or(usize::MAX, |m| m.clamp(1, 10_000) as usize);
    let mut selected: Vec<BucketRecord> =
        buckets.into_iter().filter(|b| b.name.0.starts_with(&prefix) && b.name.0 > after).collect();
    let next = (selected.len() > max).then(|| selected[max - 1].name.0.clone());
    selected.truncate(max);
    let output = ListBucketsOutput {
        buckets: Some(
            selected
                .into_iter()
                .map(|b| Bucket {
                    name: Some(b.name.0),
                    creation_date: Some(timestamp(b.created_ms)),
                    bucket_region: Some(b.region),
                })
                .collect(),
        ),
        owner: Some(Owner { display_name: Some(principal.tenant.0.clone()), id: Some(principal.tenant.0.clone()) }),
        continuation_token: next,
        prefix: req.input.prefix,
    };
    Ok(S3Response::new(output))
}

/// The region where re-creating your own bucket succeeds (`create_bucket`).
const LEGACY_REGION: &str = "us-east-1";

pub async fn create_bucket(
    s3: &IgnifugeS3,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let principal = s3.principal(&req).await?;
    let input = req.input;
    if let Some(constraint) = input.create_bucket_configuration.as_ref().and_then(|c| c.location_constraint.as_ref())
        && constraint.as_str() != s3.gateway.region
    {
        return Err(s3s::s3_error!(
            InvalidLocationConstraint,
            "The specified location-constraint is not valid for this endpoint"
        ));
    }
    let request = AclRequest::headers(
        input.acl.map(|a| a.as_str().to_string()),
        input.grant_full_control,
        input.grant_read,
        input.grant_read_acp,
        input.grant_write,
        input.grant_write_acp,
    );
    let (ownership, acl) = new_bucket_access(&principal.tenant, input.object_ownership.as_ref(), request)?;
    let mut record = BucketRecord::new(
        BucketName::new(input.bucket.clone()),
        principal.tenant.clone(),
        s3.gateway.region.clone(),
        now_ms(),
        ignifuge_types::BucketIncarnation::new(ignifuge_types::random_id()),
    );
    record.ownership = Some(ownership);
    record.acl = acl;
    // A view of an earlier bucket of this name (deleted through another gateway) goes.
    s3.gateway.access.forget(&record.name);
    match s3.gateway.metadata.apply(Command::CreateBucket(record)).await {
        Ok(_) => {}
        // AWS, for legacy compatibility, answers 200 OK to re-creating a bucket you already own
        // in us-east-1 (and changes nothing: there are no ACLs to reset); 409 everywhere else.
        Err(MetaError::BucketAlreadyOwnedByYou) if s3.gateway.region == LEGACY_REGION => {}
        Err(e) => return Err(GatewayError::Meta(e).into()),
    }
    Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{}", input.bucket)) }))
}

pub async fn head_bucket(_s3: &IgnifugeS3, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(bucket.region), ..Default::default() }))
}

pub async fn delete_bucket(
    s3: &IgnifugeS3,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    let outcome = s3.gateway.metadata.apply(Command::DeleteBucket { bucket: bucket.reference() }).await;
    s3.changed(&bucket);
    outcome.map_err(GatewayError::Meta)?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub async fn get_bucket_location(
    _s3: &IgnifugeS3,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    // AWS answers an empty LocationConstraint for us-east-1.
    let location_constraint =
        (bucket.region != "us-east-1").then(|| BucketLocationConstraint::from(bucket.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
}
