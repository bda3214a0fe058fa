//! Listing an ordered key range with prefix, delimiter and pagination, as S3 defines it.
//!
//! Cost is proportional to the page, not the bucket: each common prefix is skipped with one
//! seek past its last key, so a page costs the same at ten thousand and at a hundred million keys.

use crate::machine::StateMachine;
use crate::records::ObjectRecord;
use crate::{LIST_MAX_KEYS, MetaError};
use ignifuge_kv::prefix_end;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRequest {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Exclusive lower bound: a key or common prefix already returned.
    pub start_after: Option<String>,
    pub max_keys: usize,
}

/// What a listing returns of an object: never its data or its shard map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectSummary {
    pub key: ignifuge_types::ObjectKey,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPage {
    pub objects: Vec<ObjectSummary>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// The last key or common prefix returned: where the next page starts after.
    pub next_start_after: Option<String>,
}

/// How many index entries to read per store scan.
const SCAN_BATCH: usize = 256;

pub(crate) fn list(machine: &StateMachine, index_prefix: &[u8], request: &ListRequest) -> Result<ListPage, MetaError> {
    let max_keys = request.max_keys.min(LIST_MAX_KEYS);
    let mut page = ListPage::default();
    if max_keys == 0 {
        return Ok(page);
    }
    let mut range_start = index_prefix.to_vec();
    range_start.extend_from_slice(request.prefix.as_bytes());
    let range_end = prefix_end(&range_start);
    let mut cursor = range_start.clone();
    if let Some(after) = &request.start_after
        && after.as_str() >= request.prefix.as_str()
    {
        let mut k = index_prefix.to_vec();
        k.extend_from_slice(after.as_bytes());
        k.push(0); // the smallest key strictly after `after`
        cursor = cursor.max(k);
    }
    let delimiter = request.delimiter.as_deref().filter(|d| !d.is_empty());
    let mut emitted = 0usize;

    'scan: loop {
        let batch = machine.kv().scan(&cursor, range_end.as_deref(), SCAN_BATCH)?;
        if batch.is_empty() {
            break;
        }
        let batch_len = batch.len();
        for (index_key, value) in batch {
            let key = std::str::from_utf8(&index_key[index_prefix.len()..])
                .map_err(|e| MetaError::Corrupt(format!("object key is not UTF-8: {e}")))?;
            let common = delimiter.and_then(|d| {
                key[request.prefix.len()..].find(d).map(|at| key[..request.prefix.len() + at + d.len()].to_string())
            });
            if let Some(common) = common {
                let mut skip_to = index_prefix.to_vec();
                skip_to.extend_from_slice(common.as_bytes());
                let already_returned = request.start_after.as_deref().is_some_and(|a| a.starts_with(&common));
                if !already_returned {
                    if emitted == max_keys {
                        page.is_truncated = true;
                        break 'scan;
                    }
                    page.common_prefixes.push(common.clone());
                    page.next_start_after = Some(common);
                    emitted += 1;
                }
                match prefix_end(&skip_to) {
                    Some(next) => cursor = next,
                    None => break 'scan,
                }
                continue 'scan;
            }
            if emitted == max_keys {
                page.is_truncated = true;
                break 'scan;
            }
            let record: ObjectRecord = serde_json::from_slice(&value)
                .map_err(|e| MetaError::Corrupt(format!("object record of {key}: {e}")))?;
            page.next_start_after = Some(key.to_string());
            page.objects.push(ObjectSummary {
                key: record.key,
                size: record.size,
                etag: record.etag,
                last_modified_ms: record.last_modified_ms,
            });
            emitted += 1;
            cursor = index_key;
            cursor.push(0);
        }
        if batch_len < SCAN_BATCH {
            break;
        }
    }
    if !page.is_truncated {
        page.next_start_after = None;
    }
    Ok(page)
}
