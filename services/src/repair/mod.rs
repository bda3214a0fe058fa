//! The repair service: brings every stripe back to its class's full budget after node or
//! datacenter losses, scrub findings and writes made with durability debt, and reclaims stray
//! shards (crashed writes, superseded copies).
//!
//! One process at a time works, holding the `repair` lease in the metadata. A round:
//! 1. checks every node's health; a node unreachable for longer than the down-out interval, or
//!    declared out by an operator (`ignifuge admin node out`), is *out* (its shards count as
//!    lost), a node down for less may come back and is waited for;
//! 2. scans every blob in the metadata (upload parts, current and non-current object versions,
//!    garbage) page by page, asks each live node which shard files of the page it really holds,
//!    and surveys every stripe: shards present, margin, repair or wait ([`survey`]); while every
//!    node is live and nothing needs repair it rests between pages, so that a routine survey is
//!    busy at most `RepairConfig::survey_busy_share` of the time (every round reads the whole
//!    metadata and every node's inventory of it);
//! 3. rebuilds the stripes worst margin first ([`rebuild`]), rate-limited, each committed with a
//!    compare-and-swap on its shard list, and only then deletes the copies it moved away from;
//! 4. reclaims shards no metadata names, once older than the orphan grace period;
//! 5. when one is due, compares every metadata replica's state at one log index
//!    ([`crate::agreement`]; daily by default, sooner again after one that did not find them
//!    all alike);
//! 6. records a report (margins per tenant, queue, rate, ETA, the last metadata comparison) for
//!    `ignifuge admin durability` and the Prometheus gauges.
//!
//! A stripe is never made worse: shards are only added before the metadata switch, and removed
//! after it. A round interrupted by a crash leaves at most unreferenced shards, which the
//! orphan sweep reclaims; the next round starts over from the metadata (resumable by design).

mod rebuild;
pub(crate) mod survey;

use crate::Services;
use crate::error::{ServiceError, ServiceResult};
use crate::lease::Lease;
use crate::pace::DutyCycle;
use ignifuge_meta::{
    BlobCursor, BlobOwner, Command, LeaseFence, MarginCount, MetaError, MetadataCheck, RepairReport, ShardReplacement,
    StripedBlob, TenantMargins,
};
use ignifuge_rpc::{BlobListAnswer, BlobListRequest, HeldShard, InventoryAnswer, InventoryRequest, paths};
use ignifuge_types::time::now_ms;
use ignifuge_types::{BlobId, NodeId, TenantId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use survey::{Action, Margin, NodeState};

/// Pause between rounds.
pub const REPAIR_INTERVAL_MS_DEFAULT: u64 = 60 * 1000;
/// How long a node must stay unreachable before its shards are rebuilt elsewhere (a restart or
/// a short network cut should not trigger a full rebuild).
pub const REPAIR_DOWN_OUT_MS_DEFAULT: u64 = 10 * 60 * 1000;
/// Shard bytes the repair service writes per second at most.
pub const REPAIR_BYTES_PER_SEC_DEFAULT: u64 = 128 * 1024 * 1024;
/// A blob no metadata names is reclaimed only when its newest file is older than this (by its
/// node's clock) and no intent of a write in progress was renewed within it. Correctness does
/// not rest on it (the sweep fences a blob in the metadata before deleting a shard, so a late
/// commit is refused rather than left pointing at nothing); it is what keeps a slow but live
/// upload from being cut: it must exceed the intent renewal interval plus the clock
/// difference between gateways.
pub const ORPHAN_GRACE_MS_DEFAULT: u64 = 60 * 60 * 1000;
/// How often a round compares every metadata replica's state (each replica hashes its whole
/// state: at 10 million objects the whole comparison took 66 s with nine replicas sharing two
/// cores, docs/benchmarks.md).
pub const METADATA_CHECK_INTERVAL_MS_DEFAULT: u64 = 24 * 60 * 60 * 1000;
/// After a comparison that found a replica differing, or that failed, the next is due after
/// this (or the interval, if shorter): a rebuilt replica clears the report within minutes.
pub const METADATA_CHECK_RETRY_MS: u64 = 10 * 60 * 1000;
/// After one that could not compare every replica (a node down or restarting, a replica still
/// hashing at the deadline), the next is due after this (or the interval): soon enough that a
/// node restarting during the daily comparison does not leave the replicas uncompared for two
/// days, rarely enough that a datacenter down for weeks costs every reachable replica one hash
/// of its state an hour, not one every few minutes.
pub const METADATA_CHECK_RETRY_INCOMPLETE_MS: u64 = 60 * 60 * 1000;
/// How long replicas are given to reach the compared index and hash their state. The round's
/// report waits for it (its repairs and sweeps are done by then); a replica down answers at
/// once, one far behind or still hashing is waited for this long.
pub const METADATA_CHECK_TIMEOUT_MS_DEFAULT: u64 = 10 * 60 * 1000;
/// Stripes rebuilt concurrently (each holds k+m shards of at most 1 MiB in memory).
const REPAIR_STRIPES_IN_FLIGHT: usize = 4;
/// Blob records per scan page.
const SCAN_PAGE_RECORDS: usize = 200;
/// Stripes queued for repair in one round; the rest wait for the next round.
const CANDIDATES_MAX: usize = 100_000;
/// Blobs per page of a node's orphan listing.
const ORPHAN_PAGE_BLOBS: usize = 1000;
const LEASE_NAME: &str = "repair";

/// Share of the time the survey may be busy: clients keep three quarters.
pub const REPAIR_SURVEY_BUSY_SHARE_DEFAULT: f64 = 0.25;

#[derive(Clone, Debug)]
pub struct RepairConfig {
    /// `REPAIR_INTERVAL_MS_DEFAULT`.
    pub interval: Duration,
    /// `REPAIR_DOWN_OUT_MS_DEFAULT`.
    pub down_out: Duration,
    /// `REPAIR_BYTES_PER_SEC_DEFAULT`.
    pub bytes_per_sec: u64,
    /// `ORPHAN_GRACE_MS_DEFAULT`.
    pub orphan_grace_ms: i64,
    /// `REPAIR_SURVEY_BUSY_SHARE_DEFAULT`.
    pub survey_busy_share: f64,
    /// `METADATA_CHECK_INTERVAL_MS_DEFAULT`.
    pub metadata_check_interval: Duration,
    /// `METADATA_CHECK_TIMEOUT_MS_DEFAULT`.
    pub metadata_check_timeout: Duration,
}

impl Default for RepairConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(REPAIR_INTERVAL_MS_DEFAULT),
            down_out: Duration::from_millis(REPAIR_DOWN_OUT_MS_DEFAULT),
            bytes_per_sec: REPAIR_BYTES_PER_SEC_DEFAULT,
            orphan_grace_ms: ORPHAN_GRACE_MS_DEFAULT as i64,
            survey_busy_share: REPAIR_SURVEY_BUSY_SHARE_DEFAULT,
            metadata_check_interval: Duration::from_millis(METADATA_CHECK_INTERVAL_MS_DEFAULT),
            metadata_check_timeout: Duration::from_millis(METADATA_CHECK_TIMEOUT_MS_DEFAULT),
        }
    }
}

impl RepairConfig {
    fn lease_ms(&self) -> i64 {
        (self.interval.as_millis() as i64 * 3).max(30_000)
    }
}

/// What the service remembers between rounds.
#[derive(Default)]
pub struct RepairState {
    /// Each node's health checks so far, with its down time (`judge`).
    health: HashMap<NodeId, NodeHealth>,
    /// Since when a node that answers its health check has failed to list its shards (a disk
    /// whose directories no longer read): as long as a node down, it is out.
    unlisted_since: HashMap<NodeId, Instant>,
    /// Nodes an operator declared out, as the round's start read them.
    declared_out: HashSet<NodeId>,
}

/// Runs rounds forever.
pub async fn run(services: Arc<Services>, config: RepairConfig) {
    let mut state = RepairState::default();
    // The first round soon after start, so that a fresh cluster's report exists quickly.
    let mut pause = config.interval.min(Duration::from_secs(5));
    loop {
        tokio::time::sleep(pause).await;
        pause = config.interval;
        match round(&services, &config, &mut state).await {
            Ok(Some(report)) if report.stripes_repaired > 0 || report.stripes_below_budget > 0 => tracing::info!(
                below_budget = report.stripes_below_budget,
                repaired = report.stripes_repaired,
                waiting = report.stripes_waiting,
                "repair round done"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "repair round failed; retrying next round"),
        }
    }
}

/// One object version, as the margin tally groups its parts (None: the current version).
type ObjectVersionKey = (ignifuge_types::BucketName, ignifuge_types::ObjectKey, Option<ignifuge_types::VersionId>);

/// Stripes chosen for repair, worst margin first.
struct Candidate {
    owner: BlobOwner,
    blob: Arc<StripedBlob>,
    stripe: u32,
    survey: survey::StripeSurvey,
    /// The node-local modification time of each copy the survey found where the record places
    /// it, by shard index: a copy that a repair moves away is deleted only if it is still that
    /// file (never one written there again since).
    copies_modified_ms: HashMap<u32, i64>,
}

/// Counters of one round.
#[derive(Default)]
struct Tally {
    margins: BTreeMap<TenantId, BTreeMap<Margin, (u64, u64)>>,
    debt: BTreeMap<TenantId, (u64, u64)>,
    report: RepairReport,
}

impl Tally {
    fn object(&mut self, tenant: &TenantId, margin: Margin, bytes: u64, debt_stripes: u64) {
        let entry = self.margins.entry(tenant.clone()).or_default().entry(margin).or_default();
        entry.0 += 1;
        entry.1 += bytes;
        let debt = self.debt.entry(tenant.clone()).or_default();
        if debt_stripes > 0 {
            debt.0 += 1;
            debt.1 += debt_stripes;
        }
    }
}

/// One round; None when another process holds the lease, or the layout is not known yet.
pub async fn round(
    services: &Services,
    config: &RepairConfig,
    state: &mut RepairState,
) -> ServiceResult<Option<RepairReport>> {
    if !services.layout_known() {
        return Ok(None);
    }
    let mut lease = Lease::new(LEASE_NAME, services.holder.clone(), Duration::from_millis(config.lease_ms() as u64));
    if !lease.take(services.metadata.as_ref()).await? {
        // Another process watches the nodes meanwhile: what this one saw of them goes stale (a
        // node seen down hours ago must not be taken as down that long when the lease returns).
        state.health.clear();
        state.unlisted_since.clear();
        return Ok(None);
    }
    // Every commit of the round names the tenure its survey was made in: a worker that stalls
    // past its lease (a paused VM) cannot name shards another worker's survey has since counted
    // as strays and its sweep deletes (`ShardReplacement::lease`).
    let fence = lease.fence().ok_or_else(|| ServiceError::Internal("the repair lease taken has no tenure".into()))?;
    let started_ms = now_ms();
    let data = &services.data;
    // One layout for the whole round: every stripe is judged against the same topology.
    let layout = data.layout();
    let mut nodes = node_states(services, config, state).await;
    // Nodes whose shards the whole round counts as lost or waited for (a node's state only gets
    // worse within a round: one that stops listing mid-round had its earlier pages counted).
    let mut down_all_round: Vec<NodeId> =
        nodes.iter().filter(|(_, s)| **s != NodeState::Live).map(|(n, _)| n.clone()).collect();
    down_all_round.sort();
    let mut tally = Tally::default();
    tally.report.holder = services.holder.clone();
    tally.report.class = format!("default (survives {})", layout.budget);
    tally.report.started_ms = started_ms;

    // Scan, survey, and queue.
    let mut referenced: HashSet<BlobId> = HashSet::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut strays: Vec<(NodeId, HeldShard)> = Vec::new();
    let mut cursor = BlobCursor::default();
    // Objects span consecutive entries (one per part), across pages too (a record of many parts
    // is scanned over several): fold each into its worst margin, once.
    let mut object: Option<(TenantId, ObjectVersionKey, Margin, u64, u64)> = None;
    let survey_cycle = DutyCycle::new(config.survey_busy_share);
    let mut unreadable_seen: HashSet<String> = HashSet::new();
    loop {
        let page_step = survey_cycle.step();
        let page = services.metadata.blobs(cursor.clone(), SCAN_PAGE_RECORDS).await?;
        referenced.extend(page.blobs.iter().map(|b| b.blob.clone()));
        // Records that do not decode are left out of this round (and reported: the round's
        // margins do not cover their blobs, so no node is drained meanwhile). A blob such a
        // record names is kept out of the orphan sweep here; one it could not name is spared by
        // the fence (its `b/` mark stays until it is collected).
        for bad in &page.unreadable {
            referenced.extend(bad.blob.clone());
            // Once per record in the round, not per part of it nor per page it came back in.
            if unreadable_seen.insert(bad.key.clone()) {
                tally.report.records_unreadable += 1;
                if tally.report.unreadable_keys.len() < ignifuge_meta::UNREADABLE_NAMED_MAX {
                    tally.report.unreadable_keys.push(bad.key.clone());
                }
            }
        }
        let live: Vec<&ignifuge_meta::BlobRef> =
            page.blobs.iter().filter(|b| b.owner != BlobOwner::Garbage && b.striped.is_some()).collect();
        // A pack comes once as itself and once per object packed in it: asked for once.
        let asked: std::collections::BTreeSet<BlobId> = live.iter().map(|b| b.blob.clone()).collect();
        let held = inventories(services, config, state, &mut nodes, asked.into_iter().collect()).await;
        let state_of = |node: &NodeId| nodes.get(node).copied().unwrap_or(NodeState::Out);

        for blob_ref in live {
            let striped = Arc::new(blob_ref.striped.clone().expect("filtered on striped"));
            let mut worst = Margin::Full;
            let mut debt_stripes = 0;
            for (index, stripe) in (striped.first_stripe..).zip(&striped.stripes) {
                let survey = survey::survey_stripe(
                    &layout.topology,
                    layout.geometry,
                    layout.budget,
                    stripe,
                    |node, shard| {
                        held.get(node).is_some_and(|h| h.contains_key(&(striped.blob.clone(), index, shard as u32)))
                    },
                    state_of,
                );
                worst = worst.min(survey.margin);
                debt_stripes += u64::from(stripe.debt);
                // An object's slice of a pack counts for the object's margin; the pack's stripe
                // is counted, queued and repaired once, as the pack.
                if blob_ref.in_pack {
                    continue;
                }
                if survey.margin != Margin::Full {
                    tally.report.stripes_below_budget += 1;
                    tally.report.bytes_below_budget += stripe.data_len;
                }
                if survey.margin == Margin::Unreadable {
                    tally.report.stripes_unreadable += 1;
                }
                match survey.action {
                    Action::Wait => tally.report.stripes_waiting += 1,
                    Action::Repair if candidates.len() < CANDIDATES_MAX => {
                        let copies_modified_ms = stripe
                            .shards
                            .iter()
                            .enumerate()
                            .filter_map(|(shard, placed)| {
                                let copy = held.get(&placed.node)?.get(&(striped.blob.clone(), index, shard as u32))?;
                                Some((shard as u32, copy.modified_ms))
                            })
                            .collect();
                        candidates.push(Candidate {
                            owner: blob_ref.owner.clone(),
                            blob: striped.clone(),
                            stripe: index,
                            survey,
                            copies_modified_ms,
                        })
                    }
                    _ => {}
                }
            }
            // Shard files of this blob that its metadata does not place on the node holding them.
            for (node, shards) in held.iter().filter(|_| !blob_ref.in_pack) {
                for (blob, stripe, shard) in shards.keys().filter(|(b, _, _)| *b == striped.blob) {
                    let named = striped
                        .stripe(*stripe)
                        .and_then(|s| s.shards.get(*shard as usize))
                        .is_some_and(|r| &r.node == node);
                    if !named {
                        let held = &shards[&(blob.clone(), *stripe, *shard)];
                        strays.push((node.clone(), held.clone()));
                    }
                }
            }
            // Every version counts as one object (a non-current version holds data too).
            let id = match &blob_ref.owner {
                BlobOwner::Object { bucket, key, .. } => (bucket.clone(), key.clone(), None),
                BlobOwner::Version { bucket, key, version, .. } => (bucket.clone(), key.clone(), Some(version.clone())),
                BlobOwner::UploadPart { .. } | BlobOwner::Garbage | BlobOwner::Pack => continue,
            };
            let Some(tenant) = &blob_ref.tenant else { continue };
            match &mut object {
                Some((_, current, margin, bytes, debt)) if *current == id => {
                    *margin = (*margin).min(worst);
                    *bytes += blob_ref.size;
                    *debt += debt_stripes;
                }
                _ => {
                    if let Some((t, _, m, b, d)) = object.take() {
                        tally.object(&t, m, b, d);
                    }
                    object = Some((tenant.clone(), id, worst, blob_ref.size, debt_stripes));
                }
            }
        }
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
        // Paced only while the cluster is whole: once a node is down or a stripe needs repair,
        // the survey goes at full speed, since no rebuild starts before it ends.
        if candidates.is_empty() && nodes.values().all(|s| *s == NodeState::Live) {
            page_step.rest(&mut lease, services.metadata.as_ref()).await;
        }
        if !lease.keep(services.metadata.as_ref()).await? {
            return Ok(None);
        }
    }

    if let Some((t, _, m, b, d)) = object.take() {
        tally.object(&t, m, b, d);
    }

    // Repair, worst first, a few stripes at a time.
    candidates.sort_by_key(|c| c.survey.margin);
    let clock = Instant::now();
    let states = Arc::new(nodes.clone());
    let fence = &fence;
    let start = |candidate: Candidate| {
        let states = states.clone();
        async move {
            let state_of = |node: &NodeId| states.get(node).copied().unwrap_or(NodeState::Out);
            let mut io = 0u64;
            let outcome = repair_one(services, &candidate, fence, state_of, &mut io).await;
            (candidate, outcome, io)
        }
    };
    // What each costs against the rate (`rate_cost`): the bytes a repair wrote, those a failed
    // one read and wrote.
    let finished = |(candidate, outcome, io): (Candidate, ServiceResult<u64>, u64)| {
        let cost = rate_cost(&outcome, io);
        match outcome {
            Ok(0) => {}
            Ok(bytes) => {
                tally.report.stripes_repaired += 1;
                tally.report.bytes_repaired += bytes;
            }
            Err(e) => {
                tracing::warn!(blob = %candidate.blob.blob, stripe = candidate.stripe, error = %e, "stripe not repaired")
            }
        }
        cost
    };
    // Never ahead of `bytes_per_sec` since the repairs started, the lease kept meanwhile (at a
    // low rate one stripe's wait can outlast it, and a round that lost it would have its later
    // commits refused); the stripes under way go on while the next waits.
    let metadata = services.metadata.as_ref();
    let rate = config.bytes_per_sec;
    if !crate::pace::run_rated(candidates, REPAIR_STRIPES_IN_FLIGHT, rate, &mut lease, metadata, start, finished)
        .await?
    {
        return Ok(None);
    }
    let repair_secs = clock.elapsed().as_secs_f64();
    // A stripe below k may be whole again with copies its nodes set aside after failed reads (a
    // fault that has passed): the live nodes re-examine theirs now rather than after their next
    // scrub pass, and the next round counts what came back.
    if tally.report.stripes_unreadable > 0 {
        let restored = reexamine_set_aside(data, &nodes).await;
        if restored > 0 {
            tracing::warn!(
                restored,
                "set-aside shard copies read whole again and are back; the next round counts them"
            );
        }
    }

    // Strays and orphans, once older than the grace period by their node's own clock. A stray
    // is deleted only if its file is still the copy surveyed: a repair of this round may have
    // written the same shard there again, and that copy is the one the metadata now names.
    for (node, held) in strays {
        if held.age_ms > config.orphan_grace_ms
            && let Ok(address) = data.address(&node)
            && data.client.delete_stray_shard(address, &held.id, held.modified_ms).await.is_ok()
        {
            tally.report.orphan_shards_reclaimed += 1;
        }
    }
    tally.report.orphan_shards_reclaimed +=
        sweep_orphans(services, &nodes, &referenced, config.orphan_grace_ms, survey_cycle, &mut lease).await?;

    let last_check = services.metadata.repair_report().await?.and_then(|r| r.metadata_check);
    tally.report.metadata_check = if metadata_check_due(last_check.as_ref(), now_ms(), config) {
        match check_metadata(services, config, &mut lease, last_check.and_then(|c| c.last_agreed_ms)).await? {
            Some(check) => Some(check),
            None => return Ok(None),
        }
    } else {
        last_check
    };

    let mut report = finish(tally, &nodes, repair_secs);
    report.nodes_down_all_round = down_all_round;
    // Still the holder (the stray deletes do not renew the lease, nor may the metadata
    // comparison in time): a round that lost it to another must not record its older report over
    // the newer one's.
    if !lease.keep(services.metadata.as_ref()).await? {
        return Ok(None);
    }
    record_report(services, report, fence).await
}

/// Records the round's report, fenced by the lease's tenure the round ran in: a round that
/// stalled after its last renewal and lost the lease meanwhile has its report refused (None), so
/// it cannot replace a newer round's report (on which `ignifuge admin` drains nodes).
async fn record_report(
    services: &Services,
    mut report: RepairReport,
    fence: &LeaseFence,
) -> ServiceResult<Option<RepairReport>> {
    report.lease = Some(fence.clone());
    match services.metadata.apply(Command::RecordRepairReport(Box::new(report.clone()))).await {
        Ok(_) => Ok(Some(report)),
        Err(MetaError::Superseded(why)) => {
            tracing::info!(%why, "the repair lease was lost before the round's report was recorded");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether a round compares the metadata replicas, given the last comparison: when there is
/// none, when it is older than the interval, when it found a replica differing or failed once
/// `METADATA_CHECK_RETRY_MS` has passed, and when it could not compare every replica once
/// `METADATA_CHECK_RETRY_INCOMPLETE_MS` has (each bounded by the interval).
fn metadata_check_due(last: Option<&MetadataCheck>, now_ms: i64, config: &RepairConfig) -> bool {
    let Some(last) = last else { return true };
    let interval = config.metadata_check_interval.as_millis() as i64;
    let age = now_ms - last.finished_ms;
    let retry = if !last.diverged.is_empty() || last.error.is_some() {
        METADATA_CHECK_RETRY_MS
    } else if !last.unknown.is_empty() {
        METADATA_CHECK_RETRY_INCOMPLETE_MS
    } else {
        return age >= interval;
    };
    age >= interval.min(retry as i64)
}

/// Compares every metadata replica's state at one log index ([`crate::agreement`]), keeping the
/// repair lease meanwhile (replicas may take minutes to hash a large state). None: the lease was
/// lost.
async fn check_metadata(
    services: &Services,
    config: &RepairConfig,
    lease: &mut Lease,
    last_agreed_ms: Option<i64>,
) -> ServiceResult<Option<MetadataCheck>> {
    // The sweeps before did not renew the lease: renewed now, then every third of it.
    if !lease.keep(services.metadata.as_ref()).await? {
        return Ok(None);
    }
    let members = crate::agreement::members(&services.data.layout().config);
    let started_ms = now_ms();
    let check = crate::agreement::digests_at_one_index(
        services.metadata.as_ref(),
        &services.data.client,
        &members,
        config.metadata_check_timeout,
    );
    tokio::pin!(check);
    let mut keep = tokio::time::interval(Duration::from_millis((config.lease_ms() / 3) as u64));
    keep.tick().await; // the first tick is now: the lease was just kept
    let outcome = loop {
        tokio::select! {
            outcome = &mut check => break outcome,
            _ = keep.tick() => {
                // Renewed while the comparison goes on: the replicas' answers it waits for run out
                // their time whether it is polled or not.
                let renewal = lease.keep(services.metadata.as_ref());
                tokio::pin!(renewal);
                tokio::select! {
                    kept = &mut renewal => if !kept? {
                        return Ok(None);
                    },
                    outcome = &mut check => break outcome,
                }
            }
        }
    };
    let check = match outcome {
        Ok(digests) => digests.outcome(started_ms, now_ms(), last_agreed_ms),
        Err(e) => MetadataCheck {
            started_ms,
            finished_ms: now_ms(),
            members: members.len() as u32,
            error: Some(e.to_string()),
            last_agreed_ms,
            ..MetadataCheck::default()
        },
    };
    if !check.diverged.is_empty() && check.rebuild_advised() {
        tracing::error!(
            index = check.index,
            diverged = ?check.diverged,
            "metadata replicas differ from the others: rebuild each from the others (stop it, remove its metadata \
             directory, start it)"
        );
    } else if !check.diverged.is_empty() {
        tracing::error!(
            index = check.index,
            differing = ?check.diverged,
            "metadata replicas hold different states and no state is held by a majority of them: compare them \
             before rebuilding any"
        );
    } else if !check.agreed() {
        tracing::warn!(unknown = ?check.unknown, error = ?check.error, "metadata replicas not all compared");
    }
    Ok(Some(check))
}

fn finish(mut tally: Tally, nodes: &HashMap<NodeId, NodeState>, repair_secs: f64) -> RepairReport {
    let mut report = std::mem::take(&mut tally.report);
    report.finished_ms = now_ms();
    if report.records_unreadable > 0 {
        let (records, keys) = (report.records_unreadable, &report.unreadable_keys);
        tracing::warn!(records, ?keys, "metadata records that do not decode: their blobs were not surveyed this round");
    }
    report.nodes_down = nodes.iter().filter(|(_, s)| **s != NodeState::Live).map(|(n, _)| n.clone()).collect();
    report.nodes_down.sort();
    report.tenants = tally
        .margins
        .into_iter()
        .map(|(tenant, margins)| {
            let (debt_objects, debt_stripes) = tally.debt.get(&tenant).copied().unwrap_or_default();
            TenantMargins {
                margins: margins
                    .into_iter()
                    .rev()
                    .map(|(m, (objects, bytes))| MarginCount { margin: m.label(), objects, bytes })
                    .collect(),
                tenant,
                debt_objects,
                debt_stripes,
            }
        })
        .collect();
    if repair_secs > 0.0 && report.bytes_repaired > 0 {
        report.repair_bytes_per_sec = (report.bytes_repaired as f64 / repair_secs) as u64;
    }
    let waiting_bytes = report.bytes_below_budget.saturating_sub(report.bytes_repaired);
    report.eta_secs = match (waiting_bytes, report.repair_bytes_per_sec) {
        (0, _) => Some(0),
        (_, 0) => None,
        (bytes, rate) => Some(bytes.div_ceil(rate)),
    };
    report
}

/// What one stripe's repair counts against the rate limit: a repair done, the shard bytes it
/// wrote (the rate is one of rebuilt bytes); one that failed or was superseded after it began,
/// the bytes it read and wrote (`io`); one refused before any I/O, nothing. Counting only
/// successes let a round whose every rebuild failed (the metadata refusing commits, the targets
/// refusing writes) read and write at full speed on the cores and disks clients use.
fn rate_cost(outcome: &ServiceResult<u64>, io: u64) -> u64 {
    match outcome {
        Ok(written) if *written > 0 => *written,
        _ => io,
    }
}

/// Rebuilds one stripe and commits it under the round's lease tenure; returns the shard bytes
/// written (0: nothing to do, or superseded). `io` counts the shard bytes read and written,
/// whatever the outcome.
async fn repair_one(
    services: &Services,
    candidate: &Candidate,
    fence: &LeaseFence,
    state_of: impl Fn(&NodeId) -> NodeState,
    io: &mut u64,
) -> ServiceResult<u64> {
    let Some(rebuilt) =
        rebuild::rebuild_stripe(&services.data, &candidate.blob, candidate.stripe, &candidate.survey, state_of, io)
            .await?
    else {
        return Ok(0);
    };
    commit_rebuilt(services, candidate, fence, rebuilt).await
}

/// Commits a rebuilt stripe under the round's lease tenure, then deletes the copies it moved
/// away from; returns the shard bytes written (0: superseded, and the rebuilt copies are strays).
async fn commit_rebuilt(
    services: &Services,
    candidate: &Candidate,
    fence: &LeaseFence,
    rebuilt: rebuild::Rebuilt,
) -> ServiceResult<u64> {
    let data = &services.data;
    let expected = candidate
        .blob
        .stripe(candidate.stripe)
        .ok_or_else(|| ServiceError::Internal(format!("stripe {} missing from its blob", candidate.stripe)))?
        .shards
        .clone();
    let command = Command::ReplaceShards(ShardReplacement {
        owner: candidate.owner.clone(),
        blob: candidate.blob.blob.clone(),
        stripe: candidate.stripe,
        expected,
        replacement: rebuilt.replacement,
        debt: rebuilt.debt,
        lease: Some(fence.clone()),
    });
    // The rebuilt shards are written, not yet named by the metadata: strays if this stops here.
    if ignifuge_faults::hit("repair.before-commit").is_some() {
        return Err(ServiceError::Internal("fault point: repair stopped before its commit".into()));
    }
    match services.metadata.apply(command).await {
        Ok(_) => {}
        // Overwritten, deleted or completed meanwhile, or the lease changed hands: the new
        // shards are strays now.
        Err(MetaError::Superseded(why)) => {
            tracing::debug!(%why, "repair superseded");
            return Ok(0);
        }
        Err(e) => return Err(e.into()),
    }
    // Committed: the old copies of moved shards are strays if this stops here.
    if ignifuge_faults::hit("repair.after-commit").is_some() {
        return Err(ServiceError::Internal("fault point: repair stopped after its commit".into()));
    }
    // The moved shards' old copies, each only if it is still the file the survey saw: a delete
    // that arrives late must not remove a copy written there again since (by a later repair).
    for (node, id) in rebuilt.superseded {
        let Some(&modified_ms) = candidate.copies_modified_ms.get(&id.shard.0) else { continue };
        if let Ok(address) = data.address(&node)
            && let Err(e) = data.client.delete_stray_shard(address, &id, modified_ms).await
        {
            tracing::debug!(shard = %id, %node, error = %e, "moved shard's old copy not deleted; the stray sweep will");
        }
    }
    Ok(rebuilt.bytes_written)
}

/// Asks every live node to re-examine its set-aside shard copies now; returns how many are back.
async fn reexamine_set_aside(data: &ignifuge_gateway::datapath::DataPath, nodes: &HashMap<NodeId, NodeState>) -> u64 {
    let asks = nodes.iter().filter(|(_, s)| **s == NodeState::Live).map(|(node, _)| async move {
        let address = data.address(node).ok()?;
        match data
            .client
            .post_json::<_, ignifuge_rpc::SetAsideReexamined>(address, paths::SET_ASIDE_REEXAMINE, &())
            .await
        {
            Ok(done) => Some(done.restored),
            Err(e) => {
                tracing::debug!(%node, error = %e, "could not ask a node to re-examine its set-aside copies");
                None
            }
        }
    });
    futures::future::join_all(asks).await.into_iter().flatten().sum()
}

/// Health of every node, with the down-out rule applied.
async fn node_states(
    services: &Services,
    config: &RepairConfig,
    state: &mut RepairState,
) -> HashMap<NodeId, NodeState> {
    let data = &services.data;
    let nodes: Vec<NodeId> =
        data.layout().topology.datacenters.iter().flat_map(|dc| dc.nodes.iter().map(|n| n.id.clone())).collect();
    let checks = nodes.iter().map(|node| async {
        match data.address(node) {
            Ok(address) => data.client.health(address).await,
            Err(_) => false,
        }
    });
    let healthy = futures::future::join_all(checks).await;
    // Nodes an operator declared out are rebuilt at once, without the down-out wait.
    let declared_out: HashSet<NodeId> = match services.metadata.nodes_out().await {
        Ok(nodes) => nodes.into_iter().map(|(n, _)| n).collect(),
        Err(_) => HashSet::new(),
    };
    state.declared_out = declared_out.clone();
    let now = Instant::now();
    let mut out = HashMap::new();
    for (node, up) in nodes.into_iter().zip(healthy) {
        let node_state = state.judge(&node, up, now, config.down_out, declared_out.contains(&node));
        out.insert(node, node_state);
    }
    out
}

impl RepairState {
    /// A node's state from its health check at `now`, with the down-out rule: a node down whose
    /// down time has reached `down_out` (or declared out) is out. Down time is a leaky bucket,
    /// full at `down_out`: each half of the time between two checks (at most `down_out / 2` of
    /// it counted) counts as the state of the check at its end, adding to it when down and
    /// draining it at half that rate when up. A node down for good is out about `down_out` after
    /// it went down, as before (later when rounds are longer than `down_out / 2`); one that
    /// crash-loops (down at one check, up at the next, ...) fills it and is rebuilt around, not
    /// waited for ever; one seen down at a third of the checks or fewer (restarts, health checks
    /// timed out under load) never is.
    fn judge(&mut self, node: &NodeId, up: bool, now: Instant, down_out: Duration, declared_out: bool) -> NodeState {
        let health =
            self.health.entry(node.clone()).or_insert(NodeHealth { checked: now, up: true, down: Duration::ZERO });
        // A check speaks for a bounded time around it: rounds can last hours (a long survey, a
        // throttled rebuild), and one failed check after such a gap is a blip, not hours down.
        let half = now.saturating_duration_since(health.checked).min(down_out / 2) / 2;
        for was_up in [health.up, up] {
            health.down = if was_up { health.down.saturating_sub(half / 2) } else { health.down + half };
        }
        // Full at the interval: a node back from a long outage is not out at its first blip
        // for hours after (it is drained within twice the interval of answering).
        health.down = health.down.min(down_out);
        (health.checked, health.up) = (now, up);
        if up {
            return NodeState::Live;
        }
        // A node down is timed as down; its listing failures before do not carry over.
        self.unlisted_since.remove(node);
        if health.down >= down_out || declared_out { NodeState::Out } else { NodeState::Down }
    }
}

/// One node's health checks, as `RepairState::judge` keeps them.
struct NodeHealth {
    /// When it was last checked, and whether it answered.
    checked: Instant,
    up: bool,
    /// Its down time (a leaky bucket: `judge`).
    down: Duration,
}

type Held = HashMap<NodeId, HashMap<(BlobId, u32, u32), HeldShard>>;

/// Asks every live node which shard files of `blobs` it holds. A node that fails to answer is
/// treated as down for the rest of the round (its shards are waited for, not rebuilt), or as out
/// (rebuilt elsewhere) once it has failed to for the down-out interval, or was declared out: a
/// node whose process answers but whose disk cannot list its shards must not hold its stripes
/// waiting for ever. Asked again next round, a node that lists again is live again.
async fn inventories(
    services: &Services,
    config: &RepairConfig,
    state: &mut RepairState,
    nodes: &mut HashMap<NodeId, NodeState>,
    blobs: Vec<BlobId>,
) -> Held {
    let data = &services.data;
    let request = InventoryRequest { blobs };
    let live: Vec<NodeId> = nodes.iter().filter(|(_, s)| **s == NodeState::Live).map(|(n, _)| n.clone()).collect();
    let asks = live.iter().map(|node| {
        let request = &request;
        async move {
            let address = data.address(node)?;
            Ok::<InventoryAnswer, ServiceError>(data.client.post_json(address, paths::INVENTORY, request).await?)
        }
    });
    let answers = futures::future::join_all(asks).await;
    let mut held = Held::new();
    for (node, answer) in live.into_iter().zip(answers) {
        match answer {
            Ok(answer) => {
                state.unlisted_since.remove(&node);
                let shards =
                    answer.shards.into_iter().map(|s| ((s.id.blob.clone(), s.id.stripe.0, s.id.shard.0), s)).collect();
                held.insert(node, shards);
            }
            Err(e) => {
                let since = *state.unlisted_since.entry(node.clone()).or_insert_with(Instant::now);
                let out = since.elapsed() >= config.down_out || state.declared_out.contains(&node);
                tracing::warn!(%node, error = %e, out, "inventory failed; treating the node as down (or out) this round");
                nodes.insert(node, if out { NodeState::Out } else { NodeState::Down });
            }
        }
    }
    held
}

/// Deletes, on every live node, the shards of blobs that no metadata record references and whose
/// newest file is older than the grace (by the node's clock). `referenced` (the scan) only
/// narrows the candidates: each is first fenced in the metadata (`Command::ReclaimOrphans`),
/// which refuses any blob that a record references now (committed after the scan passed it, or
/// by a commit whose outcome its gateway did not know) or whose write is still in progress (an
/// intent renewed within the grace), and makes every later commit naming a fenced blob fail.
/// Only fenced blobs lose their shards, so the sweep never deletes what the metadata may name.
/// Every live node's blob directories, a page at a time, each page paced as the survey's (a
/// node with millions of blobs is a long walk of its disk's metadata, and nothing waits on it).
async fn sweep_orphans(
    services: &Services,
    nodes: &HashMap<NodeId, NodeState>,
    referenced: &HashSet<BlobId>,
    grace_ms: i64,
    cycle: DutyCycle,
    lease: &mut Lease,
) -> ServiceResult<u64> {
    let data = &services.data;
    let mut reclaimed = 0;
    for (node, _) in nodes.iter().filter(|(_, s)| **s == NodeState::Live) {
        let Ok(address) = data.address(node) else { continue };
        let mut after = None;
        loop {
            let step = cycle.step();
            let request = BlobListRequest { after: after.clone(), limit: ORPHAN_PAGE_BLOBS };
            let page: BlobListAnswer = match data.client.post_json(address, paths::BLOBS, &request).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::debug!(%node, error = %e, "orphan listing failed");
                    break;
                }
            };
            let candidates: Vec<BlobId> = page
                .blobs
                .iter()
                .filter(|held| !referenced.contains(&held.blob) && held.age_ms > grace_ms)
                .map(|held| held.blob.clone())
                .collect();
            if !candidates.is_empty() {
                let fenced = services.metadata.reclaim_orphans(candidates, now_ms(), grace_ms).await?;
                let gone = crate::delete_blobs_on(data, node, address, &fenced).await;
                if !gone.is_empty() {
                    tracing::info!(%node, blobs = ?gone, "reclaimed the shards of blobs no metadata references");
                }
                reclaimed += gone.len() as u64;
            }
            if page.complete || page.blobs.is_empty() {
                break;
            }
            after = page.blobs.last().map(|b| b.blob.clone());
            step.rest(lease, services.metadata.as_ref()).await;
            if !lease.keep(services.metadata.as_ref()).await? {
                return Ok(reclaimed);
            }
        }
    }
    Ok(reclaimed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Down time is a leaky bucket: a node down for good is out after the interval; one that
    /// crash-loops, down at every other check, fills it and is out; one down at one check in
    /// five (a restart, a timeout under load) never is, for hours; a declared node at once.
    #[test]
    fn a_node_that_crash_loops_is_out_once_its_down_time_adds_up_and_one_that_blips_never_is() {
        let down_out = Duration::from_secs(600);
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        // Checked every minute; `down(minute)` says whether it is down at that check.
        let run = |node: &str, minutes: u64, down: &dyn Fn(u64) -> bool| -> Vec<NodeState> {
            let mut state = RepairState::default();
            let node = NodeId::new(node);
            (0..minutes).map(|m| state.judge(&node, !down(m), at(m * 60), down_out, false)).collect()
        };
        let first_out = |states: &[NodeState]| states.iter().position(|s| *s == NodeState::Out);

        // Up, then down for good from minute 1: out at minute 11 (600 s of down time counted
        // from half-way between the last check it answered and the first it did not).
        let states = run("dc1-n1", 20, &|m| m >= 1);
        assert_eq!(first_out(&states), Some(11), "{states:?}");

        // Down at every other check: 15 s of net down time a minute; out within the hour, down
        // at each check before (never out while it answers).
        let states = run("dc1-n2", 60, &|m| m % 2 == 1);
        let out = first_out(&states).expect("a node down half the time is out within the hour");
        assert!((35..=45).contains(&out), "out at minute {out}: {states:?}");
        assert!(states.iter().enumerate().all(|(m, s)| (*s == NodeState::Live) == (m % 2 == 0)));

        // Down at one check in five, for two hours: never out.
        let states = run("dc1-n3", 120, &|m| m % 5 == 0);
        assert_eq!(first_out(&states), None, "{states:?}");

        // Out, then back for long: forgiven, so a new outage starts from nothing.
        let mut state = RepairState::default();
        let node = NodeId::new("dc2-n1");
        assert_eq!(state.judge(&node, true, at(0), down_out, false), NodeState::Live);
        for minute in 1..11u64 {
            assert_eq!(state.judge(&node, false, at(minute * 60), down_out, false), NodeState::Down);
        }
        assert_eq!(state.judge(&node, false, at(660), down_out, false), NodeState::Out);
        assert_eq!(state.judge(&node, true, at(720), down_out, false), NodeState::Live);
        assert_eq!(state.judge(&node, true, at(3600), down_out, false), NodeState::Live);
        assert_eq!(state.judge(&node, false, at(3660), down_out, false), NodeState::Down);
        // Declared out: out at once.
        let other = NodeId::new("dc3-n1");
        assert_eq!(state.judge(&other, false, at(0), down_out, true), NodeState::Out);

        // Rounds of 25 min: one failed check is a blip (it used to count half the gap: out).
        let slow = NodeId::new("dc3-n2");
        assert_eq!(state.judge(&slow, true, at(0), down_out, false), NodeState::Live);
        assert_eq!(state.judge(&slow, false, at(1500), down_out, false), NodeState::Down);
        assert_eq!(state.judge(&slow, true, at(3000), down_out, false), NodeState::Live);
        // Down for good with such rounds: out all the same, at the third failed check.
        let gone = NodeId::new("dc3-n4");
        assert_eq!(state.judge(&gone, true, at(0), down_out, false), NodeState::Live);
        assert_eq!(state.judge(&gone, false, at(1500), down_out, false), NodeState::Down);
        assert_eq!(state.judge(&gone, false, at(3000), down_out, false), NodeState::Down);
        assert_eq!(state.judge(&gone, false, at(4500), down_out, false), NodeState::Out);

        // Down 6 h, back 30 min: a restart then is a blip, not a whole-node rebuild.
        let repaired = NodeId::new("dc3-n3");
        assert_eq!(state.judge(&repaired, false, at(0), down_out, false), NodeState::Down);
        for minute in 1..=360u64 {
            state.judge(&repaired, false, at(minute * 60), down_out, false);
        }
        for minute in 361..=390u64 {
            assert_eq!(state.judge(&repaired, true, at(minute * 60), down_out, false), NodeState::Live);
        }
        assert_eq!(state.judge(&repaired, false, at(391 * 60), down_out, false), NodeState::Down);
    }

    /// A rebuilt stripe committed after the repair lease changed hands (its worker stalled past
    /// it while another took it) is refused: the stripe keeps its shards, the rebuilt copies are
    /// strays for the sweep; committed in the tenure that holds the lease, it applies.
    #[tokio::test]
    async fn a_rebuild_committed_after_the_lease_changed_hands_is_refused() {
        use crate::testkit::{put_striped, services, shard_on, striped};
        use ignifuge_meta::DataLocation;
        let services = services(&[]);
        let bucket = put_striped(&services, "k", "blob-1", &[0, 3, 6]).await;
        let DataLocation::Striped(blob) = striped("k", "blob-1", &[0, 3, 6]).parts[0].location.clone() else {
            panic!()
        };
        let candidate = Candidate {
            owner: BlobOwner::Object { bucket: bucket.name, key: ignifuge_types::ObjectKey::new("k"), part_number: 1 },
            blob: Arc::new(blob),
            stripe: 0,
            survey: survey::StripeSurvey { states: Vec::new(), margin: Margin::Spare(0), action: Action::Repair },
            copies_modified_ms: HashMap::new(),
        };
        // Shard 2 rebuilt on node 7 (its copy on node 6 lost).
        let rebuilt = || rebuild::Rebuilt {
            replacement: vec![shard_on(0), shard_on(3), shard_on(7)],
            debt: false,
            bytes_written: 4,
            superseded: Vec::new(),
        };
        let shards = || async {
            let stripes = services.metadata.stripes(BlobId::new("blob-1"), 0, 1).await.unwrap();
            stripes[0].shards.iter().map(|s| s.node.0.clone()).collect::<Vec<_>>()
        };
        let lease = Duration::from_millis(60);
        let mut ours = Lease::new(LEASE_NAME, services.holder.clone(), lease);
        assert!(ours.take(services.metadata.as_ref()).await.unwrap());
        let fence = ours.fence().unwrap();
        // Stalled past the lease; another worker takes it.
        tokio::time::sleep(lease + Duration::from_millis(20)).await;
        let mut theirs = Lease::new(LEASE_NAME, "another-worker".into(), lease);
        assert!(theirs.take(services.metadata.as_ref()).await.unwrap());
        assert_eq!(commit_rebuilt(&services, &candidate, &fence, rebuilt()).await.unwrap(), 0, "refused");
        assert_eq!(shards().await, ["dc1-n1", "dc2-n1", "dc3-n1"], "unchanged");
        let theirs_fence = theirs.fence().unwrap();
        assert_eq!(commit_rebuilt(&services, &candidate, &theirs_fence, rebuilt()).await.unwrap(), 4);
        assert_eq!(shards().await, ["dc1-n1", "dc2-n1", "dc3-n2"]);
    }

    /// A round's report recorded after the repair lease changed hands is refused (the report
    /// before stays); recorded in the tenure that holds the lease, it replaces it.
    #[tokio::test]
    async fn a_report_recorded_after_the_lease_changed_hands_is_refused() {
        let services = crate::testkit::services(&[]);
        let lease = Duration::from_millis(60);
        let mut ours = Lease::new(LEASE_NAME, services.holder.clone(), lease);
        assert!(ours.take(services.metadata.as_ref()).await.unwrap());
        let fence = ours.fence().unwrap();
        let report = |started_ms| RepairReport { holder: "h".into(), started_ms, ..Default::default() };
        let recorded = record_report(&services, report(1), &fence).await.unwrap().unwrap();
        assert_eq!(recorded.lease.as_ref(), Some(&fence), "the report names its tenure");
        let stored = || async { services.metadata.repair_report().await.unwrap().map(|r| r.started_ms) };
        assert_eq!(stored().await, Some(1));
        // Stalled past the lease; another worker takes it and records its round.
        tokio::time::sleep(lease + Duration::from_millis(20)).await;
        let mut theirs = Lease::new(LEASE_NAME, "another-worker".into(), lease);
        assert!(theirs.take(services.metadata.as_ref()).await.unwrap());
        let theirs_fence = theirs.fence().unwrap();
        assert!(record_report(&services, report(3), &theirs_fence).await.unwrap().is_some());
        // The stalled round wakes: its older report is refused.
        assert_eq!(record_report(&services, report(2), &fence).await.unwrap(), None);
        assert_eq!(stored().await, Some(3), "the newer report stays");
    }

    #[test]
    fn the_metadata_is_compared_daily_again_within_minutes_after_a_difference_and_within_the_hour_if_incomplete() {
        let config = RepairConfig::default();
        let day = METADATA_CHECK_INTERVAL_MS_DEFAULT as i64;
        let retry = METADATA_CHECK_RETRY_MS as i64;
        let at = |finished_ms| MetadataCheck {
            finished_ms,
            members: 9,
            last_agreed_ms: Some(finished_ms),
            ..Default::default()
        };
        assert!(metadata_check_due(None, 0, &config), "none yet");
        assert!(!metadata_check_due(Some(&at(0)), day - 1, &config));
        assert!(metadata_check_due(Some(&at(0)), day, &config));
        let differs = MetadataCheck { diverged: vec![NodeId::new("dc3-n2")], ..at(0) };
        assert!(!metadata_check_due(Some(&differs), retry - 1, &config));
        assert!(metadata_check_due(Some(&differs), retry, &config));
        let failed = MetadataCheck { error: Some("no index".into()), ..at(0) };
        assert!(metadata_check_due(Some(&failed), retry, &config));
        let node_down = MetadataCheck { unknown: vec![NodeId::new("dc1-n1")], ..at(0) };
        let hour = METADATA_CHECK_RETRY_INCOMPLETE_MS as i64;
        assert!(!metadata_check_due(Some(&node_down), retry, &config), "a node down waits longer than a difference");
        assert!(metadata_check_due(Some(&node_down), hour, &config), "but not for the day");
        let short = RepairConfig { metadata_check_interval: Duration::from_millis(3000), ..RepairConfig::default() };
        assert!(metadata_check_due(Some(&differs), 3000, &short), "the interval when it is shorter");
    }
}
