use crate::RpcError;
use ignifuge_placement::{Datacenter, FailureBudget, Geometry, Node, Topology};
use ignifuge_types::{DatacenterId, NodeId};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

/// A storage node and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEndpoint {
    pub id: NodeId,
    pub datacenter: DatacenterId,
    pub address: SocketAddr,
    #[serde(default = "one")]
    pub capacity_weight: u64,
}

fn one() -> u64 {
    1
}

/// A gateway and where it listens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayEndpoint {
    pub datacenter: DatacenterId,
    pub address: SocketAddr,
}

/// The description of a cluster: datacenters, nodes and their addresses, the metadata's voters
/// and learners, the default storage class. Every process reads one at start (`cluster.toml`);
/// once the cluster runs, the authoritative copy is the versioned layout in the replicated
/// metadata (`ignifuge admin layout show|apply`), and a process's file only needs to name the
/// voters to reach it. The cluster secret is not in it: it lives in its own 0600 file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    pub region: String,
    /// The metadata's Raft voters. They must keep every acknowledged record through the default
    /// class's failure budget (`metadata_margin`): with 3 datacenters and a budget of a datacenter
    /// plus a node, at least 2 per datacenter (6: a record is on 4, the loss leaves one), and 3 per
    /// datacenter (9: quorum 5, the loss leaves 5) to keep accepting writes and reads meanwhile.
    pub metadata_voters: Vec<NodeId>,
    /// Further nodes that keep a full, non-voting copy of the metadata (Raft learners): a local
    /// copy in their datacenter, and the candidates to replace a lost voter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata_learners: Vec<NodeId>,
    /// The failure budget of the default storage class.
    pub default_class: FailureBudget,
    /// The Reed-Solomon geometry of the default class, pinned when the layout is first stored so
    /// that adding nodes never silently changes how new stripes are cut. None: derive it from the
    /// topology and the budget (a file that was never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geometry: Option<Geometry>,
    /// Outage policy of the default class: while the full budget cannot be met (a datacenter
    /// down), accept writes that still meet this reduced budget, recorded as durability debt.
    /// None refuses such writes (503 SlowDown).
    #[serde(default)]
    pub degraded_minimum: Option<FailureBudget>,
    pub nodes: Vec<NodeEndpoint>,
    pub gateways: Vec<GatewayEndpoint>,
}

/// How the metadata voters fare under a failure budget (`ClusterConfig::metadata_margin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataMargin {
    pub voters: usize,
    pub quorum: usize,
    /// Voters lost in the worst case of the budget.
    pub worst_loss: usize,
    /// Every acknowledged record keeps a copy.
    pub durable: bool,
    /// A quorum is left: the metadata keeps answering.
    pub available: bool,
}

/// A node's role in the metadata group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRole {
    Voter,
    Learner,
}

/// A node's Raft id: derived from its name, so that it never depends on the order of a list and a
/// node keeps it whatever its role (learner, then voter). 53 bits, exact in any JSON reader.
pub fn raft_id_of(node: &NodeId) -> u64 {
    let hash = blake3::Hasher::new_derive_key("ignifuge raft node id").update(node.0.as_bytes()).finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(bytes) & ((1u64 << 53) - 1)
}

impl ClusterConfig {
    /// Three datacenters of three nodes (`dc1-n1` ... `dc3-n3`, node `i` of 0..9 at
    /// `address(i)`), the default class a datacenter plus a node, no metadata members nor
    /// gateways: the cluster the unit tests of the crates above build a data path over.
    pub fn three_by_three(address: impl Fn(usize) -> SocketAddr) -> Self {
        let nodes = (0..9)
            .map(|i| NodeEndpoint {
                id: NodeId::new(format!("dc{}-n{}", i / 3 + 1, i % 3 + 1)),
                datacenter: DatacenterId::new(format!("dc{}", i / 3 + 1)),
                address: address(i),
                capacity_weight: 1,
            })
            .collect();
        ClusterConfig {
            region: "us-east-1".into(),
            metadata_voters: Vec::new(),
            metadata_learners: Vec::new(),
            geometry: None,
            default_class: FailureBudget { datacenters: 1, nodes: 1 },
            degraded_minimum: None,
            nodes,
            gateways: Vec::new(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, RpcError> {
        let text = std::fs::read_to_string(path).map_err(|e| RpcError::Config(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| RpcError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses and validates a cluster description (a file, or a layout document).
    pub fn parse(text: &str) -> Result<Self, RpcError> {
        let config: ClusterConfig = toml::from_str(text).map_err(|e| RpcError::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), RpcError> {
        let bad = |m: String| Err(RpcError::Config(m));
        self.topology().validate().map_err(|e| RpcError::Config(e.to_string()))?;
        if self.metadata_voters.is_empty() {
            return bad("no metadata voters".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for node in &self.nodes {
            if !seen.insert(&node.id) {
                return bad(format!("node {} is listed twice", node.id));
            }
        }
        let mut members = std::collections::BTreeSet::new();
        for member in self.metadata_voters.iter().chain(&self.metadata_learners) {
            if self.node(member).is_none() {
                return bad(format!("metadata member {member} is not a node"));
            }
            if !members.insert(member) {
                return bad(format!("{member} is listed twice among the metadata voters and learners"));
            }
        }
        self.class_geometry().map_err(|e| RpcError::Config(e.to_string()))?;
        Ok(())
    }

    /// Refuses a layout whose metadata voters could lose acknowledged records within the default
    /// class's failure budget. Checked on every layout a cluster is created with or changed to
    /// (not when a stored or running layout is read: an older cluster must stay readable, and
    /// changeable into one that passes).
    pub fn check_metadata_margin(&self) -> Result<(), RpcError> {
        let margin = self.metadata_margin(self.default_class);
        if !margin.durable {
            return Err(RpcError::Config(format!(
                "the metadata's {} voters (a quorum of {}) would lose acknowledged records in a loss of {} \
                 datacenter(s) plus {} node(s), the default class's budget: a worst-case loss takes {} of them. \
                 Name more voters per datacenter (at least 2 per datacenter for 1 datacenter + 1 node)",
                margin.voters,
                margin.quorum,
                self.default_class.datacenters,
                self.default_class.nodes,
                margin.worst_loss
            )));
        }
        Ok(())
    }

    /// What the metadata voters survive of `budget`: the worst loss takes the datacenters with
    /// the most voters, then further voters. Durable: every committed record (on a quorum) keeps
    /// a copy. Available: a quorum is left, so reads and writes go on without an operator.
    pub fn metadata_margin(&self, budget: FailureBudget) -> MetadataMargin {
        let mut per_datacenter: std::collections::BTreeMap<&DatacenterId, usize> = Default::default();
        for voter in &self.metadata_voters {
            if let Some(node) = self.node(voter) {
                *per_datacenter.entry(&node.datacenter).or_default() += 1;
            }
        }
        let mut counts: Vec<usize> = per_datacenter.into_values().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let voters = self.metadata_voters.len();
        let in_lost_datacenters: usize = counts.iter().take(budget.datacenters as usize).sum();
        let worst_loss = (in_lost_datacenters + budget.nodes as usize).min(voters);
        let quorum = voters / 2 + 1;
        MetadataMargin {
            voters,
            quorum,
            worst_loss,
            durable: worst_loss < quorum,
            available: voters - worst_loss >= quorum,
        }
    }

    /// The default class's geometry: the pinned one, checked against the topology (every
    /// datacenter still has a distinct node for each of its shards), or derived.
    pub fn class_geometry(&self) -> Result<Geometry, ignifuge_placement::PlacementError> {
        let topology = self.topology();
        match self.geometry {
            Some(geometry) => {
                ignifuge_placement::select_slots(&topology, geometry, b"layout check")?;
                Ok(geometry)
            }
            None => ignifuge_placement::derive_geometry(&topology, self.default_class),
        }
    }

    /// Whether `next` may replace this layout: the storage class and its geometry stay the same
    /// (existing stripes were cut and placed by them; changing them needs a migration), and a node
    /// leaves only if it is in `drained` (declared out, and repaired around since).
    pub fn check_change(
        &self,
        next: &ClusterConfig,
        drained: &std::collections::BTreeSet<NodeId>,
    ) -> Result<(), RpcError> {
        let bad = |m: String| Err(RpcError::Config(m));
        let (ours, theirs) = (
            self.class_geometry().map_err(|e| RpcError::Config(e.to_string()))?,
            next.class_geometry().map_err(|e| RpcError::Config(e.to_string()))?,
        );
        if ours != theirs || self.default_class != next.default_class {
            return bad(format!(
                "the default class changes from {} ({}+{}) to {} ({}+{}); existing stripes need the old one",
                self.default_class,
                ours.data_shards,
                ours.parity_shards,
                next.default_class,
                theirs.data_shards,
                theirs.parity_shards
            ));
        }
        if let Some(gone) = self.nodes.iter().find(|n| next.node(&n.id).is_none() && !drained.contains(&n.id)) {
            return bad(format!(
                "node {} would leave the layout while stripes may still need it: stop it, declare it out \
                 (`ignifuge admin node out`) and wait for a repair round that starts after that, counts its \
                 shards as lost and finds every stripe at full budget",
                gone.id
            ));
        }
        Ok(())
    }

    /// This layout with its geometry pinned, as stored in the metadata.
    pub fn pinned(mut self) -> Result<Self, RpcError> {
        self.geometry = Some(self.class_geometry().map_err(|e| RpcError::Config(e.to_string()))?);
        Ok(self)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("cluster config always serialises")
    }

    /// (Raft id, node) of every metadata voter.
    pub fn voters(&self) -> Vec<(u64, &NodeEndpoint)> {
        self.members(&self.metadata_voters)
    }

    /// (Raft id, node) of every metadata learner.
    pub fn learners(&self) -> Vec<(u64, &NodeEndpoint)> {
        self.members(&self.metadata_learners)
    }

    fn members(&self, ids: &[NodeId]) -> Vec<(u64, &NodeEndpoint)> {
        ids.iter().filter_map(|id| self.node(id).map(|n| (raft_id_of(id), n))).collect()
    }

    /// The node's role in the metadata group, if it keeps a copy.
    pub fn metadata_role(&self, node: &NodeId) -> Option<MetadataRole> {
        if self.metadata_voters.contains(node) {
            Some(MetadataRole::Voter)
        } else if self.metadata_learners.contains(node) {
            Some(MetadataRole::Learner)
        } else {
            None
        }
    }

    /// The node (of any role) with this Raft id.
    pub fn node_by_raft_id(&self, id: u64) -> Option<&NodeEndpoint> {
        self.nodes.iter().find(|n| raft_id_of(&n.id) == id)
    }

    pub fn node(&self, id: &NodeId) -> Option<&NodeEndpoint> {
        self.nodes.iter().find(|n| &n.id == id)
    }

    /// The placement topology: datacenters in order of first appearance, one disk per node.
    pub fn topology(&self) -> Topology {
        let mut datacenters: Vec<Datacenter> = Vec::new();
        for node in &self.nodes {
            let entry = Node { id: node.id.clone(), capacity_weight: node.capacity_weight, disks: 1 };
            match datacenters.iter_mut().find(|d| d.id == node.datacenter) {
                Some(dc) => dc.nodes.push(entry),
                None => datacenters.push(Datacenter { id: node.datacenter.clone(), nodes: vec![entry] }),
            }
        }
        Topology { datacenters }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_by_three(extra_in_dc1: usize) -> ClusterConfig {
        let mut nodes = Vec::new();
        for dc in 1..=3 {
            let count = if dc == 1 { 3 + extra_in_dc1 } else { 3 };
            for n in 1..=count {
                nodes.push(NodeEndpoint {
                    id: NodeId::new(format!("dc{dc}-n{n}")),
                    datacenter: DatacenterId::new(format!("dc{dc}")),
                    address: SocketAddr::from(([127, 0, 0, 1], (7000 + dc * 10 + n) as u16)),
                    capacity_weight: 1,
                });
            }
        }
        ClusterConfig {
            region: "us-east-1".into(),
            metadata_voters: ["dc1-n1", "dc2-n1", "dc3-n1", "dc1-n3", "dc2-n3", "dc3-n3"].map(NodeId::new).to_vec(),
            metadata_learners: vec![NodeId::new("dc1-n2")],
            default_class: FailureBudget { datacenters: 1, nodes: 1 },
            geometry: None,
            degraded_minimum: None,
            nodes,
            gateways: Vec::new(),
        }
    }

    #[test]
    fn metadata_voters_must_keep_records_through_the_class_budget() {
        let budget = FailureBudget { datacenters: 1, nodes: 1 };
        let mut config = three_by_three(0);
        let voters = |names: &[&str]| names.iter().map(|n| NodeId::new(*n)).collect::<Vec<_>>();
        // One voter per datacenter: the worst loss takes 2 of 3, the quorum.
        config.metadata_voters = voters(&["dc1-n1", "dc2-n1", "dc3-n1"]);
        let margin = config.metadata_margin(budget);
        assert_eq!((margin.quorum, margin.worst_loss, margin.durable, margin.available), (2, 2, false, false));
        let refused = config.check_metadata_margin().unwrap_err().to_string();
        assert!(refused.contains("would lose acknowledged records"), "{refused}");
        ClusterConfig::parse(&config.to_toml()).expect("an older layout stays readable");
        // Two per datacenter: records survive (4 of 6 hold each, 3 lost) but no quorum is left.
        config.metadata_voters = voters(&["dc1-n1", "dc1-n2", "dc2-n1", "dc2-n2", "dc3-n1", "dc3-n2"]);
        config.metadata_learners.clear();
        let margin = config.metadata_margin(budget);
        assert_eq!((margin.quorum, margin.worst_loss, margin.durable, margin.available), (4, 3, true, false));
        config.check_metadata_margin().expect("6 voters keep every record");
        // Three per datacenter: a quorum of 5 is left after losing 4.
        config.metadata_voters = config.nodes.iter().map(|n| n.id.clone()).collect();
        let margin = config.metadata_margin(budget);
        assert_eq!((margin.quorum, margin.worst_loss, margin.durable, margin.available), (5, 4, true, true));
        // Uneven, 4 + 2 + 2 voters: losing the big datacenter plus one takes 5 of 8, a quorum.
        let mut uneven = three_by_three(1);
        uneven.metadata_voters =
            voters(&["dc1-n1", "dc1-n2", "dc1-n3", "dc1-n4", "dc2-n1", "dc2-n2", "dc3-n1", "dc3-n2"]);
        uneven.metadata_learners.clear();
        let margin = uneven.metadata_margin(budget);
        assert_eq!((margin.quorum, margin.worst_loss, margin.durable), (5, 5, false));
    }

    #[test]
    fn raft_ids_follow_node_names_not_list_positions() {
        let config = three_by_three(0);
        let mut reordered = config.clone();
        reordered.nodes.reverse();
        reordered.metadata_voters.reverse();
        let ids = |c: &ClusterConfig| c.voters().into_iter().map(|(id, n)| (n.id.clone(), id)).collect::<Vec<_>>();
        let mut a = ids(&config);
        let mut b = ids(&reordered);
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert_eq!(config.learners()[0].0, raft_id_of(&NodeId::new("dc1-n2")));
        assert!(config.voters().iter().all(|(id, _)| *id < 1 << 53));
        assert_eq!(config.node_by_raft_id(raft_id_of(&NodeId::new("dc2-n3"))).unwrap().id.0, "dc2-n3");
    }

    #[test]
    fn a_stored_layout_keeps_its_geometry_when_nodes_are_added() {
        let stored = three_by_three(0).pinned().unwrap();
        let geometry = stored.geometry.unwrap();
        assert_eq!((geometry.data_shards, geometry.parity_shards), (5, 4));
        // A fourth node in every datacenter would derive a wider geometry; pinned, it stays 5+4.
        let mut grown = three_by_three(0);
        for dc in 1..=3 {
            grown.nodes.push(NodeEndpoint {
                id: NodeId::new(format!("dc{dc}-n4")),
                datacenter: DatacenterId::new(format!("dc{dc}")),
                address: SocketAddr::from(([127, 0, 0, 1], (7100 + dc) as u16)),
                capacity_weight: 1,
            });
        }
        assert_ne!(grown.class_geometry().unwrap(), geometry, "the derived geometry moves with the topology");
        grown.geometry = stored.geometry;
        let none = std::collections::BTreeSet::new();
        stored.check_change(&grown, &none).unwrap();
        let mut other_class = grown.clone();
        other_class.geometry = None;
        assert!(stored.check_change(&other_class, &none).is_err());
        // A node that may hold shards cannot silently disappear; a drained one can.
        let mut shrunk = grown.clone();
        shrunk.nodes.retain(|n| n.id.0 != "dc2-n4");
        assert!(grown.clone().pinned().unwrap().check_change(&shrunk, &none).is_err());
        let drained = [NodeId::new("dc2-n4")].into_iter().collect();
        grown.pinned().unwrap().check_change(&shrunk, &drained).unwrap();
    }

    #[test]
    fn a_member_must_be_a_node_and_listed_once() {
        let mut config = three_by_three(0);
        config.metadata_learners.push(NodeId::new("dc1-n1"));
        assert!(ClusterConfig::parse(&config.to_toml()).is_err());
        let mut config = three_by_three(0);
        config.metadata_learners.push(NodeId::new("nowhere"));
        assert!(ClusterConfig::parse(&config.to_toml()).is_err());
        assert!(ClusterConfig::parse(&three_by_three(1).to_toml()).is_ok());
    }
}
