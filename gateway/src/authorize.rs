//! The one authorizer: every S3 operation, the website endpoint and presigned URLs ask
//! `Gateway::authorize` whether a requester may perform an action on a bucket or an object, and
//! it answers allow or deny with the reason, logged under the request id. The rules themselves
//! (bucket policies, ACLs, Object Ownership, Block Public Access) live in `ignifuge-access`;
//! this module gathers what they need: the bucket's settings and its tenant's, cached briefly.
//!
//! Cache. A bucket's settings and its tenant's Block Public Access are kept for
//! `ACCESS_CACHE_TTL_MS`, so that a GET pays no extra metadata round trip. Callers that write
//! read the bucket fresh (`AccessCache::view` with `fresh`); the commit checks the bucket's owner and
//! incarnation again, atomically, so a stale view never lets a write land in another tenant's
//! bucket, and reads name the view's owner and incarnation to the metadata, which refuses them
//! (NoSuchBucket, and the view is dropped) unless the bucket is still that one. What a stale view can do: apply a policy, ACL or Block Public Access
//! setting up to `ACCESS_CACHE_TTL_MS` after another gateway changed it (AWS, too, documents
//! access changes as eventually consistent). The gateway that makes a change forgets its view
//! at once.

use crate::error::{GatewayError, GatewayResult};
use ignifuge_access::{
    Acl, BucketAccess, Decision, Policy, PublicAccessBlock, RequestContext, Requester, Target, authorize,
};
use ignifuge_meta::{BucketRecord, MetaError, Metadata};
use ignifuge_types::{BucketName, TenantId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a bucket's or a tenant's access settings are trusted before they are read again.
pub const ACCESS_CACHE_TTL_MS: u64 = 1_000;
/// Most buckets (and tenants) whose settings one gateway caches.
const ACCESS_CACHE_ENTRIES_MAX: usize = 10_000;

/// A bucket's record with its policy parsed and its tenant's Block Public Access.
pub struct BucketView {
    pub record: BucketRecord,
    pub policy: Option<Policy>,
    /// The stored policy does not parse (a newer grammar rolled back): the bucket is closed to
    /// everything but its owner managing the policy, rather than open without its Deny statements.
    pub policy_unreadable: bool,
    /// The tenant's settings (None: the tenant sets none).
    pub tenant_block: Option<PublicAccessBlock>,
}

impl BucketView {
    /// x-amz-expected-bucket-owner (or, for a copy's source, x-amz-source-expected-bucket-owner):
    /// a request that names the account it expects to own the bucket is refused, 403
    /// AccessDenied as on AWS, when another owns it (a bucket name reused by another tenant must
    /// not receive or serve what was meant for the first). The owner's id is the tenant id, as
    /// listings and ACLs name it.
    pub fn check_expected_owner(&self, expected: Option<&str>) -> GatewayResult<()> {
        match expected {
            Some(expected) if expected != self.record.tenant.0 => Err(GatewayError::AccessDenied),
            _ => Ok(()),
        }
    }

    /// The Block Public Access in force: the bucket's and its tenant's, each setting on if
    /// either turns it on.
    pub fn public_access_block(&self) -> PublicAccessBlock {
        let bucket = self.record.public_access_block.unwrap_or(PublicAccessBlock::NONE);
        bucket.union(self.tenant_block.unwrap_or(PublicAccessBlock::NONE))
    }

    pub fn ownership(&self) -> ignifuge_access::ObjectOwnership {
        self.record.ownership.unwrap_or_default()
    }

    fn access(&self) -> BucketAccess<'_> {
        BucketAccess {
            bucket: &self.record.name.0,
            owner: &self.record.tenant,
            policy: self.policy.as_ref(),
            acl: self.record.acl.as_ref(),
            ownership: self.ownership(),
            public_access_block: self.public_access_block(),
        }
    }

    /// AWS's evaluation (`ignifuge_access::authorize`) against this bucket's settings.
    pub fn decide(
        &self,
        requester: &Requester,
        action: &str,
        target: Target<'_>,
        context: &RequestContext,
    ) -> Decision {
        if self.policy_unreadable {
            let owner = matches!(requester, Requester::Key { tenant, .. } if *tenant == self.record.tenant);
            let manages_policy =
                matches!(action, "s3:GetBucketPolicy" | "s3:PutBucketPolicy" | "s3:DeleteBucketPolicy");
            return if owner && manages_policy {
                Decision { allowed: true, reason: "owner repairs an unreadable policy".into() }
            } else {
                Decision { allowed: false, reason: "the stored bucket policy does not parse: bucket closed".into() }
            };
        }
        authorize(requester, action, &target, &self.access(), context)
    }

    /// Whether the outcome of reading an object can depend on the object itself (its ACL, its
    /// tags): then the read is authorized once the record is read, not before.
    pub fn depends_on_object(&self) -> bool {
        self.ownership().acls_enabled() || self.policy.as_ref().is_some_and(Policy::mentions_existing_object_tags)
    }
}

#[derive(Default)]
pub struct AccessCache {
    buckets: Mutex<HashMap<BucketName, (Instant, Arc<BucketView>)>>,
    tenants: Mutex<HashMap<TenantId, (Instant, Option<PublicAccessBlock>)>>,
}

fn fresh_enough(at: &Instant) -> bool {
    at.elapsed() < Duration::from_millis(ACCESS_CACHE_TTL_MS)
}

impl AccessCache {
    /// The bucket's view: from the cache unless `fresh` (then a linearizable read).
    pub async fn view(&self, metadata: &dyn Metadata, name: &str, fresh: bool) -> GatewayResult<Arc<BucketView>> {
        let name = BucketName::new(name);
        let cached = self.buckets.lock().unwrap_or_else(PoisonError::into_inner).get(&name).cloned();
        if !fresh
            && let Some((at, view)) = &cached
            && fresh_enough(at)
        {
            return Ok(view.clone());
        }
        let record = match metadata.bucket(name.clone()).await {
            Ok(record) => record,
            Err(MetaError::NoSuchBucket) => {
                self.forget(&name);
                return Err(MetaError::NoSuchBucket.into());
            }
            Err(e) => return Err(e.into()),
        };
        // A stored policy was valid when it was put; one that no longer parses (a newer grammar
        // rolled back) closes the bucket (`BucketView::policy_unreadable`).
        let (policy, policy_unreadable) = match (&cached, &record.policy) {
            (Some((_, old)), Some(text)) if old.record.policy.as_deref() == Some(text) => {
                (old.policy.clone(), old.policy_unreadable)
            }
            (_, Some(text)) => match Policy::parse(text, &name.0) {
                Ok(policy) => (Some(policy), false),
                Err(e) => {
                    tracing::error!(bucket = %name, error = %e, "stored bucket policy does not parse: bucket closed");
                    (None, true)
                }
            },
            (_, None) => (None, false),
        };
        let tenant_block = self.tenant_block(metadata, &record.tenant).await?;
        let view = Arc::new(BucketView { record, policy, policy_unreadable, tenant_block });
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= ACCESS_CACHE_ENTRIES_MAX {
            buckets.clear();
        }
        buckets.insert(name, (Instant::now(), view.clone()));
        Ok(view)
    }

    async fn tenant_block(
        &self,
        metadata: &dyn Metadata,
        tenant: &TenantId,
    ) -> GatewayResult<Option<PublicAccessBlock>> {
        if let Some((at, block)) = self.tenants.lock().unwrap_or_else(PoisonError::into_inner).get(tenant)
            && fresh_enough(at)
        {
            return Ok(*block);
        }
        let block = metadata.tenant(tenant.clone()).await?.public_access_block;
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        if tenants.len() >= ACCESS_CACHE_ENTRIES_MAX {
            tenants.clear();
        }
        tenants.insert(tenant.clone(), (Instant::now(), block));
        Ok(block)
    }

    /// Drops a bucket's view (this gateway changed it).
    pub fn forget(&self, name: &BucketName) {
        self.buckets.lock().unwrap_or_else(PoisonError::into_inner).remove(name);
    }
}

/// What an authorization is about: the action (an IAM action name such as "s3:GetObject"), the
/// object key for object-level actions, and the object's ACL when it was read.
pub struct Ask<'a> {
    pub action: &'a str,
    pub key: Option<&'a str>,
    pub object_acl: Option<&'a Acl>,
}

impl crate::Gateway {
    /// Allows or denies `ask` for `requester` on the bucket of `view`; the decision and its reason
    /// are logged under `request_id`. Denied: AccessDenied.
    pub fn authorize(
        &self,
        requester: &Requester,
        view: &BucketView,
        ask: Ask<'_>,
        context: &RequestContext,
        request_id: &str,
    ) -> GatewayResult<()> {
        let Decision { allowed, reason } = self.decide(requester, view, ask.action, ask.key, ask.object_acl, context);
        let who = requester_name(requester);
        let bucket = &view.record.name.0;
        if allowed {
            tracing::debug!(request_id, requester = %who, action = ask.action, bucket, key = ask.key, reason, "allowed");
            Ok(())
        } else {
            tracing::info!(request_id, requester = %who, action = ask.action, bucket, key = ask.key, reason, "denied");
            Err(GatewayError::AccessDenied)
        }
    }

    /// The decision alone, for callers that choose between answers (404 or 403) rather than
    /// refuse.
    pub fn decide(
        &self,
        requester: &Requester,
        view: &BucketView,
        action: &str,
        key: Option<&str>,
        object_acl: Option<&Acl>,
        context: &RequestContext,
    ) -> Decision {
        view.decide(requester, action, Target { key, object_acl }, context)
    }
}

pub fn requester_name(requester: &Requester) -> String {
    match requester {
        Requester::Anonymous => "anonymous".into(),
        Requester::Key { tenant, access_key, .. } => format!("{tenant}/{access_key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_types::{AccessKeyId, BucketIncarnation, UserId};

    fn key_of(tenant: &str) -> Requester {
        Requester::Key { tenant: TenantId::new(tenant), user: UserId::new("admin"), access_key: AccessKeyId::new("K") }
    }

    #[test]
    fn a_policy_that_no_longer_parses_closes_the_bucket_but_to_its_owner_repairing_it() {
        let mut record = BucketRecord::new(
            BucketName::new("b"),
            TenantId::new("owner"),
            "us-east-1".into(),
            0,
            BucketIncarnation::new("1"),
        );
        record.policy = Some("{ a grammar from the future".into());
        let view = BucketView { record, policy: None, policy_unreadable: true, tenant_block: None };
        let context = RequestContext::default();
        let decide = |who: &Requester, action: &str| {
            view.decide(who, action, Target { key: Some("k"), object_acl: None }, &context).allowed
        };
        assert!(!decide(&key_of("owner"), "s3:GetObject"), "not open without its Deny statements");
        assert!(!decide(&key_of("other"), "s3:GetObject"));
        assert!(!decide(&Requester::Anonymous, "s3:GetObject"));
        assert!(decide(&key_of("owner"), "s3:PutBucketPolicy"), "the owner can replace it");
        assert!(decide(&key_of("owner"), "s3:DeleteBucketPolicy"));
        assert!(!decide(&key_of("other"), "s3:DeleteBucketPolicy"));
    }
}
