//! Listing an ordered key range with prefix, delimiter and pagination, as S3 defines it.
//!
//! Cost is proportional to the page, not the bucket: each common prefix is skipped with one
//! seek past its last key, so a page costs the same at ten thousand and at a hundred million keys.

use crate::keys;
use crate::machine::{StateMachine, parse_sequence};
use crate::{LIST_MAX_KEYS, MetaError, NULL_VERSION};
use ignifuge_kv::{KvPair, KvStore, prefix_end};
use ignifuge_types::{BucketName, ObjectKey, VersionId};
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

/// The fields of an object record a listing needs besides its key (the index key gives it).
/// Decoding only these (serde skips the rest without allocating: the part list and the shard map
/// are most of a record) made a 1000-key page of 5+4 objects about 2x cheaper
/// (docs/benchmarks.md, listing); reading no further than these (`decode_listed`) made it cheaper
/// again.
#[derive(Debug, PartialEq, Eq)]
struct ListedRecord {
    size: u64,
    etag: String,
    last_modified_ms: i64,
    delete_marker: bool,
}

/// The record fields `decode_listed` reads; every other one is skipped.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum ListedField {
    Size,
    Etag,
    LastModifiedMs,
    DeleteMarker,
    #[serde(other)]
    Other,
}

/// What a listing needs of a record, from its JSON, reading it only as far as the fields it
/// needs. A record's JSON holds its size, ETag and date near its start and its headers,
/// checksums and parts (most of its bytes: the shard map, a pack's place) after them, so the
/// decoding stops as soon as it has those three and the ETag is not empty: only a delete marker
/// has an empty ETag (`ObjectRecord::delete_marker`; any object's is an MD5), and `delete_marker`
/// is stored after the parts, so a record with an empty ETag is read to its end. Skimming the
/// fields after the date was about a third of the metadata leader's CPU in a 1000-key LIST
/// (docs/benchmarks.md). What is not read is not checked: a record damaged after its date lists,
/// and fails where it is read whole (GET, HEAD).
fn decode_listed(json: &[u8]) -> Result<ListedRecord, String> {
    use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
    struct Fields<'a>(&'a mut Option<ListedRecord>);
    impl<'de> Visitor<'de> for Fields<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object record")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            use serde::de::Error as _;
            let (mut size, mut etag, mut last_modified_ms, mut delete_marker) = (None, None::<String>, None, false);
            loop {
                if size.is_some() && last_modified_ms.is_some() && etag.as_ref().is_some_and(|e| !e.is_empty()) {
                    break; // the rest is not read
                }
                match map.next_key::<ListedField>()? {
                    Some(ListedField::Size) => size = Some(map.next_value()?),
                    Some(ListedField::Etag) => etag = Some(map.next_value()?),
                    Some(ListedField::LastModifiedMs) => last_modified_ms = Some(map.next_value()?),
                    Some(ListedField::DeleteMarker) => delete_marker = map.next_value()?,
                    Some(ListedField::Other) => {
                        map.next_value::<IgnoredAny>()?;
                    }
                    None => break,
                }
            }
            *self.0 = Some(ListedRecord {
                size: size.ok_or_else(|| A::Error::missing_field("size"))?,
                etag: etag.ok_or_else(|| A::Error::missing_field("etag"))?,
                last_modified_ms: last_modified_ms.ok_or_else(|| A::Error::missing_field("last_modified_ms"))?,
                delete_marker,
            });
            Ok(())
        }
    }
    let mut listed = None;
    let outcome = serde_json::Deserializer::from_slice(json).deserialize_map(Fields(&mut listed));
    match (listed, outcome) {
        // Stopped early, serde_json then finds the object unfinished: not an error here.
        (Some(listed), _) => Ok(listed),
        (None, Err(e)) => Err(e.to_string()),
        (None, Ok(())) => Err("an object record without its fields".to_string()),
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPage {
    pub objects: Vec<ObjectSummary>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// The last key or common prefix returned: where the next page starts after.
    pub next_start_after: Option<String>,
}

/// A ListObjectVersions request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionListRequest {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Start after this key (or common prefix) ...
    pub key_marker: Option<String>,
    /// ... or, with it, after this version of `key_marker`.
    pub version_id_marker: Option<VersionId>,
    pub max_keys: usize,
}

/// One version or delete marker, as ListObjectVersions returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionSummary {
    /// Key, size, ETag and date (size 0 and no ETag for a delete marker).
    pub object: ObjectSummary,
    pub version: VersionId,
    pub is_latest: bool,
    pub delete_marker: bool,
}

/// A page of versions and delete markers, in key order then newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionPage {
    pub versions: Vec<VersionSummary>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<VersionId>,
}

/// How many index entries to read per store scan.
const SCAN_BATCH: usize = 256;

/// An object index entry: store key, object key, what was decoded of its record, and the bytes
/// counted for it (its JSON's length, as `counted_len` tells it for object listings).
struct IndexEntry<T> {
    store_key: Vec<u8>,
    key: String,
    record: T,
    json_len: usize,
}

/// A batch read right after skipping a common prefix: the next entry is most likely the start of
/// another common prefix, so reading a full batch of records would mostly be wasted.
const SCAN_BATCH_AFTER_SKIP: usize = 4;

/// Bytes of records read per store scan (a record of a 10,000-part object is about 2 MiB). Listings
/// count each record's JSON only, not the inline bodies after it (`stored::head`; object listings,
/// which never find where the JSON ends, as `counted_len` tells it).
const SCAN_BATCH_BYTES: usize = 1024 * 1024;

/// Record bytes (JSON, as `SCAN_BATCH_BYTES`) a listing page reads, after which it ends truncated
/// (with at least one entry): a page of 1000 records of 10,000-part objects would otherwise read
/// gigabytes.
pub(crate) const LIST_PAGE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// How much of a stored record a version listing reads: its JSON, not the inline bodies after it
/// (`stored`).
fn json_len(value: &[u8]) -> usize {
    crate::stored::head(value).len()
}

/// One batch of at most `limit` object index entries from `cursor`, each with its object key
/// decoded (the store key after `prefix_len` bytes) and its record by `decode` (from the stored
/// bytes, where the store holds them: which returns the bytes to count for it), and
/// whether the range is exhausted.
fn index_batch<T>(
    machine: &StateMachine,
    prefix_len: usize,
    cursor: &[u8],
    range_end: Option<&[u8]>,
    limit: usize,
    decode: impl Fn(&str, &[u8]) -> Result<(T, usize), MetaError>,
) -> Result<(Vec<IndexEntry<T>>, bool), MetaError> {
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut failed = None;
    machine.kv().scan_visit(cursor, range_end, limit, SCAN_BATCH_BYTES, &mut |store_key, value| {
        let decoded = std::str::from_utf8(&store_key[prefix_len..])
            .map_err(|e| MetaError::Corrupt(format!("object key is not UTF-8: {e}")))
            .and_then(|key| Ok((key.to_string(), decode(key, value)?)));
        match decoded {
            Ok((key, (record, json_len))) => {
                bytes += store_key.len() + json_len;
                out.push(IndexEntry { store_key: store_key.to_vec(), key, record, json_len });
                Some(json_len)
            }
            Err(e) => {
                failed = Some(e);
                None
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let exhausted = out.len() < limit && bytes < SCAN_BATCH_BYTES;
    Ok((out, exhausted))
}

/// What an object listing needs of a stored record, decoded where the store holds it, with the
/// bytes counted for it (`counted_len`).
fn listed(key: &str, value: &[u8]) -> Result<(ListedRecord, usize), MetaError> {
    let listed = decode_listed(value).map_err(|e| MetaError::Corrupt(format!("object record of {key}: {e}")))?;
    let counted = counted_len(value, listed.size);
    Ok((listed, counted))
}

/// The bytes of a stored record an object listing counts against its bounds, as the listings
/// did when they parsed the whole JSON (`decode_listed` never finds where it ends): the JSON's
/// length when the record's inline bodies are the whole object (the `stored` separator lies
/// exactly the object's size before the end; JSON holds no NUL byte, so it is found nowhere
/// else), else the whole record (no bodies, or bodies of some parts only: never less than its
/// JSON, whatever the headers or ACL a client made long).
fn counted_len(stored: &[u8], object_size: u64) -> usize {
    let separator = usize::try_from(object_size).ok().and_then(|size| stored.len().checked_sub(size)?.checked_sub(1));
    match separator {
        Some(at) if object_size > 0 && stored[at] == 0 => at,
        _ => stored.len(),
    }
}

/// What a version listing needs of an object index record, decoded where the store holds it.
fn listed_version(key: &str, value: &[u8]) -> Result<(ListedVersion, usize), MetaError> {
    ListedVersion::decode(value).map_err(|e| MetaError::Corrupt(format!("object record of {key}: {e}")))
}

/// The common prefix `key` rolls up into: up to the first `delimiter` after `prefix`.
fn common_prefix(key: &str, prefix: &str, delimiter: Option<&str>) -> Option<String> {
    let d = delimiter?;
    key[prefix.len()..].find(d).map(|at| key[..prefix.len() + at + d.len()].to_string())
}

/// Index entries a page may read beyond those it returns (delete markers it skips): a key range
/// full of delete markers ends the page truncated after that many, with no key or fewer keys than
/// asked (as AWS may), instead of scanning everything in one request.
pub(crate) const LIST_SKIPPED_MAX: usize = 10_000;

pub(crate) fn list(machine: &StateMachine, index_prefix: &[u8], request: &ListRequest) -> Result<ListPage, MetaError> {
    list_bounded(machine, index_prefix, request, LIST_SKIPPED_MAX)
}

pub(crate) fn list_bounded(
    machine: &StateMachine,
    index_prefix: &[u8],
    request: &ListRequest,
    skipped_max: usize,
) -> Result<ListPage, MetaError> {
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
    let mut batch_limit = SCAN_BATCH;
    let delimiter = request.delimiter.as_deref().filter(|d| !d.is_empty());
    let mut emitted = 0usize;
    let mut skipped = 0usize;
    let mut read = 0usize;
    // The last entry this page went through (a key or prefix returned, a marker skipped): where
    // a page cut before the entry in hand starts the next.
    let mut went_through: Option<String> = None;

    'scan: loop {
        let (batch, exhausted) =
            index_batch(machine, index_prefix.len(), &cursor, range_end.as_deref(), batch_limit, listed)?;
        for IndexEntry { store_key: index_key, key, record, json_len } in batch {
            let key = key.as_str();
            if read >= LIST_PAGE_BYTES_MAX && emitted > 0 {
                // Bounded work: the next page starts after the last entry returned.
                page.is_truncated = true;
                break 'scan;
            }
            read += json_len;
            if record.delete_marker {
                // A deleted key, kept for its versions: not listed, and not enough to make its
                // common prefix appear.
                skipped += 1;
                if skipped >= skipped_max {
                    // Bounded work: the next page starts after this marker, or, when its key is
                    // itself a common prefix (a deleted folder `logs/`, which a start there would
                    // take as returned), before it, after what this page went through last
                    // (nothing that prefix holds comes before its key, so nothing is hidden).
                    let folder = common_prefix(key, &request.prefix, delimiter).as_deref() == Some(key);
                    let resume = if folder { went_through.take() } else { Some(key.to_string()) };
                    if resume.is_some() {
                        page.is_truncated = true;
                        page.next_start_after = resume;
                        break 'scan;
                    }
                }
                went_through = Some(key.to_string());
                cursor = index_key;
                cursor.push(0);
                continue;
            }
            if let Some(common) = common_prefix(key, &request.prefix, delimiter) {
                let mut skip_to = index_prefix.to_vec();
                skip_to.extend_from_slice(common.as_bytes());
                // Returned by the page before when it ended on it. A start strictly inside the
                // prefix (a page that ended on a delete marker there, or a client's marker) has
                // not returned it: it is returned if a key after the start makes it, as on AWS.
                let already_returned = request.start_after.as_deref() == Some(common.as_str());
                if !already_returned {
                    if emitted == max_keys {
                        page.is_truncated = true;
                        break 'scan;
                    }
                    page.common_prefixes.push(common.clone());
                    page.next_start_after = Some(common.clone());
                    went_through = Some(common);
                    emitted += 1;
                }
                match prefix_end(&skip_to) {
                    Some(next) => cursor = next,
                    None => break 'scan,
                }
                batch_limit = SCAN_BATCH_AFTER_SKIP;
                continue 'scan;
            }
            if emitted == max_keys {
                page.is_truncated = true;
                break 'scan;
            }
            page.next_start_after = Some(key.to_string());
            went_through = Some(key.to_string());
            page.objects.push(ObjectSummary {
                key: ObjectKey::new(key),
                size: record.size,
                etag: record.etag,
                last_modified_ms: record.last_modified_ms,
            });
            emitted += 1;
            cursor = index_key;
            cursor.push(0);
        }
        if exhausted {
            break;
        }
        // A whole batch of plain keys: read bigger batches again.
        batch_limit = (batch_limit * 4).min(SCAN_BATCH);
    }
    if !page.is_truncated {
        page.next_start_after = None;
    }
    Ok(page)
}

/// Counts the entries of a version page and remembers the last one (the next page's markers).
struct Pager {
    max_keys: usize,
    emitted: usize,
    last: Option<(String, Option<VersionId>)>,
    /// Record bytes read so far.
    read: usize,
}

impl Pager {
    /// Counts `bytes` more read; true (and the page marked truncated) when the page has read
    /// `LIST_PAGE_BYTES_MAX` already and returned something.
    fn read_full(&mut self, page: &mut VersionPage, bytes: usize) -> bool {
        if self.read >= LIST_PAGE_BYTES_MAX && self.emitted > 0 {
            page.is_truncated = true;
            return true;
        }
        self.read += bytes;
        false
    }

    /// Adds an entry; false (and the page marked truncated) when the page is already full.
    fn version(&mut self, page: &mut VersionPage, entry: VersionSummary) -> bool {
        if self.emitted == self.max_keys {
            page.is_truncated = true;
            return false;
        }
        self.last = Some((entry.object.key.0.clone(), Some(entry.version.clone())));
        page.versions.push(entry);
        self.emitted += 1;
        true
    }

    fn common_prefix(&mut self, page: &mut VersionPage, prefix: String) -> bool {
        if self.emitted == self.max_keys {
            page.is_truncated = true;
            return false;
        }
        self.last = Some((prefix.clone(), None));
        page.common_prefixes.push(prefix);
        self.emitted += 1;
        true
    }
}

/// What a version listing needs of a stored record. Its version, sequence and flags follow the
/// part list in the JSON, so the record is read to its end (`decode_listed` stops before), but
/// serde skips every other field (headers, checksums, the parts with their shard maps, tags, the
/// ACL) without allocating: decoding the whole record and dropping its parts made a page of
/// versions cost more than twice a page of objects (docs/benchmarks.md, listing).
#[derive(Debug, PartialEq, Eq, Deserialize)]
struct ListedVersion {
    version: VersionId,
    size: u64,
    etag: String,
    last_modified_ms: i64,
    #[serde(default)]
    delete_marker: bool,
    #[serde(default)]
    versioned: bool,
    #[serde(default)]
    sequence: u64,
    #[serde(default)]
    promoted: bool,
}

impl ListedVersion {
    /// From a stored record (either encoding), with the length of its JSON (what the page's
    /// bounds count); the null version reads as "null" whatever id it carries, as
    /// `StateMachine::decode_version` reads it.
    fn decode(stored: &[u8]) -> Result<(Self, usize), String> {
        let json = crate::stored::head(stored);
        let mut listed: Self = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        if !listed.versioned {
            listed.version = VersionId::new(NULL_VERSION);
        }
        Ok((listed, json.len()))
    }

    fn summary(self, key: &ObjectKey, is_latest: bool) -> VersionSummary {
        VersionSummary {
            object: ObjectSummary {
                key: key.clone(),
                size: self.size,
                etag: self.etag,
                last_modified_ms: self.last_modified_ms,
            },
            version: self.version,
            is_latest,
            delete_marker: self.delete_marker,
        }
    }
}

/// A bucket's non-current versions (`v/`), read forward in step with its object index (`o/`).
/// Both are in key order (a key's chain is its key and a NUL, and no key holds a NUL), so one
/// read serves the chains of every key it spans: a key without older versions costs no seek of
/// its own (a seek per key was most of a version page's cost: docs/benchmarks.md, listing).
/// Chains are read after the index batch that names their keys and no further than its last key
/// (`begin_batch`): the store is read live, and a chain read before its key's index entry could
/// miss the version an overwrite moved between the two reads (read after it, that version is at
/// worst listed twice, as it was when each key's chain had a read of its own). What was read
/// holds every version from `from` up to `covered_to` (exclusive).
struct Chains {
    /// Where reads stop: the end of the chain of the last key of the index batch being listed.
    bound: Vec<u8>,
    read: std::collections::VecDeque<KvPair>,
    from: Vec<u8>,
    covered_to: Vec<u8>,
    /// Versions read ahead at the next read: few at first (the keys after a common prefix may
    /// have none near), doubling while reads follow one another.
    limit: usize,
}

/// Versions read ahead at first and after a jump.
const CHAIN_READ_FIRST: usize = 8;

impl Chains {
    fn new() -> Self {
        Self {
            bound: Vec::new(),
            read: Default::default(),
            from: Vec::new(),
            covered_to: Vec::new(),
            limit: CHAIN_READ_FIRST,
        }
    }

    /// A batch of the object index was read, its last key `last`: what was read before it is
    /// dropped, and reads go no further than that key's chain.
    fn begin_batch(&mut self, bucket: &BucketName, last: &str) {
        let chain = keys::version_chain(bucket, &ObjectKey::new(last));
        self.bound = prefix_end(&chain).expect("a chain ends with a NUL byte, so it has an end");
        self.read.clear();
        self.from.clear();
        self.covered_to.clear();
    }

    fn covers(&self, key: &[u8]) -> bool {
        self.from.as_slice() <= key && key < self.covered_to.as_slice()
    }

    /// The versions in [start, end) in order, as many as one read holds, and whether that is all
    /// of them. Calls come with `start` never going back, and `end` within the batch's bound.
    fn next(&mut self, kv: &dyn KvStore, start: &[u8], end: &[u8]) -> Result<(Vec<KvPair>, bool), MetaError> {
        if !self.covers(start) || (self.read.is_empty() && self.covered_to.as_slice() < end) {
            let contiguous = self.covered_to.as_slice() == start;
            self.limit = if contiguous { (self.limit * 2).min(SCAN_BATCH) } else { CHAIN_READ_FIRST };
            let read = kv.scan_heads(start, Some(&self.bound), self.limit, SCAN_BATCH_BYTES, &json_len)?;
            let bytes: usize = read.iter().map(|(k, v)| k.len() + v.len()).sum();
            self.covered_to = match read.last() {
                Some((last, _)) if read.len() >= self.limit || bytes >= SCAN_BATCH_BYTES => {
                    let mut after = last.clone();
                    after.push(0);
                    after
                }
                _ => self.bound.clone(),
            };
            self.from = start.to_vec();
            self.read = read.into();
        }
        while self.read.front().is_some_and(|(k, _)| k.as_slice() < start) {
            self.read.pop_front();
        }
        let mut chain = Vec::new();
        while self.read.front().is_some_and(|(k, _)| k.as_slice() < end) {
            chain.extend(self.read.pop_front());
        }
        // All of [start, end) is here when what was read goes past `end`; else the chain goes on
        // past it, and the next call (from its last version) reads on. (Never an empty chain
        // that is not whole: the caller would ask again from the same place.)
        let whole = end <= self.covered_to.as_slice();
        debug_assert!(whole || !chain.is_empty());
        Ok((chain, whole))
    }
}

/// A page of ListObjectVersions: the current versions (`o/`) give the keys in order (every key
/// with versions has one), and each key's non-current versions (`v/`) follow it, newest first,
/// read forward alongside (`Chains`). Cost is proportional to the page plus one seek per common
/// prefix and per key that resumes a page or holds more versions than one read.
pub(crate) fn list_versions(
    machine: &StateMachine,
    bucket: &BucketName,
    request: &VersionListRequest,
) -> Result<VersionPage, MetaError> {
    let max_keys = request.max_keys.min(LIST_MAX_KEYS);
    let mut page = VersionPage::default();
    if max_keys == 0 {
        return Ok(page);
    }
    let index_prefix = keys::objects_prefix(bucket);
    let mut range_start = index_prefix.clone();
    range_start.extend_from_slice(request.prefix.as_bytes());
    let range_end = prefix_end(&range_start);
    let mut cursor = range_start.clone();
    // Resuming inside a key: (key, version after which to go on).
    let mut resume: Option<(&str, &VersionId)> = None;
    let key_marker = request.key_marker.as_deref().filter(|m| !m.is_empty() && *m >= request.prefix.as_str());
    if let Some(marker) = key_marker {
        let mut k = index_prefix.clone();
        k.extend_from_slice(marker.as_bytes());
        match &request.version_id_marker {
            Some(version) => resume = Some((marker, version)),
            None => k.push(0),
        }
        cursor = cursor.max(k);
    }
    let delimiter = request.delimiter.as_deref().filter(|d| !d.is_empty());
    let mut pager = Pager { max_keys, emitted: 0, last: None, read: 0 };
    let mut chains = Chains::new();
    'scan: loop {
        let (batch, exhausted) =
            index_batch(machine, index_prefix.len(), &cursor, range_end.as_deref(), SCAN_BATCH, listed_version)?;
        if let Some(last) = batch.last() {
            chains.begin_batch(bucket, &last.key);
        }
        for IndexEntry { store_key: index_key, key, record: current, json_len: read } in batch {
            if let Some(common) = common_prefix(&key, &request.prefix, delimiter) {
                // As in object listings: returned only when the page before ended on it.
                let already_returned = key_marker == Some(common.as_str());
                if !already_returned && !pager.common_prefix(&mut page, common.clone()) {
                    break 'scan;
                }
                let mut skip_to = index_prefix.clone();
                skip_to.extend_from_slice(common.as_bytes());
                match prefix_end(&skip_to) {
                    Some(next) => cursor = next,
                    None => break 'scan,
                }
                continue 'scan;
            }
            if pager.read_full(&mut page, read) {
                break 'scan;
            }
            let object_key = ObjectKey::new(key.as_str());
            let chain = keys::version_chain(bucket, &object_key);
            let chain_end = prefix_end(&chain);
            let mut chain_cursor = chain.clone();
            let mut include_current = true;
            if let Some((marker, version)) = resume.take()
                && marker == key
            {
                include_current = false;
                if *version != current.version {
                    match parse_sequence(version) {
                        Some(sequence) => {
                            chain_cursor = keys::version(bucket, &object_key, sequence);
                            chain_cursor.push(0);
                        }
                        // The null version: find its place in the chain.
                        None => match machine.find_noncurrent_null(bucket, &object_key)? {
                            Some((store_key, _)) => {
                                chain_cursor = store_key;
                                chain_cursor.push(0);
                            }
                            // Deleted since the page before, which leaves no trace of its place:
                            // the key's versions again from its newest, rather than none of those
                            // after it (a page may repeat versions; it never hides one).
                            None => include_current = true,
                        },
                    }
                }
            }
            let (current_sequence, current_promoted) = (current.sequence, current.promoted);
            if include_current && !pager.version(&mut page, current.summary(&object_key, true)) {
                break 'scan;
            }
            let chain_end = chain_end.expect("a chain ends with a NUL byte, so it has an end");
            loop {
                let (versions, exhausted) = chains.next(machine.kv(), &chain_cursor, &chain_end)?;
                for (store_key, value) in versions {
                    if pager.read_full(&mut page, value.len()) {
                        break 'scan;
                    }
                    let (record, _) = ListedVersion::decode(&value).map_err(|e| {
                        MetaError::Corrupt(format!("version record {}: {e}", String::from_utf8_lossy(&store_key)))
                    })?;
                    chain_cursor = store_key;
                    chain_cursor.push(0);
                    // A promoted current version's full record: listed once, as the current one.
                    if current_promoted && record.sequence == current_sequence {
                        continue;
                    }
                    if !pager.version(&mut page, record.summary(&object_key, false)) {
                        break 'scan;
                    }
                }
                if exhausted {
                    break;
                }
            }
            cursor = index_key;
            cursor.push(0);
        }
        if exhausted {
            break;
        }
    }
    if page.is_truncated
        && let Some((key, version)) = pager.last
    {
        page.next_key_marker = Some(key);
        page.next_version_id_marker = version;
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataLocation;
    use crate::records::ObjectRecord;
    use crate::tests::object;

    fn expected(record: &ObjectRecord) -> ListedRecord {
        ListedRecord {
            size: record.size,
            etag: record.etag.clone(),
            last_modified_ms: record.last_modified_ms,
            delete_marker: record.delete_marker,
        }
    }

    #[test]
    fn a_listing_reads_a_record_as_far_as_its_date_and_a_delete_marker_to_its_end() {
        let name = "photos/2026/a \"quoted\" name";
        let striped = object(name, "0123456789abcdef0123456789abcdef", 100_000);
        let body = b"\0{\"delete_marker\":true}\0".to_vec();
        let mut inline = object(name, "0123456789abcdef0123456789abcdef", body.len() as u64);
        inline.parts[0].location = DataLocation::Inline(body);
        let mut marker = ObjectRecord::delete_marker(ObjectKey::new(name), VersionId::new("v1"), 1_700_000_000_456);
        marker.versioned = true;
        for record in [&striped, &inline, &marker] {
            let stored = crate::stored::encode_record(record);
            assert_eq!(decode_listed(&stored).unwrap(), expected(record), "{record:?}");
            // The encoding before `stored` (bodies base64 in the JSON) lists alike.
            assert_eq!(decode_listed(&serde_json::to_vec(record).unwrap()).unwrap(), expected(record));
        }
        assert!(decode_listed(&crate::stored::encode_record(&marker)).unwrap().delete_marker);

        // The reading stops after the date: what follows it is not read (a GET reads it whole).
        let stored = serde_json::to_vec(&striped).unwrap();
        let date = format!("\"last_modified_ms\":{},", striped.last_modified_ms);
        let cut = String::from_utf8(stored).unwrap().find(&date).unwrap() + date.len();
        let mut damaged = serde_json::to_vec(&striped).unwrap()[..cut].to_vec();
        damaged.extend_from_slice(b"\"headers\": not JSON");
        assert_eq!(decode_listed(&damaged).unwrap(), expected(&striped));

        // Fields in any order; an empty ETag reads on to find `delete_marker` (or its absence).
        let json = br#"{"delete_marker":true,"last_modified_ms":5,"etag":"","size":0,"parts":[]}"#;
        assert_eq!(
            decode_listed(json).unwrap(),
            ListedRecord { size: 0, etag: String::new(), last_modified_ms: 5, delete_marker: true }
        );
        let json = br#"{"etag":"","size":0,"last_modified_ms":5,"parts":[],"delete_marker":true}"#;
        assert!(decode_listed(json).unwrap().delete_marker);
        let json = br#"{"etag":"","size":0,"last_modified_ms":5,"parts":[]}"#;
        assert!(!decode_listed(json).unwrap().delete_marker);
        // Unknown fields before the three are skipped, escapes and all.
        let json = br#"{"key":"a\"b","headers":{"x":[1,{"y":null}]},"size":7,"etag":"e","last_modified_ms":9}"#;
        assert_eq!(
            decode_listed(json).unwrap(),
            ListedRecord { size: 7, etag: "e".into(), last_modified_ms: 9, delete_marker: false }
        );

        // What is missing or damaged before the three is an error.
        assert!(decode_listed(br#"{"size":7,"etag":"e"}"#).unwrap_err().contains("last_modified_ms"));
        assert!(decode_listed(br#"{"size":"seven","etag":"e","last_modified_ms":9}"#).is_err());
        assert!(decode_listed(br#"{"size":7,"etag":"e""#).is_err());
        assert!(decode_listed(b"").is_err());
        assert!(decode_listed(b"[1,2]").is_err());
    }

    #[test]
    fn a_version_listing_reads_of_a_record_what_the_whole_record_says() {
        let key = ObjectKey::new("photos/a \"quoted\" name");
        let mut versioned = object(&key.0, "0123456789abcdef0123456789abcdef", 100_000);
        (versioned.versioned, versioned.sequence, versioned.version) = (true, 7, VersionId::new("v7"));
        versioned.tags = vec![("after".into(), "the parts".into())];
        let mut promoted = versioned.clone();
        promoted.parts.clear();
        promoted.promoted = true;
        // A null version keeps whatever id it was written with; it lists as "null".
        let mut null = object(&key.0, "fedcba9876543210fedcba9876543210", 3);
        null.version = VersionId::new("written-before-versioning");
        null.parts[0].location = DataLocation::Inline(b"\0ab".to_vec());
        let mut marker = ObjectRecord::delete_marker(key.clone(), VersionId::new("v9"), 1_700_000_000_456);
        (marker.versioned, marker.sequence) = (true, 9);
        for record in [&versioned, &promoted, &null, &marker] {
            for stored in [crate::stored::encode_record(record), serde_json::to_vec(record).unwrap()] {
                let (listed, json_len) = ListedVersion::decode(&stored).unwrap();
                assert_eq!(json_len, crate::stored::head(&stored).len());
                let mut whole = crate::stored::decode_record(&stored).unwrap();
                if whole.is_null_version() {
                    whole.version = VersionId::new(NULL_VERSION);
                }
                assert_eq!(
                    (listed.sequence, listed.promoted, listed.versioned),
                    (whole.sequence, whole.promoted, whole.versioned),
                    "{record:?}"
                );
                let summary = VersionSummary {
                    object: ObjectSummary {
                        key: whole.key.clone(),
                        size: whole.size,
                        etag: whole.etag.clone(),
                        last_modified_ms: whole.last_modified_ms,
                    },
                    version: whole.version.clone(),
                    is_latest: true,
                    delete_marker: whole.delete_marker,
                };
                assert_eq!(listed.summary(&key, true), summary);
            }
        }
        assert_eq!(ListedVersion::decode(&serde_json::to_vec(&null).unwrap()).unwrap().0.version.0, "null");
        assert!(ListedVersion::decode(&serde_json::to_vec(&marker).unwrap()).unwrap().0.delete_marker);
        // A record damaged anywhere is an error (a version listing reads it to its end).
        let mut damaged = serde_json::to_vec(&versioned).unwrap();
        damaged.truncate(damaged.len() - 2);
        assert!(ListedVersion::decode(&damaged).is_err());
        assert!(listed_version("k", &damaged).unwrap_err().to_string().contains("object record of k"));
    }
}
