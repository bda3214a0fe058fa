//! `ignifuge placement`: explain storage classes and rebalancing on topology files.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use ignifuge_placement::{Topology, classes_from_toml_str, explain, find_class, rebalance_plan, sample_stripe_keys};
use std::path::{Path, PathBuf};

/// Stripes sampled to estimate how much data a topology change moves.
const REBALANCE_SAMPLE_STRIPES: usize = 20_000;

#[derive(Args)]
pub struct PlacementArgs {
    #[command(subcommand)]
    command: PlacementCommand,
}

#[derive(Subcommand)]
enum PlacementCommand {
    /// The geometry a class gets on a topology, its overhead, the failures it survives and an
    /// estimate of its annual loss probability (with the assumptions behind it).
    Explain {
        /// A topology file (TOML; see examples/), which may also hold `[[classes]]`.
        #[arg(long)]
        topology: PathBuf,
        /// The class to explain (from the topology file's `[[classes]]`).
        #[arg(long, default_value = "standard")]
        class: String,
        #[arg(long)]
        json: bool,
    },
    /// The shard moves from one topology to another, and the fraction of data they move.
    Rebalance {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        to: PathBuf,
        #[arg(long, default_value = "standard")]
        class: String,
        #[arg(long)]
        json: bool,
    },
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

pub fn run(args: PlacementArgs) -> anyhow::Result<()> {
    match args.command {
        PlacementCommand::Explain { topology, class, json } => {
            let text = read(&topology)?;
            let topology = Topology::from_toml_str(&text)?;
            let classes = classes_from_toml_str(&text)?;
            let explanation = explain(&topology, find_class(&classes, &class)?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&explanation)?);
            } else {
                print!("{}", explanation.to_text());
            }
        }
        PlacementCommand::Rebalance { from, to, class, json } => {
            let from_text = read(&from)?;
            let old = Topology::from_toml_str(&from_text)?;
            let new = Topology::from_toml_str(&read(&to)?)?;
            let classes = classes_from_toml_str(&from_text)?;
            let geometry = explain(&old, find_class(&classes, &class)?)?.geometry();
            let keys = sample_stripe_keys(REBALANCE_SAMPLE_STRIPES);
            let plan = rebalance_plan(&old, &new, geometry, keys.iter().map(|k| k.as_slice()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print!("{}", plan.to_text());
            }
        }
    }
    Ok(())
}
