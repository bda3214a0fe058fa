//! ListMultipartUploads: the uploads in progress of a bucket in AWS's order (key, then initiation
//! time), with prefix, delimiter and key and upload-id markers.
//!
//! Uploads are stored by upload id, not by key, so a page reads every upload of the bucket and
//! keeps the first `max_uploads + 1` entries after the markers in a bounded ordered set: its memory
//! is one page whatever the bucket holds, its cost proportional to the uploads in progress (about a
//! microsecond each). A page used to be chosen by the gateway from the first 10,000 uploads in id
//! order, so a bucket holding more showed an arbitrary 10,000 and said it was not truncated.

use crate::keys;
use crate::machine::StateMachine;
use crate::{LIST_MAX_KEYS, MetaError};
use ignifuge_kv::prefix_end;
use ignifuge_types::{BucketName, ObjectKey, UploadId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Hex digits of the initiation time that begins an upload id (`new_upload_id`).
const ID_TIME_DIGITS: usize = 12;

/// A new upload's id: its initiation time (ms, 12 hex digits), a dash and 128 random bits. Ids of
/// one key thus sort as their uploads were initiated, and a page that ended on an upload that
/// was completed or aborted before the next page still says where the next page begins
/// (`initiated_in`). Ids made before this (128 random bits in hex, no dash) remain valid; such a
/// marker gone between pages makes the next page list its key's uploads again.
pub fn new_upload_id(initiated_ms: i64) -> UploadId {
    UploadId::new(format!("{:0width$x}-{}", initiated_ms.max(0), ignifuge_types::random_id(), width = ID_TIME_DIGITS))
}

/// The initiation time an upload id made by `new_upload_id` carries.
fn initiated_in(id: &str) -> Option<i64> {
    let (time, _) = id.split_once('-')?;
    if time.len() != ID_TIME_DIGITS {
        return None;
    }
    i64::from_str_radix(time, 16).ok()
}

/// A ListMultipartUploads request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadListRequest {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Start after every upload of this key (or after this common prefix) ...
    pub key_marker: Option<String>,
    /// ... or, with it, after this upload of `key_marker`.
    pub upload_id_marker: Option<UploadId>,
    /// At most `LIST_MAX_KEYS`.
    pub max_uploads: usize,
}

/// What ListMultipartUploads returns of an upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSummary {
    pub key: ObjectKey,
    pub upload_id: UploadId,
    pub initiated_ms: i64,
    pub checksum_algorithm: Option<String>,
    pub checksum_type: Option<String>,
}

/// A page of ListMultipartUploads: uploads and common prefixes in one order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadPage {
    pub uploads: Vec<UploadSummary>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<UploadId>,
}

/// The fields of an upload record a listing reads (serde skips its headers, tags and ACL).
#[derive(Deserialize)]
struct ListedUpload {
    upload_id: UploadId,
    key: ObjectKey,
    initiated_ms: i64,
    #[serde(default)]
    checksum_algorithm: Option<String>,
    #[serde(default)]
    checksum_type: Option<String>,
}

/// An entry's place in the listing: a key, then the initiation time and the id of an upload of
/// it. A common prefix sorts where its string does, before all of its uploads (each of their keys
/// begins with it) and after every key before them; no upload listed as itself has the prefix
/// as its whole key (such a key is in the prefix).
type Place = (String, i64, String);

enum Entry {
    Upload(UploadSummary),
    Prefix(String),
}

/// How many upload records to read per store scan.
const SCAN_BATCH: usize = 256;

pub(crate) fn list_uploads(
    machine: &StateMachine,
    bucket: &BucketName,
    request: &UploadListRequest,
) -> Result<UploadPage, MetaError> {
    let max = request.max_uploads.min(LIST_MAX_KEYS);
    if max == 0 {
        return Ok(UploadPage::default());
    }
    let delimiter = request.delimiter.as_deref().filter(|d| !d.is_empty());
    let key_marker = request.key_marker.as_deref().filter(|m| !m.is_empty());
    // Entries at or before `after` were returned by the pages before.
    let after: Option<Place> = match key_marker {
        None => None,
        Some(marker) => Some(match &request.upload_id_marker {
            None => (marker.to_string(), i64::MAX, String::new()),
            Some(id) => {
                let stored: Option<ListedUpload> = machine.read(&keys::upload(bucket, id))?;
                match stored.filter(|u| u.key.0 == marker).map(|u| u.initiated_ms).or_else(|| initiated_in(&id.0)) {
                    Some(initiated_ms) => (marker.to_string(), initiated_ms, id.0.clone()),
                    // Gone since, and made before ids carried their time: its place is unknown,
                    // so the key's uploads again (a page may repeat uploads; it never hides one).
                    None => (marker.to_string(), i64::MIN, String::new()),
                }
            }
        }),
    };
    // The first `max + 1` entries after `after`: one more than the page tells whether it is truncated.
    let keep = max + 1;
    let mut entries: BTreeMap<Place, Entry> = BTreeMap::new();
    let prefix = keys::uploads_prefix(bucket);
    let end = prefix_end(&prefix);
    let mut cursor = prefix.clone();
    loop {
        let batch = machine.kv().scan(&cursor, end.as_deref(), SCAN_BATCH)?;
        let count = batch.len();
        for (store_key, value) in batch {
            let upload: ListedUpload = serde_json::from_slice(&value)
                .map_err(|e| MetaError::Corrupt(format!("{}: {e}", String::from_utf8_lossy(&store_key))))?;
            cursor = store_key;
            cursor.push(0);
            let Some(rest) = upload.key.0.strip_prefix(request.prefix.as_str()) else { continue };
            let place = (upload.key.0.clone(), upload.initiated_ms, upload.upload_id.0.clone());
            if after.as_ref().is_some_and(|after| place <= *after) {
                continue;
            }
            let common = delimiter
                .and_then(|d| rest.find(d).map(|at| upload.key.0[..request.prefix.len() + at + d.len()].to_string()));
            let (place, entry) = match common {
                // A common prefix the page before ended on was returned whole; one that holds the
                // marker is returned again for its uploads after it (as ListObjects does).
                Some(common) if key_marker == Some(common.as_str()) => continue,
                Some(common) => ((common.clone(), i64::MIN, String::new()), Entry::Prefix(common)),
                None => {
                    let summary = UploadSummary {
                        key: upload.key,
                        upload_id: upload.upload_id,
                        initiated_ms: upload.initiated_ms,
                        checksum_algorithm: upload.checksum_algorithm,
                        checksum_type: upload.checksum_type,
                    };
                    (place, Entry::Upload(summary))
                }
            };
            // A common prefix counts once, whichever of its uploads comes first.
            if entries.len() == keep && entries.last_key_value().is_some_and(|(last, _)| place >= *last) {
                continue;
            }
            entries.entry(place).or_insert(entry);
            if entries.len() > keep {
                entries.pop_last();
            }
        }
        if count < SCAN_BATCH {
            break;
        }
    }
    let mut page = UploadPage { is_truncated: entries.len() > max, ..UploadPage::default() };
    for (_, entry) in entries.into_iter().take(max) {
        match entry {
            Entry::Upload(upload) => {
                page.next_key_marker = Some(upload.key.0.clone());
                page.next_upload_id_marker = Some(upload.upload_id.clone());
                page.uploads.push(upload);
            }
            Entry::Prefix(common) => {
                page.next_key_marker = Some(common.clone());
                page.next_upload_id_marker = None;
                page.common_prefixes.push(common);
            }
        }
    }
    if !page.is_truncated {
        page.next_key_marker = None;
        page.next_upload_id_marker = None;
    }
    Ok(page)
}
