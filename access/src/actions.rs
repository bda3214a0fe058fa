//! The S3 actions a bucket policy may name, and the resource each applies to.
//!
//! From the Service Authorization Reference, "Actions defined by Amazon S3": an action names either
//! the bucket (`arn:aws:s3:::bucket`), an object (`arn:aws:s3:::bucket/key`) or neither (account,
//! access point, job and Storage Lens actions). A bucket policy statement whose action applies to
//! none of its resources is refused ("Action does not apply to any resource(s) in statement").

/// What an action's resource ARN names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResourceKind {
    Bucket,
    Object,
    /// Account-level, access points, jobs, Storage Lens: never a bucket or object of this bucket.
    Other,
}

use ResourceKind::{Bucket, Object, Other};

/// Every S3 action known to the policy parser, with its resource kind. Names as AWS spells them;
/// they compare case-insensitively.
pub(crate) const S3_ACTIONS: &[(&str, ResourceKind)] = &[
    // Object-level.
    ("AbortMultipartUpload", Object),
    ("BypassGovernanceRetention", Object),
    ("DeleteObject", Object),
    ("DeleteObjectTagging", Object),
    ("DeleteObjectVersion", Object),
    ("DeleteObjectVersionTagging", Object),
    ("GetObject", Object),
    ("GetObjectAcl", Object),
    ("GetObjectAttributes", Object),
    ("GetObjectLegalHold", Object),
    ("GetObjectRetention", Object),
    ("GetObjectTagging", Object),
    ("GetObjectTorrent", Object),
    ("GetObjectVersion", Object),
    ("GetObjectVersionAcl", Object),
    ("GetObjectVersionAttributes", Object),
    ("GetObjectVersionForReplication", Object),
    ("GetObjectVersionTagging", Object),
    ("GetObjectVersionTorrent", Object),
    ("InitiateReplication", Object),
    ("ListMultipartUploadParts", Object),
    ("ObjectOwnerOverrideToBucketOwner", Object),
    ("PutObject", Object),
    ("PutObjectAcl", Object),
    ("PutObjectLegalHold", Object),
    ("PutObjectRetention", Object),
    ("PutObjectTagging", Object),
    ("PutObjectVersionAcl", Object),
    ("PutObjectVersionTagging", Object),
    ("ReplicateDelete", Object),
    ("ReplicateObject", Object),
    ("ReplicateTags", Object),
    ("RestoreObject", Object),
    // Bucket-level.
    ("CreateBucket", Bucket),
    ("DeleteBucket", Bucket),
    ("DeleteBucketOwnershipControls", Bucket),
    ("DeleteBucketPolicy", Bucket),
    ("DeleteBucketWebsite", Bucket),
    ("GetAccelerateConfiguration", Bucket),
    ("GetAnalyticsConfiguration", Bucket),
    ("GetBucketAcl", Bucket),
    ("GetBucketCORS", Bucket),
    ("GetBucketLocation", Bucket),
    ("GetBucketLogging", Bucket),
    ("GetBucketNotification", Bucket),
    ("GetBucketObjectLockConfiguration", Bucket),
    ("GetBucketOwnershipControls", Bucket),
    ("GetBucketPolicy", Bucket),
    ("GetBucketPolicyStatus", Bucket),
    ("GetBucketPublicAccessBlock", Bucket),
    ("GetBucketRequestPayment", Bucket),
    ("GetBucketTagging", Bucket),
    ("GetBucketVersioning", Bucket),
    ("GetBucketWebsite", Bucket),
    ("GetEncryptionConfiguration", Bucket),
    ("GetIntelligentTieringConfiguration", Bucket),
    ("GetInventoryConfiguration", Bucket),
    ("GetLifecycleConfiguration", Bucket),
    ("GetMetricsConfiguration", Bucket),
    ("GetReplicationConfiguration", Bucket),
    ("ListBucket", Bucket),
    ("ListBucketMultipartUploads", Bucket),
    ("ListBucketVersions", Bucket),
    ("PutAccelerateConfiguration", Bucket),
    ("PutAnalyticsConfiguration", Bucket),
    ("PutBucketAcl", Bucket),
    ("PutBucketCORS", Bucket),
    ("PutBucketLogging", Bucket),
    ("PutBucketNotification", Bucket),
    ("PutBucketObjectLockConfiguration", Bucket),
    ("PutBucketOwnershipControls", Bucket),
    ("PutBucketPolicy", Bucket),
    ("PutBucketPublicAccessBlock", Bucket),
    ("PutBucketRequestPayment", Bucket),
    ("PutBucketTagging", Bucket),
    ("PutBucketVersioning", Bucket),
    ("PutBucketWebsite", Bucket),
    ("PutEncryptionConfiguration", Bucket),
    ("PutIntelligentTieringConfiguration", Bucket),
    ("PutInventoryConfiguration", Bucket),
    ("PutLifecycleConfiguration", Bucket),
    ("PutMetricsConfiguration", Bucket),
    ("PutReplicationConfiguration", Bucket),
    // Neither a bucket nor an object.
    ("CreateAccessPoint", Other),
    ("CreateJob", Other),
    ("DeleteAccessPoint", Other),
    ("DeleteAccessPointPolicy", Other),
    ("DeleteJobTagging", Other),
    ("DeleteStorageLensConfiguration", Other),
    ("DescribeJob", Other),
    ("GetAccessPoint", Other),
    ("GetAccessPointPolicy", Other),
    ("GetAccessPointPolicyStatus", Other),
    ("GetAccountPublicAccessBlock", Other),
    ("GetJobTagging", Other),
    ("GetStorageLensConfiguration", Other),
    ("GetStorageLensDashboard", Other),
    ("ListAccessPoints", Other),
    ("ListAllMyBuckets", Other),
    ("ListJobs", Other),
    ("ListStorageLensConfigurations", Other),
    ("PutAccessPointPolicy", Other),
    ("PutAccessPointPublicAccessBlock", Other),
    ("PutAccountPublicAccessBlock", Other),
    ("PutJobTagging", Other),
    ("PutStorageLensConfiguration", Other),
    ("UpdateJobPriority", Other),
    ("UpdateJobStatus", Other),
];

/// The resource kinds of the known actions a policy action pattern (`s3:Get*`, `*`) matches;
/// empty when it matches none.
pub(crate) fn kinds_matching(pattern: &str) -> Vec<ResourceKind> {
    S3_ACTIONS
        .iter()
        .filter(|(name, _)| crate::wildcard::matches_ignore_ascii_case(pattern, &format!("s3:{name}")))
        .map(|&(_, kind)| kind)
        .collect()
}
