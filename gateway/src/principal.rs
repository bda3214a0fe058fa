//! Access keys to tenant principals, with a short-lived cache so that signature checks do not
//! cost a metadata round trip each.

use crate::error::{GatewayError, GatewayResult};
use ignifuge_meta::{MetaError, Metadata};
use ignifuge_rpc::SecretSealer;
use ignifuge_types::{AccessKeyId, TenantId, UserId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a resolved key is trusted before it is read again (bounds how long a revoked key
/// keeps working on one gateway).
pub const KEY_CACHE_TTL_MS: u64 = 10_000;
/// Most keys cached per gateway.
const KEY_CACHE_ENTRIES_MAX: usize = 10_000;
/// How long an access key the metadata does not know is answered as unknown without asking
/// again: a client hammering with a wrong key costs one metadata read per second per gateway,
/// and a key just created works at most this long after a failed attempt with it.
pub const KEY_MISS_TTL_MS: u64 = 1_000;

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
    /// Keys the metadata said it does not know, and when.
    misses: Mutex<HashMap<String, Instant>>,
}

impl KeyCache {
    pub fn new(metadata: Arc<dyn Metadata>, sealer: SecretSealer) -> Self {
        Self { metadata, sealer, entries: Mutex::new(HashMap::new()), misses: Mutex::new(HashMap::new()) }
    }

    pub async fn principal(&self, access_key: &str) -> GatewayResult<Arc<Principal>> {
        if let Some((at, p)) = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(access_key)
            && at.elapsed() < Duration::from_millis(KEY_CACHE_TTL_MS)
        {
            return Ok(p.clone());
        }
        let unknown = || GatewayError::Meta(MetaError::NoSuchAccessKey);
        if let Some(at) = self.misses.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(access_key)
            && at.elapsed() < Duration::from_millis(KEY_MISS_TTL_MS)
        {
            return Err(unknown());
        }
        let record = match self.metadata.access_key(AccessKeyId::new(access_key)).await {
            Ok(record) => record,
            Err(MetaError::NoSuchAccessKey) => {
                let mut misses = self.misses.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if misses.len() >= KEY_CACHE_ENTRIES_MAX {
                    misses.clear();
                }
                misses.insert(access_key.to_string(), Instant::now());
                return Err(unknown());
            }
            Err(e) => return Err(e.into()),
        };
        let secret = self
            .sealer
            .open(&record.access_key_id.0, &record.sealed_secret)
            .map_err(|e| GatewayError::Internal(format!("access key {access_key}: {e}")))?;
        let principal =
            Arc::new(Principal { tenant: record.tenant, user: record.user, access_key: record.access_key_id, secret });
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= KEY_CACHE_ENTRIES_MAX {
            entries.clear();
        }
        entries.insert(access_key.to_string(), (Instant::now(), principal.clone()));
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignifuge_meta::{Answer, Command, LocalMetadata, Outcome, Query};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts the queries that reach the metadata.
    struct Counting(LocalMetadata, AtomicUsize);

    #[async_trait::async_trait]
    impl Metadata for Counting {
        async fn apply(&self, command: Command) -> Result<Outcome, MetaError> {
            self.0.apply(command).await
        }
        async fn query(&self, query: Query) -> Result<Answer, MetaError> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.query(query).await
        }
    }

    #[tokio::test]
    async fn an_unknown_key_is_remembered_as_unknown_for_a_moment() {
        let metadata = Arc::new(Counting(LocalMetadata::new(Arc::new(ignifuge_kv::MemoryKv::default())), 0.into()));
        let cache = KeyCache::new(metadata.clone(), SecretSealer::new(&[7u8; 32]));
        for _ in 0..5 {
            assert!(matches!(
                cache.principal("AKIANOSUCHKEY").await,
                Err(GatewayError::Meta(MetaError::NoSuchAccessKey))
            ));
        }
        assert_eq!(metadata.1.load(Ordering::Relaxed), 1, "one metadata read for five attempts");
        tokio::time::sleep(Duration::from_millis(KEY_MISS_TTL_MS + 50)).await;
        assert!(cache.principal("AKIANOSUCHKEY").await.is_err());
        assert_eq!(metadata.1.load(Ordering::Relaxed), 2, "asked again once the miss expired");
    }
}
