//! PutBucketPolicy, GetBucketPolicy, DeleteBucketPolicy, GetBucketPolicyStatus and
//! Put/Get/DeletePublicAccessBlock: the bucket settings the authorizer reads.

use super::IgnifugeS3;
use crate::error::GatewayError;
use ignifuge_access::{NamedPrincipal, Policy, PublicAccessBlock};
use ignifuge_meta::{BucketRecord, BucketSetting, Command, MetaError};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

impl IgnifugeS3 {
    /// Stores one of a bucket's settings and forgets this gateway's cached view of it.
    pub(super) async fn set_bucket_setting(&self, bucket: &BucketRecord, setting: BucketSetting) -> S3Result<()> {
        let command = Command::SetBucketSetting { bucket: bucket.reference(), setting };
        let outcome = self.gateway.metadata.apply(command).await;
        // Forgotten whatever the outcome: one that is not known may have applied.
        self.changed(bucket);
        outcome.map_err(GatewayError::Meta)?;
        Ok(())
    }
}

pub async fn put_bucket_policy(
    s3: &IgnifugeS3,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let authorized = IgnifugeS3::authorized(&req)?;
    let view = authorized.view()?.clone();
    let text = req.input.policy;
    let policy = Policy::parse(&text, &view.record.name.0).map_err(GatewayError::MalformedPolicy)?;
    // AWS refuses a principal that does not exist: a grant to a name no tenant has would go to
    // whoever is made with it later.
    for name in policy.named_principals() {
        if !principal_exists(s3, &name).await? {
            let invalid = ignifuge_access::PolicyError::Malformed("Invalid principal in policy".into());
            return Err(GatewayError::MalformedPolicy(invalid).into());
        }
    }
    // AWS: with BlockPublicPolicy on (the bucket's or the account's), a public policy is refused.
    if view.public_access_block().block_public_policy && policy.is_public() {
        return Err(GatewayError::AccessDenied.into());
    }
    s3.set_bucket_setting(&view.record, BucketSetting::Policy(Some(text))).await?;
    Ok(S3Response::with_status(PutBucketPolicyOutput {}, http::StatusCode::NO_CONTENT))
}

/// Whether a tenant, user or key a policy names exists (a user is of its tenant: users have no
/// records of their own yet).
async fn principal_exists(s3: &IgnifugeS3, name: &NamedPrincipal) -> S3Result<bool> {
    let metadata = &s3.gateway.metadata;
    let found = match name {
        NamedPrincipal::Tenant(tenant) | NamedPrincipal::User { tenant, .. } => {
            metadata.tenant(tenant.clone()).await.map(|_| true)
        }
        NamedPrincipal::Key { tenant, access_key } => {
            metadata.access_key(access_key.clone()).await.map(|record| record.tenant == *tenant)
        }
    };
    match found {
        Ok(exists) => Ok(exists),
        Err(MetaError::NoSuchTenant | MetaError::NoSuchAccessKey) => Ok(false),
        Err(e) => Err(GatewayError::Meta(e).into()),
    }
}

pub async fn get_bucket_policy(
    _s3: &IgnifugeS3,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    match IgnifugeS3::bucket(&req)?.policy {
        Some(policy) => Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(policy) })),
        None => Err(s3s::s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist")),
    }
}

pub async fn delete_bucket_policy(
    s3: &IgnifugeS3,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    s3.set_bucket_setting(&bucket, BucketSetting::Policy(None)).await?;
    Ok(S3Response::with_status(DeleteBucketPolicyOutput {}, http::StatusCode::NO_CONTENT))
}

pub async fn get_bucket_policy_status(
    _s3: &IgnifugeS3,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    let view = IgnifugeS3::authorized(&req)?.view()?.clone();
    let Some(policy) = &view.policy else {
        return Err(s3s::s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"));
    };
    let status = PolicyStatus { is_public: Some(policy.is_public()) };
    Ok(S3Response::new(GetBucketPolicyStatusOutput { policy_status: Some(status) }))
}

pub async fn put_public_access_block(
    s3: &IgnifugeS3,
    req: S3Request<PutPublicAccessBlockInput>,
) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    let c = req.input.public_access_block_configuration;
    // AWS: an absent setting is false.
    let block = PublicAccessBlock {
        block_public_acls: c.block_public_acls.unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
        block_public_policy: c.block_public_policy.unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
    };
    s3.set_bucket_setting(&bucket, BucketSetting::PublicAccessBlock(Some(block))).await?;
    Ok(S3Response::new(PutPublicAccessBlockOutput {}))
}

pub async fn get_public_access_block(
    _s3: &IgnifugeS3,
    req: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    let Some(block) = IgnifugeS3::bucket(&req)?.public_access_block else {
        return Err(GatewayError::NoSuchPublicAccessBlockConfiguration.into());
    };
    let configuration = PublicAccessBlockConfiguration {
        block_public_acls: Some(block.block_public_acls),
        ignore_public_acls: Some(block.ignore_public_acls),
        block_public_policy: Some(block.block_public_policy),
        restrict_public_buckets: Some(block.restrict_public_buckets),
    };
    Ok(S3Response::new(GetPublicAccessBlockOutput { public_access_block_configuration: Some(configuration) }))
}

pub async fn delete_public_access_block(
    s3: &IgnifugeS3,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
    let bucket = IgnifugeS3::bucket(&req)?;
    s3.set_bucket_setting(&bucket, BucketSetting::PublicAccessBlock(None)).await?;
    Ok(S3Response::with_status(DeletePublicAccessBlockOutput {}, http::StatusCode::NO_CONTENT))
}
