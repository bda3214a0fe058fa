//! The placement engine: where every shard of every stripe lives, and what that survives.
//!
//! **Owns:** the topology model (datacenters, weighted nodes, disks) and its TOML form; storage
//! classes and their failure budgets; the derivation and verification of Reed-Solomon geometries
//! (`k`, `m`, shards per datacenter); the choice of a (datacenter, node, disk) slot for each shard
//! of a stripe; the survivability check the gateway runs on the shards that acknowledged a PUT;
//! rebalance plans for a topology change; a simple, documented durability model; and the
//! `explain` report behind `ignifuge placement explain`.
//!
//! **Must never depend on:** any I/O (files, sockets, clocks, randomness from the environment),
//! tokio or any async runtime, or any Ignifuge crate other than `ignifuge-types`. It is a pure
//! function of its inputs so that it can be property-tested and called from anywhere, and so that
//! every gateway computes the same placement.
//!
//! **Invariants:**
//! - `select_slots` returns exactly `k + m` slots, exactly `shards_per_datacenter` in every
//!   datacenter, no two on the same node; it is deterministic across runs, machines and
//!   platforms (integer-only hashing, see `hash.rs`) and independent of the order of the topology.
//! - A geometry returned by `derive_geometry` or accepted by `verify_geometry` survives its budget
//!   on that topology: after losing any `budget.datacenters` datacenters and `budget.nodes` more
//!   nodes, at least `k` shards of every stripe remain.
//! - `check_survivability` is exact: it reports the worst case over all failure sets of the budget.
//! - Executing a `RebalancePlan` in `steps()` order never leaves a stripe below its budget.
//! - The placement of existing data changes only with the topology: the golden test in `slots.rs`
//!   pins the hash functions, which are part of the on-disk contract.

pub mod class;
pub mod durability;
mod error;
pub mod explain;
mod hash;
pub mod rebalance;
pub mod slots;
pub mod survival;
pub mod topology;

pub use class::{
    FailureBudget, Geometry, MAX_TOTAL_SHARDS, StorageClass, classes_from_toml_str, derive_geometry, find_class,
    replica_count, verify_geometry,
};
pub use durability::{DurabilityAssumptions, DurabilityEstimate, LossCause, durability_estimate};
pub use error::PlacementError;
pub use explain::{Explanation, explain, explain_with};
pub use rebalance::{NodeMovement, RebalancePlan, RebalanceStep, ShardMove, rebalance_plan, sample_stripe_keys};
pub use slots::{Slot, SlotRef, select_replica_slots, select_slot_refs, select_slots};
pub use survival::{SurvivabilityReport, check_survivability};
pub use topology::{Datacenter, Node, Topology};

#[cfg(test)]
pub(crate) mod test_support {
    use crate::{Datacenter, Node, Topology};
    use ignifuge_types::{DatacenterId, NodeId};

    /// `datacenters` datacenters `dc1..` of `nodes` nodes `dcX-n1..`, weight 1, one disk.
    pub fn uniform(datacenters: usize, nodes: usize) -> Topology {
        Topology {
            datacenters: (1..=datacenters)
                .map(|d| Datacenter {
                    id: DatacenterId::new(format!("dc{d}")),
                    nodes: (1..=nodes)
                        .map(|n| Node { id: NodeId::new(format!("dc{d}-n{n}")), capacity_weight: 1, disks: 1 })
                        .collect(),
                })
                .collect(),
        }
    }
}
