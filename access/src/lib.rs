//! Who may do what to a bucket or an object: AWS's access evaluation, in one place.
//!
//! Owns: the S3 bucket-policy language (parsing, validation, evaluation, the "public" test), ACLs
//! and canned ACLs, Object Ownership, Block Public Access, and the decision combining them.
//! Must never depend on: any Ignifuge crate but `ignifuge-types`, tokio, or I/O. It is plain
//! functions of (requester, action, target, bucket state, request facts), so the gateway calls it
//! inline and tests call it directly.
//! Invariants: a request is allowed only by a named reason (owner, a policy statement, an ACL
//! grant); an explicit Deny beats every Allow; what is not allowed is denied.
//!
//! # Evaluation rules
//!
//! AWS's, from the S3 user guide ("How Amazon S3 authorizes a request", "Blocking public access to
//! your Amazon S3 storage", "Access control list (ACL) overview") and the IAM user guide ("Policy
//! evaluation logic", "IAM JSON policy elements: Condition operators"), adapted to tenants:
//!
//! 1. Tenants are accounts. A tenant's root may always get, put and delete its bucket's policy
//!    (AWS's lockout protection); another tenant never may.
//! 2. An explicit Deny in the bucket policy that matches the request denies it, whoever asks,
//!    the owner included.
//! 3. The owner tenant's keys have full rights over its buckets (identity permissions; scoped keys
//!    will plug in at `decide::identity_allows`): allowed.
//! 4. Anyone else (another tenant, anonymous): if RestrictPublicBuckets is on and the policy is
//!    public, denied ("public policy restricted"); AWS then admits only the owner's account.
//! 5. A matching Allow statement: allowed.
//! 6. When ACLs are enabled (Object Ownership is not BucketOwnerEnforced): an ACL grant allows.
//!    Bucket-level actions read the bucket ACL; object-level actions read the object's ACL, except
//!    s3:PutObject and s3:DeleteObject, which need WRITE on the bucket. With IgnorePublicAcls, grants
//!    to AllUsers and AuthenticatedUsers count for nothing.
//! 7. Otherwise denied ("no statement allows").
//!
//! AllUsers includes every requester, AuthenticatedUsers every signed one of any tenant. A
//! principal `*` matches anonymous requests too; a named principal never does.

pub mod acl;
mod actions;
mod condition;
mod date;
pub mod decide;
pub mod policy;
mod wildcard;

pub use acl::{Acl, CannedAcl, Grant, Grantee, ObjectOwnership, Permission};
pub use decide::{BucketAccess, Decision, PublicAccessBlock, RequestContext, Requester, Target, authorize};
pub use policy::{NamedPrincipal, Policy, PolicyError};

#[cfg(test)]
mod tests;
