//! `ignifuge drill`: the site-fire drill's steps against a running `ignifuge dev` cluster.
//!
//! `fire` kills -9 every process of a datacenter and deletes its nodes' data directories (as a
//! fire would); `replace` brings the datacenter back as new, empty nodes (the supervisor restarts
//! the dead processes on the wiped directories) and waits until they answer. The repair service
//! then refills them; `ignifuge admin durability` shows the progress and says healthy when every
//! stripe is back to its full budget. The end-to-end test `fire_drill` runs the whole drill with
//! a corpus, a workload and byte-for-byte checks.

use crate::dev::ClusterMap;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct DrillArgs {
    /// The data directory of the running `ignifuge dev` cluster.
    #[arg(long, default_value = "./ignifuge-data")]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: DrillCommand,
}

#[derive(Subcommand)]
enum DrillCommand {
    /// Kill -9 every process of a datacenter and delete its data directories.
    Fire {
        #[arg(long)]
        datacenter: String,
        /// Kill the processes but leave their disks (a power cut rather than a fire).
        #[arg(long)]
        keep_disks: bool,
    },
    /// Bring a burned datacenter back as new empty nodes and wait until they answer.
    Replace {
        #[arg(long)]
        datacenter: String,
    },
}

pub async fn run(args: DrillArgs) -> anyhow::Result<()> {
    let map = ClusterMap::load(&args.data_dir)?;
    match args.command {
        DrillCommand::Fire { datacenter, keep_disks } => {
            let victims: Vec<_> = map.processes.iter().filter(|p| p.datacenter == datacenter).collect();
            anyhow::ensure!(!victims.is_empty(), "no process of datacenter {datacenter} in cluster.json");
            for p in &victims {
                // SAFETY: kill(2) with a pid read from the cluster map; no memory is shared.
                let killed = unsafe { libc::kill(p.pid as i32, libc::SIGKILL) } == 0;
                println!(
                    "kill -9 {} {} (pid {}): {}",
                    p.role,
                    p.node_id,
                    p.pid,
                    if killed { "done" } else { "not running" }
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if !keep_disks {
                for dir in victims.iter().filter_map(|p| p.data_dir.as_ref()) {
                    match std::fs::remove_dir_all(dir) {
                        Ok(()) => println!("deleted {}", dir.display()),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e).with_context(|| format!("deleting {}", dir.display())),
                    }
                }
            }
        }
        DrillCommand::Replace { datacenter } => {
            anyhow::ensure!(map.supervisor_pid != 0, "cluster.json names no supervisor (restart `ignifuge dev`)");
            // SAFETY: as above.
            anyhow::ensure!(
                unsafe { libc::kill(map.supervisor_pid as i32, libc::SIGUSR1) } == 0,
                "the `ignifuge dev` supervisor (pid {}) is not running",
                map.supervisor_pid
            );
            let deadline = Instant::now() + Duration::from_secs(60);
            for p in map.processes.iter().filter(|p| p.datacenter == datacenter) {
                while tokio::net::TcpStream::connect(&p.listen).await.is_err() {
                    anyhow::ensure!(Instant::now() < deadline, "{} {} did not come back", p.role, p.node_id);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                println!("{} {} is back on {}", p.role, p.node_id, p.listen);
            }
            println!("the repair service refills the new nodes; follow it with `ignifuge admin durability`");
        }
    }
    Ok(())
}
