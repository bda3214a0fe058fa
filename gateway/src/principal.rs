//! Access keys to tenant principals, and buckets to their owners, with short-lived caches so that
//! signature checks and the ownership pre-check of a write do not cost a metadata round trip each.

use crate::error::{GatewayError, GatewayResult};
use ignifuge_meta::BucketRecord;
use ignifuge_meta::{Answer, Metadata, Query};
use ignifuge_rpc::SecretSealer;
use ignifuge_types::{AccessKeyId, BucketName, TenantId, UserId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a resolved key is trusted before it is read again (bounds how long a revoked key
/// keeps working on one gateway).
pub const KEY_CACHE_TTL_MS: u64 = 10_000;
/// Most keys cached per gateway.
const KEY_CACHE_ENTRIES_MAX: usize = 10_000;

/// The identity a request acts as.
pub struct Principal {
    pub tenant: TenantId,
    pub user: UserId,
    pub access_key: AccessKeyId,
    secret: String,
}

impl Principal {
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

pub struct KeyCache {
    metadata: Arc<dyn Metadata>,
    sealer: SecretSealer,
    entries: Mutex<HashMap<String, (Instant, Arc<Principal>)>>,
}

impl KeyCache {
    pub fn new(metadata: Arc<dyn Metadata>, sealer: SecretSealer) -> Self {
        Self { metadata, sealer, entries: Mutex::new(HashMap::new()) }
    }

    pub async fn principal(&self, access_key: &str) -> GatewayResult<Arc<Principal>> {
        if let Some((at, p)) = self.entries.lock().expect("key cache lock").get(access_key)
            && at.elapsed() < Duration::from_millis(KEY_CACHE_TTL_MS)
        {
            return Ok(p.clone());
        }
        let record = match self.metadata.query(Query::AccessKey(AccessKeyId::new(access_key))).await? {
            Answer::AccessKey(record) => record,
            _ => {
                return Err(GatewayError::Internal("unexpected answer to an access key query".into()));
            }
        };
        let secret = self
            .sealer
            .open(&record.access_key_id.0, &record.sealed_secret)
            .map_err(|e| GatewayError::Internal(format!("access key {access_key}: {e}")))?;
        let principal =
            Arc::new(Principal { tenant: record.tenant, user: record.user, access_key: record.access_key_id, secret });
        let mut entries = self.entries.lock().expect("key cache lock");
        if entries.len() >= KEY_CACHE_ENTRIES_MAX {
            entries.clear();
        }
        entries.insert(access_key.to_string(), (Instant::now(), principal.clone()));
        Ok(principal)
    }
}

/// How long a bucket's record is trusted for the pre-check of a write. The authoritative check
/// runs in the metadata with the write itself (`WriteCondition::bucket_owner`): a stale entry can
/// only cost a wasted data write that is then refused and discarded, never a write into another
/// tenant's bucket.
pub const BUCKET_CACHE_TTL_MS: u64 = 5_000;
const BUCKET_CACHE_ENTRIES_MAX: usize = 10_000;

/// Bucket records as read recently, for writes that re-check ownership atomically anyway.
pub struct BucketCache {
    metadata: Arc<dyn Metadata>,
    entries: Mutex<HashMap<BucketName, (Instant, BucketRecord)>>,
}

impl BucketCache {
    pub fn new(metadata: Arc<dyn Metadata>) -> Self {
        Self { metadata, entries: Mutex::new(HashMap::new()) }
    }

    /// The bucket's record if `tenant` owns it: AccessDenied if another tenant does, NoSuchBucket
    /// if it does not exist (both from a fresh read; only positive answers are cached).
    pub async fn owned(&self, tenant: &TenantId, name: &BucketName) -> GatewayResult<BucketRecord> {
        if let Some((at, record)) = self.entries.lock().expect("bucket cache lock").get(name)
            && at.elapsed() < Duration::from_millis(BUCKET_CACHE_TTL_MS)
            && &record.tenant == tenant
        {
            return Ok(record.clone());
        }
        let record = match self.metadata.query(Query::Bucket(name.clone())).await? {
            Answer::Bucket(record) => record,
            _ => return Err(GatewayError::Internal("unexpected answer to a bucket query".into())),
        };
        if &record.tenant != tenant {
            return Err(GatewayError::AccessDenied);
        }
        let mut entries = self.entries.lock().expect("bucket cache lock");
        if entries.len() >= BUCKET_CACHE_ENTRIES_MAX {
            entries.clear();
        }
        entries.insert(name.clone(), (Instant::now(), record.clone()));
        Ok(record)
    }

    /// Forgets a bucket (this gateway changed or deleted it).
    pub fn forget(&self, name: &BucketName) {
        self.entries.lock().expect("bucket cache lock").remove(name);
    }
}
