//! Packs in the state machine: `Command::PutPacked` (objects written together in one stripe),
//! settling packs whose last member goes, and compaction (`Command::RepackObjects`, with the
//! queries that tell the compactor what is left of each pack).
//!
//! A pack's member keys (`keys::pack_member`) say which of its slots are referenced: each
//! installed object adds one, holding its `PackMember` (the version that references the slot);
//! every command that drops a reference deletes it (`garbage_of_part`), and the pack turns to
//! garbage in the same batch once none is left.

use super::{StateMachine, encode};
use crate::keys;
use crate::records::*;
use crate::{MetaError, PACK_OBJECTS_MAX};
use ignifuge_kv::{KvOp, WriteBatch, prefix_end};
use ignifuge_types::BlobId;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Most packs one `Query::PackUsage` examines (each costs a scan of its member keys).
pub const PACK_USAGE_PAGE_MAX: usize = 256;

impl StateMachine {
    /// Every pack whose member keys `batch` deletes and that has no other member left becomes
    /// garbage in the same batch (its record moves from `n/` to `g/`, for the collector). Only
    /// the command that writes a pack (`PutPacked`, `RepackObjects`: a new blob each) adds its
    /// members, so the state before the command and the batch's deletions say exactly what is
    /// left of a pack the batch frees slots of; reading at most one live member more than
    /// the batch deletes of a pack tells whether another remains (the scan also steps over the
    /// tombstones of the pack's slots freed before, at most `PACK_OBJECTS_MAX`). A pack record
    /// that does not decode is left where it is, on every replica alike (its shards stay: a
    /// leak, never a loss), rather than refusing the command that freed its last slot.
    pub(super) fn settle_packs(&self, since_ms: i64, batch: &mut WriteBatch) -> Result<(), MetaError> {
        let mut freed: BTreeMap<BlobId, BTreeSet<&[u8]>> = Default::default();
        for op in &batch.ops {
            let KvOp::Delete(key) = op else { continue };
            if let Some(pack) = keys::pack_of_member(key) {
                freed.entry(pack).or_default().insert(key.as_slice());
            }
        }
        let mut emptied = Vec::new();
        for (pack, members) in freed {
            let prefix = keys::pack_members_prefix(&pack);
            let left = self.kv.scan(&prefix, prefix_end(&prefix).as_deref(), members.len() + 1)?;
            if left.iter().all(|(key, _)| members.contains(key.as_slice())) {
                emptied.push(pack);
            }
        }
        for pack in emptied {
            let record = match self.read::<PackRecord>(&keys::pack(&pack)) {
                Ok(Some(record)) => record,
                Ok(None) => continue,
                Err(MetaError::Corrupt(why)) => {
                    tracing::error!(%pack, %why, "a pack record does not decode: the pack is kept");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let garbage = GarbageRecord::new(DataLocation::Striped(record.pack), since_ms);
            batch.put(keys::garbage(&pack), encode(&garbage));
            batch.delete(keys::pack(&pack));
        }
        Ok(())
    }

    /// `Command::PutPacked`: every object checked and installed on its own, as a PutObject (what
    /// it replaces is garbage from `leader_ms`, else its own last-modified time); the pack
    /// admitted and its installed slots recorded if any is installed.
    pub(super) fn put_packed(
        &self,
        pack: StripedBlob,
        objects: Vec<PackedPut>,
        member_versions: bool,
        leader_ms: Option<i64>,
        stamp: Option<i64>,
        batch: &mut WriteBatch,
    ) -> Result<Outcome, MetaError> {
        let invalid = |why: String| Err(MetaError::InvalidCommand(why));
        let (data_len, header) = pack_shape(&pack, objects.len())?;
        // Each object reads the state before the batch: a key named twice would not see its own
        // first write.
        let mut named = HashSet::with_capacity(objects.len());
        for (slot, put) in objects.iter().enumerate() {
            if !named.insert((&put.bucket.name, &put.record.key)) {
                return invalid(format!("key {} named twice in one pack", put.record.key));
            }
            let [part] = put.record.parts.as_slice() else {
                return invalid(format!("packed object {} has {} parts", put.record.key, put.record.parts.len()));
            };
            let DataLocation::Packed(slice) = &part.location else {
                return invalid(format!("object {} in a pack is not a slice of it", put.record.key));
            };
            let fits = slice.offset.checked_add(part.size).is_some_and(|end| end <= data_len);
            let same_pack = slice.pack == header;
            if !same_pack || slice.slot != slot as u32 || !fits {
                return invalid(format!("object {} is not slot {slot} of pack {}", put.record.key, pack.blob));
            }
        }
        let mut admission = WriteBatch::new();
        let mut location = DataLocation::Striped(pack);
        self.admit_blob(&mut location, stamp, &mut admission)?;
        let DataLocation::Striped(pack) = location else { unreachable!("admitted as striped") };
        let count = objects.len() as u32;
        let mut outcomes = Vec::with_capacity(objects.len());
        for (slot, put) in objects.into_iter().enumerate() {
            // Each object's writes join the batch only if it is installed.
            let mut own = WriteBatch::new();
            let installed = self.checked_bucket(&put.bucket).and_then(|bucket| {
                let current = self.current(&bucket.name, &put.record.key)?;
                put.condition.check(current.as_ref())?;
                let since_ms = leader_ms.unwrap_or(put.record.last_modified_ms);
                self.install(&bucket, put.record, current, since_ms, &mut own)
            });
            match installed {
                Ok(record) => {
                    batch.ops.extend(own.ops);
                    let member = member_versions.then(|| PackMember {
                        bucket: put.bucket.name.clone(),
                        key: record.key.clone(),
                        version: record.version.clone(),
                        size: record.size,
                    });
                    let value = member.as_ref().map(encode).unwrap_or_default();
                    batch.put(keys::pack_member(&pack.blob, slot as u32), value);
                    outcomes.push(Ok(Box::new(record)));
                }
                Err(e @ MetaError::Storage(_)) => return Err(e),
                Err(refused) => outcomes.push(Err(refused)),
            }
        }
        if outcomes.iter().any(Result::is_ok) {
            batch.ops.extend(admission.ops);
            batch.put(keys::pack(&pack.blob), encode(&PackRecord { pack, objects: count }));
        }
        Ok(Outcome::Packed(outcomes))
    }

    /// `Command::RepackObjects`: each move whose record still names its `from` slice is
    /// re-pointed to the new pack; the pack is admitted if any is. Nothing but the part's
    /// location changes in a moved record (same version, ETag, dates, checksums), so a
    /// conditional request cannot tell a compaction happened.
    pub(super) fn repack_objects(
        &self,
        pack: StripedBlob,
        moves: Vec<PackMove>,
        stamp: Option<i64>,
        batch: &mut WriteBatch,
    ) -> Result<Outcome, MetaError> {
        let invalid = |why: String| Err(MetaError::InvalidCommand(why));
        let (data_len, header) = pack_shape(&pack, moves.len())?;
        let mut named = HashSet::with_capacity(moves.len());
        for m in &moves {
            if !named.insert((&m.bucket, &m.key, &m.version)) {
                return invalid(format!("version {} of {} moved twice", m.version, m.key));
            }
            if m.from.pack.blob == pack.blob {
                return invalid(format!("{} moved into the pack it is in", m.key));
            }
        }
        let mut moved = Vec::with_capacity(moves.len());
        let mut own = WriteBatch::new();
        for (slot, m) in moves.into_iter().enumerate() {
            let Some(mut found) = self.locate(&m.bucket, &m.key, Some(&m.version))? else {
                moved.push(false);
                continue;
            };
            let from = DataLocation::Packed(m.from.clone());
            let [part] = found.record.parts.as_mut_slice() else {
                moved.push(false);
                continue;
            };
            if part.location != from {
                moved.push(false);
                continue;
            }
            if m.offset.checked_add(part.size).is_none_or(|end| end > data_len) {
                return invalid(format!("{} does not fit in pack {} at {}", m.key, pack.blob, m.offset));
            }
            part.location =
                DataLocation::Packed(PackedSlice { pack: header.clone(), offset: m.offset, slot: slot as u32 });
            let member = PackMember { bucket: m.bucket, key: m.key, version: m.version, size: part.size };
            own.put(found.store_key, crate::stored::encode_record(&found.record));
            own.delete(keys::pack_member(&m.from.pack.blob, m.from.slot));
            own.put(keys::pack_member(&pack.blob, slot as u32), encode(&member));
            moved.push(true);
        }
        if moved.iter().any(|m| *m) {
            let objects = moved.len() as u32;
            let mut location = DataLocation::Striped(pack);
            self.admit_blob(&mut location, stamp, batch)?;
            let DataLocation::Striped(pack) = location else { unreachable!("admitted as striped") };
            batch.ops.extend(own.ops);
            batch.put(keys::pack(&pack.blob), encode(&PackRecord { pack, objects }));
        }
        Ok(Outcome::Repacked(moved))
    }

    /// `Query::PackUsage`: what is left of each pack after `after`, from its member keys.
    pub(super) fn pack_usage(&self, after: Option<BlobId>, limit: usize) -> Result<PackUsagePage, MetaError> {
        let limit = limit.clamp(1, PACK_USAGE_PAGE_MAX);
        let start = match &after {
            Some(blob) => {
                let mut key = keys::pack(blob);
                key.push(0);
                key
            }
            None => keys::PACKS_PREFIX.to_vec(),
        };
        let end = prefix_end(keys::PACKS_PREFIX);
        let records = self.kv.scan(&start, end.as_deref(), limit)?;
        let next = (records.len() == limit).then(|| records.last().map(|(key, _)| blob_of_pack_key(key))).flatten();
        let mut packs = Vec::with_capacity(records.len());
        for (key, value) in records {
            let record: PackRecord = match serde_json::from_slice(&value) {
                Ok(record) => record,
                Err(e) => {
                    tracing::error!(pack = %blob_of_pack_key(&key), error = %e, "a pack record does not decode");
                    continue;
                }
            };
            // A pack whose stripe record cannot be read is left out (and not compacted), not
            // the end of every page after it.
            let stripes = match self.load_stripes(&record.pack.blob, 0, 1) {
                Err(MetaError::Corrupt(why)) => {
                    super::unreadable_record(&key, Some(record.pack.blob.clone()), why);
                    continue;
                }
                other => other?,
            };
            let Some(stripe) = stripes.0.into_iter().next() else { continue };
            let prefix = keys::pack_members_prefix(&record.pack.blob);
            let mut usage = PackUsage {
                data_len: stripe.data_len,
                objects: record.objects,
                live_objects: 0,
                live_bytes: 0,
                largest_live: 0,
                compactable: true,
                pack: StripedBlob { stripes: Vec::new(), ..record.pack },
            };
            for (_, value) in self.kv.scan(&prefix, prefix_end(&prefix).as_deref(), PACK_OBJECTS_MAX)? {
                usage.live_objects += 1;
                match serde_json::from_slice::<PackMember>(&value) {
                    Ok(member) => {
                        usage.live_bytes += member.size;
                        usage.largest_live = usage.largest_live.max(member.size);
                    }
                    Err(_) => usage.compactable = false,
                }
            }
            packs.push(usage);
        }
        Ok(PackUsagePage { packs, next })
    }

    /// A pack's geometry (without its stripes) as the first of its members that can be read
    /// names it, for a pack whose own record does not decode; None if none does (members that
    /// do not decode, or name no version: packs written before format 9, are passed over).
    pub(super) fn pack_from_members(&self, pack: &BlobId) -> Result<Option<StripedBlob>, MetaError> {
        let prefix = keys::pack_members_prefix(pack);
        for (key, value) in self.kv.scan(&prefix, prefix_end(&prefix).as_deref(), PACK_OBJECTS_MAX)? {
            let Ok(member) = serde_json::from_slice::<PackMember>(&value) else { continue };
            match self.member_part(pack, &key, &member) {
                Ok(Some(PartData { location: DataLocation::Packed(slice), .. })) => return Ok(Some(slice.pack)),
                Ok(_) | Err(MetaError::Corrupt(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// `Query::PackMembers`: the live objects of a pack, each as its record names it now; a
    /// member whose record no longer names its slot (which no command leaves) is left out.
    pub(super) fn pack_members(&self, pack: &BlobId) -> Result<Vec<LivePackMember>, MetaError> {
        let prefix = keys::pack_members_prefix(pack);
        let mut out = Vec::new();
        for (key, value) in self.kv.scan(&prefix, prefix_end(&prefix).as_deref(), PACK_OBJECTS_MAX)? {
            let Ok(member) = serde_json::from_slice::<PackMember>(&value) else { return Ok(Vec::new()) };
            let Some(part) = self.member_part(pack, &key, &member)? else { continue };
            out.push(LivePackMember { bucket: member.bucket, key: member.key, version: member.version, part });
        }
        Ok(out)
    }

    /// The part of the version a member key `key` of `pack` names, if its record still names
    /// that slot (which every command keeps true; another place is logged).
    fn member_part(&self, pack: &BlobId, key: &[u8], member: &PackMember) -> Result<Option<PartData>, MetaError> {
        let Some(found) = self.locate(&member.bucket, &member.key, Some(&member.version))? else { return Ok(None) };
        let [part] = found.record.parts.as_slice() else { return Ok(None) };
        let names_slot = match &part.location {
            DataLocation::Packed(slice) => slice.pack.blob == *pack && keys::pack_member(pack, slice.slot) == key,
            _ => false,
        };
        if !names_slot {
            tracing::error!(%pack, key = %member.key, "a pack member's record names another place");
            return Ok(None);
        }
        Ok(Some(part.clone()))
    }
}

/// What a command writing a pack of `objects` objects must hold: one stripe with its record, and
/// 1 to `PACK_OBJECTS_MAX` objects. Returns the pack's data length and its geometry without
/// stripes (what the objects' slices name).
fn pack_shape(pack: &StripedBlob, objects: usize) -> Result<(u64, StripedBlob), MetaError> {
    if objects == 0 || objects > PACK_OBJECTS_MAX {
        return Err(MetaError::InvalidCommand(format!("{objects} objects in one pack")));
    }
    if pack.stripe_count != 1 || pack.stripes.len() != 1 {
        return Err(MetaError::InvalidCommand(format!("pack {} is not one stripe", pack.blob)));
    }
    Ok((pack.stripes[0].data_len, StripedBlob { stripes: Vec::new(), ..pack.clone() }))
}

fn blob_of_pack_key(key: &[u8]) -> BlobId {
    BlobId::new(String::from_utf8_lossy(&key[keys::PACKS_PREFIX.len()..]).into_owned())
}
