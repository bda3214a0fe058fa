use super::*;
use crate::machine::DURABILITY_PAGE_RECORDS;
use ignifuge_kv::MemoryKv;
use ignifuge_types::*;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;

fn machine() -> StateMachine {
    machine_on(Arc::new(MemoryKv::default()))
}

fn machine_on(kv: Arc<dyn ignifuge_kv::KvStore>) -> StateMachine {
    let m = StateMachine::new(kv);
    for t in ["a", "b"] {
        m.apply(Command::CreateTenant(TenantRecord { id: TenantId::new(t), created_ms: 0, public_access_block: None }))
            .unwrap();
    }
    m
}

fn bucket(m: &StateMachine, tenant: &str, name: &str) -> Result<Outcome, MetaError> {
    m.apply(Command::CreateBucket(BucketRecord::new(
        BucketName::new(name),
        TenantId::new(tenant),
        "us-east-1".into(),
        0,
        BucketIncarnation::new(format!("{tenant}-{name}-{}", next_incarnation())),
    )))
}

fn next_incarnation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A multipart upload of `key` in `bucket`, with no headers, checksum or tags.
fn upload_record(upload_id: UploadId, bucket: BucketName, key: &str) -> UploadRecord {
    UploadRecord {
        upload_id,
        bucket,
        key: ObjectKey::new(key),
        initiated_ms: 0,
        headers: ObjectHeaders::default(),
        checksum_algorithm: None,
        checksum_type: None,
        tags: Vec::new(),
        acl: None,
    }
}

/// The bucket as a write names it (owner and incarnation as stored).
fn bref(m: &StateMachine, name: &str) -> BucketRef {
    match m.query(Query::Bucket(BucketName::new(name))).unwrap() {
        Answer::Bucket(record) => record.reference(),
        other => panic!("{other:?}"),
    }
}

/// The blob of `object(key, etag, ..)`: blob ids are never reused, so each write names its own.
fn blob_of(key: &str, etag: &str) -> String {
    format!("{key}-{etag}").replace('/', "_")
}

/// The log position of the next entry a test applies: one counter for every test of the
/// process, so each state machine sees its entries' positions grow, as a replica does.
fn next_log_index() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl StateMachine {
    /// `apply_proposal_logged` at the next log position (`next_log_index`).
    fn apply_proposal_logged_next(
        &self,
        proposal: Proposal,
        extra: ignifuge_kv::WriteBatch,
    ) -> Result<Result<Outcome, MetaError>, ignifuge_kv::KvError> {
        self.apply_proposal_logged(proposal, next_log_index(), extra)
    }
}

pub(crate) fn object(key: &str, etag: &str, size: u64) -> ObjectRecord {
    let version = VersionId::new(format!("v-{key}-{etag}"));
    ObjectRecord::single_part(ObjectKey::new(key), version, part(1, etag, size, &blob_of(key, etag)))
}

fn part(n: u32, etag: &str, size: u64, blob: &str) -> PartData {
    PartData {
        part_number: n,
        size,
        etag: etag.into(),
        checksums: Checksums::default(),
        location: DataLocation::Striped(StripedBlob::whole(BlobId::new(blob), (5, 4), 1 << 20, vec![], 0)),
        last_modified_ms: 1,
        started_ms: 0,
        began: None,
    }
}

/// PutObject of `record` into bucket `b`, unconditional, applied in-process (no leader stamp).
fn put_record(m: &StateMachine, b: &str, record: ObjectRecord) -> Result<Outcome, MetaError> {
    m.apply(Command::PutObject { bucket: bref(m, b), record, condition: WriteCondition::default(), leader_ms: None })
}

fn put(m: &StateMachine, b: &str, key: &str, etag: &str, condition: WriteCondition) -> Result<Outcome, MetaError> {
    m.apply(Command::PutObject { bucket: bref(&m, b), record: object(key, etag, 1), condition, leader_ms: None })
}

#[test]
fn bucket_names_are_global_across_tenants() {
    let m = machine();
    bucket(&m, "a", "photos").unwrap();
    assert_eq!(bucket(&m, "a", "photos"), Err(MetaError::BucketAlreadyOwnedByYou));
    assert_eq!(bucket(&m, "b", "photos"), Err(MetaError::BucketAlreadyExists));
    let Answer::Buckets(list) = m.query(Query::ListBuckets(TenantId::new("b"))).unwrap() else { panic!() };
    assert!(list.is_empty(), "tenant b sees none of tenant a's buckets");
}

#[test]
fn a_bucket_with_objects_or_uploads_cannot_be_deleted() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    put(&m, "b1", "k", "e1", WriteCondition::default()).unwrap();
    let delete = || m.apply(Command::DeleteBucket { bucket: bref(&m, "b1") });
    assert_eq!(delete(), Err(MetaError::BucketNotEmpty));
    m.apply(Command::DeleteObject {
        bucket: bref(&m, "b1"),
        key: ObjectKey::new("k"),
        condition: WriteCondition::default(),
        now_ms: 2,
        version: None,
        marker_nonce: None,
    })
    .unwrap();
    assert_eq!(
        m.apply(Command::DeleteBucket { bucket: BucketRef { tenant: TenantId::new("b"), ..bref(&m, "b1") } }),
        Err(MetaError::NoSuchBucket),
        "another tenant cannot delete it"
    );
    delete().unwrap();
    assert_eq!(m.query(Query::Bucket(BucketName::new("b1"))), Err(MetaError::NoSuchBucket));
}

#[test]
fn conditional_writes_are_checked_against_the_current_version() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let create = WriteCondition { if_none_match_any: true, if_match: None };
    put(&m, "b1", "k", "e1", create.clone()).unwrap();
    assert_eq!(put(&m, "b1", "k", "e2", create), Err(MetaError::PreconditionFailed));
    let update = |etag: &str| WriteCondition { if_none_match_any: false, if_match: Some(format!("\"{etag}\"")) };
    assert_eq!(put(&m, "b1", "k", "e3", update("wrong")), Err(MetaError::PreconditionFailed));
    put(&m, "b1", "k", "e3", update("e1")).unwrap();
    let Answer::Object(o) = m
        .query(Query::Object {
            tenant: Some(TenantId::new("a")),
            bucket: BucketName::new("b1"),
            key: ObjectKey::new("k"),
            stripes: u32::MAX,
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(o.etag, "e3");
    let other = Query::Object {
        tenant: Some(TenantId::new("b")),
        bucket: BucketName::new("b1"),
        key: ObjectKey::new("k"),
        stripes: u32::MAX,
    };
    assert_eq!(m.query(other), Err(MetaError::AccessDenied), "another tenant's read is refused in the same query");
}

#[test]
fn replaced_blobs_become_garbage_but_shared_ones_do_not() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    put(&m, "b1", "k", "e1", WriteCondition::default()).unwrap();
    let mut second = object("k", "e2", 1);
    second.parts[0] = part(1, "e2", 1, "11");
    put_record(&m, "b1", second).unwrap();
    assert!(
        m.kv().get(&keys::garbage(&BlobId::new(blob_of("k", "e1")))).unwrap().is_some(),
        "the first blob is garbage"
    );
    assert!(m.kv().get(b"g/11").unwrap().is_none(), "the live blob is not");
}

/// Garbage is keyed by random blob id: old records may lie behind more than a scan's worth of
/// young ones. The collector's pages go on from where the last one stopped, so every old record
/// is found (a scan from the front each time found none behind 10,000 young records).
#[test]
fn garbage_behind_more_young_records_than_one_scan_is_still_found() {
    let m = machine();
    let record = |blob: &str, since_ms: i64| {
        let DataLocation::Striped(striped) = part(1, "e", 1, blob).location else { panic!() };
        serde_json::to_vec(&GarbageRecord::new(DataLocation::Striped(striped), since_ms)).unwrap()
    };
    let mut batch = ignifuge_kv::WriteBatch::new();
    let young = 10_050;
    for i in 0..young {
        let blob = format!("0{i:07}");
        batch.put(keys::garbage(&BlobId::new(&blob)), record(&blob, 1_000_000));
    }
    for blob in ["f0", "f1", "f2"] {
        batch.put(keys::garbage(&BlobId::new(blob)), record(blob, 5));
    }
    m.kv().write(batch, ignifuge_kv::Durability::Buffered).unwrap();
    let (mut after, mut found, mut pages) = (None, Vec::new(), 0);
    loop {
        let query = Query::Garbage { older_than_ms: 10, limit: 2, after: after.clone() };
        let Answer::Garbage(page) = m.query(query).unwrap() else { panic!() };
        found.extend(page.garbage.into_iter().map(|(b, _)| b.0));
        pages += 1;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(found, ["f0", "f1", "f2"]);
    assert_eq!(pages, 3, "a page of young records only, then two pages of at most two old ones");
}

#[test]
fn garbage_is_listed_after_its_grace_and_forgotten_when_reclaimed() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    put(&m, "b1", "k", "e1", WriteCondition::default()).unwrap();
    let mut second = object("k", "e2", 1);
    second.parts[0] = part(1, "e2", 1, "11");
    second.last_modified_ms = 100;
    put_record(&m, "b1", second).unwrap();
    let listed = |older_than_ms| match m.query(Query::Garbage { older_than_ms, limit: 10, after: None }).unwrap() {
        Answer::Garbage(page) => page.garbage.into_iter().map(|(b, _)| b.0).collect::<Vec<_>>(),
        _ => panic!(),
    };
    assert!(listed(100).is_empty(), "still within its grace period");
    assert_eq!(listed(101), vec![blob_of("k", "e1")]);
    m.apply(Command::ForgetGarbage { blobs: vec![BlobId::new(blob_of("k", "e1"))] }).unwrap();
    assert!(listed(i64::MAX).is_empty());
}

/// A read in progress holds the blobs it reads: one that became garbage since (its object
/// replaced while the read streams) is not collected until a grace after its last hold, so a
/// GET that outlasts the grace is not cut mid-stream. A blob still referenced gets nothing.
#[test]
fn garbage_a_read_holds_is_collected_only_a_grace_after_its_last_hold() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    put(&m, "b1", "k", "e1", WriteCondition::default()).unwrap();
    let old = BlobId::new(blob_of("k", "e1"));
    let hold =
        |now_ms: i64, blob: &BlobId| m.apply(Command::HoldGarbage { blobs: vec![blob.clone()], now_ms }).unwrap();
    hold(50, &old); // still referenced: nothing is written
    assert!(m.kv().get(&keys::garbage(&old)).unwrap().is_none(), "a referenced blob is not garbage");
    let mut second = object("k", "e2", 1);
    second.parts[0] = part(1, "e2", 1, "11");
    second.last_modified_ms = 100;
    put_record(&m, "b1", second).unwrap();
    let before = m.kv().get(&keys::garbage(&old)).unwrap().unwrap();
    let listed = |older_than_ms| match m.query(Query::Garbage { older_than_ms, limit: 10, after: None }).unwrap() {
        Answer::Garbage(page) => page.garbage.into_iter().map(|(b, _)| b.0).collect::<Vec<_>>(),
        _ => panic!(),
    };
    assert_eq!(listed(101), vec![old.0.clone()], "past its grace, not held");
    hold(500, &old);
    assert!(listed(101).is_empty(), "held at 500");
    assert!(listed(500).is_empty(), "held at 500, a grace of 0 from then");
    assert_eq!(listed(501), vec![old.0.clone()]);
    hold(400, &old); // an older hold (a leader behind) does not move it back
    assert!(listed(500).is_empty());
    // Holds end a day after the blob became garbage (at 100): a read that trickles cannot keep
    // a deleted object's space for ever.
    hold(100 + GARBAGE_HOLD_MAX_MS, &old);
    assert!(listed(100 + GARBAGE_HOLD_MAX_MS).is_empty(), "held at the cap itself");
    hold(101 + GARBAGE_HOLD_MAX_MS + 60_000, &old);
    assert_eq!(listed(101 + GARBAGE_HOLD_MAX_MS), vec![old.0.clone()], "a hold past the cap changes nothing");
    // The record is the one stored before, with the hold added.
    let stored: GarbageRecord = serde_json::from_slice(&m.kv().get(&keys::garbage(&old)).unwrap().unwrap()).unwrap();
    let unheld: GarbageRecord = serde_json::from_slice(&before).unwrap();
    assert_eq!(stored, GarbageRecord { held_ms: Some(100 + GARBAGE_HOLD_MAX_MS), ..unheld });
    assert!(!String::from_utf8_lossy(&before).contains("held"), "records never held are stored as before");
    // The collector forgets only garbage: a live blob named by mistake stays known (the orphan
    // fence never takes it).
    let live = BlobId::new("11");
    assert!(m.kv().get(&keys::known_blob(&live)).unwrap().is_some(), "the live version's blob is known");
    m.apply(Command::ForgetGarbage { blobs: vec![old.clone(), live.clone()] }).unwrap();
    assert!(m.kv().get(&keys::known_blob(&live)).unwrap().is_some(), "a referenced blob stays known");
    assert!(m.kv().get(&keys::known_blob(&old)).unwrap().is_none(), "the garbage is forgotten");
    hold(600, &old); // after it was collected: nothing comes back
    assert!(m.kv().get(&keys::garbage(&old)).unwrap().is_none());
    assert!(listed(i64::MAX).is_empty());
}

#[test]
fn a_retried_proposal_applies_once_and_returns_the_first_outcome() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let create = |id: &str, etag: &str, issued_ms: i64| Proposal {
        id: ProposalId::new(id),
        issued_ms,
        aged_by_entries: true,
        command: Command::PutObject {
            bucket: bref(&m, "b1"),
            record: object("k", etag, 1),
            condition: WriteCondition { if_none_match_any: true, if_match: None },
            leader_ms: None,
        },
    };
    // Log positions are given here: ids are kept for a number of entries as well as of time.
    let at = |index: u64, proposal: Proposal| m.apply_proposal_logged(proposal, index, Default::default()).unwrap();
    let first = at(1, create("p1", "e1", 1_000));
    assert!(first.is_ok());
    let retry = at(2, create("p1", "e1", 1_000));
    assert_eq!(retry, first, "the retry gets the first outcome, not a 412 from its own write");
    let other = at(3, create("p2", "e2", 2_000));
    assert_eq!(other, Err(MetaError::PreconditionFailed));
    // A leader whose clock jumps an hour ahead does not make the recent ids be forgotten.
    let jump = 2_000 + 60 * 60 * 1000;
    at(4, create("p3", "e3", jump)).unwrap_err();
    assert!(m.kv().get(b"d/p1").unwrap().is_some(), "forgotten by a clock jump");
    // After a quiet hour the clock trails the leader's time by as much and catches up a step per
    // proposal: past the clock's window in steps, within the entries' floor, p1 is remembered.
    let steps = (PROPOSAL_DEDUP_WINDOW_MS / CLOCK_STEP_MAX_MS) as u64 + 20;
    for i in 0..steps {
        at(5 + i, create(&format!("q{i}"), "e", jump + (i as i64 + 1) * CLOCK_STEP_MAX_MS)).unwrap_err();
    }
    let clock: i64 = serde_json::from_slice(&m.kv().get(keys::CLOCK).unwrap().unwrap()).unwrap();
    assert!(clock - 2_000 > PROPOSAL_DEDUP_WINDOW_MS, "the clock is past p1's window");
    let retry = at(5 + steps, create("p1", "e1", jump + steps as i64 * CLOCK_STEP_MAX_MS));
    assert_eq!(retry, first, "a retry within the entries' floor still gets the first outcome");
    let settled = at(
        6 + steps,
        Proposal {
            id: ProposalId::new("settle-p1"),
            issued_ms: jump + steps as i64 * CLOCK_STEP_MAX_MS,
            aged_by_entries: true,
            command: Command::Abandon { proposal: ProposalId::new("p1") },
        },
    );
    assert_eq!(settled, first, "settling a committed proposal answers its outcome, not abandoned");
    // Old in entries and in time, the old ids are forgotten, a few per proposal.
    let later = 10 + steps + PROPOSALS_REMEMBERED_MIN_ENTRIES;
    for i in 0..20u64 {
        at(later + i, create(&format!("r{i}"), "e", jump + (steps + i) as i64 * CLOCK_STEP_MAX_MS)).unwrap_err();
    }
    assert!(m.kv().get(b"d/p1").unwrap().is_none());
    assert!(m.kv().get(b"d/r19").unwrap().is_some());
    // Forgetting starts where it stopped: every age key below the cursor is gone.
    let cursor = m.kv().get(keys::PROPOSAL_AGE_CURSOR).unwrap().expect("a cursor after forgetting");
    assert!(m.kv().scan(keys::PROPOSAL_AGE_PREFIX, Some(&cursor), 10).unwrap().is_empty());
    // An age written before entries were counted (no value) is forgotten by the clock alone.
    let mut batch = ignifuge_kv::WriteBatch::new();
    batch.put(b"d/old".to_vec(), serde_json::to_vec(&first).unwrap());
    batch.put(keys::proposal_age(clock - 2 * PROPOSAL_DEDUP_WINDOW_MS, &ProposalId::new("old")), Vec::new());
    batch.delete(keys::PROPOSAL_AGE_CURSOR.to_vec());
    m.kv().write(batch, ignifuge_kv::Durability::Buffered).unwrap();
    for i in 0..20u64 {
        at(later + 20 + i, create(&format!("s{i}"), "e", jump + (steps + 20 + i) as i64 * CLOCK_STEP_MAX_MS))
            .unwrap_err();
    }
    assert!(m.kv().get(b"d/old").unwrap().is_none());

    // An entry appended before format 11 (not aged by entries) records no position, as the
    // version that appended it applied it, and its id goes by the clock alone: every replica
    // applies it alike, whichever version applies it.
    let base = jump + (steps + 40) as i64 * CLOCK_STEP_MAX_MS;
    // (Far enough on that the ids before it are past the floor: forgetting stops at the first id
    // kept, and those come first.)
    let index = later + 40 + PROPOSALS_REMEMBERED_MIN_ENTRIES;
    at(index, Proposal { aged_by_entries: false, ..create("t0", "e", base) }).unwrap_err();
    let end = ignifuge_kv::prefix_end(keys::PROPOSAL_AGE_PREFIX);
    let ages = m.kv().scan(keys::PROPOSAL_AGE_PREFIX, end.as_deref(), 100_000).unwrap();
    let (_, value) = ages.iter().find(|(k, _)| k.ends_with(b"/t0")).expect("t0's age");
    assert!(value.is_empty(), "no position for an entry aged by the clock alone");
    for i in 0..steps {
        at(index + 1 + i, create(&format!("u{i}"), "e", base + (i as i64 + 1) * CLOCK_STEP_MAX_MS)).unwrap_err();
    }
    assert!(m.kv().get(b"d/t0").unwrap().is_none(), "forgotten by the clock, within the entries' floor");
    assert!(m.kv().get(b"d/u0").unwrap().is_some(), "a newer id, past the clock's window too, is kept by the floor");
}

/// Garbage ages from the leader's time on the entry that freed it (a delete, an abort, an
/// overwrite by a PutObject, a pack, a part or a completion), never from the proposer's clock,
/// which may be minutes off the collector's within the accepted skew, eating the grace reads in
/// flight rely on: the leader writes its time into the command (`Command::stamp_leader_time`, as
/// `RaftMetadata::apply` does) and the rule reads only the entry, so an entry written before the
/// stamp existed applies as it always did, on every replica alike.
#[test]
fn garbage_is_dated_by_the_leaders_stamp_on_the_entry() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let apply = |id: &str, issued_ms: i64, mut command: Command, stamped: bool| {
        if stamped {
            command.stamp_leader_time(issued_ms);
        }
        m.apply_proposal_logged_next(
            Proposal { id: ProposalId::new(id), issued_ms, aged_by_entries: true, command },
            Default::default(),
        )
        .unwrap()
        .unwrap()
    };
    let put = |blob: &str, gateway_ms: i64| {
        let mut record = object("k", &format!("e-{blob}"), 1);
        record.parts[0] = part(1, &format!("e-{blob}"), 1, blob);
        record.last_modified_ms = gateway_ms;
        record.parts[0].last_modified_ms = gateway_ms;
        Command::PutObject { bucket: bref(&m, "b1"), record, condition: Default::default(), leader_ms: None }
    };
    let delete = |gateway_ms: i64| Command::DeleteObject {
        bucket: bref(&m, "b1"),
        key: ObjectKey::new("k"),
        condition: WriteCondition::default(),
        now_ms: gateway_ms,
        version: None,
        marker_nonce: None,
    };
    let since = |blob: &str| -> i64 {
        let bytes = m.kv().get(format!("g/{blob}").as_bytes()).unwrap().expect("a garbage record");
        serde_json::from_slice::<GarbageRecord>(&bytes).unwrap().since_ms
    };
    // Each gateway is 5 minutes ahead of or behind the leader.
    apply("p1", 1_000_000, put("a1", 1_000_000), true);
    apply("p2", 2_000_000, put("a2", 2_000_000 + 300_000), true);
    assert_eq!(since("a1"), 2_000_000, "an overwrite: the leader's stamp, not the gateway's 5 minutes ahead");
    apply("p3", 3_000_000, delete(3_000_000 - 300_000), true);
    assert_eq!(since("a2"), 3_000_000, "a delete: the leader's stamp, not the gateway's 5 minutes behind");
    // A pack's object replacing a striped one.
    apply("p4", 4_000_000, put("a3", 4_000_000), true);
    let mut pack = packed(&m, "b1", "pk1", &[("k", WriteCondition::default())]);
    let Command::PutPacked { objects, .. } = &mut pack else { panic!() };
    objects[0].record.last_modified_ms = 5_000_000 - 300_000;
    apply("p5", 5_000_000, pack, true);
    assert_eq!(since("a3"), 5_000_000, "replaced by a packed object: the leader's stamp");
    // Parts: one replaced by a later upload of its number, one left out of the completion.
    let id = UploadId::new("u1");
    let upload = upload_record(id.clone(), BucketName::new("b1"), "k");
    apply("p6", 6_000_000, Command::CreateUpload { bucket: bref(&m, "b1"), upload }, true);
    let upload_part = |number: u32, blob: &str, gateway_ms: i64| {
        let mut part = part(number, &format!("e-{blob}"), 5 << 20, blob);
        part.last_modified_ms = gateway_ms;
        part.started_ms = gateway_ms;
        Command::PutUploadPart { bucket: bref(&m, "b1"), upload_id: id.clone(), part, leader_ms: None }
    };
    apply("p7", 7_000_000, upload_part(1, "a4", 7_000_000), true);
    apply("p8", 8_000_000, upload_part(1, "a5", 8_000_000 + 300_000), true);
    assert_eq!(since("a4"), 8_000_000, "a part replaced: the leader's stamp");
    apply("p9", 9_000_000, upload_part(2, "a6", 9_000_000), true);
    let mut record = object("ignored", "final", 0);
    record.last_modified_ms = 10_000_000 - 300_000;
    let complete = Command::CompleteUpload {
        bucket: bref(&m, "b1"),
        upload_id: id.clone(),
        parts: vec![CompletedPart { part_number: 1, etag: "e-a5".into() }],
        record,
        condition: WriteCondition::default(),
        leader_ms: None,
    };
    apply("p10", 10_000_000, complete, true);
    assert_eq!(since("a6"), 10_000_000, "a part left out of the completion: the leader's stamp");
    // An aborted upload's parts.
    let id = UploadId::new("u2");
    let upload = upload_record(id.clone(), BucketName::new("b1"), "k2");
    apply("p11", 11_000_000, Command::CreateUpload { bucket: bref(&m, "b1"), upload }, true);
    let mut part = part(1, "e-a7", 5 << 20, "a7");
    part.last_modified_ms = 11_000_000 - 300_000;
    let upload_part = Command::PutUploadPart { bucket: bref(&m, "b1"), upload_id: id.clone(), part, leader_ms: None };
    apply("p12", 11_000_000, upload_part, true);
    let abort = Command::AbortUpload { bucket: bref(&m, "b1"), upload_id: id, now_ms: 12_000_000 - 300_000 };
    apply("p13", 12_000_000, abort, true);
    assert_eq!(since("a7"), 12_000_000, "an aborted upload: the leader's stamp");
    // Entries appended before leaders stamped their time apply with their own.
    apply("p14", 13_000_000, put("a8", 13_000_000), true);
    apply("p15", 14_000_000, put("a9", 14_000_000 + 300_000), false);
    assert_eq!(since("a8"), 14_000_000 + 300_000, "an unstamped overwrite: the new version's time");
    apply("p16", 15_000_000, delete(15_000_000 - 300_000), false);
    assert_eq!(since("a9"), 15_000_000 - 300_000, "an unstamped delete applies as written");
}

/// A write in progress is judged by the leader's clock on both ends: its renewal and the orphan
/// sweep that would fence it, each command stamped with the leader's time as it is appended
/// (`Command::stamp_leader_time`). The write was renewed ten minutes before the sweep by the
/// leader's clock; its gateway's clock and the sweeper's each say 55 minutes more (far past the
/// skew the cluster accepts, so that either alone would carry the gap past the hour of grace):
/// it is not fenced. One renewed over an hour earlier is.
#[test]
fn an_orphan_sweep_judges_writes_in_progress_by_the_leaders_clock() {
    let m = machine();
    let hour = 60 * 60 * 1000;
    let minutes = |n: i64| n * 60 * 1000;
    let apply = |id: &str, issued_ms: i64, mut command: Command| {
        command.stamp_leader_time(issued_ms);
        m.apply_proposal_logged_next(
            Proposal { id: ProposalId::new(id), issued_ms, aged_by_entries: true, command },
            Default::default(),
        )
        .unwrap()
        .unwrap()
    };
    let start = 10 * hour;
    let blobs = vec![BlobId::new("live"), BlobId::new("stale")];
    apply("r1", start - 2 * hour, Command::RenewIntents { blobs: vec![blobs[1].clone()], now_ms: start - 2 * hour });
    apply("r2", start, Command::RenewIntents { blobs: vec![blobs[0].clone()], now_ms: start - minutes(55) });
    let sweep = Command::ReclaimOrphans { blobs, now_ms: start + minutes(10 + 55), grace_ms: hour };
    let Outcome::Reclaimable(fenced) = apply("s1", start + minutes(10), sweep) else { panic!() };
    assert_eq!(fenced, [BlobId::new("stale")], "only the write not renewed within the hour, by the leader's clock");
}

/// The records an apply reads beyond the command's own (a retried proposal's recorded outcome, the
/// clock that ages proposal ids, the intent sweep's rest mark) are the same bytes on every
/// replica: one that does not decode must not fail the apply, which would stop every replica at
/// the same entry. A retry whose recorded outcome cannot be read is answered "unknown", not a
/// refusal (its caller would give up the blob of a write that went through) and not applied again.
#[test]
fn records_an_apply_reads_that_do_not_decode_do_not_stop_the_replicas() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let put = |id: &str, issued_ms: i64| Proposal {
        id: ProposalId::new(id),
        issued_ms,
        aged_by_entries: true,
        command: Command::PutObject {
            bucket: bref(&m, "b1"),
            record: object(id, "e", 1),
            condition: WriteCondition { if_none_match_any: true, if_match: None },
            leader_ms: None,
        },
    };
    let garble = |key: &[u8]| {
        let mut batch = ignifuge_kv::WriteBatch::new();
        batch.put(key.to_vec(), b"{not json".to_vec());
        m.kv().write(batch, ignifuge_kv::Durability::Synced).unwrap();
    };
    m.apply_proposal_logged_next(put("p1", 1_000), Default::default()).unwrap().unwrap();
    let recorded = keys::proposal(&ProposalId::new("p1"));
    garble(&recorded);
    // Gone since (as if deleted), so that applying the retry again would show.
    let object_key = keys::object(&BucketName::new("b1"), &ObjectKey::new("p1"));
    let mut batch = ignifuge_kv::WriteBatch::new();
    batch.delete(object_key.clone());
    m.kv().write(batch, ignifuge_kv::Durability::Synced).unwrap();
    let retry = m.apply_proposal_logged_next(put("p1", 1_000), Default::default()).expect("the replica goes on");
    let unknown = retry.expect_err("an outcome nobody can read is not a success");
    assert!(matches!(unknown, MetaError::Corrupt(_)) && !unknown.is_known_refusal(), "{unknown:?}");
    assert!(m.kv().get(&object_key).unwrap().is_none(), "a retry whose outcome cannot be read applied again");
    let settle = Proposal {
        id: ProposalId::new("s1"),
        issued_ms: 1_001,
        aged_by_entries: true,
        command: Command::Abandon { proposal: ProposalId::new("p1") },
    };
    let settled = m.apply_proposal_logged_next(settle, Default::default()).expect("the replica goes on");
    assert!(matches!(settled, Err(MetaError::Corrupt(_))), "settled as {settled:?}: the outcome is unknown");
    assert_eq!(m.kv().get(&recorded).unwrap().as_deref(), Some(&b"{not json"[..]), "the record is kept, not fenced");

    // The clock is recovered from the newest proposal age (the settling's, 1_001) and steps on at
    // most CLOCK_STEP_MAX_MS, however far ahead the leader's time is: a jump would forget the ids
    // of proposals still being retried.
    garble(keys::CLOCK);
    m.apply_proposal_logged_next(put("p2", 1_001 + 10 * CLOCK_STEP_MAX_MS), Default::default())
        .expect("the replica goes on")
        .unwrap();
    let clock: i64 = serde_json::from_slice(&m.kv().get(keys::CLOCK).unwrap().unwrap()).expect("the clock rewritten");
    assert_eq!(clock, 1_001 + CLOCK_STEP_MAX_MS);
    // Garbled again, with a proposal no later than the recovered clock: rewritten all the same.
    garble(keys::CLOCK);
    m.apply_proposal_logged_next(put("p2b", 1_000), Default::default()).expect("the replica goes on").unwrap();
    let clock: i64 = serde_json::from_slice(&m.kv().get(keys::CLOCK).unwrap().unwrap()).expect("the clock rewritten");
    assert_eq!(clock, 1_001 + CLOCK_STEP_MAX_MS, "never back");

    garble(keys::INTENT_SWEEP_RESTED);
    m.apply_proposal_logged_next(put("p3", 1_001 + 2 * CLOCK_STEP_MAX_MS), Default::default())
        .expect("the replica goes on")
        .unwrap();
    let rested = m.kv().get(keys::INTENT_SWEEP_RESTED).unwrap().expect("the sweep went on to the end and rests");
    let rested = serde_json::from_slice::<i64>(&rested).expect("the rest mark rewritten");
    assert_eq!(rested, 1_001 + 2 * CLOCK_STEP_MAX_MS);
}

/// DeleteObjects commits its keys as one proposal: each key is done or refused on its own (a
/// refused key writes nothing), a retried proposal returns the first outcomes and adds no second
/// delete markers, and a batch naming a key twice is refused whole.
#[test]
fn a_batch_of_deletions_is_one_proposal_with_an_outcome_per_key() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    for key in ["x", "y", "z"] {
        put(&m, "b1", key, &format!("e-{key}"), WriteCondition::default()).unwrap();
    }
    let deletion = |key: &str, if_match: Option<&str>| ObjectDeletion {
        key: ObjectKey::new(key),
        condition: WriteCondition { if_none_match_any: false, if_match: if_match.map(str::to_string) },
        version: None,
        marker_nonce: Some(VersionId::new(format!("{key}0000000000000000"))),
    };
    let batch = |id: &str, deletions: Vec<ObjectDeletion>| Proposal {
        id: ProposalId::new(id),
        issued_ms: 1_000,
        aged_by_entries: true,
        command: Command::DeleteObjects { bucket: bref(&m, "b1"), deletions, now_ms: 1_000 },
    };
    let done = |outcome: Result<Outcome, MetaError>| match outcome {
        Ok(Outcome::Deletions(outcomes)) => outcomes,
        other => panic!("{other:?}"),
    };
    let plain = Ok(Deleted { version: None, delete_marker: false });
    let outcomes = done(
        m.apply_proposal_logged_next(
            batch("d1", vec![deletion("x", None), deletion("y", Some("wrong")), deletion("ghost", None)]),
            Default::default(),
        )
        .unwrap(),
    );
    assert_eq!(outcomes, [plain.clone(), Err(MetaError::PreconditionFailed), plain.clone()]);
    assert!(listed_keys(&m, "b1") == ["y", "z"], "x deleted, y refused and kept");
    assert!(is_garbage(&m, &blob_of("x", "e-x")) && !is_garbage(&m, &blob_of("y", "e-y")));

    // In a versioned bucket each key gets its marker; a retry of the proposal adds none.
    set_versioning(&m, "b1", VersioningStatus::Enabled);
    let markers = batch("d2", vec![deletion("y", None), deletion("z", Some("e-z"))]);
    let first = m.apply_proposal_logged_next(markers.clone(), Default::default()).unwrap();
    let outcomes = done(first.clone());
    assert!(outcomes.iter().all(|o| o.as_ref().is_ok_and(|d| d.delete_marker && d.version.is_some())));
    assert_eq!(m.apply_proposal_logged_next(markers, Default::default()).unwrap(), first);
    for key in ["y", "z"] {
        assert_eq!(versions(&m, "b1", key).len(), 2, "{key}: one version and one marker, the retry added none");
    }

    // A key twice in one batch, or more keys than DeleteObjects allows: refused whole.
    let twice = m.apply(Command::DeleteObjects {
        bucket: bref(&m, "b1"),
        deletions: vec![deletion("z", None), deletion("z", None)],
        now_ms: 2_000,
    });
    assert!(matches!(twice, Err(MetaError::InvalidCommand(_))), "{twice:?}");
    assert_eq!(versions(&m, "b1", "z").len(), 2, "a batch refused for a repeated key adds no marker for it");
    let mut many: Vec<ObjectDeletion> =
        (0..crate::DELETE_OBJECTS_MAX_KEYS).map(|i| deletion(&format!("k{i}"), None)).collect();
    many.push(deletion("z", None));
    let many = m.apply(Command::DeleteObjects { bucket: bref(&m, "b1"), deletions: many, now_ms: 2_000 });
    assert!(matches!(many, Err(MetaError::InvalidCommand(_))), "{many:?}");
    assert_eq!(versions(&m, "b1", "z").len(), 2, "a batch over the bound deletes none of its keys");
}

/// A machine with tenant "a"'s bucket "b1" and upload "u1" of `key` in it.
fn machine_with_upload(key: &str) -> (StateMachine, BucketName, UploadId) {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let (b, id) = (BucketName::new("b1"), UploadId::new("u1"));
    let upload = upload_record(id.clone(), b.clone(), key);
    m.apply(Command::CreateUpload { bucket: bref(&m, "b1"), upload }).unwrap();
    (m, b, id)
}

/// The parts of an upload in progress, as ListParts answers.
fn parts_of(m: &StateMachine, b: &BucketName, id: &UploadId) -> Vec<PartData> {
    let Answer::Parts(parts) = m.query(Query::ListParts { bucket: b.clone(), upload_id: id.clone() }).unwrap() else {
        panic!()
    };
    parts
}

#[test]
fn completing_an_upload_enforces_aws_part_rules() {
    let (m, b, id) = machine_with_upload("big");
    let mib = 1024 * 1024;
    for (n, size) in [(1u32, 5 * mib), (2, mib), (3, 2 * mib)] {
        let upload = Command::PutUploadPart {
            bucket: bref(&m, &b.0),
            upload_id: id.clone(),
            part: part(n, &format!("p{n}"), size, &format!("{n}{n}")),
            leader_ms: None,
        };
        m.apply(upload).unwrap();
    }
    let complete = |parts: &[(u32, &str)]| {
        m.apply(Command::CompleteUpload {
            bucket: bref(&m, &b.0),
            upload_id: id.clone(),
            parts: parts.iter().map(|(n, e)| CompletedPart { part_number: *n, etag: e.to_string() }).collect(),
            record: object("ignored", "final-2", 0),
            condition: Default::default(),
            leader_ms: None,
        })
    };
    assert_eq!(complete(&[(2, "p2"), (1, "p1")]), Err(MetaError::InvalidPartOrder));
    assert!(matches!(complete(&[(1, "p1"), (4, "p4")]), Err(MetaError::InvalidPart(_))));
    assert!(matches!(complete(&[(1, "wrong")]), Err(MetaError::InvalidPart(_))));
    assert_eq!(complete(&[(1, "p1"), (2, "p2"), (3, "p3")]), Err(MetaError::EntityTooSmall { part_number: 2 }));
    let Outcome::Object(done) = complete(&[(1, "\"p1\""), (3, "p3")]).unwrap() else { panic!() };
    assert_eq!(done.key, ObjectKey::new("big"));
    assert_eq!(done.size, 7 * mib);
    assert!(done.parts.is_empty(), "an outcome carries no part list (up to 10,000 parts stay in the record)");
    assert!(m.kv().get(b"g/22").unwrap().is_some(), "the unused part is garbage");
    assert_eq!(m.query(Query::Upload { bucket: b.clone(), upload_id: id.clone() }), Err(MetaError::NoSuchUpload));
    assert_eq!(complete(&[(1, "p1")]), Err(MetaError::NoSuchUpload));
    // A retry of the same completion (the first answer lost, the upload gone) gets the same
    // version back and writes nothing: no second version.
    let retry = |parts: &[(u32, &str)], key: &str| {
        m.apply(Command::CompleteUpload {
            bucket: bref(&m, &b.0),
            upload_id: id.clone(),
            parts: parts.iter().map(|(n, e)| CompletedPart { part_number: *n, etag: e.to_string() }).collect(),
            record: object(key, "final-3", 0),
            condition: Default::default(),
            leader_ms: None,
        })
    };
    let Outcome::Object(again) = retry(&[(1, "p1"), (3, "\"p3\"")], "big").unwrap() else { panic!() };
    assert_eq!((&again.version, &again.etag, again.size), (&done.version, &done.etag, done.size));
    assert!(again.parts.is_empty(), "the kept answer carries no part list");
    let Answer::Object(current) = m
        .query(Query::Object {
            tenant: Some(TenantId::new("a")),
            bucket: b.clone(),
            key: ObjectKey::new("big"),
            stripes: u32::MAX,
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(current.version, done.version, "the retry made no new version");
    assert_eq!(current.parts.iter().map(|p| p.part_number).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(retry(&[(1, "p1"), (3, "p3")], "other-key"), Err(MetaError::NoSuchUpload));
    let Answer::CompletedUpload(Some(kept)) =
        m.query(Query::CompletedUpload { bucket: b.clone(), upload_id: id.clone() }).unwrap()
    else {
        panic!()
    };
    assert_eq!(kept.parts.iter().map(|p| (p.part_number, p.etag.as_str())).collect::<Vec<_>>(), [(1, "p1"), (3, "p3")]);
    // Forgotten a day (of the state machine's clock) later.
    let late = Proposal {
        id: ProposalId::new("late"),
        issued_ms: COMPLETED_UPLOAD_KEPT_MS + 1_000,
        aged_by_entries: true,
        command: Command::Abandon { proposal: ProposalId::new("nothing") },
    };
    m.apply_proposal_logged_next(late, Default::default()).unwrap().unwrap_err();
    assert_eq!(
        m.query(Query::CompletedUpload { bucket: b.clone(), upload_id: id.clone() }),
        Ok(Answer::CompletedUpload(None))
    );
}

/// AWS: "If you upload a new part using the same part number as a previously uploaded part,
/// the previously uploaded part is overwritten." When the first upload stalls and its retry with
/// other bytes commits first, the first one commits last: it arrives already overwritten (its
/// blob is garbage at once), so the completion finds the retry's ETag, as the client lists it.
#[test]
fn the_part_is_the_upload_that_began_last_whichever_commits_last() {
    let (m, b, id) = machine_with_upload("k");
    let mib = 1024 * 1024;
    let upload_part = |n: u32, etag: &str, blob: &str, started_ms: i64| {
        let mut p = part(n, etag, 5 * mib, blob);
        p.started_ms = started_ms;
        m.apply(Command::PutUploadPart { bucket: bref(&m, "b1"), upload_id: id.clone(), part: p, leader_ms: None })
            .unwrap();
    };
    let listed =
        || -> Vec<(u32, String)> { parts_of(&m, &b, &id).into_iter().map(|p| (p.part_number, p.etag)).collect() };
    // The retry (began at 20) commits first, then the stalled first attempt (began at 10).
    upload_part(1, "retry", "0b", 20);
    upload_part(1, "first", "0a", 10);
    assert_eq!(listed(), [(1, "retry".to_string())], "the upload that began last is the part");
    assert!(is_garbage(&m, "0a") && !is_garbage(&m, "0b"), "the late first attempt is garbage on arrival");
    // In commit order, a later upload replaces the earlier one as before.
    upload_part(2, "two", "0c", 30);
    upload_part(2, "two-again", "0d", 40);
    assert_eq!(listed(), [(1, "retry".to_string()), (2, "two-again".to_string())]);
    assert!(is_garbage(&m, "0c"));
    // A start time of 0 (written by a gateway from before start times) is unknown: commit order.
    upload_part(3, "three", "0e", 50);
    upload_part(3, "three-from-an-older-gateway", "0f", 0);
    assert!(is_garbage(&m, "0e") && !is_garbage(&m, "0f"), "the later commit is the part");
    let chosen = |parts: &[(u32, &str)]| -> Vec<CompletedPart> {
        parts.iter().map(|(n, e)| CompletedPart { part_number: *n, etag: e.to_string() }).collect()
    };
    // The query the gateway asks before completing chooses as the completion does.
    let Answer::Parts(parts) = m
        .query(Query::ChosenParts {
            bucket: b.clone(),
            upload_id: id.clone(),
            parts: chosen(&[(1, "retry"), (2, "two-again")]),
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        parts.iter().map(|p| p.location.clone()).collect::<Vec<_>>(),
        [part(1, "", 0, "0b").location, part(2, "", 0, "0d").location]
    );
    // An overwritten upload's ETag names nothing, as on AWS.
    for stale in [&[(1, "first")][..], &[(1, "retry"), (2, "two")][..]] {
        let answer = m.query(Query::ChosenParts { bucket: b.clone(), upload_id: id.clone(), parts: chosen(stale) });
        assert!(matches!(answer, Err(MetaError::InvalidPart(_))), "{stale:?}: {answer:?}");
    }
    let Outcome::Object(done) = m
        .apply(Command::CompleteUpload {
            bucket: bref(&m, "b1"),
            upload_id: id.clone(),
            parts: chosen(&[(1, "\"retry\"")]),
            record: object("ignored", "final-1", 0),
            condition: Default::default(),
            leader_ms: None,
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(done.size, 5 * mib);
    assert!(!is_garbage(&m, "0b"), "the completed part is the object's");
    assert!(is_garbage(&m, "0d") && is_garbage(&m, "0f"), "the parts not completed are garbage");
}

/// Of two uploads of one part number, the one whose start ticket (the metadata's order of the
/// reads that began them) is greater is the part, whatever the gateways' clocks said: here the
/// later upload went through a gateway whose clock ran minutes behind the first one's.
#[test]
fn the_part_is_the_upload_whose_start_ticket_is_later_whatever_the_gateway_clocks() {
    let (m, b, id) = machine_with_upload("k");
    let upload_part = |etag: &str, blob: &str, gateway_ms: i64, began: Option<(u64, i64)>| {
        let mut p = part(1, etag, 5 << 20, blob);
        p.started_ms = gateway_ms;
        p.began = began.map(|(applied_index, leader_ms)| StartTicket { applied_index, leader_ms });
        m.apply(Command::PutUploadPart { bucket: bref(&m, "b1"), upload_id: id.clone(), part: p, leader_ms: None })
            .unwrap();
    };
    let listed = || -> Vec<String> { parts_of(&m, &b, &id).into_iter().map(|p| p.etag).collect() };
    // First attempt through a gateway 5 minutes ahead; the retry, begun later through one 5
    // minutes behind, commits first: the first attempt arrives already overwritten.
    upload_part("retry", "1b", 1_000_000 - 300_000, Some((42, 1_000_060)));
    upload_part("first", "1a", 1_000_000 + 300_000, Some((40, 1_000_000)));
    assert_eq!(listed(), ["retry"], "the upload that began later is the part");
    assert!(is_garbage(&m, "1a") && !is_garbage(&m, "1b"));
    // Committed in the order they began: the later one replaces the earlier.
    upload_part("again", "1c", 1, Some((42, 1_000_061)));
    assert_eq!(listed(), ["again"]);
    assert!(is_garbage(&m, "1b"));
    // One index, one leader: its clock orders them.
    upload_part("same-index-earlier", "1d", 9_999_999, Some((42, 1_000_050)));
    assert_eq!(listed(), ["again"]);
    assert!(is_garbage(&m, "1d"));
    // A part without a ticket (written before tickets) is ordered by the gateway clocks.
    upload_part("untimed", "1e", 2, None);
    assert_eq!(listed(), ["untimed"], "2 > the gateway clock of the part in place (1)");
}

/// Start tickets of one metadata service never repeat and never go back, and an apply moves
/// their index on.
#[test]
fn start_tickets_are_stamped_in_the_order_their_reads_are_answered() {
    let clock = StartClock::default();
    let stamps: Vec<StartTicket> = (0..1000).map(|_| clock.stamp(7)).collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "tickets of one index ordered by a clock that never repeats");
    assert!(clock.stamp(6) < stamps[0], "an index read earlier sorts first");

    let local = LocalMetadata::new(Arc::new(MemoryKv::default()));
    let tenant = |t: &str| {
        Command::CreateTenant(TenantRecord { id: TenantId::new(t), created_ms: 0, public_access_block: None })
    };
    local.apply_blocking(tenant("a")).unwrap();
    let incarnation = BucketIncarnation::new(format!("a-b1-{}", next_incarnation()));
    let record = BucketRecord::new(BucketName::new("b1"), TenantId::new("a"), "us-east-1".into(), 0, incarnation);
    local.apply_blocking(Command::CreateBucket(record.clone())).unwrap();
    let upload = upload_record(UploadId::new("u1"), BucketName::new("b1"), "k");
    local.apply_blocking(Command::CreateUpload { bucket: record.reference(), upload }).unwrap();
    let ask = || match local
        .query_blocking(Query::UploadForPart { bucket: BucketName::new("b1"), upload_id: UploadId::new("u1") })
        .unwrap()
    {
        Answer::UploadForPart { began, .. } => began,
        other => panic!("{other:?}"),
    };
    let (first, second) = (ask(), ask());
    assert!(first < second && first.applied_index == second.applied_index && first.applied_index > 0);
    local.apply_blocking(tenant("c")).unwrap();
    assert!(ask().applied_index > second.applied_index);
}

/// The listing model: what S3 returns, computed naively over the whole key set.
fn model_list(keys: &BTreeSet<String>, prefix: &str, delimiter: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys.iter().filter(|k| k.starts_with(prefix)) {
        let entry = match delimiter.and_then(|d| key[prefix.len()..].find(d).map(|i| (i, d))) {
            Some((i, d)) => key[..prefix.len() + i + d.len()].to_string(),
            None => key.clone(),
        };
        if out.last() != Some(&entry) {
            out.push(entry);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn paginated_listing_matches_the_model(
        keys in proptest::collection::btree_set("[ab/]{1,6}", 0..40),
        prefix in "[ab/]{0,2}",
        delimiter in proptest::option::of(prop_oneof![Just("/".to_string()), Just("b".to_string()), Just("ab".to_string())]),
        max_keys in 1usize..7,
    ) {
        let m = machine();
        bucket(&m, "a", "b1").unwrap();
        for k in &keys {
            put(&m, "b1", k, "e", WriteCondition::default()).unwrap();
        }
        let mut listed = Vec::new();
        let mut start_after = None;
        for _ in 0..100 {
            let request = ListRequest { prefix: prefix.clone(), delimiter: delimiter.clone(), start_after: start_after.clone(), max_keys };
            let Answer::Objects(page) = m.query(Query::ListObjects { bucket: BucketName::new("b1"), incarnation: None, request }).unwrap() else { panic!() };
            prop_assert!(page.objects.len() + page.common_prefixes.len() <= max_keys);
            let mut entries: Vec<String> = page.objects.iter().map(|o| o.key.0.clone()).collect();
            entries.extend(page.common_prefixes.iter().cloned());
            entries.sort();
            listed.extend(entries);
            if !page.is_truncated { break; }
            start_after = page.next_start_after.clone();
            prop_assert!(start_after.is_some());
        }
        prop_assert_eq!(listed, model_list(&keys, &prefix, delimiter.as_deref()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// ListObjectVersions, paged at every size, against a model of each key's versions: puts,
    /// delete markers, permanent deletes of the newest version (which promote the next one) and
    /// null versions (pages then resume after "null"), over keys that are prefixes of one another,
    /// with prefixes and delimiters.
    #[test]
    fn paginated_version_listing_matches_the_model(
        // Few keys, so that some hold more versions than one read of the chains brings.
        ops in proptest::collection::vec(
            (proptest::sample::select(vec!["a", "ab", "a/", "a/b", "b", "ba", "b/a"]).prop_map(String::from), 0u8..5),
            0..80,
        ),
        prefix in "[ab/]{0,2}",
        delimiter in proptest::option::of(prop_oneof![Just("/".to_string()), Just("b".to_string())]),
        max_keys in 1usize..6,
    ) {
        let m = machine();
        bucket(&m, "a", "bv").unwrap();
        set_versioning(&m, "bv", VersioningStatus::Enabled);
        // Each key's versions, oldest first.
        let mut model: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (n, (key, op)) in ops.iter().enumerate() {
            let versions = model.entry(key.clone()).or_default();
            match op {
                // A delete marker.
                0 => {
                    let outcome = m.apply(Command::DeleteObject {
                        bucket: bref(&m, "bv"),
                        key: ObjectKey::new(key.as_str()),
                        condition: WriteCondition::default(),
                        now_ms: 50,
                        version: None,
                        marker_nonce: Some(VersionId::new(format!("{n:032x}"))),
                    }).unwrap();
                    let Outcome::DeletedVersion { version: Some(version), delete_marker: true } = outcome else { panic!("{outcome:?}") };
                    versions.push(version.0);
                }
                // The newest version deleted for good (the next one, if any, becomes current).
                1 if !versions.is_empty() => {
                    let newest = VersionId::new(versions.pop().unwrap());
                    delete(&m, "bv", key, Some(&newest));
                }
                // Written while versioning is suspended: the key's null version, replacing the
                // one it had (current or not), then versioning enabled again.
                2 => {
                    set_versioning(&m, "bv", VersioningStatus::Suspended);
                    put_blob(&m, "bv", key, &format!("{:x}", n + 1));
                    set_versioning(&m, "bv", VersioningStatus::Enabled);
                    versions.retain(|v| v != "null");
                    versions.push("null".to_string());
                }
                _ => versions.push(put_blob(&m, "bv", key, &format!("{:x}", n + 1)).0),
            }
        }
        let mut want_versions = Vec::new();
        let mut want_prefixes: Vec<String> = Vec::new();
        for (key, versions) in model.iter().filter(|(k, v)| k.starts_with(&prefix) && !v.is_empty()) {
            match delimiter.as_deref().and_then(|d| key[prefix.len()..].find(d).map(|i| prefix.len() + i + d.len())) {
                Some(end) => {
                    if want_prefixes.last().map(String::as_str) != Some(&key[..end]) {
                        want_prefixes.push(key[..end].to_string());
                    }
                }
                None => want_versions.extend(versions.iter().rev().enumerate().map(|(i, v)| (key.clone(), v.clone(), i == 0))),
            }
        }
        let (mut got_versions, mut got_prefixes) = (Vec::new(), Vec::new());
        let (mut key_marker, mut version_id_marker) = (None, None);
        let mut pages = 0;
        loop {
            let request = VersionListRequest {
                prefix: prefix.clone(),
                delimiter: delimiter.clone(),
                key_marker: key_marker.clone(),
                version_id_marker: version_id_marker.clone(),
                max_keys,
            };
            let page = list_versions_page(&m, "bv", request);
            prop_assert!(page.versions.len() + page.common_prefixes.len() <= max_keys);
            got_versions.extend(page.versions.iter().map(|v| (v.object.key.0.clone(), v.version.0.clone(), v.is_latest)));
            got_prefixes.extend(page.common_prefixes.iter().cloned());
            if !page.is_truncated {
                break;
            }
            key_marker = page.next_key_marker;
            version_id_marker = page.next_version_id_marker;
            pages += 1;
            prop_assert!(pages < 200, "the listing never ended");
        }
        prop_assert_eq!(got_versions, want_versions);
        prop_assert_eq!(got_prefixes, want_prefixes);
    }
}

/// Creates an upload of `key` initiated at `initiated_ms` with an id of either kind: made by
/// `new_upload_id`, or 128 random bits in hex as ids were before (`legacy`).
fn create_upload_at(m: &StateMachine, bucket: &str, key: &str, initiated_ms: i64, legacy: bool) -> UploadId {
    let id = if legacy { UploadId::new(random_id()) } else { new_upload_id(initiated_ms) };
    let mut upload = upload_record(id.clone(), BucketName::new(bucket), key);
    upload.initiated_ms = initiated_ms;
    m.apply(Command::CreateUpload { bucket: bref(m, bucket), upload }).unwrap();
    id
}

fn list_uploads_page(m: &StateMachine, bucket: &str, request: UploadListRequest) -> UploadPage {
    match m.query(Query::ListUploads { bucket: BucketName::new(bucket), incarnation: None, request }).unwrap() {
        Answer::Uploads(page) => page,
        other => panic!("{other:?}"),
    }
}

/// Pages through ListMultipartUploads; before each page after the first, `between` may change
/// the bucket (it is given the page before). Returns (key, upload id) of the uploads listed and
/// the common prefixes, in order.
fn list_all_uploads(
    m: &StateMachine,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    max_uploads: usize,
    mut between: impl FnMut(&UploadPage),
) -> (Vec<(String, String)>, Vec<String>) {
    let (mut uploads, mut prefixes) = (Vec::new(), Vec::new());
    let (mut key_marker, mut upload_id_marker) = (None, None);
    for _ in 0..20_000 {
        let request = UploadListRequest {
            prefix: prefix.to_string(),
            delimiter: delimiter.map(str::to_string),
            key_marker: key_marker.clone(),
            upload_id_marker: upload_id_marker.clone(),
            max_uploads,
        };
        let page = list_uploads_page(m, bucket, request);
        assert!(page.uploads.len() + page.common_prefixes.len() <= max_uploads);
        uploads.extend(page.uploads.iter().map(|u| (u.key.0.clone(), u.upload_id.0.clone())));
        prefixes.extend(page.common_prefixes.iter().cloned());
        if !page.is_truncated {
            return (uploads, prefixes);
        }
        assert!(page.next_key_marker.is_some(), "a truncated page says where the next begins");
        between(&page);
        key_marker = page.next_key_marker;
        upload_id_marker = page.next_upload_id_marker;
    }
    panic!("the listing never ended")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// ListMultipartUploads, paged at every size, against the uploads sorted by key then
    /// initiation (ties by id), with prefixes and delimiters, ids of both kinds; and with the
    /// upload each page ended on aborted before the next page (when its id carries its time):
    /// the pages still list every upload once.
    #[test]
    fn paginated_upload_listing_matches_the_model(
        uploads in proptest::collection::vec(
            (proptest::sample::select(vec!["a", "ab", "a/", "a/b", "a/c", "b", "b/a"]).prop_map(String::from), 0i64..4, any::<bool>()),
            0..40,
        ),
        prefix in "[ab/]{0,2}",
        delimiter in proptest::option::of(prop_oneof![Just("/".to_string()), Just("b".to_string())]),
        max_uploads in 1usize..6,
        abort_markers in any::<bool>(),
    ) {
        let m = machine();
        bucket(&m, "a", "bu").unwrap();
        let mut model: Vec<(String, i64, String)> = uploads
            .iter()
            .map(|(key, at, legacy)| (key.clone(), 1_000 + at, create_upload_at(&m, "bu", key, 1_000 + at, *legacy).0))
            .collect();
        model.sort();
        let (mut want_uploads, mut want_prefixes) = (Vec::new(), Vec::<String>::new());
        for (key, _, id) in model.iter().filter(|(k, ..)| k.starts_with(&prefix)) {
            match delimiter.as_deref().and_then(|d| key[prefix.len()..].find(d).map(|i| prefix.len() + i + d.len())) {
                Some(end) => {
                    if want_prefixes.last().map(String::as_str) != Some(&key[..end]) {
                        want_prefixes.push(key[..end].to_string());
                    }
                }
                None => want_uploads.push((key.clone(), id.clone())),
            }
        }
        let (got_uploads, got_prefixes) = list_all_uploads(&m, "bu", &prefix, delimiter.as_deref(), max_uploads, |page| {
            if let (true, Some(key), Some(id)) = (abort_markers, &page.next_key_marker, &page.next_upload_id_marker)
                && id.0.contains('-')
            {
                let abort = Command::AbortUpload { bucket: bref(&m, "bu"), upload_id: id.clone(), now_ms: 5_000 };
                m.apply(abort).unwrap();
                assert!(key.as_str() == page.uploads.last().unwrap().key.0);
            }
        });
        prop_assert_eq!(got_uploads, want_uploads);
        prop_assert_eq!(got_prefixes, want_prefixes);
    }
}

/// More uploads in progress than ListMultipartUploads used to consider (10,000, chosen in id
/// order: the rest were never listed and the last page said it was not truncated): every page is
/// full but the last, and together they list each upload once, in order. A page ending on an
/// upload made before ids carried their time, aborted before the next page, resumes at that
/// key's first upload.
#[test]
fn every_upload_in_progress_is_listed_whatever_their_number() {
    let m = machine();
    bucket(&m, "a", "bu").unwrap();
    let count = 10_500;
    let mut want: Vec<(String, i64, String)> = (0..count)
        .map(|n| {
            let key = format!("k{:03}", n % 700);
            let id = create_upload_at(&m, "bu", &key, 1_000 + (n as i64 * 7919) % 500, n % 3 == 0);
            (key, 1_000 + (n as i64 * 7919) % 500, id.0)
        })
        .collect();
    want.sort();
    let want: Vec<(String, String)> = want.into_iter().map(|(k, _, id)| (k, id)).collect();
    let mut pages = 0;
    let (got, prefixes) = list_all_uploads(&m, "bu", "", None, 1000, |page| {
        assert_eq!(page.uploads.len(), 1000);
        pages += 1;
    });
    assert!(prefixes.is_empty());
    assert_eq!(pages, 10);
    assert_eq!(got.len(), count);
    assert_eq!(got, want);

    // A legacy id the page ended on, gone before the next page: its place is unknown, so the next
    // page lists the key's uploads again (none hidden).
    let legacy = want.iter().position(|(_, id)| !id.contains('-')).unwrap();
    let (key, id) = &want[legacy];
    let abort = Command::AbortUpload { bucket: bref(&m, "bu"), upload_id: UploadId::new(id.as_str()), now_ms: 5_000 };
    m.apply(abort).unwrap();
    let next = list_uploads_page(
        &m,
        "bu",
        UploadListRequest {
            key_marker: Some(key.clone()),
            upload_id_marker: Some(UploadId::new(id.as_str())),
            max_uploads: 1,
            ..Default::default()
        },
    );
    let first_of_key = want.iter().find(|(k, _)| k == key).unwrap();
    assert_eq!((&next.uploads[0].key.0, &next.uploads[0].upload_id.0), (&first_of_key.0, &first_of_key.1), "{next:?}");
}

fn striped_object(key: &str, blob: &str, nodes: &[&str]) -> ObjectRecord {
    let mut record = object(key, "e", 10);
    let shards = nodes.iter().map(|n| ShardRecord { node: NodeId::new(*n), blake3: format!("h-{n}") }).collect();
    let stripe = StripeRecord { data_len: 8, shards, debt: true };
    record.parts[0].location = DataLocation::Striped(StripedBlob::whole(BlobId::new(blob), (2, 1), 4, vec![stripe], 0));
    record
}

fn scan_all(m: &StateMachine, limit: usize) -> Vec<(BlobOwner, String)> {
    let mut cursor = BlobCursor::default();
    let mut seen = Vec::new();
    loop {
        let Answer::Blobs(page) = m.query(Query::Blobs { cursor: cursor.clone(), limit }).unwrap() else { panic!() };
        seen.extend(page.blobs.into_iter().map(|b| (b.owner, b.blob.0)));
        match page.next {
            Some(next) => cursor = next,
            None => return seen,
        }
    }
}

#[test]
fn the_blob_scan_visits_upload_parts_then_objects_then_garbage_in_pages() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    for (key, blob) in [("x", "0a"), ("y", "0b"), ("z", "0c")] {
        put_record(&m, "b1", striped_object(key, blob, &["n1", "n2", "n3"])).unwrap();
    }
    // Replacing z makes 0c garbage.
    put_record(&m, "b1", striped_object("z", "0d", &["n1", "n2", "n3"])).unwrap();
    let upload = upload_record(UploadId::new("up1"), BucketName::new("b1"), "m");
    m.apply(Command::CreateUpload { bucket: bref(&m, "b1"), upload }).unwrap();
    m.apply(Command::PutUploadPart {
        bucket: bref(&m, "b1"),
        upload_id: UploadId::new("up1"),
        part: part(3, "p", 5, "0e"),
        leader_ms: None,
    })
    .unwrap();
    // In a versioned bucket, replacing w keeps 0f as a non-current version.
    bucket(&m, "a", "b2").unwrap();
    set_versioning(&m, "b2", VersioningStatus::Enabled);
    for blob in ["0f", "10"] {
        put_record(&m, "b2", striped_object("w", blob, &["n1", "n2", "n3"])).unwrap();
    }
    let old = versions(&m, "b2", "w")[1].version.clone();
    for limit in [1, 2, 100] {
        let seen = scan_all(&m, limit);
        let blobs: Vec<&str> = seen.iter().map(|(_, b)| b.as_str()).collect();
        assert_eq!(blobs, ["0e", "0a", "0b", "0d", "10", "0f", "0c"], "page size {limit}");
        assert_eq!(
            seen[0].0,
            BlobOwner::UploadPart { bucket: BucketName::new("b1"), upload_id: UploadId::new("up1"), part_number: 3 }
        );
        assert_eq!(
            seen[5].0,
            BlobOwner::Version {
                bucket: BucketName::new("b2"),
                key: ObjectKey::new("w"),
                version: old.clone(),
                part_number: 1
            }
        );
        assert_eq!(seen[6].0, BlobOwner::Garbage);
    }
    // Pages also end by bytes: with a budget of one byte every page holds one record's blobs,
    // and the scan still visits every blob once, in the same order.
    let mut cursor = BlobCursor::default();
    let mut by_bytes = Vec::new();
    loop {
        let page = m.blob_page(cursor.clone(), 100, 1).unwrap();
        assert!(page.blobs.len() <= 1, "a page past its byte budget: {:?}", page.blobs);
        by_bytes.extend(page.blobs.into_iter().map(|b| b.blob.0));
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(by_bytes, ["0e", "0a", "0b", "0d", "10", "0f", "0c"]);
    // A repair names the non-current version and applies to it.
    let shard = |n: &str| ShardRecord { node: NodeId::new(n), blake3: format!("h-{n}") };
    m.apply(Command::ReplaceShards(ShardReplacement {
        owner: seen_owner_of(&m, "0f"),
        blob: BlobId::new("0f"),
        stripe: 0,
        expected: vec![shard("n1"), shard("n2"), shard("n3")],
        replacement: vec![shard("n1"), shard("n2"), shard("n4")],
        debt: false,
        lease: None,
    }))
    .unwrap();
    let record = version(&m, "b2", "w", Some(&old)).unwrap();
    let DataLocation::Striped(striped) = &record.parts[0].location else { panic!() };
    assert_eq!(striped.stripes[0].shards[2], shard("n4"));
}

fn seen_owner_of(m: &StateMachine, blob: &str) -> BlobOwner {
    scan_all(m, 100).into_iter().find(|(_, b)| b == blob).expect("blob scanned").0
}

#[test]
fn a_shard_replacement_applies_only_to_the_shards_it_read() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let record = striped_object("x", "0a", &["n1", "n1", "n3"]);
    put_record(&m, "b1", record).unwrap();
    let shard = |n: &str| ShardRecord { node: NodeId::new(n), blake3: format!("h-{n}") };
    let owner = BlobOwner::Object { bucket: BucketName::new("b1"), key: ObjectKey::new("x"), part_number: 1 };
    let replace = |expected: Vec<ShardRecord>| {
        m.apply(Command::ReplaceShards(ShardReplacement {
            owner: owner.clone(),
            blob: BlobId::new("0a"),
            stripe: 0,
            expected,
            replacement: vec![shard("n1"), shard("n2"), shard("n3")],
            debt: false,
            lease: None,
        }))
    };
    // A repairer that read another state is refused, and nothing changes.
    assert!(matches!(replace(vec![shard("n1"), shard("n2"), shard("n2")]), Err(MetaError::Superseded(_))));
    replace(vec![shard("n1"), shard("n1"), shard("n3")]).unwrap();
    // Applying the same replacement twice (a retried proposal) is harmless.
    replace(vec![shard("n1"), shard("n1"), shard("n3")]).unwrap();
    let Answer::Object(object) = m
        .query(Query::Object {
            tenant: None,
            bucket: BucketName::new("b1"),
            key: ObjectKey::new("x"),
            stripes: u32::MAX,
        })
        .unwrap()
    else {
        panic!()
    };
    let DataLocation::Striped(striped) = &object.parts[0].location else { panic!() };
    assert_eq!(striped.stripes[0].shards, [shard("n1"), shard("n2"), shard("n3")]);
    assert!(!striped.stripes[0].debt);
    let Answer::Durability(report) = m.query(Query::DurabilityReport).unwrap() else { panic!() };
    assert_eq!((report[0].debt_objects, report[0].full_budget_objects), (0, 1));
}

/// The durability report pages through a bucket's records (more than one page here) instead of
/// loading every record at once.
#[test]
fn the_durability_report_counts_every_object_a_page_at_a_time() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    for i in 0..(DURABILITY_PAGE_RECORDS + 7) {
        put(&m, "b1", &format!("k{i:05}"), "e", WriteCondition::default()).unwrap();
    }
    let Answer::Durability(report) = m.query(Query::DurabilityReport).unwrap() else { panic!() };
    assert_eq!(report[0].full_budget_objects, (DURABILITY_PAGE_RECORDS + 7) as u64);
}

#[test]
fn a_lease_has_one_holder_until_it_expires() {
    let m = machine();
    let take = |holder: &str, now_ms: i64| m.apply(Command::take_lease("repair", holder, now_ms, 100));
    take("g1", 0).unwrap();
    assert_eq!(take("g2", 50), Err(MetaError::LeaseHeld { holder: "g1".into() }));
    take("g1", 90).unwrap(); // renewal: now until 190
    assert!(take("g2", 150).is_err());
    take("g2", 191).unwrap();
}

/// A lease counts its tenures: its holder's takes keep its tenure, another holder's start the
/// next. A repair names the tenure it was surveyed in and is refused once another began (a
/// worker stalled past its lease, whose rebuilt copies another worker's survey counted as
/// strays). Takes and repairs from before data format 14 apply as they did.
#[test]
fn a_repair_commits_only_in_the_lease_tenure_it_was_surveyed_in() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    put_record(&m, "b1", striped_object("x", "0a", &["n1", "n2", "n3"])).unwrap();
    let take = |holder: &str, now_ms: i64| m.apply(Command::take_lease("repair", holder, now_ms, 100));
    let shard = |n: &str| ShardRecord { node: NodeId::new(n), blake3: format!("h-{n}") };
    let shards = || {
        let Answer::Stripes(stripes) = m.query(Query::Stripes { blob: BlobId::new("0a"), first: 0, limit: 1 }).unwrap()
        else {
            panic!()
        };
        stripes[0].shards.iter().map(|s| s.node.0.clone()).collect::<Vec<_>>()
    };
    // A repair of `from`'s shard onto `to`, fenced by (holder, tenure).
    let repair = |from: &str, to: &str, lease: Option<(&str, u64)>| {
        let expected = shards();
        let replacement = expected.iter().map(|n| if n == from { to } else { n.as_str() }).collect();
        let records = |nodes: Vec<&str>| nodes.into_iter().map(shard).collect();
        m.apply(Command::ReplaceShards(ShardReplacement {
            owner: BlobOwner::Object { bucket: BucketName::new("b1"), key: ObjectKey::new("x"), part_number: 1 },
            blob: BlobId::new("0a"),
            stripe: 0,
            expected: records(expected.iter().map(String::as_str).collect()),
            replacement: records(replacement),
            debt: false,
            lease: lease.map(|(holder, epoch)| LeaseFence { name: "repair".into(), holder: holder.into(), epoch }),
        }))
    };
    let superseded = |outcome: Result<Outcome, MetaError>| matches!(outcome, Err(MetaError::Superseded(_)));

    assert_eq!(take("g1", 0), Ok(Outcome::Lease { epoch: 1 }));
    assert_eq!(take("g1", 90), Ok(Outcome::Lease { epoch: 1 }), "a renewal keeps the tenure");
    repair("n3", "n4", Some(("g1", 1))).unwrap();
    assert_eq!(shards(), ["n1", "n2", "n4"]);
    // g1 stalls; its lease runs out at 190 and g2 takes it: g1's repair is refused when it wakes.
    assert_eq!(take("g2", 191), Ok(Outcome::Lease { epoch: 2 }));
    assert!(superseded(repair("n4", "n5", Some(("g1", 1)))));
    assert!(superseded(repair("n4", "n5", Some(("g1", 2)))), "the holder and its tenure both count");
    assert_eq!(shards(), ["n1", "n2", "n4"], "unchanged");
    // Already applied (a retried proposal): Ok whatever the lease, and nothing changes.
    assert_eq!(repair("n3", "n4", Some(("g1", 1))), Ok(Outcome::Done));
    assert_eq!(shards(), ["n1", "n2", "n4"]);
    // g2's runs out and g1 takes the lease again: a new tenure, in which its old repair is refused.
    assert_eq!(take("g1", 400), Ok(Outcome::Lease { epoch: 3 }));
    assert!(superseded(repair("n4", "n5", Some(("g1", 1)))));
    // A holder whose own lease ran out with nobody taking it meanwhile keeps its tenure.
    assert_eq!(take("g1", 600), Ok(Outcome::Lease { epoch: 3 }));
    repair("n4", "n5", Some(("g1", 3))).unwrap();
    assert_eq!(shards(), ["n1", "n2", "n5"]);
    // A take refused leaves the tenure as it was.
    assert_eq!(take("g2", 650), Err(MetaError::LeaseHeld { holder: "g1".into() }));
    assert_eq!(take("g1", 660), Ok(Outcome::Lease { epoch: 3 }));

    // Entries from before format 14: a take writes the record as it did (no tenure, `Done`), and
    // a repair without a fence is not checked.
    let old_take = Command::TakeLease {
        name: "repair".into(),
        holder: "g3".into(),
        now_ms: 10_000,
        duration_ms: 100,
        tenures: false,
    };
    assert_eq!(m.apply(old_take), Ok(Outcome::Done));
    let stored = m.kv().get(&keys::lease("repair")).unwrap().unwrap();
    assert_eq!(String::from_utf8(stored).unwrap(), r#"{"holder":"g3","until_ms":10100}"#);
    assert!(superseded(repair("n5", "n6", Some(("g3", 0)))), "a record without a tenure fences every repair");
    repair("n5", "n6", None).unwrap();
    assert_eq!(shards(), ["n1", "n2", "n6"]);
    // The holder's next take (this version's) renews it in tenure 0.
    assert_eq!(take("g3", 10_050), Ok(Outcome::Lease { epoch: 0 }));
    repair("n6", "n7", Some(("g3", 0))).unwrap();
    assert_eq!(shards(), ["n1", "n2", "n7"]);
    // A lease record that does not decode fences every repair (its holder is unknown).
    let mut batch = ignifuge_kv::WriteBatch::new();
    batch.put(keys::lease("repair"), b"{not json".to_vec());
    m.kv().write(batch, ignifuge_kv::Durability::Synced).unwrap();
    assert!(superseded(repair("n7", "n8", Some(("g3", 0)))));
    assert_eq!(shards(), ["n1", "n2", "n7"]);
}

#[test]
fn a_repair_report_is_recorded_only_in_the_lease_tenure_of_its_round() {
    let m = machine();
    let take = |holder: &str, now_ms: i64| m.apply(Command::take_lease("repair", holder, now_ms, 100));
    let record = |started_ms: i64, lease: Option<(&str, u64)>| {
        m.apply(Command::RecordRepairReport(Box::new(RepairReport {
            holder: "h".into(),
            started_ms,
            lease: lease.map(|(holder, epoch)| LeaseFence { name: "repair".into(), holder: holder.into(), epoch }),
            ..Default::default()
        })))
    };
    let stored = || match m.query(Query::RepairReport).unwrap() {
        Answer::RepairReport(report) => report.map(|r| r.started_ms),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(take("g1", 0), Ok(Outcome::Lease { epoch: 1 }));
    assert_eq!(record(1, Some(("g1", 1))), Ok(Outcome::Done));
    assert_eq!(stored(), Some(1));
    // g1 stalls past its lease, g2 takes it and records its round; g1's report is then refused.
    assert_eq!(take("g2", 200), Ok(Outcome::Lease { epoch: 2 }));
    assert_eq!(record(3, Some(("g2", 2))), Ok(Outcome::Done));
    assert!(matches!(record(2, Some(("g1", 1))), Err(MetaError::Superseded(_))));
    assert!(matches!(record(2, Some(("g2", 1))), Err(MetaError::Superseded(_))), "the tenure counts");
    assert_eq!(stored(), Some(3));
    // g2's lease runs out with nobody taking it: still its tenure, and its report is recorded.
    assert_eq!(record(4, Some(("g2", 2))), Ok(Outcome::Done));
    assert_eq!(stored(), Some(4));
    // A report from before format 15 carries no fence and is recorded as it was.
    assert_eq!(record(5, None), Ok(Outcome::Done));
    assert_eq!(stored(), Some(5));
    // A lease record that does not decode fences every report (its holder is unknown).
    let mut batch = ignifuge_kv::WriteBatch::new();
    batch.put(keys::lease("repair"), b"{not json".to_vec());
    m.kv().write(batch, ignifuge_kv::Durability::Synced).unwrap();
    assert!(matches!(record(6, Some(("g2", 2))), Err(MetaError::Superseded(_))));
    assert_eq!(stored(), Some(5));
}

#[test]
fn the_layout_changes_only_by_compare_and_swap_on_its_version() {
    let m = machine();
    let layout = || match m.query(Query::Layout).unwrap() {
        Answer::Layout(l) => l,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(layout(), None);
    let set = |expected: Option<u64>, document: &str| {
        m.apply(Command::SetLayout { expected: expected.map(LayoutVersion), document: document.into(), now_ms: 5 })
    };
    assert_eq!(set(None, "first"), Ok(Outcome::Layout(LayoutVersion(1))));
    // Two gateways seeding at once: the second finds a layout and installs nothing.
    assert!(matches!(set(None, "other seed"), Err(MetaError::Superseded(_))));
    assert_eq!(set(Some(1), "second"), Ok(Outcome::Layout(LayoutVersion(2))));
    // A change prepared against version 1 lost the race to the one above.
    assert!(matches!(set(Some(1), "stale"), Err(MetaError::Superseded(_))));
    let current = layout().unwrap();
    assert_eq!((current.version, current.document.as_str()), (LayoutVersion(2), "second"));
}

#[test]
fn a_bucket_cors_configuration_is_set_by_its_owner_and_deleted() {
    let m = machine();
    bucket(&m, "a", "web").unwrap();
    let rule = CorsRule {
        allowed_origins: vec!["https://*.example.com".into()],
        allowed_methods: vec!["GET".into()],
        ..CorsRule::default()
    };
    let set = |tenant: &str, cors: Option<CorsConfiguration>| {
        m.apply(Command::SetBucketCors { bucket: BucketRef { tenant: TenantId::new(tenant), ..bref(&m, "web") }, cors })
    };
    let configuration = CorsConfiguration { rules: vec![rule] };
    assert_eq!(set("b", Some(configuration.clone())), Err(MetaError::NoSuchBucket), "another tenant");
    set("a", Some(configuration.clone())).unwrap();
    let Answer::Bucket(record) = m.query(Query::Bucket(BucketName::new("web"))).unwrap() else { panic!() };
    assert_eq!(record.cors, Some(configuration));
    set("a", None).unwrap();
    let Answer::Bucket(record) = m.query(Query::Bucket(BucketName::new("web"))).unwrap() else { panic!() };
    assert_eq!(record.cors, None);
    // Records written before CORS existed still read.
    let old: BucketRecord =
        serde_json::from_str(r#"{"name":"old","tenant":"a","region":"us-east-1","created_ms":0}"#).unwrap();
    assert_eq!(old.cors, None);
}

#[test]
fn an_operator_declares_nodes_out_and_takes_it_back() {
    let m = machine();
    let set = |node: &str, out: bool| m.apply(Command::SetNodeOut { node: NodeId::new(node), out, now_ms: 7 }).unwrap();
    set("dc2-n3", true);
    set("dc1-n1", true);
    set("dc1-n1", false);
    assert_eq!(m.query(Query::NodesOut).unwrap(), Answer::NodesOut(vec![(NodeId::new("dc2-n3"), 7)]));
}

// ---------------------------------------------------------------- versioning

fn set_versioning(m: &StateMachine, b: &str, status: VersioningStatus) {
    m.apply(Command::SetBucketVersioning { bucket: bref(m, b), status }).unwrap();
}

/// Puts `key` with data in blob `blob`; returns the version id given.
fn put_blob(m: &StateMachine, b: &str, key: &str, blob: &str) -> VersionId {
    let mut record = object(key, &format!("e-{blob}"), 1);
    record.parts[0] = part(1, &format!("e-{blob}"), 1, blob);
    record.version = VersionId::new(format!("{:032x}", u128::from_str_radix(blob, 16).unwrap_or(7) * 7919));
    let Outcome::Object(record) = m
        .apply(Command::PutObject { bucket: bref(&m, b), record, condition: Default::default(), leader_ms: None })
        .unwrap()
    else {
        panic!()
    };
    record.version
}

fn delete(m: &StateMachine, b: &str, key: &str, version: Option<&VersionId>) -> (Option<VersionId>, bool) {
    let outcome = m
        .apply(Command::DeleteObject {
            bucket: bref(&m, b),
            key: ObjectKey::new(key),
            condition: WriteCondition::default(),
            now_ms: 50,
            version: version.cloned(),
            marker_nonce: Some(VersionId::new("00112233445566778899aabbccddeeff")),
        })
        .unwrap();
    let Outcome::DeletedVersion { version, delete_marker } = outcome else { panic!("{outcome:?}") };
    (version, delete_marker)
}

fn version(m: &StateMachine, b: &str, key: &str, version: Option<&VersionId>) -> Result<ObjectRecord, MetaError> {
    let query = Query::ObjectVersion {
        tenant: None,
        incarnation: None,
        bucket: BucketName::new(b),
        key: ObjectKey::new(key),
        version: version.cloned(),
        stripes: u32::MAX,
    };
    m.query(query).map(|a| match a {
        Answer::ObjectVersion { record, .. } => *record,
        other => panic!("{other:?}"),
    })
}

fn list_versions_page(m: &StateMachine, b: &str, request: VersionListRequest) -> VersionPage {
    let Answer::Versions(page) =
        m.query(Query::ListVersions { bucket: BucketName::new(b), incarnation: None, request }).unwrap()
    else {
        panic!()
    };
    page
}

/// Every version of `key`, as ListObjectVersions returns them.
fn versions(m: &StateMachine, b: &str, key: &str) -> Vec<VersionSummary> {
    let request = VersionListRequest { prefix: key.into(), max_keys: 1000, ..Default::default() };
    list_versions_page(m, b, request).versions.into_iter().filter(|v| v.object.key.0 == key).collect()
}

fn listed_keys(m: &StateMachine, b: &str) -> Vec<String> {
    let request = ListRequest { max_keys: 1000, ..Default::default() };
    let Answer::Objects(page) =
        m.query(Query::ListObjects { bucket: BucketName::new(b), incarnation: None, request }).unwrap()
    else {
        panic!()
    };
    page.objects.into_iter().map(|o| o.key.0).collect()
}

fn is_garbage(m: &StateMachine, blob: &str) -> bool {
    m.kv().get(format!("g/{blob}").as_bytes()).unwrap().is_some()
}

#[test]
fn a_versioned_bucket_keeps_every_version_newest_first() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let null = put_blob(&m, "b1", "k", "a1");
    assert_eq!(null.0, "null", "an unversioned bucket writes the null version");
    let Answer::Bucket(record) = m.query(Query::Bucket(BucketName::new("b1"))).unwrap() else { panic!() };
    assert_eq!(record.versioning, None, "never set");
    set_versioning(&m, "b1", VersioningStatus::Enabled);
    let v1 = put_blob(&m, "b1", "k", "b1");
    let v2 = put_blob(&m, "b1", "k", "c1");
    assert!(is_valid_version_id(&v1.0) && is_valid_version_id(&v2.0) && v1 != v2, "{v1:?} {v2:?}");
    assert!(!is_garbage(&m, "a1") && !is_garbage(&m, "b1"), "old versions keep their data");
    let listed = versions(&m, "b1", "k");
    let ids: Vec<&str> = listed.iter().map(|v| v.version.0.as_str()).collect();
    assert_eq!(ids, [v2.0.as_str(), v1.0.as_str(), "null"], "newest first");
    assert_eq!(listed.iter().map(|v| v.is_latest).collect::<Vec<_>>(), [true, false, false]);
    assert_eq!(version(&m, "b1", "k", None).unwrap().etag, "e-c1");
    assert_eq!(version(&m, "b1", "k", Some(&v1)).unwrap().etag, "e-b1");
    assert_eq!(version(&m, "b1", "k", Some(&VersionId::new("null"))).unwrap().etag, "e-a1");
    let unknown = VersionId::new(format!("{:016x}{}", 1, "ffffffffffffffff"));
    assert_eq!(version(&m, "b1", "k", Some(&unknown)), Err(MetaError::NoSuchVersion));
    assert_eq!(version(&m, "b1", "k", Some(&VersionId::new("nonsense"))), Err(MetaError::NoSuchVersion));
    assert_eq!(version(&m, "b1", "nokey", Some(&v1)), Err(MetaError::NoSuchVersion));
    assert_eq!(listed_keys(&m, "b1"), ["k"], "listings show the current version only");
    // Tags of one version.
    m.apply(Command::SetObjectTags {
        bucket: bref(&m, "b1"),
        key: ObjectKey::new("k"),
        tags: vec![("t".into(), "1".into())],
        version: Some(v1.clone()),
    })
    .unwrap();
    assert_eq!(version(&m, "b1", "k", Some(&v1)).unwrap().tags, vec![("t".to_string(), "1".to_string())]);
    assert!(version(&m, "b1", "k", None).unwrap().tags.is_empty());
    // Conditional writes see the current version.
    let create = WriteCondition { if_none_match_any: true, if_match: None };
    assert_eq!(put(&m, "b1", "k", "e", create.clone()), Err(MetaError::PreconditionFailed));
    let stale = WriteCondition { if_none_match_any: false, if_match: Some("e-b1".into()) };
    assert_eq!(put(&m, "b1", "k", "e", stale), Err(MetaError::PreconditionFailed));
    delete(&m, "b1", "k", None);
    put(&m, "b1", "k", "e", create).expect("If-None-Match: * succeeds over a delete marker");
    // Records written before versioning existed read as null versions.
    let old: ObjectRecord = serde_json::from_str(
        r#"{"key":"o","version":"0123abcd","size":0,"etag":"x","last_modified_ms":0,"headers":{"content_type":null,"content_encoding":null,"content_disposition":null,"content_language":null,"cache_control":null,"expires":null,"user_metadata":{}},"checksums":{"crc32":null,"crc32c":null,"crc64nvme":null,"sha1":null,"sha256":null,"checksum_type":null},"parts":[],"multipart":false}"#,
    )
    .unwrap();
    assert!(old.is_null_version() && !old.delete_marker && old.sequence == 0);
}

#[test]
fn deletes_add_markers_and_removing_versions_promotes_the_next() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    set_versioning(&m, "b1", VersioningStatus::Enabled);
    let v1 = put_blob(&m, "b1", "k", "a1");
    let v2 = put_blob(&m, "b1", "k", "b1");
    let (marker, is_marker) = delete(&m, "b1", "k", None);
    let marker = marker.expect("a marker has a version id");
    assert!(is_marker && is_valid_version_id(&marker.0));
    assert!(!is_garbage(&m, "b1"), "a delete marker deletes no data");
    let current = version(&m, "b1", "k", None).unwrap();
    assert!(current.delete_marker && current.version == marker);
    assert_eq!(
        m.query(Query::Object {
            tenant: None,
            bucket: BucketName::new("b1"),
            key: ObjectKey::new("k"),
            stripes: u32::MAX
        }),
        Err(MetaError::NoSuchKey)
    );
    assert!(listed_keys(&m, "b1").is_empty(), "a deleted key is not listed");
    let listed = versions(&m, "b1", "k");
    assert_eq!(
        listed.iter().map(|v| (v.delete_marker, v.is_latest)).collect::<Vec<_>>(),
        [(true, true), (false, false), (false, false)]
    );
    // A second delete adds a second marker.
    let (second, _) = delete(&m, "b1", "k", None);
    assert_eq!(versions(&m, "b1", "k").len(), 4);
    // Removing the markers (by id) makes v2 current again, without moving its record.
    assert_eq!(delete(&m, "b1", "k", second.as_ref()), (second.clone(), true));
    assert_eq!(delete(&m, "b1", "k", Some(&marker)), (Some(marker.clone()), true));
    let current = version(&m, "b1", "k", None).unwrap();
    assert_eq!((current.version.clone(), current.etag.as_str()), (v2.clone(), "e-b1"));
    assert_eq!(current.parts.len(), 1, "the full record, with its data");
    assert_eq!(listed_keys(&m, "b1"), ["k"]);
    let listed = versions(&m, "b1", "k");
    assert_eq!(listed.iter().map(|v| (&v.version, v.is_latest)).collect::<Vec<_>>(), [(&v2, true), (&v1, false)]);
    // v2's blob is still found by the blob scan, so that repairs and the orphan sweep see it.
    assert!(matches!(seen_owner_of(&m, "b1"), BlobOwner::Version { version, .. } if version == v2));
    // Deleting the promoted current version permanently: its blob is garbage, v1 is current.
    assert_eq!(delete(&m, "b1", "k", Some(&v2)), (Some(v2.clone()), false));
    assert!(is_garbage(&m, "b1") && !is_garbage(&m, "a1"));
    assert_eq!(version(&m, "b1", "k", None).unwrap().version, v1);
    // Deleting a version that does not exist succeeds and changes nothing.
    assert_eq!(delete(&m, "b1", "k", Some(&v2)), (Some(v2.clone()), false));
    // A new write after a promotion goes on the chain in order.
    let v3 = put_blob(&m, "b1", "k", "c1");
    let listed = versions(&m, "b1", "k");
    assert_eq!(listed.iter().map(|v| &v.version).collect::<Vec<_>>(), [&v3, &v1]);
    assert_eq!(delete(&m, "b1", "k", Some(&v1)), (Some(v1.clone()), false));
    assert_eq!(delete(&m, "b1", "k", Some(&v3)), (Some(v3.clone()), false));
    assert!(is_garbage(&m, "a1") && is_garbage(&m, "c1"));
    assert_eq!(version(&m, "b1", "k", None), Err(MetaError::NoSuchKey), "no version left");
    m.apply(Command::DeleteBucket { bucket: bref(&m, "b1") }).unwrap();
}

#[test]
fn suspended_buckets_replace_the_null_version() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    put_blob(&m, "b1", "k", "a1"); // the null version
    set_versioning(&m, "b1", VersioningStatus::Enabled);
    let v1 = put_blob(&m, "b1", "k", "b1");
    set_versioning(&m, "b1", VersioningStatus::Suspended);
    let Answer::Bucket(record) = m.query(Query::Bucket(BucketName::new("b1"))).unwrap() else { panic!() };
    assert_eq!(record.versioning, Some(VersioningStatus::Suspended));
    // The null version is non-current: a suspended write replaces it and keeps v1.
    assert_eq!(put_blob(&m, "b1", "k", "c1").0, "null");
    assert!(is_garbage(&m, "a1") && !is_garbage(&m, "b1"));
    let ids = |m: &StateMachine| versions(m, "b1", "k").into_iter().map(|v| v.version.0).collect::<Vec<_>>();
    assert_eq!(ids(&m), ["null", v1.0.as_str()]);
    // The null version is current: replaced in place.
    put_blob(&m, "b1", "k", "d1");
    assert!(is_garbage(&m, "c1"));
    assert_eq!(ids(&m), ["null", v1.0.as_str()]);
    assert_eq!(version(&m, "b1", "k", None).unwrap().etag, "e-d1");
    // A delete puts a null delete marker in its place.
    assert_eq!(delete(&m, "b1", "k", None), (Some(VersionId::new("null")), true));
    assert!(is_garbage(&m, "d1"));
    assert_eq!(ids(&m), ["null", v1.0.as_str()]);
    assert!(version(&m, "b1", "k", Some(&VersionId::new("null"))).unwrap().delete_marker);
    // Enabled again: versions pile up on top of the null marker.
    set_versioning(&m, "b1", VersioningStatus::Enabled);
    let v2 = put_blob(&m, "b1", "k", "e1");
    assert_eq!(ids(&m), [v2.0.as_str(), "null", v1.0.as_str()]);
    // Deleting the null version by id.
    assert_eq!(delete(&m, "b1", "k", Some(&VersionId::new("null"))), (Some(VersionId::new("null")), true));
    assert_eq!(ids(&m), [v2.0.as_str(), v1.0.as_str()]);
    // Another key deleted in a suspended bucket where it never existed: a null marker.
    set_versioning(&m, "b1", VersioningStatus::Suspended);
    assert_eq!(delete(&m, "b1", "ghost", None), (Some(VersionId::new("null")), true));
    assert!(version(&m, "b1", "ghost", None).unwrap().delete_marker);
}

#[test]
fn a_bucket_with_versions_or_delete_markers_cannot_be_deleted() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    set_versioning(&m, "b1", VersioningStatus::Enabled);
    let v1 = put_blob(&m, "b1", "k", "a1");
    let (marker, _) = delete(&m, "b1", "k", None);
    let delete_bucket = || m.apply(Command::DeleteBucket { bucket: bref(&m, "b1") });
    assert!(listed_keys(&m, "b1").is_empty());
    assert_eq!(delete_bucket(), Err(MetaError::BucketNotEmpty), "a version and a marker");
    delete(&m, "b1", "k", Some(&v1));
    assert_eq!(delete_bucket(), Err(MetaError::BucketNotEmpty), "a delete marker alone");
    delete(&m, "b1", "k", marker.as_ref());
    delete_bucket().unwrap();
}

#[test]
fn version_listing_paginates_with_key_and_version_markers() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    set_versioning(&m, "b1", VersioningStatus::Enabled);
    // a: 3 versions; b/x: 2 versions and a marker; b/y: 1; c: a null version under a newer one.
    set_versioning(&m, "b1", VersioningStatus::Suspended);
    put_blob(&m, "b1", "c", "c0");
    set_versioning(&m, "b1", VersioningStatus::Enabled);
    for (key, blob) in [("a", "a1"), ("b/x", "b1"), ("a", "a2"), ("b/y", "d1"), ("a", "a3"), ("b/x", "b2")] {
        put_blob(&m, "b1", key, blob);
    }
    put_blob(&m, "b1", "c", "c1");
    delete(&m, "b1", "b/x", None);
    let full = list_versions_page(&m, "b1", VersionListRequest { max_keys: 1000, ..Default::default() });
    assert!(!full.is_truncated);
    let keys: Vec<(&str, bool)> = full.versions.iter().map(|v| (v.object.key.0.as_str(), v.is_latest)).collect();
    assert_eq!(
        keys,
        [
            ("a", true),
            ("a", false),
            ("a", false),
            ("b/x", true),
            ("b/x", false),
            ("b/x", false),
            ("b/y", true),
            ("c", true),
            ("c", false)
        ]
    );
    assert!(full.versions[3].delete_marker);
    assert_eq!(full.versions[8].version.0, "null");
    let all: Vec<(String, String)> =
        full.versions.iter().map(|v| (v.object.key.0.clone(), v.version.0.clone())).collect();
    for max_keys in 1..=4 {
        let mut seen = Vec::new();
        let (mut key_marker, mut version_id_marker) = (None, None);
        for _ in 0..20 {
            let request = VersionListRequest {
                key_marker: key_marker.clone(),
                version_id_marker,
                max_keys,
                ..Default::default()
            };
            let page = list_versions_page(&m, "b1", request);
            assert!(page.versions.len() <= max_keys);
            seen.extend(page.versions.iter().map(|v| (v.object.key.0.clone(), v.version.0.clone())));
            if !page.is_truncated {
                break;
            }
            key_marker = page.next_key_marker;
            version_id_marker = page.next_version_id_marker;
        }
        assert_eq!(seen, all, "pages of {max_keys}");
    }
    // A key marker alone starts after every version of that key.
    let page = list_versions_page(
        &m,
        "b1",
        VersionListRequest { key_marker: Some("b/x".into()), max_keys: 1000, ..Default::default() },
    );
    assert_eq!(page.versions[0].object.key.0, "b/y");
    // Delimiter: a common prefix counts once, also when its only current entry is a marker.
    let page = list_versions_page(
        &m,
        "b1",
        VersionListRequest { delimiter: Some("/".into()), max_keys: 4, ..Default::default() },
    );
    assert_eq!(page.common_prefixes, ["b/"]);
    assert_eq!(page.versions.len(), 3);
    assert!(page.is_truncated);
    assert_eq!(page.next_key_marker.as_deref(), Some("b/"));
    assert_eq!(page.next_version_id_marker, None);
    let page = list_versions_page(
        &m,
        "b1",
        VersionListRequest {
            delimiter: Some("/".into()),
            key_marker: page.next_key_marker,
            max_keys: 4,
            ..Default::default()
        },
    );
    assert!(page.common_prefixes.is_empty() && !page.is_truncated);
    assert_eq!(page.versions.iter().map(|v| v.object.key.0.as_str()).collect::<Vec<_>>(), ["c", "c"]);
    // ListObjects skips the marker of b/x, and shows b/ only through b/y.
    delete(&m, "b1", "b/y", None);
    let request = ListRequest { delimiter: Some("/".into()), max_keys: 1000, ..Default::default() };
    let Answer::Objects(page) =
        m.query(Query::ListObjects { bucket: BucketName::new("b1"), incarnation: None, request }).unwrap()
    else {
        panic!()
    };
    assert!(page.common_prefixes.is_empty(), "every key under b/ is deleted");
    assert_eq!(page.objects.iter().map(|o| o.key.0.as_str()).collect::<Vec<_>>(), ["a", "c"]);
}

fn proposal(id: &str, command: Command) -> Proposal {
    Proposal { id: ProposalId::new(id), issued_ms: 1_000, aged_by_entries: true, command }
}

#[test]
fn a_write_authorized_against_a_bucket_that_was_recreated_lands_nowhere() {
    let m = machine();
    bucket(&m, "a", "shared").unwrap();
    let authorized = bref(&m, "shared");
    // While the body streams, tenant a deletes the bucket and tenant b creates one of that name.
    m.apply(Command::DeleteBucket { bucket: authorized.clone() }).unwrap();
    bucket(&m, "b", "shared").unwrap();
    let write = Command::PutObject {
        bucket: authorized.clone(),
        record: object("k", "e", 1),
        condition: Default::default(),
        leader_ms: None,
    };
    assert_eq!(m.apply(write), Err(MetaError::NoSuchBucket));
    let upload = upload_record(UploadId::new("u"), BucketName::new("shared"), "k");
    assert_eq!(m.apply(Command::CreateUpload { bucket: authorized.clone(), upload }), Err(MetaError::NoSuchBucket));
    let delete = Command::DeleteObject {
        bucket: authorized,
        key: ObjectKey::new("k"),
        condition: Default::default(),
        now_ms: 1,
        version: None,
        marker_nonce: None,
    };
    assert_eq!(m.apply(delete), Err(MetaError::NoSuchBucket));
    assert!(matches!(
        m.query(Query::Object {
            tenant: None,
            bucket: BucketName::new("shared"),
            key: ObjectKey::new("k"),
            stripes: u32::MAX
        }),
        Err(MetaError::NoSuchKey)
    ));
    // The same tenant re-creating the name makes another incarnation too.
    m.apply(Command::DeleteBucket { bucket: bref(&m, "shared") }).unwrap();
    bucket(&m, "a", "shared").unwrap();
    let stale = Command::PutObject {
        bucket: authorized_again(&m),
        record: object("k", "e", 1),
        condition: Default::default(),
        leader_ms: None,
    };
    assert_eq!(m.apply(stale), Err(MetaError::NoSuchBucket));
    // Configuration changes and deletes authorized against the earlier life do not touch this one.
    let current = bref(&m, "shared");
    m.apply(Command::PutObject {
        bucket: current.clone(),
        record: object("k", "e", 1),
        condition: Default::default(),
        leader_ms: None,
    })
    .unwrap();
    let stale_commands = [
        Command::SetBucketVersioning { bucket: authorized_again(&m), status: VersioningStatus::Enabled },
        Command::SetBucketTags { bucket: authorized_again(&m), tags: Some(vec![("t".into(), "1".into())]) },
        Command::SetBucketCors { bucket: authorized_again(&m), cors: None },
        Command::SetObjectTags {
            bucket: authorized_again(&m),
            key: ObjectKey::new("k"),
            tags: vec![("t".into(), "1".into())],
            version: None,
        },
    ];
    for command in stale_commands {
        assert_eq!(m.apply(command.clone()), Err(MetaError::NoSuchBucket), "{command:?}");
    }
    let Answer::Bucket(record) = m.query(Query::Bucket(BucketName::new("shared"))).unwrap() else { panic!() };
    assert_eq!((record.versioning, record.tags), (None, None), "the new bucket's configuration is untouched");
    let Answer::Object(object) = m
        .query(Query::Object { tenant: None, bucket: BucketName::new("shared"), key: ObjectKey::new("k"), stripes: 0 })
        .unwrap()
    else {
        panic!()
    };
    assert!(object.tags.is_empty(), "its objects' tags too");
    m.apply(Command::DeleteObject {
        bucket: current.clone(),
        key: ObjectKey::new("k"),
        condition: Default::default(),
        now_ms: 1,
        version: None,
        marker_nonce: None,
    })
    .unwrap();
    assert_eq!(m.apply(Command::DeleteBucket { bucket: authorized_again(&m) }), Err(MetaError::NoSuchBucket));
    m.apply(Command::DeleteBucket { bucket: current }).unwrap();
}

/// A reference to tenant a's first "shared" bucket, made stale by its re-creation.
fn authorized_again(m: &StateMachine) -> BucketRef {
    let mut reference = bref(m, "shared");
    reference.incarnation = BucketIncarnation::new("an earlier life");
    reference
}

#[test]
fn an_abandoned_proposal_is_never_applied_and_an_applied_one_reports_its_outcome() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let write = |etag: &str| Command::PutObject {
        bucket: bref(&m, "b1"),
        record: object("k", etag, 1),
        condition: Default::default(),
        leader_ms: None,
    };
    // Abandoned first: the original, arriving later (an old leader's entry), changes nothing.
    let settled = m.apply_proposal_logged_next(
        proposal("s1", Command::Abandon { proposal: ProposalId::new("late") }),
        Default::default(),
    );
    assert_eq!(settled.unwrap(), Err(MetaError::Abandoned));
    let late = m.apply_proposal_logged_next(proposal("late", write("e-late")), Default::default()).unwrap();
    assert_eq!(late, Err(MetaError::Abandoned));
    assert!(matches!(
        m.query(Query::Object {
            tenant: None,
            bucket: BucketName::new("b1"),
            key: ObjectKey::new("k"),
            stripes: u32::MAX
        }),
        Err(MetaError::NoSuchKey)
    ));
    // Applied first: settling it returns its outcome, so the caller knows it is done.
    let done = m.apply_proposal_logged_next(proposal("done", write("e-done")), Default::default()).unwrap().unwrap();
    let settled = m.apply_proposal_logged_next(
        proposal("s2", Command::Abandon { proposal: ProposalId::new("done") }),
        Default::default(),
    );
    assert_eq!(settled.unwrap(), Ok(done));
}

fn blobs(names: &[&str]) -> Vec<BlobId> {
    names.iter().map(|n| BlobId::new(*n)).collect()
}

/// An intent, a lease or the repair report that does not decode is stepped over: the orphan
/// sweep spares that blob and fences the others, the lease is taken over, the report reads as
/// none (a round reads it first, then writes its own). Each used to fail its command or query
/// on every replica alike, round after round, stopping that service for good.
#[test]
fn bookkeeping_records_that_do_not_decode_do_not_stop_the_services() {
    let m = machine();
    let mut batch = ignifuge_kv::WriteBatch::new();
    for key in [keys::intent(&BlobId::new("0a")), keys::lease("gc"), keys::REPAIR_REPORT.to_vec()] {
        batch.put(key, b"{not json".to_vec());
    }
    m.kv().write(batch, ignifuge_kv::Durability::Synced).unwrap();
    let swept = m.apply(Command::ReclaimOrphans { blobs: blobs(&["0a", "0b"]), now_ms: 10_000, grace_ms: 1_000 });
    assert_eq!(
        swept,
        Ok(Outcome::Reclaimable(blobs(&["0b"]))),
        "the unreadable intent's blob spared, the other fenced"
    );
    let take = |holder: &str| m.apply(Command::take_lease("gc", holder, 10_000, 60_000));
    assert_eq!(take("w1"), Ok(Outcome::Lease { epoch: 10_000 }), "an unreadable lease is nobody's");
    assert_eq!(take("w2"), Err(MetaError::LeaseHeld { holder: "w1".into() }), "and then w1's");
    assert!(matches!(m.query(Query::RepairReport), Ok(Answer::RepairReport(None))));
}

#[test]
fn the_orphan_fence_spares_known_blobs_and_writes_in_progress_and_refuses_late_commits() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let reclaim = |names: &[&str], now_ms: i64| match m
        .apply(Command::ReclaimOrphans { blobs: blobs(names), now_ms, grace_ms: 1_000 })
        .unwrap()
    {
        Outcome::Reclaimable(fenced) => fenced.into_iter().map(|b| b.0).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    // "k-e" is committed (known); "0a" has an intent renewed recently; "0b" a stale one; "0c" none.
    put(&m, "b1", "k", "e", WriteCondition::default()).unwrap();
    m.apply(Command::RenewIntents { blobs: blobs(&["0a"]), now_ms: 9_500 }).unwrap();
    m.apply(Command::RenewIntents { blobs: blobs(&["0b"]), now_ms: 8_000 }).unwrap();
    assert_eq!(reclaim(&["k-e", "0a", "0b", "0c"], 10_000), vec!["0b", "0c"]);
    assert_eq!(reclaim(&["0c"], 10_001), vec!["0c"], "fencing is idempotent");
    // A commit whose outcome its gateway did not know, applied after the fence: refused.
    let mut late = object("late", "e", 1);
    late.parts = vec![part(1, "e", 1, "0c")];
    let refused = put_record(&m, "b1", late);
    assert_eq!(refused, Err(MetaError::BlobReclaimed("0c".into())));
    // A renewal cannot revive a fenced blob, and a committed blob is never fenced, even once garbage.
    m.apply(Command::RenewIntents { blobs: blobs(&["0c"]), now_ms: 20_000 }).unwrap();
    assert_eq!(reclaim(&["0c"], 20_001), vec!["0c"]);
    let mut other = object("k", "e3", 1);
    other.parts = vec![part(1, "e3", 1, "0d")];
    put_record(&m, "b1", other).unwrap();
    assert!(m.kv().get(b"g/k-e").unwrap().is_some(), "the replaced blob is garbage");
    assert!(reclaim(&["k-e", "0d"], 30_000).is_empty(), "garbage is the collector's, not the sweep's");
    m.apply(Command::ForgetGarbage { blobs: blobs(&["k-e"]) }).unwrap();
    assert_eq!(reclaim(&["k-e"], 30_001), vec!["k-e"], "shards left after collection are orphans");
}

/// A blob's first reference must come within the commit window of its first byte, so the orphan
/// sweep's tombstones can expire: a fenced blob's tombstone is kept `RECLAIMED_KEPT_MS` of leader
/// time, then forgotten (with its age key), and a late commit naming the blob is still refused,
/// by the window. A blob born within the window commits.
#[test]
fn tombstones_expire_after_the_commit_window_and_late_commits_stay_refused() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let at = |id: &str, ms: i64, command: Command| {
        m.apply_proposal_logged_next(
            Proposal { id: ProposalId::new(id), issued_ms: ms, aged_by_entries: true, command },
            Default::default(),
        )
        .unwrap()
    };
    let born = |record: &mut ObjectRecord, ms: i64| {
        if let DataLocation::Striped(blob) = &mut record.parts[0].location {
            blob.born_ms = ms;
        }
    };
    let t0: i64 = 1_000_000_000;
    // Within the window: committed.
    let mut fresh = object("fresh", "e", 1);
    born(&mut fresh, t0 - BLOB_COMMIT_WINDOW_MS + 1);
    at(
        "p1",
        t0,
        Command::PutObject { bucket: bref(&m, "b1"), record: fresh, condition: Default::default(), leader_ms: None },
    )
    .unwrap();
    // Past it: refused, whatever the tombstones say.
    let mut stale = object("stale", "e", 1);
    born(&mut stale, t0 - BLOB_COMMIT_WINDOW_MS - 1);
    let refused = at(
        "p2",
        t0,
        Command::PutObject { bucket: bref(&m, "b1"), record: stale, condition: Default::default(), leader_ms: None },
    );
    assert_eq!(refused, Err(MetaError::BlobReclaimed(blob_of("stale", "e"))));
    // The sweep fences an orphan at t0: tombstone and age key, aged by the leader's stamp.
    let fenced = at("p3", t0, Command::ReclaimOrphans { blobs: blobs(&["orphan"]), now_ms: 5, grace_ms: 0 });
    assert_eq!(fenced, Ok(Outcome::Reclaimable(blobs(&["orphan"]))));
    assert!(m.kv().get(&keys::reclaimed_blob(&BlobId::new("orphan"))).unwrap().is_some());
    let mut late = object("late", "e", 1);
    late.parts = vec![part(1, "e", 1, "orphan")];
    born(&mut late, t0 - 10);
    let command = |record: &ObjectRecord| Command::PutObject {
        bucket: bref(&m, "b1"),
        record: record.clone(),
        condition: Default::default(),
        leader_ms: None,
    };
    assert_eq!(at("p4", t0 + 1, command(&late)), Err(MetaError::BlobReclaimed("orphan".into())), "the tombstone");
    // Kept until the horizon...
    at("p5", t0 + RECLAIMED_KEPT_MS - 1, Command::Abandon { proposal: ProposalId::new("none") }).unwrap_err();
    assert!(m.kv().get(&keys::reclaimed_blob(&BlobId::new("orphan"))).unwrap().is_some(), "kept until the horizon");
    // ...and forgotten past it, age key included.
    at("p6", t0 + RECLAIMED_KEPT_MS + 1, Command::Abandon { proposal: ProposalId::new("none") }).unwrap_err();
    assert!(m.kv().get(&keys::reclaimed_blob(&BlobId::new("orphan"))).unwrap().is_none(), "forgotten");
    assert!(m.kv().scan(keys::RECLAIMED_AGE_PREFIX, Some(b"y0".as_slice()), 10).unwrap().is_empty(), "no age key left");
    // The blob was born before the fence, so a commit naming it now is past its window.
    assert_eq!(
        at("p7", t0 + RECLAIMED_KEPT_MS + 2, command(&late)),
        Err(MetaError::BlobReclaimed("orphan".into())),
        "the window"
    );
    // In-process application (no leader stamp) checks no window and ages no tombstone.
    assert!(m.apply(Command::ReclaimOrphans { blobs: blobs(&["local"]), now_ms: 7, grace_ms: 0 }).is_ok());
    assert!(m.kv().scan(keys::RECLAIMED_AGE_PREFIX, Some(b"y0".as_slice()), 10).unwrap().is_empty());
}

#[test]
fn a_completion_of_more_than_ten_thousand_parts_is_refused() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let upload = upload_record(UploadId::new("u"), BucketName::new("b1"), "k");
    m.apply(Command::CreateUpload { bucket: bref(&m, "b1"), upload }).unwrap();
    let parts = (1..=10_001).map(|n| CompletedPart { part_number: n, etag: "e".into() }).collect();
    let complete = Command::CompleteUpload {
        bucket: bref(&m, "b1"),
        upload_id: UploadId::new("u"),
        parts,
        record: object("k", "e", 0),
        condition: Default::default(),
        leader_ms: None,
    };
    assert!(matches!(m.apply(complete), Err(MetaError::InvalidPart(why)) if why.contains("10000")));
}

/// An access key revoked is gone for every query; revoking it again, or a key never made, is
/// NoSuchAccessKey and changes nothing.
#[test]
fn an_access_key_can_be_revoked() {
    let m = machine();
    let record = AccessKeyRecord {
        access_key_id: AccessKeyId::new("IGNKEY"),
        tenant: TenantId::new("a"),
        user: UserId::new("admin"),
        sealed_secret: "sealed".into(),
        created_ms: 1,
    };
    m.apply(Command::CreateAccessKey(record.clone())).unwrap();
    assert_eq!(m.query(Query::AccessKey(AccessKeyId::new("IGNKEY"))).unwrap(), Answer::AccessKey(record));
    m.apply(Command::DeleteAccessKey(AccessKeyId::new("IGNKEY"))).unwrap();
    assert_eq!(m.query(Query::AccessKey(AccessKeyId::new("IGNKEY"))), Err(MetaError::NoSuchAccessKey));
    assert_eq!(m.apply(Command::DeleteAccessKey(AccessKeyId::new("IGNKEY"))), Err(MetaError::NoSuchAccessKey));
}

/// A listing names the life of the bucket its reader was authorized against: a bucket deleted
/// and made again by another tenant since answers NoSuchBucket, never the new owner's keys.
#[test]
fn a_listing_names_the_bucket_incarnation_it_was_authorized_against() {
    let m = machine();
    bucket(&m, "a", "shared").unwrap();
    let before = bref(&m, "shared");
    m.apply(Command::DeleteBucket { bucket: before.clone() }).unwrap();
    bucket(&m, "b", "shared").unwrap();
    put_blob(&m, "shared", "the-other-tenants-key", "1");
    let upload = upload_record(new_upload_id(1), BucketName::new("shared"), "k");
    m.apply(Command::CreateUpload { bucket: bref(&m, "shared"), upload }).unwrap();
    let name = || BucketName::new("shared");
    for incarnation in [Some(before.incarnation.clone()), Some(bref(&m, "shared").incarnation), None] {
        let old = incarnation.as_ref() == Some(&before.incarnation);
        let queries = [
            Query::ListObjects {
                bucket: name(),
                incarnation: incarnation.clone(),
                request: ListRequest { max_keys: 10, ..Default::default() },
            },
            Query::ListVersions {
                bucket: name(),
                incarnation: incarnation.clone(),
                request: VersionListRequest { max_keys: 10, ..Default::default() },
            },
            Query::ListUploads {
                bucket: name(),
                incarnation: incarnation.clone(),
                request: UploadListRequest { max_uploads: 10, ..Default::default() },
            },
        ];
        for query in queries {
            match m.query(query.clone()) {
                Err(MetaError::NoSuchBucket) if old => {}
                Ok(Answer::Objects(page)) if !old => assert_eq!(page.objects.len(), 1),
                Ok(Answer::Versions(page)) if !old => assert_eq!(page.versions.len(), 1),
                Ok(Answer::Uploads(page)) if !old => assert_eq!(page.uploads.len(), 1),
                other => panic!("{query:?}: {other:?}"),
            }
        }
    }
}

/// A version listing whose page ended on a key's "null" version, deleted for good before the
/// next page: the next page lists the key's versions again from its newest (the null version's
/// place is gone with it) rather than none of those after it, as it did.
#[test]
fn a_version_listing_resumes_after_a_null_version_deleted_between_pages() {
    let m = machine();
    bucket(&m, "a", "bv").unwrap();
    let page_after = |key_marker: &str, max_keys: usize| {
        let request = VersionListRequest {
            key_marker: Some(key_marker.to_string()),
            version_id_marker: Some(VersionId::new(NULL_VERSION)),
            max_keys,
            ..Default::default()
        };
        let page = list_versions_page(&m, "bv", request);
        page.versions.iter().map(|v| (v.object.key.0.clone(), v.version.0.clone(), v.is_latest)).collect::<Vec<_>>()
    };
    // "k": v1, then the null version, then v3 (newest first: v3, null, v1).
    set_versioning(&m, "bv", VersioningStatus::Enabled);
    let v1 = put_blob(&m, "bv", "k", "1");
    set_versioning(&m, "bv", VersioningStatus::Suspended);
    put_blob(&m, "bv", "k", "2");
    set_versioning(&m, "bv", VersioningStatus::Enabled);
    let v3 = put_blob(&m, "bv", "k", "3");
    let first = list_versions_page(&m, "bv", VersionListRequest { max_keys: 2, ..Default::default() });
    assert_eq!(first.next_version_id_marker, Some(VersionId::new(NULL_VERSION)));
    delete(&m, "bv", "k", Some(&VersionId::new(NULL_VERSION)));
    let want = vec![("k".to_string(), v3.0.clone(), true), ("k".to_string(), v1.0.clone(), false)];
    assert_eq!(page_after("k", 10), want, "v1 is listed (v3 again)");

    // "n": v1, then the null version, current when the page ends on it; deleting it makes v1
    // current again, and the next page lists it as such.
    set_versioning(&m, "bv", VersioningStatus::Enabled);
    let n1 = put_blob(&m, "bv", "n", "4");
    set_versioning(&m, "bv", VersioningStatus::Suspended);
    put_blob(&m, "bv", "n", "5");
    let request = VersionListRequest { key_marker: Some("k".into()), max_keys: 1, ..Default::default() };
    let first = list_versions_page(&m, "bv", request);
    assert_eq!((first.versions[0].version.0.as_str(), first.versions[0].is_latest), (NULL_VERSION, true));
    delete(&m, "bv", "n", Some(&VersionId::new(NULL_VERSION)));
    assert_eq!(page_after("n", 10), vec![("n".to_string(), n1.0, true)], "v1, current again");
}

/// A key range full of delete markers is listed in bounded pages: each page reads at most the
/// bound of markers, ends truncated (possibly with no key), and the pages together list exactly
/// the live keys.
#[test]
fn a_listing_over_many_delete_markers_does_bounded_work_per_page() {
    let m = machine();
    bucket(&m, "a", "bm").unwrap();
    set_versioning(&m, "bm", VersioningStatus::Enabled);
    for i in 0..12 {
        let key = format!("gone/{i:02}");
        put(&m, "bm", &key, "e", WriteCondition::default()).unwrap();
        delete(&m, "bm", &key, None);
    }
    for key in ["gone/05x", "live/a"] {
        put(&m, "bm", key, "e", WriteCondition::default()).unwrap();
    }
    // Every page of a listing at 5 markers per page: the keys and common prefixes listed, and
    // how many pages it took. Every page moves on.
    let pages = |bucket: &str, delimiter: Option<&str>| {
        let (mut listed, mut start_after, mut pages) = (Vec::new(), None, 0);
        loop {
            let request = ListRequest {
                prefix: String::new(),
                delimiter: delimiter.map(str::to_string),
                start_after: start_after.clone(),
                max_keys: 1000,
            };
            let page =
                crate::list::list_bounded(&m, &crate::keys::objects_prefix(&BucketName::new(bucket)), &request, 5)
                    .unwrap();
            pages += 1;
            listed.extend(page.objects.iter().map(|o| o.key.0.clone()));
            listed.extend(page.common_prefixes.iter().cloned());
            if !page.is_truncated {
                return (listed, pages);
            }
            assert!(page.next_start_after > start_after, "every page moves on");
            start_after = page.next_start_after;
            assert!(pages < 20, "the listing never ended");
        }
    };
    let (listed, pages_taken) = pages("bm", None);
    assert_eq!(listed, ["gone/05x", "live/a"]);
    assert!(pages_taken >= 3, "12 markers at 5 per page take at least 3 pages, not {pages_taken}");
    // With a delimiter: a page that ends on a marker inside `gone/` has not returned `gone/`,
    // which the live key after the markers makes appear on a later page.
    let (listed, pages_taken) = pages("bm", Some("/"));
    assert_eq!(listed, ["gone/", "live/"], "every common prefix once, in {pages_taken} pages");
    // A page does not end on a marker whose key is itself a common prefix (a deleted folder
    // object `f/`, the fifth marker here): the next page would take `f/` as returned.
    bucket(&m, "a", "bf").unwrap();
    set_versioning(&m, "bf", VersioningStatus::Enabled);
    for key in ["a0", "a1", "a2", "a3", "f/"] {
        put(&m, "bf", key, "e", WriteCondition::default()).unwrap();
        delete(&m, "bf", key, None);
    }
    put(&m, "bf", "f/x", "e", WriteCondition::default()).unwrap();
    // And a run of deleted folder objects alone, each a prefix of nothing: pages still end after
    // a bounded number of markers (at most the bound, here 5), and hide no prefix.
    for key in ["g/", "h/", "i/", "j/", "k/", "l/", "m/", "n/", "o/", "p/", "q/", "r/"] {
        put(&m, "bf", key, "e", WriteCondition::default()).unwrap();
        delete(&m, "bf", key, None);
    }
    put(&m, "bf", "s/x", "e", WriteCondition::default()).unwrap();
    let (listed, pages_taken) = pages("bf", Some("/"));
    assert_eq!(listed, ["f/", "s/"]);
    assert!(pages_taken >= 4, "17 markers at 5 per page take at least 4 pages, not {pages_taken}");
}

/// Intents of writes that died before placing any shard are forgotten a day after their last
/// renewal, a few per applied proposal; a recent intent is kept.
#[test]
fn abandoned_intents_are_forgotten_a_day_after_their_last_renewal() {
    let m = machine();
    let old: Vec<String> = (0..6).map(|i| format!("a{i}")).collect();
    let old_refs: Vec<&str> = old.iter().map(String::as_str).collect();
    m.apply(Command::RenewIntents { blobs: blobs(&old_refs), now_ms: 1_000 }).unwrap();
    let fresh_ms = INTENT_FORGOTTEN_AFTER_MS + 10_000;
    m.apply(Command::RenewIntents { blobs: blobs(&["b1"]), now_ms: fresh_ms }).unwrap();
    for i in 0..4 {
        let tick = Proposal {
            id: ProposalId::new(format!("tick{i}")),
            issued_ms: fresh_ms + 1_000,
            aged_by_entries: true,
            command: Command::Abandon { proposal: ProposalId::new("nothing") },
        };
        m.apply_proposal_logged_next(tick, Default::default()).unwrap().unwrap_err();
    }
    for blob in &old {
        assert!(m.kv().get(format!("i/{blob}").as_bytes()).unwrap().is_none(), "intent {blob} kept");
    }
    assert!(m.kv().get(b"i/b1").unwrap().is_some(), "a recent intent was forgotten");
}

/// Once the intent sweep has examined the last intent it rests for `INTENT_SWEEP_REST_MS` of the
/// state machine's clock (starting over at every proposal stepped over every removed intent's
/// tombstone each time), then starts again from the first.
#[test]
fn the_intent_sweep_rests_after_the_last_intent_then_starts_over() {
    let m = machine();
    let base = INTENT_FORGOTTEN_AFTER_MS + 10_000_000;
    let mut n = 0;
    let mut tick = |at: i64| {
        n += 1;
        let proposal = Proposal {
            id: ProposalId::new(format!("tick{n}")),
            issued_ms: at,
            aged_by_entries: true,
            command: Command::Abandon { proposal: ProposalId::new("nothing") },
        };
        m.apply_proposal_logged_next(proposal, Default::default()).unwrap().unwrap_err();
    };
    tick(base);
    assert!(m.kv().get(keys::INTENT_SWEEP_RESTED).unwrap().is_some(), "no intents: the sweep reached the end");
    m.apply(Command::RenewIntents { blobs: blobs(&["s1"]), now_ms: 1 }).unwrap();
    // An intent that does not decode is stepped over and kept, not a storage error that would
    // stop every replica at the same entry.
    let mut batch = ignifuge_kv::WriteBatch::new();
    batch.put(keys::intent(&BlobId::new("s0")), b"{not a time".to_vec());
    m.kv().write(batch, ignifuge_kv::Durability::Synced).unwrap();
    // The clock moves at most CLOCK_STEP_MAX_MS per entry.
    let steps = INTENT_SWEEP_REST_MS / CLOCK_STEP_MAX_MS;
    for i in 1..steps {
        tick(base + i * CLOCK_STEP_MAX_MS);
    }
    assert!(m.kv().get(b"i/s1").unwrap().is_some(), "forgotten while the sweep rests");
    tick(base + (steps + 1) * CLOCK_STEP_MAX_MS);
    tick(base + (steps + 2) * CLOCK_STEP_MAX_MS);
    assert!(m.kv().get(b"i/s1").unwrap().is_none(), "a stale intent kept after the rest");
    assert!(m.kv().get(b"i/s0").unwrap().is_some(), "one that cannot be read is kept");
}

/// A part of `stripes` full stripes at 5+4 x 1 MiB, each shard on its own node, as the data path
/// writes it.
fn realistic_part(n: u32, stripes: u32) -> PartData {
    let shard =
        |i: u32| ShardRecord { node: NodeId::new(format!("dc{}-n{}", i % 3 + 1, i / 3 + 1)), blake3: "ab".repeat(32) };
    let stripe_bytes = 5u64 << 20;
    PartData {
        part_number: n,
        size: u64::from(stripes) * stripe_bytes,
        etag: format!("{n:032x}"),
        checksums: Checksums { crc64nvme: Some("AAAAAAAAAAA=".into()), ..Default::default() },
        location: DataLocation::Striped(StripedBlob::whole(
            BlobId::new(format!("{n:032x}")),
            (5, 4),
            1 << 20,
            (0..stripes)
                .map(|_| StripeRecord { data_len: stripe_bytes, shards: (0..9).map(shard).collect(), debt: false })
                .collect(),
            0,
        )),
        last_modified_ms: 1,
        started_ms: 1_700_000_000_000,
        began: Some(StartTicket { applied_index: 123_456_789, leader_ms: 1_700_000_000_000 }),
    }
}

/// Point 7 of the promise: a 5 TiB object (10,000 parts of 525 MiB: a million stripes, about
/// 1 GB of stripe records) completes, and its record, every answer about it and every
/// maintenance page stay bounded; it can be read stripe by stripe, repaired and deleted.
#[test]
fn a_five_tebibyte_object_keeps_every_record_answer_and_page_bounded() {
    const PARTS: u32 = 10_000;
    const STRIPES_PER_PART: u32 = 105; // 5 TiB / 10,000 parts = 524.3 MiB, at 5 MiB per stripe
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let id = UploadId::new("huge");
    let upload = upload_record(id.clone(), BucketName::new("b1"), "huge");
    m.apply(Command::CreateUpload { bucket: bref(&m, "b1"), upload }).unwrap();
    for n in 1..=PARTS {
        let part = realistic_part(n, STRIPES_PER_PART);
        m.apply(Command::PutUploadPart { bucket: bref(&m, "b1"), upload_id: id.clone(), part, leader_ms: None })
            .unwrap();
    }
    let parts = (1..=PARTS).map(|n| CompletedPart { part_number: n, etag: format!("{n:032x}") }).collect();
    let complete = Command::CompleteUpload {
        bucket: bref(&m, "b1"),
        upload_id: id.clone(),
        parts,
        record: object("huge", "final", 0),
        condition: WriteCondition::default(),
        leader_ms: None,
    };
    let Outcome::Object(done) = m.apply(complete).unwrap() else { panic!() };
    assert_eq!(done.size, u64::from(PARTS) * u64::from(STRIPES_PER_PART) * (5 << 20));
    // The durability report reads its million stripes a window at a time.
    let Answer::Durability(report) = m.query(Query::DurabilityReport).unwrap() else { panic!() };
    assert_eq!((report[0].full_budget_objects, report[0].debt_objects), (1, 0));
    assert!(done.size >= 5 * (1u64 << 40));

    let mib = 1024 * 1024;
    let record = m.kv().get(&keys::object(&BucketName::new("b1"), &ObjectKey::new("huge"))).unwrap().unwrap();
    assert!(record.len() < 8 * mib, "the object's record is {} bytes", record.len());

    // A read gets the record with a bounded number of stripes; the rest come by blob.
    let query =
        |stripes| Query::Object { tenant: None, bucket: BucketName::new("b1"), key: ObjectKey::new("huge"), stripes };
    let answer = m.query(query(u32::MAX)).unwrap();
    let size = serde_json::to_vec(&answer).unwrap().len();
    assert!(size < 8 * mib, "the answer to a read is {size} bytes");
    let Answer::Object(read) = answer else { panic!() };
    assert_eq!(read.parts.len(), PARTS as usize);
    let loaded: usize = read
        .parts
        .iter()
        .map(|p| match &p.location {
            DataLocation::Striped(s) => s.stripes.len(),
            DataLocation::Inline(_) | DataLocation::Packed(_) => 0,
        })
        .sum();
    assert_eq!(loaded, ANSWER_STRIPES_MAX, "only the first stripes come with the record");
    let DataLocation::Striped(last) = &read.parts[PARTS as usize - 1].location else { panic!() };
    assert!(last.stripes.is_empty() && last.stripe_count == STRIPES_PER_PART);
    let Answer::Stripes(tail) = m.query(Query::Stripes { blob: last.blob.clone(), first: 100, limit: 10 }).unwrap()
    else {
        panic!()
    };
    assert_eq!(tail.len(), 5, "stripes 100..105 of the last part");

    // The object lists, in a page that read its record once.
    let Answer::Objects(listed) = m
        .query(Query::ListObjects {
            bucket: BucketName::new("b1"),
            incarnation: None,
            request: ListRequest { max_keys: 1000, ..Default::default() },
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(listed.objects.len(), 1);
    assert_eq!(listed.objects[0].size, done.size);

    // The repair scan visits every blob once, over pages that each fit well inside an answer.
    let mut cursor = BlobCursor::default();
    let mut seen = BTreeSet::new();
    let mut pages = 0;
    loop {
        let answer = m.query(Query::Blobs { cursor: cursor.clone(), limit: BLOB_SCAN_PAGE_MAX }).unwrap();
        let size = serde_json::to_vec(&answer).unwrap().len();
        assert!(size < SCAN_PAGE_BYTES_MAX + 2 * mib, "a blob page of {size} bytes");
        let Answer::Blobs(page) = answer else { panic!() };
        for blob in page.blobs {
            assert!(blob.striped.as_ref().is_some_and(StripedBlob::is_complete), "a scanned blob has all its stripes");
            assert!(seen.insert(blob.blob.0), "a blob visited twice");
        }
        pages += 1;
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(seen.len(), PARTS as usize);
    assert!(pages > 10, "{pages} pages");

    // A repair of one stripe of the last part rewrites that stripe's key, not the 5 TiB record.
    let DataLocation::Striped(blob) = realistic_part(PARTS, STRIPES_PER_PART).location else { panic!() };
    let expected = blob.stripes[77].shards.clone();
    let mut replacement = expected.clone();
    replacement[4] = ShardRecord { node: NodeId::new("dc2-n4"), blake3: "ab".repeat(32) };
    let owner = BlobOwner::Object { bucket: BucketName::new("b1"), key: ObjectKey::new("huge"), part_number: PARTS };
    let repair = |replacement: Vec<ShardRecord>| {
        Command::ReplaceShards(ShardReplacement {
            owner: owner.clone(),
            blob: blob.blob.clone(),
            stripe: 77,
            expected: expected.clone(),
            replacement,
            debt: false,
            lease: None,
        })
    };
    m.apply(repair(replacement.clone())).unwrap();
    let mut other = expected.clone();
    other[4] = ShardRecord { node: NodeId::new("dc3-n4"), blake3: "ab".repeat(32) };
    assert!(matches!(m.apply(repair(other)), Err(MetaError::Superseded(_))), "a stale repair is refused");
    let Answer::Stripes(repaired) = m.query(Query::Stripes { blob: blob.blob.clone(), first: 77, limit: 1 }).unwrap()
    else {
        panic!()
    };
    assert_eq!(repaired[0].shards, replacement);
    let after = m.kv().get(&keys::object(&BucketName::new("b1"), &ObjectKey::new("huge"))).unwrap().unwrap();
    assert_eq!(after, record, "the record is unchanged by a repair");

    // Deleted: every blob is garbage, garbage pages are bounded, and collecting it forgets the
    // stripes too.
    let delete = Command::DeleteObject {
        bucket: bref(&m, "b1"),
        key: ObjectKey::new("huge"),
        condition: WriteCondition::default(),
        now_ms: 10,
        version: None,
        marker_nonce: None,
    };
    m.apply(delete).unwrap();
    let mut collected = 0;
    loop {
        let answer = m.query(Query::Garbage { older_than_ms: i64::MAX, limit: 256, after: None }).unwrap();
        let size = serde_json::to_vec(&answer).unwrap().len();
        assert!(size < SCAN_PAGE_BYTES_MAX + 2 * mib, "a garbage page of {size} bytes");
        let Answer::Garbage(GarbagePage { garbage, .. }) = answer else { panic!() };
        if garbage.is_empty() {
            break;
        }
        for (_, record) in &garbage {
            let DataLocation::Striped(s) = &record.location else { panic!() };
            assert!(s.is_complete(), "garbage comes with every stripe, for the collector");
        }
        collected += garbage.len();
        m.apply(Command::ForgetGarbage { blobs: garbage.into_iter().map(|(b, _)| b).collect() }).unwrap();
    }
    assert_eq!(collected, PARTS as usize);
    assert!(m.kv().scan(b"s/", Some(b"s0"), 1).unwrap().is_empty(), "no stripe record is left");
    assert!(m.kv().scan(b"b/", Some(b"b0"), 1).unwrap().is_empty(), "no blob is known any more");
}

/// A gap in a held blob's stripe keys is corruption, never a short stripe list: repair would take
/// the missing stripes' shards for strays and the collector would skip them. A blob collected
/// since its record was read is skipped instead.
#[test]
fn a_missing_stripe_record_is_corruption_and_a_collected_blob_is_skipped() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let mut record = object("k", "e", 3 * (5 << 20));
    record.parts = vec![realistic_part(1, 3)];
    put_record(&m, "b1", record).unwrap();
    let blob = BlobId::new(format!("{:032x}", 1));
    let mut batch = ignifuge_kv::WriteBatch::new();
    batch.delete(keys::stripe(&blob, 1));
    m.kv().write(batch, ignifuge_kv::Durability::Synced).unwrap();
    let read =
        m.query(Query::Object { tenant: None, bucket: BucketName::new("b1"), key: ObjectKey::new("k"), stripes: 10 });
    assert!(matches!(read, Err(MetaError::Corrupt(_))), "{read:?}");
    // A scan reports it and leaves the blob out (never a short stripe list), but goes on: one
    // bad record does not stop repair for every blob after it.
    let mut later = object("m", "e", 5 << 20);
    later.parts = vec![realistic_part(2, 1)];
    put_record(&m, "b1", later).unwrap();
    let Answer::Blobs(page) = m.query(Query::Blobs { cursor: BlobCursor::default(), limit: 10 }).unwrap() else {
        panic!()
    };
    assert_eq!(page.blobs.iter().map(|b| b.blob.0.as_str()).collect::<Vec<_>>(), [format!("{:032x}", 2)]);
    assert_eq!(page.unreadable.len(), 1, "{page:?}");
    assert_eq!((page.unreadable[0].key.as_str(), page.unreadable[0].blob.as_ref()), ("o/b1/k", Some(&blob)));
    let mut batch = ignifuge_kv::WriteBatch::new();
    batch.delete(keys::object(&BucketName::new("b1"), &ObjectKey::new("m")));
    m.kv().write(batch, ignifuge_kv::Durability::Synced).unwrap();
    // Collected (its known mark gone with its stripes, in one batch as `ForgetGarbage` does)
    // while its record was being read: skipped by the scan, not an error.
    let mut batch = ignifuge_kv::WriteBatch::new();
    batch.delete(keys::known_blob(&blob));
    batch.delete(keys::stripe(&blob, 0));
    batch.delete(keys::stripe(&blob, 2));
    m.kv().write(batch, ignifuge_kv::Durability::Synced).unwrap();
    let Answer::Blobs(page) = m.query(Query::Blobs { cursor: BlobCursor::default(), limit: 10 }).unwrap() else {
        panic!()
    };
    assert!(page.blobs.is_empty() && page.unreadable.is_empty(), "collected, not unreadable: {page:?}");
}

#[test]
fn a_website_domain_belongs_to_one_tenant_while_its_bucket_lives() {
    let m = machine();
    bucket(&m, "a", "site-a").unwrap();
    bucket(&m, "b", "site-b").unwrap();
    let domain = || WebDomain::new("www.example.test");
    let set = |tenant: &str, bucket: Option<BucketRef>| {
        m.apply(Command::SetDomain { domain: domain(), tenant: TenantId::new(tenant), bucket })
    };
    let served = || match m.query(Query::Domain(domain())).unwrap() {
        Answer::Domain(record) => record.map(|r| r.bucket.name.0),
        other => panic!("{other:?}"),
    };
    // A tenant attaches only to its own bucket.
    assert_eq!(set("a", Some(bref(&m, "site-b"))), Err(MetaError::AccessDenied));
    set("a", Some(bref(&m, "site-a"))).unwrap();
    assert_eq!(served(), Some("site-a".into()));
    // Another tenant can neither take nor detach it while the bucket lives.
    assert_eq!(set("b", Some(bref(&m, "site-b"))), Err(MetaError::DomainInUse));
    assert_eq!(set("b", None), Err(MetaError::DomainInUse));
    let listed = |tenant: &str| match m.query(Query::Domains(TenantId::new(tenant))).unwrap() {
        Answer::Domains(records) => records.len(),
        other => panic!("{other:?}"),
    };
    assert_eq!((listed("a"), listed("b")), (1, 0));
    // The bucket deleted: the record no longer serves, and another tenant may take the domain.
    m.apply(Command::DeleteBucket { bucket: bref(&m, "site-a") }).unwrap();
    assert_eq!(served(), None);
    set("b", Some(bref(&m, "site-b"))).unwrap();
    assert_eq!(served(), Some("site-b".into()));
    assert_eq!((listed("a"), listed("b")), (0, 1));
    set("b", None).unwrap();
    assert_eq!(served(), None);
    // A bucket named like the domain keeps the domain for its tenant (AWS's rule).
    bucket(&m, "a", "www.example.test").unwrap();
    assert_eq!(set("b", Some(bref(&m, "site-b"))), Err(MetaError::DomainInUse));
    set("a", Some(bref(&m, "www.example.test"))).unwrap();
}

/// Inline bodies are stored raw after the record's JSON (`stored`), through every path that
/// writes a record: a PUT, a version retired by the next PUT, a tag update, a listing (which
/// parses the JSON alone) and a read of either version; a retried PUT gets its first outcome.
#[test]
fn inline_bodies_are_stored_once_raw_and_read_back_by_every_path() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    set_versioning(&m, "b1", VersioningStatus::Enabled);
    let body = |seed: u8| -> Vec<u8> { (0..4096u32).map(|i| (i as u8).wrapping_mul(seed) ^ 0x5a).collect() };
    let inline_object = |etag: &str, data: Vec<u8>| {
        let mut record = object("small", etag, data.len() as u64);
        record.parts[0].location = DataLocation::Inline(data);
        record
    };
    let put = |id: &str, record: ObjectRecord| {
        let proposal = Proposal {
            id: ProposalId::new(id),
            issued_ms: 1_000,
            aged_by_entries: true,
            command: Command::PutObject {
                bucket: bref(&m, "b1"),
                record,
                condition: WriteCondition::default(),
                leader_ms: None,
            },
        };
        m.apply_proposal_logged_next(proposal, Default::default()).unwrap().unwrap()
    };
    let first = put("p1", inline_object("e1", body(3)));
    let stored = m.kv().get(&keys::object(&BucketName::new("b1"), &ObjectKey::new("small"))).unwrap().unwrap();
    assert!(stored.len() < 4096 + 1024, "a 4 KiB object's record is {} bytes", stored.len());
    assert!(stored.windows(4096).any(|w| w == body(3)), "the body is stored raw");
    let retry = put("p1", inline_object("e1", body(3)));
    assert_eq!(retry, first);
    let Outcome::Object(first) = first else { panic!() };

    let second = put("p2", inline_object("e2", body(5)));
    let Outcome::Object(second) = second else { panic!() };
    m.apply(Command::SetObjectTags {
        bucket: bref(&m, "b1"),
        key: ObjectKey::new("small"),
        tags: vec![("t".into(), "1".into())],
        version: Some(first.version.clone()),
    })
    .unwrap();
    let read_body = |v: &VersionId| match version(&m, "b1", "small", Some(v)).unwrap().parts[0].location.clone() {
        DataLocation::Inline(data) => data,
        other => panic!("{other:?}"),
    };
    assert_eq!(read_body(&first.version), body(3), "the retired and re-tagged version");
    assert_eq!(read_body(&second.version), body(5), "the current version");
    assert_eq!(listed_keys(&m, "b1"), ["small"]);
    assert_eq!(versions(&m, "b1", "small").len(), 2);
}

/// Listings count only the records' JSON against their byte bounds, and the store scan counts
/// the same: 300 inline 4 KiB objects (1.2 MB of bodies, over one scan's 1 MiB) and 140 of 64 KiB
/// (over a page's 8 MiB) list whole, in one page (records as long without bodies do not), objects and versions alike, on both engines (RocksDB's `scan_visit` is its own),
/// and every body reads back.
#[test]
fn a_listing_of_inline_objects_returns_every_key_past_a_scan_s_byte_bound() {
    let dir = tempfile::tempdir().unwrap();
    let rocks = Arc::new(ignifuge_kv::RocksKv::open(dir.path()).unwrap());
    for kv in [Arc::new(MemoryKv::default()) as Arc<dyn ignifuge_kv::KvStore>, rocks] {
        list_inline_objects_on(machine_on(kv));
    }
}

/// PutObject of an object whose `body` is inline in its record.
fn put_inline(m: &StateMachine, b: &str, key: &str, etag: &str, body: Vec<u8>) {
    let mut record = object(key, etag, body.len() as u64);
    record.parts[0].location = DataLocation::Inline(body);
    put_record(m, b, record).unwrap();
}

fn list_inline_objects_on(m: StateMachine) {
    bucket(&m, "a", "b1").unwrap();
    set_versioning(&m, "b1", VersioningStatus::Enabled);
    let keys: Vec<String> = (0..300).map(|i| format!("k{i:03}")).collect();
    for key in &keys {
        put_inline(&m, "b1", key, "e", vec![b'x'; 4096]);
    }
    assert_eq!(listed_keys(&m, "b1"), keys);
    // Inline bodies of 64 KiB (the inline limit may be set so high): 9 MiB of bodies, over a
    // page's 8 MiB bound, still one page (`list::counted_len`).
    bucket(&m, "a", "b2").unwrap();
    let big: Vec<String> = (0..140).map(|i| format!("big{i:03}")).collect();
    for key in &big {
        put_inline(&m, "b2", key, "e", vec![b'z'; 65_536]);
    }
    assert_eq!(listed_keys(&m, "b2"), big);
    // Records without bodies whose JSON is as long as their object (a long header): counted
    // whole, so 10 MB of them end a page truncated.
    bucket(&m, "a", "b3").unwrap();
    let long: Vec<String> = (0..100).map(|i| format!("long{i:03}")).collect();
    for key in &long {
        let mut record = object(key, "e", 100_000);
        record.headers.content_disposition = Some("d".repeat(100_000));
        put_record(&m, "b3", record).unwrap();
    }
    let request = ListRequest { max_keys: 1000, ..Default::default() };
    let Answer::Objects(page) =
        m.query(Query::ListObjects { bucket: BucketName::new("b3"), incarnation: None, request }).unwrap()
    else {
        panic!()
    };
    assert!(page.is_truncated && page.objects.len() < long.len(), "{} keys", page.objects.len());
    assert_eq!(page.objects.iter().map(|o| o.key.0.clone()).collect::<Vec<_>>(), long[..page.objects.len()]);
    let request = VersionListRequest { max_keys: 1000, ..Default::default() };
    let page = list_versions_page(&m, "b1", request);
    assert!(!page.is_truncated);
    assert_eq!(page.versions.iter().map(|v| v.object.key.0.clone()).collect::<Vec<_>>(), keys);
    for summary in &page.versions {
        let record = version(&m, "b1", &summary.object.key.0, Some(&summary.version)).unwrap();
        assert_eq!(record.parts[0].location, DataLocation::Inline(vec![b'x'; 4096]), "{}", summary.object.key);
    }
    // One key with 300 versions: its chain of non-current ones (`v/`) passes a scan's bound too.
    for i in 0..299 {
        put_inline(&m, "b1", "k000", &format!("e{i}"), vec![b'y'; 4096]);
    }
    assert_eq!(versions(&m, "b1", "k000").len(), 300);
}

/// Object listings read a record with an ETag no further than its date, before the
/// `delete_marker` flag: only the state machine makes delete markers, with no ETag, and one sent
/// as an object version is refused rather than listed.
#[test]
fn a_delete_marker_sent_as_an_object_version_is_refused() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let mut record = object("k", "e", 10);
    record.delete_marker = true;
    assert!(matches!(put_record(&m, "b1", record), Err(MetaError::InvalidCommand(_))));
    assert!(listed_keys(&m, "b1").is_empty());
    assert!(m.kv().get(&keys::object(&BucketName::new("b1"), &ObjectKey::new("k"))).unwrap().is_none());
}

/// A pack `blob` of one stripe of `data_len` bytes on three nodes.
fn pack_blob(blob: &str, data_len: u64) -> StripedBlob {
    let shards = ["n1", "n2", "n3"].iter().map(|n| ShardRecord { node: NodeId::new(*n), blake3: format!("h-{n}") });
    StripedBlob::whole(
        BlobId::new(blob),
        (2, 1),
        1 << 20,
        vec![StripeRecord { data_len, shards: shards.collect(), debt: false }],
        0,
    )
}

/// `PutPacked` of `keys` (10 bytes each, side by side) into pack `blob` of bucket `b`, each with
/// its condition.
fn packed(m: &StateMachine, b: &str, blob: &str, keys: &[(&str, WriteCondition)]) -> Command {
    let pack = pack_blob(blob, 10 * keys.len() as u64);
    let header = StripedBlob { stripes: Vec::new(), ..pack.clone() };
    let objects = keys
        .iter()
        .enumerate()
        .map(|(slot, (key, condition))| {
            let mut record = object(key, &format!("e-{blob}-{slot}"), 10);
            let slice = PackedSlice { pack: header.clone(), offset: 10 * slot as u64, slot: slot as u32 };
            record.parts[0].location = DataLocation::Packed(slice);
            PackedPut { bucket: bref(m, b), record, condition: condition.clone() }
        })
        .collect();
    Command::PutPacked { pack, objects, member_versions: true, leader_ms: None }
}

fn logged(m: &StateMachine, id: &str, command: Command) -> Result<Outcome, MetaError> {
    m.apply_proposal_logged_next(proposal(id, command), Default::default()).unwrap()
}

fn has(m: &StateMachine, key: &str) -> bool {
    m.kv().get(key.as_bytes()).unwrap().is_some()
}

#[test]
fn a_pack_installs_each_object_on_its_own_and_is_admitted_if_any_is() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    put(&m, "b1", "y", "old", WriteCondition::default()).unwrap();
    let absent = WriteCondition { if_none_match_any: true, if_match: None };
    let keys = [("x", WriteCondition::default()), ("y", absent.clone()), ("z", absent.clone())];
    let Outcome::Packed(outcomes) = logged(&m, "p1", packed(&m, "b1", "pk1", &keys)).unwrap() else { panic!() };
    assert_eq!(outcomes.len(), 3);
    assert!(outcomes[0].as_ref().unwrap().parts.is_empty(), "outcomes carry no parts");
    assert_eq!(outcomes[1], Err(MetaError::PreconditionFailed), "y exists: refused on its own");
    assert!(outcomes[2].is_ok());
    assert!(has(&m, "m/pk1/00000000") && !has(&m, "m/pk1/00000001") && has(&m, "m/pk1/00000002"));
    assert!(has(&m, "n/pk1") && has(&m, "b/pk1") && has(&m, "s/pk1/00000000"), "the pack is admitted");
    // Read back: the slice, with the pack's stripe.
    let Answer::Object(x) = m
        .query(Query::Object { bucket: BucketName::new("b1"), key: ObjectKey::new("x"), tenant: None, stripes: 8 })
        .unwrap()
    else {
        panic!()
    };
    let DataLocation::Packed(slice) = &x.parts[0].location else { panic!("{x:?}") };
    assert_eq!((slice.offset, slice.slot, slice.pack.stripes.len()), (0, 0, 1));
    assert_eq!(version(&m, "b1", "y", None).unwrap().etag, "old", "y kept");

    // Every object refused: the pack is not admitted; its writer gives it up.
    let Outcome::Packed(outcomes) = logged(&m, "p2", packed(&m, "b1", "pk2", &[("x", absent.clone())])).unwrap() else {
        panic!()
    };
    assert_eq!(outcomes, [Err(MetaError::PreconditionFailed)]);
    assert!(!has(&m, "b/pk2") && !has(&m, "n/pk2") && !has(&m, "s/pk2/00000000"));
    let fenced = m.apply(Command::ReclaimOrphans { blobs: blobs(&["pk2"]), now_ms: 10, grace_ms: 0 }).unwrap();
    assert_eq!(fenced, Outcome::Reclaimable(blobs(&["pk2"])), "an unadmitted pack can be fenced and deleted");
}

#[test]
fn a_malformed_pack_is_refused_whole_and_only_put_packed_names_a_pack() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let d = WriteCondition::default;
    let invalid = |command: Command| {
        matches!(logged(&m, &ignifuge_types::random_id(), command), Err(MetaError::InvalidCommand(_)))
    };
    assert!(invalid(packed(&m, "b1", "t1", &[("x", d()), ("x", d())])), "a key twice");
    let mut wrong_slot = packed(&m, "b1", "t2", &[("x", d()), ("y", d())]);
    let Command::PutPacked { objects, .. } = &mut wrong_slot else { panic!() };
    objects.swap(0, 1);
    assert!(invalid(wrong_slot), "slots out of order");
    let mut beyond = packed(&m, "b1", "t3", &[("x", d())]);
    let Command::PutPacked { pack, .. } = &mut beyond else { panic!() };
    pack.stripes[0].data_len = 9;
    assert!(invalid(beyond), "a slice past the pack's data");
    let mut other = packed(&m, "b1", "t4", &[("x", d())]);
    let Command::PutPacked { objects, .. } = &mut other else { panic!() };
    let DataLocation::Packed(slice) = &mut objects[0].record.parts[0].location else { panic!() };
    slice.pack.blob = BlobId::new("elsewhere");
    assert!(invalid(other), "a slice of another pack");
    assert!(
        invalid(Command::PutPacked {
            pack: pack_blob("t5", 0),
            objects: Vec::new(),
            member_versions: true,
            leader_ms: None
        }),
        "no object"
    );
    for blob in ["t1", "t2", "t3", "t4", "t5"] {
        assert!(!has(&m, &format!("b/{blob}")), "{blob} refused whole");
    }
    // A PutObject naming a slice of a pack would hold the pack without a slot of its own.
    logged(&m, "ok", packed(&m, "b1", "t6", &[("x", d())])).unwrap();
    let Answer::Object(x) = m
        .query(Query::Object { bucket: BucketName::new("b1"), key: ObjectKey::new("x"), tenant: None, stripes: 0 })
        .unwrap()
    else {
        panic!()
    };
    let mut copy = *x;
    copy.key = ObjectKey::new("copy");
    let refused = put_record(&m, "b1", copy);
    assert!(matches!(refused, Err(MetaError::InvalidPart(_))), "{refused:?}");
}

#[test]
fn a_pack_becomes_garbage_once_no_version_references_it() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    bucket(&m, "a", "v1").unwrap();
    set_versioning(&m, "v1", VersioningStatus::Enabled);
    let d = WriteCondition::default;
    logged(&m, "p", packed(&m, "b1", "pk", &[("w", d()), ("x", d()), ("y", d()), ("z", d())])).unwrap();
    // x replaced, then w: their slots are free, y and z still hold the pack.
    for (id, key) in [("x2", "x"), ("w2", "w")] {
        let record = object(key, id, 1);
        logged(&m, id, Command::PutObject { bucket: bref(&m, "b1"), record, condition: d(), leader_ms: None }).unwrap();
    }
    assert!(!has(&m, "m/pk/00000000") && !has(&m, "m/pk/00000001") && has(&m, "m/pk/00000002"));
    assert!(has(&m, "n/pk") && !is_garbage(&m, "pk"), "y and z still hold the pack");
    // y and z deleted in one command: the pack is garbage in that same entry.
    let deletions = ["y", "z"]
        .iter()
        .map(|k| ObjectDeletion { key: ObjectKey::new(*k), condition: d(), version: None, marker_nonce: None })
        .collect();
    let gone = logged(&m, "yz", Command::DeleteObjects { bucket: bref(&m, "b1"), deletions, now_ms: 5 }).unwrap();
    let Outcome::Deletions(done) = gone else { panic!() };
    assert!(done.iter().all(Result::is_ok));
    assert!(is_garbage(&m, "pk") && !has(&m, "n/pk"), "no slot left: garbage");
    // Two of three deleted in one command: the third holds the pack; deleted, it goes.
    m.apply(packed(&m, "b1", "pk3", &[("a", d()), ("b", d()), ("c", d())])).unwrap();
    let delete = |keys: &[&str]| Command::DeleteObjects {
        bucket: bref(&m, "b1"),
        deletions: keys
            .iter()
            .map(|k| ObjectDeletion { key: ObjectKey::new(*k), condition: d(), version: None, marker_nonce: None })
            .collect(),
        now_ms: 6,
    };
    // The first two slots: a check reading only as many members as were freed would see none left.
    m.apply(delete(&["b", "a"])).unwrap();
    assert!(!is_garbage(&m, "pk3") && has(&m, "n/pk3"), "c still holds it");
    m.apply(delete(&["c"])).unwrap();
    assert!(is_garbage(&m, "pk3") && !has(&m, "n/pk3"));
    let Answer::Garbage(GarbagePage { garbage, .. }) =
        m.query(Query::Garbage { older_than_ms: i64::MAX, limit: 10, after: None }).unwrap()
    else {
        panic!()
    };
    let (_, record) = garbage.iter().find(|(b, _)| b.0 == "pk").expect("listed for the collector");
    let DataLocation::Striped(striped) = &record.location else { panic!() };
    assert_eq!(striped.stripes.len(), 1, "with its stripe, so the collector finds its shards");
    m.apply(Command::ForgetGarbage { blobs: blobs(&["pk"]) }).unwrap();
    assert!(!has(&m, "b/pk") && !has(&m, "s/pk/00000000"));

    // Versioned: a replaced version keeps its slot until that version is deleted.
    logged(&m, "vp", packed(&m, "v1", "vpk", &[("a", d())])).unwrap();
    let first = version(&m, "v1", "a", None).unwrap().version;
    logged(
        &m,
        "a2",
        Command::PutObject { bucket: bref(&m, "v1"), record: object("a", "a2", 1), condition: d(), leader_ms: None },
    )
    .unwrap();
    assert!(has(&m, "m/vpk/00000000") && !is_garbage(&m, "vpk"), "the non-current version holds its slot");
    let Outcome::DeletedVersion { .. } = logged(
        &m,
        "del",
        Command::DeleteObject {
            bucket: bref(&m, "v1"),
            key: ObjectKey::new("a"),
            condition: d(),
            now_ms: 6,
            version: Some(first),
            marker_nonce: None,
        },
    )
    .unwrap() else {
        panic!()
    };
    assert!(is_garbage(&m, "vpk"), "its last version deleted: garbage");

    // Suspended: a write replaces the null version, whose slot it frees.
    bucket(&m, "a", "s1").unwrap();
    set_versioning(&m, "s1", VersioningStatus::Suspended);
    m.apply(packed(&m, "s1", "spk", &[("n", d()), ("o", d())])).unwrap();
    put_record(&m, "s1", object("n", "n2", 1)).unwrap();
    assert!(!is_garbage(&m, "spk"), "o still holds it");
    // A delete in a suspended bucket puts a null delete marker in place of the null version,
    // which frees its slot.
    let deleted = m.apply(Command::DeleteObject {
        bucket: bref(&m, "s1"),
        key: ObjectKey::new("o"),
        condition: d(),
        now_ms: 7,
        version: None,
        marker_nonce: None,
    });
    assert!(matches!(deleted, Ok(Outcome::DeletedVersion { delete_marker: true, .. })), "{deleted:?}");
    assert!(is_garbage(&m, "spk"), "applied in-process too");
}

/// A pack record that does not decode must not make the deletion of its last object fail (on
/// every replica alike): the pack is kept, shards and all, a leak rather than a loss.
#[test]
fn a_pack_whose_record_does_not_decode_is_kept_and_its_last_delete_goes_through() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    logged(&m, "p", packed(&m, "b1", "pk", &[("x", WriteCondition::default())])).unwrap();
    let mut batch = ignifuge_kv::WriteBatch::new();
    batch.put("n/pk".as_bytes().to_vec(), b"not a pack record".to_vec());
    m.kv().write(batch, ignifuge_kv::Durability::Synced).unwrap();
    let deleted = logged(
        &m,
        "del",
        Command::DeleteObject {
            bucket: bref(&m, "b1"),
            key: ObjectKey::new("x"),
            condition: WriteCondition::default(),
            now_ms: 5,
            version: None,
            marker_nonce: None,
        },
    );
    assert!(matches!(deleted, Ok(Outcome::DeletedVersion { .. })), "{deleted:?}");
    assert!(matches!(version(&m, "b1", "x", None), Err(MetaError::NoSuchKey)), "the object is gone");
    assert!(!has(&m, "m/pk/00000000"), "its slot freed");
    assert!(has(&m, "n/pk") && !is_garbage(&m, "pk"), "the pack kept, not collected");
}

#[test]
fn the_blob_scan_returns_a_pack_once_and_its_objects_as_slices_of_it() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let d = WriteCondition::default;
    logged(&m, "p", packed(&m, "b1", "pk", &[("x", d()), ("y", d())])).unwrap();
    let mut cursor = BlobCursor::default();
    let mut seen = Vec::new();
    loop {
        let Answer::Blobs(page) = m.query(Query::Blobs { cursor: cursor.clone(), limit: 1 }).unwrap() else { panic!() };
        for b in page.blobs {
            assert_eq!(b.striped.as_ref().map(|s| s.stripes.len()), Some(1), "hydrated");
            seen.push((b.owner, b.blob.0, b.in_pack, b.size));
        }
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    let object =
        |key: &str| BlobOwner::Object { bucket: BucketName::new("b1"), key: ObjectKey::new(key), part_number: 1 };
    assert_eq!(
        seen,
        [
            (object("x"), "pk".to_string(), true, 10),
            (object("y"), "pk".to_string(), true, 10),
            (BlobOwner::Pack, "pk".to_string(), false, 20)
        ]
    );
    // The durability report counts packed objects as erasure-coded.
    let Answer::Durability(report) = m.query(Query::DurabilityReport).unwrap() else { panic!() };
    assert_eq!((report[0].full_budget_objects, report[0].inline_objects), (2, 0));
}

/// The live objects of `pack` as `Query::PackMembers` names them, by key.
fn members(m: &StateMachine, pack: &str) -> Vec<LivePackMember> {
    let Answer::PackMembers(members) = m.query(Query::PackMembers { pack: BlobId::new(pack) }).unwrap() else {
        panic!()
    };
    members
}

/// A `RepackObjects` into pack `blob` (10 bytes per object, side by side) of `members`, in order.
fn repack(blob: &str, members: &[&LivePackMember]) -> Command {
    let pack = pack_blob(blob, 10 * members.len() as u64);
    let moves = members
        .iter()
        .enumerate()
        .map(|(i, member)| {
            let DataLocation::Packed(from) = &member.part.location else { panic!("{member:?}") };
            let from = PackedSlice { pack: StripedBlob { stripes: Vec::new(), ..from.pack.clone() }, ..from.clone() };
            PackMove {
                bucket: member.bucket.clone(),
                key: member.key.clone(),
                version: member.version.clone(),
                from,
                offset: 10 * i as u64,
            }
        })
        .collect();
    Command::RepackObjects { pack, moves }
}

fn slice_of(record: &ObjectRecord) -> (String, u64, u32) {
    let DataLocation::Packed(slice) = &record.parts[0].location else { panic!("{record:?}") };
    (slice.pack.blob.0.clone(), slice.offset, slice.slot)
}

#[test]
fn a_repack_moves_the_versions_still_in_their_slots_and_frees_the_packs_it_empties() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let d = WriteCondition::default;
    logged(&m, "p1", packed(&m, "b1", "pk1", &[("x", d()), ("y", d()), ("z", d())])).unwrap();
    logged(&m, "p2", packed(&m, "b1", "pk2", &[("a", d()), ("b", d())])).unwrap();
    let before_x = version(&m, "b1", "x", None).unwrap();
    let in_pk1 = members(&m, "pk1");
    let in_pk2 = members(&m, "pk2");
    assert_eq!(in_pk1.iter().map(|l| l.key.0.as_str()).collect::<Vec<_>>(), ["x", "y", "z"]);
    // y deleted and b replaced after the compactor read the members.
    let delete = |key: &str| Command::DeleteObject {
        bucket: bref(&m, "b1"),
        key: ObjectKey::new(key),
        condition: d(),
        now_ms: 5,
        version: None,
        marker_nonce: None,
    };
    logged(&m, "dy", delete("y")).unwrap();
    put(&m, "b1", "b", "b2", d()).unwrap();
    let Answer::PackUsage(usage) = m.query(Query::PackUsage { after: None, limit: 10 }).unwrap() else { panic!() };
    let summary: Vec<_> = usage
        .packs
        .iter()
        .map(|u| (u.pack.blob.0.as_str(), u.objects, u.live_objects, u.live_bytes, u.data_len))
        .collect();
    assert_eq!(summary, [("pk1", 3, 2, 20, 30), ("pk2", 2, 1, 10, 20)]);
    assert!(usage.packs.iter().all(|u| u.compactable) && usage.next.is_none());

    let command = repack("new", &[&in_pk1[0], &in_pk1[1], &in_pk1[2], &in_pk2[0], &in_pk2[1]]);
    let Outcome::Repacked(moved) = logged(&m, "r1", command).unwrap() else { panic!() };
    assert_eq!(moved, [true, false, true, true, false], "y deleted and b replaced: not moved");
    let x = version(&m, "b1", "x", None).unwrap();
    assert_eq!(slice_of(&x), ("new".to_string(), 0, 0));
    assert_eq!(slice_of(&version(&m, "b1", "z", None).unwrap()), ("new".to_string(), 20, 2));
    assert_eq!(slice_of(&version(&m, "b1", "a", None).unwrap()), ("new".to_string(), 30, 3));
    let same = |r: &ObjectRecord| (r.version.clone(), r.etag.clone(), r.last_modified_ms, r.size, r.sequence);
    assert_eq!(same(&x), same(&before_x), "nothing but the location changes");
    assert!(is_garbage(&m, "pk1") && is_garbage(&m, "pk2"), "both emptied: garbage in the same entry");
    assert!(!has(&m, "n/pk1") && !has(&m, "m/pk1/00000000") && !has(&m, "m/pk1/00000002"));
    assert!(has(&m, "n/new") && has(&m, "b/new") && has(&m, "s/new/00000000"), "admitted");
    assert!(has(&m, "m/new/00000000") && !has(&m, "m/new/00000001") && has(&m, "m/new/00000003"));
    assert_eq!(members(&m, "new").iter().map(|l| l.key.0.as_str()).collect::<Vec<_>>(), ["x", "z", "a"]);

    // The same moves again (a stale compactor): nothing names those slots now; nothing admitted.
    let Outcome::Repacked(moved) = logged(&m, "r2", repack("new2", &[&in_pk1[0]])).unwrap() else { panic!() };
    assert_eq!(moved, [false]);
    assert!(!has(&m, "b/new2") && !has(&m, "n/new2"), "a pack nothing moved into is not admitted");
    // The new pack frees like any other: its objects deleted, it is garbage.
    for (id, key) in [("dx", "x"), ("dz", "z"), ("da", "a")] {
        logged(&m, id, delete(key)).unwrap();
    }
    assert!(is_garbage(&m, "new") && !has(&m, "n/new"));
}

#[test]
fn a_repack_moves_non_current_and_promoted_versions_by_version_id() {
    let m = machine();
    bucket(&m, "a", "v1").unwrap();
    set_versioning(&m, "v1", VersioningStatus::Enabled);
    let d = WriteCondition::default;
    // k: three packed versions; the newest deleted permanently, so the middle one is promoted.
    for (id, blob) in [("p1", "vp1"), ("p2", "vp2"), ("p3", "vp3")] {
        logged(&m, id, packed(&m, "v1", blob, &[("k", d())])).unwrap();
    }
    let newest = version(&m, "v1", "k", None).unwrap().version;
    let deleted = Command::DeleteObject {
        bucket: bref(&m, "v1"),
        key: ObjectKey::new("k"),
        condition: d(),
        now_ms: 5,
        version: Some(newest),
        marker_nonce: None,
    };
    logged(&m, "del", deleted).unwrap();
    let (oldest, middle) = (members(&m, "vp1").remove(0), members(&m, "vp2").remove(0));
    assert_ne!(oldest.version, middle.version);
    let Outcome::Repacked(moved) = logged(&m, "r", repack("new", &[&oldest, &middle])).unwrap() else { panic!() };
    assert_eq!(moved, [true, true]);
    let current = version(&m, "v1", "k", None).unwrap();
    assert_eq!((current.version.clone(), slice_of(&current)), (middle.version.clone(), ("new".to_string(), 10, 1)));
    let old = version(&m, "v1", "k", Some(&oldest.version)).unwrap();
    assert_eq!(slice_of(&old), ("new".to_string(), 0, 0), "the non-current version moved by its id");
    assert!(is_garbage(&m, "vp1") && is_garbage(&m, "vp2") && is_garbage(&m, "vp3"));
    assert_eq!(versions(&m, "v1", "k").len(), 2);
}

#[test]
fn a_malformed_repack_is_refused_whole_and_old_members_are_not_compactable() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let d = WriteCondition::default;
    logged(&m, "p1", packed(&m, "b1", "pk1", &[("x", d()), ("y", d())])).unwrap();
    let live = members(&m, "pk1");
    let invalid = |command: Command| {
        matches!(logged(&m, &ignifuge_types::random_id(), command), Err(MetaError::InvalidCommand(_)))
    };
    assert!(invalid(repack("t1", &[&live[0], &live[0]])), "a version twice");
    let mut beyond = repack("t2", &[&live[0], &live[1]]);
    let Command::RepackObjects { pack, .. } = &mut beyond else { panic!() };
    pack.stripes[0].data_len = 19;
    assert!(invalid(beyond), "a slice past the new pack's data");
    let mut into_itself = repack("pk1", &[&live[0]]);
    let Command::RepackObjects { pack, .. } = &mut into_itself else { panic!() };
    pack.blob = BlobId::new("pk1");
    assert!(invalid(into_itself), "into its own pack");
    assert!(invalid(Command::RepackObjects { pack: pack_blob("t3", 0), moves: Vec::new() }), "no move");
    assert_eq!(slice_of(&version(&m, "b1", "x", None).unwrap()).0, "pk1", "nothing moved");
    assert!(!has(&m, "b/t1") && !has(&m, "b/t2") && !has(&m, "b/t3"));

    // A pack logged by a format-8 gateway (its entry has no `member_versions`, applied after the
    // upgrade as before it): empty members, the pack not compactable, its members not listed.
    let Command::PutPacked { pack, objects, .. } = packed(&m, "b1", "pk8", &[("z", d())]) else { panic!() };
    let mut entry =
        serde_json::to_value(Command::PutPacked { pack, objects, member_versions: false, leader_ms: None }).unwrap();
    entry["PutPacked"].as_object_mut().unwrap().remove("member_versions");
    logged(&m, "p8", serde_json::from_value(entry).unwrap()).unwrap();
    assert_eq!(m.kv().get(b"m/pk8/00000000").unwrap(), Some(Vec::new()));
    let Answer::PackUsage(usage) = m.query(Query::PackUsage { after: None, limit: 10 }).unwrap() else { panic!() };
    let pk8 = usage.packs.iter().find(|u| u.pack.blob.0 == "pk8").unwrap();
    assert!(!pk8.compactable && usage.packs.iter().filter(|u| u.compactable).count() == 1);
    assert!(members(&m, "pk8").is_empty());
}

/// Packs `pk0`.. of one object each (`k0`..) in bucket `b1`.
fn one_object_packs(m: &StateMachine, count: usize) {
    for i in 0..count {
        let key = format!("k{i}");
        logged(m, &format!("p{i}"), packed(m, "b1", &format!("pk{i}"), &[(&key, WriteCondition::default())])).unwrap();
    }
}

#[test]
fn pack_usage_pages_through_packs_in_id_order() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    one_object_packs(&m, 5);
    let mut after = None;
    let mut seen = Vec::new();
    loop {
        let Answer::PackUsage(page) = m.query(Query::PackUsage { after: after.clone(), limit: 2 }).unwrap() else {
            panic!()
        };
        assert!(page.packs.len() <= 2);
        seen.extend(page.packs.iter().map(|u| u.pack.blob.0.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["pk0", "pk1", "pk2", "pk3", "pk4"]);
}

/// A record that does not decode (a bug, damage the store's checksums missed) is skipped and
/// reported by the scans of background services, never the end of every scan after it: repair's
/// blob scan, the collector's garbage query, the compactor's pack usage and the durability view
/// all go on past it.
#[test]
fn a_record_that_does_not_decode_is_skipped_and_reported_by_every_scan_not_the_end_of_it() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    one_object_packs(&m, 4);
    let garbage = |since_ms| serde_json::to_vec(&GarbageRecord::new(DataLocation::Inline(vec![1]), since_ms)).unwrap();
    let mut batch = ignifuge_kv::WriteBatch::new();
    batch.put(keys::stripe(&BlobId::new("pk1"), 0), b"{not a stripe".to_vec());
    batch.put(keys::pack(&BlobId::new("pk2")), b"{not a pack".to_vec());
    batch.put(keys::garbage(&BlobId::new("ga")), garbage(0));
    batch.put(keys::garbage(&BlobId::new("gb")), b"{not garbage".to_vec());
    batch.put(keys::garbage(&BlobId::new("gc")), garbage(0));
    // Garbage whose record decodes but whose stripe record does not.
    let striped = StripedBlob { stripes: Vec::new(), ..pack_blob("gd", 10) };
    let record = GarbageRecord::new(DataLocation::Striped(striped), 0);
    batch.put(keys::garbage(&BlobId::new("gd")), serde_json::to_vec(&record).unwrap());
    batch.put(keys::stripe(&BlobId::new("gd"), 0), b"{not a stripe".to_vec());
    m.kv().write(batch, ignifuge_kv::Durability::Synced).unwrap();

    let Answer::PackUsage(usage) = m.query(Query::PackUsage { after: None, limit: 10 }).unwrap() else { panic!() };
    let packs: Vec<&str> = usage.packs.iter().map(|u| u.pack.blob.0.as_str()).collect();
    assert_eq!(packs, ["pk0", "pk3"], "the pack after the unreadable ones is still compacted");

    let Answer::Durability(report) = m.query(Query::DurabilityReport).unwrap() else { panic!() };
    let [tenant] = report.as_slice() else { panic!("{report:?}") };
    assert_eq!((tenant.full_budget_objects, tenant.unreadable_objects), (3, 1), "the durability view counts it apart");

    let Answer::Garbage(GarbagePage { garbage: found, .. }) =
        m.query(Query::Garbage { older_than_ms: 10, limit: 10, after: None }).unwrap()
    else {
        panic!()
    };
    let collected: Vec<&str> = found.iter().map(|(blob, _)| blob.0.as_str()).collect();
    assert_eq!(collected, ["ga", "gc"], "the garbage after the unreadable record is still collected");

    let mut cursor = BlobCursor::default();
    let (mut blobs, mut unreadable) = (Vec::new(), Vec::new());
    loop {
        let Answer::Blobs(page) = m.query(Query::Blobs { cursor: cursor.clone(), limit: 2 }).unwrap() else { panic!() };
        blobs.extend(page.blobs.iter().map(|b| (b.blob.0.clone(), b.owner == BlobOwner::Pack)));
        unreadable.extend(page.unreadable.iter().map(|u| (u.key.clone(), u.blob.as_ref().map(|b| b.0.clone()))));
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    let named = |blob: &str| blobs.iter().filter(|(b, _)| b == blob).count();
    assert_eq!((named("pk0"), named("pk1"), named("pk3")), (2, 0, 2), "each readable pack as itself and its object");
    let pk2 = blobs.iter().filter(|(b, _)| b == "pk2").map(|(_, as_pack)| *as_pack).collect::<Vec<_>>();
    assert_eq!(
        pk2,
        [false, true],
        "a pack whose own record is unreadable: surveyed as a pack from its member's record"
    );
    let (pk1, pk2) = (Some("pk1".to_string()), Some("pk2".to_string()));
    assert_eq!(
        unreadable,
        [("o/b1/k1".to_string(), pk1.clone()), ("n/pk1".to_string(), pk1), ("n/pk2".to_string(), pk2)],
        "each unreadable record reported once, with its blob (garbage needs no survey: not reported)"
    );
}

#[test]
fn a_repack_keeps_a_pack_with_a_member_left_moves_a_non_current_null_version_and_is_refused_if_fenced() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let d = WriteCondition::default;
    logged(&m, "p1", packed(&m, "b1", "pk1", &[("x", d()), ("y", d())])).unwrap();
    let live = members(&m, "pk1");
    // Only x moves: y still holds pk1, which must stay out of the garbage.
    let command = repack("new", &[&live[0]]);
    let Outcome::Repacked(moved) = logged(&m, "r1", command.clone()).unwrap() else { panic!() };
    assert_eq!(moved, [true]);
    assert!(!is_garbage(&m, "pk1") && has(&m, "n/pk1") && has(&m, "m/pk1/00000001"), "y still holds pk1");
    assert_eq!(slice_of(&version(&m, "b1", "y", None).unwrap()).0, "pk1");
    // The same proposal again (a retry): its recorded outcome, nothing applied twice.
    assert_eq!(logged(&m, "r1", command).unwrap(), Outcome::Repacked(vec![true]));
    assert_eq!(slice_of(&version(&m, "b1", "x", None).unwrap()), ("new".to_string(), 0, 0));

    // A new pack fenced by the orphan sweep before the repack applies (its compactor's answer
    // was lost, the sweep found its shards unreferenced): refused whole, nothing moved.
    let fenced = m.apply(Command::ReclaimOrphans { blobs: blobs(&["late"]), now_ms: 10, grace_ms: 0 }).unwrap();
    assert_eq!(fenced, Outcome::Reclaimable(blobs(&["late"])));
    let refused = logged(&m, "r2", repack("late", &[&live[1]]));
    assert!(matches!(refused, Err(MetaError::BlobReclaimed(_))), "{refused:?}");
    assert_eq!(slice_of(&version(&m, "b1", "y", None).unwrap()).0, "pk1", "y not moved");
    assert!(has(&m, "m/pk1/00000001") && !has(&m, "m/late/00000000"));

    // A null version made non-current by versioning: moved by its id "null".
    bucket(&m, "a", "s1").unwrap();
    logged(&m, "p2", packed(&m, "s1", "npk", &[("n", d())])).unwrap();
    set_versioning(&m, "s1", VersioningStatus::Enabled);
    put_record(&m, "s1", object("n", "n2", 1)).unwrap();
    let null = members(&m, "npk").remove(0);
    assert_eq!(null.version.0, NULL_VERSION);
    let Outcome::Repacked(moved) = logged(&m, "r3", repack("npk2", &[&null])).unwrap() else { panic!() };
    assert_eq!(moved, [true]);
    let moved_null = version(&m, "s1", "n", Some(&VersionId::new(NULL_VERSION))).unwrap();
    assert_eq!(slice_of(&moved_null), ("npk2".to_string(), 0, 0));
    assert!(is_garbage(&m, "npk"));
    assert_eq!(version(&m, "s1", "n", None).unwrap().etag, "n2", "the current version untouched");
}

/// `Query::Record` (`ignifuge admin record`): a record's bytes and whether it reads as the scans
/// read it: its own bytes, or the stripe records of the blob it names.
#[test]
fn a_record_is_shown_with_why_it_does_not_read() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    put(&m, "b1", "good", "e1", WriteCondition::default()).unwrap();
    put(&m, "b1", "bad", "e2", WriteCondition::default()).unwrap();
    let torn = striped_object("torn", "tornblob", &["n1", "n2", "n3"]);
    put_record(&m, "b1", torn).unwrap();
    let mut batch = ignifuge_kv::WriteBatch::new();
    batch.put(b"o/b1/bad".to_vec(), b"{not a record".to_vec());
    batch.put(keys::stripe(&BlobId::new("tornblob"), 0), b"{not a stripe".to_vec());
    m.kv().write(batch, ignifuge_kv::Durability::Synced).unwrap();
    let view = |key: &str| {
        let Answer::Record(view) = m.query(Query::Record { key: key.into() }).unwrap() else { panic!() };
        (view.value.is_some(), view.checked, view.problem.is_some())
    };
    assert_eq!(view("o/b1/good"), (true, true, false));
    assert_eq!(view("o/b1/bad"), (true, true, true), "its own bytes");
    assert_eq!(view("o/b1/torn"), (true, true, true), "its blob's stripe record");
    assert_eq!(view("c/tenant/a"), (true, false, false), "a kind the scans do not read");
    assert_eq!(view("o/b1/none"), (false, false, false));
    let Answer::Record(bad) = m.query(Query::Record { key: "o/b1/bad".into() }).unwrap() else { panic!() };
    assert_eq!(bad.value.as_deref(), Some(&b"{not a record"[..]), "the bytes as stored");
    // Other kinds the scans read: a version, a pack, garbage whose stripe record does not read,
    // and a record whose bucket's record does not.
    let striped = StripedBlob { stripes: Vec::new(), ..pack_blob("gd", 10) };
    let garbage = GarbageRecord::new(DataLocation::Striped(striped), 0);
    let mut batch = ignifuge_kv::WriteBatch::new();
    batch.put(b"v/b1/k\0fffffffffffffffe".to_vec(), b"{not a version".to_vec());
    batch.put(keys::pack(&BlobId::new("pk")), b"{not a pack".to_vec());
    batch.put(keys::garbage(&BlobId::new("gd")), serde_json::to_vec(&garbage).unwrap());
    batch.put(keys::stripe(&BlobId::new("gd"), 0), b"{not a stripe".to_vec());
    m.kv().write(batch, ignifuge_kv::Durability::Synced).unwrap();
    assert_eq!(view("v/b1/k\0fffffffffffffffe"), (true, true, true));
    assert_eq!(view("n/pk"), (true, true, true));
    assert_eq!(view("g/gd"), (true, true, true), "its stripe record");
    assert_eq!(view("c/bucket/b1"), (true, true, false));
    let mut batch = ignifuge_kv::WriteBatch::new();
    batch.put(keys::bucket(&BucketName::new("b1")), b"{not a bucket".to_vec());
    m.kv().write(batch, ignifuge_kv::Durability::Synced).unwrap();
    assert_eq!(view("c/bucket/b1"), (true, true, true));
    assert_eq!(view("o/b1/good"), (true, true, true), "the scans read its bucket's record too");
}

/// What `scale-seed` (benches/src/bin/scale-seed.rs) relies on: a PutObject of a new key in an
/// unversioned bucket writes one pair of state, `o/<bucket>/<key>` = `stored::encode_record` of
/// the record as given (the null version, sequence 0), besides the apply's own bookkeeping. A
/// new index or counter written for an object would break the tool silently; this fails first.
#[test]
fn a_put_of_a_new_key_in_an_unversioned_bucket_writes_its_record_and_nothing_else() {
    let kv = Arc::new(MemoryKv::default());
    let m = machine_on(kv.clone());
    // An empty bucket: a per-object write of any value, even one every put writes alike, shows.
    bucket(&m, "a", "b1").unwrap();
    let state = || -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
        use ignifuge_kv::KvStore as _;
        kv.scan(b"", None, usize::MAX).unwrap().into_iter().collect()
    };
    let before = state();
    let mut record = ObjectRecord::single_part(
        ObjectKey::new("k"),
        VersionId::new(NULL_VERSION),
        PartData {
            part_number: 1,
            size: 3,
            etag: "e1".into(),
            checksums: Checksums::default(),
            location: DataLocation::Inline(b"abc".to_vec()),
            last_modified_ms: 5,
            started_ms: 0,
            began: None,
        },
    );
    // As a replica applies a committed entry, bookkeeping and all.
    let command = Command::PutObject {
        bucket: bref(&m, "b1"),
        record: record.clone(),
        condition: WriteCondition::default(),
        leader_ms: None,
    };
    let proposal = Proposal { id: ProposalId::new("put-k"), issued_ms: 5, aged_by_entries: true, command };
    m.apply_proposal_logged_next(proposal, ignifuge_kv::WriteBatch::new()).unwrap().unwrap();
    let after = state();
    let changed: Vec<&Vec<u8>> =
        after.keys().chain(before.keys()).filter(|k| before.get(*k) != after.get(*k)).collect();
    // The proposal's outcome and age (for retries), the clock and the housekeeping cursors.
    let bookkeeping = |k: &[u8]| {
        k.starts_with(keys::PROPOSALS_PREFIX)
            || k.starts_with(keys::PROPOSAL_AGE_PREFIX)
            || [keys::CLOCK, keys::PROPOSAL_AGE_CURSOR, keys::INTENT_SWEEP_CURSOR, keys::INTENT_SWEEP_RESTED]
                .contains(&k)
    };
    assert!(changed.iter().any(|k| bookkeeping(k)), "the replicated apply's bookkeeping is seen");
    let state_changed: BTreeSet<&Vec<u8>> = changed.into_iter().filter(|k| !bookkeeping(k)).collect();
    let key = keys::object(&BucketName::new("b1"), &ObjectKey::new("k"));
    assert_eq!(
        state_changed,
        BTreeSet::from([&key]),
        "{:?}",
        state_changed.iter().map(|k| String::from_utf8_lossy(k)).collect::<Vec<_>>()
    );
    record.versioned = false;
    record.sequence = 0;
    assert_eq!(after[&key], stored::encode_record(&record));
}
