//! The access decision for one request: the requester's identity rights, the bucket policy, Block
//! Public Access, and ACLs, combined in AWS's order. The rules are listed in the crate doc.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ignifuge_types::{AccessKeyId, TenantId, UserId};
use serde::{Deserialize, Serialize};

use crate::acl::{Acl, ObjectOwnership};
use crate::condition::Facts;
use crate::policy::Policy;

/// Who sent the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requester {
    /// An unsigned request.
    Anonymous,
    /// A request signed with an access key of `user`, a user of `tenant`.
    Key { tenant: TenantId, user: UserId, access_key: AccessKeyId },
}

/// The four Block Public Access settings (S3 user guide, "Blocking public access to your Amazon S3
/// storage"). BlockPublicAcls and BlockPublicPolicy refuse writes and are applied by the gateway
/// with `Acl::is_public` and `Policy::is_public`; IgnorePublicAcls and RestrictPublicBuckets act
/// here, on every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    pub const ALL: Self = Self {
        block_public_acls: true,
        ignore_public_acls: true,
        block_public_policy: true,
        restrict_public_buckets: true,
    };
    pub const NONE: Self = Self {
        block_public_acls: false,
        ignore_public_acls: false,
        block_public_policy: false,
        restrict_public_buckets: false,
    };

    /// Field-wise OR: the bucket's and its owner tenant's settings both apply, and AWS applies
    /// "the most restrictive combination".
    pub fn union(self, other: Self) -> Self {
        Self {
            block_public_acls: self.block_public_acls || other.block_public_acls,
            ignore_public_acls: self.ignore_public_acls || other.ignore_public_acls,
            block_public_policy: self.block_public_policy || other.block_public_policy,
            restrict_public_buckets: self.restrict_public_buckets || other.restrict_public_buckets,
        }
    }
}

/// What conditions can test about the request beyond the requester.
#[derive(Clone, Debug, Default)]
pub struct RequestContext {
    /// `aws:SourceIp`.
    pub source_ip: Option<IpAddr>,
    /// `aws:SecureTransport`: the request came over TLS.
    pub secure_transport: bool,
    /// `aws:Referer`.
    pub referer: Option<String>,
    /// `aws:UserAgent`.
    pub user_agent: Option<String>,
    /// `aws:CurrentTime` and `aws:EpochTime`.
    pub current_time_ms: i64,
    /// Other condition keys with their values, names as in policies, e.g. `s3:prefix`,
    /// `s3:max-keys`, `s3:x-amz-acl`, `s3:ExistingObjectTag/<tag key>`, `s3:RequestObjectTag/<k>`,
    /// `s3:VersionId`. Key names compare case-insensitively.
    pub values: BTreeMap<String, Vec<String>>,
}

/// The bucket's side of the decision.
pub struct BucketAccess<'a> {
    pub bucket: &'a str,
    pub owner: &'a TenantId,
    pub policy: Option<&'a Policy>,
    /// The bucket ACL, when ACLs are enabled.
    pub acl: Option<&'a Acl>,
    pub ownership: ObjectOwnership,
    /// Effective: the bucket's united with its owner tenant's.
    pub public_access_block: PublicAccessBlock,
}

/// What the request acts on.
pub struct Target<'a> {
    /// None for bucket-level actions.
    pub key: Option<&'a str>,
    /// The object's ACL when the object was read and ACLs are enabled.
    pub object_acl: Option<&'a Acl>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Why, for the log: e.g. "owner", "explicit deny by statement 'DenyAll'", "allowed by
    /// statement 'PublicRead'", "allowed by bucket ACL", "public ACL ignored (IgnorePublicAcls)",
    /// "public policy restricted (RestrictPublicBuckets)", "no statement allows".
    pub reason: String,
}

impl Decision {
    fn allow(reason: impl Into<String>) -> Decision {
        Decision { allowed: true, reason: reason.into() }
    }

    fn deny(reason: impl Into<String>) -> Decision {
        Decision { allowed: false, reason: reason.into() }
    }
}

/// The actions S3 reserves for the bucket owner's account whatever the policy says: its root can
/// always run them, "to ensure that bucket owners don't inadvertently lock themselves out of their
/// own buckets", and an identity of another account may never (DeleteBucketPolicy API reference).
const POLICY_MANAGEMENT_ACTIONS: [&str; 3] = ["s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"];

/// Bucket-level ACL permission that acts on objects: WRITE on the bucket creates and deletes its
/// objects, whatever the object's own ACL says.
const BUCKET_WRITE_ACTIONS: [&str; 2] = ["s3:PutObject", "s3:DeleteObject"];

/// Decides whether `requester` may perform `action` (an IAM action name like "s3:GetObject") on
/// `target` in the bucket described by `access`.
pub fn authorize(
    requester: &Requester,
    action: &str,
    target: &Target,
    access: &BucketAccess,
    context: &RequestContext,
) -> Decision {
    let is_owner = matches!(requester, Requester::Key { tenant, .. } if tenant == access.owner);
    let manages_policy = POLICY_MANAGEMENT_ACTIONS.iter().any(|name| name.eq_ignore_ascii_case(action));
    if manages_policy {
        // Every key of the owner tenant is its root for now; once keys are scoped, this exemption
        // belongs to the tenant's root identity alone.
        return if is_owner {
            Decision::allow("owner (bucket policy lockout protection)")
        } else {
            Decision::deny("only the bucket owner's tenant manages its policy")
        };
    }

    let facts = Facts { requester, context };
    let resource_arn = match target.key {
        Some(key) => format!("arn:aws:s3:::{}/{key}", access.bucket),
        None => format!("arn:aws:s3:::{}", access.bucket),
    };
    let matching = access.policy.map(|policy| policy.matching(&facts, action, &resource_arn));
    let (deny, allow) = matching.map_or((None, None), |m| (m.deny, m.allow));

    // Explicit deny wins, for the owner too.
    if let Some(statement) = deny {
        return Decision::deny(format!("explicit deny by statement {}", statement.label()));
    }
    if identity_allows(requester, access) {
        return Decision::allow("owner");
    }

    // RestrictPublicBuckets: a bucket whose policy is public admits only its owner's account, so
    // every other tenant and anonymous requester is refused here, whether the grant would have
    // come from the policy (even a statement naming the tenant) or from an ACL ("This setting
    // blocks all cross-account access to the access point or bucket").
    let block = access.public_access_block;
    if block.restrict_public_buckets && access.policy.is_some_and(Policy::is_public) {
        return Decision::deny("public policy restricted (RestrictPublicBuckets)");
    }
    if let Some(statement) = allow {
        return Decision::allow(format!("allowed by statement {}", statement.label()));
    }

    if access.ownership.acls_enabled() {
        let bucket_write = BUCKET_WRITE_ACTIONS.iter().any(|name| name.eq_ignore_ascii_case(action));
        let (acl, on_object, which) = if target.key.is_some() && !bucket_write {
            (target.object_acl, true, "object ACL")
        } else {
            (access.acl, false, "bucket ACL")
        };
        if let Some(acl) = acl {
            if acl.allows(requester, action, on_object, block.ignore_public_acls) {
                return Decision::allow(format!("allowed by {which}"));
            }
            if block.ignore_public_acls && acl.allows(requester, action, on_object, false) {
                return Decision::deny("public ACL ignored (IgnorePublicAcls)");
            }
        }
    }
    Decision::deny("no statement allows")
}

/// The requester's identity-based permissions. Today every key of a tenant has full rights over
/// that tenant's buckets (AWS: the account root) and none of its own over other tenants' buckets,
/// where the resource policy and ACLs decide alone. When keys get scoped identity policies, they are
/// evaluated here: an identity Deny joins the explicit denies, and a cross-tenant request then needs
/// an identity Allow as well as the bucket's.
fn identity_allows(requester: &Requester, access: &BucketAccess) -> bool {
    matches!(requester, Requester::Key { tenant, .. } if tenant == access.owner)
}
