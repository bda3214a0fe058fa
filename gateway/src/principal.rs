//! Access keys to tenant principals, with a short-lived cache so that signature checks do not
//! cost a metadata round trip each.

use crate::error::{GatewayError, GatewayResult};
use ignifuge_meta::{Answer, Metadata, Query};
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
        if let Some((at, p)) = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(access_key)
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
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= KEY_CACHE_ENTRIES_MAX {
            entries.clear();
        }
        entries.insert(access_key.to_string(), (Instant::now(), principal.clone()));
        Ok(principal)
    }
}
