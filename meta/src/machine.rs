//! Applies commands to the ordered store: validation, then one atomic batch.

use crate::keys;
use crate::list::{self, ListPage, ListRequest};
use crate::maintenance::*;
use crate::records::*;
use crate::stored;
use crate::{BLOB_SCAN_PAGE_MAX, DOMAINS_LISTED_MAX, MULTIPART_MIN_PART_SIZE_BYTES, MetaError, SCAN_PAGE_BYTES_MAX};
use ignifuge_kv::{Durability, KvError, KvStore, WriteBatch, prefix_end};
use ignifuge_types::{
    BlobId, BucketIncarnation, BucketName, LayoutVersion, ObjectKey, ProposalId, TenantId, UploadId, VersionId,
    WebDomain,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

mod packs;
mod record;
pub use packs::PACK_USAGE_PAGE_MAX;

/// Applying an entry of a replicated log does not fsync: the entry is already fsynced in the log
/// of a majority, and the applied position is written atomically with the state, so after a
/// power loss the replica re-applies from its last durable position. (A process crash loses
/// nothing: the store's write-ahead log is in the page cache. Snapshots, after which the log is
/// purged, are written synced, which syncs everything before them.) Measured: this removes one
/// fsync per commit on every replica (docs/benchmarks.md).
const REPLICATED_APPLY: Durability = Durability::Buffered;

/// How long an applied proposal's id is remembered for idempotent retries, in the state
/// machine's clock (leader time, never going back). A caller retries for at most
/// `META_FAILOVER_DEADLINE_MS` (15 s) and settles an unknown outcome right after.
pub const PROPOSAL_DEDUP_WINDOW_MS: i64 = 10 * 60 * 1000;
/// And for at least this many log entries, whatever the clock says. The clock moves at most
/// `CLOCK_STEP_MAX_MS` per proposal, so after a quiet spell (only lease renewals, every 10 s) it
/// trails the leader's time by as long, and when clients come back it catches up a second per
/// proposal: by the clock alone an id would be forgotten after 600 proposals, 15 s at 40 a
/// second, within a caller's retries. 100,000 entries outlast those 20 s at 5,000 proposals a
/// second, and keep at most that many ids (a few MB) on a quiet cluster.
pub const PROPOSALS_REMEMBERED_MIN_ENTRIES: u64 = 100_000;
/// Most the state machine's clock advances per applied proposal.
pub const CLOCK_STEP_MAX_MS: i64 = 1_000;
/// Old proposal ids forgotten per applied proposal (bounds the work of one apply).
const PROPOSALS_FORGOTTEN_PER_APPLY: usize = 8;

/// An intent not renewed for this long belongs to a write that died (a live one is renewed every
/// minute while its body streams); its key is forgotten. Writes that died after placing shards
/// lose theirs when the orphan sweep fences the blob; this catches those that placed none.
pub const INTENT_FORGOTTEN_AFTER_MS: i64 = 24 * 60 * 60 * 1000;
/// Records (and stripes) read at once by the durability report.
pub(crate) const DURABILITY_PAGE_RECORDS: usize = 1024;
/// Intents examined per applied proposal by that sweep.
const INTENTS_EXAMINED_PER_APPLY: usize = 4;
/// After the sweep reaches the last intent, it rests this long (state machine clock) before it
/// starts again from the first: starting over at once made every proposal step over the
/// tombstones of every intent removed since the store last compacted, whenever few intents
/// were live. Against the 24 h after which an intent is forgotten, a minute changes nothing.
pub const INTENT_SWEEP_REST_MS: i64 = 60 * 1000;

/// Longest time from a blob's first byte (`StripedBlob::born_ms`, its gateway's clock) to the
/// command that first references it (the leader's stamp). A body that streams longer than this
/// is refused at commit (BlobReclaimed: the client retries); with it, a commit that names a blob
/// fenced by the orphan sweep can only come within this window of the fence.
pub const BLOB_COMMIT_WINDOW_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// How long the orphan sweep's tombstone of a fenced blob (`k/<blob>`) is kept, in leader time:
/// the commit window plus an hour for the clocks of gateways and leaders to disagree (internode
/// requests are refused past 5 minutes of difference, so any two leaders' clocks are within 10).
pub const RECLAIMED_KEPT_MS: i64 = BLOB_COMMIT_WINDOW_MS + 60 * 60 * 1000;

/// How long a completed multipart upload's answer is kept for retries (`CompletedUploadRecord`).
pub const COMPLETED_UPLOAD_KEPT_MS: i64 = 24 * 60 * 60 * 1000;

/// How long after a blob became garbage reads may still hold it (`Command::HoldGarbage`): a
/// day, a 5 TiB object read at 64 MB/s. A read that trickles longer (or a client that takes a
/// few bytes now and then) cannot keep a deleted object's space for ever; past this, the
/// collector reclaims the blob a grace after its last hold, and such a read fails there.
pub const GARBAGE_HOLD_MAX_MS: i64 = 24 * 60 * 60 * 1000;
/// Most garbage records read by one `Query::Garbage`.
const GARBAGE_SCAN_MAX: usize = 10_000;

/// The metadata state machine over an ordered store. `apply` must be called by one writer at a
/// time, in log order; reads may run concurrently.
pub struct StateMachine {
    kv: Arc<dyn KvStore>,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("metadata records always serialise")
}

impl StateMachine {
    pub fn new(kv: Arc<dyn KvStore>) -> Self {
        Self { kv }
    }

    pub(crate) fn kv(&self) -> &dyn KvStore {
        self.kv.as_ref()
    }

    pub(crate) fn read<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, MetaError> {
        match self.kv.get(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| MetaError::Corrupt(format!("{}: {e}", String::from_utf8_lossy(key)))),
        }
    }

    /// A bookkeeping record that the caller steps over when it does not decode (reported by
    /// `unreadable_record`), rather than fail a command or query that would then fail alike on
    /// every replica, round after round: `Err(())` when it does not decode.
    fn read_or_pass_over<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<Result<T, ()>>, MetaError> {
        match self.kv.get(key)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| {
                unreadable_record(key, None, e.to_string());
            }))),
        }
    }

    fn scan_records<T: DeserializeOwned>(&self, prefix: &[u8], limit: usize) -> Result<Vec<T>, MetaError> {
        let end = prefix_end(prefix);
        self.kv
            .scan(prefix, end.as_deref(), limit)?
            .into_iter()
            .map(|(k, v)| {
                serde_json::from_slice(&v)
                    .map_err(|e| MetaError::Corrupt(format!("{}: {e}", String::from_utf8_lossy(&k))))
            })
            .collect()
    }

    fn has_any(&self, prefix: &[u8]) -> Result<bool, MetaError> {
        let end = prefix_end(prefix);
        Ok(!self.kv.scan(prefix, end.as_deref(), 1)?.is_empty())
    }

    /// Applies one command atomically and durably.
    pub fn apply(&self, command: Command) -> Result<Outcome, MetaError> {
        let mut batch = WriteBatch::new();
        let outcome = self.plan(command, None, &mut batch)?;
        if !batch.is_empty() {
            self.kv.write(batch, Durability::Synced)?;
        }
        Ok(outcome)
    }

    /// Applies one proposal of a replicated log, the entry at `log_index`. `extra` (the log
    /// position applied) is written in the same atomic batch whether the command succeeds or is
    /// refused, so a replica never re-applies or skips an entry after a crash. A proposal whose id
    /// was already applied returns the recorded outcome and changes nothing; ids are remembered
    /// for `PROPOSAL_DEDUP_WINDOW_MS` of proposal time, a deterministic clock carried in the log,
    /// and for `PROPOSALS_REMEMBERED_MIN_ENTRIES` log entries (the same on every replica). The
    /// outer error is a storage failure (the replica cannot go on); the inner one is the command's
    /// deterministic outcome.
    pub fn apply_proposal_logged(
        &self,
        proposal: Proposal,
        log_index: u64,
        mut extra: WriteBatch,
    ) -> Result<Result<Outcome, MetaError>, KvError> {
        if let Some(outcome) = self.recorded_outcome(&proposal.id)? {
            self.kv.write(extra, REPLICATED_APPLY)?;
            return Ok(outcome);
        }
        // The clock that ages proposal ids follows the leader's time, never goes back, moves at
        // most `CLOCK_STEP_MAX_MS` per entry (a leader whose clock jumps ahead cannot make the
        // ids of the last minutes be forgotten at once), and no gateway's clock moves it.
        // One that does not decode is recovered (and rewritten) from the newest proposal age,
        // which every apply stamps with the clock: failing the apply would stop every replica at
        // this entry alike.
        let mut unreadable = false;
        let stored: Option<i64> = match self.kv.get(keys::CLOCK)? {
            Some(bytes) => match serde_json::from_slice(&bytes) {
                Ok(clock) => Some(clock),
                Err(e) => {
                    unreadable_record(keys::CLOCK, None, format!("state machine clock: {e}"));
                    unreadable = true;
                    self.clock_from_proposal_ages()?
                }
            },
            None => None,
        };
        let clock = match stored {
            Some(stored) => stored.max(proposal.issued_ms.min(stored.saturating_add(CLOCK_STEP_MAX_MS))),
            None => proposal.issued_ms,
        };
        let stored = stored.unwrap_or(i64::MIN);
        if clock != stored || unreadable {
            extra.put(keys::CLOCK.to_vec(), encode(&clock));
        }
        // Proposal ages are written with this clock, which never goes back, so every age key
        // below the cursor is forgotten already: the scan starts there, not over the tombstones
        // of every id forgotten since the store last compacted (that made each apply cost in
        // proportion to the ids forgotten: docs/benchmarks.md, "The metadata at scale").
        let horizon = keys::proposal_age(clock - PROPOSAL_DEDUP_WINDOW_MS, &ProposalId::new(""));
        let from = self.kv.get(keys::PROPOSAL_AGE_CURSOR)?.unwrap_or_else(|| keys::PROPOSAL_AGE_PREFIX.to_vec());
        let mut forgotten = if from < horizon {
            self.kv.scan(&from, Some(&horizon), PROPOSALS_FORGOTTEN_PER_APPLY)?
        } else {
            Vec::new()
        };
        // Past the clock's window, an id is still kept until it is old enough in log entries;
        // the age's value is the entry that recorded it (none for entries aged by the clock
        // alone: appended before format 11; a value that does not decode is aged so too, rather
        // than kept for good, which would stop forgetting at it). Ages in clock order are in
        // apply order but for ties: stopping at the first one kept keeps a few a little longer.
        let remembered_from = log_index.saturating_sub(PROPOSALS_REMEMBERED_MIN_ENTRIES);
        if let Some(kept) = forgotten.iter().position(|(_, recorded_at)| {
            serde_json::from_slice::<u64>(recorded_at).is_ok_and(|at| at > remembered_from)
        }) {
            forgotten.truncate(kept);
        }
        if let Some((last, _)) = forgotten.last() {
            let mut next = last.clone();
            next.push(0);
            extra.put(keys::PROPOSAL_AGE_CURSOR.to_vec(), next);
        }
        for (age_key, _) in forgotten {
            let id = String::from_utf8_lossy(&age_key[keys::PROPOSAL_AGE_PREFIX.len() + 21..]).into_owned();
            extra.delete(keys::proposal(&ProposalId::new(id)));
            extra.delete(age_key);
        }
        let horizon = format!("x/{:020}/", (clock - COMPLETED_UPLOAD_KEPT_MS).max(0)).into_bytes();
        for (age_key, _) in
            self.kv.scan(keys::COMPLETED_UPLOAD_AGE_PREFIX, Some(&horizon), PROPOSALS_FORGOTTEN_PER_APPLY)?
        {
            // `x/<20 digits>/<bucket>/<id>` ages `w/<bucket>/<id>`.
            let mut answer = b"w/".to_vec();
            answer.extend_from_slice(&age_key[keys::COMPLETED_UPLOAD_AGE_PREFIX.len() + 21..]);
            extra.delete(answer);
            extra.delete(age_key);
        }
        // Tombstones of fenced blobs past the commit window (leader time, see `RECLAIMED_KEPT_MS`).
        let horizon = keys::reclaimed_age(proposal.issued_ms.saturating_sub(RECLAIMED_KEPT_MS), &BlobId::new(""));
        for (age_key, _) in self.kv.scan(keys::RECLAIMED_AGE_PREFIX, Some(&horizon), PROPOSALS_FORGOTTEN_PER_APPLY)? {
            // `y/<20 digits>/<blob>` ages `k/<blob>`.
            let blob =
                BlobId::new(String::from_utf8_lossy(&age_key[keys::RECLAIMED_AGE_PREFIX.len() + 21..]).into_owned());
            extra.delete(keys::reclaimed_blob(&blob));
            extra.delete(age_key);
        }
        self.sweep_intents(clock, &mut extra)?;
        let mut batch = WriteBatch::new();
        let age = age_value(proposal.aged_by_entries, log_index);
        let outcome = match proposal.command {
            // Settling another proposal: its outcome if it was applied, else it is recorded as
            // abandoned so that it can never be applied after this.
            Command::Abandon { proposal: target } => match self.recorded_outcome(&target)? {
                Some(outcome) => outcome,
                None => {
                    let abandoned: Result<Outcome, MetaError> = Err(MetaError::Abandoned);
                    batch.put(keys::proposal(&target), encode(&abandoned));
                    batch.put(keys::proposal_age(clock, &target), age.clone());
                    abandoned
                }
            },
            command => match self.plan(command, Some(proposal.issued_ms), &mut batch) {
                Ok(outcome) => Ok(outcome),
                Err(MetaError::Storage(e)) => return Err(KvError::Engine(e)),
                Err(refused) => {
                    batch = WriteBatch::new();
                    Err(refused)
                }
            },
        };
        batch.put(keys::proposal(&proposal.id), encode(&outcome));
        batch.put(keys::proposal_age(clock, &proposal.id), age);
        batch.ops.extend(extra.ops);
        self.kv.write(batch, REPLICATED_APPLY)?;
        Ok(outcome)
    }

    /// The clock as the newest proposal age key was stamped with (`e/<20 digits>/<id>`): the
    /// clock of the last apply that recorded an outcome, on every replica alike; None if there is
    /// none or it cannot be read.
    fn clock_from_proposal_ages(&self) -> Result<Option<i64>, KvError> {
        let end = prefix_end(keys::PROPOSAL_AGE_PREFIX).expect("a prefix short of 0xff bytes");
        let Some((newest, _)) = self.kv.last(keys::PROPOSAL_AGE_PREFIX, &end)? else { return Ok(None) };
        let digits = newest.get(keys::PROPOSAL_AGE_PREFIX.len()..keys::PROPOSAL_AGE_PREFIX.len() + 20);
        Ok(digits.and_then(|d| std::str::from_utf8(d).ok()).and_then(|d| d.parse().ok()))
    }

    /// A few intents after the sweep's cursor: those not renewed for `INTENT_FORGOTTEN_AFTER_MS`
    /// of the state machine's clock are forgotten. The cursor wraps at the end of the intents, so
    /// every intent is examined again and again as proposals are applied.
    fn sweep_intents(&self, clock: i64, extra: &mut WriteBatch) -> Result<(), KvError> {
        if let Some(rested) = self.kv.get(keys::INTENT_SWEEP_RESTED)? {
            // A rest mark that does not decode ends the rest (and is removed), rather than stop
            // every replica at this entry alike.
            match serde_json::from_slice::<i64>(&rested) {
                Ok(rested) if clock < rested.saturating_add(INTENT_SWEEP_REST_MS) => return Ok(()),
                Ok(_) => {}
                Err(e) => {
                    unreadable_record(keys::INTENT_SWEEP_RESTED, None, format!("intent sweep rest mark: {e}"));
                }
            }
            extra.delete(keys::INTENT_SWEEP_RESTED.to_vec());
        }
        let cursor = self.kv.get(keys::INTENT_SWEEP_CURSOR)?;
        let start = cursor.clone().unwrap_or_else(|| keys::INTENTS_PREFIX.to_vec());
        let end = prefix_end(keys::INTENTS_PREFIX);
        let examined = self.kv.scan(&start, end.as_deref(), INTENTS_EXAMINED_PER_APPLY)?;
        for (key, value) in &examined {
            // One that cannot be read is kept (it only spares a blob from the orphan sweep):
            // failing the apply would stop every replica at this entry alike.
            let renewed_ms: i64 = match serde_json::from_slice(value) {
                Ok(renewed_ms) => renewed_ms,
                Err(e) => {
                    unreadable_record(key, None, format!("intent record: {e}"));
                    continue;
                }
            };
            if renewed_ms < clock - INTENT_FORGOTTEN_AFTER_MS {
                extra.delete(key.clone());
            }
        }
        match examined.last() {
            Some((last, _)) if examined.len() == INTENTS_EXAMINED_PER_APPLY => {
                let mut next = last.clone();
                next.push(0);
                extra.put(keys::INTENT_SWEEP_CURSOR.to_vec(), next);
            }
            // The end: start over from the first intent, after a rest.
            _ => {
                if cursor.is_some() {
                    extra.delete(keys::INTENT_SWEEP_CURSOR.to_vec());
                }
                extra.put(keys::INTENT_SWEEP_RESTED.to_vec(), encode(&clock));
            }
        }
        Ok(())
    }

    /// The outcome recorded for an applied (or abandoned) proposal, if its id is remembered. One
    /// recorded but not readable is answered as unknown (`MetaError::Corrupt`, not a known
    /// refusal): the proposal was applied or fenced, but what it answered is lost, so its caller
    /// must neither take it as not done (and give its blobs up) nor as done; the record stays as
    /// it is, so that it is never applied again. Failing the apply instead would stop every
    /// replica at this entry alike.
    fn recorded_outcome(&self, id: &ProposalId) -> Result<Option<Result<Outcome, MetaError>>, KvError> {
        let key = keys::proposal(id);
        Ok(self.kv.get(&key)?.map(|bytes| {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                unreadable_record(&key, None, format!("recorded outcome: {e}"));
                Err(MetaError::Corrupt(format!("the recorded outcome of proposal {id} does not decode: {e}")))
            })
        }))
    }

    /// Writes a batch of the replication layer's own keys (an entry with no command).
    pub fn apply_logged_batch(&self, batch: WriteBatch) -> Result<(), KvError> {
        self.kv.write(batch, REPLICATED_APPLY)
    }

    /// What `command` does to the state, into `batch`, and its outcome.
    /// `stamp`: the leader's time on the proposal (`Proposal::issued_ms`); None when the command
    /// is applied in-process (`apply`), where no blob is old and tombstones carry no age.
    fn plan(&self, command: Command, stamp: Option<i64>, batch: &mut WriteBatch) -> Result<Outcome, MetaError> {
        let outcome = self.plan_command(command, stamp, batch)?;
        // A pack's grace before its shards go runs from the leader's time on the entry that
        // freed its last slot (or now, applied in-process).
        self.settle_packs(stamp.unwrap_or_else(ignifuge_types::time::now_ms), batch)?;
        match outcome {
            // Outcomes are kept (for retries) and sent back: an object's parts, up to 10,000 of
            // them, stay in its record.
            Outcome::Object(mut record) => {
                record.parts = Vec::new();
                Ok(Outcome::Object(record))
            }
            Outcome::Packed(mut outcomes) => {
                for record in outcomes.iter_mut().flatten() {
                    record.parts = Vec::new();
                }
                Ok(Outcome::Packed(outcomes))
            }
            outcome => Ok(outcome),
        }
    }

    fn plan_command(&self, command: Command, stamp: Option<i64>, batch: &mut WriteBatch) -> Result<Outcome, MetaError> {
        match command {
            Command::CreateTenant(tenant) => {
                let key = keys::tenant(&tenant.id);
                if self.kv.get(&key)?.is_some() {
                    return Err(MetaError::TenantAlreadyExists);
                }
                batch.put(key, encode(&tenant));
                Ok(Outcome::Done)
            }
            Command::CreateAccessKey(record) => {
                self.tenant(&record.tenant)?;
                batch.put(keys::access_key(&record.access_key_id), encode(&record));
                Ok(Outcome::Done)
            }
            Command::DeleteAccessKey(id) => {
                let key = keys::access_key(&id);
                if self.kv.get(&key)?.is_none() {
                    return Err(MetaError::NoSuchAccessKey);
                }
                batch.delete(key);
                Ok(Outcome::Done)
            }
            Command::Abandon { .. } => Err(MetaError::Abandoned), // only meaningful in a replicated log
            Command::CreateBucket(bucket) => {
                self.tenant(&bucket.tenant)?;
                if let Some(existing) = self.read::<BucketRecord>(&keys::bucket(&bucket.name))? {
                    return Err(if existing.tenant == bucket.tenant {
                        MetaError::BucketAlreadyOwnedByYou
                    } else {
                        MetaError::BucketAlreadyExists
                    });
                }
                batch.put(keys::bucket(&bucket.name), encode(&bucket));
                batch.put(keys::tenant_bucket(&bucket.tenant, &bucket.name), Vec::new());
                Ok(Outcome::Done)
            }
            Command::DeleteBucket { bucket } => {
                let BucketRecord { tenant, name: bucket, .. } = self.checked_bucket(&bucket)?;
                if self.has_any(&keys::objects_prefix(&bucket))?
                    || self.has_any(&keys::versions_prefix(&bucket))?
                    || self.has_any(&keys::uploads_prefix(&bucket))?
                {
                    return Err(MetaError::BucketNotEmpty);
                }
                batch.delete(keys::bucket(&bucket));
                batch.delete(keys::tenant_bucket(&tenant, &bucket));
                Ok(Outcome::Done)
            }
            Command::PutObject { bucket, mut record, condition, leader_ms } => {
                let bucket = self.checked_bucket(&bucket)?;
                let current = self.current(&bucket.name, &record.key)?;
                condition.check(current.as_ref())?;
                for part in &mut record.parts {
                    self.admit_blob(&mut part.location, stamp, batch)?;
                }
                let since_ms = leader_ms.unwrap_or(record.last_modified_ms);
                let record = self.install(&bucket, record, current, since_ms, batch)?;
                Ok(Outcome::Object(Box::new(record)))
            }
            Command::PutPacked { pack, objects, member_versions, leader_ms } => {
                self.put_packed(pack, objects, member_versions, leader_ms, stamp, batch)
            }
            Command::RepackObjects { pack, moves } => self.repack_objects(pack, moves, stamp, batch),
            Command::DeleteObject { bucket, key, condition, now_ms, version, marker_nonce } => {
                let bucket = self.checked_bucket(&bucket)?;
                let deletion = ObjectDeletion { key, condition, version, marker_nonce };
                let Deleted { version, delete_marker } = self.delete_object(&bucket, deletion, now_ms, batch)?;
                Ok(Outcome::DeletedVersion { version, delete_marker })
            }
            Command::DeleteObjects { bucket, deletions, now_ms } => {
                let bucket = self.checked_bucket(&bucket)?;
                if deletions.len() > crate::DELETE_OBJECTS_MAX_KEYS {
                    return Err(MetaError::InvalidCommand(format!("{} deletions in one batch", deletions.len())));
                }
                // Each deletion reads the state before the batch: a key named twice would not see
                // its own first deletion.
                let mut keys_named = std::collections::HashSet::with_capacity(deletions.len());
                if let Some(twice) = deletions.iter().find(|d| !keys_named.insert(&d.key)) {
                    return Err(MetaError::InvalidCommand(format!("key {} named twice in one batch", twice.key)));
                }
                let mut outcomes = Vec::with_capacity(deletions.len());
                for deletion in deletions {
                    // Each key's writes join the batch only if its deletion is done.
                    let mut own = WriteBatch::new();
                    match self.delete_object(&bucket, deletion, now_ms, &mut own) {
                        Ok(deleted) => {
                            batch.ops.extend(own.ops);
                            outcomes.push(Ok(deleted));
                        }
                        Err(e @ MetaError::Storage(_)) => return Err(e),
                        Err(refused) => outcomes.push(Err(refused)),
                    }
                }
                Ok(Outcome::Deletions(outcomes))
            }
            Command::CreateUpload { bucket, upload } => {
                self.checked_bucket(&bucket)?;
                if upload.bucket != bucket.name {
                    return Err(MetaError::NoSuchBucket);
                }
                batch.put(keys::upload(&upload.bucket, &upload.upload_id), encode(&upload));
                Ok(Outcome::Done)
            }
            Command::PutUploadPart { bucket, upload_id, mut part, leader_ms } => {
                self.checked_bucket(&bucket)?;
                let bucket = bucket.name;
                self.upload(&bucket, &upload_id)?;
                self.admit_blob(&mut part.location, stamp, batch)?;
                let key = keys::part(&bucket, &upload_id, part.part_number);
                if let Some(old) = self.read::<PartData>(&key)? {
                    let since_ms = leader_ms.unwrap_or(part.last_modified_ms);
                    // The upload that began later is the part, even when the earlier one (a
                    // request that stalled, then its retry) commits last: that one arrives
                    // already replaced.
                    if old.began_after(&part) {
                        garbage_of_part(&part, since_ms, batch);
                        return Ok(Outcome::Done);
                    }
                    garbage_of_part(&old, since_ms, batch);
                }
                batch.put(key, encode(&part));
                Ok(Outcome::Done)
            }
            Command::CompleteUpload { bucket, upload_id, parts, mut record, condition, leader_ms } => {
                let bucket_record = self.checked_bucket(&bucket)?;
                let bucket = bucket.name;
                let parts: Vec<CompletedPart> = parts
                    .into_iter()
                    .map(|p| CompletedPart { part_number: p.part_number, etag: strip_quotes(&p.etag).to_string() })
                    .collect();
                let upload = match self.upload(&bucket, &upload_id) {
                    Ok(upload) => upload,
                    // Completed already (a retry racing the first completion): the same parts get
                    // the same answer, and nothing is written again.
                    Err(MetaError::NoSuchUpload) => {
                        return match self.read::<CompletedUploadRecord>(&keys::completed_upload(&bucket, &upload_id))? {
                            Some(done) if done.is_repeated_by(&record.key, &parts) => {
                                Ok(Outcome::Object(Box::new(done.object)))
                            }
                            _ => Err(MetaError::NoSuchUpload),
                        };
                    }
                    Err(e) => return Err(e),
                };
                let stored = self.parts(&bucket, &upload_id)?;
                record.parts = choose_parts(&stored, &parts)?;
                record.key = upload.key.clone();
                record.tags = upload.tags.clone();
                record.acl = upload.acl.clone();
                record.size = record.parts.iter().map(|p| p.size).sum();
                let current = self.current(&bucket, &upload.key)?;
                condition.check(current.as_ref())?;
                let since_ms = leader_ms.unwrap_or(record.last_modified_ms);
                // Both lists are in part order: one pass finds the parts not completed.
                let mut chosen = record.parts.iter().map(|p| p.part_number).peekable();
                for part in &stored {
                    while chosen.next_if(|n| *n < part.part_number).is_some() {}
                    if chosen.peek() != Some(&part.part_number) {
                        garbage_of_part(part, since_ms, batch);
                    }
                    batch.delete(keys::part(&bucket, &upload_id, part.part_number));
                }
                batch.delete(keys::upload(&bucket, &upload_id));
                let record = self.install(&bucket_record, record, current, since_ms, batch)?;
                let done =
                    CompletedUploadRecord { parts, object: ObjectRecord { parts: Vec::new(), ..record.clone() } };
                batch.put(keys::completed_upload(&bucket, &upload_id), encode(&done));
                batch.put(keys::completed_upload_age(record.last_modified_ms, &bucket, &upload_id), Vec::new());
                Ok(Outcome::Object(Box::new(record)))
            }
            Command::SetObjectTags { bucket, key, tags, version } => {
                let bucket = self.checked_bucket(&bucket)?.name;
                let mut found = self.live_version(&bucket, &key, version.as_ref())?;
                found.record.tags = tags;
                batch.put(found.store_key, stored::encode_record(&found.record));
                // The version tagged, for the x-amz-version-id of the answer.
                Ok(Outcome::Object(Box::new(found.record)))
            }
            Command::SetBucketVersioning { bucket, status } => {
                self.update_bucket(&bucket, batch, |record| record.versioning = Some(status))
            }
            Command::SetBucketTags { bucket, tags } => self.update_bucket(&bucket, batch, |record| record.tags = tags),
            Command::SetBucketCors { bucket, cors } => self.update_bucket(&bucket, batch, |record| record.cors = cors),
            Command::SetBucketSetting { bucket, setting } => {
                self.update_bucket(&bucket, batch, |record| match setting {
                    BucketSetting::Policy(policy) => record.policy = policy,
                    BucketSetting::Website(website) => record.website = website,
                    BucketSetting::PublicAccessBlock(block) => record.public_access_block = block,
                    BucketSetting::Ownership(ownership) => record.ownership = ownership,
                    BucketSetting::Acl(acl) => record.acl = acl,
                })
            }
            Command::SetObjectAcl { bucket, key, version, acl } => {
                let bucket = self.checked_bucket(&bucket)?.name;
                let mut found = self.live_version(&bucket, &key, version.as_ref())?;
                found.record.acl = Some(acl);
                batch.put(found.store_key, stored::encode_record(&found.record));
                Ok(Outcome::Object(Box::new(found.record)))
            }
            Command::SetTenantPublicAccessBlock { tenant, block } => {
                let mut record = self.tenant(&tenant)?;
                record.public_access_block = block;
                batch.put(keys::tenant(&tenant), encode(&record));
                Ok(Outcome::Done)
            }
            Command::SetDomain { domain, tenant, bucket } => {
                if let Some(existing) = self.live_domain(&domain)?
                    && existing.bucket.tenant != tenant
                {
                    return Err(MetaError::DomainInUse);
                }
                // A dangling record (its bucket gone) of another tenant is taken over.
                if let Some(old) = self.read::<DomainRecord>(&keys::domain(&domain))? {
                    batch.delete(keys::tenant_domain(&old.bucket.tenant, &domain));
                }
                match bucket {
                    Some(bucket) => {
                        if bucket.tenant != tenant {
                            return Err(MetaError::AccessDenied);
                        }
                        self.checked_bucket(&bucket)?;
                        // A bucket named like the domain serves it (AWS's rule): another tenant's
                        // bucket of that name keeps it.
                        let named = self.read::<BucketRecord>(&keys::bucket(&BucketName::new(domain.0.clone())))?;
                        if named.is_some_and(|named| named.tenant != tenant) {
                            return Err(MetaError::DomainInUse);
                        }
                        batch.put(keys::tenant_domain(&tenant, &domain), Vec::new());
                        batch.put(keys::domain(&domain), encode(&DomainRecord { domain, bucket }));
                    }
                    None => batch.delete(keys::domain(&domain)),
                }
                Ok(Outcome::Done)
            }
            Command::ForgetGarbage { blobs } => {
                for blob in blobs {
                    // Only garbage is forgotten: a blob named by mistake that something still
                    // references keeps its stripes and its place among the known blobs.
                    if self.kv.get(&keys::garbage(&blob))?.is_none() {
                        continue;
                    }
                    batch.delete(keys::garbage(&blob));
                    batch.delete(keys::known_blob(&blob));
                    let prefix = keys::stripes_prefix(&blob);
                    for (key, _) in self.kv.scan(&prefix, prefix_end(&prefix).as_deref(), usize::MAX)? {
                        batch.delete(key);
                    }
                }
                Ok(Outcome::Done)
            }
            Command::RenewIntents { blobs, now_ms } => {
                // `now_ms` is the leader's (`Command::stamp_leader_time`), as the orphan sweep's.
                for blob in blobs {
                    if self.kv.get(&keys::known_blob(&blob))?.is_none()
                        && self.kv.get(&keys::reclaimed_blob(&blob))?.is_none()
                    {
                        batch.put(keys::intent(&blob), encode(&now_ms));
                    }
                }
                Ok(Outcome::Done)
            }
            Command::HoldGarbage { blobs, now_ms } => {
                // `now_ms` is the leader's (`Command::stamp_leader_time`), as the garbage's date.
                for blob in blobs {
                    let key = keys::garbage(&blob);
                    // One that does not decode is never collected anyway (`Query::Garbage`).
                    let Some(Ok(mut record)) = self.read_or_pass_over::<GarbageRecord>(&key)? else { continue };
                    let within = now_ms.saturating_sub(record.since_ms) <= GARBAGE_HOLD_MAX_MS;
                    if within && record.held_ms.is_none_or(|held| held < now_ms) {
                        record.held_ms = Some(now_ms);
                        batch.put(key, encode(&record));
                    }
                }
                Ok(Outcome::Done)
            }
            Command::ReclaimOrphans { blobs, now_ms, grace_ms } => {
                let mut fenced = Vec::new();
                for blob in blobs {
                    if self.kv.get(&keys::known_blob(&blob))?.is_some() {
                        continue;
                    }
                    if self.kv.get(&keys::reclaimed_blob(&blob))?.is_some() {
                        fenced.push(blob);
                        continue;
                    }
                    match self.read_or_pass_over::<i64>(&keys::intent(&blob))? {
                        Some(Ok(renewed_ms)) if renewed_ms > now_ms - grace_ms => continue,
                        Some(Ok(_)) => batch.delete(keys::intent(&blob)),
                        // An intent that does not decode spares its blob, as the intent sweep
                        // keeps it: a write may be live, and the other blobs go on.
                        Some(Err(())) => continue,
                        None => {}
                    }
                    // Aged by the leader's stamp, so that it expires after the commit window.
                    let fenced_ms = stamp.unwrap_or(now_ms);
                    batch.put(keys::reclaimed_blob(&blob), encode(&fenced_ms));
                    if stamp.is_some() {
                        batch.put(keys::reclaimed_age(fenced_ms, &blob), Vec::new());
                    }
                    fenced.push(blob);
                }
                Ok(Outcome::Reclaimable(fenced))
            }
            Command::ReplaceShards(replacement) => {
                self.replace_shards(replacement, batch)?;
                Ok(Outcome::Done)
            }
            Command::TakeLease { name, holder, now_ms, duration_ms, tenures } => {
                let key = keys::lease(&name);
                // A lease record that does not decode is nobody's: the taker's replaces it (else
                // that service would stop for good, every take refused alike).
                let found = self.read_or_pass_over::<LeaseRecord>(&key)?;
                let current = match &found {
                    Some(Ok(current)) => Some(current),
                    Some(Err(())) | None => None,
                };
                let live = current.filter(|c| c.until_ms > now_ms);
                if let Some(live) = live
                    && live.holder != holder
                {
                    return Err(MetaError::LeaseHeld { holder: live.holder.clone() });
                }
                let until_ms = now_ms + duration_ms;
                if !tenures {
                    batch.put(key, encode(&LeaseRecord { holder, until_ms, epoch: None }));
                    return Ok(Outcome::Done);
                }
                // The holder's own take keeps its tenure, even after its lease ran out (nobody
                // else held it meanwhile); another holder's starts the next. After a record that
                // did not decode, whoever takes it, a new one numbered by the leader's clock: not
                // one a holder used before (save a count that reached the end of u64).
                let epoch = match (current, found.is_some()) {
                    (Some(last), _) if last.holder == holder => last.epoch.unwrap_or(0),
                    // (A count at its end, only in a damaged record, is numbered as one that
                    // does not decode rather than stopping every replica on this entry.)
                    (Some(last), _) if last.epoch.unwrap_or(0) < u64::MAX => last.epoch.unwrap_or(0) + 1,
                    (Some(_), _) => now_ms.max(1) as u64,
                    (None, true) => now_ms.max(1) as u64,
                    (None, false) => 1,
                };
                batch.put(key, encode(&LeaseRecord { holder, until_ms, epoch: Some(epoch) }));
                Ok(Outcome::Lease { epoch })
            }
            Command::SetNodeOut { node, out, now_ms } => {
                if out {
                    batch.put(keys::node_out(&node), encode(&now_ms));
                } else {
                    batch.delete(keys::node_out(&node));
                }
                Ok(Outcome::Done)
            }
            Command::SetLayout { expected, document, now_ms } => {
                let current = self.read::<LayoutRecord>(keys::LAYOUT)?.map(|l| l.version);
                if current != expected {
                    let at = current.map_or("none".to_string(), |v| v.to_string());
                    return Err(MetaError::Superseded(format!("the cluster layout is at version {at}")));
                }
                let version = LayoutVersion(current.map_or(1, |v| v.0 + 1));
                batch.put(
                    keys::LAYOUT.to_vec(),
                    encode(&LayoutRecord { version: version.clone(), document, updated_ms: now_ms }),
                );
                Ok(Outcome::Layout(version))
            }
            Command::RecordRepairReport(report) => {
                if let Some(fence) = &report.lease
                    && !self.in_tenure(fence)?
                {
                    return Err(MetaError::Superseded(
                        "the repair lease changed hands since the round began: its report is not recorded".into(),
                    ));
                }
                batch.put(keys::REPAIR_REPORT.to_vec(), encode(&report));
                Ok(Outcome::Done)
            }
            Command::AbortUpload { bucket, upload_id, now_ms } => {
                self.checked_bucket(&bucket)?;
                let bucket = bucket.name;
                self.upload(&bucket, &upload_id)?;
                for part in self.parts(&bucket, &upload_id)? {
                    garbage_of_part(&part, now_ms, batch);
                    batch.delete(keys::part(&bucket, &upload_id, part.part_number));
                }
                batch.delete(keys::upload(&bucket, &upload_id));
                Ok(Outcome::Done)
            }
        }
    }

    /// Answers one read against the applied state.
    pub fn query(&self, query: Query) -> Result<Answer, MetaError> {
        match query {
            Query::AccessKey(id) => {
                self.read(&keys::access_key(&id))?.map(Answer::AccessKey).ok_or(MetaError::NoSuchAccessKey)
            }
            Query::Tenant(id) => self.tenant(&id).map(Answer::Tenant),
            Query::Bucket(name) => self.bucket(&name).map(Answer::Bucket),
            Query::Domain(domain) => self.live_domain(&domain).map(Answer::Domain),
            Query::Domains(tenant) => {
                let prefix = keys::tenant_domains_prefix(&tenant);
                let end = prefix_end(&prefix);
                let mut domains = Vec::new();
                for (key, _) in self.kv.scan(&prefix, end.as_deref(), DOMAINS_LISTED_MAX)? {
                    let name = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                    if let Some(record) = self.live_domain(&WebDomain::new(name))? {
                        domains.push(record);
                    }
                }
                Ok(Answer::Domains(domains))
            }
            Query::ListBuckets(tenant) => {
                let prefix = keys::tenant_buckets_prefix(&tenant);
                let end = prefix_end(&prefix);
                let mut buckets = Vec::new();
                for (k, _) in self.kv.scan(&prefix, end.as_deref(), usize::MAX)? {
                    let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                    buckets.push(self.bucket(&BucketName(name))?);
                }
                Ok(Answer::Buckets(buckets))
            }
            Query::Object { tenant, bucket, key, stripes } => {
                let record = self.bucket(&bucket)?;
                if tenant.is_some_and(|t| t != record.tenant) {
                    return Err(MetaError::AccessDenied);
                }
                let mut found = self.live_version(&bucket, &key, None)?.record;
                self.hydrate_record(&mut found, stripes)?;
                Ok(Answer::Object(Box::new(found)))
            }
            Query::ObjectVersion { tenant, incarnation, bucket, key, version, stripes } => {
                let record = self.bucket(&bucket)?;
                if tenant.is_some_and(|t| t != record.tenant) {
                    return Err(MetaError::AccessDenied);
                }
                if incarnation.is_some_and(|i| i != record.incarnation) {
                    return Err(MetaError::NoSuchBucket);
                }
                match self.locate(&bucket, &key, version.as_ref())? {
                    Some(mut found) => {
                        self.hydrate_record(&mut found.record, stripes)?;
                        Ok(Answer::ObjectVersion { record: Box::new(found.record), versioning: record.versioning })
                    }
                    None if version.is_some() => Err(MetaError::NoSuchVersion),
                    None => Err(MetaError::NoSuchKey),
                }
            }
            Query::ListVersions { bucket, incarnation, request } => {
                self.bucket_read(&bucket, incarnation.as_ref())?;
                list::list_versions(self, &bucket, &request).map(Answer::Versions)
            }
            Query::ListObjects { bucket, incarnation, request } => {
                self.bucket_read(&bucket, incarnation.as_ref())?;
                self.list_objects(&bucket, &request).map(Answer::Objects)
            }
            Query::Upload { bucket, upload_id } => self.upload(&bucket, &upload_id).map(Answer::Upload),
            Query::UploadForPart { bucket, upload_id } => self
                .upload(&bucket, &upload_id)
                .map(|upload| Answer::UploadForPart { upload, began: StartTicket::default() }),
            Query::CompletedUpload { bucket, upload_id } => {
                self.read(&keys::completed_upload(&bucket, &upload_id)).map(Answer::CompletedUpload)
            }
            Query::DurabilityReport => self.durability_report().map(Answer::Durability),
            Query::ListUploads { bucket, incarnation, request } => {
                self.bucket_read(&bucket, incarnation.as_ref())?;
                crate::uploads::list_uploads(self, &bucket, &request).map(Answer::Uploads)
            }
            Query::Garbage { older_than_ms, limit, after } => {
                let prefix = keys::GARBAGE_PREFIX;
                let end = prefix_end(prefix);
                let start = match &after {
                    Some(blob) => {
                        let mut key = keys::garbage(blob);
                        key.push(0);
                        key
                    }
                    None => prefix.to_vec(),
                };
                let mut out = Vec::new();
                let mut bytes = 0usize;
                // Garbage is keyed by random blob id, not by age: young records are passed over,
                // and the caller goes on from `next` (a scan from the front every time found
                // nothing old behind 10,000 young records, and left it for ever).
                let scanned = self.kv.scan(&start, end.as_deref(), GARBAGE_SCAN_MAX)?;
                let mut next = (scanned.len() == GARBAGE_SCAN_MAX).then(|| scanned.last().map(|(k, _)| k.clone()));
                let mut looked_at: Option<&[u8]> = None;
                for (key, value) in &scanned {
                    if out.len() >= limit || bytes >= SCAN_PAGE_BYTES_MAX {
                        next = Some(looked_at.map(<[u8]>::to_vec));
                        break;
                    }
                    looked_at = Some(key);
                    // One that cannot be read is skipped (its shards stay: a leak, never a
                    // loss), not the end of every collection after it.
                    let mut record: GarbageRecord = match serde_json::from_slice(value) {
                        Ok(record) => record,
                        Err(e) => {
                            let blob = BlobId::new(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
                            unreadable_record(key, Some(blob), format!("garbage record: {e}"));
                            continue;
                        }
                    };
                    if record.collectable(older_than_ms) {
                        let blob = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                        let hydrated = match self.hydrate_all(&mut record.location) {
                            Err(MetaError::Corrupt(why)) => {
                                unreadable_record(key, record.location.blob().cloned(), why);
                                continue;
                            }
                            other => other?,
                        };
                        let Some(stripes) = hydrated else { continue };
                        bytes += value.len() + stripes;
                        out.push((ignifuge_types::BlobId::new(blob), record));
                    }
                }
                // The last key looked at (none: where this page began).
                let next = next.map(|key| match key {
                    Some(key) => BlobId::new(String::from_utf8_lossy(&key[prefix.len()..]).into_owned()),
                    None => after.clone().unwrap_or_else(|| BlobId::new("")),
                });
                Ok(Answer::Garbage(GarbagePage { garbage: out, next }))
            }
            Query::ListParts { bucket, upload_id } => {
                self.upload(&bucket, &upload_id)?;
                self.parts(&bucket, &upload_id).map(Answer::Parts)
            }
            Query::ChosenParts { bucket, upload_id, parts } => {
                self.upload(&bucket, &upload_id)?;
                choose_parts(&self.parts(&bucket, &upload_id)?, &parts).map(Answer::Parts)
            }
            Query::Blobs { cursor, limit } => {
                self.blob_page(cursor, limit.clamp(1, BLOB_SCAN_PAGE_MAX), SCAN_PAGE_BYTES_MAX).map(Answer::Blobs)
            }
            Query::Stripes { blob, first, limit } => {
                if self.kv.get(&keys::known_blob(&blob))?.is_none() {
                    return Err(MetaError::Superseded(format!("blob {blob} is no longer held")));
                }
                let limit = (limit as usize).clamp(1, crate::ANSWER_STRIPES_MAX);
                self.load_stripes(&blob, first, limit).map(|(stripes, _)| Answer::Stripes(stripes))
            }
            Query::PackUsage { after, limit } => self.pack_usage(after, limit).map(Answer::PackUsage),
            Query::PackMembers { pack } => self.pack_members(&pack).map(Answer::PackMembers),
            Query::Record { key } => self.record_view(key).map(Answer::Record),
            // A report that does not decode is none: the next round writes one (a round reads the
            // last report first, so failing here would stop every round for good).
            Query::RepairReport => self
                .read_or_pass_over(keys::REPAIR_REPORT)
                .map(|report| Answer::RepairReport(report.and_then(Result::ok))),
            Query::Layout => self.read(keys::LAYOUT).map(Answer::Layout),
            Query::NodesOut => {
                let end = prefix_end(keys::NODES_OUT_PREFIX);
                let mut out = Vec::new();
                for (key, value) in self.kv.scan(keys::NODES_OUT_PREFIX, end.as_deref(), usize::MAX)? {
                    let node = String::from_utf8_lossy(&key[keys::NODES_OUT_PREFIX.len()..]).into_owned();
                    let since: i64 = serde_json::from_slice(&value)
                        .map_err(|e| MetaError::Corrupt(format!("node-out record: {e}")))?;
                    out.push((ignifuge_types::NodeId::new(node), since));
                }
                Ok(Answer::NodesOut(out))
            }
        }
    }

    /// Applies a repair's compare-and-swap on one stripe. The stripe must still be referenced:
    /// its blob known and not garbage (blobs only move forward, so that is exact), and hold
    /// exactly the shards the repairer read; and its repairer must still hold the repair lease
    /// in the tenure it surveyed in (`ShardReplacement::lease`). A replacement already applied
    /// (a retried proposal) answers Ok whatever the lease: it changes nothing.
    fn replace_shards(&self, r: ShardReplacement, batch: &mut WriteBatch) -> Result<(), MetaError> {
        let superseded = |what: &str| MetaError::Superseded(format!("blob {} stripe {}: {what}", r.blob, r.stripe));
        if self.kv.get(&keys::known_blob(&r.blob))?.is_none() {
            return Err(superseded("no longer referenced"));
        }
        if self.kv.get(&keys::garbage(&r.blob))?.is_some() {
            return Err(superseded("garbage is not repaired"));
        }
        let key = keys::stripe(&r.blob, r.stripe);
        let mut stripe: StripeRecord = self.read(&key)?.ok_or_else(|| superseded("no such stripe"))?;
        if stripe.shards == r.replacement && stripe.debt == r.debt {
            return Ok(()); // already applied (a retried proposal)
        }
        if stripe.shards != r.expected || r.replacement.len() != r.expected.len() {
            return Err(superseded("its shards changed"));
        }
        if let Some(fence) = &r.lease
            && !self.in_tenure(fence)?
        {
            return Err(superseded("the repair lease changed hands since the stripe was surveyed"));
        }
        stripe.shards = r.replacement;
        stripe.debt = r.debt;
        batch.put(key, encode(&stripe));
        Ok(())
    }

    /// Whether `fence`'s holder still holds its lease in that tenure: no other holder took it
    /// since (whether or not it has run out by anyone's clock). A record that does not decode
    /// fences everyone (its holder is unknown).
    fn in_tenure(&self, fence: &LeaseFence) -> Result<bool, MetaError> {
        Ok(match self.read_or_pass_over::<LeaseRecord>(&keys::lease(&fence.name))? {
            Some(Ok(lease)) => lease.holder == fence.holder && lease.epoch == Some(fence.epoch),
            Some(Err(())) | None => false,
        })
    }

    /// One page of the blob scan: upload parts, then current versions, then non-current versions,
    /// then garbage (the direction in which blobs move, see `BlobCursor`). At most `limit`
    /// records, and no blob after the first `bytes_max` bytes read (records and stripes; at least
    /// one blob is always returned), so a page of huge objects still fits in one answer: a
    /// 10,000-part object's blobs come over many pages.
    pub(crate) fn blob_page(&self, cursor: BlobCursor, limit: usize, bytes_max: usize) -> Result<BlobPage, MetaError> {
        const PHASES: [&[u8]; 5] =
            [keys::PARTS_PREFIX, keys::OBJECTS_PREFIX, keys::VERSIONS_PREFIX, keys::PACKS_PREFIX, keys::GARBAGE_PREFIX];
        let mut tenants: std::collections::HashMap<BucketName, TenantId> = Default::default();
        let mut tenant_of = |bucket: &BucketName| -> Result<Option<TenantId>, MetaError> {
            if let Some(t) = tenants.get(bucket) {
                return Ok(Some(t.clone()));
            }
            let Some(record) = self.read::<BucketRecord>(&keys::bucket(bucket))? else { return Ok(None) };
            tenants.insert(bucket.clone(), record.tenant.clone());
            Ok(Some(record.tenant))
        };
        let mut blobs = Vec::new();
        let mut unreadable = Vec::new();
        let mut bytes = 0usize;
        let mut phase = cursor.phase as usize;
        let mut after = cursor.after;
        let mut within = cursor.within;
        while phase < PHASES.len() {
            let prefix = PHASES[phase];
            let start = match &after {
                Some(last) => {
                    let mut k = last.clone();
                    k.push(0);
                    k
                }
                None => prefix.to_vec(),
            };
            let end = prefix_end(prefix);
            let pairs = self.kv.scan_bytes(&start, end.as_deref(), limit, bytes_max)?;
            let read: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
            let full = pairs.len() == limit || read >= bytes_max;
            for (index, (key, value)) in pairs.iter().enumerate() {
                let corrupt =
                    |e: serde_json::Error| MetaError::Corrupt(format!("{}: {e}", String::from_utf8_lossy(key)));
                let rest = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                // This record's blobs: (owner, tenant, size, location).
                let mut found: Vec<(BlobOwner, Option<TenantId>, u64, DataLocation)> = Vec::new();
                let mut decode = || -> Result<(), MetaError> {
                    match phase {
                        0 => {
                            let part: PartData = serde_json::from_slice(value).map_err(corrupt)?;
                            let Some((bucket, upload)) = rest.split_once('/') else { return Ok(()) };
                            let Some((upload, _)) = upload.rsplit_once('/') else { return Ok(()) };
                            let bucket = BucketName::new(bucket);
                            let owner = BlobOwner::UploadPart {
                                bucket: bucket.clone(),
                                upload_id: UploadId::new(upload),
                                part_number: part.part_number,
                            };
                            found.push((owner, tenant_of(&bucket)?, part.size, part.location));
                        }
                        1 | 2 => {
                            let object = self.scanned_version(key, value)?;
                            let Some((bucket, _)) = rest.split_once('/') else { return Ok(()) };
                            let bucket = BucketName::new(bucket);
                            let tenant = tenant_of(&bucket)?;
                            let resume = within.take().filter(|(k, _)| k == key).map(|(_, part)| part);
                            for part in object.parts {
                                if resume.is_some_and(|last| part.part_number <= last) {
                                    continue;
                                }
                                let (bucket, key, part_number) = (bucket.clone(), object.key.clone(), part.part_number);
                                let owner = if phase == 1 {
                                    BlobOwner::Object { bucket, key, part_number }
                                } else {
                                    BlobOwner::Version { bucket, key, version: object.version.clone(), part_number }
                                };
                                found.push((owner, tenant.clone(), part.size, part.location));
                            }
                        }
                        3 => {
                            let pack = match serde_json::from_slice::<PackRecord>(value) {
                                Ok(record) => record.pack,
                                // Its geometry is also in its members' records: the pack is
                                // surveyed and repaired all the same, and reported.
                                Err(e) => {
                                    let blob = BlobId::new(rest.clone());
                                    let Some(pack) = self.pack_from_members(&blob)? else { return Err(corrupt(e)) };
                                    unreadable.push(unreadable_record(key, Some(blob), corrupt(e).to_string()));
                                    pack
                                }
                            };
                            let size = pack.stripe_count as u64 * pack.stripe_bytes();
                            found.push((BlobOwner::Pack, None, size, DataLocation::Striped(pack)));
                        }
                        _ => {
                            let garbage: GarbageRecord = serde_json::from_slice(value).map_err(corrupt)?;
                            let size = match &garbage.location {
                                DataLocation::Striped(striped) => striped.stripe_count as u64 * striped.stripe_bytes(),
                                DataLocation::Inline(bytes) => bytes.len() as u64,
                                DataLocation::Packed(slice) => slice.pack.stripe_bytes(),
                            };
                            found.push((BlobOwner::Garbage, None, size, garbage.location));
                        }
                    }
                    Ok(())
                };
                match decode() {
                    Ok(()) => {}
                    // Garbage needs no survey: one that cannot be read is left where it is (a
                    // leak; the collector's query logs it) and does not hold up draining a node.
                    Err(MetaError::Corrupt(why)) if phase == 4 => {
                        unreadable_record(key, Some(BlobId::new(rest)), why);
                        continue;
                    }
                    Err(MetaError::Corrupt(why)) => {
                        let blob = (phase == 3).then(|| BlobId::new(rest));
                        unreadable.push(unreadable_record(key, blob, why));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                bytes += value.len();
                // The last part of this record returned in this page.
                let mut returned: Option<u32> = None;
                for (owner, tenant, size, mut location) in found {
                    if let DataLocation::Inline(_) = location {
                        continue;
                    }
                    if bytes >= bytes_max && !blobs.is_empty() {
                        // Full: the next page starts again at this record, after the last part
                        // returned from it (if any was).
                        let after = index.checked_sub(1).map(|i| pairs[i].0.clone()).or(after.clone());
                        let within = returned.map(|part| (key.clone(), part));
                        let next = Some(BlobCursor { phase: phase as u8, after, within });
                        return Ok(BlobPage { blobs, next, unreadable });
                    }
                    let hydrated = match self.hydrate_all(&mut location) {
                        Err(MetaError::Corrupt(why)) => {
                            let bad = unreadable_record(key, location.blob().cloned(), why);
                            // Garbage needs no survey (see above).
                            if owner != BlobOwner::Garbage {
                                unreadable.push(bad);
                            }
                            if let BlobOwner::Object { part_number, .. } | BlobOwner::Version { part_number, .. } =
                                &owner
                            {
                                returned = Some(*part_number); // reported once, not again on the next page
                            }
                            continue;
                        }
                        other => other?,
                    };
                    // A blob collected since its record was read is not returned.
                    let Some(stripes) = hydrated else { continue };
                    bytes += stripes;
                    let (striped, in_pack) = match location {
                        DataLocation::Striped(striped) => (striped, false),
                        DataLocation::Packed(slice) => (slice.pack, true),
                        DataLocation::Inline(_) => continue,
                    };
                    let size = match owner {
                        BlobOwner::Garbage | BlobOwner::Pack => striped.stripes.iter().map(|s| s.data_len).sum(),
                        _ => size,
                    };
                    if let BlobOwner::Object { part_number, .. } | BlobOwner::Version { part_number, .. } = &owner {
                        returned = Some(*part_number);
                    }
                    blobs.push(BlobRef {
                        owner,
                        tenant,
                        blob: striped.blob.clone(),
                        size,
                        striped: Some(striped),
                        in_pack,
                    });
                }
            }
            if full {
                let next = BlobCursor { phase: phase as u8, after: pairs.last().map(|(k, _)| k.clone()), within: None };
                return Ok(BlobPage { blobs, next: Some(next), unreadable });
            }
            phase += 1;
            after = None;
            within = None;
            if !blobs.is_empty() || !unreadable.is_empty() {
                let next = Some(BlobCursor { phase: phase as u8, after: None, within: None });
                return Ok(BlobPage { blobs, next, unreadable });
            }
        }
        Ok(BlobPage { blobs, next: None, unreadable })
    }

    /// Objects and bytes per tenant by protection, read a page of records and a window of
    /// stripes at a time: the whole keyspace is never in memory (10 million objects are ~9 GB of
    /// records and stripes).
    fn durability_report(&self) -> Result<Vec<TenantDurability>, MetaError> {
        let mut report: std::collections::BTreeMap<TenantId, TenantDurability> = Default::default();
        for bucket in self.scan_records::<BucketRecord>(keys::BUCKETS_PREFIX, usize::MAX)? {
            let entry =
                report.entry(bucket.tenant.clone()).or_insert_with(|| TenantDurability::empty(bucket.tenant.clone()));
            for prefix in [keys::objects_prefix(&bucket.name), keys::versions_prefix(&bucket.name)] {
                let end = prefix_end(&prefix);
                let mut from = prefix.clone();
                loop {
                    let page = self.kv.scan(&from, end.as_deref(), DURABILITY_PAGE_RECORDS)?;
                    for (key, value) in &page {
                        // One that cannot be read is counted as such, not the end of the view.
                        let tallied = stored::decode_record(value)
                            .map_err(|e| MetaError::Corrupt(format!("object record: {e}")))
                            .and_then(|record| self.tally_durability(&record, entry));
                        match tallied {
                            Err(MetaError::Corrupt(why)) => {
                                unreadable_record(key, None, why);
                                entry.unreadable_objects += 1;
                            }
                            other => other?,
                        }
                    }
                    match page.last() {
                        Some((last, _)) if page.len() == DURABILITY_PAGE_RECORDS => {
                            from = last.clone();
                            from.push(0);
                        }
                        _ => break,
                    }
                }
            }
        }
        Ok(report.into_values().collect())
    }

    fn tally_durability(&self, record: &ObjectRecord, entry: &mut TenantDurability) -> Result<(), MetaError> {
        // Delete markers hold nothing; a promoted version is counted where its parts are.
        if record.delete_marker || record.promoted {
            return Ok(());
        }
        let mut striped = false;
        let mut debt = 0u64;
        for part in &record.parts {
            let (DataLocation::Striped(blob) | DataLocation::Packed(PackedSlice { pack: blob, .. })) = &part.location
            else {
                continue;
            };
            // A part whose stripes are gone (collected since) counts as nothing, as before.
            let Some(part_debt) = self.debt_stripes(blob)? else { continue };
            striped = true;
            debt += part_debt;
        }
        match (striped, debt) {
            (false, _) => {
                entry.inline_objects += 1;
                entry.inline_bytes += record.size;
            }
            (true, 0) => {
                entry.full_budget_objects += 1;
                entry.full_budget_bytes += record.size;
            }
            (true, stripes) => {
                entry.debt_objects += 1;
                entry.debt_bytes += record.size;
                entry.debt_stripes += stripes;
            }
        }
        Ok(())
    }

    /// Stripes of a blob written with durability debt, a window at a time; None when its
    /// stripes are not stored.
    fn debt_stripes(&self, blob: &StripedBlob) -> Result<Option<u64>, MetaError> {
        let mut debt = 0;
        let mut first = 0u32;
        while first < blob.stripe_count {
            let (stripes, _) = self.load_stripes(&blob.blob, first, DURABILITY_PAGE_RECORDS)?;
            if stripes.is_empty() {
                return Ok((first > 0).then_some(debt));
            }
            debt += stripes.iter().filter(|s| s.debt).count() as u64;
            first += stripes.len() as u32;
        }
        Ok(Some(debt))
    }

    /// Changes one configuration of a bucket, if it is still the one the request was authorized
    /// against (same owner, same incarnation).
    fn update_bucket(
        &self,
        bucket: &BucketRef,
        batch: &mut WriteBatch,
        change: impl FnOnce(&mut BucketRecord),
    ) -> Result<Outcome, MetaError> {
        let mut record = self.checked_bucket(bucket)?;
        change(&mut record);
        batch.put(keys::bucket(&record.name), encode(&record));
        Ok(Outcome::Done)
    }

    /// The domain's record if the bucket it names is still that bucket.
    fn live_domain(&self, domain: &WebDomain) -> Result<Option<DomainRecord>, MetaError> {
        let Some(record) = self.read::<DomainRecord>(&keys::domain(domain))? else { return Ok(None) };
        match self.checked_bucket(&record.bucket) {
            Ok(_) => Ok(Some(record)),
            Err(MetaError::NoSuchBucket) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn tenant(&self, id: &TenantId) -> Result<TenantRecord, MetaError> {
        self.read(&keys::tenant(id))?.ok_or(MetaError::NoSuchTenant)
    }

    fn bucket(&self, name: &BucketName) -> Result<BucketRecord, MetaError> {
        self.read(&keys::bucket(name))?.ok_or(MetaError::NoSuchBucket)
    }

    /// The bucket a read names, if it is still the life of the name the reader saw (when it says
    /// which): NoSuchBucket otherwise.
    fn bucket_read(
        &self,
        name: &BucketName,
        incarnation: Option<&BucketIncarnation>,
    ) -> Result<BucketRecord, MetaError> {
        let record = self.bucket(name)?;
        if incarnation.is_some_and(|i| *i != record.incarnation) {
            return Err(MetaError::NoSuchBucket);
        }
        Ok(record)
    }

    /// The bucket a write names, if it is still the one the write was authorized against: same
    /// owner, same incarnation. Otherwise the write's bucket no longer exists (NoSuchBucket).
    fn checked_bucket(&self, reference: &BucketRef) -> Result<BucketRecord, MetaError> {
        let record = self.bucket(&reference.name)?;
        if record.tenant != reference.tenant || record.incarnation != reference.incarnation {
            return Err(MetaError::NoSuchBucket);
        }
        Ok(record)
    }

    /// A write makes a striped blob referenced: refused if the orphan sweep fenced it, else it
    /// becomes known (the sweep never touches it again) and its intent is done. Its stripes go
    /// to keys of their own; the location, which the caller stores in a record, keeps none.
    fn admit_blob(
        &self,
        location: &mut DataLocation,
        stamp: Option<i64>,
        batch: &mut WriteBatch,
    ) -> Result<(), MetaError> {
        let striped = match location {
            DataLocation::Striped(striped) => striped,
            DataLocation::Inline(_) => return Ok(()),
            // Only `PutPacked` and `RepackObjects` reference a pack, recording the slot each
            // object takes: a slice named anywhere else would hold a pack that no member key keeps.
            DataLocation::Packed(slice) => {
                return Err(MetaError::InvalidPart(format!(
                    "pack {} is only written by its PutPacked or RepackObjects",
                    slice.pack.blob
                )));
            }
        };
        if !striped.is_complete() {
            return Err(MetaError::InvalidPart(format!("blob {} is written without all of its stripes", striped.blob)));
        }
        if self.kv.get(&keys::reclaimed_blob(&striped.blob))?.is_some() {
            return Err(MetaError::BlobReclaimed(striped.blob.to_string()));
        }
        // Past the commit window the tombstone the sweep may have left is allowed to be gone.
        if stamp.is_some_and(|stamp| striped.born_ms < stamp.saturating_sub(BLOB_COMMIT_WINDOW_MS)) {
            return Err(MetaError::BlobReclaimed(striped.blob.to_string()));
        }
        if self.kv.get(&keys::known_blob(&striped.blob))?.is_some() {
            // Blob ids are never reused: a second command naming the same blob must not
            // overwrite the stripe map that repairs have changed since.
            return Err(MetaError::InvalidPart(format!("blob {} is already referenced", striped.blob)));
        }
        batch.put(keys::known_blob(&striped.blob), Vec::new());
        batch.delete(keys::intent(&striped.blob));
        for (index, stripe) in std::mem::take(&mut striped.stripes).into_iter().enumerate() {
            batch.put(keys::stripe(&striped.blob, index as u32), encode(&stripe));
        }
        Ok(())
    }

    /// Up to `limit` stripes of a blob from stripe `first`, and their stored size in bytes.
    fn load_stripes(&self, blob: &BlobId, first: u32, limit: usize) -> Result<(Vec<StripeRecord>, usize), MetaError> {
        let end = prefix_end(&keys::stripes_prefix(blob));
        let mut bytes = 0;
        let mut stripes = Vec::new();
        for (position, (key, value)) in
            self.kv.scan(&keys::stripe(blob, first), end.as_deref(), limit)?.into_iter().enumerate()
        {
            bytes += key.len() + value.len();
            // Stripe keys are contiguous: a gap would shift every later stripe onto the wrong
            // shards, and a reader, a repair or the collector would trust it.
            if key != keys::stripe(blob, first + position as u32) {
                return Err(MetaError::Corrupt(format!(
                    "blob {blob}: {} where stripe {} should be",
                    String::from_utf8_lossy(&key),
                    first as usize + position
                )));
            }
            stripes.push(
                serde_json::from_slice(&value)
                    .map_err(|e| MetaError::Corrupt(format!("{}: {e}", String::from_utf8_lossy(&key))))?,
            );
        }
        Ok((stripes, bytes))
    }

    /// Fills a stored location with its blob's stripes, at most `budget` of them (the budget
    /// shrinks by what was loaded). Returns the stored bytes read, or None when the blob is no
    /// longer held (collected since its record was read: the caller skips it). Never returns
    /// fewer stripes than asked for a blob still held: that is corruption, and a short list
    /// would make repair take the missing stripes' shards for strays and the collector skip them.
    fn hydrate(&self, location: &mut DataLocation, budget: &mut usize) -> Result<Option<usize>, MetaError> {
        let (DataLocation::Striped(striped) | DataLocation::Packed(PackedSlice { pack: striped, .. })) = location
        else {
            return Ok(Some(0));
        };
        if *budget == 0 || striped.is_complete() {
            return Ok(Some(0));
        }
        let wanted = (*budget).min(striped.stripe_count as usize);
        let (stripes, bytes) = self.load_stripes(&striped.blob, 0, wanted)?;
        if stripes.len() < wanted {
            if self.kv.get(&keys::known_blob(&striped.blob))?.is_none() {
                return Ok(None);
            }
            return Err(MetaError::Corrupt(format!(
                "blob {}: {} stripe records of {}",
                striped.blob,
                stripes.len(),
                striped.stripe_count
            )));
        }
        *budget -= stripes.len();
        striped.first_stripe = 0;
        striped.stripes = stripes;
        Ok(Some(bytes))
    }

    /// Fills a stored location with all of its blob's stripes (bounded: a blob is at most one
    /// part, 5 GiB, about a thousand stripes), as `hydrate`.
    fn hydrate_all(&self, location: &mut DataLocation) -> Result<Option<usize>, MetaError> {
        let mut all = usize::MAX;
        self.hydrate(location, &mut all)
    }

    /// A record as a reader gets it: its parts' stripes, the first `budget` of them.
    fn hydrate_record(&self, record: &mut ObjectRecord, budget: u32) -> Result<(), MetaError> {
        let mut budget = (budget as usize).min(crate::ANSWER_STRIPES_MAX);
        for part in &mut record.parts {
            if self.hydrate(&mut part.location, &mut budget)?.is_none() {
                return Err(MetaError::Superseded("the object's data was collected since it was read".into()));
            }
        }
        Ok(())
    }

    /// Decodes a version record, reading a null version's id as "null".
    pub(crate) fn decode_version(&self, store_key: &[u8], value: &[u8]) -> Result<ObjectRecord, MetaError> {
        let mut record = stored::decode_record(value)
            .map_err(|e| MetaError::Corrupt(format!("{}: {e}", String::from_utf8_lossy(store_key))))?;
        if record.is_null_version() {
            record.version = VersionId::new(NULL_VERSION);
        }
        Ok(record)
    }

    /// `decode_version` as the background scans read a version (with the fault point that makes
    /// every record read so unreadable: `meta.blob-scan.object-unreadable`, action `fail`; an
    /// operator's `Query::Record` reads through it too, and counts towards a rule's `@n`).
    pub(crate) fn scanned_version(&self, store_key: &[u8], value: &[u8]) -> Result<ObjectRecord, MetaError> {
        if ignifuge_faults::hit("meta.blob-scan.object-unreadable") == Some(ignifuge_faults::Action::Error) {
            return Err(MetaError::Corrupt("fault point meta.blob-scan.object-unreadable".into()));
        }
        self.decode_version(store_key, value)
    }

    /// `decode_version` without the parts, from a record or its JSON head (`stored::head`).
    pub(crate) fn decode_version_summary(&self, store_key: &[u8], value: &[u8]) -> Result<ObjectRecord, MetaError> {
        let mut record = stored::decode_summary(value)
            .map_err(|e| MetaError::Corrupt(format!("{}: {e}", String::from_utf8_lossy(store_key))))?;
        if record.is_null_version() {
            record.version = VersionId::new(NULL_VERSION);
        }
        Ok(record)
    }

    fn read_version(&self, store_key: &[u8]) -> Result<Option<ObjectRecord>, MetaError> {
        match self.kv.get(store_key)? {
            None => Ok(None),
            Some(value) => self.decode_version(store_key, &value).map(Some),
        }
    }

    /// The entry of a key in the object index: its current version, a delete marker, or the
    /// summary of a promoted version.
    fn current(&self, bucket: &BucketName, key: &ObjectKey) -> Result<Option<ObjectRecord>, MetaError> {
        self.read_version(&keys::object(bucket, key))
    }

    /// The full record of a current version (a promoted one's lives with the non-current ones).
    fn full(&self, bucket: &BucketName, current: ObjectRecord) -> Result<ObjectRecord, MetaError> {
        if !current.promoted {
            return Ok(current);
        }
        let store_key = keys::version(bucket, &current.key, current.sequence);
        self.read_version(&store_key)?.ok_or_else(|| {
            MetaError::Corrupt(format!("promoted version of {} is missing", String::from_utf8_lossy(&store_key)))
        })
    }

    /// The key's null version if it is non-current (a scan of the key's versions: the null
    /// version has no sequence in its id).
    pub(crate) fn find_noncurrent_null(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
    ) -> Result<Option<(Vec<u8>, ObjectRecord)>, MetaError> {
        let chain = keys::version_chain(bucket, key);
        let end = prefix_end(&chain);
        let mut cursor = chain.clone();
        loop {
            let batch = self.kv.scan(&cursor, end.as_deref(), NULL_SCAN_BATCH)?;
            let count = batch.len();
            for (store_key, value) in batch {
                let record = self.decode_version(&store_key, &value)?;
                if record.is_null_version() {
                    return Ok(Some((store_key, record)));
                }
                cursor = store_key;
                cursor.push(0);
            }
            if count < NULL_SCAN_BATCH {
                return Ok(None);
            }
        }
    }

    /// Finds a version of a key (the current one when `version` is None): its full record and
    /// where it is stored.
    fn locate(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version: Option<&VersionId>,
    ) -> Result<Option<Located>, MetaError> {
        let Some(current) = self.current(bucket, key)? else { return Ok(None) };
        if version.is_none_or(|v| *v == current.version) {
            let store_key =
                if current.promoted { keys::version(bucket, key, current.sequence) } else { keys::object(bucket, key) };
            return Ok(Some(Located { store_key, record: self.full(bucket, current)?, current: true }));
        }
        let version = version.expect("checked above");
        let found = match parse_sequence(version) {
            Some(sequence) => {
                let store_key = keys::version(bucket, key, sequence);
                self.read_version(&store_key)?.filter(|r| r.version == *version).map(|r| (store_key, r))
            }
            None if version.0 == NULL_VERSION => self.find_noncurrent_null(bucket, key)?,
            None => None,
        };
        Ok(found.map(|(store_key, record)| Located { store_key, record, current: false }))
    }

    /// A version that is not a delete marker (NoSuchKey / NoSuchVersion otherwise).
    fn live_version(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version: Option<&VersionId>,
    ) -> Result<Located, MetaError> {
        let missing = || if version.is_some() { MetaError::NoSuchVersion } else { MetaError::NoSuchKey };
        match self.locate(bucket, key, version)? {
            Some(found) if !found.record.delete_marker => Ok(found),
            _ => Err(missing()),
        }
    }

    /// Makes `new` (an object version or a delete marker) the current version of its key, as the
    /// bucket's versioning state says: Enabled keeps the current version as a non-current one;
    /// otherwise `new` is the null version and replaces the key's previous null version, whose
    /// blobs are garbage from `since_ms` (`garbage_of_part`).
    fn install(
        &self,
        bucket: &BucketRecord,
        mut new: ObjectRecord,
        current: Option<ObjectRecord>,
        since_ms: i64,
        batch: &mut WriteBatch,
    ) -> Result<ObjectRecord, MetaError> {
        let name = &bucket.name;
        if new.delete_marker && !new.etag.is_empty() {
            // Only `delete_object` makes delete markers, with no ETag: object listings read a
            // record with an ETag no further than its date (`list::decode_listed`), so one sent
            // as an object version must not be one.
            return Err(MetaError::InvalidCommand(format!("a delete marker of {} with an ETag", new.key.0)));
        }
        new.sequence = current.as_ref().map_or(0, |c| c.sequence + 1);
        new.promoted = false;
        if bucket.versioning == Some(VersioningStatus::Enabled) {
            new.versioned = true;
            new.version = compose_version(new.sequence, &new.version);
            if let Some(old) = current {
                retire(name, &old, batch);
            }
        } else {
            new.versioned = false;
            new.version = VersionId::new(NULL_VERSION);
            if let Some(old) = current {
                if old.is_null_version() {
                    if old.promoted {
                        batch.delete(keys::version(name, &old.key, old.sequence));
                    }
                    collect_garbage_except(&self.full(name, old)?, &new, since_ms, batch);
                } else {
                    if let Some((store_key, null)) = self.find_noncurrent_null(name, &new.key)? {
                        collect_garbage_except(&null, &new, since_ms, batch);
                        batch.delete(store_key);
                    }
                    retire(name, &old, batch);
                }
            }
        }
        batch.put(keys::object(name, &new.key), stored::encode_record(&new));
        Ok(new)
    }

    /// DeleteObject of one key of `bucket` (checked by the caller): a version removed (with
    /// `version`), or the current version removed (unversioned) or hidden by a delete marker.
    fn delete_object(
        &self,
        bucket: &BucketRecord,
        deletion: ObjectDeletion,
        now_ms: i64,
        batch: &mut WriteBatch,
    ) -> Result<Deleted, MetaError> {
        let ObjectDeletion { key, condition, version, marker_nonce } = deletion;
        if let Some(version) = version {
            return match self.delete_version(&bucket.name, &key, version, &condition, now_ms, batch)? {
                Outcome::DeletedVersion { version, delete_marker } => Ok(Deleted { version, delete_marker }),
                other => Err(MetaError::Unexpected(format!("{other:?} from a version's deletion"))),
            };
        }
        let current = self.current(&bucket.name, &key)?;
        condition.check(current.as_ref())?;
        if bucket.versioning.is_some() {
            let nonce = marker_nonce.unwrap_or_else(|| VersionId::new(format!("{now_ms:016x}")));
            let marker = ObjectRecord::delete_marker(key, nonce, now_ms);
            let marker = self.install(bucket, marker, current, now_ms, batch)?;
            return Ok(Deleted { version: Some(marker.version), delete_marker: true });
        }
        // Unversioned: only null versions exist, and none is ever promoted.
        if let Some(old) = current {
            let old = self.full(&bucket.name, old)?;
            collect_garbage(&old, now_ms, batch);
            batch.delete(keys::object(&bucket.name, &key));
        }
        Ok(Deleted { version: None, delete_marker: false })
    }

    /// Removes one version permanently; when it was the current one, the newest non-current
    /// version (if any) becomes current, as a summary that points at its record (promoted).
    fn delete_version(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version: VersionId,
        condition: &WriteCondition,
        now_ms: i64,
        batch: &mut WriteBatch,
    ) -> Result<Outcome, MetaError> {
        let Some(found) = self.locate(bucket, key, Some(&version))? else {
            // As AWS: deleting a version that does not exist succeeds.
            return Ok(Outcome::DeletedVersion { version: Some(version), delete_marker: false });
        };
        condition.check(Some(&found.record))?;
        collect_garbage(&found.record, now_ms, batch);
        batch.delete(found.store_key.clone());
        if found.current {
            let index_key = keys::object(bucket, key);
            let chain = keys::version_chain(bucket, key);
            let end = prefix_end(&chain);
            let next = self.kv.scan(&chain, end.as_deref(), 2)?.into_iter().find(|(k, _)| *k != found.store_key);
            match next {
                Some((store_key, value)) => {
                    let mut summary = self.decode_version_summary(&store_key, &value)?;
                    summary.promoted = true;
                    batch.put(index_key, stored::encode_record(&summary));
                }
                None => batch.delete(index_key),
            }
        }
        Ok(Outcome::DeletedVersion { version: Some(found.record.version), delete_marker: found.record.delete_marker })
    }

    fn upload(&self, bucket: &BucketName, id: &UploadId) -> Result<UploadRecord, MetaError> {
        self.read(&keys::upload(bucket, id))?.ok_or(MetaError::NoSuchUpload)
    }

    /// An upload's parts, in part order.
    fn parts(&self, bucket: &BucketName, id: &UploadId) -> Result<Vec<PartData>, MetaError> {
        self.scan_records(&keys::parts_prefix(bucket, id), usize::MAX)
    }

    fn list_objects(&self, bucket: &BucketName, request: &ListRequest) -> Result<ListPage, MetaError> {
        list::list(self, &keys::objects_prefix(bucket), request)
    }
}

/// Versions read per store scan while looking for a key's non-current null version.
const NULL_SCAN_BATCH: usize = 256;

/// A version found by id: its full record and the store key that holds it.
struct Located {
    store_key: Vec<u8>,
    record: ObjectRecord,
    /// Whether it is the key's current version.
    current: bool,
}

/// A version id: its sequence in 16 hex digits (so that a read by id is one point read), then 16
/// hex digits of the gateway's randomness (so that ids stay unique after a key is deleted and
/// written again, when sequences start over).
fn compose_version(sequence: u64, nonce: &VersionId) -> VersionId {
    let random: String = nonce.0.chars().filter(char::is_ascii_hexdigit).map(|c| c.to_ascii_lowercase()).collect();
    let tail = &random[random.len().saturating_sub(16)..];
    VersionId::new(format!("{sequence:016x}{tail:0>16}"))
}

/// The sequence of a version id written by `compose_version`; None for "null" or a malformed id.
pub(crate) fn parse_sequence(version: &VersionId) -> Option<u64> {
    let id = version.0.as_str();
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    u64::from_str_radix(&id[..16], 16).ok()
}

/// Whether `id` can name a version: "null" or an id of `compose_version`'s shape.
pub fn is_valid_version_id(id: &str) -> bool {
    id == NULL_VERSION || parse_sequence(&VersionId::new(id)).is_some()
}

/// Moves a replaced current version to the non-current range (a promoted one is already there).
fn retire(bucket: &BucketName, old: &ObjectRecord, batch: &mut WriteBatch) {
    if !old.promoted {
        batch.put(keys::version(bucket, &old.key, old.sequence), stored::encode_record(old));
    }
}

/// The scan entry of a striped part (inline parts have no blob id and need no repair).
pub(crate) fn strip_quotes(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

/// The parts a completion names, validated as AWS validates them; `stored` in part order.
fn choose_parts(stored: &[PartData], chosen: &[CompletedPart]) -> Result<Vec<PartData>, MetaError> {
    if chosen.is_empty() {
        return Err(MetaError::InvalidPart("the part list is empty".into()));
    }
    if chosen.len() > crate::MULTIPART_MAX_PARTS as usize {
        return Err(MetaError::InvalidPart(format!("at most {} parts can be completed", crate::MULTIPART_MAX_PARTS)));
    }
    // As on AWS: the order of the whole list is checked first, then each part, then sizes.
    if chosen.windows(2).any(|w| w[0].part_number >= w[1].part_number) {
        return Err(MetaError::InvalidPartOrder);
    }
    let mut out = Vec::with_capacity(chosen.len());
    for want in chosen {
        let part = stored
            .binary_search_by_key(&want.part_number, |p| p.part_number)
            .map(|index| &stored[index])
            .map_err(|_| MetaError::InvalidPart(format!("part {} was not uploaded", want.part_number)))?;
        if part.etag != strip_quotes(&want.etag) {
            return Err(MetaError::InvalidPart(format!("part {} has another ETag", want.part_number)));
        }
        out.push(part.clone());
    }
    if let Some(small) = out[..out.len() - 1].iter().find(|p| p.size < MULTIPART_MIN_PART_SIZE_BYTES) {
        return Err(MetaError::EntityTooSmall { part_number: small.part_number });
    }
    Ok(out)
}

/// Frees a part's blob: garbage from `since_ms`, a time the entry carries (the rule reads nothing
/// but the entry, so a replica applying it after an upgrade agrees with one that applied it
/// before): the metadata leader's time as it appended the entry (`Command::stamp_leader_time`:
/// a delete's or an abort's `now_ms`, an overwrite's `leader_ms`); for an overwrite logged
/// before that stamp existed, the new version's last-modified time (its gateway's clock). The
/// collector judges the grace by its own clock.
fn garbage_of_part(part: &PartData, since_ms: i64, batch: &mut WriteBatch) {
    match &part.location {
        DataLocation::Striped(blob) => {
            let record = GarbageRecord::new(part.location.clone(), since_ms);
            batch.put(keys::garbage(&blob.blob), encode(&record));
        }
        // The slot is free; the pack is garbage once no slot is left (`settle_packs`).
        DataLocation::Packed(slice) => batch.delete(keys::pack_member(&slice.pack.blob, slice.slot)),
        DataLocation::Inline(_) => {}
    }
}

fn collect_garbage(object: &ObjectRecord, since_ms: i64, batch: &mut WriteBatch) {
    for part in &object.parts {
        garbage_of_part(part, since_ms, batch);
    }
}

/// Garbage of a replaced version from `since_ms`, sparing any blob the new version still
/// references.
fn collect_garbage_except(old: &ObjectRecord, new: &ObjectRecord, since_ms: i64, batch: &mut WriteBatch) {
    for part in &old.parts {
        if !new.parts.iter().any(|p| p.location == part.location) {
            garbage_of_part(part, since_ms, batch);
        }
    }
}

/// A record a scan skips, logged once here (its reader reports it too).
/// The value of a proposal id's age key: the log position that recorded it when the entry is
/// aged by entries too (`Proposal::aged_by_entries`), else nothing, as before format 11.
fn age_value(aged_by_entries: bool, log_index: u64) -> Vec<u8> {
    if aged_by_entries { encode(&log_index) } else { Vec::new() }
}

fn unreadable_record(key: &[u8], blob: Option<BlobId>, why: String) -> UnreadableRecord {
    let key = String::from_utf8_lossy(key).into_owned();
    // Every scan meets it again (GC every 30 s, repair every minute): an error the first time
    // this process does, then quietly (up to `LOGGED_MAX` keys remembered).
    const LOGGED_MAX: usize = 4096;
    static LOGGED: std::sync::Mutex<Option<std::collections::HashSet<String>>> = std::sync::Mutex::new(None);
    let first = {
        let mut logged = LOGGED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let logged = logged.get_or_insert_with(Default::default);
        logged.len() < LOGGED_MAX && logged.insert(key.clone())
    };
    if first {
        tracing::error!(record = %key, blob = ?blob, %why, "a metadata record does not decode: passed over");
    } else {
        tracing::debug!(record = %key, "a metadata record does not decode: passed over");
    }
    UnreadableRecord { key, blob, why }
}
