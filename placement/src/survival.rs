//! "Does this acknowledged set survive the budget?": the check the gateway runs before it answers
//! a PUT, on the shards that actually acknowledged rather than on the ones it intended to write.

use crate::{FailureBudget, Geometry, Slot, Topology};
use ignifuge_types::{DatacenterId, NodeId};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// What an acknowledged set of shards survives.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SurvivabilityReport {
    /// At least `k` shards remain after the worst loss the budget allows.
    pub meets_budget: bool,
    /// The strongest budget the set survives, datacenters first: the most whole datacenters, then
    /// the most further nodes on top of that many datacenters. `0 + 0` also when the set is not
    /// even readable as it is (fewer than `k` shards); `explanation` says which.
    pub survives: FailureBudget,
    /// Shards left after the worst loss the requested budget allows.
    pub worst_case_remaining_shards: u32,
    /// One paragraph for logs and error messages: the worst case and its outcome.
    pub explanation: String,
}

/// Checks the shards that acknowledged (one `Slot` per acknowledged shard: deduplicate shard
/// indices written twice) against `budget`. The stripe is lost when fewer than
/// `geometry.data_shards` shards survive; for whole replicas pass `data_shards = 1`.
///
/// Exact: the worst case over every choice of `budget.datacenters` datacenters and
/// `budget.nodes` further nodes is found by a small dynamic program over datacenters (remove it
/// whole, or remove its `t` fullest nodes), which is equivalent to enumerating the datacenter sets
/// and then removing the fullest remaining nodes, without the combinatorial cost. Shards are
/// grouped by the datacenter and node named in their slots, so two shards on one node (a spare
/// used during an outage) count as lost together.
pub fn check_survivability(
    topology: &Topology,
    geometry: Geometry,
    acknowledged: &[Slot],
    budget: FailureBudget,
) -> SurvivabilityReport {
    let needed = geometry.data_shards;
    let total = acknowledged.len() as u32;
    let groups = group(acknowledged);
    let table = WorstCase::compute(&groups);

    let requested_datacenters = (budget.datacenters as usize).min(table.datacenters);
    let requested_nodes = (budget.nodes as usize).min(table.nodes);
    let worst_removed = table.get(requested_datacenters, requested_nodes);
    let worst_case_remaining_shards = total - worst_removed;
    let meets_budget = worst_case_remaining_shards >= needed;

    let survives_pair = |datacenters: usize, nodes: usize| total - table.get(datacenters, nodes) >= needed;
    let survives = if total < needed || !survives_pair(0, 0) {
        FailureBudget::new(0, 0)
    } else {
        let datacenters = (0..=table.datacenters).take_while(|&d| survives_pair(d, 0)).last().unwrap_or(0);
        let nodes = (0..=table.nodes).take_while(|&n| survives_pair(datacenters, n)).last().unwrap_or(0);
        FailureBudget::new(datacenters as u32, nodes as u32)
    };

    let mut explanation = String::new();
    let node_count: usize = groups.iter().map(|g| g.nodes.len()).sum();
    let _ = write!(
        explanation,
        "{total} shard(s) acknowledged on {node_count} node(s) in {} datacenter(s), {needed} needed to read",
        groups.len()
    );
    if total < needed {
        let _ = write!(explanation, "; the stripe is not readable even without failures");
    } else {
        let (lost_datacenters, lost_nodes) = table.worst_sets(&groups, requested_datacenters, requested_nodes);
        let mut lost = Vec::new();
        if !lost_datacenters.is_empty() {
            lost.push(format!("datacenter(s) {}", join(&lost_datacenters)));
        }
        if !lost_nodes.is_empty() {
            lost.push(format!("node(s) {}", join(&lost_nodes)));
        }
        let lost = if lost.is_empty() { "nothing that holds a shard".to_string() } else { lost.join(" and ") };
        let _ = write!(
            explanation,
            ". Worst case for {budget}: losing {lost} leaves {worst_case_remaining_shards} shard(s), {}. \
             It survives at most {survives}",
            if meets_budget { "enough" } else { "not enough" }
        );
    }
    let strangers: Vec<String> = acknowledged
        .iter()
        .filter(|slot| topology.node(&slot.node).is_none_or(|(datacenter, _)| datacenter.id != slot.datacenter))
        .map(|slot| format!("{}/{}", slot.datacenter, slot.node))
        .collect();
    if !strangers.is_empty() {
        let _ = write!(explanation, ". Not in the topology as named: {}", strangers.join(", "));
    }
    explanation.push('.');

    SurvivabilityReport { meets_budget, survives, worst_case_remaining_shards, explanation }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// The shards of one datacenter: per node counts, fullest first.
struct Group<'a> {
    datacenter: &'a DatacenterId,
    nodes: Vec<(&'a NodeId, u32)>,
    total: u32,
}

fn group(acknowledged: &[Slot]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    for slot in acknowledged {
        let index = match groups.iter().position(|g| g.datacenter == &slot.datacenter) {
            Some(index) => index,
            None => {
                groups.push(Group { datacenter: &slot.datacenter, nodes: Vec::new(), total: 0 });
                groups.len() - 1
            }
        };
        let group = &mut groups[index];
        group.total += 1;
        match group.nodes.iter_mut().find(|(node, _)| *node == &slot.node) {
            Some((_, count)) => *count += 1,
            None => group.nodes.push((&slot.node, 1)),
        }
    }
    for group in &mut groups {
        group.nodes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    }
    groups
}

/// `removed[d][n]`: the most shards that losing at most `d` whole datacenters plus at most `n`
/// further nodes can take, for every `d` and `n`, with the choices kept for explanation.
struct WorstCase {
    datacenters: usize,
    nodes: usize,
    removed: Vec<u32>,
    /// Per datacenter layer, per (d, n): `WHOLE` or the number of its nodes removed.
    choices: Vec<u32>,
}

const WHOLE: u32 = u32::MAX;

impl WorstCase {
    fn compute(groups: &[Group<'_>]) -> Self {
        let datacenters = groups.len();
        let nodes: usize = groups.iter().map(|g| g.nodes.len()).sum();
        let width = nodes + 1;
        let cells = (datacenters + 1) * width;
        let mut removed = vec![0u32; cells];
        let mut next = vec![0u32; cells];
        let mut choices = vec![0u32; groups.len() * cells];
        for (layer, group) in groups.iter().enumerate() {
            let mut prefix = Vec::with_capacity(group.nodes.len() + 1);
            prefix.push(0u32);
            for (_, count) in &group.nodes {
                prefix.push(prefix.last().copied().unwrap_or(0) + count);
            }
            for d in 0..=datacenters {
                for n in 0..=nodes {
                    let mut best = removed[d * width + n];
                    let mut choice = 0;
                    for t in 1..=n.min(group.nodes.len()) {
                        let value = removed[d * width + n - t] + prefix[t];
                        if value > best {
                            best = value;
                            choice = t as u32;
                        }
                    }
                    if d > 0 {
                        let value = removed[(d - 1) * width + n] + group.total;
                        if value > best {
                            best = value;
                            choice = WHOLE;
                        }
                    }
                    next[d * width + n] = best;
                    choices[layer * cells + d * width + n] = choice;
                }
            }
            std::mem::swap(&mut removed, &mut next);
        }
        Self { datacenters, nodes, removed, choices }
    }

    fn get(&self, datacenters: usize, nodes: usize) -> u32 {
        self.removed[datacenters * (self.nodes + 1) + nodes]
    }

    /// The datacenters and nodes whose loss is the worst case for (`d`, `n`).
    fn worst_sets<'a>(
        &self,
        groups: &[Group<'a>],
        mut d: usize,
        mut n: usize,
    ) -> (Vec<&'a DatacenterId>, Vec<&'a NodeId>) {
        let width = self.nodes + 1;
        let cells = (self.datacenters + 1) * width;
        let mut lost_datacenters = Vec::new();
        let mut lost_nodes = Vec::new();
        for (layer, group) in groups.iter().enumerate().rev() {
            match self.choices[layer * cells + d * width + n] {
                WHOLE => {
                    lost_datacenters.push(group.datacenter);
                    d -= 1;
                }
                t => {
                    let t = t as usize;
                    lost_nodes.extend(group.nodes[..t].iter().map(|(node, _)| *node));
                    n -= t;
                }
            }
        }
        lost_datacenters.reverse();
        lost_nodes.reverse();
        (lost_datacenters, lost_nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::uniform;
    use crate::{derive_geometry, select_slots};
    use ignifuge_types::DiskIndex;

    fn slot(datacenter: &str, node: &str) -> Slot {
        Slot { datacenter: DatacenterId::new(datacenter), node: NodeId::new(node), disk: DiskIndex(0) }
    }

    #[test]
    fn a_full_5_plus_4_stripe_survives_a_site_and_a_node_and_no_more() {
        let topology = uniform(3, 3);
        let geometry = derive_geometry(&topology, FailureBudget::new(1, 1)).unwrap();
        let slots = select_slots(&topology, geometry, b"stripe").unwrap();
        let report = check_survivability(&topology, geometry, &slots, FailureBudget::new(1, 1));
        assert!(report.meets_budget, "{}", report.explanation);
        assert_eq!(report.survives, FailureBudget::new(1, 1));
        assert_eq!(report.worst_case_remaining_shards, 5);
        assert!(report.explanation.contains("9 shard(s) acknowledged on 9 node(s) in 3 datacenter(s), 5 needed"));
        assert!(report.explanation.contains("leaves 5 shard(s), enough"), "{}", report.explanation);

        let report = check_survivability(&topology, geometry, &slots, FailureBudget::new(1, 2));
        assert!(!report.meets_budget);
        assert_eq!(report.worst_case_remaining_shards, 4);
        assert!(report.explanation.contains("not enough"), "{}", report.explanation);
    }

    #[test]
    fn a_missing_acknowledgement_lowers_what_the_stripe_survives() {
        let topology = uniform(3, 3);
        let geometry = derive_geometry(&topology, FailureBudget::new(1, 1)).unwrap();
        let slots = select_slots(&topology, geometry, b"stripe").unwrap();
        let eight: Vec<Slot> = slots[1..].to_vec();
        let report = check_survivability(&topology, geometry, &eight, FailureBudget::new(1, 1));
        assert!(!report.meets_budget, "{}", report.explanation);
        assert_eq!(report.survives, FailureBudget::new(1, 0));
        assert_eq!(report.worst_case_remaining_shards, 4);
    }

    #[test]
    fn two_shards_on_one_node_are_lost_together() {
        // During an outage a spare node took two shards of the same stripe.
        let topology = uniform(3, 3);
        let geometry = Geometry { data_shards: 5, parity_shards: 4, shards_per_datacenter: 3 };
        let acknowledged = vec![
            slot("dc1", "dc1-n1"),
            slot("dc1", "dc1-n1"),
            slot("dc1", "dc1-n2"),
            slot("dc2", "dc2-n1"),
            slot("dc2", "dc2-n2"),
            slot("dc2", "dc2-n3"),
            slot("dc3", "dc3-n1"),
            slot("dc3", "dc3-n2"),
            slot("dc3", "dc3-n3"),
        ];
        let report = check_survivability(&topology, geometry, &acknowledged, FailureBudget::new(1, 1));
        assert!(!report.meets_budget);
        assert_eq!(report.worst_case_remaining_shards, 4);
        assert!(report.explanation.contains("node(s) dc1-n1"), "{}", report.explanation);
        assert_eq!(report.survives, FailureBudget::new(1, 0));
    }

    #[test]
    fn an_unreadable_set_says_so() {
        let topology = uniform(3, 3);
        let geometry = Geometry { data_shards: 5, parity_shards: 4, shards_per_datacenter: 3 };
        let report = check_survivability(&topology, geometry, &[slot("dc1", "dc1-n1")], FailureBudget::new(0, 0));
        assert!(!report.meets_budget);
        assert_eq!(report.survives, FailureBudget::new(0, 0));
        assert!(report.explanation.contains("not readable even without failures"));
        let report = check_survivability(&topology, geometry, &[], FailureBudget::new(1, 1));
        assert!(!report.meets_budget);
        assert_eq!(report.worst_case_remaining_shards, 0);
    }

    #[test]
    fn slots_outside_the_topology_are_pointed_out() {
        let topology = uniform(3, 3);
        let geometry = Geometry { data_shards: 1, parity_shards: 2, shards_per_datacenter: 1 };
        let acknowledged = vec![slot("dc1", "dc1-n1"), slot("dc2", "dc2-n1"), slot("dc9", "ghost")];
        let report = check_survivability(&topology, geometry, &acknowledged, FailureBudget::new(1, 1));
        assert!(report.meets_budget);
        assert!(report.explanation.contains("Not in the topology as named: dc9/ghost"), "{}", report.explanation);
    }

    #[test]
    fn replicas_are_checked_with_one_data_shard() {
        let topology = uniform(3, 3);
        let copies = crate::select_replica_slots(&topology, FailureBudget::new(1, 1), b"tiny").unwrap();
        let geometry = Geometry { data_shards: 1, parity_shards: copies.len() as u32 - 1, shards_per_datacenter: 1 };
        let report = check_survivability(&topology, geometry, &copies, FailureBudget::new(1, 1));
        assert!(report.meets_budget, "{}", report.explanation);
        // Datacenters first: one copy per datacenter survives any two of them.
        assert_eq!(report.survives, FailureBudget::new(2, 0));
        let report = check_survivability(&topology, geometry, &copies[..2], FailureBudget::new(1, 1));
        assert!(!report.meets_budget);
    }

    #[test]
    fn the_worst_case_is_not_simply_the_fullest_datacenter() {
        // dc1 holds 4 shards, all on a1; dc2 and dc3 hold 3 each, one per node. Removing the
        // fullest datacenter first (dc1, then one more node) removes 5; the worst case is losing
        // dc2 or dc3 and then a1, which removes 7.
        let mut acknowledged = vec![slot("dc1", "a1"); 4];
        acknowledged.extend(["b1", "b2", "b3"].map(|n| slot("dc2", n)));
        acknowledged.extend(["c1", "c2", "c3"].map(|n| slot("dc3", n)));
        let topology = uniform(3, 3);
        let geometry = Geometry { data_shards: 4, parity_shards: 6, shards_per_datacenter: 1 };
        let report = check_survivability(&topology, geometry, &acknowledged, FailureBudget::new(1, 1));
        assert_eq!(report.worst_case_remaining_shards, 3);
        assert!(!report.meets_budget);
        assert!(report.explanation.contains("and node(s) a1 leaves 3"), "{}", report.explanation);
        assert_eq!(report.survives, FailureBudget::new(1, 0));
    }
}
