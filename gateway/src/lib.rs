//! The S3 gateway: speaks S3 to clients, authenticates each request to a tenant principal,
//! authorizes it, and runs the erasure-coded data path against the storage nodes.
//!
//! Owns: the s3s adapter (`s3/`, the only module that sees s3s types), tenancy and access keys
//! (`principal`), the data path (`datapath/`, which the background services of
//! `ignifuge-services` use too), the codec, client checksums, and the one mapping of errors to
//! S3 errors (`error`).
//! Must never depend on: the storage node crate (it talks to nodes over `ignifuge-rpc` only),
//! or the background services (they depend on it, and the binary runs both).
//! Invariants: a PUT answers 200 only after every stripe's acknowledged shards passed the
//! placement engine's survivability check and the version was committed to the metadata; a
//! failed write leaves nothing visible; a principal only reaches its own tenant's buckets.

pub mod authorize;
pub mod checksums;
pub mod codec;
pub mod commit;
pub mod datapath;
pub mod error;
pub mod pack;
mod principal;
pub(crate) mod s3;

use ignifuge_rpc::RemoteMetadata;
pub use principal::{KEY_CACHE_TTL_MS, KeyCache, Principal};

use datapath::DataPath;
use ignifuge_meta::Metadata;
use ignifuge_rpc::{ClusterConfig, InternodeAuth, NodeClient, SecretSealer};
use std::net::SocketAddr;
use std::sync::Arc;

/// Everything a gateway needs to start.
pub struct GatewayConfig {
    pub listen: SocketAddr,
    pub cluster: ClusterConfig,
    pub cluster_secret: Vec<u8>,
    /// Base domains for virtual-hosted-style requests (`bucket.<domain>`).
    pub domains: Vec<String>,
    pub tuning: datapath::DataPathTuning,
}

/// The gateway's shared state.
pub struct Gateway {
    pub metadata: Arc<dyn Metadata>,
    /// The same metadata client, for what only it can do (follow the stored layout's voters).
    remote: Arc<RemoteMetadata>,
    pub data: Arc<DataPath>,
    /// Small PutObjects' bodies, written together (`pack`).
    pub packer: Arc<pack::Packer>,
    pub keys: KeyCache,
    /// Buckets' and tenants' access settings, for the authorizer (`authorize`).
    pub access: authorize::AccessCache,
    pub region: String,
    /// `DataPathTuning::read_stripes`.
    pub read_stripes: u32,
}

impl Gateway {
    pub fn new(config: &GatewayConfig) -> Result<Arc<Self>, error::GatewayError> {
        let client = NodeClient::new(Arc::new(InternodeAuth::new(&config.cluster_secret)));
        let voters = config.cluster.voters().into_iter().map(|(_, n)| n.address).collect();
        let remote = Arc::new(RemoteMetadata::new(client.clone(), voters));
        let metadata: Arc<dyn Metadata> = remote.clone();
        let data = Arc::new(DataPath::new(&config.cluster, client, config.tuning)?);
        let keys = KeyCache::new(metadata.clone(), SecretSealer::new(&config.cluster_secret));
        Ok(Arc::new(Self {
            packer: pack::Packer::new(data.clone(), metadata.clone()),
            metadata,
            remote,
            data,
            keys,
            access: authorize::AccessCache::default(),
            region: config.cluster.region.clone(),
            read_stripes: config.tuning.read_stripes,
        }))
    }

    /// Loads the stored cluster layout when the metadata answers in time (call before serving and
    /// before the background services start, so both place and judge against it from the first
    /// request and round). Until the metadata has answered, the process's file gives the nodes'
    /// addresses for reads, but nothing is written (503 SlowDown) and no background round runs;
    /// `serve` keeps asking. A cluster with no stored layout yet places with the file.
    pub async fn load_layout(&self) {
        let first = self.data.refresh_layout(&self.remote);
        match tokio::time::timeout(std::time::Duration::from_millis(datapath::layout::LAYOUT_REFRESH_MS), first).await {
            Ok(Ok(version)) => tracing::info!(version = ?version, "serving with the cluster layout"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not read the stored cluster layout yet"),
            Err(_) => tracing::warn!("the metadata did not answer a layout query in time; writes wait for it"),
        }
    }
}

/// Serves the S3 API on `listener`, and websites on `web` (its listener and root domains), until
/// either fails. `Gateway::load_layout` first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
    domains: Vec<String>,
    web: Option<(tokio::net::TcpListener, Vec<String>)>,
) -> std::io::Result<()> {
    tokio::spawn(gateway.data.clone().follow_layout(gateway.remote.clone()));
    tokio::spawn(gateway.data.clone().trim_buffers_forever());
    let renew = std::time::Duration::from_millis(gateway.data.tuning.intent_renew_ms.max(1));
    tokio::spawn(gateway.data.intents.clone().renew_forever(gateway.metadata.clone(), renew));
    match web {
        Some((web_listener, web_domains)) => {
            let websites = s3::website::endpoint::serve(web_listener, gateway.clone(), web_domains);
            tokio::select! {
                served = s3::serve(listener, gateway, domains) => served,
                served = websites => served,
            }
        }
        None => s3::serve(listener, gateway, domains).await,
    }
}
