//! A deliberately simple durability model, printed with its assumptions so that nobody mistakes
//! it for a guarantee.
//!
//! **Model.** Nodes fail permanently (their shards are gone) independently at a constant rate
//! `lambda_n` per node-year and are repaired (their shards re-created elsewhere) after
//! `R_n` hours; whole datacenters are lost at `lambda_d` per datacenter-year and rebuilt after
//! `R_d` hours. A component is "down" with probability `p = lambda * R / 8760`.
//!
//! A stripe with `s` shards in each of `D` datacenters is lost when more than `m` of its shards
//! are down at once. The minimal fatal combinations are `a` whole datacenters plus
//! `b = m + 1 - a*s` more of the stripe's nodes (with `b = 0` once `a*s > m`). Such a combination
//! happens when its last member fails while all the others are still down, at the rate
//! `a*lambda_d*p_d^(a-1)*p_n^b + b*lambda_n*p_n^(b-1)*p_d^a`, times the number of such combinations.
//! Summing over combinations is a union bound (overlaps are counted twice), which errs on the side
//! of losing data.
//!
//! Two figures come out of it:
//! - **per stripe**: the combinations among the stripe's own `D*s` nodes;
//! - **cluster** (an upper bound): the combinations among all nodes that *some* stripe could have
//!   (at most `s` per datacenter). A cluster with many objects holds a stripe on almost every
//!   such combination, so this is the chance of losing *something* in a year.
//!
//! **Ignored**, and each could dominate in practice: correlated failures inside a datacenter
//! short of losing it (a bad firmware batch, a power event), latent sector errors found only on
//! reconstruction, repair slowed by the failure itself, software bugs and operator error. Transient
//! outages affect availability, not durability, and are not counted.

use crate::{Geometry, Topology};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

const HOURS_PER_YEAR: f64 = 8760.0;

/// The inputs of the model, in the units their names say.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DurabilityAssumptions {
    /// Permanent losses of a node's data per node-year (disks, the whole machine).
    pub node_annual_failure_rate: f64,
    /// Hours from a node's loss until its shards are re-created elsewhere.
    pub node_repair_hours: f64,
    /// Permanent losses of a whole datacenter per datacenter-year (fire, flood).
    pub datacenter_annual_loss_rate: f64,
    /// Hours from a datacenter's loss until its shards are rebuilt elsewhere.
    pub datacenter_repair_hours: f64,
}

impl Default for DurabilityAssumptions {
    /// Pessimistic round numbers: 5% of nodes lose their data each year (several disks each, at
    /// 1-2% per disk), repaired within a day; a datacenter is destroyed once in a thousand years
    /// and takes a month to rebuild over the WAN.
    fn default() -> Self {
        Self {
            node_annual_failure_rate: 0.05,
            node_repair_hours: 24.0,
            datacenter_annual_loss_rate: 0.001,
            datacenter_repair_hours: 720.0,
        }
    }
}

/// One family of fatal combinations and the yearly rate at which it occurs for one stripe.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LossCause {
    pub datacenters: u32,
    pub nodes: u32,
    /// Expected occurrences per year for one stripe.
    pub stripe_annual_rate: f64,
    /// Expected occurrences per year anywhere in the cluster (upper bound).
    pub cluster_annual_rate: f64,
}

/// The result of the model. `*_nines` is `-log10(probability)`; infinite (JSON `null`) when the
/// assumptions contain no failures at all.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DurabilityEstimate {
    pub assumptions: DurabilityAssumptions,
    /// Probability that one given stripe is lost within a year.
    pub stripe_annual_loss_probability: f64,
    pub stripe_nines: f64,
    /// Upper bound on the probability that the cluster loses any stripe within a year.
    pub cluster_annual_loss_probability: f64,
    pub cluster_nines: f64,
    /// The combination that contributes most, in words.
    pub dominant_cause: String,
    pub causes: Vec<LossCause>,
    /// The model and what it ignores, in one paragraph.
    pub model: String,
}

/// Estimates the annual loss probability of `geometry` placed on `topology` (see the module docs
/// for the model). Meant for a geometry that `verify_geometry` accepts on this topology; for any
/// other it describes `D` datacenters of `s` shards as if placeable.
pub fn durability_estimate(
    topology: &Topology,
    geometry: Geometry,
    assumptions: &DurabilityAssumptions,
) -> DurabilityEstimate {
    let datacenters = topology.datacenters.len() as u32;
    let per_datacenter = geometry.shards_per_datacenter.max(1);
    let parity = geometry.parity_shards;
    let p_node = assumptions.node_annual_failure_rate * assumptions.node_repair_hours / HOURS_PER_YEAR;
    let p_datacenter = assumptions.datacenter_annual_loss_rate * assumptions.datacenter_repair_hours / HOURS_PER_YEAR;
    let node_sizes: Vec<u32> = topology.datacenters.iter().map(|dc| dc.nodes.len() as u32).collect();

    let mut causes = Vec::new();
    for lost_datacenters in 0..=datacenters {
        let from_datacenters = lost_datacenters * per_datacenter;
        let lost_nodes = (parity + 1).saturating_sub(from_datacenters);
        if lost_nodes > (datacenters - lost_datacenters) * per_datacenter {
            continue; // not enough of the stripe's nodes outside the lost datacenters
        }
        let rate_each = combination_rate(lost_datacenters, lost_nodes, assumptions, p_node, p_datacenter);
        let stripe_combinations = binomial(datacenters, lost_datacenters)
            * binomial((datacenters - lost_datacenters) * per_datacenter, lost_nodes);
        let cluster_combinations = cluster_combinations(&node_sizes, per_datacenter, lost_datacenters, lost_nodes);
        causes.push(LossCause {
            datacenters: lost_datacenters,
            nodes: lost_nodes,
            stripe_annual_rate: stripe_combinations * rate_each,
            cluster_annual_rate: cluster_combinations * rate_each,
        });
        if lost_nodes == 0 {
            break; // more datacenters are supersets of this combination
        }
    }

    let stripe_rate: f64 = causes.iter().map(|c| c.stripe_annual_rate).sum();
    let cluster_rate: f64 = causes.iter().map(|c| c.cluster_annual_rate).sum();
    let stripe_probability = -(-stripe_rate).exp_m1();
    let cluster_probability = -(-cluster_rate).exp_m1();
    let dominant_cause = causes
        .iter()
        .max_by(|a, b| a.stripe_annual_rate.total_cmp(&b.stripe_annual_rate))
        .map(|cause| describe(cause, assumptions))
        .unwrap_or_else(|| "none: the geometry cannot be lost under this model".to_string());

    DurabilityEstimate {
        assumptions: assumptions.clone(),
        stripe_annual_loss_probability: stripe_probability,
        stripe_nines: -stripe_probability.log10(),
        cluster_annual_loss_probability: cluster_probability,
        cluster_nines: -cluster_probability.log10(),
        dominant_cause,
        causes,
        model: MODEL.to_string(),
    }
}

const MODEL: &str = "independent permanent failures at constant rates; a stripe is lost when more than m of its \
                     shards are on nodes or datacenters that failed and are not yet repaired; rates summed over \
                     the minimal fatal combinations (a union bound). Ignores correlated failures short of a \
                     whole datacenter, latent sector errors, slowed repairs, software bugs and operator error.";

/// Rate of one specific combination of `a` datacenters and `b` nodes completing.
fn combination_rate(a: u32, b: u32, assumptions: &DurabilityAssumptions, p_node: f64, p_datacenter: f64) -> f64 {
    let power = |p: f64, n: u32| if n == 0 { 1.0 } else { p.powi(n as i32) };
    let last_is_datacenter = if a > 0 {
        f64::from(a) * assumptions.datacenter_annual_loss_rate * power(p_datacenter, a - 1) * power(p_node, b)
    } else {
        0.0
    };
    let last_is_node = if b > 0 {
        f64::from(b) * assumptions.node_annual_failure_rate * power(p_node, b - 1) * power(p_datacenter, a)
    } else {
        0.0
    };
    last_is_datacenter + last_is_node
}

/// Ways to pick `a` whole datacenters and `b` nodes in the others, at most `s` per datacenter:
/// the node sets some stripe of the cluster may occupy. A polynomial product per datacenter.
fn cluster_combinations(node_sizes: &[u32], s: u32, a: u32, b: u32) -> f64 {
    let (a, b) = (a as usize, b as usize);
    // ways[d][n]: d datacenters taken whole, n nodes taken elsewhere.
    let mut ways = vec![vec![0.0f64; b + 1]; a + 1];
    ways[0][0] = 1.0;
    for &size in node_sizes {
        let mut next = vec![vec![0.0f64; b + 1]; a + 1];
        for d in 0..=a {
            for n in 0..=b {
                let current = ways[d][n];
                if current == 0.0 {
                    continue;
                }
                if d < a {
                    next[d + 1][n] += current;
                }
                for t in 0..=(s.min(size) as usize).min(b - n) {
                    next[d][n + t] += current * binomial(size, t as u32);
                }
            }
        }
        ways = next;
    }
    ways[a][b]
}

fn binomial(n: u32, k: u32) -> f64 {
    if k > n {
        return 0.0;
    }
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, i| acc * f64::from(n - i) / f64::from(i + 1))
}

fn describe(cause: &LossCause, assumptions: &DurabilityAssumptions) -> String {
    match (cause.datacenters, cause.nodes) {
        (0, n) => format!("{n} of a stripe's nodes lost within {} h of each other", assumptions.node_repair_hours),
        (d, 0) => format!("{d} datacenters lost within {} h of each other", assumptions.datacenter_repair_hours),
        (d, n) => format!(
            "{d} datacenter(s) lost and, before the rebuild ({} h), {n} more of a stripe's nodes",
            assumptions.datacenter_repair_hours
        ),
    }
}

impl DurabilityEstimate {
    /// Several lines for people: the figures, the dominant cause and every assumption.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "annual loss probability: {:.1e} per stripe ({:.1} nines); at most {:.1e} for the whole cluster ({:.1} nines)",
            self.stripe_annual_loss_probability,
            self.stripe_nines,
            self.cluster_annual_loss_probability,
            self.cluster_nines
        );
        let _ = writeln!(text, "dominant risk: {}", self.dominant_cause);
        let a = &self.assumptions;
        let _ = writeln!(
            text,
            "assumptions: node data loss {}/node-year, repaired in {} h; datacenter loss {}/datacenter-year, rebuilt in {} h",
            a.node_annual_failure_rate, a.node_repair_hours, a.datacenter_annual_loss_rate, a.datacenter_repair_hours
        );
        let _ = writeln!(text, "model: {}", self.model);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::uniform;

    fn geometry(k: u32, m: u32, s: u32) -> Geometry {
        Geometry { data_shards: k, parity_shards: m, shards_per_datacenter: s }
    }

    #[test]
    fn five_plus_four_on_three_by_three_matches_a_hand_calculation() {
        let assumptions = DurabilityAssumptions::default();
        let estimate = durability_estimate(&uniform(3, 3), geometry(5, 4, 3), &assumptions);
        let p_n: f64 = 0.05 * 24.0 / 8760.0;
        let p_d: f64 = 0.001 * 720.0 / 8760.0;
        // 5 of 9 nodes; 1 of 3 datacenters and 2 of the 6 other nodes; 2 of 3 datacenters.
        let nodes_only = 126.0 * 5.0 * 0.05 * p_n.powi(4);
        let one_and_two = 3.0 * 15.0 * (0.001 * p_n.powi(2) + 2.0 * 0.05 * p_n * p_d);
        let two_datacenters = 3.0 * 2.0 * 0.001 * p_d;
        let expected = nodes_only + one_and_two + two_datacenters;
        assert_eq!(estimate.causes.len(), 3);
        assert!((estimate.stripe_annual_loss_probability / expected - 1.0).abs() < 1e-6);
        assert!(estimate.dominant_cause.starts_with("2 datacenters lost within 720 h"), "{}", estimate.dominant_cause);
        // With 3 nodes per datacenter every fatal node set holds some stripe: cluster = stripe.
        assert!((estimate.cluster_annual_loss_probability / expected - 1.0).abs() < 1e-6);
        assert!(estimate.stripe_nines > 6.0 && estimate.stripe_nines < 6.5, "{}", estimate.stripe_nines);
    }

    #[test]
    fn more_nodes_mean_more_ways_for_the_cluster_to_lose_something() {
        let assumptions = DurabilityAssumptions::default();
        let small = durability_estimate(&uniform(3, 3), geometry(5, 4, 3), &assumptions);
        let large = durability_estimate(&uniform(3, 10), geometry(5, 4, 3), &assumptions);
        assert!((small.stripe_annual_loss_probability - large.stripe_annual_loss_probability).abs() < 1e-18);
        assert!(large.cluster_annual_loss_probability > small.cluster_annual_loss_probability);
    }

    #[test]
    fn more_parity_is_more_durable() {
        let assumptions = DurabilityAssumptions { datacenter_annual_loss_rate: 0.0, ..Default::default() };
        let topology = uniform(3, 3);
        let weaker = durability_estimate(&topology, geometry(6, 3, 3), &assumptions);
        let stronger = durability_estimate(&topology, geometry(5, 4, 3), &assumptions);
        assert!(stronger.stripe_annual_loss_probability < weaker.stripe_annual_loss_probability / 100.0);
    }

    #[test]
    fn no_failures_means_no_loss() {
        let assumptions = DurabilityAssumptions {
            node_annual_failure_rate: 0.0,
            datacenter_annual_loss_rate: 0.0,
            ..Default::default()
        };
        let estimate = durability_estimate(&uniform(3, 3), geometry(5, 4, 3), &assumptions);
        assert_eq!(estimate.stripe_annual_loss_probability, 0.0);
        assert!(estimate.stripe_nines.is_infinite());
    }

    #[test]
    fn the_text_states_its_assumptions() {
        let estimate = durability_estimate(&uniform(3, 3), geometry(5, 4, 3), &DurabilityAssumptions::default());
        let text = estimate.to_text();
        assert!(text.contains("node data loss 0.05/node-year, repaired in 24 h"), "{text}");
        assert!(text.contains("datacenter loss 0.001/datacenter-year, rebuilt in 720 h"), "{text}");
        assert!(text.contains("Ignores correlated failures"), "{text}");
    }

    #[test]
    fn binomials() {
        assert_eq!(binomial(9, 5), 126.0);
        assert_eq!(binomial(3, 0), 1.0);
        assert_eq!(binomial(2, 3), 0.0);
        // 2 nodes among 3 datacenters of 4 nodes, at most 1 per datacenter: 3 pairs of
        // datacenters times 4*4 nodes.
        assert_eq!(cluster_combinations(&[4, 4, 4], 1, 0, 2), 48.0);
        assert_eq!(cluster_combinations(&[4, 4, 4], 1, 1, 1), 3.0 * 8.0);
    }
}
