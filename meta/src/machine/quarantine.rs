//! Records an operator sets aside. A record the background scans or the apply path cannot read
//! (a bug, damage RocksDB's checksums missed) is reported by key (`RepairReport::unreadable_keys`,
//! the logs) and holds nodes from being drained; `Command::QuarantineRecord` moves its bytes,
//! unchanged, to `keys::quarantined(key)`, out of every scan, and `Command::RestoreRecord` puts
//! them back (once a version that reads them is running, say). Only a record that does not read
//! as those readers read it can be set aside, so a quarantine can never hide a good record.
//!
//! What a quarantined object record leaves: its key reads as absent (404, not listed); its blobs
//! keep their `b/` marks and stripe records, so the orphan sweep never takes their shards, but
//! nothing surveys or repairs them any more and a node drained since takes its shards along (a
//! pack it was in is never freed: a leak). A bucket holding a quarantined record is not empty
//! (DeleteBucket refuses), so a record restored always returns to the bucket it came from.

use super::StateMachine;
use crate::MetaError;
use crate::keys;
use crate::records::*;
use ignifuge_kv::{WriteBatch, prefix_end};
use ignifuge_types::{BucketName, UploadId};

/// Most keys one `Query::QuarantinedRecords` returns.
pub const QUARANTINED_PAGE_MAX: usize = 1000;

impl StateMachine {
    /// Whether `key` is of a kind the readers that report unreadable records read, and if it is,
    /// why `value` does not read as they read it (None: it reads).
    pub(super) fn record_problem(&self, key: &[u8], value: &[u8]) -> Result<(bool, Option<String>), MetaError> {
        let decoded = |result: Result<(), serde_json::Error>| Ok((true, result.err().map(|e| e.to_string())));
        let stripes = |locations: Vec<DataLocation>| -> Result<(bool, Option<String>), MetaError> {
            for mut location in locations {
                match self.hydrate_all(&mut location) {
                    Err(MetaError::Corrupt(why)) => return Ok((true, Some(why))),
                    other => {
                        other?;
                    }
                }
            }
            Ok((true, None))
        };
        if key.starts_with(keys::PARTS_PREFIX) {
            match serde_json::from_slice::<PartData>(value) {
                Ok(part) => stripes(vec![part.location]),
                Err(e) => Ok((true, Some(e.to_string()))),
            }
        } else if key.starts_with(keys::OBJECTS_PREFIX) || key.starts_with(keys::VERSIONS_PREFIX) {
            match self.scanned_version(key, value) {
                Ok(record) => stripes(record.parts.into_iter().map(|part| part.location).collect()),
                Err(MetaError::Corrupt(why)) => Ok((true, Some(why))),
                Err(e) => Err(e),
            }
        } else if key.starts_with(keys::PACKS_PREFIX) {
            match serde_json::from_slice::<PackRecord>(value) {
                Ok(record) => stripes(vec![DataLocation::Striped(record.pack)]),
                Err(e) => Ok((true, Some(e.to_string()))),
            }
        } else if key.starts_with(keys::GARBAGE_PREFIX) {
            decoded(serde_json::from_slice::<GarbageRecord>(value).map(drop))
        } else if key.starts_with(keys::INTENTS_PREFIX) || key == keys::CLOCK || key == keys::INTENT_SWEEP_RESTED {
            decoded(serde_json::from_slice::<i64>(value).map(drop))
        } else if key.starts_with(keys::PROPOSALS_PREFIX) {
            decoded(serde_json::from_slice::<Result<Outcome, MetaError>>(value).map(drop))
        } else {
            Ok((false, None))
        }
    }

    /// `Query::Record`.
    pub(super) fn record_view(&self, key: String) -> Result<RecordView, MetaError> {
        let value = self.kv.get(key.as_bytes())?;
        let (checked, problem) = match &value {
            Some(value) => self.record_problem(key.as_bytes(), value)?,
            None => (false, None),
        };
        let quarantined = self.kv.get(&keys::quarantined(key.as_bytes()))?;
        Ok(RecordView { key, value, problem, checked, quarantined })
    }

    /// `Query::QuarantinedRecords`.
    pub(super) fn quarantined_records(&self, after: Option<String>, limit: usize) -> Result<Vec<String>, MetaError> {
        let start = match after {
            Some(after) => {
                let mut start = keys::quarantined(after.as_bytes());
                start.push(0);
                start
            }
            None => keys::QUARANTINE_PREFIX.to_vec(),
        };
        let end = prefix_end(keys::QUARANTINE_PREFIX);
        let pairs = self.kv.scan(&start, end.as_deref(), limit.clamp(1, QUARANTINED_PAGE_MAX))?;
        Ok(pairs
            .into_iter()
            .map(|(k, _)| String::from_utf8_lossy(&k[keys::QUARANTINE_PREFIX.len()..]).into_owned())
            .collect())
    }

    /// `Command::QuarantineRecord`.
    pub(super) fn quarantine_record(&self, key: String, batch: &mut WriteBatch) -> Result<Outcome, MetaError> {
        let invalid = |why: String| Err(MetaError::InvalidCommand(why));
        let Some(value) = self.kv.get(key.as_bytes())? else { return Err(MetaError::NoSuchKey) };
        match self.record_problem(key.as_bytes(), &value)? {
            (false, _) => return invalid(format!("{key:?} is not a kind of record the scans read")),
            (true, None) => return invalid(format!("{key:?} reads: there is nothing to set aside")),
            (true, Some(_)) => {}
        }
        let aside = keys::quarantined(key.as_bytes());
        if self.kv.get(&aside)?.is_some() {
            return invalid(format!("a record is quarantined under {key:?} already"));
        }
        batch.put(aside, value);
        batch.delete(key.into_bytes());
        Ok(Outcome::Done)
    }

    /// `Command::RestoreRecord`.
    pub(super) fn restore_record(&self, key: String, batch: &mut WriteBatch) -> Result<Outcome, MetaError> {
        let aside = keys::quarantined(key.as_bytes());
        let Some(value) = self.kv.get(&aside)? else { return Err(MetaError::NoSuchKey) };
        if self.kv.get(key.as_bytes())?.is_some() {
            return Err(MetaError::InvalidCommand(format!("a record is under {key:?} now: not restored over it")));
        }
        // An upload part whose upload ended meanwhile would be a part of nothing.
        if let Some(rest) = key.as_bytes().strip_prefix(keys::PARTS_PREFIX) {
            let rest = String::from_utf8_lossy(rest);
            let upload = rest.rsplit_once('/').and_then(|(upload, _)| upload.split_once('/'));
            let Some((bucket, upload)) = upload else { return Err(MetaError::NoSuchUpload) };
            let upload = keys::upload(&BucketName::new(bucket), &UploadId::new(upload));
            if self.kv.get(&upload)?.is_none() {
                return Err(MetaError::NoSuchUpload);
            }
        }
        batch.put(key.into_bytes(), value);
        batch.delete(aside);
        Ok(Outcome::Done)
    }
}
