//! `ignifuge dev`: a whole local cluster of separate processes on 127.0.0.1.
//!
//! Layout under `--data-dir`: `cluster.toml` (the topology and addresses), `cluster.secret`
//! (0600; internode MAC and secret sealing key), `dev-credentials.json` (0600; the first key
//! of the `default` tenant, so a restart prints the same credentials), `aws.env` (0600; the
//! printed export lines, for `source`), one directory per node,
//! `logs/` with each child's log, and `cluster.json` (the live process map for drills and tests).
//! A child that dies is reported and left dead: the fire drill needs dead nodes to stay dead.

use crate::admin::Admin;
use crate::format::{FORMAT_FILE, adopt_node_dirs};
use anyhow::Context as _;
use clap::Args;
use ignifuge_meta::DATA_FORMAT;
use ignifuge_placement::FailureBudget;
use ignifuge_rpc::{ClusterConfig, GatewayEndpoint, InternodeAuth, NodeClient, NodeEndpoint};
use ignifuge_types::{DatacenterId, NodeId};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const DATACENTERS: usize = 3;
pub const NODES_PER_DATACENTER: usize = 3;
/// Ports above the base port where storage nodes start (gateways take base..base+3).
const NODE_PORT_OFFSET: u16 = 10;
/// Ports above the base port where the gateways' website endpoints listen (base+3..base+6).
const WEB_PORT_OFFSET: u16 = 3;
/// The website endpoint's root domain: `<bucket>.s3-website.localhost` (browsers resolve
/// `*.localhost` to the loopback address by themselves).
pub const WEB_DOMAIN: &str = "s3-website.localhost";
const REGION: &str = "us-east-1";
const DEFAULT_TENANT: &str = "default";
const READY_TIMEOUT_MS: u64 = 60_000;

#[derive(Args)]
pub struct DevArgs {
    /// Where the cluster keeps its data; kept across restarts.
    #[arg(long, default_value = "./ignifuge-data")]
    data_dir: PathBuf,
    /// The first gateway listens here; every other port is derived from it.
    #[arg(long, default_value_t = 9000)]
    base_port: u16,
}

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct ProcessEntry {
    pub role: String,
    pub datacenter: String,
    pub node_id: String,
    pub pid: u32,
    pub listen: String,
    /// A gateway's website endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct ClusterMap {
    pub endpoint: String,
    /// The first gateway's website endpoint, with `{bucket}` where the bucket's name goes.
    #[serde(default)]
    pub website: String,
    pub region: String,
    pub processes: Vec<ProcessEntry>,
    /// The `ignifuge dev` supervisor (SIGUSR1 restarts its dead children).
    #[serde(default)]
    pub supervisor_pid: u32,
}

impl ClusterMap {
    pub(crate) fn load(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join("cluster.json");
        let bytes =
            std::fs::read(&path).with_context(|| format!("reading {} (is `ignifuge dev` running?)", path.display()))?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}

#[derive(Serialize, Deserialize)]
struct DevCredentials {
    access_key_id: String,
    secret_access_key: String,
}

fn cluster_config(base_port: u16) -> ClusterConfig {
    let localhost = Ipv4Addr::LOCALHOST;
    let mut nodes = Vec::new();
    let mut gateways = Vec::new();
    for dc in 0..DATACENTERS {
        let datacenter = DatacenterId::new(format!("dc{}", dc + 1));
        gateways.push(GatewayEndpoint {
            datacenter: datacenter.clone(),
            address: SocketAddr::from((localhost, base_port + dc as u16)),
        });
        for n in 0..NODES_PER_DATACENTER {
            let port = base_port + NODE_PORT_OFFSET + (dc * NODES_PER_DATACENTER + n) as u16;
            nodes.push(NodeEndpoint {
                id: NodeId::new(format!("dc{}-n{}", dc + 1, n + 1)),
                datacenter: datacenter.clone(),
                address: SocketAddr::from((localhost, port)),
                capacity_weight: 1,
            });
        }
    }
    ClusterConfig {
        region: REGION.into(),
        // Every node votes, 3 per datacenter: a record is committed on 5 of 9, so a datacenter
        // plus one more node lost leaves a copy of it and a quorum to go on (ARCHITECTURE.md).
        metadata_voters: nodes.iter().map(|n| n.id.clone()).collect(),
        metadata_learners: Vec::new(),
        geometry: None,
        default_class: FailureBudget { datacenters: 1, nodes: 1 },
        // With a datacenter down, 5+4 over the 6 live nodes (doubled up) still survives any 2 nodes.
        degraded_minimum: Some(FailureBudget { datacenters: 0, nodes: 2 }),
        nodes,
        gateways,
    }
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn spawn(exe: &Path, args: &[String], log: &Path) -> anyhow::Result<Child> {
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let mut command = Command::new(exe);
    command.args(args).stdin(Stdio::null()).stdout(log_file.try_clone()?).stderr(log_file);
    // SAFETY: prctl is async-signal-safe; the child asks to be stopped when this process dies,
    // so a killed `ignifuge dev` never leaves orphans holding the ports.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    command.spawn().with_context(|| format!("starting {}", exe.display()))
}

struct Running {
    entry: ProcessEntry,
    child: Child,
    exited: bool,
    args: Vec<String>,
    log: PathBuf,
}

/// A gateway's website endpoint: WEB_PORT_OFFSET ports above the first gateway's, one per
/// gateway like the S3 ports.
fn web_address(gateway: SocketAddr) -> SocketAddr {
    SocketAddr::new(gateway.ip(), gateway.port() + WEB_PORT_OFFSET)
}

fn write_map(data_dir: &Path, endpoint: &str, website: &str, running: &[Running]) -> anyhow::Result<()> {
    let map = ClusterMap {
        endpoint: endpoint.to_string(),
        website: website.to_string(),
        region: REGION.into(),
        processes: running.iter().map(|r| r.entry.clone()).collect(),
        supervisor_pid: std::process::id(),
    };
    let tmp = data_dir.join("cluster.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&map)?)?;
    std::fs::rename(tmp, data_dir.join("cluster.json"))?;
    Ok(())
}

async fn wait_until(deadline: Instant, what: &str, mut ready: impl AsyncFnMut() -> bool) -> anyhow::Result<()> {
    while !ready().await {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    // Every process of the cluster reads the same settings: a value that does not parse fails here,
    // at once, rather than as a node that never becomes ready.
    crate::settings::Settings::from_env()?;
    std::fs::create_dir_all(&args.data_dir)?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let config = cluster_config(args.base_port);
    // Refuses a cluster directory of another format; marks its nodes' directories made before
    // nodes kept a format file of their own.
    let node_dirs: Vec<PathBuf> = config.nodes.iter().map(|node| data_dir.join(&node.id.0)).collect();
    adopt_node_dirs(&data_dir, node_dirs.iter().map(PathBuf::as_path))?;
    let logs = data_dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let config_path = data_dir.join("cluster.toml");
    std::fs::write(&config_path, config.to_toml())?;
    let secret_path = data_dir.join("cluster.secret");
    if !secret_path.exists() {
        write_private(&secret_path, hex::encode(rand::random::<[u8; 32]>()).as_bytes())?;
    }
    let secret = crate::daemons::read_secret(&secret_path)?;
    let exe = std::env::current_exe()?;
    let common = |kind: &str| -> Vec<String> {
        vec![
            kind.to_string(),
            "--config".into(),
            config_path.display().to_string(),
            "--secret-file".into(),
            secret_path.display().to_string(),
        ]
    };

    let mut running: Vec<Running> = Vec::new();
    for node in &config.nodes {
        let node_dir = data_dir.join(&node.id.0);
        let mut a = common("node");
        a.extend(["--node-id".into(), node.id.0.clone(), "--data-dir".into(), node_dir.display().to_string()]);
        let log = logs.join(format!("{}.log", node.id));
        let child = spawn(&exe, &a, &log)?;
        running.push(Running {
            args: a,
            log,
            entry: ProcessEntry {
                role: "node".into(),
                datacenter: node.datacenter.0.clone(),
                node_id: node.id.0.clone(),
                pid: child.id(),
                listen: node.address.to_string(),
                web_listen: None,
                data_dir: Some(node_dir),
            },
            child,
            exited: false,
        });
    }
    let result = start_and_wait(&args, &data_dir, &config, &secret, &exe, &common, &logs, &mut running).await;
    for process in running.iter_mut().filter(|p| !p.exited) {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(process.child.id() as i32, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for process in running.iter_mut() {
        while process.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = process.child.kill();
                let _ = process.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    eprintln!("ignifuge dev: all processes stopped");
    result
}

#[allow(clippy::too_many_arguments)]
async fn start_and_wait(
    args: &DevArgs,
    data_dir: &Path,
    config: &ClusterConfig,
    secret: &[u8],
    exe: &Path,
    common: &dyn Fn(&str) -> Vec<String>,
    logs: &Path,
    running: &mut Vec<Running>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_millis(READY_TIMEOUT_MS);
    let client = NodeClient::new(Arc::new(InternodeAuth::new(secret)));
    for node in &config.nodes {
        let address = node.address;
        let client = client.clone();
        let waited = wait_until(deadline, &format!("node {}", node.id), async || client.health(address).await).await;
        if let Err(e) = waited {
            // Its address answers, but as another version: a process of it still holds the port.
            let answer = match client.health_format(address).await {
                Ok(Some(format)) if format != DATA_FORMAT => format!("names data format {format}"),
                Ok(None) => "names no data format (a version from before nodes named theirs, or another server)".into(),
                _ => return Err(e),
            };
            anyhow::bail!(
                "{e}: the health answer at {address} {answer}, this version's is {DATA_FORMAT} (a process of \
                 another version still running? stop it and start again)"
            );
        }
    }
    // A brand-new cluster's metadata group is created once; afterwards the voters' own logs
    // carry it, and a voter whose disk was wiped must rejoin, never re-create the group.
    let marker = data_dir.join("metadata-initialized");
    if !marker.exists() {
        Admin::open(data_dir)?.initialize_metadata().await.context("creating the metadata group")?;
        write_private(&data_dir.join(FORMAT_FILE), DATA_FORMAT.as_bytes())?;
        write_private(&marker, b"")?;
    }
    for gateway in &config.gateways {
        let mut a = common("gateway");
        let web = web_address(gateway.address);
        a.extend(["--listen".into(), gateway.address.to_string(), "--web-listen".into(), web.to_string()]);
        let log = logs.join(format!("gateway-{}.log", gateway.datacenter));
        let child = spawn(exe, &a, &log)?;
        running.push(Running {
            args: a,
            log,
            entry: ProcessEntry {
                role: "gateway".into(),
                datacenter: gateway.datacenter.0.clone(),
                node_id: format!("gateway-{}", gateway.datacenter),
                pid: child.id(),
                listen: gateway.address.to_string(),
                web_listen: Some(web.to_string()),
                data_dir: None,
            },
            child,
            exited: false,
        });
    }
    for gateway in &config.gateways {
        let address = gateway.address;
        wait_until(deadline, &format!("gateway {}", gateway.datacenter), async || {
            tokio::net::TcpStream::connect(address).await.is_ok()
        })
        .await?;
    }

    let credentials = bootstrap_credentials(data_dir).await?;
    let endpoint = format!("http://{}", config.gateways[0].address);
    let website = format!("http://{{bucket}}.{WEB_DOMAIN}:{}/", web_address(config.gateways[0].address).port());
    write_map(data_dir, &endpoint, &website, running)?;

    let exports = format!(
        "export AWS_ENDPOINT_URL={endpoint}\nexport AWS_ACCESS_KEY_ID={}\nexport AWS_SECRET_ACCESS_KEY={}\n\
         export AWS_REGION={REGION}\nexport AWS_DEFAULT_REGION={REGION}\n",
        credentials.access_key_id, credentials.secret_access_key
    );
    write_private(&data_dir.join("aws.env"), exports.as_bytes())?;
    print!("{exports}");
    println!(
        "# ready: {} datacenters x {} nodes, gateways on {}; data in {}; Ctrl-C stops the cluster",
        DATACENTERS,
        NODES_PER_DATACENTER,
        config.gateways.iter().map(|g| g.address.to_string()).collect::<Vec<_>>().join(", "),
        data_dir.display()
    );
    println!("# websites (aws s3 website s3://BUCKET --index-document index.html): {website}");
    let _ = args;

    // Watch the children until asked to stop; report deaths, never restart on our own. SIGUSR1
    // (`kill -USR1 <pid of ignifuge dev>`) restarts every dead process with its data directory
    // as it is now: an empty one if it was wiped, which the node then serves as a fresh node.
    let mut stop = std::pin::pin!(crate::daemons::shutdown_signal());
    let mut revive = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = revive.recv() => {
                for process in running.iter_mut().filter(|p| p.exited) {
                    process.child = spawn(exe, &process.args, &process.log)?;
                    process.entry.pid = process.child.id();
                    process.exited = false;
                    eprintln!("ignifuge dev: restarted {} {} (pid {})", process.entry.role, process.entry.node_id, process.entry.pid);
                }
                write_map(data_dir, &endpoint, &website, running)?;
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        for process in running.iter_mut().filter(|p| !p.exited) {
            if let Some(status) = process.child.try_wait()? {
                process.exited = true;
                eprintln!(
                    "ignifuge dev: {} {} (pid {}) exited: {status}; it stays down (see {})",
                    process.entry.role,
                    process.entry.node_id,
                    process.entry.pid,
                    logs.display()
                );
            }
        }
    }
}

/// The `default` tenant and its first key, made once and kept for restarts.
async fn bootstrap_credentials(data_dir: &Path) -> anyhow::Result<DevCredentials> {
    let path = data_dir.join("dev-credentials.json");
    if let Ok(bytes) = std::fs::read(&path) {
        return Ok(serde_json::from_slice(&bytes)?);
    }
    let admin = Admin::open(data_dir)?;
    if !admin.tenant_exists(DEFAULT_TENANT).await? {
        admin.create_tenant(DEFAULT_TENANT).await?;
    }
    let key = admin.create_key(DEFAULT_TENANT).await?;
    let credentials = DevCredentials { access_key_id: key.access_key_id, secret_access_key: key.secret_access_key };
    write_private(&path, &serde_json::to_vec_pretty(&credentials)?)?;
    Ok(credentials)
}
