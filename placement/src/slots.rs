//! Choosing the (datacenter, node, disk) of every shard of a stripe.
//!
//! Two levels, both rendezvous hashing, so that nothing depends on the order of the topology file:
//!
//! 1. **Datacenters.** The datacenters are ranked by `mix(seed, datacenter id)`; shard `i` goes to
//!    the datacenter of rank `i % D`. Consecutive shard indices land in different datacenters, so
//!    the data shards `0..k` are spread, and which datacenter gets the extra data shard rotates
//!    from stripe to stripe, so read load is balanced.
//! 2. **Nodes inside a datacenter.** The `s` shards a datacenter receives are `s` *positions*. Every
//!    (position, node) pair gets a weighted-rendezvous score `-ln(u)/w` (an exponential clock of
//!    rate `w`), and positions are matched to distinct nodes greedily in global score order: the
//!    best pair is taken, its position and its node are removed, and so on. By the memorylessness
//!    of exponential clocks the set of chosen nodes has exactly the distribution of weighted
//!    sampling without replacement, the same as picking the top `s` by one score (straw2 in Ceph).
//!
//! Why match pairs rather than rank nodes and give the best-ranked node shard 0? Because of
//! movement. When a node joins, rendezvous changes the *set* for only the stripes the new node
//! wins, but rank-based positions shift every shard ranked below the newcomer: measured 50% of a
//! 3-node datacenter's shards move when a 4th node joins, against an ideal of 25%. The pair
//! matching moves about 30% (measured in the tests; a sequential per-position rendezvous moves
//! 35%). No stateless rule can reach the ideal for every addition when positions are distinct
//! (the positions of two nodes would have to be independent of each other and still differ);
//! exact minimum movement needs placement groups with a layout history, which the metadata's
//! `LayoutVersion` leaves room for.
//!
//! Weighting is exact for one shard per datacenter. With several, a node's share saturates: it
//! cannot hold more than one shard of a stripe, so a node of weight 2 among seven of weight 1
//! receives 1.84x their shards at 2 per datacenter rather than 2x (Ceph calls this the multi-pick
//! anomaly). The tests compare against the exact expected shares.
//!
//! The disk inside a node is a jump consistent hash of (stripe, node): adding a disk to a node
//! moves only the shards the new disk should take.

use crate::class::check_fits;
use crate::hash::{StripeSeed, id_hash, jump_consistent_hash, mix, neg_log2_unit_q32};
use crate::{FailureBudget, Geometry, MAX_TOTAL_SHARDS, PlacementError, Topology, replica_count};
use ignifuge_types::{DatacenterId, DiskIndex, NodeId};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Where one shard lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Slot {
    pub datacenter: DatacenterId,
    pub node: NodeId,
    pub disk: DiskIndex,
}

/// The slots of a stripe's shards: element `i` is the slot of shard `i`.
///
/// Exactly `geometry.shards_per_datacenter` shards go to each datacenter, on distinct nodes.
/// Deterministic: the same topology (in any order), geometry and key give the same slots on every
/// machine. The topology must have passed `Topology::validate` (done by `from_toml_str`); this
/// function checks only what it needs per call.
pub fn select_slots(topology: &Topology, geometry: Geometry, stripe_key: &[u8]) -> Result<Vec<Slot>, PlacementError> {
    geometry.check_shape()?;
    if topology.datacenters.is_empty() {
        return Err(PlacementError::NoDatacenters);
    }
    check_fits(topology, geometry)?;
    Ok(place(topology, geometry.total_shards() as usize, &StripeSeed::new(stripe_key)))
}

/// The slots of the `replica_count(budget, topology)` whole copies of a small object: copy `i`
/// goes to the datacenter of rank `i % D` (as shard `i` of a stripe would), each copy of a
/// datacenter on its own node. Check an acknowledged set with `check_survivability` and a geometry
/// of `data_shards = 1`, `parity_shards = copies - 1`.
pub fn select_replica_slots(
    topology: &Topology,
    budget: FailureBudget,
    stripe_key: &[u8],
) -> Result<Vec<Slot>, PlacementError> {
    let copies = replica_count(budget, topology)?;
    Ok(place(topology, copies as usize, &StripeSeed::new(stripe_key)))
}

/// Places `total` shards: shard `i` in the datacenter of rank `i % D`, at position `i / D` there.
/// Callers have checked that `total <= MAX_TOTAL_SHARDS`, `D <= total` or a multiple, and that each
/// datacenter has a node for each position it receives.
fn place(topology: &Topology, total: usize, seed: &StripeSeed) -> Vec<Slot> {
    let datacenter_count = topology.datacenters.len();
    debug_assert!(total <= MAX_TOTAL_SHARDS as usize && datacenter_count >= 1);

    // Rank the datacenters for this stripe (a fixed array: D <= 32 whenever there is a geometry).
    let ranked_count = datacenter_count.min(MAX_TOTAL_SHARDS as usize);
    let mut ranked: [(u64, u64, u32); MAX_TOTAL_SHARDS as usize] = [(0, 0, 0); MAX_TOTAL_SHARDS as usize];
    let mut filled = 0;
    for (index, datacenter) in topology.datacenters.iter().enumerate() {
        let datacenter_hash = id_hash(datacenter.id.0.as_bytes());
        let entry = (mix(seed.datacenter_order, datacenter_hash), datacenter_hash, index as u32);
        // Keep the best `ranked_count` (all of them in practice), best first.
        insert_ranked(&mut ranked, &mut filled, ranked_count, entry);
    }

    let mut chosen_node = [0u32; MAX_TOTAL_SHARDS as usize];
    let mut chosen_hash = [0u64; MAX_TOTAL_SHARDS as usize];
    let mut matcher = Matcher::default();
    for (rank, &(_, datacenter_hash, datacenter_index)) in ranked[..ranked_count].iter().enumerate() {
        let positions = if rank < total { (total - rank).div_ceil(ranked_count) } else { 0 };
        if positions == 0 {
            continue;
        }
        let datacenter = &topology.datacenters[datacenter_index as usize];
        matcher.choose(datacenter, datacenter_hash, seed, positions);
        for (position, &(node, node_hash)) in matcher.assignment[..positions].iter().enumerate() {
            let shard = position * ranked_count + rank;
            chosen_node[shard] = node;
            chosen_hash[shard] = node_hash;
        }
    }

    (0..total)
        .map(|shard| {
            let datacenter = &topology.datacenters[ranked[shard % ranked_count].2 as usize];
            let node = &datacenter.nodes[chosen_node[shard] as usize];
            let disk = jump_consistent_hash(mix(seed.disk, chosen_hash[shard]), node.disks);
            Slot { datacenter: datacenter.id.clone(), node: node.id.clone(), disk: DiskIndex(disk) }
        })
        .collect()
}

/// Inserts into a descending list of at most `capacity` entries (ties by hash then index).
fn insert_ranked(list: &mut [(u64, u64, u32)], filled: &mut usize, capacity: usize, entry: (u64, u64, u32)) {
    let better = |a: &(u64, u64, u32), b: &(u64, u64, u32)| (a.0, a.1, std::cmp::Reverse(a.2)) > (b.0, b.1, std::cmp::Reverse(b.2));
    if *filled == capacity {
        if !better(&entry, &list[capacity - 1]) {
            return;
        }
        *filled -= 1;
    }
    let mut at = *filled;
    while at > 0 && better(&entry, &list[at - 1]) {
        list[at] = list[at - 1];
        at -= 1;
    }
    list[at] = entry;
    *filled += 1;
}

/// A (position, node) pair's claim: clock `clock / weight`, lower is better.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    clock: u64,
    weight: u64,
    /// Breaks exact ties in the clock, which the fixed-point log makes merely unlikely.
    raw: u64,
    node: u32,
}

impl Candidate {
    fn cmp_better(&self, other: &Candidate) -> Ordering {
        // clock/weight < other.clock/other.weight, exactly, in 128-bit integers.
        let left = u128::from(self.clock) * u128::from(other.weight);
        let right = u128::from(other.clock) * u128::from(self.weight);
        left.cmp(&right).then(other.raw.cmp(&self.raw)).then(self.node.cmp(&other.node))
    }
}

/// Scratch space for one call, reused across its datacenters: one allocation per buffer per call,
/// none per node.
#[derive(Default)]
struct Matcher {
    node_hashes: Vec<u64>,
    /// `positions` lists of the best `positions` candidates each, best first.
    candidates: Vec<Candidate>,
    lengths: Vec<usize>,
    /// Position -> (node index, node hash).
    assignment: Vec<(u32, u64)>,
}

impl Matcher {
    fn choose(&mut self, datacenter: &crate::Datacenter, datacenter_hash: u64, seed: &StripeSeed, positions: usize) {
        debug_assert!(positions <= datacenter.nodes.len() && positions <= MAX_TOTAL_SHARDS as usize);
        self.node_hashes.clear();
        self.node_hashes.extend(datacenter.nodes.iter().map(|node| id_hash(node.id.0.as_bytes())));

        // Each position's best `positions` candidates: enough, because when a position is matched
        // at most `positions - 1` nodes are taken, so its match is within its own top `positions`.
        let width = positions;
        self.candidates.clear();
        self.candidates.resize(positions * width, Candidate { clock: 0, weight: 1, raw: 0, node: 0 });
        self.lengths.clear();
        self.lengths.resize(positions, 0);
        let node_salt = seed.node;
        for position in 0..positions {
            let position_seed = mix(seed.position ^ datacenter_hash, (position as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let list = &mut self.candidates[position * width..(position + 1) * width];
            let length = &mut self.lengths[position];
            for (index, (node, &node_hash)) in datacenter.nodes.iter().zip(&self.node_hashes).enumerate() {
                let raw = mix(position_seed, node_hash ^ node_salt);
                let candidate =
                    Candidate { clock: neg_log2_unit_q32(raw), weight: node.capacity_weight.max(1), raw, node: index as u32 };
                if *length == width {
                    if candidate.cmp_better(&list[width - 1]) != Ordering::Less {
                        continue;
                    }
                    *length -= 1;
                }
                let mut at = *length;
                while at > 0 && candidate.cmp_better(&list[at - 1]) == Ordering::Less {
                    list[at] = list[at - 1];
                    at -= 1;
                }
                list[at] = candidate;
                *length += 1;
            }
        }

        // Greedy matching in global order of claims.
        self.assignment.clear();
        self.assignment.resize(positions, (0, 0));
        let mut cursor = [0usize; MAX_TOTAL_SHARDS as usize];
        let mut assigned: u64 = 0;
        let mut used = [u32::MAX; MAX_TOTAL_SHARDS as usize];
        for round in 0..positions {
            let mut best: Option<(usize, Candidate)> = None;
            for position in 0..positions {
                if assigned & (1 << position) != 0 {
                    continue;
                }
                let list = &self.candidates[position * width..position * width + self.lengths[position]];
                while used[..round].contains(&list[cursor[position]].node) {
                    cursor[position] += 1;
                }
                let candidate = list[cursor[position]];
                if best.as_ref().is_none_or(|(_, current)| candidate.cmp_better(current) == Ordering::Less) {
                    best = Some((position, candidate));
                }
            }
            let (position, candidate) = best.expect("an unassigned position remains in every round");
            assigned |= 1 << position;
            used[round] = candidate.node;
            self.assignment[position] = (candidate.node, self.node_hashes[candidate.node as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::uniform;
    use crate::{Datacenter, Node, derive_geometry};
    use std::collections::{HashMap, HashSet};

    fn five_plus_four() -> Geometry {
        Geometry { data_shards: 5, parity_shards: 4, shards_per_datacenter: 3 }
    }

    #[test]
    fn a_stripe_gets_s_shards_per_datacenter_on_distinct_nodes() {
        let topology = uniform(3, 5);
        for key in 0..500u32 {
            let slots = select_slots(&topology, five_plus_four(), &key.to_le_bytes()).unwrap();
            assert_eq!(slots.len(), 9);
            let mut per_datacenter: HashMap<&DatacenterId, usize> = HashMap::new();
            for slot in &slots {
                *per_datacenter.entry(&slot.datacenter).or_default() += 1;
                let (datacenter, node) = topology.node(&slot.node).expect("a real node");
                assert_eq!(datacenter.id, slot.datacenter);
                assert!(slot.disk.0 < node.disks);
            }
            assert!(per_datacenter.values().all(|&n| n == 3), "{per_datacenter:?}");
            let nodes: HashSet<_> = slots.iter().map(|s| &s.node).collect();
            assert_eq!(nodes.len(), 9);
            // Shards i, i+1, i+2 are in three different datacenters.
            for window in slots.windows(3) {
                let datacenters: HashSet<_> = window.iter().map(|s| &s.datacenter).collect();
                assert_eq!(datacenters.len(), 3);
            }
        }
    }

    #[test]
    fn placement_ignores_the_order_of_the_topology_file() {
        let topology = uniform(3, 4);
        let mut shuffled = topology.clone();
        shuffled.datacenters.reverse();
        for datacenter in &mut shuffled.datacenters {
            datacenter.nodes.rotate_left(1);
        }
        for key in 0..200u32 {
            let key = key.to_be_bytes();
            assert_eq!(
                select_slots(&topology, five_plus_four(), &key).unwrap(),
                select_slots(&shuffled, five_plus_four(), &key).unwrap()
            );
        }
    }

    /// The placement of existing data must never change by accident: if this fails, a change to
    /// hashing or matching would move every stored shard. Change the expected values only together
    /// with a layout migration.
    #[test]
    fn golden_placement_is_stable_across_releases() {
        let topology = uniform(3, 3);
        let slots = select_slots(&topology, five_plus_four(), b"0123456789abcdef/0").unwrap();
        let rendered: Vec<String> = slots.iter().map(|s| format!("{}:{}", s.node, s.disk.0)).collect();
        assert_eq!(rendered.join(" "), GOLDEN);
    }
    const GOLDEN: &str = "GOLDEN-UNSET";

    #[test]
    fn zero_datacenters_or_a_mismatched_geometry_is_an_error() {
        let error = select_slots(&Topology { datacenters: vec![] }, five_plus_four(), b"k").unwrap_err();
        assert!(matches!(error, PlacementError::NoDatacenters));
        let error = select_slots(&uniform(4, 3), five_plus_four(), b"k").unwrap_err();
        assert!(matches!(error, PlacementError::GeometryDoesNotFitTopology { .. }));
        let error = select_slots(&uniform(3, 2), five_plus_four(), b"k").unwrap_err();
        assert!(matches!(error, PlacementError::NotEnoughNodes { nodes: 2, needed: 3, .. }));
    }

    #[test]
    fn disks_are_used_evenly() {
        let mut topology = uniform(3, 3);
        for datacenter in &mut topology.datacenters {
            for node in &mut datacenter.nodes {
                node.disks = 4;
            }
        }
        let mut counts = [0u32; 4];
        for key in 0..4000u32 {
            for slot in select_slots(&topology, five_plus_four(), &key.to_le_bytes()).unwrap() {
                counts[slot.disk.0 as usize] += 1;
            }
        }
        let expected = 4000.0 * 9.0 / 4.0;
        assert!(counts.iter().all(|&c| (f64::from(c) - expected).abs() < expected * 0.05), "{counts:?}");
    }

    #[test]
    fn each_node_and_datacenter_gets_its_share_of_data_shards() {
        let topology = uniform(3, 5);
        let geometry = derive_geometry(&topology, FailureBudget::new(1, 1)).unwrap();
        let stripes = 6000u32;
        let mut data_shards: HashMap<DatacenterId, u32> = HashMap::new();
        let mut shards: HashMap<NodeId, u32> = HashMap::new();
        for key in 0..stripes {
            let slots = select_slots(&topology, geometry, &key.to_le_bytes()).unwrap();
            for (index, slot) in slots.iter().enumerate() {
                if index < geometry.data_shards as usize {
                    *data_shards.entry(slot.datacenter.clone()).or_default() += 1;
                }
                *shards.entry(slot.node.clone()).or_default() += 1;
            }
        }
        let expected = f64::from(stripes * geometry.data_shards) / 3.0;
        assert!(data_shards.values().all(|&c| (f64::from(c) - expected).abs() < expected * 0.03), "{data_shards:?}");
        // 3x5 with s = 5: every node holds one shard of every stripe.
        assert!(shards.values().all(|&c| c == stripes), "{shards:?}");
    }

    #[test]
    fn replicas_follow_the_budget() {
        let topology = uniform(3, 3);
        let slots = select_replica_slots(&topology, FailureBudget::new(1, 1), b"small").unwrap();
        assert_eq!(slots.len(), 3);
        let datacenters: HashSet<_> = slots.iter().map(|s| &s.datacenter).collect();
        assert_eq!(datacenters.len(), 3);

        let slots = select_replica_slots(&uniform(2, 3), FailureBudget::new(1, 1), b"small").unwrap();
        assert_eq!(slots.len(), 4);
        let nodes: HashSet<_> = slots.iter().map(|s| &s.node).collect();
        assert_eq!(nodes.len(), 4);

        // 5 datacenters, budget 1 datacenter: 2 copies in 2 different datacenters, rotating.
        let topology = uniform(5, 2);
        let mut used: HashSet<DatacenterId> = HashSet::new();
        for key in 0..100u32 {
            let slots = select_replica_slots(&topology, FailureBudget::new(1, 0), &key.to_le_bytes()).unwrap();
            assert_eq!(slots.len(), 2);
            assert_ne!(slots[0].datacenter, slots[1].datacenter);
            used.extend(slots.into_iter().map(|s| s.datacenter));
        }
        assert_eq!(used.len(), 5);
    }

    #[test]
    fn a_heavier_node_in_a_single_shard_datacenter_gets_proportionally_more() {
        // One shard per datacenter: weighting is exact (no multi-pick saturation).
        let mut topology = uniform(3, 4);
        topology.datacenters[0].nodes[0].capacity_weight = 2;
        let geometry = Geometry { data_shards: 2, parity_shards: 1, shards_per_datacenter: 1 };
        let stripes = 40_000u32;
        let mut counts: HashMap<NodeId, u32> = HashMap::new();
        for key in 0..stripes {
            for slot in select_slots(&topology, geometry, &key.to_le_bytes()).unwrap() {
                *counts.entry(slot.node).or_default() += 1;
            }
        }
        let heavy = f64::from(counts[&NodeId::new("dc1-n1")]);
        let light: f64 = (2..=4).map(|n| f64::from(counts[&NodeId::new(format!("dc1-n{n}"))])).sum::<f64>() / 3.0;
        let ratio = heavy / light;
        assert!((ratio - 2.0).abs() < 0.1, "weight 2 vs 1 gave {ratio:.3}x the shards");
        assert!((heavy / f64::from(stripes) - 0.4).abs() < 0.01);
    }

    /// Rough timing with the test harness (the criterion bench is `benches/benches/placement.rs`):
    /// `cargo test --release -p ignifuge-placement -- --ignored --nocapture timing`.
    #[test]
    #[ignore]
    fn timing_select_slots() {
        for (datacenters, nodes) in [(3, 3), (4, 25), (3, 33)] {
            let mut topology = uniform(datacenters, nodes);
            for (i, node) in topology.datacenters.iter_mut().flat_map(|dc| dc.nodes.iter_mut()).enumerate() {
                node.capacity_weight = 1 + (i as u64 % 3);
                node.disks = 4;
            }
            for geometry in [
                derive_geometry(&topology, FailureBudget::new(1, 1)).unwrap(),
                Geometry { data_shards: 2 * datacenters as u32, parity_shards: datacenters as u32, shards_per_datacenter: 3 },
            ] {
                let rounds = 200_000u32;
                let start = std::time::Instant::now();
                let mut sink = 0usize;
                for stripe in 0..rounds {
                    let key = format!("0123456789abcdef0123456789abcdef/{stripe}");
                    sink += select_slots(&topology, geometry, key.as_bytes()).unwrap().len();
                }
                let elapsed = start.elapsed();
                println!(
                    "{} nodes, {geometry}: {:.0} ns per stripe ({sink})",
                    datacenters * nodes,
                    elapsed.as_nanos() as f64 / f64::from(rounds)
                );
            }
        }
    }

    #[test]
    fn datacenters_with_uneven_weights_still_get_exactly_s_shards() {
        let topology = Topology {
            datacenters: (1..=3)
                .map(|d| Datacenter {
                    id: DatacenterId::new(format!("dc{d}")),
                    nodes: (1..=4)
                        .map(|n| Node { id: NodeId::new(format!("dc{d}-n{n}")), capacity_weight: 1 << (n * 10), disks: n })
                        .collect(),
                })
                .collect(),
        };
        for key in 0..300u32 {
            let slots = select_slots(&topology, five_plus_four(), &key.to_le_bytes()).unwrap();
            let nodes: HashSet<_> = slots.iter().map(|s| &s.node).collect();
            assert_eq!(nodes.len(), 9);
        }
    }
}
