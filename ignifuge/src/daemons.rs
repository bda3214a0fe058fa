//! Running one storage node or one gateway in this process.

use anyhow::Context as _;
use ignifuge_raft::RaftMetadata;
use ignifuge_rpc::{ClusterConfig, InternodeAuth, NodeClient};
use ignifuge_storage_node::{NodeServer, ShardStore};
use ignifuge_types::NodeId;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub fn read_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the cluster secret {}", path.display()))?;
    let secret = hex::decode(text.trim()).context("the cluster secret file must hold hex")?;
    anyhow::ensure!(secret.len() >= 32, "the cluster secret must be at least 32 bytes");
    Ok(secret)
}

pub async fn run_node(config: &Path, secret_file: &Path, node_id: &str, data_dir: &Path) -> anyhow::Result<()> {
    let cluster = ClusterConfig::load(config)?;
    let secret = read_secret(secret_file)?;
    let id = NodeId::new(node_id);
    ignifuge_faults::set_scope(node_id);
    let me = cluster.node(&id).with_context(|| format!("node {node_id} is not in {}", config.display()))?.clone();
    ignifuge_faults::set_identity(&me.address.to_string());
    std::fs::create_dir_all(data_dir)?;
    let index = ignifuge_storage_node::open_store(&data_dir.join("index")).context("opening the shard index")?;
    let store = Arc::new(ShardStore::open(data_dir, index)?);
    let metadata = match cluster.metadata_role(&id) {
        Some(_) => {
            let raft_id = ignifuge_rpc::raft_id_of(&id);
            let kv = ignifuge_storage_node::open_store(&data_dir.join("meta")).context("opening the metadata store")?;
            // Raft traffic gets its own connection pool, so heartbeats never wait behind shards.
            let raft_client = NodeClient::new(Arc::new(InternodeAuth::new(&secret)));
            let mut tuning = ignifuge_raft::RaftTuning::default();
            if let Some(entries) = std::env::var("IGNIFUGE_RAFT_SNAPSHOT_ENTRIES").ok().and_then(|v| v.parse().ok()) {
                // Tests make replicas catch up by snapshot with a short log.
                tuning = ignifuge_raft::RaftTuning { snapshot_entries: entries, logs_kept_after_snapshot: entries / 2 };
            }
            let replica = RaftMetadata::start(raft_id, kv, data_dir.join("meta-snapshots"), raft_client, tuning)
                .await
                .map_err(|e| anyhow::anyhow!("starting the metadata replica: {e}"))?;
            tokio::spawn(replica.clone().keep_membership(me.address.to_string()));
            Some(replica)
        }
        None => None,
    };
    let listener =
        tokio::net::TcpListener::bind(me.address).await.with_context(|| format!("binding {}", me.address))?;
    tracing::info!(node = %id, datacenter = %me.datacenter, address = %me.address, metadata = metadata.is_some(), "storage node ready");
    let scrubber = Arc::new(ignifuge_storage_node::Scrubber::new(store.clone()));
    tokio::spawn(scrubber.clone().run());
    let server = Arc::new(NodeServer { store, scrubber, metadata, auth: InternodeAuth::new(&secret) });
    tokio::select! {
        served = ignifuge_storage_node::serve(listener, server) => served.context("serving")?,
        _ = shutdown_signal() => tracing::info!(node = %id, "stopping"),
    }
    Ok(())
}

/// The data path's limits, shrunk by tests through the environment (reads that fetch stripe
/// records by window, a full stripe budget, a short fill deadline) so that a limit is reached
/// with small objects and few requests.
fn tuning_from_env() -> ignifuge_gateway::datapath::DataPathTuning {
    fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
        std::env::var(name).ok().and_then(|v| v.parse().ok())
    }
    let default = ignifuge_gateway::datapath::DataPathTuning::default();
    ignifuge_gateway::datapath::DataPathTuning {
        read_stripes: var("IGNIFUGE_GATEWAY_READ_STRIPES").unwrap_or(default.read_stripes),
        stripes_in_flight_max: var("IGNIFUGE_GATEWAY_STRIPES_IN_FLIGHT").unwrap_or(default.stripes_in_flight_max),
        stripe_fill_max_ms: var("IGNIFUGE_GATEWAY_STRIPE_FILL_MS").unwrap_or(default.stripe_fill_max_ms),
        read_stripes_in_flight_max: var("IGNIFUGE_GATEWAY_READ_STRIPES_IN_FLIGHT")
            .unwrap_or(default.read_stripes_in_flight_max),
        answer_stall_max_ms: var("IGNIFUGE_GATEWAY_ANSWER_STALL_MS").unwrap_or(default.answer_stall_max_ms),
    }
}

pub async fn run_gateway(
    config: &Path,
    secret_file: &Path,
    listen: SocketAddr,
    domains: Vec<String>,
    web_listen: Option<SocketAddr>,
    web_domains: Vec<String>,
) -> anyhow::Result<()> {
    let cluster = ClusterConfig::load(config)?;
    let secret = read_secret(secret_file)?;
    ignifuge_faults::set_identity(&listen.to_string());
    let config = ignifuge_gateway::GatewayConfig {
        listen,
        cluster,
        cluster_secret: secret,
        domains: domains.clone(),
        tuning: tuning_from_env(),
    };
    let gateway = ignifuge_gateway::Gateway::new(&config)?;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let web = match web_listen {
        Some(address) => {
            let web = tokio::net::TcpListener::bind(address).await.with_context(|| format!("binding {address}"))?;
            tracing::info!(%address, domains = ?web_domains, "website endpoint ready");
            Some((web, web_domains))
        }
        None => None,
    };
    tracing::info!(%listen, "gateway ready");
    tokio::select! {
        served = ignifuge_gateway::serve(listener, gateway, domains, web) => served.context("serving")?,
        _ = shutdown_signal() => tracing::info!("gateway stopping"),
    }
    Ok(())
}

pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
