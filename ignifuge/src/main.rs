//! The `ignifuge` binary: a local dev cluster, the node and gateway daemons, admin and placement
//! commands. The only crate that links everything (and RocksDB, through the storage node).

mod admin;
mod daemons;
mod dev;
mod drill;
mod durability;
mod format;
mod placement_cli;
mod settings;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// jemalloc for every allocation of the process, RocksDB's included (its symbols replace
/// malloc's), with background threads that return freed pages to the system after its decay
/// time: under glibc's malloc storage nodes filled with a million objects held 553-960 MiB,
/// mostly freed memory (`malloc_trim` took one from 1,164 MiB to 190 MiB); with jemalloc
/// 114-141 MiB (docs/benchmarks.md, "The metadata at scale through the processes").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "ignifuge", version, about = "S3-compatible object storage that survives the loss of a datacenter")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a local cluster: 3 datacenters x 3 storage nodes and one gateway per datacenter,
    /// each a separate process on 127.0.0.1. Prints shell `export` lines when ready.
    Dev(dev::DevArgs),
    /// Run one storage node.
    Node {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        secret_file: PathBuf,
        #[arg(long)]
        node_id: String,
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Run one S3 gateway.
    Gateway {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        secret_file: PathBuf,
        #[arg(long)]
        listen: SocketAddr,
        /// Base domains for virtual-hosted-style requests.
        #[arg(long, default_value = "localhost")]
        domain: Vec<String>,
        /// Serve static websites on this address too.
        #[arg(long)]
        web_listen: Option<SocketAddr>,
        /// Root domains of the website endpoint: `<bucket>.<domain>` serves the bucket's site.
        #[arg(long, default_value = "s3-website.localhost")]
        web_domain: Vec<String>,
    },
    /// Administer a running cluster (tenants, keys).
    Admin(admin::AdminArgs),
    /// Site-fire drill steps against a running `ignifuge dev` cluster.
    Drill(drill::DrillArgs),
    /// Explain storage classes and rebalancing on a topology file.
    Placement(placement_cli::PlacementArgs),
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IGNIFUGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,s3s=warn,hyper=warn"));
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// Servers hold a descriptor per connection, shard file and RocksDB table: raise the soft limit
/// on open files to the hard limit (commonly 1024 soft against 524288 hard).
fn raise_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                tracing::warn!(soft = limit.rlim_cur, "could not raise the open-file limit");
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    raise_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Dev(args) => runtime.block_on(dev::run(args)),
        Command::Node { config, secret_file, node_id, data_dir } => {
            runtime.block_on(daemons::run_node(&config, &secret_file, &node_id, &data_dir))
        }
        Command::Gateway { config, secret_file, listen, domain, web_listen, web_domain } => {
            runtime.block_on(daemons::run_gateway(&config, &secret_file, listen, domain, web_listen, web_domain))
        }
        Command::Admin(args) => runtime.block_on(admin::run(args)),
        Command::Drill(args) => runtime.block_on(drill::run(args)),
        Command::Placement(args) => placement_cli::run(args),
    }
}
