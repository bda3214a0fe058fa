//! What the services' unit tests share: services over an in-memory metadata and nine nodes,
//! and objects of one stripe placed on chosen nodes.

use crate::Services;
use ignifuge_gateway::datapath::{DataPath, DataPathTuning};
use ignifuge_meta::{
    BucketRecord, BucketRef, Checksums, Command, DataLocation, ObjectRecord, PartData, ShardRecord, StripeRecord,
    StripedBlob, TenantRecord, WriteCondition,
};
use ignifuge_rpc::{ClusterConfig, InternodeAuth, NodeClient};
use ignifuge_types::{BlobId, BucketIncarnation, BucketName, NodeId, ObjectKey, TenantId, VersionId};
use std::net::SocketAddr;
use std::sync::Arc;

/// Services over an in-memory metadata, with nine nodes (`node(0)` to `node(8)`, three per
/// datacenter): the first `addresses.len()` answer there, the others refuse connections.
pub(crate) fn services(addresses: &[SocketAddr]) -> Services {
    let cluster =
        ClusterConfig::three_by_three(|i| addresses.get(i).copied().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 1))));
    let client = NodeClient::new(Arc::new(InternodeAuth::new(&[7u8; 32])));
    let data = Arc::new(DataPath::new(&cluster, client, DataPathTuning::default()).unwrap());
    Services { metadata: Arc::new(metadata()), data, holder: "this-worker".into() }
}

/// A metadata in memory, empty.
pub(crate) fn metadata() -> ignifuge_meta::LocalMetadata {
    ignifuge_meta::LocalMetadata::new(Arc::new(ignifuge_kv::MemoryKv::default()))
}

pub(crate) fn node(i: usize) -> NodeId {
    NodeId::new(format!("dc{}-n{}", i / 3 + 1, i % 3 + 1))
}

/// The shard record of a shard on node `i`.
pub(crate) fn shard_on(i: usize) -> ShardRecord {
    ShardRecord { node: node(i), blake3: "00".repeat(32) }
}

/// An object of one stripe (2+1 shards of 4 bytes) whose shards lie on `nodes`.
pub(crate) fn striped(key: &str, blob: &str, nodes: &[usize]) -> ObjectRecord {
    let shards = nodes.iter().map(|n| shard_on(*n)).collect();
    let stripe = StripeRecord { data_len: 8, shards, debt: false };
    let location = DataLocation::Striped(StripedBlob::whole(BlobId::new(blob), (2, 1), 4, vec![stripe], 0));
    let part = PartData {
        part_number: 1,
        size: 8,
        etag: "e".into(),
        checksums: Checksums::default(),
        location,
        last_modified_ms: 1,
        started_ms: 0,
        began: None,
    };
    ObjectRecord::single_part(ObjectKey::new(key), VersionId::new(format!("v-{blob}")), part)
}

/// Writes `striped(key, blob, nodes)` as the current version of `key` in bucket "b" of tenant
/// "t" (both made on first use); returns the bucket.
pub(crate) async fn put_striped(services: &Services, key: &str, blob: &str, nodes: &[usize]) -> BucketRef {
    let m = services.metadata.as_ref();
    if m.bucket(BucketName::new("b")).await.is_err() {
        let tenant = TenantRecord { id: TenantId::new("t"), created_ms: 0, public_access_block: None };
        m.apply(Command::CreateTenant(tenant)).await.unwrap();
        let record = BucketRecord::new(
            BucketName::new("b"),
            TenantId::new("t"),
            "us-east-1".into(),
            0,
            BucketIncarnation::new("i"),
        );
        m.apply(Command::CreateBucket(record)).await.unwrap();
    }
    let bucket = m.bucket(BucketName::new("b")).await.unwrap().reference();
    let record = striped(key, blob, nodes);
    let condition = WriteCondition::default();
    m.apply(Command::PutObject { bucket: bucket.clone(), record, condition, leader_ms: None }).await.unwrap();
    bucket
}
