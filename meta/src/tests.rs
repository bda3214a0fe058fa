use super::*;
use ignifuge_kv::MemoryKv;
use ignifuge_types::*;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;

fn machine() -> StateMachine {
    let m = StateMachine::new(Arc::new(MemoryKv::default()));
    for t in ["a", "b"] {
        m.apply(Command::CreateTenant(TenantRecord { id: TenantId::new(t), created_ms: 0 })).unwrap();
    }
    m
}

fn bucket(m: &StateMachine, tenant: &str, name: &str) -> Result<Outcome, MetaError> {
    m.apply(Command::CreateBucket(BucketRecord {
        name: BucketName::new(name),
        tenant: TenantId::new(tenant),
        region: "us-east-1".into(),
        created_ms: 0,
        tags: None,
        cors: None,
    }))
}

fn object(key: &str, etag: &str, size: u64) -> ObjectRecord {
    ObjectRecord {
        key: ObjectKey::new(key),
        version: VersionId::new(format!("v-{key}-{etag}")),
        size,
        etag: etag.into(),
        last_modified_ms: 1,
        headers: ObjectHeaders::default(),
        checksums: Checksums::default(),
        parts: vec![part(1, etag, size, "00")],
        multipart: false,
        tags: Vec::new(),
    }
}

fn part(n: u32, etag: &str, size: u64, blob: &str) -> PartData {
    PartData {
        part_number: n,
        size,
        etag: etag.into(),
        checksums: Checksums::default(),
        location: DataLocation::Striped(StripedBlob {
            blob: BlobId::new(blob),
            data_shards: 5,
            parity_shards: 4,
            shard_size_bytes: 1 << 20,
            stripes: vec![],
        }),
        last_modified_ms: 1,
    }
}

fn put(m: &StateMachine, b: &str, key: &str, etag: &str, condition: WriteCondition) -> Result<Outcome, MetaError> {
    m.apply(Command::PutObject { bucket: BucketName::new(b), record: object(key, etag, 1), condition })
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
    let delete = || m.apply(Command::DeleteBucket { tenant: TenantId::new("a"), bucket: BucketName::new("b1") });
    assert_eq!(delete(), Err(MetaError::BucketNotEmpty));
    m.apply(Command::DeleteObject {
        bucket: BucketName::new("b1"),
        key: ObjectKey::new("k"),
        condition: WriteCondition::default(),
        now_ms: 2,
    })
    .unwrap();
    assert_eq!(
        m.apply(Command::DeleteBucket { tenant: TenantId::new("b"), bucket: BucketName::new("b1") }),
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
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(o.etag, "e3");
    let other =
        Query::Object { tenant: Some(TenantId::new("b")), bucket: BucketName::new("b1"), key: ObjectKey::new("k") };
    assert_eq!(m.query(other), Err(MetaError::AccessDenied), "another tenant's read is refused in the same query");
}

#[test]
fn replaced_blobs_become_garbage_but_shared_ones_do_not() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    put(&m, "b1", "k", "e1", WriteCondition::default()).unwrap();
    let mut second = object("k", "e2", 1);
    second.parts[0] = part(1, "e2", 1, "11");
    m.apply(Command::PutObject { bucket: BucketName::new("b1"), record: second, condition: Default::default() })
        .unwrap();
    assert!(m.kv().get(b"g/00").unwrap().is_some(), "the first blob is garbage");
    assert!(m.kv().get(b"g/11").unwrap().is_none(), "the live blob is not");
}

#[test]
fn garbage_is_listed_after_its_grace_and_forgotten_when_reclaimed() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    put(&m, "b1", "k", "e1", WriteCondition::default()).unwrap();
    let mut second = object("k", "e2", 1);
    second.parts[0] = part(1, "e2", 1, "11");
    second.last_modified_ms = 100;
    m.apply(Command::PutObject { bucket: BucketName::new("b1"), record: second, condition: Default::default() })
        .unwrap();
    let listed = |older_than_ms| match m.query(Query::Garbage { older_than_ms, limit: 10 }).unwrap() {
        Answer::Garbage(g) => g.into_iter().map(|(b, _)| b.0).collect::<Vec<_>>(),
        _ => panic!(),
    };
    assert!(listed(100).is_empty(), "still within its grace period");
    assert_eq!(listed(101), vec!["00".to_string()]);
    m.apply(Command::ForgetGarbage { blobs: vec![BlobId::new("00")] }).unwrap();
    assert!(listed(i64::MAX).is_empty());
}

#[test]
fn a_retried_proposal_applies_once_and_returns_the_first_outcome() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let create = |id: &str, etag: &str, issued_ms: i64| Proposal {
        id: id.into(),
        issued_ms,
        command: Command::PutObject {
            bucket: BucketName::new("b1"),
            record: object("k", etag, 1),
            condition: WriteCondition { if_none_match_any: true, if_match: None },
        },
    };
    let first = m.apply_proposal_logged(create("p1", "e1", 1_000), Default::default()).unwrap();
    assert!(first.is_ok());
    let retry = m.apply_proposal_logged(create("p1", "e1", 1_000), Default::default()).unwrap();
    assert_eq!(retry, first, "the retry gets the first outcome, not a 412 from its own write");
    let other = m.apply_proposal_logged(create("p2", "e2", 2_000), Default::default()).unwrap();
    assert_eq!(other, Err(MetaError::PreconditionFailed));
    // Far later, the old ids are forgotten (a few per applied proposal).
    let later = 1_000 + PROPOSAL_DEDUP_WINDOW_MS + 10_000;
    m.apply_proposal_logged(create("p3", "e3", later), Default::default()).unwrap().unwrap_err();
    assert!(m.kv().get(b"d/p1").unwrap().is_none());
    assert!(m.kv().get(b"d/p3").unwrap().is_some());
}

#[test]
fn completing_an_upload_enforces_aws_part_rules() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let b = BucketName::new("b1");
    let id = UploadId::new("u1");
    m.apply(Command::CreateUpload(UploadRecord {
        upload_id: id.clone(),
        bucket: b.clone(),
        key: ObjectKey::new("big"),
        initiated_ms: 0,
        headers: Default::default(),
        checksum_algorithm: None,
        checksum_type: None,
        tags: Vec::new(),
    }))
    .unwrap();
    let mib = 1024 * 1024;
    for (n, size) in [(1u32, 5 * mib), (2, mib), (3, 2 * mib)] {
        let upload = Command::PutUploadPart {
            bucket: b.clone(),
            upload_id: id.clone(),
            part: part(n, &format!("p{n}"), size, &format!("{n}{n}")),
        };
        m.apply(upload).unwrap();
    }
    let complete = |parts: &[(u32, &str)]| {
        m.apply(Command::CompleteUpload {
            bucket: b.clone(),
            upload_id: id.clone(),
            parts: parts.iter().map(|(n, e)| CompletedPart { part_number: *n, etag: e.to_string() }).collect(),
            record: object("ignored", "final-2", 0),
            condition: Default::default(),
        })
    };
    assert_eq!(complete(&[(2, "p2"), (1, "p1")]), Err(MetaError::InvalidPartOrder));
    assert!(matches!(complete(&[(1, "p1"), (4, "p4")]), Err(MetaError::InvalidPart(_))));
    assert!(matches!(complete(&[(1, "wrong")]), Err(MetaError::InvalidPart(_))));
    assert_eq!(complete(&[(1, "p1"), (2, "p2"), (3, "p3")]), Err(MetaError::EntityTooSmall { part_number: 2 }));
    let Outcome::Object(done) = complete(&[(1, "\"p1\""), (3, "p3")]).unwrap() else { panic!() };
    assert_eq!(done.key, ObjectKey::new("big"));
    assert_eq!(done.size, 7 * mib);
    assert_eq!(done.parts.len(), 2);
    assert!(m.kv().get(b"g/22").unwrap().is_some(), "the unused part is garbage");
    assert_eq!(m.query(Query::Upload { bucket: b.clone(), upload_id: id.clone() }), Err(MetaError::NoSuchUpload));
    assert_eq!(complete(&[(1, "p1")]), Err(MetaError::NoSuchUpload));
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
            let Answer::Objects(page) = m.query(Query::ListObjects { bucket: BucketName::new("b1"), request }).unwrap() else { panic!() };
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

fn striped_object(key: &str, blob: &str, nodes: &[&str]) -> ObjectRecord {
    let mut record = object(key, "e", 10);
    let shards = nodes.iter().map(|n| ShardRecord { node: NodeId::new(*n), blake3: format!("h-{n}") }).collect();
    record.parts[0].location = DataLocation::Striped(StripedBlob {
        blob: BlobId::new(blob),
        data_shards: 2,
        parity_shards: 1,
        shard_size_bytes: 4,
        stripes: vec![StripeRecord { data_len: 8, shards, debt: true }],
    });
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
        m.apply(Command::PutObject {
            bucket: BucketName::new("b1"),
            record: striped_object(key, blob, &["n1", "n2", "n3"]),
            condition: WriteCondition::default(),
        })
        .unwrap();
    }
    // Replacing z makes 0c garbage.
    m.apply(Command::PutObject {
        bucket: BucketName::new("b1"),
        record: striped_object("z", "0d", &["n1", "n2", "n3"]),
        condition: WriteCondition::default(),
    })
    .unwrap();
    let upload = UploadRecord {
        upload_id: UploadId::new("up1"),
        bucket: BucketName::new("b1"),
        key: ObjectKey::new("m"),
        initiated_ms: 0,
        headers: ObjectHeaders::default(),
        checksum_algorithm: None,
        checksum_type: None,
        tags: Vec::new(),
    };
    m.apply(Command::CreateUpload(upload)).unwrap();
    m.apply(Command::PutUploadPart {
        bucket: BucketName::new("b1"),
        upload_id: UploadId::new("up1"),
        part: part(3, "p", 5, "0e"),
    })
    .unwrap();
    for limit in [1, 2, 100] {
        let seen = scan_all(&m, limit);
        let blobs: Vec<&str> = seen.iter().map(|(_, b)| b.as_str()).collect();
        assert_eq!(blobs, ["0e", "0a", "0b", "0d", "0c"], "page size {limit}");
        assert_eq!(
            seen[0].0,
            BlobOwner::UploadPart { bucket: BucketName::new("b1"), upload_id: UploadId::new("up1"), part_number: 3 }
        );
        assert_eq!(seen[4].0, BlobOwner::Garbage);
    }
}

#[test]
fn a_shard_replacement_applies_only_to_the_shards_it_read() {
    let m = machine();
    bucket(&m, "a", "b1").unwrap();
    let record = striped_object("x", "0a", &["n1", "n1", "n3"]);
    m.apply(Command::PutObject { bucket: BucketName::new("b1"), record, condition: WriteCondition::default() })
        .unwrap();
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
        }))
    };
    // A repairer that read another state is refused, and nothing changes.
    assert!(matches!(replace(vec![shard("n1"), shard("n2"), shard("n2")]), Err(MetaError::Superseded(_))));
    replace(vec![shard("n1"), shard("n1"), shard("n3")]).unwrap();
    // Applying the same replacement twice (a retried proposal) is harmless.
    replace(vec![shard("n1"), shard("n1"), shard("n3")]).unwrap();
    let Answer::Object(object) =
        m.query(Query::Object { tenant: None, bucket: BucketName::new("b1"), key: ObjectKey::new("x") }).unwrap()
    else {
        panic!()
    };
    let DataLocation::Striped(striped) = &object.parts[0].location else { panic!() };
    assert_eq!(striped.stripes[0].shards, [shard("n1"), shard("n2"), shard("n3")]);
    assert!(!striped.stripes[0].debt);
    let Answer::Durability(report) = m.query(Query::DurabilityReport).unwrap() else { panic!() };
    assert_eq!((report[0].debt_objects, report[0].full_budget_objects), (0, 1));
}

#[test]
fn a_lease_has_one_holder_until_it_expires() {
    let m = machine();
    let take = |holder: &str, now_ms: i64| {
        m.apply(Command::TakeLease { name: "repair".into(), holder: holder.into(), now_ms, duration_ms: 100 })
    };
    take("g1", 0).unwrap();
    assert_eq!(take("g2", 50), Err(MetaError::LeaseHeld { holder: "g1".into() }));
    take("g1", 90).unwrap(); // renewal: now until 190
    assert!(take("g2", 150).is_err());
    take("g2", 191).unwrap();
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
        m.apply(Command::SetBucketCors { tenant: TenantId::new(tenant), bucket: BucketName::new("web"), cors })
    };
    let configuration = CorsConfiguration { rules: vec![rule] };
    assert_eq!(set("b", Some(configuration.clone())), Err(MetaError::AccessDenied), "another tenant");
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
