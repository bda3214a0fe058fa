//! The metadata, reached over the internode API on the node that hosts it.

use ignifuge_meta::{Answer, Command, MetaError, Metadata, Outcome, Query};
use ignifuge_rpc::{NodeClient, paths};
use std::net::SocketAddr;

pub struct RemoteMetadata {
    client: NodeClient,
    address: SocketAddr,
}

impl RemoteMetadata {
    pub fn new(client: NodeClient, address: SocketAddr) -> Self {
        Self { client, address }
    }
}

#[async_trait::async_trait]
impl Metadata for RemoteMetadata {
    async fn apply(&self, command: Command) -> Result<Outcome, MetaError> {
        self.client
            .post_json::<_, Result<Outcome, MetaError>>(self.address, paths::META_APPLY, &command)
            .await
            .map_err(|e| MetaError::Unavailable(e.to_string()))?
    }

    async fn query(&self, query: Query) -> Result<Answer, MetaError> {
        self.client
            .post_json::<_, Result<Answer, MetaError>>(self.address, paths::META_QUERY, &query)
            .await
            .map_err(|e| MetaError::Unavailable(e.to_string()))?
    }
}
