//! Running one storage node or one gateway in this process.

use crate::settings::Settings;
use anyhow::Context as _;
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
    let settings = Settings::from_env()?;
    let cluster = ClusterConfig::load(config)?;
    let secret = read_secret(secret_file)?;
    let id = NodeId::new(node_id);
    ignifuge_faults::set_scope(node_id);
    let me = cluster.node(&id).with_context(|| format!("node {node_id} is not in {}", config.display()))?.clone();
    ignifuge_faults::set_identity(&me.address.to_string());
    std::fs::create_dir_all(data_dir)?;
    crate::format::check_node_dir(data_dir)?;
    let index = ignifuge_storage_node::open_store(&data_dir.join("index")).context("opening the shard index")?;
    let store = Arc::new(
        ShardStore::open_with(data_dir, index, settings.shard_sync)?.with_around_cache(settings.shards_around_cache),
    );
    let metadata = match cluster.metadata_role(&id) {
        Some(_) => {
            let kv = ignifuge_storage_node::open_store(&data_dir.join("meta")).context("opening the metadata store")?;
            let start = ignifuge_storage_node::ReplicaStart {
                id: ignifuge_rpc::raft_id_of(&id),
                kv,
                snapshot_dir: data_dir.join("meta-snapshots"),
                client: NodeClient::new(Arc::new(InternodeAuth::new(&secret))),
                tuning: settings.raft,
                address: me.address.to_string(),
            };
            let replica = ignifuge_storage_node::MetadataReplica::start(start)
                .await
                .map_err(|e| anyhow::anyhow!("starting the metadata replica: {e}"))?;
            Some(replica)
        }
        None => None,
    };
    let listener =
        tokio::net::TcpListener::bind(me.address).await.with_context(|| format!("binding {}", me.address))?;
    tracing::info!(node = %id, datacenter = %me.datacenter, address = %me.address, metadata = metadata.is_some(), "storage node ready");
    let scrubber = Arc::new(ignifuge_storage_node::Scrubber::new(store.clone(), settings.scrub));
    tokio::spawn(scrubber.clone().run());
    let server = Arc::new(NodeServer { store, scrubber, metadata, auth: InternodeAuth::new(&secret) });
    tokio::select! {
        served = ignifuge_storage_node::serve(listener, server) => served.context("serving")?,
        _ = shutdown_signal() => tracing::info!(node = %id, "stopping"),
    }
    Ok(())
}

pub async fn run_gateway(
    config: &Path,
    secret_file: &Path,
    listen: SocketAddr,
    domains: Vec<String>,
    web_listen: Option<SocketAddr>,
    web_domains: Vec<String>,
) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let cluster = ClusterConfig::load(config)?;
    let secret = read_secret(secret_file)?;
    ignifuge_faults::set_identity(&listen.to_string());
    let config = ignifuge_gateway::GatewayConfig {
        listen,
        cluster,
        cluster_secret: secret,
        domains: domains.clone(),
        tuning: settings.data_path,
    };
    let gateway = ignifuge_gateway::Gateway::new(&config)?;
    gateway.load_layout().await;
    // The gateway process also works for the background services (each behind its lease, so one
    // gateway of the cluster at a time). A holder is unique across hosts and restarts: the listen
    // address alone is not.
    let services = Arc::new(ignifuge_services::Services {
        metadata: gateway.metadata.clone(),
        data: gateway.data.clone(),
        holder: format!("{listen}#{}", &ignifuge_types::random_id()[..12]),
    });
    services.spawn(settings.services);
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
