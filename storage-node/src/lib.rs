//! The storage node daemon: stores shards on local disk, indexes them, hosts a Raft replica of the
//! metadata when it is a metadata voter (started again in place when it stops: `replica`), and
//! serves the authenticated internode API.
//!
//! Owns: the on-disk shard format and layout, the shard index, the internode HTTP server.
//! Must never depend on: the gateway or the S3 protocol.
//! Invariants: a shard is acknowledged only after its bytes and its directory entry are fsynced;
//! shard files are named only from server-generated ids (never a client-supplied name); a shard
//! read is checked against the BLAKE3 hash written with it before it is sent, and a mismatch
//! reported as corruption (409, the copy set aside), never served, unless its reader asks to
//! check the bytes itself (`ShardCheck::ByReader`: the reader hashes them against the metadata's
//! hash and asks again `ByNode` when they fail, so a bad copy is set aside whenever that second
//! request reaches the node).

mod group_sync;
mod replica;
mod scrub;
mod server;
mod shard_buffer;
mod shard_store;

pub use group_sync::{GroupSync, SyncMode, WriteStart};
pub use replica::{MetadataReplica, ReplicaStart};
pub use scrub::{ScrubConfig, Scrubber};
pub use server::{NodeServer, serve};
pub use shard_buffer::AroundCache;
pub use shard_store::{ShardStore, StoreError};

use std::path::Path;
use std::sync::Arc;

/// Opens the node's ordered store at `path` with the production engine (RocksDB).
#[cfg(feature = "rocksdb")]
pub fn open_store(path: &Path) -> Result<Arc<dyn ignifuge_kv::KvStore>, ignifuge_kv::KvError> {
    std::fs::create_dir_all(path).map_err(|e| ignifuge_kv::KvError::Engine(e.to_string()))?;
    Ok(Arc::new(ignifuge_kv::RocksKv::open(path)?))
}

/// Without the `rocksdb` feature (unit tests) the node keeps its index in memory.
#[cfg(not(feature = "rocksdb"))]
pub fn open_store(_path: &Path) -> Result<Arc<dyn ignifuge_kv::KvStore>, ignifuge_kv::KvError> {
    Ok(Arc::new(ignifuge_kv::MemoryKv::default()))
}
