use crate::RpcError;
use ignifuge_placement::{Datacenter, FailureBudget, Node, Topology};
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

/// The static description of a cluster that every process reads at start (`cluster.toml`).
/// The cluster secret is not in it: it lives in its own 0600 file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    pub region: String,
    /// The metadata's Raft voters, one per datacenter. A voter's Raft id is its position here + 1.
    pub metadata_voters: Vec<NodeId>,
    /// The failure budget of the default storage class.
    pub default_class: FailureBudget,
    /// Outage policy of the default class: while the full budget cannot be met (a datacenter
    /// down), accept writes that still meet this reduced budget, recorded as durability debt.
    /// None refuses such writes (503 SlowDown).
    #[serde(default)]
    pub degraded_minimum: Option<FailureBudget>,
    pub nodes: Vec<NodeEndpoint>,
    pub gateways: Vec<GatewayEndpoint>,
}

impl ClusterConfig {
    pub fn load(path: &Path) -> Result<Self, RpcError> {
        let text = std::fs::read_to_string(path).map_err(|e| RpcError::Config(format!("{}: {e}", path.display())))?;
        let config: ClusterConfig =
            toml::from_str(&text).map_err(|e| RpcError::Config(format!("{}: {e}", path.display())))?;
        config.topology().validate().map_err(|e| RpcError::Config(e.to_string()))?;
        if config.metadata_voters.is_empty() {
            return Err(RpcError::Config("no metadata voters".into()));
        }
        for voter in &config.metadata_voters {
            if config.node(voter).is_none() {
                return Err(RpcError::Config(format!("metadata voter {voter} is not a node")));
            }
        }
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("cluster config always serialises")
    }

    /// (Raft id, node) of every metadata voter.
    pub fn voters(&self) -> Vec<(u64, &NodeEndpoint)> {
        self.metadata_voters.iter().enumerate().filter_map(|(i, id)| self.node(id).map(|n| (i as u64 + 1, n))).collect()
    }

    /// This node's Raft id, when it is a metadata voter.
    pub fn raft_id(&self, node: &NodeId) -> Option<u64> {
        self.metadata_voters.iter().position(|v| v == node).map(|i| i as u64 + 1)
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
