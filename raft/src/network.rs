//! Raft messages over the authenticated internode HTTP API, on their own connection pool so
//! heartbeats never queue behind shard transfers. Appends a follower accepts extend the leader's
//! lease (`lease`).

use crate::lease::{Leases, boottime};
use crate::{TypeConfig, paths};
use ignifuge_rpc::{NodeClient, RpcError};
use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::sync::Arc;

/// Makes one `Network` per peer.
pub struct NetworkFactory {
    client: NodeClient,
    leases: Arc<Leases>,
}

/// The connection to one peer.
pub struct Network {
    client: NodeClient,
    target: u64,
    address: Result<SocketAddr, String>,
    leases: Arc<Leases>,
}

impl Network {
    pub fn factory(client: NodeClient, leases: Arc<Leases>) -> NetworkFactory {
        NetworkFactory { client, leases }
    }

    async fn call<Q, A, E>(&self, path: &str, request: &Q) -> Result<A, RPCError<u64, BasicNode, RaftError<u64, E>>>
    where
        Q: Serialize,
        A: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
        RaftError<u64, E>: DeserializeOwned,
    {
        let address = self
            .address
            .as_ref()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&std::io::Error::other(e.clone()))))?;
        let answer: Result<A, RaftError<u64, E>> =
            self.client.post_json(*address, path, request).await.map_err(|e| match e {
                RpcError::Unreachable(..) | RpcError::Timeout(_) => RPCError::Unreachable(Unreachable::new(&e)),
                other => RPCError::Network(NetworkError::new(&other)),
            })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Network {
        let address = node.addr.parse::<SocketAddr>().map_err(|e| format!("bad address {}: {e}", node.addr));
        Network { client: self.client.clone(), target, address, leases: self.leases.clone() }
    }
}

impl RaftNetwork<TypeConfig> for Network {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        // Taken before sending: the follower's promise starts when it receives the append, later.
        let (sent, vote) = (boottime(), request.vote);
        let answer = self.call(paths::APPEND, &request).await;
        // Every answer but HigherVote means the follower accepted this vote (and reset its clock).
        if let Ok(
            AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_) | AppendEntriesResponse::Conflict,
        ) = &answer
        {
            self.leases.acked(self.target, vote, sent);
        }
        answer
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        self.call(paths::SNAPSHOT, &request).await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call(paths::VOTE, &request).await
    }
}
