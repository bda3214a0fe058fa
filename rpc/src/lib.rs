//! Internode wire types, request authentication, secret sealing and the HTTP clients that the
//! gateway and the CLI use to reach storage nodes and the metadata.
//!
//! Owns: the cluster configuration file format, the internode URL scheme, the MAC that every
//! internode request carries, sealing of access-key secrets at rest, `NodeClient`, how internode
//! answers are encoded (`encoding`: JSON, or MessagePack where asked for), and the metadata's
//! internode contract (`RemoteMetadata`, `Redirect`, `paths::META_*`).
//! Must never depend on: the gateway, the storage node, raft; it speaks the metadata's records
//! and `Metadata` trait (`ignifuge-meta`) but never runs the state machine.
//! Invariants: every internode request except `/v1/health` is authenticated with a key derived
//! from the cluster secret and carries the sender's data format, which the MAC covers (a node
//! refuses any other: one running cluster is one format); shard bodies are checked against their BLAKE3 hash on both ends.

mod auth;
mod client;
mod cluster;
pub mod encoding;
mod listener;
mod metadata;
mod secrets;
mod wire;

pub use auth::{
    AUTH_HEADER, BODY_HASH_HEADER, FORMAT_HEADER, INTERNODE_CLOCK_SKEW_MAX_MS, InternodeAuth, Refusal, TIME_HEADER,
};
pub use client::{NodeClient, SHARD_RPC_TIMEOUT_MS};
pub use cluster::{ClusterConfig, GatewayEndpoint, MetadataMargin, MetadataRole, NodeEndpoint, raft_id_of};
pub use listener::{
    BoundedListener, HEADER_READ_TIMEOUT_MS, LINGER_BYTES_MAX, LINGER_MS, LingeringClose, StallGuard, UNSENT_BYTES_MAX,
    WRITE_STALL_TIMEOUT_MS, stall_guarded,
};
pub use metadata::{META_FAILOVER_DEADLINE_MS, META_SETTLE_DEADLINE_MS, Redirect, RemoteMetadata};
pub use secrets::SecretSealer;
pub use wire::{
    BLOBS_PER_DELETE_MAX, BlobDeleteAnswer, BlobDeleteRequest, BlobListAnswer, BlobListRequest, HeldBlob, HeldShard,
    InventoryAnswer, InventoryRequest, ScrubStatus, SetAsideReexamined,
};

/// Header carrying a shard's BLAKE3 hash (hex), on PUT requests and GET responses.
pub const SHARD_HASH_HEADER: &str = "x-ignifuge-shard-blake3";
/// Header of a shard GET response checked by the node (`ShardCheck::ByNode`): the CRC64NVME (hex)
/// of the bytes sent, computed by the node right after it checked them against the BLAKE3 hash
/// stored in the shard's file, for readers from before session 35 that check the transfer by it
/// (`NodeClient` now hashes every answer). A response checked by its reader has none.
pub const SHARD_CRC_HEADER: &str = "x-ignifuge-shard-crc64nvme";

/// The transfer checksum of a shard read: CRC64NVME, about 50 GiB/s here against 6 GiB/s for
/// BLAKE3 (docs/benchmarks.md).
pub fn transfer_checksum(data: &[u8]) -> u64 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, data)
}
/// Largest shard a node accepts.
pub const SHARD_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Largest metadata request or response body.
pub const META_BODY_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Paths of the internode API.
pub mod paths {
    use ignifuge_types::{BlobId, ShardId};

    pub const HEALTH: &str = "/v1/health";
    pub const META_APPLY: &str = "/v1/meta/apply";
    pub const META_QUERY: &str = "/v1/meta/query";
    pub const INVENTORY: &str = "/v1/inventory";
    pub const BLOBS: &str = "/v1/blobs";
    pub const BLOBS_DELETE: &str = "/v1/blobs/delete";
    pub const SCRUB_STATUS: &str = "/v1/scrub/status";
    /// `POST`: the node re-examines its set-aside shard copies now (`SetAsideReexamined`).
    pub const SET_ASIDE_REEXAMINE: &str = "/v1/set-aside/reexamine";

    pub fn shard(id: &ShardId) -> String {
        format!("/v1/shards/{}/{}/{}", id.blob, id.stripe, id.shard)
    }

    /// The query of a shard write of a parity shard (`ShardRole::Parity`); none for a data shard.
    pub const PARITY_QUERY: &str = "role=parity";

    /// Where a shard of `role` is written.
    pub fn shard_put(id: &ShardId, role: crate::ShardRole) -> String {
        match role {
            crate::ShardRole::Data => shard(id),
            crate::ShardRole::Parity => format!("{}?{PARITY_QUERY}", shard(id)),
        }
    }

    /// The query of a shard read whose reader checks its bytes (`crate::ShardCheck::ByReader`).
    pub const CHECK_BY_READER_QUERY: &str = "check=reader";

    /// Where shard `id` is read, checked as `check` says.
    pub fn shard_get(id: &ShardId, check: crate::ShardCheck) -> String {
        match check {
            crate::ShardCheck::ByNode => shard(id),
            crate::ShardCheck::ByReader => format!("{}?{CHECK_BY_READER_QUERY}", shard(id)),
        }
    }

    /// The query of a conditional shard delete: only the copy last modified at `modified_ms`.
    pub const IF_MODIFIED_MS_QUERY: &str = "if-modified-ms";

    pub fn blob(blob: &BlobId) -> String {
        format!("/v1/shards/{blob}")
    }
}

/// What a shard is to its stripe, which its node uses to decide how to keep it: data shards are
/// what reads fetch; parity shards are read to rebuild, by the scrubber, and by a read only when
/// a data shard fails or is late (the node writes large ones around its page cache).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardRole {
    Data,
    Parity,
}

impl ShardRole {
    /// Shard `index` of a stripe of `data_shards` data shards (the data shards come first).
    pub fn of(index: usize, data_shards: usize) -> Self {
        if index < data_shards { ShardRole::Data } else { ShardRole::Parity }
    }
}

/// Where a shard read's bytes are checked against the shard's BLAKE3 hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardCheck {
    /// By the node, against the hash stored in the shard's file, before it sends them (with
    /// that hash and a CRC64NVME of the bytes, `SHARD_CRC_HEADER`): a copy that fails is set
    /// aside on the node, which answers 409. What a shard GET without a query gets (the reads of
    /// readers from before session 35).
    ByNode,
    /// By the reader, against the metadata's hash, once they have arrived: the node sends them
    /// as read, with no CRC (a file too short or too long for a shard, or unreadable, still
    /// fails on the node and is set aside there). A reader whose check fails asks again `ByNode`
    /// (`NodeClient::get_shard`), so a bad copy is set aside whenever that request reaches the
    /// node; each byte read is hashed once instead of hashed on the node and checksummed on both
    /// sides (docs/benchmarks.md, "Shards checked where they arrive").
    ByReader,
}

impl ShardCheck {
    /// The check a shard GET's query asks for (`paths::shard_get`).
    pub fn of_query(query: Option<&str>) -> Self {
        match query {
            Some(paths::CHECK_BY_READER_QUERY) => ShardCheck::ByReader,
            _ => ShardCheck::ByNode,
        }
    }
}

#[cfg(test)]
mod shard_role_tests {
    use super::ShardRole;

    #[test]
    fn a_shard_reads_check_travels_in_its_query() {
        use crate::{ShardCheck, paths};
        let id = ignifuge_types::ShardId {
            blob: ignifuge_types::BlobId::new("ab12"),
            stripe: ignifuge_types::StripeIndex(3),
            shard: ignifuge_types::ShardIndex(7),
        };
        for check in [ShardCheck::ByNode, ShardCheck::ByReader] {
            let path = paths::shard_get(&id, check);
            let uri: http::Uri = path.parse().unwrap();
            assert_eq!(uri.path(), paths::shard(&id));
            assert_eq!(ShardCheck::of_query(uri.query()), check, "{path}");
        }
        // An older reader names no check: the node checks.
        assert_eq!(ShardCheck::of_query(Some("other=1")), ShardCheck::ByNode);
    }

    #[test]
    fn the_shards_after_the_data_shards_are_parity() {
        let roles: Vec<ShardRole> = (0..9).map(|i| ShardRole::of(i, 5)).collect();
        assert_eq!(roles[..5], [ShardRole::Data; 5]);
        assert_eq!(roles[5..], [ShardRole::Parity; 4]);
    }
}

/// Errors of internode calls.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("node {0} unreachable: {1}")]
    Unreachable(String, String),
    #[error("node {0} timed out")]
    Timeout(String),
    #[error("node {node} answered {status}: {message}")]
    Status { node: String, status: u16, message: String },
    #[error("shard from {0} failed its BLAKE3 check")]
    Corrupt(String),
    #[error("not found on {0}")]
    NotFound(String),
    #[error("bad response from {0}: {1}")]
    BadResponse(String, String),
    #[error("cluster configuration: {0}")]
    Config(String),
    #[error("secret sealing: {0}")]
    Sealing(String),
}
