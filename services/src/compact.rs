//! Compaction of packs. A pack (small objects written together in one erasure-coded stripe,
//! `ignifuge_gateway::pack`) keeps every byte until its last object goes; a pack written under
//! low load may hold a single small object, whose shards each take a whole filesystem block on
//! their nodes. This service rewrites such packs: it reads the live objects of packs that are
//! mostly dead (`SPARSE`: at least half their bytes) or small (`SMALL_PACK_BYTES`), writes them
//! together as a new pack (one stripe, fsynced on its nodes and placed for the class's budget,
//! as any pack), and re-points their records with one `Command::RepackObjects`, which moves only
//! the versions whose records still name the slices read (a version replaced or deleted
//! meanwhile keeps its fate). An old pack left with no member becomes garbage in that same
//! command and is collected after the grace, like any replaced blob, so a GET that read the old
//! record can still finish.
//!
//! Never lowers a margin: the new pack is whole before any record names it, and the old one is
//! only deleted once none does. Never destroys on an unknown outcome: a commit whose answer is
//! lost gives nothing up (the new pack's shards, if unreferenced, go to the fenced orphan
//! sweep); a known refusal gives the new pack up through the fence, which refuses any blob a
//! record names. Every byte moved is checked twice: by BLAKE3 as its shards are read, and
//! against the object's MD5 (its ETag) before it is written again.
//!
//! One process at a time compacts (the `compact` lease); a round is busy at most
//! `CompactConfig::busy_share` of the time (`pace`).

use crate::Services;
use crate::error::{ServiceError, ServiceResult};
use crate::lease::Lease;
use crate::pace::DutyCycle;
use futures::StreamExt;
use ignifuge_gateway::commit::{self, AnswerFaults};
use ignifuge_gateway::datapath::new_blob_id;
use ignifuge_gateway::pack::{lane_of, lane_pack_bytes};
use ignifuge_meta::{
    Command, DataLocation, LivePackMember, Outcome, PACK_OBJECTS_MAX, PACK_USAGE_PAGE_MAX, PackMove, PackUsage,
    PartData, StripedBlob,
};
use ignifuge_types::BlobId;
use md5::Digest as _;
use std::sync::Arc;
use std::time::Duration;

/// Pause between compaction rounds.
pub const COMPACT_INTERVAL_MS_DEFAULT: u64 = 10 * 60 * 1000;
/// A pack younger than this is left alone: objects written together are often deleted
/// together (temporary files, sessions), and a pack just written under low load may be joined
/// by others before it is worth merging.
pub const COMPACT_MIN_AGE_MS_DEFAULT: u64 = 10 * 60 * 1000;
/// Share of the time a round may be busy, as garbage collection's.
pub const COMPACT_BUSY_SHARE_DEFAULT: f64 = 0.25;
/// A pack of at most this many bytes of data is merged with others of its lane: at 5+4 its
/// shards are at most 13 KiB each, mostly filesystem blocks' padding and per-file cost.
pub const SMALL_PACK_BYTES: u64 = 64 * 1024;
/// Packs considered by one round at most (their usage is held in memory while it runs).
const ROUND_PACKS_MAX: usize = 4096;

/// The compactor's fault points: its commit's answer lost or wrongly refused, and a crash
/// between the new pack's write and its commit (`services.compact.before-commit`).
const COMPACT_FAULTS: AnswerFaults =
    AnswerFaults { lost: "services.compact.answer-lost", wrong: "services.compact.answer-wrong" };

#[derive(Clone, Debug)]
pub struct CompactConfig {
    /// `COMPACT_INTERVAL_MS_DEFAULT`.
    pub interval: Duration,
    /// `COMPACT_MIN_AGE_MS_DEFAULT`.
    pub min_age: Duration,
    /// `COMPACT_BUSY_SHARE_DEFAULT`.
    pub busy_share: f64,
}

impl Default for CompactConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(COMPACT_INTERVAL_MS_DEFAULT),
            min_age: Duration::from_millis(COMPACT_MIN_AGE_MS_DEFAULT),
            busy_share: COMPACT_BUSY_SHARE_DEFAULT,
        }
    }
}

/// Runs compaction rounds forever, while this process holds the `compact` lease.
pub async fn run(services: Arc<Services>, config: CompactConfig) {
    let mut lease = Lease::for_rounds("compact", services.holder.clone(), config.interval);
    let cycle = DutyCycle::new(config.busy_share);
    let mut cursor = None;
    loop {
        lease.next_round(&services, config.interval).await;
        match compact(&services, &config, cycle, &mut lease, &mut cursor).await {
            Ok(done) if done.packs_freed == 0 && done.objects_moved == 0 => {}
            Ok(done) => tracing::info!(
                objects = done.objects_moved,
                bytes = done.bytes_moved,
                packs_written = done.packs_written,
                packs_freed = done.packs_freed,
                "packs compacted"
            ),
            Err(e) => tracing::warn!(error = %e, "compaction round failed; retrying later"),
        }
    }
}

/// What one round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Compacted {
    pub objects_moved: usize,
    pub bytes_moved: u64,
    pub packs_written: usize,
    /// Old packs every live object of which was moved (garbage from then on).
    pub packs_freed: usize,
}

/// One round: the usage of packs from `cursor` on, then each group of candidates rewritten as
/// one pack. A round that stops at `ROUND_PACKS_MAX` candidates leaves `cursor` where it stopped
/// and the next goes on from there (else from the first pack), so no pack waits forever behind
/// others that cannot be compacted. A group that fails is logged and the round goes on, unless
/// new packs cannot be written at the class's budget now (nodes down), which ends the round.
pub async fn compact(
    services: &Services,
    config: &CompactConfig,
    cycle: DutyCycle,
    lease: &mut Lease,
    cursor: &mut Option<BlobId>,
) -> ServiceResult<Compacted> {
    let now_ms = ignifuge_types::time::now_ms();
    let min_age_ms = config.min_age.as_millis() as i64;
    let stripe_bytes = services.data.stripe_data_bytes();
    let mut candidates = Vec::new();
    let mut partners = Partners::default();
    let mut after = cursor.take();
    loop {
        let step = cycle.step();
        let page = services.metadata.pack_usage(after, PACK_USAGE_PAGE_MAX).await?;
        for usage in page.packs.into_iter().filter(|u| is_eligible(u, now_ms, min_age_ms)) {
            if is_candidate(&usage) {
                candidates.push(usage);
            } else {
                partners.offer(usage);
            }
        }
        step.rest(lease, services.metadata.as_ref()).await;
        if !lease.keep(services.metadata.as_ref()).await? {
            tracing::info!(
                holder = lease.holder(),
                "the compaction lease was lost (another worker took it, or a new tenure of it began)"
            );
            return Ok(Compacted::default());
        }
        match page.next {
            Some(next) if candidates.len() >= ROUND_PACKS_MAX => {
                *cursor = Some(next);
                break;
            }
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut done = Compacted::default();
    for group in groups(candidates, partners, stripe_bytes) {
        if !lease.keep(services.metadata.as_ref()).await? {
            tracing::info!(
                holder = lease.holder(),
                "the compaction lease was lost (another worker took it, or a new tenure of it began)"
            );
            break;
        }
        let step = cycle.step();
        let rewritten = rewrite(services, &group, &mut done).await;
        step.rest(lease, services.metadata.as_ref()).await;
        match rewritten {
            Ok(Rewrite::Done) => {}
            // Every other group would write a pack only to discard it (or fail) as well.
            Ok(Rewrite::NodesDown) | Err(ServiceError::Data(_)) => {
                tracing::info!("compaction waits: new packs cannot be written at the class's budget now");
                break;
            }
            Err(e) => {
                tracing::warn!(packs = group.len(), error = %e, "a group of packs was not compacted; going on with the next")
            }
        }
    }
    Ok(done)
}

/// A pack the compactor may touch: old enough, holding live objects, every member naming its
/// version.
fn is_eligible(usage: &PackUsage, now_ms: i64, min_age_ms: i64) -> bool {
    usage.compactable && usage.live_objects > 0 && now_ms.saturating_sub(usage.pack.born_ms) >= min_age_ms
}

/// A pack worth rewriting: at least half dead, or small.
fn is_candidate(usage: &PackUsage) -> bool {
    is_sparse(usage) || usage.data_len <= SMALL_PACK_BYTES
}

/// At least half the pack's bytes belong to no live object.
fn is_sparse(usage: &PackUsage) -> bool {
    usage.live_bytes.saturating_mul(2) <= usage.data_len
}

/// The lane of a pack: its largest live object's, as the packer chose.
fn lane(usage: &PackUsage) -> usize {
    lane_of(usage.largest_live as usize)
}

/// For each lane, the eligible pack that is not a candidate with the fewest live bytes: what a
/// small pack left alone in its lane is merged into.
#[derive(Default)]
struct Partners(std::collections::BTreeMap<usize, PackUsage>);

impl Partners {
    fn offer(&mut self, usage: PackUsage) {
        let slot = self.0.entry(lane(&usage));
        match slot {
            std::collections::btree_map::Entry::Occupied(mut held) if usage.live_bytes < held.get().live_bytes => {
                held.insert(usage);
            }
            std::collections::btree_map::Entry::Occupied(_) => {}
            std::collections::btree_map::Entry::Vacant(empty) => {
                empty.insert(usage);
            }
        }
    }
}

/// Candidates grouped into new packs: by lane, in order, while the live bytes fit the lane's
/// pack and the objects one command. A group of one pack that is not sparse (a small pack alone
/// in its lane) is merged into its lane's partner if both fit one pack, else left: rewriting a
/// small full pack alone frees nothing.
fn groups(candidates: Vec<PackUsage>, mut partners: Partners, stripe_bytes: usize) -> Vec<Vec<PackUsage>> {
    let fits = |group: &[PackUsage], usage: &PackUsage| {
        let bytes: u64 = group.iter().map(|u| u.live_bytes).sum();
        let objects: u32 = group.iter().map(|u| u.live_objects).sum();
        bytes + usage.live_bytes <= lane_pack_bytes(lane(usage), stripe_bytes) as u64
            && (objects + usage.live_objects) as usize <= PACK_OBJECTS_MAX
    };
    let mut open: std::collections::BTreeMap<usize, Vec<PackUsage>> = Default::default();
    let mut out = Vec::new();
    for usage in candidates {
        let group = open.entry(lane(&usage)).or_default();
        if !group.is_empty() && !fits(group, &usage) {
            out.push(std::mem::take(group));
        }
        group.push(usage);
    }
    out.extend(open.into_values());
    for group in &mut out {
        if let [alone] = group.as_slice()
            && !is_sparse(alone)
            && let Some(partner) = partners.0.remove(&lane(alone))
        {
            if fits(group, &partner) {
                group.push(partner);
            }
        }
    }
    out.retain(|group| group.len() > 1 || group.first().is_some_and(is_sparse));
    out
}

/// How a group's rewrite ended, when it did not fail.
enum Rewrite {
    /// Committed, or nothing to do.
    Done,
    /// The new pack could only be written with durability debt: discarded.
    NodesDown,
}

/// Reads the live objects of `group`'s packs, writes them as one new pack (at most the lane's
/// pack size: objects beyond it wait in their pack for the next round) and commits the moves.
async fn rewrite(services: &Services, group: &[PackUsage], done: &mut Compacted) -> ServiceResult<Rewrite> {
    let Some(first) = group.first() else { return Ok(Rewrite::Done) };
    let limit = lane_pack_bytes(lane(first), services.data.stripe_data_bytes());
    let mut data = services.data.pack_buffer(group.iter().map(|u| u.live_bytes as usize).sum::<usize>().min(limit));
    let mut moves = Vec::new();
    let mut from_packs = Vec::new();
    for usage in group {
        let members = services.metadata.pack_members(usage.pack.blob.clone()).await?;
        if members.is_empty() {
            continue;
        }
        let bytes = match read_pack(services, &usage.pack, usage.data_len).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(pack = %usage.pack.blob, error = %e, "pack not readable now; not compacted this round");
                continue;
            }
        };
        let mut took_all = true;
        for member in members {
            let room = moves.len() < PACK_OBJECTS_MAX && data.len() as u64 + member.part.size <= limit as u64;
            match room.then(|| append_checked(&member, &bytes, &mut data)).flatten() {
                Some(offset) => {
                    let DataLocation::Packed(from) = member.part.location else { unreachable!("checked") };
                    moves.push(PackMove {
                        bucket: member.bucket,
                        key: member.key,
                        version: member.version,
                        from,
                        offset,
                    });
                }
                None => took_all = false,
            }
        }
        if took_all {
            from_packs.push(usage.pack.blob.clone());
        }
    }
    if moves.is_empty() {
        return Ok(Rewrite::Done);
    }
    let blob = new_blob_id();
    // Until the commit has answered: the orphan sweep spares the new pack's shards meanwhile.
    let _intent = services.data.intents.begin(blob.clone());
    let bytes_moved = data.len() as u64;
    let pack = services.data.write_pack(blob.clone(), ignifuge_types::time::now_ms(), data).await?;
    if pack.stripes.iter().any(|stripe| stripe.debt) {
        // Written below the class's budget (nodes down, the outage policy doubling shards up):
        // moving objects into it would lower their margin. Nothing names it yet.
        services.data.discard(blob.clone());
        tracing::info!(pack = %blob, "compaction waits: its new pack was written with durability debt (nodes down); discarded");
        return Ok(Rewrite::NodesDown);
    }
    if ignifuge_faults::hit("services.compact.before-commit").is_some() {
        return Err(crate::ServiceError::Internal("fault point: before the repack's commit".into()));
    }
    let count = moves.len();
    let command = Command::RepackObjects { pack, moves };
    match commit::answer_at(services.metadata.as_ref(), command, COMPACT_FAULTS).await {
        Ok(Outcome::Repacked(moved)) if moved.len() == count => {
            let n = moved.iter().filter(|m| **m).count();
            if n == 0 {
                // Nothing moved: the pack was not admitted, nothing references it.
                commit::give_up(services.metadata.clone(), services.data.clone(), vec![blob]);
                return Ok(Rewrite::Done);
            }
            done.objects_moved += n;
            done.bytes_moved += bytes_moved;
            done.packs_written += 1;
            // An old pack is freed when all of its members moved; one whose object changed
            // meanwhile was freed by that change or is still held by it.
            if n == count {
                done.packs_freed += from_packs.len();
            }
            Ok(Rewrite::Done)
        }
        Ok(other) => {
            tracing::warn!(pack = %blob, answer = ?other, "a repack was answered with something else; nothing given up");
            Ok(Rewrite::Done)
        }
        Err(e) => {
            if e.is_known_refusal() {
                tracing::warn!(pack = %blob, error = %e, "repack refused; its new pack is given up through the fence");
                commit::give_up(services.metadata.clone(), services.data.clone(), vec![blob]);
            } else {
                tracing::warn!(pack = %blob, error = %e, "repack commit outcome unknown; its shards are left to the fenced orphan sweep");
            }
            Err(e.into())
        }
    }
}

/// The whole data of a pack, each shard from its node (not the gateway's shard cache) and checked
/// against its BLAKE3 as it is read.
async fn read_pack(services: &Services, pack: &StripedBlob, data_len: u64) -> ServiceResult<Vec<u8>> {
    let whole = PartData {
        part_number: 1,
        size: data_len,
        etag: String::new(),
        checksums: Default::default(),
        location: DataLocation::Striped(pack.clone()),
        last_modified_ms: 0,
        started_ms: 0,
        began: None,
    };
    let mut stream = services.data.read_range_from_nodes(vec![whole], 0..data_len, services.metadata.clone());
    let mut bytes = Vec::with_capacity(data_len as usize);
    while let Some(piece) = stream.next().await {
        bytes.extend_from_slice(&piece?);
    }
    if bytes.len() as u64 != data_len {
        return Err(crate::ServiceError::Internal(format!(
            "pack {} read {} of {data_len} bytes",
            pack.blob,
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Appends a member's bytes, read from its pack's data, to the new pack's `data` and returns
/// where they start, if they are whole and what was appended matches the object's MD5 (its
/// part's ETag): bytes that cannot be vouched for at their new place are never written again.
fn append_checked(member: &LivePackMember, pack: &[u8], data: &mut Vec<u8>) -> Option<u64> {
    let DataLocation::Packed(slice) = &member.part.location else { return None };
    let start = usize::try_from(slice.offset).ok()?;
    let body = pack.get(start..start.checked_add(usize::try_from(member.part.size).ok()?)?)?;
    let offset = data.len();
    data.extend_from_slice(body);
    let md5 = hex::encode(md5::Md5::digest(&data[offset..]));
    if !member.part.etag.eq_ignore_ascii_case(&md5) {
        data.truncate(offset);
        tracing::error!(key = %member.key, pack = %slice.pack.blob, "a packed object's bytes do not match its MD5; not moved");
        return None;
    }
    Some(offset as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(name: &str, data_len: u64, live_objects: u32, live_bytes: u64, largest_live: u64) -> PackUsage {
        PackUsage {
            pack: StripedBlob {
                blob: BlobId::new(name),
                data_shards: 5,
                parity_shards: 4,
                shard_size_bytes: 1 << 20,
                stripe_count: 1,
                first_stripe: 0,
                stripes: Vec::new(),
                born_ms: 1_000,
            },
            data_len,
            objects: live_objects * 2,
            live_objects,
            live_bytes,
            largest_live,
            compactable: true,
        }
    }

    fn names(groups: &[Vec<PackUsage>]) -> Vec<Vec<&str>> {
        groups.iter().map(|g| g.iter().map(|u| u.pack.blob.0.as_str()).collect()).collect()
    }

    #[test]
    fn candidates_are_old_enough_sparse_or_small_and_name_their_members() {
        let kib = 1024;
        let sparse = usage("sparse", 256 * kib, 10, 128 * kib, 16 * kib);
        assert!(is_eligible(&sparse, 2_000, 1_000) && is_candidate(&sparse), "half dead");
        assert!(!is_eligible(&sparse, 1_500, 1_000), "too young");
        let full = usage("full", 256 * kib, 60, 200 * kib, 16 * kib);
        assert!(is_eligible(&full, 2_000, 0) && !is_candidate(&full), "large and mostly live");
        let small = usage("small", 8 * kib, 2, 8 * kib, 4 * kib);
        assert!(is_candidate(&small), "small, even if full");
        let old = PackUsage { compactable: false, ..small.clone() };
        assert!(!is_eligible(&old, 2_000, 0), "members written before format 9");
        let empty = PackUsage { live_objects: 0, live_bytes: 0, ..small };
        assert!(!is_eligible(&empty, 2_000, 0), "nothing live: garbage already");
    }

    #[test]
    fn groups_fill_a_lanes_pack_and_a_lone_small_pack_joins_its_lanes_emptiest_other() {
        let kib = 1024;
        let stripe = 5 << 20;
        // Small lane (<= 16 KiB objects): packs of at most 256 KiB of live bytes.
        let a = usage("a", 60 * kib, 10, 40 * kib, 4 * kib);
        let b = usage("b", 256 * kib, 20, 100 * kib, 8 * kib);
        let c = usage("c", 256 * kib, 30, 120 * kib, 16 * kib);
        // Middle lane: one sparse pack alone is worth it.
        let d = usage("d", 2048 * kib, 4, 512 * kib, 128 * kib);
        let e = usage("e", 60 * kib, 1, 60 * kib, 60 * kib);
        let grouped = groups(vec![a, b, c, d, e], Partners::default(), stripe);
        assert_eq!(names(&grouped), [vec!["a", "b"], vec!["c"], vec!["d", "e"]]);
        // A small full pack alone: left, unless its lane has a pack with room for it.
        let lone = || usage("f", 40 * kib, 1, 40 * kib, 40 * kib);
        assert!(groups(vec![lone()], Partners::default(), stripe).is_empty(), "rewriting it alone frees nothing");
        let mut partners = Partners::default();
        partners.offer(usage("big", 2000 * kib, 30, 1990 * kib, 100 * kib));
        partners.offer(usage("roomy", 900 * kib, 20, 800 * kib, 100 * kib));
        partners.offer(usage("other-lane", 200 * kib, 40, 150 * kib, 10 * kib));
        assert_eq!(names(&groups(vec![lone()], partners, stripe)), [vec!["f", "roomy"]], "the emptiest of its lane");
        let mut partners = Partners::default();
        partners.offer(usage("big", 2000 * kib, 30, 2030 * kib, 100 * kib));
        assert!(groups(vec![lone()], partners, stripe).is_empty(), "no room: left");
        // The command's limit on objects.
        let many: Vec<PackUsage> = (0..3).map(|i| usage(&format!("m{i}"), 64 * kib, 200, 30 * kib, kib)).collect();
        assert_eq!(names(&groups(many, Partners::default(), stripe)), [vec!["m0", "m1"], vec!["m2"]]);
    }

    #[test]
    fn only_bytes_matching_the_objects_md5_are_moved() {
        let pack_bytes = b"hello, world".to_vec();
        let header = usage("p", 12, 1, 5, 5).pack;
        let member = |offset: u64, size: u64, etag: String| LivePackMember {
            bucket: ignifuge_types::BucketName::new("b"),
            key: ignifuge_types::ObjectKey::new("k"),
            version: ignifuge_types::VersionId::new("null"),
            part: PartData {
                part_number: 1,
                size,
                etag,
                checksums: Default::default(),
                location: DataLocation::Packed(ignifuge_meta::PackedSlice { pack: header.clone(), offset, slot: 0 }),
                last_modified_ms: 0,
                started_ms: 0,
                began: None,
            },
        };
        let md5 = |b: &[u8]| hex::encode(md5::Md5::digest(b));
        let mut data = b"abc".to_vec();
        assert_eq!(append_checked(&member(7, 5, md5(b"world")), &pack_bytes, &mut data), Some(3));
        assert_eq!(data, b"abcworld", "appended after what was there");
        assert_eq!(append_checked(&member(7, 5, md5(b"World")), &pack_bytes, &mut data), None, "another MD5");
        assert_eq!(append_checked(&member(10, 5, md5(b"ld")), &pack_bytes, &mut data), None, "past the pack's data");
        assert_eq!(data, b"abcworld", "nothing left of what was refused");
    }
}
