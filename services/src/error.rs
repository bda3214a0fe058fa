//! The services' one error enum. Services answer no client: their errors are logged where a
//! round ends and the round is retried, so nothing here maps to S3.

use ignifuge_gateway::error::GatewayError;
use ignifuge_meta::MetaError;
use ignifuge_rpc::RpcError;
use ignifuge_types::BlobId;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Metadata(#[from] MetaError),
    #[error(transparent)]
    Node(#[from] RpcError),
    /// The data path refused (a node address missing from the layout, a codec failure).
    #[error(transparent)]
    Data(#[from] GatewayError),
    #[error("stripe {stripe} of blob {blob} has fewer than k shards readable")]
    Unreadable { blob: BlobId, stripe: u32 },
    #[error("{0}")]
    Internal(String),
}

pub type ServiceResult<T> = Result<T, ServiceError>;
