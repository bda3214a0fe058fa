//! Access control lists and Object Ownership.
//!
//! An ACL grants one of five permissions to a grantee: a tenant (a canonical user, whose id is
//! the tenant id) or one of the predefined groups. What each permission allows follows the S3
//! user guide, "Access control list (ACL) overview", table "Mapping of ACL permissions and access
//! policy permissions":
//!
//! | ACL permission | on a bucket                                                    | on an object                                            |
//! |----------------|----------------------------------------------------------------|---------------------------------------------------------|
//! | READ           | s3:ListBucket, s3:ListBucketVersions, s3:ListBucketMultipartUploads | s3:GetObject, s3:GetObjectVersion, s3:GetObjectTorrent |
//! | WRITE          | s3:PutObject, s3:DeleteObject                                  | (none)                                                  |
//! | READ_ACP       | s3:GetBucketAcl                                                | s3:GetObjectAcl, s3:GetObjectVersionAcl                 |
//! | WRITE_ACP      | s3:PutBucketAcl                                                | s3:PutObjectAcl, s3:PutObjectVersionAcl                 |
//! | FULL_CONTROL   | all of the above                                               | all of the above                                        |
//!
//! The table also gives bucket WRITE s3:DeleteObjectVersion, but only when the grantee is the bucket
//! owner, who has every right here anyway; so it is left out. Tagging, attributes and multipart
//! part listing are not in the table and no ACL grants them.

use ignifuge_types::TenantId;
use serde::{Deserialize, Serialize};

use crate::decide::Requester;

/// Who a grant is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grantee {
    /// A canonical user: its id is the tenant id.
    Tenant(TenantId),
    /// Everyone, signed or anonymous (`http://acs.amazonaws.com/groups/global/AllUsers`).
    AllUsers,
    /// Any signed request, from any tenant (`.../global/AuthenticatedUsers`).
    AuthenticatedUsers,
    /// The log delivery group (`.../s3/LogDelivery`); no requester is a member yet.
    LogDelivery,
}

impl Grantee {
    fn includes(&self, requester: &Requester) -> bool {
        match (self, requester) {
            (Grantee::AllUsers, _) => true,
            (Grantee::AuthenticatedUsers, Requester::Key { .. }) => true,
            (Grantee::Tenant(grantee), Requester::Key { tenant, .. }) => grantee == tenant,
            _ => false,
        }
    }

    /// The groups that make an ACL public.
    fn is_public(&self) -> bool {
        matches!(self, Grantee::AllUsers | Grantee::AuthenticatedUsers)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Permission {
    FullControl,
    Read,
    Write,
    ReadAcp,
    WriteAcp,
}

impl Permission {
    fn covers(self, needed: Permission) -> bool {
        self == Permission::FullControl || self == needed
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub grantee: Grantee,
    pub permission: Permission,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    pub owner: TenantId,
    pub grants: Vec<Grant>,
}

/// The canned ACLs of the `x-amz-acl` header (S3 user guide, "Access control list (ACL)
/// overview", "Canned ACL").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CannedAcl {
    Private,
    PublicRead,
    PublicReadWrite,
    AuthenticatedRead,
    BucketOwnerRead,
    BucketOwnerFullControl,
    AwsExecRead,
    LogDeliveryWrite,
}

const CANNED: [(CannedAcl, &str); 8] = [
    (CannedAcl::Private, "private"),
    (CannedAcl::PublicRead, "public-read"),
    (CannedAcl::PublicReadWrite, "public-read-write"),
    (CannedAcl::AuthenticatedRead, "authenticated-read"),
    (CannedAcl::BucketOwnerRead, "bucket-owner-read"),
    (CannedAcl::BucketOwnerFullControl, "bucket-owner-full-control"),
    (CannedAcl::AwsExecRead, "aws-exec-read"),
    (CannedAcl::LogDeliveryWrite, "log-delivery-write"),
];

impl CannedAcl {
    /// `"public-read"` and the like, exactly as S3 spells them.
    pub fn parse(value: &str) -> Option<CannedAcl> {
        CANNED.iter().find(|(_, name)| *name == value).map(|&(canned, _)| canned)
    }

    pub fn as_str(&self) -> &'static str {
        CANNED.iter().find(|(canned, _)| canned == self).map_or("private", |&(_, name)| name)
    }

    /// The ACL AWS builds from the canned ACL: the owner gets FULL_CONTROL, plus
    /// - public-read: AllUsers READ; public-read-write: AllUsers READ and WRITE;
    /// - authenticated-read: AuthenticatedUsers READ;
    /// - bucket-owner-read / bucket-owner-full-control: the bucket owner READ / FULL_CONTROL, which
    ///   only adds a grant on an object written by another tenant (AWS ignores them on buckets);
    /// - aws-exec-read: EC2 READ on AWS; there is no EC2 here, so the owner alone;
    /// - log-delivery-write: LogDelivery WRITE and READ_ACP.
    pub fn to_acl(&self, owner: &TenantId, bucket_owner: &TenantId) -> Acl {
        let mut acl = Acl::private(owner);
        let mut grant = |grantee: Grantee, permission: Permission| acl.grants.push(Grant { grantee, permission });
        match self {
            CannedAcl::Private | CannedAcl::AwsExecRead => {}
            CannedAcl::PublicRead => grant(Grantee::AllUsers, Permission::Read),
            CannedAcl::PublicReadWrite => {
                grant(Grantee::AllUsers, Permission::Read);
                grant(Grantee::AllUsers, Permission::Write);
            }
            CannedAcl::AuthenticatedRead => grant(Grantee::AuthenticatedUsers, Permission::Read),
            CannedAcl::BucketOwnerRead if bucket_owner != owner => {
                grant(Grantee::Tenant(bucket_owner.clone()), Permission::Read)
            }
            CannedAcl::BucketOwnerFullControl if bucket_owner != owner => {
                grant(Grantee::Tenant(bucket_owner.clone()), Permission::FullControl)
            }
            CannedAcl::BucketOwnerRead | CannedAcl::BucketOwnerFullControl => {}
            CannedAcl::LogDeliveryWrite => {
                grant(Grantee::LogDelivery, Permission::Write);
                grant(Grantee::LogDelivery, Permission::ReadAcp);
            }
        }
        acl
    }
}

impl Acl {
    /// The owner's FULL_CONTROL and nothing else: what S3 gives a new bucket or object.
    pub fn private(owner: &TenantId) -> Acl {
        Acl {
            owner: owner.clone(),
            grants: vec![Grant { grantee: Grantee::Tenant(owner.clone()), permission: Permission::FullControl }],
        }
    }

    /// Grants to AllUsers or AuthenticatedUsers: AWS's "public ACL" (S3 user guide, "The meaning
    /// of 'public'": "Amazon S3 considers a bucket or object ACL public if it grants any
    /// permissions to members of the predefined AllUsers or AuthenticatedUsers groups").
    pub fn is_public(&self) -> bool {
        self.grants.iter().any(|grant| grant.grantee.is_public())
    }

    /// Whether this ACL (all grants, including the owner's implicit FULL_CONTROL) gives the
    /// permission `action` needs to `requester`. `on_object` picks the object column of the
    /// mapping table; `ignore_public` skips AllUsers and AuthenticatedUsers grants
    /// (IgnorePublicAcls).
    pub fn allows(&self, requester: &Requester, action: &str, on_object: bool, ignore_public: bool) -> bool {
        let Some(needed) = required_permission(action, on_object) else {
            return false;
        };
        let owner_is_requester = matches!(requester, Requester::Key { tenant, .. } if *tenant == self.owner);
        owner_is_requester
            || self.grants.iter().any(|grant| {
                !(ignore_public && grant.grantee.is_public())
                    && grant.grantee.includes(requester)
                    && grant.permission.covers(needed)
            })
    }
}

/// The ACL permission an action needs, from the mapping table; `None` when no ACL grants it.
pub(crate) fn required_permission(action: &str, on_object: bool) -> Option<Permission> {
    let bucket: &[(&str, Permission)] = &[
        ("s3:ListBucket", Permission::Read),
        ("s3:ListBucketVersions", Permission::Read),
        ("s3:ListBucketMultipartUploads", Permission::Read),
        ("s3:PutObject", Permission::Write),
        ("s3:DeleteObject", Permission::Write),
        ("s3:GetBucketAcl", Permission::ReadAcp),
        ("s3:PutBucketAcl", Permission::WriteAcp),
    ];
    let object: &[(&str, Permission)] = &[
        ("s3:GetObject", Permission::Read),
        ("s3:GetObjectVersion", Permission::Read),
        ("s3:GetObjectTorrent", Permission::Read),
        ("s3:GetObjectAcl", Permission::ReadAcp),
        ("s3:GetObjectVersionAcl", Permission::ReadAcp),
        ("s3:PutObjectAcl", Permission::WriteAcp),
        ("s3:PutObjectVersionAcl", Permission::WriteAcp),
    ];
    let table = if on_object { object } else { bucket };
    table.iter().find(|(name, _)| name.eq_ignore_ascii_case(action)).map(|&(_, permission)| permission)
}

/// Who owns the objects of a bucket, and so whether ACLs count (S3 user guide, "Controlling
/// ownership of objects and disabling ACLs for your bucket").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectOwnership {
    /// ACLs are disabled; the bucket owner owns every object. AWS's default for new buckets.
    #[default]
    BucketOwnerEnforced,
    /// ACLs count; the bucket owner owns objects written with bucket-owner-full-control.
    BucketOwnerPreferred,
    /// ACLs count; the writer owns what it writes.
    ObjectWriter,
}

impl ObjectOwnership {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "BucketOwnerEnforced" => Some(Self::BucketOwnerEnforced),
            "BucketOwnerPreferred" => Some(Self::BucketOwnerPreferred),
            "ObjectWriter" => Some(Self::ObjectWriter),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::BucketOwnerEnforced => "BucketOwnerEnforced",
            Self::BucketOwnerPreferred => "BucketOwnerPreferred",
            Self::ObjectWriter => "ObjectWriter",
        }
    }

    /// Whether ACLs are evaluated at all: not under BucketOwnerEnforced.
    pub fn acls_enabled(&self) -> bool {
        *self != Self::BucketOwnerEnforced
    }
}
