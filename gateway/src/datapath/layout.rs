//! The cluster layout the data path places against: the topology, the storage class and its
//! geometry, node addresses. It comes from the replicated metadata (`Query::Layout`), so every
//! gateway uses the same versioned description; a process's own file is only the starting point
//! until the stored layout is read, and the seed of a cluster that has none yet.

use super::DataPath;
use crate::codec::{ErasureCodec, ReedSolomonCodec};
use crate::error::{GatewayError, GatewayResult};
use ignifuge_meta::Metadata;
use ignifuge_placement::{FailureBudget, Geometry, Topology};
use ignifuge_rpc::ClusterConfig;
use ignifuge_rpc::RemoteMetadata;
use ignifuge_types::{LayoutVersion, NodeId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// How often a gateway reads the stored layout to see whether it changed.
pub const LAYOUT_REFRESH_MS: u64 = 5_000;

/// How often a gateway asks again while it has read no layout yet (its writes wait for one).
pub const LAYOUT_UNCONFIRMED_RETRY_MS: u64 = 500;

/// One version of the layout, with what the data path derives from it.
pub struct Layout {
    /// None: the process's file, not (yet) a stored version.
    pub version: Option<LayoutVersion>,
    /// Whether the metadata vouched for this layout: it is the stored version, or the metadata
    /// answered that none is stored yet (a cluster not yet initialised places with its file).
    /// Until then nothing is written with it: the file may be stale (a node since removed or
    /// moved), and once a cluster is initialised only the stored layout says where shards go.
    pub confirmed: bool,
    pub config: ClusterConfig,
    pub topology: Topology,
    pub geometry: Geometry,
    pub budget: FailureBudget,
    /// The outage minimum (durability debt allowed down to it), or None to refuse.
    pub degraded_minimum: Option<FailureBudget>,
    pub codec: Arc<dyn ErasureCodec>,
    addresses: HashMap<NodeId, SocketAddr>,
}

impl Layout {
    pub fn new(config: ClusterConfig, version: Option<LayoutVersion>, confirmed: bool) -> GatewayResult<Self> {
        let topology = config.topology();
        let geometry = config.class_geometry()?;
        let codec = ReedSolomonCodec::new(geometry.data_shards as usize, geometry.parity_shards as usize)?;
        let addresses = config.nodes.iter().map(|n| (n.id.clone(), n.address)).collect();
        Ok(Self {
            version,
            confirmed,
            topology,
            geometry,
            budget: config.default_class,
            degraded_minimum: config.degraded_minimum,
            codec: Arc::new(codec),
            addresses,
            config,
        })
    }

    pub fn address(&self, node: &NodeId) -> GatewayResult<SocketAddr> {
        self.addresses
            .get(node)
            .copied()
            .ok_or_else(|| GatewayError::Internal(format!("node {node} is not in the cluster layout")))
    }

    pub fn addresses(&self) -> impl Iterator<Item = &SocketAddr> {
        self.addresses.values()
    }
}

impl DataPath {
    /// Reads the stored layout and installs it if it is newer than the one in use. Returns the
    /// version in use afterwards.
    pub async fn refresh_layout(&self, metadata: &RemoteMetadata) -> GatewayResult<Option<LayoutVersion>> {
        if ignifuge_faults::hit("gateway.layout-query-error").is_some() {
            return Err(GatewayError::Internal("fault point gateway.layout-query-error".into()));
        }
        let record = metadata.layout().await?;
        let current = self.layout();
        let Some(record) = record else {
            if !current.confirmed {
                tracing::warn!("no cluster layout is stored yet; placing with this process's file");
                self.install_layout(Layout::new(current.config.clone(), None, true)?);
            }
            return Ok(current.version.clone());
        };
        if current.confirmed && current.version.as_ref() == Some(&record.version) {
            return Ok(current.version.clone());
        }
        let config = ClusterConfig::parse(&record.document)
            .map_err(|e| GatewayError::Internal(format!("stored layout {}: {e}", record.version)))?;
        let layout = Layout::new(config, Some(record.version.clone()), true)?;
        metadata.set_voters(layout.config.voters().into_iter().map(|(_, n)| n.address).collect());
        tracing::info!(
            version = %record.version,
            nodes = layout.config.nodes.len(),
            k = layout.geometry.data_shards,
            m = layout.geometry.parity_shards,
            "cluster layout installed"
        );
        self.install_layout(layout);
        Ok(Some(record.version))
    }

    /// Follows the stored layout for as long as the gateway runs: every `LAYOUT_REFRESH_MS`, and
    /// every `LAYOUT_UNCONFIRMED_RETRY_MS` while none has been read (writes wait for it).
    pub async fn follow_layout(self: Arc<Self>, metadata: Arc<RemoteMetadata>) {
        // The first error after 30 s unconfirmed: a metadata still electing at start-up is no news.
        let mut complained = std::time::Instant::now();
        loop {
            if let Err(e) = self.refresh_layout(&metadata).await {
                if self.layout().confirmed {
                    tracing::warn!(error = %e, "could not read the cluster layout; keeping the one in use");
                } else if complained.elapsed() >= std::time::Duration::from_secs(30) {
                    // Writes and background rounds wait for it (a stored layout this binary
                    // cannot parse waits for good): said loudly, every 30 s.
                    tracing::error!(error = %e, "no cluster layout read yet: writes and background rounds wait for it");
                    complained = std::time::Instant::now();
                }
            }
            let pause = if self.layout().confirmed { LAYOUT_REFRESH_MS } else { LAYOUT_UNCONFIRMED_RETRY_MS };
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
    }

    /// The layout to place a write with: refused (503 SlowDown, which clients retry) until the
    /// metadata has vouched for one (`Layout::confirmed`).
    pub fn placing_layout(&self) -> GatewayResult<Arc<Layout>> {
        let layout = self.layout();
        if !layout.confirmed {
            return Err(GatewayError::DurabilityNotMet(
                "the cluster layout has not been read from the metadata yet: nothing is placed with this gateway's \
                 own file"
                    .into(),
            ));
        }
        Ok(layout)
    }
}
