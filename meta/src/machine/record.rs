//! A record as an operator sees it (`Query::Record`, `ignifuge admin record KEY`): its bytes and
//! whether it reads as the background scans and the apply path read a record of its kind. A
//! record they cannot read is reported by key (`RepairReport::unreadable_keys`, the logs); this
//! shows what is under the key and why it does not read. Read on the leader, the replica the
//! scans read too.

use super::StateMachine;
use crate::MetaError;
use crate::keys;
use crate::records::*;
use ignifuge_types::BucketName;

impl StateMachine {
    /// Whether `key` is of a kind the readers that report unreadable records read, and if it is,
    /// why `value` does not read as they read it (None: it reads).
    fn record_problem(&self, key: &[u8], value: &[u8]) -> Result<(bool, Option<String>), MetaError> {
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
        // The scans read the bucket record of every upload part and version too.
        let bucket = |prefix: &[u8]| -> Result<Option<String>, MetaError> {
            let rest = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            let Some((bucket, _)) = rest.split_once('/') else { return Ok(None) };
            match self.read::<BucketRecord>(&keys::bucket(&BucketName::new(bucket))) {
                Err(MetaError::Corrupt(why)) => Ok(Some(format!("its bucket's record: {why}"))),
                other => other.map(|_| None),
            }
        };
        if key.starts_with(keys::PARTS_PREFIX) {
            if let Some(why) = bucket(keys::PARTS_PREFIX)? {
                return Ok((true, Some(why)));
            }
            match serde_json::from_slice::<PartData>(value) {
                Ok(part) => stripes(vec![part.location]),
                Err(e) => Ok((true, Some(e.to_string()))),
            }
        } else if let Some(prefix) =
            [keys::OBJECTS_PREFIX, keys::VERSIONS_PREFIX].into_iter().find(|prefix| key.starts_with(prefix))
        {
            if let Some(why) = bucket(prefix)? {
                return Ok((true, Some(why)));
            }
            match self.scanned_version(key, value) {
                Ok(record) => stripes(record.parts.into_iter().map(|part| part.location).collect()),
                Err(MetaError::Corrupt(why)) => Ok((true, Some(why))),
                Err(e) => Err(e),
            }
        } else if key.starts_with(keys::BUCKETS_PREFIX) {
            decoded(serde_json::from_slice::<BucketRecord>(value).map(drop))
        } else if key.starts_with(keys::PACKS_PREFIX) {
            match serde_json::from_slice::<PackRecord>(value) {
                Ok(record) => stripes(vec![DataLocation::Striped(record.pack)]),
                Err(e) => Ok((true, Some(e.to_string()))),
            }
        } else if key.starts_with(keys::GARBAGE_PREFIX) {
            match serde_json::from_slice::<GarbageRecord>(value) {
                Ok(garbage) => stripes(vec![garbage.location]),
                Err(e) => Ok((true, Some(e.to_string()))),
            }
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
        Ok(RecordView { key, value, problem, checked })
    }
}
