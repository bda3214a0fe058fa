//! Object records as the gateway writes them for a PUT from the AWS CLI (Content-Type, a
//! CRC64NVME full-object checksum), shared by the metadata benches (each uses part of it).
#![allow(dead_code)]

use ignifuge_meta::{
    Checksums, DataLocation, ObjectHeaders, ObjectRecord, PartData, ShardRecord, StripeRecord, StripedBlob,
};
use ignifuge_types::{BlobId, NodeId, ObjectKey, VersionId};

/// A one-part object record of `size` bytes stored at `location`.
pub fn object_record(key: &str, i: usize, now_ms: i64, location: DataLocation, size: u64) -> ObjectRecord {
    let checksums = Checksums {
        crc64nvme: Some("AAAAAAAAAAA=".into()),
        checksum_type: Some("FULL_OBJECT".into()),
        ..Default::default()
    };
    let part = PartData {
        part_number: 1,
        size,
        etag: format!("{i:032x}"),
        checksums,
        location,
        last_modified_ms: now_ms,
        started_ms: now_ms,
        began: None,
    };
    ObjectRecord {
        headers: ObjectHeaders { content_type: Some("binary/octet-stream".into()), ..Default::default() },
        ..ObjectRecord::single_part(ObjectKey::new(key), VersionId::new("null"), part)
    }
}

/// One full 5+4 stripe of 1 MiB shards (5 MiB of data), each shard on its own node of three
/// datacenters, with distinct hashes.
pub fn one_stripe(blob: BlobId, i: usize, born_ms: i64) -> DataLocation {
    let shards = (0..9)
        .map(|n| ShardRecord {
            node: NodeId::new(format!("dc{}-n{}", n / 3 + 1, n % 3 + 1)),
            blake3: format!("{:064x}", i * 9 + n),
        })
        .collect();
    DataLocation::Striped(StripedBlob::whole(
        blob,
        (5, 4),
        1 << 20,
        vec![StripeRecord { data_len: 1 << 20, shards, debt: false }],
        born_ms,
    ))
}
