//! The cluster as placement sees it: datacenters (failure zones) holding weighted nodes with disks.

use crate::PlacementError;
use ignifuge_types::{DatacenterId, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The whole cluster. The order of datacenters and of nodes does not matter to placement: slots are
/// chosen by hashing ids, so reordering a file moves no data.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub datacenters: Vec<Datacenter>,
}

/// A failure zone: everything in it may be lost at once.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Datacenter {
    pub id: DatacenterId,
    pub nodes: Vec<Node>,
}

/// A storage node. `capacity_weight` is relative (a node of weight 2 should hold about twice the
/// shards of a node of weight 1); `disks` are numbered `0..disks` and share the node's weight equally.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub id: NodeId,
    #[serde(default = "one_u64")]
    pub capacity_weight: u64,
    #[serde(default = "one_u32")]
    pub disks: u32,
}

fn one_u64() -> u64 {
    1
}

fn one_u32() -> u32 {
    1
}

/// A topology file may also hold `[[classes]]`; they are read by `classes_from_toml_str`, and
/// only checked to be present-or-absent here so that one file can describe a whole cluster.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyFile {
    #[serde(default)]
    datacenters: Vec<Datacenter>,
    #[serde(default)]
    #[allow(dead_code)]
    // parsed so that a combined file is accepted; read by classes_from_toml_str
    classes: Option<toml::Value>,
}

impl Topology {
    /// Parses the TOML shape of `examples/*.toml` and validates the result.
    pub fn from_toml_str(s: &str) -> Result<Topology, PlacementError> {
        let file: TopologyFile = toml::from_str(s)?;
        let topology = Topology { datacenters: file.datacenters };
        topology.validate()?;
        Ok(topology)
    }

    /// Checks what every other function of this crate assumes: at least one datacenter, unique
    /// non-empty ids (node ids unique across the cluster), no empty datacenter, positive weights
    /// and disk counts. `select_slots` does not re-validate (it runs per stripe); call this once
    /// when a topology is loaded.
    pub fn validate(&self) -> Result<(), PlacementError> {
        if self.datacenters.is_empty() {
            return Err(PlacementError::NoDatacenters);
        }
        let mut datacenter_ids = HashSet::new();
        let mut node_ids = HashSet::new();
        for datacenter in &self.datacenters {
            if datacenter.id.0.is_empty() {
                return Err(PlacementError::EmptyId { what: "datacenter" });
            }
            if !datacenter_ids.insert(&datacenter.id) {
                return Err(PlacementError::DuplicateDatacenter(datacenter.id.clone()));
            }
            if datacenter.nodes.is_empty() {
                return Err(PlacementError::EmptyDatacenter(datacenter.id.clone()));
            }
            for node in &datacenter.nodes {
                if node.id.0.is_empty() {
                    return Err(PlacementError::EmptyId { what: "node" });
                }
                if !node_ids.insert(&node.id) {
                    return Err(PlacementError::DuplicateNode(node.id.clone()));
                }
                if node.capacity_weight == 0 {
                    return Err(PlacementError::ZeroCapacity(node.id.clone()));
                }
                if node.disks == 0 {
                    return Err(PlacementError::ZeroDisks(node.id.clone()));
                }
            }
        }
        Ok(())
    }

    /// The node with this id and the datacenter that holds it.
    pub fn node(&self, id: &NodeId) -> Option<(&Datacenter, &Node)> {
        self.datacenters
            .iter()
            .find_map(|datacenter| datacenter.nodes.iter().find(|node| &node.id == id).map(|node| (datacenter, node)))
    }

    /// The datacenter with this id.
    pub fn datacenter(&self, id: &DatacenterId) -> Option<&Datacenter> {
        self.datacenters.iter().find(|datacenter| &datacenter.id == id)
    }

    /// Number of nodes in the whole cluster.
    pub fn node_count(&self) -> usize {
        self.datacenters.iter().map(|datacenter| datacenter.nodes.len()).sum()
    }

    /// Number of nodes of the smallest datacenter (0 when there is none).
    pub fn min_nodes_per_datacenter(&self) -> u32 {
        self.datacenters.iter().map(|datacenter| datacenter.nodes.len() as u32).min().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE_BY_THREE: &str = include_str!("../../examples/three-dc-3x3.toml");

    #[test]
    fn the_example_file_parses_with_defaults() {
        let topology = Topology::from_toml_str(THREE_BY_THREE).expect("example parses");
        assert_eq!(topology.datacenters.len(), 3);
        assert!(topology.datacenters.iter().all(|dc| dc.nodes.len() == 3));
        let (datacenter, node) = topology.node(&NodeId::new("dc2-n3")).expect("node exists");
        assert_eq!(datacenter.id, DatacenterId::new("dc2"));
        assert_eq!(node.capacity_weight, 1);
        assert_eq!(node.disks, 1);
        assert!(topology.node(&NodeId::new("dc9-n1")).is_none());
    }

    #[test]
    fn weights_and_disks_default_to_one() {
        let topology = Topology::from_toml_str(
            "[[datacenters]]\nid = \"a\"\n[[datacenters.nodes]]\nid = \"a1\"\n\
             [[datacenters.nodes]]\nid = \"a2\"\ncapacity_weight = 3\ndisks = 4\n",
        )
        .expect("parses");
        assert_eq!(topology.datacenters[0].nodes[0], Node { id: NodeId::new("a1"), capacity_weight: 1, disks: 1 });
        assert_eq!(topology.datacenters[0].nodes[1], Node { id: NodeId::new("a2"), capacity_weight: 3, disks: 4 });
    }

    fn error_of(toml: &str) -> String {
        Topology::from_toml_str(toml).expect_err("must be rejected").to_string()
    }

    #[test]
    fn invalid_topologies_are_rejected_with_a_reason() {
        assert_eq!(error_of(""), "the topology has no datacenters");
        assert_eq!(error_of("[[datacenters]]\nid = \"a\"\nnodes = []\n"), "datacenter a has no nodes");
        assert!(
            error_of(
                "[[datacenters]]\nid = \"a\"\n[[datacenters.nodes]]\nid = \"n\"\n\
                 [[datacenters]]\nid = \"a\"\n[[datacenters.nodes]]\nid = \"m\"\n"
            )
            .contains("datacenter a appears more than once")
        );
        assert!(
            error_of(
                "[[datacenters]]\nid = \"a\"\n[[datacenters.nodes]]\nid = \"n\"\n\
                 [[datacenters]]\nid = \"b\"\n[[datacenters.nodes]]\nid = \"n\"\n"
            )
            .contains("node n appears more than once")
        );
        assert!(
            error_of("[[datacenters]]\nid = \"a\"\n[[datacenters.nodes]]\nid = \"n\"\ncapacity_weight = 0\n")
                .contains("capacity_weight 0")
        );
        assert!(
            error_of("[[datacenters]]\nid = \"a\"\n[[datacenters.nodes]]\nid = \"n\"\ndisks = 0\n").contains("0 disks")
        );
        assert!(error_of("[[datacenters]]\nid = \"\"\n[[datacenters.nodes]]\nid = \"n\"\n").contains("empty id"));
    }

    #[test]
    fn a_misspelt_field_is_an_error_not_a_silent_default() {
        let message = error_of("[[datacenters]]\nid = \"a\"\n[[datacenters.nodes]]\nid = \"n\"\ncapacity_wieght = 2\n");
        assert!(message.contains("capacity_wieght"), "{message}");
    }
}
