//! `ignifuge placement`: explain storage classes and rebalancing on topology files.

use clap::Args;

#[derive(Args)]
pub struct PlacementArgs {}

pub fn run(_args: PlacementArgs) -> anyhow::Result<()> {
    anyhow::bail!("placement commands are wired once the placement library lands")
}
