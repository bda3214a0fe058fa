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
    /// The node hosting the metadata until it is replicated by Raft.
    pub metadata_node: NodeId,
    /// The failure budget of the default storage class.
    pub default_class: FailureBudget,
    pub nodes: Vec<NodeEndpoint>,
    pub gateways: Vec<GatewayEndpoint>,
}

impl ClusterConfig {
    pub fn load(path: &Path) -> Result<Self, RpcError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RpcError::Config(format!("{}: {e}", path.display())))?;
        let config: ClusterConfig = toml::from_str(&text)
            .map_err(|e| RpcError::Config(format!("{}: {e}", path.display())))?;
        config
            .topology()
            .validate()
            .map_err(|e| RpcError::Config(e.to_string()))?;
        if config.node(&config.metadata_node).is_none() {
            return Err(RpcError::Config(format!(
                "metadata node {} is not a node",
                config.metadata_node
            )));
        }
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("cluster config always serialises")
    }

    pub fn node(&self, id: &NodeId) -> Option<&NodeEndpoint> {
        self.nodes.iter().find(|n| &n.id == id)
    }

    /// The placement topology: datacenters in order of first appearance, one disk per node.
    pub fn topology(&self) -> Topology {
        let mut datacenters: Vec<Datacenter> = Vec::new();
        for node in &self.nodes {
            let entry = Node {
                id: node.id.clone(),
                capacity_weight: node.capacity_weight,
                disks: 1,
            };
            match datacenters.iter_mut().find(|d| d.id == node.datacenter) {
                Some(dc) => dc.nodes.push(entry),
                None => datacenters.push(Datacenter {
                    id: node.datacenter.clone(),
                    nodes: vec![entry],
                }),
            }
        }
        Topology { datacenters }
    }
}
