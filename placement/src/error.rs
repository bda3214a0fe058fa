use crate::class::{FailureBudget, Geometry};
use ignifuge_types::{DatacenterId, NodeId};

/// Everything the placement engine can refuse. Messages are written for the operator who reads them
/// in `ignifuge placement explain` or in a gateway's startup error: they say what is wrong and what
/// would fix it.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("invalid TOML: {0}")]
    Toml(#[from] toml::de::Error),

    #[error("the topology has no datacenters")]
    NoDatacenters,

    #[error("a {what} has an empty id")]
    EmptyId { what: &'static str },

    #[error("datacenter {0} appears more than once")]
    DuplicateDatacenter(DatacenterId),

    #[error("datacenter {0} has no nodes")]
    EmptyDatacenter(DatacenterId),

    #[error("node {0} appears more than once (node ids are unique across the whole cluster)")]
    DuplicateNode(NodeId),

    #[error("node {0} has capacity_weight 0; remove the node instead, or give it a positive weight")]
    ZeroCapacity(NodeId),

    #[error("node {0} has 0 disks")]
    ZeroDisks(NodeId),

    #[error("invalid geometry {geometry}: {reason}")]
    InvalidGeometry { geometry: Geometry, reason: String },

    #[error(
        "geometry {geometry} puts {per_datacenter} shards in each datacenter, {total} in all, \
         but the topology has {datacenters} datacenters ({datacenters} x {per_datacenter} != {total})",
        per_datacenter = geometry.shards_per_datacenter,
        total = geometry.total_shards()
    )]
    GeometryDoesNotFitTopology { geometry: Geometry, datacenters: u32 },

    #[error(
        "datacenter {datacenter} has {nodes} node(s) but {needed} shards of a stripe must go there, \
         each on its own node; add nodes to it or use fewer shards per datacenter"
    )]
    NotEnoughNodes { datacenter: DatacenterId, nodes: u32, needed: u32 },

    #[error(
        "{datacenters} datacenter(s) cannot survive the loss of {lost} datacenter(s): \
         losing them all loses everything; lower the budget or add datacenters",
        lost = budget.datacenters
    )]
    BudgetExceedsDatacenters { budget: FailureBudget, datacenters: u32 },

    #[error("{0}")]
    BudgetExceedsNodes(String),

    #[error("{0}")]
    NotCheaperThanReplication(String),

    #[error("geometry {geometry} does not survive {budget}: {reason}")]
    GeometryTooWeak { geometry: Geometry, budget: FailureBudget, reason: String },

    #[error("storage class {name:?} is invalid: {reason}")]
    InvalidClass { name: String, reason: String },

    #[error("storage class {0:?} is defined more than once")]
    DuplicateClass(String),

    #[error("no storage class named {name:?} (known: {known})")]
    UnknownClass { name: String, known: String },
}
